"""On paper: how long the full results recipe takes on N nodes of M cores, one SLURM task per experiment, from
recipe.yaml's experiments and per-epoch and per-task costs measured on this machine (benchmarks/README.md,
"Sweeps").

    python benchmarks/recipe_estimate.py --task-overhead-s 20
    python benchmarks/recipe_estimate.py --task-overhead-s 20 --subset-epoch-s 3.0 --full-epoch-s 6.0

A task's cost is the overhead plus, for each variant it targets, that variant's epochs (params.yaml with the
experiment's -S settings; the curriculum's are epochs_per_gamma x gammas) at its training set's per-epoch rate,
on one core (tasks are submitted with --cpus-per-task=1). A task retrains every variant it targets: its clone
has no other task's models, so the experiments that only re-evaluate a model on one machine (the post-hoc taus)
train it here. Each step's tasks are placed longest first on the least loaded core (what a scheduler with a
full queue does), the steps run one after the other (`run all --backend slurm` chains their arrays), and the
report between them is left out. reports/remedies_runs.csv, the runs the recipe made, gives a check of the
training total.
"""

import argparse
import copy
import heapq
import json
import sys
from pathlib import Path

import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scripts.recipe import Experiment, expand, load_recipe, read_chosen  # noqa: E402

CLUSTERS = [(1, 2), (1, 16), (4, 16), (16, 16), (64, 16)]  # (nodes, cores per node)


def with_settings(params: dict, experiment: Experiment) -> dict:
    """params.yaml as the experiment's -S settings change it (`+variants.x` adds a variant)."""
    params = copy.deepcopy(params)
    for key, value in experiment.settings:
        *parents, leaf = key.removeprefix("+").split(".")
        node = params
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = yaml.safe_load(value) if isinstance(value, str) else value  # '[1.0]' from chosen.yaml
    return params


def training(params: dict, target: str) -> tuple[str, int]:
    """(training set, epochs) of the variant a target `evaluate@<variant>` trains."""
    variant = params["variants"][target.split("@")[1]]
    if variant["loss"] == "focal_curriculum":
        curriculum = params["losses"]["focal_curriculum"]
        return variant["train_set"], curriculum["epochs_per_gamma"] * len(curriculum["gammas"])
    return variant["train_set"], variant["epochs"]


def makespan(costs: list[float], cores: int) -> float:
    """Longest first, each onto the core that frees first: when the last task ends."""
    ends = [0.0] * min(cores, len(costs))
    for cost in sorted(costs, reverse=True):
        heapq.heappush(ends, heapq.heappop(ends) + cost)
    return max(ends)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task-overhead-s", type=float, required=True,
                        help="what a task costs beyond training (benchmarks/sweep_overhead.py)")
    parser.add_argument("--subset-epoch-s", type=float, default=3.5, help="one epoch on the subset, one core")
    parser.add_argument("--full-epoch-s", type=float, default=6.7, help="one epoch on all 60,000 images, one core")
    args = parser.parse_args()
    rate = {"subset": args.subset_epoch_s, "full": args.full_epoch_s}
    params, recipe, chosen = yaml.safe_load((ROOT / "params.yaml").read_text()), load_recipe(), read_chosen()
    steps = {step: [sum(rate[train_set] * epochs for train_set, epochs in
                        (training(with_settings(params, experiment), target) for target in experiment.targets))
                    for experiment in expand(recipe, step, chosen)] for step in recipe.steps}
    trained = sum(map(sum, steps.values()))
    tasks = sum(map(len, steps.values()))
    runs = pd.read_csv(ROOT / "reports" / "remedies_runs.csv")
    train_sets = [json.loads(p)[f"variants.{v}.train_set"] for p, v in zip(runs["params"], runs["variant"])]
    from_runs = sum(rate[train_set] * epochs for train_set, epochs in zip(train_sets, runs["epochs"]))
    print(f"{tasks} tasks in {len(steps)} steps: training {trained / 3600:.1f} core-h + overhead "
          f"{tasks * args.task_overhead_s / 3600:.1f} core-h (reports/remedies_runs.csv's {len(runs)} runs, each "
          f"trained once: {from_runs / 3600:.1f} core-h); subset {args.subset_epoch_s} s/epoch, all images "
          f"{args.full_epoch_s} s/epoch, {args.task_overhead_s} s per task\n")
    print("| nodes x cores | wall time | the longest task of each step, summed |\n|---|---:|---:|")
    floor = sum(max(costs) + args.task_overhead_s for costs in steps.values())
    for nodes, cores in CLUSTERS:
        wall = sum(makespan([cost + args.task_overhead_s for cost in costs], nodes * cores)
                   for costs in steps.values())
        print(f"| {nodes} x {cores} | {wall / 3600:.2f} h | {floor / 3600:.2f} h |")


if __name__ == "__main__":
    main()
