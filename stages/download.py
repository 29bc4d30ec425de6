"""Stage `download`: fetch the four MNIST files into data/raw/, verified against their SHA-256.

Sources are tried in order: $MNIST_MIRROR (a local directory or a base URL) if set, then download.mirrors.
A source may hold each file gzipped (NAME.gz) or plain (NAME); only the decompressed content is checked.
"""

import gzip
import http.client
import os
import sys
import time
import urllib.request
import zlib
from pathlib import Path

from stages.lib import params as P
from stages.lib.cli import StageError, run_stage
from stages.lib.data import MNIST_FILES, sha256_matches
from stages.lib.files import atomic_dir
from stages.lib.paths import RAW_DIR

MIRROR_ENV = "MNIST_MIRROR"
GZIP_MAGIC = b"\x1f\x8b"
CHUNK_BYTES = 1 << 20


class DownloadError(StageError):
    """No source delivered a valid copy of a file."""


def download_mnist(*, sources: list[str], timeout_s: float, out_dir: Path = RAW_DIR) -> None:
    """Fetch every MNIST file from the first source that has a valid copy; write out_dir whole or not at all."""
    with atomic_dir(out_dir) as tmp:
        for name in MNIST_FILES:
            content, source = fetch_verified(name, sources, timeout_s)
            (tmp / name).write_bytes(content)
            print(f"download: {name} from {source} ({len(content)} bytes, SHA-256 ok)", file=sys.stderr)


def fetch_verified(name: str, sources: list[str], timeout_s: float) -> tuple[bytes, str]:
    """The decompressed content of `name` from the first source that serves it intact, and that source."""
    failures = []
    for source in sources:
        for candidate in (f"{name}.gz", name):
            location = _join(source, candidate)
            try:
                content = _decompress(_read(location, timeout_s, max_bytes=2 * MNIST_FILES[name][0]), location)
            except (OSError, http.client.HTTPException, ValueError) as exc:  # URLError is an OSError
                failures.append(f"{location}: {exc}")
                continue
            problem = sha256_matches(name, content)
            if problem is None:
                return content, location
            failures.append(f"{location}: {problem}")
    tried = "\n  ".join(failures)
    raise DownloadError(f"could not get a valid {name} from any source; tried:\n  {tried}\n"
                        f"Set {MIRROR_ENV} to a directory holding the MNIST files (for example "
                        f"{MIRROR_ENV}=../shared/mnist) or fix download.mirrors in params.yaml.")


def mirror_sources(mirrors: tuple[str, ...]) -> list[str]:
    """$MNIST_MIRROR first when set, then the mirrors from params.yaml."""
    local = os.environ.get(MIRROR_ENV)
    return ([local] if local else []) + list(mirrors)


def _join(source: str, name: str) -> str:
    if "://" in source:
        return source.rstrip("/") + "/" + name
    return str(Path(source) / name)


def _read(location: str, timeout_s: float, max_bytes: int) -> bytes:
    """The bytes at a local path or URL; a download gets timeout_s in all and at most max_bytes."""
    if "://" not in location:
        return Path(location).read_bytes()
    deadline = time.monotonic() + timeout_s
    chunks, size = [], 0
    with urllib.request.urlopen(location, timeout=timeout_s) as response:
        while chunk := response.read1(CHUNK_BYTES):  # whatever has arrived, so the deadline is checked
            size += len(chunk)
            if size > max_bytes:
                raise ValueError(f"more than {max_bytes} bytes: not the MNIST file")
            if time.monotonic() > deadline:
                raise TimeoutError(f"not complete after {timeout_s} s (download.timeout_s)")
            chunks.append(chunk)
        remaining = getattr(response, "length", None)  # HTTP only: what the Content-Length still promises
        if remaining:
            raise ConnectionError(f"connection closed after {size} bytes, {remaining} more expected")
    return b"".join(chunks)


def _decompress(raw: bytes, location: str) -> bytes:
    if not raw.startswith(GZIP_MAGIC):
        if location.endswith(".gz"):
            raise ValueError(f"not a gzip file (it begins {raw[:16]!r})")
        return raw
    try:
        return gzip.decompress(raw)
    except (EOFError, OSError, zlib.error) as exc:  # BadGzipFile is an OSError
        raise ValueError(f"not a complete gzip file ({exc})") from None


def main() -> None:
    params = P.section(P.read_params(), "download", P.DownloadParams)
    download_mnist(sources=mirror_sources(params.mirrors), timeout_s=params.timeout_s)


if __name__ == "__main__":
    run_stage("download", main)
