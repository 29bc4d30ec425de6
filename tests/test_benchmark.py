"""benchmarks/train_throughput.py on 300 real images: the project's Paddle measurement in this process, the
whole script with --no-peer (worker processes, one and one per core, the table), and the PyTorch peer where
PyTorch is installed (CI does not install it)."""

import argparse
import math
import re
import subprocess
import sys

import pytest

from benchmarks import train_throughput as bench

IMAGES = 300
SCRIPT_ARGS = ["--images", str(IMAGES), "--epochs", "1", "--rounds", "1"]
TABLE_ROW = re.compile(r"^\| ((?:project|peer) [^|]+) \| ([\d,]+) \|", re.MULTILINE)  # setup, train images/s


def assert_rate(value) -> None:
    assert isinstance(value, float) and math.isfinite(value) and value > 0, value


@pytest.fixture(scope="module")
def paddle_result(raw_dir) -> dict:
    workload = bench.load_workload(raw_dir, IMAGES, evaluate=True)
    return bench.measure(bench.paddle_side(workload), workload, epochs=1)


def test_paddle_measurement_runs_the_projects_training_epoch(paddle_result):
    assert_rate(paddle_result["train"])
    assert_rate(paddle_result["eval"])
    assert paddle_result["OMP_NUM_THREADS"]  # Paddle sets it at import when it is unset


def test_script_measures_one_paddle_process_and_one_per_core(raw_dir, project_root):
    run = subprocess.run([sys.executable, "benchmarks/train_throughput.py", "--no-peer", *SCRIPT_ARGS,
                          "--raw-dir", str(raw_dir)], cwd=project_root, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "| setup | train images/s | per round | eval images/s |" in run.stdout
    rows = {setup: float(rate.replace(",", "")) for setup, rate in TABLE_ROW.findall(run.stdout)}
    assert len(rows) == 3 and all(setup.startswith("project (Paddle)") for setup in rows), run.stdout
    assert any("processes at once" in setup for setup in rows), run.stdout
    assert all(rate > 0 for rate in rows.values()), run.stdout
    # What reproducibility costs: the pinned branch against MKL's own, measured in the same run.
    unpinned = rows["project (Paddle), 1 process, Paddle's default threads, MKL_CBWR=AUTO (unpinned)"]
    pinned = rows["project (Paddle), 1 process, Paddle's default threads"]
    printed = re.search(r"MKL's own branch on this CPU, 1 process: .* = ([\d.]+)x", run.stdout)
    assert printed and float(printed[1]) == pytest.approx(pinned / unpinned, abs=0.011), run.stdout


def test_the_unpinned_worker_runs_on_mkls_own_branch(raw_dir):
    args = argparse.Namespace(images=IMAGES, epochs=1, rounds=1, raw_dir=raw_dir)
    [unpinned] = bench.run_setup(bench.Setup("paddle", processes=1, mkl_branch="AUTO"), args)
    [pinned] = bench.run_setup(bench.Setup("paddle", processes=1), args)
    assert unpinned["MKL_CBWR"] == unpinned["select_device"]["mkl_cbwr"] == "AUTO"
    assert pinned["MKL_CBWR"] == pinned["select_device"]["mkl_cbwr"] == "AVX2"


def test_torch_worker_and_ratio_table(raw_dir, paddle_result):
    pytest.importorskip("torch")
    args = argparse.Namespace(images=IMAGES, epochs=1, rounds=1, raw_dir=raw_dir)
    [torch_result] = bench.run_setup(bench.Setup("torch", processes=1, threads=1), args)
    assert torch_result["threads"] == 1
    assert_rate(torch_result["train"])
    assert_rate(torch_result["eval"])
    # The report's layout and arithmetic on one real measurement per side (the whole script takes ~40 s here).
    measured = {"paddle": paddle_result, "torch": torch_result}
    results = {setup: [[measured[setup.side]] * setup.processes] for setup in bench.round_setups(2, peer=True)}
    report = bench.render_report(results, args, cores=2)
    ratio = paddle_result["train"] / torch_result["train"]
    assert f"| per core: Paddle, 1 process / torch, 1 thread | {paddle_result['train']:,.0f} " in report
    assert report.count(f"| {ratio:.2f}x |") == 3  # each setup's rate is the one measurement, times its processes
    assert "| whole machine: Paddle, 2 processes / the peer's best: torch, 2 processes at once, 1 thread each |" \
        in report
