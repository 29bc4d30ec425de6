"""The tables over seeds: validation (the setting chosen per remedy), test (equal-budget references, gap
recovered, status) and paired differences; accuracies are fractions here, points in the markdown."""

import json
import math

import numpy as np
import pandas as pd
from scipy import stats

from scripts.report.runs import TAU_KEY, run_name

CONFIDENCE = 0.95
# Balanced accuracy below twice chance (10 digits: 0.1 for a model that predicts one class): a seed whose
# training collapsed. A row whose seeds split shows the median of the rest, not a mean across both. The one
# rule: the tables, the forest plot and scripts/ldam_ablation.py all ask `at_chance`.
CHANCE = 0.2
KEY = ["variant", "setting", "protocol", "posthoc"]  # one row of a table
SHOWN = ["accuracy", "balanced_accuracy", "minority_accuracy", "majority_accuracy", "logit_adjusted.accuracy",
         "logit_adjusted.minority_accuracy"]
POSTHOC_AS = {m: f"logit_adjusted.{m}" for m in ("accuracy", "balanced_accuracy", "minority_accuracy",
                                                 "majority_accuracy")}
TUNED, DEFAULT, EXPLORATORY = "validation-tuned", "paper default", "exploratory (chosen on test)"
DETACHED, REFERENCE, OTHER = "the report's gradient", "reference", "other"
CHOSEN = (DEFAULT, TUNED, f"{TUNED} (= {DEFAULT})")  # the statuses of a remedy that answers the question
# Settings picked by looking at test accuracy before there was a validation split: s = 10 from a probe that
# printed test accuracy; 120 epochs after the 10-epoch run led the table.
CHOSEN_ON_TEST = [("ldam_drw", {"losses.ldam_drw.scale": 10.0}), ("resampled", {"variants.resampled.epochs": 120})]
# The comparisons of the paired table, by name: scripts/report/markdown.py's findings look rows up by them.
LONGER, CURRICULUM = "longer training, cross-entropy", "focal curriculum vs cross-entropy, same epochs"
BEST, PER_BATCH = "best {epochs}-epoch remedy vs full data", "per-batch protocol vs fixed subset"
DETACHED_PAIR = "focal factor detached vs not"
# Test accuracy (%) the course report gives for the models it trained; a reference, not a parameter.
REPORT_ACCURACY = {("baseline", "{}", "full"): 98.7, ("reduced", "{}", "per_batch"): 92.0,
                   ("focal", "{}", "per_batch"): 98.0}


def at_chance(balanced_accuracy):
    """Whether a seed's training collapsed, from its balanced accuracy (a fraction, or a Series of them)."""
    return balanced_accuracy < CHANCE


def mean_and_interval(values) -> tuple[float, float]:
    """The mean and the half-width of its 95% Student t interval (NaN for fewer than two values)."""
    values = np.asarray(values, dtype=float)
    if len(values) < 2:
        return (float(values.mean()) if len(values) else math.nan), math.nan
    t = stats.t.ppf(0.5 + CONFIDENCE / 2, len(values) - 1)
    return float(values.mean()), float(t * values.std(ddof=1) / math.sqrt(len(values)))


def with_posthoc(runs: pd.DataFrame, derive: pd.Series) -> pd.DataFrame:
    """Drops the runs that change only the tau (their plain metrics are their parent's); adds a post-hoc run
    (accuracies: the logit-adjusted ones) of each run where `derive` holds."""
    derived = runs[derive]
    derived = derived.assign(posthoc=True, **{plain: derived[source] for plain, source in POSTHOC_AS.items()},
                             **{source: math.nan for source in POSTHOC_AS.values()})
    plain = runs[runs["setting"] == runs["base"]].assign(posthoc=False)
    return pd.concat([plain, derived]).sort_index(kind="stable").astype({"posthoc": bool})


def summarize(runs: pd.DataFrame) -> pd.DataFrame:
    """Per KEY, in the runs' order: seeds, seeds at chance, and per metric the mean, median and 95% half-width
    over the seeds that trained (all seeds if none or all are at chance)."""
    chance = at_chance(runs["balanced_accuracy"])
    groups = runs.assign(chance=chance).groupby(KEY, sort=False)
    counted = chance & ~groups["chance"].transform("all")
    table = groups.agg(seeds=("seed", "size"), at_chance=("chance", "sum"), **{
        column: (column, "first") for column in ("epochs", "changes", "record", "train_set", "loss", "sampler",
                                                 "tau", "validation")})
    ci95 = ("ci95", lambda values: mean_and_interval(values)[1])
    metrics = runs[~counted].groupby(KEY, sort=False)[SHOWN].agg(["mean", "median", ci95])
    metrics.columns = [f"{column}_{stat}" for column, stat in metrics.columns]
    table = table.join(metrics).reset_index()
    table["split"] = (table["at_chance"] > 0) & (table["at_chance"] < table["seeds"])
    table["center"] = table["accuracy_median"].where(table["split"], table["accuracy_mean"])
    table["name"] = [run_name(row) for row in table.itertuples()]
    return table


