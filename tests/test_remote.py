"""A team's DVC remote over SSH, end to end (docs/sharing.md): Debian's sshd on 127.0.0.1 (tests/sshd.py) holds
the DVC remote and a bare repository stands for the team's git remote. A teammate's fresh clone pulls every
output without training; an experiment pushed with the run cache is not retrained on another clone; a sweep
split over two worker clones (scripts/sweep.py) reaches a collector as if one machine had run it.
"""

import hashlib
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from sshd import SshServer, running_sshd

from pipeline_repo import Runner, copy_repo, stages_run

SSH_DIR = Path.home() / ".ssh"


def ssh_dir_state() -> dict[str, float]:
    return {str(path): path.stat().st_mtime for path in SSH_DIR.rglob("*")} if SSH_DIR.exists() else {}


SSH_DIR_BEFORE = ssh_dir_state()  # at collection, before any server or client ran
REMOTE = "team"
# A sweep recipe in queue_results.sh's form (its `queue` hook), small enough for the shrunken pipeline.
RECIPE = """#!/usr/bin/env bash
set -euo pipefail
queue() { ${QUEUE_RESULTS_QUEUE:-dvc exp run --queue} "$@"; }
case "$1" in
small)
    queue -S 'seed=2,3' evaluate@reduced
    ;;
esac
"""
SWEEP = ("small-001", "small-002")


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> SshServer:
    with running_sshd(tmp_path_factory.mktemp("sshd")) as running:
        yield running


@pytest.fixture(scope="module")
def origin(reproduced_repo, server, tmp_path_factory) -> Runner:
    """The shrunken project after its first run, with the team's remotes, pushed to both: what teammates clone.

    The DVC remote's URL is committed; who logs in, with which key, on which port is each clone's own."""
    root = tmp_path_factory.mktemp("team")
    run = copy_repo(reproduced_repo.run, root / "origin")
    run("dvc", "remote", "add", "-d", REMOTE, f"ssh://{server.host}{root / 'dvc-store'}")
    add_credentials(run, server)
    run("git", "commit", "-qm", "the team's DVC remote", ".dvc/config")
    run("git", "clone", "-q", "--bare", str(run.root), str(root / "git.git"))
    run("git", "remote", "add", "origin", str(root / "git.git"))
    run("git", "fetch", "-q", "origin")  # origin/main: what teammates receive
    run("dvc", "push")
    return run


def add_credentials(run: Runner, server: SshServer) -> None:
    for key, value in (("user", server.user), ("keyfile", str(server.keyfile)), ("port", str(server.port))):
        run("dvc", "remote", "modify", "--local", REMOTE, key, value)


def clone(origin: Runner, server: SshServer, root: Path) -> Runner:
    """A teammate's clone of the team's git remote, with their own credentials."""
    origin("git", "clone", "-q", origin("git", "remote", "get-url", "origin").stdout.strip(), str(root))
    run = Runner(root, origin.env)
    add_credentials(run, server)
    return run


@pytest.mark.dvc_pipeline
def test_a_fresh_clone_pulls_every_output_and_trains_nothing(origin, server, tmp_path):
    teammate = clone(origin, server, tmp_path / "teammate")
    assert {path.name for path in (teammate.root / "data").rglob("*") if path.is_file()} == {".gitignore"}
    start = time.monotonic()
    teammate("dvc", "pull")
    repro = teammate("dvc", "repro")
    print(f"dvc pull + dvc repro in a fresh clone: {time.monotonic() - start:.1f} s", file=sys.stderr)
    assert stages_run(repro) == set()
    committed = lock_file_outputs(teammate.root)
    models = [path for path in committed if path.startswith("data/models/")]
    assert len(models) == len(yaml.safe_load((teammate.root / "params.yaml").read_text())["variants"])
    assert {path: md5(teammate.root / path) for path in committed} == committed
    assert tree_hashes(teammate.root) == tree_hashes(origin.root)


@pytest.mark.dvc_pipeline
def test_credentials_stay_in_config_local_and_the_server_on_localhost(origin, server):
    local = (origin.root / ".dvc" / "config.local").read_text()
    assert str(server.keyfile) in local and str(server.port) in local  # the setup did write them somewhere
    origin("git", "check-ignore", "-q", ".dvc/config.local")
    key_body = max(server.keyfile.read_text().splitlines(), key=len)
    secrets = (str(server.keyfile), str(server.folder), key_body, f"port = {server.port}")
    for path in origin("git", "ls-tree", "-r", "--name-only", "origin/main").stdout.split():
        text = origin("git", "show", f"origin/main:{path}").stdout
        assert not [secret for secret in secrets if secret in text], path
    assert f"Server listening on 127.0.0.1 port {server.port}." in (server.folder / "sshd.log").read_text()
    assert ssh_dir_state() == SSH_DIR_BEFORE, f"{SSH_DIR} changed"


