"""Per-batch training losses, looked up by name. Each takes logits [N, C] and int64 labels [N] and returns the
mean loss over the batch as a 0-d tensor; extra hyperparameters are keyword arguments."""

import paddle
import paddle.nn.functional as F

# Smallest 1 - p_t the focal factor sees. Below it, (1 - p_t)^gamma and its derivative are ~0 anyway, but
# pow's derivative gamma * (1 - p_t)^(gamma - 1) would be infinite at 1 - p_t = 0 for gamma < 1.
MIN_ONE_MINUS_P = 1e-30


def cross_entropy(logits: paddle.Tensor, labels: paddle.Tensor) -> paddle.Tensor:
    """-log p_t, averaged over the batch."""
    return F.cross_entropy(logits, labels)


def focal_loss(logits: paddle.Tensor, labels: paddle.Tensor, gamma: float) -> paddle.Tensor:
    """FL(p_t) = -(1 - p_t)^gamma * log(p_t) (Lin et al., 2017), averaged over the batch.

    The gradient flows through both factors. log p_t comes from log_softmax (no log of a rounded
    probability) and 1 - p_t from -expm1(log p_t), accurate when p_t is close to 1; gamma = 0 gives
    exactly cross-entropy.
    """
    log_p = F.log_softmax(logits, axis=-1)  # [N, C]
    log_pt = paddle.take_along_axis(log_p, labels.unsqueeze(-1), axis=-1).squeeze(-1)  # [N]
    one_minus_pt = paddle.clip(-paddle.expm1(log_pt), min=MIN_ONE_MINUS_P)
    return (-paddle.pow(one_minus_pt, gamma) * log_pt).mean()


LOSSES = {"cross_entropy": cross_entropy, "focal": focal_loss}
