"""The training loop on 300 real images: its initial weights, its log, its reproducibility, the per-batch
protocol, the cosine head and the divergence check."""

import dataclasses

import numpy as np
import paddle
import pytest

from stages.lib import losses
from stages.lib import params as P
from stages.lib.data import TrainingSet, load_split, to_model_input
from stages.lib.model import LeNet
from stages.lib.remedies import Phase
from stages.lib.samplers import SAMPLERS
from stages.lib.diagnostics import feature_diagnostics
from stages.train import TrainingDiverged, train_model
from stages.train import warmup_rates as train_rates

TRAIN = P.TrainParams(device="cpu", batch_size=100, learning_rate=0.01, momentum=0.9)
ONE_EPOCH = [Phase(losses.cross_entropy, 1)]
LOG_KEYS = {"epoch", "loss", "train_accuracy", "images", "distinct_minority_seen", "feature_cosine", "fc1_saturated"}
MINORITY = (0, 1, 2, 3, 4)
SHUFFLE = SAMPLERS["shuffle"]


@pytest.fixture(scope="module")
def data(raw_dir) -> TrainingSet:
    """The first 300 training images, every image every epoch, digits 0-4 the minority."""
    images, labels = load_split("train", limit=300, raw_dir=raw_dir)
    return TrainingSet(to_model_input(images, (-1.0, 1.0)), labels, MINORITY, keep_minority_every=1)


def train(data: TrainingSet, phases=ONE_EPOCH, **options):
    return train_model(data, phases, options.pop("train", TRAIN), seed=options.pop("seed", 0), sampler=SHUFFLE,
                       **options)


@pytest.fixture(scope="module")
def trained(data):
    return train(data)


def weights(model: LeNet) -> dict[str, np.ndarray]:
    return {name: value.numpy() for name, value in model.state_dict().items()}


def lenet_from_seed(seed: int, **options) -> LeNet:
    """A LeNet built here, independently of stages.train, from `seed`."""
    paddle.seed(seed)
    return LeNet(**options)


def test_history_has_one_row_per_epoch(trained):
    _, history = trained
    assert len(history) == 1
    row = history[0]
    assert set(row) == LOG_KEYS  # no wall-clock column: a rerun must write the same log
    assert row["epoch"] == 1 and row["images"] == 300
    assert 0 < row["loss"] < 10 and 0 <= row["train_accuracy"] <= 1


@pytest.mark.parametrize("seed", [0, 5])
def test_training_starts_from_the_weights_its_seed_draws(data, seed):
    # No phase: train_model returns the model it would have started training from.
    model, history = train(data, phases=[], seed=seed)
    assert history == []
    expected = weights(lenet_from_seed(seed))
    for name, value in weights(model).items():
        np.testing.assert_array_equal(value, expected[name], err_msg=name)


def test_training_changes_every_initial_weight(trained):
    initial = weights(lenet_from_seed(0))
    final = weights(trained[0])
    assert all(not np.array_equal(initial[name], final[name]) for name in initial)


def test_same_seed_gives_identical_weights_and_loss(data, trained):
    model, history = train(data)
    first = weights(trained[0])
    for name, value in weights(model).items():
        np.testing.assert_array_equal(value, first[name], err_msg=name)
    assert history == trained[1]


def test_another_seed_gives_other_weights(data, trained):
    model, _ = train(data, seed=1)
    assert not np.array_equal(weights(model)["conv1.weight"], weights(trained[0])["conv1.weight"])


def test_focal_curriculum_logs_gamma_and_counts_epochs_across_phases(data):
    phases = [Phase(losses.focal_loss, 1, {"gamma": 0.5}), Phase(losses.focal_loss, 1, {"gamma": 2.0})]
    _, history = train(data, phases)
    assert [(row["epoch"], row["gamma"]) for row in history] == [(1, 0.5), (2, 2.0)]
    assert set(history[0]) == LOG_KEYS | {"gamma"}


def test_a_nan_loss_raises_training_diverged(data):
    # Inputs cannot make the loss NaN (the sigmoids bound every layer, and the max-pool with return_mask turns an
    # all-NaN window into -3.4e38; see test_model.py), so a NaN hyperparameter does. One batch per epoch, so that
    # no step runs on the NaN weights: the max-pool's mask is then -1, and its backward writes out of bounds.
    phases = [Phase(losses.cross_entropy, 1), Phase(losses.focal_loss, 1, {"gamma": float("nan")})]
    with pytest.raises(TrainingDiverged, match=r"the training loss became nan at epoch 2 \(focal_loss, gamma nan\);"):
        train(data, phases, train=dataclasses.replace(TRAIN, batch_size=300))


def test_fixed_training_set_sees_every_minority_image_in_the_first_epoch(data, trained):
    _, history = trained
    assert history[0]["distinct_minority_seen"] == np.count_nonzero(data.is_minority) > 0


