"""Labelled image data sets, loaded as raw integer pixels.

Three sets are known (:data:`DATASETS`):

``digits``
    scikit-learn's bundled 8x8 handwritten digits (1797 images, pixels 0..16), available offline.
``fashion-mnist``
    Zalando's Fashion-MNIST in its four IDX files (plain or ``.gz``), from ``data_dir`` or from
    the Debian package ``dataset-fashion-mnist`` (``/usr/share/datasets/fashion-mnist``).
``cifar10``
    The "CIFAR-10 python version" batches, from ``data_dir``.

Every loader returns a :class:`Dataset` holding ``uint8`` images of shape ``(N, C, H, W)`` in the
set's own raw range (see :attr:`Dataset.pixel_max`) and ``int64`` labels; scaling to the network's
input range is left to the caller. All arrays are fresh, writable copies.
"""

from __future__ import annotations

import codecs
import gzip
import math
import os
import pathlib
import pickle
import struct
import zlib
from dataclasses import dataclass

import numpy as np

from .errors import PascalError

DATASETS = ("digits", "fashion-mnist", "cifar10")

#: Where the Debian package ``dataset-fashion-mnist`` installs the IDX files.
FASHION_MNIST_SYSTEM_DIR = pathlib.Path("/usr/share/datasets/fashion-mnist")

#: The four Fashion-MNIST IDX files (each may also carry a ``.gz`` suffix).
FASHION_MNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)

#: Size of the fixed held-out test split of ``digits``.
DIGITS_TEST_SIZE = 360
#: Seed of the ``digits`` split.
DIGITS_SPLIT_SEED = 0

CIFAR10_SUBDIR = "cifar-10-batches-py"
CIFAR10_TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR10_TEST_BATCH = "test_batch"

_CLASSES = 10
_IDX_UBYTE = 0x08
#: The most data bytes one IDX file may hold (Fashion-MNIST's largest holds 47,040,000): a header
#: asking for more is refused before anything is read or decompressed.
MAX_IDX_DATA_BYTES = 256 * 2 ** 20


@dataclass(frozen=True)
class Dataset:
    """A labelled image set, raw integer pixels."""

    name: str
    train_images: np.ndarray  # uint8, (N, C, H, W), raw pixels in the set's own range
    train_labels: np.ndarray  # int64, (N,)
    test_images: np.ndarray  # uint8, (M, C, H, W)
    test_labels: np.ndarray  # int64, (M,)
    pixel_max: int  # largest raw pixel value the set can have: 16 for digits, 255 otherwise
    classes: int  # number of classes (10 for all known sets)

    @property
    def shape(self) -> tuple[int, int, int]:
        """One image's shape, ``(C, H, W)``."""
        c, h, w = self.train_images.shape[1:]
        return (int(c), int(h), int(w))


def load_dataset(name: str, data_dir: str | os.PathLike | None = None) -> Dataset:
    """Load the data set called ``name`` (one of :data:`DATASETS`).

    ``data_dir`` is where the files lie: ignored for ``digits``, optional for ``fashion-mnist``
    (default: the Debian package's folder), required for ``cifar10``. Raises
    :class:`~pascal_fpga.errors.PascalError` for an unknown name or missing/malformed files.
    """
    if name == "digits":
        return _load_digits()
    if name == "fashion-mnist":
        return _load_fashion_mnist(data_dir)
    if name == "cifar10":
        return _load_cifar10(data_dir)
    raise PascalError(f"unknown data set {name!r}; known data sets: {', '.join(DATASETS)}")




def _load_digits() -> Dataset:
    """scikit-learn's 8x8 digits with a fixed, stratified split.

    The split is ``sklearn.model_selection.train_test_split(images, labels, test_size=360,
    stratify=labels, random_state=0)``: 1437 training and 360 test images, each class in the test
    split in proportion to its share of the whole set (35 or 36 per class). It is seeded, so it is
    the same on every run and machine.
    """
    # deferred: scikit-learn is heavy and only this data set needs it
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    data = np.asarray(bunch.data)
    labels = np.asarray(bunch.target, dtype=np.int64)
    if data.min() < 0 or data.max() > 16 or not np.array_equal(data, np.round(data)):
        raise PascalError("scikit-learn's digits data set is not integer pixels in 0..16")
    images = data.astype(np.uint8).reshape(-1, 1, 8, 8)
    train_x, test_x, train_y, test_y = train_test_split(
        images,
        labels,
        test_size=DIGITS_TEST_SIZE,
        stratify=labels,
        random_state=DIGITS_SPLIT_SEED,
    )
    return Dataset(
        name="digits",
        train_images=np.ascontiguousarray(train_x),
        train_labels=np.ascontiguousarray(train_y, dtype=np.int64),
        test_images=np.ascontiguousarray(test_x),
        test_labels=np.ascontiguousarray(test_y, dtype=np.int64),
        pixel_max=16,
        classes=_CLASSES,
    )




