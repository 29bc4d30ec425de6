"""The report's LeNet, exactly: the network every variant trains."""

import paddle
from paddle import nn


class LeNet(nn.Layer):
    """conv 6@5x5 -> sigmoid -> maxpool 2x2 -> sigmoid -> conv 16@5x5 -> maxpool 2x2 -> conv 120@4x4
    -> flatten (120) -> fc 64 -> sigmoid -> fc 10.

    The two sigmoids around the first pooling and the missing activation after conv2 and conv3 are the
    report's (Paddle course) design; they are kept so the numbers compare. Input [N, 1, 28, 28] float32,
    output [N, num_classes] logits.
    """

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2D(1, 6, kernel_size=5)  # -> [N, 6, 24, 24]
        self.pool1 = nn.MaxPool2D(kernel_size=2, stride=2)  # -> [N, 6, 12, 12]
        self.conv2 = nn.Conv2D(6, 16, kernel_size=5)  # -> [N, 16, 8, 8]
        self.pool2 = nn.MaxPool2D(kernel_size=2, stride=2)  # -> [N, 16, 4, 4]
        self.conv3 = nn.Conv2D(16, 120, kernel_size=4)  # -> [N, 120, 1, 1]
        self.fc1 = nn.Linear(120, 64)
        self.fc2 = nn.Linear(64, num_classes)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = nn.functional.sigmoid(self.conv1(x))
        x = nn.functional.sigmoid(self.pool1(x))
        x = self.pool2(self.conv2(x))
        x = paddle.flatten(self.conv3(x), start_axis=1)  # [N, 120]
        x = nn.functional.sigmoid(self.fc1(x))
        return self.fc2(x)


def count_parameters(model: nn.Layer) -> int:
    return sum(int(p.size) for p in model.parameters())
