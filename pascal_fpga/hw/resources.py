"""Resource estimates (LUT, FF, BRAM18, DSP) of one hardware layer.

:func:`layer_resources` is the estimate everything uses: the per-module cost functions fitted on
Yosys sweeps of the RTL modules (:mod:`pascal_fpga.hw.costs`) when their fit file is present
(it ships with the package), else the analytical formulas below (:func:`analytic_resources`).

The building blocks below (memories, ROMs, FIFOs, muxes, encoders, comparators) and the
calibration live here; each layer class counts its own parts with them
(:meth:`pascal_fpga.hw.layers.HWLayer.count_parts`, in :mod:`pascal_fpga.hw.layers`), and the
formulas of those parts are written down here, in one place.

No synthesis runs here: this is an analytical model in the spirit of FINN's cost functions
(LUT arithmetic for narrow operands, BRAM for large memories), written down so that anyone can
check it. It is meant for comparing foldings, modes and the SNN with its QNN twin, not as a
substitute for a synthesis report. Every stage of a layer (pascal_fpga/hls/ARCHITECTURE.md) is counted, with the FIFO
that feeds the layer and, for a weighted layer, the token FIFO between its two stages.

Notation: PE = P, SIMD = S, weight bits W, accumulator bits A, T = T_in frames of FB bits per input
channel, L = T_out thresholds per output channel, K the kernel, CF = IN_CH / S, SF the groups per
input vector (K*K*CF or IN_H*IN_W*CF), NF = OUT_CH / P. The QNN twin carries a level of
a = bits(in_max) bits per channel (= ceil(log2(L_prev + 1)) for spikes, the pixel bits for
pixels, bits(K^2 L_prev) after a sum pool) and emits a_out = bits(L) bits per output channel.

Building blocks (6-input LUTs):

- **memory** of ``banks`` banks, each ``depth`` words of ``width`` bits (one bank per partition
  the HLS code asks for): a bank of at most 1,024 bits is LUTRAM, ``width * ceil(depth / 64)``
  LUTs (a LUT is a 64 x 1 RAM; the old ``ceil(bits / 64)`` undercounted wide, shallow banks);
  a larger one BRAM18, the fewest over the BRAM18 port shapes 16K x 1, 8K x 2, 4K x 4, 2K x 9,
  1K x 18, 512 x 36 of ``ceil(depth / d) * ceil(width / w)`` (a wide, shallow bank needs
  ``width / 36`` of them whatever its bits);
- **FIFO** of depth <= 32: shift registers (SRL32), ``width * ceil(depth / 32)`` LUTs; deeper: a
  memory as above;
- **mux** n:1 per bit: ``ceil((n - 1) / 3)`` LUTs (a LUT6 is a 4:1 mux, a tree of them);
- **OR** of n bits: ``ceil((n - 1) / 5)`` LUTs (a LUT6 merges 6 signals into 1);
- **priority encoder** PENC(n) of n flags (the first set flag, one-hot and as a binary index):
  ``n + ceil(log2 n) * ceil((n/2 - 1) / 5)`` LUTs (a carry chain of "nothing set before", then an
  OR of n/2 one-hot bits per index bit); 0 for n <= 1;
- **comparator** of A bits: ``ceil(A / 2)`` LUTs (carry chain, 2 bits per LUT); **adder** of A
  bits: A LUTs;
- **control**: 150 LUTs and 150 FFs per stage (counters, the loop's state machine, handshakes).

A **weighted layer**, feeder + MVU:

- *conv feeder* (window generator): the input FIFO; the K-row line buffer, K banks of
  IN_W*CF words of S*T*FB bits (QNN: S*a); a K:1 row mux per bit of the token's frames; an output
  register of the token (FFs). Zero-skip adds what finding the next non-empty group costs: the
  stored groups' flags (K*K banks of ceil(IN_W/K) x CF bits), an OR of each incoming word
  (``OR(S*T*FB)``), per window group a K:1 row mux of its flag and the pending/fresh select
  (``SF * (mux(K) + 1)``), the pending register (SF FFs), the priority encoder over the SF flags
  as the code builds it, first the tap then the group (``K*K * OR(CF) + PENC(K*K) + CF * mux(K*K)
  + PENC(CF)``), the pending flags' clear decoder (SF LUTs), and the token's ``active``: per
  frame an OR over the S lanes (``T * OR(S*FB)``) and the last-one index of the T frame flags
  (``PENC(T)``).
- *dense feeder* (vector generator): no buffer; the input FIFO, control and the token register;
  zero-skip adds the ``active`` logic above. The QNN twin has no dense feeder stage (FINN's MVAU
  reads the layer stream itself): no control, no token FIFO.
- *token FIFO*: depth ``token_depth``, width ``token_bits`` (frames + sf + active + end; the QNN
  twin's S*a, its tokens need no side fields: every group is sent in order).
- *MVU*: the window buffer for the NF > 1 replay, one bank of SF tokens (only when NF > 1) and the
  current token's register (FFs); the frame select, a T:1 mux per bit of each lane
  (``S * FB * mux(T)``, shared by the PE rows; both SNN modes, none in the QNN); P*S lanes: a spike
  gates a weight (W LUTs), a multi-bit frame or QNN level multiplies (W*FB or W*a LUTs, or a DSP
  when the product is at least 9 bits wide and both operands at least 2), each lane an adder of A bits (the tree and the accumulator); FFs: a
  pipeline register of W + FB (QNN: W + a) bits per lane and the P accumulators. Weights: one ROM
  of NF*SF words of P*S*W bits (the RTL's, read a word per slot: ``rom``, LUTs up to 64 words,
  else BRAM18). Threshold emitter: P*L
  comparators, the thresholds in one ROM of NF words of P*L*A bits, 2*P*A pipeline FFs, an output
  register of P*L bits; the QNN twin adds a thermometer-to-binary encoder per output channel
  (``a_out * ceil((L - 1) / 5)`` LUTs, at least one per bit) and registers P*a_out bits.
  Classifier emitter: the bias in one ROM of NF words of P*A bits, a 2:1 mux per accumulator bit
  (start from the bias or go on), an output register of P*A bits.

A **pool**: the input FIFO; the K-row line buffer, K*K banks (rows, and columns cyclic by K) of
ceil(IN_W/K)*CF words of P*T*FB_IN bits (QNN: P*a); per tap a K^2:1 mux of the word (the tap's
bank rotates with the window's position); combining per channel and frame: max of 1-bit frames an
OR of K^2 bits, max of multi-bit frames (K^2 - 1) comparators and muxes of FB bits, a sum (K^2 - 1)
adders of FB_OUT bits (QNN: the same on a-bit levels); an output register.

Zero-skipping thus pays for its encoder, its flag memories, its ``active`` logic, the frame select
and its wider tokens; dense mode for the frame select and the token fields; the QNN for its
multipliers, its thermometer-to-binary encoders and nothing else. FINN's own figures are not used
anywhere.

**The estimate is the fitted cost functions.** :func:`layer_resources` (hence
``layer.resources``, :func:`pascal_fpga.perf.estimates.design_resources`, the folding search,
``pascal-fpga synth``'s estimate column and ``simulate``'s figures) returns
:func:`pascal_fpga.hw.costs.layer_cost` when the fit of the part is present
(``pascal_fpga/hw/costs/fit_xc7.json``, shipped): per-module cost functions fitted on Yosys
synth_xilinx sweeps of each RTL module, summed over the layer's stages and FIFOs as the RTL
backend builds them; BRAM18 and DSP by exact structural rules. The formulas above stay as the
analytical part-by-part model: :func:`resource_parts` (the breakdown by part, for reading; the
fitted estimate's breakdown is by module instance, :func:`pascal_fpga.hw.costs.layer_breakdown`)
and the fallback :func:`analytic_resources` when no fit file exists, which scales each group of
parts (``part_group``: control, memory, zero-skip, datapath) by ``CALIBRATION`` (fitted by
``scripts/calibrate_resources.py`` to 45 synthesized layers; 40-70% low on the big layers: the
adder trees, the zero-skip mask and the multi-bit lanes grow faster than these formulas, which is
what the fitted cost functions fix).
"""

