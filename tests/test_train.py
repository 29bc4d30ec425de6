"""The training loop on 300 real images: its log, its reproducibility, the per-batch protocol, the cosine head
and the divergence check."""

import numpy as np
import paddle
import pytest

from stages import params as P
from stages.data import load_split, to_model_input
from stages.model import LeNet
from stages.remedies import Phase
from stages.train import TrainingDiverged, train_model

TRAIN = P.TrainParams(device="cpu", batch_size=100, learning_rate=0.01, momentum=0.9)
ONE_EPOCH = [Phase("cross_entropy", 1)]
LOG_KEYS = {"epoch", "loss", "train_accuracy", "images", "distinct_minority_seen", "seconds", "images_per_second"}
MINORITY = (0, 1, 2, 3, 4)


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


def test_history_has_one_row_per_epoch(trained):
    _, history = trained
    assert len(history) == 1
    row = history[0]
    assert set(row) == LOG_KEYS
    assert row["epoch"] == 1 and row["images"] == 300
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
    phases = [Phase("focal", 1, {"gamma": 0.5}), Phase("focal", 1, {"gamma": 2.0})]
    _, history = train_model(images=images, labels=labels, phases=phases, train=TRAIN, seed=0)
    assert [(row["epoch"], row["gamma"]) for row in history] == [(1, 0.5), (2, 2.0)]
    assert set(history[0]) == LOG_KEYS | {"gamma"}


def test_nan_input_raises_training_diverged(data):
    # A huge learning rate only saturates the sigmoids (the loss stays finite), so poison one pixel instead.
    images, labels = data
    images = images.copy()
    images[7, 0, 14, 14] = np.nan
    with pytest.raises(TrainingDiverged, match=r"the training loss became nan at epoch 1 \(cross_entropy\);"):
        train_model(images=images, labels=labels, phases=ONE_EPOCH, train=TRAIN, seed=0)


def test_fixed_training_set_sees_every_minority_image_in_the_first_epoch(data, trained):
    images, labels = data
    _, history = train_model(images=images, labels=labels, phases=ONE_EPOCH, train=TRAIN, seed=0,
                             minority_classes=MINORITY)
    assert history[0]["distinct_minority_seen"] == np.isin(labels, MINORITY).sum()
    assert history[0]["loss"] == trained[1][0]["loss"]  # the minority bookkeeping changes nothing trained


def test_per_batch_protocol_trains_fewer_images_and_sees_new_minority_images_each_epoch(data):
    images, labels = data
    minority = np.isin(labels, MINORITY)
    _, history = train_model(images=images, labels=labels, phases=[Phase("cross_entropy", 3)], train=TRAIN,
                             seed=0, minority_classes=MINORITY, keep_minority_every=2)
    # 3 batches of 100 per epoch; batch 1 loses its minority images, batches 0 and 2 keep theirs.
    assert all((~minority).sum() < row["images"] < len(labels) for row in history)
    seen = [row["distinct_minority_seen"] for row in history]
    assert seen[0] < seen[1] <= seen[2] <= minority.sum()


def test_cosine_head_trains_with_the_ldam_loss(data):
    images, labels = data
    margins = tuple([15.0] * 5 + [7.5] * 5)
    phase = Phase("ldam", 1, {"margins": margins, "class_weights": tuple([1.0] * 10)})
    model, history = train_model(images=images, labels=labels, phases=[phase], train=TRAIN, seed=0,
                                 head_scale=30.0)
    assert model.cosine_scale == 30.0 and "fc2.bias" not in model.state_dict()
    assert np.isfinite(history[0]["loss"])
