"""The remedies across seeds with 95% intervals, from one committed file of runs.

    python scripts/remedies_report.py                  # the runs file + workspace, HEAD and HEAD's experiments
    python scripts/remedies_report.py --num 3          # ... and the experiments of the two commits before HEAD
    python scripts/remedies_report.py --rev HEAD a1b2c3d   # HEAD and commit a1b2c3d, with their experiments
    python scripts/remedies_report.py --no-dvc         # from reports/remedies_runs.csv alone (a fresh clone)
    python scripts/remedies_report.py --fresh          # ignore the runs file: only what `dvc exp show` finds

Runs. reports/remedies_runs.csv holds one row per run: its variant label, protocol (full, fixed, per_batch),
evaluated_on (test, validation), seed, epochs, train_set, loss, sampler and metrics. The script adds the runs
`dvc exp show` finds (evaluated_on from each metrics file itself, via git: dvc shows only numbers), writes
the file back and computes everything from it. A run counts once however many
experiments carry a copy of its metrics file: rows of the same variant, protocol, evaluated_on, seed, test
loss and post-hoc results are one run (the runs file's row is kept; of labels that differ only in the post-hoc
tau, the one without it: a tau sweep's other variants are copies of the parent's files). Rows of the same label, protocol, evaluated_on and seed with
other results are one run redone (newer code, or a setting outside the label such as train.*): the one dvc
finds now replaces the older, as stderr says.

Labels. A run is labelled with its variant and what differs from params.yaml here in the variant's entry, its
loss's entry and (on the subset) subset.fraction / minority_classes, e.g. `ldam_drw [losses.ldam_drw.scale=10.0]`;
a variant an experiment adds (`+variants.<name>=...`) is labelled with its name. An experiment that changes a
variant's settings must retrain it, or the label lands on a copy of the parent's file. Labels in the runs file
keep the params.yaml of when they were collected: after changing a default there, rebuild with --fresh.

Outputs, in the output directory: remedies.md (three tables, accuracies in %), remedies.csv (the test table,
unrounded), remedies.png (digits 0-4 against digits 5-9 on the test set, error bars the 95% intervals); with
the default output directory, also README.md's copy of remedies.md (between README_MARKERS).
- Test table (evaluated_on test), per label and protocol: mean and 95% Student t half-width over the seeds
  (t_{0.975, n-1} * sample std / sqrt(n); none for one seed). Gap recovered = (row - reduced_ref) /
  (full_ref - reduced_ref) at an equal budget: full_ref is the full-data, cross-entropy, shuffled run of the
  row's epochs; reduced_ref the fixed-subset one with the row's subset settings (most seeds first, then table
  order). The `reference` column names both, or which is missing.
- Paired differences of test accuracy, in points, over the seeds both runs have: the focal curriculum (fixed
  subset) against reduced_ref; the best remedy (fixed subset, highest mean test accuracy among paper-default
  and validation-tuned rows, so the pick itself has seen the test set) at each number of epochs against
  full_ref; a focal loss with detach_factor against the same label without it, per protocol.
- Validation table (evaluated_on validation): per variant name and protocol with two settings or more, the
  one with the highest mean balanced accuracy is `chosen`. Balanced, not plain: the held-out images keep the
  training set's imbalance while the test set is balanced, so plain accuracy would weigh digits 5-9 ten
  times as much as the test set does.

Status of a test row, the first rule that holds: `validation-tuned` (its label was chosen on validation),
`paper default` (a variant of params.yaml, unchanged), `exploratory (chosen on test)` (in CHOSEN_ON_TEST),
`the report's gradient` (a params.yaml variant whose only change is detach_factor=true), `reference` (another
row's full_ref that params.yaml does not define, such as baseline_120), `other` (a variant an experiment
added, a setting that was not chosen, ...). Rows follow params.yaml's variants; an added variant comes after
the first one with its train_set, loss and sampler (baseline_120 after baseline).

Post-hoc logit adjustment is a remedy of its own: a run's label shows a changed evaluate.logit_adjustment_tau;
a label whose tau was swept on validation gets a row `<label> + post-hoc LA` with its post-hoc metrics, chosen
by post-hoc balanced accuracy; the chosen tau's test runs get that row in the test table.
"""

import argparse
import dataclasses
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere in the repo

from stages.lib import params as P  # noqa: E402
from stages.lib.files import atomic_path, write_text  # noqa: E402
from stages.lib.paths import test_metrics_path  # noqa: E402

