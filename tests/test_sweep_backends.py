"""scripts/sweep.py's backends, end to end, on the shrunken project: a bare git remote, the DVC remote on a real
sshd (tests/sshd.py) and a real one-node SLURM (tests/slurm.py). A two-step recipe (a seed sweep, and a variant
added with `+variants.<name>={...}` beside a plain setting) run as SLURM arrays, or in shards, reaches its
collector with the same experiments, params, metrics and output hashes as DVC's queue on one machine; a task
cancelled mid-run is named by the collector and a second submission runs only it; bad input stops before
anything is submitted. Each sweep runs on a commit of its own, so that no test finds another's experiments."""

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from slurm import Cluster, running_slurm
from sshd import SshServer, free_port, running_sshd
from team_remote import clone, experiment_table, md5, team_origin

from pipeline_repo import Runner, copy_repo, make_repo

from scripts.slurm_array import SiteOptions, index_ranges, read_site_options
from scripts.sweep import queue_state
from scripts.sweep_git import SweepError

RECIPE = """\
report: [python, scripts/remedies_report.py]
order: [seeds, added, report]
steps:
  seeds:
    - targets: [evaluate@reduced]
      sweep: {seed: [2, 3]}
  added:
    - targets: [evaluate@reduced_b50]
      set: {+variants.reduced_b50: {train_set: subset, loss: cross_entropy, epochs: 1}, train.batch_size: 50}
      sweep: {seed: [2, 3]}
"""
SWEEP = ("seeds-001", "seeds-002", "added-001", "added-002")
SWEEP_CMD = ("python", "scripts/sweep.py")
WAIT_S = 300  # the longest a test waits for SLURM to finish a sweep


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> SshServer:
    with running_sshd(tmp_path_factory.mktemp("sshd")) as running:
        yield running


@pytest.fixture(scope="module")
def cluster() -> Cluster:
    with running_slurm() as running:
        yield running


@pytest.fixture(scope="module")
def origin(reproduced_repo, server, tmp_path_factory) -> Runner:
    """The shrunken project on the team's remotes, with the two-step recipe committed and pushed."""
    run = team_origin(reproduced_repo.run, server, tmp_path_factory.mktemp("team"))
    (run.root / "recipe.yaml").write_text(RECIPE)
    run("git", "commit", "-qm", "a two-step sweep", "recipe.yaml")
    run("git", "push", "-q", "origin", "main")
    return run


def teammate(origin: Runner, server: SshServer, root: Path, branch: str, env: dict | None = None) -> Runner:
    """A clone on a commit of its own (an empty commit on `branch`, pushed): no experiment exists for it yet."""
    run = clone(origin, server, root, env)
    run("git", "checkout", "-q", "-b", branch)
    run("git", "commit", "-q", "--allow-empty", "-m", f"the {branch} sweep")
    run("git", "push", "-q", "origin", branch)
    return run


@pytest.fixture(scope="module")
def one_machine(origin, server, tmp_path_factory) -> dict[str, dict]:
    """The reference: the whole recipe through DVC's queue on one clone; its experiments' table."""
    root = tmp_path_factory.mktemp("one-machine")
    run = clone(origin, server, root / "repo")
    start = time.monotonic()
    run(*SWEEP_CMD, "run", "all", "--backend", "local", "--poll-s", "1", "--report-args", f"--out {root}/report")
    print(f"local queue, {len(SWEEP)} experiments and the report: {time.monotonic() - start:.1f} s", file=sys.stderr)
    assert (root / "report" / "remedies.md").is_file()
    table = experiment_table(run)
    assert set(table) == set(SWEEP)
    return table


def site_config(path: Path, scratch: Path) -> Path:
    """What a site passes: sbatch options for every job, and where tasks clone."""
    scratch.mkdir()
    path.write_text(yaml.safe_dump({"sbatch": ["--time=00:10:00", "--cpus-per-task=1"], "scratch": str(scratch)}))
    return path


