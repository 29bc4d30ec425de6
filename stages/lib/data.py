"""MNIST on disk: the IDX file format, the checksums of the real files, the training sets the variants name,
and model-ready arrays."""

import dataclasses
import hashlib
import io
import json
import zipfile
from pathlib import Path

import numpy as np

from stages.lib.cli import StageError
from stages.lib.params import DataParams
from stages.lib.paths import RAW_DIR, train_set_path, validation_set_path

NUM_CLASSES = 10
IMAGE_SIDE = 28

# Decompressed size and SHA-256 of each file (the gzip wrappers differ between mirrors; the content does not).
MNIST_FILES = {
    "train-images-idx3-ubyte": (47040016, "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"),
    "train-labels-idx1-ubyte": (60008, "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5"),
    "t10k-images-idx3-ubyte": (7840016, "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"),
    "t10k-labels-idx1-ubyte": (10008, "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"),
}
SPLIT_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
IDX_UBYTE = 0x08  # IDX type code of unsigned bytes, the only type MNIST uses
REDO_HINT = "delete data/raw and run `dvc repro download` to fetch it again"


class DataError(StageError, ValueError):
    """A data file is malformed or does not match what the pipeline expects."""


def sha256_matches(name: str, content: bytes) -> str | None:
    """None when `content` is the real MNIST file `name`; otherwise what is wrong with it."""
    size, digest = MNIST_FILES[name]
    if len(content) != size:
        return f"{len(content)} bytes after decompression, expected {size}"
    actual = hashlib.sha256(content).hexdigest()
    if actual != digest:
        return f"SHA-256 {actual} does not match the expected {digest}"
    return None


