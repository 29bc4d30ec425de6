"""Typed, validated views of params.yaml: one frozen dataclass per section.

Every stage turns the sections it declares in dvc.yaml into these objects before doing any work, so a
typo or an out-of-range value fails at once with the key, the value and what is allowed.
"""

import dataclasses
import math
import types
import typing
from pathlib import Path

import yaml

from stages.cli import StageError

PARAMS_FILE = Path("params.yaml")
DEVICES = ("auto", "cpu", "gpu")
TRAIN_SETS = ("full", "subset")
SUBSET_MODES = ("fixed", "per_batch")
SAMPLERS = ("shuffle", "class_balanced")  # stages.samplers registers them
MAX_SEED = 2**32  # numpy takes any seed >= 0; paddle.seed fails beyond 64 bits


class ParamsError(StageError, ValueError):
    """A value in params.yaml is missing, of the wrong type, out of range or unknown."""


@dataclasses.dataclass(frozen=True)
class DownloadParams:
    mirrors: tuple[str, ...]  # base URLs, tried in order after $MNIST_MIRROR
    timeout_s: float  # per file downloaded

    def __post_init__(self):
        _require(len(self.mirrors) > 0, "download.mirrors", self.mirrors, "a non-empty list of base URLs")
        _require(self.timeout_s > 0, "download.timeout_s", self.timeout_s, "a number of seconds > 0")


@dataclasses.dataclass(frozen=True)
class DataParams:
    pixel_range: tuple[float, ...]  # [low, high]: pixel value 0 maps to low, 255 to high
    train_limit: int | None = None  # use only the first N training images (tests); null = all 60000
    test_limit: int | None = None  # use only the first N test images; null = all 10000

    def __post_init__(self):
        low_high = len(self.pixel_range) == 2 and self.pixel_range[0] < self.pixel_range[1]
        _require(low_high, "data.pixel_range", self.pixel_range, "[low, high] with low < high, e.g. [-1, 1]")
        for key in ("train_limit", "test_limit"):
            value = getattr(self, key)
            _require(value is None or value > 0, f"data.{key}", value, "null (all images) or an integer > 0")


@dataclasses.dataclass(frozen=True)
class SubsetParams:
    minority_classes: tuple[int, ...]  # digits of which only `fraction` is kept
    fraction: float  # share of each minority class kept, in (0, 1]
    # fixed: one seeded draw of the minority images, the same every epoch. per_batch: the report's protocol,
    # every training image, but the minority digits are dropped from every batch whose index is not a
    # multiple of 1 / fraction, so each epoch sees a different `fraction` of them.
    mode: str = "fixed"

    def __post_init__(self):
        classes = self.minority_classes
        valid = len(classes) > 0 and len(set(classes)) == len(classes) and all(0 <= c <= 9 for c in classes)
        _require(valid, "subset.minority_classes", classes, "a non-empty list of distinct digits 0-9")
        _require(0 < self.fraction <= 1, "subset.fraction", self.fraction, "a number in (0, 1]")
        _require(self.mode in SUBSET_MODES, "subset.mode", self.mode, f"one of {list(SUBSET_MODES)}")
        if self.mode == "per_batch":
            _require(abs(1 / self.fraction - round(1 / self.fraction)) < 1e-9, "subset.fraction", self.fraction,
                     "1 / k for an integer k in per_batch mode (minority digits kept in every k-th batch)")

    @property
    def keep_minority_every(self) -> int:
        """Per-batch mode keeps the minority digits in batches 0, k, 2k, ...; 1 = in every batch."""
        return round(1 / self.fraction) if self.mode == "per_batch" else 1


@dataclasses.dataclass(frozen=True)
class TrainParams:
    device: str  # auto = GPU when Paddle has CUDA and sees a GPU, else CPU
    batch_size: int
    learning_rate: float
    momentum: float

    def __post_init__(self):
        _require(self.device in DEVICES, "train.device", self.device, f"one of {list(DEVICES)}")
        _require(self.batch_size > 0, "train.batch_size", self.batch_size, "an integer > 0")
        _require(self.learning_rate > 0, "train.learning_rate", self.learning_rate, "a number > 0")
        _require(0 <= self.momentum < 1, "train.momentum", self.momentum, "a number in [0, 1)")


