"""Which training images each epoch visits, in which order and in which batches.

A sampler (looked up by name, set per variant) orders the training set for one epoch and knows the class
counts that order implies; `batch_plan` then cuts the order into batches and applies the report's per-batch
protocol when the training set asks for it.
"""

import dataclasses
from collections.abc import Callable

import numpy as np

from stages.lib.data import NUM_CLASSES


def shuffle_order(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Every image once, in a random order."""
    return rng.permutation(len(labels))


def class_balanced_order(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """As many draws as images, each picking a class uniformly (among those present), then an image of it
    uniformly, with replacement: class-balanced re-sampling (e.g. Kang et al., 2020)."""
    classes = np.unique(labels)
    members = [np.flatnonzero(labels == c) for c in classes]
    drawn_class = rng.integers(len(classes), size=len(labels))
    sizes = np.array([len(m) for m in members])
    offsets = (rng.random(len(labels)) * sizes[drawn_class]).astype(np.int64)  # uniform in [0, size)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    return np.concatenate(members)[starts[drawn_class] + offsets]


def present_class_counts(labels: np.ndarray) -> np.ndarray:
    """[10] images of each class in `labels`: what an epoch of `shuffle` visits."""
    return np.bincount(labels, minlength=NUM_CLASSES).astype(np.float64)


def balanced_class_counts(labels: np.ndarray) -> np.ndarray:
    """[10] the expected visits of each class under `class_balanced`: the epoch's images shared equally among
    the classes present."""
    present = present_class_counts(labels) > 0
    return present * (len(labels) / np.count_nonzero(present))


@dataclasses.dataclass(frozen=True)
class Sampler:
    order: Callable[[np.ndarray, np.random.Generator], np.ndarray]  # (labels, rng) -> one epoch's indices
    class_counts: Callable[[np.ndarray], np.ndarray]  # labels -> [10] expected images per class and epoch


SAMPLERS = {"shuffle": Sampler(shuffle_order, present_class_counts),
            "class_balanced": Sampler(class_balanced_order, balanced_class_counts)}


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
                          batch_size: int) -> np.ndarray:
    """Images of each class [10] an epoch trains on, on average: the class prior the model learns, which the
    re-weighting losses and post-hoc logit adjustment correct for."""
    counts = sampler.class_counts(labels)
    # The share of an epoch's positions that fall in a batch keeping the minority: 1 / k when the number of
    # batches is a multiple of k (600 full-MNIST batches, k = 10), more when the last kept batch is a short one.
    positions = np.arange(len(labels))
    kept_share = np.count_nonzero(positions // batch_size % keep_minority_every == 0) / len(labels)
    minority_class = np.bincount(labels[is_minority], minlength=NUM_CLASSES) > 0
    counts[minority_class] *= kept_share
    return counts
