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


def adapter_rows(design: Design) -> list[dict[str, Any]]:
    """The input (pixel reader) and output (class writer) stages: pascal_input, pascal_output
    and the classifier's output FIFO, by the fitted cost functions
    (:func:`pascal_fpga.hw.costs.stage_cost`; without a fit file: control, the AXI word
    register, the FIFO's formula). Equal for the SNN and the QNN twin."""
    classifier = design.classifier
    rows = [{"layer": "input", "op": "input", "pe": design.input_group, "simd": 1, "mode": "-",
             "fifo_bits": 0},
            {"layer": "output", "op": "output", "pe": classifier.pe, "simd": 1, "mode": "-",
             "fifo_bits": classifier.out_word_bits}]
    if costs.has_fit():
        rows[0].update(costs.stage_cost("pascal_input", dict(
            PIXELS=design.pixels, CH=design.channels, IN_BITS=design.bits,
            AXI_BITS=design.axi_bits, GROUP=design.input_group)))
        out = costs.stage_cost("pascal_output", dict(
            CLASSES=classifier.out_channels, ACC_BITS=classifier.acc_bits, PE=classifier.pe))
        fifo_cost = costs.stage_cost("pascal_fifo", dict(WIDTH=classifier.out_word_bits,
                                                         DEPTH=design.output_depth))
        rows[1].update({key: out[key] + fifo_cost[key] for key in KEYS})
        return rows
    out_lut, out_bram = fifo(classifier.out_word_bits, design.output_depth)
    rows[0].update({"LUT": CONTROL_LUT, "FF": CONTROL_FF + design.axi_bits, "BRAM18": 0,
                    "DSP": 0})
    rows[1].update({"LUT": CONTROL_LUT + out_lut, "FF": CONTROL_FF + 32, "BRAM18": out_bram,
                    "DSP": 0})
    return rows


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
