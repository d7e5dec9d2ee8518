"""The cycle model's values: each stage's output computed the way the hardware computes it.

Independently of the IR's code, frame by frame from pixel-major frames, with the weights and
thresholds as the hardware layer classes pack them for PE and SIMD: each class computes its own
stage (:meth:`pascal_fpga.hw.layers.HWLayer.values`); this module runs them in dataflow order.
Its per-layer levels, accumulators and classes are compared with the IR by ``verify``
(``cyclesim_vs_ir``). On the way it records each weighted layer's input activity per channel
(a thermometer train's level: its spike-carrying frames), from which the zero-skipping schedule
takes each token's cost.
"""

from __future__ import annotations

import numpy as np

from ..errors import PascalError
from ..hw.design import Design

CHUNK = 64  # images per step of the datapath (bounds the memory of the window arrays)


def run_values(design: Design, images: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(accumulators (N, classes), classes (N,), each layer's levels (N, pixels * channels) in
    stream order, each weighted layer's input activity per channel (N, H, W, C)) for raw images
    (N, C, H, W), stage by stage and frame by frame."""
    if not design.layers or not design.classifier.ends_design:
        raise PascalError("the design has no classifier")
    packed = [layer.prepare_values() for layer in design.layers]
    parts = [_run_chunk(design, packed, images[i:i + CHUNK])
             for i in range(0, len(images), CHUNK)]
    acc = np.concatenate([p[0] for p in parts])
    levels = {name: np.concatenate([p[1][name] for p in parts]) for name in parts[0][1]}
    lanes = {name: np.concatenate([p[2][name] for p in parts]) for name in parts[0][2]}
    return acc, acc.argmax(axis=1), levels, lanes


def _run_chunk(design: Design, packed: list, images: np.ndarray):
    n = len(images)
    # frames: (N, H, W, C, T) pixel-major, each channel's frames last; float32 holds every value
    # and every partial sum exactly while the layer's accumulators stay below 2^24 (checked).
    # Streams by tensor name (a residual block reads one stream twice, an add two streams);
    # accumulator streams (a block's conv2 and projection) are int64 (N, H, W, C). A design
    # without tensor names is a chain: each layer reads the stream before it.
    stream = np.asarray(images).transpose(0, 2, 3, 1)[..., None].astype(np.float32)
    streams: dict[str, np.ndarray] = {}
    if design.input_tensor is not None:
        streams[design.input_tensor] = stream
    levels: dict[str, np.ndarray] = {}
    lanes: dict[str, np.ndarray] = {}
    for layer, params in zip(design.layers, packed):
        if design.input_tensor is None:
            streams[layer.inputs[0]] = stream
        stream, values, activity = layer.values(params, streams, n)
        if values is not None:
            levels[layer.name] = values
        if activity is not None:
            lanes[layer.name] = activity
        for name in layer.outputs:
            streams[name] = stream
    return stream, levels, lanes
