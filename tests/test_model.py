"""The report's LeNet: output shape, layer shapes, parameter count, its faster forward against the plain layer
order, and LDAM's cosine head."""

import numpy as np
import paddle
import paddle.nn.functional as F
import pytest
from paddle import nn

from stages.lib.model import LeNet, _add_per_channel, _max_pool, count_parameters

# weight shape (Paddle's Linear stores [in, out]), bias shape, and weights + biases counted by hand.
LAYERS = {
    "conv1": ([6, 1, 5, 5], [6], 6 * 1 * 5 * 5 + 6),  # 156
    "conv2": ([16, 6, 5, 5], [16], 16 * 6 * 5 * 5 + 16),  # 2416
    "conv3": ([120, 16, 4, 4], [120], 120 * 16 * 4 * 4 + 120),  # 30840
    "fc1": ([120, 64], [64], 120 * 64 + 64),  # 7744
    "fc2": ([64, 10], [10], 64 * 10 + 10),  # 650
}


def test_output_is_one_logit_per_class():
    x = paddle.to_tensor(np.random.default_rng(0).uniform(-1, 1, (3, 1, 28, 28)).astype(np.float32))
    logits = LeNet()(x)
    assert logits.shape == [3, 10]
    assert logits.dtype == paddle.float32


def test_layer_shapes_and_counts():
    model = LeNet()
    for name, (weight_shape, bias_shape, count) in LAYERS.items():
        layer = getattr(model, name)
        assert layer.weight.shape == weight_shape, name
        assert layer.bias.shape == bias_shape, name
        assert count_parameters(layer) == count, name


def test_parameter_count():
    assert count_parameters(LeNet()) == 156 + 2416 + 30840 + 7744 + 650 == 41806


def test_count_parameters_of_a_small_layer():
    assert count_parameters(nn.Linear(3, 2)) == 3 * 2 + 2


def plain_forward(model: LeNet, x: paddle.Tensor) -> paddle.Tensor:
    """The report's layer order, literally: every conv with its own bias, before its pooling."""
    sigmoid = F.sigmoid
    x = sigmoid(F.max_pool2d(sigmoid(model.conv1(x)), 2, 2))
    x = F.max_pool2d(model.conv2(x), 2, 2)
    x = paddle.flatten(model.conv3(x), start_axis=1)
    return model.fc2(sigmoid(model.fc1(x)))


def test_forward_matches_the_plain_layer_order_in_value_and_gradient():
    paddle.seed(3)
    model = LeNet()
    # Non-zero biases, so moving them past the pooling is really exercised.
    for layer in (model.conv1, model.conv2):
        layer.bias.set_value(paddle.to_tensor(np.linspace(-1, 1, layer.bias.shape[0]).astype(np.float32)))
    x = paddle.to_tensor(np.random.default_rng(1).uniform(-1, 1, (8, 1, 28, 28)).astype(np.float32))
    gradients = []
    for forward in (model.forward, lambda batch: plain_forward(model, batch)):
        logits = forward(x)
        (logits * paddle.arange(10, dtype="float32")).sum().backward()
        gradients.append((logits.numpy(), {name: p.grad.numpy().copy() for name, p in model.named_parameters()}))
        model.clear_gradients()
    (fast, fast_grads), (plain, plain_grads) = gradients
    np.testing.assert_allclose(fast, plain, rtol=1e-5, atol=1e-6)
    for name, grad in plain_grads.items():
        np.testing.assert_allclose(fast_grads[name], grad, rtol=1e-4, atol=1e-6, err_msg=name)


def value_and_gradients(function, *inputs: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """function(*inputs) and the gradient of a weighted sum of it (no two weights alike) for each input."""
    tensors = [paddle.to_tensor(value, stop_gradient=False) for value in inputs]
    output = function(*tensors)
    weights = paddle.to_tensor(np.random.default_rng(2).uniform(-1, 1, output.shape).astype(np.float32))
    (output * weights).sum().backward()
    return output.numpy(), [tensor.grad.numpy() for tensor in tensors]


# [N, C, H, W] as the pools give them; the exact equality holds for any finite values.
@pytest.mark.parametrize("shape", [(4, 6, 12, 12), (4, 16, 4, 4)])
def test_add_per_channel_equals_a_broadcast_bias_exactly_in_value_and_gradient(shape):
    rng = np.random.default_rng(1)
    x = rng.normal(size=shape).astype(np.float32)
    bias = rng.normal(size=shape[1]).astype(np.float32)
    fast, fast_grads = value_and_gradients(_add_per_channel, x, bias)
    plain, plain_grads = value_and_gradients(lambda t, b: t + b.reshape([1, shape[1], 1, 1]), x, bias)
    np.testing.assert_array_equal(fast, plain)
    for fast_grad, plain_grad in zip(fast_grads, plain_grads):
        np.testing.assert_array_equal(fast_grad, plain_grad)


def test_max_pool_passes_nan_on():
    # A NaN must reach the loss, so that training stops with TrainingDiverged. max_pool2d(return_mask=True)
    # fails this (an all-NaN window gives -3.4e38, a NaN beside numbers is dropped), and the backward of its
    # mask of -1 corrupts the heap: forward only here.
    x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    x[0, 0, 1, 1] = np.nan  # beside numbers
    x[0, 0, 2:, 2:] = np.nan  # a whole window
    pooled = _max_pool(paddle.to_tensor(x)).numpy()  # [1, 1, 2, 2]
    assert np.isnan(pooled).tolist() == [[[[True, False], [False, True]]]]
    np.testing.assert_array_equal(pooled[0, 0, 0, 1], 7.0)


def test_cosine_head_gives_scale_times_the_cosine_of_features_and_class_weights():
    """LDAM's classifier: logits [N, 10] = s * cos(fc1 features [N, 64], fc2 weight columns [64, 10]), no bias."""
    paddle.seed(0)
    model = LeNet(cosine_scale=30.0)
    assert model.fc2.bias is None and count_parameters(model) == count_parameters(LeNet()) - 10
    x = paddle.to_tensor(np.random.default_rng(1).uniform(-1, 1, (4, 1, 28, 28)).astype(np.float32))
    features = []
    model.fc1.register_forward_post_hook(lambda layer, inputs, output: features.append(output))
    logits = model(x).numpy().astype(np.float64)
    h = 1 / (1 + np.exp(-features[0].numpy().astype(np.float64)))  # the sigmoid after fc1
    w = model.fc2.weight.numpy().astype(np.float64)
    expected = 30.0 * (h / np.linalg.norm(h, axis=1, keepdims=True)) @ (w / np.linalg.norm(w, axis=0, keepdims=True))
    np.testing.assert_allclose(logits, expected, rtol=1e-5, atol=1e-5)
    assert np.abs(logits).max() <= 30.0 + 1e-4
