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
from stages.lib.device import (MKL_BRANCH_VAR, MKL_CPU_TYPE_VAR, Cpu, bundled_mkl_version, configure_mkl, read_cpu,
                               select_device, use_deterministic_cudnn)

HAS_GPU = paddle.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0
requires_no_gpu = pytest.mark.skipif(HAS_GPU, reason="checks the behaviour on a machine without a usable GPU")
ROOT = Path(__file__).resolve().parent.parent


# --- configure_mkl: a pure function of the environment, the CPU and the MKL version --------------------------

INTEL = Cpu("x86_64", "GenuineIntel", frozenset({"sse4_2", "avx2", "avx512f"}))
AMD = Cpu("x86_64", "AuthenticAMD", frozenset({"sse4_2", "avx2"}))
OLD_X86 = Cpu("x86_64", "GenuineIntel", frozenset({"sse4_2", "avx"}))
ARM = Cpu("aarch64", "", frozenset({"fp", "asimd"}))


def test_intel_with_avx2_is_pinned_to_mkls_avx2_branch():
    environ = {"PATH": "/bin"}
    assert configure_mkl(environ, INTEL, (2019, 0)) == {"mkl_cbwr": "AVX2"}
    assert environ == {"PATH": "/bin", MKL_BRANCH_VAR: "AVX2"}


@pytest.mark.parametrize("version", [(2019, 0), (2020, 0)])
def test_amd_with_an_old_mkl_is_pinned_and_allowed_to_run_the_branch(version):
    # MKL 2019 on AMD ignores MKL_CBWR=AVX2 alone (it ran the COMPATIBLE path: other bits, slower).
    environ = {}
    assert configure_mkl(environ, AMD, version) == {"mkl_cbwr": "AVX2"}  # the vendor is not in the record
    assert environ == {MKL_BRANCH_VAR: "AVX2", MKL_CPU_TYPE_VAR: "5"}


def test_amd_with_a_newer_mkl_needs_only_the_branch():
    environ = {}
    assert configure_mkl(environ, AMD, (2021, 0)) == {"mkl_cbwr": "AVX2"}
    assert environ == {MKL_BRANCH_VAR: "AVX2"}


@pytest.mark.parametrize("cpu", [OLD_X86, ARM], ids=["x86-64 without AVX2", "aarch64"])
def test_a_cpu_without_avx2_keeps_mkls_default_and_says_so(cpu, capsys):
    environ = {}
    assert configure_mkl(environ, cpu, (2019, 0)) == {"mkl_cbwr": None}
    assert environ == {}
    assert "will not match the committed dvc.lock" in capsys.readouterr().err


@pytest.mark.parametrize("cpu", [INTEL, AMD, ARM], ids=["intel", "amd", "arm"])
def test_values_the_user_set_are_kept_and_recorded(cpu):
    environ = {MKL_BRANCH_VAR: "COMPATIBLE", MKL_CPU_TYPE_VAR: "2"}
    assert configure_mkl(environ, cpu, (2019, 0)) == {"mkl_cbwr": "COMPATIBLE", "mkl_debug_cpu_type": "2"}
    assert environ == {MKL_BRANCH_VAR: "COMPATIBLE", MKL_CPU_TYPE_VAR: "2"}


def test_read_cpu_parses_cpuinfo(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: fpu sse2 avx avx2 fma\n\n"
                       "processor\t: 1\nvendor_id\t: AuthenticAMD\nflags\t\t: fpu sse2 avx avx2 fma\n")
    cpu = read_cpu(cpuinfo)
    assert (cpu.vendor, cpu.flags) == ("AuthenticAMD", frozenset({"fpu", "sse2", "avx", "avx2", "fma"}))
    assert read_cpu(tmp_path / "absent") == Cpu(cpu.machine, "", frozenset())


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
    for name in (MKL_BRANCH_VAR, MKL_CPU_TYPE_VAR):
        monkeypatch.delenv(name, raising=False)  # monkeypatch restores os.environ afterwards
    record = select_device("auto")
    assert paddle.get_device() == "cpu"
    assert record == {"device": "cpu", "paddle": paddle.__version__, "mkl_cbwr": os.environ.get(MKL_BRANCH_VAR)}
    assert record["mkl_cbwr"] == ("AVX2" if read_cpu().has_avx2 else None)


def test_no_mkl_variable_outlives_the_test_that_pinned_it():
    # The test above pinned MKL in this process; a later `dvc repro` started by the tests would inherit the pin
    # and record it as the user's own (CI saw mkl_debug_cpu_type appear in metrics/train on an AMD machine).
    from conftest import MKL_VARIABLES, SESSION_MKL

    assert {name: os.environ.get(name) for name in MKL_VARIABLES} == SESSION_MKL


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


def train_in_subprocess(raw_dir: Path, mkl_env: dict[str, str]) -> dict:
    env = {key: value for key, value in os.environ.items() if key not in (MKL_BRANCH_VAR, MKL_CPU_TYPE_VAR)}
    result = subprocess.run([sys.executable, "-c", TRAINING_SCRIPT, str(raw_dir)], cwd=ROOT, env={**env, **mkl_env},
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


def test_mkl_avx2_branch_trains_like_the_default_path_to_float32_precision(raw_dir):
    # The variables configure_mkl sets on this machine, against none: on a CPU whose default dispatch is the
    # AVX2 branch both runs agree exactly; elsewhere (AVX-512 Intel, MKL 2019 on AMD) they round differently.
    pinned = {}
    configure_mkl(pinned)
    default = train_in_subprocess(raw_dir, {})
    avx2 = train_in_subprocess(raw_dir, pinned)
    np.testing.assert_allclose(avx2["loss"], default["loss"], rtol=1e-4)
    np.testing.assert_allclose(avx2["fc2"], default["fc2"], rtol=1e-3, atol=1e-5)
