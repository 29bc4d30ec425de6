"""The same bits on any x86-64 CPU with AVX2: small real training runs (tests/golden_training.py: every remedy,
the three samplers, an image budget, the per-batch protocol, augmentation) must give exactly the weights pinned
here. The first machine where MKL's pinned branch, Paddle or the training code computes another bit fails this.

Paddle 2.6.2 and 3.3.1 give the same weights, so one set of hashes pins both; a build not yet verified fails
until someone checks it and adds it (a build that computes otherwise would get hashes of its own). Where they
were verified: docs/reproducibility.md. To pin them after an intended change: `python tests/golden_training.py
RAW_DIR` under each build.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import paddle
import pytest

from stages.lib.device import MKL_BRANCH_VAR, MKL_CPU_TYPE_VAR, read_cpu

SCRIPT = Path(__file__).resolve().parent / "golden_training.py"

# case -> MD5 of the weights (golden_training.model_md5), the same under every build of VERIFIED_BUILDS.
GOLDEN = {
    "baseline": "e74eb557060790ad706ab0f47c217e80",
    "reduced": "d0db5460faa9db7c1d1ceaac483e33af",
    "focal_fixed": "8fd402731c346b17c34818e20bc06891",
    "focal_curriculum": "3405db44ed36fb2e5beaef27a0f5eb9b",
    "class_balanced": "8d461a6d6734ee450c36851ba17241f2",
    "logit_adjusted": "5f3a2ca0880b58e3bba33275733de001",
    "ldam_drw": "b0de3d6194cb79fa846dc14a2bdf4828",
    "crt": "72d0d5793a3c39ce900e35ba3b02297a",
    "oversampled": "608fef3f9d80cff32f5b1a3e1045803a",
    "undersampled_budget": "11a4a41456b9d8ad7b783c5338aa90ef",
    "per_batch": "1a35b79efe08dd221fd86366e2fd003c",
    "shifts": "63d7c32cf2666d63068123c53300ee71",
}
VERIFIED_BUILDS = ("2.6", "3.3")  # Paddle major.minor
BUILD = ".".join(paddle.__version__.split(".")[:2])


def run_golden(raw_dir: Path, **env_overrides: str) -> dict:
    """golden_training.py's output, in a process started without the user's MKL variables (plus the overrides)."""
    env = {key: value for key, value in os.environ.items() if key not in (MKL_BRANCH_VAR, MKL_CPU_TYPE_VAR)}
    result = subprocess.run([sys.executable, str(SCRIPT), str(raw_dir)], env={**env, **env_overrides},
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


@pytest.fixture(scope="module")
def golden_run(raw_dir) -> dict:
    if not read_cpu().has_avx2:
        pytest.skip("this CPU has no AVX2: MKL runs its default kernels, which the hashes do not pin")
    if BUILD not in VERIFIED_BUILDS:
        pytest.fail(f"Paddle {paddle.__version__} is not verified against the pinned hashes: run `python "
                    f"tests/{SCRIPT.name} RAW_DIR`; if it gives GOLDEN, add {BUILD!r} to VERIFIED_BUILDS, otherwise "
                    "pin its own hashes")
    return run_golden(raw_dir)


def test_training_gives_the_pinned_weights_bit_for_bit(golden_run):
    assert golden_run["mkl_cbwr"] == "AVX2"
    assert golden_run["hashes"] == GOLDEN


def test_the_pins_tell_another_mkl_branch_apart(golden_run, raw_dir):
    # The check can fail: MKL's COMPATIBLE branch, which a user may set, rounds otherwise and moves every hash.
    compatible = run_golden(raw_dir, **{MKL_BRANCH_VAR: "COMPATIBLE"})
    assert compatible["mkl_cbwr"] == "COMPATIBLE"
    differing = {case for case, md5 in compatible["hashes"].items() if md5 != golden_run["hashes"][case]}
    assert differing == set(GOLDEN)
