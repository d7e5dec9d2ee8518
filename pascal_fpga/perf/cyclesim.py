"""The cycle-accurate model of the generated design (DESIGN.md 4), at the granularity of stream
transactions.

**Schedule.** Each stage of the DATAFLOW region (``pascal_top.cpp``) runs the loops of its library
template (``hls/include/pascal/``), and this module writes them down as a program of stream
transactions per image:

- ``read_pixels``: PIXELS iterations, each writes one word (the AXI input is always ready);
- convolution / pooling, per output row: read the input rows the window needs (IN_W iterations
  each, one read per cycle), then per output pixel a compute loop of NF * SF * T_IN iterations
  (pooling: NF * K * K) and one write; at the end the rows below the last window are drained;
- dense / classifier: IN_PIX reads, NF * SF * T_IN compute iterations, one write;
- ``write_classes``: one read, CLASSES + 1 output words.

Every pipelined loop runs at II = 1 and costs ``LOOP_OVERHEAD`` extra cycles per entry (its
pipeline fill; an assumption, as no synthesis report is available here), a stream statement
outside a loop one cycle. Stages start the next image as soon as they finish one (dataflow
overlap between images). A FIFO of depth D holds D words: a read at cycle t needs the word written
at t - 1 or earlier; a write at t needs the word D places ahead to have been read at t - 1 or
earlier (back-pressure). The timing does not depend on the data, so it is simulated for a few
images (until the interval between images repeats) and holds for every image.

**Values.** Independently of the IR's code, the model computes each stage's output words the way
the hardware does: per input timestep (frame), from pixel-major words, with the weights and
thresholds as packed for PE and SIMD (:mod:`.hls`). Its per-layer levels, accumulators and
classes are compared with the IR by ``verify`` (``cyclesim_vs_ir``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import PascalError
from ..hw.hls import OUTPUT_FIFO_DEPTH, HLSLayer

LOOP_OVERHEAD = 2          # extra cycles per pipelined loop entry (pipeline depth 3, II = 1)
UNBOUNDED = 1 << 40        # a FIFO depth that never blocks
TIMED_IMAGES = 4


# --- the schedule -------------------------------------------------------------------------------

@dataclass
class Stage:
    """One stage's program for one image: ops ('R', n) n reads, ('W', n) n writes (one per cycle),
    ('C', n) n busy cycles; and its loop iteration counts (as the C simulation counts them)."""

    name: str
    ops: list[tuple[str, int]]
    iterations: dict[str, int]
    busy: int = 0

    def __post_init__(self):
        self.busy = sum(n for _, n in self.ops)


def _window_program(layer: HLSLayer, compute: int) -> Stage:
    cfg = layer.cfg
    k, stride, pad = cfg["K"], cfg["STRIDE"], cfg.get("PAD", 0)
    in_h, in_w, out_h, out_w = cfg["IN_H"], cfg["IN_W"], cfg["OUT_H"], cfg["OUT_W"]
    ops: list[tuple[str, int]] = []
    rows_read = 0
    reads = 0
    for oy in range(out_h):
        need = min(oy * stride - pad + k, in_h)
        while rows_read < need:
            ops += [("R", in_w), ("C", LOOP_OVERHEAD)]
            rows_read += 1
            reads += in_w
        for _ in range(out_w):
            ops += [("C", compute + LOOP_OVERHEAD), ("W", 1)]
    while rows_read < in_h:
        ops += [("R", in_w), ("C", LOOP_OVERHEAD)]
        rows_read += 1
        reads += in_w
    return Stage(layer.name, _merge(ops), {"read": reads, "compute": out_h * out_w * compute,
                                           "write": 0})


def _merge(ops: list[tuple[str, int]]) -> list[tuple[str, int]]:
    merged: list[tuple[str, int]] = []
    for kind, n in ops:
        if n == 0:
            continue
        if merged and merged[-1][0] == kind:
            merged[-1] = (kind, merged[-1][1] + n)
        else:
            merged.append((kind, n))
    return merged


def layer_program(layer: HLSLayer) -> Stage:
    cfg = layer.cfg
    if layer.kind == "conv":
        nf, sf = cfg["OUT_CH"] // cfg["PE"], cfg["K"] ** 2 * cfg["IN_CH"] // cfg["SIMD"]
        return _window_program(layer, nf * sf * cfg["T_IN"])
    if layer.kind == "pool":
        return _window_program(layer, cfg["CH"] // cfg["PE"] * cfg["K"] ** 2)
    nf = cfg["OUT_CH"] // cfg["PE"]
    sf = cfg["IN_PIX"] * cfg["IN_CH"] // cfg["SIMD"]
    compute = nf * sf * cfg["T_IN"]
    ops = [("R", cfg["IN_PIX"]), ("C", LOOP_OVERHEAD + compute + LOOP_OVERHEAD), ("W", 1)]
    return Stage(layer.name, ops, {"read": cfg["IN_PIX"], "compute": compute, "write": 0})


def design_programs(layers: list[HLSLayer], pixels: int) -> list[Stage]:
    """The stages of the DATAFLOW region in order: input adapter, layers, output adapter."""
    classes = layers[-1].out_channels
    stages = [Stage("input", [("W", pixels), ("C", LOOP_OVERHEAD)],
                    {"read": pixels, "compute": 0, "write": 0})]
    stages += [layer_program(layer) for layer in layers]
    stages.append(Stage("output", [("R", 1), ("C", classes + 1 + LOOP_OVERHEAD)],
                        {"read": 0, "compute": 0, "write": classes + 1}))
    return stages


@dataclass
class Timing:
    images: int
    depths: list[int]                       # FIFO i connects stage i to stage i + 1
    finish: list[list[int]]                 # per stage, the cycle each image's program ended
    max_occupancy: list[int]
    stall: list[int]                        # cycles each stage spent blocked, over all images
    deadlock: bool = False

    @property
    def latency(self) -> int:
        """Cycles from the first input word to the end of the first image's output."""
        return self.finish[-1][0]

    @property
    def interval(self) -> int:
        """Steady-state cycles per image: between the last two images' outputs."""
        ends = self.finish[-1]
        return ends[-1] - ends[-2] if len(ends) > 1 else ends[0]


