"""Real MNIST for the tests, got the way the download stage gets it, and kept once per machine.

$MNIST_MIRROR, when it names a folder that holds the four files (gzipped or not), is used as it is. Otherwise
($MNIST_MIRROR a base URL, a folder without the files, or unset) the files are downloaded as the download stage
does it: $MNIST_MIRROR first, then download.mirrors of params.yaml, the SHA-256 of each file's content checked.
They go into a cache folder outside the repository (the user cache directory, as pip's own), whose decompressed
files make it a local mirror in turn; a later session checks it again and reuses it.
"""

from pathlib import Path

import platformdirs

from stages.download import download_mnist
from stages.lib.data import MNIST_FILES, sha256_matches

CACHE_DIR = Path(platformdirs.user_cache_dir("mnist-imbalance")) / "mnist"


def local_mnist(mirror: str | None, mirrors: list[str], cache_dir: Path, timeout_s: float) -> Path:
    """A local folder holding the four MNIST files: the folder $MNIST_MIRROR names, or `cache_dir`, filled
    from `mirror` and then `mirrors` if it does not hold a verified copy yet. Raises the download stage's
    DownloadError, which names every location tried and how to set $MNIST_MIRROR, when no source has them."""
    if mirror and "://" not in mirror and holds_mnist(Path(mirror)):
        return Path(mirror)
    if not holds_verified_mnist(cache_dir):
        download_mnist(sources=([mirror] if mirror else []) + list(mirrors), timeout_s=timeout_s, out_dir=cache_dir)
    return cache_dir


def holds_mnist(folder: Path) -> bool:
    """Each file is there as NAME.gz or NAME; the tests and the stage check its content when they read it."""
    return all((folder / f"{name}.gz").is_file() or (folder / name).is_file() for name in MNIST_FILES)


def holds_verified_mnist(folder: Path) -> bool:
    """Each file is there, decompressed, with the right SHA-256 (a fraction of a second for the four)."""
    return all((folder / name).is_file() and sha256_matches(name, (folder / name).read_bytes()) is None
               for name in MNIST_FILES)
