"""params.yaml becomes typed sections; every bad value is a ParamsError that names its full key.

The `variants` and `losses` sections are read together, by stages.lib.variants.load_variants, which checks
them against the remedy and sampler registries; the other sections by stages.lib.params. A bad value that
these reject stops a stage before any work (tests/test_bad_inputs_cli.py shows it once through a stage,
tests/test_pipeline.py once through `dvc repro`).
"""

import copy
import dataclasses
import re
from pathlib import Path

import pytest
from stage_project import with_keys

from stages.lib import params as P
from stages.lib.remedies import REMEDIES, CrossEntropyParams
from stages.lib.variants import load_variants

SECTIONS = {"download": P.DownloadParams, "data": P.DataParams, "subset": P.SubsetParams,
            "validation": P.ValidationParams, "train": P.TrainParams, "evaluate": P.EvaluateParams}
# One entry of the `losses` section per remedy, read with the variants that use it.
LOSS_SECTIONS = {f"losses.{name}": remedy.params for name, remedy in REMEDIES.items()}


@pytest.fixture
def params(project_root) -> dict:
    return P.read_params(project_root / "params.yaml")


def load(params: dict, name: str):
    """What a stage does with section `name`: seed, variants, one of SECTIONS or one of LOSS_SECTIONS."""
    if name == "seed":
        return P.seed(params)
    if name == "variants":
        return load_variants(params)
    if name in LOSS_SECTIONS:
        loss = name.removeprefix("losses.")
        return next(v.loss_params for v in load_variants(params).values() if v.loss == loss)
    return P.section(params, name, SECTIONS[name])


def section_of(key: str) -> str:
    """The name `load` takes for a dotted key: losses.focal.gamma -> losses.focal, train.momentum -> train."""
    parts = key.split(".")
    return ".".join(parts[:2]) if parts[0] == "losses" else parts[0]


def delete_key(params: dict, key: str) -> dict:
    changed = copy.deepcopy(params)
    *parents, last = key.split(".")
    target = changed
    for part in parents:
        target = target[part]
    del target[last]
    return changed


def assert_rejected(params: dict, section: str, key: str) -> None:
    with pytest.raises(P.ParamsError, match=re.escape(key)):
        load(params, section)


def test_real_params_load_for_every_section(params):
    for name, cls in {**SECTIONS, **LOSS_SECTIONS}.items():
        assert isinstance(load(params, name), cls)
    assert isinstance(load(params, "seed"), int)
    assert sorted(load(params, "variants")) == sorted(params["variants"])


def test_real_params_are_converted_to_tuples_and_floats(params):
    data = load(params, "data")
    assert data.pixel_range == tuple(float(v) for v in params["data"]["pixel_range"])
    assert all(type(v) is float for v in data.pixel_range)
    gammas = load(params, "losses.focal_curriculum").gammas
    assert gammas == tuple(float(g) for g in params["losses"]["focal_curriculum"]["gammas"])
    assert all(type(g) is float for g in gammas)  # the yaml has ints among them
    assert load(params, "subset").minority_classes == tuple(params["subset"]["minority_classes"])


@pytest.mark.parametrize("section, key", [
    ("download", "download.mirror"),
    ("data", "data.train_limt"),
    ("subset", "subset.fractoin"),
    ("train", "train.lr"),
    ("losses.focal_curriculum", "losses.focal_curriculum.gamma"),
    ("losses.focal", "losses.focal.gammas"),
    ("losses.ldam_drw", "losses.ldam_drw.margin"),
    ("losses.cross_entropy", "losses.cross_entropy.gamma"),
    ("evaluate", "evaluate.batch"),
    ("variants", "variants.baseline.gamma"),
])
def test_unknown_key_is_rejected(params, section, key):
    assert_rejected(with_keys(params, {key: 1}), section, key)


@pytest.mark.parametrize("section, key", [
    ("download", "download.timeout_s"),
    ("data", "data.pixel_range"),
    ("subset", "subset.fraction"),
    ("train", "train.learning_rate"),
    ("losses.focal_curriculum", "losses.focal_curriculum.epochs_per_gamma"),
    ("losses.focal", "losses.focal.gamma"),
    ("losses.class_balanced", "losses.class_balanced.beta"),
    ("losses.logit_adjusted", "losses.logit_adjusted.tau"),
    ("losses.ldam_drw", "losses.ldam_drw.drw_start"),
    ("losses.ldam_drw", "losses.ldam_drw"),  # the whole entry of a loss
    ("evaluate", "evaluate.batch_size"),
    ("variants", "variants.reduced.loss"),
    ("variants", "variants.baseline.epochs"),  # cross_entropy without epochs
    ("variants", "variants.focal_fixed.epochs"),  # focal, unlike the curriculum, needs epochs
    ("seed", "seed"),
])
def test_missing_key_is_rejected(params, section, key):
    assert_rejected(delete_key(params, key), section, key)