def validation_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Post-hoc rows for a model whose tau was swept; per remedy (variant, protocol, post hoc or not) with two
    settings or more, `chosen` is the best mean balanced accuracy (a tie: the first)."""
    runs = runs[runs["validation"]]
    swept = runs.groupby(["variant", "base", "protocol"])["tau"].transform("nunique") >= 2
    table = summarize(with_posthoc(runs, swept))
    best = table.groupby(["variant", "protocol", "posthoc"])["balanced_accuracy_mean"]
    table["chosen"] = (best.transform("size") >= 2) & table.index.isin(best.idxmax())
    return table


def test_runs(runs: pd.DataFrame, validation: pd.DataFrame) -> pd.DataFrame:
    """The test runs, plus the post-hoc run of each whose setting validation chose post hoc."""
    runs = runs[~runs["validation"]]
    chosen = set(validation.loc[validation["chosen"] & validation["posthoc"], KEY[:3]].itertuples(False, None))
    return with_posthoc(runs, pd.Series([key in chosen for key in zip(*(runs[c] for c in KEY[:3]))], runs.index))


def test_table(runs: pd.DataFrame, params: dict, validation: pd.DataFrame) -> pd.DataFrame:
    """The test rows: references at the row's epochs, gap recovered, status, the course report's figure."""
    table = summarize(test_runs(runs, validation))
    for column, protocol in (("full_reference", "full"), ("reduced_reference", "fixed")):
        table[column] = [_reference(table, row, protocol) for row in table.itertuples()]
    full, reduced = (reference_centers(table, column) for column in ("full_reference", "reduced_reference"))
    trained = ~table["split"] & (table["at_chance"] < table["seeds"])  # no gap for a row that collapsed
    table["gap_recovered"] = ((table["center"] - reduced) / (full - reduced)).where(trained)
    chosen = set(validation.loc[validation["chosen"], KEY].itertuples(index=False, name=None))
    references = set(table["full_reference"].dropna()) | set(table["reduced_reference"].dropna())
    table["status"] = [_status(row, chosen, params, references) for row in table.itertuples()]
    table["profile"] = ["full" if r.train_set == "full" else r.record.get("subset.profile", "step")
                        for r in table.itertuples()]
    table["report_accuracy"] = [math.nan if r.posthoc else REPORT_ACCURACY.get((r.variant, r.setting, r.protocol),
                                                                               math.nan) for r in table.itertuples()]
    return table


def reference_centers(table: pd.DataFrame, column: str) -> pd.Series:
    """Per row, the accuracy of its reference `column` (full_reference or reduced_reference): that reference
    row's center, the value the gap is measured against; NaN for a row without one."""
    return pd.Series(table["center"].reindex(table[column]).to_numpy(), index=table.index)


def _reference(table: pd.DataFrame, row, protocol: str) -> float:
    """The index of the reference on `protocol` (full or fixed) trained as the row was: plain shuffled
    cross-entropy, or for LDAM's cosine classifier that classifier alone (no margins, no DRW, the same scale),
    so that a remedy is not credited for a head that only trains faster; with the row's epochs, its train.*
    changes and, on the subset, its subset changes (the profile). The one with most seeds, then the first."""
    shared = ("train.", "subset.") if protocol == "fixed" else ("train.",)
    trained_as = lambda changes: {k: v for k, v in changes.items() if k.startswith(shared)}  # noqa: E731
    same = table["changes"].map(lambda c: trained_as(c) == trained_as(row.changes))
    if row.loss == "ldam_drw":
        head = {"losses.ldam_drw.max_margin": 0, "losses.ldam_drw.drw_start": 1,
                "losses.ldam_drw.scale": row.record.get("losses.ldam_drw.scale")}
        same &= (table["loss"] == "ldam_drw") & table["record"].map(lambda r: all(r.get(k) == v
                                                                                  for k, v in head.items()))
    else:
        same &= (table["loss"] == "cross_entropy") & (table["sampler"] == "shuffle")
    candidates = table[(table["protocol"] == protocol) & (table["epochs"] == row.epochs) & ~table["posthoc"] & same]
    return candidates["seeds"].idxmax() if len(candidates) else math.nan


def _status(row, chosen: set, params: dict, references: set) -> str:
    """How a row's setting was chosen, the first rule that holds. The subset's profile is the experiment, not
    the remedy's setting; a remedy an experiment adds (crt_120) is judged as the first params.yaml variant of
    its kind; an added plain cross-entropy (baseline_120) is no remedy, a reference at most."""
    core = {k: v for k, v in row.changes.items() if not k.startswith("subset.")}
    kinds = {(e["train_set"], e["loss"], e.get("sampler", "shuffle")): name
             for name, e in reversed(params["variants"].items())}
    variant = row.variant if row.variant in params["variants"] else None if (
        row.loss, row.sampler) == ("cross_entropy", "shuffle") else kinds.get((row.train_set, row.loss, row.sampler))
    default = variant is not None and not core
    if (variant, json.dumps(core, sort_keys=True), row.protocol, row.posthoc) in chosen:
        return f"{TUNED} (= {DEFAULT})" if default else TUNED
    if default:
        return DEFAULT
    if (row.variant, row.changes) in CHOSEN_ON_TEST:
        return EXPLORATORY
    if row.variant in params["variants"] and _detached(row.changes) is not None and len(row.changes) == 1:
        return DETACHED
    return REFERENCE if row.Index in references else OTHER


