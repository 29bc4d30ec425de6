"""Where the pipeline keeps its files: one home for every path a stage reads or writes (dvc.yaml spells the
same paths, and tests/test_layout.py checks that the two agree)."""

from pathlib import Path

RAW_DIR = Path("data/raw")  # the four MNIST files, from the download stage
TRAIN_SET_DIR = Path("data/train_sets")  # <name>.npz from the subset stage: `full` and `subset`
# <name>.npz: the images of training set <name> held out for choosing hyperparameters (empty unless
# validation.tune), from the subset stage
VALIDATION_DIR = Path("data/validation")
MODEL_DIR = Path("data/models")  # <variant>.pdparams
# <variant>/: the last finished epoch of a training stage that has not completed; not a DVC output, since it
# exists only between a crash and the rerun that resumes from it (see stages/lib/checkpoints.py).
CHECKPOINT_DIR = Path("data/checkpoints")
METRICS_DIR = Path("metrics")  # <variant>.json: test metrics, from evaluate
TRAIN_LOG_DIR = METRICS_DIR / "train"  # <variant>.csv (per epoch) and <variant>.json (what was trained)
CONFUSION_DIR = METRICS_DIR / "confusion"  # <variant>.csv: one row per test image, for DVC's confusion plot
SUBSET_METRICS = METRICS_DIR / "subset.json"


def train_set_path(name: str) -> Path:
    return TRAIN_SET_DIR / f"{name}.npz"


def validation_set_path(name: str) -> Path:
    return VALIDATION_DIR / f"{name}.npz"


def model_path(variant: str) -> Path:
    return MODEL_DIR / f"{variant}.pdparams"


def train_log_path(variant: str) -> Path:
    return TRAIN_LOG_DIR / f"{variant}.csv"


def train_summary_path(variant: str) -> Path:
    return TRAIN_LOG_DIR / f"{variant}.json"


def test_metrics_path(variant: str) -> Path:
    return METRICS_DIR / f"{variant}.json"


def confusion_path(variant: str) -> Path:
    return CONFUSION_DIR / f"{variant}.csv"
