"""recipe.yaml, the plan every runner reads (scripts/recipe.py): it expands to exactly the experiments the bash
recipe it replaced did, its settings and targets exist in params.yaml and dvc.yaml, a step is added by data
alone, and a malformed recipe is refused with a message that says where."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hydra.core.override_parser.overrides_parser import OverridesParser

from scripts.recipe import RecipeError, expand, load_recipe, read_chosen

ROOT = Path(__file__).resolve().parent.parent
# Captured from the bash recipe this file replaced (`sweep.py list` at commit 4fed18b), before it was removed.
OLD_EXPANSION = json.loads((ROOT / "tests" / "data" / "recipe_expansion.json").read_text())["steps"]
PARAMS = yaml.safe_load((ROOT / "params.yaml").read_text())
STAGES = set(yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"])
PARSER = OverridesParser.create()


def as_dvc_reads_it(arguments: list[str]) -> tuple[list[str], list[tuple[str, str, str]]]:
    """(targets, sorted settings) of `dvc exp run` arguments. DVC parses each -S with Hydra's override parser;
    a setting is compared as what that parser reads (add or change, key, value with its type), so `true` and
    `True` are one value while 1 and 1.0 are two (they write different params.yaml). The -S of one run set
    distinct keys (checked), so their order does not change the run."""
    sets = [arguments[i + 1] for i, argument in enumerate(arguments) if argument == "-S"]
    targets = [a for i, a in enumerate(arguments) if a != "-S" and (i == 0 or arguments[i - 1] != "-S")]
    settings = []
    for override in PARSER.parse_overrides(sets):
        settings.append((override.type.name, override.key_or_group, json.dumps(override.value())))
    keys = [key for _, key, _ in settings]
    assert len(set(keys)) == len(keys), f"a key set twice in {arguments}"
    return targets, sorted(settings)


@pytest.mark.parametrize("step", list(OLD_EXPANSION))
def test_each_step_expands_to_the_experiments_the_bash_recipe_queued(step):
    new = expand(load_recipe(), step, read_chosen())
    assert [experiment.name for experiment in new] == [run["name"] for run in OLD_EXPANSION[step]]
    for experiment, old in zip(new, OLD_EXPANSION[step]):
        assert as_dvc_reads_it(experiment.arguments()) == as_dvc_reads_it(old["arguments"]), experiment.name


def test_the_order_runs_every_step_with_the_report_between_tuning_and_testing():
    recipe = load_recipe()
    assert recipe.order == ("tune", "tune-120", "tune-added", "report", "test", "posthoc", "ldam", "test-added",
                            "map", "report")
    assert set(recipe.order) - {"report"} == set(recipe.steps)
    assert recipe.report == ("python", "scripts/remedies_report.py")


def in_params(key: str) -> bool:
    node = PARAMS
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


@pytest.mark.parametrize("step", list(load_recipe().steps))
def test_every_set_parameter_exists_and_every_target_is_a_stage_of_a_variant(step):
    for experiment in expand(load_recipe(), step, read_chosen()):
        added = {key.removeprefix("+variants.") for key, _ in experiment.settings if key.startswith("+variants.")}
        for key, _ in experiment.settings:
            assert key.startswith("+variants.") or in_params(key), f"{experiment.name}: {key} is not in params.yaml"
        for target in experiment.targets:
            stage, _, variant = target.partition("@")
            assert stage in STAGES and (variant in PARAMS["variants"] or variant in added), f"{experiment.name}"


def test_a_step_takes_what_chosen_yaml_says_now():
    chosen = {**read_chosen(), "reduced_120 + post-hoc LA": {"evaluate.logit_adjustment_tau": 2.5}}
    posthoc = expand(load_recipe(), "posthoc", chosen)
    assert [experiment.arguments() for experiment in posthoc[:2]] == [
        ["-S", "evaluate.logit_adjustment_tau=2.5", "-S", f"seed={seed}", "evaluate@reduced_120"] for seed in (0, 1)]
    del chosen["reduced_120 + post-hoc LA"]
    with pytest.raises(RecipeError, match=r"posthoc: reports/chosen.yaml has no 'reduced_120 \+ post-hoc LA'; run "):
        expand(load_recipe(), "posthoc", chosen)


# The step the next engineer adds, by data alone: imbalance settings x remedies x seeds, each remedy a variant
# defined on the spot (`+variants.<name>={...}`) beside plain settings.
MAP_STEP = """
  sketch:
    - sweep: {subset.minority_fraction: [0.01, 0.1]}
      runs:
        - targets: [evaluate@map_ce]
          set: {+variants.map_ce: {train_set: subset, loss: cross_entropy, epochs: 10}}
          sweep: {seed: [0, 1]}
        - targets: [evaluate@map_la]
          set: {+variants.map_la: {train_set: subset, loss: logit_adjusted, epochs: 10}, losses.logit_adjusted.tau: 1.5}
          sweep: {seed: [0, 1]}
