"""A queued experiment whose training is killed mid-run (issue 19, item 5): `dvc queue status` reports it Failed,
the workspace is byte for byte what it was, and queueing the same experiment again completes it with exactly
what an uninterrupted run of it gives.

The kill is SIGKILL to the stage's own process (`python -m stages.train`, running in the queue's temporary
workspace under .dvc/tmp/exps), sent once that process has written its first checkpoint: what the OOM killer or
a crash does to a training job. Killing the whole worker instead (`dvc queue start`'s process group) leaves the
task "Running" in `dvc queue status` for good, with no worker alive, until `dvc queue kill` marks it Failed:
DVC 3.67.1 does not notice a dead worker, so that is not a state this test can wait for.
"""

import hashlib
import re
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import psutil  # a dependency of dvc itself
import pytest

from pipeline_repo import Runner, copy_repo

pytestmark = pytest.mark.dvc_pipeline

# 60 epochs of the reduced variant on the shrunken subset: about 6 s of training on 2 cores, so a kill after the
# first checkpoint lands mid-training with seconds to spare.
EXPERIMENT = ("-S", "seed=1", "-S", "variants.reduced.epochs=60", "evaluate@reduced")
TRAINING = ["python", "-m", "stages.train", "--variant", "reduced"]
QUEUE_TEMP = Path(".dvc/tmp/exps")  # where DVC runs queued experiments, one temporary workspace each
TIMEOUT_S = 120
POLL_S = 0.05
STATUS_POLL_S = 1  # `dvc queue status` costs a second of CPU: asked less often
PENDING = (None, "Queued", "Running")  # None: not listed yet
# DVC's words, in the task's log, for a stage that SIGKILL ended. DVC runs the stage's command through $SHELL, or
# /bin/sh when unset: bash execs a lone command, so DVC sees the signal (-9); dash forks it and exits 128 + 9.
KILLED = ("exited with -9", "exited with 137")


def wait_for(get: Callable, done: Callable, poll_s: float, what: str):
    """`get()`'s first value that is `done`, polled; fails the test naming `what` after TIMEOUT_S."""
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        value = get()
        if done(value):
            return value
        time.sleep(poll_s)
    pytest.fail(f"no {what} after {TIMEOUT_S} s")


def settled(run: Runner, name: str) -> dict[str, str]:
    """`dvc queue status` once the experiment `name` is neither queued nor running."""
    return wait_for(lambda: queue_status(run), lambda status: status.get(name) not in PENDING, STATUS_POLL_S,
                    f"end of {name}")


def workspace(root: Path) -> dict[str, str]:
    """sha256 of every file outside .git and .dvc: the DVC-tracked data and models, dvc.lock, params, metrics."""
    return {str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(root.rglob("*"))
            if path.is_file() and not {".git", ".dvc"} & set(path.relative_to(root).parts)}


def queue(run: Runner) -> str:
    """Queue the experiment; its name, as `dvc exp run --queue` prints it."""
    printed = run("dvc", "exp", "run", "--queue", *EXPERIMENT).stdout
    return re.search(r"Queued experiment '([^']+)'", printed).group(1)


def queue_status(run: Runner) -> dict[str, str]:
    """{experiment name: status} from `dvc queue status`'s table (Task, Name, Created as two words, Status)."""
    rows = run("dvc", "queue", "status").stdout.splitlines()
    return {words[1]: words[-1] for words in map(str.split, rows) if len(words) >= 4 and words[0] != "Task"}


def start_queue(run: Runner) -> None:
    """`dvc queue start -j 1`. Not through Runner: the worker it leaves running inherits the command's output,
    so a captured pipe would stay open, and the call block, until the queue is empty."""
    result = subprocess.run(("dvc", "queue", "start", "-j", "1"), cwd=run.root, env=run.env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert result.returncode == 0, "dvc queue start -j 1 failed"


def training_with_checkpoint(root: Path) -> psutil.Process | None:
    """The queued training process of this repository once it has written a checkpoint: killed then, the
    stage is mid-training, past its start-up."""
    temp = (root / QUEUE_TEMP).resolve()
    for process in psutil.process_iter(["cmdline", "cwd"]):
        cwd = process.info["cwd"]
        if process.info["cmdline"] == TRAINING and cwd and Path(cwd).is_relative_to(temp) \
                and (Path(cwd) / "data" / "checkpoints" / "reduced").is_dir():
            return process
    return None


def experiment_ref(run: Runner, name: str) -> str:
    refs = run("git", "for-each-ref", "--format=%(refname)", "refs/exps").stdout.split()
    (ref,) = [ref for ref in refs if ref.endswith(f"/{name}")]
    return ref


@pytest.fixture
def run(reproduced_repo, tmp_path) -> Runner:
    run = copy_repo(reproduced_repo.run, tmp_path / "repo")
    yield run
    run("dvc", "queue", "stop", "--kill", expect_ok=False)  # no worker outlives a failed test


def test_a_killed_queued_experiment_fails_leaves_the_workspace_and_runs_again(run):
    before, git_before = workspace(run.root), run("git", "status", "--porcelain").stdout
    killed = queue(run)
    start_queue(run)
    training = wait_for(lambda: training_with_checkpoint(run.root), bool, POLL_S, "queued training checkpoint")
    training.send_signal(signal.SIGKILL)

    status = settled(run, killed)
    log = run("dvc", "queue", "logs", killed).stdout
    assert status[killed] == "Failed", f"{killed}: {status[killed]}\n{log}"
    assert any(words in log for words in KILLED), f"{killed} failed, but not from the kill:\n{log}"
    assert run("git", "status", "--porcelain").stdout == git_before
    assert workspace(run.root) == before
    assert not [path.name for path in (run.root / QUEUE_TEMP).glob("tmp*")], "the killed run's workspace is left"

    again = queue(run)
    start_queue(run)
    status = settled(run, again)
    assert status[again] == "Success", f"{again}: {status}\n{run('dvc', 'queue', 'logs', again).stdout}"
    assert workspace(run.root) == before

    # The same experiment, uninterrupted: every file of its commit (dvc.lock with the model's md5, the metrics,
    # the training log) must equal the rerun's.
    printed = run("dvc", "exp", "run", "--temp", *EXPERIMENT).stdout
    uninterrupted = re.search(r"Ran experiment\(s\): (\S+)", printed).group(1)
    rerun, reference = experiment_ref(run, again), experiment_ref(run, uninterrupted)
    assert run("git", "diff", "--stat", "HEAD", rerun).stdout, "the rerun changed nothing: not the experiment"
    assert run("git", "diff", "--stat", reference, rerun).stdout == ""
