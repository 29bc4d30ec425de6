"""Stage `subset`: the training sets the variants name, built once and versioned.

data/train_sets/full.npz is every training image. data/train_sets/subset.npz depends on subset.mode:
- fixed (default): exactly round(fraction x class count) images of each minority class, drawn once without
  replacement from the seed, and every image of the other classes; every epoch sees the same images.
  With subset.profile exponential, the long-tailed profile instead: the i-th digit of subset.class_order keeps
  round(n_0 x imbalance_ratio^(-i/9)) images (n_0 = every image of the first), drawn the same way.
- per_batch: the course report's protocol, replayed: every training image, marked so that training drops the
  minority digits from every batch whose index is not a multiple of 1 / fraction. Over many epochs the model
  sees most minority images; the training log counts how many.

With validation.tune, each training set also holds out validation.fraction of each of its classes (seeded,
stratified) into data/validation/<name>.npz, and trains without them: evaluate then scores the held-out
images, so hyperparameters are chosen without the test set. Otherwise those files are empty.
"""

import dataclasses
import json
import sys

import numpy as np

from stages.lib import params as P
from stages.lib.cli import run_stage
from stages.lib.data import NUM_CLASSES, TrainingSelection, load_split, save_selection
from stages.lib.files import atomic_path, write_json
from stages.lib.paths import SUBSET_METRICS, train_set_path, validation_set_path
from stages.lib.streams import Stream, stream_rng


def build_subset(labels: np.ndarray, *, minority_classes: tuple[int, ...], fraction: float,
                 seed: int) -> np.ndarray:
    """Sorted int64 indices into `labels` of the images a fixed step subset keeps."""
    counts = np.bincount(labels, minlength=NUM_CLASSES)
    return draw_per_class(labels, {d: round(fraction * counts[d]) for d in minority_classes}, seed)


def long_tail_counts(labels: np.ndarray, class_order: tuple[int, ...], imbalance_ratio: float) -> dict[int, int]:
    """{digit: images kept}: round(n_0 * ratio^(-i / (C - 1))) for the i-th digit of class_order, n_0 the
    first digit's count (Cui et al., 2019), never more than a digit has."""
    available = np.bincount(labels, minlength=NUM_CLASSES)
    head = available[class_order[0]]
    return {digit: min(int(available[digit]), round(head * imbalance_ratio ** (-i / (NUM_CLASSES - 1))))
            for i, digit in enumerate(class_order)}


def draw_per_class(labels: np.ndarray, keep: dict[int, int], seed: int) -> np.ndarray:
    """Sorted int64 indices: keep[d] images of each digit d drawn without replacement, all of a digit not in keep."""
    rng = stream_rng(seed, Stream.SUBSET)
    kept = []
    for digit in range(NUM_CLASSES):
        members = np.flatnonzero(labels == digit)
        if digit in keep:
            members = rng.choice(members, size=keep[digit], replace=False)
        kept.append(members)
    return np.sort(np.concatenate(kept)).astype(np.int64)


def minority_digits(subset: P.SubsetParams, seed: int) -> tuple[int, ...]:
    """The minority digits, sorted: subset.minority_classes as listed, or that many drawn from the seed."""
    if isinstance(subset.minority_classes, int):
        drawn = stream_rng(seed, Stream.MINORITY).choice(NUM_CLASSES, size=subset.minority_classes, replace=False)
        return tuple(sorted(int(digit) for digit in drawn))
    return subset.minority_classes


def build_selections(labels: np.ndarray, subset: P.SubsetParams, seed: int) -> dict[str, TrainingSelection]:
    """{"full": every image, "subset": the imbalanced set of subset.mode and subset.profile}."""
    minority = minority_digits(subset, seed)
    everything = np.arange(len(labels), dtype=np.int64)
    if subset.mode == "per_batch":
        kept = everything
    elif subset.profile == "exponential":
        kept = draw_per_class(labels, long_tail_counts(labels, subset.class_order, subset.imbalance_ratio), seed)
    else:
        kept = build_subset(labels, minority_classes=minority, fraction=subset.fraction, seed=seed)
    return {"full": TrainingSelection(everything, minority, 1),
            "subset": TrainingSelection(kept, minority, subset.keep_minority_every,
                                        settings=subset_settings(subset))}


def subset_settings(subset: P.SubsetParams) -> dict:
    """The subset section as it shaped the subset (the run record of every variant trained on it)."""
    return {f"subset.{key}": json.dumps(list(value)) if isinstance(value, tuple) else value
            for key, value in dataclasses.asdict(subset).items()}


def hold_out(labels: np.ndarray, indices: np.ndarray, fraction: float,
             rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(kept, held out): round(fraction x count) images of each class among `indices`, drawn without
    replacement, are held out, so both parts keep the classes' shares. Sorted int64 indices into `labels`."""
    held_out = []
    for digit in range(NUM_CLASSES):
        members = indices[labels[indices] == digit]
        held_out.append(rng.choice(members, size=round(fraction * len(members)), replace=False))
    held_out = np.sort(np.concatenate(held_out)).astype(np.int64)
    return np.setdiff1d(indices, held_out), held_out


def split_validation(labels: np.ndarray, selections: dict[str, TrainingSelection], validation: P.ValidationParams,
                     seed: int) -> tuple[dict[str, TrainingSelection], dict[str, TrainingSelection]]:
    """(what each training set trains on, what it holds out for tuning): with validation.tune, each set holds
    out validation.fraction of each of its classes; otherwise it keeps every image and holds out none."""
    trained, held = {}, {}
    for index, (name, selection) in enumerate(selections.items()):
        kept, held_out = selection.indices, np.zeros(0, dtype=np.int64)
        if validation.tune:
            kept, held_out = hold_out(labels, kept, validation.fraction, stream_rng(seed, Stream.VALIDATION, index))
        trained[name] = dataclasses.replace(selection, indices=kept)
        held[name] = TrainingSelection(held_out, selection.minority_classes, keep_minority_every=1)
    return trained, held


def class_counts(labels: np.ndarray) -> dict[str, int]:
    """{"class_0": n0, ..., "class_9": n9}: keys without dots so `dvc metrics diff` shows each one."""
    counts = np.bincount(labels, minlength=NUM_CLASSES)
    return {f"class_{digit}": int(n) for digit, n in enumerate(counts)}


def main() -> None:
    params = P.read_params()
    data = P.section(params, "data", P.DataParams)
    subset = P.section(params, "subset", P.SubsetParams)
    validation = P.section(params, "validation", P.ValidationParams)
    seed = P.seed(params)
    _, labels = load_split("train", data.train_limit)
    selections, held_out = split_validation(labels, build_selections(labels, subset, seed), validation, seed)
    for name in selections:
        for path, selection in ((train_set_path(name), selections[name]), (validation_set_path(name), held_out[name])):
            with atomic_path(path) as tmp:
                save_selection(tmp, selection)
    kept = selections["subset"]
    counts = class_counts(labels[kept.indices])
    write_json(SUBSET_METRICS, {"train_images": len(kept.indices), "minority_classes": list(kept.minority_classes),
                                "keep_minority_every": kept.keep_minority_every,
                                "validation_images": len(held_out["subset"].indices), "per_class": counts})
    print(f"subset ({subset.mode}): {len(kept.indices)} of {len(labels)} training images: {counts}"
          + (f", minority digits in every {kept.keep_minority_every}th batch" if subset.mode == "per_batch" else "")
          + (f"; {len(held_out['subset'].indices)} held out for validation" if validation.tune else ""),
          file=sys.stderr)


if __name__ == "__main__":
    run_stage("subset", main)
