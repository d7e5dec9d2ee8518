"""Folding: PE, SIMD, the zero-skipping mode and the FIFO depths of each layer, on the IR.

A folding config is {layer name: {"pe": P, "simd": S, "zero_skip": bool, "fifo_depth": D,
"token_depth": D, "out_depth": D}}, every key optional. Streams carry one word layout (a producer's
PE is its consumer's SIMD; a pool passes its PE through), so a value given on one side of a stream
is carried to the other side unless the config gives both (then they must agree). The hardware
layer classes (:mod:`.layers`) say what each value must divide; the design's stream classes
(:class:`.design.StreamClasses`) which streams share one G.
"""

from __future__ import annotations

from typing import Any, Callable

from qonnx.custom_op.registry import getCustomOp
from qonnx.transformation.base import Transformation

from ..errors import PascalError
from ..ir.transforms import layer_nodes
from ..names import show_value
from .design import Design, design_from_ir
from .layers import LAYER_CLASSES, hw_layer

FIFO_DEPTH_MAX = 2 ** 20  # the deepest FIFO a folding config may ask for
DEPTH_KEYS = ("fifo_depth", "token_depth", "out_depth")
FOLDING_KEYS = ("pe", "simd", "zero_skip") + DEPTH_KEYS
PRESETS = ("serial", "full")  # serial: one channel per word; full: every channel at once


def _set(node, key: str, value: int) -> None:
    getCustomOp(node).set_nodeattr(key, int(value))


def _get(node, key: str) -> int:
    return int(getCustomOp(node).get_nodeattr(key))


def _passes_group(node) -> bool:
    """Whether the node's layer kind passes its input group through (no SIMD of its own)."""
    return LAYER_CLASSES[node.op_type].passes_group


def branching(nodes) -> bool:
    """Whether the IR's layers have residual blocks (a layer with two inputs or two outputs):
    a graph, not a chain."""
    return any(len(node.output) > 1 or LAYER_CLASSES[node.op_type].data_inputs > 1
               for node in nodes)


def _largest_divisor(n: int, limit: int) -> int:
    return max(d for d in range(1, min(n, limit) + 1) if n % d == 0)


def folding_by_class(design: Design, pick: Callable[[int], int]) -> dict[str, dict[str, int]]:
    """{layer: {pe, simd}}: every stream class of the design (the streams tied by the layers
    that pass their group through) carries ``pick(channels)`` channels a word, where
    ``channels`` is what its G must divide; the classifier's output words ``pick(classes)``."""
    return design.stream_classes.folding(design.layers, pick)


def default_folding(design: Design, limit: int = 8) -> dict[str, dict[str, int]]:
    """A modest default: every stream carries the largest divisor of its channels up to
    ``limit`` (8) channels per word; the classifier's PE likewise for its classes."""
    return folding_by_class(design, lambda c: _largest_divisor(c, limit))


def preset_folding(design: Design, preset: str) -> dict[str, dict[str, int]]:
    """``serial``: one channel per word everywhere; ``full``: every channel in one word."""
    return folding_by_class(design, (lambda c: 1) if preset == "serial" else (lambda c: c))


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
        nodes = layer_nodes(model)
        by_name = {n.name: n for n in nodes}
        if not isinstance(self.folding, dict):
            raise PascalError(f"{self.source}: expected an object of layer name -> "
                              f"{{\"pe\": .., \"simd\": ..}}")
        for name, config in self.folding.items():
            if name not in by_name:
                raise PascalError(f"{self.source}: layer {show_value(name)} is not in the "
                                  f"model (layers: {', '.join(by_name)})")
            if not isinstance(config, dict) or set(config) - set(FOLDING_KEYS):
                raise PascalError(f"{self.source}: layer {name}: expected an object with keys "
                                  f"among {', '.join(FOLDING_KEYS)}, got {show_value(config)}")
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
                        "(pools take SIMD 1)" if _passes_group(node) else "input channels")
                    raise PascalError(f"{self.source}: layer {node.name}: {key} "
                                      f"{show_value(value)} does not divide its {dim} {what}")
                _set(node, key, value)
        if not branching(nodes):   # a graph's streams are checked, not carried
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
        in_key = "pe" if _passes_group(after) else "simd"
        out_given = out_key in given[before.name]
        in_given = in_key in given[after.name]
        if _get(before, out_key) == _get(after, in_key) or (out_given and in_given):
            return  # equal, or both given (checked by design_from_ir)
        if in_given and not out_given and not _passes_group(before):
            _set(before, out_key, _get(after, in_key))
        elif in_given and _passes_group(before):
            return  # a pool's group is its input's: the user must fold the producer
        else:
            _set(after, in_key, _get(before, out_key))
