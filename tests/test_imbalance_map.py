"""The imbalance map (scripts/report/imbalance_map.py and its markdown, figure and README block) on synthetic run
records: the gains and their intervals against hand computations, the pairing by seed, the figure's cells and
texts, the README block, and the remedies report unchanged by the map's runs."""

import json
import math
import sys
from pathlib import Path

import matplotlib.text
import pandas as pd
import pytest
import yaml

from scripts import remedies_report as report
from scripts.report import imbalance_map as IM, map_findings as F, map_markdown as MM, runs as R
from scripts.report.map_figure import map_figure
from test_report import PARAMS, T_975_1, T_975_2, exp_row, run

SETTINGS = {"map_none": ("shuffle", 0), "map_over": ("class_balanced", 0), "map_under": ("undersample", 0),
            "map_best": ("class_balanced", 1)}  # the recipe's variants: sampler, shifts


def map_run(variant: str, seed: int, fraction: float, minority: int, accuracy: float, *,
            thresholded: float | None = None, auc: float = 0.99, tau: float = 1.0) -> dict:
    """A map run's row of the runs table, as evaluate writes its record (map_full: no subset params)."""
    sampler, shift = SETTINGS.get(variant, ("shuffle", 0))
    record = {f"variants.{variant}.{key}": value for key, value in
              {"train_set": "full" if variant == IM.FULL else "subset", "loss": "cross_entropy", "epochs": 10,
               "images_per_epoch": 30000, "sampler": sampler}.items()}
    record |= {"train.augment_shift_px": shift, "train.batch_size": 100}
    if variant != IM.FULL:
        record |= {"subset.fraction": fraction, "subset.minority_classes": minority, "subset.mode": "fixed",
                   "subset.profile": "step"}
    return {"variant": variant, "seed": seed, "validation": False, "per_batch": False, "tau": tau,
            "params": json.dumps(record, sort_keys=True), "accuracy": accuracy, "balanced_accuracy": accuracy,
            "minority_accuracy": accuracy, "majority_accuracy": accuracy, "roc_auc": auc,
            "logit_adjusted.accuracy": accuracy if thresholded is None else thresholded,
            "logit_adjusted.balanced_accuracy": accuracy, "logit_adjusted.minority_accuracy": accuracy,
            "logit_adjusted.majority_accuracy": accuracy, "distinct_minority_seen": 0, "epochs": 10,
            "test_loss": 0.1, "experiment": "e"}


def table(*rows: dict) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=R.COLUMNS)


# Two cells (rho 100, mu 0.5 and rho 10, mu 0.2), two seeds. In cell A (0.01, 5), per seed:
#   none 0.80 / 0.90 (thresholded 0.84 / 0.92; AUC 0.950 / 0.970), over 0.86 / 0.93 (thresholded 0.87 / 0.95;
#   AUC 0.960 / 0.975), under 0.82 / 0.90 (AUC 0.940 / 0.972). Cell B (0.1, 2): none 0.95 / 0.96,
#   over 0.96 / 0.96. The rows come in an order that pairs them wrongly if paired by position.
CELL_A, CELL_B = (0.01, 5), (0.1, 2)
SMALL = table(
    map_run("map_over", 1, *CELL_A, 0.93, thresholded=0.95, auc=0.975),
    map_run("map_none", 0, *CELL_A, 0.80, thresholded=0.84, auc=0.950),
    map_run("map_under", 0, *CELL_A, 0.82, auc=0.940), map_run("map_under", 1, *CELL_A, 0.90, auc=0.972),
    map_run("map_none", 1, *CELL_A, 0.90, thresholded=0.92, auc=0.970),
    map_run("map_over", 0, *CELL_A, 0.86, thresholded=0.87, auc=0.960),
    map_run("map_none", 0, *CELL_B, 0.95), map_run("map_none", 1, *CELL_B, 0.96),
    map_run("map_over", 1, *CELL_B, 0.96), map_run("map_over", 0, *CELL_B, 0.96),
    map_run("map_full", 0, math.nan, 0, 0.975, auc=0.999), map_run("map_full", 1, math.nan, 0, 0.985, auc=0.998),
    run("reduced", 0, 0.91))  # a remedies run: not the map's


