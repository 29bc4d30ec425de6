"""The README's figures, drawn for a reader from the committed logs with matplotlib.

    python scripts/render_figures.py                      # -> reports/figures/

From metrics/train/<variant>.csv: training_loss.png and training_accuracy.png (one colour per variant, its name
at the line's end; the loss on a log axis) and focal_curriculum_gamma.png; from metrics/confusion/<variant>.csv:
confusion_errors.png (per actual digit, the % of its test images read as each other digit). Each figure is a
pure function of those files (no timestamp in the PNG) and is written whole or not at all.

`dvc plots show` / `dvc plots diff` draw the same logs with DVC's templates (dvc.yaml's `plots:`), for comparing
experiments, where a colour per revision is the point; these figures answer the README's questions instead.
"""

import argparse
import sys
from pathlib import Path

import pandas as pd

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))  # run as a script from anywhere in the repo

from scripts.report.confusion import errors_figure  # noqa: E402
from scripts.report.curves import curves_figure, gamma_figure  # noqa: E402
from stages.lib.files import atomic_path  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402  (after scripts.report set the Agg backend: no display)

FIGURES_DIR, METRICS_DIR = REPO_ROOT / "reports" / "figures", REPO_ROOT / "metrics"
DPI = 200  # twice the size the README shows them at: sharp on high-density screens
# The report's three models and the equal-budget control, in drawing order, the later on top: reduced over
# reduced_120, whose first 10 epochs it repeats, and both over focal, whose first gamma (0.2) is nearly
# cross-entropy. One colour each in every figure: blue the full data, orange the subset without remedy (as the
# forest plot's lines), darker for the longer run.
COLOURS = {"focal": "tab:green", "reduced_120": "#a04a00", "reduced": "tab:orange", "baseline": "tab:blue"}
CONFUSIONS = ("baseline", "reduced", "focal")  # the errors the README points to: reduced's, next to the others'


def render_figures(*, metrics_dir: Path, out_dir: Path) -> list[Path]:
    """Draw the README's figures from `metrics_dir`'s logs into `out_dir`; returns the paths written."""
    logs = {variant: read_csv(metrics_dir / "train" / f"{variant}.csv") for variant in COLOURS}
    figures = {
        "training_loss": curves_figure(logs, "loss", title="Training loss per epoch (log scale)\nfocal: the focal "
                                       "loss, which shrinks as gamma grows", colours=COLOURS, scale="log"),
        "training_accuracy": curves_figure(logs, "train_accuracy", title="Training accuracy per epoch (logit "
                                           "scale:\n90%, 99%, 99.9% equally apart)",
                                           colours=COLOURS, scale="logit"),
        "focal_curriculum_gamma": gamma_figure(logs["focal"], COLOURS["focal"]),
        "confusion_errors": errors_figure({variant: read_csv(metrics_dir / "confusion" / f"{variant}.csv")
                                           for variant in CONFUSIONS}),
    }
    written = []
    for name, figure in figures.items():
        path = out_dir / f"{name}.png"
        with atomic_path(path) as tmp:
            figure.savefig(tmp, format="png", dpi=DPI, metadata={"Software": None})  # no version, no date
        plt.close(figure)
        print(f"-> {path}", file=sys.stderr)
        written.append(path)
    return written


def read_csv(path: Path) -> pd.DataFrame:
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run `dvc repro` (or `dvc pull`) to produce the logs first")
    return pd.read_csv(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--metrics-dir", type=Path, default=METRICS_DIR, help="default: metrics")
    parser.add_argument("--out-dir", type=Path, default=FIGURES_DIR, help="default: reports/figures")
    args = parser.parse_args()
    try:
        render_figures(metrics_dir=args.metrics_dir, out_dir=args.out_dir)
    except FileNotFoundError as error:
        sys.exit(f"render_figures: {error}")


if __name__ == "__main__":
    main()
