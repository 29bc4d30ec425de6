"""Stage `evaluate@<variant>`: one trained variant on the test images (`python -m stages.evaluate --variant NAME`).

Writes metrics/<variant>.json (DVC metrics: the test metrics, the post-hoc logit-adjusted ones, and what the
model was trained on) and metrics/confusion/<variant>.csv (one row per test image, for DVC's confusion plot).
"""

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np
import paddle

from stages import params as P
from stages.cli import run_stage
from stages.data import (
    MODEL_DIR,
    NUM_CLASSES,
    TRAIN_LOG_DIR,
    DataError,
    load_split,
    load_training_set,
    to_model_input,
)
from stages.device import select_device
from stages.files import atomic_path, write_json
from stages.metrics import classification_metrics
from stages.model import LeNet
from stages.remedies import cosine_scale, log_prior
from stages.samplers import expected_class_counts

METRICS_DIR = Path("metrics")
CONFUSION_DIR = METRICS_DIR / "confusion"
# What evaluate copies from the training summary into metrics/<variant>.json, so that one file describes a run.
TRAINING_KEYS = ("train_images", "epochs", "images_trained", "minority_images", "distinct_minority_seen",
                 "keep_minority_every", "seed")


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

    `logit_adjusted` holds the same metrics for the post-hoc logit-adjusted predictions.
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
    return {**metrics, "test_loss": test_loss, "logit_adjusted": adjusted}, predictions


def adjust_logits(logits: np.ndarray, class_counts: np.ndarray, tau: float) -> np.ndarray:
    """logits [N, C] - tau * log(prior [C]): post-hoc logit adjustment (Menon et al., 2021).

    Subtracting the log prior undoes the bias a model learns towards frequent classes; a class absent from the
    training set counts as one image, so that its logit stays finite.
    """
    return logits - tau * log_prior(class_counts)


def training_class_counts(variant: P.VariantParams, train_limit: int | None, batch_size: int) -> np.ndarray:
    """Images of each class [10] an epoch of the variant's training saw on average: its learned prior."""
    labels = load_split("train", train_limit)[1]
    training_set = load_training_set(variant.train_set, len(labels))
    labels = labels[training_set.indices]
    return expected_class_counts(labels, np.isin(labels, training_set.minority_classes), sampler=variant.sampler,
                                 keep_minority_every=training_set.keep_minority_every, batch_size=batch_size)


def load_model(name: str, head_scale: float | None) -> LeNet:
    path = MODEL_DIR / f"{name}.pdparams"
    if not path.exists():
        raise DataError(f"{path} is missing; run `dvc repro train@{name}` first")
    model = LeNet(cosine_scale=head_scale)
    model.set_state_dict(paddle.load(str(path)))
    return model


def write_confusion(name: str, labels: np.ndarray, predictions: np.ndarray) -> None:
    with atomic_path(CONFUSION_DIR / f"{name}.csv") as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["actual", "predicted"])
        writer.writerows(zip(labels.tolist(), predictions.tolist()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", required=True, help="a key of `variants` in params.yaml")
    name = parser.parse_args().variant
    params = P.read_params()
    variants = P.variants(params)
    if name not in variants:
        raise P.ParamsError(f"--variant {name!r} is not in params.yaml `variants` ({sorted(variants)})")
    variant = variants[name]
    data = P.section(params, "data", P.DataParams)
    minority = P.section(params, "subset", P.SubsetParams).minority_classes
    evaluate = P.section(params, "evaluate", P.EvaluateParams)
    train = P.section(params, "train", P.TrainParams)
    device = select_device(train.device)
    model = load_model(name, cosine_scale(variant, P.loss_params(params, variant.loss)))
    images, labels = load_split("test", data.test_limit)
    metrics, predictions = evaluate_model(model, to_model_input(images, data.pixel_range), labels,
                                          batch_size=evaluate.batch_size, minority_classes=minority,
                                          tau=evaluate.logit_adjustment_tau,
                                          train_class_counts=training_class_counts(variant, data.train_limit,
                                                                             train.batch_size))
    summary = json.loads((TRAIN_LOG_DIR / f"{name}.json").read_text())
    write_json(METRICS_DIR / f"{name}.json", {**metrics, **{key: summary[key] for key in TRAINING_KEYS}})
    write_confusion(name, labels, predictions)
    print(f"evaluate {name} on {device}: accuracy {metrics['accuracy']:.4f}, digits {minority} "
          f"{metrics['minority_accuracy']:.4f}; logit-adjusted {metrics['logit_adjusted']['accuracy']:.4f}",
          file=sys.stderr)


if __name__ == "__main__":
    run_stage("evaluate", main)