def simulate_timing(stages: list[Stage], images: int, depths: list[int]) -> Timing:
    """The transaction-level simulation of ``images`` images through the stages (see the module
    docstring); exact for the schedule, with back-pressure."""
    count = len(stages)
    fifos = count - 1
    writes: list[list[int]] = [[] for _ in range(fifos)]
    reads: list[list[int]] = [[] for _ in range(fifos)]
    time = [0] * count
    op_index = [0] * count
    image = [0] * count
    left = [stages[s].ops[0][1] for s in range(count)]
    finish: list[list[int]] = [[] for _ in range(count)]
    stall = [0] * count
    done = [False] * count
    while not all(done):
        progress = False
        for s in range(count):
            if done[s]:
                continue
            ops = stages[s].ops
            while True:
                kind, n = ops[op_index[s]]
                if kind == "C":
                    time[s] += left[s]
                    left[s] = 0
                elif kind == "R":
                    queue_w, queue_r = writes[s - 1], reads[s - 1]
                    while left[s]:
                        k = len(queue_r)
                        if k >= len(queue_w):
                            break
                        t = max(time[s], queue_w[k] + 1)
                        stall[s] += t - time[s]
                        queue_r.append(t)
                        time[s] = t + 1
                        left[s] -= 1
                        progress = True
                else:  # W
                    queue_w, queue_r, depth = writes[s], reads[s], depths[s]
                    while left[s]:
                        k = len(queue_w)
                        t = time[s]
                        if k >= depth:
                            if len(queue_r) <= k - depth:
                                break
                            t = max(t, queue_r[k - depth] + 1)
                        stall[s] += t - time[s]
                        queue_w.append(t)
                        time[s] = t + 1
                        left[s] -= 1
                        progress = True
                if left[s]:
                    break  # blocked on a FIFO
                op_index[s] += 1
                progress = True
                if op_index[s] == len(ops):
                    finish[s].append(time[s])
                    image[s] += 1
                    op_index[s] = 0
                    if image[s] == images:
                        done[s] = True
                        break
                left[s] = ops[op_index[s]][1]
        if not progress:
            return Timing(images, depths, finish, [0] * fifos, stall, deadlock=True)
    occupancy = []
    for f in range(fifos):
        w = np.asarray(writes[f])
        r = np.asarray(reads[f])
        # words in the FIFO just after each write: written so far minus read before that cycle
        inside = np.arange(1, len(w) + 1) - np.searchsorted(r, w, side="left")
        occupancy.append(int(inside.max()) if len(w) else 0)
    return Timing(images, depths, finish, occupancy, stall)


