"""The per-batch losses against hand computations, finite differences and the p_t -> 1 limit."""

import functools
import inspect
import math

import numpy as np
import paddle
import paddle.nn.functional as F
import pytest

from stages.lib import losses
from stages.lib.losses import cross_entropy, focal_loss, ldam_loss, logit_adjusted_loss, weighted_cross_entropy

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


@pytest.mark.parametrize("gamma", [0.5, 2.0])
def test_focal_loss_of_two_equal_logits(gamma):
    # Two classes with equal logits: p_t = 1/2, so FL = -(1/2)^gamma log(1/2) = 0.5^gamma ln 2.
    x = paddle.to_tensor([[0.7, 0.7]], dtype="float64")
    loss = focal_loss(x, paddle.to_tensor([1], dtype="int64"), gamma=gamma)
    assert loss.shape == []
    assert loss.item() == pytest.approx(0.5 ** gamma * math.log(2), rel=1e-12)


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


def finite_difference_gradient(loss, logits: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Central differences of loss(logits, labels) in float64, one logit at a time."""
    grad = np.zeros_like(logits)
    for index in np.ndindex(logits.shape):
        up, down = logits.copy(), logits.copy()
        up[index] += eps
        down[index] -= eps
        grad[index] = (loss(*tensors(up)).item() - loss(*tensors(down)).item()) / (2 * eps)
    return grad


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


# --- the re-weighting and margin losses ------------------------------------------------------------------------

# Per-class options [4] for LOGITS; no two equal, so a loss that picks the wrong class's entry is caught.
WEIGHTS = np.array([0.5, 3.0, 1.5, 2.0])
PRIOR = np.array([0.1, 0.2, 0.3, 0.4])
MARGINS = np.array([0.4, 0.1, 0.3, 0.2])


def f64(values) -> paddle.Tensor:
    return paddle.to_tensor(np.asarray(values, dtype=np.float64))


def numpy_log_p_true(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """log softmax(logits)[n, labels[n]], shape [N]."""
    return np.log(numpy_softmax(logits)[np.arange(len(labels)), labels])


def numpy_weighted_cross_entropy(logits, labels, class_weights):
    return float(np.mean(-class_weights[labels] * numpy_log_p_true(logits, labels)))


def numpy_logit_adjusted(logits, labels, log_prior, tau):
    return float(np.mean(-numpy_log_p_true(logits + tau * log_prior, labels)))


def numpy_ldam(logits, labels, margins, class_weights):
    shifted = logits.copy()
    shifted[np.arange(len(labels)), labels] -= margins[labels]  # the true logit only
    weights = class_weights[labels]
    return float(np.sum(-weights * numpy_log_p_true(shifted, labels)) / np.sum(weights))


def test_weighted_cross_entropy_by_hand():
    # Two images with equal logits (p_t = 1/2), weights 2 and 0.5: mean(2 ln 2, 0.5 ln 2) = 1.25 ln 2.
    # (Dividing by the sum of the weights, as F.cross_entropy(weight=...) does, would give ln 2.)
    x = paddle.to_tensor([[0.7, 0.7], [0.7, 0.7]], dtype="float64")
    loss = weighted_cross_entropy(x, paddle.to_tensor([0, 1], dtype="int64"), class_weights=f64([2.0, 0.5]))
    assert loss.shape == []
    assert loss.item() == pytest.approx(1.25 * math.log(2), rel=1e-12)


def test_weighted_cross_entropy_with_unit_weights_is_cross_entropy():
    x, y = tensors(LOGITS)
    loss = weighted_cross_entropy(x, y, class_weights=f64(np.ones(4))).item()
    assert loss == pytest.approx(cross_entropy(x, y).item(), rel=1e-12)
    assert loss == pytest.approx(float(np.mean(-numpy_log_p_true(LOGITS, LABELS))), rel=1e-12)


@pytest.mark.parametrize("label, tau, expected", [
    (1, 1.0, math.log(5)),  # softmax([ln 0.8, ln 0.2])[1] = 0.2
    (0, 1.0, -math.log(0.8)),
    (1, 0.5, math.log(3)),  # softmax([0.5 ln 0.8, 0.5 ln 0.2])[1] = sqrt(.2) / (2 sqrt(.2) + sqrt(.2)) = 1/3
    (1, 0.0, math.log(2)),  # no adjustment: equal logits
])
def test_logit_adjusted_loss_by_hand(label, tau, expected):
    x = paddle.to_tensor([[0.3, 0.3]], dtype="float64")
    loss = logit_adjusted_loss(x, paddle.to_tensor([label], dtype="int64"), log_prior=f64(np.log([0.8, 0.2])),
                               tau=tau)
    assert loss.item() == pytest.approx(expected, rel=1e-12)


def test_logit_adjusted_loss_is_cross_entropy_of_the_shifted_logits():
    x, y = tensors(LOGITS)
    loss = logit_adjusted_loss(x, y, log_prior=f64(np.log(PRIOR)), tau=1.5).item()
    assert loss == pytest.approx(cross_entropy(*tensors(LOGITS + 1.5 * np.log(PRIOR))).item(), rel=1e-12)


def test_logit_adjusted_loss_with_tau_0_or_a_uniform_prior_is_cross_entropy():
    x, y = tensors(LOGITS)
    plain = cross_entropy(x, y).item()
    assert logit_adjusted_loss(x, y, log_prior=f64(np.log(PRIOR)), tau=0.0).item() == pytest.approx(plain, rel=1e-12)
    # A uniform prior shifts every logit by the same amount, which softmax ignores.
    uniform = f64(np.log(np.full(4, 0.25)))
    assert logit_adjusted_loss(x, y, log_prior=uniform, tau=2.0).item() == pytest.approx(plain, rel=1e-12)


def test_ldam_loss_by_hand():
    # Equal logits, true class 1 with margin ln 3: softmax([0, -ln 3])[1] = (1/3) / (4/3) = 1/4, weight 2; the
    # weight divides out of a batch of one. Class 0's margin (5) must not matter: it is not the true class.
    x = paddle.to_tensor([[0.0, 0.0]], dtype="float64")
    loss = ldam_loss(x, paddle.to_tensor([1], dtype="int64"), margins=f64([5.0, math.log(3)]),
                     class_weights=f64([1.0, 2.0]))
    assert loss.shape == []
    assert loss.item() == pytest.approx(math.log(4), rel=1e-12)


def test_ldam_reweighting_divides_by_the_batch_weights_as_the_reference():
    # Two images, equal logits (p_t = 1/2), no margins, weights 2 and 0.5: (2 ln 2 + 0.5 ln 2) / 2.5 = ln 2,
    # as F.cross_entropy(weight=w) in Cao et al.'s code; the batch mean would give 1.25 ln 2.
    x = paddle.to_tensor([[0.7, 0.7], [0.7, 0.7]], dtype="float64")
    loss = ldam_loss(x, paddle.to_tensor([0, 1], dtype="int64"), margins=f64([0.0, 0.0]),
                     class_weights=f64([2.0, 0.5]))
    assert loss.item() == pytest.approx(math.log(2), rel=1e-12)


def test_ldam_loss_moves_only_the_true_logit():
    x, y = tensors(LOGITS)
    loss = ldam_loss(x, y, margins=f64(MARGINS), class_weights=f64(WEIGHTS)).item()
    # Subtracting every class's margin from its own logit (not only the true one's) gives another value.
    everywhere = numpy_weighted_cross_entropy(LOGITS - MARGINS, LABELS, WEIGHTS)
    assert loss != pytest.approx(everywhere, rel=1e-3)


def test_ldam_loss_ignores_the_margins_of_classes_absent_from_the_batch():
    x, y = tensors(LOGITS)  # LABELS = [3, 0, 2]: no image of class 1
    other = MARGINS.copy()
    other[1] = 7.0
    base = ldam_loss(x, y, margins=f64(MARGINS), class_weights=f64(WEIGHTS)).item()
    assert ldam_loss(x, y, margins=f64(other), class_weights=f64(WEIGHTS)).item() == pytest.approx(base, rel=1e-12)


def test_ldam_loss_with_zero_margins_and_unit_weights_is_cross_entropy():
    x, y = tensors(LOGITS)
    loss = ldam_loss(x, y, margins=f64(np.zeros(4)), class_weights=f64(np.ones(4))).item()
    assert loss == pytest.approx(cross_entropy(x, y).item(), rel=1e-12)


def test_ldam_margin_raises_the_loss():
    x, y = tensors(LOGITS)
    losses = [ldam_loss(x, y, margins=f64(np.full(4, m)), class_weights=f64(np.ones(4))).item()
              for m in (0.0, 0.5, 2.0)]
    assert losses == sorted(losses) and losses[0] < losses[-1]


# Every loss of stages.lib.losses with options for LOGITS (float64 tensors), and its numpy reference.
LOSS_CASES = {
    "cross_entropy": (cross_entropy, {}, lambda: float(np.mean(-numpy_log_p_true(LOGITS, LABELS)))),
    "focal_gamma_0.5": (focal_loss, {"gamma": 0.5}, lambda: numpy_focal(LOGITS, LABELS, 0.5)),
    "focal_gamma_2": (focal_loss, {"gamma": 2.0}, lambda: numpy_focal(LOGITS, LABELS, 2.0)),
    "weighted_cross_entropy": (weighted_cross_entropy, {"class_weights": WEIGHTS},
                               lambda: numpy_weighted_cross_entropy(LOGITS, LABELS, WEIGHTS)),
    "logit_adjusted": (logit_adjusted_loss, {"log_prior": np.log(PRIOR), "tau": 1.5},
                       lambda: numpy_logit_adjusted(LOGITS, LABELS, np.log(PRIOR), 1.5)),
    "ldam": (ldam_loss, {"margins": MARGINS, "class_weights": WEIGHTS},
             lambda: numpy_ldam(LOGITS, LABELS, MARGINS, WEIGHTS)),
}


def case_loss(name: str):
    """The loss of LOSS_CASES[name] with its options bound, arrays as float64 tensors."""
    loss, options, _ = LOSS_CASES[name]
    return functools.partial(loss, **{k: f64(v) if isinstance(v, np.ndarray) else v for k, v in options.items()})


def test_every_loss_of_the_module_has_a_case():
    public = {function for name, function in inspect.getmembers(losses, inspect.isfunction)
              if function.__module__ == losses.__name__ and not name.startswith("_")}
    assert {loss for loss, _, _ in LOSS_CASES.values()} == public


@pytest.mark.parametrize("name", sorted(LOSS_CASES))
def test_loss_matches_numpy(name):
    x, y = tensors(LOGITS)
    loss = case_loss(name)(x, y)
    assert loss.shape == []
    assert loss.item() == pytest.approx(LOSS_CASES[name][2](), rel=1e-12)
    if name != "cross_entropy":  # its options matter on these logits: the comparison above can tell
        assert loss.item() != pytest.approx(cross_entropy(x, y).item(), rel=1e-3)


@pytest.mark.parametrize("name", sorted(LOSS_CASES))
def test_loss_gradient_matches_finite_differences(name):
    # For the focal loss this is the gradient through the modulating factor too: a detached factor would miss
    # the term (d/dz (1 - p_t)^gamma) log p_t, of the order of 1e-1 on these logits.
    loss = case_loss(name)
    x, y = tensors(LOGITS)
    loss(x, y).backward()
    expected = finite_difference_gradient(loss, LOGITS)
    assert np.abs(expected).max() > 1e-2
    np.testing.assert_allclose(x.grad.numpy(), expected, rtol=1e-6, atol=1e-9)


def test_ldam_gradient_by_hand():
    # d/dz of -w_y log softmax(z - m_y e_y)[y] is w_y (softmax(z - m_y e_y) - e_y), summed over the batch and
    # divided by the sum of its weights.
    x, y = tensors(LOGITS)
    ldam_loss(x, y, margins=f64(MARGINS), class_weights=f64(WEIGHTS)).backward()
    one_hot = np.eye(4)[LABELS]
    shifted = LOGITS - one_hot * MARGINS[LABELS][:, None]
    expected = WEIGHTS[LABELS][:, None] * (numpy_softmax(shifted) - one_hot) / WEIGHTS[LABELS].sum()
    np.testing.assert_allclose(x.grad.numpy(), expected, rtol=1e-10, atol=1e-12)