def _fashion_mnist_missing(what: str) -> PascalError:
    return PascalError(
        f"Fashion-MNIST not found: {what}; install it with 'apt-get install dataset-fashion-mnist' "
        f"or pass --data-dir DIR holding the four IDX files ({', '.join(FASHION_MNIST_FILES)}, "
        f"plain or .gz)"
    )


def _idx_file(directory: pathlib.Path, stem: str) -> pathlib.Path | None:
    """The IDX file ``stem`` in ``directory``, plain preferred over ``.gz``; None if neither."""
    for candidate in (directory / stem, directory / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    return None


def find_fashion_mnist_dir(data_dir: str | os.PathLike | None = None) -> pathlib.Path:
    """The folder holding the four Fashion-MNIST IDX files (each plain or ``.gz``).

    ``data_dir`` if given, else the Debian package's folder :data:`FASHION_MNIST_SYSTEM_DIR`.
    Raises :class:`~pascal_fpga.errors.PascalError` saying what is missing and how to get it.
    """
    directory = (
        FASHION_MNIST_SYSTEM_DIR if data_dir is None else pathlib.Path(data_dir).expanduser()
    )
    if not directory.is_dir():
        raise _fashion_mnist_missing(f"no folder {directory}")
    missing = [stem for stem in FASHION_MNIST_FILES if _idx_file(directory, stem) is None]
    if missing:
        raise _fashion_mnist_missing(f"{directory} lacks {', '.join(missing)}")
    return directory


def _read_at_most(f, limit: int) -> bytearray:
    """Up to ``limit`` bytes of ``f``, read in 1 MiB pieces: memory grows with what the file
    holds, never with what its header claims (``f.read(limit)`` would allocate ``limit`` first)."""
    data = bytearray()
    while len(data) < limit:
        piece = f.read(min(1 << 20, limit - len(data)))
        if not piece:
            break
        data += piece
    return data


def _read_idx(path: pathlib.Path, ndim: int) -> np.ndarray:
    """Parse an unsigned-byte IDX file with ``ndim`` dimensions into a writable uint8 array.

    The file (plain or ``.gz``) is streamed: the header first, then at most one byte more than its
    dimensions call for, and nothing if they call for more than :data:`MAX_IDX_DATA_BYTES`; so a
    lying header or a gzip bomb costs no more memory than an honest file of that bound.
    """
    try:
        with (gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")) as f:
            magic = f.read(4)
            if len(magic) < 4:
                raise PascalError(f"malformed IDX file {path}: only {len(magic)} bytes, no header")
            if magic[0] != 0 or magic[1] != 0:
                raise PascalError(
                    f"malformed IDX file {path}: bad magic {magic.hex()} (must start with 0000)"
                )
            if magic[2] != _IDX_UBYTE:
                raise PascalError(
                    f"malformed IDX file {path}: data type code 0x{magic[2]:02x}, expected 0x08 "
                    f"(unsigned byte)"
                )
            if magic[3] != ndim:
                raise PascalError(
                    f"malformed IDX file {path}: {magic[3]} dimensions, expected {ndim}"
                )
            header = 4 + 4 * ndim
            sizes = f.read(4 * ndim)
            if len(sizes) < 4 * ndim:
                raise PascalError(
                    f"malformed IDX file {path}: truncated header ({4 + len(sizes)} bytes)"
                )
            dims = struct.unpack(f">{ndim}I", sizes)
            shown = "x".join(map(str, dims))
            expected = math.prod(dims)  # a Python int: no wrap-around however large
            if expected > MAX_IDX_DATA_BYTES:
                raise PascalError(
                    f"malformed IDX file {path}: dimensions {shown} need {expected} data bytes, "
                    f"more than the {MAX_IDX_DATA_BYTES >> 20} MiB an IDX file may hold"
                )
            data = _read_at_most(f, expected + 1)
            size = None if path.suffix == ".gz" else os.fstat(f.fileno()).st_size
    except (OSError, EOFError, zlib.error) as exc:
        raise PascalError(f"cannot read {path}: {exc}") from None
    if len(data) != expected:
        if len(data) < expected:
            state, has = "truncated", f"{len(data)}"
        else:
            state, has = "trailing bytes", "more" if size is None else f"{size - header}"
        raise PascalError(
            f"malformed IDX file {path}: {state}, dimensions {shown} need {expected} data bytes "
            f"but it has {has}"
        )
    return np.frombuffer(data, dtype=np.uint8).reshape(dims)  # writable: data is a bytearray


def _read_fashion_pair(
    directory: pathlib.Path, images_stem: str, labels_stem: str
) -> tuple[np.ndarray, np.ndarray]:
    images_path = _idx_file(directory, images_stem)
    labels_path = _idx_file(directory, labels_stem)
    assert images_path is not None and labels_path is not None  # checked by find_fashion_mnist_dir
    images = _read_idx(images_path, 3)
    labels = _read_idx(labels_path, 1)  # uint8 until checked: int64 takes 8 times the memory
    if images.shape[1:] != (28, 28):
        raise PascalError(
            f"malformed IDX file {images_path}: images are "
            f"{images.shape[1]}x{images.shape[2]}, expected 28x28"
        )
    if len(images) != len(labels):
        raise PascalError(
            f"Fashion-MNIST files disagree: {images_path} has {len(images)} images but "
            f"{labels_path} has {len(labels)} labels"
        )
    if labels.size and labels.max() >= _CLASSES:
        raise PascalError(
            f"malformed IDX file {labels_path}: label {int(labels.max())} outside 0..{_CLASSES - 1}"
        )
    if len(images) == 0:
        raise PascalError(
            f"malformed IDX file {images_path}: 0 images (a data set needs at least one training "
            f"and one test image)"
        )
    return images.reshape(-1, 1, 28, 28), labels.astype(np.int64)


def _load_fashion_mnist(data_dir: str | os.PathLike | None) -> Dataset:
    directory = find_fashion_mnist_dir(data_dir)
    train_x, train_y = _read_fashion_pair(directory, *FASHION_MNIST_FILES[0:2])
    test_x, test_y = _read_fashion_pair(directory, *FASHION_MNIST_FILES[2:4])
    return Dataset(
        name="fashion-mnist",
        train_images=train_x,
        train_labels=train_y,
        test_images=test_x,
        test_labels=test_y,
        pixel_max=255,
        classes=_CLASSES,
    )




def _cifar10_missing(what: str) -> PascalError:
    return PascalError(
        f"CIFAR-10 not found: {what}; download the CIFAR-10 python version "
        f"(cifar-10-python.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html), unpack it "
        f"and pass --data-dir DIR (the {CIFAR10_SUBDIR} folder or the folder holding it)"
    )


def _find_cifar10_dir(data_dir: str | os.PathLike | None) -> pathlib.Path:
    if data_dir is None:
        raise _cifar10_missing("no data folder given")
    base = pathlib.Path(data_dir).expanduser()
    if not base.is_dir():
        raise _cifar10_missing(f"no folder {base}")
    names = CIFAR10_TRAIN_BATCHES + (CIFAR10_TEST_BATCH,)
    for directory in (base, base / CIFAR10_SUBDIR):
        if all((directory / n).is_file() for n in names):
            return directory
    # Report against whichever layout holds at least some batches, else the given folder.
    directory = base / CIFAR10_SUBDIR if (base / CIFAR10_SUBDIR).is_dir() else base
    missing = [n for n in names if not (directory / n).is_file()]
    raise _cifar10_missing(f"{directory} lacks {', '.join(missing)}")


class _ForbiddenGlobal(pickle.UnpicklingError):
    """A pickle names a Python object that a CIFAR-10 batch never holds."""


def _cifar_globals() -> dict[tuple[str, str], object]:
    """The only objects a CIFAR-10 batch may name: numpy's array and dtype reconstruction
    (``numpy.core`` in files written by numpy 1, ``numpy._core`` by numpy 2; ``_frombuffer`` for
    pickle protocol 5) and ``_codecs.encode``, which protocol 2 uses for bytes."""
    reconstruct = np.ndarray(0).__reduce__()[0]
    frombuffer = np.zeros(1).__reduce_ex__(5)[0]
    allowed: dict[tuple[str, str], object] = {("_codecs", "encode"): codecs.encode}
    for package in ("numpy.core", "numpy._core"):
        allowed[(f"{package}.multiarray", "_reconstruct")] = reconstruct
        allowed[(f"{package}.numeric", "_frombuffer")] = frombuffer
    allowed[("numpy", "ndarray")] = np.ndarray
    allowed[("numpy", "dtype")] = np.dtype
    return allowed


class _CifarUnpickler(pickle.Unpickler):
    """Unpickles numpy arrays, dicts, lists, numbers and bytes, and nothing else: any other object
    a file names is refused before it is looked up, so a crafted batch cannot run code."""

    _allowed = _cifar_globals()

    def find_class(self, module: str, name: str) -> object:
        found = self._allowed.get((module, name))
        if found is None:
            text = f"{module}.{name}"
            printable = text.isascii() and text.isprintable() and len(text) <= 100
            raise _ForbiddenGlobal(text if printable else ascii(text)[:100])
        return found

    def persistent_load(self, pid: object) -> object:
        raise _ForbiddenGlobal("a persistent id")


def _read_cifar_batch(path: pathlib.Path) -> tuple[np.ndarray, np.ndarray]:
    # The batches are pickles, as distributed. They are read by an unpickler that builds only numpy
    # arrays and plain data, so a crafted file is refused rather than run.
    try:
        with open(path, "rb") as f:
            batch = _CifarUnpickler(f, encoding="bytes").load()
    except _ForbiddenGlobal as exc:
        raise PascalError(f"malformed CIFAR-10 batch {path}: {exc} not allowed (a batch holds "
                          f"only numpy arrays, lists, numbers and bytes)") from None
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means a bad file
        detail = " ".join(str(exc).split())
        raise PascalError(f"malformed CIFAR-10 batch {path}: cannot unpickle ({detail})") from None
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        raise PascalError(f"malformed CIFAR-10 batch {path}: not a dict with b'data' and b'labels'")
    data = np.asarray(batch[b"data"])
    labels = np.asarray(batch[b"labels"])
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise PascalError(
            f"malformed CIFAR-10 batch {path}: data is {data.dtype} {data.shape}, "
            f"expected uint8 (N, 3072)"
        )
    if labels.ndim != 1 or len(labels) != len(data) or not np.issubdtype(labels.dtype, np.integer):
        raise PascalError(
            f"malformed CIFAR-10 batch {path}: {labels.size} labels for {len(data)} images"
        )
    if labels.size and (labels.min() < 0 or labels.max() >= _CLASSES):
        raise PascalError(f"malformed CIFAR-10 batch {path}: labels outside 0..{_CLASSES - 1}")
    return data.reshape(-1, 3, 32, 32), labels.astype(np.int64)


def _load_cifar10(data_dir: str | os.PathLike | None) -> Dataset:
    directory = _find_cifar10_dir(data_dir)
    parts = [_read_cifar_batch(directory / n) for n in CIFAR10_TRAIN_BATCHES]
    test_x, test_y = _read_cifar_batch(directory / CIFAR10_TEST_BATCH)
    if not any(len(x) for x, _ in parts):
        raise PascalError(f"malformed CIFAR-10 batches in {directory}: 0 training images in "
                          f"{', '.join(CIFAR10_TRAIN_BATCHES)} (a data set needs at least one "
                          f"training and one test image)")
    if len(test_x) == 0:
        raise PascalError(f"malformed CIFAR-10 batch {directory / CIFAR10_TEST_BATCH}: 0 images "
                          f"(a data set needs at least one training and one test image)")
    return Dataset(
        name="cifar10",
        train_images=np.concatenate([x for x, _ in parts]),
        train_labels=np.concatenate([y for _, y in parts]),
        test_images=np.ascontiguousarray(test_x),
        test_labels=np.ascontiguousarray(test_y),
        pixel_max=255,
        classes=_CLASSES,
    )
