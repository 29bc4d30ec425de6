"""Stage `train_<variant>`: one training loop for every variant (`python -m stages.train --variant NAME`).

A variant (params.yaml `variants`) names its training set and its loss. Training is a list of phases, each a
loss with its hyperparameters and a number of epochs: cross-entropy is one phase, the focal curriculum one
phase per gamma. The model and the optimizer carry over from phase to phase.
"""

import argparse
import csv
import dataclasses
import functools
import math
import sys
import time
from pathlib import Path

import numpy as np
import paddle

from stages import params as P
from stages.checkpoints import remove_checkpoint, restore_checkpoint, save_checkpoint, training_fingerprint
from stages.cli import StageError, run_stage
from stages.data import (CHECKPOINT_DIR, MODEL_DIR, SUBSET_FILE, TRAIN_LOG_DIR, DataError, load_split, stream_rng,
                         to_model_input)
from stages.device import select_device
from stages.files import atomic_path, write_json
from stages.losses import LOSSES
from stages.model import LeNet

SHUFFLE_STREAM = 2  # random-stream key of the per-epoch shuffles (see data.stream_rng)


class TrainingDiverged(StageError):
    """The loss became NaN or infinite."""


@dataclasses.dataclass(frozen=True)
class Phase:
    loss: str  # a key of stages.losses.LOSSES
    epochs: int
    gamma: float | None = None  # the focal loss's gamma; None for losses without one

    def loss_fn(self):
        kwargs = {} if self.gamma is None else {"gamma": self.gamma}
        return functools.partial(LOSSES[self.loss], **kwargs)


def training_phases(variant: P.VariantParams, focal: P.FocalParams | None) -> list[Phase]:
    """The phases a variant trains through, in order."""
    if variant.loss == "focal_curriculum":
        return [Phase("focal", focal.epochs_per_gamma, gamma) for gamma in focal.gammas]
    return [Phase(variant.loss, variant.epochs)]


def create_train_state(train: P.TrainParams, seed: int) -> tuple[LeNet, paddle.optimizer.Optimizer]:
    """A fresh LeNet, its initial weights drawn from `seed`, and its Momentum SGD optimizer."""
    paddle.seed(seed)
    model = LeNet()
    optimizer = paddle.optimizer.Momentum(learning_rate=train.learning_rate, momentum=train.momentum,
                                          parameters=model.parameters())
    return model, optimizer


def train_model(*, images: np.ndarray, labels: np.ndarray, phases: list[Phase], train: P.TrainParams,
                seed: int, checkpoint_dir: Path | None = None) -> tuple[LeNet, list[dict]]:
    """Train a fresh LeNet on images [N, 1, 28, 28] float32 and labels [N] int64; return it and its log.

    The log has one row per epoch: epoch, gamma (focal phases), loss, train_accuracy, seconds, images_per_second.
    With checkpoint_dir, a checkpoint is saved after every epoch, and one left by an earlier run of the same
    configuration and data is resumed; the caller removes it once the outputs are written.
    """
    # Fresh generated names for layers and optimizer accumulators: a checkpoint's optimizer state is keyed by
    # them, so they must not depend on what this process created before.
    with paddle.utils.unique_name.guard():
        model, optimizer = create_train_state(train, seed)
        # The whole training set is put on the device once; batches are gathered from it.
        x_all, y_all = paddle.to_tensor(images), paddle.to_tensor(labels)
        schedule = [(index, epoch, phase) for index, phase in enumerate(phases) for epoch in range(phase.epochs)]
        fingerprint = training_fingerprint(images, labels, phases=phases, train=train, seed=seed)
        history = restore_checkpoint(checkpoint_dir, fingerprint, model, optimizer) if checkpoint_dir else []
        for phase_index, phase_epoch, phase in schedule[len(history):]:
            # A pure function of (seed, phase, epoch), so a resumed run shuffles exactly like an unbroken one.
            order = stream_rng(seed, SHUFFLE_STREAM, phase_index, phase_epoch).permutation(len(labels))
            start = time.perf_counter()
            loss, accuracy = train_epoch(model, optimizer, phase.loss_fn(), x_all, y_all, order, train.batch_size)
            seconds = time.perf_counter() - start
            row = {"epoch": len(history) + 1, **({} if phase.gamma is None else {"gamma": phase.gamma}),
                   "loss": loss, "train_accuracy": accuracy, "seconds": seconds,
                   "images_per_second": len(labels) / seconds}
            if not math.isfinite(loss):
                where = f"epoch {row['epoch']}" + ("" if phase.gamma is None else f" (gamma {phase.gamma})")
                raise TrainingDiverged(f"the training loss became {loss} at {where}; lower train.learning_rate "
                                       "or check the input scaling (data.pixel_range)")
            history.append(row)
            if checkpoint_dir:
                save_checkpoint(checkpoint_dir, fingerprint, model, optimizer, history)
            _report_progress(row, len(schedule), history)
    return model, history


