"""Fixtures shared by the test files: the local MNIST mirror, the downloaded raw files, the repository root, and
a temporary git + DVC repository of the project after its first `dvc repro`."""

import dataclasses
import os
import subprocess
from pathlib import Path

import pytest
from pipeline_repo import Runner, make_repo

from stages.download import MIRROR_ENV, download_mnist
from stages.lib.data import MNIST_FILES

REPO_ROOT = Path(__file__).resolve().parent.parent
MIRROR_HINT = f"set {MIRROR_ENV}=../shared/mnist (the local copy of the four MNIST files) and run pytest again"


@pytest.fixture(scope="session")
def project_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def mnist_mirror() -> Path:
    """The absolute path of $MNIST_MIRROR; a relative value is taken from the repository root."""
    value = os.environ.get(MIRROR_ENV)
    if not value:
        pytest.fail(f"{MIRROR_ENV} is not set; {MIRROR_HINT}")
    mirror = (REPO_ROOT / value).resolve()
    missing = [name for name in MNIST_FILES
               if not (mirror / f"{name}.gz").is_file() and not (mirror / name).is_file()]
    if missing:
        pytest.fail(f"{MIRROR_ENV}={value} ({mirror}) lacks {', '.join(missing)}; {MIRROR_HINT}")
    return mirror


@pytest.fixture(scope="session")
def raw_dir(mnist_mirror, tmp_path_factory) -> Path:
    """The four decompressed, checksum-verified MNIST files, downloaded once per test session."""
    out_dir = tmp_path_factory.mktemp("download") / "raw"
    download_mnist(sources=[str(mnist_mirror)], timeout_s=5, out_dir=out_dir)
    return out_dir


@dataclasses.dataclass(frozen=True)
class Reproduced:
    """A repository after its first `dvc repro`, committed, and that command's output."""
    run: Runner
    first_repro: subprocess.CompletedProcess


@pytest.fixture(scope="session")
def reproduced_repo(tmp_path_factory, project_root, mnist_mirror) -> Reproduced:
    """The project with shrunken params (pipeline_repo.shrink) after a full `dvc repro`, committed. Tests work on
    copies of it (pipeline_repo.copy_repo): one repro, the costliest step, serves every end-to-end file."""
    run = make_repo(tmp_path_factory.mktemp("reproduced"), project_root, mnist_mirror)
    first_repro = run("dvc", "repro")
    run("git", "add", "-A")
    run("git", "commit", "-qm", "first run")
    return Reproduced(run, first_repro)
