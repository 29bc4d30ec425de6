"""Choosing where Paddle runs, and how, once at the edge of each stage.

What is chosen here changes the bits a training run produces (another device, another Paddle, other matrix
kernels), so it is returned as a record that the training stage writes beside its results and puts in its
checkpoint fingerprint: a run that crashed on a GPU is not resumed on a CPU.
"""

import ctypes
import os
import re
import sys
from pathlib import Path

import paddle

from stages.lib.params import ParamsError

MKL_CPU_TYPE_VAR = "MKL_DEBUG_CPU_TYPE"
MKL_AVX2 = "5"  # the value that selects MKL's AVX2 kernels
# MKL before 2020.1 takes a slow generic path on AMD processors unless MKL_DEBUG_CPU_TYPE selects another;
# later versions ignore the variable. Both Paddle wheels (3.x and 2.6) bundle MKLML 2019.0.5.
LAST_MKL_WITH_CPU_TYPE = (2020, 0)


def select_device(name: str) -> dict:
    """Set Paddle's device for `name` ("auto", "cpu" or "gpu"); return what the results depend on:
    {"device", "paddle", "mkl_cpu_type"}.

    auto takes the GPU when this Paddle is built with CUDA and sees a GPU (paddlepaddle-gpu on a GPU
    machine), else the CPU; gpu without either is an error rather than a silent fall-back.
    """
    has_gpu = paddle.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0
    if name == "gpu" and not has_gpu:
        raise ParamsError("train.device: 'gpu' is not available: this Paddle "
                          + ("sees no GPU" if paddle.is_compiled_with_cuda() else "is built without CUDA")
                          + "; install paddlepaddle-gpu on a machine with a GPU, or set train.device to "
                          "'auto' or 'cpu'")
    device = "gpu:0" if name == "gpu" or (name == "auto" and has_gpu) else "cpu"
    if device.startswith("gpu"):
        use_deterministic_cudnn()
    paddle.set_device(device)
    return {"device": device, "paddle": paddle.__version__, "mkl_cpu_type": configure_mkl()}


def use_deterministic_cudnn() -> None:
    """cuDNN picks its convolution algorithms by timing them unless told not to, so two runs of one
    configuration could differ; deterministic algorithms keep a GPU run bit-identical from run to run."""
    paddle.set_flags({"FLAGS_cudnn_deterministic": True})


def configure_mkl(environ=os.environ, cpu_vendor: str | None = None,
                  mkl_version: tuple[int, int] | None = None) -> str | None:
    """Select MKL's AVX2 kernels where its old versions would not (an AMD CPU, Paddle's bundled MKL <= 2020.0,
    MKL_DEBUG_CPU_TYPE not set by the user); return the MKL_DEBUG_CPU_TYPE in force (None = MKL's default).

    It must run before Paddle's first matrix product, which is when MKL reads the variable. It changes which
    kernels run and so how sums round: results agree with the default path to float32 precision, not bit
    for bit, hence the value is recorded with every training run.
    """
    if MKL_CPU_TYPE_VAR in environ:
        return environ[MKL_CPU_TYPE_VAR]
    vendor = cpu_vendor if cpu_vendor is not None else _cpu_vendor()
    version = mkl_version if mkl_version is not None else bundled_mkl_version()
    if vendor != "AuthenticAMD" or version is None or version > LAST_MKL_WITH_CPU_TYPE:
        return None
    environ[MKL_CPU_TYPE_VAR] = MKL_AVX2
    print(f"  {MKL_CPU_TYPE_VAR}={MKL_AVX2}: MKL {version[0]}.{version[1]} on an AMD CPU, using its AVX2 kernels",
          file=sys.stderr)
    return MKL_AVX2


def bundled_mkl_version() -> tuple[int, int] | None:
    """(major, minor) of the MKL that Paddle ships (paddle/libs/libmklml_intel.so), None when there is none."""
    library = Path(paddle.__file__).parent / "libs" / "libmklml_intel.so"
    if not library.exists():
        return None
    buffer = ctypes.create_string_buffer(256)
    # Only the version string: unlike MKL_Get_Version, it does not make MKL pick its kernels yet.
    ctypes.CDLL(str(library)).MKL_Get_Version_String(buffer, len(buffer))
    match = re.search(rb"Version (\d+)\.(\d+)", buffer.value)
    return (int(match[1]), int(match[2])) if match else None


def _cpu_vendor() -> str:
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
    except OSError:  # not Linux
        return ""
    match = re.search(r"^vendor_id\s*:\s*(\S+)", cpuinfo, re.MULTILINE)
    return match[1] if match else ""
