"""Stage `train@<variant>`: one training loop for every variant (`python -m stages.train --variant NAME`).

A variant (params.yaml `variants`) names its training set, its loss (a remedy of stages.remedies, with its
hyperparameters in `losses`), its sampler and its epochs. Training runs through the remedy's phases with one
model and one optimizer; each epoch's batches come from the sampler and, for the report's per-batch protocol,
drop the minority digits from most batches. The log counts the distinct minority images seen so far.
"""

import argparse
import csv
import math
import sys
import time
from pathlib import Path

import numpy as np
import paddle

from stages import params as P
from stages.checkpoints import (
    remove_checkpoint,
    restore_checkpoint,
    save_checkpoint,
    training_fingerprint,
)
from stages.cli import StageError, run_stage
from stages.data import (
    CHECKPOINT_DIR,
    MODEL_DIR,
    TRAIN_LOG_DIR,
    load_split,
    load_training_set,
    stream_rng,
    to_model_input,
)
from stages.device import select_device
from stages.files import atomic_path, write_json
from stages.model import LeNet
from stages.remedies import Phase, cosine_scale, training_phases
from stages.samplers import SAMPLERS, batch_plan, expected_class_counts

SHUFFLE_STREAM = 2  # random-stream key of the per-epoch orders (see data.stream_rng)


class TrainingDiverged(StageError):
    """The loss became NaN or infinite."""


def create_train_state(train: P.TrainParams, seed: int,
                       head_scale: float | None = None) -> tuple[LeNet, paddle.optimizer.Optimizer]:
    """A fresh LeNet (cosine head when head_scale is set), its initial weights drawn from `seed`, and its
    Momentum SGD optimizer."""
    paddle.seed(seed)
    model = LeNet(cosine_scale=head_scale)
    optimizer = paddle.optimizer.Momentum(learning_rate=train.learning_rate, momentum=train.momentum,
                                          parameters=model.parameters())
    return model, optimizer


def train_model(*, images: np.ndarray, labels: np.ndarray, phases: list[Phase], train: P.TrainParams,
                seed: int, sampler: str = "shuffle", minority_classes: tuple[int, ...] = (),
                keep_minority_every: int = 1, head_scale: float | None = None,
                checkpoint_dir: Path | None = None) -> tuple[LeNet, list[dict]]:
    """Train a fresh LeNet on images [N, 1, 28, 28] float32 and labels [N] int64; return it and its log.

    The log has one row per epoch: epoch, the phase's scalar hyperparameters (gamma of a focal phase), loss,
    train_accuracy, images (trained on that epoch), distinct_minority_seen (so far), seconds,
    images_per_second. With checkpoint_dir, a checkpoint is saved after every epoch, and one left by an
    earlier run of the same configuration, code and data is resumed; the caller removes it afterwards.
    """
    is_minority = np.isin(labels, minority_classes)  # [N] bool

    def plan(phase_index: int, phase_epoch: int) -> tuple[np.ndarray, np.ndarray]:
        # A pure function of (seed, phase, epoch), so a resumed run draws exactly like an unbroken one.
        order = SAMPLERS[sampler](labels, stream_rng(seed, SHUFFLE_STREAM, phase_index, phase_epoch))
        return batch_plan(order, is_minority, batch_size=train.batch_size, keep_minority_every=keep_minority_every)

    # Fresh generated names for layers and optimizer accumulators: a checkpoint's optimizer state is keyed by
    # them, so they must not depend on what this process created before.
    with paddle.utils.unique_name.guard():
        model, optimizer = create_train_state(train, seed, head_scale)
        # The whole training set is put on the device once; batches are gathered from it.
        x_all, y_all = paddle.to_tensor(images), paddle.to_tensor(labels)
        schedule = [(index, epoch, phase) for index, phase in enumerate(phases) for epoch in range(phase.epochs)]
        fingerprint = training_fingerprint(images, labels, phases=phases, train=train, seed=seed, sampler=sampler,
                                           minority_classes=list(minority_classes),
                                           keep_minority_every=keep_minority_every, head_scale=head_scale)
        history = restore_checkpoint(checkpoint_dir, fingerprint, model, optimizer) if checkpoint_dir else []
        seen = np.zeros(len(labels), dtype=bool)  # images trained on so far
        for phase_index, phase_epoch, _ in schedule[:len(history)]:
            seen[plan(phase_index, phase_epoch)[0]] = True
        for phase_index, phase_epoch, phase in schedule[len(history):]:
            trained, batch_sizes = plan(phase_index, phase_epoch)
            start = time.perf_counter()
            loss, accuracy = train_epoch(model, optimizer, phase.loss_fn(), x_all, y_all, trained, batch_sizes)
            seconds = time.perf_counter() - start
            seen[trained] = True
            row = {"epoch": len(history) + 1, **phase.log_columns(), "loss": loss, "train_accuracy": accuracy,
                   "images": len(trained), "distinct_minority_seen": int(np.count_nonzero(seen & is_minority)),
                   "seconds": seconds, "images_per_second": len(trained) / seconds}
            if not math.isfinite(loss):
                raise TrainingDiverged(f"the training loss became {loss} at epoch {row['epoch']} "
                                       f"({phase.describe()}); lower train.learning_rate or check the input "
                                       "scaling (data.pixel_range)")
            history.append(row)
            if checkpoint_dir:
                save_checkpoint(checkpoint_dir, fingerprint, model, optimizer, history)
            _report_progress(row, len(schedule), history)
    return model, history


