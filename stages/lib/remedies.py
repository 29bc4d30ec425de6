"""Remedies for class imbalance, one record each, looked up by the name a variant's `loss` gives.

A record holds everything about its remedy: the dataclass of its params.yaml `losses.<name>` entry (the
defaults there are the paper's; docs/remedies.md cites each), how it turns that entry, the number of epochs and the
training set's class counts into the phases a model trains through, and the classifier head it needs.
Adding a remedy is one record here, its defaults in params.yaml, its citation in docs/remedies.md and its test.

A phase is one per-batch loss (stages.lib.losses) with fixed keyword arguments for some epochs; the model and
optimizer carry over from phase to phase. Cross-entropy is one phase, the focal curriculum one phase per
gamma, LDAM-DRW two (plain, then re-weighted), cRT two (the whole network, then only its re-initialised
classifier, on class-balanced batches). Re-sampling is not a loss but a sampler (stages.lib.samplers); a phase
may name its own.
"""

import dataclasses
import functools
import math
from collections.abc import Callable

import numpy as np
import paddle

from stages.lib import losses
from stages.lib.metrics import log_prior
from stages.lib.params import ParamsError, require


@dataclasses.dataclass(frozen=True)
class Phase:
    loss: Callable  # a per-batch loss of stages.lib.losses: (logits, labels, **options) -> 0-d tensor
    epochs: int
    # Keyword arguments of the loss: numbers, or per-class tuples [C] (turned into tensors on the device).
    options: dict = dataclasses.field(default_factory=dict)
    sampler: str | None = None  # a key of stages.lib.samplers.SAMPLERS; None = the variant's sampler
    # True: the classifier (the last layer) is re-initialised when the phase starts and is all that trains.
    classifier_only: bool = False

    def loss_fn(self):
        kwargs = {key: paddle.to_tensor(np.array(value, dtype=np.float32)) if isinstance(value, tuple) else value
                  for key, value in self.options.items()}
        return functools.partial(self.loss, **kwargs)

    def describe(self) -> str:
        """E.g. "focal_loss, gamma 0.5": the loss and its scalar hyperparameters, for messages."""
        return ", ".join([self.loss.__name__, *(f"{key} {value:g}" for key, value in self.log_columns().items())])

    def log_columns(self) -> dict:
        """The phase's numeric hyperparameters, for the per-epoch training log (gamma of a curriculum)."""
        return {key: value for key, value in self.options.items()
                if isinstance(value, (int, float)) and not isinstance(value, bool)}


@dataclasses.dataclass(frozen=True)
class Remedy:
    params: type  # the frozen dataclass of its `losses.<name>` entry
    # (params, epochs, class counts [C]) -> the phases, in order; epochs is None for a fixed-length remedy.
    phases: Callable[..., list[Phase]]
    fixed_length: bool = False  # its params set the number of epochs (the curriculum): a variant gives none
    head_scale: Callable[..., float | None] = lambda params: None  # s of a cosine classifier; None = fc 10


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


@dataclasses.dataclass(frozen=True)
class CrossEntropyParams:
    pass


def _cross_entropy(_: CrossEntropyParams, epochs: int, counts: np.ndarray) -> list[Phase]:
    return [Phase(losses.cross_entropy, epochs)]


@dataclasses.dataclass(frozen=True)
class FocalParams:  # Lin et al., 2017
    gamma: float  # FL = -(1 - p_t)^gamma log p_t; 0 is cross-entropy
    detach_factor: bool = False  # true: (1 - p_t)^gamma without gradient, the course report's no_grad reading

    def __post_init__(self):
        require(self.gamma >= 0, "losses.focal.gamma", self.gamma, "a number >= 0")


def _focal(p: FocalParams, epochs: int, counts: np.ndarray) -> list[Phase]:
    return [Phase(losses.focal_loss, epochs, {"gamma": p.gamma, "detach_factor": p.detach_factor})]


@dataclasses.dataclass(frozen=True)
class FocalCurriculumParams:  # the course report
    gammas: tuple[float, ...]  # one phase per gamma, in this order, one model throughout
    epochs_per_gamma: int
    detach_factor: bool = False  # as FocalParams.detach_factor

    def __post_init__(self):
        key = "losses.focal_curriculum"
        valid = len(self.gammas) > 0 and all(g >= 0 for g in self.gammas)
        require(valid, f"{key}.gammas", self.gammas, "a non-empty list of numbers >= 0")
        require(self.epochs_per_gamma > 0, f"{key}.epochs_per_gamma", self.epochs_per_gamma, "an integer > 0")


def _focal_curriculum(p: FocalCurriculumParams, epochs: None, counts: np.ndarray) -> list[Phase]:
    return [Phase(losses.focal_loss, p.epochs_per_gamma, {"gamma": gamma, "detach_factor": p.detach_factor})
            for gamma in p.gammas]


