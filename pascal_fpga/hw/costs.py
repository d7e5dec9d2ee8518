"""Resource cost functions of the RTL library's modules, fitted on synthesized sweeps.

Each module of ``pascal_fpga/rtl/modules`` (pascal_mvu, pascal_window_gen, pascal_vector_gen,
pascal_pool, pascal_add, pascal_fifo, pascal_input, pascal_output, pascal_fork) was synthesized
standalone with Yosys (``scripts/sweep_modules.py``: the same flow as ``pascal-fpga synth``,
:func:`pascal_fpga.hw.synth.synthesize`; its ROMs filled with random words so that nothing folds
into constants) over a grid of parameters that spans what real layers use, both architectures
(the SNN's thermometer frames, zero-skipping or dense, and the QNN twin's binary levels), plus the
stages of the zoo's builds. The points are in ``costs/sweep_<part>.json``.

**LUT and FF** of a module are a small linear model over structural features read off its RTL
(:func:`features`; :data:`FIT_FEATURES` says which feed which model): e.g. for pascal_mvu the
adder trees' ``PE*(SIMD-1)*SUM_W`` (each node as wide as the exact sum, cut at ACC_BITS), the
lanes' gates or LUT multipliers, the logic ROMs of weights and thresholds (one LUT per distinct
bit function of the address: a 2-word ROM's bits are constants or the address itself, and
merge), the comparators ``PE*T_OUT*ACC_BITS``, the read mux of a block RAM cut into address
pieces, the window buffer in LUT RAM; its registers as Yosys keeps them (a block RAM absorbs a
ROM's read register but not the output register behind it, a logic ROM keeps both, a DSP48E1
takes the weight register and, with SIMD = 1, the accumulator); for pascal_window_gen the
zero-skip mask (a K:1 row mux of whole rows of flags, then a column mux over the window
positions), the flags, the priority encoders, the line buffer in LUT RAM (RAM32M / RAM64M
units, :func:`lutram_geometry`) or block RAM. The coefficients are fitted per module by
non-negative least squares on relative residuals, those with a known unit cost weakly pulled
towards it (:data:`PRIORS`; ``scripts/fit_costs.py``), and stored in ``costs/fit_<part>.json``
with the fit's error and its leave-one-out error.

**BRAM18 and DSP** are exact structural rules (:func:`bram18`, :func:`dsp`) that reproduce
what Yosys maps, checked against every sweep point (``tests/test_costs.py``): a ``pascal_rom``
deeper than 64 words is block RAM (its cheapest RAMB18/RAMB36 tiling, :func:`bram_tiles`); the
other memories (window buffer, line buffer, pool banks, FIFO storage) go to block RAM when Yosys'
``memory_libmap`` finds that cheaper than LUT RAM (:func:`auto_bram`), tiled as it tiles them
(:func:`bram_layout`: the address range cut into pieces of one geometry whose bits are packed
into units, e.g. a 4256 x 25 FIFO in 7 RAMB18 of 512 x 36, not 9); a lane's
``weight * frame`` product is a DSP48E1 where ``mul2dsp`` maps it (:func:`lane_dsp`).

:func:`stage_cost` is one module instance; :func:`layer_cost` one layer in a mode (its stages
as the RTL backend emits them, its input FIFO(s) and a weighted layer's token FIFO), which
:func:`pascal_fpga.hw.resources.layer_resources` returns when the fit of the part is present.
The counts are Yosys' (``pascal_fpga.hw.synth``: xc7 LUT = LUT6 + LUT-as-memory as Vivado
counts it, an upper bound of Vivado's packing).

Re-running: ``costs/README.md``.
"""

from __future__ import annotations

import json
import math
from functools import lru_cache
from pathlib import Path
from typing import Any

KEYS = ("LUT", "FF", "BRAM18", "DSP")
COSTS_DIR = Path(__file__).resolve().with_name("costs")
ROM_LUT_DEPTH = 64      # pascal_rom: deeper is block RAM (rom_style = "block"), else logic