OUTPUT_DIR = Path("reports")
# README.md's copy of remedies.md sits between these two lines, rewritten with it (README.md, "Results").
README, README_MARKERS = Path("README.md"), ("<!-- remedies.md: begin -->", "<!-- remedies.md: end -->")
RUNS_FILE = "remedies_runs.csv"  # in the output directory: read, merged with dvc's runs, written back
# metrics/<variant>.json key -> runs file column; accuracies are fractions in [0, 1].
METRIC_COLUMNS = {"accuracy": "accuracy", "balanced_accuracy": "balanced_accuracy",
                  "minority_accuracy": "digits_0_4", "majority_accuracy": "digits_5_9",
                  "logit_adjusted.accuracy": "posthoc_la_accuracy",
                  "logit_adjusted.minority_accuracy": "posthoc_la_0_4",
                  "logit_adjusted.balanced_accuracy": "posthoc_la_balanced",
                  "logit_adjusted.majority_accuracy": "posthoc_la_5_9", "distinct_minority_seen": "distinct_0_4_seen",
                  "epochs": "epochs", "seed": "seed", "keep_minority_every": "keep_minority_every",
                  "test_loss": "test_loss"}
PERCENT_COLUMNS = ("accuracy", "balanced_accuracy", "digits_0_4", "digits_5_9", "posthoc_la_accuracy",
                   "posthoc_la_0_4")
VALIDATION_COLUMNS = ("accuracy", "balanced_accuracy", "digits_0_4")
SETTING_COLUMNS = ("train_set", "loss", "sampler")
INTEGER_COLUMNS = ("seed", "epochs", "distinct_0_4_seen", "keep_minority_every")
# Post-hoc metrics the tables show only in a row of their own (POSTHOC); runs files from before them lack them.
LATER_COLUMNS = ("posthoc_la_balanced", "posthoc_la_5_9")
RUN_COLUMNS = ("variant", "protocol", "evaluated_on", "seed", "epochs", *SETTING_COLUMNS, *PERCENT_COLUMNS,
               *LATER_COLUMNS, "distinct_0_4_seen", "keep_minority_every", "test_loss", "experiment")
EVALUATED_ON = ("test", "validation")
CONFIDENCE = 0.95
PLAIN_LOSS = "cross_entropy"  # the remedy of the references: none (stages/lib/remedies.py)
DEFAULT_SAMPLER = next(f.default for f in dataclasses.fields(P.VariantParams) if f.name == "sampler")
CURRICULUM_LOSS = "focal_curriculum"  # the course report's remedy, compared with cross-entropy at its budget
SUBSET_KEYS = ("fraction", "minority_classes")  # the subset settings a subset variant's label shows
# Labels whose setting was picked by looking at test accuracy, before there was a validation split (README.md,
# "Results"): s = 10 from a probe that printed test accuracy; 120 epochs after the 10-epoch run led the table.
CHOSEN_ON_TEST = ("ldam_drw [losses.ldam_drw.scale=10.0]", "resampled [variants.resampled.epochs=120.0]")
# Post-hoc logit adjustment as a remedy of its own: a run's label shows a changed tau (POSTHOC_KEY), and the row
# "<label> + post-hoc LA" holds that run's post-hoc metrics as its accuracies (tau chosen on validation).
POSTHOC_KEY = "evaluate.logit_adjustment_tau"
POSTHOC = " + post-hoc LA"
POSTHOC_AS = {"accuracy": "posthoc_la_accuracy", "balanced_accuracy": "posthoc_la_balanced",
              "digits_0_4": "posthoc_la_0_4", "digits_5_9": "posthoc_la_5_9"}
REFERENCE = "reference"  # an added full-data cross-entropy variant, such as baseline_120
TUNED, DEFAULT, EXPLORATORY, OTHER = "validation-tuned", "paper default", "exploratory (chosen on test)", "other"
DETACHED = "the report's gradient"  # a paper-default focal row with detach_factor=true, the report's no_grad
# Test accuracy (%) the course report gives for the models it trained; a reference, not a parameter.
REPORT_ACCURACY = {("baseline", "full"): 98.7, ("reduced", "per_batch"): 92.0, ("focal", "per_batch"): 98.0}


def collect_runs(rows: list[dict], params: dict) -> pd.DataFrame:
    """One row per variant run in `dvc exp show` rows; each row must carry `metrics/<v>.json:evaluated_on`
    (dvc leaves text metrics out: with_evaluated_on adds it)."""
    records = []
    for row in ({key.removeprefix("params.yaml:"): value for key, value in row.items()} for row in rows):
        for name in sorted(filter(None, map(_metrics_name, row))):
            values = {column: _number(row.get(f"metrics/{name}.json:{key}"))
                      for key, column in METRIC_COLUMNS.items()}
            if values["seed"] is None or values["accuracy"] is None:  # not run, or from before seeds were kept
                continue
            described = describe_variant(row, params, name)
            if described is None:
                print(f"skipped metrics/{name}.json of {row['rev']}: no variants.{name} there or in params.yaml",
                      file=sys.stderr)
                continue
            label, settings = described
            protocol = _protocol(settings["train_set"], values["keep_minority_every"])
            records.append({"variant": label, "protocol": protocol, **settings, **values,
                            "evaluated_on": row[f"metrics/{name}.json:evaluated_on"],
                            "experiment": row.get("Experiment") or row["rev"]})
    return _typed(pd.DataFrame.from_records(records, columns=list(RUN_COLUMNS)))


def no_runs() -> pd.DataFrame:
    return _typed(pd.DataFrame(columns=list(RUN_COLUMNS)))


