"""The first pass on a user's QONNX file: the export patterns of Brevitas and FINN models that
mean what the spiking pass can map, rewritten into the form it reads (docs/foreign-models.md).

:class:`NormalizeExport` changes only what provably computes the same values:

- a ``Relu`` whose only reader is an unsigned activation quantizer with zero point 0 (every
  ``QuantReLU`` exports so) is dropped: the quantizer clamps below at level 0, so
  quant(relu(x)) = quant(x) for every x;
- a ``Flatten`` or ``Reshape`` to (N, -1) between the graph input and its quantizer (a model
  whose ``forward`` flattens first, such as FINN's fully connected networks) moves behind the
  quantizer, as a Flatten: the quantizer and the constant per-tensor preprocessing before it
  act element by element, so the order does not change a value, and the accelerator takes the
  image as it is (the dense layer flattens it);
- a ``Gemm`` with ``transB`` 0, or a ``MatMul`` by a quantized constant, becomes a Gemm with
  ``transB`` 1 on the transposed constant (and its scale), the form of ``QuantLinear``'s own
  export;
- a quantizer of constants that feeds a constant ``Add``/``Sub``/``Mul``/``Div`` (a bias
  quantized apart from its layer, as after a ``MatMul``) becomes the constant it computes
  (qonnx's own ``int_quant``).

Everything else is left to :class:`pascal_fpga.ir.transforms.CheckSupported`, which refuses
what cannot be mapped, naming the node.
"""

from __future__ import annotations

import numpy as np
from onnx import helper
from qonnx.custom_op.general.intquant import int_quant
from qonnx.transformation.base import Transformation
from qonnx.transformation.general import RemoveUnusedTensors
from qonnx.transformation.infer_shapes import InferShapes

from .export import node_attr

AFFINE = ("Mul", "Add", "Sub", "Div")


def _is_const(model, name: str) -> bool:
    return model.get_initializer(name) is not None


def _unsigned_act_quant(model, node) -> bool:
    """An unsigned activation Quant with a zero point of 0 (clamps at level 0)."""
    if node is None or node.op_type != "Quant" or node_attr(node, "signed", 1):
        return False
    zero = model.get_initializer(node.input[2]) if len(node.input) > 2 else None
    return zero is not None and bool(np.all(np.asarray(zero) == 0))


def _flat_reshape(model, node) -> bool:
    """A Flatten of axis 1, or a Reshape to (N, -1) / (N, C*H*W): keeps the batch, flattens the
    rest."""
    if node.op_type == "Flatten":
        return node_attr(node, "axis", 1) == 1
    if node.op_type != "Reshape" or not _is_const(model, node.input[1]):
        return False
    shape = [int(v) for v in np.asarray(model.get_initializer(node.input[1])).reshape(-1)]
    in_shape = model.get_tensor_shape(node.input[0]) or []
    rest = int(np.prod(in_shape[1:])) if len(in_shape) > 1 and all(
        isinstance(d, int) and d > 0 for d in in_shape[1:]) else None
    return len(shape) == 2 and shape[0] in (0, 1, -1) and (shape[1] == -1 or shape[1] == rest)


