"""Resumable training: after every epoch the weights, the optimizer state and the log so far are saved, so a
killed or interrupted training stage continues where it stopped and ends exactly as an unbroken run would.

A checkpoint is a directory (model.pdparams, optimizer.pdopt, state.json) replaced atomically. It records a
fingerprint of everything the run depends on (data, params, code), and is only resumed by a run with the
same fingerprint.
"""

import dataclasses
import hashlib
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import paddle

from stages.files import atomic_dir

STATE_FILE = "state.json"


def training_fingerprint(images: np.ndarray, labels: np.ndarray, **config) -> str:
    """SHA-256 of the training data, the configuration (dataclasses, lists, numbers) and the stages' code.

    The code counts too: after an edit to, say, the model or a loss, weights saved by the old code must not
    be resumed.
    """
    digest = hashlib.sha256()
    for source in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(source.read_bytes())
    digest.update(json.dumps(config, default=_as_json, sort_keys=True).encode())
    digest.update(np.ascontiguousarray(images).tobytes())
    digest.update(np.ascontiguousarray(labels).tobytes())
    return digest.hexdigest()


def save_checkpoint(directory: Path, fingerprint: str, model, optimizer, history: list[dict]) -> None:
    with atomic_dir(directory) as tmp:
        paddle.save(model.state_dict(), str(tmp / "model.pdparams"))
        paddle.save(optimizer.state_dict(), str(tmp / "optimizer.pdopt"))
        (tmp / STATE_FILE).write_text(json.dumps({"fingerprint": fingerprint, "history": history}))


def restore_checkpoint(directory: Path, fingerprint: str, model, optimizer) -> list[dict]:
    """Load a matching checkpoint into model and optimizer; return its log ([] when there is none to resume).

    The optimizer state is keyed by Paddle's generated parameter names, so model and optimizer must be created
    under a fresh paddle.utils.unique_name.guard(), as stages.train does.
    """
    state_path = Path(directory) / STATE_FILE
    if not state_path.exists():
        return []
    state = json.loads(state_path.read_text())
    if state["fingerprint"] != fingerprint:
        print(f"  ignoring the checkpoint in {directory}: it is from another configuration or data",
              file=sys.stderr)
        return []
    model.set_state_dict(paddle.load(str(Path(directory) / "model.pdparams")))
    optimizer.set_state_dict(paddle.load(str(Path(directory) / "optimizer.pdopt")))
    print(f"  resuming from {directory} after epoch {len(state['history'])}", file=sys.stderr)
    return state["history"]


def remove_checkpoint(directory: Path) -> None:
    shutil.rmtree(directory, ignore_errors=True)


def _as_json(value):
    if dataclasses.is_dataclass(value):
        return dataclasses.asdict(value)
    raise TypeError(f"cannot fingerprint {type(value).__name__}")
