"""Bad data files and bad params, run through the real stages as subprocesses: each one ends the stage with a
non-zero status and a one-line `<stage>: error: ...` that names the culprit, no traceback and no output."""

import gzip
import re

import numpy as np
import pytest
from stage_project import make_project, project_files, run_stage
from test_data import idx_bytes, idx_images, idx_labels

from stages.lib.data import TrainingSelection, save_selection

IMAGES = "train-images-idx3-ubyte"
LABELS = "train-labels-idx1-ubyte"
DIGITS = [n % 10 for n in range(40)]  # 40 labels, four of each digit


def raw_files(images: bytes = idx_images(40), labels: bytes = idx_labels(DIGITS)) -> dict[str, bytes]:
    return {IMAGES: images, LABELS: labels}


def write_raw(project, files: dict[str, bytes]) -> None:
    raw = project / "data" / "raw"
    raw.mkdir(parents=True)
    for name, content in files.items():
        (raw / name).write_bytes(content)


def assert_failed_cleanly(result, stage: str, culprit: str, problem: str) -> None:
    assert result.returncode != 0
    assert re.search(rf"^{stage}: error: ", result.stderr, re.MULTILINE), result.stderr  # after Paddle's warnings
    assert culprit in result.stderr and problem in result.stderr, result.stderr
    assert "Traceback" not in result.stderr, result.stderr


# (the files in data/raw, the file the message must name, what it must say was wrong)
BAD_FILES = {
    "truncated-images": (raw_files(images=idx_images(40)[:-100]), f"data/raw/{IMAGES}",
                         "truncated: 31276 bytes, but a header of shape (40, 28, 28) needs 31376"),
    "truncated-header": (raw_files(labels=idx_labels(DIGITS)[:6]), f"data/raw/{LABELS}", "truncated header (6 bytes)"),
    "empty-file": (raw_files(labels=b""), f"data/raw/{LABELS}", "0 bytes is too short for an IDX header"),
    "wrong-magic": (raw_files(images=idx_bytes(b"\x00\x00\x08\x02", (40, 784), bytes(40 * 784))),
                    f"data/raw/{IMAGES}", "magic number 0x00000802 is not an MNIST IDX file"),
    "still-gzipped": (raw_files(labels=gzip.compress(idx_labels(DIGITS))), f"data/raw/{LABELS}",
                      "magic number 0x1f8b0800 is not an MNIST IDX file"),
    "header-count-below-payload": (raw_files(labels=idx_bytes(b"\x00\x00\x08\x01", (30,), bytes(DIGITS))),
                                   f"data/raw/{LABELS}", "longer than its header says: 48 bytes"),
    "header-count-above-payload": (raw_files(images=idx_bytes(b"\x00\x00\x08\x03", (50, 28, 28), bytes(40 * 784))),
                                   f"data/raw/{IMAGES}", "truncated: 31376 bytes, but a header of shape (50, 28, 28)"),
    "images-labels-mismatch": (raw_files(labels=idx_labels(DIGITS[:39])), f"data/raw/{LABELS}",
                               "train: 40 images but 39 labels"),
    "label-outside-0-9": (raw_files(labels=idx_labels(DIGITS[:39] + [10])), f"data/raw/{LABELS}",
                          "label 10 is outside 0-9"),
    "images-not-28x28": (raw_files(images=idx_images(40, side=27)), f"data/raw/{IMAGES}",
                         "images of shape (27, 27), expected 28x28"),
    "missing-labels": ({IMAGES: idx_images(40)}, f"data/raw/{LABELS}", "is missing; run `dvc repro download`"),
    "empty-split": (raw_files(images=idx_images(0), labels=idx_labels([])), f"data/raw/{IMAGES}", "no images"),
}


@pytest.mark.parametrize("kind", BAD_FILES)
def test_subset_stage_rejects_a_bad_data_file(tmp_path, project_root, kind):
    files, culprit, problem = BAD_FILES[kind]
    project = make_project(tmp_path, project_root)
    write_raw(project, files)
    before = project_files(project)
    result = run_stage(project, "stages.subset")
    assert_failed_cleanly(result, "subset", culprit, problem)
    assert project_files(project) == before  # no data/train_sets/, no metrics/subset.json


def test_train_stage_rejects_a_bad_data_file(tmp_path, project_root):
    files, culprit, problem = BAD_FILES["label-outside-0-9"]
    project = make_project(tmp_path, project_root, {"train.device": "cpu"})
    write_raw(project, files)
    before = project_files(project)
    result = run_stage(project, "stages.train", "--variant", "baseline")
    assert_failed_cleanly(result, "train", culprit, problem)
    assert project_files(project) == before  # no data/models/, no metrics/train/


# --- bad params stop `train --variant focal` before its first epoch ------------------------------------------

# A focal run that trains in a second: 40 images, the subset of all of them, one gamma, one epoch.
SMALL_FOCAL = {"train.device": "cpu", "train.batch_size": 10, "subset.fraction": 1.0,
               "losses.focal_curriculum.gammas": [0.5], "losses.focal_curriculum.epochs_per_gamma": 1}


def focal_project(root, project_root, changes: dict):
    project = make_project(root, project_root, {**SMALL_FOCAL, **changes})
    write_raw(project, raw_files())
    (project / "data" / "train_sets").mkdir()
    save_selection(project / "data" / "train_sets" / "subset.npz",
                   TrainingSelection(np.arange(40, dtype=np.int64), (0, 1, 2, 3, 4), 1))
    return project


def test_small_focal_project_trains_with_good_params(tmp_path, project_root):
    """The control for the test below: with these data, good params do reach the first epoch."""
    result = run_stage(focal_project(tmp_path, project_root, {}), "stages.train", "--variant", "focal")
    assert result.returncode == 0, result.stderr
    assert "epoch 1/1 gamma 0.5: loss" in result.stderr


def test_a_bad_param_stops_train_before_the_first_epoch(tmp_path, project_root):
    # Every bad value is a unit test of its loader (tests/test_params.py); this is the one run through the
    # stage: a one-line error naming the key, a non-zero exit, no output. The bad gamma is the last phase's,
    # so the check comes before the first phase trains, not when the bad one starts.
    key = "losses.focal_curriculum.gammas"
    project = focal_project(tmp_path, project_root, {key: [0.5, 2.0, -1.0]})
    before = project_files(project)
    result = run_stage(project, "stages.train", "--variant", "focal", timeout_s=20)  # Paddle imports in ~2 s
    assert result.returncode == 1
    assert f"train: error: {key}: (0.5, 2.0, -1.0) is not allowed" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and "epoch" not in result.stderr, result.stderr
    assert project_files(project) == before


def test_a_non_finite_loss_stops_training_with_no_outputs(tmp_path, project_root):
    # Pixels scaled to +-3e38 overflow float32 in conv1's sums: the loss is NaN within the first epoch.
    project = focal_project(tmp_path, project_root, {"data.pixel_range": [-3.0e38, 3.0e38]})
    before = project_files(project)
    result = run_stage(project, "stages.train", "--variant", "focal", timeout_s=20)
    assert result.returncode == 1
    assert "train: error: the training loss became nan at epoch 1 (focal_loss, gamma 0.5);" in result.stderr, \
        result.stderr
    assert "Traceback" not in result.stderr
    # No model, no log, no metrics; only the checkpoint of the epochs before the failure (here: none).
    assert project_files(project) == before
