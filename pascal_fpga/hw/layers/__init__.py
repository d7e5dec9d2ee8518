"""The hardware layer classes: one class per kind of layer, the single source of its facts.

Like FINN's ``HWCustomOp`` subclasses, a layer object built from an IR node
(:mod:`pascal_fpga.ir.ops`) knows its folded shapes, stream words, fold limits, datapath,
schedule and resources (:mod:`.base` lists them). Classes are keyed by the IR op type, the one
name a layer kind has from the IR to the report; what each backend writes for a class lives in
:mod:`pascal_fpga.hw.backends`. Adding a kind: a class here (registered with
:func:`register_layer`) and one emitter per backend (docs/design.md, section 4.1).

Streams (pascal_fpga/hls/ARCHITECTURE.md: the contract of the library, these classes and the
cycle model): words of G channels x T frames x FB bits, pixel-major; G is the producer's PE and
the consumer's SIMD (a layer that passes its group through, like a pool, keeps G), so a folding
must give every stream one G (:meth:`pascal_fpga.hw.design.Design.check_streams`).
"""

from __future__ import annotations

from ...errors import PascalError
from ...names import show_value
from .base import (ACC_BITS_OUT, LAYER_NAME, MODES, WORD_BITS_MAX, HWLayer, fold_rows,
                   fold_weights, node_attrs, rows_needed, sliding_windows)
from .pool import PoolLayer
from .residual import AddLayer, ForkLayer
from .weighted import ClassifierLayer, ConvAccLayer, ConvLayer, DenseLayer, WeightedLayer

LAYER_CLASSES: dict[str, type[HWLayer]] = {}


def register_layer(cls: type[HWLayer]) -> type[HWLayer]:
    """Make ``cls`` the hardware layer of the IR op types it lists in ``ops``."""
    for op in cls.ops:
        if op in LAYER_CLASSES and LAYER_CLASSES[op] is not cls:
            raise ValueError(f"op {op} already has the layer class {LAYER_CLASSES[op].__name__}")
        LAYER_CLASSES[op] = cls
    return cls


for _cls in (ConvLayer, DenseLayer, ClassifierLayer, PoolLayer, ConvAccLayer, ForkLayer,
             AddLayer):
    register_layer(_cls)


def hw_layer(node, model) -> HWLayer:
    """The hardware layer of an IR node."""
    cls = LAYER_CLASSES.get(node.op_type)
    if cls is None:
        raise PascalError(f"layer {show_value(node.name)}: op {show_value(node.op_type)} has no "
                          f"hardware layer class")
    return cls(node, model)


__all__ = ["ACC_BITS_OUT", "LAYER_CLASSES", "LAYER_NAME", "MODES", "WORD_BITS_MAX", "AddLayer",
           "ClassifierLayer", "ConvAccLayer", "ConvLayer", "DenseLayer", "ForkLayer", "HWLayer",
           "PoolLayer", "WeightedLayer", "fold_rows", "fold_weights", "hw_layer", "node_attrs",
           "register_layer", "rows_needed", "sliding_windows"]
