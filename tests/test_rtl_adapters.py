"""Unit tests of the RTL library's FIFO, design input/output adapters and pool
(pascal_fpga/rtl/modules): each module alone in Verilator (pascal_fpga.hw.rtlsim.run_stage).

* output words bit for bit against numpy models of the stages;
* with the input always valid and the output always ready, the cycle of every input and output
  transfer equals ``ideal_cycles(delayed(program, P))`` of the programs the layer classes build
  (pascal_fpga/rtl/README.md: write latency P, P drain slots and 2 idle cycles per image);
* random valid/ready patterns (global stall): the same words;
* the FIFO: every transfer's cycle against a small Python model of the README's FIFO.

Every parameter set is one Verilator build (cached by content), so there are few of them, drawn
with fixed seeds inside structural cases (non power-of-two FIFO depth, stride != K, a drain,
IN_W = 1, ...).
"""

from __future__ import annotations

from collections import deque
from types import SimpleNamespace

import numpy as np
import pytest

from pascal_fpga.hw import schedule
from pascal_fpga.hw.layers import PoolLayer
from pascal_fpga.hw.backends import rtl
from pascal_fpga.hw.backends.rtl import RTL_LATENCY
from pascal_fpga.hw.rtlsim import MODULES, run_stage
from pascal_fpga.hw.schedule import IDLE, LOOP_OVERHEAD, READ, WRITE, delayed, ideal_cycles


def _bases(program) -> np.ndarray:
    """The first cycle of every image without stalls (as ideal_cycles places them)."""
    span = program.slots + LOOP_OVERHEAD
    return np.cumsum(span) - span


def _span(program) -> int:
    return int((program.slots + LOOP_OVERHEAD).sum())


def _pattern(rng, cycles: int, p: float) -> np.ndarray:
    return (rng.random(cycles) < p).astype(np.uint8)


# --- FIFO ----------------------------------------------------------------------------------------

def _fifo_model(depth, words, cycles, valid=None, ready=None):
    """The README's FIFO, cycle by cycle, driven like run_stage drives a module."""
    queue, idx = deque(), 0
    out, in_cyc, out_cyc = [], [], []
    for t in range(cycles):
        in_valid = idx < len(words) and (valid is None or (t < len(valid) and valid[t]))
        out_ready = ready is None or t >= len(ready) or bool(ready[t])
        in_ready = len(queue) < depth            # from the registered count
        out_valid = len(queue) != 0
        pop = out_valid and out_ready
        push = in_valid and in_ready
        if pop:
            out.append(queue.popleft())
            out_cyc.append(t)
        if push:
            queue.append(words[idx])
            in_cyc.append(t)
            idx += 1
    return out, np.array(in_cyc, dtype=np.int64), np.array(out_cyc, dtype=np.int64)


FIFO_CASES = {  # name: (seed, depth choices, width choices)
    "depth1": (11, [1], [1, 5, 9]),
    "odd_depth": (12, [3, 5, 6, 7], [33, 37, 45]),   # non power of two, two 32-bit limbs
}


def _fifo_case(name):
    seed, depths, widths = FIFO_CASES[name]
    rng = np.random.default_rng(seed)
    return rng, int(rng.choice(depths)), int(rng.choice(widths))


