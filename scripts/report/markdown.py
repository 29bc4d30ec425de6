"""The tables as markdown, accuracies in %: the full ones (reports/remedies.md), the short one (summary.md) and
the findings in words (findings.md), README's first screen."""

import pandas as pd

from scripts.report.runs import PROFILE_WORDS
from scripts.report.tables import BEST, CHANCE, CHOSEN, CURRICULUM, LONGER, PER_BATCH, best_remedies, steady_remedies

TARGET = 0.9  # the share of the gap a remedy has to recover for the project's question to be answered yes
SPLIT_NOTE = (f"A row whose seeds split between trained and collapsed (balanced accuracy below {100 * CHANCE:.0f}%, "
              "twice chance) shows the median of the seeds that trained and the 95% interval of their mean.")
TEXT = ("remedy", "protocol", "status", "comparison", "A", "B", "chosen", "references (full / reduced)")


def cell(row, column: str) -> str:
    """`97.55 ± 0.19` (mean ± 95% half-width), `96.87 [95.10, 98.20]` (median, interval) for a split row."""
    mean, median, half = (100 * row[f"{column}_{stat}"] for stat in ("mean", "median", "ci95"))
    if pd.isna(mean) or pd.isna(half):
        return "-" if pd.isna(mean) else f"{median if row['split'] else mean:.2f}"
    return f"{median:.2f} [{mean - half:.2f}, {mean + half:.2f}]" if row["split"] else f"{mean:.2f} ± {half:.2f}"


def _cells(table: pd.DataFrame, columns: dict) -> dict:
    """{title: the column's cells}, and the seeds first: `5`, or `5 (4 at chance)`."""
    seeds = [f"{n}" + (f" ({'all' if c == n else c} at chance)" if c else "")
             for n, c in zip(table["seeds"], table["at_chance"])]
    return {"seeds": seeds, **{title: table.apply(cell, axis=1, column=c) for title, c in columns.items()}}


def _markdown(frame: pd.DataFrame, caption: str) -> str:
    """A caption and the table, numbers right-aligned."""
    align = ["left" if column in TEXT else "right" for column in frame]
    return f"{caption}\n\n{frame.to_markdown(index=False, colalign=align, disable_numparse=True)}"


def _number(value, spec: str) -> str:
    return "-" if pd.isna(value) else format(value, spec)


def _gap(value) -> str:
    return "-" if pd.isna(value) else f"{round(100 * value)}%"


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'s' if count > 1 else ''}"


def test_markdown(table: pd.DataFrame) -> str:
    name = lambda i: "none at these epochs" if pd.isna(i) else table.loc[int(i), "name"]  # noqa: E731
    rows = pd.DataFrame({
        "remedy": table["name"], "protocol": table["protocol"], "status": table["status"],
        **_cells(table, {"test accuracy": "accuracy", "balanced": "balanced_accuracy",
                         "digits 0-4": "minority_accuracy", "digits 5-9": "majority_accuracy",
                         "post-hoc LA": "logit_adjusted.accuracy",
                         "its digits 0-4": "logit_adjusted.minority_accuracy"}),
        "gap recovered": table["gap_recovered"].map(_gap),
        "references (full / reduced)": [f"{name(f)} / {name(r)}" for f, r in
                                        zip(table["full_reference"], table["reduced_reference"])],
        "report": table["report_accuracy"].map(lambda value: _number(value, ".1f"))})
    return _markdown(rows, "Test set, in %: mean ± 95% interval half-width (Student t over the seeds; none for one "
                     "seed). " + SPLIT_NOTE + " Gap recovered = (row - reduced) / (full - reduced), the references "
                     "trained as many epochs.")


def paired_markdown(paired: pd.DataFrame) -> str:
    low, high = (paired["difference_mean"] + sign * paired["difference_ci95"] for sign in (-1, 1))
    rows = pd.DataFrame({
        "comparison": paired["comparison"], "A": paired["a"], "B": paired["b"],
        "paired seeds": paired["paired_seeds"].astype(str),
        "A - B": paired["difference_mean"].map(lambda value: _number(value, "+.2f")),
        "95% interval": [("-" if pd.isna(lo) else f"[{lo:+.2f}, {hi:+.2f}]") for lo, hi in zip(low, high)]})
    return _markdown(rows, "Paired differences of test accuracy, A - B in points, over the seeds both have; "
                     "95% t interval.")


