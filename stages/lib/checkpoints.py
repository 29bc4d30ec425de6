"""Resumable training: after every epoch the weights, the optimizer state and the log so far are saved, so a
killed or interrupted training stage continues where it stopped and ends exactly as an unbroken run would.

A checkpoint is a directory (model.pdparams, optimizer.pdopt, seen.npy, state.json) replaced atomically and
flushed to disk. It records a fingerprint of everything the run depends on (data, params, code, device and
Paddle build), and is only resumed by a run with the same fingerprint. It also proves itself: state.json,
written last, holds the size and SHA-256 of every other file, and restore checks them before loading
anything. A damaged checkpoint (a file missing, cut short or changed, a state.json that does not parse) is
removed with one line on stderr, and training starts from scratch: never resumed, never a crash.
"""

import dataclasses
import hashlib
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import paddle

from stages.lib.files import atomic_dir, recover_dir

STATE_FILE = "state.json"
MODEL_FILE = "model.pdparams"
OPTIMIZER_FILE = "optimizer.pdopt"
SEEN_FILE = "seen.npy"  # [N] bool: which training images the run has trained on so far
STAGES_DIR = Path(__file__).resolve().parents[1]  # stages/: its code is part of the fingerprint


@dataclasses.dataclass
class Resumed:
    """Where a run continues: the log of the epochs done and the images seen so far."""
    history: list[dict]
    seen: np.ndarray  # [N] bool


class DamagedCheckpoint(Exception):
    """A checkpoint file is missing, cut short, changed or unreadable."""


def training_fingerprint(images: np.ndarray, labels: np.ndarray, **config) -> str:
    """SHA-256 of the training data, the configuration (dataclasses, functions, lists, numbers) and the code
    under stages/.

    The code counts too: after an edit to, say, the model or a loss, weights saved by the old code must not
    be resumed.
    """
    digest = hashlib.sha256()
    for source in sorted(STAGES_DIR.rglob("*.py")):
        digest.update(source.read_bytes())
    digest.update(json.dumps(config, default=_as_json, sort_keys=True).encode())
    digest.update(np.ascontiguousarray(images).tobytes())
    digest.update(np.ascontiguousarray(labels).tobytes())
    return digest.hexdigest()


def save_checkpoint(directory: Path, fingerprint: str, model, optimizer, progress: Resumed) -> None:
    with atomic_dir(directory) as tmp:
        paddle.save(model.state_dict(), str(tmp / MODEL_FILE))
        paddle.save(optimizer.state_dict(), str(tmp / OPTIMIZER_FILE))
        np.save(tmp / SEEN_FILE, progress.seen)
        files = {name: _size_and_sha256(tmp / name) for name in (MODEL_FILE, OPTIMIZER_FILE, SEEN_FILE)}
        state = {"fingerprint": fingerprint, "history": progress.history, "files": files}
        (tmp / STATE_FILE).write_text(json.dumps(state))


def restore_checkpoint(directory: Path | None, fingerprint: str, model, optimizer, num_images: int) -> Resumed:
    """Load a matching, intact checkpoint into model and optimizer and return where to continue; a fresh start
    (no epochs done, no image seen) when there is none, it is of another configuration, or it is damaged.

    The optimizer state is keyed by Paddle's generated parameter names, so model and optimizer must be created
    under a fresh paddle.utils.unique_name.guard(), as stages.train does.
    """
    fresh = Resumed([], np.zeros(num_images, dtype=bool))
    if directory is None:
        return fresh
    directory = Path(directory)
    recover_dir(directory)  # a kill between atomic_dir's two renames left the last checkpoint aside
    if not directory.exists():
        return fresh
    try:
        state = _verified_state(directory)
    except DamagedCheckpoint as exc:
        print(f"  discarding the checkpoint in {directory}: {exc}; training starts from scratch", file=sys.stderr)
        remove_checkpoint(directory)
        return fresh
    if state["fingerprint"] != fingerprint:
        print(f"  ignoring the checkpoint in {directory}: it is from another configuration, code, data or device",
              file=sys.stderr)
        return fresh
    model.set_state_dict(paddle.load(str(directory / MODEL_FILE)))
    optimizer.set_state_dict(paddle.load(str(directory / OPTIMIZER_FILE)))
    print(f"  resuming from {directory} after epoch {len(state['history'])}", file=sys.stderr)
    return Resumed(state["history"], np.load(directory / SEEN_FILE))


def remove_checkpoint(directory: Path) -> None:
    recover_dir(directory)  # first, so that an old copy a kill left aside goes too
    shutil.rmtree(directory, ignore_errors=True)


def _verified_state(directory: Path) -> dict:
    """state.json, once every file it lists has its recorded size and SHA-256; else DamagedCheckpoint."""
    try:
        state = json.loads((directory / STATE_FILE).read_text())
        files, history, fingerprint = state["files"], state["history"], state["fingerprint"]
        if not (isinstance(files, dict) and isinstance(history, list) and isinstance(fingerprint, str)):
            raise TypeError("unexpected field types")
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        raise DamagedCheckpoint(f"{directory / STATE_FILE} is missing or unreadable ({exc})") from None
    for name, (size, sha256) in files.items():
        try:
            actual = _size_and_sha256(directory / name)
        except OSError as exc:
            raise DamagedCheckpoint(f"{directory / name} cannot be read ({exc.strerror})") from None
        if actual != [size, sha256]:
            raise DamagedCheckpoint(f"{directory / name} has {actual[0]} bytes and SHA-256 {actual[1][:12]}..., "
                                    f"expected {size} bytes and {sha256[:12]}...")
    return state


def _size_and_sha256(path: Path) -> list:
    content = Path(path).read_bytes()
    return [len(content), hashlib.sha256(content).hexdigest()]


def _as_json(value):
    if dataclasses.is_dataclass(value):
        return dataclasses.asdict(value)
    if callable(value):  # a phase's loss, a sampler's order
        return f"{value.__module__}.{value.__qualname__}"
    raise TypeError(f"cannot fingerprint {type(value).__name__}")
