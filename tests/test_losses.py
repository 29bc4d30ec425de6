"""The per-batch losses against hand computations, finite differences and the p_t -> 1 limit."""

import math

import numpy as np
import paddle
import paddle.nn.functional as F
import pytest

from stages.losses import LOSSES, cross_entropy, focal_loss

# Three images, four classes; moderate logits so every p_t is far from 0 and 1.
LOGITS = np.array([[1.0, -0.5, 0.3, 2.0],
                   [0.2, 0.1, -1.0, 0.0],
                   [-2.0, 1.5, 0.5, 0.4]])
LABELS = np.array([3, 0, 2])


def tensors(logits: np.ndarray, labels: np.ndarray = LABELS,
            dtype: str = "float64") -> tuple[paddle.Tensor, paddle.Tensor]:
    """Logits [N, C] that collect a gradient, and int64 labels [N]."""
    return paddle.to_tensor(logits, dtype=dtype, stop_gradient=False), paddle.to_tensor(labels, dtype="int64")


def numpy_softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def numpy_focal(logits: np.ndarray, labels: np.ndarray, gamma: float) -> float:
    """mean over images of -(1 - p_t)^gamma log p_t."""
    p_t = numpy_softmax(logits)[np.arange(len(labels)), labels]
    return float(np.mean(-(1 - p_t) ** gamma * np.log(p_t)))


def test_registry_has_both_losses():
    assert LOSSES["cross_entropy"] is cross_entropy
    assert LOSSES["focal"] is focal_loss


@pytest.mark.parametrize("gamma", [0.5, 2.0])
def test_focal_loss_of_two_equal_logits(gamma):
    # Two classes with equal logits: p_t = 1/2, so FL = -(1/2)^gamma log(1/2) = 0.5^gamma ln 2.
    x = paddle.to_tensor([[0.7, 0.7]], dtype="float64")
    loss = focal_loss(x, paddle.to_tensor([1], dtype="int64"), gamma=gamma)
    assert loss.shape == []
    assert loss.item() == pytest.approx(0.5 ** gamma * math.log(2), rel=1e-12)


@pytest.mark.parametrize("gamma", [0.5, 2.0])
def test_focal_loss_matches_numpy(gamma):
    x, y = tensors(LOGITS)
    assert focal_loss(x, y, gamma=gamma).item() == pytest.approx(numpy_focal(LOGITS, LABELS, gamma), rel=1e-12)


def test_focal_loss_down_weights_easy_images():
    x, y = tensors(LOGITS)
    losses = [focal_loss(x, y, gamma=g).item() for g in (0.0, 0.5, 2.0, 5.0)]
    assert losses == sorted(losses, reverse=True) and losses[-1] > 0


def test_focal_loss_with_gamma_0_is_cross_entropy():
    x, y = tensors(LOGITS, dtype="float32")
    focal = focal_loss(x, y, gamma=0.0).item()
    assert focal == pytest.approx(cross_entropy(x, y).item(), rel=1e-6)
    assert focal == pytest.approx(F.cross_entropy(x, y).item(), rel=1e-6)
    assert focal == pytest.approx(numpy_focal(LOGITS, LABELS, 0.0), rel=1e-6)


def finite_difference_gradient(logits: np.ndarray, gamma: float, eps: float = 1e-6) -> np.ndarray:
    grad = np.zeros_like(logits)
    for index in np.ndindex(logits.shape):
        up, down = logits.copy(), logits.copy()
        up[index] += eps
        down[index] -= eps
        grad[index] = (focal_loss(*tensors(up), gamma=gamma).item()
                       - focal_loss(*tensors(down), gamma=gamma).item()) / (2 * eps)
    return grad


@pytest.mark.parametrize("gamma", [0.5, 2.0])
def test_focal_gradient_flows_through_the_modulating_factor(gamma):
    x, y = tensors(LOGITS)
    focal_loss(x, y, gamma=gamma).backward()
    grad = x.grad.numpy()
    np.testing.assert_allclose(grad, finite_difference_gradient(LOGITS, gamma), rtol=1e-6, atol=1e-9)
    # With (1 - p_t)^gamma treated as a constant the gradient would be (1 - p_t)^gamma (softmax - onehot) / N.
    p = numpy_softmax(LOGITS)
    one_hot = np.eye(4)[LABELS]
    p_t = p[np.arange(3), LABELS]
    detached = (1 - p_t)[:, None] ** gamma * (p - one_hot) / 3
    assert np.abs(grad - detached).max() > 1e-2


@pytest.mark.parametrize("gamma", [0.2, 0.5, 15.0])
def test_focal_loss_and_gradient_stay_finite_as_p_t_reaches_1(gamma):
    # Image 0: p_t = 1 in float32 (1 - p_t underflows to 0); image 1: an ordinary image.
    logits = np.array([[100.0] + [0.0] * 9, [0.5, -0.2] + [0.0] * 8])
    x, y = tensors(logits, np.array([0, 0]), dtype="float32")
    loss = focal_loss(x, y, gamma=gamma)
    loss.backward()
    grad = x.grad.numpy()
    assert math.isfinite(loss.item())
    assert np.isfinite(grad).all()
    np.testing.assert_allclose(grad[0], 0.0, atol=1e-6)  # a solved image contributes nothing
    assert np.abs(grad[1]).max() > 1e-3  # the ordinary one still trains
