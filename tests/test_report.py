"""scripts/remedies_report.py on hand-made runs and `dvc exp show` rows: the 95% interval, the equal-budget
references, paired differences and the validation choice against hand computations; one run counted once;
the report rebuilt from the runs file alone, without dvc. The run on real experiments is in test_pipeline."""

import importlib.util
import math
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

SCRIPT = Path(__file__).parents[1] / "scripts" / "remedies_report.py"
POSTHOC_TAU = "params.yaml:evaluate.logit_adjustment_tau"
T_975_2 = 4.302653  # Student t quantile 0.975 with 2 degrees of freedom, from a printed table
PARAMS = {"variants": {"baseline": {"train_set": "full", "loss": "cross_entropy", "epochs": 10},
                       "reduced": {"train_set": "subset", "loss": "cross_entropy", "epochs": 10},
                       "reduced_120": {"train_set": "subset", "loss": "cross_entropy", "epochs": 120},
                       "focal": {"train_set": "subset", "loss": "focal_curriculum"},
                       "ldam_drw": {"train_set": "subset", "loss": "ldam_drw", "epochs": 10},
                       "resampled": {"train_set": "subset", "loss": "cross_entropy", "sampler": "class_balanced",
                                     "epochs": 10}},
          "losses": {"cross_entropy": {}, "ldam_drw": {"scale": 30.0},
                     "focal_curriculum": {"gammas": [1, 2], "epochs_per_gamma": 60, "detach_factor": False}},
          "subset": {"minority_classes": [0, 1, 2, 3, 4], "fraction": 0.1, "mode": "fixed"}}
SETTINGS = {"baseline": ("full", "cross_entropy", "shuffle"), "reduced": ("subset", "cross_entropy", "shuffle"),
            "focal": ("subset", "focal_curriculum", "shuffle"), "ldam_drw": ("subset", "ldam_drw", "shuffle"),
            "resampled": ("subset", "cross_entropy", "class_balanced")}


