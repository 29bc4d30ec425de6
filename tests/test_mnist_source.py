"""Where the tests get MNIST (tests/mnist_source.py, the mnist_mirror fixture): a folder $MNIST_MIRROR names,
else a download the way the download stage does it, from $MNIST_MIRROR as a URL or from the mirrors of
params.yaml, into a cache kept between sessions; and, when nothing answers, a failure that says what was tried
and how to set $MNIST_MIRROR. A real HTTP server on 127.0.0.1 serves the four files."""

import functools
import http.server
import os
import subprocess
import sys
import threading

import pytest
from mnist_source import holds_verified_mnist, local_mnist
from stage_project import make_project

from stages.download import DownloadError
from stages.lib.data import MNIST_FILES

TIMEOUT_S = 5
PROBE_TEST = "def test_probe(mnist_mirror):\n    print('MIRROR', mnist_mirror)\n"


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        self.server.requested.append(self.path)


@pytest.fixture
def mnist_url(mnist_mirror):
    """The base URL of a real HTTP server on 127.0.0.1 serving the folder of the four files; the paths it was
    asked for are in .requested of the yielded server."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                             functools.partial(QuietHandler, directory=str(mnist_mirror)))
    server.requested = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", server
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def test_a_folder_that_holds_the_files_is_used_as_it_is(mnist_mirror, tmp_path):
    assert local_mnist(str(mnist_mirror), [], tmp_path / "cache", TIMEOUT_S) == mnist_mirror
    assert not (tmp_path / "cache").exists()


def test_a_url_is_downloaded_once_into_the_cache_and_then_the_cache_serves(mnist_url, dead_url, tmp_path):
    url, server = mnist_url
    cache = tmp_path / "cache"
    assert local_mnist(url, [dead_url], cache, TIMEOUT_S) == cache
    assert holds_verified_mnist(cache) and sorted(p.name for p in cache.iterdir()) == sorted(MNIST_FILES)
    assert len(server.requested) >= len(MNIST_FILES)

    server.requested.clear()
    assert local_mnist(url, [dead_url], cache, TIMEOUT_S) == cache
    assert server.requested == []


def test_a_damaged_cache_is_downloaded_again(mnist_url, tmp_path):
    url, server = mnist_url
    cache = local_mnist(url, [], tmp_path / "cache", TIMEOUT_S)
    labels = cache / "t10k-labels-idx1-ubyte"
    labels.write_bytes(labels.read_bytes()[:100])
    server.requested.clear()
    local_mnist(url, [], cache, TIMEOUT_S)
    assert holds_verified_mnist(cache) and server.requested


def test_nothing_reachable_names_every_mirror_and_mnist_mirror(dead_url, tmp_path):
    with pytest.raises(DownloadError) as error:
        local_mnist(None, [dead_url, f"{dead_url}2"], tmp_path / "cache", TIMEOUT_S)
    message = str(error.value)
    assert f"\n  {dead_url}/train-images-idx3-ubyte.gz: " in message
    assert f"\n  {dead_url}2/train-images-idx3-ubyte.gz: " in message
    assert "Set MNIST_MIRROR to a directory holding the MNIST files" in message
    assert not (tmp_path / "cache").exists()


def run_fixture(tmp_path, project_root, mirrors: list[str], mnist_mirror_value: str | None):
    """pytest, as a subprocess, on a copy of the project whose params.yaml lists `mirrors`, with the suite's
    conftest and one test that asks for the mnist_mirror fixture; the user cache is a folder of tmp_path."""
    project = make_project(tmp_path / "project", project_root, {"download.mirrors": mirrors,
                                                                "download.timeout_s": TIMEOUT_S})
    (project / "tests").mkdir()
    for name in ("conftest.py", "mnist_source.py", "pipeline_repo.py"):
        (project / "tests" / name).write_bytes((project_root / "tests" / name).read_bytes())
    (project / "tests" / "test_probe.py").write_text(PROBE_TEST)
    env = {key: value for key, value in os.environ.items() if key != "MNIST_MIRROR"}
    env["XDG_CACHE_HOME"] = str(tmp_path / "user-cache")  # platformdirs' user cache on Linux
    if mnist_mirror_value:
        env["MNIST_MIRROR"] = mnist_mirror_value
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", "tests"],
                          cwd=project, env=env, capture_output=True, text=True, timeout=120)


def test_suite_with_mnist_mirror_unset_and_no_mirror_reachable_says_what_to_do(tmp_path, project_root, dead_url):
    result = run_fixture(tmp_path, project_root, [dead_url], None)
    assert result.returncode != 0
    assert "the tests need real MNIST and found none: could not get a valid train-images-idx3-ubyte" in result.stdout
    assert f"{dead_url}/train-images-idx3-ubyte.gz: <urlopen error" in result.stdout
    assert "Set MNIST_MIRROR to a directory holding the MNIST files" in result.stdout, result.stdout
    assert "is not set" not in result.stdout


@pytest.mark.skipif(sys.platform != "linux", reason="XDG_CACHE_HOME sets platformdirs' user cache on Linux only")
def test_suite_with_mnist_mirror_a_url_downloads_into_the_user_cache(tmp_path, project_root, mnist_url, dead_url):
    url, _ = mnist_url
    result = run_fixture(tmp_path, project_root, [dead_url], url)
    assert result.returncode == 0, result.stdout + result.stderr
    cache = tmp_path / "user-cache" / "mnist-imbalance" / "mnist"
    assert f"MIRROR {cache}" in result.stdout
    assert holds_verified_mnist(cache)
