"""Data versioning end to end: the real `git` and `dvc` commands move a shrunken run of the pipeline through a
local DVC remote, a fresh clone, a checkout of an older commit and the experiment queue.

The tests share one repository whose first run is committed and pushed; each test leaves it on that commit
(main) with a clean workspace. Four of the variants stand for all in the files compared.
"""

import csv
import dataclasses
import hashlib
import json
import time
from pathlib import Path

import pytest
import yaml

from pipeline_repo import Runner, copy_repo, stages_run

# The dvc orchestration itself: CI runs it under one Paddle build (see .ci/run).
pytestmark = pytest.mark.dvc_pipeline

VARIANTS = ("baseline", "reduced", "focal", "ldam_drw")
# Every file a run produces that a checkout or a pull must bring back byte for byte: the DVC-cached weights and
# training sets, and the git-tracked metrics and training logs.
RUN_FILES = (*(f"data/models/{name}.pdparams" for name in VARIANTS), "data/train_sets/full.npz",
             "data/train_sets/subset.npz",
             *(f"metrics/{name}.json" for name in ("subset", *VARIANTS)),
             *(f"metrics/train/{name}.{ext}" for name in VARIANTS for ext in ("csv", "json")))
UP_TO_DATE = "Data and pipelines are up to date."
QUEUE_TIMEOUT_S = 240  # the two shrunken focal + evaluate runs take about 20 s on 2 CPU cores
QUEUE_POLL_S = 2
FINISHED = ("success", "failed")  # executor states of `dvc exp show --json`; before: queued, running


@dataclasses.dataclass(frozen=True)
class FirstRun:
    """The repository after its first `dvc repro`, committed and pushed, and what that run produced."""
    run: Runner
    remote: Path
    commit: str
    hashes: dict[str, str]  # RUN_FILES -> sha256
    metrics: dict  # `dvc metrics show --json`


@pytest.fixture(scope="module")
def first_run(reproduced_repo, tmp_path_factory) -> FirstRun:
    """A copy of the project after its first `dvc repro` (conftest.reproduced_repo), pushed to a new remote."""
    run = copy_repo(reproduced_repo.run, tmp_path_factory.mktemp("versioning") / "repo")
    # Absolute, so a clone elsewhere finds the same remote through the committed .dvc/config.
    remote = tmp_path_factory.mktemp("remote").resolve()
    run("dvc", "remote", "add", "-d", "local", str(remote))
    run("git", "commit", "-qam", "local DVC remote")
    run("dvc", "push")
    return FirstRun(run, remote, head(run), file_hashes(run.root), metrics_show(run))


def test_push_then_clone_and_pull_gives_the_same_run(first_run, tmp_path):
    assert any(first_run.remote.rglob("*")), "dvc push wrote nothing to the remote"
    first_run.run("git", "clone", "-q", str(first_run.run.root), str(tmp_path / "clone"))
    clone = Runner(tmp_path / "clone", first_run.run.env)
    # Git brought DVC's .gitignore files and no data.
    assert {path.name for path in (clone.root / "data").rglob("*") if path.is_file()} == {".gitignore"}
    clone("dvc", "pull")
    assert clone("dvc", "status").stdout.strip() == UP_TO_DATE
    assert stages_run(clone("dvc", "repro")) == set()
    assert metrics_show(clone) == first_run.metrics
    assert file_hashes(clone.root) == first_run.hashes


