"""The imbalance map (issue 24): on a grid of cells, ratio rho (majority / minority size, 1 / subset.fraction)
by minority share mu (subset.minority_classes, a count of digits drawn from the seed, over 10), each remedy's
gain over no remedy in the same cell, paired by seed (one seed: the same minority digits and the same subset
draw), as the mean and 95% t interval over the seeds; in points of test accuracy and of ROC AUC."""

import dataclasses
import json
import math

import pandas as pd

from scripts.report.tables import mean_and_interval

# The map's variants, which the recipe's step `map` adds with `+variants.<name>={...}`, and the remedy each
# trains, in words. The one home of their names: the remedies tables leave these runs out, the map reads only
# these.
REMEDIES = {"map_none": "no remedy", "map_over": "oversampling", "map_under": "undersampling",
            "map_best": "oversampling + shifts of ±1 px"}
NONE, FULL = "map_none", "map_full"  # the reference of every gain; every training image at the same budget
VARIANTS = (*REMEDIES, FULL)
# Buda et al.'s thresholding divides the outputs by the training set's prior: post-hoc adjustment with tau 1
# (and evaluate.logit_adjustment_prior: train_set, which the run record does not carry: the recipe sets it).
THRESHOLD_TAU = 1.0
# The gains, each against map_none without thresholding: (variant, thresholded).
GAINS = (("map_over", False), ("map_under", False), ("map_best", False),
         ("map_none", True), ("map_over", True), ("map_under", True), ("map_best", True))
# Per metric, its column without and with thresholding; thresholding divides each class's probability by a
# constant, which leaves every class's ranking, so the ROC AUC, unchanged: it has no thresholded column.
METRICS = {"accuracy": ("accuracy", "logit_adjusted.accuracy"), "roc_auc": ("roc_auc", None)}
CELL = ["fraction", "minority"]  # a cell's identity: subset.fraction and the number of minority digits
NUM_CLASSES = 10


@dataclasses.dataclass(frozen=True)
class ImbalanceMap:
    """The map's numbers, accuracies and AUCs in points (%)."""
    runs: pd.DataFrame  # the map's runs: variant, seed, CELL (NaN for map_full), the METRICS columns
    seed_gains: pd.DataFrame  # per CELL, variant, thresholded, metric, seed: the paired gain
    gains: pd.DataFrame  # per CELL, variant, thresholded, metric: seeds, mean, ci95
    cells: pd.DataFrame  # per CELL and metric: no remedy's seeds, mean, ci95
    full: pd.DataFrame  # per metric: the full-data reference's seeds, mean, ci95
    budget: tuple  # (epochs, images per epoch) of every run


def rho(fraction: float) -> float:
    return 1 / fraction


def mu(minority: int) -> float:
    return minority / NUM_CLASSES


def map_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """The map's test runs with thresholding's tau, with their cell (NaN for map_full) and budget. Raises when
    a variant has two runs in one cell with one seed (which would be paired with no remedy is ambiguous)."""
    runs = runs[runs["variant"].isin(VARIANTS) & ~runs["validation"].astype(bool)
                & (runs["tau"] == THRESHOLD_TAU)].reset_index(drop=True)
    records = [json.loads(text) for text in runs["params"]]
    on_subset = runs["variant"] != FULL
    runs = runs.assign(
        fraction=[r["subset.fraction"] if s else math.nan for r, s in zip(records, on_subset)],
        minority=[_count(r["subset.minority_classes"]) if s else math.nan for r, s in zip(records, on_subset)],
        images_per_epoch=[r.get(f"variants.{v}.images_per_epoch") for r, v in zip(records, runs["variant"])],
        sampler=[r.get(f"variants.{v}.sampler", "shuffle") for r, v in zip(records, runs["variant"])],
        shift_px=[r.get("train.augment_shift_px", 0) for r in records])
    twins = runs[runs.duplicated(["variant", *CELL, "seed"], keep=False)]
    if len(twins):
        row = twins.iloc[0]
        raise ValueError(f"the map has {len(twins)} runs of {row.variant} seed {row.seed} at subset.fraction "
                         f"{row.fraction:g}, {row.minority:g} minority digits that differ in other params; which "
                         "one is paired with no remedy is ambiguous: remove the stale ones from "
                         "reports/remedies_runs.csv")
    return runs


