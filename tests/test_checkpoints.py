"""A damaged checkpoint is never resumed and never crashes a stage: a flipped byte, a truncated file, a missing
file or an unreadable state.json each print one line naming the file, the checkpoint is removed, and the run
trains from scratch to exactly the weights of an uninterrupted run."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from stages.lib import losses
from stages.lib.checkpoints import remove_checkpoint
from stages.lib import params as P
from stages.lib.data import TrainingSet, load_split, to_model_input
from stages.lib.files import atomic_dir, atomic_path
from stages.lib.remedies import Phase
from stages.lib.samplers import SAMPLERS
from stages.train import train_model

TRAIN = P.TrainParams(device="cpu", batch_size=100, learning_rate=0.01, momentum=0.9)
PHASES = [Phase(losses.cross_entropy, 3)]


class Killed(Exception):
    """Stands for a kill after an epoch's checkpoint was saved."""


@pytest.fixture(scope="module")
def data(raw_dir) -> TrainingSet:
    images, labels = load_split("train", limit=300, raw_dir=raw_dir)
    return TrainingSet(to_model_input(images, (-1.0, 1.0)), labels, (0, 1, 2, 3, 4), keep_minority_every=1)


def train(data, checkpoint: Path | None = None):
    model, history = train_model(data, PHASES, TRAIN, seed=0, sampler=SAMPLERS["shuffle"], checkpoint_dir=checkpoint)
    return {name: value.numpy() for name, value in model.state_dict().items()}, history


@pytest.fixture(scope="module")
def uninterrupted(data):
    return train(data)


def stop_after_first_epoch(data, checkpoint: Path, monkeypatch) -> None:
    """Train with checkpoints until the first epoch's is saved, then stop as a kill would."""
    def killed(*_):
        raise Killed
    with monkeypatch.context() as patch:
        patch.setattr("stages.train._report_progress", killed)  # called right after the checkpoint is saved
        with pytest.raises(Killed):
            train(data, checkpoint)
    assert len(json.loads((checkpoint / "state.json").read_text())["history"]) == 1


def flip_a_byte(path: Path) -> None:
    content = bytearray(path.read_bytes())
    content[len(content) // 2] ^= 0xFF
    path.write_bytes(bytes(content))


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


DAMAGE = {
    "model.pdparams flipped": ("model.pdparams", flip_a_byte),
    "optimizer.pdopt truncated": ("optimizer.pdopt", truncate),
    "seen.npy missing": ("seen.npy", Path.unlink),
    "state.json truncated": ("state.json", truncate),
}


def test_an_intact_checkpoint_is_resumed(data, tmp_path, monkeypatch, capsys, uninterrupted):
    checkpoint = tmp_path / "checkpoint"
    stop_after_first_epoch(data, checkpoint, monkeypatch)
    capsys.readouterr()
    weights, history = train(data, checkpoint)
    assert "resuming from" in capsys.readouterr().err
    assert history == uninterrupted[1]
    for name, value in uninterrupted[0].items():
        np.testing.assert_array_equal(weights[name], value, err_msg=name)


@pytest.mark.parametrize("damage", DAMAGE, ids=list(DAMAGE))
def test_a_damaged_checkpoint_is_discarded_and_training_starts_fresh(data, tmp_path, monkeypatch, capsys,
                                                                      uninterrupted, damage):
    checkpoint = tmp_path / "checkpoint"
    stop_after_first_epoch(data, checkpoint, monkeypatch)
    name, harm = DAMAGE[damage]
    harm(checkpoint / name)
    capsys.readouterr()
    weights, history = train(data, checkpoint)
    err = capsys.readouterr().err
    discard = [line for line in err.splitlines() if "discarding the checkpoint" in line]
    assert len(discard) == 1 and name in discard[0] and "from scratch" in discard[0], err
    assert "resuming" not in err
    assert history == uninterrupted[1]
    for key, value in uninterrupted[0].items():
        np.testing.assert_array_equal(weights[key], value, err_msg=key)


def test_atomic_path_and_dir_fsync_the_file_and_the_directory(tmp_path, monkeypatch):
    synced = []
    real_fsync = os.fsync

    def fsync(fd):
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)
    monkeypatch.setattr(os, "fsync", fsync)
    with atomic_path(tmp_path / "out.txt") as tmp:
        tmp.write_text("content")
    assert synced[0].endswith(".tmp.txt") and synced[-1] == str(tmp_path), synced  # the file, then its directory
    synced.clear()
    with atomic_dir(tmp_path / "dir") as tmp:
        (tmp / "a").write_text("a")
    assert any(path.endswith("/a") for path in synced) and synced[-1] == str(tmp_path), synced
    assert (tmp_path / "dir" / "a").read_text() == "a" and (tmp_path / "out.txt").read_text() == "content"


def test_a_checkpoint_set_aside_by_a_kill_between_renames_is_resumed(data, tmp_path, monkeypatch, capsys,
                                                                     uninterrupted):
    checkpoint = tmp_path / "checkpoint"
    stop_after_first_epoch(data, checkpoint, monkeypatch)
    checkpoint.rename(tmp_path / ".checkpoint.old")  # atomic_dir moved the old one aside, then was killed
    capsys.readouterr()
    weights, history = train(data, checkpoint)
    assert "resuming from" in capsys.readouterr().err and history == uninterrupted[1]
    assert checkpoint.exists() and not (tmp_path / ".checkpoint.old").exists()


def killed_mid_write(target: Path, kind: str) -> None:
    """A real process SIGKILLed inside atomic_path or atomic_dir (`kind`) of `target`, its temporary half written."""
    code = (f"import sys, time; from pathlib import Path; from stages.lib.files import {kind}\n"
            f"with {kind}(Path({str(target)!r})) as tmp:\n"
            "    (tmp / 'model.pdparams' if tmp.is_dir() else tmp).write_bytes(b'half')\n"
            "    print('writing', flush=True); time.sleep(60)\n")
    writer = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                              cwd=Path(__file__).resolve().parents[1])
    assert writer.stdout.readline() == "writing\n"
    writer.send_signal(signal.SIGKILL)
    writer.wait()


def test_the_temporary_checkpoint_a_kill_left_mid_write_is_gone_when_training_ends(data, tmp_path):
    checkpoint = tmp_path / "checkpoint"
    killed_mid_write(checkpoint, "atomic_dir")
    assert [path.name for path in tmp_path.glob(".checkpoint.*.tmp")], "the kill left no temporary directory"
    train(data, checkpoint)
    remove_checkpoint(checkpoint)  # as stages.train does once the model is written
    assert list(tmp_path.iterdir()) == []


def test_a_temporary_file_a_kill_left_mid_write_goes_with_the_next_write_of_that_file_only(tmp_path):
    killed_mid_write(tmp_path / "model.pdparams", "atomic_path")
    killed_mid_write(tmp_path / "model.x.pdparams", "atomic_path")  # another file's, with a similar name
    assert len(list(tmp_path.glob(".model.*.tmp.pdparams"))) == 2, "the kills left no temporary files"
    with atomic_path(tmp_path / "model.pdparams") as tmp:
        tmp.write_bytes(b"whole")
    assert sorted(path.name for path in tmp_path.iterdir() if not path.name.startswith(".model.x.")) == [
        "model.pdparams"]
    assert len(list(tmp_path.glob(".model.x.*.tmp.pdparams"))) == 1