@pytest.mark.parametrize("section, key, value", [
    ("train", "train.batch_size", "100"),
    ("train", "train.batch_size", True),
    ("evaluate", "evaluate.batch_size", 1000.0),
    ("losses.focal_curriculum", "losses.focal_curriculum.epochs_per_gamma", True),
    ("losses.focal", "losses.focal.gamma", "2.0"),
    ("losses.ldam_drw", "losses.ldam_drw.scale", [30.0]),
    ("losses.class_balanced", "losses.class_balanced.beta", "9.999e-1"),
    ("losses.ldam_drw", "losses.ldam_drw", [0.5, 30.0]),  # an entry must be a mapping
    ("subset", "subset.mode", 1),
    ("variants", "variants.resampled.sampler", None),
    ("subset", "subset.fraction", "0.1"),
    ("subset", "subset.fraction", True),
    ("data", "data.pixel_range", "[-1, 1]"),
    ("data", "data.train_limit", 1.5),
    ("download", "download.mirrors", "https://example.org/mnist"),
    ("download", "download.timeout_s", "30"),
    ("variants", "variants.baseline.epochs", True),
    ("seed", "seed", "0"),
    ("seed", "seed", False),
])
def test_wrong_type_is_rejected(params, section, key, value):
    assert_rejected(with_keys(params, {key: value}), section, key)


def test_minority_classes_take_a_list_or_a_count(params):
    assert load(with_keys(params, {"subset.minority_classes": 3}), "subset").minority_classes == 3
    assert load(with_keys(params, {"subset.minority_classes": [7, 2]}), "subset").minority_classes == (7, 2)


def test_an_image_budget_of_no_images_names_the_variant_key(params):
    with_budget = with_keys(params, {"variants.reduced.images_per_epoch": 0})
    with pytest.raises(P.ParamsError, match=r"variants\.reduced\.images_per_epoch: 0 is not allowed"):
        P.variants(with_budget)
    assert P.variants(with_keys(params, {"variants.reduced.images_per_epoch": 60000}))["reduced"].images_per_epoch \
        == 60000


def test_wrong_type_inside_a_list_names_the_item(params):
    assert_rejected(with_keys(params, {"losses.focal_curriculum.gammas": [0.2, "0.5"]}), "losses.focal_curriculum",
                    "losses.focal_curriculum.gammas[1]")


@pytest.mark.parametrize("section, key, value", [
    ("subset", "subset.fraction", 0),
    ("subset", "subset.fraction", 1.5),
    ("subset", "subset.minority_classes", [0, 10]),
    ("subset", "subset.minority_classes", [1, 1]),
    ("subset", "subset.minority_classes", []),
    ("subset", "subset.minority_classes", 0),  # a count of digits drawn from the seed: 1-9
    ("subset", "subset.minority_classes", 10),
    ("subset", "subset.minority_classes", True),
    ("subset", "subset.minority_classes", "5"),
    ("subset", "subset.mode", "per_image"),
    ("subset", "subset.mode", "per_epoch"),
    ("validation", "validation.fraction", 0.0),
    ("losses.focal_curriculum", "losses.focal_curriculum.gammas", []),
    ("losses.focal_curriculum", "losses.focal_curriculum.gammas", [0.2, -0.5]),
    ("losses.focal_curriculum", "losses.focal_curriculum.gammas", [0.5, 2.0, -1.0]),  # the last phase only
    ("losses.focal_curriculum", "losses.focal_curriculum.epochs_per_gamma", 0),
    ("losses.focal", "losses.focal.gamma", -1.0),
    ("losses.class_balanced", "losses.class_balanced.beta", 1.0),
    ("losses.class_balanced", "losses.class_balanced.beta", -0.5),
    ("losses.logit_adjusted", "losses.logit_adjusted.tau", -1.0),
    ("losses.ldam_drw", "losses.ldam_drw.max_margin", -0.5),
    ("losses.ldam_drw", "losses.ldam_drw.scale", -30.0),
    ("losses.ldam_drw", "losses.ldam_drw.drw_start", 1.5),
    ("losses.ldam_drw", "losses.ldam_drw.drw_start", -0.1),
    ("losses.ldam_drw", "losses.ldam_drw.beta", 1.0),
    ("train", "train.device", "tpu"),
    ("train", "train.momentum", 1.0),
    ("data", "data.pixel_range", [1.0, -1.0]),
    ("data", "data.pixel_range", [-1.0, 0.0, 1.0]),
    ("data", "data.test_limit", 0),
    ("download", "download.mirrors", []),
    ("variants", "variants.baseline.loss", "mse"),
    ("variants", "variants.baseline.loss", "ldam"),  # a per-batch loss of stages.lib.losses, not a remedy
    ("variants", "variants.reduced.train_set", "half"),
    ("variants", "variants.resampled.sampler", "oversample"),
    ("variants", "variants.focal.epochs", 10),  # the curriculum takes its epochs from losses.focal_curriculum
])
def test_out_of_range_value_is_rejected(params, section, key, value):
    assert_rejected(with_keys(params, {key: value}), section, key)