def test_the_runs_table_carries_roc_auc_and_reads_a_file_written_before_it(tmp_path):
    found = R.collect_runs([exp_row("map-001", map_run("map_over", 0, *CELL_A, 0.9, auc=0.987))])
    assert found["roc_auc"].tolist() == [0.987]
    older = tmp_path / "runs.csv"
    table(run("reduced", 0, 0.91)).drop(columns="roc_auc").to_csv(older, index=False)
    runs = R.read_runs(older)
    assert list(runs.columns) == R.COLUMNS and math.isnan(runs["roc_auc"].iloc[0])


def hand_interval(differences: list[float], t: float) -> tuple[float, float]:
    mean = sum(differences) / len(differences)
    std = math.sqrt(sum((d - mean) ** 2 for d in differences) / (len(differences) - 1))
    return mean, t * std / math.sqrt(len(differences))


def test_gains_are_paired_by_seed_with_their_interval_by_hand():
    imbalance_map = IM.build_map(SMALL)
    over = IM.gain(imbalance_map, "map_over", False, "accuracy").loc[CELL_A]
    # paired: seed 0 86 - 80 = 6, seed 1 93 - 90 = 3; by position, 93 - 80 and 86 - 90: 13 and -4, whose mean
    # is the same 4.5 (a cell's mean gain does not depend on the pairing) and whose interval is not
    mean, half = hand_interval([6, 3], T_975_1)
    assert (over["seeds"], over["mean"], over["ci95"]) == (2, pytest.approx(4.5), pytest.approx(half, rel=1e-6))
    assert half == pytest.approx(T_975_1 * 2.1213203 / math.sqrt(2), rel=1e-6)  # std of (6, 3) = 2.1213
    over_thresholded = IM.gain(imbalance_map, "map_over", True, "accuracy").loc[CELL_A]
    assert over_thresholded["mean"] == pytest.approx((7 + 5) / 2)  # 87 - 80, 95 - 90: against none unthresholded
    alone = IM.gain(imbalance_map, "map_none", True, "accuracy").loc[CELL_A]
    assert alone["mean"] == pytest.approx((4 + 2) / 2)
    under_auc = IM.gain(imbalance_map, "map_under", False, "roc_auc").loc[CELL_A]
    assert under_auc["mean"] == pytest.approx((-1.0 + 0.2) / 2)  # 94.0 - 95.0, 97.2 - 97.0
    assert IM.gain(imbalance_map, "map_over", False, "accuracy").loc[CELL_B, "mean"] == pytest.approx((1 + 0) / 2)
    assert IM.gain(imbalance_map, "map_under", False, "accuracy").index.tolist() == [CELL_A]  # none in cell B
    assert not (imbalance_map.gains["thresholded"] & (imbalance_map.gains["metric"] == "roc_auc")).any()


def test_levels_and_the_full_data_reference_by_hand():
    imbalance_map = IM.build_map(SMALL)
    cells = imbalance_map.cells.set_index([*IM.CELL, "metric"])
    assert cells.loc[(*CELL_A, "accuracy"), "mean"] == pytest.approx(85.0)
    assert cells.loc[(*CELL_A, "accuracy"), "ci95"] == pytest.approx(hand_interval([80, 90], T_975_1)[1])
    assert imbalance_map.full.loc["accuracy", "mean"] == pytest.approx(98.0)
    assert imbalance_map.full.loc["roc_auc", "mean"] == pytest.approx(99.85)
    assert imbalance_map.budget == (10, 30000)
    assert IM.grid(imbalance_map) == ([0.1, 0.01], [2, 5])  # rho 10, 100; mu 0.2, 0.5


