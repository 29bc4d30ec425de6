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

from stages.lib.cli import StageError

PARAMS_FILE = Path("params.yaml")
DEVICES = ("auto", "cpu", "gpu")
TRAIN_SETS = ("full", "subset")
SUBSET_MODES = ("fixed", "per_batch")
SUBSET_PROFILES = ("step", "exponential")
# evaluate.logit_adjustment_prior -> the training summary's class counts that post-hoc adjustment divides by:
# what the sampler fed the model (the prior it learned), or the training set's own images (Buda et al.'s
# thresholding, whose prior is the imbalanced set's "before sampling is applied").
LOGIT_ADJUSTMENT_PRIORS = {"learned": "class_counts", "train_set": "train_set_class_counts"}
MAX_SEED = 2**32  # numpy takes any seed >= 0; paddle.seed fails beyond 64 bits


class ParamsError(StageError, ValueError):
    """A value in params.yaml is missing, of the wrong type, out of range or unknown."""


@dataclasses.dataclass(frozen=True)
class DownloadParams:
    mirrors: tuple[str, ...]  # base URLs, tried in order after $MNIST_MIRROR
    timeout_s: float  # per file downloaded

    def __post_init__(self):
        require(len(self.mirrors) > 0, "download.mirrors", self.mirrors, "a non-empty list of base URLs")
        require(self.timeout_s > 0, "download.timeout_s", self.timeout_s, "a number of seconds > 0")


@dataclasses.dataclass(frozen=True)
class DataParams:
    pixel_range: tuple[float, ...]  # [low, high]: pixel value 0 maps to low, 255 to high
    train_limit: int | None = None  # use only the first N training images (tests); null = all 60000
    test_limit: int | None = None  # use only the first N test images; null = all 10000

    def __post_init__(self):
        low_high = len(self.pixel_range) == 2 and self.pixel_range[0] < self.pixel_range[1]
        require(low_high, "data.pixel_range", self.pixel_range, "[low, high] with low < high, e.g. [-1, 1]")
        for key in ("train_limit", "test_limit"):
            value = getattr(self, key)
            require(value is None or value > 0, f"data.{key}", value, "null (all images) or an integer > 0")


@dataclasses.dataclass(frozen=True)
class SubsetParams:
    # The digits of which only `fraction` is kept, or how many: a count draws them from the seed (Buda et al.,
    # 2018, draw the minority classes anew for each repetition), so seeds vary which digits are rare.
    minority_classes: int | tuple[int, ...]
    fraction: float  # share of each minority class kept, in (0, 1]
    # fixed: one seeded draw of the minority images, the same every epoch. per_batch: the report's protocol,
    # every training image, but the minority digits are dropped from every batch whose index is not a
    # multiple of 1 / fraction, so each epoch sees a different `fraction` of them.
    mode: str = "fixed"
    # step: the minority digits keep `fraction`, the others everything (the report's reduction). exponential:
    # the long-tailed profile of Cui et al. (2019) and Cao et al. (2019): the i-th digit of class_order keeps
    # n_0 * imbalance_ratio^(-i / 9) images, n_0 being every image of the first (fixed mode only).
    profile: str = "step"
    imbalance_ratio: float = 100.0  # n_most / n_fewest of the exponential profile
    class_order: tuple[int, ...] = (5, 6, 7, 8, 9, 0, 1, 2, 3, 4)  # head to tail, for exponential

    def __post_init__(self):
        classes = self.minority_classes
        if isinstance(classes, int):
            valid = 1 <= classes <= 9
        else:
            valid = len(classes) > 0 and len(set(classes)) == len(classes) and all(0 <= c <= 9 for c in classes)
        require(valid, "subset.minority_classes", classes,
                "a non-empty list of distinct digits 0-9, or a count 1-9 of digits drawn from the seed")
        require(0 < self.fraction <= 1, "subset.fraction", self.fraction, "a number in (0, 1]")
        require(self.mode in SUBSET_MODES, "subset.mode", self.mode, f"one of {list(SUBSET_MODES)}")
        require(self.profile in SUBSET_PROFILES, "subset.profile", self.profile, f"one of {list(SUBSET_PROFILES)}")
        require(self.imbalance_ratio >= 1, "subset.imbalance_ratio", self.imbalance_ratio, "a number >= 1")
        require(sorted(self.class_order) == list(range(10)), "subset.class_order", self.class_order,
                "the ten digits 0-9, each once, from the most to the fewest images")
        if self.profile == "exponential":
            require(self.mode == "fixed", "subset.mode", self.mode, "fixed with subset.profile exponential")
        if self.mode == "per_batch":
            require(abs(1 / self.fraction - round(1 / self.fraction)) < 1e-9, "subset.fraction", self.fraction,
                    "1 / k for an integer k in per_batch mode (minority digits kept in every k-th batch)")

    @property
    def keep_minority_every(self) -> int:
        """Per-batch mode keeps the minority digits in batches 0, k, 2k, ...; 1 = in every batch."""
        return round(1 / self.fraction) if self.mode == "per_batch" else 1


