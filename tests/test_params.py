"""params.yaml becomes typed sections; every bad value is a ParamsError that names its full key."""

import copy
import dataclasses
import re
from pathlib import Path

import paddle
import pytest

from stages import params as P
from stages.device import select_device

SECTIONS = {"download": P.DownloadParams, "data": P.DataParams, "subset": P.SubsetParams,
            "train": P.TrainParams, "focal": P.FocalParams, "evaluate": P.EvaluateParams}
HAS_GPU = paddle.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0


@pytest.fixture
def params(project_root) -> dict:
    return P.read_params(project_root / "params.yaml")


def load(params: dict, name: str):
    """What a stage does with section `name`: seed, variants or one of SECTIONS."""
    if name == "seed":
        return P.seed(params)
    if name == "variants":
        return P.variants(params)
    return P.section(params, name, SECTIONS[name])


def set_key(params: dict, key: str, value) -> dict:
    """A copy of params with the dotted `key` set to `value`."""
    changed = copy.deepcopy(params)
    *parents, last = key.split(".")
    target = changed
    for part in parents:
        target = target[part]
    target[last] = value
    return changed


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
    for name, cls in SECTIONS.items():
        assert isinstance(load(params, name), cls)
    assert isinstance(load(params, "seed"), int)
    variants = load(params, "variants")
    assert sorted(variants) == sorted(params["variants"])
    assert all(isinstance(v, P.VariantParams) for v in variants.values())


def test_real_params_are_converted_to_tuples_and_floats(params):
    data = load(params, "data")
    assert data.pixel_range == tuple(float(v) for v in params["data"]["pixel_range"])
    assert all(type(v) is float for v in data.pixel_range)
    assert all(type(g) is float for g in load(params, "focal").gammas)  # the yaml has ints among them
    assert load(params, "subset").minority_classes == tuple(params["subset"]["minority_classes"])


@pytest.mark.parametrize("section, key", [
    ("download", "download.mirror"),
    ("data", "data.train_limt"),
    ("subset", "subset.fractoin"),
    ("train", "train.lr"),
    ("focal", "focal.gamma"),
    ("evaluate", "evaluate.batch"),
    ("variants", "variants.baseline.gamma"),
])
def test_unknown_key_is_rejected(params, section, key):
    assert_rejected(set_key(params, key, 1), section, key)


@pytest.mark.parametrize("section, key", [
    ("download", "download.timeout_s"),
    ("data", "data.pixel_range"),
    ("subset", "subset.fraction"),
    ("train", "train.learning_rate"),
    ("focal", "focal.epochs_per_gamma"),
    ("evaluate", "evaluate.batch_size"),
    ("variants", "variants.reduced.loss"),
    ("variants", "variants.baseline.epochs"),  # cross_entropy without epochs
    ("seed", "seed"),
])
def test_missing_key_is_rejected(params, section, key):
    assert_rejected(delete_key(params, key), section, key)


@pytest.mark.parametrize("section, key, value", [
    ("train", "train.batch_size", "100"),
    ("train", "train.batch_size", True),
    ("evaluate", "evaluate.batch_size", 1000.0),
    ("focal", "focal.epochs_per_gamma", True),
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
    assert_rejected(set_key(params, key, value), section, key)


def test_wrong_type_inside_a_list_names_the_item(params):
    assert_rejected(set_key(params, "focal.gammas", [0.2, "0.5"]), "focal", "focal.gammas[1]")


@pytest.mark.parametrize("section, key, value", [
    ("subset", "subset.fraction", 0),
    ("subset", "subset.fraction", 1.5),
    ("subset", "subset.minority_classes", [0, 10]),
    ("subset", "subset.minority_classes", [1, 1]),
    ("subset", "subset.minority_classes", []),
    ("focal", "focal.gammas", []),
    ("focal", "focal.gammas", [0.2, -0.5]),
    ("focal", "focal.epochs_per_gamma", 0),
    ("train", "train.device", "tpu"),
    ("train", "train.momentum", 1.0),
    ("data", "data.pixel_range", [1.0, -1.0]),
    ("data", "data.pixel_range", [-1.0, 0.0, 1.0]),
    ("data", "data.test_limit", 0),
    ("download", "download.mirrors", []),
    ("variants", "variants.baseline.loss", "mse"),
    ("variants", "variants.reduced.train_set", "half"),
    ("variants", "variants.focal.epochs", 10),  # focal_curriculum takes its epochs from `focal`
])
def test_out_of_range_value_is_rejected(params, section, key, value):
    assert_rejected(set_key(params, key, value), section, key)


def test_error_names_the_value_and_what_is_allowed(params):
    with pytest.raises(P.ParamsError) as error:
        load(set_key(params, "subset.fraction", 1.5), "subset")
    assert str(error.value) == "subset.fraction: 1.5 is not allowed; expected a number in (0, 1]"


def test_missing_section_is_rejected(params):
    with pytest.raises(P.ParamsError, match="params.yaml has no section `focal`"):
        load(delete_key(params, "focal"), "focal")


def test_params_that_are_not_a_mapping_are_rejected(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("- seed\n- 0\n")
    with pytest.raises(P.ParamsError, match="must be a mapping of sections, got list"):
        P.read_params(path)


requires_no_gpu = pytest.mark.skipif(HAS_GPU, reason="checks the behaviour on a machine without a usable GPU")


@requires_no_gpu
def test_gpu_device_without_a_gpu_is_a_params_error():
    with pytest.raises(P.ParamsError, match=r"train\.device: 'gpu' is not available"):
        select_device("gpu")


@requires_no_gpu
def test_auto_device_is_the_cpu_without_a_gpu():
    assert select_device("auto") == "cpu"
    assert paddle.get_device() == "cpu"


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
    "train.device": "GPU",
    "train.batch_size": 0,
    "train.learning_rate": 0,
    "train.momentum": -0.1,
    "variants.*.train_set": None,
    "variants.*.loss": "focal",  # a per-batch loss of stages.losses, not a variant's loss
    "variants.*.epochs": 0,
    "focal.gammas": 0.5,
    "focal.epochs_per_gamma": -3,
    "evaluate.batch_size": 0,
    "evaluate.logit_adjustment_tau": -1.0,
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
        load(set_key(params, key, BAD_VALUES[table_key(key)]), key.split(".")[0])
    assert str(error.value).startswith(key), str(error.value)


def test_bad_value_table_has_exactly_the_fields_of_the_params_dataclasses():
    fields = {"seed"} | {f"variants.*.{f.name}" for f in dataclasses.fields(P.VariantParams)}
    fields |= {f"{name}.{f.name}" for name, cls in SECTIONS.items() for f in dataclasses.fields(cls)}
    assert set(BAD_VALUES) == fields


@pytest.mark.parametrize("key, value", [("seed", -1), ("seed", 2**64), ("download.timeout_s", float("inf"))])
def test_values_that_would_crash_a_stage_later_are_rejected(params, key, value):
    assert_rejected(set_key(params, key, value), key.split(".")[0], key)