def validation_markdown(validation: pd.DataFrame) -> str:
    rows = pd.DataFrame({
        "remedy": validation["name"], "protocol": validation["protocol"],
        "chosen": validation["chosen"].map({True: "chosen", False: ""}),
        **_cells(validation, {"accuracy": "accuracy", "balanced": "balanced_accuracy",
                              "digits 0-4": "minority_accuracy"})})
    return _markdown(rows, "Validation (held-out training images), in %: per remedy, the setting with the best mean "
                     "balanced accuracy is chosen (the held-out images keep the training set's imbalance; the test "
                     "set is balanced).")


def short_markdown(table: pd.DataFrame) -> str:
    """On the report's step profile: the remedy that comes closest at each budget with its two references, the
    plain cross-entropy references of those budgets, and the course report's remedy in both protocols; by
    epochs."""
    best = [i for (profile, _), i in best_remedies(table).items() if profile == "step"]
    rows = set(best) | {int(table.loc[i, column]) for i in best for column in ("full_reference", "reduced_reference")}
    plain = (table["loss"] == "cross_entropy") & (table["sampler"] == "shuffle") & ~table["posthoc"]
    rows |= set(table.index[plain & (table["protocol"] != "per_batch") & ~table["changes"].astype(bool)
                            & table["epochs"].isin(table.loc[best, "epochs"])])
    kept = table[table["status"].isin(CHOSEN)]
    rows |= set(kept.index[(kept["loss"] == "focal_curriculum") & ~kept["changes"].astype(bool)])
    short = table.loc[sorted(rows, key=lambda i: (table.loc[i, "epochs"], i))]
    rows = pd.DataFrame({"remedy": short["name"], "status": short["status"],
                         **_cells(short, {"test accuracy, %": "accuracy", "digits 0-4, %": "minority_accuracy"}),
                         "gap recovered": short["gap_recovered"].map(_gap)})
    return _markdown(rows, "Test accuracy on the 10,000 MNIST test images, mean ± 95% interval over the seeds; "
                     "gap recovered against the full-data and reduced runs trained as the row was "
                     "(all rows, the long-tailed profile among them: reports/remedies.md).")


def findings_markdown(table: pd.DataFrame, paired: pd.DataFrame) -> str:
    """The answer in words, every number from the test and paired tables: the course report's figure taken
    apart, then the best steady remedy at each budget against the target, then the remedies whose seeds split."""
    parts = [_decomposition(table, paired), _best_remedies(table, paired), _split_remedies(table)]
    return "\n\n".join(part for part in parts if part)


def _pair(paired: pd.DataFrame, comparison: str, a_row):
    """The paired row of `comparison` whose A is table row `a_row`, or None when it has no seed in common with
    its B (or `a_row` is None)."""
    rows = paired[(paired["comparison"] == comparison) & (paired["a_row"] == a_row) & (paired["paired_seeds"] > 0)]
    return rows.iloc[0] if len(rows) else None


def _difference(pair) -> str:
    """`+1.13 points (95% interval [+0.86, +1.40], 5 paired seeds)`; says when the interval holds zero."""
    mean, half = pair["difference_mean"], pair["difference_ci95"]
    seeds = _plural(pair["paired_seeds"], "paired seed")
    if pd.isna(half):
        return f"{mean:+.2f} points ({seeds}, no interval)"
    zero = "; it includes 0" if mean - half <= 0 <= mean + half else ""
    return f"{mean:+.2f} points (95% interval [{mean - half:+.2f}, {mean + half:+.2f}]{zero}, {seeds})"