"""


def test_a_new_step_is_added_by_editing_the_data_file_alone(tmp_path):
    recipe_file = tmp_path / "recipe.yaml"
    text = (ROOT / "recipe.yaml").read_text().replace("order: [", "order: [sketch, ")
    recipe_file.write_text(text.replace("\nsteps:\n", "\nsteps:" + MAP_STEP))
    recipe = load_recipe(recipe_file)
    assert recipe.order[0] == "sketch"
    listed = [(experiment.name, experiment.arguments()) for experiment in expand(recipe, "sketch", {})]
    ce = "+variants.map_ce={train_set:subset,loss:cross_entropy,epochs:10}"
    la = "+variants.map_la={train_set:subset,loss:logit_adjusted,epochs:10}"
    assert listed == [
        ("sketch-001", ["-S", "subset.minority_fraction=0.01", "-S", ce, "-S", "seed=0", "evaluate@map_ce"]),
        ("sketch-002", ["-S", "subset.minority_fraction=0.01", "-S", ce, "-S", "seed=1", "evaluate@map_ce"]),
        ("sketch-003", ["-S", "subset.minority_fraction=0.01", "-S", la, "-S", "losses.logit_adjusted.tau=1.5", "-S",
                     "seed=0", "evaluate@map_la"]),
        ("sketch-004", ["-S", "subset.minority_fraction=0.01", "-S", la, "-S", "losses.logit_adjusted.tau=1.5", "-S",
                     "seed=1", "evaluate@map_la"]),
        ("sketch-005", ["-S", "subset.minority_fraction=0.1", "-S", ce, "-S", "seed=0", "evaluate@map_ce"]),
        ("sketch-006", ["-S", "subset.minority_fraction=0.1", "-S", ce, "-S", "seed=1", "evaluate@map_ce"]),
        ("sketch-007", ["-S", "subset.minority_fraction=0.1", "-S", la, "-S", "losses.logit_adjusted.tau=1.5", "-S",
                     "seed=0", "evaluate@map_la"]),
        ("sketch-008", ["-S", "subset.minority_fraction=0.1", "-S", la, "-S", "losses.logit_adjusted.tau=1.5", "-S",
                     "seed=1", "evaluate@map_la"]),
    ]
    # What DVC reads from them: a variant added as a mapping, and a plain number.
    targets, settings = as_dvc_reads_it(listed[2][1])
    assert ("ADD", "variants.map_la", json.dumps({"train_set": "subset", "loss": "logit_adjusted", "epochs": 10})
            ) in settings and ("CHANGE", "losses.logit_adjusted.tau", "1.5") in settings


@pytest.mark.parametrize("step, problem", [
    ("    - {targets: [evaluate@reduced], colour: red}", r"steps.bad\[0\]: unknown keys \['colour'\]"),
    ("    - {set: {seed: 1}}", r"steps.bad\[0\]: give `targets` .* or nested `runs`"),
    ("    - {targets: [evaluate@reduced], set: {seed: 1}, sweep: {seed: [2, 3]}}", r"\['seed'\] set twice"),
    ("    - {set: {seed: 1}, runs: [{targets: [evaluate@reduced], sweep: {seed: [2]}}]}", r"\['seed'\] set twice"),
    ("    - {targets: [evaluate@reduced], sweep: {seed: 3}}", r"steps.bad\[0\].sweep.seed: 3; expected a non-empty"),
])
def test_a_malformed_batch_is_refused_with_where_and_why(tmp_path, step, problem):
    path = tmp_path / "recipe.yaml"
    path.write_text(f"order: [bad]\nsteps:\n  bad:\n{step}\n")
    with pytest.raises(RecipeError, match=problem):
        load_recipe(path)


def test_an_order_naming_a_missing_step_is_refused(tmp_path):
    path = tmp_path / "recipe.yaml"
    path.write_text("order: [tune, report]\nsteps:\n  tuning:\n    - {targets: [evaluate@reduced]}\n")
    with pytest.raises(RecipeError, match=r"order names 'tune', which is not under `steps` \(tuning\)"):
        load_recipe(path)


def test_list_prints_a_shard_of_a_step_and_an_unknown_step_is_an_error():
    sweep = [sys.executable, str(ROOT / "scripts" / "sweep.py"), "list"]
    listed = subprocess.run([*sweep, "--shard", "2/2", "posthoc"], capture_output=True, text=True, check=True)
    assert listed.stdout.splitlines() == [
        f"posthoc-00{i} -S evaluate.logit_adjustment_tau=1.5 -S seed={i - 1} evaluate@reduced_120" for i in (2, 4)]
    unknown = subprocess.run([*sweep, "tuning"], capture_output=True, text=True)
    assert unknown.returncode != 0 and "unknown step 'tuning'; the recipe's steps: tune, tune-120," in unknown.stderr
