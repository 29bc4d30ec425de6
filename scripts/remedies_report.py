"""The remedies across seeds: collects every experiment's metrics (`dvc exp show`) into one table.

    python scripts/remedies_report.py                 # the workspace, HEAD and HEAD's experiments
    python scripts/remedies_report.py --num 3         # ... and those of the two commits before HEAD
    python scripts/remedies_report.py --rev HEAD a1b2c3d   # HEAD and commit a1b2c3d, with their experiments

Writes reports/remedies.md (mean ± std over seeds, in %), reports/remedies.csv (the same, unrounded, plus one
row per run in reports/remedies_runs.csv) and reports/remedies.png (digits 0-4 against digits 5-9, per remedy).

Each metrics/<variant>.json records the seed and protocol it was trained with, so a run is counted once
however many experiments carry a copy of its file (an experiment that retrains a few variants keeps the
others' files from its parent commit). An experiment that changes a variant's settings (`variants.<name>`,
`losses.<its loss>`) makes another remedy, not another seed: its rows are labelled with what differs from
params.yaml here, e.g. `ldam_drw [losses.ldam_drw.scale=10.0]`. Such an experiment must retrain that variant
(the default `dvc exp run` does), or the label would be put on a copy of the parent's file.
"""

import argparse
import sys
from pathlib import Path

import dvc.api
import pandas as pd
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere in the repo

from stages.lib import params as P  # noqa: E402
from stages.lib.files import atomic_path, write_text  # noqa: E402

OUTPUT_DIR = Path("reports")
# metrics/<variant>.json key -> report column; accuracies are fractions in [0, 1].
METRIC_COLUMNS = {"accuracy": "accuracy", "balanced_accuracy": "balanced_accuracy",
                  "minority_accuracy": "digits_0_4", "majority_accuracy": "digits_5_9",
                  "logit_adjusted.accuracy": "posthoc_la_accuracy",
                  "logit_adjusted.minority_accuracy": "posthoc_la_0_4", "distinct_minority_seen": "distinct_0_4_seen",
                  "epochs": "epochs", "seed": "seed", "keep_minority_every": "keep_minority_every",
                  "test_loss": "test_loss"}
PERCENT_COLUMNS = ("accuracy", "balanced_accuracy", "digits_0_4", "digits_5_9", "posthoc_la_accuracy", "posthoc_la_0_4")
# Test accuracy (%) the course report gives for the models it trained; a reference, not a parameter.
REPORT_ACCURACY = {("baseline", "full"): 98.7, ("reduced", "per_batch"): 92.0, ("focal", "per_batch"): 98.0}


def variant_settings(params: dict, name: str) -> dict:
    """The flattened params that define variant `name` (as `dvc exp show` names them). subset.mode is not
    among them: the protocol is read from the metrics file itself."""
    variant = params["variants"][name]
    settings = {f"variants.{name}.{key}": value for key, value in variant.items()}
    settings.update({f"losses.{variant['loss']}.{key}": value
                     for key, value in (params["losses"][variant["loss"]] or {}).items()})
    if variant["train_set"] == "subset":
        settings.update({f"subset.{key}": params["subset"][key] for key in ("fraction", "minority_classes")
                         if key in params.get("subset", {})})
    return settings


def collect_runs(rows: list[dict], params: dict) -> pd.DataFrame:
    """One row per distinct run of each variant of `params` found in the `dvc exp show` rows."""
    records = []
    for row in rows:
        for name, variant in params["variants"].items():
            values = {column: _number(row.get(f"metrics/{name}.json:{key}")) for key, column in METRIC_COLUMNS.items()}
            if values["seed"] is None or values["accuracy"] is None:  # not run, or from before seeds were kept
                continue
            seconds = _number(row.get(f"metrics/train/{name}_timing.json:seconds"))
            records.append({"name": name, "variant": name + _changed_settings(row, variant_settings(params, name)),
                            "protocol": _protocol(variant, values["keep_minority_every"]),
                            **values, "train_seconds": seconds, "experiment": row.get("Experiment") or row["rev"]})
    runs = pd.DataFrame.from_records(records)
    if runs.empty:
        raise SystemExit("no finished runs found: run `dvc repro` or the experiments in README.md first")
    runs["seed"] = runs["seed"].astype(int)
    # The same run carried by several experiments (same variant, seed and test loss) counts once, under the
    # labels of the first row: the workspace and HEAD come before the experiments that copied their files.
    runs = runs.drop_duplicates(subset=["name", "seed", "test_loss"]).drop(columns="name")
    return runs.reset_index(drop=True)


def summarize(runs: pd.DataFrame, variant_order: list[str]) -> pd.DataFrame:
    """Mean and std over seeds per (variant, protocol), and the share of the full-vs-reduced gap recovered."""
    numeric = [*PERCENT_COLUMNS, "distinct_0_4_seen", "epochs", "train_seconds"]
    grouped = runs.groupby(["variant", "protocol"], sort=False)
    summary = grouped[numeric].agg(["mean", "std"])
    summary.columns = [f"{column}_{stat}" for column, stat in summary.columns]
    summary["seeds"] = grouped["seed"].nunique()
    summary = summary.reset_index()
    summary["order"] = summary["variant"].str.split(" ").str[0].map({name: i for i, name in enumerate(variant_order)})
    summary = summary.sort_values(["order", "protocol"]).drop(columns="order").reset_index(drop=True)
    full = _mean_accuracy(summary, "baseline", "full")
    reduced = _mean_accuracy(summary, "reduced", "fixed")
    if full is not None and reduced is not None and full != reduced:
        summary["gap_recovered"] = (summary["accuracy_mean"] - reduced) / (full - reduced)
    return summary