# the modules' parameter defaults (their SystemVerilog headers)
DEFAULTS: dict[str, dict[str, int]] = {
    "pascal_mvu": dict(SIMD=1, PE=1, T_IN=1, FB=1, SF=1, NF=1, WINDOWS=1, T_OUT=1, WB=2,
                       ACC_BITS=8, CLASSIFIER=0, OUT_BINARY=0),
    "pascal_window_gen": dict(IN_CH=2, IN_H=5, IN_W=5, OUT_H=3, OUT_W=3, K=3, STRIDE=1, PAD=0,
                              T_IN=4, FB=1, SIMD=1, ZERO_SKIP=1),
    "pascal_vector_gen": dict(SIMD=4, T_IN=4, FB=1, SF=8, ZERO_SKIP=1),
    "pascal_pool": dict(CH=2, IN_H=4, IN_W=4, OUT_H=2, OUT_W=2, K=2, STRIDE=2, T=1, FB_IN=1,
                        FB_OUT=1, PE=1, SUM=0),
    "pascal_add": dict(CH=2, OUT_PIXELS=1, PE=1, ACC_BITS=8, SC_ACC=0, T_SC=1, FB_SC=1,
                       SC_BITS=8, N_BITS=10, T_OUT=1, SH_BITS=2, OUT_BINARY=0),
    "pascal_fifo": dict(WIDTH=8, DEPTH=2),
    "pascal_input": dict(PIXELS=4, CH=1, IN_BITS=8, AXI_BITS=8, GROUP=1),
    "pascal_output": dict(CLASSES=10, ACC_BITS=16, PE=1),
    "pascal_fork": dict(BITS=8, WORDS=1),
}
MODULES = tuple(DEFAULTS)


class UnknownModule(ValueError):
    """A module with no cost function (e.g. a layer kind registered from outside the library):
    :func:`pascal_fpga.hw.resources.layer_resources` falls back to its analytic estimate."""


def clog2(n: int) -> int:
    """$clog2: the bits to count 0..n-1 (0 for n <= 1)."""
    return max(0, math.ceil(math.log2(n))) if n > 1 else 0


def bits(v: int) -> int:
    """max(1, bit length of v)."""
    return max(1, int(v).bit_length())


def full_params(module: str, params: dict[str, Any]) -> dict[str, int]:
    """The module's parameters with its defaults, file parameters left out."""
    if module not in DEFAULTS:
        raise UnknownModule(f"no cost function for module {module!r}")
    p = dict(DEFAULTS[module])
    p.update({k: int(v) for k, v in params.items() if not k.endswith("FILE")})
    return p


# ------------------------------------------------------------------------------ memories
# Yosys' block RAM geometries for xc7 (memory_libmap with brams_xc6v: simple dual port), as
# (address bits, data widths, cost, BRAM18 per unit): RAMB18E1 16K x 1 .. 512 x 36 and RAMB36E1
# 32K x 1 .. 512 x 72
_BRAM_DIMS = ((14, (1, 2, 4, 9, 18, 36), 129, 1), (15, (1, 2, 4, 9, 18, 36, 72), 257, 2))
BRAM_BYTE = 9           # the block RAMs' write-enable granularity (9, or the unit if narrower)
LUTRAM_COST = 8         # per LUT RAM unit (RAM64M: 64 x 3, RAM32M: 32 x 6)
FACTOR_MUX = 0.5        # memory_libmap's cost of a read-mux bit and of a write-enable demux
FACTOR_DEMUX = 0.5


def bram_tiles(depth: int, width: int, rom: bool = False) -> tuple[int, float]:
    """(BRAM18 count, cost) of :func:`bram_layout`."""
    return bram_layout(depth, width, rom)[:2]


def bram_layout(depth: int, width: int, rom: bool = False) -> tuple[int, float, int]:
    """(BRAM18 count, cost) of a depth x width memory in block RAM as Yosys' memory_libmap
    tiles it: per geometry (a RAMB18 or RAMB36 of 2^(abits - b) words of dbits[b] bits), the
    memory's address range cut into ``mult_a`` pieces of that depth whose bits (each word padded
    to the write-enable byte; a ROM: no padding) are packed into ``repl`` units; cost = unit cost
    x units + the read mux and write demux over the pieces; the cheapest wins. Returns
    (BRAM18 count, cost, pieces)."""
    best: tuple[int, float, int] | None = None
    for abits, dbits, unit_cost, size in _BRAM_DIMS:
        for b, unit_width in enumerate(dbits):
            byte = 1 if rom else (BRAM_BYTE if unit_width >= BRAM_BYTE else unit_width)
            swizzle = math.ceil(width / byte) * byte
            mult_a = math.ceil(depth / (1 << (abits - b)))
            repl = math.ceil(mult_a * swizzle / unit_width)
            cost = unit_cost * repl + FACTOR_MUX * (mult_a - 1) * width
            if not rom and mult_a != 1:
                cost += FACTOR_DEMUX * mult_a
            if best is None or cost < best[1]:
                best = (repl * size, cost, mult_a)
    return best