def test_per_batch_protocol_trains_fewer_images_and_sees_new_minority_images_each_epoch(data):
    minority = data.is_minority
    _, history = train(dataclasses.replace(data, keep_minority_every=2), [Phase(losses.cross_entropy, 3)])
    # 3 batches of 100 per epoch; batch 1 loses its minority images, batches 0 and 2 keep theirs.
    assert all((~minority).sum() < row["images"] < len(minority) for row in history)
    seen = [row["distinct_minority_seen"] for row in history]
    assert seen[0] < seen[1] <= seen[2] <= minority.sum()


def numpy_ldam_loss(logits: np.ndarray, labels: np.ndarray, margins: np.ndarray) -> float:
    """mean over images of -log softmax(logits - margins[y] onehot(y))[y], in float64."""
    shifted = logits.astype(np.float64).copy()
    shifted[np.arange(len(labels)), labels] -= margins[labels]
    shifted -= shifted.max(axis=1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return float(-log_p[np.arange(len(labels)), labels].mean())


def test_cosine_head_trains_with_the_ldam_loss(data):
    margins = np.array([15.0] * 5 + [7.5] * 5)  # s = 30 times margins of 0.5 and 0.25
    phase = Phase(losses.ldam_loss, 2, {"margins": tuple(margins), "class_weights": tuple([1.0] * 10)})
    # One batch of all 300 images: epoch 1's loss is the loss of the initial model, computable here.
    whole = dataclasses.replace(TRAIN, batch_size=300)
    model, history = train(data, [phase], train=whole, head_scale=30.0)
    assert model.cosine_scale == 30.0 and "fc2.bias" not in model.state_dict()
    initial = lenet_from_seed(0, cosine_scale=30.0)
    with paddle.no_grad():
        logits = initial(paddle.to_tensor(data.images)).numpy()
    assert np.abs(logits).max() <= 30.0 + 1e-4  # cosine logits: the head really is s * cos
    assert history[0]["loss"] == pytest.approx(numpy_ldam_loss(logits, data.labels, margins), rel=1e-5)
    assert history[1]["loss"] < history[0]["loss"]  # one step of gradient descent lowered it


def test_crt_freezes_the_body_and_retrains_a_fresh_classifier(data):
    """Phase 2 of cRT changes fc2 only, starting from a fresh draw, and a resumed run gets the same draw."""
    representation = train(data, [Phase(losses.cross_entropy, 1)])[0]
    model, history = train(data, [Phase(losses.cross_entropy, 1),
                                  Phase(losses.cross_entropy, 1, sampler="class_balanced", classifier_only=True)])
    before, after = representation.state_dict(), model.state_dict()
    for name, value in before.items():
        same = np.array_equal(value.numpy(), after[name].numpy())
        assert same == (not name.startswith("fc2.")), name
    assert len(history) == 2


def test_warmup_rises_linearly_to_the_learning_rate_then_holds():
    train = dataclasses.replace(TRAIN, warmup_epochs=2)
    first, second = train_rates(train, 0, 4), train_rates(train, 1, 4)
    np.testing.assert_allclose(first + second, [0.01 * k / 8 for k in range(1, 9)], rtol=1e-12)
    assert train_rates(train, 2, 4) is None and train_rates(TRAIN, 0, 4) is None


def test_warmup_changes_training_and_zero_warmup_is_the_plain_run(data, trained):
    plain, _ = trained
    same, _ = train(data, train=dataclasses.replace(TRAIN, warmup_epochs=0))
    warm, _ = train(data, train=dataclasses.replace(TRAIN, warmup_epochs=1))
    for name, value in plain.state_dict().items():
        np.testing.assert_array_equal(same.state_dict()[name].numpy(), value.numpy())
    assert not np.array_equal(warm.state_dict()["fc2.weight"].numpy(), plain.state_dict()["fc2.weight"].numpy())


def test_augmented_training_is_reproducible_and_differs_from_plain(data, trained):
    shifted = dataclasses.replace(TRAIN, augment_shift_px=2)
    a, b = train(data, train=shifted)[0], train(data, train=shifted)[0]
    plain = trained[0]
    for name, value in a.state_dict().items():
        np.testing.assert_array_equal(value.numpy(), b.state_dict()[name].numpy())
    assert not np.array_equal(a.state_dict()["fc2.weight"].numpy(), plain.state_dict()["fc2.weight"].numpy())


def test_feature_diagnostics_by_hand():
    model = LeNet()
    x = paddle.to_tensor(np.random.default_rng(0).uniform(-1, 1, (5, 1, 28, 28)).astype("float32"))
    features = model.features(x).numpy().astype(np.float64)
    unit = features / np.linalg.norm(features, axis=1, keepdims=True)
    gram = unit @ unit.T
    expected_cosine = (gram.sum() - 5) / 20
    result = feature_diagnostics(model, x)
    assert result["feature_cosine"] == pytest.approx(expected_cosine, rel=1e-5)
    assert result["fc1_saturated"] == pytest.approx(np.mean((features < 0.01) | (features > 0.99)))
