"""scripts/remedies_report.py on hand-made `dvc exp show` rows: one run counted once, other settings labelled,
mean ± std and the gap recovered computed by hand. The end-to-end run on real experiments is in test_pipeline."""

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parents[1] / "scripts" / "remedies_report.py"
PARAMS = {"variants": {"baseline": {"train_set": "full", "loss": "cross_entropy", "epochs": 10},
                       "reduced": {"train_set": "subset", "loss": "cross_entropy", "epochs": 10},
                       "focal": {"train_set": "subset", "loss": "focal_curriculum"}},
          "losses": {"cross_entropy": {}, "focal_curriculum": {"gammas": [1, 2], "epochs_per_gamma": 1}}}


@pytest.fixture(scope="module")
def report():
    spec = importlib.util.spec_from_file_location("remedies_report", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def metrics(name: str, *, accuracy: float, seed: int, keep: int = 1, minority: float = 0.5) -> dict:
    """The `dvc exp show` columns of one variant's metrics files."""
    prefix = f"metrics/{name}.json:"
    return {f"{prefix}accuracy": accuracy, f"{prefix}balanced_accuracy": accuracy,
            f"{prefix}minority_accuracy": minority, f"{prefix}majority_accuracy": 0.9,
            f"{prefix}logit_adjusted.accuracy": accuracy, f"{prefix}logit_adjusted.minority_accuracy": minority,
            f"{prefix}distinct_minority_seen": 100,
            f"{prefix}epochs": 10, f"{prefix}seed": seed, f"{prefix}keep_minority_every": keep,
            f"{prefix}test_loss": accuracy / 7, f"metrics/train/{name}_timing.json:seconds": 40.0}


def row(experiment: str, *parts: dict, **params) -> dict:
    merged = {"Experiment": experiment, "rev": experiment}
    for part in parts:
        merged.update(part)
    return {**merged, **params}


def test_a_run_carried_by_several_experiments_counts_once(report):
    seed0 = metrics("reduced", accuracy=0.92, seed=0)
    rows = [row("workspace", seed0), row("HEAD", seed0), row("seed-1", seed0),
            row("seed-1b", metrics("reduced", accuracy=0.93, seed=1))]
    runs = report.collect_runs(rows, PARAMS)
    assert sorted(runs["seed"]) == [0, 1]


def test_runs_without_a_recorded_seed_are_skipped(report):
    old = metrics("reduced", accuracy=0.92, seed=0)
    old["metrics/reduced.json:seed"] = None  # a metrics file from before seeds were recorded
    with pytest.raises(SystemExit, match="no finished runs"):
        report.collect_runs([row("HEAD", old)], PARAMS)


def test_other_settings_make_another_remedy_and_per_batch_another_protocol(report):
    rows = [row("HEAD", metrics("focal", accuracy=0.96, seed=0)),
            row("g3", metrics("focal", accuracy=0.95, seed=0), **{"losses.focal_curriculum.gammas": [1, 2, 3]}),
            row("pb", metrics("focal", accuracy=0.98, seed=0, keep=10))]
    runs = report.collect_runs(rows, PARAMS).set_index("variant")
    assert set(runs.index) == {"focal", "focal [losses.focal_curriculum.gammas=[1, 2, 3]]"}
    assert sorted(runs.loc["focal", "protocol"]) == ["fixed", "per_batch"]


@pytest.mark.parametrize("gammas", [[1.0, 2.0], "[1, 2]", "[1.0, 2.0]"])
def test_same_setting_written_as_int_float_or_text_is_the_same_remedy(report, gammas):
    rows = [row("HEAD", metrics("focal", accuracy=0.96, seed=0),
                **{"losses.focal_curriculum.gammas": gammas, "losses.focal_curriculum.epochs_per_gamma": 1.0})]
    assert report.collect_runs(rows, PARAMS)["variant"].tolist() == ["focal"]


def test_summary_mean_std_and_gap_recovered_by_hand(report):
    rows = [row(f"s{seed}", metrics("baseline", accuracy=base, seed=seed), metrics("reduced", accuracy=red, seed=seed),
                metrics("focal", accuracy=foc, seed=seed))
            for seed, (base, red, foc) in enumerate([(0.98, 0.90, 0.95), (0.96, 0.92, 0.93)])]
    summary = report.summarize(report.collect_runs(rows, PARAMS), list(PARAMS["variants"])).set_index("variant")
    assert summary["seeds"].tolist() == [2, 2, 2]
    assert summary.loc["focal", "accuracy_mean"] == pytest.approx(0.94)
    assert summary.loc["focal", "accuracy_std"] == pytest.approx(0.0141421356, rel=1e-6)  # sample std of .95, .93
    # (0.94 - 0.91) / (0.97 - 0.91) = 0.5
    assert summary.loc["focal", "gap_recovered"] == pytest.approx(0.5)
    assert summary.loc["reduced", "gap_recovered"] == pytest.approx(0.0)
    assert summary.loc["baseline", "gap_recovered"] == pytest.approx(1.0)


def test_markdown_table_shows_percent_mean_plus_minus_std(report):
    rows = [row(f"s{seed}", metrics("baseline", accuracy=base, seed=seed), metrics("reduced", accuracy=red, seed=seed))
            for seed, (base, red) in enumerate([(0.98, 0.90), (0.96, 0.92)])]
    table = report.markdown_table(report.summarize(report.collect_runs(rows, PARAMS), list(PARAMS["variants"])))
    lines = table.splitlines()
    assert lines[0].startswith("| variant | protocol | seeds |")
    assert lines[2].startswith("| baseline | full | 2 | 10 | 97.00 ± 1.41 |") and lines[2].endswith("| 98.7 |")
    assert lines[3].startswith("| reduced | fixed | 2 | 10 | 91.00 ± 1.41 |") and "| 0% |" in lines[3]


def test_plot_writes_a_png(report, tmp_path):
    rows = [row("s0", metrics("baseline", accuracy=0.97, seed=0), metrics("reduced", accuracy=0.9, seed=0))]
    summary = report.summarize(report.collect_runs(rows, PARAMS), list(PARAMS["variants"]))
    report.plot(summary, tmp_path / "remedies.png")
    assert (tmp_path / "remedies.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
