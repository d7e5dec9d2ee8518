"""Tests for pascal_fpga.datasets: digits split, IDX parsing, CIFAR-10 pickles, errors."""

from __future__ import annotations

import gzip
import pickle
import struct
import tracemalloc
import zlib
from pathlib import Path

import numpy as np
import pytest

from pascal_fpga.datasets import (
    CIFAR10_TRAIN_BATCHES,
    DATASETS,
    FASHION_MNIST_FILES,
    Dataset,
    find_fashion_mnist_dir,
    load_dataset,
)
from pascal_fpga.errors import PascalError

DEBIAN_FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")




@pytest.fixture(scope="module")
def digits() -> Dataset:
    return load_dataset("digits")


def test_digits_shapes_and_dtypes(digits):
    assert digits.name == "digits"
    assert digits.shape == (1, 8, 8)
    assert digits.train_images.shape == (1437, 1, 8, 8)
    assert digits.test_images.shape == (360, 1, 8, 8)
    assert digits.train_labels.shape == (1437,)
    assert digits.test_labels.shape == (360,)
    assert digits.train_images.dtype == np.uint8 and digits.test_images.dtype == np.uint8
    assert digits.train_labels.dtype == np.int64 and digits.test_labels.dtype == np.int64
    assert digits.pixel_max == 16 and digits.classes == 10
    assert len(digits.train_images) + len(digits.test_images) == 1797


def test_digits_pixel_range(digits):
    for images in (digits.train_images, digits.test_images):
        assert images.min() == 0
        assert images.max() == 16
    assert set(np.unique(digits.train_labels)) == set(range(10))


def test_digits_split_is_stratified(digits):
    all_labels = np.concatenate([digits.train_labels, digits.test_labels])
    total = np.bincount(all_labels, minlength=10)
    in_test = np.bincount(digits.test_labels, minlength=10)
    assert (in_test > 0).all()
    expected = total * 360 / 1797
    assert np.all(np.abs(in_test - expected) <= 1)


def test_digits_split_is_deterministic_and_a_partition(digits):
    again = load_dataset("digits", data_dir="/ignored/for/digits")
    for field in ("train_images", "train_labels", "test_images", "test_labels"):
        np.testing.assert_array_equal(getattr(digits, field), getattr(again, field))
    # The two splits together are the whole set, each image used once.
    from sklearn.datasets import load_digits

    whole = load_digits()
    ours = np.concatenate([digits.train_images, digits.test_images]).reshape(1797, 64)
    ours_labels = np.concatenate([digits.train_labels, digits.test_labels])
    key = lambda rows, labels: sorted(r.tobytes() + bytes([l]) for r, l in zip(rows, labels))  # noqa: E731
    assert key(ours, ours_labels) == key(whole.data.astype(np.uint8), whole.target)




def idx_bytes(array: np.ndarray) -> bytes:
    """An unsigned-byte IDX file holding ``array``."""
    array = np.asarray(array, dtype=np.uint8)
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(
        f">{array.ndim}I", *array.shape
    )
    return header + array.tobytes()


def write_idx(path: Path, array: np.ndarray, compress: bool) -> Path:
    data = idx_bytes(array)
    if compress:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)
    return path


def make_fashion(directory: Path, compress: bool, n_train: int = 5, n_test: int = 3, seed: int = 0):
    rng = np.random.default_rng(seed)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    directory.mkdir(parents=True, exist_ok=True)
    paths = {stem: write_idx(directory / stem, a, compress) for stem, a in arrays.items()}
    return arrays, paths


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gz"])
def test_fashion_reads_idx_exactly(tmp_path, compress):
    arrays, _ = make_fashion(tmp_path, compress)
    ds = load_dataset("fashion-mnist", data_dir=tmp_path)
    assert ds.name == "fashion-mnist" and ds.pixel_max == 255 and ds.classes == 10
    assert ds.shape == (1, 28, 28)
    assert ds.train_images.shape == (5, 1, 28, 28) and ds.test_images.shape == (3, 1, 28, 28)
    assert ds.train_images.dtype == np.uint8 and ds.train_labels.dtype == np.int64
    np.testing.assert_array_equal(ds.train_images[:, 0], arrays["train-images-idx3-ubyte"])
    np.testing.assert_array_equal(ds.train_labels, arrays["train-labels-idx1-ubyte"])
    np.testing.assert_array_equal(ds.test_images[:, 0], arrays["t10k-images-idx3-ubyte"])
    np.testing.assert_array_equal(ds.test_labels, arrays["t10k-labels-idx1-ubyte"])
    assert ds.train_images.flags.writeable  # usable with torch.from_numpy without a warning