def describe_variant(row: dict, params: dict, name: str) -> tuple[str, dict] | None:
    """The label of variant `name` in a dvc row, and its train_set, loss and sampler; None if undefined."""
    ours = params["variants"].get(name) or {}
    theirs = _section(row, f"variants.{name}.")
    settings = {"sampler": DEFAULT_SAMPLER, **ours, **theirs}
    if "train_set" not in settings or "loss" not in settings:
        return None
    if name not in params["variants"]:  # added by the experiment: nothing to differ from
        return name, {column: settings[column] for column in SETTING_COLUMNS}
    loss = settings["loss"]
    expected = {f"variants.{name}.{key}": value for key, value in {"sampler": DEFAULT_SAMPLER, **ours}.items()}
    expected |= {f"losses.{loss}.{key}": value for key, value in (params["losses"].get(loss) or {}).items()}
    found = {f"variants.{name}.{key}": value for key, value in theirs.items()}
    found |= {f"losses.{loss}.{key}": value for key, value in _section(row, f"losses.{loss}.").items()}
    if settings["train_set"] == "subset":
        expected |= {f"subset.{key}": (params.get("subset") or {}).get(key) for key in SUBSET_KEYS}
        found |= {f"subset.{key}": value for key, value in _section(row, "subset.").items() if key in SUBSET_KEYS}
    expected[POSTHOC_KEY] = (params.get("evaluate") or {}).get("logit_adjustment_tau")
    if _canonical(row.get(POSTHOC_KEY)) is not None:
        found[POSTHOC_KEY] = _canonical(row[POSTHOC_KEY])
    changed = [f"{key}={_format(value)}" for key, value in found.items() if value != _canonical(expected.get(key))]
    label = name + (f" [{', '.join(changed)}]" if changed else "")
    return label, {column: settings[column] for column in SETTING_COLUMNS}


def with_evaluated_on(rows: list[dict]) -> list[dict]:
    """`dvc exp show` rows plus `metrics/<v>.json:evaluated_on`, read from each metrics file itself (dvc shows
    numbers only): from disk for the workspace, else from the row's commit (metrics/ is in git)."""
    wanted = [(i, name) for i, row in enumerate(rows) for key in row
              if (name := _metrics_name(key)) and _number(row[key]) is not None]
    texts = _read_files([(rows[i]["rev"], test_metrics_path(name).as_posix()) for i, name in wanted])
    rows = [dict(row) for row in rows]
    for (i, name), text in zip(wanted, texts):
        rows[i][f"metrics/{name}.json:evaluated_on"] = json.loads(text).get("evaluated_on", "test")  # older: test
    return rows


def read_runs(path: Path, params: dict) -> pd.DataFrame:
    """The runs file; one written before validation runs has no evaluated_on (all test), no settings columns
    (taken from params.yaml and the label) and a train_seconds column (dropped: timing is no longer kept)."""
    if not path.exists():
        return no_runs()
    # Read as text, numbers through float(): exact, so the dedupe by test loss holds and a rewrite is byte-equal.
    runs = pd.read_csv(path, dtype=str, keep_default_na=False)
    for column in set(runs) - {"variant", "protocol", "evaluated_on", *SETTING_COLUMNS, "experiment"}:
        runs[column] = [float(value) if value else math.nan for value in runs[column]]
    if "evaluated_on" not in runs:
        runs["evaluated_on"] = "test"
    for column in SETTING_COLUMNS:
        if column not in runs:
            runs[column] = [_setting_from_label(label, column, params) for label in runs["variant"]]
    missing = sorted(set(RUN_COLUMNS) - set(LATER_COLUMNS) - set(runs))
    if missing:
        raise SystemExit(f"{path}: no column {missing[0]}; rebuild it with --fresh from the experiments")
    return _typed(runs.reindex(columns=list(RUN_COLUMNS)))


def merge_runs(committed: pd.DataFrame, found: pd.DataFrame, params: dict) -> pd.DataFrame:
    """The committed runs and those dvc found, one row per run, in table order (see the module docstring)."""
    parts = [part for part in (committed.assign(found=False), found.assign(found=True)) if len(part)]
    if not parts:
        return no_runs()
    runs = pd.concat(parts, ignore_index=True)
    runs["name"] = runs["variant"].map(variant_name)
    # The runs of a post-hoc tau sweep share one model (one test loss) and differ in their post-hoc results. Its
    # experiments also carry copies of the other variants' files, made at the parent's tau: same post-hoc results
    # as the parent's run, so the same run, kept under the label without the tau.
    runs["tau_labelled"] = runs["variant"].map(lambda label: POSTHOC_KEY in label_changes(label))
    runs = runs.sort_values("tau_labelled", kind="stable").drop_duplicates(
        ["name", "protocol", "evaluated_on", "seed", "test_loss", "posthoc_la_accuracy", "posthoc_la_0_4"])
    runs = runs.sort_values("found", ascending=False, kind="stable")
    same_seed = ["variant", "protocol", "evaluated_on", "seed"]
    redone = runs.duplicated(same_seed)
    kept = runs[~redone].set_index(same_seed)["experiment"]
    for row in runs[redone].itertuples():
        print(f"dropped {row.variant} ({row.protocol}, {row.evaluated_on}) seed {row.seed} of {row.experiment}: "
              f"the same seed in {kept[(row.variant, row.protocol, row.evaluated_on, row.seed)]} "
              "gave other results and is kept", file=sys.stderr)
    runs = runs[~redone].assign(order=[_order(row, params) for row in runs[~redone].itertuples()])
    runs = runs.sort_values(["order", "variant", "protocol", "evaluated_on", "seed"], kind="stable")
    return _typed(runs[list(RUN_COLUMNS)].reset_index(drop=True))