def test_checkout_of_the_first_commit_restores_its_models_and_data(first_run):
    run = first_run.run
    params = yaml.safe_load((run.root / "params.yaml").read_text())
    params["losses"]["focal_curriculum"]["gammas"] = [1, 2]
    params["subset"]["fraction"] = 0.2  # so the subset, and not only the weights, differs between the commits
    (run.root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    # Only the focal curriculum is retrained: enough to move a model, a training set and metrics. On a branch,
    # so that main stays the complete first run that the other tests start from.
    assert stages_run(run("dvc", "repro", "evaluate@focal")) == {"subset", "train@focal", "evaluate@focal"}
    run("git", "checkout", "-q", "-b", "second")
    run("git", "add", "-A")
    run("git", "commit", "-qm", "second run: other gammas, a larger subset")
    second = file_hashes(run.root)
    moved = {path for path in RUN_FILES if second[path] != first_run.hashes[path]}
    assert {"data/models/focal.pdparams", "data/train_sets/subset.npz", "metrics/subset.json",
            "metrics/focal.json", "metrics/train/focal.csv"} <= moved
    # full.npz was rewritten byte for byte, and the variants not rerun kept their files.
    assert not {"data/models/baseline.pdparams", "data/models/reduced.pdparams", "data/train_sets/full.npz"} & moved
    try:
        run("git", "checkout", "-q", first_run.commit)
        run("dvc", "checkout")
        assert file_hashes(run.root) == first_run.hashes
        assert run("dvc", "status").stdout.strip() == UP_TO_DATE
        run("git", "checkout", "-q", "second")
        run("dvc", "checkout")
        assert file_hashes(run.root) == second
    finally:
        run("git", "checkout", "-q", "main")
        run("dvc", "checkout", "--force")


def test_queued_experiments_run_in_parallel_without_clobbering_each_other(first_run):
    run = first_run.run
    workspace = file_hashes(run.root)
    experiments = {"focal-g1": [1], "focal-g123": [1, 2, 3]}  # one and three epochs, at one per gamma
    for name, gammas in experiments.items():
        run("dvc", "exp", "run", "--queue", "--name", name, "-S",
            f"losses.focal_curriculum.gammas={json.dumps(gammas)}")
    try:
        run("dvc", "queue", "start", "-j", "2")
        states = wait_for_queue(run, experiments)
        failed = [name for name, state in states.items() if state != "success"]
        assert not failed, "\n".join(run("dvc", "queue", "logs", name, expect_ok=False).stdout for name in failed)
        # Each ran the focal curriculum's two stages; the rest of its copy was up to date.
        for name in experiments:
            assert stages_run(run("dvc", "queue", "logs", name)) == {"train@focal", "evaluate@focal"}, name
    finally:
        run("dvc", "queue", "stop", "--kill", expect_ok=False)
    # The experiments ran in their own directories: the workspace is as it was.
    assert file_hashes(run.root) == workspace
    shown = experiment_table(run)
    assert set(shown) == set(experiments)
    for name, gammas in experiments.items():
        assert shown[name]["params"]["params.yaml"]["data"]["losses"]["focal_curriculum"]["gammas"] == gammas
        assert shown[name]["metrics"]["metrics/train/focal.json"]["data"]["epochs"] == len(gammas)
        assert shown[name]["metrics"]["metrics/focal.json"]["data"]["epochs"] == len(gammas)
    focal = [shown[name]["metrics"]["metrics/focal.json"]["data"] for name in experiments]
    assert (focal[0]["accuracy"], focal[0]["test_loss"]) != (focal[1]["accuracy"], focal[1]["test_loss"])
    # DVC names a file by the md5 of its bytes.
    weights = {name: shown[name]["outs"]["data/models/focal.pdparams"]["hash"] for name in experiments}
    assert len(set(weights.values())) == 2
    # Each experiment's own files, applied to the workspace, agree with its params and with `dvc exp show`.
    try:
        for name, gammas in experiments.items():
            run("dvc", "exp", "apply", name)
            with open(run.root / "metrics" / "train" / "focal.csv", newline="") as f:
                assert [float(row["gamma"]) for row in csv.DictReader(f)] == gammas  # one row an epoch
            assert metrics_show(run)["metrics/focal.json"] == shown[name]["metrics"]["metrics/focal.json"]
            assert md5(run.root / "data/models/focal.pdparams") == weights[name]
    finally:
        run.restore()


def wait_for_queue(run: Runner, names) -> dict[str, str]:
    """Poll `dvc exp show --json` until every named experiment has finished; return name -> executor state."""
    deadline = time.monotonic() + QUEUE_TIMEOUT_S
    while True:
        states = {experiment["name"]: (experiment.get("executor") or {}).get("state", "success")
                  for commit in json.loads(run("dvc", "exp", "show", "--json").stdout)
                  for experiment in commit.get("experiments") or [] if experiment["name"] in names}
        if set(states) == set(names) and all(state in FINISHED for state in states.values()):
            return states
        if time.monotonic() > deadline:
            pytest.fail(f"the experiment queue did not finish in {QUEUE_TIMEOUT_S} s: {states}")
        time.sleep(QUEUE_POLL_S)


def experiment_table(run: Runner) -> dict[str, dict]:
    """`dvc exp show --json` as experiment name -> its data (params, metrics, deps, outs); each must have succeeded."""
    shown = {}
    for commit in json.loads(run("dvc", "exp", "show", "--json").stdout):
        for experiment in commit.get("experiments") or []:
            assert experiment["executor"] is None or experiment["executor"]["state"] == "success", experiment
            shown[experiment["name"]] = experiment["revs"][0]["data"]
    return shown


def head(run: Runner) -> str:
    return run("git", "rev-parse", "HEAD").stdout.strip()


def metrics_show(run: Runner) -> dict:
    """`dvc metrics show --json` of the workspace: metrics file -> its values."""
    return json.loads(run("dvc", "metrics", "show", "--json").stdout)[""]["data"]


def file_hashes(root: Path) -> dict[str, str]:
    return {path: sha256(root / path) for path in RUN_FILES}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()
