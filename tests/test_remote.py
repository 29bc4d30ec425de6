"""A team's DVC remote over SSH, end to end (docs/sharing.md): Debian's sshd on 127.0.0.1 (tests/sshd.py) holds
the DVC remote and a bare repository stands for the team's git remote. A teammate's fresh clone pulls every
output without training; an experiment pushed with the run cache is not retrained on another clone. Sweeps
over these remotes (shards, SLURM) are tested in tests/test_sweep_backends.py.
"""

import hashlib
import sys
import time
from pathlib import Path

import pytest
import yaml
from sshd import SshServer, running_sshd
from team_remote import clone, md5, team_origin

from pipeline_repo import Runner, stages_run

SSH_DIR = Path.home() / ".ssh"


def ssh_dir_state() -> dict[str, float]:
    return {str(path): path.stat().st_mtime for path in SSH_DIR.rglob("*")} if SSH_DIR.exists() else {}


SSH_DIR_BEFORE = ssh_dir_state()  # at collection, before any server or client ran


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> SshServer:
    with running_sshd(tmp_path_factory.mktemp("sshd")) as running:
        yield running


@pytest.fixture(scope="module")
def origin(reproduced_repo, server, tmp_path_factory) -> Runner:
    """The shrunken project after its first run, pushed to the team's remotes (team_remote.team_origin)."""
    return team_origin(reproduced_repo.run, server, tmp_path_factory.mktemp("team"))


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


def lock_file_outputs(root: Path) -> dict[str, str]:
    """dvc.lock's file outputs (directories have a .dir hash) -> their md5."""
    stages = yaml.safe_load((root / "dvc.lock").read_text())["stages"]
    return {out["path"]: out["md5"] for stage in stages.values() for out in stage.get("outs", [])
            if not out["md5"].endswith(".dir")}


def tree_hashes(root: Path) -> dict[str, str]:
    """Every file under data/ and metrics/ -> sha256."""
    return {str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
            for folder in ("data", "metrics") for path in sorted((root / folder).rglob("*")) if path.is_file()}