@pytest.mark.parametrize("name", sorted(FIFO_CASES))
def test_fifo_matches_the_readme_model(name):
    rng, depth, width = _fifo_case(name)
    params = dict(WIDTH=width, DEPTH=depth)

    # always valid, always ready: a word written at t is read at t+1; DEPTH = 1 is full after
    # one write, and a full FIFO takes no write in the cycle it is read: one word per 2 cycles
    words = [int(w) for w in rng.integers(0, 2 ** width, 40, dtype=np.uint64)]
    run = run_stage("pascal_fifo", params, width, width, words, 120)
    assert run.out_words == words
    step = 2 if depth == 1 else 1
    np.testing.assert_array_equal(run.in_cycles, np.arange(40) * step)
    np.testing.assert_array_equal(run.out_cycles, np.arange(40) * step + 1)

    # fill it (no reads), then read every cycle: DEPTH writes in cycles 0..DEPTH-1, none while
    # full (also not in the first read cycle), the next write one cycle after the first read
    stop = depth + 3
    ready = np.r_[np.zeros(stop, np.uint8), np.ones(200, np.uint8)]
    run = run_stage("pascal_fifo", params, width, width, words, stop + 200, ready=ready)
    assert run.out_words == words
    np.testing.assert_array_equal(run.in_cycles[:depth], np.arange(depth))
    assert run.in_cycles[depth] == stop + 1
    assert run.out_cycles[0] == stop
    model = _fifo_model(depth, words, stop + 200, ready=ready)
    np.testing.assert_array_equal(run.in_cycles, model[1])
    np.testing.assert_array_equal(run.out_cycles, model[2])

    # random valid/ready patterns of several densities: every transfer's cycle and the data
    for p_valid, p_ready in ((0.5, 0.5), (0.9, 0.3), (0.3, 0.9), (0.8, 0.8)):
        words = [int(w) for w in rng.integers(0, 2 ** width, 150, dtype=np.uint64)]
        cycles = 700
        valid, ready = _pattern(rng, cycles, p_valid), _pattern(rng, cycles, p_ready)
        run = run_stage("pascal_fifo", params, width, width, words, cycles, ready=ready,
                        valid=valid)
        out, in_cyc, out_cyc = _fifo_model(depth, words, cycles, valid, ready)
        assert run.out_words == out
        assert len(out) > 100
        np.testing.assert_array_equal(run.in_cycles, in_cyc)
        np.testing.assert_array_equal(run.out_cycles, out_cyc)


# --- input adapter -------------------------------------------------------------------------------

