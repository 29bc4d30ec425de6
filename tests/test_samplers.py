"""Epoch orders, the per-batch protocol's batches and the class counts an epoch trains on, against hand counts."""

import numpy as np
import pytest

from stages.lib.samplers import (SAMPLERS, Sampler, balanced_class_counts, batch_plan, class_balanced_order,
                                 epoch_order, expected_class_counts, present_class_counts, shuffle_order,
                                 undersampled_class_counts, undersampled_order)

# 10 images of digit 0 and 900 of digit 5, interleaved so that a class's images are not one block.
IMBALANCED = np.random.default_rng(123).permutation(np.array([0] * 10 + [5] * 900))


def run_rng() -> np.random.Generator:
    """The run's own generator (undersampling's one draw): the same for every pass of a run."""
    return np.random.default_rng(99)


def test_registry():
    assert SAMPLERS["shuffle"] == Sampler(shuffle_order, present_class_counts)
    assert SAMPLERS["class_balanced"] == Sampler(class_balanced_order, balanced_class_counts)
    assert SAMPLERS["undersample"] == Sampler(undersampled_order, undersampled_class_counts)
    assert set(SAMPLERS) == {"shuffle", "class_balanced", "undersample"}


def test_shuffle_order_is_a_permutation_reproducible_from_the_rng():
    order = shuffle_order(IMBALANCED, np.random.default_rng(7), run_rng())
    np.testing.assert_array_equal(np.sort(order), np.arange(len(IMBALANCED)))
    np.testing.assert_array_equal(order, shuffle_order(IMBALANCED, np.random.default_rng(7), run_rng()))
    assert not np.array_equal(order, shuffle_order(IMBALANCED, np.random.default_rng(8), run_rng()))
    assert not np.array_equal(order, np.arange(len(IMBALANCED)))


def test_class_balanced_order_is_reproducible_from_the_rng():
    order = class_balanced_order(IMBALANCED, np.random.default_rng(7), run_rng())
    assert order.shape == IMBALANCED.shape and np.issubdtype(order.dtype, np.integer)
    assert order.min() >= 0 and order.max() < len(IMBALANCED)
    np.testing.assert_array_equal(order, class_balanced_order(IMBALANCED, np.random.default_rng(7), run_rng()))
    assert not np.array_equal(order, class_balanced_order(IMBALANCED, np.random.default_rng(8), run_rng()))


def epoch_draws(sampler, epochs: int = 22) -> np.ndarray:
    """The indices `sampler` draws from IMBALANCED over `epochs` epochs (22 * 910 = 20,020 draws)."""
    rng = np.random.default_rng(0)
    return np.concatenate([sampler(IMBALANCED, rng, run_rng()) for _ in range(epochs)])


# A binomial share of 20,020 draws with p = 1/2 has a standard deviation of 0.0035: 0.03 is 8.5 of them.
# Plain shuffling gives digit 0 a share of 10 / 910 = 0.011, far outside.
SHARE_TOLERANCE = 0.03


def share_of_digit_0(draws: np.ndarray) -> float:
    return float(np.mean(IMBALANCED[draws] == 0))


def test_class_balanced_order_draws_each_present_class_equally_often():
    draws = epoch_draws(class_balanced_order)
    assert set(IMBALANCED[draws]) == {0, 5}  # only the classes present; never an absent digit
    assert share_of_digit_0(draws) == pytest.approx(0.5, abs=SHARE_TOLERANCE)
    assert abs(share_of_digit_0(epoch_draws(shuffle_order)) - 0.5) > SHARE_TOLERANCE  # the check can fail


def test_undersampled_order_cuts_every_class_to_the_smallest_with_one_draw_per_run():
    labels = np.repeat([0, 1, 5, 7], [20, 30, 50, 100])[np.random.default_rng(4).permutation(200)]
    orders = [undersampled_order(labels, np.random.default_rng(epoch), run_rng()) for epoch in range(3)]
    for order in orders:
        np.testing.assert_array_equal(np.bincount(labels[order], minlength=10), [20, 20, 0, 0, 0, 20, 0, 20, 0, 0])
        assert len(np.unique(order)) == len(order)  # without replacement
        np.testing.assert_array_equal(np.sort(order[labels[order] == 0]), np.flatnonzero(labels == 0))
    # The same images every epoch (removed for the whole run, as from the data set), in another order each time.
    assert all(np.array_equal(np.sort(order), np.sort(orders[0])) for order in orders)
    assert not np.array_equal(orders[0], orders[1])
    # Another run (another seed) keeps other images of the majority classes.
    other = undersampled_order(labels, np.random.default_rng(0), np.random.default_rng(100))
    assert not np.array_equal(np.sort(other), np.sort(orders[0]))


