"""Stage `train@<variant>`: one training loop for every variant (`python -m stages.train --variant NAME`).

A variant (params.yaml `variants`) names its training set, its remedy (stages.lib.remedies, with its
hyperparameters in `losses`), its sampler and its epochs. Training runs through the remedy's phases with one
model and one optimizer; each epoch's batches come from the sampler (the phase's own, if it names one) and,
for the report's per-batch protocol, drop the minority digits from most batches. `train` adds what any
variant can use: a learning-rate warm-up, gradient clipping, random-shift augmentation and an image budget
(epochs of a fixed number of images). Progress, with images/s, goes to stderr; what is written is a pure
function of params, code, data and the device record, so a rerun gives the same bytes.
"""

import argparse
import csv
import functools
import math
import sys
import time
from pathlib import Path

import numpy as np
import paddle

from stages.lib import params as P
from stages.lib.augment import ShiftAugmenter
from stages.lib.checkpoints import remove_checkpoint, restore_checkpoint, save_checkpoint, training_fingerprint
from stages.lib.cli import StageError, run_stage
from stages.lib.data import NUM_CLASSES, TrainingSet, load_training_set
from stages.lib.device import select_device
from stages.lib.diagnostics import feature_diagnostics
from stages.lib.files import atomic_path, write_json
from stages.lib.model import LeNet
from stages.lib.paths import CHECKPOINT_DIR, model_path, train_log_path, train_summary_path
from stages.lib.remedies import Phase
from stages.lib.samplers import SAMPLERS, Sampler, batch_plan, epoch_order, expected_class_counts
from stages.lib.streams import Stream, stream_rng
from stages.lib.variants import Variant, load_variant, run_params

PROBE_IMAGES = 1000  # the first training images, on which the feature diagnostics are measured each epoch


class TrainingDiverged(StageError):
    """The loss became NaN or infinite."""


def create_train_state(train: P.TrainParams, seed: int,
                       head_scale: float | None = None) -> tuple[LeNet, paddle.optimizer.Optimizer]:
    """A fresh LeNet (cosine head when head_scale is set), its initial weights drawn from `seed`, and its
    Momentum SGD optimizer."""
    paddle.seed(seed)
    model = LeNet(cosine_scale=head_scale)
    clip = paddle.nn.ClipGradByGlobalNorm(train.grad_clip_norm) if train.grad_clip_norm else None
    optimizer = paddle.optimizer.Momentum(learning_rate=train.learning_rate, momentum=train.momentum,
                                          parameters=model.parameters(), grad_clip=clip)
    return model, optimizer


def warmup_rates(train: P.TrainParams, epoch: int, num_batches: int) -> list[float] | None:
    """The learning rate of each of the epoch's batches (0-based epoch) during the linear warm-up, rising to
    train.learning_rate at the end of epoch warmup_epochs; None once it is over (the full rate)."""
    if epoch >= train.warmup_epochs:
        return None
    return [train.learning_rate * (epoch + (b + 1) / num_batches) / train.warmup_epochs for b in range(num_batches)]


def start_classifier_phase(model: LeNet, optimizer, seed: int) -> None:
    """cRT (Kang et al., 2020): a fresh classifier, drawn as Paddle initialises a Linear layer (Xavier uniform
    weights, zero bias) but from the seed's own stream so a resumed run draws the same, and no momentum left
    from the old one."""
    weight = model.fc2.weight  # [64, C]
    limit = np.sqrt(6.0 / sum(weight.shape))
    rng = stream_rng(seed, Stream.CLASSIFIER)
    weight.set_value(rng.uniform(-limit, limit, size=weight.shape).astype(np.float32))
    classifier = [weight]
    if model.fc2.bias is not None:
        model.fc2.bias.set_value(np.zeros(model.fc2.bias.shape, dtype=np.float32))
        classifier.append(model.fc2.bias)
    velocity = optimizer._accumulators.get("velocity", {})  # Paddle's Momentum state, per parameter name
    for parameter in classifier:
        if parameter.name in velocity:
            velocity[parameter.name].set_value(paddle.zeros_like(velocity[parameter.name]))


def freeze_body(model: LeNet, frozen: bool) -> None:
    """Only the classifier trains when frozen: the optimizer skips parameters that stop the gradient."""
    for name, parameter in model.named_parameters():
        if not name.startswith("fc2."):
            parameter.stop_gradient = frozen


