"""The imbalance map in words, every number computed from it: what it shows, and where it agrees or disagrees
with Buda, Maki & Mazurowski (2018, arXiv:1710.05381), conclusion by conclusion."""

import pandas as pd

from scripts.report.imbalance_map import CELL, NONE, REMEDIES, ImbalanceMap, grid, mu, rho
from scripts.report.tables import mean_and_interval

BUDA = "Buda, Maki & Mazurowski (2018)"
BUDA_LINK = "https://arxiv.org/abs/1710.05381"
# Their protocol where it differs from this one (from the paper; static facts), any of which could explain a
# disagreement.
PROTOCOL_DIFFERENCES = ("their network was the modern LeNet-5 (ReLU, 20 and 50 convolution maps, a dense layer of "
                        "500), this one the sigmoid LeNet; they trained 10,000 iterations of batch 64 (640,000 "
                        "images), this map {images:,}; they tested on a balanced set (1,000 images per digit), this "
                        "map on the full MNIST test set (892-1,135 per digit); they repeated each scenario 50 times, "
                        "this map {seeds}; their majority classes were capped at 5,000 images, here they keep all "
                        "(about 6,000)")
PROTOCOL_SHORT = ("their protocol differed (a ReLU LeNet-5, {images_theirs:,} training images to this map's "
                  "{images:,}, a balanced test set, 50 repetitions to {seeds}, majority classes capped at 5,000)")
THEIR_IMAGES = 10_000 * 64  # 10,000 iterations of batch 64
REMEDY_AFTER = {NONE: "without a remedy", "map_over": "after oversampling", "map_under": "after undersampling"}


def thresholding_effect(imbalance_map: ImbalanceMap, variant: str) -> pd.DataFrame:
    """Per cell: thresholding's effect on `variant`'s accuracy, in points, paired by seed (the same model with
    and without it): seeds, mean, ci95."""
    return _paired_difference(imbalance_map, (variant, True), (variant, False), "accuracy")


def over_minus_under(imbalance_map: ImbalanceMap, metric: str) -> pd.DataFrame:
    """Per cell: oversampling's gain minus undersampling's, in points, paired by seed: seeds, mean, ci95."""
    return _paired_difference(imbalance_map, ("map_over", False), ("map_under", False), metric)


def _paired_difference(imbalance_map: ImbalanceMap, a: tuple, b: tuple, metric: str) -> pd.DataFrame:
    seeds = imbalance_map.seed_gains
    seeds = seeds[seeds["metric"] == metric].set_index([*CELL, "seed"])
    side = lambda variant, thresholded: seeds[(seeds["variant"] == variant)  # noqa: E731
                                              & (seeds["thresholded"] == thresholded)]["gain"]
    # No remedy without thresholding is the reference of every gain: its own gain is 0.
    difference = (side(*a) - (0 if b == (NONE, False) else side(*b))).dropna()
    summary = difference.groupby(level=CELL).agg(lambda v: mean_and_interval(v))
    return pd.DataFrame({"seeds": difference.groupby(level=CELL).size(), "mean": summary.map(lambda s: s[0]),
                         "ci95": summary.map(lambda s: s[1])})


def harm_steps(imbalance_map: ImbalanceMap) -> dict:
    """{"rho": (steps to the next larger rho at one mu where no remedy's accuracy falls, steps), "mu": (the same
    to the next larger mu at one rho)}, over the steps whose two cells have run."""
    cells = imbalance_map.cells
    accuracy = cells[cells["metric"] == "accuracy"].set_index(CELL)["mean"].to_dict()
    fractions, counts = grid(imbalance_map)  # rho and mu ascending
    steps = {"rho": [((f, m), (g, m)) for m in counts for f, g in zip(fractions, fractions[1:])],
             "mu": [((f, m), (f, n)) for f in fractions for m, n in zip(counts, counts[1:])]}
    counted = {}
    for axis, pairs in steps.items():
        pairs = [(a, b) for a, b in pairs if a in accuracy and b in accuracy]
        counted[axis] = (sum(accuracy[b] < accuracy[a] for a, b in pairs), len(pairs))
    return counted


