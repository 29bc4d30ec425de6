"""Runs the results recipe (recipe.yaml), a step or all of it, on one of three backends (docs/recipe.md,
docs/sharing.md):

    python scripts/sweep.py list test                          # a step's experiments: test-001 -S ... targets
    python scripts/sweep.py run all                            # DVC's queue on this machine, steps in order
    python scripts/sweep.py run test --backend shard --shard 3/8   # this machine's eighth, pushed to origin
    python scripts/sweep.py run test --backend slurm --slurm-config site.yaml [--wait]   # a job array
    python scripts/sweep.py collect test                       # pull the step's experiments, build the report

An experiment is named after its step and its index in the step (`test-007`) on every backend. A run skips the
experiments that already exist where it puts them (this repository for `local`; the git remote for `shard` and
`slurm`), so running the same command again finishes an interrupted sweep. `local` and `all` re-read
reports/chosen.yaml at each step, after the report has rewritten it; `shard` and `slurm` take it as committed.
"""

import argparse
import re
import shlex
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere in the repo

from scripts.recipe import REPORT_STEP, Experiment, Recipe, RecipeError, expand, load_recipe, read_chosen  # noqa: E402
from scripts.slurm_array import read_site_options, submit, task  # noqa: E402
from scripts.sweep_git import (ROOT, SweepError, check_reproducible_elsewhere, local_experiments,  # noqa: E402
                               pushed_experiments, run, this_python_first_on_path)

ALL = "all"


def parse_shard(text: str) -> tuple[int, int]:
    """`i/n` -> (i, n), 1 <= i <= n."""
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--shard {text!r}: expected i/n, such as 1/4") from None
    if not 1 <= index <= count:
        raise argparse.ArgumentTypeError(f"--shard {text}: i must be in 1..n")
    return index, count


def steps_of(recipe: Recipe, step: str) -> list[str]:
    """`all` -> the recipe's order; a step -> itself (an unknown one is an error naming the known ones)."""
    if step == ALL:
        return list(recipe.order)
    if step not in recipe.steps:
        raise RecipeError(f"unknown step {step!r}; the recipe's steps: {', '.join(recipe.step_names())} (or all)")
    return [step]


def sweep_of(recipe: Recipe, step: str) -> dict[str, list[Experiment]]:
    """Step -> its experiments, for the steps `step` stands for, with reports/chosen.yaml as it is now."""
    chosen = read_chosen()
    return {name: expand(recipe, name, chosen) for name in steps_of(recipe, step) if name != REPORT_STEP}


def dvc(*args: str) -> None:
    run("dvc", *args)


def report(recipe: Recipe, report_args: list[str]) -> None:
    """The recipe's report command (its `python` is this one), from the repository root."""
    command = list(recipe.report)
    if not command:
        print("the recipe names no report command: nothing to build", file=sys.stderr)
        return
    run(*([sys.executable, *command[1:]] if command[:1] == ["python"] else command), *report_args)


def run_local(recipe: Recipe, step: str, jobs: int, poll_s: float, report_args: list[str]) -> None:
    """Each step in turn through DVC's queue, `jobs` workers; a step that leaves an experiment missing stops."""
    for name in steps_of(recipe, step):
        if name == REPORT_STEP:
            report(recipe, report_args)
            continue
        experiments = expand(recipe, name, read_chosen())  # after the report before it, if any
        done = local_experiments()
        todo = [experiment for experiment in experiments if experiment.name not in done]
        print(f"{name}: {len(experiments) - len(todo)} of {len(experiments)} experiments already here, "
              f"{len(todo)} to run", file=sys.stderr)
        if not todo:
            continue
        start = time.monotonic()
        for experiment in todo:
            dvc("exp", "run", "--queue", "--name", experiment.name, *experiment.arguments())
        queued = time.monotonic()
        dvc("queue", "start", "-j", str(jobs))
        wait_for_queue(jobs, poll_s)
        print(f"timing: {name}: queueing {queued - start:.1f} s, running {time.monotonic() - queued:.1f} s",
              file=sys.stderr)
        if missing := [e.name for e in experiments if e.name not in local_experiments()]:
            raise SweepError(f"{name}: {len(missing)} of {len(experiments)} experiments failed: {', '.join(missing)}. "
                             f"`dvc queue logs {missing[0]}` says why; fix it, then run the same command again (it "
                             "runs only these)")