def test_error_names_the_value_and_what_is_allowed(params):
    with pytest.raises(P.ParamsError) as error:
        load(with_keys(params, {"subset.fraction": 1.5}), "subset")
    assert str(error.value) == "subset.fraction: 1.5 is not allowed; expected a number in (0, 1]"


def test_missing_section_is_rejected(params):
    with pytest.raises(P.ParamsError, match="params.yaml has no section `train`"):
        load(delete_key(params, "train"), "train")
    with pytest.raises(P.ParamsError, match="losses: expected a mapping of remedy name -> hyperparameters"):
        load(delete_key(params, "losses"), "losses.focal")


def test_a_loss_without_hyperparameters_may_be_empty_or_null(params):
    assert load(with_keys(params, {"losses.cross_entropy": None}), "losses.cross_entropy") == CrossEntropyParams()
    assert load(with_keys(params, {"losses.cross_entropy": {}}), "losses.cross_entropy") == CrossEntropyParams()


@pytest.mark.parametrize("loss", ["mse", "ldam", "weighted_cross_entropy"])
def test_variant_naming_an_unknown_loss_names_the_variant_key(params, loss):
    with pytest.raises(P.ParamsError) as error:
        load(with_keys(params, {"variants.reduced.loss": loss}), "variants")
    message = str(error.value)
    assert message.startswith(f"variants.reduced.loss: {loss!r} is not allowed"), message
    assert all(name in message for name in REMEDIES), message


@pytest.mark.parametrize("fraction, mode, every", [
    (0.1, "per_batch", 10), (0.25, "per_batch", 4), (1.0, "per_batch", 1), (0.5, "per_batch", 2),
    (0.1, "fixed", 1), (0.3, "fixed", 1),
])
def test_keep_minority_every(params, fraction, mode, every):
    changed = with_keys(params, {"subset.fraction": fraction, "subset.mode": mode})
    assert load(changed, "subset").keep_minority_every == every


@pytest.mark.parametrize("fraction", [0.3, 0.15, 0.7])
def test_per_batch_mode_needs_a_fraction_of_1_over_an_integer(params, fraction):
    changed = with_keys(params, {"subset.fraction": fraction, "subset.mode": "per_batch"})
    with pytest.raises(P.ParamsError) as error:
        load(changed, "subset")
    assert str(error.value).startswith(f"subset.fraction: {fraction!r} is not allowed; expected 1 / k"), error.value