def markdown_table(summary: pd.DataFrame) -> str:
    """Accuracies in % as mean ± std over the seeds; the gap recovered in %."""
    lines = ["| variant | protocol | seeds | epochs | test accuracy | balanced | digits 0-4 | digits 5-9 "
             "| post-hoc LA | its digits 0-4 | distinct 0-4 seen | gap recovered | train s | report |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for row in summary.itertuples():
        cells = [_mean_std(row, column) for column in PERCENT_COLUMNS]
        gap = getattr(row, "gap_recovered", float("nan"))
        report = REPORT_ACCURACY.get((row.variant, row.protocol))
        lines.append(f"| {row.variant} | {row.protocol} | {row.seeds} | {row.epochs_mean:.0f} | {' | '.join(cells)} "
                     f"| {row.distinct_0_4_seen_mean:,.0f} | {'-' if pd.isna(gap) else f'{round(100 * gap)}%'} "
                     f"| {row.train_seconds_mean:.0f} | {'-' if report is None else report} |")
    return "\n".join(lines) + "\n"


def plot(summary: pd.DataFrame, path: Path) -> None:
    """Digits 0-4 against digits 5-9 (mean ± std over seeds), one marker per variant and protocol. Runs below
    50% on either group (a collapsed training) are named under the plot instead, so the rest stay readable."""
    import matplotlib
    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt

    shown = summary[(summary["digits_0_4_mean"] >= 0.5) & (summary["digits_5_9_mean"] >= 0.5)]
    hidden = summary.drop(shown.index)
    figure, axes = plt.subplots(figsize=(11, 6))
    markers = "osD^v<>pXh*"
    for i, row in enumerate(shown.itertuples()):
        axes.errorbar(100 * row.digits_5_9_mean, 100 * row.digits_0_4_mean, xerr=100 * _zero_if_nan(row.digits_5_9_std),
                      yerr=100 * _zero_if_nan(row.digits_0_4_std), fmt=markers[i % len(markers)], capsize=3,
                      color=plt.cm.tab20(i % 20), label=f"{row.variant} ({row.protocol}, {row.epochs_mean:.0f} ep.)")
    axes.set_xlabel("test accuracy on digits 5-9 (%)")
    axes.set_ylabel("test accuracy on digits 0-4 (%)")
    axes.set_title("LeNet on MNIST, digits 0-4 thinned to 10%: mean ± std over seeds")
    axes.grid(alpha=0.3)
    axes.legend(loc="center left", bbox_to_anchor=(1.02, 0.5), fontsize=8)
    if len(hidden):
        names = ", ".join(f"{row.variant} ({row.protocol})" for row in hidden.itertuples())
        figure.text(0.01, 0.01, f"below 50%, not shown: {names}", fontsize=8)
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=110)
    plt.close(figure)


def _changed_settings(row: dict, settings: dict) -> str:
    """" [key=value, ...]" for the row's settings that differ from `settings`; "" when none do."""
    changed = [f"{key}={row[key]}" for key, value in settings.items()
               if row.get(key) is not None and _as_list(row[key]) != _as_list(value)]
    return f" [{', '.join(changed)}]" if changed else ""


def _number(value) -> float | None:
    """A metric's value; `dvc exp show` gives None or a placeholder string where a file lacks the key."""
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _as_list(value):
    """Numbers compare as floats (YAML's 1 and 1.0 are the same setting), lists item by item; `dvc exp show`
    gives some lists as their text, "[0, 1, 2]"."""
    if isinstance(value, str) and value.startswith("["):
        value = yaml.safe_load(value)
    if isinstance(value, (list, tuple)):
        return [_as_list(v) for v in value]
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value


def _protocol(variant: dict, keep_minority_every) -> str:
    if variant["train_set"] == "full":
        return "full"
    return "per_batch" if keep_minority_every and keep_minority_every > 1 else "fixed"


def _mean_accuracy(summary: pd.DataFrame, variant: str, protocol: str) -> float | None:
    match = summary[(summary["variant"] == variant) & (summary["protocol"] == protocol)]
    return None if match.empty else float(match["accuracy_mean"].iloc[0])


def _mean_std(row, column: str) -> str:
    mean, std = getattr(row, f"{column}_mean"), getattr(row, f"{column}_std")
    return f"{100 * mean:.2f}" + ("" if pd.isna(std) else f" ± {100 * std:.2f}")


def _zero_if_nan(value: float) -> float:
    return 0.0 if pd.isna(value) else value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rev", nargs="+", default=["HEAD"],
                        help="the commits whose experiments are collected (default HEAD)")
    parser.add_argument("--num", type=int, default=1, help="also the NUM-1 commits before each of them")
    parser.add_argument("--out", type=Path, default=OUTPUT_DIR, help="output directory (default reports/)")
    args = parser.parse_args()
    params = P.read_params()
    P.variants(params)  # a clear error for a broken params.yaml
    runs = collect_runs(dvc.api.exp_show(revs=args.rev, num=args.num), params)
    summary = summarize(runs, list(params["variants"]))
    table = markdown_table(summary)
    write_text(args.out / "remedies.md", table)
    with atomic_path(args.out / "remedies.csv") as tmp:
        summary.to_csv(tmp, index=False)
    with atomic_path(args.out / "remedies_runs.csv") as tmp:
        runs.to_csv(tmp, index=False)
    plot(summary, args.out / "remedies.png")
    print(table, end="")
    print(f"{len(runs)} runs -> {args.out}/remedies.md, remedies.csv, remedies_runs.csv, remedies.png",
          file=sys.stderr)


if __name__ == "__main__":
    main()