def wait_for_queue(jobs: int, poll_s: float, stalled_s: float = 120) -> None:
    """Until nothing is queued or running and every worker has exited. A worker still shutting down when the next
    step queues can take that step's first experiment and drop it (seen with DVC 3.67.1: it stays `Running` and
    no worker is left), so a step starts only once the last one's workers are gone. A worker can also die with
    experiments still queued (a race between workers in kombu's file transport, treeverse/dvc#10428; seen here,
    which left one worker of two): the missing ones are started again."""
    since = {"stalled": None, "short": None}  # since when the queue has been in that state, monotonic s
    while True:
        status = run("dvc", "queue", "status", capture=True)
        state = queue_state(status, jobs)
        if state == "done":
            return
        for name in since:
            since[name] = (since[name] or time.monotonic()) if state == name else None
        if since["stalled"] and time.monotonic() - since["stalled"] > stalled_s:
            raise SweepError(f"DVC's queue has experiments running but no worker for {stalled_s:.0f} s:\n"
                             f"{status}\n`dvc queue kill` or `dvc queue remove` them, then run the same command "
                             "again")
        # Workers just started take a few seconds to show up in the status: wait before starting more.
        if since["short"] and time.monotonic() - since["short"] > stalled_s / 4:
            print(f"DVC's queue has fewer than {jobs} workers and experiments waiting: a worker has died "
                  "(treeverse/dvc#10428); starting the missing ones", file=sys.stderr)
            dvc("queue", "start", "-j", str(jobs))  # starts only the missing ones
            since["short"] = None
        time.sleep(poll_s)


def queue_state(status: str, jobs: int) -> str:
    """What `dvc queue status` says for a sweep of `jobs` workers: `done` (nothing queued or running, no worker
    left), `short` (experiments queued, fewer than `jobs` workers), `stalled` (experiments running, none queued,
    no worker: DVC dropped them) or `busy`."""
    queued = re.search(r"\bQueued\b", status) is not None
    running = re.search(r"\bRunning\b", status) is not None
    workers = re.search(r"Worker status: (\d+) active, (\d+) idle", status)
    active, idle = (int(n) for n in workers.groups()) if workers else (0, 0)
    if not queued and not running:
        return "done" if active + idle == 0 else "busy"
    if queued and active + idle < jobs:
        return "short"
    return "stalled" if active + idle == 0 else "busy"


def run_shard(recipe: Recipe, step: str, shard: tuple[int, int], git_remote: str) -> None:
    """This machine's share (every n-th experiment of each step from the i-th) of what the git remote lacks."""
    index, count = shard
    check_reproducible_elsewhere(git_remote)
    pushed = pushed_experiments(git_remote)
    mine = [experiment for experiments in sweep_of(recipe, step).values()
            for experiment in experiments[index - 1::count] if experiment.name not in pushed]
    print(f"shard {index}/{count}: {len(mine)} experiments to run", file=sys.stderr)
    if not mine:
        return
    dvc("pull")  # the committed outputs: each experiment reruns only the stages it changes
    for experiment in mine:
        dvc("exp", "run", "--temp", "--name", experiment.name, *experiment.arguments())
    # Outputs go to the default DVC remote; the run cache lets a teammate rerun any of them without training.
    dvc("exp", "push", "--run-cache", git_remote, *(experiment.name for experiment in mine))


def work(recipe: Recipe, step: str, index: int, git_remote: str) -> None:
    """One experiment, by its step and index (a SLURM task, in a clone at the sweep's commit): pull, run, push.
    Prints each phase's wall time on stderr (benchmarks/sweep_overhead.py reads them)."""
    experiment = expand(recipe, step, read_chosen())[index - 1]
    for phase, args in (("pull", ("pull",)),
                        ("exp run", ("exp", "run", "--temp", "--name", experiment.name, *experiment.arguments())),
                        ("exp push", ("exp", "push", "--run-cache", git_remote, experiment.name))):
        start = time.monotonic()
        dvc(*args)
        print(f"timing: {phase} {time.monotonic() - start:.2f} s", file=sys.stderr, flush=True)


