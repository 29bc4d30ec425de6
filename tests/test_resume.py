"""Interruption and resume: a training stage killed (SIGKILL) or interrupted (Ctrl-C) in the middle of the
focal curriculum resumes from its last checkpoint and ends exactly like an uninterrupted run: the same weights,
the same log and the same summary, including how many minority images it has seen (the per-batch protocol
shows a few more each epoch, so a resumed run that forgot them would report fewer)."""

import json
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import paddle
import pytest
import stage_project

from stages.lib import losses
from stages.lib import params as P
from stages.lib.data import TrainingSet, load_split, to_model_input
from stages.lib.remedies import Phase
from stages.lib.samplers import SAMPLERS
from stages.train import train_model

CHECKPOINT_STATE = Path("data/checkpoints/focal/state.json")
OUTPUTS = (Path("data/models/focal.pdparams"), Path("metrics/train/focal.csv"), Path("metrics/train/focal.json"))
GAMMAS = [0.5, 1, 2, 3, 5]
EPOCHS_PER_GAMMA = 3
TRAIN = P.TrainParams(device="cpu", batch_size=100, learning_rate=0.01, momentum=0.9)


def make_project(root: Path, project_root: Path, raw_dir: Path) -> Path:
    """A project directory with real MNIST in data/raw, a 2000-image per-batch configuration, its subset built."""
    stage_project.make_project(root, project_root, {
        "data.train_limit": 2000, "subset.mode": "per_batch", "subset.fraction": 0.1,  # minority in 2 batches of 20
        "losses.focal_curriculum.gammas": GAMMAS, "losses.focal_curriculum.epochs_per_gamma": EPOCHS_PER_GAMMA})
    shutil.copytree(raw_dir, root / "data" / "raw")
    subprocess.run([sys.executable, "-m", "stages.subset"], cwd=root, check=True, capture_output=True)
    return root


def start_training(root: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "stages.train", "--variant", "focal"], cwd=root,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish_training(root: Path) -> str:
    result = subprocess.run([sys.executable, "-m", "stages.train", "--variant", "focal"], cwd=root,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return result.stderr


def stop_mid_curriculum(process: subprocess.Popen, root: Path, sig: int) -> int:
    """Send `sig` once the run has finished its first gamma, then wait for it to end; return its status.

    The run's own progress lines say when: each is printed after that epoch's checkpoint is saved. The
    checkpoint itself is read only after the process has ended, never while it is being replaced.
    """
    for line in process.stderr:
        done = re.match(r"  epoch (\d+)/", line)
        if done and int(done[1]) > EPOCHS_PER_GAMMA:
            process.send_signal(sig)
            break
    process.communicate(timeout=120)
    epochs_done = len(json.loads((root / CHECKPOINT_STATE).read_text())["history"])
    assert EPOCHS_PER_GAMMA < epochs_done < len(GAMMAS) * EPOCHS_PER_GAMMA, "not stopped mid-curriculum"
    return process.returncode


def trained_result(root: Path) -> tuple[dict, str, dict]:
    """The weights, the training log and the summary: everything the stage writes."""
    weights = {name: value.numpy() for name, value in paddle.load(str(root / OUTPUTS[0])).items()}
    return weights, (root / OUTPUTS[1]).read_text(), json.loads((root / OUTPUTS[2]).read_text())


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, project_root, raw_dir):
    root = make_project(tmp_path_factory.mktemp("uninterrupted"), project_root, raw_dir)
    finish_training(root)
    assert not (root / "data" / "checkpoints" / "focal").exists(), "the checkpoint outlived a finished run"
    return trained_result(root)


def leftovers(root: Path) -> list[str]:
    return [str(path) for path in root.rglob("*.tmp*")]


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["SIGKILL", "Ctrl-C"])
def test_stopped_run_resumes_and_ends_like_an_unbroken_one(tmp_path, project_root, raw_dir, uninterrupted, sig):
    root = make_project(tmp_path, project_root, raw_dir)
    status = stop_mid_curriculum(start_training(root), root, sig)
    assert status == (-signal.SIGKILL if sig == signal.SIGKILL else 130)
    assert not any((root / output).exists() for output in OUTPUTS)
    if sig == signal.SIGINT:
        assert leftovers(root) == []
    log = finish_training(root)
    assert "resuming from data/checkpoints/focal after epoch" in log
    weights, epochs, summary = trained_result(root)
    expected_weights, expected_epochs, expected_summary = uninterrupted
    assert epochs == expected_epochs
    assert summary == expected_summary
    for name, value in expected_weights.items():
        np.testing.assert_array_equal(weights[name], value, err_msg=name)
    assert leftovers(root) == [] and not (root / "data" / "checkpoints" / "focal").exists()


def test_a_checkpoint_of_another_configuration_is_not_resumed(tmp_path, raw_dir, capsys):
    images, labels = load_split("train", 300, raw_dir=raw_dir)
    data = TrainingSet(to_model_input(images, (-1.0, 1.0)), labels, (0, 1, 2, 3, 4), keep_minority_every=1)
    checkpoint = tmp_path / "checkpoint"

    def train(gamma: float) -> list[dict]:
        phases = [Phase(losses.focal_loss, 1, {"gamma": gamma, "detach_factor": False})]
        return train_model(data, phases, TRAIN, seed=0, sampler=SAMPLERS["shuffle"], checkpoint_dir=checkpoint)[1]

    train(2.0)
    assert len(json.loads((checkpoint / "state.json").read_text())["history"]) == 1
    # The same configuration resumes it, with nothing left to train; another gamma must not count the saved epoch.
    capsys.readouterr()
    assert [row["gamma"] for row in train(2.0)] == [2.0]
    assert "resuming from" in capsys.readouterr().err
    assert [row["gamma"] for row in train(1.0)] == [1.0]
    assert "ignoring the checkpoint" in capsys.readouterr().err


def test_a_checkpoint_left_by_other_code_is_not_resumed(tmp_path, project_root, raw_dir):
    root = make_project(tmp_path, project_root, raw_dir)
    stop_mid_curriculum(start_training(root), root, signal.SIGKILL)
    with open(root / "stages" / "lib" / "losses.py", "a") as source:
        source.write("\n# an edit after the crash\n")
    log = finish_training(root)
    assert "ignoring the checkpoint in data/checkpoints/focal" in log and "resuming" not in log
