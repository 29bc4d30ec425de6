"""Random shifts: each image moves by whole pixels within [-k, k], the background fills in, and the draw is the
stream's."""

import numpy as np

from stages.lib.augment import ShiftAugmenter


def test_each_image_is_its_own_shift_with_background_fill():
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 1, (50, 1, 6, 6)).astype(np.float32)
    shifted = ShiftAugmenter(images, 2, background=-1.0).shifted(np.random.default_rng(7))
    assert shifted.shape == images.shape and shifted.dtype == np.float32
    padded = np.pad(images, ((0, 0), (0, 0), (2, 2), (2, 2)), constant_values=-1.0)
    offsets = np.random.default_rng(7).integers(0, 5, size=(2, 50))  # the same draw, by hand
    for n in range(50):
        row, col = offsets[:, n]
        np.testing.assert_array_equal(shifted[n, 0], padded[n, 0, row:row + 6, col:col + 6])
    assert len({tuple(o) for o in offsets.T}) > 10  # many different shifts, including moves off-centre


def test_the_same_stream_gives_the_same_shifts():
    images = np.random.default_rng(1).uniform(0, 1, (20, 1, 6, 6)).astype(np.float32)
    augmenter = ShiftAugmenter(images, 1, background=0.0)
    a = augmenter.shifted(np.random.default_rng([3, 5]))
    b = augmenter.shifted(np.random.default_rng([3, 5]))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, augmenter.shifted(np.random.default_rng([3, 6])))
