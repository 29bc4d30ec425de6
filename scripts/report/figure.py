"""The forest plot: test accuracy per remedy, one panel per budget (epochs), the references as lines."""

import textwrap

import matplotlib

matplotlib.use("Agg")  # no display needed
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from scripts.report.runs import PROFILE_WORDS, run_name  # noqa: E402
from scripts.report.tables import CHANCE, CHOSEN, DETACHED, EXPLORATORY, reference_centers  # noqa: E402

WIDTH_IN, DPI = 8.0, 100  # 800 px: the width a reader sees it at in a README
ROW_IN = 0.3  # height of one remedy's row, in inches
LINES = {"full_reference": ("full data", "tab:blue", "--"), "reduced_reference": ("no remedy", "tab:orange", ":")}
MISSING = {"full_reference": "its full-data reference not run",  # a row's note when it has no reference
           "reduced_reference": "its no-remedy reference not run"}
LABEL_CHARACTERS = 68  # a longer row label wraps, so the panels keep their width
# The rows a reader compares: remedies as their papers or validation set them, and the report's own variants;
# references are the lines, ablations and unchosen settings stay in reports/remedies.md.
DRAWN = (*CHOSEN, DETACHED, EXPLORATORY)


def forest_figure(table: pd.DataFrame, seeds: pd.DataFrame) -> plt.Figure:
    """`seeds`: per (table row, seed), test accuracy and at_chance (tables.seed_results). Rows: mean and 95%
    interval (a split row: median and interval of the seeds that trained), seeds as grey dots; a row whose
    references are not the panel's lines has its own as ticks."""
    budgets = sorted(set(zip(table["profile"] != "step", table["epochs"])))  # the report's step profile first
    panels = [(epochs, rows) for long_tail, epochs in budgets if len(rows := _panel_rows(table, epochs, long_tail))]
    figure, axes = plt.subplots(len(panels), 1, figsize=(WIDTH_IN, ROW_IN * sum(len(rows) + 5 for _, rows in panels)),
                                dpi=DPI, height_ratios=[len(rows) + 3 for _, rows in panels], layout="constrained",
                                squeeze=False)
    centers = {column: 100 * reference_centers(table, column) for column in LINES}  # per row, its own references
    for axis, (epochs, rows) in zip(axes[:, 0], panels):
        _draw_panel(axis, seeds, centers, epochs, rows)
    axes[-1, 0].set_xlabel("test accuracy, % (10,000 MNIST test images)", loc="right")  # a narrow panel: leftwards
    figure.supxlabel("square: mean, bar: its 95% interval; diamond: median of the seeds that trained; dots: seeds\n"
                     "short blue | and orange | on a row: that row's own full-data and no-remedy references, trained "
                     "as it was\n(with its shifts, or LDAM-DRW's cosine head alone); the lines are not its references",
                     fontsize=8, color="0.3")
    figure.suptitle("LeNet, digits 0-4 thinned to 10%: remedies at equal budget", x=0.02, ha="left")
    return figure


def _panel_rows(table: pd.DataFrame, epochs: int, long_tail: bool) -> pd.DataFrame:
    """The drawn rows of one budget and profile, best on top; its references are lines."""
    profile = table["profile"]
    rows = table[(table["epochs"] == epochs) & ((profile != "step") == long_tail) & (profile != "full")]
    references = set(rows["full_reference"]) | set(rows["reduced_reference"])
    return rows[rows["status"].isin(DRAWN) & ~rows.index.isin(references)].sort_values("center", kind="stable")


def _own_references(row, lines: dict) -> dict:
    """{column: its reference's row index, NaN for none} for the references of `row` that are not the panel's
    line of that column."""
    return {column: row[column] for column, line in lines.items() if row[column] != line}


def _draw_panel(axis, seeds: pd.DataFrame, centers: dict, epochs: int, rows: pd.DataFrame) -> None:
    # The most common reference of the panel's rows is its line; a row trained otherwise gets ticks of its own.
    lines = {column: int(rows[column].dropna().mode()[0]) for column in LINES if rows[column].notna().any()}
    values = []
    for y, (i, row) in enumerate(rows.iterrows()):
        for column in _own_references(row, lines):
            if not pd.isna(x := centers[column][i]):
                axis.plot(x, y, "|", color=LINES[column][1], markersize=15, markeredgewidth=2.5, zorder=3.5)
                values.append(x)
        if row["at_chance"] == row["seeds"]:
            continue  # all at chance: said in the label, nothing to draw
        trained = 100 * seeds.loc[i].query("~at_chance")["accuracy"]  # a split row: the seeds that trained
        axis.plot(trained, [y] * len(trained), "o", color="0.6", markersize=4, zorder=2)
        center, mean, half = (100 * row[f"accuracy_{stat}"] for stat in ("median" if row["split"] else "mean",
                                                                            "mean", "ci95"))
        if not pd.isna(half):
            axis.plot([mean - half, mean + half], [y, y], color="black", linewidth=2, zorder=3)
        axis.plot(center, y, "D" if row["split"] else "s", color="black", markersize=6, zorder=4)
        values += [trained.min(), *([] if pd.isna(half) else [mean - half, mean + half])]
    references = {column: centers[column][line] for column, line in lines.items()}
    values = [v for v in values + list(references.values()) if not pd.isna(v)] or [100 * CHANCE, 100.0]
    low, high = min(values) - 0.6, min(100.0, max(values) + 0.6)
    top = len(rows)  # two empty rows above the remedies hold the references' labels, one each
    for y, (column, x) in enumerate(references.items(), start=top):
        label, colour, style = LINES[column]
        axis.axvline(x, color=colour, linestyle=style, linewidth=1.5, zorder=1)
        right_half = x > (low + high) / 2  # the label on the side with room: it stays inside the axes
        axis.text(x, y, f" {label} {x:.2f} ", color=colour, ha="right" if right_half else "left", va="center",
                  fontsize=8, bbox={"facecolor": "white", "edgecolor": "none", "pad": 1})
    axis.set_xlim(low, high)
    axis.set_ylim(-0.7, top + 1.7)
    axis.set_yticks(range(len(rows)), [_label(row, lines) for _, row in rows.iterrows()], fontsize=8)
    profile, record = rows["profile"].iloc[0], rows["record"].iloc[0]
    tail = ("" if profile == "step" else
            f", {PROFILE_WORDS.get(profile, profile)} subset (ratio {record['subset.imbalance_ratio']:g})")
    axis.set_title(f"{epochs} epochs{tail}", loc="left", fontsize=10, fontweight="bold")
    axis.grid(axis="x", alpha=0.3)


def _label(row, lines: dict) -> str:
    """The row's name without what the panel's title says (epochs, profile), and what a reader must know."""
    notes = [f"{row['at_chance']} of {row['seeds']} at chance, not drawn"] if row["split"] else []
    notes += [f"all {row['seeds']} seeds at chance"] if row["at_chance"] == row["seeds"] else []
    notes += ["vs its cosine head"] if row["loss"] == "ldam_drw" else []
    notes += [MISSING[column] for column, reference in _own_references(row, lines).items() if pd.isna(reference)]
    notes += ["chosen on test"] if row["status"] == EXPLORATORY else []
    return "\n".join(textwrap.wrap(run_name(row, in_panel=True) + (f" ({'; '.join(notes)})" if notes else ""),
                                   LABEL_CHARACTERS))
