"""Stage `evaluate@<variant>`: one trained variant on the test images (`python -m stages.evaluate --variant NAME`).

Reads the model and what its training stage wrote about it (metrics/train/<variant>.json: the class prior it
learned, its minority digits, its classifier head, the params it was trained with), never the training data.
Writes metrics/<variant>.json (DVC metrics: the test metrics, or with validation.tune those of the images its
training set held out, the post-hoc logit-adjusted ones, what the model was trained on, and `run`: the run's
identity as numbers, booleans and strings, which `dvc exp show` carries) and
metrics/confusion/<variant>.csv (one row per test image, for DVC's confusion plot).
"""

import argparse
import csv
import json
import sys

import numpy as np
import paddle

from stages.lib import params as P
from stages.lib.cli import run_stage
from stages.lib.data import NUM_CLASSES, DataError, load_split, load_validation_set, to_model_input
from stages.lib.device import select_device
from stages.lib.files import atomic_path, write_json
from stages.lib.metrics import adjust_logits, classification_metrics, roc_auc_one_vs_rest
from stages.lib.model import LeNet
from stages.lib.paths import confusion_path, model_path, test_metrics_path, train_summary_path

# What evaluate copies from the training summary into metrics/<variant>.json, so that one file describes a run.
TRAINING_KEYS = ("train_images", "epochs", "images_trained", "minority_classes", "minority_images",
                 "distinct_minority_seen", "keep_minority_every", "seed")

def predict_logits(model: LeNet, images: np.ndarray, batch_size: int) -> np.ndarray:
    """Logits [N, 10] float32 for images [N, 1, 28, 28] float32."""
    model.eval()
    outputs = []
    with paddle.no_grad():
        for start in range(0, len(images), batch_size):
            outputs.append(model(paddle.to_tensor(images[start:start + batch_size])).numpy())
    return np.concatenate(outputs)


def evaluate_model(model: LeNet, images: np.ndarray, labels: np.ndarray, *, batch_size: int,
                   minority_classes: tuple[int, ...], train_class_counts: np.ndarray,
                   tau: float) -> tuple[dict, np.ndarray]:
    """The metrics of `model` on (images, labels), and its predicted class per image.

    `logit_adjusted` holds the same metrics for the post-hoc logit-adjusted predictions, with train_class_counts
    as the prior. `roc_auc` ranks the images by each class's softmax probability, the model's P(c | x) (a raw
    logit is not comparable across images: the softmax ignores a per-image shift). Thresholding divides that
    probability by a per-class constant, which leaves each class's ranking and so the AUC unchanged (Buda et al.,
    2018): the AUC measures the ranking, the accuracies the decisions. Ranking the adjusted probabilities
    renormalised through a softmax would change it, and is not done.
    """
    logits = predict_logits(model, images, batch_size).astype(np.float64)
    # Mean cross-entropy, -log softmax(logits)[label], computed stably by subtracting each row's max.
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    test_loss = float(-log_probs[np.arange(len(labels)), labels].mean())
    predictions = logits.argmax(axis=1)
    metrics = classification_metrics(labels, predictions, num_classes=NUM_CLASSES,
                                     minority_classes=minority_classes)
    adjusted = classification_metrics(labels, adjust_logits(logits, train_class_counts, tau).argmax(axis=1),
                                      num_classes=NUM_CLASSES, minority_classes=minority_classes)
    adjusted.pop("per_class")
    roc_auc = roc_auc_one_vs_rest(labels, log_probs)  # log p_c ranks like p_c, with fewer ties near 1
    return {**metrics, "roc_auc": roc_auc, "test_loss": test_loss, "logit_adjusted": adjusted}, predictions


def run_record(name: str, trained: dict, validation: bool, evaluate: P.EvaluateParams) -> dict:
    """What makes this run this run, as data (a report labels runs from it and never parses a label): the
    variant, its seed, whether it was scored on held-out training images, whether it trained under the
    report's per-batch protocol, the post-hoc tau and prior, and every param that determined the model."""
    return {"variant": name, "seed": trained["seed"], "validation": validation,
            "per_batch": trained["keep_minority_every"] > 1, "tau": evaluate.logit_adjustment_tau,
            "prior": evaluate.logit_adjustment_prior, "params": trained["params"]}


def read_training_summary(name: str) -> dict:
    """metrics/train/<name>.json: what the training stage trained on (its class prior, minority digits, head)."""
    path = train_summary_path(name)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise DataError(f"{path} is missing; run `dvc repro train@{name}` first") from None
    except json.JSONDecodeError as exc:
        raise DataError(f"{path} is not valid JSON ({exc}); run `dvc repro -f train@{name}`") from None


def load_model(name: str, head_scale: float | None) -> LeNet:
    path = model_path(name)
    if not path.exists():
        raise DataError(f"{path} is missing; run `dvc repro train@{name}` first")
    model = LeNet(cosine_scale=head_scale)
    model.set_state_dict(paddle.load(str(path)))
    return model


def write_confusion(name: str, labels: np.ndarray, predictions: np.ndarray) -> None:
    with atomic_path(confusion_path(name)) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["actual", "predicted"])
        writer.writerows(zip(labels.tolist(), predictions.tolist()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", required=True, help="a key of `variants` in params.yaml")
    name = parser.parse_args().variant
    params = P.read_params()
    data = P.section(params, "data", P.DataParams)
    evaluate = P.section(params, "evaluate", P.EvaluateParams)
    device = select_device(P.section(params, "train", P.TrainParams).device)["device"]
    trained = read_training_summary(name)
    model = load_model(name, trained["head_scale"])
    tuning = P.section(params, "validation", P.ValidationParams).tune
    # While tuning, the images its training set held out; the test set is read only for chosen settings.
    images, labels = (load_validation_set(trained["train_set"], data.train_limit) if tuning
                      else load_split("test", data.test_limit))
    minority = tuple(trained["minority_classes"])
    prior_key = P.LOGIT_ADJUSTMENT_PRIORS[evaluate.logit_adjustment_prior]
    metrics, predictions = evaluate_model(model, to_model_input(images, data.pixel_range), labels,
                                          batch_size=evaluate.batch_size, minority_classes=minority,
                                          train_class_counts=np.array(trained[prior_key]),
                                          tau=evaluate.logit_adjustment_tau)
    write_json(test_metrics_path(name), {**metrics, **{key: trained[key] for key in TRAINING_KEYS},
                                         "run": run_record(name, trained, tuning, evaluate)})
    write_confusion(name, labels, predictions)
    print(f"evaluate {name} on {device}, {'validation' if tuning else 'test'} images: accuracy "
          f"{metrics['accuracy']:.4f}, digits {list(minority)} {metrics['minority_accuracy']:.4f}; ROC AUC "
          f"{metrics['roc_auc']:.4f}; logit-adjusted {metrics['logit_adjusted']['accuracy']:.4f}", file=sys.stderr)


if __name__ == "__main__":
    run_stage("evaluate", main)