from __future__ import annotations

import math

from . import costs

BRAM_BITS = 18 * 1024
BRAM_SHAPES = ((16384, 1), (8192, 2), (4096, 4), (2048, 9), (1024, 18), (512, 36))
LUTRAM_LIMIT = 1024     # bits per bank kept in LUTs
LUTRAM_DEPTH = 64       # words per LUT of LUTRAM (RAM64X1)
SRL_DEPTH = 32          # a FIFO this deep or shallower is shift registers (SRL32)
DSP_PRODUCT_BITS = 9    # a W x a product this wide (both >= 2 bits): a DSP per lane (Yosys
                        # synth_xilinx maps such multiplies to DSP48E1, as measured)
CONTROL_LUT = 150       # per stage
CONTROL_FF = 150
KEYS = ("LUT", "FF", "BRAM18", "DSP")
ROM_LUT_DEPTH = 64     # a parameter ROM this shallow is LUTs (pascal_mvu.sv), deeper BRAM18
MODES = ("zero_skip", "dense", "qnn")  # event-driven, dense, the FINN-style QNN twin

# Calibration against Yosys synth_xilinx of the RTL (pascal-fpga synth; fitted by
# scripts/calibrate_resources.py, see the README's hardware section for the builds and the
# errors before and after): the LUT and FF counts of each group of parts are scaled by these
# constants. BRAM18 and DSP are counted structurally (no scale).
GROUPS = ("control", "memory", "zero-skip", "datapath")
CALIBRATION = {"LUT": {"control": 0.439, "memory": 0.33, "zero-skip": 3.709, "datapath": 0.454},
               "FF": {"control": 0.448, "memory": 1.0, "zero-skip": 4.387, "datapath": 0.395}}
