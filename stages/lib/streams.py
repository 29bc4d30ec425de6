"""The pipeline's random streams: one seed in params.yaml, one key per stream, every stream derived explicitly.

A stream is a pure function of the seed and its key, so each is reproducible on its own, whatever ran before
it: a resumed training run draws exactly like an unbroken one. (Paddle's weight initialisation is seeded
with the seed itself, through paddle.seed.)
"""

import enum

import numpy as np


class Stream(enum.IntEnum):
    SUBSET = 1  # the fixed subset's draw of minority images
    SHUFFLE = 2  # an epoch's order, keyed further by (phase, epoch) and, with an image budget, by pass
    VALIDATION = 3  # the images a training set holds out for tuning, keyed further by the set's index
    CLASSIFIER = 4  # cRT's re-initialised classifier
    AUGMENT = 5  # an epoch's random shifts, keyed further by (phase, epoch)
    MINORITY = 6  # which digits are the minority, when subset.minority_classes is a count
    UNDERSAMPLE = 7  # the undersampling sampler's one draw of each class's images for the whole run


def stream_rng(seed: int, stream: Stream, *key: int) -> np.random.Generator:
    """A generator for `stream`, further keyed by e.g. (phase, epoch)."""
    return np.random.default_rng([seed, int(stream), *key])
