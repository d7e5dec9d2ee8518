"""The RTL matrix-vector unit (pascal_fpga/rtl/modules/pascal_mvu.sv) alone under Verilator.

Random layers (threshold and classifier emitters, the edge cases NF = SF = PE = SIMD = T_IN = 1,
FB > 1, negative weights, narrow wrapping accumulators, ROMs deep enough for block RAM) with
random weights, thresholds and biases in memory files and random token streams (zero-skip
sparse windows, empty windows, dense windows) for a few images: the output words bit for bit
against a numpy model, and with no stalls every input and output transfer at the cycle of the
delayed (P = RTL_LATENCY["pascal_mvu"]) HLS program (pascal_fpga/rtl/README.md); then random
valid/ready patterns (the data only)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from pascal_fpga.hw import rtlsim, schedule
from pascal_fpga.hw.backends.rtl import RTL_LATENCY
from pascal_fpga.hw.schedule import delayed, ideal_cycles

P = RTL_LATENCY["pascal_mvu"]   # the MVU's write latency


def _bits(value: int) -> int:
    return max(1, int(value).bit_length())


@dataclass
class Layer:
    simd: int
    pe: int
    t_in: int
    fb: int
    sf: int
    nf: int
    windows: int
    t_out: int
    wb: int
    acc_bits: int
    classifier: int = 0

    @property
    def sfb(self) -> int:
        return _bits(max(self.sf - 1, 1))

    @property
    def ab(self) -> int:
        return _bits(self.t_in)

    @property
    def frame_bits(self) -> int:
        return self.simd * self.t_in * self.fb

    @property
    def token_bits(self) -> int:
        return self.frame_bits + self.sfb + self.ab + 1

    @property
    def out_bits(self) -> int:
        return self.pe * (self.acc_bits if self.classifier else self.t_out)


# name -> (layer, image kinds, seed); kinds: "sparse" (zero-skip: groups without activity are
# not emitted, every third window from the second on has no token at all), "dense" (every group
# emitted with active = T_IN), "full" (zero-skip, every group active), "empty" (no token at all).
# Few layers (each is one Verilator build) that together cover the edge cases:
CASES = {
    # threshold emitter; FB = 2 counts (after a sum pool), T_IN = 3, SIMD = 3 (a padded adder
    # tree), PE > 1, NF > 1, WINDOWS > 1; the sums wrap around 8 bits
    "threshold": (Layer(simd=3, pe=2, t_in=3, fb=2, sf=5, nf=3, windows=4, t_out=2, wb=3,
                        acc_bits=8), ("sparse", "dense", "full"), 1),
    # classifier; spikes (FB = 1), SIMD = 1, NF = 66 and NF*SF = 198: both ROMs in block RAM
    "classifier": (Layer(simd=1, pe=2, t_in=4, fb=1, sf=3, nf=66, windows=1, t_out=1, wb=4,
                         acc_bits=12, classifier=1), ("sparse", "empty", "dense", "full"), 2),
    # pixels (FB = 8, T_IN = 1), PE = SF = NF = 1, products wider than the 7-bit accumulator
    "pixels": (Layer(simd=2, pe=1, t_in=1, fb=8, sf=1, nf=1, windows=5, t_out=3, wb=4,
                     acc_bits=7), ("sparse", "dense", "sparse"), 3),
}


@dataclass
class Case:
    layer: Layer
    params: dict
    tokens: list[int]
    expected: list[int]
    active: np.ndarray            # (N, W, SF) the tokens' active
    emitted: np.ndarray           # (N, W, SF) bool
    extra: dict = field(default_factory=dict)


def _hex_lines(words: list[int]) -> str:
    return "".join(f"{w:x}\n" for w in words)


def _pack(values: np.ndarray, bits: int) -> int:
    """Two's complement fields of ``bits`` bits, element 0 at the LSB."""
    word = 0
    mask = (1 << bits) - 1
    for i, v in enumerate(np.asarray(values).reshape(-1)):
        word |= (int(v) & mask) << (i * bits)
    return word