def test_fashion_mixed_plain_and_gz(tmp_path):
    arrays, paths = make_fashion(tmp_path, compress=True)
    plain = write_idx(tmp_path / "t10k-labels-idx1-ubyte", arrays["t10k-labels-idx1-ubyte"], False)
    paths["t10k-labels-idx1-ubyte"].unlink()
    assert plain.exists()
    ds = load_dataset("fashion-mnist", data_dir=str(tmp_path))
    np.testing.assert_array_equal(ds.test_labels, arrays["t10k-labels-idx1-ubyte"])
    assert find_fashion_mnist_dir(tmp_path) == tmp_path


def _corrupt(path: Path, mutate) -> None:
    """Rewrite ``path`` (plain or .gz) with ``mutate`` applied to its uncompressed bytes."""
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(mutate(gzip.decompress(path.read_bytes()))))
    else:
        path.write_bytes(mutate(path.read_bytes()))


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gz"])
@pytest.mark.parametrize(
    "stem, mutate, words",
    [
        ("train-images-idx3-ubyte", lambda b: b"\x01" + b[1:], "magic"),
        ("train-labels-idx1-ubyte", lambda b: b[:2] + b"\x0d" + b[3:], "data type"),
        ("t10k-images-idx3-ubyte", lambda b: b[:3] + b"\x02" + b[4:], "dimensions"),
        ("t10k-images-idx3-ubyte", lambda b: b[:-10], "truncated"),
        ("t10k-labels-idx1-ubyte", lambda b: b[:6], "truncated header"),
        ("train-labels-idx1-ubyte", lambda b: b + b"\x00", "trailing"),
        ("train-labels-idx1-ubyte", lambda b: b[:-1] + b"\x0a", "label 10"),
    ],
)
def test_fashion_malformed_file_names_it(tmp_path, compress, stem, mutate, words):
    _, paths = make_fashion(tmp_path, compress)
    _corrupt(paths[stem], mutate)
    with pytest.raises(PascalError) as err:
        load_dataset("fashion-mnist", data_dir=tmp_path)
    msg = str(err.value)
    assert str(paths[stem]) in msg and words in msg
    assert "\n" not in msg


def test_fashion_bad_image_size_and_count_mismatch(tmp_path):
    _, paths = make_fashion(tmp_path, compress=False)
    write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((5, 14, 14)), False)
    with pytest.raises(PascalError, match="14x14, expected 28x28"):
        load_dataset("fashion-mnist", data_dir=tmp_path)
    write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((4, 28, 28)), False)
    with pytest.raises(PascalError, match="4 images but .* 5 labels"):
        load_dataset("fashion-mnist", data_dir=tmp_path)


def test_fashion_truncated_gzip_stream(tmp_path):
    _, paths = make_fashion(tmp_path, compress=True)
    gz = paths["train-images-idx3-ubyte"]
    gz.write_bytes(gz.read_bytes()[:-20])
    with pytest.raises(PascalError, match="cannot read") as err:
        load_dataset("fashion-mnist", data_dir=tmp_path)
    assert str(gz) in str(err.value)