def mean_and_interval(values) -> tuple[float, float]:
    """The mean and the half-width of its 95% Student t interval (NaN for fewer than two values)."""
    values = np.asarray(values, dtype=float)
    if len(values) < 2:
        return (float(values.mean()) if len(values) else math.nan), math.nan
    t = stats.t.ppf(0.5 + CONFIDENCE / 2, len(values) - 1)
    return float(values.mean()), float(t * values.std(ddof=1) / math.sqrt(len(values)))


def summarize(runs: pd.DataFrame, columns: tuple[str, ...]) -> pd.DataFrame:
    """Per (label, protocol), in the runs' order: seeds, epochs, settings, and each column's mean and ci95."""
    names = ["variant", "protocol", "seeds", "epochs", *SETTING_COLUMNS, "distinct_0_4_seen",
             *(f"{column}_{stat}" for column in columns for stat in ("mean", "ci95"))]
    records = []
    for (variant, protocol), group in runs.groupby(["variant", "protocol"], sort=False):
        if len(group[["epochs", *SETTING_COLUMNS]].drop_duplicates()) > 1:
            raise SystemExit(f"{variant} ({protocol}) has runs with other epochs or settings: an added variant's "
                             "name must stand for one setting; rename one in the runs file or the experiment")
        record = {"variant": variant, "protocol": protocol, "seeds": len(group),
                  **group[["epochs", *SETTING_COLUMNS]].iloc[0].to_dict(),
                  "distinct_0_4_seen": group["distinct_0_4_seen"].mean()}
        for column in columns:
            record[f"{column}_mean"], record[f"{column}_ci95"] = mean_and_interval(group[column])
        records.append(record)
    return pd.DataFrame.from_records(records, columns=names)


def with_posthoc_rows(runs: pd.DataFrame, derive: pd.Series) -> pd.DataFrame:
    """`runs` less the labels that change only the post-hoc tau (their plain metrics are their parent's), plus,
    for each run where `derive` holds, a run `<label> + post-hoc LA` whose accuracies are its post-hoc ones."""
    derived = runs[derive].assign(variant=runs["variant"] + POSTHOC, loss=runs["loss"] + POSTHOC)
    for column, source in POSTHOC_AS.items():
        derived[column] = derived[source]
    derived[["posthoc_la_accuracy", "posthoc_la_0_4", *LATER_COLUMNS]] = math.nan
    plain = runs[runs["variant"].map(_without_tau) == runs["variant"]]
    return pd.concat([plain, derived]).sort_index(kind="stable").reset_index(drop=True)


def validation_table(runs: pd.DataFrame) -> pd.DataFrame:
    """The validation runs per label and protocol, with the setting chosen per variant name and protocol; a label
    whose post-hoc tau was swept (another run differs from it in that alone) also gets its post-hoc row."""
    runs = runs[runs["evaluated_on"] == "validation"]
    parent = runs["variant"].map(_without_tau)
    swept = runs.assign(parent=parent).groupby(["parent", "protocol"])["variant"].transform("nunique") >= 2
    table = summarize(with_posthoc_rows(runs, swept), VALIDATION_COLUMNS)
    table["chosen"] = False
    for _, group in table.groupby([table["variant"].map(_choice_group), table["protocol"]]):
        if len(group) >= 2:  # one setting alone is not a choice
            table.loc[group["balanced_accuracy_mean"].idxmax(), "chosen"] = True
    return table


def test_runs(runs: pd.DataFrame, validation: pd.DataFrame) -> pd.DataFrame:
    """The test runs, with the post-hoc row of each label whose post-hoc row validation chose."""
    runs = runs[runs["evaluated_on"] == "test"]
    chosen = _chosen(validation)
    return with_posthoc_rows(runs, pd.Series([(label + POSTHOC, protocol) in chosen for label, protocol
                                              in zip(runs["variant"], runs["protocol"])], index=runs.index))


