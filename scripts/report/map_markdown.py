"""The imbalance map as markdown: reports/map.md (the sentences, then cell by remedy tables of the gains) and
README's block (the sentences, the figure, a link to the tables); one sentence when the map has not run."""

import pandas as pd

from scripts.report.imbalance_map import CELL, GAINS, FULL, ImbalanceMap, gain, grid, mu, rho
from scripts.report.map_findings import BUDA, PROTOCOL_DIFFERENCES, findings_sentences, remedy_words, seed_words

NOT_RUN = ("The imbalance map (issue 24: the remedies over ratio and minority share, against Buda, Maki & "
           "Mazurowski 2018) has not been run: `python scripts/sweep.py run map --backend local`, then "
           "`python scripts/remedies_report.py`.\n")
FIGURE_ALT = "The imbalance map: each remedy's gain over no remedy per ratio rho and minority share mu"


def _interval(row, seeds) -> str:
    """`+4.2 ± 1.1` (a gain), `-` for none, no interval for one seed; its seeds when fewer than no remedy's."""
    if row is None or pd.isna(row["mean"]):
        return "-"
    return f"{row['mean']:+.2f}" + ("" if pd.isna(row["ci95"]) else f" ± {row['ci95']:.2f}") + (
        "" if row["seeds"] == seeds else f" ({row['seeds']} seeds)")


def _level(row) -> str:
    """`62.31 ± 4.02`: an accuracy or AUC itself."""
    return "-" if row is None else f"{row['mean']:.2f}" + ("" if pd.isna(row["ci95"]) else f" ± {row['ci95']:.2f}")


def _get(frame: pd.DataFrame, key):
    return frame.loc[key] if key in frame.index else None


def gains_markdown(imbalance_map: ImbalanceMap, metric: str) -> str:
    """One row per cell: no remedy's `metric` and seeds, then each remedy's paired gain in points."""
    cells = imbalance_map.cells
    none = cells[cells["metric"] == metric].set_index(CELL)
    columns = [(v, t) for v, t in GAINS if metric == "accuracy" or not t]
    fractions, counts = grid(imbalance_map)
    rows = []
    for f in fractions:
        for m in counts:
            level = _get(none, (f, m))
            seeds = None if level is None else level["seeds"]
            rows.append({"rho": f"{rho(f):g}", "mu": f"{mu(m):g}", "seeds": "-" if level is None else f"{seeds:d}",
                         "no remedy": _level(level),
                         **{remedy_words(v, t): _interval(_get(gain(imbalance_map, v, t, metric), (f, m)), seeds)
                            for v, t in columns}})
    frame = pd.DataFrame(rows)
    align = ["right"] * len(frame.columns)
    return frame.to_markdown(index=False, colalign=align, disable_numparse=True)


def remedies_as_run(imbalance_map: ImbalanceMap) -> str:
    """What each remedy's runs set, read from their records: its sampler and shifts."""
    runs = imbalance_map.runs
    parts = []
    for variant, rows in runs.groupby("variant", sort=False):
        settings = sorted(set(zip(rows["sampler"], rows["shift_px"])))
        shown = "; ".join(f"sampler {s}, shifts of ±{p} px" if p else f"sampler {s}, no shifts" for s, p in settings)
        parts.append(f"{variant} ({remedy_words(variant, False) if variant != FULL else 'full data'}): "
                     f"{shown}")
    return "; ".join(parts)


def map_markdown(imbalance_map: ImbalanceMap | None) -> str:
    """reports/map.md."""
    if imbalance_map is None:
        return NOT_RUN
    full = imbalance_map.full
    epochs, images = imbalance_map.budget
    seeds = lambda metric: f"{full.loc[metric, 'seeds']} seeds" if metric in full.index else "not run"  # noqa: E731
    reference = "; ".join(f"{name} {_level(_get(full, metric))} ({seeds(metric)})"
                          for metric, name in (("accuracy", "accuracy"), ("roc_auc", "ROC AUC")))
    return "\n\n".join([
        findings_sentences(imbalance_map),
        f"Test accuracy, in %: no remedy's (mean ± 95% t interval over the seeds), then each remedy's gain over it "
        f"in points, paired by seed (the same seed draws the same minority digits and the same subset), mean ± 95% "
        f"t interval. Every run trained {epochs} epochs of {images:,} images; full data: {reference}. "
        "Thresholding: the outputs divided by the training set's class prior (post-hoc logit adjustment, tau 1).",
        gains_markdown(imbalance_map, "accuracy"),
        "ROC AUC (one-vs-rest, mean over the ten digits), in %: no remedy's, then each remedy's gain in points, "
        "paired by seed. Thresholding divides each class's probability by a constant, which leaves every class's "
        "ranking and so the AUC unchanged: it has no column here.",
        gains_markdown(imbalance_map, "roc_auc"),
        f"The runs, as their records set them: {remedies_as_run(imbalance_map)}.",
        f"Where the protocol differs from {BUDA}'s: "
        + PROTOCOL_DIFFERENCES.format(images=epochs * images, seeds=seed_words(imbalance_map)) + "."]) + "\n"


def readme_block(imbalance_map: ImbalanceMap | None) -> str:
    """README's map block: the sentences, the figure, where the tables are."""
    if imbalance_map is None:
        return NOT_RUN
    return (f"{findings_sentences(imbalance_map, numbers=False)}\n\n![{FIGURE_ALT}](reports/map.png)\n\n"
            "Every cell with its interval, the counts behind each verdict, the ROC AUC and the full protocol "
            "differences: "
            "[reports/map.md](reports/map.md).\n")
