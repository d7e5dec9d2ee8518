"""The RTL feeders (pascal_window_gen, pascal_vector_gen) alone in Verilator: their tokens equal a
numpy model of the window / vector generator bit for bit, and without stalls every input and output
transfer happens in the cycle of the layer classes' feeder program delayed by the write latency
P = 1 (pascal_fpga/rtl/README.md)."""

import numpy as np
import pytest

from pascal_fpga.hw.layers import ConvLayer, DenseLayer
from pascal_fpga.hw.rtlsim import run_stage
from pascal_fpga.hw.schedule import LOOP_OVERHEAD, delayed, ideal_cycles

P = 1   # the feeders' write latency


def _bits(value: int) -> int:
    return max(1, int(value).bit_length())


def _token_fields(simd, t_in, fb, sf):
    frames_w = simd * t_in * fb
    sfb, ab = _bits(max(sf - 1, 1)), _bits(t_in)
    return frames_w, sfb, ab, frames_w + sfb + ab + 1


def _frames(rng, shape, t_in, fb, density):
    """Random frames (*shape, T): FB = 1 thermometer spike trains (level 0..T per channel),
    FB > 1 multi-bit frames; ``density``: the share of channels (frames) that are nonzero."""
    if fb == 1:
        level = rng.integers(1, t_in + 1, size=shape) * (rng.random(shape) < density)
        return (np.arange(t_in) < level[..., None]).astype(np.int64)
    shape = tuple(shape) + (t_in,)
    return rng.integers(1, 1 << fb, size=shape) * (rng.random(shape) < density)


def _pack(frames, fb) -> int:
    """(SIMD, T) frames -> the word: lane s, frame t at bits (s*T + t)*FB."""
    simd, t_in = frames.shape
    word = 0
    for s in range(simd):
        for t in range(t_in):
            word |= int(frames[s, t]) << ((s * t_in + t) * fb)
    return word


def _active(frames) -> int:
    """(SIMD, T): max over lanes of 1 + the index of the last nonzero frame, 0 if none."""
    nonzero = np.nonzero(frames.any(axis=0))[0]
    return int(nonzero[-1]) + 1 if len(nonzero) else 0


def _token(frames_word, sf, active, fields) -> int:
    frames_w, sfb, ab, _ = fields
    return frames_word | (sf << frames_w) | (active << (frames_w + sfb))


def _end(fields) -> int:
    return 1 << (fields[3] - 1)


def _check_cycles(run, program):
    """With no stalls, the transfers happen at ideal_cycles(delayed(program, P))."""
    rtl = delayed(program, P)
    cycles = ideal_cycles(rtl)
    assert np.array_equal(run.in_cycles, cycles[rtl.read])
    assert np.array_equal(run.out_cycles, cycles[rtl.write])


def _stalls(rng, cycles):
    """Random ready/valid patterns: long runs of stalls and of free flow mixed."""
    ready = rng.random(cycles) < rng.choice([0.3, 0.6, 0.9], size=cycles)
    valid = rng.random(cycles) < rng.choice([0.3, 0.6, 0.9], size=cycles)
    return ready, valid


# --- the sliding-window generator ------------------------------------------------------------

class _Conv:
    """A stand-in for a ConvLayer: the layer class's own rows_needed, group_activity and
    feed_program on the parameters of one test."""

    is_conv = True
    cf = ConvLayer.cf
    windows = ConvLayer.windows
    rows_needed = ConvLayer.rows_needed
    lane_activity = ConvLayer.lane_activity
    group_activity = ConvLayer.group_activity
    feed_program = ConvLayer.feed_program

    def __init__(self, p):
        self.name = "conv"
        self.in_channels, self.simd = p["IN_CH"], p["SIMD"]
        self.in_h, self.in_w, self.out_h, self.out_w = p["IN_H"], p["IN_W"], p["OUT_H"], p["OUT_W"]
        self.kernel, self.stride, self.pad = p["K"], p["STRIDE"], p["PAD"]