def test_table(runs: pd.DataFrame, params: dict, validation: pd.DataFrame) -> pd.DataFrame:
    """The test runs per label and protocol: status, equal-budget references, gap recovered, the report's figure."""
    table = summarize(test_runs(runs, validation), PERCENT_COLUMNS)
    chosen = _chosen(validation)
    table["full_reference"] = [_reference(table, row, "full", "full") for row in table.itertuples()]
    table["reduced_reference"] = [_reference(table, row, "subset", "fixed") for row in table.itertuples()]
    table["status"] = [f"{TUNED} (= {DEFAULT})" if (label, protocol) in chosen and label in params["variants"]
                       else TUNED if (label, protocol) in chosen else DEFAULT if label in params["variants"]
                       else EXPLORATORY if label in CHOSEN_ON_TEST else DETACHED if _detached_default(label, params)
                       else REFERENCE if label in set(table["full_reference"]) else OTHER
                       for label, protocol in zip(table["variant"], table["protocol"])]
    accuracy = table.set_index(["variant", "protocol"])["accuracy_mean"].to_dict()
    full = table["full_reference"].map(lambda label: accuracy.get((label, "full"), math.nan)).astype(float)
    reduced = table["reduced_reference"].map(lambda label: accuracy.get((label, "fixed"), math.nan)).astype(float)
    table["gap_recovered"] = ((table["accuracy_mean"] - reduced) / (full - reduced)).where(full != reduced)
    table["reference"] = [_reference_text(row) for row in table.itertuples()]
    table["report_accuracy"] = [REPORT_ACCURACY.get(key, math.nan)
                                for key in zip(table["variant"], table["protocol"])]
    return table


def paired_table(runs: pd.DataFrame, table: pd.DataFrame, validation: pd.DataFrame) -> pd.DataFrame:
    """Paired differences of test accuracy (points): the curriculum against cross-entropy, the best remedy
    against full data at each budget, detached focal factor against not."""
    runs, records = test_runs(runs, validation), []
    for row in table[(table["loss"] == CURRICULUM_LOSS) & (table["protocol"] == "fixed")].itertuples():
        records.append(_paired(runs, "focal curriculum vs cross-entropy, same epochs", (row.variant, row.protocol),
                               row.reduced_reference and (row.reduced_reference, "fixed"),
                               f"no fixed-subset {row.epochs}-epoch run"))
    remedies = table[(table["train_set"] == "subset") & (table["protocol"] == "fixed")
                     & ((table["loss"] != PLAIN_LOSS) | (table["sampler"] != DEFAULT_SAMPLER))
                     & ~table["status"].isin([EXPLORATORY, DETACHED, OTHER])]
    for epochs, group in remedies.groupby("epochs"):
        best = group.loc[group["accuracy_mean"].idxmax()]
        records.append(_paired(runs, f"best {epochs}-epoch remedy vs full data", (best["variant"], "fixed"),
                               best["full_reference"] and (best["full_reference"], "full"),
                               f"no full-data {epochs}-epoch run"))
    for detached, attached in _detach_pairs(table):
        records.append(_paired(runs, "focal factor detached vs not", detached, attached, ""))
    return pd.DataFrame.from_records(records, columns=["comparison", "a", "b", "paired_seeds",
                                                       "difference_mean", "difference_ci95"])


def markdown(table: pd.DataFrame, paired: pd.DataFrame, validation: pd.DataFrame) -> str:
    """The three tables, each under a line that says what it shows."""
    return "\n\n".join([_test_markdown(table), _paired_markdown(paired), _validation_markdown(validation)]) + "\n"


def _test_markdown(table: pd.DataFrame) -> str:
    lines = ["Test set: mean ± 95% interval half-width (Student t over the seeds; none for one seed), in %.", "",
             "| variant | protocol | seeds | epochs | status | test accuracy | balanced | digits 0-4 | digits 5-9 "
             "| post-hoc LA | its digits 0-4 | distinct 0-4 seen | gap recovered | reference (full / reduced) "
             "| report |", "|---|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|"]
    for row in table.itertuples():
        cells = " | ".join(_mean_interval(row, column) for column in PERCENT_COLUMNS)
        gap = "-" if pd.isna(row.gap_recovered) else f"{round(100 * row.gap_recovered)}%"
        report = "-" if pd.isna(row.report_accuracy) else row.report_accuracy
        lines.append(f"| {row.variant} | {row.protocol} | {row.seeds} | {row.epochs} | {row.status} | {cells} "
                     f"| {row.distinct_0_4_seen:,.0f} | {gap} | {row.reference} | {report} |")
    return "\n".join(lines)


def _paired_markdown(paired: pd.DataFrame) -> str:
    lines = ["Paired differences of test accuracy, A - B in points, over the seeds both have; 95% t interval.", "",
             "| comparison | A | B | paired seeds | A - B | 95% interval |", "|---|---|---|---:|---:|---|"]
    if paired.empty:
        lines.append("| (none yet) | | | | | |")
    for row in paired.itertuples():
        low, high = row.difference_mean - row.difference_ci95, row.difference_mean + row.difference_ci95
        interval = "-" if pd.isna(row.difference_ci95) else f"[{low:+.2f}, {high:+.2f}]"
        difference = "-" if pd.isna(row.difference_mean) else f"{row.difference_mean:+.2f}"
        lines.append(f"| {row.comparison} | {row.a} | {row.b} | {row.paired_seeds} | {difference} | {interval} |")
    return "\n".join(lines)


