"""scripts/render_figures.py: the README's figures from the committed logs, drawn with matplotlib. The error
rates and the label spacing against hand computations; each figure from real logs with one line (or one numbered
cell) per thing it shows; the PNGs a pure function of the logs."""

import shutil

import numpy as np
import pandas as pd
import pytest

from scripts import render_figures as F
from scripts.report.confusion import NUMBERED, error_rates, errors_figure
from scripts.report.curves import curves_figure, spread


def test_error_rates_by_hand():
    # digit 0: 3 images, 1 read as a 2; digit 1: 1 image, right; digit 2: 2 images, 1 read as a 0
    pairs = pd.DataFrame({"actual": [0, 0, 0, 1, 2, 2], "predicted": [0, 2, 0, 1, 0, 2]})
    assert error_rates(pairs, classes=3) == pytest.approx(np.array([[200 / 3, 0, 100 / 3], [0, 100, 0], [50, 0, 50]]))


def test_spread_moves_labels_apart_only_as_far_as_needed():
    assert spread([0.5, 0.52, 0.9], 0.06) == pytest.approx([0.5, 0.56, 0.9])
    assert spread([0.99, 0.98], 0.06) == pytest.approx([1.0, 0.94])  # kept in the axes, ranks kept
    assert spread([0.2], 0.06) == [0.2]


@pytest.fixture
def metrics(tmp_path, project_root):
    """A copy of the committed logs the figures read (metrics/train/*.csv, metrics/confusion/*.csv)."""
    for kind, variants in (("train", F.COLOURS), ("confusion", F.CONFUSIONS)):
        (tmp_path / "metrics" / kind).mkdir(parents=True)
        for variant in variants:
            shutil.copy(project_root / "metrics" / kind / f"{variant}.csv", tmp_path / "metrics" / kind)
    return tmp_path / "metrics"


def test_curves_have_one_line_and_one_end_label_per_variant_each_in_its_own_colour(metrics):
    logs = {variant: pd.read_csv(metrics / "train" / f"{variant}.csv") for variant in F.COLOURS}
    axis, = curves_figure(logs, "loss", title="loss", colours=F.COLOURS, scale="log").axes
    assert [line.get_color() for line in axis.lines] == list(F.COLOURS.values())
    assert len(set(F.COLOURS.values())) == len(F.COLOURS)
    assert {text.get_text(): text.get_color() for text in axis.texts} == F.COLOURS
    assert axis.get_yscale() == "log" and axis.get_legend() is None


def test_errors_number_each_cell_from_the_threshold_and_each_diagonal_cell(metrics):
    confusions = {variant: pd.read_csv(metrics / "confusion" / f"{variant}.csv") for variant in F.CONFUSIONS}
    figure = errors_figure(confusions)
    panels = [axis for axis in figure.axes if axis.get_title()]
    assert [axis.get_title() for axis in panels] == list(F.CONFUSIONS)
    for axis, pairs in zip(panels, confusions.values()):
        rates = error_rates(pairs)
        numbered = 10 + int((rates[~np.eye(10, dtype=bool)] >= NUMBERED).sum())
        assert len(axis.texts) == numbered, axis.get_title()
        assert 0 < numbered - 10 < 90  # some errors numbered, not all cells: the threshold does something


def test_render_figures_writes_each_figure_whole_and_byte_for_byte_again(metrics, tmp_path):
    out_dir = tmp_path / "figures"
    written = F.render_figures(metrics_dir=metrics, out_dir=out_dir)
    assert sorted(path.name for path in written) == ["confusion_errors.png", "focal_curriculum_gamma.png",
                                                     "training_accuracy.png", "training_loss.png"]
    assert sorted(out_dir.iterdir()) == sorted(written)  # no temporary file left behind
    first = {path.name: path.read_bytes() for path in written}
    assert all(b"Software" not in png and b"matplotlib" not in png for png in first.values())
    F.render_figures(metrics_dir=metrics, out_dir=out_dir)
    assert {path.name: path.read_bytes() for path in written} == first


def test_a_missing_log_says_what_to_run(metrics, tmp_path):
    (metrics / "train" / "focal.csv").unlink()
    with pytest.raises(FileNotFoundError, match="focal.csv is missing: run `dvc repro`"):
        F.render_figures(metrics_dir=metrics, out_dir=tmp_path / "figures")
