"""The board side of the accelerator: AXI-Stream packing and a PYNQ runner. numpy only (PYNQ is
imported when a board is used), so that this file runs on the board as it is: `pascal-fpga
compile` copies it into BUILD_DIR/driver/ with design.json (the stream format) and
run_on_board.py.

Stream format (the top function's, hls/include/pascal/io.h): per image, one input word per pixel
in row-major order, channel c at bits [c * bits, (c + 1) * bits), each word ``axi_bytes`` bytes,
little-endian; out, ``classes`` + 1 32-bit words: the classifier accumulators, then the class.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


DESIGN_INTS = ("pixels", "channels", "height", "width", "bits", "axi_bytes", "classes")


def load_design(path) -> dict:
    """design.json: pixels, channels, height, width, bits, axi_bytes, classes (positive
    integers) and out_scale (a positive number). A missing, malformed or inconsistent file is a
    ValueError with one line naming the file and the field (this file runs on the board without
    the rest of pascal-fpga, so it raises a plain ValueError)."""
    path = Path(path)
    try:
        design = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ValueError(f"{path}: not a readable JSON file ({type(exc).__name__})") from None
    if not isinstance(design, dict):
        raise ValueError(f"{path}: must hold a JSON object, got a {type(design).__name__}")
    for key in DESIGN_INTS:
        value = design.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 1 << 24:
            raise ValueError(f"{path}: field {key!r} must be an integer in 1..2^24, got "
                             f"{repr(value)[:40]}")
    scale = design.get("out_scale")
    if not isinstance(scale, (int, float)) or isinstance(scale, bool) or not scale > 0 \
            or scale == float("inf"):
        raise ValueError(f"{path}: field 'out_scale' must be a positive number, got "
                         f"{repr(scale)[:40]}")
    if design["pixels"] != design["height"] * design["width"] or design["bits"] > 16 \
            or 8 * design["axi_bytes"] < design["channels"] * design["bits"]:
        raise ValueError(f"{path}: fields 'pixels', 'bits' and 'axi_bytes' do not fit the input "
                         f"shape (pixels = height x width, bits <= 16, channels x bits in "
                         f"axi_bytes)")
    return design


def pack_images(images: np.ndarray, design: dict) -> np.ndarray:
    """Raw images (N, C, H, W) -> the input DMA buffer's bytes (uint8, N * pixels * axi_bytes)."""
    n = len(images)
    c, bits, nbytes = design["channels"], design["bits"], design["axi_bytes"]
    pixels = np.asarray(images).reshape(n, c, -1).transpose(0, 2, 1).astype(np.int64)  # N, P, C
    planes = (pixels[..., None] >> np.arange(bits)) & 1          # N, P, C, bits: bit i of c
    flat = planes.reshape(n, pixels.shape[1], c * bits)          # channel c at c * bits
    flat = np.pad(flat, ((0, 0), (0, 0), (0, 8 * nbytes - c * bits)))
    return np.packbits(flat.astype(np.uint8), axis=-1, bitorder="little").reshape(-1)


def unpack_outputs(words: np.ndarray, design: dict) -> tuple[np.ndarray, np.ndarray]:
    """The output DMA buffer (int32, N * (classes + 1)) -> (accumulators (N, classes), classes)."""
    table = np.asarray(words, dtype="<i4").reshape(-1, design["classes"] + 1)
    return table[:, :-1].astype(np.int64), table[:, -1].astype(np.int64)


class PynqAccelerator:
    """The accelerator on a PYNQ board: an Overlay of the bitstream and its AXI DMA.

    ``overlay`` may be given instead of a bitstream path (a test stand-in, or an Overlay the caller
    made); ``dma`` names the DMA IP in the block design (default axi_dma_0)."""

    def __init__(self, design: dict, bitfile=None, overlay=None, dma: str = "axi_dma_0"):
        if overlay is None:
            from pynq import Overlay  # only on the board

            overlay = Overlay(str(bitfile))
        self.design = design
        self.dma = getattr(overlay, dma)

    def _allocate(self, shape, dtype):
        try:
            from pynq import allocate
        except ImportError:  # a stand-in DMA on the host: plain numpy buffers
            return np.zeros(shape, dtype=dtype)
        return allocate(shape=shape, dtype=dtype)

    def run(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(accumulators, classes) of raw images (N, C, H, W)."""
        data = pack_images(images, self.design)
        inbuf = self._allocate(data.shape, np.uint8)
        inbuf[:] = data
        outbuf = self._allocate((len(images) * (self.design["classes"] + 1),), np.int32)
        self.dma.recvchannel.transfer(outbuf)
        self.dma.sendchannel.transfer(inbuf)
        self.dma.sendchannel.wait()
        self.dma.recvchannel.wait()
        return unpack_outputs(np.asarray(outbuf), self.design)
