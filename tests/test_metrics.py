"""Confusion matrix, classification metrics and post-hoc logit adjustment against small examples worked out by
hand."""

import math

import numpy as np
import pytest

from stages.lib.metrics import (adjust_logits, average_ranks, classification_metrics, confusion_matrix, log_prior,
                                roc_auc_one_vs_rest)

LABELS = np.array([0, 0, 0, 1, 1, 2, 2, 2])
PREDICTIONS = np.array([0, 1, 1, 1, 1, 2, 2, 0])
# Rows are true classes, columns predictions:
#   class 0: 1 right, 2 taken for 1;  class 1: 2 right;  class 2: 2 right, 1 taken for 0.
CONFUSION = [[1, 2, 0],
             [0, 2, 0],
             [1, 0, 2]]


def test_confusion_matrix():
    assert confusion_matrix(LABELS, PREDICTIONS, 3).tolist() == CONFUSION


def test_confusion_matrix_has_a_row_and_column_for_an_absent_class():
    matrix = confusion_matrix(LABELS, PREDICTIONS, 4)
    assert matrix.shape == (4, 4)
    assert matrix[:3, :3].tolist() == CONFUSION
    assert matrix[3].sum() == matrix[:, 3].sum() == 0


def test_classification_metrics():
    metrics = classification_metrics(LABELS, PREDICTIONS, num_classes=3, minority_classes=(0,))
    # recall = diagonal / row sums = 1/3, 2/2, 2/3; precision = diagonal / column sums = 1/2, 2/4, 2/2.
    # F1 = 2PR / (P + R): class 0: (1/3) / (5/6) = 2/5; class 1: 1 / (3/2) = 2/3; class 2: (4/3) / (5/3) = 4/5.
    assert metrics["accuracy"] == pytest.approx(5 / 8)  # 1 + 2 + 2 of 8 right
    assert metrics["balanced_accuracy"] == pytest.approx((1 / 3 + 1 + 2 / 3) / 3)  # = 2/3
    assert metrics["macro_f1"] == pytest.approx((2 / 5 + 2 / 3 + 4 / 5) / 3)  # = 28/45
    assert metrics["minority_accuracy"] == pytest.approx(1 / 3)  # class 0: 1 of 3
    assert metrics["majority_accuracy"] == pytest.approx(4 / 5)  # classes 1 and 2: 4 of 5
    assert metrics["per_class"] == pytest.approx({"class_0": 1 / 3, "class_1": 1.0, "class_2": 2 / 3})


def test_absent_class_counts_as_zero_in_the_means():
    # A fourth class that never occurs: recall 0 and F1 0, still averaged in; no image is in the minority.
    metrics = classification_metrics(LABELS, PREDICTIONS, num_classes=4, minority_classes=(3,))
    assert metrics["accuracy"] == pytest.approx(5 / 8)
    assert metrics["balanced_accuracy"] == pytest.approx((1 / 3 + 1 + 2 / 3 + 0) / 4)  # = 1/2
    assert metrics["macro_f1"] == pytest.approx((2 / 5 + 2 / 3 + 4 / 5 + 0) / 4)  # = 7/15
    assert metrics["minority_accuracy"] == 0.0
    assert metrics["majority_accuracy"] == pytest.approx(5 / 8)
    assert list(metrics["per_class"]) == ["class_0", "class_1", "class_2", "class_3"]
    assert metrics["per_class"]["class_3"] == 0.0


def test_metrics_are_plain_floats():
    metrics = classification_metrics(LABELS, PREDICTIONS, num_classes=3, minority_classes=(0,))
    assert all(type(v) is float for k, v in metrics.items() if k != "per_class")
    assert all(type(v) is float for v in metrics["per_class"].values())


def test_logit_adjustment_subtracts_tau_times_the_log_prior():
    # Prior 0.9 / 0.1 (counts 90 and 10): adjusted = [2 - ln 0.9, 1.5 - ln 0.1] = [2.1054, 3.8026] -> class 1.
    logits = np.array([[2.0, 1.5]])
    adjusted = adjust_logits(logits, np.array([90, 10]), tau=1.0)
    np.testing.assert_allclose(adjusted, [[2 - np.log(0.9), 1.5 - np.log(0.1)]])
    assert adjusted.argmax() == 1 and logits.argmax() == 0
    # tau scales the shift; tau = 0 leaves the logits alone; a class never seen counts as one image.
    np.testing.assert_allclose(adjust_logits(logits, [90, 10], tau=0.5), [[2 - 0.5 * np.log(0.9),
                                                                            1.5 - 0.5 * np.log(0.1)]])
    np.testing.assert_array_equal(adjust_logits(logits, [90, 10], tau=0.0), logits)
    assert np.isfinite(adjust_logits(logits, [100, 0], tau=1.0)).all()


