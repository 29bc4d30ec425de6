"""Random-shift augmentation: new views of the same images, drawn from the seed's own stream."""

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


class ShiftAugmenter:
    """Shifts each image [1, H, W] by whole pixels (dy, dx), each uniform in [-k, k], the background filling
    what moves in. The images are padded once; an epoch's shifted copy is a gather of windows of the padded
    array, so no image is copied more than once per epoch."""

    def __init__(self, images: np.ndarray, shift_px: int, background: float):
        k = self.shift_px = shift_px
        padded = np.pad(images, ((0, 0), (0, 0), (k, k), (k, k)), constant_values=np.float32(background))
        # [N, 1, 2k + 1, 2k + 1, H, W]: every shifted view of every image, without copying.
        self._views = sliding_window_view(padded, images.shape[-2:], axis=(2, 3))

    def shifted(self, rng: np.random.Generator) -> np.ndarray:
        """[N, 1, H, W] float32: image n moved by (dy, dx) = (k - row, k - col), a fresh draw per image."""
        n = len(self._views)
        offsets = rng.integers(0, 2 * self.shift_px + 1, size=(2, n))  # window row, column in [0, 2k]
        return np.ascontiguousarray(self._views[np.arange(n), 0, offsets[0], offsets[1]][:, None])
