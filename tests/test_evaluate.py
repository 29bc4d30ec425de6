"""The evaluate stage learns what it needs about the training from the training stage's summary
(metrics/train/<variant>.json), not from the training sets: run for real after a real training run, with
data/train_sets gone."""

import json
import shutil

import numpy as np
import paddle
import pytest
from stage_project import make_project, run_stage

from stages.evaluate import TRAINING_KEYS, evaluate_model, read_training_summary
from stages.lib import params as P
from stages.lib import paths
from stages.lib.data import DataError, TrainingSelection, load_split, save_selection, to_model_input
from stages.lib.model import LeNet

VARIANT = "ldam_drw"  # the cosine head: evaluate must build the model the summary describes
TEST_IMAGES = 200
# 300 training images, one epoch in three batches; the subset file is written here, not by the subset stage.
SMALL = {"train.device": "cpu", "data.train_limit": 300, "data.test_limit": TEST_IMAGES,
         f"variants.{VARIANT}.epochs": 1}


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory, project_root, raw_dir):
    """A project after train@ldam_drw and then evaluate@ldam_drw without data/train_sets: (root, result)."""
    root = make_project(tmp_path_factory.mktemp("evaluate"), project_root, SMALL)
    shutil.copytree(raw_dir, root / "data" / "raw")
    (root / paths.train_set_path("subset")).parent.mkdir(parents=True)
    save_selection(root / paths.train_set_path("subset"), TrainingSelection(np.arange(300), (0, 1, 2, 3, 4), 1))
    trained = run_stage(root, "stages.train", "--variant", VARIANT)
    assert trained.returncode == 0, trained.stderr
    shutil.rmtree(root / "data" / "train_sets")
    return root, run_stage(root, "stages.evaluate", "--variant", VARIANT)


def test_evaluate_runs_without_the_training_sets(evaluated):
    root, result = evaluated
    assert result.returncode == 0, result.stderr
    assert not (root / "data" / "train_sets").exists()
    assert (root / "metrics" / "confusion" / f"{VARIANT}.csv").read_text().count("\n") == 1 + TEST_IMAGES


def test_evaluate_takes_the_model_head_and_class_prior_from_the_training_summary(evaluated, raw_dir):
    root, _ = evaluated
    summary = json.loads((root / paths.train_summary_path(VARIANT)).read_text())
    metrics = json.loads((root / paths.test_metrics_path(VARIANT)).read_text())
    assert summary["head_scale"] == 30.0 and len(summary["class_counts"]) == 10
    assert {key: metrics[key] for key in TRAINING_KEYS} == {key: summary[key] for key in TRAINING_KEYS}
    assert metrics["run"]["validation"] is False and metrics["run"]["params"] == summary["params"]
    assert (metrics["run"]["tau"], metrics["run"]["prior"]) == (1.0, "learned")
    # The same numbers, computed here from the summary: with the fc head, or a uniform prior, they would differ.
    model = LeNet(cosine_scale=summary["head_scale"])
    model.set_state_dict(paddle.load(str(root / paths.model_path(VARIANT))))
    params = P.read_params(root / "params.yaml")
    images, labels = load_split("test", TEST_IMAGES, raw_dir=raw_dir)
    expected, _ = evaluate_model(model, to_model_input(images, params["data"]["pixel_range"]), labels,
                                 batch_size=params["evaluate"]["batch_size"],
                                 minority_classes=tuple(summary["minority_classes"]),
                                 train_class_counts=np.array(summary["class_counts"]),
                                 tau=params["evaluate"]["logit_adjustment_tau"])
    # The stage ran on MKL's pinned AVX2 branch; this process may have done matrix products before any pin.
    assert metrics.pop("test_loss") == pytest.approx(expected.pop("test_loss"), rel=1e-6)
    assert metrics.pop("roc_auc") == pytest.approx(expected.pop("roc_auc"), abs=1e-4)
    assert {key: metrics[key] for key in expected} == expected


def test_each_logit_adjustment_prior_names_class_counts_of_the_summary(evaluated):
    root, _ = evaluated
    summary = json.loads((root / paths.train_summary_path(VARIANT)).read_text())
    labels = load_split("train", 300, raw_dir=root / "data" / "raw")[1]
    assert summary["train_set_class_counts"] == np.bincount(labels, minlength=10).tolist()
    assert set(P.LOGIT_ADJUSTMENT_PRIORS.values()) <= set(summary)
    metrics = json.loads((root / paths.test_metrics_path(VARIANT)).read_text())
    assert 0 <= metrics["roc_auc"] <= 1  # one epoch of LDAM-DRW on 300 images: near chance (0.5)


def test_a_missing_summary_names_the_stage_to_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError, match=r"metrics/train/focal.json is missing; run `dvc repro train@focal` first"):
        read_training_summary("focal")
