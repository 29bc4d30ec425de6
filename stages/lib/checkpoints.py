"""Resumable training: after every epoch the weights, the optimizer state and the log so far are saved, so a
killed or interrupted training stage continues where it stopped and ends exactly as an unbroken run would.

A checkpoint is a directory (model.pdparams, optimizer.pdopt, seen.npy, state.json) replaced atomically. It
records a fingerprint of everything the run depends on (data, params, code, device and Paddle build), and is
only resumed by a run with the same fingerprint.
"""

import dataclasses
import hashlib
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import paddle

from stages.lib.files import atomic_dir

STATE_FILE = "state.json"
SEEN_FILE = "seen.npy"  # [N] bool: which training images the run has trained on so far
STAGES_DIR = Path(__file__).resolve().parents[1]  # stages/: its code is part of the fingerprint


@dataclasses.dataclass
class Resumed:
    """Where a run continues: the log of the epochs done and the images seen so far."""
    history: list[dict]
    seen: np.ndarray  # [N] bool


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
        paddle.save(model.state_dict(), str(tmp / "model.pdparams"))
        paddle.save(optimizer.state_dict(), str(tmp / "optimizer.pdopt"))
        np.save(tmp / SEEN_FILE, progress.seen)
        (tmp / STATE_FILE).write_text(json.dumps({"fingerprint": fingerprint, "history": progress.history}))


def restore_checkpoint(directory: Path | None, fingerprint: str, model, optimizer, num_images: int) -> Resumed:
    """Load a matching checkpoint into model and optimizer and return where to continue; a fresh start (no
    epochs done, no image seen) when there is none to resume or no directory.

    The optimizer state is keyed by Paddle's generated parameter names, so model and optimizer must be created
    under a fresh paddle.utils.unique_name.guard(), as stages.train does.
    """
    fresh = Resumed([], np.zeros(num_images, dtype=bool))
    if directory is None or not (Path(directory) / STATE_FILE).exists():
        return fresh
    state = json.loads((Path(directory) / STATE_FILE).read_text())
    if state["fingerprint"] != fingerprint:
        print(f"  ignoring the checkpoint in {directory}: it is from another configuration, code, data or device",
              file=sys.stderr)
        return fresh
    model.set_state_dict(paddle.load(str(Path(directory) / "model.pdparams")))
    optimizer.set_state_dict(paddle.load(str(Path(directory) / "optimizer.pdopt")))
    print(f"  resuming from {directory} after epoch {len(state['history'])}", file=sys.stderr)
    return Resumed(state["history"], np.load(Path(directory) / SEEN_FILE))


def remove_checkpoint(directory: Path) -> None:
    shutil.rmtree(directory, ignore_errors=True)


def _as_json(value):
    if dataclasses.is_dataclass(value):
        return dataclasses.asdict(value)
    if callable(value):  # a phase's loss, a sampler's order
        return f"{value.__module__}.{value.__qualname__}"
    raise TypeError(f"cannot fingerprint {type(value).__name__}")
