"""End to end: the real `dvc` commands on a shrunken configuration of the real pipeline, in a temporary git
repository, on a slice of real MNIST.

The tests share one repository (building it costs a full `dvc repro`); each test that changes the workspace
puts it back to the committed state afterwards.
"""

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from pipeline_repo import TEST_IMAGES, make_repo, stages_run
from stage_project import with_keys

PARAMS = yaml.safe_load((Path(__file__).parents[1] / "params.yaml").read_text())
VARIANTS = tuple(PARAMS["variants"])
ON_SUBSET = {name for name, variant in PARAMS["variants"].items() if variant["train_set"] == "subset"}
METRIC_KEYS = {"accuracy", "balanced_accuracy", "macro_f1", "test_loss", "minority_accuracy",
               "majority_accuracy", "per_class", "logit_adjusted", "train_images", "epochs", "images_trained",
               "minority_images", "distinct_minority_seen", "keep_minority_every", "seed"}
ADJUSTED_KEYS = {"accuracy", "balanced_accuracy", "macro_f1", "minority_accuracy", "majority_accuracy"}
ALL_STAGES = {"download", "subset", *(f"{stage}@{name}" for stage in ("train", "evaluate") for name in VARIANTS)}


def variant_stages(*names: str) -> set[str]:
    return {f"{stage}@{name}" for stage in ("train", "evaluate") for name in names}


@pytest.fixture(scope="module")
def repo(tmp_path_factory, project_root, mnist_mirror):
    """The project with shrunken params after a full `dvc repro`, committed."""
    run = make_repo(tmp_path_factory.mktemp("pipeline"), project_root, mnist_mirror)
    run.first_repro = run("dvc", "repro")
    run("git", "add", "-A")
    run("git", "commit", "-qm", "first run")
    return run


def test_first_repro_runs_every_stage_and_writes_every_metric(repo):
    assert stages_run(repo.first_repro) == ALL_STAGES
    for name in VARIANTS:
        metrics = repo.metrics(name)
        assert set(metrics) == METRIC_KEYS
        assert set(metrics["per_class"]) == {f"class_{d}" for d in range(10)}
        assert set(metrics["logit_adjusted"]) == ADJUSTED_KEYS
        assert 0 <= metrics["accuracy"] <= 1 and metrics["test_loss"] > 0
        confusion = (repo.root / "metrics" / "confusion" / f"{name}.csv").read_text().splitlines()
        assert confusion[0] == "actual,predicted" and len(confusion) == 1 + TEST_IMAGES
    assert repo.metrics("baseline")["train_images"] == 2000
    subset = repo.metrics("subset")
    assert repo.metrics("reduced")["train_images"] == subset["train_images"] < 2000
    assert repo.metrics("focal")["epochs"] == 2  # two gammas, one epoch each
    focal_log = (repo.root / "metrics" / "train" / "focal.csv").read_text().splitlines()
    assert focal_log[0].startswith("epoch,gamma,loss,train_accuracy")
    # The fixed subset: every minority image it kept is seen in the first epoch, and no other.
    reduced = repo.metrics("reduced")
    assert reduced["distinct_minority_seen"] == reduced["minority_images"] == sum(
        subset["per_class"][f"class_{digit}"] for digit in range(5))
    assert repo.metrics("reduced_120")["epochs"] == 1 and repo.metrics("reduced_120")["seed"] == 0


def test_second_repro_runs_nothing(repo):
    result = repo("dvc", "repro")
    assert stages_run(result) == set()
    assert repo("dvc", "status").stdout.strip().endswith("Data and pipelines are up to date.")


def test_same_seed_gives_same_metrics_twice(repo):
    before = {name: repo.metrics(name) for name in VARIANTS}
    result = repo("dvc", "repro", "--force")
    assert stages_run(result) == ALL_STAGES
    assert {name: repo.metrics(name) for name in VARIANTS} == before
    # The retrained weights are bit for bit the same: the lock file's hashes did not move.
    assert "pdparams" not in repo("git", "diff", "dvc.lock").stdout
    repo.restore()


def test_exp_run_with_other_gammas_reruns_only_the_focal_curriculum(repo):
    before = repo.metrics("focal")
    result = repo("dvc", "exp", "run", "-S", "losses.focal_curriculum.gammas=[1,2,3]")
    assert stages_run(result) == variant_stages("focal")
    assert repo.metrics("focal") != before and repo.metrics("focal")["epochs"] == 3
    changed = json.loads(repo("dvc", "metrics", "diff", "--json").stdout)
    assert "metrics/focal.json" in changed and "accuracy" in changed["metrics/focal.json"]
    assert {path.split("/")[-1].split(".")[0].split("_timing")[0] for path in changed} == {"focal"}
    repo.restore()


