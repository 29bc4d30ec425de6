"""A variant of params.yaml `variants`, resolved: its remedy and sampler records and its remedy's params.

Checked against the registries (stages.lib.remedies, stages.lib.samplers), so a name that is not registered,
or epochs given to a remedy that sets its own, fail before any work with the key and what is allowed.
"""

import dataclasses
import json

import numpy as np

from stages.lib import params as P
from stages.lib.remedies import REMEDIES, Phase, Remedy
from stages.lib.samplers import SAMPLERS, Sampler


@dataclasses.dataclass(frozen=True)
class Variant:
    name: str
    train_set: str  # full | subset: data/train_sets/<train_set>.npz
    loss: str  # the remedy's name, a key of REMEDIES and of the `losses` section
    remedy: Remedy
    loss_params: object  # remedy.params, from losses.<loss>
    sampler: Sampler
    epochs: int | None  # None for a fixed-length remedy
    settings: P.VariantParams  # its params.yaml entry, as read

    def train_params(self, train: P.TrainParams) -> P.TrainParams:
        """The `train` section as this variant trains: with its own warm-up, if it sets one."""
        return self.settings.train_params(train)

    def phases(self, class_counts: np.ndarray) -> list[Phase]:
        """The phases this variant trains through, in order; class_counts [C] = images of each class per epoch."""
        return self.remedy.phases(self.loss_params, self.epochs, np.asarray(class_counts))

    @property
    def head_scale(self) -> float | None:
        return self.remedy.head_scale(self.loss_params)


def load_variants(params: dict) -> dict[str, Variant]:
    """Every variant of params.yaml, validated against the registries and its `losses` entry."""
    losses = params.get("losses")
    if not isinstance(losses, dict):
        raise P.ParamsError(f"losses: expected a mapping of remedy name -> hyperparameters, got {losses!r}")
    unknown = sorted(map(str, set(losses) - set(REMEDIES)))
    if unknown:
        raise P.ParamsError(f"losses.{unknown[0]}: unknown remedy; the remedies are {list(REMEDIES)}")
    return {name: _resolve(name, settings, losses) for name, settings in P.variants(params).items()}


def load_variant(params: dict, name: str) -> Variant:
    """The variant `name` (a stage's --variant), after checking every variant."""
    variants = load_variants(params)
    if name not in variants:
        raise P.ParamsError(f"--variant {name!r} is not in params.yaml `variants` ({sorted(variants)})")
    return variants[name]


def _resolve(name: str, settings: P.VariantParams, losses: dict) -> Variant:
    key = f"variants.{name}"
    P.require(settings.loss in REMEDIES, f"{key}.loss", settings.loss, f"one of {list(REMEDIES)}")
    P.require(settings.sampler in SAMPLERS, f"{key}.sampler", settings.sampler, f"one of {list(SAMPLERS)}")
    remedy = REMEDIES[settings.loss]
    if remedy.fixed_length:
        P.require(settings.epochs is None, f"{key}.epochs", settings.epochs,
                  f"no value: {settings.loss} sets its own number of epochs in losses.{settings.loss}")
    else:
        P.require(settings.epochs is not None and settings.epochs > 0, f"{key}.epochs", settings.epochs,
                  "an integer > 0")
    if settings.loss not in losses:
        raise P.ParamsError(f"losses.{settings.loss}: missing; add its hyperparameters to params.yaml "
                            "(see docs/params.md)")
    entry = losses[settings.loss] if losses[settings.loss] is not None else {}
    loss_params = P.from_mapping(remedy.params, entry, prefix=f"losses.{settings.loss}")
    return Variant(name, settings.train_set, settings.loss, remedy, loss_params, SAMPLERS[settings.sampler],
                   settings.epochs, settings)


def run_params(params: dict, name: str) -> dict:
    """The params that determine variant `name`'s model, flat and typed as the dataclasses read them
    ({"variants.focal.epochs": 10, "losses.focal.gamma": 2.0, "train.learning_rate": 0.01, ...}): the run
    record that the training summary and evaluate's metrics carry. The subset's own come with the training
    set (data.TrainingSelection.settings). The device is left out: it is recorded beside, as what ran."""
    variant = load_variant(params, name)
    sections = {f"variants.{name}": variant.settings, f"losses.{variant.loss}": variant.loss_params,
                "train": variant.train_params(P.section(params, "train", P.TrainParams))}
    flat = {f"{prefix}.{key}": value for prefix, record in sections.items()
            for key, value in dataclasses.asdict(record).items()}
    data = P.section(params, "data", P.DataParams)
    flat.update({"data.pixel_range": data.pixel_range, "data.train_limit": data.train_limit})
    flat.pop("train.device")
    return {key: json.dumps(list(value)) if isinstance(value, (tuple, list)) else value
            for key, value in flat.items() if value is not None}
