"""Self-test of the HLS library and templates (architecture v2), standalone.

For a few tiny random networks (pixels -> conv / pool / dense / classifier, various PE/SIMD,
T = 1..4, ZERO_SKIP 0 and 1), this builds the template context by hand (the shape the compiler
passes), renders hls/templates into a temporary folder, builds the C simulation with g++ and runs
random (partly sparse) images through it. It compares, exactly:
  (a) every layer's dumped levels (--layers) and the outputs with a numpy reference of the
      network's integer semantics (acc = W.q, level = #{k: acc >= T_k}, max / sum pool,
      classifier acc + bias, class = first argmax);
  (b) every stage's per-image counters (--counters) with the formulas of ARCHITECTURE.md,
      computed in numpy from the data (tokens sent, active frames, ...);
and that the raw AXI mode (--axi-in / --axi-out) gives the same outputs.
Config U (the stage unit tests, check_units): random configs (--seed) of fork, add_join (identity
and projection shortcuts, random shifts, thresholds with sentinels at the ends of ap_int<N_BITS>)
and window_generator -> mvu_accumulator on small convolutions, one g++ program calling each stage
once per image on random words: outputs and per-image counters against numpy, exactly.

    .venv/bin/python hls/selftest/selftest.py [--configs A,B,U] [--keep DIR] [--images N]
        [--seed S] [--ap-types DIR] [--library DIR]

Needs the pascal_fpga package (it renders with the compiler's own renderer), numpy, make and
g++ (C++14); AP_TYPES defaults to the hls4ml wheel's ap_types.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HLS = Path(__file__).resolve().parent.parent
LIBRARY = HLS / "include" / "pascal"
MARKER = ".pascal-selftest"  # marks a --keep folder the self-test made (and may replace)

# ---------------------------------------------------------------------------------------------
# The networks: the input, then layer specs applied to the current stream in order.
# conv / dense / cls: weighted layers (pe, zs = ZERO_SKIP; SIMD = the incoming stream's group);
# pool: PE = the incoming group.
CONFIGS = {
    "A": dict(channels=1, group=1, layers=[
        dict(op="conv", name="conv0", out=4, k=3, stride=1, pad=1, t=2, pe=2, zs=1),
        dict(op="pool", name="pool0", k=2, stride=2, sum=0),
        dict(op="conv", name="conv1", out=8, k=3, stride=1, pad=1, t=3, pe=4, zs=0),
        dict(op="pool", name="pool1", k=3, stride=1, sum=1),
        dict(op="dense", name="fc0", out=8, t=4, pe=2, zs=1),
        dict(op="cls", name="cls", out=6, pe=3, zs=0)]),
    "B": dict(channels=1, group=1, layers=[
        dict(op="conv", name="conv0", out=4, k=3, stride=1, pad=1, t=1, pe=4, zs=0),
        dict(op="pool", name="pool0", k=2, stride=2, sum=0),
        dict(op="conv", name="conv1", out=8, k=3, stride=2, pad=1, t=4, pe=8, zs=1),
        dict(op="pool", name="pool1", k=2, stride=2, sum=1),
        dict(op="dense", name="fc0", out=8, t=2, pe=8, zs=0),
        dict(op="cls", name="cls", out=6, pe=6, zs=1)]),
    "C": dict(channels=3, group=3, layers=[
        dict(op="conv", name="conv0", out=4, k=3, stride=2, pad=0, t=3, pe=1, zs=1),
        dict(op="pool", name="pool0", k=2, stride=1, sum=0),
        dict(op="conv", name="conv1", out=4, k=2, stride=1, pad=1, t=2, pe=2, zs=1),
        dict(op="pool", name="pool1", k=2, stride=2, sum=1),
        dict(op="dense", name="fc0", out=4, t=1, pe=1, zs=1),
        dict(op="cls", name="cls", out=6, pe=1, zs=1)]),
    "D": dict(channels=3, group=1, layers=[
        dict(op="pool", name="pool0", k=2, stride=2, sum=0),
        dict(op="conv", name="conv0", out=8, k=3, stride=1, pad=1, t=4, pe=8, zs=0),
        dict(op="pool", name="poolm", k=2, stride=1, sum=1),
        dict(op="conv", name="conv1", out=4, k=1, stride=2, pad=0, t=2, pe=2, zs=1),
        dict(op="pool", name="pool1", k=2, stride=1, sum=1),
        dict(op="dense", name="fc0", out=4, t=3, pe=4, zs=0),
        dict(op="cls", name="cls", out=6, pe=2, zs=0)]),
}
# A: K=3 sum pool, dense conv after a zero-skipping one; B: stride 2 with padding, PE = SIMD = 8;
# C: 3-channel pixels in one word, rows drained after the last window (conv and pool), padding on
# a 2x2 kernel, PE = SIMD = 1 everywhere; D: max pool of the pixels (8-bit frames), a zero-skipping
# 1x1 kernel with stride 2 (rows skipped) on sum-pooled 3-bit frames, the rest dense.
HEIGHT = WIDTH = 8
BITS = 8
WEIGHT_BITS = 4


# ---------------------------------------------------------------------------------------------
# numpy helpers
def unsigned_bits(v):
    return max(1, int(v).bit_length())


# the testbench's loop-counter tag of each library stage (the compiler's emitters give theirs)
COUNTER_TAGS = {"pascal::read_pixels": "input_stage", "pascal::window_generator": "feed_stage",
                "pascal::vector_generator": "feed_stage", "pascal::mvu_threshold": "mvu_stage",
                "pascal::mvu_threshold_binary": "mvu_stage",
                "pascal::mvu_classifier": "mvu_stage", "pascal::mvu_accumulator": "mvu_stage",
                "pascal::pool": "pool_stage", "pascal::write_classes": "output_stage"}

def signed_bits(v):
    return int(v).bit_length() + 1


def c_text(values, per_line=16):
    flat = [str(int(v)) for v in np.asarray(values).reshape(-1)]
    return "\n".join(", ".join(flat[i:i + per_line]) + ("," if i + per_line < len(flat) else "")
                     for i in range(0, len(flat), per_line))


def ctype(values, bits):
    low, high = int(np.min(values)), int(np.max(values))
    for name, width in (("signed char", 8), ("short", 16), ("int", 32)):
        if -(2 ** (width - 1)) <= low and high < 2 ** (width - 1):
            return f"PASCAL_PARAM({bits}, {name})"
    return f"PASCAL_PARAM({bits}, long long)"


def group_activity(frames, simd):
    """frames (N, P, C, T) -> (nonzero, active) per group, (N, P, C // simd)."""
    n, p, c, t = frames.shape
    lanes = frames.reshape(n, p, c // simd, simd, t)
    any_t = (lanes != 0).any(axis=3)                          # (N, P, CF, T)
    idx = np.arange(1, t + 1)
    active = (any_t * idx).max(axis=-1)                       # 1 + last nonzero frame, or 0
    return active > 0, active


class Stream:
    """A layer stream in the reference: frames (N, H, W, C, T) of FB bits, G channels per word."""

    def __init__(self, frames, fb, group):
        self.frames, self.fb, self.group = frames, fb, group

    @property
    def shape(self):
        return self.frames.shape[1:]  # H, W, C, T


# ---------------------------------------------------------------------------------------------
def build(config, images, rng):
    """The context, the reference taps and outputs, and the expected counters."""
    n_img = images.shape[0]
    ch, group = config["channels"], config["group"]
    frames = images.transpose(0, 2, 3, 1)[..., None].astype(np.int64)  # N H W C 1
    cur = Stream(frames, BITS, group)
    cfgs = [dict(name="input_cfg", comment="input: pixels", types={}, consts=dict(
        PIXELS=HEIGHT * WIDTH, CH=ch, IN_BITS=BITS, AXI_BITS=8 * ((ch * BITS + 7) // 8),
        GROUP=group))]
    stages = [dict(name="input", call="pascal::read_pixels<input_cfg>", in_fifo="in",
                   out_fifo="pixels", args=[])]
    fifos = [dict(name="pixels", type=f"ap_uint<{group * BITS}>", depth=2)]
    arrays, taps, ref_taps = [], [], {}
    pixels = HEIGHT * WIDTH
    counters = {"input": np.tile([pixels, pixels * ch // group, pixels * ch // group],
                                 (n_img, 1))}
    acc_bits = pe_cls = classes = None
    outputs = None
    for spec in config["layers"]:
        name, op = spec["name"], spec["op"]
        h, w, c, t_in = cur.shape
        g = cur.group
        fb = cur.fb
        if op == "pool":
            k, s, total = spec["k"], spec["stride"], spec["sum"]
            oh, ow = (h - k) // s + 1, (w - k) // s + 1
            fb_out = unsigned_bits(k * k * (2 ** fb - 1)) if total else fb
            out = np.zeros((n_img, oh, ow, c, t_in), np.int64)
            for oy in range(oh):
                for ox in range(ow):
                    win = cur.frames[:, oy * s:oy * s + k, ox * s:ox * s + k]
                    out[:, oy, ox] = win.sum(axis=(1, 2)) if total else win.max(axis=(1, 2))
            cf = c // g
            r, wr = h * w * cf, oh * ow * cf
            counters[name] = np.tile([r, wr, r + wr], (n_img, 1))
            cfgs.append(dict(name=f"{name}_cfg", comment=f"{name}: pool", types={}, consts=dict(
                CH=c, IN_H=h, IN_W=w, OUT_H=oh, OUT_W=ow, K=k, STRIDE=s, T=t_in, FB_IN=fb,
                FB_OUT=fb_out, PE=g, SUM=total)))
            fifo = f"{name}_out"
            stages.append(dict(name=name, call=f"pascal::pool<{name}_cfg>",
                               in_fifo=fifos[-1]["name"], out_fifo=fifo, args=[]))
            fifos.append(dict(name=fifo, type=f"ap_uint<{g * t_in * fb_out}>", depth=3))
            taps.append(dict(layer=name, fifo=fifo, kind="levels", frames=t_in,
                             frame_bits=fb_out, group=g, channels=c, pixels=oh * ow))
            ref_taps[name] = out.sum(axis=-1).reshape(n_img, -1)
            cur = Stream(out, fb_out, g)
            continue

        # weighted layers: the input vector per window, groups of SIMD = g
        simd, pe, zs = g, spec["pe"], spec["zs"]
        cf = c // simd
        o = spec["out"]
        nf = o // pe
        level = cur.frames.sum(axis=-1)                        # N H W C
        max_q = t_in * (2 ** fb - 1)
        nz, active = group_activity(cur.frames.reshape(n_img, h * w, c, t_in), simd)
        nz, active = nz.reshape(n_img, h, w, cf), active.reshape(n_img, h, w, cf)
        if op == "conv":
            k, s, p = spec["k"], spec["stride"], spec["pad"]
            oh, ow = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
            wt = rng.integers(-(2 ** (WEIGHT_BITS - 1)), 2 ** (WEIGHT_BITS - 1), (o, c, k, k))
            matrix = wt.transpose(0, 2, 3, 1).reshape(o, -1)    # (O, [ky, kx, c])
            padded = np.zeros((n_img, h + 2 * p, w + 2 * p, c), np.int64)
            padded[:, p:p + h, p:p + w] = level
            acc = np.zeros((n_img, oh, ow, o), np.int64)
            e_w = np.zeros((n_img, oh, ow), np.int64)
            a_w = np.zeros((n_img, oh, ow), np.int64)
            for oy in range(oh):
                for ox in range(ow):
                    win = padded[:, oy * s:oy * s + k, ox * s:ox * s + k]  # N K K C
                    acc[:, oy, ox] = win.reshape(n_img, -1) @ matrix.T
                    for ky in range(k):
                        for kx in range(k):
                            iy, ix = oy * s - p + ky, ox * s - p + kx
                            if 0 <= iy < h and 0 <= ix < w:
                                e_w[:, oy, ox] += nz[:, iy, ix].sum(axis=-1)
                                a_w[:, oy, ox] += active[:, iy, ix].sum(axis=-1)
            if not zs:
                e_w[:] = k * k * cf
                a_w[:] = k * k * cf * t_in
            windows = oh * ow
            feed_reads = h * w * cf
            feed_writes = (e_w + 1).reshape(n_img, -1).sum(axis=1)
            feed = np.stack([np.full(n_img, feed_reads), feed_writes, feed_reads + feed_writes], 1)
            geometry = dict(OUT_H=oh, OUT_W=ow, K=k, STRIDE=s, PAD=p)
            feeder = "window_generator"
        else:
            oh = ow = 1
            matrix = rng.integers(-(2 ** (WEIGHT_BITS - 1)), 2 ** (WEIGHT_BITS - 1),
                                  (o, h * w * c))               # input index (y*W + x)*C + c
            acc = (level.reshape(n_img, -1) @ matrix.T).reshape(n_img, 1, 1, o)
            e_w = nz.reshape(n_img, -1).sum(axis=1).reshape(n_img, 1, 1)
            a_w = active.reshape(n_img, -1).sum(axis=1).reshape(n_img, 1, 1)
            sf = h * w * cf
            if not zs:
                e_w[:] = sf
                a_w[:] = sf * t_in
            windows = 1
            e = e_w.reshape(n_img)
            feed = np.stack([np.full(n_img, sf), e + 1, np.full(n_img, sf + 1)], 1)
            geometry = dict(OUT_H=1, OUT_W=1, K=1, STRIDE=1, PAD=0)
            feeder = "vector_generator"
        mvu_reads = (e_w + 1).reshape(n_img, -1).sum(axis=1)
        mvu_slots = (nf * (a_w + 1)).reshape(n_img, -1).sum(axis=1)
        counters[f"{name}_feed"] = feed
        counters[f"{name}_mvu"] = np.stack([mvu_reads, np.full(n_img, windows * nf), mvu_slots], 1)
        bound = int(np.abs(matrix).sum(axis=1).max()) * max_q
        fanin = matrix.shape[1]
        sf = fanin // simd
        folded = matrix.reshape(nf, pe, sf, simd).transpose(0, 2, 1, 3).reshape(nf * sf, pe, simd)
        if op == "cls":
            bias = rng.integers(-50, 50, o)
            acc = acc + bias
            acc_bits_layer = signed_bits(bound + 50)
            assert acc_bits_layer <= 32
            t_out = 1
            table, role = bias.reshape(nf, pe), "bias"
            mvu = "mvu_classifier"
        else:
            t_out = spec["t"]
            # thresholds: non-decreasing, at least 1 (an empty window stays silent), from the
            # data's spread; a quarter of the channels never fire
            th = np.zeros((o, t_out), np.int64)
            dead = rng.choice(o, size=o // 4, replace=False)
            for ch_o in range(o):
                values = acc[..., ch_o].reshape(-1)
                positive = values[values > 0]
                if ch_o in dead or positive.size == 0:
                    th[ch_o] = max(1, values.max() + 1)
                else:
                    q = rng.uniform(0.0, 0.9, t_out)
                    th[ch_o] = np.maximum(1, np.quantile(positive, q).astype(np.int64))
            th = np.sort(th, axis=1)
            acc_bits_layer = signed_bits(max(bound, int(th.max())))
            lv = (acc[..., None] >= th).sum(axis=-1)            # N OH OW O
            table, role = th.reshape(nf, pe, t_out), "thresholds"
            mvu = "mvu_threshold"
        types = {"weight_t": f"ap_int<{WEIGHT_BITS}>", "acc_t": f"ap_int<{acc_bits_layer}>"}
        cfgs.append(dict(name=f"{name}_cfg", comment=f"{name}: {op} (selftest)", types=types,
                         consts=dict(IN_CH=c, IN_H=h, IN_W=w, OUT_CH=o, **geometry, T_IN=t_in,
                                     FB=fb, T_OUT=t_out, PE=pe, SIMD=simd, ZERO_SKIP=zs)))
        cfgs[-1]["consts"] = {key: cfgs[-1]["consts"][key] for key in (  # documented order
            "IN_CH", "IN_H", "IN_W", "OUT_CH", "OUT_H", "OUT_W", "K", "STRIDE", "PAD", "T_IN",
            "FB", "T_OUT", "PE", "SIMD", "ZERO_SKIP")}
        arrays.append(dict(layer=name, name=f"{name}_weights", ctype=ctype(folded, WEIGHT_BITS),
                           dims=f"[{nf * sf}][{pe}][{simd}]", text=c_text(folded)))
        arrays.append(dict(layer=name, name=f"{name}_{role}", ctype=ctype(table, acc_bits_layer),
                           dims="".join(f"[{d}]" for d in table.shape), text=c_text(table)))
        tokens, fifo = f"{name}_tokens", f"{name}_out"
        stages.append(dict(name=f"{name}_feed", call=f"pascal::{feeder}<{name}_cfg>",
                           in_fifo=fifos[-1]["name"], out_fifo=tokens, args=[]))
        fifos.append(dict(name=tokens, type=f"pascal::token<{name}_cfg>", depth=4))
        stages.append(dict(name=f"{name}_mvu", call=f"pascal::{mvu}<{name}_cfg>",
                           in_fifo=tokens, out_fifo=fifo,
                           args=[f"{name}_weights", f"{name}_{role}"]))
        if op == "cls":
            fifos.append(dict(name=fifo, type=f"ap_uint<{pe * acc_bits_layer}>", depth=2))
            taps.append(dict(layer=name, fifo=fifo, kind="accumulators", frames=1,
                             frame_bits=acc_bits_layer, group=pe, channels=o, pixels=1))
            ref_taps[name] = acc.reshape(n_img, o)
            acc_bits, pe_cls, classes = acc_bits_layer, pe, o
            cls_acc = acc.reshape(n_img, o)
            outputs = np.concatenate([cls_acc, cls_acc.argmax(axis=1)[:, None]], axis=1)
        else:
            fifos.append(dict(name=fifo, type=f"ap_uint<{pe * t_out}>", depth=4))
            taps.append(dict(layer=name, fifo=fifo, kind="levels", frames=t_out, frame_bits=1,
                             group=pe, channels=o, pixels=oh * ow))
            ref_taps[name] = lv.reshape(n_img, -1)
            out = (np.arange(t_out) < lv[..., None]).astype(np.int64)  # thermometer frames
            cur = Stream(out, 1, pe)
    nf_cls = classes // pe_cls
    cfgs.append(dict(name="output_cfg", comment="output: classes", types={},
                     consts=dict(CLASSES=classes, ACC_BITS=acc_bits, PE=pe_cls)))
    stages.append(dict(name="output", call="pascal::write_classes<output_cfg>",
                       in_fifo=fifos[-1]["name"], out_fifo="out", args=[]))
    counters["output"] = np.tile([nf_cls, classes + 1, nf_cls + classes + 1], (n_img, 1))
    # the chain's streams as the templates take them (fifo i connects stage i to stage i + 1)
    for stage in stages:
        stage["counters"] = COUNTER_TAGS[stage["call"].split("<", 1)[0]]
        stage["in_fifos"], stage["out_fifos"] = [stage["in_fifo"]], [stage["out_fifo"]]
        stage["streams"] = stage["in_fifos"] + stage["out_fifos"]
    for i, fifo in enumerate(fifos):
        fifo["source"], fifo["target"] = stages[i]["name"], stages[i + 1]["name"]
    for tap in taps:
        tap["acc_bits"] = tap["frame_bits"] if tap["kind"] == "accumulators" else 0
    context = dict(
        name="selftest", part="xc7z020clg400-1", clock_mhz=100.0, clock_ns="10.000",
        input=dict(channels=ch, bits=BITS, height=HEIGHT, width=WIDTH, pixels=pixels,
                   axi_bits=8 * ((ch * BITS + 7) // 8), word_bits=ch * BITS, group=group),
        classes=classes, acc_bits=acc_bits, classifier_pe=pe_cls, sample_images=n_img,
        configs=cfgs, arrays=arrays, stages=stages, fifos=fifos, taps=taps)
    return context, ref_taps, outputs, counters


def render(context, out: Path, library=LIBRARY):
    """The project as ``pascal-fpga compile`` renders it (the same function)."""
    from pascal_fpga.hw.backends.hls import render_project

    render_project(context, out, library)


def make_images(n, channels, rng):
    images = rng.integers(0, 2 ** BITS, (n, channels, HEIGHT, WIDTH))
    for i in range(n):
        kind = i % 4
        if kind == 0:
            images[i] *= rng.random((channels, HEIGHT, WIDTH)) < 0.25  # sparse
        elif kind == 1:
            images[i] *= rng.random((1, HEIGHT, WIDTH)) < 0.5          # zero pixels
        elif kind == 2 and i == 2:
            images[i] = 0                                              # empty image
        elif kind == 3:
            images[i, :, :, :WIDTH // 2] = 0                           # zero half
    return images.astype(np.int32)


def check(name, config, n_images, ap_types, keep, library=LIBRARY):
    rng = np.random.default_rng(sum(map(ord, name)))
    images = make_images(n_images, config["channels"], rng)
    context, ref_taps, ref_out, ref_counters = build(config, images.astype(np.int64), rng)
    if keep:
        work = Path(keep) / name
        if work.exists():  # replaced only if an earlier self-test made it
            if not (work / MARKER).is_file():
                raise SystemExit(f"selftest: {work} exists and was not made by the self-test; "
                                 f"choose another --keep folder")
            shutil.rmtree(work)
        work.mkdir(parents=True)
        (work / MARKER).write_text("made by pascal-fpga's HLS self-test\n")
    else:
        work = Path(tempfile.mkdtemp(prefix=f"pascal-selftest-{name}-"))
    failures = []
    try:
        render(context, work, library)
        start = time.time()
        build_run = subprocess.run(["make", "-j2", "csim", f"AP_TYPES={ap_types}", "BUILD=build"],
                                   cwd=work, capture_output=True, text=True)
        if build_run.returncode:
            return [f"build failed:\n{build_run.stdout}\n{build_run.stderr}"], 0.0
        build_s = time.time() - start
        images.tofile(work / "inputs.bin")
        (work / "dumps").mkdir()
        run = subprocess.run(["build/tb_pascal", "--in", "inputs.bin", "--out", "out.bin",
                              "--layers", "dumps", "--counters", "counters.txt"],
                             cwd=work, capture_output=True, text=True)
        if run.returncode or "WARNING" in run.stdout:
            return [f"csim failed ({run.returncode}):\n{run.stdout}\n{run.stderr}"], build_s
        out = np.fromfile(work / "out.bin", dtype=np.int32).reshape(n_images, -1)
        if not np.array_equal(out, ref_out):
            bad = np.argwhere(out != ref_out)
            failures.append(f"outputs differ at {bad[:5].tolist()}: got {out[bad[0][0]]}, "
                            f"want {ref_out[bad[0][0]]}")
        for layer, want in ref_taps.items():
            got = np.fromfile(work / "dumps" / f"{layer}.bin", dtype=np.int32)
            if got.size != want.size or not np.array_equal(got.reshape(want.shape), want):
                failures.append(f"tap {layer} differs ({got.size} vs {want.size} values)")
        got_counters = {}
        for line in (work / "counters.txt").read_text().splitlines():
            image, stage, reads, writes, slots = line.split()
            got_counters.setdefault(stage, {})[int(image)] = (int(reads), int(writes), int(slots))
        if list(got_counters) != [s["name"] for s in context["stages"]]:
            failures.append(f"counter stages {list(got_counters)}")
        for stage, want in ref_counters.items():
            got = np.array([got_counters.get(stage, {}).get(i, (-1, -1, -1))
                            for i in range(n_images)])
            if not np.array_equal(got, want):
                i = int(np.argwhere((got != want).any(axis=1))[0][0])
                failures.append(f"counters of {stage}, image {i}: got {tuple(got[i])}, want "
                                f"{tuple(want[i])}")
        # raw AXI mode: the same outputs
        nbytes = context["input"]["axi_bits"] // 8
        words = np.zeros((n_images, HEIGHT * WIDTH, nbytes), np.uint8)
        pix = images.transpose(0, 2, 3, 1).reshape(n_images, HEIGHT * WIDTH, -1)
        value = np.zeros((n_images, HEIGHT * WIDTH), dtype=object)
        for ch in range(pix.shape[-1]):
            value = value + (pix[..., ch].astype(object) << (ch * BITS))
        for b in range(nbytes):
            words[..., b] = np.vectorize(lambda v: (v >> (8 * b)) & 255)(value)
        words.tofile(work / "axi.bin")
        raw = subprocess.run(["build/tb_pascal", "--axi-in", "axi.bin", "--axi-out", "raw.bin"],
                             cwd=work, capture_output=True, text=True)
        if raw.returncode:
            failures.append(f"raw mode failed: {raw.stderr}")
        elif not np.array_equal(np.fromfile(work / "raw.bin", dtype=np.int32).reshape(out.shape),
                                out):
            failures.append("raw mode outputs differ")
        zero = {layer: round(float(np.mean(v == 0)), 2) for layer, v in ref_taps.items()}
        top = {layer: int(v.max()) for layer, v in ref_taps.items()}
        print(f"  {name}: built in {build_s:.1f} s; {n_images} images; fraction of zero levels "
              f"{zero}; largest {top}")
        return failures, build_s
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)

# ---------------------------------------------------------------------------------------------
# Unit tests of single stages: residual.h's fork and add_join, and mvu.h's mvu_accumulator on
# small convolutions (fed by window_generator). Random configs (seeded), one C++ program that calls
# each stage once per image on random words, checked exactly against numpy models; every stage's
# per-image counters against the schedules of ARCHITECTURE.md.
UNITS = "U"        # the --configs name of the unit tests
UNIT_IMAGES = 3    # images (calls) per unit

UNIT_MAIN = r"""// The stage unit tests of pascal-fpga's HLS self-test (generated).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "pascal/pascal.h"

static FILE *open_or_die(const std::string &path, const char *mode) {
    FILE *file = fopen(path.c_str(), mode);
    if (!file) {
        fprintf(stderr, "units: cannot open %s\n", path.c_str());
        exit(2);
    }
    return file;
}

// A word of W bits as ceil(W/32) little-endian uint32 chunks.
template <int W>
static ap_uint<W> get_word(FILE *file) {
    ap_uint<W> word = 0;
    for (int j = 0; j * 32 < W; j++) {
        uint32_t chunk;
        if (fread(&chunk, 4, 1, file) != 1) {
            fprintf(stderr, "units: input file too short\n");
            exit(2);
        }
        word |= ap_uint<W>(chunk) << (32 * j);
    }
    return word;
}

template <int W>
static void put_word(FILE *file, const ap_uint<W> &word) {
    for (int j = 0; j * 32 < W; j++) {
        const ap_uint<W> shifted = word >> (32 * j);
        const uint32_t chunk = ap_uint<32>(shifted).to_uint();
        fwrite(&chunk, 4, 1, file);
    }
}

// Everything a stream holds: a uint32 count, then the words.
template <class Word>
static void drain(hls::stream<Word> &s, FILE *file) {
    std::vector<Word> words;
    while (!s.empty()) words.push_back(s.read());
    const uint32_t count = words.size();
    fwrite(&count, 4, 1, file);
    for (size_t i = 0; i < words.size(); i++) put_word<Word::width>(file, words[i]);
}

template <class CFG, class STAGE>
static void clear() {
    pascal::loop_counters<CFG, STAGE>::reads = 0;
    pascal::loop_counters<CFG, STAGE>::writes = 0;
    pascal::loop_counters<CFG, STAGE>::slots = 0;
}

template <class CFG, class STAGE>
static void report(FILE *file, const char *unit, const char *stage, unsigned image) {
    fprintf(file, "%s %s %u %llu %llu %llu\n", unit, stage, image,
            pascal::loop_counters<CFG, STAGE>::reads, pascal::loop_counters<CFG, STAGE>::writes,
            pascal::loop_counters<CFG, STAGE>::slots);
}

template <class CFG>
static void run_fork(const char *unit, unsigned images, FILE *counters) {
    FILE *in = open_or_die(std::string(unit) + ".in", "rb");
    FILE *out = open_or_die(std::string(unit) + ".out", "wb");
    for (unsigned n = 0; n < images; n++) {
        hls::stream<ap_uint<CFG::BITS> > s_in("in"), s_main("main"), s_short("short");
        for (unsigned k = 0; k < CFG::WORDS; k++) s_in.write(get_word<CFG::BITS>(in));
        clear<CFG, pascal::fork_stage>();
        pascal::fork<CFG>(s_in, s_main, s_short);
        report<CFG, pascal::fork_stage>(counters, unit, "fork", n);
        drain(s_main, out);
        drain(s_short, out);
    }
    fclose(in);
    fclose(out);
}

template <class CFG, typename TT, typename SMT, typename SST>
static void run_add(const char *unit, unsigned images, FILE *counters,
                    const TT thresholds[pascal::add_types<CFG>::NF][CFG::PE][CFG::T_OUT],
                    const SMT shift_main[pascal::add_types<CFG>::NF][CFG::PE],
                    const SST shift_short[pascal::add_types<CFG>::NF][CFG::PE]) {
    typedef pascal::add_types<CFG> TY;
    FILE *in = open_or_die(std::string(unit) + ".in", "rb");
    FILE *out = open_or_die(std::string(unit) + ".out", "wb");
    for (unsigned n = 0; n < images; n++) {
        hls::stream<typename TY::main_word> s_main("main");
        hls::stream<typename TY::short_word> s_short("shortcut");
        hls::stream<typename TY::out_word> s_out("out");
        for (unsigned k = 0; k < TY::PIXELS * TY::NF; k++)
            s_main.write(get_word<TY::MAIN_BITS>(in));
        for (unsigned k = 0; k < TY::PIXELS * TY::NF; k++)
            s_short.write(get_word<TY::SHORT_BITS>(in));
        clear<CFG, pascal::add_stage>();
        pascal::add_join<CFG>(s_main, s_short, s_out, thresholds, shift_main, shift_short);
        report<CFG, pascal::add_stage>(counters, unit, "add", n);
        drain(s_out, out);
    }
    fclose(in);
    fclose(out);
}

template <class CFG, typename WT>
static void run_acc(const char *unit, unsigned images, FILE *counters,
                    const WT weights[pascal::layer<CFG>::NF * pascal::layer<CFG>::SF][CFG::PE]
                                    [CFG::SIMD]) {
    typedef pascal::layer<CFG> L;
    FILE *in = open_or_die(std::string(unit) + ".in", "rb");
    FILE *out = open_or_die(std::string(unit) + ".out", "wb");
    for (unsigned n = 0; n < images; n++) {
        hls::stream<typename L::in_word> s_in("in");
        hls::stream<pascal::token<CFG> > s_tokens("tokens");
        hls::stream<typename pascal::accumulator_emitter<CFG>::word_t> s_out("out");
        for (unsigned k = 0; k < CFG::IN_H * CFG::IN_W * L::CF; k++)
            s_in.write(get_word<L::GROUP_BITS>(in));
        clear<CFG, pascal::feed_stage>();
        clear<CFG, pascal::mvu_stage>();
        pascal::window_generator<CFG>(s_in, s_tokens);
        pascal::mvu_accumulator<CFG>(s_tokens, s_out, weights);
        report<CFG, pascal::feed_stage>(counters, unit, "feed", n);
        report<CFG, pascal::mvu_stage>(counters, unit, "mvu", n);
        drain(s_out, out);
    }
    fclose(in);
    fclose(out);
}
"""


def int_bits(x):
    """Bits of the narrowest two's complement type that holds x."""
    x = int(x)
    return (x if x >= 0 else -x - 1).bit_length() + 1


def c_literal(v):
    v = int(v)
    return "(-9223372036854775807LL - 1)" if v == -(2 ** 63) else str(v)


def unit_text(values, per_line=16):
    flat = [c_literal(v) for v in np.asarray(values, dtype=object).reshape(-1)]
    return "\n".join(", ".join(flat[i:i + per_line]) + ("," if i + per_line < len(flat) else "")
                     for i in range(0, len(flat), per_line))


def join_fields(values, width):
    """Python ints -> one word: value i (two's complement, `width` bits) at bits [i*width, ..)."""
    word = 0
    for i, v in enumerate(values):
        word |= (int(v) & ((1 << width) - 1)) << (i * width)
    return word


def split_fields(word, width, count, signed=False):
    values = []
    for i in range(count):
        v = (int(word) >> (i * width)) & ((1 << width) - 1)
        if signed and v >> (width - 1):
            v -= 1 << width
        values.append(v)
    return values


def pack_words(words, bits):
    """Words (Python ints) -> uint32 little-endian chunks, ceil(bits / 32) per word."""
    n = (bits + 31) // 32
    chunks = []
    for w in words:
        w = int(w)
        assert 0 <= w < 1 << bits
        chunks += [(w >> (32 * j)) & 0xFFFFFFFF for j in range(n)]
    return np.array(chunks, dtype=np.uint32)


def read_streams(path, widths_per_image, images):
    """An output file of the unit program: per image, per stream, a count then the words."""
    data = np.fromfile(path, dtype=np.uint32)
    pos, result = 0, []
    for _ in range(images):
        streams = []
        for bits in widths_per_image:
            count = int(data[pos])
            pos += 1
            n = (bits + 31) // 32
            streams.append([sum(int(data[pos + i * n + j]) << (32 * j) for j in range(n))
                            for i in range(count)])
            pos += count * n
        result.append(streams)
    if pos != data.size:
        raise ValueError(f"{path}: {data.size - pos} trailing chunks")
    return result


def param_decl(name, values, bits, unsigned=False):
    """A parameter array as the generated code declares it (PASCAL_PARAM / PASCAL_UPARAM)."""
    values = np.asarray(values, dtype=object)
    low, high = int(values.min()), int(values.max())
    types = ((("unsigned char", 0, 2 ** 8), ("unsigned short", 0, 2 ** 16),
              ("unsigned int", 0, 2 ** 32)) if unsigned else
             (("signed char", -2 ** 7, 2 ** 7), ("short", -2 ** 15, 2 ** 15),
              ("int", -2 ** 31, 2 ** 31), ("long long", -2 ** 63, 2 ** 63)))
    name_c = next(t for t, lo, hi in types if lo <= low and high < hi)
    macro = "PASCAL_UPARAM" if unsigned else "PASCAL_PARAM"
    dims = "".join(f"[{d}]" for d in values.shape)
    return f"static const {macro}({bits}, {name_c}) {name}{dims} = {{\n{unit_text(values)}\n}};\n"


def cfg_struct(name, consts, types=None):
    lines = [f"struct {name} {{"]
    lines += [f"    static const unsigned {k} = {int(v)};" for k, v in consts.items()]
    lines += [f"    typedef {v} {k};" for k, v in (types or {}).items()]
    return "\n".join(lines) + "\n};\n"


def unit_fork(name, rng, bits):
    consts = dict(WORDS=int(rng.integers(1, 40)), BITS=bits)
    words = [[int.from_bytes(rng.bytes((bits + 7) // 8), "little") % (1 << bits)
              for _ in range(consts["WORDS"])] for _ in range(UNIT_IMAGES)]
    words[0][0] = (1 << bits) - 1
    inputs = pack_words([w for image in words for w in image], bits)
    n = consts["WORDS"]
    return dict(
        name=name, decl=cfg_struct(f"{name}_cfg", consts), inputs=inputs, widths=[bits, bits],
        call=f'run_fork<{name}_cfg>("{name}", {UNIT_IMAGES}, counters);',
        want=[[image, image] for image in words],
        counters={"fork": np.tile([n, n, n], (UNIT_IMAGES, 1))},
        summary=f"fork BITS={bits} WORDS={n}")


def unit_add(name, rng, sc_acc, fb_sc, wide):
    """add_join with random words, shifts 0..2^SH_BITS - 1 and thresholds (sentinels at both
    ends of ap_int<N_BITS>, values the data reach, values in between)."""
    pe, nf = int(rng.integers(1, 9)), int(rng.integers(1, 4))
    t_sc = int(rng.integers(2 if fb_sc == 1 and not sc_acc else 1, 7))  # spikes: T_SC >= 2
    c = dict(CH=pe * nf, OUT_H=int(rng.integers(1, 4)), OUT_W=int(rng.integers(1, 5)), PE=pe,
             ACC_BITS=int(rng.integers(2, 25)), SC_ACC=sc_acc, T_SC=t_sc,
             FB_SC=fb_sc, SC_BITS=int(rng.integers(2, 25)), N_BITS=0,
             T_OUT=int(rng.integers(1, 7)), SH_BITS=int(rng.integers(1, 4)))
    a_bits, s_bits, words = c["ACC_BITS"], c["SC_BITS"], c["OUT_H"] * c["OUT_W"] * nf
    top = 2 ** c["SH_BITS"] - 1
    sm = rng.integers(0, top + 1, (nf, pe))
    ss = rng.integers(0, top + 1, (nf, pe))
    sm[0, 0], ss[-1, -1] = top, top
    if sc_acc:
        v_lo, v_hi = -2 ** (s_bits - 1), 2 ** (s_bits - 1) - 1
    else:
        v_lo, v_hi = 0, c["T_SC"] * (2 ** fb_sc - 1)
    a_lo, a_hi = -2 ** (a_bits - 1), 2 ** (a_bits - 1) - 1
    n_hi = max((a_hi << int(m)) + (v_hi << int(s)) for m, s in zip(sm.flat, ss.flat))
    n_lo = min((a_lo << int(m)) + (v_lo << int(s)) for m, s in zip(sm.flat, ss.flat))
    n_bits = max(int_bits(n_hi), int_bits(n_lo))
    n_bits = 64 if wide else n_bits + int(rng.integers(0, 3))
    assert n_bits <= 64
    c["N_BITS"] = n_bits
    # data: accumulators anywhere in their range (extremes included), random shortcut words
    acc = rng.integers(a_lo, a_hi + 1, (UNIT_IMAGES, words, pe))
    acc[rng.random(acc.shape) < 0.1] = a_lo
    acc[rng.random(acc.shape) < 0.1] = a_hi
    if sc_acc:
        sc = rng.integers(v_lo, v_hi + 1, (UNIT_IMAGES, words, pe))
        sc[rng.random(sc.shape) < 0.1] = v_lo
        sc[rng.random(sc.shape) < 0.1] = v_hi
        v = sc
        short_words = [join_fields(sc[i, k], s_bits) for i in range(UNIT_IMAGES)
                       for k in range(words)]
        short_bits = pe * s_bits
    else:
        frames = rng.integers(0, 2 ** fb_sc, (UNIT_IMAGES, words, pe, c["T_SC"]))
        frames[0, 0] = 2 ** fb_sc - 1  # the largest level
        frames[rng.random(frames.shape[:3]) < 0.2] = 0
        v = frames.sum(axis=-1)
        short_words = [join_fields(frames[i, k].reshape(-1), fb_sc) for i in range(UNIT_IMAGES)
                       for k in range(words)]
        short_bits = pe * c["T_SC"] * fb_sc
    fold = np.arange(words) % nf
    n = np.zeros((UNIT_IMAGES, words, pe), dtype=object)
    for i in range(UNIT_IMAGES):
        for k in range(words):
            for p in range(pe):
                n[i, k, p] = ((int(acc[i, k, p]) << int(sm[fold[k], p])) +
                              (int(v[i, k, p]) << int(ss[fold[k], p])))
    assert n.min() >= -2 ** (n_bits - 1) and n.max() < 2 ** (n_bits - 1)
    # thresholds: per channel T_OUT picks among the sentinels, values n takes (equality),
    # those + 1 and random values of the range, sorted (a thermometer train)
    lo, hi = -2 ** (n_bits - 1), 2 ** (n_bits - 1) - 1
    th = np.zeros((nf, pe, c["T_OUT"]), dtype=object)
    for f in range(nf):
        for p in range(pe):
            seen = n[:, fold == f, p].reshape(-1)
            for t in range(c["T_OUT"]):
                kind = rng.random()
                if kind < 0.15:
                    th[f, p, t] = lo
                elif kind < 0.3:
                    th[f, p, t] = hi
                elif kind < 0.6:
                    th[f, p, t] = int(seen[rng.integers(0, seen.size)])
                elif kind < 0.7:
                    th[f, p, t] = int(seen[rng.integers(0, seen.size)]) + 1
                else:
                    th[f, p, t] = int(rng.integers(int(n_lo), int(n_hi) + 1))
            th[f, p] = sorted(th[f, p])
    th[0, 0, 0], th[-1, -1, -1] = lo, hi
    spikes = np.zeros((UNIT_IMAGES, words, pe, c["T_OUT"]), np.int64)
    for i in range(UNIT_IMAGES):
        for k in range(words):
            for p in range(pe):
                spikes[i, k, p] = [int(n[i, k, p] >= th[fold[k], p, t])
                                   for t in range(c["T_OUT"])]
    want = [[[join_fields(spikes[i, k].reshape(-1), 1) for k in range(words)]]
            for i in range(UNIT_IMAGES)]
    main_words = [join_fields(acc[i, k], a_bits) for i in range(UNIT_IMAGES) for k in range(words)]
    inputs = []
    for i in range(UNIT_IMAGES):
        inputs.append(pack_words(main_words[i * words:(i + 1) * words], pe * a_bits))
        inputs.append(pack_words(short_words[i * words:(i + 1) * words], short_bits))
    decl = (cfg_struct(f"{name}_cfg", c, {"thr_t": f"ap_int<{n_bits}>"}) +
            param_decl(f"{name}_thresholds", th, n_bits) +
            param_decl(f"{name}_shift_main", sm, c["SH_BITS"], unsigned=True) +
            param_decl(f"{name}_shift_short", ss, c["SH_BITS"], unsigned=True))
    return dict(
        name=name, decl=decl, inputs=np.concatenate(inputs), widths=[pe * c["T_OUT"]],
        call=(f'run_add<{name}_cfg>("{name}", {UNIT_IMAGES}, counters, {name}_thresholds, '
              f'{name}_shift_main, {name}_shift_short);'),
        want=want, counters={"add": np.tile([words, words, words], (UNIT_IMAGES, 1))},
        summary=(f"add SC_ACC={sc_acc} PE={pe} NF={nf} {c['OUT_H']}x{c['OUT_W']} "
                 f"ACC={a_bits} T_SC={c['T_SC']} FB_SC={fb_sc} SC_BITS={s_bits} "
                 f"N={n_bits} SH={c['SH_BITS']} T_OUT={c['T_OUT']}"))


def unit_acc(name, rng, k, stride, pad, fb, zs):
    """window_generator -> mvu_accumulator on a small convolution: every window's every fold."""
    simd, cf = int(rng.integers(1, 4)), int(rng.integers(1, 3))
    pe, nf = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    t_in = int(rng.integers(1, 4))
    h, w = int(rng.integers(3, 7)), int(rng.integers(3, 7))
    c_in, o = simd * cf, pe * nf
    oh, ow = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
    # input frames: thermometer trains (FB = 1) or multi-bit frames, sparse; image 2 is empty
    if fb == 1:
        level = rng.integers(0, t_in + 1, (UNIT_IMAGES, h, w, c_in))
        frames = (np.arange(t_in) < level[..., None]).astype(np.int64)
    else:
        frames = rng.integers(0, 2 ** fb, (UNIT_IMAGES, h, w, c_in, t_in))
    frames[rng.random(frames.shape[:4]) < 0.5] = 0
    frames[2 % UNIT_IMAGES] = 0
    level = frames.sum(axis=-1)
    wt = rng.integers(-(2 ** (WEIGHT_BITS - 1)), 2 ** (WEIGHT_BITS - 1), (o, k, k, c_in))
    matrix = wt.reshape(o, -1)                                    # (O, [ky, kx, c])
    sf = k * k * cf
    folded = matrix.reshape(nf, pe, sf, simd).transpose(0, 2, 1, 3).reshape(nf * sf, pe, simd)
    padded = np.zeros((UNIT_IMAGES, h + 2 * pad, w + 2 * pad, c_in), np.int64)
    padded[:, pad:pad + h, pad:pad + w] = level
    nz, active = group_activity(frames.reshape(UNIT_IMAGES, h * w, c_in, t_in), simd)
    nz, active = nz.reshape(UNIT_IMAGES, h, w, cf), active.reshape(UNIT_IMAGES, h, w, cf)
    acc = np.zeros((UNIT_IMAGES, oh, ow, o), np.int64)
    e_w = np.zeros((UNIT_IMAGES, oh, ow), np.int64)
    a_w = np.zeros((UNIT_IMAGES, oh, ow), np.int64)
    for oy in range(oh):
        for ox in range(ow):
            win = padded[:, oy * stride:oy * stride + k, ox * stride:ox * stride + k]
            acc[:, oy, ox] = win.reshape(UNIT_IMAGES, -1) @ matrix.T
            for ky in range(k):
                for kx in range(k):
                    iy, ix = oy * stride - pad + ky, ox * stride - pad + kx
                    if 0 <= iy < h and 0 <= ix < w:
                        e_w[:, oy, ox] += nz[:, iy, ix].sum(axis=-1)
                        a_w[:, oy, ox] += active[:, iy, ix].sum(axis=-1)
    if not zs:
        e_w[:], a_w[:] = sf, sf * t_in
    bound = int(np.abs(matrix).sum(axis=1).max()) * t_in * (2 ** fb - 1)
    acc_bits = int_bits(bound) + int(rng.integers(0, 2))
    windows = oh * ow
    feed_r = h * w * cf
    feed_w = (e_w + 1).reshape(UNIT_IMAGES, -1).sum(axis=1)
    counters = {
        "feed": np.stack([np.full(UNIT_IMAGES, feed_r), feed_w, feed_r + feed_w], 1),
        "mvu": np.stack([feed_w, np.full(UNIT_IMAGES, windows * nf),
                         (nf * (a_w + 1)).reshape(UNIT_IMAGES, -1).sum(axis=1)], 1)}
    want = [[[join_fields(acc[i].reshape(windows, nf, pe)[wi, f], acc_bits)
              for wi in range(windows) for f in range(nf)]] for i in range(UNIT_IMAGES)]
    words = [join_fields(frames[i].reshape(h * w, cf, simd * t_in)[p, g], fb)
             for i in range(UNIT_IMAGES) for p in range(h * w) for g in range(cf)]
    consts = dict(IN_CH=c_in, IN_H=h, IN_W=w, OUT_CH=o, OUT_H=oh, OUT_W=ow, K=k, STRIDE=stride,
                  PAD=pad, T_IN=t_in, FB=fb, T_OUT=1, PE=pe, SIMD=simd, ZERO_SKIP=zs)
    decl = (cfg_struct(f"{name}_cfg", consts, {"weight_t": f"ap_int<{WEIGHT_BITS}>",
                                                "acc_t": f"ap_int<{acc_bits}>"}) +
            param_decl(f"{name}_weights", folded, WEIGHT_BITS))
    return dict(
        name=name, decl=decl, inputs=pack_words(words, simd * t_in * fb),
        widths=[pe * acc_bits], call=f'run_acc<{name}_cfg>("{name}", {UNIT_IMAGES}, counters, '
                                     f'{name}_weights);',
        want=want, counters=counters,
        summary=(f"mvu_accumulator {c_in}x{h}x{w} -> {o}x{oh}x{ow} K={k} S={stride} P={pad} "
                 f"PE={pe} SIMD={simd} T_IN={t_in} FB={fb} ZS={zs} ACC={acc_bits}"))


def unit_specs(rng):
    units = [unit_fork(f"fork{i}", rng, bits) for i, bits in
             enumerate((1, int(rng.integers(2, 65)), int(rng.integers(65, 700))))]
    # add_join: identity shortcuts of spikes (FB_SC = 1) and of multi-bit frames, projections;
    # add5 has N_BITS = 64 (thresholds at the ends of long long)
    for i, (sc_acc, fb_sc) in enumerate([(0, 1), (1, 1), (0, int(rng.integers(2, 5))), (1, 1),
                                         (0, int(rng.integers(1, 5))), (1, 1)]):
        units.append(unit_add(f"add{i}", rng, sc_acc, fb_sc, wide=i == 5))
    # mvu_accumulator: a 3x3 main-path conv (zero-skip, spikes), a 1x1 stride-2 projection
    # (dense, multi-bit frames), a 3x3 stride-2 conv with padding (zero-skip, rows drained)
    units.append(unit_acc("acc0", rng, 3, 1, 1, 1, 1))
    units.append(unit_acc("acc1", rng, 1, 2, 0, 2, 0))
    units.append(unit_acc("acc2", rng, 3, 2, 1, 1, 1))
    return units


def check_units(ap_types, keep="", library=LIBRARY, seed=0):
    """Build and run the stage unit tests; a list of failures (empty: all match)."""
    rng = np.random.default_rng(seed)
    units = unit_specs(rng)
    if keep:
        work = Path(keep) / UNITS
        if work.exists():
            if not (work / MARKER).is_file():
                raise SystemExit(f"selftest: {work} exists and was not made by the self-test; "
                                 f"choose another --keep folder")
            shutil.rmtree(work)
        work.mkdir(parents=True)
        (work / MARKER).write_text("made by pascal-fpga's HLS self-test\n")
    else:
        work = Path(tempfile.mkdtemp(prefix="pascal-selftest-units-"))
    try:
        (work / "include" / "pascal").mkdir(parents=True)
        for header in Path(library).glob("*.h"):
            shutil.copy(header, work / "include" / "pascal" / header.name)
        source = [UNIT_MAIN]
        for unit in units:
            source.append(f"// {unit['summary']}\n{unit['decl']}")
            unit["inputs"].tofile(work / f"{unit['name']}.in")
        source.append("int main() {\n    FILE *counters = open_or_die(\"counters.txt\", \"w\");\n")
        source += [f"    {unit['call']}\n" for unit in units]
        source.append("    fclose(counters);\n    return 0;\n}\n")
        (work / "units.cpp").write_text("\n".join(source))
        start = time.time()
        cxx = os.environ.get("CXX", "g++")
        built = subprocess.run([cxx, "-O1", "-std=c++14",
                                "-DPASCAL_LOOP_COUNTERS",
                                "-Iinclude", "-isystem", str(ap_types), "units.cpp", "-o",
                                "units"], cwd=work, capture_output=True, text=True)
        if built.returncode:
            return [f"units: build failed:\n{built.stdout}\n{built.stderr[-5000:]}"]
        if "warning" in built.stderr:
            return [f"units: compiler warnings:\n{built.stderr[-5000:]}"]
        build_s = time.time() - start
        run = subprocess.run(["./units"], cwd=work, capture_output=True, text=True)
        if run.returncode or "WARNING" in run.stdout:
            return [f"units: run failed ({run.returncode}):\n{run.stdout[-3000:]}\n{run.stderr}"]
        got_counters = {}
        for line in (work / "counters.txt").read_text().splitlines():
            name, stage, image, reads, writes, slots = line.split()
            got_counters.setdefault((name, stage), {})[int(image)] = (
                int(reads), int(writes), int(slots))
        failures = []
        for unit in units:
            got = read_streams(work / f"{unit['name']}.out", unit["widths"], UNIT_IMAGES)
            for i, (g_image, w_image) in enumerate(zip(got, unit["want"])):
                for s, (g, w) in enumerate(zip(g_image, w_image)):
                    if g != w:
                        bad = next((j for j, (a, b) in enumerate(zip(g, w)) if a != b),
                                   min(len(g), len(w)))
                        failures.append(f"{unit['name']} ({unit['summary']}), image {i}, output "
                                        f"{s}: {len(g)} words (want {len(w)}), first difference "
                                        f"at word {bad}")
                        break
            for stage, want in unit["counters"].items():
                have = got_counters.get((unit["name"], stage), {})
                g = np.array([have.get(i, (-1, -1, -1)) for i in range(UNIT_IMAGES)])
                if not np.array_equal(g, want):
                    i = int(np.argwhere((g != want).any(axis=1))[0][0])
                    failures.append(f"counters of {unit['name']} {stage} ({unit['summary']}), "
                                    f"image {i}: got {tuple(map(int, g[i]))}, want "
                                    f"{tuple(map(int, want[i]))}")
        print(f"  {UNITS}: built in {build_s:.1f} s; {len(units)} stage units, {UNIT_IMAGES} "
              f"images each (seed {seed}):")
        for unit in units:
            print(f"     {unit['name']}: {unit['summary']}")
        return failures
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)


def main(argv=None):
    default_ap = (Path(sys.prefix) / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}"
                  / "site-packages" / "hls4ml" / "templates" / "vivado" / "ap_types")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", default=",".join([*CONFIGS, UNITS]),
                        help=f"networks {','.join(CONFIGS)} and {UNITS} (the stage unit tests)")
    parser.add_argument("--images", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0, help="the unit tests' random configs")
    parser.add_argument("--keep", default="")
    parser.add_argument("--library", default=str(LIBRARY),
                        help="the folder of the library headers (to test a modified copy)")
    parser.add_argument("--ap-types", default=os.environ.get("AP_TYPES", str(default_ap)))
    args = parser.parse_args(argv)
    status = 0
    for name in args.configs.split(","):
        if name == UNITS:
            failures = check_units(args.ap_types, args.keep, args.library, args.seed)
            what = "fork, add_join, mvu_accumulator: outputs and counters match exactly"
        else:
            failures, _ = check(name, CONFIGS[name], args.images, args.ap_types, args.keep,
                                args.library)
            what = "outputs, every tap and every stage's counters match exactly"
        if failures:
            status = 1
            print(f"FAIL {name}:")
            for failure in failures:
                print("   ", failure)
        else:
            print(f"ok   {name}: {what}")
    return status


if __name__ == "__main__":
    sys.exit(main())
