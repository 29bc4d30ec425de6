"""scripts/queue_results.sh against params.yaml and dvc.yaml: every experiment it queues sets parameters that
exist (DVC would refuse the run only when the queue reaches it) and targets stages that exist. Read from the
script's text, the way bash expands it; the queueing itself is dvc's, exercised in test_pipeline."""

import re
import shlex
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "queue_results.sh"
PARAMS = yaml.safe_load((ROOT / "params.yaml").read_text())


def queued_commands() -> dict[str, list[list[str]]]:
    """The arguments of each `queue` call, per case of the script, with its variables expanded."""
    text = SCRIPT.read_text().replace("\\\n", " ")
    variables = dict(re.findall(r'^(\w+)="([^"]*)"$', text, flags=re.M)) | dict(
        re.findall(r"^(\w+)='([^']*)'$", text, flags=re.M))
    commands, case = {}, None
    for line in text.splitlines():
        if match := re.match(r"^([\w-]+)\)$", line.strip()):
            case = match[1]
        elif line.strip().startswith("queue ") and case:
            for name, value in variables.items():
                line = line.replace(f'"${name}"', shlex.quote(value)).replace(f"${name}", value)
            line = line.replace('"${tune[@]}"', "-S validation.tune=true -S seed=0")
            commands.setdefault(case, []).append(shlex.split(line)[1:])
    return commands


def lookup(key: str) -> bool:
    node = PARAMS
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


COMMANDS = queued_commands()


def test_the_script_has_its_four_cases():
    assert set(COMMANDS) == {"tune", "tune-120", "test", "posthoc"}
    assert all(COMMANDS.values())


@pytest.mark.parametrize("case", sorted(COMMANDS))
def test_every_set_parameter_exists_and_every_target_is_a_stage(case):
    for arguments in COMMANDS[case]:
        sets = [arguments[i + 1] for i, argument in enumerate(arguments) if argument == "-S"]
        targets = [argument for argument in arguments[1:] if "@" in argument and not argument.startswith("-")
                   and arguments[arguments.index(argument) - 1] != "-S"]
        added = {key.split("=", 1)[0].removeprefix("+variants.") for key in sets if key.startswith("+variants.")}
        for setting in sets:
            key = setting.split("=", 1)[0]
            assert key.startswith("+") or lookup(key), f"{case}: {key} is not in params.yaml"
        assert targets, f"{case}: {arguments} names no stage, so it would rerun every variant"
        for target in targets:
            stage, variant = target.split("@")
            assert stage in ("train", "evaluate") and (variant in PARAMS["variants"] or variant in added), target


def test_without_a_case_it_says_how_to_call_it():
    result = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True)
    assert result.returncode == 2 and "usage" in result.stderr
