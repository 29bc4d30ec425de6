"""Downloads from real HTTP mirrors on 127.0.0.1: each way a mirror can fail is named, then the next one is used.

A ThreadingHTTPServer serves, per path, the responses a test sets up: the real MNIST files of $MNIST_MIRROR,
or a broken copy of one. Every request stays on the loopback interface and times out within seconds.
"""

import dataclasses
import gzip
import http.server
import random
import re
import sys
import threading

import pytest

from stages.lib.data import MNIST_FILES, sha256_matches
from stages.download import DownloadError, download_mnist, fetch_verified
from stage_project import make_project, project_files, run_stage

LABELS = "train-labels-idx1-ubyte"
FIRST = next(iter(MNIST_FILES))  # the stage fetches this file first, so a dead source fails on it
TIMEOUT_S = 1  # per request; loopback answers in milliseconds
HTML = b"<!DOCTYPE html><html><head><title>Moved</title></head><body>This dataset has moved.</body></html>"


@dataclasses.dataclass(frozen=True)
class Response:
    status: int = 200
    body: bytes = b""
    content_type: str = "application/octet-stream"
    declared_length: int | None = None  # a Content-Length beyond the body: the connection drops mid-file
    stall_s: float = 0  # seconds to wait before answering
    trickle_s: float = 0  # if set, the body is sent one byte at a time, this many seconds apart


class MirrorHandler(http.server.BaseHTTPRequestHandler):
    """GET /MIRROR/NAME answers with server.routes["/MIRROR/NAME"], or 404; every path asked for is recorded."""

    def do_GET(self):
        self.server.requested.append(self.path)
        response = self.server.routes.get(self.path)
        if response is None:
            self.send_error(404)
            return
        self.server.released.wait(response.stall_s)
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(response.declared_length or len(response.body)))
        self.end_headers()
        if not response.trickle_s:
            self.wfile.write(response.body)
            return
        for byte in response.body:
            if self.server.released.wait(response.trickle_s):
                return
            try:
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
            except OSError:  # the client gave up
                return

    def log_message(self, format, *args):
        pass  # one line per request would bury pytest's output


class MirrorServer(http.server.ThreadingHTTPServer):
    def __init__(self):
        super().__init__(("127.0.0.1", 0), MirrorHandler)
        self.routes: dict[str, Response] = {}
        self.requested: list[str] = []
        self.released = threading.Event()  # set at teardown: stalled handlers give up at once

    def url(self, mirror: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/{mirror}"

    def serve(self, mirror: str, name: str, response: Response) -> None:
        self.routes[f"/{mirror}/{name}"] = response

    def serve_directory(self, mirror: str, directory) -> None:
        """The files of `directory` (NAME.gz or NAME), each under its own name."""
        for path in directory.iterdir():
            self.serve(mirror, path.name, Response(body=path.read_bytes()))

    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], ConnectionError):  # a client that timed out and hung up
            super().handle_error(request, client_address)


@pytest.fixture
def server():
    server = MirrorServer()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.released.set()
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture(scope="module")
def real(mnist_mirror) -> dict[str, bytes]:
    """The decompressed content of the two label files, which are small enough to break by hand."""
    return {name: fetch_verified(name, [str(mnist_mirror)], TIMEOUT_S)[0]
            for name in (LABELS, "t10k-labels-idx1-ubyte")}


def shuffled(content: bytes) -> bytes:
    """The same bytes in another order: right size, wrong SHA-256."""
    items = list(content)
    random.Random(0).shuffle(items)
    return bytes(items)


# What a broken mirror serves as LABELS.gz, and how the error must describe it.
BROKEN = {
    "http-404": (None, r"HTTP Error 404: Not Found"),  # nothing served under /broken/
    "html-page": (lambda real: Response(body=HTML, content_type="text/html"),
                  r"not a gzip file \(it begins b'<"),
    "truncated-gz": (lambda real: Response(body=gzip.compress(real[LABELS])[:5000]),
                     r"not a complete gzip file \(Compressed file ended before the end-of-stream marker"),
    "another-mnist-file": (lambda real: Response(body=gzip.compress(real["t10k-labels-idx1-ubyte"])),
                           r"10008 bytes after decompression, expected 60008"),
    "shuffled-bytes": (lambda real: Response(body=gzip.compress(shuffled(real[LABELS]))),
                       r"SHA-256 [0-9a-f]{64} does not match the expected"),
    "connection-dropped": (lambda real: Response(body=gzip.compress(real[LABELS])[:5000], declared_length=40000),
                           r"connection closed after 5000 bytes, 35000 more expected"),
    "stalled": (lambda real: Response(body=gzip.compress(real[LABELS]), stall_s=10), r"timed out"),
    # One byte every half second: no single read times out, the whole download does.
    "trickling": (lambda real: Response(body=gzip.compress(real[LABELS]), trickle_s=0.5),
                  r"not complete after 1(\.0)? s \(download.timeout_s\)"),
}