def test_a_seed_without_its_no_remedy_run_is_left_out_and_three_seeds_take_t_with_two_degrees():
    rows = [map_run("map_none", s, *CELL_A, a) for s, a in ((0, 0.80), (1, 0.90), (2, 0.85))]
    rows += [map_run("map_over", s, *CELL_A, a) for s, a in ((0, 0.86), (1, 0.93), (2, 0.90), (3, 0.99))]
    over = IM.gain(IM.build_map(table(*rows)), "map_over", False, "accuracy").loc[CELL_A]
    mean, half = hand_interval([6, 3, 5], T_975_2)
    assert (over["seeds"], over["mean"], over["ci95"]) == (3, pytest.approx(mean), pytest.approx(half, rel=1e-6))


def test_runs_the_map_does_not_pair_are_left_out_or_refused():
    validation = {**map_run("map_over", 0, *CELL_A, 0.99), "validation": True}
    other_tau = map_run("map_over", 1, *CELL_A, 0.99, tau=2.0)
    imbalance_map = IM.build_map(table(*SMALL.to_dict("records"), validation, other_tau))
    assert IM.gain(imbalance_map, "map_over", False, "accuracy").loc[CELL_A, "mean"] == pytest.approx(4.5)
    twin = map_run("map_over", 0, *CELL_A, 0.70)
    twin["params"] = twin["params"].replace('"train.batch_size": 100', '"train.batch_size": 50')
    with pytest.raises(ValueError, match="runs of map_over seed 0 at subset.fraction 0.01, 5 minority digits"):
        IM.build_map(table(*SMALL.to_dict("records"), twin))
    longer = {**map_run("map_over", 0, *CELL_B, 0.99), "epochs": 20}
    with pytest.raises(ValueError, match="2 budgets"):
        IM.build_map(table(map_run("map_none", 0, *CELL_B, 0.9), longer))
    assert IM.build_map(table(run("reduced", 0, 0.91))) is None
    only_none = IM.build_map(table(map_run("map_none", 0, *CELL_B, 0.9, thresholded=0.92)))  # thresholding alone
    assert set(zip(only_none.gains["variant"], only_none.gains["thresholded"])) == {("map_none", True)}
    text = F.findings_sentences(only_none)
    assert "*thresholding alone* has the largest mean gain over no remedy in 1 of 1 cells, up to +2.0 points" in text
    assert "(full data not run)" in text and "by the paired difference, it raises" in text  # one seed: its sign
    assert "oversampling dominates" not in text  # no run to test it on
    texts = [t.get_text() for axis in map_figure(only_none).axes for t in axis.texts]
    assert texts.count("not run") == 9  # 12 panels of one cell; run: the two levels and thresholding alone
    listed = map_run("map_none", 0, 0.01, 0, 0.9)
    listed["params"] = listed["params"].replace('"subset.minority_classes": 0',
                                                '"subset.minority_classes": "[0, 1, 2]"')
    assert IM.map_runs(table(listed))["minority"].tolist() == [3]  # a list of digits counts its digits


def full_grid(over_auc=0.004, under_auc=-0.002, thresholding=0.02) -> pd.DataFrame:
    """Nine cells, three seeds: no remedy loses 2 points per step in rho and 1 per step in mu; oversampling
    gains 3 + 0.5 x seed, undersampling 1, best 4 points; AUCs and thresholding as given."""
    rows = [map_run("map_full", s, math.nan, 0, 0.98, auc=0.999) for s in range(3)]
    for i, fraction in enumerate((0.1, 0.01, 0.001)):
        for j, minority in enumerate((2, 5, 8)):
            for s in range(3):
                none = 0.95 - 0.02 * i - 0.01 * j - 0.001 * s
                for variant, g, auc in (("map_none", 0, 0), ("map_over", 0.03 + 0.005 * s, over_auc),
                                        ("map_under", 0.01, under_auc), ("map_best", 0.04, over_auc)):
                    rows.append(map_run(variant, s, fraction, minority, none + g, auc=0.98 + auc,
                                        thresholded=none + g + thresholding * (-1 if variant == "map_under" else 1)))
    return table(*rows)


