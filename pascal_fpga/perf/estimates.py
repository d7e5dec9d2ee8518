"""Resource estimates of a whole design: the SNN (each layer in its own mode, or one forced mode)
and its FINN-style QNN twin (``mode="qnn"``).

The per-layer estimate is :func:`pascal_fpga.hw.resources.layer_resources` (the cost functions
fitted on synthesized sweeps of the RTL modules, :mod:`pascal_fpga.hw.costs`); this module sums
them over a :class:`~pascal_fpga.hw.layers.Design`, with each layer's input FIFO as wide as the
stream that feeds it in that mode (the QNN's streams carry a = bits(in_max) bits per channel
instead of T frames) and as deep as the design says, plus the two adapter stages (pixel reader,
class writer) and the classifier's output FIFO. An energy figure per image (the accumulate and
multiply-accumulate counts of a simulation, Horowitz 45 nm) is :func:`energy_per_image`.
"""

from __future__ import annotations

from typing import Any

from ..hw import costs
from ..hw.design import Design
from ..hw.resources import CONTROL_FF, CONTROL_LUT, KEYS, fifo, layer_resources


def layer_row(layer, mode: str | None = None) -> dict[str, Any]:
    """One layer's row: folding, mode, input FIFO width and its resources."""
    m = layer.mode_of(mode)
    bits = layer.mode_input_bits(m)
    row = {"layer": layer.name, "op": layer.op_type, "pe": layer.pe,
           "simd": layer.simd, "mode": layer.shown_mode(m), "fifo_bits": bits}
    row.update(layer_resources(layer, m, bits, layer.fifo_depth))
    return row


def input_adapter(design: Design, group: int | None = None) -> dict[str, int]:
    """{LUT, FF, BRAM18, DSP} of the pixel reader (pascal_input) writing ``group`` channels a
    word (default: the design's), by the fitted cost functions
    (:func:`pascal_fpga.hw.costs.stage_cost`; without a fit file: control and the AXI word
    register)."""
    group = design.input_group if group is None else group
    if costs.has_fit():
        return costs.stage_cost("pascal_input", dict(
            PIXELS=design.pixels, CH=design.channels, IN_BITS=design.bits,
            AXI_BITS=design.axi_bits, GROUP=group))
    return {"LUT": CONTROL_LUT, "FF": CONTROL_FF + design.axi_bits, "BRAM18": 0, "DSP": 0}


def output_adapter(design: Design, classifier=None) -> dict[str, int]:
    """{LUT, FF, BRAM18, DSP} of the class writer (pascal_output) and the FIFO into it from
    ``classifier`` (default: the design's, at its folding), by the fitted cost functions
    (without a fit file: control and the FIFO's formula)."""
    c = design.classifier if classifier is None else classifier
    if costs.has_fit():
        out = costs.stage_cost("pascal_output", dict(CLASSES=c.out_channels,
                                                     ACC_BITS=c.acc_bits, PE=c.pe))
        fifo_cost = costs.stage_cost("pascal_fifo", dict(WIDTH=c.out_word_bits,
                                                         DEPTH=design.output_depth))
        return {key: out[key] + fifo_cost[key] for key in KEYS}
    out_lut, out_bram = fifo(c.out_word_bits, design.output_depth)
    return {"LUT": CONTROL_LUT + out_lut, "FF": CONTROL_FF + 32, "BRAM18": out_bram, "DSP": 0}


def adapter_rows(design: Design) -> list[dict[str, Any]]:
    """The input (pixel reader) and output (class writer) stages: pascal_input, pascal_output
    and the classifier's output FIFO (:func:`input_adapter`, :func:`output_adapter`). Equal for
    the SNN and the QNN twin."""
    classifier = design.classifier
    return [{"layer": "input", "op": "input", "pe": design.input_group, "simd": 1, "mode": "-",
             "fifo_bits": 0, **input_adapter(design)},
            {"layer": "output", "op": "output", "pe": classifier.pe, "simd": 1, "mode": "-",
             "fifo_bits": classifier.out_word_bits, **output_adapter(design)}]


def design_resources(design: Design, mode: str | None = None) -> dict[str, Any]:
    """{"layers": one row per layer, "adapters": the input and output stages, "total":
    {LUT, FF, BRAM18, DSP}} of the design: ``mode`` None: each layer's own (zero_skip or dense);
    "zero_skip" or "dense": every weighted layer in that mode; "qnn": the FINN-style QNN twin of
    the same folding."""
    rows = [layer_row(layer, mode) for layer in design.layers]
    adapters = adapter_rows(design)
    total = dict.fromkeys(KEYS, 0)
    for row in rows + adapters:
        for key in KEYS:
            total[key] += row[key]
    return {"layers": rows, "adapters": adapters, "total": total}


def energy_per_image(acs: float, macs: float) -> dict[str, float]:
    """Energy per image from accumulates (spike x fan-out) and multiply-accumulates per image,
    at the constants of :mod:`pascal_fpga.snn.report` (Horowitz 45 nm)."""
    from ..snn.report import PJ_PER_AC, PJ_PER_MAC   # snn.report imports torch: only here

    pj = acs * PJ_PER_AC + macs * PJ_PER_MAC
    return {"pj_per_image": pj, "uj_per_image": pj / 1e6, "acs_per_image": acs,
            "macs_per_image": macs}
