"""Resource estimates (LUT, FF, BRAM18, DSP) of one hardware layer, by documented formulas.

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

**Calibration.** These formulas count parts; Yosys' synth_xilinx of the RTL (`pascal-fpga synth`)
counts cells. ``layer_resources`` scales each group of parts (``part_group``: control, memory,
zero-skip, datapath) by the constants in ``CALIBRATION``, fitted by
``scripts/calibrate_resources.py`` (non-negative least squares, residuals over the square root of
the synthesized count) to 45 synthesized layers: the digits demo, fmnist AL and the four odd test
networks at serial and full folding. Mean |error| per layer 107% -> 28% (LUT), 105% -> 28% (FF);
the large layers of fmnist stay underestimated (its dense layer by 69%): the adder trees and
selection logic grow faster with PE x SIMD than these formulas, a structural gap a scale cannot
close. The QNN twin's multipliers (part "qnn multipliers") keep the raw count: there is no RTL of
the twin to calibrate them against. ``resource_parts`` stays the raw breakdown.
"""

from __future__ import annotations

import math

from ..ir.widths import unsigned_bits
from .layers import MODES, AddLayer, ForkLayer, PoolLayer

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


def _product(w: int, a: int) -> tuple[int, int]:
    """(LUT, DSP) of one lane's W x a multiply."""
    return (0, 1) if min(w, a) >= 2 and w + a >= DSP_PRODUCT_BITS else (w * a, 0)


def level_bits(layer) -> int:
    """a: the QNN twin's bits per input channel (the layer's input levels 0..in_max)."""
    return unsigned_bits(layer.in_max)


def out_level_bits(layer) -> int:
    """a_out: the QNN twin's bits per output channel."""
    if getattr(layer, "emitter", None) in ("classifier", "accumulator"):
        return layer.acc_bits
    if _is_pool(layer):
        return unsigned_bits(layer.kernel ** 2 * layer.in_max) if layer.sum else level_bits(layer)
    return unsigned_bits(layer.t_out)


def _is_pool(layer) -> bool:
    return isinstance(layer, PoolLayer)


def _lane_bits(layer, mode: str) -> int:
    """Bits of one channel of the input stream: T*FB frames, or the QNN's a."""
    return level_bits(layer) if mode == "qnn" else layer.t_in * layer.fb_in


def input_word_bits(layer, mode: str) -> int:
    """The layer's input stream word in this mode (its input FIFO's width)."""
    return layer.in_group * _lane_bits(layer, mode)


def output_word_bits(layer, mode: str) -> int:
    if mode != "qnn" or getattr(layer, "emitter", None) in ("classifier", "accumulator") \
            or isinstance(layer, (ForkLayer, AddLayer)):
        return layer.out_word_bits
    return layer.out_group * out_level_bits(layer)


def token_word_bits(layer, mode: str) -> int:
    """A weighted layer's token: frames + sf + active + end; the QNN's S*a (no side fields)."""
    return layer.simd * level_bits(layer) if mode == "qnn" else layer.token_bits


def word_widths(layer, mode: str) -> dict[str, int]:
    """Every stream word of the layer in this mode (for the 4096-bit cap)."""
    if mode != "qnn":
        return layer.word_widths()
    widths = {"input word": input_word_bits(layer, mode), "output word":
              output_word_bits(layer, mode)}
    if not _is_pool(layer) and hasattr(layer, "token_bits"):
        widths["token"] = token_word_bits(layer, mode)
    return widths