def test_params_that_are_not_a_mapping_are_rejected(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("- seed\n- 0\n")
    with pytest.raises(P.ParamsError, match="must be a mapping of sections, got list"):
        P.read_params(path)


# --- every leaf key of params.yaml has a bad value, and its loader rejects it --------------------------------

PARAMS_YAML = Path(__file__).resolve().parent.parent / "params.yaml"
# One bad value per leaf key, with variant names written as `*`. A key added to params.yaml, or a field added
# to a params dataclass, without an entry here fails the two tests below.
BAD_VALUES = {
    "seed": 0.5,
    "download.mirrors": ["https://example.org/mnist", 7],
    "download.timeout_s": 0,
    "data.pixel_range": [0.0, 0.0],
    "data.train_limit": -1,
    "data.test_limit": "all",
    "subset.minority_classes": [5, -1],
    "subset.fraction": -0.1,
    "subset.mode": "per_image",
    "subset.profile": "long_tail",
    "subset.imbalance_ratio": 0.5,
    "subset.class_order": [0, 1, 2, 3, 4, 5, 6, 7, 8, 8],
    "validation.tune": "yes",
    "validation.fraction": 1.0,
    "train.device": "GPU",
    "train.batch_size": 0,
    "train.learning_rate": 0,
    "train.momentum": -0.1,
    "train.warmup_epochs": -1,
    "train.grad_clip_norm": -1.0,
    "train.augment_shift_px": 14,
    "variants.*.train_set": None,
    "variants.*.loss": "ldam",  # a per-batch loss of stages.lib.losses, not a remedy
    "variants.*.warmup_epochs": -1,
    "variants.*.images_per_epoch": 0,
    "variants.*.epochs": 0,
    "variants.*.sampler": "balanced",
    "losses.focal.gamma": -1.0,
    "losses.focal.detach_factor": 1,  # YAML's true is a bool; 1 is not
    "losses.focal_curriculum.gammas": [],
    "losses.focal_curriculum.epochs_per_gamma": -3,
    "losses.focal_curriculum.detach_factor": "false",
    "losses.class_balanced.beta": 1.0,
    "losses.logit_adjusted.tau": -1.0,
    "losses.ldam_drw.max_margin": -0.1,
    "losses.ldam_drw.scale": 0.0,
    "losses.ldam_drw.drw_start": 1.5,
    "losses.ldam_drw.beta": 1.0,
    "losses.crt.classifier_share": 1.0,
    "evaluate.batch_size": 0,
    "evaluate.logit_adjustment_tau": -1.0,
    "evaluate.logit_adjustment_prior": "balanced",
}


def leaf_keys(mapping: dict, prefix: str = ""):
    """The dotted key of every value in `mapping` that is not itself a mapping (lists are leaves)."""
    for name, value in mapping.items():
        if isinstance(value, dict):
            yield from leaf_keys(value, f"{prefix}{name}.")
        else:
            yield f"{prefix}{name}"


def table_key(key: str) -> str:
    """variants.baseline.epochs -> variants.*.epochs"""
    parts = key.split(".")
    return ".".join(["variants", "*", *parts[2:]]) if parts[0] == "variants" else key


@pytest.mark.parametrize("key", list(leaf_keys(P.read_params(PARAMS_YAML))))
def test_every_params_key_has_a_bad_value_that_its_loader_rejects(params, key):
    assert table_key(key) in BAD_VALUES, f"params.yaml has {key}: add a bad value for it to BAD_VALUES"
    with pytest.raises(P.ParamsError) as error:
        load(with_keys(params, {key: BAD_VALUES[table_key(key)]}), section_of(key))
    assert str(error.value).startswith(key), str(error.value)


def test_bad_value_table_has_exactly_the_fields_of_the_params_dataclasses():
    fields = {"seed"} | {f"variants.*.{f.name}" for f in dataclasses.fields(P.VariantParams)}
    fields |= {f"{name}.{f.name}" for name, cls in {**SECTIONS, **LOSS_SECTIONS}.items()
               for f in dataclasses.fields(cls)}
    assert set(BAD_VALUES) == fields


def test_every_bad_value_is_tried_on_a_key_of_params_yaml():
    # A field left out of params.yaml (a default everywhere) would otherwise never have its bad value tried.
    tried = {table_key(key) for key in leaf_keys(P.read_params(PARAMS_YAML))}
    assert set(BAD_VALUES) <= tried, sorted(set(BAD_VALUES) - tried)


@pytest.mark.parametrize("key, value", [("seed", -1), ("seed", 2**64), ("download.timeout_s", float("inf")),
                                        ("losses.ldam_drw.scale", float("inf")),
                                        ("losses.logit_adjusted.tau", float("nan"))])
def test_values_that_would_crash_a_stage_later_are_rejected(params, key, value):
    assert_rejected(with_keys(params, {key: value}), section_of(key), key)


def test_unknown_entry_of_losses_is_rejected(project_root):
    params = P.read_params(project_root / "params.yaml")
    params["losses"]["focal_curiculum"] = {"gammas": [1.0], "epochs_per_gamma": 1}
    with pytest.raises(P.ParamsError, match="losses.focal_curiculum: unknown remedy"):
        load_variants(params)