def test_fashion_missing_folder(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(PascalError) as err:
        load_dataset("fashion-mnist", data_dir=missing)
    msg = str(err.value)
    assert "dataset-fashion-mnist" in msg and "--data-dir" in msg and str(missing) in msg
    assert "\n" not in msg


def test_fashion_missing_one_file(tmp_path):
    _, paths = make_fashion(tmp_path, compress=False)
    paths["t10k-labels-idx1-ubyte"].unlink()
    with pytest.raises(PascalError, match="lacks t10k-labels-idx1-ubyte") as err:
        find_fashion_mnist_dir(tmp_path)
    assert "dataset-fashion-mnist" in str(err.value)


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gz"])
@pytest.mark.parametrize("dims", [
    (2 ** 21, 2 ** 21, 2 ** 22),  # 2^64 data bytes: wraps to 0 in int64, and the file has 0
    (2 ** 32 - 1, 2 ** 32 - 1, 2 ** 32 - 1),  # wraps to a negative int64
    (60000 * 2 ** 10, 28, 28),  # 48 GB: no wrap, still far over the bound
])
def test_fashion_dimensions_too_large_or_wrapping(tmp_path, compress, dims):
    _, paths = make_fashion(tmp_path, compress)
    path = paths["train-images-idx3-ubyte"]
    _corrupt(path, lambda b: b[:4] + struct.pack(">3I", *dims))
    with pytest.raises(PascalError) as err:
        load_dataset("fashion-mnist", data_dir=tmp_path)
    msg = str(err.value)
    assert msg.startswith(f"malformed IDX file {path}: dimensions {'x'.join(map(str, dims))} "
                          f"need {dims[0] * dims[1] * dims[2]} data bytes, more than the 256 MiB")
    assert "\n" not in msg


def _zeros_after(path: Path, header: bytes, size: int, compress: bool) -> None:
    """Write ``header`` and ``size`` zero bytes to ``path``, gzip-packed (a bomb) or plain."""
    chunk = bytes(1 << 20)
    if compress:
        packer = zlib.compressobj(1, zlib.DEFLATED, 31)
        with open(path, "wb") as f:
            f.write(packer.compress(header))
            for _ in range(size // len(chunk)):
                f.write(packer.compress(chunk))
            f.write(packer.flush())
    else:
        with open(path, "wb") as f:
            f.write(header)
            f.truncate(len(header) + size)


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gz"])
def test_fashion_huge_file_is_not_read_whole(tmp_path, compress):
    # An honest 5x28x28 header followed by 64 MiB (a gzip bomb of 64 KiB, or a sparse plain
    # file): the reader stops one byte past what the header asks for.
    _, paths = make_fashion(tmp_path, compress=False)
    paths["train-images-idx3-ubyte"].unlink()
    path = tmp_path / ("train-images-idx3-ubyte" + (".gz" if compress else ""))
    header = struct.pack(">BBBB3I", 0, 0, 0x08, 3, 5, 28, 28)
    _zeros_after(path, header, 5 * 784 + (64 << 20), compress)
    tracemalloc.start()
    try:
        with pytest.raises(PascalError) as err:
            load_dataset("fashion-mnist", data_dir=tmp_path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    msg = str(err.value)
    assert msg.startswith(f"malformed IDX file {path}: trailing bytes, dimensions 5x28x28 need "
                          f"3920 data bytes but it has ")
    assert peak < 4 << 20, f"{peak >> 20} MiB read"


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gz"])
@pytest.mark.parametrize("n_train, n_test, stem", [
    (5, 0, "t10k-images-idx3-ubyte"),
    (0, 3, "train-images-idx3-ubyte"),
])
def test_fashion_empty_split_is_refused(tmp_path, compress, n_train, n_test, stem):
    _, paths = make_fashion(tmp_path, compress, n_train=n_train, n_test=n_test)
    with pytest.raises(PascalError) as err:
        load_dataset("fashion-mnist", data_dir=tmp_path)
    assert str(err.value) == (f"malformed IDX file {paths[stem]}: 0 images (a data set needs at "
                              f"least one training and one test image)")


@pytest.mark.skipif(
    not DEBIAN_FASHION_DIR.exists(),
    reason=f"Debian package dataset-fashion-mnist is not installed (no {DEBIAN_FASHION_DIR})",
)
def test_fashion_debian_files():
    assert find_fashion_mnist_dir() == DEBIAN_FASHION_DIR
    ds = load_dataset("fashion-mnist")
    assert ds.train_images.shape == (60000, 1, 28, 28)
    assert ds.test_images.shape == (10000, 1, 28, 28)
    assert ds.shape == (1, 28, 28)
    assert ds.train_labels.shape == (60000,) and ds.test_labels.shape == (10000,)
    for labels in (ds.train_labels, ds.test_labels):
        assert labels.dtype == np.int64
        assert set(np.unique(labels)) == set(range(10))
    assert ds.train_images.max() == 255




def cifar_images(n: int, batch: int) -> np.ndarray:
    """(n, 3, 32, 32) uint8 images whose every pixel encodes batch, image, channel and position."""
    img = np.arange(n).reshape(n, 1, 1, 1)
    ch = np.arange(3).reshape(1, 3, 1, 1)
    row = np.arange(32).reshape(1, 1, 32, 1)
    col = np.arange(32).reshape(1, 1, 1, 32)
    return ((batch * 50 + img * 7 + ch * 80 + row * 3 + col) % 256).astype(np.uint8)


def write_cifar(directory: Path, n_train: int = 4, n_test: int = 3) -> dict:
    """Batches in the real layout: b'data' rows are R plane, then G, then B, each row-major."""
    directory.mkdir(parents=True, exist_ok=True)
    written = {}
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for b, name in enumerate(names):
        n = n_test if name == "test_batch" else n_train
        images = cifar_images(n, b)
        labels = [(b + i) % 10 for i in range(n)]
        record = {b"batch_label": name.encode(), b"labels": labels, b"data": images.reshape(n, 3072)}
        with open(directory / name, "wb") as f:
            pickle.dump(record, f, protocol=2)
        written[name] = (images, labels)
    return written


def _check_cifar(ds: Dataset, written: dict) -> None:
    assert ds.name == "cifar10" and ds.pixel_max == 255 and ds.classes == 10
    assert ds.shape == (3, 32, 32)
    assert ds.train_images.shape == (20, 3, 32, 32) and ds.test_images.shape == (3, 3, 32, 32)
    assert ds.train_images.dtype == np.uint8 and ds.train_labels.dtype == np.int64
    assert ds.test_labels.dtype == np.int64
    expected_train = np.concatenate([written[f"data_batch_{i}"][0] for i in range(1, 6)])
    np.testing.assert_array_equal(ds.train_images, expected_train)
    np.testing.assert_array_equal(ds.test_images, written["test_batch"][0])
    np.testing.assert_array_equal(
        ds.train_labels, sum((written[f"data_batch_{i}"][1] for i in range(1, 6)), [])
    )
    np.testing.assert_array_equal(ds.test_labels, written["test_batch"][1])


def test_cifar_planes_and_positions(tmp_path):
    written = write_cifar(tmp_path)
    # Hand-built flat row: R plane all 10, G plane all 20, B plane all 30, except marked pixels.
    row = np.concatenate([np.full(1024, 10), np.full(1024, 20), np.full(1024, 30)]).astype(np.uint8)
    row[0 * 1024 + 0 * 32 + 1] = 111  # R, y=0, x=1
    row[1 * 1024 + 2 * 32 + 0] = 122  # G, y=2, x=0
    row[2 * 1024 + 31 * 32 + 31] = 133  # B, y=31, x=31
    with open(tmp_path / "test_batch", "wb") as f:
        pickle.dump({b"labels": [7], b"data": row.reshape(1, 3072)}, f)
    ds = load_dataset("cifar10", data_dir=tmp_path)
    img = ds.test_images[0]
    assert img[0, 0, 1] == 111 and img[1, 2, 0] == 122 and img[2, 31, 31] == 133
    masks = np.ones((3, 32, 32), bool)
    masks[0, 0, 1] = masks[1, 2, 0] = masks[2, 31, 31] = False
    assert (img[0][masks[0]] == 10).all() and (img[1][masks[1]] == 20).all()
    assert (img[2][masks[2]] == 30).all()
    assert ds.test_labels.tolist() == [7]
    np.testing.assert_array_equal(ds.train_images[:4], written["data_batch_1"][0])


def test_cifar_batches_folder_itself(tmp_path):
    written = write_cifar(tmp_path / "cifar-10-batches-py")
    _check_cifar(load_dataset("cifar10", data_dir=tmp_path / "cifar-10-batches-py"), written)


def test_cifar_parent_folder(tmp_path):
    written = write_cifar(tmp_path / "cifar-10-batches-py")
    _check_cifar(load_dataset("cifar10", data_dir=str(tmp_path)), written)


def test_cifar_missing(tmp_path):
    for data_dir in (None, tmp_path / "absent", tmp_path):
        with pytest.raises(PascalError) as err:
            load_dataset("cifar10", data_dir=data_dir)
        msg = str(err.value)
        assert "CIFAR-10" in msg and "python version" in msg and "--data-dir" in msg
        assert "\n" not in msg


def test_cifar_missing_one_batch(tmp_path):
    write_cifar(tmp_path / "cifar-10-batches-py")
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(PascalError, match="lacks data_batch_3"):
        load_dataset("cifar10", data_dir=tmp_path)


@pytest.mark.parametrize(
    "content, words",
    [
        (b"not a pickle", "cannot unpickle"),
        (pickle.dumps([1, 2, 3]), "not a dict"),
        (pickle.dumps({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}), "(N, 3072)"),
        (pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}), "1 labels"),
        (pickle.dumps({b"data": np.zeros((1, 3072), np.uint8), b"labels": [12]}), "labels outside"),
    ],
)
def test_cifar_malformed_batch(tmp_path, content, words):
    write_cifar(tmp_path)
    (tmp_path / "data_batch_2").write_bytes(content)
    with pytest.raises(PascalError) as err:
        load_dataset("cifar10", data_dir=tmp_path)
    assert str(tmp_path / "data_batch_2") in str(err.value) and words in str(err.value)


@pytest.mark.parametrize("empty", [("test_batch",), CIFAR10_TRAIN_BATCHES])
def test_cifar_empty_split_is_refused(tmp_path, empty):
    write_cifar(tmp_path)
    for name in empty:
        (tmp_path / name).write_bytes(pickle.dumps({b"data": np.zeros((0, 3072), np.uint8),
                                                    b"labels": np.zeros(0, np.int64)}))
    with pytest.raises(PascalError) as err:
        load_dataset("cifar10", data_dir=tmp_path)
    msg = str(err.value)
    assert str(tmp_path / empty[0] if len(empty) == 1 else tmp_path) in msg
    assert "0 images" in msg or "0 training images" in msg



@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_cifar_batch_in_every_pickle_protocol(tmp_path, protocol):
    written = write_cifar(tmp_path)
    images = cifar_images(3, 9)
    record = {b"batch_label": b"testing batch 1 of 1", b"labels": [4, 0, 9],
              b"data": images.reshape(3, 3072), b"filenames": [b"a.png", b"b.png", b"c.png"]}
    (tmp_path / "test_batch").write_bytes(pickle.dumps(record, protocol=protocol))
    ds = load_dataset("cifar10", data_dir=tmp_path)
    np.testing.assert_array_equal(ds.test_images, images)
    assert ds.test_labels.tolist() == [4, 0, 9]
    np.testing.assert_array_equal(ds.train_images[:4], written["data_batch_1"][0])


class _CreatesMarker:
    """Unpickling this object opens (creates) ``marker``: a stand-in for arbitrary code."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


class _Evaluates:
    def __reduce__(self):
        return (eval, ("1 + 1",))


@pytest.mark.parametrize("protocol", [0, 2, pickle.DEFAULT_PROTOCOL, pickle.HIGHEST_PROTOCOL])
def test_cifar_crafted_batch_does_not_run_code(tmp_path, protocol):
    write_cifar(tmp_path)
    marker = tmp_path / "marker"
    payload = {b"data": np.zeros((1, 3072), np.uint8), b"labels": [_CreatesMarker(marker)]}
    (tmp_path / "data_batch_4").write_bytes(pickle.dumps(payload, protocol=protocol))
    with pytest.raises(PascalError) as err:
        load_dataset("cifar10", data_dir=tmp_path)
    assert not marker.exists()
    msg = str(err.value)
    assert msg.startswith(f"malformed CIFAR-10 batch {tmp_path / 'data_batch_4'}: ")
    assert "open not allowed" in msg and "\n" not in msg


@pytest.mark.parametrize("obj, shown", [
    (_Evaluates(), "eval not allowed"),
    (np.int64(3), "numpy"),  # a numpy scalar is not part of the format either
    (np.load, "numpy"),
])
def test_cifar_batch_naming_other_objects(tmp_path, obj, shown):
    write_cifar(tmp_path)
    payload = {b"data": np.zeros((1, 3072), np.uint8), b"labels": [0], b"extra": obj}
    (tmp_path / "test_batch").write_bytes(pickle.dumps(payload, protocol=2))
    with pytest.raises(PascalError) as err:
        load_dataset("cifar10", data_dir=tmp_path)
    msg = str(err.value)
    assert str(tmp_path / "test_batch") in msg and shown in msg and "not allowed" in msg


def test_unknown_name():
    with pytest.raises(PascalError) as err:
        load_dataset("mnist")
    msg = str(err.value)
    assert "mnist" in msg
    for name in DATASETS:
        assert name in msg


def test_known_names():
    assert DATASETS == ("digits", "fashion-mnist", "cifar10")
    assert len(FASHION_MNIST_FILES) == 4
