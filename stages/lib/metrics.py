"""Classification metrics from labels and predictions, and the class prior behind logit adjustment (numpy only,
so they are easy to check by hand)."""

import numpy as np


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> np.ndarray:
    """[num_classes, num_classes] counts; row = true class, column = predicted class."""
    return np.bincount(labels * num_classes + predictions, minlength=num_classes ** 2).reshape(num_classes, -1)


def classification_metrics(labels: np.ndarray, predictions: np.ndarray, *, num_classes: int,
                           minority_classes: tuple[int, ...]) -> dict:
    """Accuracy overall, balanced, macro-F1, per minority/majority group and per class (fractions in [0, 1]).

    A class absent from `labels` gets recall 0 and counts in the balanced and macro means, so a metric never
    silently averages over fewer classes than the problem has.
    """
    matrix = confusion_matrix(labels, predictions, num_classes)
    true_positive = np.diag(matrix).astype(np.float64)
    support = matrix.sum(axis=1)  # images of each true class
    predicted = matrix.sum(axis=0)  # images predicted as each class
    recall = np.divide(true_positive, support, out=np.zeros(num_classes), where=support > 0)
    precision = np.divide(true_positive, predicted, out=np.zeros(num_classes), where=predicted > 0)
    denominator = precision + recall
    f1 = np.divide(2 * precision * recall, denominator, out=np.zeros(num_classes), where=denominator > 0)
    minority = np.isin(labels, minority_classes)
    correct = labels == predictions
    return {
        "accuracy": float(correct.mean()),
        "balanced_accuracy": float(recall.mean()),
        "macro_f1": float(f1.mean()),
        "minority_accuracy": _mean_or_zero(correct[minority]),
        "majority_accuracy": _mean_or_zero(correct[~minority]),
        "per_class": {f"class_{digit}": float(r) for digit, r in enumerate(recall)},
    }


def roc_auc_one_vs_rest(labels: np.ndarray, scores: np.ndarray) -> float:
    """Multi-class ROC AUC: for each class c present in `labels`, the AUC of telling class c from the rest by
    scores[:, c], then the unweighted mean over those classes (Buda et al., 2018, sec. 3.4; scikit-learn's
    roc_auc_score(multi_class="ovr", average="macro")). scores [N, C]: any per-class score that ranks like the
    softmax probability, such as log p_c. A class's AUC is the Mann-Whitney U statistic of its images' scores
    against the others' over the pairs, ties counting one half.
    """
    aucs = []
    for c in np.unique(labels):
        positive = labels == c
        n_pos, n_neg = int(positive.sum()), int((~positive).sum())
        if n_neg == 0:
            raise ValueError("ROC AUC needs at least two classes among the labels")
        rank_sum = average_ranks(scores[:, c])[positive].sum()
        aucs.append((rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
    return float(np.mean(aucs))


def average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks of `values` [N], tied values sharing the mean of their ranks."""
    order = np.argsort(values, kind="stable")
    _, first, counts = np.unique(values[order], return_index=True, return_counts=True)
    ranks = np.empty(len(values))
    ranks[order] = np.repeat(first + (counts + 1) / 2, counts)
    return ranks


def _mean_or_zero(values: np.ndarray) -> float:
    return float(values.mean()) if values.size else 0.0


def log_prior(class_counts: np.ndarray) -> np.ndarray:
    """log(n_c / sum n), an absent class counting as one image so that the log stays finite."""
    counts = np.maximum(np.asarray(class_counts, dtype=np.float64), 1.0)
    return np.log(counts / counts.sum())


def adjust_logits(logits: np.ndarray, class_counts: np.ndarray, tau: float) -> np.ndarray:
    """logits [N, C] - tau * log(prior [C]): post-hoc logit adjustment (Menon et al., 2021).

    Subtracting the log prior undoes the bias a model learns towards frequent classes; a class absent from the
    training set counts as one image, so that its logit stays finite.
    """
    return logits - tau * log_prior(class_counts)
