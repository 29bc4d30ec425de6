"""A recipe step of scripts/queue_results.sh spread over several machines (docs/sharing.md, "Sweeps").

    python scripts/sweep.py list test                # the experiments the step queues, one per line, numbered
    python scripts/sweep.py run --shard 2/4 test     # this machine's quarter: run them, push them to origin
    python scripts/sweep.py collect [REPORT ARGS]    # pull every pushed experiment, run remedies_report.py

Each machine works in its own clone of the same commit, with the team's git remote (`origin`) and DVC remote.
`run` takes the experiments the step would queue (queue_results.sh's `queue` calls, expanded like DVC expands
`-S a=1,2`), keeps every n-th one from the shard's index, runs each with `dvc exp run --temp` (from HEAD,
leaving the workspace alone) and pushes them with their outputs and the run cache. An experiment is named
after the step and its index in the whole step, `test-007`: the same name on one machine or on eight, and
never on two machines at once (two clones that push one name diverge, and `dvc exp push` refuses).
"""

import argparse
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RECIPE = ROOT / "scripts" / "queue_results.sh"
# queue_results.sh runs this instead of `dvc exp run --queue` when the variable is set (see its `queue`).
QUEUE_HOOK = "QUEUE_RESULTS_QUEUE"
REPORT = ROOT / "scripts" / "remedies_report.py"


def parse_shard(text: str) -> tuple[int, int]:
    """`i/n` -> (i, n), 1 <= i <= n."""
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--shard {text!r}: expected i/n, such as 1/4") from None
    if not 1 <= index <= count:
        raise argparse.ArgumentTypeError(f"--shard {text}: i must be in 1..n")
    return index, count


def queued_calls(step: str, recipe: Path) -> list[list[str]]:
    """The arguments of each `queue` call the recipe makes for `step`, in order, without queueing anything."""
    if any(char.isspace() for char in sys.executable + __file__):
        raise SystemExit(f"{sys.executable} {__file__}: the recipe splits {QUEUE_HOOK} on spaces; use a Python "
                         "and a clone whose paths have none")
    env = {**os.environ, QUEUE_HOOK: f"{sys.executable} {__file__} emit"}
    result = subprocess.run(["bash", str(recipe), step], env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"{recipe} {step} exited {result.returncode}:\n{result.stderr}")
    return [json.loads(line) for line in result.stdout.splitlines() if line.startswith("[")]


def expand(arguments: list[str]) -> list[list[str]]:
    """One `queue` call -> the `dvc exp run` arguments of each experiment it stands for (its sweep expanded)."""
    from dvc.utils.cli_parse import to_path_overrides
    from dvc.utils.hydra import get_hydra_sweeps

    sets, targets, rest = [], [], iter(arguments)
    for argument in rest:
        if argument in ("-S", "--set-param"):
            sets.append(next(rest))
        elif argument.startswith("-"):
            raise SystemExit(f"queue {shlex.join(arguments)}: {argument} is not handled here; only -S and "
                             "targets are (add it to scripts/sweep.py)")
        else:
            targets.append(argument)
    if not sets:
        return [targets]
    sweeps = get_hydra_sweeps(to_path_overrides(sets))
    return [[option for path, overrides in sweep.items() for value in overrides
             for option in ("-S", value if path == "params.yaml" else f"{path}:{value}")] + targets
            for sweep in sweeps]


def experiments(step: str, recipe: Path) -> list[tuple[str, list[str]]]:
    """(name, `dvc exp run` arguments) of every experiment of the step, in the recipe's order."""
    runs = [run for call in queued_calls(step, recipe) for run in expand(call)]
    return [(f"{step}-{index + 1:03d}", run) for index, run in enumerate(runs)]


def dvc(*args: str) -> None:
    print("+ dvc", shlex.join(args), file=sys.stderr, flush=True)
    subprocess.run(["dvc", *args], cwd=ROOT, check=True)


def run_shard(step: str, recipe: Path, shard: tuple[int, int], git_remote: str, push: bool) -> None:
    index, count = shard
    mine = experiments(step, recipe)[index - 1::count]
    dvc("pull")  # the committed outputs: each experiment reruns only the stages it changes
    for name, arguments in mine:
        dvc("exp", "run", "--temp", "--name", name, *arguments)
    if push and mine:
        # Outputs go to the default DVC remote; the run cache lets a teammate rerun any of them without training.
        dvc("exp", "push", "--run-cache", git_remote, *(name for name, _ in mine))


def collect(git_remote: str, report_args: list[str]) -> None:
    # --all-commits: `dvc exp pull` otherwise takes only the experiments based on this clone's HEAD.
    dvc("exp", "pull", "--all-commits", "--run-cache", git_remote)
    subprocess.run([sys.executable, str(REPORT), *report_args], cwd=ROOT, check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("list", "run"):
        command = commands.add_parser(name)
        command.add_argument("step", help="a step of the recipe (queue_results.sh: tune, test, ...)")
        command.add_argument("--recipe", type=Path, default=RECIPE)
        command.add_argument("--shard", type=parse_shard, default=(1, 1), help="i/n: every n-th from the i-th")
    commands.choices["run"].add_argument("--git-remote", default="origin")
    commands.choices["run"].add_argument("--no-push", action="store_true", help="run only (one machine)")
    collector = commands.add_parser("collect")
    collector.add_argument("--git-remote", default="origin")
    if sys.argv[1:2] == ["emit"]:  # queue_results.sh's hook: one queue call's arguments as a JSON line
        print(json.dumps(sys.argv[2:]))
        return
    args, report_args = parser.parse_known_args()  # collect passes the rest to remedies_report.py
    if report_args and args.command != "collect":
        parser.error(f"unrecognized arguments: {' '.join(report_args)}")
    if args.command == "list":
        index, count = args.shard
        for name, arguments in experiments(args.step, args.recipe)[index - 1::count]:
            print(name, shlex.join(arguments))
    elif args.command == "run":
        run_shard(args.step, args.recipe, args.shard, args.git_remote, push=not args.no_push)
    else:
        collect(args.git_remote, report_args)


if __name__ == "__main__":
    main()