def fifo_depths(stages: list[Stage], images: int = TIMED_IMAGES) -> list[int]:
    """The smallest FIFO depths (at least 2) that keep the first image's latency and the
    steady-state interval of unbounded FIFOs. With unbounded FIFOs the largest occupancy seen is
    an upper bound, but a stage ahead of a slower one (the input adapter before the first layer)
    fills its FIFO with every image it is given; each FIFO is shrunk in turn (a binary search; a
    deeper FIFO never slows the design) while the timing stays that of unbounded FIFOs. The
    classifier's FIFO to the output adapter (one word per image) gets 2."""
    fifos = len(stages) - 1
    free = simulate_timing(stages, images, [UNBOUNDED] * fifos)
    goal = (free.latency, free.interval)
    depths = [max(2, occ) for occ in free.max_occupancy]
    depths[-1] = OUTPUT_FIFO_DEPTH

    def keeps(candidate: list[int]) -> bool:
        timing = simulate_timing(stages, images, candidate)
        return not timing.deadlock and (timing.latency, timing.interval) == goal

    if not keeps(depths):  # the output FIFO held more than the classifier's single word
        depths[-1] = max(2, free.max_occupancy[-1])
    for f in range(fifos):
        low, high = 2, depths[f]
        while low < high:
            middle = (low + high) // 2
            if keeps(depths[:f] + [middle] + depths[f + 1:]):
                high = middle
            else:
                low = middle + 1
        depths[f] = high
    return depths


# --- the values --------------------------------------------------------------------------------

def _matrix(layer: HLSLayer) -> np.ndarray:
    """The packed weights [NF * SF][PE][SIMD] back to (OUT, FANIN) in the kernel's input order."""
    folded = layer.params["weights"].astype(np.float64)
    nfsf, pe, simd = folded.shape
    nf = layer.out_channels // pe
    sf = nfsf // nf
    return folded.reshape(nf, sf, pe, simd).transpose(0, 2, 1, 3).reshape(nf * pe, sf * simd)


def _weights(layer: HLSLayer) -> tuple[np.ndarray, type]:
    """The (FANIN, OUT) weight matrix, in float32 when every accumulator fits 24 bits (exact),
    else float64 (exact below 2^53)."""
    dtype = np.float32 if layer.acc_bits <= 24 else np.float64
    return _matrix(layer).T.astype(dtype), dtype


def _rows(layer: HLSLayer, role: str) -> np.ndarray:
    table = layer.params[role].astype(np.float64)
    return table.reshape((layer.out_channels,) + table.shape[2:])


