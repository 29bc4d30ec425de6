"""The tables as markdown, accuracies in %: the full ones (reports/remedies.md) and the short one (summary.md)."""

import pandas as pd

from scripts.report.tables import CHANCE, DEFAULT, REFERENCE, TUNED

SPLIT_NOTE = (f"A row whose seeds split between trained and collapsed (balanced accuracy below {100 * CHANCE:.0f}%, "
              "twice chance) shows the median of the seeds that trained and the 95% interval of their mean.")


def cell(row, column: str) -> str:
    """`97.55 ± 0.19` (mean ± 95% half-width), `96.87 [95.10, 98.20]` (median, interval) for a split row."""
    mean, median, half = (row[f"{column}_{stat}"] for stat in ("mean", "median", "ci95"))
    if pd.isna(mean):
        return "-"
    if row["split"]:
        return f"{100 * median:.2f}" + ("" if pd.isna(half) else f" [{100 * (mean - half):.2f}, "
                                                                    f"{100 * (mean + half):.2f}]")
    return f"{100 * mean:.2f}" + ("" if pd.isna(half) else f" ± {100 * half:.2f}")


def seeds(row) -> str:
    """`5`, or `5 (4 at chance)`."""
    chance = "all" if row["at_chance"] == row["seeds"] else row["at_chance"]
    return f"{row['seeds']}" + (f" ({chance} at chance)" if row["at_chance"] else "")


TEXT = ("remedy", "protocol", "status", "comparison", "A", "B", "chosen", "references (full / reduced)")


def _markdown(frame: pd.DataFrame, caption: str) -> str:
    """A caption and the table, numbers right-aligned."""
    align = ["left" if column in TEXT else "right" for column in frame]
    return f"{caption}\n\n{frame.to_markdown(index=False, colalign=align, disable_numparse=True)}"


def _gap(value) -> str:
    return "-" if pd.isna(value) else f"{round(100 * value)}%"


def _name(table: pd.DataFrame, index) -> str:
    return "none at these epochs" if pd.isna(index) else table.loc[int(index), "name"]


def test_markdown(table: pd.DataFrame) -> str:
    rows = pd.DataFrame({
        "remedy": table["name"], "protocol": table["protocol"], "status": table["status"],
        "seeds": table.apply(seeds, axis=1),
        **{title: table.apply(cell, axis=1, column=column) for title, column in (
            ("test accuracy", "accuracy"), ("balanced", "balanced_accuracy"), ("digits 0-4", "minority_accuracy"),
            ("digits 5-9", "majority_accuracy"), ("post-hoc LA", "logit_adjusted.accuracy"),
            ("its digits 0-4", "logit_adjusted.minority_accuracy"))},
        "gap recovered": table["gap_recovered"].map(_gap),
        "references (full / reduced)": [f"{_name(table, f)} / {_name(table, r)}" for f, r in
                                        zip(table["full_reference"], table["reduced_reference"])],
        "report": table["report_accuracy"].map(lambda value: "-" if pd.isna(value) else f"{value:.1f}")})
    return _markdown(rows, "Test set, in %: mean ± 95% interval half-width (Student t over the seeds; none for one seed). "
                     + SPLIT_NOTE + " Gap recovered = (row - reduced) / (full - reduced), the references trained "
                     "as many epochs.")


def paired_markdown(paired: pd.DataFrame) -> str:
    low, high = (paired["difference_mean"] + sign * paired["difference_ci95"] for sign in (-1, 1))
    rows = pd.DataFrame({
        "comparison": paired["comparison"], "A": paired["a"], "B": paired["b"],
        "paired seeds": paired["paired_seeds"].astype(str),
        "A - B": paired["difference_mean"].map(lambda v: "-" if pd.isna(v) else f"{v:+.2f}"),
        "95% interval": [("-" if pd.isna(lo) else f"[{lo:+.2f}, {hi:+.2f}]") for lo, hi in zip(low, high)]})
    return _markdown(rows, "Paired differences of test accuracy, A - B in points, over the seeds both have; "
                     "95% t interval.")


def validation_markdown(validation: pd.DataFrame) -> str:
    rows = pd.DataFrame({
        "remedy": validation["name"], "protocol": validation["protocol"],
        "chosen": validation["chosen"].map({True: "chosen", False: ""}),
        "seeds": validation.apply(seeds, axis=1),
        **{title: validation.apply(cell, axis=1, column=column) for title, column in (
            ("accuracy", "accuracy"), ("balanced", "balanced_accuracy"), ("digits 0-4", "minority_accuracy"))}})
    return _markdown(rows, "Validation (held-out training images), in %: per remedy, the setting with the best mean "
                     "balanced accuracy is chosen (the held-out images keep the training set's imbalance; the test "
                     "set is balanced).")


def short_table(table: pd.DataFrame) -> pd.DataFrame:
    """The references, the best remedy at each budget (paper default or validation-tuned, fixed subset) and the
    course report's remedy in both protocols; by epochs."""
    kept = table[table["status"].isin([DEFAULT, TUNED, f"{TUNED} (= {DEFAULT})", REFERENCE])]
    best = kept[(kept["protocol"] == "fixed") & ~kept["split"] & kept["full_reference"].notna()
                & ~kept.index.isin(kept["reduced_reference"])].groupby("epochs")["center"].idxmax()
    rows = set(best) | set(table["full_reference"].dropna()) | set(table["reduced_reference"].dropna())
    rows |= set(kept.index[(kept["loss"] == "focal_curriculum") & ~kept["changes"].astype(bool)])
    return table.loc[sorted(rows, key=lambda i: (table.loc[i, "epochs"], i))]


def short_markdown(table: pd.DataFrame) -> str:
    short = short_table(table)
    rows = pd.DataFrame({"remedy": short["name"], "status": short["status"], "seeds": short.apply(seeds, axis=1),
                         "test accuracy, %": short.apply(cell, axis=1, column="accuracy"),
                         "digits 0-4, %": short.apply(cell, axis=1, column="minority_accuracy"),
                         "gap recovered": short["gap_recovered"].map(_gap)})
    return _markdown(rows, "Test accuracy on the 10,000 MNIST test images, mean ± 95% interval over the seeds; "
                     "gap recovered against the full-data and reduced cross-entropy runs trained as long "
                     "(all rows: reports/remedies.md).")
