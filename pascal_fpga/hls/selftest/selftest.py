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

    .venv/bin/python hls/selftest/selftest.py [--configs A,B] [--keep DIR] [--images N]
        [--ap-types DIR] [--library DIR]

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
    context = dict(
        name="selftest", part="xc7z020clg400-1", clock_mhz=100.0, clock_ns="10.000",
        input=dict(channels=ch, bits=BITS, height=HEIGHT, width=WIDTH, pixels=pixels,
                   axi_bits=8 * ((ch * BITS + 7) // 8), word_bits=ch * BITS, group=group),
        classes=classes, acc_bits=acc_bits, classifier_pe=pe_cls, sample_images=n_img,
        configs=cfgs, arrays=arrays, stages=stages, fifos=fifos, taps=taps)
    return context, ref_taps, outputs, counters


def render(context, out: Path, library=LIBRARY):
    """The project as ``pascal-fpga compile`` renders it (the same function)."""
    from pascal_fpga.hw.hls import render_project

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


def main(argv=None):
    default_ap = (Path(sys.prefix) / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}"
                  / "site-packages" / "hls4ml" / "templates" / "vivado" / "ap_types")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument("--images", type=int, default=12)
    parser.add_argument("--keep", default="")
    parser.add_argument("--library", default=str(LIBRARY),
                        help="the folder of the library headers (to test a modified copy)")
    parser.add_argument("--ap-types", default=os.environ.get("AP_TYPES", str(default_ap)))
    args = parser.parse_args(argv)
    status = 0
    for name in args.configs.split(","):
        failures, _ = check(name, CONFIGS[name], args.images, args.ap_types, args.keep,
                             args.library)
        if failures:
            status = 1
            print(f"FAIL {name}:")
            for failure in failures:
                print("   ", failure)
        else:
            print(f"ok   {name}: outputs, every tap and every stage's counters match exactly")
    return status


if __name__ == "__main__":
    sys.exit(main())
