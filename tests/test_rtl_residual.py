"""Unit tests of the residual blocks' RTL modules (pascal_fpga/rtl/modules/pascal_fork.sv,
pascal_add.sv) and of the matrix-vector unit's accumulator mode on a convolution (the main path
of a residual block: pascal_mvu with CLASSIFIER = 1, WINDOWS > 1, zero bias), each module alone
in Verilator (pascal_fpga.hw.rtlsim.run_ports / run_stage).

* output words bit for bit against numpy models;
* with every input always valid and every output always ready, the cycle of every transfer on
  every stream equals ``ideal_cycles(delayed(program, P))`` (pascal_fpga/rtl/README.md) of the
  slot programs: fork, per image WORDS READ_WRITE slots; add, OUT_PIXELS*NF READ_WRITE slots;
  the MVU, ``schedule.mvu``;
* random valid/ready patterns on each stream (global stall): the same words, the fork's two
  outputs and the add's two inputs in lockstep.

Every parameter set is one Verilator build (cached by content; the memory files are written
content-addressed into the build cache, so their paths, which Verilator compiles in, are
stable too), drawn with fixed seeds inside structural cases.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from pascal_fpga.errors import PascalError
from pascal_fpga.hw import schedule
from pascal_fpga.hw.backends.rtl import RTL_LATENCY
from pascal_fpga.hw.backends.rtl import add_memories
from pascal_fpga.hw.rtlsim import cache_dir, run_ports, run_stage
from pascal_fpga.hw.schedule import LOOP_OVERHEAD, READ_WRITE, delayed, ideal_cycles


def _span(program) -> int:
    return int((program.slots + LOOP_OVERHEAD).sum())


def _pattern(rng, cycles: int, p: float) -> np.ndarray:
    return (rng.random(cycles) < p).astype(np.uint8)


def _signed(values, bits: int):
    half = 1 << (bits - 1)
    return (values + half) % (1 << bits) - half


def _pack(values, bits: int) -> int:
    """Fields of ``bits`` bits (two's complement), element 0 at the LSB."""
    word, mask = 0, (1 << bits) - 1
    for i, v in enumerate(np.asarray(values).reshape(-1)):
        word |= (int(v) & mask) << (i * bits)
    return word


def _mem_file(lines: list[str]) -> str:
    """A $readmemh file with ``lines``, content-addressed in the build cache (stable path)."""
    text = "".join(f"{line}\n" for line in lines)
    folder = cache_dir() / "mem"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{hashlib.sha256(text.encode()).hexdigest()[:24]}.mem"
    if not path.is_file() or path.read_text() != text:
        tmp = path.with_suffix(f".{np.random.default_rng().integers(1 << 30)}.tmp")
        tmp.write_text(text)
        tmp.replace(path)
    return str(path)


def _runs_program(stage: str, slots: int, n: int):
    """Per image one READ_WRITE run of ``slots`` slots."""
    return schedule.from_runs(stage, np.array([READ_WRITE]), np.full((n, 1), slots))


# --- fork ----------------------------------------------------------------------------------------

FORK_CASES = {   # name: (seed, bits choices, words choices)
    "narrow": (51, [1, 3, 7], [5, 6, 9]),
    "wide": (52, [65, 77, 100], [1, 2]),       # three 32-bit limbs; one or two words per image
}


def _fork_case(name):
    seed, bits, words = FORK_CASES[name]
    rng = np.random.default_rng(seed)
    return rng, dict(BITS=int(rng.choice(bits)), WORDS=int(rng.choice(words)))


def _fork_words(rng, params, n):
    bits = params["BITS"]
    return [int.from_bytes(rng.bytes((bits + 7) // 8), "little") & ((1 << bits) - 1)
            for _ in range(n * params["WORDS"])]


def _run_fork(params, words, cycles, **kwargs):
    bits = params["BITS"]
    return run_ports("pascal_fork", params, {"in": (bits, words)}, {"out0": bits, "out1": bits},
                     cycles, **kwargs)


@pytest.mark.parametrize("name", sorted(FORK_CASES))
def test_fork_words_and_cycles(name):
    rng, params = _fork_case(name)
    n = 4
    words = _fork_words(rng, params, n)
    program = delayed(_runs_program("fork", params["WORDS"], n), RTL_LATENCY["pascal_fork"])
    run = _run_fork(params, words, _span(program) + 5)
    assert run.out_words["out0"] == words and run.out_words["out1"] == words
    cycles = ideal_cycles(program)
    np.testing.assert_array_equal(run.in_cycles["in"], cycles[program.read])
    np.testing.assert_array_equal(run.out_cycles["out0"], cycles[program.write])
    np.testing.assert_array_equal(run.out_cycles["out1"], cycles[program.write])


@pytest.mark.parametrize("name", sorted(FORK_CASES))
def test_fork_under_random_stalls(name):
    _, params = _fork_case(name)
    rng = np.random.default_rng(FORK_CASES[name][0] + 100)
    words = _fork_words(rng, params, 6)
    cycles = 10 * len(words) + 100
    valid = _pattern(rng, cycles, 0.7)
    ready0, ready1 = _pattern(rng, cycles, 0.6), _pattern(rng, cycles, 0.6)
    run = _run_fork(params, words, cycles, valid={"in": valid},
                    ready={"out0": ready0, "out1": ready1})
    assert run.out_words["out0"] == words and run.out_words["out1"] == words
    # a word leaves on both outputs in the cycle it is read: never on one alone
    np.testing.assert_array_equal(run.out_cycles["out0"], run.in_cycles["in"])
    np.testing.assert_array_equal(run.out_cycles["out1"], run.in_cycles["in"])
    at = run.in_cycles["in"]
    assert valid[at].all() and ready0[at].all() and ready1[at].all()
    # P = 0: the only cycles the fork skips are the stalls and the images' idle gaps
    assert len(at) == len(words)


# --- residual add --------------------------------------------------------------------------------

ADD_CASES = {
    # PE = 1, identity shortcut of 1-bit spike frames, NF = 3, accumulators wider than n (the
    # high bits are dropped), shifts 0..7 < N_BITS
    "identity_pe1": dict(seed=61, pe=1, nf=3, pixels=(3, 5), sc_acc=0, t_sc=(2, 4), fb_sc=1,
                         acc_bits=(11, 13), n_bits=(8, 10), sh_bits=3, t_out=(2, 3)),
    # PE > 1, projection shortcut (signed accumulators), shifts up to 15 >= N_BITS (a shift
    # out of n gives 0), T_OUT = 3
    "projection_pe": dict(seed=62, pe=(2, 4), nf=2, pixels=(2, 4), sc_acc=1, sc_bits=(9, 12),
                          acc_bits=(7, 9), n_bits=(12, 14), sh_bits=4, t_out=(3, 3)),
    # PE = 3 = CH (NF = 1), one pixel per image, multi-bit shortcut frames (a sum pool's), a
    # 72-bit main word (three limbs), n of 40 bits
    "identity_wide": dict(seed=63, pe=3, nf=1, pixels=(1, 1), sc_acc=0, t_sc=(3, 3), fb_sc=2,
                          acc_bits=(24, 24), n_bits=(40, 40), sh_bits=2, t_out=(1, 2)),
}


def _draw(rng, value):
    """An int, or one drawn from an inclusive (lo, hi) range."""
    if isinstance(value, tuple):
        return int(rng.integers(value[0], value[1] + 1))
    return int(value)


def _add_case(name, n=3):
    """Random parameters, tables and data for a structural case; the expected output words."""
    case = ADD_CASES[name]
    rng = np.random.default_rng(case["seed"])
    pe, nf = _draw(rng, case["pe"]), case["nf"]
    ch, pixels = pe * nf, _draw(rng, case["pixels"])
    acc_bits, n_bits = _draw(rng, case["acc_bits"]), _draw(rng, case["n_bits"])
    sh_bits, t_out, sc_acc = case["sh_bits"], _draw(rng, case["t_out"]), case["sc_acc"]
    t_sc, fb_sc = _draw(rng, case.get("t_sc", 1)), case.get("fb_sc", 1)
    sc_bits = _draw(rng, case.get("sc_bits", 8))

    # data: (N, PIXELS, CH) accumulators over their whole range, the extremes included
    def accs(bits):
        lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
        a = rng.integers(lo, hi + 1, (n, pixels, ch))
        small = rng.random(a.shape) < 0.5           # many small values (near the thresholds)
        a[small] = rng.integers(-8, 9, int(small.sum()))
        a.reshape(-1)[:2] = lo, hi
        return a

    acc = accs(acc_bits)
    if sc_acc:
        sc = accs(sc_bits)
        v = sc
    else:
        frames = rng.integers(0, 1 << fb_sc, (n, pixels, ch, t_sc))
        frames[rng.random(frames.shape) < 0.4] = 0
        frames.reshape(-1)[:t_sc] = (1 << fb_sc) - 1   # a channel with every frame at its max
        v = frames.sum(axis=3)

    # shifts 0 .. 2^SH_BITS - 1, both ends present
    top = (1 << sh_bits) - 1
    shift_main = rng.integers(0, top + 1, ch)
    shift_short = rng.integers(0, top + 1, ch)
    shift_main[0], shift_short[0] = 0, top
    shift_main[-1], shift_short[-1] = top, 0
    if ch > 2:
        shift_main[1] = shift_short[1] = 0

    # the model, with Python ints (no overflow): n modulo 2^N_BITS, two's complement
    n_val = np.zeros((n, pixels, ch), dtype=object)
    for idx in np.ndindex(n_val.shape):
        o = idx[2]
        total = (int(acc[idx]) << int(shift_main[o])) + (int(v[idx]) << int(shift_short[o]))
        n_val[idx] = _signed(total, n_bits)

    # thresholds: ascending per channel, spread over the values n takes (both outcomes occur),
    # the most negative and the most positive N_BITS value included
    lo, hi = -(1 << (n_bits - 1)), (1 << (n_bits - 1)) - 1
    thresholds = np.zeros((ch, t_out), dtype=object)
    for o in range(ch):
        seen = n_val[:, :, o].reshape(-1)
        a, b = max(lo, int(min(seen)) - 1), min(hi, int(max(seen)) + 1)
        drawn = [int(x) for x in rng.integers(a, b + 1, t_out)]
        drawn[int(rng.integers(t_out))] = int(rng.choice(seen))   # n == threshold occurs
        thresholds[o] = sorted(drawn)
    thresholds[0, 0] = lo                        # always fires
    thresholds[ch - 1, t_out - 1] = hi          # fires only at n = max
    if t_out > 1:
        thresholds[ch - 1, 0] = hi              # equal thresholds
    for o in range(ch):
        thresholds[o] = sorted(thresholds[o])

    tables = add_memories(thresholds, shift_main, shift_short, pe, n_bits, sh_bits)
    params = dict(CH=ch, OUT_PIXELS=pixels, PE=pe, ACC_BITS=acc_bits, SC_ACC=sc_acc, T_SC=t_sc,
                  FB_SC=fb_sc, SC_BITS=sc_bits, N_BITS=n_bits, T_OUT=t_out, SH_BITS=sh_bits,
                  THRESH_FILE=_mem_file(tables["thresh"]),
                  SHIFT_FILE=_mem_file(tables["shift"]))

    main_words, short_words, expect = [], [], []
    fires_any, ties = set(), 0
    for i in range(n):
        for p in range(pixels):
            for f in range(nf):
                chans = range(f * pe, (f + 1) * pe)
                main_words.append(_pack([acc[i, p, o] for o in chans], acc_bits))
                if sc_acc:
                    short_words.append(_pack([sc[i, p, o] for o in chans], sc_bits))
                else:
                    short_words.append(_pack([frames[i, p, o] for o in chans], fb_sc))
                bits = [int(n_val[i, p, o] >= thresholds[o, t]) for o in chans
                        for t in range(t_out)]
                fires_any.update(bits)
                ties += sum(int(n_val[i, p, o] == thresholds[o, t]) for o in chans
                            for t in range(t_out))
                expect.append(_pack(bits, 1))
    assert fires_any == {0, 1} and ties > 0   # both outcomes, and n == threshold (fires)
    widths = dict(main=pe * acc_bits, short=pe * (sc_bits if sc_acc else t_sc * fb_sc),
                  out=pe * t_out)
    return params, widths, main_words, short_words, expect


def _run_add(params, widths, main_words, short_words, cycles, **kwargs):
    return run_ports("pascal_add", params,
                     {"main": (widths["main"], main_words),
                      "short": (widths["short"], short_words)},
                     {"out": widths["out"]}, cycles, **kwargs)


def _first_bad(got, want) -> str:
    bad = [i for i, (g, w) in enumerate(zip(got, want)) if g != w]
    if len(got) != len(want):
        return f"{len(got)} words, {len(want)} expected"
    return f"{len(bad)} wrong words, first #{bad[0]}: {got[bad[0]]:x} != {want[bad[0]]:x}" \
        if bad else ""


@pytest.mark.parametrize("name", sorted(ADD_CASES))
def test_add_words_and_cycles(name):
    n = 3
    params, widths, main_words, short_words, expect = _add_case(name, n)
    slots = params["OUT_PIXELS"] * params["CH"] // params["PE"]
    program = delayed(_runs_program("add", slots, n), RTL_LATENCY["pascal_add"])
    run = _run_add(params, widths, main_words, short_words, _span(program) + 5)
    assert run.out_words["out"] == expect, _first_bad(run.out_words["out"], expect)
    cycles = ideal_cycles(program)
    np.testing.assert_array_equal(run.in_cycles["main"], cycles[program.read])
    np.testing.assert_array_equal(run.in_cycles["short"], cycles[program.read])
    np.testing.assert_array_equal(run.out_cycles["out"], cycles[program.write])


@pytest.mark.parametrize("name", sorted(ADD_CASES))
def test_add_under_random_stalls(name):
    params, widths, main_words, short_words, expect = _add_case(name)
    rng = np.random.default_rng(ADD_CASES[name]["seed"] + 100)
    cycles = 8 * len(expect) + 100
    valid_m, valid_s = _pattern(rng, cycles, 0.7), _pattern(rng, cycles, 0.7)
    ready = _pattern(rng, cycles, 0.6)
    run = _run_add(params, widths, main_words, short_words, cycles,
                   valid={"main": valid_m, "short": valid_s}, ready={"out": ready})
    assert run.out_words["out"] == expect, _first_bad(run.out_words["out"], expect)
    # the two inputs move together, only when both are valid
    np.testing.assert_array_equal(run.in_cycles["main"], run.in_cycles["short"])
    at = run.in_cycles["main"]
    assert len(at) == len(main_words) and valid_m[at].all() and valid_s[at].all()
    assert ready[run.out_cycles["out"]].all()


def test_add_memories_layout():
    rng = np.random.default_rng(71)
    ch, pe, t_out, n_bits, sh_bits = 6, 2, 3, 7, 3
    th = np.sort(rng.integers(-64, 64, (ch, t_out)), axis=1)
    sm, ss = rng.integers(0, 8, ch), rng.integers(0, 8, ch)
    tables = add_memories(th, sm, ss, pe, n_bits, sh_bits)
    assert len(tables["thresh"]) == len(tables["shift"]) == ch // pe
    for nf in range(ch // pe):
        t_word, s_word = int(tables["thresh"][nf], 16), int(tables["shift"][nf], 16)
        assert t_word >> (pe * t_out * n_bits) == 0 and s_word >> (pe * 2 * sh_bits) == 0
        for lane in range(pe):
            o = nf * pe + lane
            for t in range(t_out):
                field = (t_word >> ((lane * t_out + t) * n_bits)) & ((1 << n_bits) - 1)
                assert _signed(field, n_bits) == th[o, t]
            assert (s_word >> (2 * lane * sh_bits)) & 7 == sm[o]
            assert (s_word >> ((2 * lane + 1) * sh_bits)) & 7 == ss[o]
    with pytest.raises(PascalError, match="does not fit"):
        add_memories(th, sm + 8, ss, pe, n_bits, sh_bits)
    with pytest.raises(PascalError, match="does not fit"):
        add_memories(th + 64, sm, ss, pe, n_bits, sh_bits)
    with pytest.raises(PascalError, match="divide"):
        add_memories(th, sm, ss, 4, n_bits, sh_bits)


# --- pascal_mvu with CLASSIFIER = 1 on a convolution (a residual block's main path) --------------

# SIMD = 2 spike lanes x T_IN = 3 frames, SF = 4 groups per window (a 2x2 kernel of one input
# group), NF = 3 folds of PE = 2 outputs, WINDOWS = 6 (a 2x3 output map), zero bias, accumulators
# narrow enough to wrap around (5 bits)
CONV = dict(simd=2, pe=2, t_in=3, fb=1, sf=4, nf=3, windows=6, wb=3, acc_bits=5)
CONV_KINDS = ("sparse", "dense", "sparse")   # zero-skip (empty windows too), every group dense


def _conv_case():
    c = CONV
    rng = np.random.default_rng(81)
    n, w, sf, simd, t_in = len(CONV_KINDS), c["windows"], c["sf"], c["simd"], c["t_in"]
    sfb = max(1, (max(sf - 1, 1)).bit_length())
    ab = max(1, t_in.bit_length())
    fr_w = simd * t_in * c["fb"]
    token_w = fr_w + sfb + ab + 1
    lo, hi = -(1 << (c["wb"] - 1)), (1 << (c["wb"] - 1)) - 1
    weights = rng.integers(lo, hi + 1, (c["nf"] * sf, c["pe"], simd))
    weights[0, 0, 0] = lo
    frames = np.zeros((n, w, sf, simd, t_in), dtype=np.int64)
    active = np.zeros((n, w, sf), dtype=np.int64)
    emitted = np.zeros((n, w, sf), dtype=bool)
    tokens = []
    for i, kind in enumerate(CONV_KINDS):
        for win in range(w):
            f = (rng.random((sf, simd, t_in)) < 0.35).astype(np.int64)
            if kind == "sparse" and win in (0, 3, w - 1):
                f[:] = 0                                   # empty windows (first and last too)
            f[rng.random(sf) < 0.3] = 0                    # silent groups
            nonzero = f.any(axis=1)                        # (SF, T_IN)
            act = np.where(nonzero.any(axis=1), t_in - np.argmax(nonzero[:, ::-1], axis=1), 0)
            if kind == "dense":
                act, emit = np.full(sf, t_in), np.ones(sf, dtype=bool)
            else:
                emit = act > 0
            frames[i, win], active[i, win], emitted[i, win] = f, act, emit
            for j in range(sf):
                if emit[j]:
                    tokens.append(_pack(f[j], c["fb"]) | (j << fr_w) |
                                  (int(act[j]) << (fr_w + sfb)))
            tokens.append(1 << (token_w - 1))                # END
    folded = weights.reshape(c["nf"], sf, c["pe"], simd)
    acc = np.einsum("nwfs,kfps->nwkp", frames.sum(axis=4), folded)   # (N, W, NF, PE)
    value = _signed(acc, c["acc_bits"])
    assert (value != acc).any() and (value < 0).any()   # wraps, negative sums
    expect = [_pack(value[i, win, k], c["acc_bits"]) for i in range(n) for win in range(w)
              for k in range(c["nf"])]
    params = dict(SIMD=simd, PE=c["pe"], T_IN=t_in, FB=c["fb"], SF=sf, NF=c["nf"], WINDOWS=w,
                  T_OUT=1, WB=c["wb"], ACC_BITS=c["acc_bits"], CLASSIFIER=1,
                  WEIGHT_FILE=_mem_file([f"{_pack(r, c['wb']):x}" for r in weights]),
                  PARAM_FILE=_mem_file(["0"] * c["nf"]))      # the bias file: all zeros
    return params, token_w, c["pe"] * c["acc_bits"], tokens, expect, active, emitted


def test_mvu_accumulators_on_a_convolution():
    """Every window's every fold: the raw accumulators (zero bias), at the cycles of the
    delayed MVU program; then random stalls."""
    params, token_w, out_w, tokens, expect, active, emitted = _conv_case()
    p = RTL_LATENCY["pascal_mvu"]
    program = delayed(schedule.mvu("mvu", active, emitted, CONV["nf"]), p)
    run = run_stage("pascal_mvu", params, token_w, out_w, tokens, _span(program) + 20)
    assert run.out_words == expect, _first_bad(run.out_words, expect)
    cycles = ideal_cycles(program)
    np.testing.assert_array_equal(run.in_cycles, cycles[program.read])
    np.testing.assert_array_equal(run.out_cycles, cycles[program.write])

    rng = np.random.default_rng(82)
    stall_cycles = 6 * _span(program) + 200
    valid, ready = _pattern(rng, stall_cycles, 0.6), _pattern(rng, stall_cycles, 0.6)
    run = run_stage("pascal_mvu", params, token_w, out_w, tokens, stall_cycles, ready=ready,
                    valid=valid)
    assert run.out_words == expect, _first_bad(run.out_words, expect)
    assert len(run.in_cycles) == len(tokens)
    assert valid[run.in_cycles].all() and ready[run.out_cycles].all()