def assert_same_experiments(run: Runner, reference: dict[str, dict], names: tuple[str, ...] = SWEEP) -> None:
    """`run` has exactly the experiments `names`, equal to the reference's: params, metrics, output hashes."""
    collected = experiment_table(run)
    assert set(collected) == set(names)
    assert collected == {name: reference[name] for name in names}
    seeds = {"seeds-001": 2, "seeds-002": 3, "added-001": 2, "added-002": 3}
    assert {name: collected[name]["params"]["params.yaml"]["data"]["seed"] for name in names} == {
        name: seeds[name] for name in names}
    # The collector has every experiment's files, not only their numbers.
    for name in names[-2:]:
        run("dvc", "exp", "apply", name)
        files = [path for path in collected[name]["outs"] if (run.root / path).is_file()]
        assert any(path.startswith("data/models/") for path in files), files
        assert {path: collected[name]["outs"][path]["hash"] for path in files} == {
            path: md5(run.root / path) for path in files}


@pytest.mark.dvc_pipeline
def test_a_slurm_array_per_step_reaches_the_collector_as_the_local_queue_runs_it(
        origin, server, cluster, one_machine, tmp_path):
    submitter = teammate(origin, server, tmp_path / "submitter", "slurm", cluster.env)
    config = site_config(tmp_path / "site.yaml", tmp_path / "scratch")
    start = time.monotonic()
    submitted = submitter(*SWEEP_CMD, "run", "all", "--backend", "slurm", "--slurm-config", str(config), "--wait",
                          "--report-args", f"--out {tmp_path}/report")
    print(f"SLURM, {len(SWEEP)} experiments and the report: {time.monotonic() - start:.1f} s", file=sys.stderr)
    # One array per step, one task per experiment, the second step after the first, the collector after both.
    assert re.search(r"--job-name=sweep-seeds --array=1-2 ", submitted.stderr), submitted.stderr
    assert re.search(r"--job-name=sweep-added --array=1-2 .*--dependency=afterany:\d+ ", submitted.stderr)
    assert re.search(r"--job-name=sweep-collect .*--dependency=afterany:\d+:\d+ ", submitted.stderr)
    assert (tmp_path / "report" / "remedies.md").is_file()
    assert_same_experiments(submitter, one_machine)
    assert list((tmp_path / "scratch").iterdir()) == []  # every task removed its clone
    logs = list((submitter.root / ".dvc" / "tmp" / "sweep-logs").glob("sweep-seeds-*.out"))
    assert len(logs) == 2 and all("timing: exp push" in log.read_text() for log in logs)


def squeue(run: Runner, *args: str) -> list[str]:
    return run("squeue", "-h", *args).stdout.split()