@pytest.fixture(scope="module")
def report():
    spec = importlib.util.spec_from_file_location("remedies_report", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(label: str, seed: int, accuracy: float, *, epochs: int = 10, protocol: str | None = None,
        evaluated_on: str = "test", settings: tuple[str, str, str] | None = None) -> dict:
    """One row of the runs file; train_set, loss and sampler from SETTINGS by the label's variant name."""
    train_set, loss, sampler = settings or SETTINGS[label.split(" [")[0].removesuffix("_120")]
    return {"variant": label, "protocol": protocol or ("full" if train_set == "full" else "fixed"),
            "evaluated_on": evaluated_on, "seed": seed, "epochs": epochs, "train_set": train_set, "loss": loss,
            "sampler": sampler, "accuracy": accuracy, "balanced_accuracy": accuracy, "digits_0_4": accuracy - 0.01,
            "digits_5_9": accuracy + 0.01, "posthoc_la_accuracy": accuracy, "posthoc_la_0_4": accuracy,
            "distinct_0_4_seen": 3059, "keep_minority_every": 1, "test_loss": accuracy / 7 + seed,
            "experiment": f"e{seed}"}


def runs_frame(report, *rows: dict) -> pd.DataFrame:
    return report.merge_runs(report.no_runs(), report._typed(pd.DataFrame(rows)), PARAMS)


def metrics(name: str, *, accuracy: float, seed: int, keep: int = 1, epochs: int = 10,
            evaluated_on: str = "test") -> dict:
    """The `dvc exp show` columns of one variant's metrics file, plus evaluated_on as with_evaluated_on adds it."""
    prefix = f"metrics/{name}.json:"
    values = {"accuracy": accuracy, "balanced_accuracy": accuracy, "minority_accuracy": 0.5,
              "majority_accuracy": 0.9, "logit_adjusted.accuracy": accuracy, "logit_adjusted.minority_accuracy": 0.5,
              "distinct_minority_seen": 100, "epochs": epochs, "seed": seed, "keep_minority_every": keep,
              "test_loss": accuracy / 7, "evaluated_on": evaluated_on}
    return {prefix + key: value for key, value in values.items()}


def row(experiment: str, *parts: dict, **params) -> dict:
    merged = {"Experiment": experiment, "rev": experiment}
    for part in parts:
        merged.update(part)
    return {**merged, **params}


def test_interval_half_width_by_hand(report):
    mean, half_width = report.mean_and_interval([0.90, 0.92, 0.94])
    assert mean == pytest.approx(0.92)
    assert half_width == pytest.approx(T_975_2 * 0.02 / math.sqrt(3), rel=1e-6)  # sample std = 0.02
    assert math.isnan(report.mean_and_interval([0.9])[1])  # one seed: no interval


def test_test_table_shows_the_interval_and_none_for_one_seed(report):
    runs = runs_frame(report, *(run("reduced", seed, accuracy) for seed, accuracy in enumerate([0.90, 0.92, 0.94])),
                      run("baseline", 0, 0.97))
    table = report.test_table(runs, PARAMS, report.validation_table(runs)).set_index("variant")
    assert table.loc["reduced", "accuracy_ci95"] == pytest.approx(T_975_2 * 0.02 / math.sqrt(3), rel=1e-6)
    text = report.markdown(table.reset_index(), report.paired_table(runs, table.reset_index(), report.validation_table(runs)),
                           report.validation_table(runs))
    assert "| reduced | fixed | 3 | 10 | paper default | 92.00 ± 4.97 |" in text  # 4.3027 * 2 / sqrt(3) points
    assert "| baseline | full | 1 | 10 | paper default | 97.00 | " in text


def test_a_120_epoch_remedy_uses_the_120_epoch_references(report):
    runs = runs_frame(report, run("baseline", 0, 0.97), run("reduced", 0, 0.91),
                      run("baseline_120", 0, 0.99, epochs=120, settings=SETTINGS["baseline"]),
                      run("reduced_120", 0, 0.95, epochs=120), run("focal", 0, 0.98, epochs=120),
                      run("resampled", 0, 0.94))
    table = report.test_table(runs, PARAMS, report.validation_table(runs)).set_index("variant")
    assert table.loc["focal", "reference"] == "baseline_120 / reduced_120"
    assert table.loc["focal", "gap_recovered"] == pytest.approx((0.98 - 0.95) / (0.99 - 0.95))
    assert table.loc["resampled", "reference"] == "baseline / reduced"
    assert table.loc["resampled", "gap_recovered"] == pytest.approx((0.94 - 0.91) / (0.97 - 0.91))
    assert table.loc["baseline_120", "status"] == "reference"  # added by an experiment, the 120-epoch full_ref
    assert list(table.index)[:3] == ["baseline", "baseline_120", "reduced"]  # beside the variant it extends


def test_a_missing_reference_is_named_not_replaced(report):
    runs = runs_frame(report, run("baseline", 0, 0.97), run("reduced", 0, 0.91),
                      run("reduced_120", 0, 0.95, epochs=120), run("focal", 0, 0.98, epochs=120))
    table = report.test_table(runs, PARAMS, report.validation_table(runs))
    focal = table.set_index("variant").loc["focal"]
    assert focal["reference"] == "no full-data 120-epoch run / reduced_120"
    assert math.isnan(focal["gap_recovered"])
    best_120 = report.paired_table(runs, table, report.validation_table(runs)).set_index("comparison").loc["best 120-epoch remedy vs full data"]
    assert best_120["b"] == "no full-data 120-epoch run" and best_120["paired_seeds"] == 0


def test_paired_differences_by_hand(report):
    # focal - reduced_120 per seed: +1.0, +2.0, (seed 2 has no control); mean 1.5, std 0.7071, t(1) = 12.7062
    runs = runs_frame(report, *(run("focal", seed, accuracy, epochs=120) for seed, accuracy in
                                enumerate([0.97, 0.98, 0.99])),
                      *(run("reduced_120", seed, accuracy, epochs=120) for seed, accuracy in enumerate([0.96, 0.96])),
                      *(run("focal [losses.focal_curriculum.detach_factor=true]", seed, accuracy, epochs=120)
                        for seed, accuracy in enumerate([0.965, 0.99])))
    table = report.test_table(runs, PARAMS, report.validation_table(runs))
    paired = report.paired_table(runs, table, report.validation_table(runs)).set_index(["comparison", "a"])
    curriculum = paired.loc[("focal curriculum vs cross-entropy, same epochs", "focal (fixed)")]
    assert curriculum["paired_seeds"] == 2
    assert curriculum["difference_mean"] == pytest.approx(1.5)
    assert curriculum["difference_ci95"] == pytest.approx(12.7062047 * 0.70710678 / math.sqrt(2), rel=1e-6)
    detached = paired.loc[("focal factor detached vs not",
                           "focal [losses.focal_curriculum.detach_factor=true] (fixed)")]
    assert detached["b"] == "focal (fixed)"
    assert detached["difference_mean"] == pytest.approx((-0.5 + 1.0) / 2)  # (96.5 - 97) and (99 - 98)


def test_a_run_carried_by_several_experiments_counts_once(report):
    seed0 = metrics("reduced", accuracy=0.92, seed=0)
    rows = [row("workspace", seed0), row("HEAD", seed0), row("seed-1", seed0),
            row("seed-1b", metrics("reduced", accuracy=0.93, seed=1))]
    found = report.collect_runs(rows, PARAMS)
    committed = report.collect_runs([row("older", seed0)], PARAMS)  # the same run, already in the runs file
    runs = report.merge_runs(committed, found, PARAMS)
    assert sorted(runs["seed"]) == [0, 1]
    assert runs.set_index("seed").loc[0, "experiment"] == "older"


def test_validation_and_test_runs_of_one_seed_are_two_runs(report):
    rows = [row("HEAD", metrics("ldam_drw", accuracy=0.92, seed=0)),
            row("tune", metrics("ldam_drw", accuracy=0.95, seed=0, evaluated_on="validation"))]
    runs = report.merge_runs(report.no_runs(), report.collect_runs(rows, PARAMS), PARAMS)
    assert sorted(runs["evaluated_on"]) == ["test", "validation"]


def test_a_seed_rerun_with_other_results_keeps_the_run_found_now(report, capsys):
    committed = report.collect_runs([row("old-code", metrics("reduced", accuracy=0.92, seed=0))], PARAMS)
    found = report.collect_runs([row("workspace", metrics("reduced", accuracy=0.93, seed=0))], PARAMS)
    runs = report.merge_runs(committed, found, PARAMS)
    assert runs["accuracy"].tolist() == [0.93]
    assert "dropped reduced (fixed, test) seed 0 of old-code" in capsys.readouterr().err


def test_labels_say_what_differs_from_params_yaml(report):
    rows = [row("HEAD", metrics("focal", accuracy=0.96, seed=0, epochs=120)),
            row("g3", metrics("focal", accuracy=0.95, seed=0, epochs=120),
                **{"losses.focal_curriculum.gammas": "[1, 2, 3]"}),
            row("det", metrics("focal", accuracy=0.94, seed=0, epochs=120),
                **{"losses.focal_curriculum.detach_factor": "True"}),
            row("old", metrics("focal", accuracy=0.93, seed=1, epochs=120),
                **{"losses.focal_curriculum.detach_factor": "None"}),  # a commit from before the key
            row("pb", metrics("focal", accuracy=0.98, seed=0, keep=10, epochs=120)),
            row("b120", metrics("baseline_120", accuracy=0.99, seed=0, epochs=120),
                **{"variants.baseline_120.train_set": "full", "variants.baseline_120.loss": "cross_entropy",
                   "variants.baseline_120.epochs": 120.0})]
    runs = report.collect_runs(rows, PARAMS)
    assert runs["variant"].tolist() == ["focal", "focal [losses.focal_curriculum.gammas=[1.0, 2.0, 3.0]]",
                                        "focal [losses.focal_curriculum.detach_factor=true]", "focal", "focal",
                                        "baseline_120"]
    assert runs["protocol"].tolist() == ["fixed"] * 4 + ["per_batch", "full"]
    assert runs.iloc[-1][["train_set", "loss", "sampler"]].tolist() == ["full", "cross_entropy", "shuffle"]


@pytest.mark.parametrize("gammas", [[1.0, 2.0], "[1, 2]", "[1.0, 2.0]"])
def test_same_setting_written_as_int_float_or_text_is_the_same_remedy(report, gammas):
    rows = [row("HEAD", metrics("focal", accuracy=0.96, seed=0),
                **{"losses.focal_curriculum.gammas": gammas, "losses.focal_curriculum.epochs_per_gamma": 60.0})]
    assert report.collect_runs(rows, PARAMS)["variant"].tolist() == ["focal"]


def test_validation_choice_by_balanced_accuracy_labels_the_test_rows(report):
    sweep = [run(f"ldam_drw [losses.ldam_drw.scale={scale}]", seed, accuracy, evaluated_on="validation")
             for scale, accuracies in (("10.0", [0.95, 0.96]), ("20.0", [0.94, 0.95])) for seed, accuracy in
             enumerate(accuracies)]
    sweep[2]["balanced_accuracy"] = sweep[3]["balanced_accuracy"] = 0.99  # s = 20: lower accuracy, better balanced
    runs = runs_frame(report, *sweep, run("ldam_drw", 0, 0.10), run("ldam_drw [losses.ldam_drw.scale=20.0]", 0, 0.96),
                      run("ldam_drw [losses.ldam_drw.scale=10.0]", 0, 0.97), run("resampled", 0, 0.96),
                      run("resampled [variants.resampled.epochs=120.0]", 0, 0.97, epochs=120),
                      run("focal [losses.focal_curriculum.detach_factor=true]", 0, 0.97, epochs=120),
                      run("focal [losses.focal_curriculum.detach_factor=true, losses.focal_curriculum.gammas=[1.0]]",
                          0, 0.96, epochs=120))
    validation = report.validation_table(runs).set_index("variant")
    assert validation["chosen"].to_dict() == {"ldam_drw [losses.ldam_drw.scale=10.0]": False,
                                              "ldam_drw [losses.ldam_drw.scale=20.0]": True}
    status = report.test_table(runs, PARAMS, validation.reset_index()).set_index("variant")["status"].to_dict()
    # s = 10 was picked on the test set before (CHOSEN_ON_TEST), and validation did not choose it.
    assert status == {"ldam_drw": "paper default", "ldam_drw [losses.ldam_drw.scale=20.0]": "validation-tuned",
                      "ldam_drw [losses.ldam_drw.scale=10.0]": "exploratory (chosen on test)",
                      "resampled": "paper default",
                      "resampled [variants.resampled.epochs=120.0]": "exploratory (chosen on test)",
                      "focal [losses.focal_curriculum.detach_factor=true]": "the report's gradient",
                      "focal [losses.focal_curriculum.detach_factor=true, losses.focal_curriculum.gammas=[1.0]]":
                          "other"}


def test_rebuilt_from_the_runs_file_alone_without_dvc(report, tmp_path, monkeypatch):
    """A fresh clone: params.yaml and reports/remedies_runs.csv, no experiments; dvc must not even be imported.
    The runs file is the old one's format: no evaluated_on (all test), no settings columns, train_seconds."""
    monkeypatch.chdir(tmp_path)
    Path("params.yaml").write_text(yaml.safe_dump(PARAMS))
    old = pd.DataFrame([run("baseline", seed, accuracy) for seed, accuracy in enumerate([0.97, 0.98])]
                       + [run("ldam_drw [losses.ldam_drw.scale=10.0]", 0, 0.96)])
    old = old.drop(columns=["evaluated_on", "train_set", "loss", "sampler"]).assign(train_seconds=40.0)
    Path("out").mkdir()
    old.to_csv("out/remedies_runs.csv", index=False)
    monkeypatch.setitem(sys.modules, "dvc.api", None)  # an import of dvc.api would raise ImportError
    monkeypatch.setattr(sys, "argv", ["remedies_report.py", "--no-dvc", "--out", "out"])
    report.main()
    runs = pd.read_csv("out/remedies_runs.csv")
    assert "train_seconds" not in runs and set(runs["evaluated_on"]) == {"test"}
    assert runs.set_index("variant").loc["ldam_drw [losses.ldam_drw.scale=10.0]", "loss"] == "ldam_drw"
    table = pd.read_csv("out/remedies.csv").set_index("variant")
    assert table.loc["baseline", "seeds"] == 2 and table.loc["baseline", "accuracy_mean"] == pytest.approx(0.975)
    assert "| baseline | full | 2 | 10 | paper default | 97.50 ± " in Path("out/remedies.md").read_text()
    assert Path("out/remedies.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    first = Path("out/remedies_runs.csv").read_bytes()
    report.main()
    assert Path("out/remedies_runs.csv").read_bytes() == first  # a rebuild changes no byte


def test_evaluated_on_is_read_from_the_metrics_file_of_each_run(report, tmp_path, monkeypatch):
    """`dvc exp show` leaves text metrics out: the workspace's file is read from disk, a commit's from git."""
    monkeypatch.chdir(tmp_path)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    Path("metrics").mkdir()
    Path("metrics/ldam_drw.json").write_text('{"accuracy": 0.95, "evaluated_on": "validation"}')
    Path("metrics/reduced.json").write_text('{"accuracy": 0.92}')  # from before evaluated_on: the test set
    subprocess.run([*git, "add", "metrics"], check=True)
    subprocess.run([*git, "commit", "-qm", "runs"], check=True)
    Path("metrics/ldam_drw.json").write_text('{"accuracy": 0.91, "evaluated_on": "test"}')
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    rows = [{"rev": rev, "metrics/ldam_drw.json:accuracy": 0.9, "metrics/reduced.json:accuracy": 0.9,
             "metrics/focal.json:accuracy": None} for rev in ("workspace", commit)]
    workspace, committed = report.with_evaluated_on(rows)
    assert workspace["metrics/ldam_drw.json:evaluated_on"] == "test"
    assert committed["metrics/ldam_drw.json:evaluated_on"] == "validation"
    assert committed["metrics/reduced.json:evaluated_on"] == "test"
    assert "metrics/focal.json:evaluated_on" not in committed  # not run there


def test_posthoc_tau_swept_on_validation_becomes_a_row_of_its_own(report):
    """Every tau shares one model (same test loss) yet is its own run; validation chooses the tau by post-hoc
    balanced accuracy, and the test table shows the chosen tau's post-hoc metrics as a tuned remedy."""
    params = {**PARAMS, "evaluate": {"logit_adjustment_tau": 1.0}}
    rows = []
    for tau, (posthoc, balanced) in {None: (0.95, 0.93), "2.0": (0.94, 0.96), "3.0": (0.80, 0.90)}.items():
        changes = {POSTHOC_TAU: tau or 1}  # dvc shows every param; 1 is the default 1.0
        for evaluated_on in ("validation", "test"):
            part = metrics("reduced", accuracy=0.92, seed=0, evaluated_on=evaluated_on)
            part |= {"metrics/reduced.json:logit_adjusted.accuracy": posthoc,
                     "metrics/reduced.json:logit_adjusted.balanced_accuracy": balanced,
                     "metrics/reduced.json:logit_adjusted.majority_accuracy": 0.97}
            rows.append(row(f"{tau}-{evaluated_on}", part, **changes))
    # the same variant under the report's protocol, whose tau nobody tuned
    rows.append(row("per-batch", metrics("reduced", accuracy=0.93, seed=0, keep=10), **{POSTHOC_TAU: 2.0}))
    runs = report.merge_runs(report.no_runs(), report.collect_runs(rows, params), params)
    assert sorted(set(runs["variant"])) == ["reduced", "reduced [evaluate.logit_adjustment_tau=2.0]",
                                            "reduced [evaluate.logit_adjustment_tau=3.0]"]
    assert len(runs) == 7  # one model, three taus, two splits: six runs, none merged away; and per_batch
    validation = report.validation_table(runs).set_index("variant")
    assert validation["chosen"].to_dict() == {
        "reduced": False, "reduced + post-hoc LA": False,
        "reduced [evaluate.logit_adjustment_tau=2.0] + post-hoc LA": True,
        "reduced [evaluate.logit_adjustment_tau=3.0] + post-hoc LA": False}
    assert validation.loc["reduced [evaluate.logit_adjustment_tau=2.0] + post-hoc LA", "accuracy_mean"] == 0.94
    table = report.test_table(runs, params, validation.reset_index())
    # the choice was made on the fixed subset: no post-hoc row for the per_batch run
    assert table[["variant", "protocol"]].values.tolist() == [
        ["reduced", "fixed"], ["reduced [evaluate.logit_adjustment_tau=2.0] + post-hoc LA", "fixed"]]
    table = table.set_index("variant")
    chosen = table.loc["reduced [evaluate.logit_adjustment_tau=2.0] + post-hoc LA"]
    assert (chosen["status"], chosen["accuracy_mean"], chosen["digits_5_9_mean"]) == ("validation-tuned", 0.94, 0.97)
    assert math.isnan(chosen["posthoc_la_accuracy_mean"])
    assert table.loc["reduced", "accuracy_mean"] == 0.92


def test_readme_copy_is_rewritten_between_its_markers_only(report, tmp_path):
    readme = tmp_path / "README.md"
    begin, end = report.README_MARKERS
    readme.write_text(f"# Title\n\nintro\n{begin}\nold table\n{end}\n\nafter\n")
    assert report.update_readme(readme, "| new | table |\n")
    assert readme.read_text() == f"# Title\n\nintro\n{begin}\n| new | table |\n{end}\n\nafter\n"
    readme.write_text("no markers\n")
    assert not report.update_readme(readme, "x\n") and readme.read_text() == "no markers\n"
    assert not report.update_readme(tmp_path / "missing.md", "x\n")


def test_a_tau_sweeps_copies_of_other_variants_are_their_parents_runs(report):
    """An experiment that sweeps the post-hoc tau of one variant carries the parent's file of every other
    variant: the label says tau = 2, the file was made at tau = 1. Its post-hoc results give it away."""
    params = {**PARAMS, "evaluate": {"logit_adjustment_tau": 1.0}}
    parent = metrics("ldam_drw", accuracy=0.94, seed=0)
    rows = [row("sweep-tau2", parent, **{POSTHOC_TAU: 2.0}), row("workspace", parent, **{POSTHOC_TAU: 1.0})]
    runs = report.merge_runs(report.no_runs(), report.collect_runs(rows, params), params)
    assert runs[["variant", "experiment"]].values.tolist() == [["ldam_drw", "workspace"]]