@pytest.mark.dvc_pipeline
def test_an_experiment_pushed_to_the_team_is_not_retrained_on_another_clone(origin, server, tmp_path):
    experiment = ("dvc", "exp", "run", "-S", "seed=1", "evaluate@reduced")
    stages = {"subset", "train@reduced", "evaluate@reduced"}
    first = clone(origin, server, tmp_path / "first")
    first("dvc", "pull")
    assert stages_run(first(*experiment, "--name", "seed1")) == stages
    first("dvc", "exp", "push", "--run-cache", "origin", "seed1")
    # The run cache alone does not carry it (DVC 3.67.1): a run-cache entry names every output, and
    # `dvc push --run-cache` sends only the DVC-cached ones, not the git-tracked metrics (cache: false) each
    # of these stages writes, so another clone's lookup misses and trains. When this fails, DVC has fixed it.
    run_cache_only = clone(origin, server, tmp_path / "run-cache-only")
    run_cache_only("dvc", "pull", "--run-cache")
    assert stages_run(run_cache_only(*experiment)) == stages
    # The experiment itself does: its commit holds the metrics, the DVC remote its models and data.
    second = clone(origin, server, tmp_path / "second")
    second("dvc", "exp", "pull", "origin", "seed1")
    second("dvc", "exp", "apply", "seed1")
    rerun = second(*experiment)
    assert stages_run(rerun) == set()
    for stage in stages:
        assert f"Stage '{stage}' didn't change, skipping" in rerun.stdout, rerun.stdout
    outputs = ("data/models/reduced.pdparams", "data/train_sets/subset.npz", "metrics/reduced.json",
               "metrics/train/reduced.json", "metrics/subset.json")
    assert {path: md5(second.root / path) for path in outputs} == {path: md5(first.root / path) for path in outputs}
    assert md5(first.root / "data/models/reduced.pdparams") != md5(origin.root / "data/models/reduced.pdparams")


@pytest.mark.dvc_pipeline
def test_two_workers_share_a_sweep_and_the_collector_gets_what_one_machine_would(origin, server, tmp_path):
    recipe = tmp_path / "recipe.sh"
    recipe.write_text(RECIPE)
    sweep = ("python", "scripts/sweep.py")
    workers = [clone(origin, server, tmp_path / f"worker{shard}") for shard in (1, 2)]
    for shard, worker in enumerate(workers, start=1):
        worker(*sweep, "run", "--shard", f"{shard}/2", "--recipe", str(recipe), "small")
    assert set(experiment_table(workers[0])) == {"small-001"}
    assert set(experiment_table(workers[1])) == {"small-002"}
    alone = clone(origin, server, tmp_path / "one-machine")
    alone(*sweep, "run", "--no-push", "--recipe", str(recipe), "small")
    collector = clone(origin, server, tmp_path / "collector")
    report = tmp_path / "report"
    collector(*sweep, "collect", "--out", str(report))  # a new folder: only the runs the collector pulled
    # Every experiment on the team's remote, the sweep's among them.
    collected, reference = experiment_table(collector), experiment_table(alone)
    assert set(SWEEP) <= set(collected) and set(reference) == set(SWEEP)
    assert {name: collected[name] for name in SWEEP} == reference
    assert {name: collected[name]["params"]["params.yaml"]["data"]["seed"] for name in SWEEP} == {
        "small-001": 2, "small-002": 3}
    assert (report / "remedies.md").is_file()
    # The collector has every experiment's files, not only their numbers.
    for name in SWEEP:
        collector("dvc", "exp", "apply", name)
        files = [path for path in collected[name]["outs"] if (collector.root / path).is_file()]
        assert "data/models/reduced.pdparams" in files
        assert {path: collected[name]["outs"][path]["hash"] for path in files} == {
            path: md5(collector.root / path) for path in files}


def test_the_worker_lists_a_recipe_step_without_queueing_it(project_root, tmp_path):
    """On a copy of the scripts outside any DVC repository, where a real `dvc exp run --queue` would fail."""
    (tmp_path / "scripts").mkdir()
    for name in ("queue_results.sh", "sweep.py"):
        shutil.copy(project_root / "scripts" / name, tmp_path / "scripts" / name)
    (tmp_path / "reports").mkdir()  # what validation chose, which the step reads
    shutil.copy(project_root / "reports" / "chosen.yaml", tmp_path / "reports" / "chosen.yaml")
    listed = subprocess.run([sys.executable, "scripts/sweep.py", "list", "--shard", "2/2", "posthoc"],
                            cwd=tmp_path, capture_output=True, text=True, check=True).stdout.splitlines()
    assert listed == [f"posthoc-00{i} -S seed={i - 1} -S evaluate.logit_adjustment_tau=1.5 evaluate@reduced_120"
                      for i in (2, 4)]


def experiment_table(run: Runner) -> dict[str, dict]:
    """`dvc exp show --json`: experiment name -> its params, metrics and outputs' hashes."""
    return {experiment["name"]: {key: value for key, value in experiment["revs"][0]["data"].items()
                                 if key in ("params", "metrics", "outs")}
            for commit in json.loads(run("dvc", "exp", "show", "--json").stdout)
            for experiment in commit.get("experiments") or []}


def lock_file_outputs(root: Path) -> dict[str, str]:
    """dvc.lock's file outputs (directories have a .dir hash) -> their md5."""
    stages = yaml.safe_load((root / "dvc.lock").read_text())["stages"]
    return {out["path"]: out["md5"] for stage in stages.values() for out in stage.get("outs", [])
            if not out["md5"].endswith(".dir")}


def tree_hashes(root: Path) -> dict[str, str]:
    """Every file under data/ and metrics/ -> sha256."""
    return {str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
            for folder in ("data", "metrics") for path in sorted((root / folder).rglob("*")) if path.is_file()}


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()
