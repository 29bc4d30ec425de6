"""Where and how Paddle runs: the device record, MKL's kernel choice on AMD CPUs, cuDNN's determinism, and a
real training run on the MKL path against one on the default path."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import paddle
import pytest

from stages.lib import params as P
from stages.lib.device import (MKL_AVX2, MKL_CPU_TYPE_VAR, bundled_mkl_version, configure_mkl, select_device,
                               use_deterministic_cudnn)

HAS_GPU = paddle.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0
requires_no_gpu = pytest.mark.skipif(HAS_GPU, reason="checks the behaviour on a machine without a usable GPU")
ROOT = Path(__file__).resolve().parent.parent


# --- configure_mkl: a pure function of the environment, the CPU vendor and the MKL version ------------------

@pytest.mark.parametrize("version", [(2019, 0), (2020, 0)])
def test_amd_cpu_with_an_old_mkl_gets_the_avx2_kernels(version):
    environ = {}
    assert configure_mkl(environ, "AuthenticAMD", version) == MKL_AVX2 == "5"
    assert environ == {MKL_CPU_TYPE_VAR: "5"}


@pytest.mark.parametrize("vendor, version", [("GenuineIntel", (2019, 0)), ("AuthenticAMD", (2020, 1)),
                                             ("AuthenticAMD", (2021, 0)), ("", (2019, 0))])
def test_other_cpus_and_newer_mkl_keep_mkls_default(vendor, version):
    environ = {"PATH": "/bin"}
    assert configure_mkl(environ, vendor, version) is None
    assert environ == {"PATH": "/bin"}


@pytest.mark.parametrize("value", ["0", "5", "2"])
def test_a_value_the_user_set_is_kept_and_returned(value):
    environ = {MKL_CPU_TYPE_VAR: value}
    assert configure_mkl(environ, "AuthenticAMD", (2019, 0)) == value
    assert environ == {MKL_CPU_TYPE_VAR: value}


def test_bundled_mkl_version_is_that_of_paddles_library_or_none():
    library = Path(paddle.__file__).parent / "libs" / "libmklml_intel.so"
    version = bundled_mkl_version()
    assert (version is not None) == library.exists()
    if version is not None:
        assert len(version) == 2 and all(type(part) is int for part in version)
        assert (2017, 0) <= version < (2100, 0), version


# --- select_device and cuDNN ---------------------------------------------------------------------------------

@requires_no_gpu
def test_gpu_device_without_a_gpu_is_a_params_error():
    with pytest.raises(P.ParamsError, match=r"train\.device: 'gpu' is not available"):
        select_device("gpu")


@requires_no_gpu
def test_auto_device_is_the_cpu_and_the_record_says_what_ran(monkeypatch):
    monkeypatch.delenv(MKL_CPU_TYPE_VAR, raising=False)  # monkeypatch restores os.environ afterwards
    record = select_device("auto")
    assert paddle.get_device() == "cpu"
    assert record == {"device": "cpu", "paddle": paddle.__version__, "mkl_cpu_type": os.environ.get(MKL_CPU_TYPE_VAR)}
    assert record["mkl_cpu_type"] == configure_mkl({}, mkl_version=bundled_mkl_version())


@pytest.mark.skipif(not paddle.is_compiled_with_cuda(), reason="FLAGS_cudnn_deterministic exists in CUDA builds only")
def test_deterministic_cudnn_sets_paddles_flag():
    # A CUDA build (paddlepaddle-gpu) has the flag with or without a GPU, so this runs on CI's CPU machine too.
    flag = "FLAGS_cudnn_deterministic"
    before = paddle.get_flags([flag])[flag]
    try:
        paddle.set_flags({flag: False})
        use_deterministic_cudnn()
        assert paddle.get_flags([flag])[flag] is True
    finally:
        paddle.set_flags({flag: before})


# --- the MKL path against the default path, on a real training run -------------------------------------------

# Two epochs of cross-entropy on 300 real images, no select_device (so no configure_mkl): the kernels are the
# ones MKL picks for the environment this script is started with. Prints the loss of each epoch.
TRAINING_SCRIPT = """
import json, sys
from pathlib import Path
from stages.lib import losses, params as P
from stages.lib.data import TrainingSet, load_split, to_model_input
from stages.lib.remedies import Phase
from stages.lib.samplers import SAMPLERS
from stages.train import train_model
images, labels = load_split("train", 300, raw_dir=Path(sys.argv[1]))
data = TrainingSet(to_model_input(images, (-1.0, 1.0)), labels, (0, 1, 2, 3, 4), 1)
train = P.TrainParams(device="cpu", batch_size=50, learning_rate=0.01, momentum=0.9)
model, history = train_model(data, [Phase(losses.cross_entropy, 2)], train, seed=0, sampler=SAMPLERS["shuffle"])
print(json.dumps({"loss": [row["loss"] for row in history], "fc2": model.fc2.weight.numpy().ravel().tolist()}))
"""


def train_in_subprocess(raw_dir: Path, mkl_cpu_type: str | None) -> dict:
    env = {key: value for key, value in os.environ.items() if key != MKL_CPU_TYPE_VAR}
    if mkl_cpu_type is not None:
        env[MKL_CPU_TYPE_VAR] = mkl_cpu_type
    result = subprocess.run([sys.executable, "-c", TRAINING_SCRIPT, str(raw_dir)], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


def test_mkl_avx2_path_trains_like_the_default_path_to_float32_precision(raw_dir):
    # On an Intel CPU, or with an MKL that ignores the variable, both runs take the same kernels and agree
    # exactly; on an AMD CPU with Paddle's MKL 2019 they take different kernels (other rounding).
    default = train_in_subprocess(raw_dir, None)
    avx2 = train_in_subprocess(raw_dir, MKL_AVX2)
    np.testing.assert_allclose(avx2["loss"], default["loss"], rtol=1e-4)
    np.testing.assert_allclose(avx2["fc2"], default["fc2"], rtol=1e-3, atol=1e-5)
