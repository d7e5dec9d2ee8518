"""The cycle model's values: each stage's output computed the way the hardware computes it.

Independently of the IR's code, frame by frame from pixel-major frames, with the weights and
thresholds as the hardware layer classes pack them for PE and SIMD (:mod:`pascal_fpga.hw.layers`).
Its per-layer levels, accumulators and classes are compared with the IR by ``verify``
(``cyclesim_vs_ir``). On the way it records each weighted layer's input activity per channel
(a thermometer train's level: its spike-carrying frames), from which the zero-skipping schedule
takes each token's cost.
"""

from __future__ import annotations

import numpy as np

from ..errors import PascalError
from ..hw.layers import AddLayer, ClassifierLayer, ConvAccLayer, ConvLayer, Design, ForkLayer, \
    PoolLayer

CHUNK = 64  # images per step of the datapath (bounds the memory of the window arrays)


def _matrix(layer) -> np.ndarray:
    """The packed weights [NF * SF][PE][SIMD] back to (OUT, FANIN) in the input vector's order."""
    folded = layer.arrays()["weights"].astype(np.float64)
    nfsf, pe, simd = folded.shape
    nf = layer.out_channels // pe
    sf = nfsf // nf
    return folded.reshape(nf, sf, pe, simd).transpose(0, 2, 1, 3).reshape(nf * pe, sf * simd)


def _weights(layer) -> tuple[np.ndarray, type]:
    """The (FANIN, OUT) weight matrix, in float32 when every accumulator fits 24 bits (exact),
    else float64 (exact below 2^53)."""
    dtype = np.float32 if layer.acc_bits <= 24 else np.float64
    return _matrix(layer).T.astype(dtype), dtype


def _rows(layer, role: str) -> np.ndarray:
    table = layer.arrays()[role].astype(np.float64)
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
    return view.transpose(0, 1, 2, 4, 5, 3).reshape(n, out_h * out_w, k * k * c)


def _emit(acc: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Thermometer frames: frame k of channel o is acc >= T[o][k]. acc (..., OUT)."""
    return (acc[..., None] >= thresholds).astype(np.float32)


class _Packed:
    """A layer's unpacked parameters, computed once for all chunks."""

    def __init__(self, layer):
        self.layer = layer
        if isinstance(layer, (PoolLayer, ForkLayer)):
            return
        if isinstance(layer, AddLayer):
            self.table = _rows(layer, "thresholds")
            self.shifts = (_rows(layer, "shift_main").astype(np.int64),
                           _rows(layer, "shift_short").astype(np.int64))
            return
        self.weights, self.dtype = _weights(layer)
        role = "bias" if isinstance(layer, (ClassifierLayer, ConvAccLayer)) else "thresholds"
        self.table = _rows(layer, role)


def run_values(design: Design, images: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(accumulators (N, classes), classes (N,), each layer's levels (N, pixels * channels) in
    stream order, each weighted layer's input activity per channel (N, H, W, C)) for raw images
    (N, C, H, W), stage by stage and frame by frame."""
    packed = [_Packed(layer) for layer in design.layers]
    parts = [_run_chunk(packed, images[i:i + CHUNK], design.input_tensor)
             for i in range(0, len(images), CHUNK)]
    acc = np.concatenate([p[0] for p in parts])
    levels = {name: np.concatenate([p[1][name] for p in parts]) for name in parts[0][1]}
    lanes = {name: np.concatenate([p[2][name] for p in parts]) for name in parts[0][2]}
    return acc, acc.argmax(axis=1), levels, lanes


def _run_chunk(packed: list[_Packed], images: np.ndarray, input_tensor: str | None = None):
    n = len(images)
    # frames: (N, H, W, C, T) pixel-major, each channel's frames last; float32 holds every value
    # and every partial sum exactly while the layer's accumulators stay below 2^24 (checked).
    # Streams by tensor name (a residual block reads one stream twice, an add two streams);
    # accumulator streams (a block's conv2 and projection) are int64 (N, H, W, C).
    frames = np.asarray(images).transpose(0, 2, 3, 1)[..., None].astype(np.float32)
    streams: dict[str, np.ndarray] = {}
    if input_tensor is not None:
        streams[input_tensor] = frames
    levels: dict[str, np.ndarray] = {}
    lanes: dict[str, np.ndarray] = {}
    for item in packed:
        layer = item.layer
        if input_tensor is not None:
            frames = streams[layer.inputs[0]]
        if isinstance(layer, ForkLayer):
            for name in layer.outputs:
                streams[name] = frames
            continue
        if isinstance(layer, AddLayer):
            main = frames.astype(np.int64)
            short = streams[layer.inputs[1]]
            v = short.astype(np.int64) if layer.short_acc else \
                np.rint(short.sum(axis=-1)).astype(np.int64)
            total = (main << item.shifts[0]) + (v << item.shifts[1])
            frames = (total[..., None] >= item.table).astype(np.float32)
            levels[layer.name] = np.rint(frames.sum(axis=-1)).astype(np.int64).reshape(n, -1)
            streams[layer.outputs[0]] = frames
            continue
        if isinstance(layer, PoolLayer):
            k, stride = layer.kernel, layer.stride
            outs = []
            for t in range(frames.shape[-1]):
                win = _windows(frames[..., t], k, stride, 0, layer.out_h, layer.out_w)
                win = win.reshape(n, layer.out_h * layer.out_w, k * k, -1)
                outs.append(win.sum(axis=2) if layer.sum else win.max(axis=2))
            frames = np.stack(outs, axis=-1).reshape(n, layer.out_h, layer.out_w, -1, len(outs))
        else:
            lanes[layer.name] = layer.lane_activity(frames)
            frames = frames.astype(item.dtype)
            if isinstance(layer, ConvLayer):
                acc = np.zeros((n, layer.windows, layer.out_channels), dtype=item.dtype)
                for t in range(layer.t_in):  # one pass over the window per input frame
                    windows = _windows(frames[..., t], layer.kernel, layer.stride, layer.pad,
                                       layer.out_h, layer.out_w)
                    # one 2-D product (numpy's stacked 3-D matmul is several times slower)
                    acc += (windows.reshape(-1, windows.shape[-1]) @ item.weights).reshape(
                        acc.shape)
            else:
                flat = frames.reshape(n, -1, frames.shape[-1])  # stream order
                acc = np.zeros((n, 1, layer.out_channels), dtype=item.dtype)
                for t in range(layer.t_in):
                    acc[:, 0] += flat[..., t] @ item.weights
            acc = np.rint(acc).astype(np.float64)
            if isinstance(layer, ConvAccLayer):
                acc = acc.astype(np.int64).reshape(n, layer.out_h, layer.out_w, -1)
                levels[layer.name] = acc.reshape(n, -1)
                streams[layer.outputs[0]] = acc
                continue
            if isinstance(layer, ClassifierLayer):
                acc = (acc[:, 0] + item.table).astype(np.int64)
                levels[layer.name] = acc
                return acc, levels, lanes
            frames = _emit(acc, item.table).reshape(n, layer.out_h, layer.out_w,
                                                   layer.out_channels, -1)
        levels[layer.name] = np.rint(frames.sum(axis=-1)).astype(np.int64).reshape(n, -1)
        streams[layer.outputs[0]] = frames
    raise PascalError("the design has no classifier")