def _count(minority_classes) -> int:
    """subset.minority_classes as a count: a count as it is, a list (a JSON text in a record) its length."""
    return len(json.loads(minority_classes)) if isinstance(minority_classes, str) else int(minority_classes)


def build_map(runs: pd.DataFrame) -> ImbalanceMap | None:
    """The map of `runs` (the runs table, every run), or None when it holds no remedy paired with no remedy."""
    runs = map_runs(runs)
    seed_gains = paired_gains(runs)
    if seed_gains.empty:
        return None
    budgets = sorted(set(zip(runs["epochs"], runs["images_per_epoch"])), key=str)
    if len(budgets) > 1:
        raise ValueError(f"the map's runs have {len(budgets)} budgets (epochs, images per epoch): {budgets}; "
                         "its gains compare remedies at one budget")
    summary = lambda frame, keys: frame.groupby(keys, sort=True)["value"].agg(  # noqa: E731
        seeds="size", mean=lambda v: mean_and_interval(v)[0], ci95=lambda v: mean_and_interval(v)[1]).reset_index()
    plain = pd.concat([runs.assign(metric=metric, value=100 * runs[column])
                       for metric, (column, _) in METRICS.items()]).dropna(subset=["value"])
    return ImbalanceMap(runs=runs, seed_gains=seed_gains,
                        gains=summary(seed_gains.rename(columns={"gain": "value"}),
                                      [*CELL, "variant", "thresholded", "metric"]),
                        cells=summary(plain[plain["variant"] == NONE], [*CELL, "metric"]),
                        full=summary(plain[plain["variant"] == FULL], ["metric"]).set_index("metric"),
                        budget=budgets[0])


def paired_gains(runs: pd.DataFrame) -> pd.DataFrame:
    """Per GAINS entry and metric, per cell and seed: 100 x (its metric - no remedy's plain metric) of the same
    cell and seed; a seed that one of the two lacks is left out."""
    key = [*CELL, "seed"]
    none = runs[runs["variant"] == NONE].set_index(key)
    parts = []
    for variant, thresholded in GAINS:
        arm = runs[runs["variant"] == variant].set_index(key)
        for metric, (plain, adjusted) in METRICS.items():
            if thresholded and adjusted is None:
                continue  # thresholding leaves the metric as it was
            gain = 100 * (arm[adjusted if thresholded else plain] - none[plain])  # aligned on cell and seed
            parts.append(gain.dropna().rename("gain").reset_index().assign(variant=variant, thresholded=thresholded,
                                                                           metric=metric))
    columns = [*CELL, "variant", "thresholded", "metric", "seed", "gain"]
    return pd.concat(parts)[columns].reset_index(drop=True) if parts else pd.DataFrame(columns=columns)


def gain(imbalance_map: ImbalanceMap, variant: str, thresholded: bool, metric: str) -> pd.DataFrame:
    """The gains of one remedy and metric, indexed by CELL: seeds, mean, ci95."""
    gains = imbalance_map.gains
    rows = gains[(gains["variant"] == variant) & (gains["thresholded"] == thresholded) & (gains["metric"] == metric)]
    return rows.set_index(CELL)[["seeds", "mean", "ci95"]]


def grid(imbalance_map: ImbalanceMap) -> tuple[list[float], list[int]]:
    """The map's fractions (rho ascending) and minority counts (mu ascending), as its runs have them."""
    cells = imbalance_map.runs.dropna(subset=CELL)
    return sorted(set(cells["fraction"]), reverse=True), sorted(set(cells["minority"].astype(int)))
