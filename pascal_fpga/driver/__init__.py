"""The runtime API: ``Accelerator(BUILD_DIR, backend=...)``, one interface to the hardware and
its two simulators.

    from pascal_fpga.driver import Accelerator
    acc = Accelerator("build/fmnist", backend="cyclesim")   # or "csim", or "pynq" on a board
    result = acc.predict(images)                            # raw pixels (N, C, H, W)
    result.classes, result.logits

A build of a foreign model (docs/foreign-models.md) takes the model's own input instead (float
values, as the model takes them): its input adapter (design.json's ``input_adapter``) turns them
into the integer codes the accelerator takes, on the host, with the model's own ops and
quantizer.

Backends: ``pynq`` (the bitstream on a PYNQ board, through its AXI DMA: :mod:`.board`), ``csim``
(the HLS project's C simulation, built with g++), ``cyclesim`` (the cycle-accurate model). All
three return the classifier's integer accumulators; logits are those times the classifier's
output scale.
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..buildfolder import load_build
from ..errors import PascalError
from ..hw.csim import ap_types_dir, build_csim, run_csim
from .board import PynqAccelerator, load_design, pack_images, unpack_outputs

# what runs a build (not the schedules "hls" and "rtl" of the hardware model)
ACCELERATOR_BACKENDS = ("cyclesim", "csim", "pynq")

__all__ = ["Accelerator", "Prediction", "ACCELERATOR_BACKENDS", "pack_images", "unpack_outputs"]


@dataclass
class Prediction:
    classes: np.ndarray        # int64 (N,), the first argmax
    accumulators: np.ndarray   # int64 (N, classes)
    logits: np.ndarray         # float64 (N, classes) = accumulators * out_scale


class Accelerator:
    """A compiled build, run by one backend (see the module docstring)."""

    def __init__(self, build_dir: str | Path, backend: str = "cyclesim",
                 bitfile: str | Path | None = None, xilinx_hls: str | None = None,
                 overlay=None):
        self.build_dir = Path(build_dir)
        self.build = load_build(self.build_dir)
        if backend not in ACCELERATOR_BACKENDS:
            raise PascalError(f"backend {backend!r}: choose one of "
                              f"{', '.join(ACCELERATOR_BACKENDS)}")
        self.backend = backend
        design_path = self.build_dir / "driver" / "design.json"
        if not design_path.is_file():
            raise PascalError(f"{design_path}: missing (compile again)")
        try:
            self.design = load_design(design_path)
        except ValueError as exc:  # board.py's own one-line message, naming the file
            raise PascalError(f"{exc} (compile again)") from exc
        self._run = None
        self.adapter = None
        if self.design.get("input_adapter") is not None:
            from ..ir.adapter import InputAdapter   # deferred: only foreign models need it
            try:
                self.adapter = InputAdapter.from_json(json.dumps(self.design["input_adapter"]))
            except PascalError as exc:
                raise PascalError(f"{design_path}: field 'input_adapter': {exc}") from None
        self.out_offset = float(self.design.get("out_offset", 0.0))
        if backend == "cyclesim":
            # deferred: the cycle model imports qonnx (2 s), which the other backends never need
            from ..hw.design import design_from_ir
            from ..hw.load import load_qonnx_ir
            from ..perf.values import run_values

            design = design_from_ir(load_qonnx_ir(self.build_dir / self.build["ir"]))
            self._run = lambda x: run_values(design, x)[:2]
        elif backend == "csim":
            binary = build_csim(self.build_dir, ap_types_dir(xilinx_hls))

            def run(x):
                outputs, _, _ = run_csim(binary, x, [])
                return outputs[:, :-1], outputs[:, -1]
            self._run = run
        else:
            if overlay is None and bitfile is None:
                raise PascalError("the pynq backend needs --bitfile (the bitstream built from "
                                  "BUILD_DIR/hls with Vivado)")
            if overlay is None:
                if importlib.util.find_spec("pynq") is None:
                    raise PascalError("the pynq backend runs on a PYNQ board (the pynq package "
                                      "is not installed here); use --backend cyclesim or csim")
                if not Path(bitfile).is_file():
                    raise PascalError(f"{bitfile}: no such bitstream")
            board = PynqAccelerator(self.design, bitfile=bitfile, overlay=overlay)
            self._run = board.run

    def check_images(self, images) -> np.ndarray:
        """Raw images (N, C, H, W) of integers in 0..2^bits - 1, or one clear error."""
        d = self.design
        expected = (d["channels"], d["height"], d["width"])
        if not isinstance(images, np.ndarray):
            raise PascalError(f"images must be a numpy array, got {type(images).__name__}")
        if images.ndim != 4 or tuple(images.shape[1:]) != expected:
            raise PascalError(f"images of shape {images.shape}, expected (N, "
                              f"{', '.join(map(str, expected))})")
        if len(images) == 0:
            raise PascalError("no images")
        if not (np.issubdtype(images.dtype, np.integer) or np.issubdtype(images.dtype,
                                                                           np.floating)):
            raise PascalError(f"images of dtype {images.dtype}, expected integers")
        if np.issubdtype(images.dtype, np.floating) and np.any(images != np.floor(images)):
            raise PascalError("images hold non-integer pixels; pass raw integer pixels")
        top = 2 ** d["bits"] - 1
        if images.min() < 0 or images.max() > top:
            raise PascalError(f"pixels must lie in 0..{top} (the model's {d['bits']}-bit input), "
                              f"got {images.min()}..{images.max()}")
        return images.astype(np.float32)

    def check_inputs(self, inputs) -> np.ndarray:
        """A foreign model's own inputs (N, C, H, W) of finite numbers -> the codes the
        accelerator takes (its input adapter), or one clear error."""
        d = self.design
        expected = tuple(self.adapter.model_shape) if self.adapter.model_shape else \
            (d["channels"], d["height"], d["width"])
        if not isinstance(inputs, np.ndarray) or not (
                np.issubdtype(inputs.dtype, np.integer) or np.issubdtype(inputs.dtype,
                                                                        np.floating)):
            raise PascalError(f"inputs must be a numpy array of numbers, got "
                              f"{getattr(inputs, 'dtype', type(inputs).__name__)}")
        if inputs.ndim != 4 or tuple(inputs.shape[1:]) != expected or len(inputs) == 0:
            raise PascalError(f"inputs of shape {inputs.shape}, expected (N, "
                              f"{', '.join(map(str, expected))}) with N >= 1")
        return self.adapter(inputs.astype(np.float32))

    def predict(self, images: np.ndarray) -> Prediction:
        x = self.check_images(images) if self.adapter is None else self.check_inputs(images)
        acc, classes = self._run(x)
        acc = np.asarray(acc, dtype=np.int64)
        return Prediction(np.asarray(classes, dtype=np.int64), acc,
                          acc.astype(np.float64) * self.design["out_scale"] + self.out_offset)