def _validation_markdown(validation: pd.DataFrame) -> str:
    lines = ["Validation (held-out training images), in %: per remedy, the setting with the best mean balanced "
             "accuracy is chosen.", "", "| variant | protocol | seeds | epochs | accuracy | balanced | digits 0-4 "
             "| chosen |", "|---|---|---:|---:|---:|---:|---:|---|"]
    if validation.empty:
        lines.append("| (none yet: sweep a setting with -S validation.tune=true) | | | | | | | |")
    for row in validation.itertuples():
        cells = " | ".join(_mean_interval(row, column) for column in VALIDATION_COLUMNS)
        chosen = "chosen" if row.chosen else ""
        lines.append(f"| {row.variant} | {row.protocol} | {row.seeds} | {row.epochs} | {cells} | {chosen} |")
    return "\n".join(lines)


def plot(table: pd.DataFrame, path: Path) -> None:
    """Digits 0-4 against digits 5-9 on the test set (mean, 95% interval), one marker per label and protocol.
    Rows below 50% on either group, or with an interval wider than +-10 points (a training that collapsed in
    some seeds), are named under the plot instead, so the rest stay readable."""
    import matplotlib
    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt

    steady = [(table[f"{column}_mean"] >= 0.5) & (table[f"{column}_ci95"].fillna(0) <= 0.1)
              for column in ("digits_0_4", "digits_5_9")]
    shown = table[steady[0] & steady[1]]
    hidden = table.drop(shown.index)
    figure, axes = plt.subplots(figsize=(11, 6))
    markers = "osD^v<>pXh*"
    for i, row in enumerate(shown.itertuples()):
        axes.errorbar(100 * row.digits_5_9_mean, 100 * row.digits_0_4_mean,
                      xerr=100 * _zero_if_nan(row.digits_5_9_ci95), yerr=100 * _zero_if_nan(row.digits_0_4_ci95),
                      fmt=markers[i % len(markers)], capsize=3,
                      color=plt.cm.tab20(i % 20), label=f"{row.variant} ({row.protocol}, {row.epochs} ep.)")
    axes.set_xlabel("test accuracy on digits 5-9 (%)")
    axes.set_ylabel("test accuracy on digits 0-4 (%)")
    axes.set_title("LeNet on MNIST, digits 0-4 thinned to 10%: mean and 95% interval over seeds")
    axes.grid(alpha=0.3)
    axes.legend(loc="center left", bbox_to_anchor=(1.02, 0.5), fontsize=8)
    if len(hidden):
        names = ", ".join(f"{row.variant} ({row.protocol})" for row in hidden.itertuples())
        figure.text(0.01, 0.01, f"below 50% or interval wider than ±10 points, not shown: {names}", fontsize=8)
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=110)
    plt.close(figure)


def _order(run, params: dict) -> float:
    """Table order: params.yaml's variants in turn; an added variant after the first one with its train_set,
    loss and sampler (baseline_120 after baseline), else at the end."""
    names = list(params["variants"])
    if run.name in names:
        return names.index(run.name)
    for i, name in enumerate(names):
        settings = {"sampler": DEFAULT_SAMPLER, **params["variants"][name]}
        if (settings["train_set"], settings["loss"], settings["sampler"]) == (run.train_set, run.loss, run.sampler):
            return i + 0.5
    return len(names)


def variant_name(label: str) -> str:
    """`ldam_drw [losses.ldam_drw.scale=10.0]` -> `ldam_drw`."""
    return label.split(" [", 1)[0]


def label_changes(label: str) -> dict[str, str]:
    """`ldam_drw [losses.ldam_drw.scale=10.0, subset.fraction=0.05]` -> {key: value as the label writes it}."""
    if " [" not in label:
        return {}
    inside = label.split(" [", 1)[1].removesuffix("]")
    return dict(item.split("=", 1) for item in re.split(r", (?=[A-Za-z_][\w.]*=)", inside))


def _without_tau(label: str) -> str:
    """The label of the run whose model a post-hoc tau sweep shares: the label without POSTHOC_KEY."""
    changes = label_changes(label)
    return _label(variant_name(label), {key: value for key, value in changes.items() if key != POSTHOC_KEY})


def _choice_group(label: str) -> str:
    """What validation chooses among: the settings of a variant, or (post-hoc rows) its post-hoc taus."""
    return variant_name(label.removesuffix(POSTHOC)) + (POSTHOC if label.endswith(POSTHOC) else "")


def _detached_default(label: str, params: dict) -> bool:
    """A variant of params.yaml whose only change is detach_factor=true."""
    changes = label_changes(label)
    return (variant_name(label) in params["variants"] and bool(changes)
            and all(key.endswith(".detach_factor") and value == "true" for key, value in changes.items()))


def _chosen(validation: pd.DataFrame) -> set[tuple[str, str]]:
    """(label, protocol) of each setting validation chose: a choice holds for the protocol it was made in."""
    chosen = validation[validation["chosen"]]
    return set(zip(chosen["variant"], chosen["protocol"]))