def lutram_cost(depth: int, width: int) -> float:
    """memory_libmap's cost of a depth x width RAM in LUT RAM: a cost per unit (its slices'
    read mux is not charged, as Yosys' choices show)."""
    return float(LUTRAM_COST * lutram_geometry(depth, width)[0])


def auto_bram(depth: int, width: int) -> int:
    """BRAM18 of a RAM that Yosys maps by itself (no ram_style): block RAM where it is cheaper
    than LUT RAM, else 0 (LUT RAM, or registers when tiny)."""
    if depth <= 1 or width <= 0 or depth * width <= LOGIC_MEMORY_BITS:
        return 0
    count, cost = bram_tiles(depth, width)
    return count if cost < lutram_cost(depth, width) else 0


def rom_bram(depth: int, width: int) -> int:
    """BRAM18 of a pascal_rom: block RAM deeper than ROM_LUT_DEPTH words (rom_style "block"),
    else logic."""
    return bram_tiles(depth, width, rom=True)[0] if depth > ROM_LUT_DEPTH else 0


# ------------------------------------------------------------------------------ derived sizes
def _mvu(p: dict) -> dict:
    s, pe, t, fb, sf, nf = p["SIMD"], p["PE"], p["T_IN"], p["FB"], p["SF"], p["NF"]
    wb, a = p["WB"], p["ACC_BITS"]
    d = {}
    d["FR_W"] = s * t * fb
    d["SFB"] = clog2(max(sf - 1, 1) + 1)
    d["AB"] = clog2(t + 1)
    d["BUF_W"] = d["FR_W"] + d["SFB"] + d["AB"]
    d["W_W"] = pe * s * wb
    d["L"] = 1 if p["CLASSIFIER"] else p["T_OUT"]
    d["P_W"] = pe * d["L"] * a
    d["ROWS"] = nf * sf
    d["PROD_W"] = wb + fb
    d["SUM_W"] = min(d["PROD_W"] + clog2(s), a)
    d["OB"] = clog2(p["T_OUT"] + 1)
    return d


def lane_dsp(p: dict) -> bool:
    """Whether pascal_mvu's lane product ``weight * frame`` is a DSP48E1 (xc7): a multiply of
    WB x FB bits (FB > 1) whose kept result (min(WB + FB, SUM_W) bits) has at least 9 bits."""
    p = full_params("pascal_mvu", p)
    d = _mvu(p)
    return p["FB"] > 1 and p["WB"] >= 2 and min(d["PROD_W"], d["SUM_W"]) >= 9


def _window_gen(p: dict) -> dict:
    cf = p["IN_CH"] // p["SIMD"]
    d = {"CF": cf, "SF": p["K"] ** 2 * cf, "FRAMES_W": p["SIMD"] * p["T_IN"] * p["FB"],
         "AB": bits(p["T_IN"]), "ROW_WORDS": p["IN_W"] * cf, "KCF": p["K"] * cf}
    d["SFB"] = bits(max(d["SF"] - 1, 1))
    d["DEPTH"] = p["K"] * d["ROW_WORDS"]
    d["LB_W"] = d["FRAMES_W"] + (d["AB"] if p["ZERO_SKIP"] else 0)
    d["AW"] = max(1, clog2(d["DEPTH"]))
    d["XP_MAX"] = (p["OUT_W"] - 1) * p["STRIDE"]
    d["IW"] = max(1, clog2(d["KCF"]))
    return d


def _pool(p: dict) -> dict:
    cf = p["CH"] // p["PE"]
    d = {"CF": cf, "IW": p["PE"] * p["T"] * p["FB_IN"], "NB": p["K"] ** 2,
         "D": math.ceil(p["IN_W"] / p["K"]) * cf}
    d["DAW"] = max(1, clog2(d["D"]))
    return d


def _add(p: dict) -> dict:
    nf = p["CH"] // p["PE"]
    sum_w = p["FB_SC"] + clog2(p["T_SC"])
    return {"NF": nf, "V_W": p["SC_BITS"] if p["SC_ACC"] else sum_w,
            "SH_W": p["PE"] * 2 * p["SH_BITS"], "TH_W": p["PE"] * p["T_OUT"] * p["N_BITS"],
            "OB": clog2(p["T_OUT"] + 1)}


