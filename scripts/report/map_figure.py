"""reports/map.png: small multiples of the imbalance map, one 3 x 3 heatmap (rows rho, columns mu) per remedy,
its gain over no remedy in points; accuracy without and with thresholding, then ROC AUC; one diverging colour
scale per metric, centred on 0; no remedy's own level in grey panels without colour."""

import math

import matplotlib

matplotlib.use("Agg")  # no display needed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import ListedColormap, Normalize  # noqa: E402

from scripts.report.imbalance_map import CELL, NONE, ImbalanceMap, gain, grid, mu, rho  # noqa: E402
from scripts.report.map_findings import remedy_words, seed_words  # noqa: E402

WIDTH_IN, DPI = 8.0, 100  # 800 px: the width a reader sees it at in a README
ROW_IN = 2.35  # height of one row of panels, with its heading, in inches
COLOURS = plt.get_cmap("RdBu")  # red: the remedy loses, blue: it gains
LEVEL = ListedColormap(["0.93"])  # no remedy's own accuracy or AUC: a level, not a gain, so no colour
MISSING = "0.8"
# The rows of panels: (heading, metric, the level panel's metric or None, the gains' (variant, thresholded)).
ROWS = (("Accuracy: gain over no remedy, points", "accuracy", "accuracy",
         [("map_over", False), ("map_under", False), ("map_best", False)]),
        ("With thresholding (outputs divided by the training set's prior): accuracy gain over no remedy without it",
         "accuracy", None, [(NONE, True), ("map_over", True), ("map_under", True), ("map_best", True)]),
        ("ROC AUC: gain over no remedy, points (thresholding cannot change it)", "roc_auc", "roc_auc",
         [("map_over", False), ("map_under", False), ("map_best", False)]))
DECIMALS = {"accuracy": 1, "roc_auc": 2}  # AUC gains are a tenth of accuracy's: one more decimal
LEVEL_TITLES = {"accuracy": "no remedy: accuracy, %", "roc_auc": "no remedy: ROC AUC, %"}


def map_figure(imbalance_map: ImbalanceMap) -> plt.Figure:
    fractions, counts = grid(imbalance_map)
    figure = plt.figure(figsize=(WIDTH_IN, ROW_IN * len(ROWS) + 0.7), dpi=DPI, layout="constrained")
    rows = figure.subfigures(len(ROWS), 1)
    limits = {metric: _limit(imbalance_map, metric) for metric in ("accuracy", "roc_auc")}
    for subfigure, (heading, metric, level, gains) in zip(rows, ROWS):
        axes = subfigure.subplots(1, 4, sharey=True)
        norm = Normalize(-limits[metric], limits[metric])
        # The row's heading says whether it is thresholded: a title names the remedy alone.
        panels = ([(LEVEL_TITLES[level], None)] if level else []) + [
            ("thresholding alone" if g == (NONE, True) else remedy_words(g[0], False), g) for g in gains]
        for axis, (title, key) in zip(axes, panels):
            if key is None:
                _draw_level(axis, imbalance_map, level, fractions, counts)
            else:
                _draw_gains(axis, gain(imbalance_map, *key, metric), norm, fractions, counts, DECIMALS[metric])
            axis.set_title(title, fontsize=8.5)
        axes[0].set_ylabel("ratio rho", fontsize=8)
        subfigure.supxlabel("minority share mu", fontsize=8)
        subfigure.suptitle(heading, fontsize=9, fontweight="bold", x=0.01, ha="left")
        bar = subfigure.colorbar(plt.cm.ScalarMappable(norm, COLOURS), ax=axes, shrink=0.85, aspect=15)
        bar.ax.tick_params(labelsize=7)
        bar.set_label("gain, points", fontsize=7)
    epochs, images = imbalance_map.budget
    full = imbalance_map.full
    reference = ", ".join(f"{name} {full.loc[metric, 'mean']:.{DECIMALS[metric]}f}%" for metric, name in
                          (("accuracy", "accuracy"), ("roc_auc", "ROC AUC")) if metric in full.index)
    figure.suptitle("The imbalance map: each remedy against no remedy in the same cell, paired by seed\n"
                    f"(mean ± 95% interval over {seed_words(imbalance_map)}); LeNet on MNIST, a share mu of the ten "
                    f"digits cut to 1/rho of their images;\nevery run {epochs} epochs of {images:,} images"
                    + (f"; full data at the same budget: {reference}" if reference else ""), fontsize=9, x=0.01,
                    ha="left")
    return figure


def _limit(imbalance_map: ImbalanceMap, metric: str) -> float:
    """The colour scale's half-width for `metric`: the largest mean gain in size, shared by its panels."""
    gains = imbalance_map.gains
    largest = gains.loc[gains["metric"] == metric, "mean"].abs().max()
    return float(largest) if largest > 0 else 1.0


def _axes(axis, fractions, counts) -> None:
    axis.set_xticks(range(len(counts)), [f"{mu(m):g}" for m in counts], fontsize=7.5)
    axis.set_yticks(range(len(fractions)), [f"{rho(f):g}" for f in fractions], fontsize=7.5)
    axis.tick_params(length=0)
    for spine in axis.spines.values():
        spine.set_visible(False)


def _draw_gains(axis, gains, norm, fractions, counts, decimals: int) -> None:
    """`+4.2` over `±1.1` in each cell, on its colour; `not run` on grey."""
    means = np.array([[gains["mean"].get((f, m), math.nan) for m in counts] for f in fractions])
    axis.imshow(np.ma.masked_invalid(means), cmap=COLOURS.with_extremes(bad=MISSING), norm=norm)
    for y, f in enumerate(fractions):
        for x, m in enumerate(counts):
            if (f, m) not in gains.index:
                axis.text(x, y, "not run", ha="center", va="center", fontsize=7)
                continue
            row = gains.loc[(f, m)]
            dark = abs(norm(row["mean"]) - 0.5) > 0.3  # white text on the deep ends of the scale
            text = f"{row['mean']:+.{decimals}f}" + ("" if math.isnan(row["ci95"]) else
                                                     f"\n±{row['ci95']:.{decimals}f}")
            axis.text(x, y, text, ha="center", va="center", fontsize=7.5, color="white" if dark else "black",
                      linespacing=1.1)
    _axes(axis, fractions, counts)


def _draw_level(axis, imbalance_map: ImbalanceMap, metric: str, fractions, counts) -> None:
    """No remedy's own `metric`, mean over `±` its interval, in grey: a level the gains are measured from."""
    cells = imbalance_map.cells
    level = cells[cells["metric"] == metric].set_index(CELL)
    axis.imshow(np.zeros((len(fractions), len(counts))), cmap=LEVEL)
    for y, f in enumerate(fractions):
        for x, m in enumerate(counts):
            decimals = DECIMALS[metric]
            text = "not run" if (f, m) not in level.index else f"{level.loc[(f, m), 'mean']:.{decimals}f}" + (
                "" if math.isnan(ci := level.loc[(f, m), "ci95"]) else f"\n±{ci:.{decimals}f}")
            axis.text(x, y, text, ha="center", va="center", fontsize=7.5, linespacing=1.1)
    _axes(axis, fractions, counts)
