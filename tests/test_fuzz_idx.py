"""Fuzzing the Fashion-MNIST IDX reader with hypothesis: one of the four files of a small valid
folder is replaced by a file with a fuzzed header (magic, data type code, dimension count, each
dimension: 0, 28, huge, products that wrap 2^32 or 2^64) and payload (exact, short, long, random,
a gzip bomb), plain or gzip (sometimes a cut gzip stream). Every example must end in a Dataset or
one PascalError line naming the folder, never another exception, and must allocate no more than
what the header asks for (at most the reader's bound) or what the file holds, whichever is less.
The examples are derandomized so that CI runs the same ones every time."""

from __future__ import annotations

import gc
import math
import struct
import tempfile
import tracemalloc
import zlib
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from pascal_fpga.datasets import FASHION_MNIST_FILES, MAX_IDX_DATA_BYTES, Dataset, load_dataset
from pascal_fpga.errors import PascalError

FUZZ = settings(max_examples=150, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

#: The bomb's zeros: far more than any fuzzed header that is not huge asks for.
BOMB_BYTES = 16 << 20
#: What reading the other three small files, numpy and the loader's own objects may take.
SLACK_BYTES = 4 << 20

# hypothesis leans towards a strategy's first values: the plausible ones come first
DIMENSION = st.one_of(
    st.sampled_from([28, 0, 1, 2, 3]),
    st.sampled_from([2 ** 16, 2 ** 16 + 1, 46341, 2 ** 21, 2 ** 22, 2 ** 24, 2 ** 31,
                     2 ** 32 - 1]),
    st.integers(0, 2 ** 32 - 1),
)
# image/label counts: those of the valid folder's other files (3 training, 2 test), none, any
COUNT = st.one_of(st.sampled_from([3, 2, 0, 1]), DIMENSION)
# dimension triples whose product is 2^32 or 2^64 (or just past): wrap in 32 or 64 bits
WRAPPING = st.sampled_from([
    (2 ** 16, 2 ** 16, 1), (2 ** 16, 2 ** 16, 28), (2 ** 21, 2 ** 21, 2 ** 22),
    (2 ** 32 - 1, 2 ** 32 - 1, 2 ** 32 - 1), (2 ** 22, 2 ** 21, 2 ** 21 + 1), (65537, 65535, 28),
])


@st.composite
def idx_files(draw):
    """(stem, header, payload size, payload byte, header cut, compress, gzip cut, claimed data
    bytes, partner count): at most one kind of header damage per example, so that most get past
    the header; a partner count (for a small count) rewrites the other file of the same split
    (labels for images, images for labels) with that many, so that counts reach their checks."""
    stem = draw(st.sampled_from(FASHION_MNIST_FILES))
    want = 3 if "images" in stem else 1
    damage = draw(st.sampled_from(["none"] * 4 + ["magic", "code", "ndim", "cut", "gz-cut"]))
    magic, code, ndim = b"\0\0", 0x08, want
    if damage == "magic":
        magic = draw(st.binary(min_size=2, max_size=2).filter(lambda b: b != b"\0\0"))
    elif damage == "code":  # 0x09, 0x0B..0x0E: the other IDX types
        code = draw(st.one_of(st.sampled_from([0x09, 0x0B, 0x0C, 0x0D, 0x0E]),
                              st.integers(0, 255).filter(lambda c: c != 0x08)))
    elif damage == "ndim":
        ndim = draw(st.integers(0, 255).filter(lambda n: n != want))
    shape = draw(st.sampled_from(["count", "count", "wrapping", "any"]))
    if ndim == want and shape == "count":  # an image or label count, then 28x28: gets far
        dims = [draw(COUNT)] + [28] * (ndim - 1)
    elif ndim == 3 and shape == "wrapping":
        dims = list(draw(WRAPPING))
    else:
        dims = [draw(DIMENSION) for _ in range(min(ndim, 4))] + [0] * max(ndim - 4, 0)
    header = magic + bytes([code, ndim]) + struct.pack(f">{ndim}I", *dims)
    claimed = math.prod(dims) if damage in ("none", "gz-cut") else 0
    payload_kind = draw(st.sampled_from(["exact", "exact", "short", "long", "random", "bomb"]))
    fill = draw(st.sampled_from([0, 9, 10, 255]))  # labels: valid, valid, out of range
    exactish = claimed if claimed <= 1 << 16 else draw(st.integers(0, 4096))
    size = {"exact": exactish,
            "short": max(exactish - draw(st.integers(1, 64)), 0),
            "long": exactish + draw(st.integers(1, 64)),
            "random": draw(st.integers(0, 4096)),
            "bomb": BOMB_BYTES}[payload_kind]
    cut = draw(st.integers(0, len(header) - 1)) if damage == "cut" else None
    compress = payload_kind == "bomb" or damage == "gz-cut" or draw(st.booleans())
    partner = dims[0] if ndim == want and shape == "count" and dims[0] <= 16 else None
    return stem, header, size, fill, cut, compress, damage == "gz-cut", claimed, partner


def _example(stem: str, dims: tuple[int, ...], size: int | None = None, cut: int | None = None,
             compress: bool | None = None, gz_cut: bool = False, partner: int | None = None):
    """An ``idx_files`` example, by hand: a valid header with ``dims`` and ``size`` data bytes
    (default: what the dimensions need), gzip-packed for a bomb."""
    header = struct.pack(f">BBBB{len(dims)}I", 0, 0, 0x08, len(dims), *dims)
    claimed = math.prod(dims)
    size = claimed if size is None else size
    compress = size == BOMB_BYTES if compress is None else compress
    return stem, header, size, 0, cut, compress, gz_cut, claimed, partner


def _write_valid(path: Path, shape: tuple[int, ...]) -> None:
    top = 256 if len(shape) == 3 else 10
    data = np.random.default_rng(0).integers(0, top, shape, dtype=np.uint8)
    header = struct.pack(">BBBB", 0, 0, 0x08, len(shape)) + struct.pack(f">{len(shape)}I", *shape)
    path.write_bytes(header + data.tobytes())


def _write_folder(folder: Path, stem: str, partner: int | None) -> None:
    """The valid folder (3 training, 2 test images) less ``stem``; with ``partner``, the other
    file of stem's split holds that many images or labels."""
    counts = {FASHION_MNIST_FILES[0]: 3, FASHION_MNIST_FILES[1]: 3,
              FASHION_MNIST_FILES[2]: 2, FASHION_MNIST_FILES[3]: 2}
    index = FASHION_MNIST_FILES.index(stem)
    if partner is not None:
        counts[FASHION_MNIST_FILES[index ^ 1]] = partner
    for name, count in counts.items():
        if name != stem:
            _write_valid(folder / name, (count, 28, 28) if "images" in name else (count,))


def _write_fuzzed(path: Path, header: bytes, size: int, fill: int, cut: int | None,
                  compress: bool, gz_cut: bool) -> int:
    """Write the fuzzed file; returns how many uncompressed bytes it holds."""
    if cut is not None:
        header, size = header[:cut], 0
    if not compress:
        path.write_bytes(header + bytes([fill]) * size)
        return len(header) + size
    packer = zlib.compressobj(1, zlib.DEFLATED, 31)
    parts = [packer.compress(header)]
    chunk = bytes([fill]) * min(size, 1 << 20)
    left = size
    while left:
        parts.append(packer.compress(chunk[:left]))
        left -= min(left, len(chunk))
    parts.append(packer.flush())
    packed = b"".join(parts)
    if gz_cut:
        packed = packed[:max(len(packed) - 12, 0)]
    path.with_name(path.name + ".gz").write_bytes(packed)
    return len(header) + size


OUTCOMES = ("an IDX file may hold", "trailing bytes", "0 images", "truncated", "magic",
            "data type", "dimensions, expected", "cannot read", "label", "expected 28x28",
            "disagree")


def _check(case, seen: set[str]) -> None:
    stem, header, size, fill, cut, compress, gz_cut, claimed, partner = case
    with tempfile.TemporaryDirectory(prefix="fuzz-idx-") as tmp:
        folder = Path(tmp)
        _write_folder(folder, stem, partner)
        held = _write_fuzzed(folder / stem, header, size, fill, cut, compress, gz_cut)
        collecting = gc.isenabled()
        gc.disable()  # no collection (and finalizers of other tests' objects) inside the measure
        tracemalloc.start()
        try:
            try:
                result = load_dataset("fashion-mnist", folder)
            except PascalError as exc:
                result = exc
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
            if collecting:
                gc.enable()
        # what the reader may take: the data the header asks for (at most the bound) or the data
        # the file holds, whichever is less, twice over (pieces and the array), plus the rest
        read = min(claimed, MAX_IDX_DATA_BYTES, held)
        assert peak <= 2 * read + SLACK_BYTES, (peak, read, claimed, held)
        if isinstance(result, PascalError):
            msg = str(result)
            assert "\n" not in msg and str(folder) in msg, msg
            seen.update(words for words in OUTCOMES if words in msg)
            return
        assert isinstance(result, Dataset)
        seen.add("dataset")
        for images, labels in ((result.train_images, result.train_labels),
                               (result.test_images, result.test_labels)):
            assert images.dtype == np.uint8 and images.shape[1:] == (1, 28, 28)
            assert labels.dtype == np.int64 and len(labels) == len(images) >= 1
            assert labels.min() >= 0 and labels.max() < 10
            assert images.flags.writeable


def test_fuzzed_idx_file_is_a_dataset_or_one_error_line():
    seen: set[str] = set()
    gc.collect()  # earlier tests' garbage now, not in a measured load

    @FUZZ
    @given(idx_files())
    @example(_example(FASHION_MNIST_FILES[0], (3, 28, 28)))  # a valid file: a Dataset
    @example(_example(FASHION_MNIST_FILES[1], (0,), partner=0))  # 0 training images
    @example(_example(FASHION_MNIST_FILES[2], (0, 28, 28), partner=0))  # 0 test images
    @example(_example(FASHION_MNIST_FILES[0], (3, 28, 28), size=BOMB_BYTES))  # a gzip bomb
    @example(_example(FASHION_MNIST_FILES[2], (2 ** 21, 2 ** 21, 2 ** 22), size=0))  # 2^64
    @example(_example(FASHION_MNIST_FILES[3], (2,), cut=6))  # a cut header
    @example(_example(FASHION_MNIST_FILES[3], (2,), compress=True, gz_cut=True))  # a cut stream
    def fuzz(case):
        _check(case, seen)

    fuzz()
    # the examples get past the first checks: to a Dataset, and to each refusal of issue 21
    assert {"dataset", "an IDX file may hold", "trailing bytes", "0 images", "truncated",
            "magic", "data type", "dimensions, expected"} <= seen, seen
