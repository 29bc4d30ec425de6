"""Atomic output: every file a stage writes appears whole or not at all."""

import contextlib
import json
import os
import re
import shutil
import tempfile
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: Path):
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds.

    The temporary name keeps the suffix, so writers that look at it (paddle.save) still work. The file is
    flushed to disk before the rename and the directory after it: without that, a power loss or kernel crash
    soon after can leave the new name pointing at an empty or partial file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_left_over(path.parent, path.stem, f".tmp{path.suffix}")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}")
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it private; give it the mode a plain open() would
    try:
        yield Path(tmp)
        _fsync(tmp)
        os.replace(tmp, path)
        _fsync(path.parent)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


@contextlib.contextmanager
def atomic_dir(path: Path):
    """Yield a temporary directory beside `path`; it replaces `path` only if the block succeeds.

    The old directory is moved aside to `.<name>.old` before the new one takes its place. A process killed
    between those two renames leaves no `path` but the old one aside: recover_dir (called here, and by
    readers that must not miss it) puts it back. Files and directories are flushed to disk as in atomic_path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    recover_dir(path)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    os.chmod(tmp, 0o777 & ~_umask())
    old = _aside(path)
    try:
        yield tmp
        for item in tmp.iterdir():
            _fsync(item)
        _fsync(tmp)
        if path.exists():
            os.replace(path, old)
        os.replace(tmp, path)
        _fsync(path.parent)
    finally:
        recover_dir(path)  # interrupted between the two renames: the old one goes back
        if tmp.exists():
            shutil.rmtree(tmp)


def recover_dir(path: Path) -> None:
    """Finish what an atomic_dir killed left: the old directory back when a kill between its renames left
    `path` missing, or removed when `path` is there; the temporary directory of a kill mid-write, removed."""
    _remove_left_over(Path(path).parent, Path(path).name, ".tmp")
    old = _aside(Path(path))
    if old.exists():
        if Path(path).exists():
            shutil.rmtree(old)
        else:
            os.replace(old, path)


def _remove_left_over(directory: Path, name: str, suffix: str) -> None:
    """Remove the temporaries (`.<name>.<random>.tmp...`) that writers of `name` killed mid-write left. Each
    output has one writer at a time (DVC locks a stage's outputs; a checkpoint is its stage's), so none of them
    is still being written."""
    pattern = re.compile(rf"\.{re.escape(name)}\.[^.]+{re.escape(suffix)}")
    for path in filter(lambda path: pattern.fullmatch(path.name), directory.glob(f".{name}.*{suffix}")):
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()


def _aside(path: Path) -> Path:
    return path.with_name(f".{path.name}.old")


def _fsync(path) -> None:
    """Flush a file's or a directory's content to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: Path, data: dict) -> None:
    write_text(path, json.dumps(data, indent=2) + "\n")
