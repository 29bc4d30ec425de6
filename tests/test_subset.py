"""The imbalanced training subset: exact per-class counts, all majority images, reproducible from the seed."""

import numpy as np
import pytest

from stages.data import load_split
from stages.subset import build_subset, class_counts

MINORITY = (0, 1, 2, 3, 4)
# round(0.1 x count) for digits 0-4 with the real counts 5923 6742 5958 6131 5842 (shared/README.md):
# 592.3 -> 592, 674.2 -> 674, 595.8 -> 596, 613.1 -> 613, 584.2 -> 584; digits 5-9 keep all their images.
EXPECTED_COUNTS = [592, 674, 596, 613, 584, 5421, 5918, 6265, 5851, 5949]


@pytest.fixture(scope="module")
def train_labels(raw_dir) -> np.ndarray:
    return load_split("train", raw_dir=raw_dir)[1]


@pytest.fixture(scope="module")
def subset(train_labels) -> np.ndarray:
    return build_subset(train_labels, minority_classes=MINORITY, fraction=0.1, seed=0)


def test_keeps_round_fraction_of_each_minority_class(train_labels, subset):
    assert np.bincount(train_labels[subset], minlength=10).tolist() == EXPECTED_COUNTS
    assert len(subset) == sum(EXPECTED_COUNTS) == 32463


def test_keeps_every_majority_image(train_labels, subset):
    majority = np.flatnonzero(train_labels >= 5)
    assert np.isin(majority, subset).all()


def test_indices_are_sorted_unique_int64(subset):
    assert subset.dtype == np.int64
    assert np.all(np.diff(subset) > 0)
    assert subset[0] >= 0 and subset[-1] < 60000


def test_same_seed_gives_the_same_subset(train_labels, subset):
    again = build_subset(train_labels, minority_classes=MINORITY, fraction=0.1, seed=0)
    np.testing.assert_array_equal(again, subset)


def test_another_seed_draws_other_images_in_the_same_counts(train_labels, subset):
    other = build_subset(train_labels, minority_classes=MINORITY, fraction=0.1, seed=1)
    assert not np.array_equal(other, subset)
    assert np.bincount(train_labels[other], minlength=10).tolist() == EXPECTED_COUNTS


def test_fraction_one_keeps_everything(train_labels):
    kept = build_subset(train_labels, minority_classes=MINORITY, fraction=1.0, seed=0)
    np.testing.assert_array_equal(kept, np.arange(len(train_labels)))


def test_class_counts_has_one_key_per_digit():
    assert class_counts(np.array([0, 0, 3, 9, 3, 3])) == {
        "class_0": 2, "class_1": 0, "class_2": 0, "class_3": 3, "class_4": 0,
        "class_5": 0, "class_6": 0, "class_7": 0, "class_8": 0, "class_9": 1}
