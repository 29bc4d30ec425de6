"""Fixtures shared by the test files: the local MNIST mirror, the downloaded raw files, the repository root."""

import os
from pathlib import Path

import pytest

from stages.data import MNIST_FILES
from stages.download import MIRROR_ENV, download_mnist

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