@dataclasses.dataclass(frozen=True)
class VariantParams:
    train_set: str  # full = every training image, subset = the subset stage's (see subset.mode)
    loss: str  # a key of the `losses` section: the loss and its hyperparameters
    epochs: int | None = None  # the focal curriculum takes its length from losses.focal_curriculum instead
    sampler: str = "shuffle"  # shuffle = each image once per epoch; class_balanced = classes drawn equally

    def check(self, name: str) -> None:
        key = f"variants.{name}"
        _require(self.train_set in TRAIN_SETS, f"{key}.train_set", self.train_set, f"one of {list(TRAIN_SETS)}")
        _require(self.loss in LOSS_PARAMS, f"{key}.loss", self.loss, f"one of {list(LOSS_PARAMS)}")
        _require(self.sampler in SAMPLERS, f"{key}.sampler", self.sampler, f"one of {list(SAMPLERS)}")
        if self.loss == "focal_curriculum":
            _require(self.epochs is None, f"{key}.epochs", self.epochs,
                     "no value: the curriculum runs losses.focal_curriculum.epochs_per_gamma epochs per gamma")
        else:
            _require(self.epochs is not None and self.epochs > 0, f"{key}.epochs", self.epochs, "an integer > 0")


# The `losses` section: one entry per loss, holding its hyperparameters (the defaults in params.yaml are
# those of the paper that introduced the loss; README.md cites them).
@dataclasses.dataclass(frozen=True)
class CrossEntropyParams:
    pass


@dataclasses.dataclass(frozen=True)
class FocalParams:
    gamma: float  # FL = -(1 - p_t)^gamma log p_t; 0 is cross-entropy

    def __post_init__(self):
        _require(self.gamma >= 0, "losses.focal.gamma", self.gamma, "a number >= 0")


@dataclasses.dataclass(frozen=True)
class FocalCurriculumParams:
    gammas: tuple[float, ...]  # one phase per gamma, in this order, one model throughout
    epochs_per_gamma: int

    def __post_init__(self):
        key = "losses.focal_curriculum"
        valid = len(self.gammas) > 0 and all(g >= 0 for g in self.gammas)
        _require(valid, f"{key}.gammas", self.gammas, "a non-empty list of numbers >= 0")
        _require(self.epochs_per_gamma > 0, f"{key}.epochs_per_gamma", self.epochs_per_gamma, "an integer > 0")


@dataclasses.dataclass(frozen=True)
class ClassBalancedParams:
    beta: float  # effective number of samples (1 - beta^n) / (1 - beta); 0 = no re-weighting

    def __post_init__(self):
        _require(0 <= self.beta < 1, "losses.class_balanced.beta", self.beta, "a number in [0, 1)")


@dataclasses.dataclass(frozen=True)
class LogitAdjustedParams:
    tau: float  # training logits + tau * log(prior); tau = 1 is the balanced softmax

    def __post_init__(self):
        _require(self.tau >= 0, "losses.logit_adjusted.tau", self.tau, "a number >= 0")


@dataclasses.dataclass(frozen=True)
class LdamDrwParams:
    max_margin: float  # margin of the rarest class; class j gets max_margin * (n_min / n_j)^(1/4)
    scale: float  # s: the cosine classifier's logits are s * cos(feature, class weight)
    drw_start: float  # share of the epochs trained before the deferred re-weighting starts
    beta: float  # class-balanced weights of the re-weighting phase

    def __post_init__(self):
        key = "losses.ldam_drw"
        _require(self.max_margin > 0, f"{key}.max_margin", self.max_margin, "a number > 0")
        _require(self.scale > 0, f"{key}.scale", self.scale, "a number > 0")
        _require(0 <= self.drw_start <= 1, f"{key}.drw_start", self.drw_start, "a number in [0, 1]")
        _require(0 <= self.beta < 1, f"{key}.beta", self.beta, "a number in [0, 1)")


LOSS_PARAMS = {"cross_entropy": CrossEntropyParams, "focal": FocalParams,
               "focal_curriculum": FocalCurriculumParams, "class_balanced": ClassBalancedParams,
               "logit_adjusted": LogitAdjustedParams, "ldam_drw": LdamDrwParams}


@dataclasses.dataclass(frozen=True)
class EvaluateParams:
    batch_size: int  # images per forward pass; only speed and memory depend on it
    logit_adjustment_tau: float  # post-hoc logit adjustment: logits - tau * log(training class prior)

    def __post_init__(self):
        _require(self.batch_size > 0, "evaluate.batch_size", self.batch_size, "an integer > 0")
        _require(self.logit_adjustment_tau >= 0, "evaluate.logit_adjustment_tau", self.logit_adjustment_tau,
                 "a number >= 0 (0 leaves the logits as they are)")