def _conv_params(in_ch, in_h, in_w, k, stride, pad, t_in, fb, simd, zero_skip):
    out_h = (in_h + 2 * pad - k) // stride + 1
    out_w = (in_w + 2 * pad - k) // stride + 1
    return dict(IN_CH=in_ch, IN_H=in_h, IN_W=in_w, OUT_H=out_h, OUT_W=out_w, K=k, STRIDE=stride,
                PAD=pad, T_IN=t_in, FB=fb, SIMD=simd, ZERO_SKIP=zero_skip)


# (parameters, density of the input); few cases, each a Verilator build, each many edge cases
WINDOW_CASES = {
    # 3x3, stride 2, PAD 1: windows reaching past the bottom (a padding row) and the right edge;
    # thermometer spikes, two lanes per group, sparse
    "k3_s2_pad1_spikes": (_conv_params(4, 7, 6, 3, 2, 1, 4, 1, 2, 1), 0.25),
    # stride > K: rows and columns skipped, the last row drained after the last window;
    # multi-bit frames, dense activity
    "k2_s3_drain_multibit": (_conv_params(3, 9, 7, 2, 3, 0, 3, 2, 1, 1), 0.7),
    # 1x1 kernel on a one-pixel-wide image, PAD = K: no row before the first window, windows
    # wholly outside the image; T_IN = 1
    "k1_w1_pad1": (_conv_params(4, 4, 1, 1, 1, 1, 1, 1, 1, 1), 0.4),
    # image narrower than the kernel's reach (IN_W <= K - PAD): the last R slot before a
    # window writes a group of that very window (the precomputed zero-skip mask must see it)
    "k3_narrow_w2": (_conv_params(2, 5, 2, 3, 1, 1, 2, 1, 1, 1), 0.5),
    # dense schedule: 3x3 with PAD 2 (zero frames outside), multi-bit frames
    "dense_k3_pad2_multibit": (_conv_params(4, 4, 5, 3, 1, 2, 2, 3, 2, 0), 0.4),
}


def _window_model(p, frames):
    """Input words (stream order) and expected tokens of the window generator for frames
    (N, H, W, C, T)."""
    n = frames.shape[0]
    simd, t_in, fb, k = p["SIMD"], p["T_IN"], p["FB"], p["K"]
    cf = p["IN_CH"] // simd
    sf = k * k * cf
    fields = _token_fields(simd, t_in, fb, sf)
    groups = frames.reshape(n, p["IN_H"], p["IN_W"], cf, simd, t_in)
    words, tokens = [], []
    for img in range(n):
        packed = {}
        for y in range(p["IN_H"]):
            for x in range(p["IN_W"]):
                for c in range(cf):
                    word = _pack(groups[img, y, x, c], fb)
                    packed[y, x, c] = (word, _active(groups[img, y, x, c]))
                    words.append(word)
        for oy in range(p["OUT_H"]):
            for ox in range(p["OUT_W"]):
                for ky in range(k):
                    for kx in range(k):
                        iy = oy * p["STRIDE"] - p["PAD"] + ky
                        ix = ox * p["STRIDE"] - p["PAD"] + kx
                        for c in range(cf):
                            word, active = packed.get((iy, ix, c), (0, 0))
                            j = (ky * k + kx) * cf + c
                            if p["ZERO_SKIP"]:
                                if active:
                                    tokens.append(_token(word, j, active, fields))
                            else:
                                tokens.append(_token(word, j, t_in, fields))
                tokens.append(_end(fields))
    return words, tokens, fields


def _window_program(p, frames):
    conv = _Conv(p)
    n = frames.shape[0]
    if p["ZERO_SKIP"]:
        emitted = conv.group_activity(conv.lane_activity(frames)) > 0
    else:
        emitted = np.ones((n, conv.windows, p["K"] ** 2 * conv.cf), dtype=bool)
    return conv.feed_program(emitted, n)