# ------------------------------------------------------------------------------ BRAM18, DSP
def bram18(module: str, params: dict, part: str = "xc7") -> int:
    """BRAM18 blocks of one module instance (structural; see the module docstring)."""
    p = full_params(module, params)
    if module == "pascal_mvu":
        d = _mvu(p)
        n = rom_bram(d["ROWS"], d["W_W"]) + rom_bram(p["NF"], d["P_W"])
        if p["NF"] > 1:
            n += auto_bram(p["SF"], d["BUF_W"])
        return n
    if module == "pascal_window_gen":
        d = _window_gen(p)
        return auto_bram(d["DEPTH"], d["LB_W"])
    if module == "pascal_pool":
        d = _pool(p)
        return d["NB"] * auto_bram(d["D"], d["IW"])
    if module == "pascal_add":
        d = _add(p)
        return rom_bram(d["NF"], d["SH_W"]) + rom_bram(d["NF"], d["TH_W"])
    if module == "pascal_fifo":
        return auto_bram(p["DEPTH"], p["WIDTH"]) if p["DEPTH"] > 1 else 0
    return 0


def dsp(module: str, params: dict, part: str = "xc7") -> int:
    """DSP48E1 of one module instance: pascal_mvu's lanes where the product maps to one."""
    if module != "pascal_mvu":
        return 0
    p = full_params(module, params)
    return p["PE"] * p["SIMD"] if lane_dsp(p) else 0


# ------------------------------------------------------------------------------ LUT/FF features
LOGIC_MEMORY_BITS = 24   # a RAM of at most this many bits stays flip-flops (as Yosys maps them)


def mem_kind(depth: int, width: int) -> str:
    """How Yosys maps a RAM it maps by itself: "ff" (registers), "lutram" or "bram"."""
    if depth <= 1 or depth * width <= LOGIC_MEMORY_BITS:
        return "ff"
    return "bram" if auto_bram(depth, width) else "lutram"


def lutram_geometry(depth: int, width: int) -> tuple[int, int]:
    """(units, slices) of a depth x width RAM in LUT RAM as Yosys builds it: RAM32M units
    (32 x 6, 4 LUTs) or RAM64M units (64 x 3, 4 LUTs), whichever needs fewer (RAM64M on a tie),
    in ``slices`` slices of 32 or 64 words (muxed per bit when more than one)."""
    u32 = math.ceil(depth / 32) * math.ceil(width / 6)
    u64 = math.ceil(depth / 64) * math.ceil(width / 3)
    if u64 <= u32:
        return u64, math.ceil(depth / 64)
    return u32, math.ceil(depth / 32)


def lutram_luts(depth: int, width: int) -> float:
    """LUTs of the LUT RAM cells of a depth x width RAM (4 per RAM32M / RAM64M)."""
    return 4.0 * lutram_geometry(depth, width)[0]


def _lutram(depth: int, width: int, bram: int = 0, mux: bool = True) -> float:
    """LUTs of a RAM in LUT RAM (0 when it is registers or block RAM): its cells and, with
    ``mux``, a read mux per bit over its slices."""
    if bram or mem_kind(depth, width) != "lutram":
        return 0.0
    units, slices = lutram_geometry(depth, width)
    return 4.0 * units + (width * (slices - 1) if mux else 0.0)


def distinct_columns(bits: int, words: int) -> float:
    """Expected distinct non-constant bit columns among ``bits`` random columns of a ROM of
    ``words`` words (each column is a function of the address; with few words many coincide
    or are constant, and Yosys merges them)."""
    if words >= 20:
        return float(bits)
    n = float(2 ** words)
    seen = 1.0 - (1.0 - 1.0 / n) ** bits
    return max(0.0, n * seen - 2.0 * seen)


def bram_mux(depth: int, width: int, rom: bool = False) -> float:
    """Read-mux bits of a memory in block RAM cut into several address pieces (0 if one)."""
    return float(width * (bram_layout(depth, width, rom)[2] - 1))


def _ffram(depth: int, width: int) -> float:
    """Bits of a RAM kept in registers (0 else; one word: its register)."""
    return float(depth * width) if mem_kind(depth, width) == "ff" else 0.0


