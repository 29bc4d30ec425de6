"""The training loop on 300 real images: its phases, its log, its reproducibility and its divergence check."""

import numpy as np
import paddle
import pytest

from stages import params as P
from stages.data import load_split, to_model_input
from stages.losses import LOSSES, focal_loss
from stages.model import LeNet
from stages.train import Phase, TrainingDiverged, train_model, training_phases

TRAIN = P.TrainParams(device="cpu", batch_size=100, learning_rate=0.01, momentum=0.9)
ONE_EPOCH = [Phase("cross_entropy", 1)]
LOG_KEYS = {"epoch", "loss", "train_accuracy", "seconds", "images_per_second"}


@pytest.fixture(scope="module")
def data(raw_dir) -> tuple[np.ndarray, np.ndarray]:
    images, labels = load_split("train", limit=300, raw_dir=raw_dir)
    return to_model_input(images, (-1.0, 1.0)), labels


@pytest.fixture(scope="module")
def trained(data):
    images, labels = data
    return train_model(images=images, labels=labels, phases=ONE_EPOCH, train=TRAIN, seed=0)


def weights(model: LeNet) -> dict[str, np.ndarray]:
    return {name: value.numpy() for name, value in model.state_dict().items()}


def test_cross_entropy_is_one_phase():
    variant = P.VariantParams(train_set="full", loss="cross_entropy", epochs=10)
    assert training_phases(variant, None) == [Phase("cross_entropy", 10)]


def test_focal_curriculum_is_one_phase_per_gamma_in_order():
    variant = P.VariantParams(train_set="subset", loss="focal_curriculum")
    focal = P.FocalParams(gammas=(0.2, 2.0, 0.5), epochs_per_gamma=3)
    assert training_phases(variant, focal) == [Phase("focal", 3, 0.2), Phase("focal", 3, 2.0),
                                               Phase("focal", 3, 0.5)]


def test_phase_loss_fn_passes_gamma_to_the_focal_loss():
    loss_fn = Phase("focal", 1, 2.0).loss_fn()
    assert loss_fn.func is focal_loss and loss_fn.keywords == {"gamma": 2.0}
    assert Phase("cross_entropy", 1).loss_fn().keywords == {}


def test_every_variant_in_params_uses_registered_losses(project_root):
    params = P.read_params(project_root / "params.yaml")
    focal = P.section(params, "focal", P.FocalParams)
    for variant in P.variants(params).values():
        assert all(phase.loss in LOSSES for phase in training_phases(variant, focal))


def test_history_has_one_row_per_epoch(trained):
    model, history = trained
    assert len(history) == 1
    row = history[0]
    assert set(row) == LOG_KEYS
    assert row["epoch"] == 1
    assert 0 < row["loss"] < 10 and 0 <= row["train_accuracy"] <= 1
    assert row["images_per_second"] > 0


def test_training_changes_the_initial_weights(trained):
    paddle.seed(0)  # the seed train_model draws the initial weights from
    initial = weights(LeNet())
    final = weights(trained[0])
    assert all(not np.array_equal(initial[name], final[name]) for name in initial)


def test_same_seed_gives_identical_weights_and_loss(data, trained):
    images, labels = data
    model, history = train_model(images=images, labels=labels, phases=ONE_EPOCH, train=TRAIN, seed=0)
    first = weights(trained[0])
    for name, value in weights(model).items():
        np.testing.assert_array_equal(value, first[name], err_msg=name)
    assert history[0]["loss"] == trained[1][0]["loss"]


def test_another_seed_gives_other_weights(data, trained):
    images, labels = data
    model, _ = train_model(images=images, labels=labels, phases=ONE_EPOCH, train=TRAIN, seed=1)
    first = weights(trained[0])
    assert not np.array_equal(weights(model)["conv1.weight"], first["conv1.weight"])


def test_focal_curriculum_logs_gamma_and_counts_epochs_across_phases(data):
    images, labels = data
    phases = [Phase("focal", 1, 0.5), Phase("focal", 1, 2.0)]
    _, history = train_model(images=images, labels=labels, phases=phases, train=TRAIN, seed=0)
    assert [(row["epoch"], row["gamma"]) for row in history] == [(1, 0.5), (2, 2.0)]
    assert set(history[0]) == LOG_KEYS | {"gamma"}


def test_nan_input_raises_training_diverged(data):
    # A huge learning rate only saturates the sigmoids (the loss stays finite), so poison one pixel instead.
    images, labels = data
    images = images.copy()
    images[7, 0, 14, 14] = np.nan
    with pytest.raises(TrainingDiverged, match="the training loss became nan at epoch 1;"):
        train_model(images=images, labels=labels, phases=ONE_EPOCH, train=TRAIN, seed=0)
