"""Small real training runs whose weights are pinned in tests/test_golden_hashes.py: one per remedy, sampler and
protocol, on the first GOLDEN_IMAGES real MNIST training images, for an epoch or two each.

    python tests/golden_training.py RAW_DIR      # prints {"build": ..., "mkl_cbwr": ..., "hashes": {case: md5}}

It runs as its own process, as a stage does: select_device pins MKL's branch before the first matrix product,
which a pytest process that has already trained something could not promise. Each case goes through the
stage's own code (params.yaml's variants and losses, the subset stage's selection, train.plan_phases and
train_model), so a change to any of them that moves a bit moves a hash.
"""

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
from stage_project import with_keys  # this script's folder, tests/, is first on sys.path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from stages.lib import params as P  # noqa: E402
from stages.lib.data import TrainingSet, load_split, to_model_input  # noqa: E402
from stages.lib.device import select_device  # noqa: E402
from stages.lib.variants import load_variant  # noqa: E402
from stages.subset import build_selections  # noqa: E402
from stages.train import plan_phases, train_model  # noqa: E402

GOLDEN_IMAGES = 2000
# case -> (variant of params.yaml, subset.mode, overrides of its params as dotted keys)
CASES = {
    "baseline": ("baseline", "fixed", {"variants.baseline.epochs": 1}),
    "reduced": ("reduced", "fixed", {"variants.reduced.epochs": 2}),
    "focal_fixed": ("focal_fixed", "fixed", {"variants.focal_fixed.epochs": 1}),
    "focal_curriculum": ("focal", "fixed", {"losses.focal_curriculum.gammas": [0.5, 5.0],
                                            "losses.focal_curriculum.epochs_per_gamma": 1}),
    "class_balanced": ("class_balanced", "fixed", {"variants.class_balanced.epochs": 1}),
    "logit_adjusted": ("logit_adjusted", "fixed", {"variants.logit_adjusted.epochs": 1}),
    "ldam_drw": ("ldam_drw", "fixed", {"variants.ldam_drw.epochs": 2, "losses.ldam_drw.drw_start": 0.5}),
    "crt": ("crt", "fixed", {"variants.crt.epochs": 2, "losses.crt.classifier_share": 0.5}),
    "oversampled": ("resampled", "fixed", {"variants.resampled.epochs": 1}),
    "undersampled_budget": ("resampled", "fixed", {"variants.resampled.epochs": 2,
                                                   "variants.resampled.sampler": "undersample",
                                                   "variants.resampled.images_per_epoch": 1500}),
    "per_batch": ("reduced", "per_batch", {"variants.reduced.epochs": 2}),
    "shifts": ("reduced", "fixed", {"variants.reduced.epochs": 1, "train.augment_shift_px": 1}),
}


def model_md5(model) -> str:
    """MD5 of every parameter's float32 bytes, by name: the weights bit for bit, whatever the file format."""
    digest = hashlib.md5()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(np.ascontiguousarray(tensor.numpy()).tobytes())
    return digest.hexdigest()


def train_case(base: dict, images: np.ndarray, labels: np.ndarray, name: str, mode: str, overrides: dict) -> str:
    params = with_keys(base, {"subset.mode": mode, **overrides})
    variant = load_variant(params, name)
    train = variant.train_params(P.section(params, "train", P.TrainParams))
    seed = P.seed(params)
    selection = build_selections(labels, P.section(params, "subset", P.SubsetParams), seed)[variant.train_set]
    data = P.section(params, "data", P.DataParams)
    training_set = TrainingSet(to_model_input(images[selection.indices], data.pixel_range), labels[selection.indices],
                               selection.minority_classes, selection.keep_minority_every, background=data.pixel_range[0])
    phases, _ = plan_phases(variant, training_set, train)
    model, _ = train_model(training_set, phases, train, seed=seed, sampler=variant.sampler,
                           head_scale=variant.head_scale, images_per_epoch=variant.settings.images_per_epoch)
    return model_md5(model)


def main() -> None:
    raw_dir = Path(sys.argv[1])
    runtime = select_device("cpu")  # before any matrix product: MKL reads its branch once
    base = P.read_params(ROOT / "params.yaml")
    images, labels = load_split("train", GOLDEN_IMAGES, raw_dir=raw_dir)
    hashes = {case: train_case(base, images, labels, *spec) for case, spec in CASES.items()}
    print(json.dumps({"build": runtime["paddle"], "mkl_cbwr": runtime["mkl_cbwr"], "hashes": hashes}))


if __name__ == "__main__":
    main()
