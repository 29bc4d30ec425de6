"""The errors of confusion matrices, for the README: per actual digit, the share of its test images read as each
other digit, so that the colour is spent on the errors, not on the diagonal."""

import matplotlib

matplotlib.use("Agg")  # no display needed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.colors import ListedColormap, PowerNorm  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

PANEL_IN, HEIGHT_IN = 2.55, 3.35  # three panels and a colour bar in the README's width
NUMBERED = 0.5  # %: an error cell shows its number from here up; below, a few images, only its colour
BAR_TICKS = [0, 0.5, 1, 2, 5, 10, 20, 50, 100]  # the square-root scale crowds evenly spaced ones at the top
NEUTRAL = "0.93"  # the diagonal: correct, no part of the colour scale


def error_rates(pairs: pd.DataFrame, classes: int = 10) -> np.ndarray:
    """[classes, classes]: row `a`, column `p`, the % of the test images of digit `a` predicted as `p` (`pairs`:
    one row per test image, columns actual and predicted)."""
    counts = np.zeros((classes, classes))
    np.add.at(counts, (pairs["actual"].to_numpy(), pairs["predicted"].to_numpy()), 1)
    return 100 * counts / counts.sum(axis=1, keepdims=True)


def errors_figure(confusions: dict[str, pd.DataFrame]) -> plt.Figure:
    """One panel per variant (`confusions`: {variant: its test images' actual, predicted}), one colour scale for
    all: the errors off the diagonal; the diagonal, each digit's % right, in grey."""
    rates = {variant: error_rates(pairs) for variant, pairs in confusions.items()}
    classes = len(next(iter(rates.values())))
    diagonal = np.eye(classes, dtype=bool)
    top = max(r[~diagonal].max() for r in rates.values())
    norm, colours = PowerNorm(0.5, vmin=0, vmax=top), plt.get_cmap("Reds")  # sqrt: a 1% error is not white
    # its palest still tells a cell from white, which is no image at all
    colours = ListedColormap(colours(np.linspace(0.04, 1, 256))).with_extremes(bad="white")
    figure, axes = plt.subplots(1, len(rates), figsize=(PANEL_IN * len(rates) + 0.6, HEIGHT_IN), sharey=True,
                                layout="constrained", squeeze=False)
    figure.get_layout_engine().set(h_pad=0.06)  # inches: the axis labels clear the edge, the titles each other
    for axis, (variant, rate) in zip(axes[0], rates.items()):
        image = axis.imshow(np.ma.masked_where(diagonal | (rate == 0), rate), cmap=colours, norm=norm)
        axis.imshow(np.ma.masked_where(~diagonal, rate), cmap=ListedColormap([NEUTRAL]))
        for (actual, predicted), value in np.ndenumerate(rate):
            if actual == predicted or value >= NUMBERED:
                dark = actual != predicted and norm(value) > 0.6
                axis.text(predicted, actual, f"{value:.0f}" if actual == predicted else f"{value:.1f}",
                          ha="center", va="center", fontsize=6.5, color="white" if dark else
                          "0.45" if actual == predicted else "black")
        axis.set_title(variant, fontsize=10, fontweight="bold")
        axis.set_xticks(range(classes))
        axis.set_yticks(range(classes))
        axis.tick_params(length=0, labelsize=8)
        axis.set_xlabel("predicted digit", fontsize=9)
        axis.spines[:].set_visible(False)
    axes[0, 0].set_ylabel("actual digit", fontsize=9)
    bar = figure.colorbar(image, ax=axes[0], shrink=0.8, pad=0.01, ticks=[t for t in BAR_TICKS if t <= top])
    bar.set_label("% of the actual digit's test images", fontsize=8)
    bar.ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    bar.ax.tick_params(labelsize=7)
    figure.suptitle("Test errors: each actual digit's images read as another, % of that digit (grey: % right)",
                    x=0.01, ha="left", fontsize=10)
    return figure