def _where(cells) -> str:
    return "; ".join(f"rho {rho(f):g}, mu {mu(m):g}" for f, m in cells)


def verdicts(difference: pd.DataFrame) -> tuple[pd.Index, pd.Index]:
    """(the cells where a paired difference is above 0, those where it is below): by its 95% interval where the
    cell has two seeds or more, by its sign where it has one (no interval)."""
    half = difference["ci95"].fillna(0)
    return difference.index[difference["mean"] - half > 0], difference.index[difference["mean"] + half < 0]


def buda_comparison(imbalance_map: ImbalanceMap) -> list[tuple[str, bool, str]]:
    """Per conclusion of Buda et al. that the map's runs can test: (their conclusion, whether the map agrees, the
    map's numbers). Agreement is the majority of the map's cells (or steps), each judged by the 95% interval of
    its paired difference; the counts let the reader judge."""
    falls = harm_steps(imbalance_map)
    fell, steps = falls["rho"][0] + falls["mu"][0], falls["rho"][1] + falls["mu"][1]
    auc = over_minus_under(imbalance_map, "roc_auc")
    ahead, behind = verdicts(auc)
    level = auc.index.difference(ahead)  # on a par or behind
    largest_rho = min(grid(imbalance_map)[0])
    raised = {}
    for variant in (NONE, "map_over", "map_under"):
        effect = thresholding_effect(imbalance_map, variant)
        up, down = verdicts(effect)
        raised[variant] = (len(up), len(down), len(effect))
    seeds = set(imbalance_map.gains["seeds"])
    by = ("by the paired difference" if max(seeds) == 1 else "by the 95% interval of the paired difference"
          + ("" if min(seeds) > 1 else " (its sign where a cell has one seed)"))
    threshold_claims = {NONE: "thresholding alone raises accuracy", "map_over": "thresholding raises accuracy "
                        "after oversampling too", "map_under": "thresholding should not be combined with undersampling"}
    checks = [
        ("imbalance hurts, more with a larger ratio and more minority classes", fell > steps / 2, steps,
         f"no remedy's accuracy falls at {falls['rho'][0]} of {falls['rho'][1]} steps to a larger rho and "
         f"{falls['mu'][0]} of {falls['mu'][1]} to a larger mu"),
        ("oversampling dominates undersampling, which is on a par only at an extreme ratio with many minority "
         "classes", len(ahead) > len(auc) / 2 and all(f == largest_rho for f, _ in level), len(auc),
         f"{by}, oversampling's ROC AUC gain is above undersampling's in {len(ahead)} of {len(auc)} cells and "
         f"below in {len(behind)}" + (f"; not above at {_where(level)}" if 0 < len(level) <= 3 else "")),
        *((threshold_claims[v], (up > n / 2) != (v == "map_under"), n,
           f"{by}, it raises accuracy in {up} of {n} cells {REMEDY_AFTER[v]} and lowers it in {down}")
          for v, (up, down, n) in raised.items()),
    ]
    return [(claim, agrees, numbers) for claim, agrees, counted, numbers in checks if counted]  # with runs only


def best_remedy_counts(imbalance_map: ImbalanceMap) -> tuple[dict, tuple]:
    """({(variant, thresholded): cells where its mean accuracy gain is the largest}, the largest gain's
    (variant, thresholded, cell, mean, ci95))."""
    gains = imbalance_map.gains
    accuracy = gains[gains["metric"] == "accuracy"].reset_index(drop=True)
    winners = accuracy.loc[accuracy.groupby(CELL)["mean"].idxmax()]
    counts = winners.groupby(["variant", "thresholded"], sort=False).size().sort_values(ascending=False,
                                                                                        kind="stable")
    top = accuracy.loc[accuracy["mean"].idxmax()]
    return counts.to_dict(), (top["variant"], top["thresholded"], (top["fraction"], top["minority"]),
                              top["mean"], top["ci95"])


