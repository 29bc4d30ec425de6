"""Interruption and resume: a training stage killed (SIGKILL) or interrupted (Ctrl-C) in the middle of the
focal curriculum resumes from its last checkpoint and ends exactly like an uninterrupted run."""

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import paddle
import pytest
import yaml

from stages import params as P
from stages.data import load_split, to_model_input
from stages.remedies import Phase
from stages.train import train_model

CHECKPOINT_STATE = Path("data/checkpoints/focal/state.json")
OUTPUTS = (Path("data/models/focal.pdparams"), Path("metrics/train/focal.csv"), Path("metrics/train/focal.json"))
GAMMAS = [0.5, 1, 2, 3, 5]
EPOCHS_PER_GAMMA = 3
TRAIN = P.TrainParams(device="cpu", batch_size=100, learning_rate=0.01, momentum=0.9)


def make_project(root: Path, project_root: Path, raw_dir: Path) -> Path:
    """A project directory with real MNIST in data/raw, a 2000-image configuration and its subset built."""
    shutil.copytree(project_root / "stages", root / "stages", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(raw_dir, root / "data" / "raw")
    params = yaml.safe_load((project_root / "params.yaml").read_text())
    params["data"]["train_limit"] = 2000
    params["losses"]["focal_curriculum"].update(gammas=GAMMAS, epochs_per_gamma=EPOCHS_PER_GAMMA)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
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
    """Send `sig` once the checkpoint holds at least one finished gamma and the run is not over."""
    state_path = root / CHECKPOINT_STATE
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if state_path.exists() and len(json.loads(state_path.read_text())["history"]) > EPOCHS_PER_GAMMA:
            process.send_signal(sig)
            break
        time.sleep(0.01)
    process.communicate(timeout=60)
    epochs_done = len(json.loads(state_path.read_text())["history"])
    assert EPOCHS_PER_GAMMA < epochs_done < len(GAMMAS) * EPOCHS_PER_GAMMA, "not stopped mid-curriculum"
    return process.returncode


def trained_result(root: Path) -> tuple[dict, list]:
    weights = {name: value.numpy() for name, value in paddle.load(str(root / OUTPUTS[0])).items()}
    log = (root / OUTPUTS[1]).read_text().splitlines()
    # Everything but the timing columns (seconds, images_per_second).
    return weights, [line.split(",")[:4] for line in log]


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
    weights, epochs = trained_result(root)
    expected_weights, expected_epochs = uninterrupted
    assert epochs == expected_epochs
    for name, value in expected_weights.items():
        np.testing.assert_array_equal(weights[name], value, err_msg=name)
    assert leftovers(root) == [] and not (root / "data" / "checkpoints" / "focal").exists()


def test_a_checkpoint_of_another_configuration_is_not_resumed(tmp_path, raw_dir):
    images, labels = load_split("train", 300, raw_dir=raw_dir)
    images = to_model_input(images, (-1.0, 1.0))
    checkpoint = tmp_path / "checkpoint"
    train_model(images=images, labels=labels, phases=[Phase("focal", 1, {"gamma": 2.0})], train=TRAIN, seed=0,
                checkpoint_dir=checkpoint)
    assert len(json.loads((checkpoint / "state.json").read_text())["history"]) == 1
    # Another gamma: the saved epoch must not count towards this run.
    _, history = train_model(images=images, labels=labels, phases=[Phase("focal", 1, {"gamma": 1.0})], train=TRAIN,
                             seed=0, checkpoint_dir=checkpoint)
    assert [row["gamma"] for row in history] == [1.0]


def test_a_checkpoint_left_by_other_code_is_not_resumed(tmp_path, project_root, raw_dir):
    root = make_project(tmp_path, project_root, raw_dir)
    stop_mid_curriculum(start_training(root), root, signal.SIGKILL)
    with open(root / "stages" / "losses.py", "a") as source:
        source.write("\n# an edit after the crash\n")
    log = finish_training(root)
    assert "ignoring the checkpoint in data/checkpoints/focal" in log and "resuming" not in log