@dataclasses.dataclass(frozen=True)
class ValidationParams:
    # true: the subset stage holds out `fraction` of each class of every training set; training uses the rest
    # and evaluate scores the held-out images instead of the test set (for choosing hyperparameters).
    tune: bool
    fraction: float  # share of each class held out, in (0, 1)

    def __post_init__(self):
        require(0 < self.fraction < 1, "validation.fraction", self.fraction, "a number in (0, 1)")


@dataclasses.dataclass(frozen=True)
class TrainParams:
    device: str  # auto = GPU when Paddle has CUDA and sees a GPU, else CPU
    batch_size: int
    learning_rate: float
    momentum: float
    # The learning rate rises linearly from 0 over the first warmup_epochs epochs, step by step (as LDAM-DRW's
    # reference code warms up); 0 = the full rate from the first step.
    warmup_epochs: int = 0
    grad_clip_norm: float = 0.0  # clip the gradients' global L2 norm to this; 0 = no clipping
    # Each epoch, each training image is shifted by a random whole number of pixels in [-k, k] along each
    # axis, the background filling in; 0 = the images as they are.
    augment_shift_px: int = 0

    def __post_init__(self):
        require(self.device in DEVICES, "train.device", self.device, f"one of {list(DEVICES)}")
        require(self.batch_size > 0, "train.batch_size", self.batch_size, "an integer > 0")
        require(self.learning_rate > 0, "train.learning_rate", self.learning_rate, "a number > 0")
        require(0 <= self.momentum < 1, "train.momentum", self.momentum, "a number in [0, 1)")
        require(self.warmup_epochs >= 0, "train.warmup_epochs", self.warmup_epochs, "an integer >= 0")
        require(self.grad_clip_norm >= 0, "train.grad_clip_norm", self.grad_clip_norm, "a number >= 0 (0 = off)")
        require(0 <= self.augment_shift_px <= 13, "train.augment_shift_px", self.augment_shift_px,
                "an integer in [0, 13] (pixels; 0 = off)")


