"""recipe.yaml read and expanded: each step -> its experiments, each a name, stage targets and `-S` settings.

The file's format is described at its top. Expansion needs no DVC: a sweep is an explicit list of values in the
file, and a value becomes the text after `-S key=` in Hydra's override syntax, which `dvc exp run -S` parses.
"""

import dataclasses
import itertools
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
RECIPE = ROOT / "recipe.yaml"
CHOSEN = ROOT / "reports" / "chosen.yaml"
REPORT_STEP = "report"  # in `order`: run the recipe's `report` command
TOP_KEYS = {"report", "order", "anchors", "steps"}
BATCH_KEYS = {"targets", "set", "chosen", "sweep", "runs"}


class RecipeError(ValueError):
    """The recipe, or what it asks of reports/chosen.yaml, is not usable; the message says where and why."""


@dataclasses.dataclass(frozen=True)
class Experiment:
    """One `dvc exp run`: its name, the params it sets ((key, value) in order) and the stages it reruns."""
    name: str
    settings: tuple[tuple[str, Any], ...]
    targets: tuple[str, ...]

    def arguments(self) -> list[str]:
        """`-S key=value ... target ...`, what follows `dvc exp run`."""
        sets = [part for key, value in self.settings for part in ("-S", f"{key}={hydra_value(value)}")]
        return sets + list(self.targets)


@dataclasses.dataclass(frozen=True)
class Recipe:
    report: tuple[str, ...]  # the command that builds the report, run from the repository root
    order: tuple[str, ...]  # what `all` runs: step names and REPORT_STEP
    steps: dict[str, list]  # step -> its batches, as in the file (checked by load_recipe)

    def step_names(self) -> list[str]:
        return list(self.steps)


def hydra_value(value: Any) -> str:
    """A YAML value in Hydra's override syntax: true/false, numbers as YAML wrote them, [a,b], {k:v}; a string
    as it is (so a string such as '[1.0]', as reports/chosen.yaml writes a list, stays a list)."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return "[" + ",".join(hydra_value(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{key}:{hydra_value(item)}" for key, item in value.items()) + "}"
    if isinstance(value, (int, float, str)):
        return str(value)
    raise TypeError(f"{value!r}: a {type(value).__name__} has no -S form")


def load_recipe(path: Path = RECIPE) -> Recipe:
    """The recipe file, checked: unknown keys, steps missing from `steps`, malformed batches are errors."""
    data = yaml.safe_load(path.read_text())
    if not isinstance(data, dict):
        raise RecipeError(f"{path}: expected a mapping with the keys {sorted(TOP_KEYS)}")
    if unknown := set(data) - TOP_KEYS:
        raise RecipeError(f"{path}: unknown top-level keys {sorted(unknown)}; allowed: {sorted(TOP_KEYS)}")
    steps = data.get("steps") or {}
    if REPORT_STEP in steps:
        raise RecipeError(f"{path}: `{REPORT_STEP}` is the report command's name in `order`; name the step otherwise")
    for step in data.get("order", []):
        if step != REPORT_STEP and step not in steps:
            raise RecipeError(f"{path}: order names {step!r}, which is not under `steps` ({', '.join(steps)})")
    for step, batches in steps.items():
        check_batches(batches, f"{path}: steps.{step}", inherited=set())
    return Recipe(tuple(data.get("report", ())), tuple(data.get("order", ())), steps)


def check_batches(batches: Any, where: str, inherited: set[str]) -> None:
    """Each batch has known keys, targets or nested runs (not both), and sets every key once."""
    if not isinstance(batches, list) or not batches:
        raise RecipeError(f"{where}: expected a non-empty list of batches, found {batches!r}")
    for index, batch in enumerate(batches):
        here = f"{where}[{index}]"
        if not isinstance(batch, dict):
            raise RecipeError(f"{here}: {batch!r}; a batch is a mapping with keys from {sorted(BATCH_KEYS)}")
        if unknown := set(batch) - BATCH_KEYS:
            raise RecipeError(f"{here}: unknown keys {sorted(unknown)}; a batch has {sorted(BATCH_KEYS)}")
        if ("targets" in batch) == ("runs" in batch):
            raise RecipeError(f"{here}: give `targets` (the stages to rerun) or nested `runs`, exactly one "
                              "(no targets would rerun every variant)")
        for key, values in (batch.get("sweep") or {}).items():
            if not isinstance(values, list) or not values:
                raise RecipeError(f"{here}.sweep.{key}: {values!r}; expected a non-empty list of values")
        keys = [*(batch.get("set") or {}), *(batch.get("sweep") or {})]
        if repeated := sorted({key for key in keys if keys.count(key) > 1} | (set(keys) & inherited)):
            raise RecipeError(f"{here}: {repeated} set twice (here and in `set`, `sweep` or an enclosing batch)")
        if "runs" in batch:
            check_batches(batch["runs"], f"{here}.runs", inherited | set(keys))


def read_chosen(path: Path = CHOSEN) -> dict[str, dict]:
    """reports/chosen.yaml: remedy -> the settings validation chose; {} when the file does not exist yet."""
    return (yaml.safe_load(path.read_text()) or {}) if path.exists() else {}


def expand(recipe: Recipe, step: str, chosen: dict[str, dict]) -> list[Experiment]:
    """The step's experiments in order, named `<step>-<index from 001>`."""
    if step not in recipe.steps:
        raise RecipeError(f"unknown step {step!r}; the recipe's steps: {', '.join(recipe.step_names())}")
    runs = [run for batch in recipe.steps[step] for run in expand_batch(batch, (), chosen, step)]
    return [Experiment(f"{step}-{index:03d}", settings, targets)
            for index, (settings, targets) in enumerate(runs, start=1)]


def expand_batch(batch: dict, outer: tuple, chosen: dict[str, dict], step: str) -> list[tuple[tuple, tuple]]:
    """(settings, targets) of each experiment of one batch, its enclosing batches' settings first."""
    fixed = outer + tuple((batch.get("set") or {}).items()) + chosen_settings(batch.get("chosen"), chosen, step)
    sweep = batch.get("sweep") or {}
    runs = []
    for values in itertools.product(*sweep.values()):  # the first key varies slowest
        settings = fixed + tuple(zip(sweep, values))
        if "runs" in batch:
            runs += [run for inner in batch["runs"] for run in expand_batch(inner, settings, chosen, step)]
        else:
            runs.append((settings, tuple(batch["targets"])))
    return runs


def chosen_settings(remedy: str | None, chosen: dict[str, dict], step: str) -> tuple:
    if remedy is None:
        return ()
    if remedy not in chosen:
        raise RecipeError(f"step {step}: reports/chosen.yaml has no {remedy!r}; run the tune steps, then "
                          "scripts/remedies_report.py, which writes it")
    return tuple(chosen[remedy].items())