def _signed(values: np.ndarray, bits: int) -> np.ndarray:
    half = 1 << (bits - 1)
    return (values + half) % (1 << bits) - half


def _frames(layer: Layer, kind: str, rng) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One window: frames (SF, SIMD, T_IN), active (SF,), emitted (SF,)."""
    shape = (layer.sf, layer.simd, layer.t_in)
    top = (1 << layer.fb) - 1
    values = rng.integers(1, top + 1, size=shape)
    if kind == "sparse":
        density = rng.choice([0.0, 0.15, 0.5])
        keep = rng.random(shape) < density
        keep &= rng.random(layer.sf)[:, None, None] < 0.6   # whole groups silent
    elif kind == "full":
        keep = rng.random(shape) < 0.6
        for j in range(layer.sf):   # every group has at least one nonzero frame
            keep[j, rng.integers(layer.simd), rng.integers(layer.t_in)] = True
    else:
        keep = rng.random(shape) < 0.5
    frames = np.where(keep, values, 0)
    nonzero = frames != 0
    last = np.where(nonzero.any(axis=2),
                    layer.t_in - np.argmax(nonzero[:, :, ::-1], axis=2), 0)   # (SF, SIMD)
    active = last.max(axis=1)
    if kind == "dense":
        return frames, np.full(layer.sf, layer.t_in), np.ones(layer.sf, dtype=bool)
    return frames, active, active > 0


def _token(layer: Layer, frames: np.ndarray, sf: int, active: int) -> int:
    word = _pack(frames, layer.fb)   # lane s, frame t at (s*T_IN + t)*FB
    return word | (sf << layer.frame_bits) | (int(active) << (layer.frame_bits + layer.sfb))


def make_case(name: str, folder: Path) -> Case:
    layer, kinds, seed = CASES[name]
    rng = np.random.default_rng(seed)
    n, w = len(kinds), layer.windows
    lo, hi = -(1 << (layer.wb - 1)), (1 << (layer.wb - 1)) - 1
    weights = rng.integers(lo, hi + 1, size=(layer.nf * layer.sf, layer.pe, layer.simd))
    weights[0, 0, 0] = lo   # the most negative weight at least once

    frames = np.zeros((n, w, layer.sf, layer.simd, layer.t_in), dtype=np.int64)
    active = np.zeros((n, w, layer.sf), dtype=np.int64)
    emitted = np.zeros((n, w, layer.sf), dtype=bool)
    tokens = []
    end = 1 << (layer.token_bits - 1)
    for i, kind in enumerate(kinds):
        for win in range(w):
            f, a, e = _frames(layer, kind, rng)
            if kind == "empty" or (kind == "sparse" and win % 3 == 1):   # no token
                f, a, e = np.zeros_like(f), np.zeros_like(a), np.zeros_like(e)
            frames[i, win], active[i, win], emitted[i, win] = f, a, e
            tokens += [_token(layer, f[j], j, a[j]) for j in range(layer.sf) if e[j]]
            tokens.append(end)

    # the model: acc = init + sum over the tokens' frames of weight * frame, wrapped
    folded = weights.reshape(layer.nf, layer.sf, layer.pe, layer.simd)
    acc = np.einsum("nwfs,kfps->nwkp", frames.sum(axis=4), folded)   # (N, W, NF, PE)
    amin, amax = -(1 << (layer.acc_bits - 1)), (1 << (layer.acc_bits - 1)) - 1
    if layer.classifier:
        bias = rng.integers(amin // 2, amax // 2 + 1, size=(layer.nf, layer.pe))
        value = _signed(acc + bias, layer.acc_bits)
        table = [_pack(bias[k], layer.acc_bits) for k in range(layer.nf)]
        expected = [_pack(value[i, win, k], layer.acc_bits)
                    for i in range(n) for win in range(w) for k in range(layer.nf)]
    else:
        value = _signed(acc, layer.acc_bits)
        # thresholds spread around the values the accumulators take (both outcomes occur)
        low = np.clip(value.min(axis=(0, 1)) - 1, amin, amax)
        high = np.clip(value.max(axis=(0, 1)) + 1, amin, amax)
        thresholds = np.sort(rng.integers(low[..., None], high[..., None] + 1,
                                          size=(layer.nf, layer.pe, layer.t_out)), axis=2)
        if layer.t_out > 1:   # the lowest threshold of a row at the most negative value
            thresholds[0, 0, 0] = amin
        table = [_pack(thresholds[k], layer.acc_bits) for k in range(layer.nf)]
        fires = value[..., None] >= thresholds[None, None]   # (N, W, NF, PE, T_OUT)
        expected = [_pack(fires[i, win, k].astype(np.int64), 1)
                    for i in range(n) for win in range(w) for k in range(layer.nf)]

    folder.mkdir(parents=True, exist_ok=True)
    weight_file, param_file = folder / f"{name}_weights.mem", folder / f"{name}_params.mem"
    weight_file.write_text(_hex_lines([_pack(weights[r], layer.wb)
                                       for r in range(layer.nf * layer.sf)]))
    param_file.write_text(_hex_lines(table))
    params = {"SIMD": layer.simd, "PE": layer.pe, "T_IN": layer.t_in, "FB": layer.fb,
              "SF": layer.sf, "NF": layer.nf, "WINDOWS": layer.windows, "T_OUT": layer.t_out,
              "WB": layer.wb, "ACC_BITS": layer.acc_bits, "CLASSIFIER": layer.classifier,
              "WEIGHT_FILE": str(weight_file), "PARAM_FILE": str(param_file)}
    return Case(layer, params, tokens, expected, active, emitted)


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    folder = tmp_path_factory.mktemp("rtl_mvu")
    made: dict[str, Case] = {}

    def get(name: str) -> Case:
        if name not in made:
            made[name] = make_case(name, folder)
        return made[name]

    return get


def _run(case: Case, cycles: int, ready=None, valid=None) -> rtlsim.StageRun:
    layer = case.layer
    return rtlsim.run_stage("pascal_mvu", case.params, layer.token_bits, layer.out_bits,
                            case.tokens, cycles, ready=ready, valid=valid)


@pytest.mark.parametrize("name", list(CASES))
def test_mvu_words_and_cycles(cases, name):
    """No stalls: every output word bit for bit, every transfer at its ideal cycle."""
    case = cases(name)
    program = delayed(schedule.mvu("mvu", case.active, case.emitted, case.layer.nf), P)
    cycles = ideal_cycles(program)
    total = int((program.slots + schedule.LOOP_OVERHEAD).sum())
    run = _run(case, total + 40)
    assert len(run.out_words) == len(case.expected)
    bad = [i for i, (got, want) in enumerate(zip(run.out_words, case.expected)) if got != want]
    assert not bad, f"{len(bad)} wrong words, first #{bad[0]}: {run.out_words[bad[0]]:x} != " \
                    f"{case.expected[bad[0]]:x}"
    assert len(run.in_cycles) == len(case.tokens)
    np.testing.assert_array_equal(run.in_cycles, cycles[program.read])
    np.testing.assert_array_equal(run.out_cycles, cycles[program.write])


@pytest.mark.parametrize("name,seed", [("threshold", 11), ("classifier", 12), ("pixels", 13)])
def test_mvu_random_stalls(cases, name, seed):
    """Random in_valid / out_ready patterns (the global stall): the same words."""
    case = cases(name)
    rng = np.random.default_rng(seed)
    program = schedule.mvu("mvu", case.active, case.emitted, case.layer.nf)
    cycles = 6 * int((program.slots + P + schedule.LOOP_OVERHEAD).sum()) + 200
    valid = rng.random(cycles) < rng.uniform(0.3, 0.8)
    ready = rng.random(cycles) < rng.uniform(0.3, 0.8)
    run = _run(case, cycles, ready=ready, valid=valid)
    assert len(run.in_cycles) == len(case.tokens)
    assert run.out_words == case.expected
    assert np.all(valid[run.in_cycles]) and np.all(ready[run.out_cycles])