def wait_until(ready, what: str, timeout_s: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not ready():
        assert time.monotonic() < deadline, f"{what}: not within {timeout_s} s"
        time.sleep(0.2)


@pytest.mark.dvc_pipeline
def test_a_task_cancelled_mid_run_is_named_by_the_collector_and_submitting_again_runs_only_it(
        origin, server, cluster, one_machine, tmp_path):
    submitter = teammate(origin, server, tmp_path / "submitter", "cancel", cluster.env)
    config = site_config(tmp_path / "site.yaml", tmp_path / "scratch")
    # One step (two tasks) is enough to cancel one; the first test runs both steps.
    submit = (*SWEEP_CMD, "run", "seeds", "--backend", "slurm", "--slurm-config", str(config),
              "--report-args", f"--out {tmp_path}/report")
    submitter(*submit)
    logs = submitter.root / ".dvc" / "tmp" / "sweep-logs"
    wait_until(lambda: squeue(submitter, "-r", "-t", "R", "-n", "sweep-seeds", "-o", "%i"), "a running task")
    task = squeue(submitter, "-r", "-t", "R", "-n", "sweep-seeds", "-o", "%i")[0]  # such as 12_1
    log = logs / f"sweep-seeds-{task}.out"
    # Mid-run: the experiment is training (its pull is done, its run is not).
    wait_until(lambda: log.exists() and "timing: pull" in log.read_text(), f"task {task} past its pull")
    assert "timing: exp run" not in log.read_text()
    submitter("scancel", task)
    wait_until(lambda: not squeue(submitter, "-n", "sweep-collect", "-t", "PD,R,CG"), "the collector")
    cancelled = f"seeds-{int(task.split('_')[1]):03d}"
    (collector_log,) = logs.glob("sweep-collect-*.out")
    assert f"1 of 2 experiments are not on origin: {cancelled}. Submit the same command again" in \
        collector_log.read_text()
    assert not (tmp_path / "report").exists()
    again = submitter(*submit, "--wait")
    assert "seeds: 1 of 2 experiments already on origin, 1 to run" in again.stderr
    assert f"--array={cancelled[-1]} " in again.stderr
    assert (tmp_path / "report" / "remedies.md").is_file()
    assert_same_experiments(submitter, one_machine, ("seeds-001", "seeds-002"))
    assert list((tmp_path / "scratch").iterdir()) == []  # the cancelled task's clone went too


@pytest.mark.dvc_pipeline
def test_two_shards_push_what_the_collector_gets_as_one_machine_would(origin, server, one_machine, tmp_path):
    workers = [teammate(origin, server, tmp_path / "worker1", "shards")]
    workers.append(clone(origin, server, tmp_path / "worker2"))
    workers[1]("git", "checkout", "-q", "shards")
    # At once, as two machines would run them.
    shards = [subprocess.Popen([*SWEEP_CMD, "run", "seeds", "--backend", "shard", "--shard", f"{shard}/2"],
                               cwd=worker.root, env=worker.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True) for shard, worker in enumerate(workers, start=1)]
    for shard in shards:
        output = shard.communicate()[0]
        assert shard.returncode == 0, output
    assert set(experiment_table(workers[0])) == {"seeds-001"}
    assert set(experiment_table(workers[1])) == {"seeds-002"}
    collector = clone(origin, server, tmp_path / "collector")
    collector("git", "checkout", "-q", "shards")
    collector(*SWEEP_CMD, "collect", "seeds", "--report-args", f"--out {tmp_path}/report")
    assert (tmp_path / "report" / "remedies.md").is_file()
    assert_same_experiments(collector, one_machine, ("seeds-001", "seeds-002"))


@pytest.mark.dvc_pipeline
def test_a_failed_experiment_stops_the_local_queue_with_its_name(origin, server, tmp_path):
    run = clone(origin, server, tmp_path / "repo")
    run("dvc", "pull", "-q")
    (run.root / "recipe.yaml").write_text(
        "order: [bad]\nsteps:\n  bad:\n    - {targets: [evaluate@focal_fixed], set: {losses.focal.gamma: -1}}\n")
    # Started as `.venv/bin/python scripts/sweep.py` without activating the environment: its dvc is not on PATH.
    here = Path(sys.executable).parent
    path = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if p and Path(p).resolve() != here.resolve())
    if not shutil.which("git", path=path) or shutil.which("dvc", path=path):
        pytest.skip("this Python's directory holds git, or dvc is elsewhere on PATH too")
    unactivated = Runner(run.root, {**run.env, "PATH": path})
    failed = unactivated(sys.executable, "scripts/sweep.py", "run", "bad", "--poll-s", "1", expect_ok=False)
    assert failed.returncode != 0
    assert "bad: 1 of 1 experiments failed: bad-001. `dvc queue logs bad-001` says why" in failed.stderr


@pytest.fixture(scope="module")
def small_team(tmp_path_factory, project_root, mnist_mirror) -> Runner:
    """The project (not run) with a bare git remote, pushed: enough for the checks before a submission."""
    root = tmp_path_factory.mktemp("small-team")
    run = make_repo(root / "origin", project_root, mnist_mirror)
    run("git", "clone", "-q", "--bare", str(run.root), str(root / "git.git"))
    run("git", "remote", "add", "origin", str(root / "git.git"))
    run("git", "push", "-q", "origin", "main")
    return run