def parse_idx(content: bytes, source: str) -> np.ndarray:
    """Decode an IDX file of unsigned bytes into an array of its declared shape.

    Header: two zero bytes, the type code, the number of dimensions, then one big-endian uint32 per dimension.
    """
    if len(content) < 4:
        raise DataError(f"{source}: {len(content)} bytes is too short for an IDX header; {REDO_HINT}")
    zero, type_code, ndim = int.from_bytes(content[:2], "big"), content[2], content[3]
    if zero != 0 or type_code != IDX_UBYTE or ndim not in (1, 3):
        magic = content[:4].hex()
        raise DataError(f"{source}: magic number 0x{magic} is not an MNIST IDX file "
                        f"(expected 0x00000801 or 0x00000803); {REDO_HINT}")
    header_size = 4 + 4 * ndim
    if len(content) < header_size:
        raise DataError(f"{source}: truncated header ({len(content)} bytes); {REDO_HINT}")
    shape = tuple(int.from_bytes(content[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    expected = header_size + int(np.prod(shape))
    if len(content) != expected:
        what = "truncated" if len(content) < expected else "longer than its header says"
        raise DataError(f"{source}: {what}: {len(content)} bytes, but a header of shape {shape} "
                        f"needs {expected}; {REDO_HINT}")
    return np.frombuffer(content, dtype=np.uint8, offset=header_size).reshape(shape)


def load_split(split: str, limit: int | None = None, raw_dir: Path = RAW_DIR) -> tuple[np.ndarray, np.ndarray]:
    """Images [N, 28, 28] uint8 and labels [N] int64 of `split` ("train" or "test"), the first `limit` of them."""
    images_name, labels_name = SPLIT_FILES[split]
    images = _read(raw_dir / images_name)
    labels = _read(raw_dir / labels_name)
    if images.ndim != 3 or images.shape[1:] != (IMAGE_SIDE, IMAGE_SIDE):
        raise DataError(f"{raw_dir / images_name}: images of shape {images.shape[1:]}, expected 28x28; {REDO_HINT}")
    if labels.ndim != 1:
        raise DataError(f"{raw_dir / labels_name}: labels must be one-dimensional, got shape {labels.shape}")
    if len(images) != len(labels):
        raise DataError(f"{split}: {len(images)} images but {len(labels)} labels "
                        f"({raw_dir / images_name} and {raw_dir / labels_name} disagree); {REDO_HINT}")
    if labels.max(initial=0) >= NUM_CLASSES:
        raise DataError(f"{raw_dir / labels_name}: label {labels.max()} is outside 0-9; {REDO_HINT}")
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    if len(labels) == 0:
        raise DataError(f"{raw_dir / images_name} holds no images; {REDO_HINT}")
    return images, labels.astype(np.int64)


@dataclasses.dataclass(frozen=True)
class TrainingSelection:
    """Which training images a variant trains on, and how the minority digits are presented: the content of
    data/train_sets/<name>.npz, written by the subset stage."""
    indices: np.ndarray  # [M] int64, into the (train_limit-cut) training split
    minority_classes: tuple[int, ...]
    keep_minority_every: int  # 1 = every image every epoch; k > 1 = the report's per-batch protocol
    # The params that shaped it ({"subset.profile": "step", ...}; none for the full set), for the run record.
    settings: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class TrainingSet:
    """The images a variant trains on, ready for the model, with how their minority digits are presented."""
    images: np.ndarray  # [M, 1, 28, 28] float32, scaled to data.pixel_range
    labels: np.ndarray  # [M] int64
    minority_classes: tuple[int, ...]
    keep_minority_every: int  # see TrainingSelection
    settings: dict = dataclasses.field(default_factory=dict)  # see TrainingSelection
    background: float = -1.0  # the model input of a blank pixel: data.pixel_range's low (augmentation's fill)

    @property
    def is_minority(self) -> np.ndarray:
        """[M] bool: the image is of a minority digit."""
        return np.isin(self.labels, self.minority_classes)


def save_selection(path: Path, selection: TrainingSelection) -> None:
    """An .npz that np.load reads, with fixed zip timestamps (np.savez stamps the time of writing): the same
    training set gives the same bytes, so DVC does not rerun the stages that read an unchanged one."""
    arrays = {"indices": selection.indices, "minority_classes": np.array(selection.minority_classes),
              "keep_minority_every": np.array(selection.keep_minority_every)}
    if selection.settings:
        arrays["settings"] = np.array(json.dumps(selection.settings, sort_keys=True))
    with zipfile.ZipFile(path, "w") as archive:
        for key, array in arrays.items():
            buffer = io.BytesIO()
            np.save(buffer, array)
            archive.writestr(zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0)), buffer.getvalue())


def load_selection(path: Path, split_size: int) -> TrainingSelection:
    """A selection file of the subset stage (data/train_sets/ or data/validation/), checked against a
    training split of `split_size` images."""
    try:
        with np.load(path) as f:
            settings = json.loads(str(f["settings"])) if "settings" in f else {}
            result = TrainingSelection(f["indices"].astype(np.int64), tuple(int(c) for c in f["minority_classes"]),
                                       int(f["keep_minority_every"]), settings)
    except FileNotFoundError:
        raise DataError(f"{path} is missing; run `dvc repro subset` first") from None
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path} is not a training-set file ({exc}); run `dvc repro subset -f`") from None
    if result.indices.size and result.indices.max() >= split_size:
        raise DataError(f"{path} indexes image {result.indices.max()} of a {split_size}-image training "
                        "split: it was built for another data.train_limit; run `dvc repro subset`")
    return result


def load_validation_set(name: str, train_limit: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Images [M, 28, 28] uint8 and labels [M] int64 that training set `name` held out (validation.tune)."""
    images, labels = load_split("train", train_limit)
    held_out = load_selection(validation_set_path(name), len(labels)).indices
    if held_out.size == 0:
        raise DataError(f"{validation_set_path(name)} holds no images: the subset stage ran with "
                        "validation.tune false; run `dvc repro subset`")
    return images[held_out], labels[held_out]


def to_model_input(images: np.ndarray, pixel_range: tuple[float, float]) -> np.ndarray:
    """[N, 28, 28] uint8 -> [N, 1, 28, 28] float32 with 0 mapped to low and 255 to high."""
    low, high = pixel_range
    scaled = images.astype(np.float32) * np.float32((high - low) / 255.0) + np.float32(low)
    return scaled[:, None, :, :]


def load_training_set(name: str, data: DataParams) -> TrainingSet:
    """The training set `name` (a variant's train_set): the subset stage's selection of the training split."""
    images, labels = load_split("train", data.train_limit)
    selection = load_selection(train_set_path(name), len(labels))
    return TrainingSet(to_model_input(images[selection.indices], data.pixel_range), labels[selection.indices],
                       selection.minority_classes, selection.keep_minority_every, selection.settings,
                       background=data.pixel_range[0])


def _read(path: Path) -> np.ndarray:
    try:
        content = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path} is missing; run `dvc repro download` first") from None
    except OSError as exc:
        raise DataError(f"{path} cannot be read ({exc}); {REDO_HINT}") from None
    return parse_idx(content, str(path))