def features(module: str, params: dict) -> dict[str, float]:
    """The structural features of one module instance (the regressors of its LUT and FF
    models; "one" is the constant)."""
    p = full_params(module, params)
    f: dict[str, float] = {"one": 1.0}
    if module == "pascal_mvu":
        d = _mvu(p)
        pe, s, fb, t, a, nf = p["PE"], p["SIMD"], p["FB"], p["T_IN"], p["ACC_BITS"], p["NF"]
        lanes = pe * s
        is_dsp = lane_dsp(p)
        w_lut = 1 < d["ROWS"] <= ROM_LUT_DEPTH
        p_lut = 1 < nf <= ROM_LUT_DEPTH
        wbuf = _lutram(p["SF"], d["BUF_W"]) if nf > 1 else 0.0
        wbuf_ff = _ffram(p["SF"], d["BUF_W"]) if nf > 1 else 0.0
        # a logic ROM: a LUT per bit (one LUT6 per 64 words) and its registered word, except
        # with 2 words, where every bit is a constant, the address or its inverse (merged)
        w_fun = distinct_columns(d["W_W"], d["ROWS"]) if w_lut else 0.0
        p_fun = distinct_columns(d["P_W"], nf) if p_lut else 0.0
        f["tree"] = pe * (s - 1) * d["SUM_W"]
        f["gates"] = lanes * min(p["WB"], d["SUM_W"]) if fb == 1 else 0.0
        f["mult"] = 0.0 if (fb == 1 or is_dsp) else lanes * p["WB"] * fb
        f["dsp_lanes"] = float(lanes) if is_dsp else 0.0
        f["acc"] = pe * a
        # (with NF = 1 the thresholds are constants and the comparators cheaper; counted as the
        # others all the same, which keeps a layer's cost monotone in PE across PE = OUT_CH)
        f["compare"] = 0.0 if p["CLASSIFIER"] else pe * d["L"] * a
        f["popcount"] = pe * p["T_OUT"] * d["OB"] if (p["OUT_BINARY"] and not p["CLASSIFIER"]) \
            else 0.0
        f["w_rom"] = w_fun * math.ceil(d["ROWS"] / 64)
        f["bram_mux"] = ((bram_mux(d["ROWS"], d["W_W"], True) if d["ROWS"] > ROM_LUT_DEPTH else 0)
                         + (bram_mux(nf, d["P_W"], True) if nf > ROM_LUT_DEPTH else 0)
                         + (bram_mux(p["SF"], d["BUF_W"]) if nf > 1 and
                            mem_kind(p["SF"], d["BUF_W"]) == "bram" else 0))
        f["p_rom"] = p_fun
        f["wbuf"] = wbuf + wbuf_ff / 2
        f["frames"] = d["FR_W"] * ((1 if t > 1 else 0) + (1 if nf > 1 else 0))
        f["lanes_in"] = s * fb
        f["counters"] = clog2(d["ROWS"]) + clog2(p["WINDOWS"] + 1) + 2 * clog2(p["SF"] + 1)
        # FF-side: the registers as the RTL has them, after Yosys (block RAM absorbs a ROM's
        # data and output registers; a logic ROM keeps its address register and its output
        # register's distinct bits)
        mac = is_dsp and s == 1      # the DSP48E1 keeps the accumulator (P = P + A*B)
        # the ROMs' registers: a block RAM absorbs its read register (s1_w, s2_param), not the
        # output register after it (s2_w, s3_param); a logic ROM keeps both, one FF per
        # distinct bit function each; a DSP48E1's A register takes s2_w
        if w_lut:
            f["w_regs"] = w_fun * (1 if is_dsp else 2)
        else:
            f["w_regs"] = 0.0 if is_dsp else float(d["W_W"])
        f["p_regs"] = 2 * p_fun if p_lut else (float(d["P_W"]) if nf > ROM_LUT_DEPTH else 0.0)
        f["acc_regs"] = 0 if mac else pe * a
        f["lane_regs"] = s * fb * (1 if is_dsp else 2)
        f["token_regs"] = (d["FR_W"] - fb + d["SFB"] if t > 1 else 0) + \
            (d["BUF_W"] if wbuf else 0.0) + wbuf_ff
        f["sum_reg"] = 0.0 if mac else pe * d["SUM_W"]
        return f
    if module == "pascal_window_gen":
        d = _window_gen(p)
        zs = p["ZERO_SKIP"]
        k = p["K"]
        lb_bram = auto_bram(d["DEPTH"], d["LB_W"])
        f["linebuf"] = _lutram(d["DEPTH"], d["LB_W"], lb_bram) + \
            (bram_mux(d["DEPTH"], d["LB_W"]) if lb_bram else 0.0)
        f["lb_reg"] = 0.0 if lb_bram else d["LB_W"]
        f["frames"] = d["FRAMES_W"]
        f["active"] = zs * d["FRAMES_W"] + zs * p["T_IN"]
        f["flags"] = zs * d["DEPTH"]
        f["rowmux"] = zs * k * d["ROW_WORDS"] * (k - 1)
        f["colmux"] = zs * k * d["KCF"] * d["XP_MAX"]
        f["mask"] = zs * d["SF"]
        f["encoder"] = zs * k * (1 << d["IW"]) * d["IW"]
        f["rowbase"] = zs * k * d["AW"]
        f["dense_addr"] = (1 - zs) * d["AW"] * (1 + clog2(k) + clog2(d["CF"]))
        f["counters"] = d["AW"] + clog2(p["IN_H"] + 1) + clog2(d["XP_MAX"] + 1) + d["SFB"]
        return f
    if module == "pascal_vector_gen":
        zs = p["ZERO_SKIP"]
        fr = p["SIMD"] * p["T_IN"] * p["FB"]
        f["frames"] = fr
        f["active"] = zs * fr + zs * p["T_IN"]
        f["counters"] = bits(max(p["SF"] - 1, 1)) + bits(p["T_IN"])
        return f
    if module == "pascal_pool":
        d = _pool(p)
        bank_bram = auto_bram(d["D"], d["IW"])
        lanes = p["PE"] * p["T"] * (d["NB"] - 1)
        f["banks"] = d["NB"] * _lutram(d["D"], d["IW"], bank_bram)
        f["banks_ff"] = d["NB"] * _ffram(d["D"], d["IW"])
        f["bank_reg"] = 0.0 if bank_bram else d["NB"] * d["IW"]
        # a sum of K*K 1-bit frames is a popcount (a few LUTs per output bit), of wider ones
        # an adder chain
        f["sum"] = lanes * p["FB_OUT"] if p["SUM"] and p["FB_IN"] > 1 else 0.0
        f["popcount"] = p["PE"] * p["T"] * p["FB_OUT"] if p["SUM"] and p["FB_IN"] == 1 else 0.0
        f["max"] = lanes * p["FB_IN"] if (not p["SUM"] and p["FB_IN"] > 1) else 0.0
        f["max2"] = lanes * p["FB_IN"] ** 2 if (not p["SUM"] and p["FB_IN"] > 1) else 0.0
        f["or"] = lanes if (not p["SUM"] and p["FB_IN"] == 1) else 0.0
        f["addr"] = p["K"] * d["DAW"]
        f["counters"] = clog2(p["IN_W"]) + clog2(p["IN_H"] + 1) + clog2(d["CF"]) + d["DAW"]
        return f
    if module == "pascal_add":
        d = _add(p)
        pe, n = p["PE"], p["N_BITS"]
        f["shift"] = pe * n * p["SH_BITS"]
        f["adder"] = pe * n
        f["compare"] = pe * p["T_OUT"] * n * (1 if d["NF"] > 1 else 0)
        f["compare_const"] = pe * p["T_OUT"] * n * (1 if d["NF"] == 1 else 0)
        f["popcount"] = pe * p["T_OUT"] * d["OB"] if p["OUT_BINARY"] else 0.0
        f["short_sum"] = 0.0 if p["SC_ACC"] else pe * p["T_SC"] * p["FB_SC"]
        f["roms"] = (distinct_columns(d["SH_W"], d["NF"]) + distinct_columns(d["TH_W"], d["NF"])
                     if 1 < d["NF"] <= ROM_LUT_DEPTH else 0.0)
        f["in_reg"] = pe * (p["ACC_BITS"] + d["V_W"])
        return f
    if module == "pascal_fifo":
        w, depth = p["WIDTH"], p["DEPTH"]
        bram = auto_bram(depth, w) if depth > 1 else 0
        f["width"] = float(w)
        f["mem"] = _lutram(depth, w, bram, mux=False)
        f["ffmem"] = _ffram(depth, w)
        f["ffmux"] = f["ffmem"] if depth > 1 else 0.0
        f["deep"] = float(w * (lutram_geometry(depth, w)[1] - 1)) \
            if mem_kind(depth, w) == "lutram" else 0.0
        f["bram_width"] = float(w) if bram else 0.0
        f["bram_mux"] = float(w * (bram_layout(depth, w)[2] - 1)) if bram else 0.0
        f["counters"] = clog2(depth + 1)
        return f
    if module == "pascal_input":
        f["axi"] = p["AXI_BITS"]
        f["word"] = p["GROUP"] * p["IN_BITS"]
        f["mux"] = p["GROUP"] * p["IN_BITS"] * clog2(p["CH"] // p["GROUP"])
        f["counters"] = clog2(p["PIXELS"] + 1) + clog2(p["CH"] // p["GROUP"] + 1)
        return f
    if module == "pascal_output":
        f["acc"] = p["PE"] * p["ACC_BITS"]
        # PE > 1: all CLASSES accumulators are stored (PE = 1: compared as they arrive)
        f["store"] = p["CLASSES"] * p["ACC_BITS"] if p["PE"] > 1 else 0.0
        f["argmax"] = p["ACC_BITS"]
        f["counters"] = clog2(p["CLASSES"] + 1)
        return f
    if module == "pascal_fork":
        f["bits"] = p["BITS"]
        f["counters"] = clog2(p["WORDS"] + 1)
        return f
    raise UnknownModule(f"no cost function for module {module!r}")


# the features each model is fitted on (a feature a module's resource cannot grow with stays out)
FIT_FEATURES: dict[str, dict[str, list[str]]] = {
    "pascal_mvu": {
        "LUT": ["one", "tree", "gates", "mult", "dsp_lanes", "acc", "compare", "popcount", "w_rom", "p_rom", "bram_mux", "wbuf", "frames", "lanes_in",
                "counters"],
        "FF": ["one", "w_regs", "p_regs", "acc_regs", "lane_regs", "token_regs", "sum_reg",
               "counters"]},
    "pascal_window_gen": {
        "LUT": ["one", "linebuf", "frames", "active", "flags", "rowmux", "colmux", "mask",
                "encoder", "rowbase", "dense_addr", "counters"],
        "FF": ["one", "lb_reg", "frames", "flags", "mask", "rowbase", "counters"]},
    "pascal_vector_gen": {"LUT": ["one", "frames", "active", "counters"],
                          "FF": ["one", "frames", "counters"]},
    "pascal_pool": {"LUT": ["one", "banks", "banks_ff", "sum", "popcount", "max", "max2", "or",
                            "addr", "counters"],
                    "FF": ["one", "bank_reg", "banks_ff", "addr", "counters"]},
    "pascal_add": {"LUT": ["one", "shift", "adder", "compare", "compare_const", "popcount",
                           "short_sum", "roms"],
                   "FF": ["one", "adder", "in_reg", "roms"]},
    "pascal_fifo": {"LUT": ["one", "width", "mem", "ffmux", "deep", "bram_width", "bram_mux",
                            "counters"],
                    "FF": ["one", "width", "ffmem", "bram_width", "counters"]},
    "pascal_input": {"LUT": ["one", "word", "mux", "counters"],
                     "FF": ["one", "axi", "word", "counters"]},
    "pascal_output": {"LUT": ["one", "acc", "store", "argmax", "counters"],
                      "FF": ["one", "acc", "store", "argmax", "counters"]},
    "pascal_fork": {"LUT": ["one", "bits", "counters"], "FF": ["one", "counters"]},
}


# the cost per unit of features whose hardware is known (an adder or comparator bit is a LUT
# with its carry, a register bit a FF): the fit pulls them weakly towards it
PRIORS: dict[str, dict[str, dict[str, float]]] = {
    "pascal_mvu": {"LUT": {"tree": 1.0, "acc": 1.0, "compare": 1.0, "gates": 0.5},
                   "FF": {"w_regs": 1.0, "p_regs": 1.0, "acc_regs": 1.0, "lane_regs": 1.0,
                          "token_regs": 1.0, "sum_reg": 1.0}},
    "pascal_fifo": {"LUT": {"mem": 1.0}, "FF": {"ffmem": 1.0}},
    "pascal_pool": {"FF": {"bank_reg": 1.0}},
    "pascal_window_gen": {"FF": {"flags": 1.0, "mask": 1.0, "lb_reg": 1.0}},
}


# ------------------------------------------------------------------------------ the fit
def fit_path(part: str) -> Path:
    return COSTS_DIR / f"fit_{part}.json"


@lru_cache(maxsize=None)
def load_fit(part: str = "xc7") -> dict | None:
    """The fitted coefficients of ``part`` (None when there is no fit file)."""
    path = fit_path(part)
    if not path.is_file():
        return None
    return json.loads(path.read_text())


def has_fit(part: str = "xc7") -> bool:
    return load_fit(part) is not None


def stage_cost(module: str, params: dict, part: str = "xc7") -> dict[str, int]:
    """{LUT, FF, BRAM18, DSP} of one module instance (its parameters as the RTL backend writes
    them; file parameters are ignored)."""
    fit = load_fit(part)
    if fit is None:
        raise FileNotFoundError(f"no fitted cost functions for {part} ({fit_path(part)}): run "
                                f"scripts/sweep_modules.py --part {part} and --fit")
    if module not in fit["modules"]:
        raise UnknownModule(f"no fitted cost function for module {module!r} ({part})")
    model = fit["modules"][module]
    f = features(module, params)
    out = {}
    for key in ("LUT", "FF"):
        coef = model[key]["coef"]
        out[key] = max(0, int(round(sum(coef.get(name, 0.0) * v for name, v in f.items()))))
    out["BRAM18"] = bram18(module, params, part)
    out["DSP"] = dsp(module, params, part)
    return out


def _in_mode(layer, mode: str):
    """The layer as built in ``mode`` (zero_skip, dense: its SNN folding with that flag; qnn:
    its QNN twin)."""
    if mode == "qnn":
        return layer if layer.arch == "qnn" else layer.as_qnn()
    if layer.arch == "qnn":   # a twin's layer is built one way only
        return layer
    want = mode == "zero_skip"
    return layer if layer.zero_skip == want else layer.folded(zero_skip=want)


def layer_stages(layer, mode: str, fifo_bits: int = 0, fifo_depth: int = 2
                 ) -> list[tuple[str, dict[str, int]]]:
    """(module, params) of everything a layer is in ``mode``: its input FIFO(s) (the first
    ``fifo_bits`` wide, <= 0: the layer's input word in this mode, ``fifo_depth`` deep; an add's
    shortcut FIFO its own), the FIFOs between its stages and its stages (the RTL emitters',
    with placeholder files)."""
    from .backends.rtl import EMITTERS   # the backend imports the layers: only here

    built = _in_mode(layer, mode)
    if fifo_bits <= 0:
        fifo_bits = layer.mode_input_bits(mode)
    parts: list[tuple[str, dict[str, int]]] = [
        ("pascal_fifo", {"WIDTH": built.input_fifo_bits(0, fifo_bits), "DEPTH": fifo_depth})]
    if built.data_inputs > 1:
        parts.append(("pascal_fifo", {"WIDTH": built.input_fifo_bits(1, built.in_word_bits),
                                      "DEPTH": int(getattr(built, "short_depth", 2))}))
    for _, _, width, key in built.inner_fifos():
        parts.append(("pascal_fifo", {"WIDTH": width, "DEPTH": int(getattr(built, key))}))
    for stage in EMITTERS(built).stages(built, {}):
        parts.append((stage.module, {k: v for k, v in stage.params.items()
                                     if not k.endswith("FILE")}))
    return parts


def layer_cost(layer, mode: str, fifo_bits: int = 0, fifo_depth: int = 2, part: str = "xc7"
               ) -> dict[str, int]:
    """{LUT, FF, BRAM18, DSP} of one layer in ``mode`` (zero_skip, dense or qnn): the sum of
    :func:`stage_cost` over :func:`layer_stages`."""
    total = dict.fromkeys(KEYS, 0)
    for module, params in layer_stages(layer, mode, fifo_bits, fifo_depth):
        for key, value in stage_cost(module, params, part).items():
            total[key] += value
    return total


def layer_breakdown(layer, mode: str, fifo_bits: int = 0, fifo_depth: int = 2,
                    part: str = "xc7") -> dict[str, dict[str, int]]:
    """The layer's cost by module instance (``fifo0``, ``pascal_mvu``, ...), the breakdown
    that replaces the old part-by-part estimate."""
    out: dict[str, dict[str, int]] = {}
    for i, (module, params) in enumerate(layer_stages(layer, mode, fifo_bits, fifo_depth)):
        name = f"{module}#{i}"
        out[name] = stage_cost(module, params, part)
    return out