def test_log_prior_by_hand():
    np.testing.assert_allclose(log_prior(np.array([25, 75])), [math.log(0.25), math.log(0.75)], rtol=1e-12)
    # An absent class counts as one image: [1, 3, 1, 4] of 9.
    np.testing.assert_allclose(log_prior(np.array([1, 3, 0, 4])), np.log([1 / 9, 3 / 9, 1 / 9, 4 / 9]),
                               rtol=1e-12)


# --- multi-class ROC AUC ------------------------------------------------------------------------------------

# Six images of three classes; scores[:, c] is class c's score. By hand, counting the (positive, negative) pairs
# where the positive scores higher (a tie counts one half):
#   class 0, positives 0.9 and 0.4 against 0.5, 0.1, 0.4, 0.2: 0.9 wins 4; 0.4 wins 2 and ties 1 -> 6.5 / 8
#   class 1, positives 0.8 and 0.7 against 0.1, 0.2, 0.3, 0.6: both win all 4 -> 8 / 8
#   class 2, positives 0.1 and 0.3 against 0.2, 0.4, 0.5, 0.6: 0.1 wins 0; 0.3 wins 1 -> 1 / 8
# The mean over the three classes: (0.8125 + 1 + 0.125) / 3.
AUC_LABELS = np.array([0, 0, 1, 1, 2, 2])
AUC_SCORES = np.array([[0.9, 0.1, 0.2],
                       [0.4, 0.2, 0.4],
                       [0.5, 0.8, 0.5],
                       [0.1, 0.7, 0.6],
                       [0.4, 0.3, 0.1],
                       [0.2, 0.6, 0.3]])


def test_roc_auc_by_hand():
    assert roc_auc_one_vs_rest(AUC_LABELS, AUC_SCORES) == pytest.approx((0.8125 + 1 + 0.125) / 3, abs=1e-12)


def test_roc_auc_agrees_with_the_mann_whitney_u_of_scipy():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    labels = rng.integers(4, size=300)
    scores = np.round(rng.random((300, 4)) + 0.3 * np.eye(4)[labels], 2)  # rounded: many ties
    expected = np.mean([stats.mannwhitneyu(scores[labels == c, c], scores[labels != c, c]).statistic
                        / (np.sum(labels == c) * np.sum(labels != c)) for c in range(4)])
    assert roc_auc_one_vs_rest(labels, scores) == pytest.approx(expected, abs=1e-12)


def test_roc_auc_ignores_a_per_class_constant_but_not_a_softmax_renormalisation():
    rng = np.random.default_rng(1)
    labels = rng.integers(3, size=200)
    logits = rng.normal(size=(200, 3)) + 1.5 * np.eye(3)[labels]
    log_probs = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    counts = np.array([500, 50, 5])
    # Thresholding: log p_c - log prior_c, a constant per class: each class's ranking, so the AUC, is unchanged.
    divided = log_probs - log_prior(counts)
    assert roc_auc_one_vs_rest(labels, divided) == roc_auc_one_vs_rest(labels, log_probs)
    # The same, renormalised through a softmax, re-ranks the images of each class: another AUC.
    renormalised = divided - np.log(np.exp(divided).sum(axis=1, keepdims=True))
    assert roc_auc_one_vs_rest(labels, renormalised) != pytest.approx(roc_auc_one_vs_rest(labels, log_probs), abs=1e-6)


def test_average_ranks_share_ties():
    np.testing.assert_array_equal(average_ranks(np.array([0.3, 0.1, 0.3, 0.2, 0.3])), [4, 1, 4, 2, 4])


def test_roc_auc_of_a_single_class_is_an_error():
    with pytest.raises(ValueError, match="at least two classes"):
        roc_auc_one_vs_rest(np.zeros(4, dtype=int), np.zeros((4, 2)))