def _windows(grid: np.ndarray, k: int, stride: int, pad: int, out_h: int, out_w: int
             ) -> np.ndarray:
    """(N, H, W, C) one frame of a pixel-major map -> (N, OUT_H * OUT_W, K * K * C): each output
    pixel's window, tap (ky, kx) major, channel minor (zero padding)."""
    n, _, _, c = grid.shape
    if pad:
        grid = np.pad(grid, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    view = np.lib.stride_tricks.sliding_window_view(grid, (k, k), axis=(1, 2))
    view = view[:, :stride * (out_h - 1) + 1:stride, :stride * (out_w - 1) + 1:stride]
    # (N, OUT_H, OUT_W, C, K, K) -> (N, OUT_H, OUT_W, K, K, C)
    return view.transpose(0, 1, 2, 4, 5, 3).reshape(n, out_h * out_w, k * k * c)


def _emit(acc: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Thermometer frames: frame k of channel o is acc >= T[o][k]. acc (..., OUT)."""
    return (acc[..., None] >= thresholds).astype(np.float32)


CHUNK = 64  # images per step of the datapath (bounds the memory of the window arrays)


def run_values(layers: list[HLSLayer], images: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """(accumulators (N, classes), classes (N,), each layer's levels (N, pixels * channels) in
    stream order) for raw images (N, C, H, W), stage by stage and frame by frame."""
    parts = [_run_chunk(layers, images[i:i + CHUNK]) for i in range(0, len(images), CHUNK)]
    acc = np.concatenate([p[0] for p in parts])
    levels = {name: np.concatenate([p[1][name] for p in parts]) for name in parts[0][1]}
    return acc, acc.argmax(axis=1), levels


def _run_chunk(layers: list[HLSLayer], images: np.ndarray
               ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    n, c, h, w = images.shape
    # frames: (N, H, W, C, T) pixel-major, each channel's frames last; float32 holds every value
    # and every partial sum exactly while the layer's accumulators stay below 2^24 (checked)
    frames = images.transpose(0, 2, 3, 1)[..., None].astype(np.float32)
    levels: dict[str, np.ndarray] = {}
    for layer in layers:
        cfg = layer.cfg
        if layer.kind in ("conv", "pool"):
            k, stride, pad = cfg["K"], cfg["STRIDE"], cfg.get("PAD", 0)
            out_h, out_w = cfg["OUT_H"], cfg["OUT_W"]
            if layer.kind == "pool":
                outs = []
                for t in range(frames.shape[-1]):
                    win = _windows(frames[..., t], k, stride, 0, out_h, out_w)
                    win = win.reshape(n, out_h * out_w, k * k, -1)
                    outs.append(win.sum(axis=2) if cfg["SUM"] else win.max(axis=2))
                frames = np.stack(outs, axis=-1).reshape(n, out_h, out_w, -1, len(outs))
            else:
                weights, dtype = _weights(layer)
                frames = frames.astype(dtype)
                acc = np.zeros((n, out_h * out_w, layer.out_channels), dtype=dtype)
                for t in range(cfg["T_IN"]):  # one pass over the window per input frame
                    acc += _windows(frames[..., t], k, stride, pad, out_h, out_w) @ weights
                frames = _emit(np.rint(acc).astype(np.float64), _rows(layer, "thresholds"))
                frames = frames.reshape(n, out_h, out_w, layer.out_channels, -1)
        else:
            weights, dtype = _weights(layer)
            flat = frames.reshape(n, -1, frames.shape[-1]).astype(dtype)  # stream order
            acc = np.zeros((n, layer.out_channels), dtype=dtype)
            for t in range(cfg["T_IN"]):
                acc += flat[..., t] @ weights
            acc = np.rint(acc).astype(np.float64)
            if layer.kind == "classifier":
                acc = (acc + _rows(layer, "bias")).astype(np.int64)
                levels[layer.name] = acc
                return acc, levels
            frames = _emit(acc, _rows(layer, "thresholds"))[:, None, None]
        levels[layer.name] = np.rint(frames.sum(axis=-1)).astype(np.int64).reshape(n, -1)
    raise PascalError("the design has no classifier")


# --- the whole model ---------------------------------------------------------------------------

@dataclass
class CycleReport:
    accumulators: np.ndarray
    classes: np.ndarray
    levels: dict[str, np.ndarray]
    stages: list[Stage]
    timing: Timing
    clock_mhz: float

    def summary(self) -> dict[str, Any]:
        t = self.timing
        per_second = self.clock_mhz * 1e6 / t.interval
        return {
            "clock_mhz": self.clock_mhz,
            "timed_images": t.images,
            "latency_cycles": t.latency,
            "latency_us": t.latency / self.clock_mhz,
            "cycles_per_image": t.interval,
            "fps": per_second,
            "fifo_depths": t.depths,
            "fifo_max_occupancy": t.max_occupancy,
            "stages": [{"stage": s.name, "busy_cycles": s.busy, "iterations": s.iterations,
                        "stall_cycles": stall // t.images}
                       for s, stall in zip(self.stages, t.stall)],
        }


def design_depths(layers: list[HLSLayer]) -> list[int]:
    """The FIFO depths of a design as generated: each layer's input FIFO, then the output one."""
    return [layer.fifo_depth for layer in layers] + [OUTPUT_FIFO_DEPTH]


def cycle_model(layers: list[HLSLayer], images: np.ndarray, clock_mhz: float,
                depths: list[int] | None = None, timed_images: int = TIMED_IMAGES) -> CycleReport:
    """Outputs and timing of the design on raw images (N, C, H, W), with the design's FIFO depths
    (or ``depths``)."""
    n, c, h, w = images.shape
    stages = design_programs(layers, h * w)
    if depths is None:
        depths = design_depths(layers)
    if len(depths) != len(stages) - 1:
        raise PascalError(f"{len(depths)} FIFO depths for {len(stages) - 1} FIFOs")
    timing = simulate_timing(stages, max(2, min(timed_images, max(n, 2))), depths)
    if timing.deadlock:
        raise PascalError("the design deadlocks with FIFO depths " + str(depths))
    acc, classes, levels = run_values(layers, images)
    return CycleReport(acc, classes, levels, stages, timing, clock_mhz)
