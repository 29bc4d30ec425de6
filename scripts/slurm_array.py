"""A sweep as SLURM job arrays: one task per experiment, then a collector (docs/sharing.md, "SLURM").

Each step is one array whose task ids are the step's experiment indices (task 7 of `test` runs `test-007`), so
a resubmission lists only the indices not yet on the git remote. A task clones the git remote into a scratch
folder, checks out the sweep's commit and runs that commit's `sweep.py work` (dvc pull, dvc exp run --temp,
dvc exp push --run-cache). The collector starts when every array has ended (afterany) and runs `sweep.py
collect` in this checkout: it pulls the experiments, names any that are missing, and builds the report.
What a site needs from sbatch (partition, account, time, cpus) comes from --slurm-config and --sbatch.
"""

import dataclasses
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from scripts.recipe import Experiment
from scripts.sweep_git import ROOT, SweepError, check_reproducible_elsewhere, pushed_experiments, run

LOG_DIR = ROOT / ".dvc" / "tmp" / "sweep-logs"  # git-ignored by DVC; on a cluster, a folder the nodes share
CONFIG_KEYS = {"sbatch", "task", "collector", "max_running", "scratch"}


@dataclasses.dataclass(frozen=True)
class SiteOptions:
    """What a cluster needs: sbatch options for every job, for the tasks, for the collector; how many tasks of
    an array may run at once (None: as many as SLURM allows); where a task clones (None: $TMPDIR or /tmp)."""
    sbatch: tuple[str, ...] = ()
    task: tuple[str, ...] = ()
    collector: tuple[str, ...] = ()
    max_running: int | None = None
    scratch: str | None = None


def read_site_options(path: Path | None, extra_sbatch: list[str], max_running: int | None) -> SiteOptions:
    """The --slurm-config file (YAML, the keys of SiteOptions), then the command line's --sbatch options."""
    data = yaml.safe_load(path.read_text()) if path else {}
    data = data or {}
    if unknown := set(data) - CONFIG_KEYS:
        raise SweepError(f"{path}: unknown keys {sorted(unknown)}; a SLURM config has {sorted(CONFIG_KEYS)}")
    for key in ("sbatch", "task", "collector"):
        if not isinstance(data.get(key, []), list):
            raise SweepError(f"{path}: {key}: {data[key]!r}; expected a list of sbatch options, such as "
                             "[--partition=short, --time=01:00:00]")
    return SiteOptions(tuple(map(str, data.get("sbatch", []))) + tuple(extra_sbatch),
                       tuple(map(str, data.get("task", []))), tuple(map(str, data.get("collector", []))),
                       max_running if max_running is not None else data.get("max_running"), data.get("scratch"))


def check_slurm_reachable() -> None:
    for tool in ("sbatch", "scontrol"):
        if shutil.which(tool) is None:
            raise SweepError(f"{tool} is not on PATH: install SLURM's client commands (Debian: slurm-client), or "
                             "submit from a login node of the cluster")
    ping = subprocess.run(["scontrol", "ping"], capture_output=True, text=True)
    if "is UP" not in ping.stdout:  # one controller up is enough, whatever the others (a backup) say
        raise SweepError(f"SLURM's controller does not answer (`scontrol ping`: {ping.stdout.strip()}"
                         f"{ping.stderr.strip()}): check SLURM_CONF and that slurmctld runs, then submit again")


def index_ranges(indices: list[int]) -> str:
    """[1, 2, 3, 5, 8, 9] -> '1-3,5,8-9', sbatch's --array syntax."""
    ranges, start = [], None
    for position, index in enumerate(indices):
        start = index if start is None else start
        if position + 1 == len(indices) or indices[position + 1] != index + 1:
            ranges.append(f"{start}-{index}" if index > start else str(start))
            start = None
    return ",".join(ranges)