def remedy_words(variant: str, thresholded: bool) -> str:
    """`oversampling + thresholding`, `thresholding alone`."""
    if variant == NONE:
        return "thresholding alone" if thresholded else REMEDIES[NONE]
    return REMEDIES[variant] + (" + thresholding" if thresholded else "")


def findings_sentences(imbalance_map: ImbalanceMap, numbers: bool = True) -> str:
    """Three sentences: which remedy gains most where; where the map agrees and where it disagrees with Buda et
    al., with the counts behind each verdict when `numbers` (reports/map.md; README's block leaves them there)."""
    counts, (variant, thresholded, cell, mean, half) = best_remedy_counts(imbalance_map)
    cells = imbalance_map.cells.set_index([*CELL, "metric"])
    total = len(cells.xs("accuracy", level="metric"))
    none = cells.loc[(*cell, "accuracy")]
    full = imbalance_map.full
    full = f"full data {_level(full.loc['accuracy'])}%" if "accuracy" in full.index else "full data not run"
    fractions, minorities = grid(imbalance_map)
    epochs, images = imbalance_map.budget
    (leader, n), *others = counts.items()
    where = f"rho {rho(cell[0]):g}, mu {mu(cell[1]):g}, where no remedy reaches {_level(none)}% ({full})"
    top = f"{mean:+.1f}" + ("" if pd.isna(half) else f" ± {half:.1f}") + " points"
    first = (f"**The imbalance map** (ratio rho {', '.join(f'{rho(f):g}' for f in fractions)} by minority share mu "
             f"{', '.join(f'{mu(m):g}' for m in minorities)}, {seed_words(imbalance_map)}, {epochs} epochs of "
             f"{images:,} images): *{remedy_words(*leader)}* has the largest mean gain over no remedy in {n} of "
             f"{total} cells"
             + "".join(f", *{remedy_words(*key)}* in {k}" for key, k in others)
             + (f", up to {top} at {where}." if leader == (variant, thresholded)
                else f"; the largest gain, {top}, is *{remedy_words(variant, thresholded)}*'s at {where}."))
    checks = buda_comparison(imbalance_map)
    said = lambda claim, counts: f"{claim} ({counts})" if numbers else claim  # noqa: E731
    agree = [said(claim, counts) for claim, agrees, counts in checks if agrees]
    disagree = [said(claim, counts) for claim, agrees, counts in checks if not agrees]
    sentences = [first]
    if agree:
        sentences.append(f"As [{BUDA}]({BUDA_LINK}) found, " + "; ".join(agree) + ".")
    if disagree:
        differences = PROTOCOL_SHORT.format(images_theirs=THEIR_IMAGES, images=epochs * images,
                                            seeds=seed_words(imbalance_map))
        sentences.append(f"Unlike what {'they' if agree else f'[{BUDA}]({BUDA_LINK})'} found, the map does not show "
                         "that " + "; nor that ".join(disagree) + f": {differences}.")
    return " ".join(sentences)


def _level(row) -> str:
    """`19.6 ± 3.1`: a mean level with its interval, when it has one."""
    return f"{row['mean']:.1f}" + ("" if pd.isna(row["ci95"]) else f" ± {row['ci95']:.1f}")


def seed_words(imbalance_map: ImbalanceMap) -> str:
    """`3 seeds`, or `2-3 seeds` when cells have different numbers of paired seeds."""
    seeds = sorted(set(imbalance_map.gains["seeds"]))
    return f"{seeds[0]} seed{'s' if seeds[0] > 1 else ''}" if len(seeds) == 1 else f"{seeds[0]}-{seeds[-1]} seeds"
