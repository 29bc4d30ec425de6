"""scripts/queue_results.sh run through bash, with a `dvc` first on PATH that records the arguments bash gave
it: every experiment it queues sets parameters that exist (DVC would refuse the run only when the queue
reaches it) and targets stages of dvc.yaml; the test step queues what reports/chosen.yaml says validation
chose; `all` runs the steps in the recipe's order. The queueing itself is dvc's, exercised in test_pipeline."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "queue_results.sh"
PARAMS = yaml.safe_load((ROOT / "params.yaml").read_text())
STAGES = set(yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"])
CHOSEN = yaml.safe_load((ROOT / "reports" / "chosen.yaml").read_text())


@pytest.fixture(scope="module")
def calls(tmp_path_factory) -> dict[str, list[list[str]]]:
    """{step: the argument lists of each `dvc` call (and `report` for the report script)} from running it."""
    bin_dir = tmp_path_factory.mktemp("bin")
    log = bin_dir / "calls.jsonl"
    (bin_dir / "dvc").write_text(f"#!{sys.executable}\nimport json, os, sys\n"
                                 "open(os.environ['CALLS'], 'a').write(json.dumps(sys.argv[1:]) + '\\n')\n")
    # The report is recorded, not run; any other python (the helper that reads chosen.yaml) is the real one.
    (bin_dir / "python").write_text(f'#!/bin/bash\nif [ "$1" = scripts/remedies_report.py ]; then\n'
                                    f'  echo \'["report"]\' >> "$CALLS"; exit 0\nfi\nexec {sys.executable} "$@"\n')
    for tool in ("dvc", "python"):
        (bin_dir / tool).chmod(0o755)
    environment = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "CALLS": str(log)}
    recorded = {}
    for step in ("tune", "tune-120", "tune-added", "report", "test", "posthoc", "ldam", "test-added", "all"):
        log.write_text("")
        result = subprocess.run(["bash", str(SCRIPT), step], env=environment, capture_output=True, text=True)
        assert result.returncode == 0, f"{step}: {result.stderr}"
        recorded[step] = [json.loads(line) for line in log.read_text().splitlines()]
    return recorded


def in_params(key: str) -> bool:
    node = PARAMS
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def queued(calls: list[list[str]]) -> list[list[str]]:
    return [call[3:] for call in calls if call[:3] == ["exp", "run", "--queue"]]


@pytest.mark.parametrize("step", ["tune", "tune-120", "tune-added", "test", "posthoc", "ldam", "test-added"])
def test_every_set_parameter_exists_and_every_target_is_a_stage(calls, step):
    assert queued(calls[step]), f"{step} queued nothing"
    for arguments in queued(calls[step]):
        sets = [arguments[i + 1] for i, argument in enumerate(arguments) if argument == "-S"]
        targets = [a for i, a in enumerate(arguments) if a != "-S" and (i == 0 or arguments[i - 1] != "-S")]
        added = {setting.split("=", 1)[0].removeprefix("+variants.") for setting in sets
                 if setting.startswith("+variants.")}
        for setting in sets:
            key = setting.split("=", 1)[0]
            assert key.startswith("+variants.") or in_params(key), f"{step}: {key} is not in params.yaml"
        assert targets, f"{step}: {arguments} names no stage, so it would rerun every variant"
        for target in targets:
            stage, _, variant = target.partition("@")
            assert stage in STAGES and (variant in PARAMS["variants"] or variant in added), f"{step}: {target}"


@pytest.mark.parametrize("remedy", ["ldam_drw", "class_balanced", "focal_fixed", "focal"])
def test_the_test_step_queues_what_validation_chose(calls, remedy):
    wanted = {f"{key}={value}" for key, value in CHOSEN[remedy].items()}
    runs = [arguments for arguments in queued(calls["test"]) if f"evaluate@{remedy}" in arguments]
    assert any(wanted <= set(arguments) for arguments in runs), f"{remedy}: {wanted} in none of {runs}"


def test_posthoc_uses_the_chosen_tau(calls):
    (arguments,) = queued(calls["posthoc"])
    tau = CHOSEN["reduced_120 + post-hoc LA"]["evaluate.logit_adjustment_tau"]
    assert f"evaluate.logit_adjustment_tau={tau}" in arguments and "evaluate@reduced_120" in arguments


def test_each_step_runs_its_queue_and_all_runs_the_steps_in_order(calls):
    assert calls["report"] == [["report"]]
    for step in ("tune", "tune-120", "tune-added", "test", "posthoc", "ldam", "test-added"):
        # started, then asked until nothing is queued or running, then once more for failures
        assert calls[step][-3:] == [["queue", "start", "-j", "2"], ["queue", "status"], ["queue", "status"]], step
    order = ("tune", "tune-120", "tune-added", "report", "test", "posthoc", "ldam", "test-added", "report")
    expected = [call for step in order for call in calls[step]]
    assert calls["all"] == expected


def test_without_a_step_it_says_how_to_call_it():
    result = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True)
    assert result.returncode == 2 and "usage" in result.stderr