def _decomposition(table: pd.DataFrame, paired: pd.DataFrame) -> str:
    """The course report's remedy under its protocol, against the reduced model, in three paired steps:
    training longer, the loss, the per-batch leak."""
    report = table[table["report_accuracy"].notna() & (table["protocol"] == "per_batch")
                   & (table["loss"] != "cross_entropy")]
    if report.empty:
        return ""
    row = report.iloc[0]
    text = (f"**The course report's {row['report_accuracy']:.1f}%** (*{row['name']}*) comes out here at "
            f"{cell(row, 'accuracy')}% over {_plural(row['seeds'], 'seed')}.")
    leak = _pair(paired, PER_BATCH, report.index[0])
    loss = None if leak is None else _pair(paired, CURRICULUM, leak["b_row"])
    longer = None if loss is None else _pair(paired, LONGER, loss["b_row"])
    if longer is None:
        return text
    start, long = table.loc[int(longer["b_row"])], table.loc[longer["a_row"]]
    return "\n".join([
        text + f" Of its {100 * (row['center'] - start['center']):.2f} points above the reduced model "
        f"(*{start['name']}*: {cell(start, 'accuracy')}%):", "",
        f"- training {long['epochs'] / start['epochs']:g} times longer (*{long['name']}*): {_difference(longer)};",
        f"- the focal loss, against cross-entropy trained as long: {_difference(loss)};",
        f"- the per-batch protocol, which lets the images it removes leak back over the epochs, against the fixed "
        f"subset: {_difference(leak)}."])


def _best_remedies(table: pd.DataFrame, paired: pd.DataFrame) -> str:
    """Whether any steady remedy reaches the target at its budget, and the best one at each budget."""
    steady = steady_remedies(table)
    if steady.empty:
        return ""
    reached = steady[steady["gap_recovered"] >= TARGET]
    one = len(reached) == 1
    head = (f"**No remedy recovers {_gap(TARGET)} of the gap at an equal budget.**" if reached.empty else
            f"**{len(reached)} remed{'y' if one else 'ies'} recover{'s' if one else ''} {_gap(TARGET)} of the gap or "
            "more at an equal budget:** "
            + "; ".join(f"*{row.name}* ({_gap(row.gap_recovered)})" for row in reached.itertuples()) + ".")
    lines = []
    for (profile, epochs), i in sorted(best_remedies(table).items(), key=lambda item: (item[0][0] != "step",
                                                                                       item[0][1])):  # step first
        row = table.loc[i]
        full, reduced = (table.loc[int(row[column])] for column in ("full_reference", "reduced_reference"))
        pair = _pair(paired, BEST.format(epochs=epochs), i)
        imbalance = "" if profile == "step" else f", {PROFILE_WORDS.get(profile, profile)} subset"
        lines.append(f"- **{epochs} epochs{imbalance}** (*{full['name']}* {100 * full['center']:.2f}%, "
                     f"*{reduced['name']}* {100 * reduced['center']:.2f}%: a gap of "
                     f"{100 * (full['center'] - reduced['center']):.2f} points): *{row['name']}* ({row['status']}), "
                     f"{cell(row, 'accuracy')}% over {_plural(row['seeds'], 'seed')}, recovers "
                     f"{_gap(row['gap_recovered'])} of the gap"
                     + ("" if pair is None else f"; against the full data {_difference(pair)}") + ".")
    return "\n".join([head + " The remedy that comes closest at each budget (a paper default or chosen on "
                      "validation, every seed trained), with the gap between its references, the full-data and the "
                      "reduced models trained as it was:", "", *lines])


def _split_remedies(table: pd.DataFrame) -> str:
    """The remedies left out above because some or all of their seeds collapsed to chance."""
    split = table[(table["at_chance"] > 0) & (table["protocol"] == "fixed") & table["status"].isin(CHOSEN)]
    lines = []
    for _, row in split.iterrows():
        if not row["split"]:
            lines.append(f"- *{row['name']}* ({row['status']}): all {row['seeds']} seeds at chance.")
            continue
        full, reduced = (table["center"].get(row[column], float("nan")) for column in ("full_reference",
                                                                                       "reduced_reference"))
        share = (row["center"] - reduced) / (full - reduced)
        recover = "has no references trained as it was" if pd.isna(share) else f"would recover {_gap(share)} of the gap"
        lines.append(f"- *{row['name']}* ({row['status']}): {row['at_chance']} of {row['seeds']} seeds at chance; "
                     f"the median of the seeds that trained, {100 * row['center']:.2f}%, {recover}.")
    return "\n".join(["**Not steady (seeds at chance), so not counted:**", "", *lines]) if lines else ""
