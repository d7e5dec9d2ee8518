"""The whole design: the layers of an IR in topological order, the input and output adapters,
the FIFOs between their stages, and the stream classes that folding must respect.

A chain, except for residual blocks: a fork writes two FIFOs (the main path and the shortcut)
and an add reads two. Everything here asks the layer classes (:mod:`.layers`) for the facts of
their kind; nothing here names a kind.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Callable

import numpy as np

from ..errors import PascalError
from ..ir.transforms import layer_nodes
from ..ir.widths import unsigned_bits
from ..names import show_value
from . import schedule
from .layers import ACC_BITS_OUT, LAYER_NAME, HWLayer, hw_layer
from .schedule import IDLE, READ, WRITE, Program


@dataclass
class Fifo:
    """One FIFO of the design: from stage ``producer`` (its output ``out_port``) to stage
    ``consumer`` (its input ``in_port``); ``layer`` and ``key``: the layer attribute that holds
    its depth (fifo_depth, short_depth, token_depth; the classifier's out_depth)."""

    producer: int
    consumer: int
    depth: int
    bits: int
    layer: str
    key: str
    out_port: int = 0
    in_port: int = 0


class StreamClasses:
    """The stream classes of a list of layers: streams tied by a layer that passes its group
    through (pools, forks, adds) carry one G. ``of[j]``: (input class, output class) of layer j
    (equal for a layer that passes its group; the classifier's output class is its output
    words', its PE); ``channels[k]``: the gcd of the channel counts of class k's streams (what
    its G must divide); ``last[k]``: the last layer that touches class k (the classifier's output
    class: ``len(layers)``). Streams are tensor names when ``named``, else the index of the
    stream into each layer of a chain."""

    def __init__(self, layers: list[HWLayer], named: bool):
        parent: dict[Any, Any] = {}

        def find(x):
            while parent.setdefault(x, x) != x:
                parent[x] = parent[parent[x]]
                x = parent[x]
            return x

        streams = []
        for j, layer in enumerate(layers):
            ins = list(layer.inputs) if named else [j]
            outs = list(layer.outputs) if named else [j + 1]
            streams.append((ins, outs))
            if layer.passes_group:
                for tensor in ins[1:] + outs:
                    parent[find(tensor)] = find(ins[0])
        ids: dict[Any, int] = {}
        self.of: list[tuple[int, int]] = []
        self.channels: list[int] = []
        self.last: list[int] = []
        for j, (layer, (ins, outs)) in enumerate(zip(layers, streams)):
            pair = []
            for tensor, count in ((ins[0], layer.in_channels), (outs[0], layer.out_channels)):
                root = find(tensor)
                if root not in ids:
                    ids[root] = len(ids)
                    self.channels.append(0)
                    self.last.append(j)
                k = ids[root]
                self.channels[k] = math.gcd(self.channels[k], count)
                self.last[k] = j
                pair.append(k)
            self.of.append((pair[0], pair[1]))
        # the classifier's output class stays open to the end: the search's last states are
        # its PE (the output adapter's and FIFO's costs are in its options)
        self.last[self.of[-1][1]] = len(layers)

    def groups(self, k: int) -> list[int]:
        """Every G class ``k`` may carry (the divisors of its channels)."""
        return [d for d in range(1, self.channels[k] + 1) if self.channels[k] % d == 0]

    def folding(self, layers: list[HWLayer], pick: Callable[[int], int]
                ) -> dict[str, dict[str, int]]:
        """{layer: {pe, simd}} with class k carrying ``pick(channels[k])`` channels a word."""
        group = [pick(count) for count in self.channels]
        folding = {}
        for layer, (c_in, c_out) in zip(layers, self.of):
            if layer.passes_group:
                folding[layer.name] = {"pe": group[c_in], "simd": 1}
            else:
                folding[layer.name] = {"pe": group[c_out], "simd": group[c_in]}
        return folding


@dataclass
class Design:
    """The layers of an IR (in topological order) plus the design's input and output adapters:
    a dataflow graph of stages connected by FIFOs."""

    layers: list[HWLayer]
    channels: int          # input pixel channels
    height: int
    width: int
    bits: int              # bits per input pixel
    output_depth: int = 2  # the FIFO from the classifier to the output adapter
    input_tensor: str | None = None   # the IR's input (None: the layers form a chain)
    arch: str = "snn"      # "snn" (PASCAL's spike frames) or "qnn" (the FINN-style twin)

    def stage_ranges(self) -> list[tuple[int, int]]:
        """Per layer, its first and last stage's index (stage 0 is the input adapter)."""
        ranges, k = [], 1
        for layer in self.layers:
            count = len(layer.stage_names())
            ranges.append((k, k + count - 1))
            k += count
        return ranges

    def fifos(self) -> list[Fifo]:
        """Every FIFO in order: per layer the FIFOs into it (its inputs in order), then the
        FIFOs between its own stages (a weighted layer's token FIFO); last the classifier's
        FIFO to the output adapter."""
        ranges = self.stage_ranges()
        producers: dict[str, tuple[int, int]] = {}     # tensor -> (layer, output port)
        for j, layer in enumerate(self.layers):
            for port, tensor in enumerate(layer.outputs):
                producers[tensor] = (j, port)
        fifos = []
        for j, layer in enumerate(self.layers):
            first, last = ranges[j]
            for port, tensor in enumerate(layer.inputs):
                if self.input_tensor is not None and tensor == self.input_tensor:
                    source, out_port, bits = 0, 0, self.input_group * self.bits
                elif self.input_tensor is not None and tensor in producers:
                    k, out_port = producers[tensor]
                    source, bits = ranges[k][1], self.layers[k].out_word_bits
                else:   # a chain: the previous layer (or the input adapter)
                    source, out_port = (ranges[j - 1][1] if j else 0), 0
                    bits = self.layers[j - 1].out_word_bits if j else \
                        self.input_group * self.bits
                key = "fifo_depth" if port == 0 else "short_depth"
                depth = layer.fifo_depth if port == 0 else getattr(layer, "short_depth", 2)
                fifos.append(Fifo(source, first, depth, layer.input_fifo_bits(port, bits),
                                  layer.name, key, out_port, port))
            for producer, consumer, bits, key in layer.inner_fifos():
                fifos.append(Fifo(first + producer, first + consumer, getattr(layer, key),
                                  bits, layer.name, key))
        c = self.classifier
        fifos.append(Fifo(ranges[-1][1], ranges[-1][1] + 1, self.output_depth, c.out_word_bits,
                          c.name, "out_depth"))
        return fifos

    def edges(self) -> list[tuple[int, int]]:
        """(producer stage, consumer stage) of every FIFO, in :meth:`fifos` order."""
        return [(f.producer, f.consumer) for f in self.fifos()]

    @property
    def branching(self) -> bool:
        """Whether the design has residual blocks (a layer with two inputs or two outputs):
        not a chain."""
        return any(layer.data_inputs > 1 or len(layer.outputs) > 1 for layer in self.layers)

    @cached_property
    def stream_classes(self) -> StreamClasses:
        """The design's stream classes (computed once; a folding keeps them)."""
        named = self.input_tensor is not None
        if not named and self.branching:
            raise PascalError("a design with residual blocks needs its tensor names (the "
                              "layers' inputs and outputs) for its stream classes")
        return StreamClasses(self.layers, named)

    @property
    def pixels(self) -> int:
        return self.height * self.width

    @property
    def classifier(self) -> HWLayer:
        return self.layers[-1]

    @property
    def input_group(self) -> int:
        return self.layers[0].in_group

    @property
    def axi_bits(self) -> int:
        return 8 * ((self.channels * self.bits + 7) // 8)

    def stage_names(self) -> list[str]:
        return ["input"] + [s for layer in self.layers for s in layer.stage_names()] + ["output"]

    def fifo_depths(self) -> list[int]:
        """One per FIFO, in :meth:`fifos` order (for a chain: a layer's input FIFO, then, for a
        weighted layer, its token FIFO, ..., the classifier's output FIFO)."""
        return [f.depth for f in self.fifos()]

    def refolded(self, folding: dict[str, dict[str, Any]]) -> "Design":
        """A copy with another folding ({layer: {pe, simd, zero_skip}}, a search's result)."""
        layers = [layer.folded(pe=folding[layer.name]["pe"],
                               simd=None if layer.shown_simd is None else
                               folding[layer.name]["simd"],
                               zero_skip=folding[layer.name].get("zero_skip"))
                  for layer in self.layers]
        copy = Design(layers, self.channels, self.height, self.width, self.bits,
                      self.output_depth, self.input_tensor, self.arch)
        copy.check_streams()
        return copy

    def as_qnn(self, check: bool = True) -> "Design":
        """The FINN-style QNN twin of this design at the same folding and FIFO depths: every
        layer's :meth:`~pascal_fpga.hw.layers.base.HWLayer.as_qnn` (docs/design.md, section
        4.8); ``check``: its streams checked."""
        if self.arch == "qnn":
            return self
        copy = Design([layer.as_qnn() for layer in self.layers], self.channels, self.height,
                      self.width, self.bits, self.output_depth, self.input_tensor, "qnn")
        if check:
            copy.check_streams()
        return copy

    def activity_from_lanes(self, lanes: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Each data-dependent layer's group activity (N, windows, SF) from its per-channel
        input activity (N, H, W, C), as :func:`pascal_fpga.perf.values.run_values` records
        it."""
        return {layer.name: layer.group_activity(lanes[layer.name]) for layer in self.layers
                if layer.name in lanes}

    def programs(self, activity: dict[str, np.ndarray], n: int, mode: str | None = None,
                 backend: str = "hls") -> list[Program]:
        """Every stage's program for ``n`` images, in dataflow order: the HLS loops, or with
        ``backend="rtl"`` the RTL modules' (each stage's writes its latency later)."""
        from .backends import stage_latencies   # the backends emit for this module's designs

        delays = stage_latencies(self, backend)
        cf0 = self.channels // self.input_group
        runs = [schedule.from_runs("input", np.array([WRITE, IDLE]),
                                   np.tile([self.pixels * cf0, 0], (n, 1)),
                                   reads=np.full(n, self.pixels))]
        for layer in self.layers:
            runs += layer.programs(activity.get(layer.name), n, mode)
        classes, nf = self.classifier.out_channels, self.classifier.nf
        out = schedule.from_runs("output", np.array([READ, IDLE]), np.tile([nf, classes + 1],
                                                                           (n, 1)),
                                 writes=np.full(n, classes + 1))
        runs.append(out)
        if not any(delays):
            return runs
        return [schedule.delayed(p, d) for p, d in zip(runs, delays)]

    def check_streams(self) -> None:
        """Every stream has one word layout on both sides; no word wider than the library's cap;
        the classifier's accumulators fit its 32-bit output words."""
        if self.channels % self.input_group:
            raise PascalError(f"layer {self.layers[0].name}: SIMD {self.input_group} does not "
                              f"divide the {self.channels} input channels")
        by_stage = {}
        for j, (first, last) in enumerate(self.stage_ranges()):
            by_stage[last] = self.layers[j]
        index = {layer.name: layer for layer in self.layers}
        for fifo in self.fifos():
            if fifo.key in ("token_depth", "out_depth") or fifo.producer == 0:
                continue
            before, after = by_stage[fifo.producer], index[fifo.layer]
            self._check_stream(before, after, fifo.in_port)
        for layer in self.layers:
            layer.check_words()
        if self.channels * self.bits > 1024:
            raise PascalError(f"{self.channels} channels of {self.bits} bits do not fit one "
                              f"AXI-Stream word")
        if self.classifier.acc_bits > ACC_BITS_OUT:
            raise PascalError(f"layer {self.classifier.name}: {self.classifier.acc_bits}-bit "
                              f"classifier accumulators do not fit the 32-bit output words")

    @staticmethod
    def _check_stream(before: HWLayer, after: HWLayer, port: int) -> None:
        if before.out_group != after.in_group:
            what = "PE (channels per word)" if before.passes_group else "PE"
            side = "PE" if after.passes_group else "SIMD"
            raise PascalError(
                f"layers {before.name} -> {after.name}: {before.name}'s {what} "
                f"{before.out_group} must equal {after.name}'s {side} {after.in_group} (the "
                f"stream between them carries one word layout; there are no width "
                f"converters)")
        if after.check_input(before, port):
            return
        if (before.out_frames, before.fb_out) != (after.t_in, after.fb_in):
            raise PascalError(f"layer {after.name}: expects {after.t_in} frames of "
                              f"{after.fb_in} bits, {before.name} sends {before.out_frames} "
                              f"of {before.fb_out}")


ARCH_KEY = "pascal_arch"
"""The IR's metadata key that names the architecture it is compiled for (absent: snn)."""
ARCHS = ("snn", "qnn")


def ir_arch(model) -> str:
    """The architecture an IR is compiled for: its metadata's ``pascal_arch`` (``compile
    --arch``), snn when absent."""
    arch = model.get_metadata_prop(ARCH_KEY) or "snn"
    if arch not in ARCHS:
        raise PascalError(f"the IR's metadata {ARCH_KEY} is {show_value(arch)}, not one of "
                          f"{', '.join(ARCHS)}")
    return arch


def design_from_ir(model, check: bool = True, arch: str | None = None) -> Design:
    """The hardware design of a (folded) IR model; checks names, streams and word widths
    (``check=False``: names only, for what a folding does not change, like the stream
    classes of a lowered IR not yet folded). ``arch``: snn or qnn (the twin); by default the
    one the IR's metadata names (:func:`ir_arch`)."""
    arch = arch or ir_arch(model)
    layers: list[HWLayer] = []
    seen: set[str] = set()
    for node in layer_nodes(model):
        if not LAYER_NAME.fullmatch(node.name) or node.name in seen:
            raise PascalError(f"layer {show_value(node.name)}: a layer name must be a unique C "
                              f"identifier (letters, digits, '_', at most 64)")
        seen.add(node.name)
        layers.append(hw_layer(node, model))
    if not layers or not layers[-1].ends_design:
        raise PascalError("the IR does not end with a classifier")
    shape = model.get_tensor_shape(model.graph.input[0].name)
    bits = unsigned_bits(layers[0].in_max)
    classifier = layers[-1]
    design = Design(layers, int(shape[1]), int(shape[2]), int(shape[3]), bits,
                    int(classifier.attrs.get("out_depth", 2)), model.graph.input[0].name)
    if arch == "qnn":
        return design.as_qnn(check)
    if check:
        design.check_streams()
    return design