_MEMORY_PARTS = ("input FIFO", "token FIFO", "shortcut FIFO", "line buffer", "window buffer", "weights",
                 "thresholds", "bias", "shift table")
# the QNN twin's multipliers have no RTL here to calibrate against: they keep the raw count
UNCALIBRATED = "qnn multipliers"


def part_group(part: str) -> str:
    """The calibration group of a part of :func:`resource_parts`: control (per stage), memory
    (FIFOs, line and window buffers, weight / threshold / bias ROMs), zero-skip (flags, window
    masks, encoders, ``active``), datapath (the rest: lanes, adders, emitters, muxes), or the
    QNN twin's multipliers, which stay uncalibrated."""
    if part == UNCALIBRATED:
        return part
    if "control" in part:
        return "control"
    if part.startswith("zero-skip"):
        return "zero-skip"
    return "memory" if part in _MEMORY_PARTS else "datapath"


def clog2(n: int) -> int:
    return max(0, math.ceil(math.log2(n))) if n > 1 else 0


def memory(depth: int, width: int, banks: int = 1) -> tuple[int, int]:
    """(LUT, BRAM18) of ``banks`` memories of ``depth`` words of ``width`` bits each."""
    if depth <= 0 or width <= 0 or banks <= 0:
        return 0, 0
    if depth * width <= LUTRAM_LIMIT:
        return banks * width * math.ceil(depth / LUTRAM_DEPTH), 0
    per_bank = min(math.ceil(depth / d) * math.ceil(width / w) for d, w in BRAM_SHAPES)
    return 0, banks * per_bank


def rom(depth: int, width: int) -> tuple[int, int]:
    """(LUT, BRAM18) of a parameter ROM of ``depth`` words of ``width`` bits, one word per read
    (the RTL's weights [NF*SF] x P*S*W, thresholds [NF] x P*L*A, bias [NF] x P*A): up to
    ROM_LUT_DEPTH words a LUT per 64 x 1 bits, deeper BRAM18 over the port shapes."""
    if depth <= 0 or width <= 0:
        return 0, 0
    if depth <= ROM_LUT_DEPTH:
        return width * math.ceil(depth / LUTRAM_DEPTH), 0
    return 0, min(math.ceil(depth / d) * math.ceil(width / w) for d, w in BRAM_SHAPES)


def fifo(width: int, depth: int) -> tuple[int, int]:
    """(LUT, BRAM18) of a FIFO."""
    if width <= 0 or depth <= 0:
        return 0, 0
    if depth <= SRL_DEPTH:
        return width * math.ceil(depth / SRL_DEPTH), 0
    return memory(depth, width)


