"""End to end: the real `dvc` commands on a shrunken configuration of the real pipeline, in a temporary git
repository, on a slice of real MNIST. Only what needs DVC itself is checked here; each formula, loader and
stage has its own test.

The tests share one repository, a copy of the project after a full `dvc repro`, committed (the `repo` fixture).
Each test creates the experiments it looks at and puts the workspace back to that commit afterwards.
"""

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from stage_project import with_keys

from pipeline_repo import TEST_IMAGES, copy_repo, stages_run

# The dvc orchestration itself: CI runs it under one Paddle build (see .ci/run).
pytestmark = pytest.mark.dvc_pipeline

PARAMS = yaml.safe_load((Path(__file__).parents[1] / "params.yaml").read_text())
VARIANTS = tuple(PARAMS["variants"])
METRIC_KEYS = {"accuracy", "balanced_accuracy", "macro_f1", "test_loss", "minority_accuracy",
               "majority_accuracy", "per_class", "roc_auc", "logit_adjusted", "run", "train_images", "epochs",
               "images_trained", "minority_classes", "minority_images", "distinct_minority_seen",
               "keep_minority_every", "seed"}
ADJUSTED_KEYS = {"accuracy", "balanced_accuracy", "macro_f1", "minority_accuracy", "majority_accuracy"}
# What train@<variant> writes beside the weights, for evaluate and for people: no wall-clock figure among them.
SUMMARY_KEYS = {"seed", "train_set", "train_images", "minority_classes", "minority_images", "keep_minority_every",
                "class_counts", "train_set_class_counts", "head_scale", "params", "device", "paddle", "mkl_cbwr",
                "epochs", "images_trained",
                "distinct_minority_seen"}
ALL_STAGES = {"download", "subset", *(f"{stage}@{name}" for stage in ("train", "evaluate") for name in VARIANTS)}


def variant_stages(*names: str) -> set[str]:
    return {f"{stage}@{name}" for stage in ("train", "evaluate") for name in names}


@pytest.fixture(scope="module")
def repo(reproduced_repo, tmp_path_factory):
    """A copy of the project after its first `dvc repro`, committed (conftest.reproduced_repo)."""
    return copy_repo(reproduced_repo.run, tmp_path_factory.mktemp("pipeline") / "repo")


def test_first_repro_runs_every_stage_and_writes_every_metric(reproduced_repo, repo):
    assert stages_run(reproduced_repo.first_repro) == ALL_STAGES
    for name in VARIANTS:
        metrics = repo.metrics(name)
        assert set(metrics) == METRIC_KEYS, name
        assert set(metrics["per_class"]) == {f"class_{d}" for d in range(10)}
        assert set(metrics["logit_adjusted"]) == ADJUSTED_KEYS
        assert 0 <= metrics["accuracy"] <= 1 and metrics["test_loss"] > 0 and metrics["run"]["validation"] is False
        assert set(repo.metrics(f"train/{name}")) == SUMMARY_KEYS, name
        confusion = (repo.root / "metrics" / "confusion" / f"{name}.csv").read_text().splitlines()
        assert confusion[0] == "actual,predicted" and len(confusion) == 1 + TEST_IMAGES
    assert repo.metrics("baseline")["train_images"] == 2000
    subset = repo.metrics("subset")
    assert repo.metrics("reduced")["train_images"] == subset["train_images"] < 2000
    assert repo.metrics("focal")["epochs"] == 2  # two gammas, one epoch each
    assert repo.metrics("train/ldam_drw")["head_scale"] == 30.0 and repo.metrics("train/reduced")["head_scale"] is None
    focal_log = (repo.root / "metrics" / "train" / "focal.csv").read_text().splitlines()
    assert focal_log[0] == "epoch,gamma,loss,train_accuracy,images,distinct_minority_seen,feature_cosine,fc1_saturated"
    # The fixed subset: every minority image it kept is seen in the first epoch, and no other.
    reduced = repo.metrics("reduced")
    assert reduced["distinct_minority_seen"] == reduced["minority_images"] == sum(
        subset["per_class"][f"class_{digit}"] for digit in range(5))


def test_second_repro_runs_nothing(repo):
    assert stages_run(repo("dvc", "repro")) == set()
    assert repo("dvc", "status").stdout.strip().endswith("Data and pipelines are up to date.")


def test_forced_rerun_of_a_variant_changes_no_tracked_file(repo):
    """What DVC tracks is a pure function of params, code and data: retraining gives the same bytes."""
    try:
        result = repo("dvc", "repro", "-f", "train@reduced", "evaluate@reduced")
        assert variant_stages("reduced") <= stages_run(result)
        assert repo("git", "status", "--porcelain", "--untracked-files=all").stdout == ""
    finally:
        repo.restore()