@dataclasses.dataclass(frozen=True)
class ClassBalancedParams:  # Cui et al., 2019
    beta: float  # effective number of samples (1 - beta^n) / (1 - beta); 0 = no re-weighting

    def __post_init__(self):
        require(0 <= self.beta < 1, "losses.class_balanced.beta", self.beta, "a number in [0, 1)")


def _class_balanced(p: ClassBalancedParams, epochs: int, counts: np.ndarray) -> list[Phase]:
    weights = tuple(class_balanced_weights(counts, p.beta).tolist())
    return [Phase(losses.weighted_cross_entropy, epochs, {"class_weights": weights})]


@dataclasses.dataclass(frozen=True)
class LogitAdjustedParams:  # Menon et al., 2021; tau = 1 is the balanced softmax of Ren et al., 2020
    tau: float  # training logits + tau * log(prior)

    def __post_init__(self):
        require(self.tau >= 0, "losses.logit_adjusted.tau", self.tau, "a number >= 0")


def _logit_adjusted(p: LogitAdjustedParams, epochs: int, counts: np.ndarray) -> list[Phase]:
    return [Phase(losses.logit_adjusted_loss, epochs, {"log_prior": tuple(log_prior(counts).tolist()), "tau": p.tau})]


@dataclasses.dataclass(frozen=True)
class LdamDrwParams:  # Cao et al., 2019
    max_margin: float  # margin of the rarest class; class j gets max_margin * (n_min / n_j)^(1/4); 0 = none
    scale: float  # s: the cosine classifier's logits are s * cos(feature, class weight)
    drw_start: float  # share of the epochs trained before the deferred re-weighting starts
    beta: float  # class-balanced weights of the re-weighting phase

    def __post_init__(self):
        key = "losses.ldam_drw"
        require(self.max_margin >= 0, f"{key}.max_margin", self.max_margin,
                "a number >= 0 (0: a plain cosine softmax, the ablation of the margins)")
        require(self.scale > 0, f"{key}.scale", self.scale, "a number > 0")
        require(0 <= self.drw_start <= 1, f"{key}.drw_start", self.drw_start, "a number in [0, 1]")
        require(0 <= self.beta < 1, f"{key}.beta", self.beta, "a number in [0, 1)")


def _ldam_drw(p: LdamDrwParams, epochs: int, counts: np.ndarray) -> list[Phase]:
    """LDAM with unit weights, then with class-balanced weights for the last (1 - drw_start) of the epochs."""
    margins = tuple((p.scale * ldam_margins(counts, p.max_margin)).tolist())  # the logits are s * cos
    plain_epochs = math.floor(p.drw_start * epochs + 0.5)  # rounded half up
    ones = tuple([1.0] * len(counts))
    reweighted = tuple(class_balanced_weights(counts, p.beta).tolist())
    phases = [Phase(losses.ldam_loss, plain_epochs, {"margins": margins, "class_weights": ones}),
              Phase(losses.ldam_loss, epochs - plain_epochs, {"margins": margins, "class_weights": reweighted})]
    return [phase for phase in phases if phase.epochs > 0]


@dataclasses.dataclass(frozen=True)
class CrtParams:  # Kang et al., 2020: classifier re-training
    classifier_share: float  # share of the epochs that re-train only the classifier, at the end

    def __post_init__(self):
        require(0 < self.classifier_share < 1, "losses.crt.classifier_share", self.classifier_share,
                "a number in (0, 1): both phases need epochs")


def _crt(p: CrtParams, epochs: int, counts: np.ndarray) -> list[Phase]:
    """Cross-entropy with the variant's sampler (the representation), then the classifier alone, re-initialised,
    with class-balanced sampling, for the last classifier_share of the epochs (at least one each)."""
    classifier_epochs = min(max(math.floor(p.classifier_share * epochs + 0.5), 1), epochs - 1)
    if classifier_epochs < 1:
        raise ParamsError(f"losses.crt needs at least 2 epochs (one per phase); the variant has {epochs}")
    return [Phase(losses.cross_entropy, epochs - classifier_epochs),
            Phase(losses.cross_entropy, classifier_epochs, sampler="class_balanced", classifier_only=True)]


REMEDIES = {
    "cross_entropy": Remedy(CrossEntropyParams, _cross_entropy),
    "focal": Remedy(FocalParams, _focal),
    "focal_curriculum": Remedy(FocalCurriculumParams, _focal_curriculum, fixed_length=True),
    "class_balanced": Remedy(ClassBalancedParams, _class_balanced),
    "logit_adjusted": Remedy(LogitAdjustedParams, _logit_adjusted),
    # LDAM needs a cosine classifier with logits s * cos (Cao et al.'s code).
    "ldam_drw": Remedy(LdamDrwParams, _ldam_drw, head_scale=lambda p: p.scale),
    "crt": Remedy(CrtParams, _crt),
}