def _input_case():
    rng = np.random.default_rng(21)
    ch = int(rng.choice([3, 4, 6]))
    group = int(rng.choice([d for d in range(1, ch) if ch % d == 0]))      # CF >= 2
    bits = int(rng.choice([3, 5, 7]))                                    # AXI padding bits
    pixels = int(rng.integers(5, 10))
    axi = 8 * ((ch * bits + 7) // 8)          # as Design.axi_bits
    params = dict(PIXELS=pixels, CH=ch, IN_BITS=bits, AXI_BITS=axi, GROUP=group)
    return rng, params


def _input_program(params, n):
    """Design.programs' input stage."""
    cf0 = params["CH"] // params["GROUP"]
    return schedule.from_runs("input", np.array([WRITE, IDLE]),
                              np.tile([params["PIXELS"] * cf0, 0], (n, 1)),
                              reads=np.full(n, params["PIXELS"]))


def _input_data(rng, params, n):
    """Random AXI words (random padding bits too: ignored) and the expected layer words."""
    ch, bits, group, axi = params["CH"], params["IN_BITS"], params["GROUP"], params["AXI_BITS"]
    words = [int(w) for w in rng.integers(0, 2 ** axi, n * params["PIXELS"], dtype=np.uint64)]
    width = group * bits
    expect = [(w >> (cf * width)) & ((1 << width) - 1) for w in words
              for cf in range(ch // group)]
    return words, expect


def test_input_adapter_words_and_cycles():
    rng, params = _input_case()
    n = 3
    words, expect = _input_data(rng, params, n)
    out_bits = params["GROUP"] * params["IN_BITS"]
    program = delayed(_input_program(params, n), RTL_LATENCY["pascal_input"])
    run = run_stage("pascal_input", params, params["AXI_BITS"], out_bits, words,
                    _span(program) + 5)
    assert run.out_words == expect
    writes = ideal_cycles(program)[program.write]
    np.testing.assert_array_equal(run.out_cycles, writes)
    # the AXI word is read in its pixel's first slot (not a FIFO transaction of the program)
    cf = params["CH"] // params["GROUP"]
    pixel_slots = np.arange(params["PIXELS"]) * cf
    np.testing.assert_array_equal(run.in_cycles,
                                  (_bases(program)[:, None] + pixel_slots).reshape(-1))
    np.testing.assert_array_equal(run.in_cycles, writes[::cf])


def test_input_adapter_under_random_stalls():
    rng, params = _input_case()
    rng = np.random.default_rng(22)
    words, expect = _input_data(rng, params, 3)
    out_bits = params["GROUP"] * params["IN_BITS"]
    cycles = 6 * len(expect) + 100
    run = run_stage("pascal_input", params, params["AXI_BITS"], out_bits, words, cycles,
                    ready=_pattern(rng, cycles, 0.6), valid=_pattern(rng, cycles, 0.6))
    assert run.out_words == expect
    assert len(run.in_cycles) == len(words)


# --- output adapter ------------------------------------------------------------------------------

# pascal_output's m_axis_tlast travels as bit 32 of the word (run_stage records the data only)
_OUTPUT_WRAPPER = """`default_nettype none
module pascal_output_last #(
    parameter int CLASSES = 10, parameter int ACC_BITS = 16, parameter int PE = 1
) (
    input logic clk, input logic rst,
    input logic [PE*ACC_BITS-1:0] in_data, input logic in_valid, output logic in_ready,
    output logic [32:0] out_data, output logic out_valid, input logic out_ready
);
    logic [31:0] data;
    logic last;
    pascal_output #(.CLASSES(CLASSES), .ACC_BITS(ACC_BITS), .PE(PE)) dut (
        .clk(clk), .rst(rst), .in_data(in_data), .in_valid(in_valid), .in_ready(in_ready),
        .m_axis_tdata(data), .m_axis_tvalid(out_valid), .m_axis_tready(out_ready),
        .m_axis_tlast(last));
    assign out_data = {last, data};
endmodule
`default_nettype wire
"""


def _output_case():
    rng = np.random.default_rng(31)
    classes = int(rng.choice([6, 10, 12]))
    pe = int(rng.choice([d for d in range(1, classes) if classes % d == 0 and d > 1]))  # NF >= 2
    acc_bits = int(rng.integers(6, 20))
    return rng, dict(CLASSES=classes, ACC_BITS=acc_bits, PE=pe)


def _output_program(params, n):
    """Design.programs' output stage."""
    classes, nf = params["CLASSES"], params["CLASSES"] // params["PE"]
    return schedule.from_runs("output", np.array([READ, IDLE]),
                              np.tile([nf, classes + 1], (n, 1)),
                              writes=np.full(n, classes + 1))


def _output_data(rng, params, n):
    classes, bits, pe = params["CLASSES"], params["ACC_BITS"], params["PE"]
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1))
    accs = rng.integers(lo, hi, (n, classes))
    accs[0, [1, classes - 1]] = hi - 1                 # a tie of the maximum: the first wins
    accs[1] = accs[1, 0]                               # all equal: class 0
    if n > 2:
        accs[2] = lo                                   # the most negative value everywhere...
        accs[2, classes - 1] = lo + 1                  # ...but the last is larger
    mask = (1 << bits) - 1
    words = []
    for image in accs:
        for nf in range(classes // pe):
            word = 0
            for k in range(pe):
                word |= (int(image[nf * pe + k]) & mask) << (k * bits)
            words.append(word)
    expect = []
    for image in accs:
        expect += [int(a) & 0xFFFFFFFF for a in image]
        expect.append((1 << 32) | int(np.argmax(image)))   # m_axis_tlast with the class
    return words, expect


def _run_output(tmp_path, params, words, cycles, **kwargs):
    wrapper = tmp_path / "pascal_output_last.sv"
    wrapper.write_text(_OUTPUT_WRAPPER)
    return run_stage("pascal_output_last", params, params["PE"] * params["ACC_BITS"], 33,
                     words, cycles, sources=[MODULES / "pascal_handshake.sv",
                                            MODULES / "pascal_output.sv", wrapper], **kwargs)


def test_output_adapter_words_and_cycles(tmp_path):
    rng, params = _output_case()
    n = 3
    words, expect = _output_data(rng, params, n)
    program = delayed(_output_program(params, n), RTL_LATENCY["pascal_output"])
    run = _run_output(tmp_path, params, words, _span(program) + 5)
    assert run.out_words == expect
    np.testing.assert_array_equal(run.in_cycles, ideal_cycles(program)[program.read])
    # the AXI words (not FIFO transactions of the program) in slots NF .. NF + CLASSES
    nf, classes = params["CLASSES"] // params["PE"], params["CLASSES"]
    np.testing.assert_array_equal(
        run.out_cycles, (_bases(program)[:, None] + nf + np.arange(classes + 1)).reshape(-1))


def test_output_adapter_under_random_stalls(tmp_path):
    _, params = _output_case()
    rng = np.random.default_rng(32)
    words, expect = _output_data(rng, params, 3)
    cycles = 6 * len(expect) + 100
    run = _run_output(tmp_path, params, words, cycles, ready=_pattern(rng, cycles, 0.6),
                      valid=_pattern(rng, cycles, 0.6))
    assert run.out_words == expect
    assert len(run.in_cycles) == len(words)


# --- pool ----------------------------------------------------------------------------------------

POOL_CASES = {
    # K = 3, stride 2 (windows overlap, a window's columns start at a nonzero residue mod K),
    # sparse spike frames, several words per pixel, 1-2 rows drained at the end
    "max_k3_s2": dict(seed=41, sum=False, k=3, stride=2, drain=(1, 2)),
    # K = 2, stride 3 (rows and columns skipped), 2-bit frames summed, one word per pixel,
    # 1-2 rows drained
    "sum_k2_s3": dict(seed=42, sum=True, k=2, stride=3, drain=(1, 2)),
    # one column (IN_W = 1), K = 1, stride 2, multi-bit pixel frames (T = 1), no drain rows
    # (the image's last slot is a W slot)
    "max_w1": dict(seed=43, sum=False, k=1, stride=2, width=1, drain=(0, 0)),
}


def _pool_layer(name):
    """A PoolLayer (the class the compiler uses) with random sizes for a structural case."""
    case = POOL_CASES[name]
    rng = np.random.default_rng(case["seed"])
    k, s = case["k"], case["stride"]
    if case.get("width") == 1:
        t, fb, ch, pe = 1, int(rng.integers(3, 9)), int(rng.choice([2, 3])), 1
    elif case["sum"]:
        t, fb = int(rng.integers(1, 3)), 2
        ch = int(rng.choice([2, 3]))
        pe = ch                                                       # CF = 1
    else:
        t, fb = int(rng.integers(2, 5)), 1
        ch = int(rng.choice([4, 6]))
        pe = int(rng.choice([d for d in range(1, ch) if ch % d == 0]))  # CF >= 2
    out_h = int(rng.integers(2, 4))
    lo, hi = case["drain"]
    in_h = (out_h - 1) * s + k + int(rng.integers(lo, hi + 1))         # drain rows
    if case.get("width") == 1:
        in_w = out_w = 1
    else:
        out_w = int(rng.integers(2, 4))
        in_w = (out_w - 1) * s + k + int(rng.integers(0, s))
    attrs = dict(in_shape=[ch, in_h, in_w], out_shape=[ch, out_h, out_w], t_in=t, t_out=t,
                 in_max=t * (2 ** fb - 1), pe=pe, simd=1, fifo_depth=2, kernel=k, stride=s)
    node = SimpleNamespace(name="pool", op_type="SpikingSumPool" if case["sum"]
                           else "SpikingMaxPool")
    layer = PoolLayer(node, None, attrs)
    assert layer.fb_in == fb and (layer.out_h, layer.out_w) == (out_h, out_w)
    return rng, layer


def _pool_data(rng, layer, n):
    """Random frames (N, H, W, C, T), the input words and the expected output words."""
    ch, pe, t = layer.in_channels, layer.pe, layer.t_in
    fb_in, fb_out, k, s = layer.fb_in, layer.fb_out, layer.kernel, layer.stride
    shape = (n, layer.in_h, layer.in_w, ch, t)
    if fb_in == 1:   # sparse spikes, so that a window's OR is not almost always 1
        x = (rng.random(shape) < 0.12).astype(np.int64)
    else:
        x = rng.integers(0, 2 ** fb_in, shape)

    def pack(values, bits):          # (..., CH, T) -> words of PE channels, pixel-major
        flat = values.reshape(-1, ch // pe, pe * t)
        shifts = [e * bits for e in range(pe * t)]
        return [sum(int(v) << sh for v, sh in zip(group, shifts)) for pixel in flat
                for group in pixel]

    out = np.zeros((n, layer.out_h, layer.out_w, ch, t), dtype=np.int64)
    for oy in range(layer.out_h):
        for ox in range(layer.out_w):
            window = x[:, oy * s:oy * s + k, ox * s:ox * s + k]
            out[:, oy, ox] = window.sum(axis=(1, 2)) % (1 << fb_out) if layer.sum \
                else window.max(axis=(1, 2))
    return pack(x, fb_in), pack(out, fb_out)


def _pool_stage(layer):
    (stage,) = rtl.EMITTERS(layer).stages(layer, {})
    assert stage.module == "pascal_pool"
    return stage


@pytest.mark.parametrize("name", sorted(POOL_CASES))
def test_pool_words_and_cycles(name):
    rng, layer = _pool_layer(name)
    stage = _pool_stage(layer)
    n = 3
    words, expect = _pool_data(rng, layer, n)
    rows = layer.rows_needed()
    lo, hi = POOL_CASES[name]["drain"]
    assert lo <= rows[-1] <= hi and sum(rows) == layer.in_h
    program = delayed(layer.programs(None, n)[0], stage.latency)
    run = run_stage(stage.module, stage.params, stage.in_bits, stage.out_bits, words,
                    _span(program) + 5)
    assert run.out_words == expect
    cycles = ideal_cycles(program)
    np.testing.assert_array_equal(run.in_cycles, cycles[program.read])
    np.testing.assert_array_equal(run.out_cycles, cycles[program.write])


@pytest.mark.parametrize("name", sorted(POOL_CASES))
def test_pool_under_random_stalls(name):
    _, layer = _pool_layer(name)
    stage = _pool_stage(layer)
    rng = np.random.default_rng(POOL_CASES[name]["seed"] + 100)
    words, expect = _pool_data(rng, layer, 2)
    cycles = 6 * (len(words) + len(expect)) + 100
    run = run_stage(stage.module, stage.params, stage.in_bits, stage.out_bits, words, cycles,
                    ready=_pattern(rng, cycles, 0.6), valid=_pattern(rng, cycles, 0.6))
    assert run.out_words == expect
    assert len(run.in_cycles) == len(words)


# --- parameter checks ----------------------------------------------------------------------------

@pytest.mark.parametrize("module,params,message", [
    ("pascal_pool", dict(CH=6, PE=4), "pascal_pool: PE must divide CH"),
    ("pascal_input", dict(CH=3, IN_BITS=8, AXI_BITS=16, GROUP=1),
     "pascal_input: AXI_BITS must hold CH"),
])
def test_parameter_checks_stop_the_build(module, params, message):
    """A module's elaboration-time $error (parameters it cannot implement) is a build error, not
    a Verilator warning that -Wno-fatal would let through."""
    from pascal_fpga.errors import PascalError

    with pytest.raises(PascalError, match=message):
        run_stage(module, params, 8, 8, [], 10)