def _label(name: str, changes: dict[str, str]) -> str:
    return name + (f" [{', '.join(f'{key}={value}' for key, value in changes.items())}]" if changes else "")


def _detach_pairs(table: pd.DataFrame) -> list[tuple[tuple[str, str], tuple[str, str]]]:
    """((label, protocol) with detach_factor true, the same without) for each such pair in the table."""
    pairs, rows = [], set(zip(table["variant"], table["protocol"]))
    for label, protocol in sorted(rows):
        changes = label_changes(label)
        detach = {key: value for key, value in changes.items() if key.endswith(".detach_factor")}
        other = _label(variant_name(label), {key: value for key, value in changes.items() if key not in detach})
        if detach and (other, protocol) in rows:
            pair = ((label, protocol), (other, protocol))
            pairs.append(pair if "true" in detach.values() else pair[::-1])
    return pairs


def _reference(table: pd.DataFrame, row, train_set: str, protocol: str) -> str:
    """The label of the plain cross-entropy, shuffled run on `train_set` with the row's epochs (and subset
    settings): the one with most seeds, then the first in table order; "" if there is none."""
    candidates = table[(table["train_set"] == train_set) & (table["protocol"] == protocol)
                       & (table["epochs"] == row.epochs) & (table["loss"] == PLAIN_LOSS)
                       & (table["sampler"] == DEFAULT_SAMPLER)]
    candidates = candidates[[_subset_changes(label) == (_subset_changes(row.variant) if train_set == "subset" else {})
                             for label in candidates["variant"]]]
    if candidates.empty:
        return ""
    return candidates.sort_values("seeds", ascending=False, kind="stable")["variant"].iloc[0]


def _subset_changes(label: str) -> dict[str, str]:
    return {key: value for key, value in label_changes(label).items() if key.startswith("subset.")}


def _reference_text(row) -> str:
    full = row.full_reference or f"no full-data {row.epochs}-epoch run"
    reduced = row.reduced_reference or f"no fixed-subset {row.epochs}-epoch run"
    return f"{full} / {reduced}"


def _paired(runs: pd.DataFrame, comparison: str, a: tuple[str, str], b: tuple[str, str] | None, missing: str) -> dict:
    """Test accuracy of A - B in points over their common seeds; a, b = (label, protocol); b None: `missing`."""
    record = {"comparison": comparison, "a": f"{a[0]} ({a[1]})", "b": missing, "paired_seeds": 0,
              "difference_mean": math.nan, "difference_ci95": math.nan}
    if not b:
        return record
    test = runs[runs["evaluated_on"] == "test"]
    left, right = (test[(test["variant"] == label) & (test["protocol"] == protocol)].set_index("seed")["accuracy"]
                   for label, protocol in (a, b))
    differences = (100 * (left - right)).dropna()
    mean, half_width = mean_and_interval(differences)
    return {**record, "b": f"{b[0]} ({b[1]})", "paired_seeds": len(differences),
            "difference_mean": mean, "difference_ci95": half_width}


def _setting_from_label(label: str, column: str, params: dict) -> str:
    """A setting of an old runs file's row: the label's change, else params.yaml's variant."""
    name = variant_name(label)
    if name not in params["variants"]:
        raise SystemExit(f"runs file: {label!r} has no {column} column and params.yaml no variants.{name}; "
                         "rebuild it with --fresh from the experiments")
    default = {"sampler": DEFAULT_SAMPLER, **params["variants"][name]}[column]
    return str(yaml.safe_load(label_changes(label).get(f"variants.{name}.{column}", str(default))))


def _read_files(specs: list[tuple[str, str]]) -> list[str]:
    """The text of each (rev, path): from disk for rev `workspace`, else from git (one `git cat-file --batch`)."""
    in_git = [f"{rev}:{path}" for rev, path in specs if rev != "workspace"]
    output = subprocess.run(["git", "cat-file", "--batch"], input="".join(f"{spec}\n" for spec in in_git).encode(),
                            capture_output=True, check=True).stdout if in_git else b""
    blobs, at = [], 0
    for spec in in_git:
        end = output.index(b"\n", at)
        header = output[at:end].split()
        if header[-1] in (b"missing", b"ambiguous"):
            raise SystemExit(f"git cannot read {spec} ({header[-1].decode()}), a run `dvc exp show` listed")
        size = int(header[2])
        blobs.append(output[end + 1:end + 1 + size].decode())
        at = end + 1 + size + 1  # the blob is followed by a newline
    blobs.reverse()
    return [Path(path).read_text() if rev == "workspace" else blobs.pop() for rev, path in specs]


def _metrics_name(key: str) -> str | None:
    match = re.match(r"metrics/([^/]+)\.json:accuracy$", key)
    return match[1] if match else None


def _section(row: dict, prefix: str) -> dict:
    """The row's params under `prefix`, prefix removed, values canonical; `dvc exp show` writes "None" where a
    commit lacks the key."""
    return {key[len(prefix):]: _canonical(value) for key, value in row.items()
            if key.startswith(prefix) and _canonical(value) is not None}


