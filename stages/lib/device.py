"""Choosing where Paddle runs, and how, once at the edge of each stage.

What is chosen here decides the bits a training run produces (another device, another Paddle build, other
matrix kernels), so it is returned as a record that the training stage writes beside its results and puts in
its checkpoint fingerprint: a run that crashed on a GPU is not resumed on a CPU. The record names what decides
the bits, never the CPU's vendor, so an Intel and an AMD machine write the same files.
"""

import ctypes
import dataclasses
import os
import platform
import re
import sys
from pathlib import Path

import paddle

from stages.lib.params import ParamsError

# MKL's Conditional Numerical Reproducibility: MKL_CBWR pins the code branch MKL dispatches to, so every CPU
# that supports the branch computes the same bits. AVX2 is the newest branch that both vendors' x86-64 CPUs of
# the last decade run; measured here, it gives the same models on an Intel Xeon (AVX-512) and an AMD EPYC.
MKL_BRANCH_VAR = "MKL_CBWR"
MKL_BRANCH = "AVX2"
# MKL before 2020.1 ignores MKL_CBWR's branch on AMD CPUs and takes its slow COMPATIBLE path (measured: other
# bits, and slower), unless MKL_DEBUG_CPU_TYPE=5 lets it dispatch to its AVX2 kernels; later versions ignore the
# variable. Both Paddle wheels (3.x and 2.6) bundle MKLML 2019.0.5.
MKL_CPU_TYPE_VAR = "MKL_DEBUG_CPU_TYPE"
MKL_CPU_TYPE_AVX2 = "5"
LAST_MKL_WITH_CPU_TYPE = (2020, 0)
X86_64 = ("x86_64", "AMD64")


@dataclasses.dataclass(frozen=True)
class Cpu:
    machine: str  # platform.machine(): x86_64, aarch64, ...
    vendor: str  # /proc/cpuinfo vendor_id: GenuineIntel, AuthenticAMD, or "" when unknown
    flags: frozenset[str]  # /proc/cpuinfo flags: avx2, avx512f, ...

    @property
    def has_avx2(self) -> bool:
        return self.machine in X86_64 and "avx2" in self.flags


def select_device(name: str) -> dict:
    """Set Paddle's device for `name` ("auto", "cpu" or "gpu"); return what the results depend on:
    {"device", "paddle", "mkl_cbwr"} (and "mkl_debug_cpu_type" when the user set it).

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
    return {"device": device, "paddle": paddle.__version__, **configure_mkl()}


def use_deterministic_cudnn() -> None:
    """cuDNN picks its convolution algorithms by timing them unless told not to, so two runs of one
    configuration could differ; deterministic algorithms keep a GPU run bit-identical from run to run."""
    paddle.set_flags({"FLAGS_cudnn_deterministic": True})


def configure_mkl(environ=os.environ, cpu: Cpu | None = None,
                  mkl_version: tuple[int, int] | None = None) -> dict:
    """Pin MKL to its AVX2 branch on every x86-64 CPU with AVX2, whatever its vendor; return the record of what
    decides MKL's bits: {"mkl_cbwr": the branch in force, None = MKL's own choice}, plus
    {"mkl_debug_cpu_type": ...} when the user set that variable.

    A value the user set is kept. It must run before Paddle's first matrix product, which is when MKL reads the
    variables. On a CPU without AVX2 (or not x86-64), MKL keeps its default, and stderr says that the results
    will not match the committed ones.
    """
    cpu = cpu if cpu is not None else read_cpu()
    record = {}
    if MKL_BRANCH_VAR not in environ and cpu.has_avx2:
        environ[MKL_BRANCH_VAR] = MKL_BRANCH
    record["mkl_cbwr"] = environ.get(MKL_BRANCH_VAR)
    if record["mkl_cbwr"] is None:
        print(f"  {MKL_BRANCH_VAR} not set: this CPU ({cpu.machine}) has no AVX2, so MKL takes its default "
              "kernels and the results will not match the committed dvc.lock and metrics/ bit for bit",
              file=sys.stderr)
    if MKL_CPU_TYPE_VAR in environ:
        record["mkl_debug_cpu_type"] = environ[MKL_CPU_TYPE_VAR]
    elif cpu.vendor == "AuthenticAMD" and cpu.has_avx2 and record["mkl_cbwr"] == MKL_BRANCH:
        version = mkl_version if mkl_version is not None else bundled_mkl_version()
        if version is not None and version <= LAST_MKL_WITH_CPU_TYPE:
            environ[MKL_CPU_TYPE_VAR] = MKL_CPU_TYPE_AVX2  # not recorded: it only lets MKL run the pinned branch
    return record


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


def read_cpu(cpuinfo: Path = Path("/proc/cpuinfo")) -> Cpu:
    """This machine's CPU: architecture, vendor and instruction-set flags (none known off Linux)."""
    try:
        text = cpuinfo.read_text()
    except OSError:  # not Linux
        text = ""
    vendor = re.search(r"^vendor_id\s*:\s*(\S+)", text, re.MULTILINE)
    flags = re.search(r"^flags\s*:(.*)$", text, re.MULTILINE)
    return Cpu(platform.machine(), vendor[1] if vendor else "", frozenset(flags[1].split() if flags else ()))
