"""LDAM-DRW's collapse, settled by ablation: per setting of the `ldam` step of recipe.yaml, how
many seeds trained, their test accuracy, and per epoch what the features did (docs/remedies.md, "LDAM-DRW").

    python scripts/ldam_ablation.py            # collect HEAD's experiments (dvc exp show --json), then render
    python scripts/ldam_ablation.py --num 3    # ... and those of the two commits before HEAD
    python scripts/ldam_ablation.py --no-dvc   # render from reports/ldam_ablation_epochs.csv alone

A run's per-epoch log (metrics/train/<variant>.csv: loss, feature_cosine = mean pairwise cosine of the fc1
features of 1,000 training images, fc1_saturated = share of those features within 0.01 of 0 or 1) is read
from the experiment's commit with dvc.api.read; runs are the LDAM-head variants (ldam_drw, cosine_full) on
the test set, counted once however many experiments carry them.
"""

import argparse
import io
import json
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scripts.report import runs as R  # noqa: E402
from scripts.report.tables import at_chance  # noqa: E402
from stages.lib import params as P  # noqa: E402
from stages.lib.files import write_text  # noqa: E402

EPOCHS_FILE, TABLE_FILE = Path("reports/ldam_ablation_epochs.csv"), Path("reports/ldam_ablation.md")
VARIANTS = ("ldam_drw", "cosine_full")


def collect(states: list[dict], params: dict) -> pd.DataFrame:
    """One row per (run, epoch) of the LDAM-head runs in `states`, with the run's setting and test results."""
    import dvc.api  # only here: rendering from the committed file needs no dvc

    flat, rows, seen = R.defaults(params), [], set()
    for state in R.commits_and_experiments(states):
        for variant in VARIANTS:
            data = (((state.get("data") or {}).get("metrics") or {}).get(f"metrics/{variant}.json") or {}).get("data")
            if not data or "run" not in data or data["run"]["validation"]:
                continue
            run = data["run"]
            identity = (variant, run["seed"], json.dumps(run["params"], sort_keys=True))
            if identity in seen:
                continue
            seen.add(identity)
            changes = R.changes(run["params"], run["tau"], flat)
            path = f"metrics/train/{variant}.csv"
            text = Path(path).read_text() if state["rev"] == "workspace" else dvc.api.read(path, rev=state["rev"])
            log = pd.read_csv(io.StringIO(text))
            rows.append(log.assign(variant=variant, setting=setting_name(variant, changes), seed=run["seed"],
                                   test_accuracy=data["accuracy"], balanced_accuracy=data["balanced_accuracy"]))
    columns = ["setting", "variant", "seed", "epoch", "loss", "train_accuracy", "feature_cosine", "fc1_saturated",
               "test_accuracy", "balanced_accuracy"]
    return pd.concat(rows)[columns].sort_values(["setting", "seed", "epoch"], kind="stable")


def setting_name(variant: str, changes: dict) -> str:
    words = [f"{key.split('.')[-1].replace('_', ' ')} {value}" for key, value in sorted(changes.items())]
    return ", ".join([("full data" if variant == "cosine_full" else "subset"), *(words or ["as params.yaml"])])


def table(epochs: pd.DataFrame) -> str:
    """Per setting: seeds that trained, their median test accuracy, and the features at epoch 1 and at the end,
    averaged over the collapsed and over the trained seeds."""
    runs = epochs.groupby(["setting", "seed"]).agg(last=("epoch", "max"), accuracy=("test_accuracy", "first"),
                                                   balanced=("balanced_accuracy", "first")).reset_index()
    runs["collapsed"] = at_chance(runs["balanced"])  # the tables' rule
    epochs = epochs.merge(runs[["setting", "seed", "last", "collapsed"]], on=["setting", "seed"])
    at = {name: epochs[epochs["epoch"] == which].groupby(["setting", "collapsed"])[["feature_cosine", "fc1_saturated",
                                                                                   "loss"]].mean()
          for name, which in (("epoch 1", 1), ("last", epochs["last"]))}
    lines = ["| setting | seeds trained | median test accuracy, % (trained) | seeds | feature cosine, epoch 1 -> last "
             "| fc1 saturated, epoch 1 -> last | training loss, last |", "|---|---:|---:|---|---:|---:|---:|"]
    for setting, group in runs.groupby("setting", sort=False):
        trained = group[~group["collapsed"]]
        median = f"{100 * trained['accuracy'].median():.2f}" if len(trained) else "-"
        for collapsed in sorted(set(group["collapsed"])):
            first, last = at["epoch 1"].loc[(setting, collapsed)], at["last"].loc[(setting, collapsed)]
            lines.append(f"| {setting} | {len(trained)} of {len(group)} | {median} | "
                         f"{'collapsed' if collapsed else 'trained'} | {first['feature_cosine']:.3f} -> "
                         f"{last['feature_cosine']:.3f} | {first['fc1_saturated']:.3f} -> {last['fc1_saturated']:.3f} "
                         f"| {last['loss']:.3f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rev", nargs="+", default=["HEAD"], help="the commits whose experiments are collected")
    parser.add_argument("--num", type=int, default=1, help="also the NUM-1 commits before each of them")
    parser.add_argument("--no-dvc", action="store_true", help=f"render from {EPOCHS_FILE} alone")
    args = parser.parse_args()
    if args.no_dvc:
        epochs = pd.read_csv(EPOCHS_FILE)
    else:
        epochs = collect(R.exp_show(args.rev, args.num), P.read_params())
        write_text(EPOCHS_FILE, epochs.to_csv(index=False))
    write_text(TABLE_FILE, table(epochs))
    print(TABLE_FILE.read_text(), end="")


if __name__ == "__main__":
    main()