def read_params(path: Path = PARAMS_FILE) -> dict:
    """The whole params.yaml as a mapping."""
    try:
        params = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError:
        raise ParamsError(f"{path} not found: run the stages from the repository root") from None
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(params, dict):
        raise ParamsError(f"{path} must be a mapping of sections, got {type(params).__name__}")
    return params


def section(params: dict, name: str, cls: type):
    """params[name] as a validated `cls`; raises ParamsError naming the offending key."""
    if name not in params:
        raise ParamsError(f"params.yaml has no section `{name}`; add it (see README.md)")
    return from_mapping(cls, params[name], prefix=name)


def seed(params: dict) -> int:
    """The one seed every random stream of the pipeline is derived from."""
    if "seed" not in params:
        raise ParamsError("seed: missing; add a top-level `seed: 0` to params.yaml")
    value = _check_type("seed", params["seed"], int)
    _require(0 <= value < MAX_SEED, "seed", value, f"an integer in [0, {MAX_SEED})")
    return value


def variants(params: dict) -> dict[str, VariantParams]:
    """The `variants` section: name -> validated VariantParams."""
    raw = params.get("variants")
    if not isinstance(raw, dict) or not raw:
        raise ParamsError(f"variants: expected a non-empty mapping of variant name -> settings, got {raw!r}")
    result = {}
    for name, settings in raw.items():
        variant = from_mapping(VariantParams, settings, prefix=f"variants.{name}")
        variant.check(name)
        result[name] = variant
    return result


def loss_params(params: dict, loss: str):
    """losses.<loss> as its validated dataclass."""
    losses = params.get("losses")
    if not isinstance(losses, dict) or loss not in losses:
        raise ParamsError(f"losses.{loss}: missing; add its hyperparameters to params.yaml (see README.md)")
    unknown = sorted(map(str, set(losses) - set(LOSS_PARAMS)))
    if unknown:
        raise ParamsError(f"losses.{unknown[0]}: unknown loss; the losses are {list(LOSS_PARAMS)}")
    return from_mapping(LOSS_PARAMS[loss], losses[loss] if losses[loss] is not None else {},
                        prefix=f"losses.{loss}")


def from_mapping(cls: type, mapping, prefix: str):
    """Build dataclass `cls` from `mapping`, rejecting unknown keys, missing keys and wrong types."""
    if not isinstance(mapping, dict):
        raise ParamsError(f"{prefix}: expected a mapping, got {mapping!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(map(str, set(mapping) - set(fields)))
    if unknown:
        raise ParamsError(f"{prefix}.{unknown[0]}: unknown key; allowed keys are {sorted(fields)}")
    hints = typing.get_type_hints(cls)
    values = {}
    for name, field in fields.items():
        if name not in mapping:
            if field.default is dataclasses.MISSING:
                raise ParamsError(f"{prefix}.{name}: missing; add it to params.yaml")
            continue
        values[name] = _check_type(f"{prefix}.{name}", mapping[name], hints[name])
    return cls(**values)


def _check_type(key: str, value, hint):
    """`value` converted to `hint` (int, float, str, tuple[X, ...], X | None), or ParamsError."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _check_type(key, value, inner)
    if origin is tuple:
        if not isinstance(value, list):
            raise ParamsError(f"{key}: expected a list, got {value!r}")
        return tuple(_check_type(f"{key}[{i}]", item, args[0]) for i, item in enumerate(value))
    # bool is an int in Python; `epochs: true` is still a mistake.
    if hint is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise ParamsError(f"{key}: expected a finite number, got {value!r}")
        return float(value)
    if isinstance(value, hint) and not isinstance(value, bool):
        return value
    hint_text = ""
    if hint is float and isinstance(value, str) and _parses_as_float(value):
        hint_text = f" (YAML reads {value} as a string: write it with a dot, e.g. 1.0e-3)"
    raise ParamsError(f"{key}: expected {hint.__name__}, got {value!r}{hint_text}")


def _parses_as_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _require(ok: bool, key: str, value, allowed: str) -> None:
    if not ok:
        raise ParamsError(f"{key}: {value!r} is not allowed; expected {allowed}")
