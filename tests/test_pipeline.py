"""End to end: the real `dvc` commands on a shrunken configuration of the real pipeline, in a temporary git
repository, on a slice of real MNIST.

The tests share one repository (building it costs a full `dvc repro`); each test that changes the workspace
puts it back to the committed state afterwards.
"""

import json

import pytest
import yaml

from pipeline_repo import TEST_IMAGES, make_repo, stages_run

VARIANTS = ("baseline", "reduced", "focal")
METRIC_KEYS = {"accuracy", "balanced_accuracy", "macro_f1", "test_loss", "minority_accuracy",
               "majority_accuracy", "per_class", "train_images", "epochs", "logit_adjusted"}
ADJUSTED_KEYS = {"accuracy", "balanced_accuracy", "macro_f1", "minority_accuracy", "majority_accuracy"}
ALL_STAGES = {"download", "subset", "train_baseline", "train_reduced", "train_focal", "evaluate"}


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
    table = (repo.root / "metrics" / "results.md").read_text()
    assert all(f"| {name} |" in table for name in VARIANTS)


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


def test_exp_run_with_other_gammas_reruns_only_focal_and_evaluate(repo):
    before = repo.metrics("focal")
    result = repo("dvc", "exp", "run", "-S", "focal.gammas=[1,2]")
    assert stages_run(result) == {"train_focal", "evaluate"}
    assert repo.metrics("focal") != before
    diff = repo("dvc", "metrics", "diff", "--json").stdout
    changed = json.loads(diff)
    assert "metrics/focal.json" in changed and "accuracy" in changed["metrics/focal.json"]
    assert "metrics/baseline.json" not in changed and "metrics/reduced.json" not in changed
    repo.restore()


def test_subset_fraction_change_skips_download_and_baseline(repo):
    before = repo.metrics("subset")["per_class"]
    result = repo("dvc", "exp", "run", "-S", "subset.fraction=0.2")
    assert stages_run(result) == {"subset", "train_reduced", "train_focal", "evaluate"}
    after = repo.metrics("subset")["per_class"]
    assert after["class_0"] > before["class_0"] and after["class_9"] == before["class_9"]
    repo.restore()


@pytest.mark.parametrize("key, value, message", [
    ("subset.fraction", 1.5, "subset.fraction"),
    ("subset.fractoin", 0.1, "subset.fractoin: unknown key"),
    ("focal.gammas", [], "focal.gammas"),
    ("focal.gammas", [1, -0.5], "focal.gammas"),
    ("train.device", "tpu", "train.device"),
    ("train.device", "gpu", "train.device"),
])
def test_bad_params_fail_before_any_training(repo, key, value, message):
    params = yaml.safe_load((repo.root / "params.yaml").read_text())
    section, name = key.split(".")
    params[section][name] = value
    (repo.root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    stage = "subset" if section == "subset" else "train_focal"
    result = repo("dvc", "repro", "--single-item", stage, expect_ok=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert message in output
    assert "epoch 1" not in output
    repo.restore()