class NormalizeExport(Transformation):
    """Expects: a QONNX graph as ``load_qonnx`` checked it. Guarantees: the rewrites of the
    module doc, each of which computes the same values; nothing else changes."""

    def apply(self, model):
        graph = model.graph
        changed = False
        for node in list(graph.node):
            if node.op_type == "Relu":
                readers = model.find_consumers(node.output[0])
                if len(readers) == 1 and _unsigned_act_quant(model, readers[0]) \
                        and node.output[0] != graph.output[0].name:
                    readers[0].input[0] = node.input[0]
                    graph.node.remove(node)
                    changed = True
        changed |= self._flatten_behind_input_quant(model)
        for node in list(graph.node):
            changed |= self._quantized_constant(model, node)
        for node in list(graph.node):
            if node.op_type in ("Gemm", "MatMul"):
                changed |= self._weight_rows(model, node)
        if changed:
            model = model.transform(RemoveUnusedTensors()).transform(InferShapes())
        return model, False

    @staticmethod
    def _flatten_behind_input_quant(model) -> bool:
        """input -> Flatten/Reshape -> [Mul/Add/Sub/Div by scalars] -> Quant  becomes
        input -> [the same ops] -> Quant -> Flatten."""
        graph = model.graph
        source = graph.input[0].name
        readers = model.find_consumers(source)
        if len(readers) != 1 or not _flat_reshape(model, readers[0]):
            return False
        flat = readers[0]
        node = flat
        while True:
            after = model.find_consumers(node.output[0])
            if len(after) != 1:
                return False
            node = after[0]
            if node.op_type in ("Quant", "BipolarQuant"):
                break
            consts = [i for i in node.input if _is_const(model, i)]
            if node.op_type not in AFFINE or len(consts) != 1 or \
                    np.asarray(model.get_initializer(consts[0])).size != 1:
                return False
        quant = node
        if any(np.asarray(model.get_initializer(i)).size != 1 for i in quant.input[1:]
               if _is_const(model, i)):
            return False
        # the ops between now read the image; the quantizer's readers read a Flatten of it
        for reader in model.find_consumers(flat.output[0]):
            for i, name in enumerate(reader.input):
                if name == flat.output[0]:
                    reader.input[i] = source
        graph.node.remove(flat)
        quantized = quant.output[0]
        moved = model.make_new_valueinfo_name()
        quant.output[0] = moved
        index = model.get_node_index(quant)
        graph.node.insert(index + 1, helper.make_node("Flatten", [moved], [quantized],
                                                      name=f"{flat.name}_behind_quant", axis=1))
        for tensor in list(graph.value_info):  # shapes change: InferShapes gives them again
            if tensor.name in {n.output[0] for n in graph.node if n.op_type in AFFINE}:
                graph.value_info.remove(tensor)
        for name in [quantized]:
            for tensor in list(graph.value_info):
                if tensor.name == name:
                    graph.value_info.remove(tensor)
        return True

    @staticmethod
    def _quantized_constant(model, node) -> bool:
        """Quant(constants) -> Add/Sub/Mul/Div only: its values, as an initializer."""
        if node.op_type != "Quant" or len(node.input) != 4 or \
                not all(_is_const(model, i) for i in node.input):
            return False
        readers = model.find_consumers(node.output[0])
        if not readers or any(r.op_type not in AFFINE for r in readers):
            return False
        values = [np.asarray(model.get_initializer(i), dtype=np.float32) for i in node.input]
        mode = node_attr(node, "rounding_mode", b"ROUND")
        mode = mode.decode(errors="replace") if isinstance(mode, bytes) else str(mode)
        try:
            out = int_quant(values[0], values[1], values[2], values[3],
                            node_attr(node, "signed", 1), node_attr(node, "narrow", 0), mode)
        except (ValueError, TypeError):
            return False   # CheckSupported names what is wrong with it
        model.set_initializer(node.output[0], np.asarray(out, dtype=np.float32))
        model.graph.node.remove(node)
        return True

    @staticmethod
    def _weight_rows(model, node) -> bool:
        """Gemm(transB=0) or MatMul(x, Quant(W)) -> Gemm(transB=1) on W transposed."""
        if node.op_type == "Gemm" and node_attr(node, "transB", 0):
            return False
        if node.op_type == "Gemm" and (node_attr(node, "transA", 0)
                                       or node_attr(node, "alpha", 1.0) != 1.0
                                       or node_attr(node, "beta", 1.0) != 1.0):
            return False   # CheckSupported names it
        quant = model.find_producer(node.input[1])
        if quant is None or quant.op_type not in ("Quant", "BipolarQuant") or \
                not _is_const(model, quant.input[0]) or \
                len(model.find_consumers(quant.output[0])) != 1:
            return False
        weight = np.asarray(model.get_initializer(quant.input[0]))
        scale = np.asarray(model.get_initializer(quant.input[1])) \
            if _is_const(model, quant.input[1]) else None
        if weight.ndim != 2 or scale is None or scale.ndim > 2:
            return False
        model.set_initializer(quant.input[0], np.ascontiguousarray(weight.T))
        if scale.ndim == 2:
            model.set_initializer(quant.input[1], np.ascontiguousarray(scale.T))
        for tensor in list(model.graph.value_info):
            if tensor.name == quant.output[0]:
                model.graph.value_info.remove(tensor)
        if node.op_type == "Gemm":
            for attribute in node.attribute:
                if attribute.name == "transB":
                    attribute.i = 1
                    return True
            node.attribute.append(helper.make_attribute("transB", 1))
            return True
        gemm = helper.make_node("Gemm", list(node.input[:2]), list(node.output),
                                name=node.name, transB=1)
        index = model.get_node_index(node)
        model.graph.node.remove(node)
        model.graph.node.insert(index, gemm)
        return True