def sbatch(options: list[str], command: list[str]) -> str:
    """Submits `command` with `options`; returns the job id."""
    arguments = ["sbatch", "--parsable", *options, "--wrap", shlex.join(command)]
    print("+", shlex.join(arguments), file=sys.stderr, flush=True)
    result = subprocess.run(arguments, cwd=ROOT, capture_output=True, text=True)
    if result.returncode != 0:
        raise SweepError(f"sbatch refused the job ({result.stderr.strip()}): check the sbatch options "
                         f"{shlex.join(options)}")
    return result.stdout.strip().split(";")[0]  # --parsable: "id" or "id;cluster"


def submit(sweep: dict[str, list[Experiment]], git_remote: str, site: SiteOptions, collect_command: list[str],
           wait: bool) -> int:
    """One array per step of `sweep` (step -> its experiments) for those not on the git remote, each after the
    one before; then the collector. Checks everything before submitting anything. Returns an exit status."""
    check_slurm_reachable()
    commit = check_reproducible_elsewhere(git_remote)
    url = run("git", "remote", "get-url", git_remote, capture=True).strip()
    pushed = pushed_experiments(git_remote)
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    arrays = []
    for step, experiments in sweep.items():
        todo = [index for index, experiment in enumerate(experiments, start=1) if experiment.name not in pushed]
        print(f"{step}: {len(experiments) - len(todo)} of {len(experiments)} experiments already on {git_remote}, "
              f"{len(todo)} to run", file=sys.stderr)
        if not todo:
            continue
        limit = f"%{site.max_running}" if site.max_running else ""
        options = [f"--job-name=sweep-{step}", f"--array={index_ranges(todo)}{limit}",
                   f"--output={LOG_DIR}/%x-%A_%a.out", *dependency(arrays), *site.sbatch, *site.task]
        task = [sys.executable, str(Path(__file__).with_name("sweep.py")), "task", step, "--git-url", url,
                "--commit", commit, *(["--scratch", site.scratch] if site.scratch else [])]
        arrays.append(sbatch(options, task))
        print(f"{step}: array job {arrays[-1]}", file=sys.stderr)
    options = ["--job-name=sweep-collect", f"--output={LOG_DIR}/%x-%j.out", *dependency(arrays), *site.sbatch,
               *site.collector]
    if not wait:
        print(f"collector: job {sbatch(options, collect_command)}, logs in {LOG_DIR}", file=sys.stderr)
        return 0
    # --wait: sbatch returns when the collector ends, with its exit status.
    arguments = ["sbatch", *options, "--wait", "--wrap", shlex.join(collect_command)]
    print("+", shlex.join(arguments), file=sys.stderr, flush=True)
    return subprocess.run(arguments, cwd=ROOT).returncode


def dependency(arrays: list[str]) -> list[str]:
    """After every job of `arrays` has ended, however it ended: a failed task must not block the rest."""
    return [f"--dependency=afterany:{':'.join(arrays)}"] if arrays else []


def task(step: str, git_url: str, commit: str, scratch: str | None) -> None:
    """A SLURM array task: a scratch clone at the sweep's commit runs experiment $SLURM_ARRAY_TASK_ID of `step`
    with that commit's sweep.py, then the clone is removed. This checkout's DVC credentials (.dvc/config.local)
    are copied in."""
    index = int(os.environ["SLURM_ARRAY_TASK_ID"])
    # scancel sends SIGTERM: leave through `finally`, so the scratch clone goes too.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    clone = Path(tempfile.mkdtemp(prefix=f"sweep-{step}-{index}-", dir=scratch))
    try:
        start = time.monotonic()
        run("git", "clone", "-q", git_url, str(clone))
        run("git", "checkout", "-q", commit, cwd=clone)
        if (ROOT / ".dvc" / "config.local").exists():
            shutil.copy(ROOT / ".dvc" / "config.local", clone / ".dvc" / "config.local")
        print(f"timing: clone {time.monotonic() - start:.2f} s", file=sys.stderr, flush=True)
        run(sys.executable, "scripts/sweep.py", "work", step, str(index), cwd=clone)
    finally:
        shutil.rmtree(clone, ignore_errors=True)