def train_epoch(model, optimizer, loss_fn, x_all, y_all, order: np.ndarray, batch_size: int) -> tuple[float, float]:
    """One pass over the data in the given order; returns the mean loss and the training accuracy."""
    model.train()
    order = paddle.to_tensor(order)
    loss_sum = paddle.zeros([], dtype="float32")
    correct = paddle.zeros([], dtype="int64")
    for start in range(0, len(order), batch_size):
        batch = order[start:start + batch_size]
        x, y = paddle.gather(x_all, batch), paddle.gather(y_all, batch)
        logits = model(x)
        loss = loss_fn(logits, y)
        loss.backward()
        optimizer.step()
        optimizer.clear_grad()
        # Kept on the device: reading them every step would make the device wait for the host.
        loss_sum += loss.detach() * len(batch)
        correct += (logits.argmax(axis=-1) == y).astype("int64").sum()
    return loss_sum.item() / len(order), correct.item() / len(order)


def _report_progress(row: dict, total_epochs: int, history: list[dict]) -> None:
    mean_seconds = sum(r["seconds"] for r in history) / len(history)
    left = mean_seconds * (total_epochs - row["epoch"])
    gamma = f" gamma {row['gamma']:g}" if "gamma" in row else ""
    print(f"  epoch {row['epoch']}/{total_epochs}{gamma}: loss {row['loss']:.4f}, "
          f"train accuracy {row['train_accuracy']:.4f}, {row['images_per_second']:.0f} images/s, "
          f"{left / 60:.1f} min left", file=sys.stderr, flush=True)


def load_training_set(variant: P.VariantParams, data: P.DataParams) -> tuple[np.ndarray, np.ndarray]:
    """The variant's training images [N, 1, 28, 28] float32 and labels [N] int64."""
    images, labels = load_split("train", data.train_limit)
    if variant.train_set == "subset":
        try:
            indices = np.load(SUBSET_FILE)
        except FileNotFoundError:
            raise DataError(f"{SUBSET_FILE} is missing; run `dvc repro subset` first") from None
        if indices.size and indices.max() >= len(labels):
            raise DataError(f"{SUBSET_FILE} indexes image {indices.max()} of a {len(labels)}-image training "
                            "split: it was built for another data.train_limit; run `dvc repro subset`")
        images, labels = images[indices], labels[indices]
    return to_model_input(images, data.pixel_range), labels


def write_outputs(name: str, model: LeNet, history: list[dict], train_images: int) -> None:
    """Weights, the per-epoch log (a DVC plot), what was trained (read by evaluate) and how fast (DVC metrics),
    each written atomically. The timing lives in its own file so that a bit-identical retrain changes no
    file that evaluate depends on."""
    with atomic_path(MODEL_DIR / f"{name}.pdparams") as tmp:
        paddle.save(model.state_dict(), str(tmp))
    with atomic_path(TRAIN_LOG_DIR / f"{name}.csv") as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(history[0]))
        writer.writeheader()
        writer.writerows(history)
    seconds = sum(row["seconds"] for row in history)
    write_json(TRAIN_LOG_DIR / f"{name}.json", {"train_images": train_images, "epochs": len(history)})
    write_json(TRAIN_LOG_DIR / f"{name}_timing.json", {
        "seconds": round(seconds, 1), "images_per_second": round(train_images * len(history) / seconds, 1)})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", required=True, help="a key of `variants` in params.yaml")
    name = parser.parse_args().variant
    params = P.read_params()
    variants = P.variants(params)
    if name not in variants:
        raise P.ParamsError(f"--variant {name!r} is not in params.yaml `variants` ({sorted(variants)})")
    variant = variants[name]
    focal = P.section(params, "focal", P.FocalParams) if variant.loss == "focal_curriculum" else None
    train = P.section(params, "train", P.TrainParams)
    data = P.section(params, "data", P.DataParams)
    seed = P.seed(params)
    device = select_device(train.device)
    images, labels = load_training_set(variant, data)
    phases = training_phases(variant, focal)
    print(f"train {name}: {len(labels)} images, {sum(p.epochs for p in phases)} epochs on {device} "
          f"(Paddle {paddle.__version__})", file=sys.stderr)
    checkpoint_dir = CHECKPOINT_DIR / name
    model, history = train_model(images=images, labels=labels, phases=phases, train=train, seed=seed,
                                 checkpoint_dir=checkpoint_dir)
    write_outputs(name, model, history, len(labels))
    remove_checkpoint(checkpoint_dir)


if __name__ == "__main__":
    run_stage("train", main)