def dead_slurm_conf(cluster: Cluster, folder: Path) -> Path:
    """The cluster's slurm.conf with its controller on a port where nothing listens."""
    conf = folder / "slurm.conf"
    conf.write_text(re.sub(r"SlurmctldPort=\d+", f"SlurmctldPort={free_port()}", cluster.conf.read_text()))
    return conf


@pytest.mark.parametrize("case, problem", [
    ("unknown step", "unknown step 'tuning'; the recipe's steps: tune, tune-120,"),
    ("SLURM not reachable", "SLURM's controller does not answer (`scontrol ping`: Slurmctld(primary) at"),
    ("dirty workspace", "the workspace has changes that workers would not get:\n M params.yaml\ncommit them"),
    ("commit not pushed", "is on no branch of the git remote 'origin', so workers cannot check it out: "
                          "`git push origin` first"),
])
def test_bad_input_is_refused_before_anything_is_submitted(small_team, cluster, tmp_path, case, problem):
    run = copy_repo(small_team, tmp_path / "repo")
    run.env = {**run.env, **cluster.env}
    step = "tuning" if case == "unknown step" else "ldam"
    if case == "SLURM not reachable":
        run.env["SLURM_CONF"] = str(dead_slurm_conf(cluster, tmp_path))
    elif case == "dirty workspace":
        with open(run.root / "params.yaml", "a") as params:
            params.write("# an edit\n")
    elif case == "commit not pushed":
        run("git", "commit", "-q", "--allow-empty", "-m", "not pushed")
    refused = run(*SWEEP_CMD, "run", step, "--backend", "slurm", expect_ok=False)
    assert refused.returncode != 0 and problem in refused.stderr, refused.stderr
    assert "+ sbatch" not in refused.stderr
    queued = subprocess.run(["squeue", "-h", "-o", "%j"], env={**os.environ, **cluster.env}, capture_output=True,
                            text=True, check=True).stdout
    assert "sweep-" not in queued


def test_array_indices_are_written_as_sbatch_ranges():
    assert index_ranges([1, 2, 3, 5, 8, 9]) == "1-3,5,8-9"
    assert index_ranges([7]) == "7"


def test_site_options_come_from_the_config_file_then_the_command_line(tmp_path):
    config = tmp_path / "site.yaml"
    config.write_text("sbatch: [--partition=short, --time=01:00:00]\ntask: [--cpus-per-task=1]\nmax_running: 8\n")
    site = read_site_options(config, ["--account=lab"], None)
    assert site == SiteOptions(("--partition=short", "--time=01:00:00", "--account=lab"), ("--cpus-per-task=1",), (),
                               8, None)
    assert read_site_options(config, [], 2).max_running == 2  # the command line wins
    config.write_text("partition: short\n")
    with pytest.raises(SweepError, match=r"site.yaml: unknown keys \['partition'\]; a SLURM config has "):
        read_site_options(config, [], None)


def status(*tasks: str, active: int, idle: int = 0) -> str:
    """`dvc queue status` as DVC 3.67.1 prints it, with tasks of the given states."""
    rows = "".join(f"{i:07x}  map-{i:03d}  12:35 PM   {state}\n" for i, state in enumerate(tasks, 1))
    return f"Task     Name     Created    Status\n{rows}\nWorker status: {active} active, {idle} idle\n"


@pytest.mark.parametrize("text, state", [
    (status("Success", "Running", "Queued", active=1), "short"),  # one of two workers died (dvc#10428)
    (status("Queued", "Queued", active=0), "short"),  # every worker died: start them again
    (status("Running", "Running", "Queued", active=2), "busy"),
    (status("Success", "Running", active=1), "busy"),  # the last experiment: one worker is enough
    (status("Success", "Running", active=0), "stalled"),  # DVC dropped it: nothing will finish it
    (status("Success", "Failed", active=1), "busy"),  # a worker still shutting down
    (status("Success", "Failed", active=0), "done"),
    (status("Success", active=0, idle=1), "busy"),
])
def test_the_queue_state_says_when_to_start_workers_again_and_when_to_give_up(text, state):
    assert queue_state(text, jobs=2) == state
