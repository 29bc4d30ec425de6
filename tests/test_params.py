"""params.yaml becomes typed sections; every bad value is a ParamsError that names its full key."""

import copy
import re

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
