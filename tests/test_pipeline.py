"""End to end: the real `dvc` commands on a shrunken configuration of the real pipeline, in a temporary git
repository, on a slice of real MNIST.

The tests share one repository (building it costs a full `dvc repro`); each test that changes the workspace
puts it back to the committed state afterwards.
"""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

VARIANTS = ("baseline", "reduced", "focal")
METRIC_KEYS = {"accuracy", "balanced_accuracy", "macro_f1", "test_loss", "minority_accuracy",
               "majority_accuracy", "per_class", "train_images", "epochs"}
PROJECT_FILES = ("stages", "params.yaml", "dvc.yaml", ".dvcignore", ".gitignore", "pyproject.toml")
TEST_IMAGES = 500
ALL_STAGES = {"download", "subset", "train_baseline", "train_reduced", "train_focal", "evaluate"}


def shrink(params: dict) -> dict:
    """The default configuration on 2000 training and 500 test images, one epoch, two gammas."""
    params["data"].update(train_limit=2000, test_limit=TEST_IMAGES)
    for variant in params["variants"].values():
        if "epochs" in variant:
            variant["epochs"] = 1
    params["focal"].update(gammas=[0.5, 2], epochs_per_gamma=1)
    return params


@pytest.fixture(scope="module")
def repo(tmp_path_factory, project_root, mnist_mirror):
    """A git + DVC repository of the project with shrunken params, after a full `dvc repro`, committed."""
    root = tmp_path_factory.mktemp("pipeline")
    for name in PROJECT_FILES:
        source = project_root / name
        if source.is_dir():
            shutil.copytree(source, root / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, root / name)
    params = shrink(yaml.safe_load((project_root / "params.yaml").read_text()))
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = {**os.environ, "MNIST_MIRROR": str(mnist_mirror),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    run = Runner(root, env)
    run("git", "init", "-q", "-b", "main")
    run("git", "config", "user.name", "pipeline test")
    run("git", "config", "user.email", "test@example.invalid")
    run("dvc", "init", "-q")
    shutil.copy(project_root / ".dvc" / "config", root / ".dvc" / "config")
    run("git", "add", "-A")
    run("git", "commit", "-qm", "project")
    run.first_repro = run("dvc", "repro")
    run("git", "add", "-A")
    run("git", "commit", "-qm", "first run")
    return run


class Runner:
    """Runs commands in the test repository; a non-zero exit fails the test with the command's output."""

    def __init__(self, root: Path, env: dict):
        self.root, self.env = root, env

    def __call__(self, *args: str, expect_ok: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run(args, cwd=self.root, env=self.env, capture_output=True, text=True)
        if expect_ok and result.returncode != 0:
            pytest.fail(f"{' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
        return result

    def restore(self) -> None:
        """Back to the last commit: params, lock file, metrics and the DVC-tracked data."""
        self("git", "reset", "-q", "--hard")
        self("dvc", "checkout", "-q", "--force")

    def metrics(self, name: str) -> dict:
        return json.loads((self.root / "metrics" / f"{name}.json").read_text())


def stages_run(result: subprocess.CompletedProcess) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", result.stdout + result.stderr))


def test_first_repro_runs_every_stage_and_writes_every_metric(repo):
    assert stages_run(repo.first_repro) == ALL_STAGES
    for name in VARIANTS:
        metrics = repo.metrics(name)
        assert set(metrics) == METRIC_KEYS
        assert set(metrics["per_class"]) == {f"class_{d}" for d in range(10)}
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