def train_epoch(model, optimizer, loss_fn, x_all, y_all, trained: np.ndarray,
                batch_sizes: np.ndarray) -> tuple[float, float]:
    """One pass over the images `trained` (indices, in order), cut into batches of `batch_sizes`; returns the
    mean loss and the training accuracy."""
    model.train()
    order = paddle.to_tensor(trained)
    loss_sum = paddle.zeros([], dtype="float32")
    correct = paddle.zeros([], dtype="int64")
    start = 0
    for size in batch_sizes.tolist():
        batch = order[start:start + size]
        start += size
        x, y = paddle.gather(x_all, batch), paddle.gather(y_all, batch)
        logits = model(x)
        loss = loss_fn(logits, y)
        loss.backward()
        optimizer.step()
        optimizer.clear_grad()
        # Kept on the device: reading them every step would make the device wait for the host.
        loss_sum += loss.detach() * size
        correct += (logits.argmax(axis=-1) == y).astype("int64").sum()
    return loss_sum.item() / len(trained), correct.item() / len(trained)


def _report_progress(row: dict, total_epochs: int, history: list[dict]) -> None:
    mean_seconds = sum(r["seconds"] for r in history) / len(history)
    left = mean_seconds * (total_epochs - row["epoch"])
    gamma = f" gamma {row['gamma']:g}" if "gamma" in row else ""
    print(f"  epoch {row['epoch']}/{total_epochs}{gamma}: loss {row['loss']:.4f}, "
          f"train accuracy {row['train_accuracy']:.4f}, {row['images_per_second']:.0f} images/s, "
          f"{left / 60:.1f} min left", file=sys.stderr, flush=True)


def write_outputs(name: str, model: LeNet, history: list[dict], summary: dict) -> None:
    """Weights, the per-epoch log (a DVC plot), what was trained (DVC metrics, read by evaluate) and how
    fast, each written atomically. The timing lives in its own file so that a bit-identical retrain changes
    no file that evaluate depends on."""
    with atomic_path(MODEL_DIR / f"{name}.pdparams") as tmp:
        paddle.save(model.state_dict(), str(tmp))
    with atomic_path(TRAIN_LOG_DIR / f"{name}.csv") as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(dict.fromkeys(key for row in history for key in row)))
        writer.writeheader()
        writer.writerows(history)
    seconds = sum(row["seconds"] for row in history)
    images = sum(row["images"] for row in history)
    write_json(TRAIN_LOG_DIR / f"{name}.json", {**summary, "epochs": len(history), "images_trained": images,
                                                  "distinct_minority_seen": history[-1]["distinct_minority_seen"]})
    write_json(TRAIN_LOG_DIR / f"{name}_timing.json", {"seconds": round(seconds, 1),
                                                       "images_per_second": round(images / seconds, 1)})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", required=True, help="a key of `variants` in params.yaml")
    name = parser.parse_args().variant
    params = P.read_params()
    variants = P.variants(params)
    if name not in variants:
        raise P.ParamsError(f"--variant {name!r} is not in params.yaml `variants` ({sorted(variants)})")
    variant = variants[name]
    loss_params = P.loss_params(params, variant.loss)
    train = P.section(params, "train", P.TrainParams)
    data = P.section(params, "data", P.DataParams)
    seed = P.seed(params)
    device = select_device(train.device)
    images, labels = load_split("train", data.train_limit)
    training_set = load_training_set(variant.train_set, len(labels))
    images, labels = to_model_input(images[training_set.indices], data.pixel_range), labels[training_set.indices]
    is_minority = np.isin(labels, training_set.minority_classes)
    class_counts = expected_class_counts(labels, is_minority, sampler=variant.sampler,
                                         keep_minority_every=training_set.keep_minority_every,
                                         batch_size=train.batch_size)
    phases = training_phases(variant, loss_params, class_counts)
    print(f"train {name}: {len(labels)} images ({variant.train_set}, {variant.sampler}), {variant.loss}, "
          f"{sum(p.epochs for p in phases)} epochs on {device} (Paddle {paddle.__version__})", file=sys.stderr)
    checkpoint_dir = CHECKPOINT_DIR / name
    model, history = train_model(images=images, labels=labels, phases=phases, train=train, seed=seed,
                                 sampler=variant.sampler, minority_classes=training_set.minority_classes,
                                 keep_minority_every=training_set.keep_minority_every,
                                 head_scale=cosine_scale(variant, loss_params), checkpoint_dir=checkpoint_dir)
    summary = {"train_images": len(labels), "seed": seed, "keep_minority_every": training_set.keep_minority_every,
               "minority_images": int(np.count_nonzero(is_minority))}
    write_outputs(name, model, history, summary)
    remove_checkpoint(checkpoint_dir)


if __name__ == "__main__":
    run_stage("train", main)