def collect(recipe: Recipe, step: str, git_remote: str, report_args: list[str]) -> None:
    """Pulls the experiments of `step` (or all) that are on the git remote; names the missing ones and stops
    before the report, or builds the report when none is missing."""
    sweep = sweep_of(recipe, step)
    pushed = pushed_experiments(git_remote)
    names = [experiment.name for experiments in sweep.values() for experiment in experiments]
    if present := [name for name in names if name in pushed]:
        dvc("exp", "pull", "--run-cache", git_remote, *present)
    if missing := [name for name in names if name not in pushed]:
        raise SweepError(f"{len(missing)} of {len(names)} experiments are not on {git_remote}: {', '.join(missing)}"
                         f". Submit the same command again: it runs only these. No report was built.")
    report(recipe, report_args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    lister = commands.add_parser("list", help="a step's experiments, one per line: name, then dvc exp run's args")
    lister.add_argument("step")
    lister.add_argument("--shard", type=parse_shard, default=(1, 1), help="i/n: every n-th from the i-th")
    runner = commands.add_parser("run", help="run a step, or all in the recipe's order, on a backend")
    runner.add_argument("step", help=f"a step of recipe.yaml, or {ALL}")
    runner.add_argument("--backend", choices=("local", "shard", "slurm"), default="local")
    runner.add_argument("--shard", type=parse_shard, help="with --backend shard: i/n, this machine's share")
    runner.add_argument("--jobs", type=int, default=2, help="local: queue workers (one per core)")
    runner.add_argument("--poll-s", type=float, default=30, help="local: seconds between looks at the queue")
    runner.add_argument("--slurm-config", type=Path, help="slurm: YAML with sbatch, task, collector, "
                        "max_running, scratch (docs/sharing.md)")
    runner.add_argument("--sbatch", action="append", default=[], metavar="OPTION",
                        help="slurm: an sbatch option for every job, such as --partition=short (repeatable)")
    runner.add_argument("--max-running", type=int, help="slurm: tasks of an array that may run at once")
    runner.add_argument("--wait", action="store_true", help="slurm: return when the collector ends, with its status")
    collector = commands.add_parser("collect", help="pull what the git remote has of a step (or all), then report")
    collector.add_argument("step")
    worker = commands.add_parser("work", help="(a SLURM task, in its clone) one experiment: pull, run, push")
    worker.add_argument("step")
    worker.add_argument("index", type=int)
    tasker = commands.add_parser("task", help="(sbatch runs it) clone, check out, then `work` there")
    tasker.add_argument("step")
    tasker.add_argument("--git-url", required=True)
    tasker.add_argument("--commit", required=True)
    tasker.add_argument("--scratch")
    for command in (runner, collector, worker):
        command.add_argument("--git-remote", default="origin", help="the team's git remote (default: origin)")
    for command in (runner, collector):
        command.add_argument("--report-args", type=shlex.split, default=[],
                             help="arguments for the report command, such as '--out /tmp/report'")
    return parser


def main() -> None:
    args = build_parser().parse_args()
    this_python_first_on_path()
    try:
        if args.command == "task":
            task(args.step, args.git_url, args.commit, args.scratch)
            return
        recipe = load_recipe()
        if args.command == "list":
            index, count = args.shard
            for experiments in sweep_of(recipe, args.step).values():
                for experiment in experiments[index - 1::count]:
                    print(experiment.name, shlex.join(experiment.arguments()))
        elif args.command == "work":
            work(recipe, args.step, args.index, args.git_remote)
        elif args.command == "collect":
            collect(recipe, args.step, args.git_remote, args.report_args)
        elif args.backend == "local":
            run_local(recipe, args.step, args.jobs, args.poll_s, args.report_args)
        elif args.backend == "shard":
            if args.shard is None:
                raise SweepError("--backend shard needs --shard i/n: which share of the sweep this machine runs")
            run_shard(recipe, args.step, args.shard, args.git_remote)
        else:
            site = read_site_options(args.slurm_config, args.sbatch, args.max_running)
            collect_command = [sys.executable, str(Path(__file__).resolve()), "collect", args.step,
                               "--git-remote", args.git_remote, "--report-args", shlex.join(args.report_args)]
            sys.exit(submit(sweep_of(recipe, args.step), args.git_remote, site, collect_command, args.wait))
    except (RecipeError, SweepError) as error:
        sys.exit(f"{Path(sys.argv[0]).name} {args.command}: {error}")


if __name__ == "__main__":
    main()
