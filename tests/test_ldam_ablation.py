"""The LDAM ablation table from per-epoch logs: seeds that trained, their median, and the features at epoch 1
and at the last epoch, averaged separately over collapsed and trained seeds."""

import pandas as pd

from scripts.ldam_ablation import setting_name, table


def log(setting: str, seed: int, balanced: float, cosines: list[float], saturated: list[float]) -> pd.DataFrame:
    return pd.DataFrame({"setting": setting, "variant": "ldam_drw", "seed": seed, "epoch": [1, 2],
                         "loss": [2.0, 1.0], "train_accuracy": 0.5, "feature_cosine": cosines,
                         "fc1_saturated": saturated, "test_accuracy": balanced, "balanced_accuracy": balanced})


def test_table_by_hand():
    epochs = pd.concat([log("a", 0, 0.96, [0.5, 0.2], [0.1, 0.9]), log("a", 1, 0.94, [0.7, 0.4], [0.3, 0.7]),
                        log("a", 2, 0.10, [1.0, 1.0], [1.0, 1.0])])
    lines = table(epochs).splitlines()
    # Two trained seeds: median 95.00; epoch 1 cosine mean 0.6, last 0.3; saturation 0.2 -> 0.8.
    assert lines[2] == "| a | 2 of 3 | 95.00 | trained | 0.600 -> 0.300 | 0.200 -> 0.800 | 1.000 |"
    assert lines[3] == "| a | 2 of 3 | 95.00 | collapsed | 1.000 -> 1.000 | 1.000 -> 1.000 | 1.000 |"


def test_setting_names():
    assert setting_name("ldam_drw", {}) == "subset, as params.yaml"
    assert setting_name("cosine_full", {"losses.ldam_drw.max_margin": 0.0}) == "full data, max margin 0.0"


def test_a_collapsed_seed_is_the_tables_at_chance_rule(monkeypatch):
    """One rule: moving the tables' CHANCE moves the ablation's split of trained and collapsed seeds with it."""
    from scripts.report import tables

    epochs = pd.concat([log("a", 0, 0.96, [0.5, 0.2], [0.1, 0.9]), log("a", 1, 0.30, [0.9, 0.9], [0.5, 0.5])])
    assert "| a | 2 of 2 | " in table(epochs)
    monkeypatch.setattr(tables, "CHANCE", 0.5)
    assert "| a | 1 of 2 | 96.00 | collapsed | 0.900 -> 0.900 |" in table(epochs)