def test_the_comparison_with_buda_counts_cells_and_steps():
    checks = F.buda_comparison(IM.build_map(full_grid()))
    assert [agrees for _, agrees, _ in checks] == [True] * 5
    assert "falls at 6 of 6 steps to a larger rho and 6 of 6 to a larger mu" in checks[0][2]
    # oversampling's AUC ahead by 0.6 points on every seed: its interval is above 0 in every cell
    assert checks[1][2] == ("by the 95% interval of the paired difference, oversampling's ROC AUC gain is above "
                            "undersampling's in 9 of 9 cells and below in 0")
    assert [numbers.split("difference, it ")[1] for _, _, numbers in checks[2:]] == [
        "raises accuracy in 9 of 9 cells without a remedy and lowers it in 0",
        "raises accuracy in 9 of 9 cells after oversampling and lowers it in 0",
        "raises accuracy in 0 of 9 cells after undersampling and lowers it in 9"]
    bumped = full_grid()  # no remedy at rho 100, mu 0.5 better than at rho 10, mu 0.5 and at rho 100, mu 0.2
    middle = (bumped["variant"] == "map_none") & bumped["params"].str.contains(
        '"subset.fraction": 0.01, "subset.minority_classes": 5,')
    bumped.loc[middle, "accuracy"] += 0.05
    assert F.harm_steps(IM.build_map(bumped)) == {"rho": (5, 6), "mu": (5, 6)}
    reversed_ = F.buda_comparison(IM.build_map(full_grid(over_auc=-0.002, under_auc=0.004, thresholding=-0.02)))
    assert [agrees for _, agrees, _ in reversed_] == [True, False, False, False, False]
    assert "above undersampling's in 0 of 9 cells and below in 9" in reversed_[1][2]
    on_par = full_grid(over_auc=0.0, under_auc=0.0)  # equal AUCs: on a par everywhere, so no dominance
    assert "above undersampling's in 0 of 9 cells and below in 0" in F.buda_comparison(IM.build_map(on_par))[1][2]


def test_a_difference_counts_by_its_interval_and_by_its_sign_with_one_seed():
    difference = pd.DataFrame({"mean": [1.0, -1.0, 0.5, 0.2, -0.1], "ci95": [0.5, 0.5, 1.0, math.nan, 0.3]},
                              index=["above", "below", "crosses 0", "one seed", "crosses 0 below"])
    above, below = F.verdicts(difference)
    assert list(above) == ["above", "one seed"] and list(below) == ["below"]


def test_the_sentences_say_which_remedy_gains_most_and_name_the_protocol_differences():
    text = F.findings_sentences(IM.build_map(full_grid(over_auc=-0.002, under_auc=0.004)))
    # best gains 4 points everywhere, + thresholding 2 more: its thresholded version leads in all nine cells
    assert "*oversampling + shifts of ±1 px + thresholding* has the largest mean gain over no remedy in 9 of 9 " \
           "cells, up to +6.0 ± 0.0 points at rho" in text
    assert "(ratio rho 10, 100, 1000 by minority share mu 0.2, 0.5, 0.8, 3 seeds, 10 epochs of 30,000 images)" in text
    assert "As [Buda, Maki & Mazurowski (2018)](https://arxiv.org/abs/1710.05381) found, imbalance hurts" in text
    assert "Unlike what they found, the map does not show that oversampling dominates" in text
    assert ": their protocol differed (a ReLU LeNet-5, 640,000 training images to this map's 300,000, a balanced " \
           "test set, 50 repetitions to 3 seeds, majority classes capped at 5,000)." in text
    assert "(no remedy's accuracy falls at 6 of 6 steps" in text  # the counts, in reports/map.md
    brief = F.findings_sentences(IM.build_map(full_grid(over_auc=-0.002, under_auc=0.004)), numbers=False)
    assert "imbalance hurts, more with a larger ratio and more minority classes; thresholding alone" in brief
    assert "steps" not in brief and "of 9 cells and" not in brief  # README's block leaves the counts to map.md


