"""A sweep's wall time under SLURM against DVC's local queue on the same cores, and what one SLURM task costs
beyond its training (benchmarks/README.md, "Sweeps").

    python benchmarks/sweep_overhead.py              # 6 experiments (a seed sweep of evaluate@reduced)
    python benchmarks/sweep_overhead.py --seeds 10

It builds what tests/test_sweep_backends.py builds: the shrunken project (2000 training images, one epoch) after
its first `dvc repro`, a bare git remote, the DVC remote on a throwaway sshd and a one-node SLURM on 127.0.0.1
(tests/sshd.py, tests/slurm.py; Debian's openssh-server, slurmctld, slurmd, munge). One clone runs the sweep with
`sweep.py run --backend local` (`dvc queue start -j 2`), another, on a commit of its own, with `--backend slurm
--max-running <cores>` (one core per task); each task's log gives its phases (clone, dvc pull, dvc exp run, dvc
exp push) and the train stage's own time. Needs root for sshd and SLURM, as the tests do.
"""

import argparse
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from mnist_source import CACHE_DIR, local_mnist  # noqa: E402
from pipeline_repo import make_repo  # noqa: E402
from slurm import running_slurm  # noqa: E402
from sshd import running_sshd  # noqa: E402
from team_remote import clone, team_origin  # noqa: E402

PHASES = ("clone", "pull", "exp run", "exp push")


def recipe(seeds: int) -> str:
    batch = f"{{targets: [evaluate@reduced], sweep: {{seed: {list(range(seeds))}}}}}"
    return f"order: [bench]\nsteps:\n  bench:\n    - {batch}\n"


def timed(run, *args: str) -> tuple[float, str]:
    """Wall seconds of a command, and its stderr."""
    start = time.monotonic()
    stderr = run(*args).stderr
    return time.monotonic() - start, stderr


def task_phases(log_dir: Path) -> list[dict[str, float]]:
    """Per task log: phase -> seconds (sweep.py's `timing:` lines), and `train`: the train stage's own time."""
    tasks = []
    for log in sorted(log_dir.glob("sweep-bench-*.out")):
        text = log.read_text()
        phases = {phase: float(seconds) for phase, seconds in re.findall(r"timing: ([a-z ]+) ([\d.]+) s", text)}
        phases["train"] = sum(float(s) for s in re.findall(r"train \w+: \d+ epochs in (\d+) s", text))
        tasks.append(phases)
    return tasks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=6, help="experiments in the sweep")
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0))
    load_before = os.getloadavg()[0]
    mirror = local_mnist(os.environ.get("MNIST_MIRROR"), [], CACHE_DIR, 5)
    with tempfile.TemporaryDirectory(prefix="sweep-bench-") as folder, running_sshd(Path(folder)) as server, \
            running_slurm() as cluster:
        root = Path(folder)
        project = make_repo(root / "project", ROOT, mirror)
        project("dvc", "repro")
        (project.root / "recipe.yaml").write_text(recipe(args.seeds))
        project("git", "add", "-A")
        project("git", "commit", "-qm", "first run, the benchmark's sweep")
        origin = team_origin(project, server, root / "team")
        local = clone(origin, server, root / "local")
        local_s, local_log = timed(local, "python", "scripts/sweep.py", "run", "bench", "--backend", "local", "--jobs",
                        str(cores), "--poll-s", "1")
        submitter = clone(origin, server, root / "slurm", cluster.env)
        submitter("git", "commit", "-q", "--allow-empty", "-m", "the SLURM sweep")  # experiments of its own
        submitter("git", "push", "-q", "origin", "main")
        slurm_s, _ = timed(submitter, "python", "scripts/sweep.py", "run", "bench", "--backend", "slurm", "--wait",
                        "--max-running", str(cores), "--sbatch=--cpus-per-task=1")
        tasks = task_phases(submitter.root / ".dvc" / "tmp" / "sweep-logs")
        # What each of a task's three stages (subset, train, evaluate) pays before it computes anything.
        paddle_s, _ = timed(submitter, "python", "-c", "import paddle")
    print(f"{args.seeds} experiments (evaluate@reduced, shrunken: 2000 training images, 1 epoch) on {cores} cores; "
          f"load average (1 min) {load_before:.1f} before, {os.getloadavg()[0]:.1f} after\n")
    print("| backend | wall time (s) | per experiment (s) |\n|---|---:|---:|")
    print(f"| local: `dvc queue start -j {cores}` | {local_s:.1f} | {local_s / args.seeds:.1f} |")
    print(f"| SLURM: array %{cores}, then the collector's pull | {slurm_s:.1f} | {slurm_s / args.seeds:.1f} |\n")
    print("The local queue: " + "; ".join(re.findall(r"timing: (.*)", local_log)) + "\n")
    print(f"One SLURM task, median (min-max) over {len(tasks)} tasks, seconds:\n")
    print("| phase | median | min | max |\n|---|---:|---:|---:|")
    for phase in (*PHASES, "train"):
        values = [task.get(phase, float("nan")) for task in tasks]
        label = "of which the train stage (its own print, whole seconds)" if phase == "train" else phase
        print(f"| {label} | {statistics.median(values):.2f} | {min(values):.2f} | {max(values):.2f} |")
    print(f"\n`python -c 'import paddle'`, once, afterwards: {paddle_s:.2f} s")


if __name__ == "__main__":
    main()
