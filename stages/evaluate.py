"""Stage `evaluate`: every trained variant on the test images.

Writes metrics/<variant>.json (DVC metrics), metrics/confusion/<variant>.csv (one row per test image, for
DVC's confusion-matrix plot) and metrics/results.md (the variants beside the course report's numbers).
"""

import csv
import json
import sys
from pathlib import Path

import numpy as np
import paddle

from stages import params as P
from stages.cli import run_stage
from stages.data import MODEL_DIR, NUM_CLASSES, TRAIN_LOG_DIR, DataError, load_split, to_model_input
from stages.device import select_device
from stages.files import atomic_path, write_json, write_text
from stages.metrics import classification_metrics
from stages.model import LeNet
from stages.subset import SUBSET_METRICS

METRICS_DIR = Path("metrics")
CONFUSION_DIR = METRICS_DIR / "confusion"
RESULTS_TABLE = METRICS_DIR / "results.md"
# Test accuracy (%) the course report gives for its three models; a reference, not a parameter.
REPORT_ACCURACY = {"baseline": 98.7, "reduced": 92.0, "focal": 98.0}


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
    counts = np.maximum(np.asarray(class_counts, dtype=np.float64), 1.0)
    return logits - tau * np.log(counts / counts.sum())


def training_class_counts(variant: P.VariantParams, train_limit: int | None) -> np.ndarray:
    """Images per class [10] in the variant's training set: the subset's counts, or the whole split's."""
    if variant.train_set == "subset":
        per_class = json.loads(Path(SUBSET_METRICS).read_text())["per_class"]
        return np.array([per_class[f"class_{digit}"] for digit in range(NUM_CLASSES)])
    return np.bincount(load_split("train", train_limit)[1], minlength=NUM_CLASSES)


def load_model(name: str) -> LeNet:
    path = MODEL_DIR / f"{name}.pdparams"
    if not path.exists():
        raise DataError(f"{path} is missing; run `dvc repro train_{name}` first")
    model = LeNet()
    model.set_state_dict(paddle.load(str(path)))
    return model


def results_table(results: dict[str, dict], minority_classes: tuple[int, ...]) -> str:
    """Markdown: one row per variant, accuracies in %, with the report's accuracy beside ours."""
    minority = ",".join(map(str, minority_classes))
    lines = [f"| variant | training images | epochs | test accuracy | digits {minority} | other digits "
             f"| balanced accuracy | macro-F1 | logit-adjusted accuracy | its digits {minority} | report |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, m in results.items():
        report = f"{REPORT_ACCURACY[name]:.1f}" if name in REPORT_ACCURACY else "-"
        adjusted = m["logit_adjusted"]
        lines.append(f"| {name} | {m['train_images']} | {m['epochs']} | {100 * m['accuracy']:.2f} "
                     f"| {100 * m['minority_accuracy']:.2f} | {100 * m['majority_accuracy']:.2f} "
                     f"| {100 * m['balanced_accuracy']:.2f} | {100 * m['macro_f1']:.2f} "
                     f"| {100 * adjusted['accuracy']:.2f} | {100 * adjusted['minority_accuracy']:.2f} | {report} |")
    return "\n".join(lines) + "\n"


def write_confusion(name: str, labels: np.ndarray, predictions: np.ndarray) -> None:
    with atomic_path(CONFUSION_DIR / f"{name}.csv") as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["actual", "predicted"])
        writer.writerows(zip(labels.tolist(), predictions.tolist()))


def main() -> None:
    params = P.read_params()
    data = P.section(params, "data", P.DataParams)
    minority = P.section(params, "subset", P.SubsetParams).minority_classes
    evaluate = P.section(params, "evaluate", P.EvaluateParams)
    variants = P.variants(params)
    device = select_device(P.section(params, "train", P.TrainParams).device)
    images, labels = load_split("test", data.test_limit)
    images = to_model_input(images, data.pixel_range)
    results, predictions_by_name = {}, {}
    for name, variant in variants.items():
        metrics, predictions = evaluate_model(load_model(name), images, labels, batch_size=evaluate.batch_size,
                                              minority_classes=minority, tau=evaluate.logit_adjustment_tau,
                                              train_class_counts=training_class_counts(variant, data.train_limit))
        summary = json.loads((TRAIN_LOG_DIR / f"{name}.json").read_text())
        results[name] = {**metrics, "train_images": summary["train_images"], "epochs": summary["epochs"]}
        predictions_by_name[name] = predictions
        print(f"evaluate {name} on {device}: accuracy {metrics['accuracy']:.4f}, digits {minority} "
              f"{metrics['minority_accuracy']:.4f}; logit-adjusted {metrics['logit_adjusted']['accuracy']:.4f}",
              file=sys.stderr)
    # Written only once every variant evaluated, so a failure leaves the previous results intact.
    for name, metrics in results.items():
        write_json(METRICS_DIR / f"{name}.json", metrics)
        write_confusion(name, labels, predictions_by_name[name])
    write_text(RESULTS_TABLE, results_table(results, minority))


if __name__ == "__main__":
    run_stage("evaluate", main)
