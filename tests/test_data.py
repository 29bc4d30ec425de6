"""The IDX reader, the split loader, the model-input scaling and the verified download."""

import gzip
import hashlib
import re

import numpy as np
import pytest

from stages.lib.data import MNIST_FILES, DataError, load_split, parse_idx, sha256_matches, to_model_input
from stages.download import DownloadError, download_mnist, fetch_verified

LABELS = "train-labels-idx1-ubyte"
# From shared/README.md.
TRAIN_FIRST_LABELS = [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
TEST_FIRST_LABELS = [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
TRAIN_CLASS_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_CLASS_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def idx_bytes(magic: bytes, shape: tuple[int, ...], payload: bytes) -> bytes:
    """An IDX file: 4 magic bytes, one big-endian uint32 per dimension, then the payload."""
    return magic + b"".join(n.to_bytes(4, "big") for n in shape) + payload


def idx_labels(labels: list[int]) -> bytes:
    return idx_bytes(b"\x00\x00\x08\x01", (len(labels),), bytes(labels))


def idx_images(count: int, side: int = 28) -> bytes:
    pixels = np.arange(count * side * side, dtype=np.uint64) % 256
    return idx_bytes(b"\x00\x00\x08\x03", (count, side, side), pixels.astype(np.uint8).tobytes())


def write_split(directory, images: bytes, labels: bytes | None) -> None:
    directory.mkdir(exist_ok=True)
    (directory / "train-images-idx3-ubyte").write_bytes(images)
    if labels is not None:
        (directory / LABELS).write_bytes(labels)


@pytest.fixture(scope="module")
def real_labels(raw_dir) -> bytes:
    return (raw_dir / LABELS).read_bytes()


@pytest.fixture(scope="module")
def gz_mirror(tmp_path_factory, real_labels):
    """A mirror directory holding the real labels file gzipped, as the public mirrors serve it ($MNIST_MIRROR
    may hold the files decompressed)."""
    mirror = tmp_path_factory.mktemp("gz_mirror")
    (mirror / f"{LABELS}.gz").write_bytes(gzip.compress(real_labels))
    return mirror


# --- parse_idx ---------------------------------------------------------------------------------------------

def test_parse_idx_reads_labels():
    content = b"\x00\x00\x08\x01" + b"\x00\x00\x00\x03" + bytes([5, 0, 4])
    labels = parse_idx(content, "labels")
    assert labels.dtype == np.uint8
    assert labels.tolist() == [5, 0, 4]


def test_parse_idx_reads_images_in_row_major_order():
    # Two 2x3 "images": pixel (i, r, c) holds 6i + 3r + c.
    content = b"\x00\x00\x08\x03" + b"\x00\x00\x00\x02\x00\x00\x00\x02\x00\x00\x00\x03" + bytes(range(12))
    images = parse_idx(content, "images")
    assert images.shape == (2, 2, 3)
    assert images[1, 0, 2] == 8
    assert images[0, 1, 0] == 3


@pytest.mark.parametrize("magic", [b"\x00\x00\x08\x02", b"\x00\x00\x0d\x01", b"\x1f\x8b\x08\x01"],
                         ids=["two-dimensional", "float-type", "still-gzipped"])
def test_parse_idx_rejects_wrong_magic_number(magic):
    with pytest.raises(DataError, match=f"src: magic number 0x{magic.hex()} is not an MNIST IDX file"):
        parse_idx(idx_bytes(magic, (3,), bytes([1, 2, 3])), "src")


def test_parse_idx_rejects_truncated_payload():
    with pytest.raises(DataError, match=r"src: truncated: 10 bytes, but a header of shape \(3,\) needs 11"):
        parse_idx(idx_labels([1, 2, 3])[:-1], "src")


def test_parse_idx_rejects_payload_longer_than_header():
    with pytest.raises(DataError, match=r"src: longer than its header says: 12 bytes, .* needs 11"):
        parse_idx(idx_labels([1, 2, 3]) + b"\x07", "src")


def test_parse_idx_rejects_header_shorter_than_4_bytes():
    with pytest.raises(DataError, match="src: 3 bytes is too short for an IDX header"):
        parse_idx(b"\x00\x00\x08", "src")


def test_parse_idx_rejects_truncated_dimension_sizes():
    # Three dimensions need 4 + 3 * 4 = 16 header bytes.
    with pytest.raises(DataError, match=r"src: truncated header \(12 bytes\)"):
        parse_idx(b"\x00\x00\x08\x03" + b"\x00\x00\x00\x02" * 2, "src")


# --- load_split on hand-built files ------------------------------------------------------------------------

def test_load_split_returns_uint8_images_and_int64_labels(tmp_path):
    write_split(tmp_path, idx_images(3), idx_labels([7, 0, 9]))
    images, labels = load_split("train", raw_dir=tmp_path)
    assert images.shape == (3, 28, 28) and images.dtype == np.uint8
    assert labels.tolist() == [7, 0, 9] and labels.dtype == np.int64


def test_load_split_rejects_disagreeing_counts(tmp_path):
    write_split(tmp_path, idx_images(3), idx_labels([7, 0]))
    with pytest.raises(DataError, match="train: 3 images but 2 labels"):
        load_split("train", raw_dir=tmp_path)


def test_load_split_rejects_label_outside_0_to_9(tmp_path):
    write_split(tmp_path, idx_images(3), idx_labels([7, 10, 9]))
    with pytest.raises(DataError, match=f"{LABELS}: label 10 is outside 0-9"):
        load_split("train", raw_dir=tmp_path)


def test_load_split_rejects_images_that_are_not_28x28(tmp_path):
    write_split(tmp_path, idx_images(3, side=27), idx_labels([7, 0, 9]))
    with pytest.raises(DataError, match=r"images of shape \(27, 27\), expected 28x28"):
        load_split("train", raw_dir=tmp_path)


def test_load_split_names_a_missing_file(tmp_path):
    write_split(tmp_path, idx_images(3), labels=None)
    expected = f"{tmp_path / LABELS} is missing; run `dvc repro download` first"
    with pytest.raises(DataError, match=re.escape(expected)):
        load_split("train", raw_dir=tmp_path)


# --- load_split on the real MNIST files --------------------------------------------------------------------

def test_download_writes_exactly_the_four_files_and_no_temporary_dir(raw_dir):
    assert sorted(p.name for p in raw_dir.iterdir()) == sorted(MNIST_FILES)
    assert [p.name for p in raw_dir.parent.iterdir()] == ["raw"]


@pytest.mark.parametrize("split, count, first_labels, class_counts", [
    ("train", 60000, TRAIN_FIRST_LABELS, TRAIN_CLASS_COUNTS),
    ("test", 10000, TEST_FIRST_LABELS, TEST_CLASS_COUNTS),
])
def test_real_mnist_split(raw_dir, split, count, first_labels, class_counts):
    images, labels = load_split(split, raw_dir=raw_dir)
    assert images.shape == (count, 28, 28)
    assert labels[:10].tolist() == first_labels
    assert np.bincount(labels, minlength=10).tolist() == class_counts


def test_limit_keeps_the_first_images(raw_dir):
    all_images, all_labels = load_split("test", raw_dir=raw_dir)
    images, labels = load_split("test", limit=25, raw_dir=raw_dir)
    assert images.shape == (25, 28, 28) and labels.shape == (25,)
    np.testing.assert_array_equal(images, all_images[:25])
    np.testing.assert_array_equal(labels, all_labels[:25])


# --- to_model_input ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("pixel_range, expected", [
    ((-1.0, 1.0), [-1.0, -0.6, 1.0]),  # 51 -> -1 + 51 * 2/255 = -0.6
    ((0.0, 1.0), [0.0, 0.2, 1.0]),  # 51 -> 51/255 = 0.2
])
def test_to_model_input_maps_0_to_low_and_255_to_high(pixel_range, expected):
    images = np.zeros((2, 28, 28), dtype=np.uint8)
    images[1, 3, 0:3] = [0, 51, 255]
    x = to_model_input(images, pixel_range)
    assert x.shape == (2, 1, 28, 28) and x.dtype == np.float32
    np.testing.assert_allclose(x[1, 0, 3, 0:3], expected, rtol=0, atol=1e-6)
    assert x[0].min() == x[0].max() == pixel_range[0]


