"""Resource estimates (LUT, FF, BRAM18, DSP) per layer, by documented formulas.

No synthesis runs here, so these are an analytical model in the spirit of FINN's cost functions
(LUT-based arithmetic for narrow operands, BRAM for large memories), written down here so that
anyone can check them. They are meant for comparing foldings and designs, not as a substitute for
a synthesis report. For a layer with PE, SIMD, weight bits W, accumulator bits A, L thresholds per
channel, T_in input frames of FB bits:

- **synapses** (PE x SIMD lanes): a spike gates a weight into an adder tree: W LUTs per lane for
  the gate, A LUTs per adder (PE x SIMD adders: the tree and the accumulator); a pixel frame
  (FB > 1) multiplies: W x FB LUTs per lane, or one DSP per lane when W x FB >= 64;
- **thresholds**: PE x L comparators of A bits, ceil(A / 2) LUTs each (carry chain, 2 bits per LUT);
- **memories** (weights, thresholds, line buffers, dense input buffers): a bank of at most 1,024
  bits is LUTRAM (1 LUT per 64 bits), a larger one BRAM18 (18 kbit each); weights are PE x SIMD
  banks of NF x SF words, thresholds PE banks, line buffers K x SIMD banks, a dense layer's input
  SIMD banks; a FIFO of depth <= 32 is shift registers (width x ceil(depth / 32) LUTs), a deeper
  one a memory as above;
- **FF**: the accumulators (PE x A), one pipeline register per lane (W + FB), the input and
  output words, and 2 x A per threshold comparator row;
- **control**: 150 LUTs and 150 FFs per stage.

The **FINN-style QNN** of the same network and folding processes multi-bit activations (a level
of ceil(log2(L + 1)) bits) in one pass: each lane multiplies W x a bits in LUTs, its buffers hold a
bits per channel instead of T spike bits, and its compute loops run once instead of T_in times.
"""

from __future__ import annotations

import math
from typing import Any

from ..hw.hls import HLSLayer
from ..ir.widths import unsigned_bits

BRAM_BITS = 18 * 1024
LUTRAM_LIMIT = 1024     # bits per bank kept in LUTs
DSP_PRODUCT = 64        # W x FB at or above this: a DSP per lane
CONTROL_LUT = 150
CONTROL_FF = 150


def _memory(bits_per_bank: int, banks: int) -> tuple[int, int]:
    """(LUT, BRAM18) of ``banks`` memories of ``bits_per_bank`` each."""
    if bits_per_bank <= 0:
        return 0, 0
    if bits_per_bank <= LUTRAM_LIMIT:
        return banks * math.ceil(bits_per_bank / 64), 0
    return 0, banks * max(1, math.ceil(bits_per_bank / BRAM_BITS))


def layer_resources(layer: HLSLayer, fifo_width: int, fifo_depth: int,
                    qnn: bool = False) -> dict[str, int]:
    """LUT, FF, BRAM18, DSP of one stage (its input FIFO included)."""
    cfg = layer.cfg
    lut, ff, bram, dsp = CONTROL_LUT, CONTROL_FF, 0, 0
    pe = cfg["PE"]
    # the FIFO that feeds the stage
    fifo_lut, fifo_bram = _memory(fifo_width * fifo_depth, 1) if fifo_depth > 32 else \
        (math.ceil(fifo_width * math.ceil(fifo_depth / 32)), 0)  # SRL32 shift registers
    lut += fifo_lut
    bram += fifo_bram
    if layer.kind == "pool":
        t, fb = cfg["T"], cfg["FB_IN"]
        element = unsigned_bits(t * ((1 << fb) - 1)) if qnn else t * fb
        l_lut, l_bram = _memory(cfg["IN_W"] * cfg["CH"] // pe * element, cfg["K"] * pe)
        compare = pe * element * (2 if cfg["SUM"] else 1)
        return {"LUT": lut + l_lut + compare, "FF": ff + 2 * pe * element + compare,
                "BRAM18": bram + l_bram, "DSP": 0}
    simd, w, a = cfg["SIMD"], layer.weight_bits, layer.acc_bits
    t_in, fb, levels = cfg["T_IN"], cfg["FB"], cfg["T_OUT"]
    in_bits = unsigned_bits(t_in * ((1 << fb) - 1)) if qnn else fb   # bits one input lane consumes
    lanes = pe * simd
    if qnn and fb == 1:
        product = w * in_bits                               # a LUT multiplier per lane
        lut += lanes * product
    elif fb > 1 or qnn:
        product = w * in_bits
        if product >= DSP_PRODUCT:
            dsp += lanes
        else:
            lut += lanes * product
    else:
        lut += lanes * w                                    # spike gates
    lut += lanes * a                                        # adder tree and accumulators
    ff += pe * a + lanes * (w + in_bits)
    if layer.kind != "classifier":
        lut += pe * levels * math.ceil(a / 2)
        ff += 2 * pe * a
        nf = layer.out_channels // pe
        t_lut, t_bram = _memory(nf * levels * a, pe)
        lut += t_lut
        bram += t_bram
    nf = layer.out_channels // pe
    if layer.kind == "conv":
        sf = cfg["K"] ** 2 * cfg["IN_CH"] // simd
        element = in_bits if qnn else t_in * fb
        b_lut, b_bram = _memory(cfg["IN_W"] * cfg["IN_CH"] // simd * element, cfg["K"] * simd)
    else:
        sf = cfg["IN_PIX"] * cfg["IN_CH"] // simd
        element = in_bits if qnn else t_in * fb
        b_lut, b_bram = _memory(sf * element, simd)
    w_lut, w_bram = _memory(nf * sf * w, lanes)
    lut += b_lut + w_lut
    bram += b_bram + w_bram
    return {"LUT": lut, "FF": ff, "BRAM18": bram, "DSP": dsp}


def qnn_cycles(layer: HLSLayer, busy: int, iterations: dict[str, int]) -> int:
    """A FINN-style QNN stage's cycles per image: the same loops, compute run once (not T_in
    times)."""
    t_in = layer.cfg.get("T_IN", 1)
    compute = iterations["compute"]
    return busy - compute + compute // t_in


def design_estimates(layers: list[HLSLayer], stages, depths: list[int],
                     input_bits: int) -> dict[str, Any]:
    """Per layer and total resources of the design and of its FINN-style QNN twin."""
    rows = []
    totals = {"snn": {"LUT": 0, "FF": 0, "BRAM18": 0, "DSP": 0},
              "qnn": {"LUT": 0, "FF": 0, "BRAM18": 0, "DSP": 0}}
    widths = [input_bits] + [layer.out_word_bits for layer in layers]
    for index, layer in enumerate(layers):
        snn = layer_resources(layer, widths[index], depths[index])
        qnn = layer_resources(layer, widths[index], depths[index], qnn=True)
        stage = stages[index + 1]
        rows.append({"layer": layer.name, "op": layer.op, "pe": layer.cfg["PE"],
                     "simd": layer.cfg.get("SIMD", 1), "snn": snn, "qnn": qnn,
                     "cycles": stage.busy,
                     "qnn_cycles": qnn_cycles(layer, stage.busy, stage.iterations)})
        for key in totals["snn"]:
            totals["snn"][key] += snn[key]
            totals["qnn"][key] += qnn[key]
    return {"layers": rows, "total": totals}