def mux(n: int) -> int:
    """LUTs per bit of an n:1 multiplexer."""
    return math.ceil((n - 1) / 3) if n > 1 else 0


def or_tree(n: int) -> int:
    """LUTs of an OR of n bits."""
    return math.ceil((n - 1) / 5) if n > 1 else 0


def priority_encoder(n: int) -> int:
    """LUTs of the first set flag of n (one-hot and binary)."""
    if n <= 1:
        return 0
    return n + clog2(n) * max(1, math.ceil((n / 2 - 1) / 5))


def comparator(bits: int) -> int:
    return math.ceil(bits / 2)


def product(w: int, a: int) -> tuple[int, int]:
    """(LUT, DSP) of one lane's W x a multiply."""
    return (0, 1) if min(w, a) >= 2 and w + a >= DSP_PRODUCT_BITS else (w * a, 0)


class Tally:
    """Resources summed by part (for the breakdown)."""

    def __init__(self):
        self.parts: dict[str, dict[str, int]] = {}

    def add(self, part: str, lut: int = 0, ff: int = 0, bram: int = 0, dsp: int = 0) -> None:
        row = self.parts.setdefault(part, dict.fromkeys(KEYS, 0))
        row["LUT"] += int(lut)
        row["FF"] += int(ff)
        row["BRAM18"] += int(bram)
        row["DSP"] += int(dsp)

    def memory(self, part: str, depth: int, width: int, banks: int = 1) -> None:
        lut, bram = memory(depth, width, banks)
        self.add(part, lut=lut, bram=bram)

    def fifo(self, part: str, width: int, depth: int) -> None:
        lut, bram = fifo(width, depth)
        self.add(part, lut=lut, bram=bram)

    def total(self) -> dict[str, int]:
        total = dict.fromkeys(KEYS, 0)
        for row in self.parts.values():
            for key in KEYS:
                total[key] += row[key]
        return total


def resource_parts(layer, mode: str, fifo_bits: int = 0, fifo_depth: int = 2
                   ) -> dict[str, dict[str, int]]:
    """The resources of one layer by part (control, FIFOs, buffers, zero-skip logic, lanes, ...).
    ``fifo_bits`` <= 0: the width of the layer's input word in this mode."""
    if mode not in MODES:
        raise ValueError(f"mode {mode!r}: expected one of {', '.join(MODES)}")
    tally = Tally()
    if fifo_bits <= 0:
        fifo_bits = layer.mode_input_bits(mode)
    layer.count_parts(tally, mode, fifo_bits, fifo_depth)
    return tally.parts


def analytic_resources(layer, mode: str, fifo_bits: int = 0, fifo_depth: int = 2
                       ) -> dict[str, int]:
    """The analytical estimate (the part formulas above scaled by ``CALIBRATION``): the
    fallback of :func:`layer_resources` when there is no fitted cost file."""
    total = dict.fromkeys(KEYS, 0.0)
    for part, values in resource_parts(layer, mode, fifo_bits, fifo_depth).items():
        group = part_group(part)
        for key in KEYS:
            scale = CALIBRATION[key].get(group, 1.0) if key in CALIBRATION else 1.0
            total[key] += scale * values[key]
    return {key: int(round(value)) for key, value in total.items()}


def layer_resources(layer, mode: str, fifo_bits: int = 0, fifo_depth: int = 2,
                    part: str = "xc7") -> dict[str, int]:
    """{"LUT", "FF", "BRAM18", "DSP"} of one layer (its stages, its input FIFO, a weighted
    layer's token FIFO) in ``mode`` (zero_skip, dense or qnn; a pool's SNN modes are equal):
    the fitted cost functions of ``part`` (:func:`pascal_fpga.hw.costs.layer_cost`), else
    :func:`analytic_resources`."""
    if mode not in MODES:
        raise ValueError(f"mode {mode!r}: expected one of {', '.join(MODES)}")
    if costs.has_fit(part):
        if fifo_bits <= 0:
            fifo_bits = layer.mode_input_bits(mode)
        try:
            return costs.layer_cost(layer, mode, fifo_bits, fifo_depth, part)
        except costs.UnknownModule:   # a kind built from modules outside the library
            pass
    return analytic_resources(layer, mode, fifo_bits, fifo_depth)
