"""The imbalanced training subset: exact per-class counts, all majority images, reproducible from the seed."""

import zipfile

import numpy as np
import pytest

from stages.lib.data import DataError, TrainingSelection, load_selection, load_split, save_selection
from stages.lib.params import SubsetParams
from stages.subset import build_selections, build_subset, class_counts, minority_digits

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


def test_fixed_mode_trains_the_subset_draw_on_every_batch(train_labels, subset):
    selections = build_selections(train_labels, SubsetParams(MINORITY, 0.1, "fixed"), seed=0)
    np.testing.assert_array_equal(selections["subset"].indices, subset)
    np.testing.assert_array_equal(selections["full"].indices, np.arange(len(train_labels)))
    assert {name: (s.minority_classes, s.keep_minority_every) for name, s in selections.items()} == {
        "full": (MINORITY, 1), "subset": (MINORITY, 1)}


def test_per_batch_mode_keeps_every_image_and_the_minority_in_every_tenth_batch(train_labels):
    selections = build_selections(train_labels, SubsetParams(MINORITY, 0.1, "per_batch"), seed=0)
    np.testing.assert_array_equal(selections["subset"].indices, np.arange(len(train_labels)))
    assert selections["subset"].keep_minority_every == 10 and selections["full"].keep_minority_every == 1


def test_a_saved_selection_loads_back_and_carries_no_time_of_writing(tmp_path):
    # np.savez would stamp each zip entry with the time of writing; then every rerun of the subset stage would
    # change the training sets' bytes, and DVC would retrain every variant.
    selection = TrainingSelection(np.array([3, 5, 8], dtype=np.int64), (0, 4), 10)
    path = tmp_path / "subset.npz"
    save_selection(path, selection)
    with zipfile.ZipFile(path) as archive:
        assert {entry.date_time for entry in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}
    loaded = load_selection(path, split_size=9)
    np.testing.assert_array_equal(loaded.indices, selection.indices)
    assert (loaded.minority_classes, loaded.keep_minority_every) == ((0, 4), 10)
    with pytest.raises(DataError, match=r"indexes image 8 of a 8-image training split: it was built for another "
                                        r"data.train_limit; run `dvc repro subset`"):
        load_selection(path, split_size=8)


def test_exponential_profile_keeps_n0_times_ratio_to_the_minus_i_over_9(train_labels):
    subset = SubsetParams(MINORITY, 0.1, "fixed", profile="exponential", imbalance_ratio=100.0)
    kept = build_selections(train_labels, subset, seed=0)["subset"]
    counts = np.bincount(train_labels[kept.indices], minlength=10)
    # Digit 5 (first of class_order) keeps all its 5421 images; the i-th digit round(5421 * 100^(-i/9)).
    expected = {5: 5421, 6: 3250, 7: 1948, 8: 1168, 9: 700, 0: 420, 1: 252, 2: 151, 3: 90, 4: 54}
    assert {d: int(counts[d]) for d in expected} == expected
    assert 99 < counts[5] / counts[4] < 101  # the imbalance ratio, up to rounding
    assert kept.settings["subset.profile"] == "exponential" and kept.settings["subset.imbalance_ratio"] == 100.0


def test_the_step_profile_draws_what_it_drew_before_profiles_existed(train_labels, subset):
    # The report's subset is unchanged by the profile option: the same images, so committed runs still compare.
    step = build_selections(train_labels, SubsetParams(MINORITY, 0.1, "fixed"), seed=0)["subset"]
    np.testing.assert_array_equal(step.indices, subset)


def test_a_count_of_minority_classes_draws_them_from_the_seed(train_labels):
    drawn = {seed: minority_digits(SubsetParams(3, 0.1), seed) for seed in range(6)}
    assert all(len(digits) == 3 and list(digits) == sorted(set(digits)) for digits in drawn.values())
    assert drawn[0] == minority_digits(SubsetParams(3, 0.1), 0)  # reproducible
    assert len(set(drawn.values())) > 1  # repetitions vary which digits are rare
    selections = build_selections(train_labels, SubsetParams(3, 0.1), seed=0)
    assert selections["subset"].minority_classes == selections["full"].minority_classes == drawn[0]
    counts = np.bincount(train_labels[selections["subset"].indices], minlength=10)
    full = np.bincount(train_labels, minlength=10)
    for digit in range(10):
        assert counts[digit] == (round(0.1 * full[digit]) if digit in drawn[0] else full[digit])


def test_a_list_of_minority_classes_is_taken_as_it_is():
    assert minority_digits(SubsetParams((7, 2), 0.1), seed=5) == (7, 2)
