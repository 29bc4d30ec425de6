"""Stage `subset`: the fixed, seeded imbalanced training set, built once and versioned.

Keeps exactly round(fraction x class count) images of each minority class, drawn without replacement, and
every image of the other classes. The kept indices (into the training split) are the stage's output, so every
variant that trains on the subset sees the same images, epoch after epoch.
"""

import sys

import numpy as np

from stages import params as P
from stages.cli import run_stage
from stages.data import NUM_CLASSES, SUBSET_FILE, load_split, stream_rng
from stages.files import atomic_path, write_json

SUBSET_METRICS = "metrics/subset.json"
SUBSET_STREAM = 1  # random-stream key of the subset draw (see data.stream_rng)


def build_subset(labels: np.ndarray, *, minority_classes: tuple[int, ...], fraction: float,
                 seed: int) -> np.ndarray:
    """Sorted int64 indices into `labels` of the images kept."""
    rng = stream_rng(seed, SUBSET_STREAM)
    kept = []
    for digit in range(NUM_CLASSES):
        members = np.flatnonzero(labels == digit)
        if digit in minority_classes:
            members = rng.choice(members, size=round(fraction * len(members)), replace=False)
        kept.append(members)
    return np.sort(np.concatenate(kept)).astype(np.int64)


def class_counts(labels: np.ndarray) -> dict[str, int]:
    """{"class_0": n0, ..., "class_9": n9}: keys without dots so `dvc metrics diff` shows each one."""
    counts = np.bincount(labels, minlength=NUM_CLASSES)
    return {f"class_{digit}": int(n) for digit, n in enumerate(counts)}


def main() -> None:
    params = P.read_params()
    data = P.section(params, "data", P.DataParams)
    subset = P.section(params, "subset", P.SubsetParams)
    _, labels = load_split("train", data.train_limit)
    indices = build_subset(labels, minority_classes=subset.minority_classes, fraction=subset.fraction,
                           seed=P.seed(params))
    with atomic_path(SUBSET_FILE) as tmp:
        np.save(tmp, indices)
    counts = class_counts(labels[indices])
    write_json(SUBSET_METRICS, {"train_images": len(indices), "per_class": counts})
    print(f"subset: kept {len(indices)} of {len(labels)} training images: {counts}", file=sys.stderr)


if __name__ == "__main__":
    run_stage("subset", main)