def _canonical(value):
    """Numbers as floats (YAML's 1 and 1.0 are one setting), lists item by item; `dvc exp show` gives lists as
    their text ("[0, 1, 2]"), booleans as "True"/"False" and a missing key as "None"."""
    if isinstance(value, str) and value in ("None", "True", "False"):
        value = {"None": None, "True": True, "False": False}[value]
    if isinstance(value, str) and value.startswith("["):
        value = yaml.safe_load(value)
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value


def _format(value) -> str:
    """A canonical value as a label writes it: 10.0, true, [1.0, 2.0]."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return f"[{', '.join(map(_format, value))}]"
    return str(value)


def _number(value) -> float | None:
    """A metric's value; `dvc exp show` gives None or a placeholder string where a file lacks the key."""
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _protocol(train_set: str, keep_minority_every) -> str:
    if train_set == "full":
        return "full"
    return "per_batch" if keep_minority_every and keep_minority_every > 1 else "fixed"


def _typed(runs: pd.DataFrame) -> pd.DataFrame:
    """Integer columns as integers (CSV and dvc give floats), and only evaluated_on values that are known."""
    unknown = set(runs["evaluated_on"]) - set(EVALUATED_ON)
    if unknown:
        raise SystemExit(f"evaluated_on {sorted(unknown)[0]!r} is not known; expected one of {list(EVALUATED_ON)}")
    runs = runs.assign(**{column: math.nan for column in LATER_COLUMNS if column not in runs})
    return runs.astype({column: "Int64" for column in INTEGER_COLUMNS})


def _mean_interval(row, column: str) -> str:
    mean, half_width = getattr(row, f"{column}_mean"), getattr(row, f"{column}_ci95")
    if pd.isna(mean):
        return "-"
    return f"{100 * mean:.2f}" + ("" if pd.isna(half_width) else f" ± {100 * half_width:.2f}")


def _zero_if_nan(value: float) -> float:
    return 0.0 if pd.isna(value) else value


def build_report(runs: pd.DataFrame, params: dict, out: Path) -> str:
    """Writes remedies.md, remedies.csv and remedies.png from `runs` into `out`; returns the markdown."""
    validation = validation_table(runs)
    table = test_table(runs, params, validation)
    text = markdown(table, paired_table(runs, table, validation), validation)
    write_text(out / "remedies.md", text)
    with atomic_path(out / "remedies.csv") as tmp:
        table.to_csv(tmp, index=False)
    plot(table, out / "remedies.png")
    return text


def update_readme(path: Path, text: str) -> bool:
    """Puts `text` between README_MARKERS in `path`; False (nothing written) if the file or a marker is missing."""
    readme = path.read_text() if path.exists() else ""
    begin, end = README_MARKERS
    if readme.count(begin) != 1 or readme.count(end) != 1 or readme.index(begin) > readme.index(end):
        return False
    head, rest = readme.split(begin)
    write_text(path, f"{head}{begin}\n{text}{end}{rest.split(end, 1)[1]}")
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rev", nargs="+", default=["HEAD"],
                        help="the commits whose experiments are collected (default HEAD)")
    parser.add_argument("--num", type=int, default=1, help="also the NUM-1 commits before each of them")
    parser.add_argument("--out", type=Path, default=OUTPUT_DIR,
                        help=f"output directory, also where {RUNS_FILE} is read from (default reports/)")
    sources = parser.add_mutually_exclusive_group()
    sources.add_argument("--no-dvc", action="store_true", help=f"do not run `dvc exp show`: {RUNS_FILE} alone")
    sources.add_argument("--fresh", action="store_true", help=f"ignore {RUNS_FILE}: only what `dvc exp show` finds")
    args = parser.parse_args()
    params = P.read_params()
    P.variants(params)  # a clear error for a broken params.yaml
    committed = no_runs() if args.fresh else read_runs(args.out / RUNS_FILE, params)
    found = no_runs()
    if not args.no_dvc:
        import dvc.api  # only here: the rebuild from the runs file needs no dvc
        found = collect_runs(with_evaluated_on(dvc.api.exp_show(revs=args.rev, num=args.num)), params)
    runs = merge_runs(committed, found, params)
    if runs.empty:
        raise SystemExit("no finished runs found: run `dvc repro` or the experiments in README.md first")
    with atomic_path(args.out / RUNS_FILE) as tmp:
        runs.to_csv(tmp, index=False)
    text = build_report(runs, params, args.out)
    print(text, end="")
    if args.out == OUTPUT_DIR and update_readme(README, text):
        print(f"{README}: the tables between {' and '.join(README_MARKERS)} rewritten", file=sys.stderr)
    print(f"{len(runs)} runs ({len(found)} from dvc exp show, before merging) -> {args.out}/remedies.md, "
          f"remedies.csv, remedies.png, {RUNS_FILE}", file=sys.stderr)


if __name__ == "__main__":
    main()
