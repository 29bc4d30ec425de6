"""Fixtures shared by the test files: a local MNIST mirror, the downloaded raw files, the repository root, and
a temporary git + DVC repository of the project after its first `dvc repro`."""

import dataclasses
import os
import signal
import socket
import subprocess
from pathlib import Path

import pytest
from mnist_source import CACHE_DIR, local_mnist
from pipeline_repo import Runner, make_repo

from stages.download import MIRROR_ENV, DownloadError, download_mnist
from stages.lib import params as P

REPO_ROOT = Path(__file__).resolve().parent.parent

# A shell that starts pytest in the background (`cmd &`, as a script or a CI runner may) leaves SIGINT ignored,
# and every process the tests start inherits that: their Ctrl-C (test_resume, test_chaos) would not reach the
# stages, which would run to the end. Ctrl-C works here as in a terminal.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


# select_device pins MKL through os.environ (stages.lib.device), so a test that calls it in this process would
# leave the variables to every later subprocess, whose stages would take them for the user's own and record
# them (mkl_debug_cpu_type on AMD). After each test they are put back as the session found them.
MKL_VARIABLES = ("MKL_CBWR", "MKL_DEBUG_CPU_TYPE")
SESSION_MKL = {name: os.environ.get(name) for name in MKL_VARIABLES}


@pytest.fixture(autouse=True)
def mkl_variables_as_the_session_found_them():
    yield
    for name, value in SESSION_MKL.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture(scope="session")
def project_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def mnist_mirror() -> Path:
    """A local folder holding the four MNIST files (mnist_source.local_mnist): $MNIST_MIRROR's when it is one
    (a relative path is taken from the repository root), else the user cache, downloaded into once."""
    value = os.environ.get(MIRROR_ENV)
    if value and "://" not in value:
        value = str((REPO_ROOT / value).resolve())
    download = P.section(P.read_params(REPO_ROOT / "params.yaml"), "download", P.DownloadParams)
    try:
        return local_mnist(value, download.mirrors, CACHE_DIR, download.timeout_s)
    except DownloadError as error:
        problem = str(error)  # failed outside the handler: the message alone, without the chained traceback
    pytest.fail(f"the tests need real MNIST and found none: {problem}", pytrace=False)


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


@pytest.fixture
def dead_url() -> str:
    """A URL on 127.0.0.1 where nothing listens: the port of a socket just closed."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/mnist"
