"""The report's LeNet, exactly: the network every variant trains."""

import paddle
import paddle.nn.functional as F
from paddle import nn


class LeNet(nn.Layer):
    """conv 6@5x5 -> sigmoid -> maxpool 2x2 -> sigmoid -> conv 16@5x5 -> maxpool 2x2 -> conv 120@4x4
    -> flatten (120) -> fc 64 -> sigmoid -> fc 10.

    The two sigmoids around the first pooling and the missing activation after conv2 and conv3 are the
    report's (Paddle course) design; they are kept so the numbers compare. Input [N, 1, 28, 28] float32,
    output [N, num_classes] logits.

    With cosine_scale = s, the last layer is LDAM's cosine classifier (Cao et al., 2019): logits
    s * cos(features, class weight vector), no bias. None (the default) keeps the report's fc 10.
    """

    def __init__(self, num_classes: int = 10, cosine_scale: float | None = None):
        super().__init__()
        self.cosine_scale = cosine_scale
        # Each conv is followed by a 2x2 max-pool of stride 2 (_max_pool): [N, 6, 24, 24] -> [N, 6, 12, 12]
        # and [N, 16, 8, 8] -> [N, 16, 4, 4]. The pools have no weights, so they are not layers.
        self.conv1 = nn.Conv2D(1, 6, kernel_size=5)  # -> [N, 6, 24, 24]
        self.conv2 = nn.Conv2D(6, 16, kernel_size=5)  # -> [N, 16, 8, 8]
        self.conv3 = nn.Conv2D(16, 120, kernel_size=4)  # -> [N, 120, 1, 1]
        self.fc1 = nn.Linear(120, 64)
        self.fc2 = nn.Linear(64, num_classes, bias_attr=False if cosine_scale else None)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = self.features(x)  # [N, 64]
        if self.cosine_scale:
            cosine = paddle.matmul(F.normalize(x, axis=1), F.normalize(self.fc2.weight, axis=0))  # [N, 10]
            return self.cosine_scale * cosine
        return self.fc2(x)

    def features(self, x: paddle.Tensor) -> paddle.Tensor:
        """What the classifier sees: fc1's sigmoid outputs [N, 64], in (0, 1)."""
        # The same function as sigmoid(pool1(sigmoid(conv1(x)))) and pool2(conv2(x)), computed faster: each
        # conv's bias is added after its max-pool, on a 4x smaller tensor. Exact, because a max-pool commutes
        # with adding a per-channel constant and with the increasing sigmoid: pool(sigmoid(z + b)) =
        # sigmoid(pool(z) + b). On a CPU, Paddle's broadcast add and the sigmoid over [N, 6, 24, 24] cost more
        # than conv1 itself; tests/test_model.py checks outputs and gradients against the plain layer order.
        z = _add_per_channel(_max_pool(F.conv2d(x, self.conv1.weight)), self.conv1.bias)  # [N, 6, 12, 12]
        x = F.sigmoid(F.sigmoid(z))
        x = _add_per_channel(_max_pool(F.conv2d(x, self.conv2.weight)), self.conv2.bias)  # [N, 16, 4, 4]
        # conv3's 4x4 kernel covers its whole 4x4 input: it is a matmul over the 256 flattened inputs, which
        # Paddle runs about 3x faster than its conv kernel (forward and backward).
        weight = self.conv3.weight.reshape([self.conv3.weight.shape[0], -1])  # [120, 256]
        x = paddle.matmul(paddle.flatten(x, start_axis=1), weight, transpose_y=True) + self.conv3.bias  # [N, 120]
        return F.sigmoid(self.fc1(x))  # [N, 64]


def _max_pool(x: paddle.Tensor) -> paddle.Tensor:
    """2x2 max-pool, stride 2.

    Not max_pool2d(..., return_mask=True), although its CPU backward is about 3x cheaper: it skips NaN, so an
    all-NaN window gives -3.4e38 and a mask of -1, and the backward through that mask writes out of bounds
    (heap corruption, a crash or a hang) instead of the NaN reaching the loss and stopping the stage.
    """
    return F.max_pool2d(x, kernel_size=2, stride=2)


def _add_per_channel(x: paddle.Tensor, bias: paddle.Tensor) -> paddle.Tensor:
    """x [N, C, H, W] + bias [C], each channel its own constant. Written as [N, C, H*W] + [C, 1]: the same sums,
    but Paddle's CPU broadcast of a [1, C, 1, 1] bias over 4-D maps costs about 7x more."""
    n, c, h, w = x.shape
    return (x.reshape([n, c, h * w]) + bias.reshape([c, 1])).reshape([n, c, h, w])


def count_parameters(model: nn.Layer) -> int:
    return sum(int(p.size) for p in model.parameters())