def _window_data(name, images, seed):
    p, density = WINDOW_CASES[name]
    rng = np.random.default_rng(seed)
    frames = _frames(rng, (images, p["IN_H"], p["IN_W"], p["IN_CH"]), p["T_IN"], p["FB"],
                     density)
    frames[0, : p["IN_H"] // 2] = 0          # a quiet region: windows with no token at all
    return p, frames


@pytest.mark.parametrize("name", sorted(WINDOW_CASES))
def test_window_gen_tokens_and_cycles(name):
    """Tokens bit for bit, and every transfer in the cycle of the delayed feeder program."""
    p, frames = _window_data(name, 3, seed=sorted(WINDOW_CASES).index(name))
    words, tokens, fields = _window_model(p, frames)
    program = _window_program(p, frames)
    assert int(program.writes.sum()) == len(tokens)     # the model and the program agree
    cycles = int((program.slots + P + LOOP_OVERHEAD).sum())    # the images, and no more
    run = run_stage("pascal_window_gen", p, fields[0], fields[3], words, cycles)
    assert run.out_words == tokens
    assert len(run.in_cycles) == len(words)
    _check_cycles(run, program)


@pytest.mark.parametrize("name", sorted(WINDOW_CASES))
def test_window_gen_random_stalls(name):
    """Random out_ready and in_valid patterns: the same tokens (the global stall loses and
    repeats nothing)."""
    p, frames = _window_data(name, 2, seed=11)
    words, tokens, fields = _window_model(p, frames)
    rng = np.random.default_rng(5)
    cycles = 20 * (len(words) + len(tokens)) + 200
    ready, valid = _stalls(rng, cycles)
    run = run_stage("pascal_window_gen", p, fields[0], fields[3], words, cycles, ready=ready,
                    valid=valid, max_outputs=len(tokens))
    assert run.out_words == tokens


# --- the vector generator --------------------------------------------------------------------

class _Dense:
    name = "dense"
    feed_program = DenseLayer.feed_program


VECTOR_CASES = {
    "spikes_sparse": (dict(SIMD=4, T_IN=4, FB=1, SF=12, ZERO_SKIP=1), 0.15),
    "dense_multibit": (dict(SIMD=2, T_IN=3, FB=2, SF=7, ZERO_SKIP=0), 0.5),
}


def _vector_model(p, frames):
    """Input words and expected tokens for frames (N, SF, SIMD, T); the emitted flags."""
    fields = _token_fields(p["SIMD"], p["T_IN"], p["FB"], p["SF"])
    words, tokens = [], []
    n = frames.shape[0]
    emitted = np.zeros((n, p["SF"]), dtype=bool)
    for img in range(n):
        for j in range(p["SF"]):
            word, active = _pack(frames[img, j], p["FB"]), _active(frames[img, j])
            words.append(word)
            if not p["ZERO_SKIP"]:
                active = p["T_IN"]
            if active:
                emitted[img, j] = True
                tokens.append(_token(word, j, active, fields))
        tokens.append(_end(fields))
    return words, tokens, fields, emitted


def _vector_data(name, images, seed):
    p, density = VECTOR_CASES[name]
    rng = np.random.default_rng(seed)
    frames = _frames(rng, (images, p["SF"], p["SIMD"]), p["T_IN"], p["FB"], density)
    frames[0] = 0                            # an image with no token at all
    return p, frames


@pytest.mark.parametrize("name", sorted(VECTOR_CASES))
def test_vector_gen_tokens_and_cycles(name):
    p, frames = _vector_data(name, 3, seed=20 + sorted(VECTOR_CASES).index(name))
    words, tokens, fields, emitted = _vector_model(p, frames)
    program = _Dense().feed_program(emitted[:, None, :], frames.shape[0])
    assert int(program.writes.sum()) == len(tokens)
    cycles = int((program.slots + P + LOOP_OVERHEAD).sum())
    run = run_stage("pascal_vector_gen", p, fields[0], fields[3], words, cycles)
    assert run.out_words == tokens
    assert len(run.in_cycles) == len(words)
    _check_cycles(run, program)


@pytest.mark.parametrize("name", sorted(VECTOR_CASES))
def test_vector_gen_random_stalls(name):
    p, frames = _vector_data(name, 3, seed=31)
    words, tokens, fields, _ = _vector_model(p, frames)
    rng = np.random.default_rng(7)
    cycles = 20 * (len(words) + len(tokens)) + 200
    ready, valid = _stalls(rng, cycles)
    run = run_stage("pascal_vector_gen", p, fields[0], fields[3], words, cycles, ready=ready,
                    valid=valid, max_outputs=len(tokens))
    assert run.out_words == tokens
