"""Which training images each epoch visits, in which order and in which batches.

A sampler (looked up by name, set per variant) orders the training set for one pass and knows the class counts
that order implies; `epoch_order` makes an epoch of one pass, or of a fixed number of images (a variant's image
budget) from as many passes as that takes; `batch_plan` then cuts the order into batches and applies the
report's per-batch protocol when the training set asks for it.

Every order is a pure function of the labels and two generators: `rng`, the pass's own (keyed by phase, epoch
and pass), and `run_rng`, the same for the whole run (undersampling's one draw of the majority images).
"""

import dataclasses
from collections.abc import Callable

import numpy as np

from stages.lib.data import NUM_CLASSES


def shuffle_order(labels: np.ndarray, rng: np.random.Generator, run_rng: np.random.Generator) -> np.ndarray:
    """Every image once, in a random order."""
    return rng.permutation(len(labels))


def class_balanced_order(labels: np.ndarray, rng: np.random.Generator, run_rng: np.random.Generator) -> np.ndarray:
    """As many draws as images, each picking a class uniformly (among those present), then an image of it
    uniformly, with replacement: class-balanced re-sampling (e.g. Kang et al., 2020)."""
    classes = np.unique(labels)
    members = [np.flatnonzero(labels == c) for c in classes]
    drawn_class = rng.integers(len(classes), size=len(labels))
    sizes = np.array([len(m) for m in members])
    offsets = (rng.random(len(labels)) * sizes[drawn_class]).astype(np.int64)  # uniform in [0, size)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    return np.concatenate(members)[starts[drawn_class] + offsets]


def undersampled_order(labels: np.ndarray, rng: np.random.Generator, run_rng: np.random.Generator) -> np.ndarray:
    """Random majority undersampling (Buda et al., 2018): every class present cut to the size of the smallest,
    by one draw without replacement for the whole run (from run_rng), then that set once in a random order.
    The images it removes are never trained on, as if they had been deleted from the training set."""
    classes = np.unique(labels)
    members = [np.flatnonzero(labels == c) for c in classes]
    smallest = min(len(m) for m in members)
    kept = np.sort(np.concatenate([run_rng.choice(m, size=smallest, replace=False) for m in members]))
    return kept[rng.permutation(len(kept))]


def present_class_counts(labels: np.ndarray) -> np.ndarray:
    """[10] images of each class in `labels`: what an epoch of `shuffle` visits."""
    return np.bincount(labels, minlength=NUM_CLASSES).astype(np.float64)


def balanced_class_counts(labels: np.ndarray) -> np.ndarray:
    """[10] the expected visits of each class under `class_balanced`: the epoch's images shared equally among
    the classes present."""
    present = present_class_counts(labels) > 0
    return present * (len(labels) / np.count_nonzero(present))


def undersampled_class_counts(labels: np.ndarray) -> np.ndarray:
    """[10] images of each class under `undersample`: the smallest class's count for every class present."""
    counts = present_class_counts(labels)
    return (counts > 0) * counts[counts > 0].min()


@dataclasses.dataclass(frozen=True)
class Sampler:
    # (labels, rng, run_rng) -> one pass's indices
    order: Callable[[np.ndarray, np.random.Generator, np.random.Generator], np.ndarray]
    class_counts: Callable[[np.ndarray], np.ndarray]  # labels -> [10] expected images per class and pass


SAMPLERS = {"shuffle": Sampler(shuffle_order, present_class_counts),
            "class_balanced": Sampler(class_balanced_order, balanced_class_counts),
            "undersample": Sampler(undersampled_order, undersampled_class_counts)}


def epoch_order(sampler: Sampler, labels: np.ndarray, pass_rng: Callable[..., np.random.Generator],
                run_rng: np.random.Generator, images_per_epoch: int | None = None) -> np.ndarray:
    """One epoch's indices: one pass of the sampler (pass_rng()), or with images_per_epoch exactly that many,
    from consecutive passes pass_rng(0), pass_rng(1), ... cut where the count is reached. An image budget
    thus trains a small subset for as many images as a large one, in epochs of the same size."""
    if images_per_epoch is None:
        return sampler.order(labels, pass_rng(), run_rng)
    passes, total = [], 0
    while total < images_per_epoch:
        passes.append(sampler.order(labels, pass_rng(len(passes)), run_rng))
        total += len(passes[-1])
    return np.concatenate(passes)[:images_per_epoch]


def batch_plan(order: np.ndarray, is_minority: np.ndarray, *, batch_size: int,
               keep_minority_every: int) -> tuple[np.ndarray, np.ndarray]:
    """The images trained on, in order, and the size of each batch.

    Batches are the consecutive `batch_size` slices of `order`. With keep_minority_every = k > 1 (the report's
    per-batch protocol), minority images are dropped from every batch whose index is not a multiple of k, so
    those batches shrink; k = 1 keeps every image.
    """
    batch_index = np.arange(len(order)) // batch_size
    keep = ~is_minority[order] | (batch_index % keep_minority_every == 0)
    sizes = np.bincount(batch_index[keep], minlength=batch_index[-1] + 1 if len(order) else 0)
    return order[keep], sizes[sizes > 0]


def expected_class_counts(sampler: Sampler, labels: np.ndarray, is_minority: np.ndarray, *, keep_minority_every: int,
                          batch_size: int, images_per_epoch: int | None = None) -> np.ndarray:
    """Images of each class [10] a pass of the sampler trains on, on average: the class prior the model learns,
    which the re-weighting losses and post-hoc logit adjustment correct for. An epoch of images_per_epoch images
    has the same shares; it matters only to the per-batch protocol, whose kept share depends on its length."""
    counts = sampler.class_counts(labels)
    # The share of an epoch's positions that fall in a batch keeping the minority: 1 / k when the number of
    # batches is a multiple of k (600 full-MNIST batches, k = 10), more when the last kept batch is a short one.
    positions = np.arange(images_per_epoch if images_per_epoch is not None else round(counts.sum()))
    kept_share = np.count_nonzero(positions // batch_size % keep_minority_every == 0) / len(positions)
    minority_class = np.bincount(labels[is_minority], minlength=NUM_CLASSES) > 0
    counts[minority_class] *= kept_share
    return counts