def train_model(training_set: TrainingSet, phases: list[Phase], train: P.TrainParams, *, seed: int,
                sampler: Sampler, head_scale: float | None = None, images_per_epoch: int | None = None,
                checkpoint_dir: Path | None = None, runtime: dict | None = None) -> tuple[LeNet, list[dict]]:
    """Train a fresh LeNet on `training_set` through `phases`; return it and its log.

    An epoch is one pass of the sampler, or with images_per_epoch (a variant's image budget over its epochs)
    that many images, from as many passes as it takes.

    The log has one row per epoch: epoch, the phase's scalar hyperparameters (gamma of a focal phase), loss,
    train_accuracy, images (trained on that epoch) and distinct_minority_seen (so far). With checkpoint_dir, a
    checkpoint is saved after every epoch, and one left by an earlier run of the same configuration, code,
    data and runtime (the device record of select_device) is resumed; the caller removes it afterwards.
    """
    labels, is_minority = training_set.labels, training_set.is_minority

    def plan(phase_index: int, phase_epoch: int, phase: Phase) -> tuple[np.ndarray, np.ndarray]:
        # A pure function of (seed, phase, epoch), so a resumed run draws exactly like an unbroken one.
        order = epoch_order(SAMPLERS[phase.sampler] if phase.sampler else sampler, labels,
                            lambda *pass_key: stream_rng(seed, Stream.SHUFFLE, phase_index, phase_epoch, *pass_key),
                            stream_rng(seed, Stream.UNDERSAMPLE), images_per_epoch)
        return batch_plan(order, is_minority, batch_size=train.batch_size,
                          keep_minority_every=training_set.keep_minority_every)

    augmenter = (ShiftAugmenter(training_set.images, train.augment_shift_px, training_set.background)
                 if train.augment_shift_px else None)

    # Fresh generated names for layers and optimizer accumulators: a checkpoint's optimizer state is keyed by
    # them, so they must not depend on what this process created before.
    with paddle.utils.unique_name.guard():
        model, optimizer = create_train_state(train, seed, head_scale)
        # The whole training set is put on the device once; batches are gathered from it.
        x_all, y_all = paddle.to_tensor(training_set.images), paddle.to_tensor(labels)
        probe = x_all[:PROBE_IMAGES]
        schedule = [(index, epoch, phase) for index, phase in enumerate(phases) for epoch in range(phase.epochs)]
        fingerprint = training_fingerprint(training_set.images, labels, phases=phases, train=train, seed=seed,
                                           sampler=sampler, minority_classes=training_set.minority_classes,
                                           keep_minority_every=training_set.keep_minority_every,
                                           head_scale=head_scale, images_per_epoch=images_per_epoch,
                                           runtime=runtime)
        progress = restore_checkpoint(checkpoint_dir, fingerprint, model, optimizer, len(labels))
        for phase_index, phase_epoch, phase in schedule[len(progress.history):]:
            trained, batch_sizes = plan(phase_index, phase_epoch, phase)
            if phase.classifier_only and phase_epoch == 0:
                start_classifier_phase(model, optimizer, seed)
            freeze_body(model, phase.classifier_only)
            x_epoch = (paddle.to_tensor(augmenter.shifted(stream_rng(seed, Stream.AUGMENT, phase_index, phase_epoch)))
                       if augmenter else x_all)
            rates = warmup_rates(train, len(progress.history), len(batch_sizes))
            if rates is None and train.warmup_epochs:
                optimizer.set_lr(train.learning_rate)  # the warm-up is over
            start = time.perf_counter()
            loss, accuracy = train_epoch(model, optimizer, phase.loss_fn(), x_epoch, y_all, trained, batch_sizes,
                                         rates)
            seconds = time.perf_counter() - start
            progress.seen[trained] = True
            row = {"epoch": len(progress.history) + 1, **phase.log_columns(), "loss": loss,
                   "train_accuracy": accuracy, "images": len(trained),
                   "distinct_minority_seen": int(np.count_nonzero(progress.seen & is_minority)),
                   **feature_diagnostics(model, probe)}
            if not math.isfinite(loss):
                raise TrainingDiverged(f"the training loss became {loss} at epoch {row['epoch']} "
                                       f"({phase.describe()}); lower train.learning_rate or check the input "
                                       "scaling (data.pixel_range)")
            progress.history.append(row)
            if checkpoint_dir:
                save_checkpoint(checkpoint_dir, fingerprint, model, optimizer, progress)
            _report_progress(row, len(schedule), seconds)
    return model, progress.history


