"""Choosing hyperparameters without the test set (validation.tune), and the course report's reading of the
focal loss (detach_factor): both checked on hand-made labels and against hand computations."""

import numpy as np
import paddle
import pytest

from stages.lib import params as P
from stages.lib.data import TrainingSelection
from stages.lib.losses import focal_loss
from stages.subset import hold_out, split_validation

LABELS = np.repeat(np.arange(10), [20, 20, 20, 20, 20, 200, 200, 200, 200, 200])  # [1100]


def test_hold_out_takes_the_same_share_of_every_class_and_nothing_twice():
    indices = np.arange(len(LABELS))
    kept, held = hold_out(LABELS, indices, 0.1, np.random.default_rng(0))
    assert np.bincount(LABELS[held], minlength=10).tolist() == [2] * 5 + [20] * 5
    assert len(np.intersect1d(kept, held)) == 0
    assert np.array_equal(np.sort(np.concatenate([kept, held])), indices)


def test_without_tuning_every_set_keeps_every_image_and_holds_out_none():
    selections = {"full": TrainingSelection(np.arange(1100), (0, 1, 2, 3, 4), 1),
                  "subset": TrainingSelection(np.arange(50, 1100), (0, 1, 2, 3, 4), 1)}
    trained, held = split_validation(LABELS, selections, P.ValidationParams(tune=False, fraction=0.1), seed=0)
    for name, selection in selections.items():
        assert np.array_equal(trained[name].indices, selection.indices)
        assert held[name].indices.size == 0


def test_tuning_holds_out_from_each_set_a_seeded_stratified_share():
    selections = {"full": TrainingSelection(np.arange(1100), (0, 1, 2, 3, 4), 1),
                  "subset": TrainingSelection(np.arange(50, 1100), (0, 1, 2, 3, 4), 10)}
    validation = P.ValidationParams(tune=True, fraction=0.2)
    trained, held = split_validation(LABELS, selections, validation, seed=3)
    again, held_again = split_validation(LABELS, selections, validation, seed=3)
    for name, selection in selections.items():
        counts = np.bincount(LABELS[selection.indices], minlength=10)
        assert np.bincount(LABELS[held[name].indices], minlength=10).tolist() == np.round(0.2 * counts).tolist()
        assert np.array_equal(held[name].indices, held_again[name].indices)
        assert trained[name].keep_minority_every == selection.keep_minority_every
    assert not np.array_equal(held["full"].indices[:10], held["subset"].indices[:10])  # streams per set


@pytest.mark.parametrize("fraction", [0, 1, 1.5])
def test_validation_fraction_outside_0_1_is_rejected(fraction):
    with pytest.raises(P.ParamsError, match=r"validation.fraction: .* expected a number in \(0, 1\)"):
        P.ValidationParams(tune=True, fraction=fraction)


def test_detached_focal_factor_is_a_constant_weight():
    """d/dz of -w * log p_t with w = (1 - p_t)^gamma held constant is w * (p - onehot): the report's reading."""
    gamma = 2.0
    z = np.array([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3]])
    labels = np.array([0, 2])
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    p_t = p[np.arange(2), labels]
    weight = (1 - p_t) ** gamma
    expected_loss = np.mean(-weight * np.log(p_t))
    expected_grad = weight[:, None] * (p - np.eye(3)[labels]) / 2

    logits = paddle.to_tensor(z, stop_gradient=False)
    loss = focal_loss(logits, paddle.to_tensor(labels), gamma, detach_factor=True)
    loss.backward()
    np.testing.assert_allclose(float(loss), expected_loss, rtol=1e-12)
    np.testing.assert_allclose(logits.grad.numpy(), expected_grad, rtol=1e-10)

    logits.clear_gradient()
    focal_loss(logits, paddle.to_tensor(labels), gamma).backward()  # Lin et al.'s: through both factors
    assert not np.allclose(logits.grad.numpy(), expected_grad, rtol=1e-3)
