"""Remedies for class imbalance, registered by name: each turns its params.yaml `losses.<name>` entry, the
number of epochs and the training set's class counts into the phases a model trains through.

A phase is one loss with fixed keyword arguments for some epochs; the model and optimizer carry over from
phase to phase. Cross-entropy is one phase, the focal curriculum one phase per gamma, LDAM-DRW two (plain,
then re-weighted). Re-sampling is not a loss but a sampler (stages.samplers), set per variant.
"""

import dataclasses
import functools
import math

import numpy as np
import paddle

from stages import params as P
from stages.losses import LOSSES


@dataclasses.dataclass(frozen=True)
class Phase:
    loss: str  # a key of stages.losses.LOSSES
    epochs: int
    # Keyword arguments of the loss: numbers, or per-class tuples [C] (turned into tensors on the device).
    options: dict = dataclasses.field(default_factory=dict)

    def loss_fn(self):
        kwargs = {key: paddle.to_tensor(np.array(value, dtype=np.float32)) if isinstance(value, tuple) else value
                  for key, value in self.options.items()}
        return functools.partial(LOSSES[self.loss], **kwargs)

    def describe(self) -> str:
        """E.g. "focal, gamma 0.5": the loss and its scalar hyperparameters, for messages."""
        return ", ".join([self.loss, *(f"{key} {value:g}" for key, value in self.log_columns().items())])

    def log_columns(self) -> dict:
        """The phase's scalar hyperparameters, for the per-epoch training log (gamma of a curriculum)."""
        return {key: value for key, value in self.options.items() if not isinstance(value, tuple)}


def class_balanced_weights(class_counts: np.ndarray, beta: float) -> np.ndarray:
    """w_c proportional to 1 / E_c, E_c = (1 - beta^n_c) / (1 - beta) the effective number of samples of
    class c (Cui et al., 2019), scaled so that the weights sum to the number of classes. beta = 0 gives ones."""
    counts = np.maximum(np.asarray(class_counts, dtype=np.float64), 1.0)  # an absent class counts as one image
    weights = (1.0 - beta) / (1.0 - np.power(beta, counts))
    return weights * len(counts) / weights.sum()


def ldam_margins(class_counts: np.ndarray, max_margin: float) -> np.ndarray:
    """Delta_c proportional to n_c^(-1/4), the rarest class's margin being max_margin (Cao et al., 2019)."""
    counts = np.maximum(np.asarray(class_counts, dtype=np.float64), 1.0)
    margins = counts ** -0.25
    return margins * (max_margin / margins.max())


def log_prior(class_counts: np.ndarray) -> np.ndarray:
    """log(n_c / sum n), an absent class counting as one image so that the log stays finite."""
    counts = np.maximum(np.asarray(class_counts, dtype=np.float64), 1.0)
    return np.log(counts / counts.sum())


def _cross_entropy(_: P.CrossEntropyParams, epochs: int, counts: np.ndarray) -> list[Phase]:
    return [Phase("cross_entropy", epochs)]


def _focal(p: P.FocalParams, epochs: int, counts: np.ndarray) -> list[Phase]:
    return [Phase("focal", epochs, {"gamma": p.gamma})]


def _focal_curriculum(p: P.FocalCurriculumParams, epochs: int | None, counts: np.ndarray) -> list[Phase]:
    return [Phase("focal", p.epochs_per_gamma, {"gamma": gamma}) for gamma in p.gammas]


def _class_balanced(p: P.ClassBalancedParams, epochs: int, counts: np.ndarray) -> list[Phase]:
    weights = tuple(class_balanced_weights(counts, p.beta).tolist())
    return [Phase("weighted_cross_entropy", epochs, {"class_weights": weights})]


def _logit_adjusted(p: P.LogitAdjustedParams, epochs: int, counts: np.ndarray) -> list[Phase]:
    return [Phase("logit_adjusted", epochs, {"log_prior": tuple(log_prior(counts).tolist()), "tau": p.tau})]


def _ldam_drw(p: P.LdamDrwParams, epochs: int, counts: np.ndarray) -> list[Phase]:
    """LDAM with unit weights, then with class-balanced weights for the last (1 - drw_start) of the epochs."""
    margins = tuple((p.scale * ldam_margins(counts, p.max_margin)).tolist())  # the logits are s * cos
    plain_epochs = math.floor(p.drw_start * epochs + 0.5)  # rounded half up
    ones = tuple([1.0] * len(counts))
    reweighted = tuple(class_balanced_weights(counts, p.beta).tolist())
    phases = [Phase("ldam", plain_epochs, {"margins": margins, "class_weights": ones}),
              Phase("ldam", epochs - plain_epochs, {"margins": margins, "class_weights": reweighted})]
    return [phase for phase in phases if phase.epochs > 0]


REMEDIES = {"cross_entropy": _cross_entropy, "focal": _focal, "focal_curriculum": _focal_curriculum,
            "class_balanced": _class_balanced, "logit_adjusted": _logit_adjusted, "ldam_drw": _ldam_drw}


def training_phases(variant: P.VariantParams, loss_params, class_counts: np.ndarray) -> list[Phase]:
    """The phases `variant` trains through, in order; class_counts [C] = images of each class per epoch."""
    return REMEDIES[variant.loss](loss_params, variant.epochs, np.asarray(class_counts))


def cosine_scale(variant: P.VariantParams, loss_params) -> float | None:
    """LDAM needs a cosine classifier with logits s * cos (Cao et al.'s code); every other loss the plain
    LeNet head (None)."""
    return loss_params.scale if variant.loss == "ldam_drw" else None