@pytest.mark.parametrize("key, value, stale", [
    ("losses.focal_curriculum.gammas", [1, 2, 3], {"train@focal"}),
    ("variants.reduced.loss", "logit_adjusted", {"train@reduced"}),
    ("subset.fraction", 0.2, {"subset"}),
    ("train.batch_size", 50, {f"train@{name}" for name in VARIANTS}),
    ("evaluate.logit_adjustment_tau", 0.5, {f"evaluate@{name}" for name in VARIANTS}),
])
def test_a_params_change_makes_only_the_stages_that_read_it_stale(repo, key, value, stale):
    # `dvc status` lists the stages whose own deps changed; the ones downstream of them follow in a repro.
    params = yaml.safe_load((repo.root / "params.yaml").read_text())
    (repo.root / "params.yaml").write_text(yaml.safe_dump(with_keys(params, {key: value}), sort_keys=False))
    try:
        assert set(json.loads(repo("dvc", "status", "--json").stdout)) == stale
    finally:
        repo.restore()


def test_an_experiment_on_the_focal_curriculum_changes_only_its_metrics(repo):
    committed = repo.metrics("focal")
    try:
        result = repo("dvc", "exp", "run", "-n", "g", "-S", "losses.focal_curriculum.gammas=[0.5]",
                      "-S", "losses.focal_curriculum.epochs_per_gamma=1", "evaluate@focal")
        assert stages_run(result) == variant_stages("focal")
        changed = json.loads(repo("dvc", "metrics", "diff", "HEAD", "g", "--json").stdout)
        assert set(changed) == {"metrics/focal.json", "metrics/train/focal.json"}
        # Key by key, the old and the new value: one gamma of one epoch now, two before.
        focal = changed["metrics/focal.json"]
        assert (focal["epochs"]["old"], focal["epochs"]["new"]) == (2, 1)
        assert focal["test_loss"]["old"] == committed["test_loss"] != focal["test_loss"]["new"]
        assert focal["test_loss"]["new"] == repo.metrics("focal")["test_loss"]  # the experiment, applied
    finally:
        repo.restore()


def test_a_bad_param_fails_the_stage_and_leaves_no_output(repo):
    """The one bad value run through `dvc repro` (tests/test_params.py has every other): a non-zero exit, the
    key in the message, and nothing written where the stage's outputs go."""
    params = yaml.safe_load((repo.root / "params.yaml").read_text())
    bad = with_keys(params, {"losses.focal_curriculum.gammas": [0.5, 2, -1]})
    (repo.root / "params.yaml").write_text(yaml.safe_dump(bad, sort_keys=False))
    try:
        result = repo("dvc", "repro", "train@focal", expect_ok=False)
        assert result.returncode != 0
        assert "train: error: losses.focal_curriculum.gammas" in result.stderr, result.stderr
        assert "epoch 1/" not in result.stderr
        outputs = [repo.root / "data" / "models" / "focal.pdparams", repo.root / "metrics" / "train" / "focal.csv",
                   repo.root / "metrics" / "train" / "focal.json"]
        assert [path for path in outputs if path.exists()] == []
        assert list(repo.root.glob("**/*.tmp*")) == []
        assert repo("git", "diff", "--stat", "dvc.lock").stdout == ""
    finally:
        repo.restore()


def test_report_collects_two_seeds_from_an_experiment(repo, tmp_path):
    """The README's recipe on a small scale: one more seed for a variant, then the report over both runs."""
    repo("dvc", "exp", "remove", "--all-commits")  # only this test's experiment, whatever ran before
    try:
        repo("dvc", "exp", "run", "-n", "seed-1", "-S", "seed=1", "evaluate@reduced")
        # --out: an empty directory, so no committed runs file: only what `dvc exp show` finds (run records).
        repo("python", "scripts/remedies_report.py", "--out", str(tmp_path))
        summary = pd.read_csv(tmp_path / "remedies.csv")
        assert set(zip(summary["variant"], summary["protocol"])) == {
            (name, "full" if PARAMS["variants"][name]["train_set"] == "full" else "fixed") for name in VARIANTS}
        seeds = summary.set_index("variant")["seeds"].to_dict()
        assert seeds.pop("reduced") == 2
        assert set(seeds.values()) == {1}  # not rerun: the experiment's copies of their files are seed 0's
        runs = pd.read_csv(tmp_path / "remedies_runs.csv")
        assert sorted(runs[(runs["variant"] == "reduced") & ~runs["per_batch"]]["seed"]) == [0, 1]
        assert (tmp_path / "remedies.png").stat().st_size > 0
    finally:
        repo.restore()