# --- sha256_matches ----------------------------------------------------------------------------------------

def test_sha256_matches_the_real_file(real_labels):
    assert sha256_matches(LABELS, real_labels) is None


def test_sha256_matches_reports_a_wrong_size():
    assert sha256_matches(LABELS, b"\x00" * 10) == "10 bytes after decompression, expected 60008"


def test_sha256_matches_reports_a_wrong_digest(real_labels):
    content = bytearray(real_labels)
    content[8] = (content[8] + 1) % 10  # the first label: 5 -> 6, same size
    actual = hashlib.sha256(content).hexdigest()
    assert sha256_matches(LABELS, bytes(content)) == (
        f"SHA-256 {actual} does not match the expected {MNIST_FILES[LABELS][1]}")


# --- fetch_verified and download_mnist ---------------------------------------------------------------------

def bad_mirror(tmp_path, content: bytes):
    """A mirror directory whose labels file holds `content`."""
    mirror = tmp_path / "bad"
    mirror.mkdir()
    (mirror / f"{LABELS}.gz").write_bytes(content)
    return mirror


def test_fetch_verified_skips_a_wrong_checksum_and_takes_the_next_source(tmp_path, gz_mirror, real_labels):
    wrong = bytearray(real_labels)
    wrong[8] = (wrong[8] + 1) % 10
    bad = bad_mirror(tmp_path, gzip.compress(bytes(wrong)))
    with pytest.raises(DownloadError, match=re.escape(f"{bad / LABELS}.gz: SHA-256")):
        fetch_verified(LABELS, [str(bad)], timeout_s=5)
    content, source = fetch_verified(LABELS, [str(bad), str(gz_mirror)], timeout_s=5)
    assert content == real_labels
    assert source == str(gz_mirror / f"{LABELS}.gz")


