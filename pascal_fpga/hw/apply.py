"""Folding: PE, SIMD, the zero-skipping mode and the FIFO depths of each layer, on the IR.

A folding config is {layer name: {"pe": P, "simd": S, "zero_skip": bool, "fifo_depth": D,
"token_depth": D, "out_depth": D}}, every key optional. Streams carry one word layout (a producer's
PE is its consumer's SIMD; a pool passes its PE through), so a value given on one side of a stream
is carried to the other side unless the config gives both (then they must agree). The hardware
layer classes (:mod:`.layers`) say what each value must divide.
"""

from __future__ import annotations

import math
from typing import Any

from qonnx.transformation.base import Transformation

from ..errors import PascalError
from ..names import show_value

FIFO_DEPTH_MAX = 2 ** 20  # the deepest FIFO a folding config may ask for
DEPTH_KEYS = ("fifo_depth", "token_depth", "out_depth")
KEYS = ("pe", "simd", "zero_skip") + DEPTH_KEYS
PRESETS = ("serial", "full")  # serial: one channel per word; full: every channel at once


def _nodes(model):
    from ..ir.transforms import layer_nodes

    return layer_nodes(model)


def _set(node, key: str, value: int) -> None:
    from qonnx.custom_op.registry import getCustomOp

    getCustomOp(node).set_nodeattr(key, int(value))


def _get(node, key: str) -> int:
    from qonnx.custom_op.registry import getCustomOp

    return int(getCustomOp(node).get_nodeattr(key))


def _is_pool(node) -> bool:
    return node.op_type in ("SpikingMaxPool", "SpikingSumPool")


def _channels(node) -> tuple[int, int]:
    from qonnx.custom_op.registry import getCustomOp

    inst = getCustomOp(node)
    return int(inst.get_nodeattr("in_shape")[0]), int(inst.get_nodeattr("out_shape")[0])


def _largest_divisor(n: int, limit: int) -> int:
    return max(d for d in range(1, min(n, limit) + 1) if n % d == 0)


def edge_folding(model, groups: list[int], classifier_pe: int) -> dict[str, dict[str, int]]:
    """{layer: {pe, simd}} from one G per stream: ``groups[0]`` is the input's (the first
    layer's SIMD), ``groups[i]`` the stream into layer i; the classifier writes words of
    ``classifier_pe`` accumulators."""
    nodes = _nodes(model)
    folding = {}
    for index, node in enumerate(nodes):
        g_in = groups[index]
        if _is_pool(node):
            folding[node.name] = {"pe": g_in, "simd": 1}
        elif index == len(nodes) - 1:
            folding[node.name] = {"pe": classifier_pe, "simd": g_in}
        else:
            folding[node.name] = {"pe": groups[index + 1], "simd": g_in}
    return folding


def stream_channels(model) -> list[int]:
    """Channels of each stream into a layer, in order (the first: the input pixel's)."""
    return [_channels(node)[0] for node in _nodes(model)]


def branching(model) -> bool:
    """Whether the IR has residual blocks (a fork and an add): a graph, not a chain."""
    return any(n.op_type in ("SpikingFork", "SpikingAdd") for n in _nodes(model))


def graph_folding(model, pick) -> dict[str, dict[str, int]]:
    """{layer: {pe, simd}} of an IR with residual blocks: streams tied by a layer that passes
    its group through (a pool, a fork: all its streams; an add: conv2's, the shortcut's and its
    output) form one class with one G, ``pick(channels)`` (the classifier's PE:
    ``pick(classes)``)."""
    nodes = _nodes(model)
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    channels: dict[str, int] = {}
    for node in nodes:
        c_in, c_out = _channels(node)
        streams = list(node.input[:2] if node.op_type == "SpikingAdd" else node.input[:1])
        for tensor in streams:
            channels[tensor] = c_in
        for tensor in node.output:
            channels[tensor] = c_out
        if _is_pool(node) or node.op_type in ("SpikingFork", "SpikingAdd"):
            for tensor in streams[1:] + list(node.output):
                parent[find(tensor)] = find(streams[0])
    sizes: dict[str, int] = {}
    for tensor, count in channels.items():
        root = find(tensor)
        sizes[root] = math.gcd(sizes.get(root, 0), count)
    group = {tensor: pick(sizes[find(tensor)]) for tensor in channels}
    folding = {}
    for index, node in enumerate(nodes):
        g_in = group[node.input[0]]
        if _is_pool(node) or node.op_type in ("SpikingFork", "SpikingAdd"):
            folding[node.name] = {"pe": g_in, "simd": 1}
        elif index == len(nodes) - 1:
            folding[node.name] = {"pe": pick(_channels(node)[1]), "simd": g_in}
        else:
            folding[node.name] = {"pe": group[node.output[0]], "simd": g_in}
    return folding


