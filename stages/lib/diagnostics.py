"""What the features look like during training: the per-epoch evidence of a classifier that cannot separate
the classes (all features saturated or pointing the same way), logged beside the loss."""

import paddle
import paddle.nn.functional as F

SATURATED = 0.01  # a sigmoid output this close to 0 or 1 passes back less than 1% of its gradient


def feature_diagnostics(model, probe: paddle.Tensor) -> dict:
    """On probe images [P, 1, 28, 28]: the mean pairwise cosine of their fc1 features (1 = all parallel) and
    the share of fc1 outputs within SATURATED of 0 or 1."""
    model.eval()
    with paddle.no_grad():
        features = model.features(probe)  # [P, 64] in (0, 1)
        unit = F.normalize(features, axis=1)
        n = features.shape[0]
        # Mean of the off-diagonal entries of the [P, P] Gram matrix of unit vectors: (sum of all - P) / (P^2 - P).
        total = paddle.matmul(unit.sum(axis=0), unit.sum(axis=0))
        cosine = (total - n) / (n * (n - 1))
        saturated = ((features < SATURATED) | (features > 1 - SATURATED)).astype("float32").mean()
    model.train()
    return {"feature_cosine": cosine.item(), "fc1_saturated": saturated.item()}