def test_metrics_diff_between_two_losses_shows_each_key(repo):
    """The same variant trained with another loss: `dvc metrics diff` gives the old and new value per key."""
    result = repo("dvc", "exp", "run", "-S", "variants.reduced.loss=logit_adjusted")
    assert stages_run(result) == variant_stages("reduced")
    changed = json.loads(repo("dvc", "metrics", "diff", "--json", "--all").stdout)["metrics/reduced.json"]
    for key in ("accuracy", "minority_accuracy", "majority_accuracy", "balanced_accuracy", "per_class.class_0",
                "logit_adjusted.accuracy", "epochs"):
        assert {"old", "new"} <= set(changed[key]), key
    assert changed["accuracy"]["old"] != changed["accuracy"]["new"]
    assert changed["epochs"]["old"] == changed["epochs"]["new"] == 1
    repo.restore()


def test_subset_fraction_change_skips_download_and_baseline(repo):
    before = repo.metrics("subset")["per_class"]
    result = repo("dvc", "exp", "run", "-S", "subset.fraction=0.2")
    assert stages_run(result) == {"subset", *variant_stages(*ON_SUBSET)}
    after = repo.metrics("subset")["per_class"]
    assert after["class_0"] > before["class_0"] and after["class_9"] == before["class_9"]
    repo.restore()


def test_per_batch_mode_replays_the_report_protocol(repo):
    fixed = repo.metrics("reduced")
    result = repo("dvc", "exp", "run", "-S", "subset.mode=per_batch", "evaluate@reduced")
    assert stages_run(result) == {"subset", "train@reduced", "evaluate@reduced"}
    per_batch = repo.metrics("reduced")
    assert per_batch["keep_minority_every"] == 10 and per_batch["train_images"] == 2000
    # One epoch: the minority digits of about one batch in ten, out of all ~1000 in the 2000 images.
    assert per_batch["minority_images"] > 900 and 0 < per_batch["distinct_minority_seen"] < 300
    assert fixed["images_trained"] < per_batch["images_trained"] < 2000
    repo.restore()


@pytest.mark.parametrize("key, value, message", [
    ("subset.fraction", 1.5, "subset.fraction"),
    ("subset.fractoin", 0.1, "subset.fractoin: unknown key"),
    ("subset.mode", "per_epoch", "subset.mode"),
    ("losses.focal_curriculum.gammas", [], "losses.focal_curriculum.gammas"),
    ("losses.focal_curriculum.gammas", [1, -0.5], "losses.focal_curriculum.gammas"),
    ("variants.focal.sampler", "balanced", "variants.focal.sampler"),
    ("train.device", "tpu", "train.device"),
    ("train.device", "gpu", "train.device"),
])
def test_bad_params_fail_before_any_training(repo, key, value, message):
    params = yaml.safe_load((repo.root / "params.yaml").read_text())
    (repo.root / "params.yaml").write_text(yaml.safe_dump(with_keys(params, {key: value}), sort_keys=False))
    stage = "subset" if key.startswith("subset") else "train@focal"
    result = repo("dvc", "repro", "--single-item", stage, expect_ok=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert message in output
    assert "epoch 1" not in output
    repo.restore()


def test_report_collects_two_seeds_from_an_experiment(repo, tmp_path):
    """The README's recipe on a small scale: one more seed for two variants, then the report over both runs."""
    repo("dvc", "exp", "run", "-n", "seed-1", "-S", "seed=1", "evaluate@baseline", "evaluate@reduced")
    try:
        repo("python", "scripts/remedies_report.py", "--out", str(tmp_path))
        # Indexed by protocol too: the per-batch experiment of an earlier test is another row of `reduced`.
        summary = pd.read_csv(tmp_path / "remedies.csv").set_index(["variant", "protocol"])
        assert summary.index.is_unique, (tmp_path / "remedies.md").read_text()
        assert summary.loc[("reduced", "fixed"), "seeds"] == summary.loc[("baseline", "full"), "seeds"] == 2
        assert summary.loc[("focal", "fixed"), "seeds"] == 1  # not rerun: its file in the experiment is seed 0's
        assert summary.loc[("reduced", "fixed"), "gap_recovered"] == 0
        assert summary.loc[("baseline", "full"), "gap_recovered"] == 1
        runs = pd.read_csv(tmp_path / "remedies_runs.csv")
        assert sorted(runs[(runs["variant"] == "reduced") & (runs["protocol"] == "fixed")]["seed"]) == [0, 1]
        assert "| reduced | fixed | 2 |" in (tmp_path / "remedies.md").read_text()
        assert (tmp_path / "remedies.png").stat().st_size > 0
    finally:
        repo.restore()