def default_folding(model, limit: int = 8) -> dict[str, dict[str, int]]:
    """A modest default: every stream carries the largest divisor of its channels up to
    ``limit`` (8) channels per word; the classifier's PE likewise for its classes."""
    if branching(model):
        return graph_folding(model, lambda c: _largest_divisor(c, limit))
    nodes = _nodes(model)
    groups = [_largest_divisor(c, limit) for c in stream_channels(model)]
    return edge_folding(model, groups, _largest_divisor(_channels(nodes[-1])[1], limit))


def preset_folding(model, preset: str) -> dict[str, dict[str, int]]:
    """``serial``: one channel per word everywhere; ``full``: every channel in one word."""
    if branching(model):
        return graph_folding(model, (lambda c: 1) if preset == "serial" else (lambda c: c))
    nodes = _nodes(model)
    if preset == "serial":
        return edge_folding(model, [1] * len(nodes), 1)
    return edge_folding(model, stream_channels(model), _channels(nodes[-1])[1])


class ApplyFolding(Transformation):
    """Expects: the lowered IR and a folding config (module docstring). Guarantees: the values
    set on the nodes, every stream with one word layout, no word wider than the library's cap; a
    config that names a missing layer, has another key, a PE/SIMD that does not divide its
    dimension, two sides of a stream that disagree or a depth outside 1..2^20 raises a
    PascalError naming the config, the layer and the key."""

    def __init__(self, folding: dict[str, dict[str, Any]], source: str = "folding config"):
        super().__init__()
        self.folding = folding
        self.source = source

    def apply(self, model):
        from .layers import design_from_ir, hw_layer

        nodes = _nodes(model)
        by_name = {n.name: n for n in nodes}
        if not isinstance(self.folding, dict):
            raise PascalError(f"{self.source}: expected an object of layer name -> "
                              f"{{\"pe\": .., \"simd\": ..}}")
        for name, config in self.folding.items():
            if name not in by_name:
                raise PascalError(f"{self.source}: layer {show_value(name)} is not in the "
                                  f"model (layers: {', '.join(by_name)})")
            if not isinstance(config, dict) or set(config) - set(KEYS):
                raise PascalError(f"{self.source}: layer {name}: expected an object with keys "
                                  f"among {', '.join(KEYS)}, got {show_value(config)}")
            for key in DEPTH_KEYS:
                if key in config:
                    depth = config[key]
                    if not isinstance(depth, int) or isinstance(depth, bool) \
                            or not 1 <= depth <= FIFO_DEPTH_MAX:
                        raise PascalError(f"{self.source}: layer {name}: {key} "
                                          f"{show_value(depth)} is not an integer in "
                                          f"1..{FIFO_DEPTH_MAX} (2^20)")
                    _set(by_name[name], key, depth)
            if "zero_skip" in config:
                if not isinstance(config["zero_skip"], bool):
                    raise PascalError(f"{self.source}: layer {name}: zero_skip "
                                      f"{show_value(config['zero_skip'])} is not true or false")
                _set(by_name[name], "zero_skip", int(config["zero_skip"]))
        # PE and SIMD: given values, carried across each stream when only one side is given
        given = {n.name: self.folding.get(n.name, {}) for n in nodes}
        for index, node in enumerate(nodes):
            config = given[node.name]
            layer = hw_layer(node, model)
            pe_dim, simd_dim = layer.fold_limits()
            for key, dim in (("pe", pe_dim), ("simd", simd_dim)):
                if key not in config:
                    continue
                value = config[key]
                if not isinstance(value, int) or isinstance(value, bool) or value < 1 \
                        or dim % value:
                    what = "output channels" if key == "pe" else (
                        "(pools take SIMD 1)" if _is_pool(node) else "input channels")
                    raise PascalError(f"{self.source}: layer {node.name}: {key} "
                                      f"{show_value(value)} does not divide its {dim} {what}")
                _set(node, key, value)
        if not branching(model):   # a graph's streams are checked, not carried
            for index in range(len(nodes) - 1):
                self._carry(nodes, index, given)
        try:
            design_from_ir(model)
        except PascalError as exc:
            raise PascalError(f"{self.source}: {exc}") from exc
        return model, False

    @staticmethod
    def _carry(nodes, index: int, given) -> None:
        """Make the stream from nodes[index] to nodes[index + 1] one layout: a side the config
        gives wins over a default."""
        before, after = nodes[index], nodes[index + 1]
        out_key = "pe"
        in_key = "pe" if _is_pool(after) else "simd"
        out_given = out_key in given[before.name]
        in_given = in_key in given[after.name]
        if _get(before, out_key) == _get(after, in_key) or (out_given and in_given):
            return  # equal, or both given (checked by design_from_ir)
        if in_given and not out_given and not _is_pool(before):
            _set(before, out_key, _get(after, in_key))
        elif in_given and _is_pool(before):
            return  # a pool's group is its input's: the user must fold the producer
        else:
            _set(after, in_key, _get(before, out_key))