def test_fetch_verified_rejects_a_truncated_gzip(tmp_path, gz_mirror):
    gz = (gz_mirror / f"{LABELS}.gz").read_bytes()
    bad = bad_mirror(tmp_path, gz[:len(gz) // 2])
    with pytest.raises(DownloadError, match=re.escape(f"{bad / LABELS}.gz: not a complete gzip file")):
        fetch_verified(LABELS, [str(bad)], timeout_s=5)
    _, source = fetch_verified(LABELS, [str(bad), str(gz_mirror)], timeout_s=5)
    assert source == str(gz_mirror / f"{LABELS}.gz")


def test_fetch_verified_rejects_a_corrupt_gzip(tmp_path, gz_mirror):
    gz = bytearray((gz_mirror / f"{LABELS}.gz").read_bytes())
    gz[30] ^= 0xFF  # inside the deflate stream, past the 10-byte gzip header
    bad = bad_mirror(tmp_path, bytes(gz))
    _, source = fetch_verified(LABELS, [str(bad), str(gz_mirror)], timeout_s=5)
    assert source == str(gz_mirror / f"{LABELS}.gz")


def test_fetch_verified_accepts_an_uncompressed_file(tmp_path, real_labels):
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / LABELS).write_bytes(real_labels)
    content, source = fetch_verified(LABELS, [str(plain)], timeout_s=5)
    assert source == str(plain / LABELS)
    assert sha256_matches(LABELS, content) is None


def test_fetch_verified_reads_a_url_source(gz_mirror, real_labels):
    content, source = fetch_verified(LABELS, [f"file://{gz_mirror}/"], timeout_s=5)
    assert source == f"file://{gz_mirror}/{LABELS}.gz"
    assert content == real_labels


def test_download_error_names_the_file_and_every_location_tried(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    url = f"file://{tmp_path}/nowhere"
    with pytest.raises(DownloadError) as error:
        fetch_verified(LABELS, [str(empty), url], timeout_s=5)
    message = str(error.value)
    assert f"could not get a valid {LABELS} from any source" in message
    for location in (f"{empty / LABELS}.gz", str(empty / LABELS), f"{url}/{LABELS}.gz", f"{url}/{LABELS}"):
        assert f"\n  {location}: " in message
    assert "MNIST_MIRROR=../shared/mnist" in message


def test_failed_download_leaves_no_output_and_no_temporary_dir(tmp_path, raw_dir):
    # The mirror has the two training files but not the test files, so the download fails after
    # writing two files into its temporary directory.
    partial = tmp_path / "partial"
    partial.mkdir()
    for name in ("train-images-idx3-ubyte", LABELS):
        (partial / name).symlink_to(raw_dir / name)
    data_dir = tmp_path / "data"
    with pytest.raises(DownloadError, match="t10k-images-idx3-ubyte"):
        download_mnist(sources=[str(partial)], timeout_s=5, out_dir=data_dir / "raw")
    assert list(data_dir.iterdir()) == []