@pytest.mark.parametrize("sampler", sorted(SAMPLERS))
def test_an_image_budget_fills_every_epoch_from_consecutive_passes(sampler):
    labels = np.repeat([0, 1, 5, 7], [20, 30, 50, 100])
    keys = []

    def pass_rng(*key):
        keys.append(key)
        return np.random.default_rng([3, *key])

    order = epoch_order(SAMPLERS[sampler], labels, pass_rng, run_rng(), images_per_epoch=450)
    assert len(order) == 450
    one_pass = len(SAMPLERS[sampler].order(labels, np.random.default_rng(0), run_rng()))
    assert keys == [(i,) for i in range(-(-450 // one_pass))]  # as many passes as it takes, each its own key
    np.testing.assert_array_equal(order[:one_pass], SAMPLERS[sampler].order(labels, np.random.default_rng([3, 0]),
                                                                          run_rng()))
    keys.clear()
    np.testing.assert_array_equal(epoch_order(SAMPLERS[sampler], labels, pass_rng, run_rng()),
                                  SAMPLERS[sampler].order(labels, np.random.default_rng([3]), run_rng()))
    assert keys == [()]  # without a budget: one pass, keyed as before budgets existed


def test_class_balanced_order_draws_the_images_of_a_class_uniformly():
    draws = epoch_draws(class_balanced_order)
    # Each of the 10 images of digit 0 is drawn ~1,001 times (sd ~30); 750-1250 is over 8 sd.
    per_image = np.bincount(draws, minlength=len(IMBALANCED))[IMBALANCED == 0]
    assert per_image.min() > 750 and per_image.max() < 1250, per_image
    # Each of the 900 images of digit 5 ~11 times: all but a handful are drawn at least once.
    assert len(np.unique(draws[IMBALANCED[draws] == 5])) >= 890


# --- batch_plan -------------------------------------------------------------------------------------------------

def test_batch_plan_keeping_every_image_returns_the_order_in_full_batches():
    order = np.random.default_rng(3).permutation(10)
    is_minority = np.arange(10) < 4
    trained, sizes = batch_plan(order, is_minority, batch_size=4, keep_minority_every=1)
    np.testing.assert_array_equal(trained, order)
    np.testing.assert_array_equal(sizes, [4, 4, 2])
    trained, sizes = batch_plan(order[:8], is_minority, batch_size=4, keep_minority_every=1)
    np.testing.assert_array_equal(sizes, [4, 4])


def test_batch_plan_keeps_minority_images_in_every_third_batch_only():
    # Images 0-4 are the minority. Batches of 3 of this order, minority images in brackets:
    #   0: 13 [2] 7    kept whole (index 0)
    #   1: [0] 9 [4]   -> 9
    #   2: 11 6 [1]    -> 11 6
    #   3: [3] 12 5    kept whole (index 3)
    #   4: 10 8        no minority images
    order = np.array([13, 2, 7, 0, 9, 4, 11, 6, 1, 3, 12, 5, 10, 8])
    is_minority = np.arange(14) < 5
    trained, sizes = batch_plan(order, is_minority, batch_size=3, keep_minority_every=3)
    np.testing.assert_array_equal(trained, [13, 2, 7, 9, 11, 6, 3, 12, 5, 10, 8])
    np.testing.assert_array_equal(sizes, [3, 1, 2, 3, 2])
    np.testing.assert_array_equal(np.sort(trained[~is_minority[trained]]), np.arange(5, 14))  # no majority dropped


def test_batch_plan_drops_a_batch_of_minority_images_only():
    # Batch 1 is [2, 3], both minority and index 1 is not a multiple of 2: no empty batch is left behind.
    trained, sizes = batch_plan(np.arange(6), np.isin(np.arange(6), [2, 3]), batch_size=2, keep_minority_every=2)
    np.testing.assert_array_equal(trained, [0, 1, 4, 5])
    np.testing.assert_array_equal(sizes, [2, 2])


def test_batch_plan_minority_images_only_in_batches_0_k_2k():
    rng = np.random.default_rng(5)
    labels = rng.integers(10, size=1000)
    is_minority = labels < 5
    order = rng.permutation(1000)
    trained, sizes = batch_plan(order, is_minority, batch_size=20, keep_minority_every=5)
    assert sizes.sum() == len(trained) and (sizes > 0).all()
    batch_of = np.repeat(np.arange(len(sizes)), sizes)
    assert set(batch_of[is_minority[trained]] % 5) == {0}
    # Batches 0, 5, ..., 45 are whole: 10 batches of 20; the other 40 keep their majority images only.
    in_kept_batches = order[np.arange(1000) // 20 % 5 == 0]
    assert np.count_nonzero(is_minority[trained]) == np.count_nonzero(is_minority[in_kept_batches])
    np.testing.assert_array_equal(np.sort(trained[~is_minority[trained]]), np.flatnonzero(~is_minority))


# --- expected_class_counts --------------------------------------------------------------------------------------

# 20 zeros, 30 ones, 50 fives, 100 sevens; digits 0 and 1 are the minority.
LABELS = np.repeat([0, 1, 5, 7], [20, 30, 50, 100])
IS_MINORITY = LABELS < 2


@pytest.mark.parametrize("sampler, k, expected", [
    ("shuffle", 1, [20, 30, 0, 0, 0, 50, 0, 100, 0, 0]),
    ("shuffle", 10, [2, 3, 0, 0, 0, 50, 0, 100, 0, 0]),  # minority counts / k: 20 batches of 10, 2 kept
    ("class_balanced", 1, [50, 50, 0, 0, 0, 50, 0, 50, 0, 0]),  # 200 draws over 4 present classes
    ("class_balanced", 10, [5, 5, 0, 0, 0, 50, 0, 50, 0, 0]),
    ("undersample", 1, [20, 20, 0, 0, 0, 20, 0, 20, 0, 0]),  # every class cut to the smallest, digit 0's 20
    ("undersample", 2, [10, 10, 0, 0, 0, 20, 0, 20, 0, 0]),  # 80 images in 8 batches of 10, 4 keep the minority
])
def test_expected_class_counts_by_hand(sampler, k, expected):
    counts = expected_class_counts(SAMPLERS[sampler], LABELS, IS_MINORITY, keep_minority_every=k, batch_size=10)
    np.testing.assert_allclose(counts, expected, rtol=1e-12)


@pytest.mark.parametrize("sampler", sorted(SAMPLERS))
def test_expected_class_counts_match_the_batches_actually_trained(sampler):
    # 200 images in 20 batches of 10, minority kept in batches 0 and 10: on average what the epochs train on.
    rng = np.random.default_rng(11)
    epochs = 400
    total = np.zeros(10)
    for _ in range(epochs):
        order = SAMPLERS[sampler].order(LABELS, rng, run_rng())
        trained, _ = batch_plan(order, IS_MINORITY, batch_size=10, keep_minority_every=10)
        total += np.bincount(LABELS[trained], minlength=10)
    expected = expected_class_counts(SAMPLERS[sampler], LABELS, IS_MINORITY, keep_minority_every=10, batch_size=10)
    # Per class and epoch the count varies by at most ~7 (sd); over 400 epochs the mean's sd is < 0.4.
    np.testing.assert_allclose(total / epochs, expected, atol=2.0)


def test_expected_class_counts_when_the_batches_are_not_a_multiple_of_k():
    # 250 images in batches of 100: 3 batches, of which only batch 0 keeps the minority with k = 10, so about
    # 100/250 of the 50 minority images are trained on per epoch, not 50/10.
    labels = np.repeat([0, 5], [50, 200])
    is_minority = labels == 0
    rng = np.random.default_rng(0)
    kept = [np.count_nonzero(is_minority[batch_plan(shuffle_order(labels, rng, run_rng()), is_minority,
                                                    batch_size=100,
                                                    keep_minority_every=10)[0]]) for _ in range(2000)]
    expected = expected_class_counts(SAMPLERS["shuffle"], labels, is_minority, keep_minority_every=10,
                                     batch_size=100)
    assert np.mean(kept) == pytest.approx(expected[0], abs=1.0)
    assert expected[5] == 200
