"""Training curves for the README: one colour per variant, its name at the line's end, no legend to decode."""

import matplotlib

matplotlib.use("Agg")  # no display needed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import FuncFormatter, NullFormatter  # noqa: E402
from matplotlib.transforms import ScaledTranslation, blended_transform_factory  # noqa: E402

WIDTH_IN, HEIGHT_IN = 4.2, 3.0  # half the README's width, where two curves sit side by side
LABEL_GAP = 0.06  # the least distance between two end labels, as a fraction of the axes' height
EPOCH_TICKS = [1, 2, 5, 10, 20, 50, 120]


def spread(positions: list[float], gap: float) -> list[float]:
    """`positions` (fractions of the axes' height) moved apart by at least `gap`, each as little as needed: pushed
    up from the lowest, then down from the top if the highest left [0, 1]; each keeps its rank."""
    order = np.argsort(positions, kind="stable")
    placed = np.asarray(positions, dtype=float)[order]
    for k in range(1, len(placed)):
        placed[k] = max(placed[k], placed[k - 1] + gap)
    placed[-1] = min(placed[-1], 1.0)
    for k in range(len(placed) - 2, -1, -1):
        placed[k] = min(placed[k], placed[k + 1] - gap)
    result = np.empty_like(placed)
    result[order] = placed
    return result.tolist()


def curves_figure(logs: dict[str, pd.DataFrame], column: str, *, title: str, colours: dict[str, str],
                  scale: str) -> plt.Figure:
    """One line per variant of `column` per epoch (`logs`: {variant: its training log}), drawn in dict order, the
    later on top; epochs on a log axis (the 10-epoch runs get half the width), `scale` for the values."""
    figure, axis = plt.subplots(figsize=(WIDTH_IN, HEIGHT_IN), layout="constrained")
    for variant, log in logs.items():
        axis.plot(log["epoch"], log[column], color=colours[variant], linewidth=1.8)
    axis.set_xscale("log")
    axis.set_yscale(scale)
    axis.set_xticks(EPOCH_TICKS, [str(t) for t in EPOCH_TICKS])
    axis.xaxis.set_minor_formatter(NullFormatter())
    axis.set_xlim(1, max(log["epoch"].max() for log in logs.values()))
    if scale == "logit":  # accuracy: 90%, 99%, 99.9% equally apart, where a linear axis shows one flat line
        axis.yaxis.set_major_formatter(FuncFormatter(lambda y, _: f"{100 * y:.10g}%"))
        axis.yaxis.set_minor_formatter(NullFormatter())
    axis.set_xlabel("epoch (log scale)")
    axis.set_title(title, loc="left", fontsize=9)
    axis.grid(alpha=0.3, which="major")
    axis.spines[["top", "right"]].set_visible(False)
    axis.set_ylim(axis.get_ylim())  # frozen: the labels are placed in fractions of these limits
    label_line_ends(axis, {variant: (log["epoch"].iloc[-1], log[column].iloc[-1]) for variant, log in logs.items()},
                    colours)
    return figure


def label_line_ends(axis, ends: dict[str, tuple[float, float]], colours: dict[str, str]) -> None:
    """Each line's name just right of its last point, in its colour; names of lines that end at the same epoch
    are moved apart so that none covers another."""
    to_axes = axis.transScale + axis.transLimits  # data -> fractions of the axes, whatever the scales
    # x in data, y in fractions of the axes' height, then 4 points to the right of the line's end
    place = (blended_transform_factory(axis.transData, axis.transAxes)
             + ScaledTranslation(4 / 72, 0, axis.figure.dpi_scale_trans))
    for epoch in sorted({x for x, _ in ends.values()}):
        together = [variant for variant, (x, _) in ends.items() if x == epoch]
        heights = spread([to_axes.transform(ends[variant])[1] for variant in together], LABEL_GAP)
        for variant, height in zip(together, heights):
            axis.text(epoch, height, variant, transform=place, color=colours[variant], fontsize=9, va="center",
                      bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8, "pad": 0.5})


def gamma_figure(log: pd.DataFrame, colour: str) -> plt.Figure:
    """The focal curriculum's gamma per epoch: a staircase, each step labelled with its gamma (log axis, so that
    0.2 to 5 are not flattened under 10 and 15)."""
    figure, axis = plt.subplots(figsize=(2 * WIDTH_IN, 1.9), layout="constrained")
    edges = np.r_[log["epoch"].iloc[0] - 1, log["epoch"].to_numpy()]  # epoch e spans (e - 1, e]
    axis.stairs(log["gamma"], edges, color=colour, linewidth=2, baseline=None)
    steps = log.groupby((log["gamma"] != log["gamma"].shift()).cumsum()).agg(
        first=("epoch", "min"), last=("epoch", "max"), gamma=("gamma", "first"))
    for step in steps.itertuples():
        axis.annotate(f"{step.gamma:g}", xy=((step.first - 1 + step.last) / 2, step.gamma), xytext=(0, 3),
                      textcoords="offset points", ha="center", va="bottom", fontsize=8, color=colour)
    axis.set_yscale("log")
    axis.set_ylim(log["gamma"].min() / 1.6, log["gamma"].max() * 2.2)  # room for the labels above the steps
    axis.yaxis.set_major_formatter(FuncFormatter(lambda y, _: f"{y:g}"))
    axis.set_xlim(edges[0], edges[-1])
    axis.set_xticks(np.arange(edges[0], edges[-1] + 1, 10))
    axis.set_xlabel("epoch")
    axis.set_ylabel("gamma (log scale)")
    axis.set_title("The focal curriculum's gamma per epoch (focal)", loc="left", fontsize=10)
    axis.grid(alpha=0.3, axis="x")
    axis.spines[["top", "right"]].set_visible(False)
    return figure