class _Tally:
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
    tally = _Tally()
    if fifo_bits <= 0:
        fifo_bits = input_word_bits(layer, mode)
    if isinstance(layer, AddLayer):   # its two input FIFOs: conv2's and the shortcut's
        _add(tally, layer, mode)
        return tally.parts
    lut, bram = fifo(fifo_bits, fifo_depth)
    tally.add("input FIFO", lut=lut, bram=bram)
    if _is_pool(layer):
        _pool(tally, layer, mode)
    elif isinstance(layer, ForkLayer):
        tally.add("control", lut=CONTROL_LUT // 2, ff=CONTROL_FF // 2)
    else:
        _feeder(tally, layer, mode)
        _mvu(tally, layer, mode)
    return tally.parts


def layer_resources(layer, mode: str, fifo_bits: int = 0, fifo_depth: int = 2
                    ) -> dict[str, int]:
    """{"LUT", "FF", "BRAM18", "DSP"} of one layer (its stages, its input FIFO, a weighted
    layer's token FIFO) in ``mode`` (zero_skip, dense or qnn; a pool's SNN modes are equal)."""
    total = dict.fromkeys(KEYS, 0.0)
    for part, values in resource_parts(layer, mode, fifo_bits, fifo_depth).items():
        group = part_group(part)
        for key in KEYS:
            scale = CALIBRATION[key].get(group, 1.0) if key in CALIBRATION else 1.0
            total[key] += scale * values[key]
    return {key: int(round(value)) for key, value in total.items()}


def _add(tally: _Tally, layer, mode: str) -> None:
    """A residual add (RTL pascal_add): both input FIFOs, the shortcut's sum of frames, two
    barrel shifts and an adder of N_BITS per lane, T_OUT comparators, the threshold and shift
    ROMs, two register stages."""
    p, n_bits, levels = layer.pe, layer.n_bits, layer.t_out
    for part, width, depth in (("input FIFO", layer.main_word_bits, layer.fifo_depth),
                               ("shortcut FIFO", layer.in_word_bits, layer.short_depth)):
        lut, bram = fifo(width, depth)
        tally.add(part, lut=lut, bram=bram)
    tally.add("control", lut=CONTROL_LUT, ff=CONTROL_FF)
    if not layer.short_acc and layer.t_in * layer.fb_in > 1:
        tally.add("shortcut sum", lut=p * layer.t_in * layer.fb_in)
    shifts = max(1, layer.shift_bits)
    tally.add("shifts", lut=2 * p * n_bits * shifts, ff=p * (layer.main_bits + layer.short_bits))
    tally.add("adders", lut=p * n_bits, ff=p * n_bits)
    lut, bram = rom(layer.nf, p * levels * n_bits)
    tally.add("thresholds", lut=lut, bram=bram)
    lut, bram = rom(layer.nf, 2 * p * shifts)
    tally.add("shift table", lut=lut, bram=bram)
    tally.add("emitter", lut=p * levels * comparator(n_bits), ff=p * levels)


def _pool(tally: _Tally, layer, mode: str) -> None:
    p, k = layer.pe, layer.kernel
    kk = k * k
    cf = layer.in_channels // p
    tally.add("control", lut=CONTROL_LUT, ff=CONTROL_FF)
    in_bits = _lane_bits(layer, mode)
    out_bits = out_level_bits(layer) if mode == "qnn" else layer.t_in * layer.fb_out
    tally.memory("line buffer", math.ceil(layer.in_w / k) * cf, p * in_bits, kk)
    tally.add("tap muxes", lut=kk * p * in_bits * mux(kk))
    if mode == "qnn":
        a = level_bits(layer)
        per_channel = (kk - 1) * out_bits if layer.sum else (kk - 1) * (comparator(a) + a)
        tally.add("combine", lut=p * per_channel)
    else:
        t, fb = layer.t_in, layer.fb_in
        if layer.sum:
            per_frame = (kk - 1) * layer.fb_out
        elif fb == 1:
            per_frame = or_tree(kk)
        else:
            per_frame = (kk - 1) * (comparator(fb) + fb)
        tally.add("combine", lut=p * t * per_frame)
    tally.add("output register", ff=p * out_bits)


def _feeder(tally: _Tally, layer, mode: str) -> None:
    s, t, fb = layer.simd, layer.t_in, layer.fb_in
    token = token_word_bits(layer, mode)
    frames = s * _lane_bits(layer, mode)       # the token's data bits
    if not layer.is_conv and mode == "qnn":
        return  # FINN's MVAU reads the layer stream itself: no feeder stage
    tally.add("feeder control", lut=CONTROL_LUT, ff=CONTROL_FF)
    tally.add("feeder token register", ff=token)
    if layer.is_conv:
        k, cf = layer.kernel, layer.cf
        tally.memory("line buffer", layer.in_w * cf, frames, k)
        tally.add("line buffer row mux", lut=frames * mux(k))
        if mode == "zero_skip":
            sf = layer.sf
            tally.memory("zero-skip group flags", math.ceil(layer.in_w / k), cf, k * k)
            tally.add("zero-skip flag of each word", lut=or_tree(s * t * fb))
            kk = k * k
            tally.add("zero-skip window mask", lut=sf * (mux(k) + 1), ff=sf)
            tally.add("zero-skip priority encoder",
                      lut=kk * or_tree(cf) + priority_encoder(kk) + cf * mux(kk)
                      + priority_encoder(cf) + sf)
    if mode == "zero_skip":
        tally.add("zero-skip active", lut=t * or_tree(s * fb) + priority_encoder(t))


def _mvu(tally: _Tally, layer, mode: str) -> None:
    p, s, w, a_acc = layer.pe, layer.simd, layer.weight_bits, layer.acc_bits
    t, fb = layer.t_in, layer.fb_in
    nf, sf = layer.nf, layer.sf
    token = token_word_bits(layer, mode)
    lanes = p * s
    if layer.is_conv or mode != "qnn":
        lut, bram = fifo(token, layer.token_depth)
        tally.add("token FIFO", lut=lut, bram=bram)
    tally.add("MVU control", lut=CONTROL_LUT, ff=CONTROL_FF)
    if nf > 1:
        tally.memory("window buffer", sf, token)
    tally.add("current token", ff=token)
    if mode == "qnn":
        a = level_bits(layer)
        lut, dsp = _product(w, a)
        tally.add(UNCALIBRATED, lut=lanes * lut, dsp=lanes * dsp)
        tally.add("lanes", ff=lanes * (w + a))
    else:
        tally.add("frame select", lut=s * fb * mux(t))
        if fb == 1:
            tally.add("lanes", lut=lanes * w, ff=lanes * (w + fb))
        else:
            lut, dsp = _product(w, fb)
            tally.add("lanes", lut=lanes * lut, dsp=lanes * dsp, ff=lanes * (w + fb))
    tally.add("adders", lut=lanes * a_acc, ff=p * a_acc)
    lut, bram = rom(nf * sf, lanes * w)
    tally.add("weights", lut=lut, bram=bram)
    if layer.emitter in ("classifier", "accumulator"):
        lut, bram = rom(nf, p * a_acc)
        tally.add("bias", lut=lut, bram=bram)
        tally.add("emitter", lut=p * a_acc, ff=p * a_acc)
        return
    levels = layer.t_out
    lut, bram = rom(nf, p * levels * a_acc)
    tally.add("thresholds", lut=lut, bram=bram)
    tally.add("emitter", lut=p * levels * comparator(a_acc), ff=2 * p * a_acc)
    if mode == "qnn":
        a_out = out_level_bits(layer)
        tally.add("emitter encoder", lut=p * a_out * max(1, math.ceil((levels - 1) / 5)),
                  ff=p * a_out)
    else:
        tally.add("emitter", ff=p * levels)
