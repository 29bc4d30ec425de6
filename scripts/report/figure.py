"""The forest plot: test accuracy per remedy, one panel per budget (epochs), the references as lines."""

import matplotlib

matplotlib.use("Agg")  # no display needed
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from scripts.report.runs import PROFILE_WORDS, run_name  # noqa: E402
from scripts.report.tables import CHANCE, CHOSEN, DETACHED, EXPLORATORY  # noqa: E402

WIDTH_IN, DPI = 8.0, 100  # 800 px: the width a reader sees it at in a README
ROW_IN = 0.3  # height of one remedy's row, in inches
LINES = {"full_reference": ("full data", "tab:blue", "--"), "reduced_reference": ("no remedy", "tab:orange", ":")}
# The rows a reader compares: remedies as their papers or validation set them, and the report's own variants;
# references are the lines, ablations and unchosen settings stay in reports/remedies.md.
DRAWN = (*CHOSEN, DETACHED, EXPLORATORY)


def forest_figure(table: pd.DataFrame, runs: pd.Series) -> plt.Figure:
    """`runs`: test accuracy per (table row, seed). Rows: mean and 95% interval (a split row: median and
    interval of the seeds that trained), seeds as grey dots."""
    budgets = sorted(set(zip(table["profile"] != "step", table["epochs"])))  # the report's step profile first
    panels = [(epochs, rows) for long_tail, epochs in budgets if len(rows := _panel_rows(table, epochs, long_tail))]
    figure, axes = plt.subplots(len(panels), 1, figsize=(WIDTH_IN, ROW_IN * sum(len(rows) + 5 for _, rows in panels)),
                                dpi=DPI, height_ratios=[len(rows) + 3 for _, rows in panels], layout="constrained",
                                squeeze=False)
    for axis, (epochs, rows) in zip(axes[:, 0], panels):
        _draw_panel(axis, table, runs, epochs, rows)
    axes[-1, 0].set_xlabel("test accuracy, % (10,000 MNIST test images)", loc="right")  # a narrow panel: leftwards
    figure.supxlabel("square: mean, bar: its 95% interval; diamond: median of the seeds that trained; dots: seeds",
                     fontsize=8, color="0.3")
    figure.suptitle("LeNet, digits 0-4 thinned to 10%: remedies at equal budget", x=0.02, ha="left")
    return figure


def _panel_rows(table: pd.DataFrame, epochs: int, long_tail: bool) -> pd.DataFrame:
    """The drawn rows of one budget and profile, best on top; its references are lines."""
    profile = table["profile"]
    rows = table[(table["epochs"] == epochs) & ((profile != "step") == long_tail) & (profile != "full")]
    references = set(rows["full_reference"]) | set(rows["reduced_reference"])
    return rows[rows["status"].isin(DRAWN) & ~rows.index.isin(references)].sort_values("center", kind="stable")


def _draw_panel(axis, table: pd.DataFrame, runs: pd.Series, epochs: int, rows: pd.DataFrame) -> None:
    for y, (i, row) in enumerate(rows.iterrows()):
        if row["at_chance"] == row["seeds"]:
            continue  # all at chance: said in the label, nothing to draw
        seeds = 100 * runs.loc[i]
        trained = seeds[seeds >= 100 * CHANCE] if row["split"] else seeds
        axis.plot(trained, [y] * len(trained), "o", color="0.6", markersize=4, zorder=2)
        center, mean, half = (100 * row[f"accuracy_{stat}"] for stat in ("median" if row["split"] else "mean",
                                                                            "mean", "ci95"))
        if not pd.isna(half):
            axis.plot([mean - half, mean + half], [y, y], color="black", linewidth=2, zorder=3)
        axis.plot(center, y, "D" if row["split"] else "s", color="black", markersize=6, zorder=4)
    shown = [100 * runs.loc[i][runs.loc[i] >= CHANCE].min() for i in rows.index]
    ends = [100 * (r["accuracy_mean"] + sign * r["accuracy_ci95"]) for _, r in rows.iterrows() for sign in (-1, 1)
            if r["at_chance"] < r["seeds"]]
    references = {column: 100 * table.loc[int(rows[column].dropna().mode()[0]), "accuracy_mean"]
                  for column in LINES if rows[column].notna().any()}
    values = [v for v in shown + ends + list(references.values()) if not pd.isna(v)] or [100 * CHANCE, 100.0]
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
    axis.set_yticks(range(len(rows)), [_label(row) for _, row in rows.iterrows()], fontsize=8)
    profile, record = rows["profile"].iloc[0], rows["record"].iloc[0]
    tail = ("" if profile == "step" else
            f", {PROFILE_WORDS.get(profile, profile)} subset (ratio {record['subset.imbalance_ratio']:g})")
    axis.set_title(f"{epochs} epochs{tail}", loc="left", fontsize=10, fontweight="bold")
    axis.grid(axis="x", alpha=0.3)


def _label(row) -> str:
    """The row's name without what the panel's title says (epochs, profile), and what a reader must know."""
    notes = [f"{row['at_chance']} of {row['seeds']} at chance, not drawn"] if row["split"] else []
    notes += [f"all {row['seeds']} seeds at chance"] if row["at_chance"] == row["seeds"] else []
    notes += ["vs its cosine head"] if row["loss"] == "ldam_drw" else []
    notes += ["chosen on test"] if row["status"] == EXPLORATORY else []
    return run_name(row, in_panel=True) + (f" ({'; '.join(notes)})" if notes else "")
