"""The code generation backends, each a registry of emitters beside the layer classes:
:mod:`.hls` (a Vitis HLS project of the C++ library) and :mod:`.rtl` (SystemVerilog of the RTL
library, simulated with Verilator). A new backend is one module with an emitter per layer
class; a new layer kind is one class in :mod:`pascal_fpga.hw.layers` and one emitter here per
backend."""

from __future__ import annotations

from ...errors import PascalError
from . import rtl

CODEGEN_BACKENDS = ("hls", "rtl")   # what `compile` writes; a schedule is one of these


def stage_latencies(design, backend: str = "hls") -> list[int]:
    """Per stage of ``design`` (in dataflow order) the slots by which the backend's writes lag
    the HLS loop program: 0 everywhere for HLS, the modules' write latencies for RTL."""
    if backend == "hls":
        return [0] * len(design.stage_names())
    if backend == "rtl":
        return [stage.latency for stage in rtl.design_stages(design)]
    raise PascalError(f"unknown backend {backend!r} (one of {', '.join(CODEGEN_BACKENDS)})")