def _detached(changes: dict) -> str | None:
    """The settings JSON of `changes` without its focal factor detached, or None when they do not detach it."""
    detach = {k: v for k, v in changes.items() if k.endswith(".detach_factor")}
    if not detach or list(detach.values()) != [True]:
        return None
    return json.dumps({k: v for k, v in changes.items() if k not in detach}, sort_keys=True)


def paired_table(runs: pd.DataFrame, table: pd.DataFrame) -> pd.DataFrame:
    """Test accuracy A - B in points over the seeds both have, per comparison (LONGER ... DETACHED_PAIR); a_row
    and b_row are the rows of `table` compared (b_row NaN when the comparison has no B)."""
    pairs = [(LONGER, i, shortest) for i, shortest in _longer_references(table).items()]
    pairs += [(CURRICULUM, i, row.reduced_reference)
              for i, row in table[(table["loss"] == "focal_curriculum") & (table["protocol"] == "fixed")].iterrows()]
    pairs += [(BEST.format(epochs=epochs), best, table.loc[best, "full_reference"])
              for (_, epochs), best in best_remedies(table).items()]
    rows = {key: i for i, key in enumerate(zip(*(table[column] for column in KEY)))}
    for i, row in table.iterrows():
        if row.protocol == "per_batch":
            pairs.append((PER_BATCH, i, rows.get((row.variant, row.setting, "fixed", row.posthoc), math.nan)))
        if (other := _detached(row.changes)) is not None:
            pairs.append((DETACHED_PAIR, i, rows.get((row.variant, other, row.protocol, row.posthoc), math.nan)))
    seeds, records = seed_results(runs, table)["accuracy"], []
    for comparison, a, b in pairs:
        differences = [] if pd.isna(b) else (100 * (seeds.loc[a] - seeds.loc[int(b)])).dropna()
        records.append((comparison, a, b, table.loc[a, "name"], "-" if pd.isna(b) else table.loc[int(b), "name"],
                        len(differences), *mean_and_interval(differences)))
    return pd.DataFrame.from_records(records, columns=["comparison", "a_row", "b_row", "a", "b", "paired_seeds",
                                                       "difference_mean", "difference_ci95"])


def steady_remedies(table: pd.DataFrame) -> pd.DataFrame:
    """The rows that answer the question: a remedy on the fixed subset, as its paper or validation set it, with
    every seed trained and a gap to recover."""
    return table[(table["protocol"] == "fixed") & (table["at_chance"] == 0) & table["gap_recovered"].notna()
                 & ((table["loss"] != "cross_entropy") | (table["sampler"] != "shuffle") | table["posthoc"])
                 & table["status"].isin(CHOSEN)]


def best_remedies(table: pd.DataFrame) -> pd.Series:
    """{(profile, epochs): the steady remedy that recovers the largest share of its gap}."""
    return steady_remedies(table).groupby(["profile", "epochs"])["gap_recovered"].idxmax()


def _longer_references(table: pd.DataFrame) -> dict:
    """{reference trained longer: the one of its protocol and setting with the fewest epochs} (reduced_120: reduced)."""
    used = set(table["full_reference"].dropna().astype(int)) | set(table["reduced_reference"].dropna().astype(int))
    references = table.loc[sorted(used)].sort_values("epochs", kind="stable")
    shortest = references.groupby(["protocol", "setting"])["epochs"].transform(lambda e: e.index[0])
    return {i: base for i, base in shortest.items() if table.loc[i, "epochs"] > table.loc[base, "epochs"]}


def seed_results(runs: pd.DataFrame, table: pd.DataFrame) -> pd.DataFrame:
    """Per (table row index, seed): test accuracy and whether the seed is at chance."""
    index = {key: i for i, key in enumerate(zip(*(table[column] for column in KEY)))}
    return runs.assign(row=[index[key] for key in zip(*(runs[column] for column in KEY))],
                       at_chance=at_chance(runs["balanced_accuracy"])).set_index(["row", "seed"])[
        ["accuracy", "at_chance"]]


def chosen_settings(validation: pd.DataFrame) -> dict:
    """Per remedy, the `-S` settings validation chose (param key -> value); a post-hoc choice is its tau."""
    return {(f"{r.variant} + post-hoc LA" if r.posthoc else r.variant) + ("" if r.protocol == "fixed" else
            f" ({r.protocol})"): {TAU_KEY: float(r.tau)} if r.posthoc else
            {k: v for k, v in r.changes.items() if k != TAU_KEY} for r in validation[validation["chosen"]].itertuples()}