def train_epoch(model, optimizer, loss_fn, x_all, y_all, trained: np.ndarray, batch_sizes: np.ndarray,
                rates: list[float] | None = None) -> tuple[float, float]:
    """One pass over the images `trained` (indices, in order), cut into batches of `batch_sizes`, with the
    learning rate rates[b] for batch b when given (a warm-up); returns the mean loss and the training accuracy."""
    model.train()
    order = paddle.to_tensor(trained)
    loss_sum = paddle.zeros([], dtype="float32")
    correct = paddle.zeros([], dtype="int64")
    start = 0
    for index, size in enumerate(batch_sizes.tolist()):
        if rates is not None:
            optimizer.set_lr(rates[index])
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


def _report_progress(row: dict, total_epochs: int, seconds: float) -> None:
    """Wall-clock figures go to stderr only: a tracked file with them would change on every rerun."""
    gamma = f" gamma {row['gamma']:g}" if "gamma" in row else ""
    left = seconds * (total_epochs - row["epoch"])
    print(f"  epoch {row['epoch']}/{total_epochs}{gamma}: loss {row['loss']:.4f}, "
          f"train accuracy {row['train_accuracy']:.4f}, {row['images'] / seconds:.0f} images/s, "
          f"{left / 60:.1f} min left", file=sys.stderr, flush=True)


def write_outputs(name: str, model: LeNet, history: list[dict], summary: dict) -> None:
    """Weights, the per-epoch log (a DVC plot) and what was trained (DVC metrics, read by evaluate), each
    written atomically."""
    with atomic_path(model_path(name)) as tmp:
        paddle.save(model.state_dict(), str(tmp))
    with atomic_path(train_log_path(name)) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(dict.fromkeys(key for row in history for key in row)))
        writer.writeheader()
        writer.writerows(history)
    write_json(train_summary_path(name), {
        **summary, "epochs": len(history), "images_trained": sum(row["images"] for row in history),
        "distinct_minority_seen": history[-1]["distinct_minority_seen"]})


def plan_phases(variant: Variant, training_set: TrainingSet, train: P.TrainParams) -> tuple[list[Phase], np.ndarray]:
    """The phases `variant` trains through on `training_set`, and the class prior [10] the finished model learned
    (what evaluate's post-hoc logit adjustment divides by)."""
    # The class prior the sampler feeds the model: what the re-weighting remedies correct for during training.
    counts_of = functools.partial(expected_class_counts, labels=training_set.labels,
                                  is_minority=training_set.is_minority, batch_size=train.batch_size,
                                  keep_minority_every=training_set.keep_minority_every,
                                  images_per_epoch=variant.settings.images_per_epoch)
    class_counts = counts_of(variant.sampler)
    phases = variant.phases(class_counts)
    # What the finished model learned: a last phase with a sampler of its own (cRT's) sets the prior.
    if phases[-1].sampler:
        class_counts = counts_of(SAMPLERS[phases[-1].sampler])
    return phases, class_counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", required=True, help="a key of `variants` in params.yaml")
    name = parser.parse_args().variant
    params = P.read_params()
    variant = load_variant(params, name)
    train = variant.train_params(P.section(params, "train", P.TrainParams))
    seed = P.seed(params)
    runtime = select_device(train.device)
    training_set = load_training_set(variant.train_set, P.section(params, "data", P.DataParams))
    phases, class_counts = plan_phases(variant, training_set, train)
    print(f"train {name}: {len(training_set.labels)} images ({variant.train_set}), {variant.loss}, "
          f"{sum(p.epochs for p in phases)} epochs on {runtime['device']} (Paddle {runtime['paddle']})",
          file=sys.stderr)
    checkpoint_dir = CHECKPOINT_DIR / name
    start = time.perf_counter()
    model, history = train_model(training_set, phases, train, seed=seed, sampler=variant.sampler,
                                 head_scale=variant.head_scale, images_per_epoch=variant.settings.images_per_epoch,
                                 checkpoint_dir=checkpoint_dir, runtime=runtime)
    write_outputs(name, model, history, {
        "seed": seed, "train_set": variant.train_set, "train_images": len(training_set.labels),
        "minority_classes": list(training_set.minority_classes),
        "minority_images": int(np.count_nonzero(training_set.is_minority)),
        "keep_minority_every": training_set.keep_minority_every,
        "class_counts": class_counts.tolist(),
        "train_set_class_counts": np.bincount(training_set.labels, minlength=NUM_CLASSES).tolist(),
        "head_scale": variant.head_scale,
        "params": {**run_params(params, name), **training_set.settings}, **runtime})
    remove_checkpoint(checkpoint_dir)
    print(f"train {name}: {len(history)} epochs in {time.perf_counter() - start:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    run_stage("train", main)