@dataclasses.dataclass(frozen=True)
class VariantParams:
    train_set: str  # full = every training image, subset = the subset stage's (see subset.mode)
    loss: str  # a remedy of stages.lib.remedies, with its hyperparameters in `losses.<loss>`
    epochs: int | None = None  # the focal curriculum takes its length from losses.focal_curriculum instead
    sampler: str = "shuffle"  # a sampler of stages.lib.samplers: shuffle | class_balanced | undersample
    warmup_epochs: int | None = None  # this variant's own train.warmup_epochs (as its paper trains it)
    # An image budget: every epoch trains exactly this many images, from as many passes of the sampler as that
    # takes, so training sets of any size train epochs x images_per_epoch images. null = one pass per epoch.
    images_per_epoch: int | None = None

    def check(self, name: str) -> None:
        """The checks that need no registry; stages.lib.variants checks loss, sampler and epochs."""
        key = f"variants.{name}"
        require(self.train_set in TRAIN_SETS, f"{key}.train_set", self.train_set, f"one of {list(TRAIN_SETS)}")
        require(self.warmup_epochs is None or self.warmup_epochs >= 0, f"{key}.warmup_epochs", self.warmup_epochs,
                "null (train.warmup_epochs) or an integer >= 0")
        require(self.images_per_epoch is None or self.images_per_epoch > 0, f"{key}.images_per_epoch",
                self.images_per_epoch, "null (one pass of the sampler per epoch) or an integer > 0")

    def train_params(self, train: TrainParams) -> TrainParams:
        """`train` with this variant's own settings in place of the section's."""
        if self.warmup_epochs is None:
            return train
        return dataclasses.replace(train, warmup_epochs=self.warmup_epochs)


@dataclasses.dataclass(frozen=True)
class EvaluateParams:
    batch_size: int  # images per forward pass; only speed and memory depend on it
    logit_adjustment_tau: float  # post-hoc logit adjustment: logits - tau * log(training class prior)
    # The prior: learned = the class shares the sampler fed the model; train_set = the training set's own
    # shares, before any re-sampling (Buda et al.'s thresholding). They differ only for a re-sampling sampler.
    logit_adjustment_prior: str = "learned"

    def __post_init__(self):
        require(self.batch_size > 0, "evaluate.batch_size", self.batch_size, "an integer > 0")
        require(self.logit_adjustment_tau >= 0, "evaluate.logit_adjustment_tau", self.logit_adjustment_tau,
                 "a number >= 0 (0 leaves the logits as they are)")
        require(self.logit_adjustment_prior in LOGIT_ADJUSTMENT_PRIORS, "evaluate.logit_adjustment_prior",
                self.logit_adjustment_prior, f"one of {list(LOGIT_ADJUSTMENT_PRIORS)}")


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
        raise ParamsError(f"params.yaml has no section `{name}`; add it (see docs/params.md)")
    return from_mapping(cls, params[name], prefix=name)


def seed(params: dict) -> int:
    """The one seed every random stream of the pipeline is derived from."""
    if "seed" not in params:
        raise ParamsError("seed: missing; add a top-level `seed: 0` to params.yaml")
    value = _check_type("seed", params["seed"], int)
    require(0 <= value < MAX_SEED, "seed", value, f"an integer in [0, {MAX_SEED})")
    return value


def variants(params: dict) -> dict[str, VariantParams]:
    """The `variants` section: name -> VariantParams (stages.lib.variants resolves them against the registries)."""
    raw = params.get("variants")
    if not isinstance(raw, dict) or not raw:
        raise ParamsError(f"variants: expected a non-empty mapping of variant name -> settings, got {raw!r}")
    result = {}
    for name, settings in raw.items():
        variant = from_mapping(VariantParams, settings, prefix=f"variants.{name}")
        variant.check(name)
        result[name] = variant
    return result


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
    """`value` converted to `hint` (bool, int, float, str, tuple[X, ...], X | None), or ParamsError."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        for candidate in inner[:-1]:  # the first type that takes the value, e.g. int | tuple[int, ...]
            try:
                return _check_type(key, value, candidate)
            except ParamsError:
                pass
        return _check_type(key, value, inner[-1])
    if origin is tuple:
        if not isinstance(value, list):
            raise ParamsError(f"{key}: expected a list, got {value!r}")
        return tuple(_check_type(f"{key}[{i}]", item, args[0]) for i, item in enumerate(value))
    if hint is bool and isinstance(value, bool):
        return value
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


def require(ok: bool, key: str, value, allowed: str) -> None:
    if not ok:
        raise ParamsError(f"{key}: {value!r} is not allowed; expected {allowed}")