def test_the_figure_has_nine_cells_per_panel_with_their_texts():
    figure = map_figure(IM.build_map(full_grid()))
    panels = [axis for axis in figure.axes if axis.get_title()]
    assert len(panels) == 12  # per row: no remedy's level (or thresholding alone) and three remedies
    for axis in panels:
        assert len([t for t in axis.texts if t.get_text()]) == 9, axis.get_title()
    over = next(axis for axis in panels if axis.get_title() == "oversampling")  # the first: accuracy
    # seeds gain 3, 3.5, 4 points: mean 3.5, half-width 4.303 x 0.5 / sqrt(3)
    assert {t.get_text() for t in over.texts} == {f"+3.5\n±{T_975_2 * 0.5 / math.sqrt(3):.1f}"}
    assert [t.get_text() for t in over.get_xticklabels()] == ["0.2", "0.5", "0.8"]
    level = next(axis for axis in panels if axis.get_title() == "no remedy: accuracy, %")
    assert [t.get_text() for t in level.get_yticklabels()] == ["10", "100", "1000"]  # shared along the row
    assert level.texts[0].get_text() == f"94.9\n±{hand_interval([95, 94.9, 94.8], T_975_2)[1]:.1f}"
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    for text in figure.findobj(matplotlib.text.Text):
        if text.get_visible() and text.get_text():
            extent = text.get_window_extent(renderer)
            box = figure.bbox
            assert box.x0 <= extent.x0 and extent.x1 <= box.x1 and box.y0 <= extent.y0 and extent.y1 <= box.y1, \
                text.get_text()


def test_a_missing_cell_is_drawn_as_not_run():
    rows = [r for r in full_grid().to_dict("records") if not (r["variant"] == "map_under" and '"subset.fraction": '
                                                                '0.001, "subset.minority_classes": 8' in r["params"])]
    under = next(axis for axis in map_figure(IM.build_map(table(*rows))).axes if axis.get_title() == "undersampling")
    assert [t.get_text() for t in under.texts].count("not run") == 1


def test_the_report_writes_the_map_and_its_readme_block_and_leaves_the_remedies_report_as_it_was(tmp_path,
                                                                                             monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("params.yaml").write_text(yaml.safe_dump(PARAMS))
    remedies = [run("baseline", s, a) for s, a in enumerate([0.97, 0.98])] + [run("reduced", 0, 0.91),
                                                                           run("class_balanced", 0, 0.95)]
    Path("out").mkdir()
    pd.DataFrame(remedies, columns=R.COLUMNS).to_csv("out/remedies_runs.csv", index=False)
    monkeypatch.setattr(sys, "argv", ["remedies_report.py", "--no-dvc", "--out", "out"])
    report.main()
    assert Path("out/map.md").read_text() == MM.NOT_RUN and not Path("out/map.png").exists()
    before = {p.name: p.read_bytes() for p in Path("out").iterdir() if p.name not in ("remedies_runs.csv", "map.md")}
    pd.DataFrame(remedies + full_grid().to_dict("records"), columns=R.COLUMNS).to_csv("out/remedies_runs.csv",
                                                                                       index=False)
    report.main()
    after = {p.name: p.read_bytes() for p in Path("out").iterdir()}
    assert {name: after[name] for name in before} == before  # the map's runs change no remedies output
    table_text = " ".join(after["map.md"].decode().split())  # tabulate pads the cells
    assert after["map.png"].startswith(b"\x89PNG") and "| 1000 | 0.8 | 3 | 88.90 ± " in table_text
    readme = Path("README.md")
    readme.write_text("intro\n\n<!-- map.md: begin -->\nold\n<!-- map.md: end -->\n\n<!-- findings.md: begin -->\n")
    blocks = report.build_map(R.with_settings(R.read_runs(Path("out/remedies_runs.csv")), PARAMS), Path("out"))
    assert report.update_readme(readme, blocks) == ["map.md"]
    block = readme.read_text().split("<!-- map.md: begin -->\n")[1].split("<!-- map.md: end -->")[0]
    assert block.startswith("**The imbalance map**") and "![" in block and "(reports/map.png)" in block
    assert "[reports/map.md](reports/map.md)" in block and readme.read_text().startswith("intro\n\n<!-- map.md")
    assert readme.read_text().endswith("<!-- map.md: end -->\n\n<!-- findings.md: begin -->\n")