def assert_names_the_failure(error: DownloadError, url: str, problem: str) -> None:
    message = str(error)
    assert message.startswith(f"could not get a valid {LABELS} from any source; tried:")
    assert re.search(re.escape(f"\n  {url}/{LABELS}.gz: ") + problem, message), message


@pytest.mark.parametrize("kind", BROKEN)
def test_broken_http_mirror_is_named_then_the_next_mirror_is_used(server, real, kind):
    make_response, problem = BROKEN[kind]
    if make_response is not None:
        server.serve("broken", f"{LABELS}.gz", make_response(real))
    server.serve("good", f"{LABELS}.gz", Response(body=gzip.compress(real[LABELS])))
    broken, good = server.url("broken"), server.url("good")

    with pytest.raises(DownloadError) as error:
        fetch_verified(LABELS, [broken], TIMEOUT_S)
    assert_names_the_failure(error.value, broken, problem)

    server.requested.clear()
    content, source = fetch_verified(LABELS, [broken, good], TIMEOUT_S)
    assert (content, source) == (real[LABELS], f"{good}/{LABELS}.gz")
    assert server.requested == [f"/broken/{LABELS}.gz", f"/broken/{LABELS}", f"/good/{LABELS}.gz"]


def test_unreachable_mirror_is_named_then_the_next_mirror_is_used(server, real, dead_url):
    server.serve("good", f"{LABELS}.gz", Response(body=gzip.compress(real[LABELS])))
    with pytest.raises(DownloadError) as error:
        fetch_verified(LABELS, [dead_url], TIMEOUT_S)
    assert_names_the_failure(error.value, dead_url, r"<urlopen error \[Errno \d+\] Connection refused>")

    content, source = fetch_verified(LABELS, [dead_url, server.url("good")], TIMEOUT_S)
    assert (content, source) == (real[LABELS], f"{server.url('good')}/{LABELS}.gz")


@pytest.mark.parametrize("good_kind", ["http", "directory"])
def test_download_skips_every_broken_mirror_and_replaces_the_old_raw_dir(
        server, mnist_mirror, dead_url, tmp_path, capsys, good_kind):
    for name in MNIST_FILES:
        server.serve("html", f"{name}.gz", Response(body=HTML, content_type="text/html"))
    server.serve_directory("good", mnist_mirror)
    good = server.url("good") if good_kind == "http" else str(mnist_mirror)
    out_dir = tmp_path / "data" / "raw"
    out_dir.mkdir(parents=True)
    (out_dir / "stale-file").write_text("from an earlier download")

    download_mnist(sources=[dead_url, server.url("missing"), server.url("html"), good], timeout_s=TIMEOUT_S,
                   out_dir=out_dir)

    assert sorted(p.name for p in out_dir.iterdir()) == sorted(MNIST_FILES)
    assert all(sha256_matches(name, (out_dir / name).read_bytes()) is None for name in MNIST_FILES)
    assert [p.name for p in out_dir.parent.iterdir()] == ["raw"]
    progress = capsys.readouterr().err.splitlines()
    assert len(progress) == 4 and all(f"from {good}/" in line for line in progress), progress


# --- the download stage as a subprocess, when no source works -----------------------------------------------

@pytest.fixture
def failing_project(tmp_path, project_root, server, dead_url):
    """A project whose $MNIST_MIRROR is dead and whose two mirrors answer 404 and an HTML page."""
    server.serve("html", f"{FIRST}.gz", Response(body=HTML, content_type="text/html"))
    mirrors = [server.url("missing"), server.url("html")]
    project = make_project(tmp_path / "project", project_root,
                           {"download.mirrors": mirrors, "download.timeout_s": TIMEOUT_S})
    return project, [dead_url, *mirrors]


def run_download(project, sources) -> str:
    """Run the stage with sources[0] as $MNIST_MIRROR; check it failed cleanly; return its stderr."""
    result = run_stage(project, "stages.download", env={"MNIST_MIRROR": sources[0]}, timeout_s=60)
    assert result.returncode != 0
    assert result.stderr.startswith(f"download: error: could not get a valid {FIRST} from any source")
    for url in sources:
        assert f"\n  {url}/{FIRST}.gz: " in result.stderr
    assert "Traceback" not in result.stderr
    return result.stderr


def test_stage_that_finds_no_valid_source_exits_non_zero_and_writes_nothing(failing_project):
    project, sources = failing_project
    before = project_files(project)
    stderr = run_download(project, sources)
    assert "Connection refused" in stderr and "HTTP Error 404" in stderr
    # At most an empty data/: neither data/raw nor a temporary directory beside it.
    assert project_files(project) in (before, {**before, "data": None})


def test_failed_download_keeps_the_earlier_raw_dir(failing_project):
    project, sources = failing_project
    raw = project / "data" / "raw"
    raw.mkdir(parents=True)
    for name in MNIST_FILES:
        (raw / name).write_text(f"the earlier copy of {name}")
    before = project_files(project)
    run_download(project, sources)
    assert project_files(project) == before
