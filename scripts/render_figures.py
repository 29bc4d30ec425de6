"""The README's figures: the plots of `dvc plots show`, rendered to PNG from the very specs DVC draws.

    python scripts/render_figures.py                      # every plot of dvc.yaml -> reports/figures/
    python scripts/render_figures.py --targets "Training loss" metrics/confusion/focal.csv

Asks `dvc plots show --json` (in the repository root) for the Vega-Lite spec of each plot, with its data
inlined, and renders it with vl-convert-python (the `report` extra), so a figure shows what `dvc plots show`
shows: same template, same columns, same titles. `--targets` takes what `dvc plots show` takes: plot ids of
dvc.yaml's top-level `plots:` ("Training loss") or plot files (metrics/confusion/focal.csv). Each figure is
written whole or not at all to reports/figures/<plot id, lower case, non-alphanumerics as _>.png, e.g.
training_loss.png, metrics_confusion_focal.png. Figures of plots that no longer exist are not removed.
"""

import argparse
import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import vl_convert

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))  # run as a script from anywhere in the repo

from scripts.offline_plots_template import vegalite_version  # noqa: E402
from stages.lib.files import atomic_path  # noqa: E402

FIGURES_DIR = REPO_ROOT / "reports" / "figures"
PNG_SCALE = 2  # DVC's charts are 300 px wide: twice that keeps them sharp on high-density screens


def plot_specs(repo_dir: Path, targets: list[str]) -> dict[str, dict]:
    """{plot id: Vega-Lite spec with its data inlined} for the workspace's plots, as `dvc plots show` sees them."""
    command = [sys.executable, "-m", "dvc", "plots", "show", "--json", *targets]
    result = subprocess.run(command, cwd=repo_dir, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"dvc plots show --json failed in {repo_dir} (exit {result.returncode}): "
                           f"{result.stderr.strip()}")
    shown = json.loads(result.stdout)
    # DVC exits 0 even when a plot's file is missing or unreadable; it lists the problem under "errors".
    if shown.get("errors"):
        raise RuntimeError(f"dvc plots show --json reported errors in {repo_dir}: {shown['errors']}; "
                           "run `dvc plots show` there to see them, and fix dvc.yaml or the plot files")
    specs = {name: entry["content"] for name, entries in shown.get("data", {}).items()
             for entry in entries if entry["type"] == "vega"}
    if not specs:
        raise RuntimeError(f"dvc plots show --json found no data-series plot in {repo_dir} for targets "
                           f"{targets or 'all'}; check the plot ids and files in dvc.yaml")
    return specs


def figure_name(plot_id: str) -> str:
    """A file name for a plot id: 'Training loss' -> 'training_loss', 'metrics/train/a.csv' -> 'metrics_train_a'."""
    without_extension = re.sub(r"\.(csv|tsv|json|ya?ml)$", "", plot_id)  # the data files DVC plots
    return re.sub(r"[^a-z0-9]+", "_", without_extension.lower()).strip("_")


def render_figures(*, repo_dir: Path, out_dir: Path, targets: list[str]) -> list[Path]:
    """Render each plot of `repo_dir` to `out_dir/<figure_name>.png`; returns the paths written."""
    specs = plot_specs(repo_dir, targets)
    names = {plot_id: figure_name(plot_id) for plot_id in specs}
    counts = Counter(names.values())
    clashing = sorted(plot_id for plot_id, name in names.items() if counts[name] > 1)
    if clashing:
        raise ValueError(f"plots {clashing} would share a figure file name; rename one in dvc.yaml")
    written = []
    for plot_id, spec in specs.items():
        png = vl_convert.vegalite_to_png(spec, vl_version=vegalite_version(spec["$schema"]), scale=PNG_SCALE)
        path = out_dir / f"{names[plot_id]}.png"
        with atomic_path(path) as tmp:
            tmp.write_bytes(png)
        print(f"{plot_id} -> {path}", file=sys.stderr)
        written.append(path)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--targets", nargs="+", default=[], metavar="PLOT",
                        help="plot ids or plot files, as `dvc plots show` takes them (default: every plot)")
    parser.add_argument("--out-dir", type=Path, default=FIGURES_DIR, help="default: reports/figures")
    args = parser.parse_args()
    try:
        render_figures(repo_dir=REPO_ROOT, out_dir=args.out_dir, targets=args.targets)
    except (RuntimeError, ValueError) as error:
        sys.exit(f"render_figures: {error}")


if __name__ == "__main__":
    main()
