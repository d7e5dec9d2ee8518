"""The spiking transformation pass: small qonnx Transformations from QONNX to the spiking IR.

In order (``PIPELINE``), each saved by ``pascal-fpga compile`` as BUILD_DIR/ir/NN_<step>.onnx:

1. :class:`CheckSupported` - rejects what the pass cannot map (one clear line, naming the node);
2. :class:`BatchNormToAffine` - BatchNormalization becomes Mul and Add (qonnx's own pass);
3. :class:`FoldWeightQuant` - weight and bias quantizers become integer initializers;
4. :class:`ActivationsToThresholds` - every QCFS activation becomes a MultiThreshold with exactly
   L integer thresholds per channel on the integer accumulator: the input scale, the weight scale,
   BatchNorm, biases and the average-pool divisor are absorbed; tensors become integer levels
   (its rewrites: :class:`PixelsToIntegers`, :class:`SumPools`, :class:`ThresholdLayers`,
   :class:`ShiftAddBlocks`, :class:`IntegerClassifier`, applied in one walk of the graph);
5. :class:`LowerToSpikingOps` - each layer becomes one op of :mod:`.ops` (our domain) (its passes:
   :class:`AbsorbFlatten`, :class:`LowerShiftAddBlocks`, :class:`LowerPools`,
   :class:`LowerWeightedLayers`, :class:`LowerClassifier`, :class:`InsertForks`,
   :class:`NameLayers`);

then :class:`pascal_fpga.hw.apply.ApplyFolding` sets PE, SIMD and the FIFO depths per layer.

Every intermediate graph executes under qonnx's ``execute_onnx`` and gives the same levels as the
one before it (the tests run each step on data and compare exactly). The pass walks the graph
tensor by tensor (producers and consumers), not as a list of layers, so branches and adds can be
added: a residual block (the shift-add block of docs/design.md, section 2.8) becomes a fork,
conv1, conv2 and an optional projection with accumulator outputs, and an add that thresholds
n = (acc2 << shift_main) + (shortcut << shift_short).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
from onnx import AttributeProto, TensorProto, defs, helper
from qonnx.core.datatype import DataType
from qonnx.custom_op.general.bipolar_quant import binary_quant
from qonnx.custom_op.general.intquant import int_quant, max_int, min_int, resolve_rounding_mode
from qonnx.custom_op.registry import getCustomOp
from qonnx.transformation.base import Transformation
from qonnx.transformation.batchnorm_to_affine import BatchNormToAffine as _QonnxBatchNormToAffine
from qonnx.transformation.general import RemoveUnusedTensors
from qonnx.transformation.infer_shapes import InferShapes

from ..errors import PascalError
from ..names import enum_name, show_value, shown_name
from ..qcfs import integer_thresholds, rounding_steps
from ..spec import INPUT_BITS_RANGE, LEVELS_MAX
from . import ops
from .adapter import INPUT_ADAPTER
from .export import level_count, node_attr
from .normalize import NormalizeExport
from .widths import accumulator_range, signed_bits, unsigned_bits

QONNX_DOMAIN = "qonnx.custom_op.general"
ACTIVATIONS = {"Relu", "LeakyRelu", "Sigmoid", "Tanh", "Clip", "HardTanh", "HardSigmoid",
               "Softmax", "Elu", "Selu", "PRelu", "Trunc", "MultiThreshold"}
SUPPORTED = {"Quant", "BipolarQuant", "Conv", "Gemm", "BatchNormalization", "Mul", "Add", "Sub",
             "Div", "MaxPool", "AveragePool", "Reshape", "Flatten"}
AFFINE = ("Mul", "Add", "Sub", "Div")  # with a constant: folded into a layer's a * acc + b
BIAS_MAX = 2 ** 18  # the classifier bias's integers, recovered from its float32 export
PIXEL_BITS_MAX = INPUT_BITS_RANGE[1]  # the widest pixel a spec allows (LEVELS_MAX: its largest L)
def _where(node) -> str:
    return f"node {shown_name(node.name)} ({shown_name(node.op_type)})"


def _values(values: np.ndarray) -> str:
    """A constant's values for a one-line message (a few of them)."""
    flat = np.asarray(values, dtype=np.float64).reshape(-1)
    text = ", ".join(f"{v:g}" for v in flat[:4]) + (", ..." if flat.size > 4 else "")
    return f"[{text}]" if flat.size != 1 else text


def _positive_finite(scale: np.ndarray) -> bool:
    """A quantizer scale: at least one value, every one positive and finite."""
    return scale.size >= 1 and bool(np.all(scale > 0)) and bool(np.all(np.isfinite(scale)))


def _is_const(model, name: str) -> bool:
    return model.get_initializer(name) is not None


def _const(model, name: str) -> np.ndarray:
    return np.asarray(model.get_initializer(name), dtype=np.float64)


def _only_consumer(model, tensor: str, after) -> Any:
    consumers = model.find_consumers(tensor)
    if len(consumers) > 1:
        raise PascalError(f"{_where(after)}: its output feeds {len(consumers)} nodes (a branch); "
                          f"branching graphs (residual blocks) are not supported yet")
    return consumers[0] if consumers else None


def _is_qcfs(node) -> bool:
    """An activation quantizer (a Quant or BipolarQuant on a computed tensor, where a layer ends):
    QCFS (unsigned) or a foreign model's signed or bipolar one."""
    return node.op_type in ("Quant", "BipolarQuant")


def _mode(node) -> str:
    mode = node_attr(node, "rounding_mode", b"ROUND")
    return mode.decode(errors="replace") if isinstance(mode, bytes) else str(mode)


@dataclass
class ActQuant:
    """What an activation quantizer computes, as integer codes: the level is
    ``low + mult * code``, code in 0..``codes``, its real value ``scale`` times the level; code
    j is reached where the input x reaches ``scale * steps[j - 1]`` (x > it where ``strict``).
    A QCFS Quant: low 0, mult 1, L codes, steps k - 1/2, none strict. A signed Quant of b bits:
    low -2^(b-1) (+1 when narrow), each rounding mode's steps (:func:`pascal_fpga.qcfs.
    rounding_steps`). A BipolarQuant (or a 1-bit signed Quant, which qonnx executes as one):
    levels -1 and +1, low -1, mult 2, one code step at x >= 0."""

    scale: float
    low: int
    mult: int
    codes: int
    steps: np.ndarray
    strict: np.ndarray

    def boundaries(self) -> np.ndarray:
        return self.steps * self.scale

    def view(self) -> "IntView":
        return IntView(self.scale, self.codes, self.low, self.mult)


def act_quant(model, node) -> ActQuant:
    """The :class:`ActQuant` of an activation quantizer (its constants checked by
    CheckSupported)."""
    scale = float(_const(model, node.input[1]).reshape(-1)[0])
    if node.op_type == "BipolarQuant":
        return ActQuant(scale, -1, 2, 1, np.zeros(1), np.zeros(1, dtype=bool))
    bits = float(_const(model, node.input[3]).reshape(-1)[0])
    signed, narrow = bool(node_attr(node, "signed", 1)), bool(node_attr(node, "narrow", 0))
    if signed and bits == 1:
        return ActQuant(scale, -1, 2, 1, np.zeros(1), np.zeros(1, dtype=bool))
    if bits == int(bits):
        low, high = int(min_int(signed, narrow, int(bits))), int(max_int(signed, narrow,
                                                                         int(bits)))
    else:  # a QCFS export's fractional bit width: clamp 2^bits - 1 = L (unsigned, not narrow)
        low, high = 0, level_count(bits)
    steps, strict = rounding_steps(resolve_rounding_mode(_mode(node)), low, high)
    return ActQuant(scale, low, 1, high - low, steps, strict)


def input_quantizer(model):
    """The graph input's quantizer: the Quant or BipolarQuant reached from the input through
    single-consumer Mul/Add/Sub/Div ops (a user's preprocessing) and, before NormalizeExport,
    a flatten, or None."""
    tensor = model.graph.input[0].name
    while True:
        consumers = model.find_consumers(tensor)
        if len(consumers) != 1:
            return None
        node = consumers[0]
        if node.op_type in ("Quant", "BipolarQuant"):
            return node
        if node.op_type not in AFFINE + ("Reshape", "Flatten"):
            return None
        tensor = node.output[0]


def _square(node, name: str, default: int) -> int:
    values = node_attr(node, name)
    if values is None:
        return default
    values = list(values)
    if len(set(values)) != 1:
        raise PascalError(f"{_where(node)}: {name} {values} is not square/symmetric; only square "
                          f"kernels, strides and symmetric padding are supported")
    return int(values[0])


class CheckSupported(Transformation):
    """Expects: a cleaned QONNX graph (``pascal-fpga export``). Guarantees (or raises a
    PascalError naming the node): one input and one output; every initializer float32 (int64
    for a Reshape's shape), finite (no NaN or infinity reaches a threshold); every weight and bias
    within 2^24 steps of its quantizer's scale (exact float32 integers); only the ops of
    ``SUPPORTED``, each in its op's domain with its op's inputs and attributes, of their declared
    types (Quant's as qonnx declares them, a rounding mode qonnx knows), no auto_pad; every
    activation is a QCFS Quant (unsigned, not narrow, zero point 0, one finite positive scale,
    HALF_UP, L = 2^bitwidth - 1 in 1..LEVELS_MAX); BatchNorm parameters per channel, variances
    + epsilon positive, their affine form finite in float32; a residual add only inside a
    shift-add block (it feeds one QCFS activation); convolutions and
    pools square, ungrouped, undilated, without ceil mode. Changes nothing. (``load_qonnx`` has
    checked the graph's structure: its input, output and that every tensor is defined.)"""

    def apply(self, model):
        graph = model.graph
        if len(graph.input) != 1 or len(graph.output) != 1:
            raise PascalError(f"the graph has {len(graph.input)} inputs and {len(graph.output)} "
                              f"outputs; one of each is supported")
        self._check_initializers(model)
        for node in graph.node:
            where = _where(node)
            if node.op_type in ACTIVATIONS:
                raise PascalError(f"{where}: a non-QCFS activation; the spiking compiler needs "
                                  f"QCFS activations (Quant, HALF_UP, L levels)")
            if node.op_type not in SUPPORTED:
                raise PascalError(f"{where}: op type not supported by the spiking compiler")
            self._check_form(model, node)
            if node.op_type == "Add" and not any(_is_const(model, i) for i in node.input):
                quantized = [model.find_producer(i) for i in node.input]
                if any(p is not None and p.op_type in ("Quant", "BipolarQuant")
                       for p in quantized):
                    raise PascalError(f"{where}: a residual add of requantized branches (a "
                                      f"FINN-style add with its own quantizer on each input) is "
                                      f"not supported: train the block as a shift-add block "
                                      f"(conv2 + BatchNorm and the shortcut, added before one "
                                      f"unsigned activation quantizer; 'residual: shift', "
                                      f"docs/design.md, section 2.8)")
                after = model.find_consumers(node.output[0])
                if len(after) != 1 or not _is_qcfs(after[0]):
                    raise PascalError(f"{where}: a residual add must feed one QCFS activation "
                                      f"(a shift-add block, docs/design.md, section 2.8)")
            if node.op_type in ("Mul", "Sub", "Div") and \
                    not any(_is_const(model, i) for i in node.input):
                raise PascalError(f"{where}: a {node.op_type} of two computed tensors is not "
                                  f"supported")
            if node.op_type == "Div" and not _is_const(model, node.input[1]):
                raise PascalError(f"{where}: a constant divided by a tensor is not supported")
            if node.op_type == "Quant":
                self._check_quant(model, node)
            if node.op_type == "BipolarQuant":
                self._check_bipolar(model, node)
            if node.op_type == "BatchNormalization":
                self._check_batchnorm(model, node)
            if node.op_type == "Conv":
                if node_attr(node, "group", 1) != 1:
                    raise PascalError(f"{where}: grouped convolutions are not supported")
                if set(node_attr(node, "dilations", [1])) != {1}:
                    raise PascalError(f"{where}: dilated convolutions are not supported")
                _square(node, "kernel_shape", 1), _square(node, "strides", 1)
                _square(node, "pads", 0)
            if node.op_type in ("MaxPool", "AveragePool"):
                if node_attr(node, "ceil_mode", 0) or set(node_attr(node, "pads", [0])) != {0}:
                    raise PascalError(f"{where}: pooling with padding or ceil mode is not "
                                      f"supported")
                _square(node, "kernel_shape", 1), _square(node, "strides", 1)
            if node.op_type == "Gemm" and (node_attr(node, "transA", 0) or not node_attr(node, "transB", 0)
                                           or node_attr(node, "alpha", 1.0) != 1.0
                                           or node_attr(node, "beta", 1.0) != 1.0):
                raise PascalError(f"{where}: only Gemm with transB=1, alpha = beta = 1 is "
                                  f"supported")
        return model, False

    @staticmethod
    def _check_form(model, node) -> None:
        """The node as its op defines it, since qonnx and onnxruntime execute it by its domain
        and read each attribute by its declared type (a ``signed`` given as floats reads as 0
        there, as true here): Quant in qonnx's domain, the others in ONNX's; only the op's own
        attributes, each of its type, the required ones present; no auto_pad."""
        def count(low: int, high: int, what: str) -> str:  # "1 input", "2 to 3 inputs"
            return (f"{low}" if low == high else f"{low} to {high}") + \
                f" {what}{'' if high == 1 else 's'}"

        where = _where(node)
        if node.op_type in ("Quant", "BipolarQuant"):
            if node.domain not in (QONNX_DOMAIN, "onnx.brevitas"):
                raise PascalError(f"{where}: domain {show_value(node.domain)}; a "
                                  f"{node.op_type} node is in {QONNX_DOMAIN}")
            kinds = {"i": AttributeProto.INT, "f": AttributeProto.FLOAT,
                     "s": AttributeProto.STRING, "ints": AttributeProto.INTS,
                     "floats": AttributeProto.FLOATS, "strings": AttributeProto.STRINGS}
            declared = {name: (kinds.get(spec[0]), spec[1]) for name, spec in
                        getCustomOp(node).get_nodeattr_types().items()}
        else:
            if node.domain not in ("", "ai.onnx"):
                raise PascalError(f"{where}: domain {show_value(node.domain)}; a "
                                  f"{node.op_type} node is in ONNX's own domain")
            versions = [o.version for o in model.model.opset_import
                        if o.domain in ("", "ai.onnx")]
            version = max(versions or [defs.onnx_opset_version()])
            try:
                schema = defs.get_schema(node.op_type, version, "")
            except defs.SchemaError:
                raise PascalError(f"{where}: not an op of the model's ONNX opset "
                                  f"{version}") from None
            declared = {name: (int(a.type), a.required) for name, a in schema.attributes.items()}
            inputs, outputs = len(node.input), len(node.output)
            if not schema.min_input <= inputs <= schema.max_input \
                    or not schema.min_output <= outputs <= schema.max_output:
                raise PascalError(f"{where}: has {count(inputs, inputs, 'input')} and "
                                  f"{count(outputs, outputs, 'output')}; a {node.op_type} has "
                                  f"{count(schema.min_input, schema.max_input, 'input')} and "
                                  f"{count(schema.min_output, schema.max_output, 'output')}")
        given = {}
        for attribute in node.attribute:
            if attribute.name in given:
                raise PascalError(f"{where}: attribute {shown_name(attribute.name)} is given "
                                  f"twice")
            given[attribute.name] = attribute
            if attribute.name not in declared:
                raise PascalError(f"{where}: {shown_name(attribute.name)} is not an attribute of "
                                  f"{node.op_type}")
            kind = declared[attribute.name][0]
            if attribute.type != kind:
                kinds = AttributeProto.AttributeType
                raise PascalError(f"{where}: attribute {attribute.name} is of type "
                                  f"{enum_name(kinds, attribute.type)}, "
                                  f"{node.op_type} takes {enum_name(kinds, kind)}")
        missing = [name for name, (_, required) in declared.items()
                   if required and name not in given]
        if missing:
            raise PascalError(f"{where}: required attribute {missing[0]} is missing")
        auto_pad = node_attr(node, "auto_pad", b"NOTSET")
        auto_pad = auto_pad.decode(errors="replace") if isinstance(auto_pad, bytes) else auto_pad
        if auto_pad != "NOTSET":
            raise PascalError(f"{where}: auto_pad {show_value(auto_pad)} is not supported (give "
                              f"explicit pads)")

    @staticmethod
    def _check_initializers(model) -> None:
        """Every initializer float32 (int64 for a Reshape's shape), numeric and finite: a NaN or
        an infinity in a weight, a scale, a BatchNorm parameter or a bias would become a garbage
        threshold; qonnx's and onnxruntime's execution takes float32 constants."""
        for init in model.graph.initializer:
            users = model.find_consumers(init.name)
            where = f"initializer {shown_name(init.name)}" + (
                f" of {_where(users[0])}" if users else "")
            shape = bool(users) and users[0].op_type == "Reshape" \
                and list(users[0].input[1:2]) == [init.name]
            wanted = TensorProto.INT64 if shape else TensorProto.FLOAT
            if users and init.data_type != wanted:
                raise PascalError(f"{where}: element type "
                                  f"{enum_name(TensorProto.DataType, init.data_type)}; "
                                  f"{'a shape is int64' if shape else 'constants are float32'}")
            try:
                values = np.asarray(model.get_initializer(init.name))
            except Exception as exc:  # onnx cannot decode it (truncated raw data, odd type)
                raise PascalError(f"{where}: unreadable ({type(exc).__name__})") from exc
            if not (np.issubdtype(values.dtype, np.number) or values.dtype == np.bool_):
                raise PascalError(f"{where}: not numeric (dtype {values.dtype})")
            if np.issubdtype(values.dtype, np.inexact) and not np.all(np.isfinite(values)):
                bad = int(np.size(values) - np.count_nonzero(np.isfinite(values)))
                raise PascalError(f"{where}: {bad} of its {values.size} values are NaN or "
                                  f"infinite")

    @staticmethod
    def _check_batchnorm(model, node) -> None:
        """Constant per-channel parameters whose affine form (BatchNormToAffine, in float32:
        A = gamma / sqrt(var + eps), B = beta - A * mean) is finite."""
        where = _where(node)
        if len(node.input) < 5 or not all(_is_const(model, name) for name in node.input[1:5]):
            raise PascalError(f"{where}: BatchNorm parameters must be constants")
        params = [_const(model, name) for name in node.input[1:5]]
        if any(p.ndim != 1 for p in params) or len({p.size for p in params}) != 1:
            raise PascalError(f"{where}: its scale, bias, mean and variance must be vectors of "
                              f"one length (one value per channel); got shapes "
                              f"{', '.join(str(list(p.shape)) for p in params)}")
        epsilon = float(node_attr(node, "epsilon", 1e-5))
        if not np.all(params[3] + epsilon > 0):
            raise PascalError(f"{where}: a BatchNorm variance + epsilon is not positive")
        with np.errstate(all="ignore"):
            gamma, beta, mean, variance = (p.astype(np.float32) for p in params)
            a = gamma / np.sqrt(np.float32(epsilon) + variance)
            b = beta - a * mean
        bad = np.flatnonzero(~(np.isfinite(a) & np.isfinite(b)))
        if bad.size:
            c = int(bad[0])
            raise PascalError(f"{where}: channel {c}: its affine form gamma / sqrt(var + eps) = "
                              f"{a[c]:g}, beta - that * mean = {b[c]:g} overflows float32")

    @staticmethod
    def _check_quant(model, node) -> None:
        where = _where(node)
        if len(node.input) != 4:
            raise PascalError(f"{where}: a Quant node takes 4 inputs, this one {len(node.input)}")
        mode = node_attr(node, "rounding_mode", b"ROUND")
        mode = mode.decode(errors="replace") if isinstance(mode, bytes) else str(mode)
        try:  # qonnx executes every Quant (the pixel quantizer too) with this mode
            resolve_rounding_mode(mode)
        except ValueError:
            raise PascalError(f"{where}: rounding_mode {show_value(mode)} is not a rounding "
                              f"mode of qonnx's Quant") from None
        if _is_const(model, node.input[0]):
            CheckSupported._check_quantized_constant(model, node)
            return  # a weight or bias quantizer: FoldWeightQuant checks the rest
        if not all(_is_const(model, name) for name in node.input[1:]):
            raise PascalError(f"{where}: scale, zero point and bit width must be constants")
        if np.any(_const(model, node.input[2]) != 0):
            raise PascalError(f"{where}: a nonzero zero point on an activation is not "
                              f"supported")
        CheckSupported._check_act_scale(model, node)
        bits = _const(model, node.input[3])
        if bits.size != 1 or not 0 < float(bits) <= 32:  # NaN fails too
            raise PascalError(f"{where}: bit width {_values(bits)} is not a number in (0, 32]")
        if node is input_quantizer(model):
            return  # the input quantizer: PixelsToIntegers checks it
        bits = float(bits)
        signed, narrow = node_attr(node, "signed", 1), node_attr(node, "narrow", 0)
        if bits != int(bits):
            if signed or narrow:
                raise PascalError(f"{where}: a fractional bit width {bits:g} with signed="
                                  f"{int(signed)}, narrow={int(narrow)}; only a QCFS activation "
                                  f"(unsigned, not narrow) has one: log2(L + 1)")
            levels = level_count(bits)
            if not 1 <= levels <= LEVELS_MAX or abs(2.0 ** bits - 1.0 - levels) > 1e-3:
                raise PascalError(f"{where}: bit width {bits:g} does not give a level count "
                                  f"L = 2^bitwidth - 1 in 1..{LEVELS_MAX}")
            return
        codes = max_int(signed, narrow, int(bits)) - min_int(signed, narrow, int(bits))
        if signed and bits == 1:
            codes = 1
        if not 1 <= codes <= LEVELS_MAX:
            raise PascalError(f"{where}: {codes + 1} levels ({bits:g} bits, signed="
                              f"{int(signed)}, narrow={int(narrow)}); an activation of "
                              f"2..{LEVELS_MAX + 1} levels is supported (each level a timestep "
                              f"of spikes)")

    @staticmethod
    def _check_act_scale(model, node) -> None:
        """An activation's scale: positive, finite, one value (per-channel scales are refused
        unless all equal: the next layer's integer weights cannot absorb a scale per input
        channel)."""
        where = _where(node)
        scale = _const(model, node.input[1])
        if not _positive_finite(scale):
            raise PascalError(f"{where}: activation scale {_values(scale)} is not a positive "
                              f"finite number")
        if np.any(scale != scale.reshape(-1)[0]):
            raise PascalError(f"{where}: a per-channel activation scale is not supported (the "
                              f"next layer's integer weights cannot absorb a scale per input "
                              f"channel; use a per-tensor activation quantizer)")

    @staticmethod
    def _check_bipolar(model, node) -> None:
        where = _where(node)
        if len(node.input) != 2 or not _is_const(model, node.input[1]):
            raise PascalError(f"{where}: a BipolarQuant takes its input and a constant scale")
        if _is_const(model, node.input[0]):
            scale = _const(model, node.input[1])
            if not _positive_finite(scale):
                raise PascalError(f"{where}: weight scale {_values(scale)} is not positive and "
                                  f"finite")
            return  # binary weights: FoldWeightQuant
        CheckSupported._check_act_scale(model, node)

    @staticmethod
    def _check_quantized_constant(model, node) -> None:
        """A weight or bias quantizer: FoldWeightQuant turns each value into the integer
        round(value / scale) (clipped to the bit width; qonnx's int_quant, in float32) and the
        integer graph holds those integers as float32 values. float32 holds every integer, and
        rounds a quotient to the right one, only below 2^24: a value 2^24 or more steps of its
        scale from zero (a quotient that overflows float32 too) is refused, naming it."""
        scale = _const(model, node.input[1])
        if not _positive_finite(scale):
            return  # FoldWeightQuant names a bad weight scale
        value = _const(model, node.input[0])
        try:
            steps = np.abs(value / scale)
        except ValueError:
            raise PascalError(f"{_where(node)}: its scale of shape {list(scale.shape)} does not "
                              f"fit its input of shape {list(value.shape)}") from None
        if steps.size and not np.max(steps) < 2 ** 24:
            index = int(np.argmax(steps))
            users = f"initializer {shown_name(node.input[0])} of {_where(node)}"
            worst = np.broadcast_to(value, steps.shape).reshape(-1)[index]
            raise PascalError(f"{users}: the value {worst:g} is "
                              f"{steps.reshape(-1)[index]:.3g} steps of its scale; weights and "
                              f"biases must lie within 2^24 steps (the float32 integer graph)")


class BatchNormToAffine(_QonnxBatchNormToAffine):
    """Expects: BatchNormalization nodes in inference form. Guarantees: none is left; each became
    Mul(A) then Add(B), A = gamma / sqrt(var + eps), B = beta - A * mean (qonnx's pass, float32)."""

    def apply(self, model):
        model, _ = super().apply(model)
        if model.get_nodes_by_op_type("BatchNormalization"):
            raise PascalError("BatchNormalization left after BatchNormToAffine")
        return model, False


def _run_quant(model, node) -> tuple[np.ndarray, np.ndarray, int]:
    """(integer values, scale, bit width) of a Quant or BipolarQuant node on a constant (binary
    weights: the integers -1 and +1, held in 2 bits)."""
    value = _const(model, node.input[0])
    scale = _const(model, node.input[1])
    if node.op_type == "BipolarQuant":
        if not _positive_finite(scale):
            raise PascalError(f"{_where(node)}: weight scale {_values(scale)} is not positive "
                              f"and finite")
        try:
            quantized = binary_quant(value.astype(np.float32), scale.astype(np.float32))
        except ValueError:
            raise PascalError(f"{_where(node)}: its scale of shape {list(scale.shape)} does "
                              f"not fit its input of shape {list(value.shape)}") from None
        return np.rint(np.asarray(quantized, dtype=np.float64) / scale), scale, 2
    zero = _const(model, node.input[2])
    bits = _const(model, node.input[3])
    if np.any(zero != 0):
        raise PascalError(f"{_where(node)}: a nonzero zero point on weights is not supported")
    if bits.size != 1 or not 1 <= float(bits) <= 32 or float(bits) != int(bits):
        raise PascalError(f"{_where(node)}: weight bit width {_values(bits)} is not an integer "
                          f"in 1..32")
    if not _positive_finite(scale):
        raise PascalError(f"{_where(node)}: weight scale {_values(scale)} is not positive and "
                          f"finite")
    mode = node_attr(node, "rounding_mode", b"ROUND")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    quantized = int_quant(value.astype(np.float32), scale.astype(np.float32), zero, bits,
                          node_attr(node, "signed", 1), node_attr(node, "narrow", 0), mode)
    integers = np.asarray(quantized, dtype=np.float64) / scale
    rounded = np.rint(integers)
    if np.max(np.abs(integers - rounded), initial=0.0) > 1e-3:
        raise PascalError(f"{_where(node)}: quantized values are not integers times the scale")
    return rounded, scale, max(2, int(bits))  # 1 bit: qonnx's bipolar -1/+1


class FoldWeightQuant(Transformation):
    """Expects: Conv/Gemm whose weight (and bias) come from Quant nodes on constants (Brevitas'
    weight and Int32Bias quantizers; BipolarQuant for binary weights; a bias may also be a float
    constant). Guarantees: each Conv/Gemm has an integer weight
    initializer (datatype INT<bits> annotated) and no bias; after it, Mul(weight scale) and, where
    there was a bias, Add(the quantized bias as a float constant). Same values up to float32
    rounding of the reassociated product."""

    def apply(self, model):
        for node in list(model.graph.node):
            if node.op_type not in ("Conv", "Gemm"):
                continue
            quant = model.find_producer(node.input[1])
            if quant is None or quant.op_type not in ("Quant", "BipolarQuant"):
                raise PascalError(f"{_where(node)}: its weights are not quantized (no Quant "
                                  f"node); train and export with pascal-fpga")
            weight, scale, bits = _run_quant(model, quant)
            out_channels = weight.shape[0]
            if scale.size not in (1, out_channels):
                raise PascalError(f"{_where(quant)}: weight scale of shape {scale.shape} is "
                                  f"neither per tensor nor per output channel")
            view = (1, -1, 1, 1) if node.op_type == "Conv" else (1, -1)
            bias = None
            if len(node.input) > 2 and node.input[2]:
                bias_quant = model.find_producer(node.input[2])
                if bias_quant is None and _is_const(model, node.input[2]):
                    # a float bias: a hidden layer's thresholds absorb any real offset (the
                    # classifier's must be an integer on its accumulator's scale: checked there)
                    bias = _const(model, node.input[2]).astype(np.float32)
                elif bias_quant is None or bias_quant.op_type != "Quant":
                    raise PascalError(f"{_where(node)}: its bias is neither a constant nor "
                                      f"quantized (Int32Bias)")
                else:
                    bias_int, bias_scale, _ = _run_quant(model, bias_quant)
                    bias = (bias_int * bias_scale).astype(np.float32)
            weight_name = model.make_new_valueinfo_name()
            model.set_initializer(weight_name, weight.astype(np.float32))
            model.set_tensor_datatype(weight_name, DataType[f"INT{bits}"])
            acc = model.make_new_valueinfo_name()
            out = node.output[0]
            new = helper.make_node(node.op_type, [node.input[0], weight_name], [acc],
                                   name=node.name)
            new.attribute.extend(node.attribute)
            scale_name = model.make_new_valueinfo_name()
            model.set_initializer(scale_name, np.broadcast_to(
                scale.astype(np.float32).reshape(-1), (out_channels,)).reshape(view).copy())
            scaled = out if bias is None else model.make_new_valueinfo_name()
            added = [helper.make_node("Mul", [acc, scale_name], [scaled],
                                      name=f"{node.name}_weight_scale")]
            if bias is not None:
                bias_name = model.make_new_valueinfo_name()
                model.set_initializer(bias_name, bias.reshape(view))
                added.append(helper.make_node("Add", [scaled, bias_name], [out],
                                              name=f"{node.name}_bias"))
            index = model.get_node_index(node)
            model.graph.node.remove(node)
            for offset, item in enumerate([new] + added):
                model.graph.node.insert(index + offset, item)
        for node in list(model.graph.node):  # the weight and bias quantizers, now unused
            if node.op_type in ("Quant", "BipolarQuant") and _is_const(model, node.input[0]) \
                    and not model.find_consumers(node.output[0]):
                model.graph.node.remove(node)
        model = model.transform(RemoveUnusedTensors()).transform(InferShapes())
        return model, False  # one pass does it all (qonnx repeats a pass while it says True)


def guard_affine(where: str, a: np.ndarray, b: np.ndarray, boundaries: np.ndarray
                  ) -> np.ndarray:
    """The folded scales ``a`` made safe for the integer thresholds tau_k = (beta_k - b) / a:
    a NaN or infinite scale or offset is an error (nothing non-finite is ever cast to an
    integer). A channel whose every tau lies beyond 2^53 (a vanishing scale) never reaches or
    always passes its boundaries, since accumulators stay below 2^53: it becomes a constant
    channel (a = 0), which gives exactly those levels. A channel with some tau within and some
    beyond is an error."""
    if not np.all(np.isfinite(boundaries)):
        raise PascalError(f"{where}: its rounding boundaries are not finite (step too large)")
    bad = np.flatnonzero(~(np.isfinite(a) & np.isfinite(b)))
    if bad.size:
        c = int(bad[0])
        raise PascalError(f"{where}: channel {c}: the folded scale {a[c]:g} and offset {b[c]:g} "
                          f"(weight and activation scales, BatchNorm, bias) are not finite")
    a = a.copy()
    with np.errstate(all="ignore"):
        tau = (boundaries[None, :] - b[:, None]) / np.where(a == 0, 1.0, a)[:, None]
    beyond = ~(np.abs(tau) < ops.EXACT_LIMIT)  # infinities and NaN too
    for c in np.flatnonzero((a != 0) & beyond.any(axis=1)):
        if not beyond[c].all():
            raise PascalError(f"{where}: channel {c}: some thresholds lie beyond 2^53 and some "
                              f"not (folded scale {a[c]:g}, offset {b[c]:g})")
        a[c] = 0.0
    return a


def _tidy(model):
    """Drops the tensors no node uses any more and infers the new tensors' shapes."""
    return model.transform(RemoveUnusedTensors()).transform(InferShapes())


class NodeRewrite(Transformation):
    """A pass made of one rewrite, tried on each node in graph order: :meth:`rewrite` changes the
    graph at ``node`` (returning True) or leaves it alone (False). ``apply`` runs it over the graph
    once, then tidies (unused tensors dropped, shapes inferred). The steps of ``compile`` apply
    several such rewrites in one walk and tidy once (:class:`ActivationsToThresholds`,
    :class:`LowerToSpikingOps`)."""

    def rewrite(self, model, node) -> bool:
        raise NotImplementedError

    def rewrite_all(self, model) -> None:
        for node in list(model.graph.node):
            if node in model.graph.node:  # not removed by an earlier rewrite
                self.rewrite(model, node)

    def apply(self, model):
        self.rewrite_all(model)
        return _tidy(model), False


# --- from QCFS activations to integer thresholds -------------------------------------------------

LEVEL_VIEWS = "pascal_fpga.level_views"   # metadata, while ActivationsToThresholds runs


@dataclass
class IntView:
    """A tensor's integer form: real value = scale * (mult * code + offset), the integer code in
    0..level_max. A QCFS activation's code is its level (offset 0, mult 1); a signed activation's
    code is its level minus its lowest (offset < 0), a bipolar one's (level + 1) / 2 (offset -1,
    mult 2): hardware carries codes (spike counts), the next layer's thresholds absorb the rest."""

    scale: float
    level_max: int
    offset: int = 0
    mult: int = 1


def _record_view(model, tensor: str, view: IntView) -> None:
    """Records that ``tensor`` now holds integer levels of ``view`` (metadata ``LEVEL_VIEWS``, a
    JSON object; floats survive it exactly), so that a later rewrite can read the real step that
    the graph no longer shows."""
    value = model.get_metadata_prop(LEVEL_VIEWS)
    views = json.loads(value) if value is not None else {}
    views[tensor] = [view.scale, view.level_max, view.offset, view.mult]
    model.set_metadata_prop(LEVEL_VIEWS, json.dumps(views))
    if view.offset != 0 or view.mult != 1:
        _record_codes(model, tensor, view)


LEVEL_CODES = "pascal_fpga.level_codes"   # metadata of the IR: tensors that hold codes


def _record_codes(model, tensor: str, view: IntView) -> None:
    """Records, for ``verify``, that ``tensor`` holds codes whose level is mult * code + offset
    (metadata ``LEVEL_CODES``, a JSON object {tensor: [offset, mult]}; kept in the IR)."""
    value = model.get_metadata_prop(LEVEL_CODES)
    codes = json.loads(value) if value is not None else {}
    codes[tensor] = [view.offset, view.mult]
    model.set_metadata_prop(LEVEL_CODES, json.dumps(codes))


def level_codes(model) -> dict[str, tuple[int, int]]:
    """{tensor: (offset, mult)} of an IR's tensors that hold codes, not levels (foreign models'
    signed and bipolar activations); a tensor not named holds its levels."""
    value = model.get_metadata_prop(LEVEL_CODES)
    if value is None:
        return {}
    try:
        codes = json.loads(value)
        return {str(k): (int(v[0]), int(v[1])) for k, v in codes.items()}
    except (ValueError, TypeError, KeyError, IndexError, AttributeError):
        raise PascalError(f"the IR's metadata {LEVEL_CODES} is damaged (compile again)") from None


def _forget_views(model) -> None:
    props = model.graph.metadata_props
    for index in reversed(range(len(props))):
        if props[index].key == LEVEL_VIEWS:
            del props[index]


def _is_sum_pool(node) -> bool:
    """An AveragePool made a sum by :class:`SumPools` (grouped convolutions are refused before)."""
    return node.op_type == "Conv" and node_attr(node, "group", 1) > 1


def level_view(model, tensor: str) -> IntView | None:
    """The integer form of ``tensor`` once the rewrites below have made it integer levels: the
    pixels after :class:`PixelsToIntegers`, an activation after :class:`ThresholdLayers` or
    :class:`ShiftAddBlocks` (both recorded), and through max pools, reshapes and sum pools (scale
    divided, largest level multiplied by k^2). None for a tensor that is not (yet) levels."""
    producer = model.find_producer(tensor)
    if producer is None or producer.op_type == "MultiThreshold":
        value = model.get_metadata_prop(LEVEL_VIEWS)
        views = json.loads(value) if value is not None else {}
        if tensor not in views:
            return None
        scale, level_max, offset, mult = views[tensor]
        return IntView(float(scale), int(level_max), int(offset), int(mult))
    if producer.op_type in ("MaxPool", "Reshape", "Flatten"):
        return level_view(model, producer.input[0])
    if _is_sum_pool(producer):
        view = level_view(model, producer.input[0])
        kernel = _square(producer, "kernel_shape", 1)
        return None if view is None else IntView(view.scale / kernel ** 2,
                                                 view.level_max * kernel ** 2,
                                                 view.offset * kernel ** 2, view.mult)
    return None


def _not_levels(node) -> PascalError:
    return PascalError(f"{_where(node)}: its input is not a quantized activation")


@dataclass
class _Chain:
    """A weighted layer on its way to its activation: the Conv/Gemm, its input's view, its
    integer weight, the constant Mul/Add/Sub/Div ops after it folded into a * acc + b + common
    per channel (a with the input's scale and mult, b with its offset times each row's weight
    sum; ``common`` the part of the offset that every channel shares, kept apart for the
    classifier, whose argmax it does not change), the tensor they end at and what reads that: the
    activation quantizer, a residual Add, or nothing (the graph output: the classifier)."""

    node: Any
    view: IntView
    weight: np.ndarray
    a: np.ndarray
    b: np.ndarray
    common: float
    ops: list
    tensor: str
    end: Any

    @property
    def offset(self) -> np.ndarray:
        return self.b + self.common


def _affine_step(model, step, a: np.ndarray, b: np.ndarray, common: float
                 ) -> tuple[np.ndarray, np.ndarray, float]:
    """(a, b, common) of x -> a * x + b + common after one constant Mul, Add, Sub or Div, in
    float64 (a per-tensor constant keeps ``common`` apart, a per-channel one folds it into b)."""
    channels = len(a)
    const_name = [i for i in step.input if _is_const(model, i)][0]
    value = _const(model, const_name)
    if value.size not in (1, channels):
        raise PascalError(f"{_where(step)}: a constant that is neither per tensor nor per "
                          f"channel")
    c = np.broadcast_to(value.reshape(-1), (channels,))
    if value.size != 1:
        b, common = b + common, 0.0
    scalar = float(c[0]) if value.size == 1 else None
    op = step.op_type
    if op == "Sub" and step.input[0] == const_name:   # c - x
        a, b, common = -a, -b, -common
        op = "Add"
    if op == "Mul":
        return a * c, b * c, common * scalar if scalar is not None else 0.0
    if op == "Div":
        if np.any(c == 0):
            raise PascalError(f"{_where(step)}: a division by zero")
        return a / c, b / c, common / scalar if scalar is not None else 0.0
    sign = -1.0 if op == "Sub" else 1.0
    if scalar is not None:
        return a, b, common + sign * scalar
    return a, b + sign * c, common


def _layer_chain(model, node) -> _Chain | None:
    """The chain of a Conv/Gemm whose input is integer levels (None otherwise, or once it ends in
    a MultiThreshold: converted), or a PascalError naming the op that breaks it."""
    if node.op_type not in ("Conv", "Gemm") or _is_sum_pool(node):
        return None
    view = level_view(model, node.input[0])
    if view is None:
        return None
    consumers = model.find_consumers(node.output[0])
    if len(consumers) == 1 and consumers[0].op_type == "MultiThreshold":
        return None
    weight = _const(model, node.input[1])
    channels = weight.shape[0]
    a = np.full(channels, view.scale * view.mult, dtype=np.float64)
    b = np.zeros(channels, dtype=np.float64)
    if view.offset:  # W . (mult * code + offset) = mult * acc + offset * (the row's weight sum)
        if node.op_type == "Conv" and _square(node, "pads", 0) > 0:
            raise PascalError(f"{_where(node)}: a padded convolution on a signed or bipolar "
                              f"activation is not supported (its padding, level 0, is no "
                              f"spike count: code {-view.offset}/{view.mult}); pad an "
                              f"unsigned activation, or use no padding")
        b = view.scale * view.offset * weight.reshape(channels, -1).sum(axis=1)
    common = 0.0
    chain = []
    tensor = node.output[0]
    end = None
    while True:
        step = _only_consumer(model, tensor, node if not chain else chain[-1])
        if step is None:
            break
        if step.op_type == "Add" and not any(_is_const(model, i) for i in step.input):
            end = step   # a residual block's add
            break
        if step.op_type in AFFINE:
            a, b, common = _affine_step(model, step, a, b, common)
            chain.append(step)
            tensor = step.output[0]
            continue
        if _is_qcfs(step):
            end = step
            break
        raise PascalError(f"{_where(step)}: expected the affine ops or the activation "
                          f"quantizer of layer {shown_name(node.name)}")
    return _Chain(node, view, weight, a, b, common, chain, tensor, end)


def _take_chain(model, chain: _Chain) -> tuple[tuple, dict]:
    """Checks the layer's weight against its input and removes its affine ops: (its input shape,
    its geometry: kernel, stride, pad for a Conv)."""
    node = chain.node
    in_shape = tuple(model.get_tensor_shape(node.input[0])[1:])
    conv = node.op_type == "Conv"
    geometry = dict(kernel=_square(node, "kernel_shape", 1), stride=_square(node, "strides", 1),
                    pad=_square(node, "pads", 0)) if conv else {}
    if conv and chain.weight.shape[1] != in_shape[0]:
        raise PascalError(f"{_where(node)}: weight shape {chain.weight.shape} does not fit input "
                          f"{in_shape}")
    for item in chain.ops:
        model.graph.node.remove(item)
    return in_shape, geometry


class PixelsToIntegers(NodeRewrite):
    """Expects: the output of FoldWeightQuant, whose graph input feeds the input quantizer,
    directly or through constant per-tensor Mul/Add/Sub/Div ops (a user's preprocessing such as
    2x - 1). Guarantees: the quantizer and those ops are gone, their readers read the graph
    input, annotated UINT<b>: the graph takes the quantizer's integer codes (b its bit width).

    Our own models' quantizer takes integer pixels (scale 1, unsigned, no preprocessing): the
    codes are the pixels (level view: scale 1, levels 0..2^b - 1). Any other input quantizer (a
    foreign model's signed Q1.7, a scale 1/255, preprocessing before it) is recorded as the
    build's input adapter (metadata ``pascal_fpga.input_adapter``, :mod:`.adapter`): the host
    turns the model's own input into codes with the model's own ops and quantizer, exactly as
    qonnx executes them, and the accelerator takes the codes; the level view is then the
    quantizer's scale with code 0 at its lowest level."""

    def rewrite(self, model, node) -> bool:
        source = model.graph.input[0].name
        if source not in node.input or node.op_type not in AFFINE + ("Quant", "BipolarQuant"):
            return False
        prefix = []
        while node is not None and node.op_type in AFFINE:
            consts = [i for i in node.input if _is_const(model, i)]
            if len(consts) != 1 or _const(model, consts[0]).size != 1:
                raise PascalError(f"{_where(node)}: the input's preprocessing must be constant "
                                  f"per-tensor Mul, Add, Sub or Div ops before its quantizer")
            prefix.append(node)
            node = _only_consumer(model, node.output[0], node)
        if node is None or node.op_type not in ("Quant", "BipolarQuant"):
            raise PascalError(f"{_where(prefix[-1])}: the input's preprocessing does not end in "
                              f"an input quantizer (the accelerator takes integer codes)")
        quant = node
        scale = _const(model, quant.input[1])
        if quant.op_type == "BipolarQuant":
            bits, signed, narrow, mode = 1, True, False, "ROUND"
        else:
            bits = _const(model, quant.input[3])
            if bits.size != 1 or float(bits) != int(bits) or \
                    not 1 <= int(bits) <= PIXEL_BITS_MAX:
                raise PascalError(f"{_where(quant)}: the input quantizer's bit width "
                                  f"{_values(bits)} is not an integer in 1..{PIXEL_BITS_MAX}")
            bits = int(bits)
            signed, narrow = bool(node_attr(quant, "signed", 1)), bool(node_attr(quant,
                                                                             "narrow", 0))
            mode = _mode(quant)
        pixels = not prefix and float(scale.reshape(-1)[0]) == 1.0 and not signed and not narrow
        view = IntView(1.0, 2 ** bits - 1)
        if not pixels:
            levels = act_quant(model, quant)
            view = IntView(levels.scale, 2 ** bits - 1, levels.low, levels.mult)
            adapter = {"ops": [[n.op_type, float(_const(model, [i for i in n.input if _is_const(
                                    model, i)][0]).reshape(-1)[0]),
                                _is_const(model, n.input[0])] for n in prefix],
                       "quant": quant.op_type, "scale": levels.scale, "bits": bits,
                       "signed": signed, "narrow": narrow, "rounding_mode": mode,
                       "low": levels.low, "mult": levels.mult, "codes": levels.codes}
            adapter.update(self._pad_on_host(model, quant, view))
            model.set_metadata_prop(INPUT_ADAPTER, json.dumps(adapter))
        for consumer in model.find_consumers(quant.output[0]):
            for i, name in enumerate(consumer.input):
                if name == quant.output[0]:
                    consumer.input[i] = source
        for item in prefix + [quant]:
            model.graph.node.remove(item)
        model.set_tensor_datatype(source, DataType[f"UINT{bits}"])
        _record_view(model, source, view)
        return True

    @staticmethod
    def _pad_on_host(model, quant, view: IntView) -> dict[str, Any]:
        """A padded first convolution on a signed input: its padding is the real value 0, the
        code -offset / mult, not the code 0 that the hardware's window pads with. The host pads
        instead: the adapter writes the padding's code around the image, the convolution gets
        no padding, and the graph takes the padded codes (the same outputs, exactly). The
        adapter's fields for it (none where nothing is padded)."""
        readers = model.find_consumers(quant.output[0])
        padded = [n for n in readers if n.op_type == "Conv" and _square(n, "pads", 0) > 0]
        if not padded or view.offset == 0:
            return {}
        conv = padded[0]
        if len(readers) != 1:
            raise PascalError(f"{_where(conv)}: a padded convolution on a signed input that "
                              f"also feeds other nodes is not supported")
        if view.offset % view.mult:
            raise PascalError(f"{_where(conv)}: a padded convolution on a bipolar input is not "
                              f"supported (the padding, 0, lies between its levels -1 and +1)")
        pad = _square(conv, "pads", 0)
        source = model.graph.input[0].name
        shape = [int(d) for d in model.get_tensor_shape(source)]
        padded_shape = shape[:2] + [shape[2] + 2 * pad, shape[3] + 2 * pad]
        for attribute in conv.attribute:
            if attribute.name == "pads":
                del attribute.ints[:]
                attribute.ints.extend([0, 0, 0, 0])
        model.set_tensor_shape(source, padded_shape)
        return {"pad": pad, "pad_code": -view.offset // view.mult, "model_shape": shape[1:]}


class SumPools(NodeRewrite):
    """Expects: PixelsToIntegers (and the layers before each pool converted). Guarantees: each
    AveragePool on integer levels is a sum pool: a depthwise Conv of ones (group = channels, no
    padding) of the same name, whose integers are k^2 times the average; its level view has
    scale s / k^2 and levels 0..k^2 L, so the 1/k^2 moves into the next layer's thresholds."""

    def rewrite(self, model, node) -> bool:
        if node.op_type != "AveragePool" or level_view(model, node.input[0]) is None:
            return False
        kernel = _square(node, "kernel_shape", 1)
        stride = _square(node, "strides", kernel)
        channels = model.get_tensor_shape(node.input[0])[1]
        ones = model.make_new_valueinfo_name()
        model.set_initializer(ones, np.ones((channels, 1, kernel, kernel), dtype=np.float32))
        new = helper.make_node("Conv", [node.input[0], ones], [node.output[0]], name=node.name,
                               group=channels, kernel_shape=[kernel, kernel],
                               strides=[stride, stride], pads=[0, 0, 0, 0])
        index = model.get_node_index(node)
        model.graph.node.remove(node)
        model.graph.node.insert(index, new)
        return True


class ThresholdLayers(NodeRewrite):
    """Expects: PixelsToIntegers and SumPools. Each weighted layer on integer levels that ends in
    a QCFS activation, Conv/Gemm -> constant Mul/Add ops -> QCFS Quant (L levels, step s).
    Guarantees: it is Conv/Gemm -> MultiThreshold (the Quant's name and output tensor, annotated
    UINT<bits>) with L thresholds per channel: T_k the smallest integer accumulator whose real
    pre-activation reaches (k - 1/2) * s (float64, checked; :func:`pascal_fpga.qcfs.
    integer_thresholds`), clamped to the accumulator's exact range [acc_min, acc_max + 1]; weight
    rows with a negative folded scale negated. Its output holds the levels the Quant's output
    held times 1/s. Leaves a block's conv2 and projection (:class:`ShiftAddBlocks`) and the
    classifier (:class:`IntegerClassifier`) alone."""

    def rewrite(self, model, node) -> bool:
        chain = _layer_chain(model, node)
        if chain is None or chain.end is None or not _is_qcfs(chain.end):
            return False
        in_shape, geometry = _take_chain(model, chain)
        end, weight, channels = chain.end, chain.weight, chain.weight.shape[0]
        quant = act_quant(model, end)
        boundaries = quant.boundaries()
        a = guard_affine(_where(end), chain.a, chain.offset, boundaries)
        try:
            thresholds, sign = integer_thresholds(a, chain.offset, boundaries,
                                                  np.zeros(channels, dtype=np.int64),
                                                  quant.strict)
        except PascalError as exc:
            raise PascalError(f"{_where(end)}: {exc}") from exc
        weight = weight * sign.reshape((-1,) + (1,) * (weight.ndim - 1))
        model.set_initializer(node.input[1], weight.astype(np.float32))
        acc_min, acc_max = accumulator_range(weight, chain.view.level_max, in_shape, **geometry)
        thresholds = np.clip(thresholds, acc_min[:, None], acc_max[:, None] + 1)
        t_name = model.make_new_valueinfo_name()
        model.set_initializer(t_name, thresholds.astype(np.float32))
        if np.abs(thresholds).max() >= 2 ** 24:
            raise PascalError(f"{_where(node)}: thresholds beyond 2^24 do not fit float32")
        _threshold_node(model, end, node.output[0], t_name, quant.view())
        return True


def _threshold_node(model, act, source: str, thresholds: str, view: IntView) -> None:
    """Puts a MultiThreshold on ``source`` in the place of the QCFS Quant ``act``."""
    bits = unsigned_bits(view.level_max)
    mt = helper.make_node("MultiThreshold", [source, thresholds], [act.output[0]],
                          name=act.name, domain=QONNX_DOMAIN, out_dtype=f"UINT{bits}")
    index = model.get_node_index(act)
    model.graph.node.remove(act)
    model.graph.node.insert(index, mt)
    model.set_tensor_datatype(act.output[0], DataType[f"UINT{bits}"])
    _record_view(model, act.output[0], view)


def _feeds_residual(model, node) -> bool:
    """A constant Mul/Add/Sub/Div on the way (through such ops) to a residual add."""
    while node is not None and node.op_type in AFFINE:
        if not any(_is_const(model, i) for i in node.input):
            return True
        consumers = model.find_consumers(node.output[0])
        node = consumers[0] if len(consumers) == 1 else None
    return False


def _branch(model, tensor: str, channels: int) -> dict[str, Any]:
    """One operand of a residual add, walked back through its constant Mul/Add ops to a Conv
    (conv2 or a projection) or to a tensor with an integer view (an identity shortcut): the ops,
    the conv (or None), its source tensor, and the affine map a * (integer) + b of the operand
    per channel (a without the source's scale)."""
    ops_back = []
    node = model.find_producer(tensor)
    while node is not None and node.op_type in AFFINE and \
            any(_is_const(model, i) for i in node.input):
        if len(model.find_consumers(node.output[0])) != 1:
            raise PascalError(f"{_where(node)}: a residual branch op with several consumers")
        ops_back.append(node)
        tensor = [i for i in node.input if not _is_const(model, i)][0]
        node = model.find_producer(tensor)
    conv = node if node is not None and node.op_type == "Conv" and \
        node_attr(node, "group", 1) == 1 else None
    source = conv.input[0] if conv is not None else tensor
    if conv is not None and len(model.find_consumers(conv.output[0])) != 1:
        raise PascalError(f"{_where(conv)}: its accumulator feeds several nodes")
    a = np.ones(channels, dtype=np.float64)
    b = np.zeros(channels, dtype=np.float64)
    common = 0.0
    for step in reversed(ops_back):
        a, b, common = _affine_step(model, step, a, b, common)
    view = level_view(model, source)
    if view is not None and (view.offset or view.mult != 1):
        raise PascalError(f"{_where(model.find_consumers(tensor)[0])}: a residual block on "
                          f"signed or bipolar activations is not supported (train the block's "
                          f"input and its conv1 with unsigned activations, 'residual: shift')")
    return {"ops": ops_back, "conv": conv, "source": source, "a": a, "b": b + common,
            "tensor": tensor, "view": view}


class ShiftAddBlocks(NodeRewrite):
    """Expects: ThresholdLayers on the block's input and its conv1. A shift-add block's add
    (docs/design.md, section 2.8), reached from conv2 or the projection: main = a_m * acc2 + b_m
    (conv2, BatchNorm), shortcut = g * v + b_s (v: the block input's levels, or a 1x1
    projection's accumulator), g = |a_m| * 2^e per channel, the add feeding one QCFS Quant.
    Guarantees: conv2 (rows with a_m < 0 negated) -> Mul(2^shift_main) and the shortcut ->
    Mul(2^shift_short) -> Add -> MultiThreshold (the Quant's name and output) with L thresholds
    on n = (acc2 << max(0, -e)) + (v << max(0, e)), clamped to n's exact range: the block's output
    levels. Refuses a gain ratio that is not a power of two. Leaves a block alone while conv2's
    input is not levels yet (a projection met first)."""

    def rewrite(self, model, node) -> bool:
        chain = _layer_chain(model, node)
        if chain is None or chain.end is None or chain.end.op_type != "Add":
            return False
        return self._residual(model, chain.end)

    @staticmethod
    def _residual(model, add) -> bool:
        where = _where(add)
        channels = int(model.get_tensor_shape(add.output[0])[1])
        act = model.find_consumers(add.output[0])
        if len(act) == 1 and act[0].op_type == "MultiThreshold":
            return False   # converted, from its other conv
        if len(act) != 1 or not _is_qcfs(act[0]):
            raise PascalError(f"{where}: a residual add must feed one QCFS activation")
        act = act[0]
        one, two = (_branch(model, t, channels) for t in add.input)

        def is_shortcut(branch) -> bool:
            source_users = len(model.find_consumers(branch["source"]))
            return branch["conv"] is None or source_users >= 2

        if is_shortcut(one) == is_shortcut(two):
            raise PascalError(f"{where}: cannot tell the main path (conv2) from the shortcut (the "
                              f"identity, or a 1x1 projection of the block input)")
        main, short = (two, one) if is_shortcut(one) else (one, two)
        if main["conv"] is None:
            raise PascalError(f"{where}: the main path does not start at a convolution")
        if main["view"] is None or short["view"] is None:
            return False   # conv2's input (act1) not converted yet: conv2's chain comes back here
        conv2, conv_sc = main["conv"], short["conv"]
        if conv_sc is not None and (_square(conv_sc, "kernel_shape", 1) != 1
                                    or _square(conv_sc, "pads", 0) != 0):
            raise PascalError(f"{_where(conv_sc)}: a projection shortcut must be a 1x1 "
                              f"convolution without padding")
        in_view, mid_view = short["view"], main["view"]
        a_m = main["a"] * mid_view.scale
        b = main["b"] + short["b"]
        g = short["a"] * in_view.scale
        zero = a_m == 0
        if np.any(zero & (g != 0)):
            c = int(np.flatnonzero(zero & (g != 0))[0])
            raise PascalError(f"{where}: channel {c}: conv2's gain is 0 but the shortcut's is "
                              f"{g[c]:g} (not a shift-add block)")
        if np.any(g[~zero] <= 0) or not np.all(np.isfinite(g)) or not np.all(np.isfinite(a_m)):
            raise PascalError(f"{where}: the shortcut's gain is not positive and finite")
        ratio = np.where(zero, 1.0, g / np.where(zero, 1.0, np.abs(a_m)))
        e = np.rint(np.log2(ratio)).astype(np.int64)
        off = np.abs(ratio / 2.0 ** e - 1.0)
        if np.any(off > 1e-3) or np.any(np.abs(e) > 24):
            c = int(np.argmax(off))
            raise PascalError(f"{where}: channel {c}: the shortcut's gain is {ratio[c]:.6g} "
                              f"times conv2's, not a power of two (train the block with "
                              f"'residual: shift')")
        shift_main, shift_short = np.maximum(0, -e), np.maximum(0, e)
        unit = np.abs(a_m) * 2.0 ** np.minimum(0, e)
        quant = act_quant(model, act)
        boundaries = quant.boundaries()
        unit = guard_affine(_where(act), unit, b, boundaries)
        try:
            thresholds, _ = integer_thresholds(unit, b, boundaries,
                                               np.zeros(channels, dtype=np.int64), quant.strict)
        except PascalError as exc:
            raise PascalError(f"{_where(act)}: {exc}") from exc
        weight2 = _const(model, conv2.input[1])
        sign = np.where(a_m < 0, -1.0, 1.0).reshape(-1, 1, 1, 1)
        weight2 = weight2 * sign
        geometry2 = dict(kernel=_square(conv2, "kernel_shape", 1),
                         stride=_square(conv2, "strides", 1), pad=_square(conv2, "pads", 0))
        in2 = tuple(model.get_tensor_shape(conv2.input[0])[1:])
        m_min, m_max = accumulator_range(weight2, mid_view.level_max, in2, **geometry2)
        if conv_sc is None:
            v_min = np.zeros(channels, dtype=np.int64)
            v_max = np.full(channels, in_view.level_max, dtype=np.int64)
        else:
            in_sc = tuple(model.get_tensor_shape(conv_sc.input[0])[1:])
            v_min, v_max = accumulator_range(_const(model, conv_sc.input[1]), in_view.level_max,
                                             in_sc, stride=_square(conv_sc, "strides", 1))
        n_min = (m_min << shift_main) + (v_min << shift_short)
        n_max = (m_max << shift_main) + (v_max << shift_short)
        thresholds = np.clip(thresholds, n_min[:, None], n_max[:, None] + 1)
        if max(abs(int(n_min.min())), abs(int(n_max.max())) + 1) >= 2 ** 24:
            raise PascalError(f"{where}: the block's integer sum reaches 2^24, beyond what the "
                              f"float32 graph holds exactly")
        # the graph: conv2 and the projection end at their accumulators
        for node in main["ops"] + short["ops"]:
            model.graph.node.remove(node)
        model.set_initializer(conv2.input[1], weight2.astype(np.float32))
        view = (1, -1, 1, 1)
        shifted = []
        for part, branch, shifts in (("main", main, shift_main), ("short", short, shift_short)):
            factor = model.make_new_valueinfo_name()
            model.set_initializer(factor, (2.0 ** shifts).astype(np.float32).reshape(view))
            out = model.make_new_valueinfo_name()
            mul = helper.make_node("Mul", [branch["tensor"], factor], [out],
                                   name=f"{add.name}_shift_{part}")
            model.graph.node.insert(model.get_node_index(add), mul)
            shifted.append(out)
        add.input[0], add.input[1] = shifted
        t_name = model.make_new_valueinfo_name()
        model.set_initializer(t_name, thresholds.astype(np.float32))
        _threshold_node(model, act, add.output[0], t_name, quant.view())
        return True


class IntegerClassifier(NodeRewrite):
    """Expects: ThresholdLayers (and ShiftAddBlocks) before it. The last weighted layer, on
    integer levels, with no activation: Conv/Gemm -> constant Mul/Add ops -> the graph output.
    Guarantees: it is Gemm -> Add(integer bias) -> Mul(out_scale) (metadata
    ``pascal_fpga.out_scale``), which gives the logits it gave; refuses per-channel scales and a
    bias that is not an integer on the accumulator's scale."""

    def rewrite(self, model, node) -> bool:
        chain = _layer_chain(model, node)
        if chain is None or chain.end is not None:
            return False
        _take_chain(model, chain)
        if chain.tensor != model.graph.output[0].name:
            raise PascalError(f"{_where(node)}: the layer ends without an activation but is "
                              f"not the graph's output")
        a, b = chain.a, chain.b
        weight = chain.weight
        if chain.view.mult != 1:  # a bipolar input: its mult into the weights, so that the
            # offset (the level -1 times each row's weight sum) is an integer bias
            weight = weight * chain.view.mult
            a = a / chain.view.mult
        if np.all(a < 0):  # a negative scale (an affine such as TensorNorm after the layer):
            weight, a = -weight, -a   # a * acc = (-a) * (-acc), accumulated with -W
        if weight is not chain.weight:
            model.set_initializer(node.input[1], weight.astype(np.float32))
            model.set_tensor_datatype(node.input[1], DataType[
                f"INT{signed_bits(int(weight.min()), int(weight.max()))}"])
        if chain.common and not np.isfinite(chain.common):
            raise PascalError(f"{_where(node)}: the classifier's common offset is not finite")
        # a per-tensor offset after the classifier (TensorNorm, a scalar Add) moves every logit
        # alike: not part of the integer accumulators; verify and the driver add it back
        if chain.common:
            model.set_metadata_prop(OUT_OFFSET, repr(float(chain.common)))
        self._classifier(model, node, a, b, chain.tensor)
        return True

    @staticmethod
    def _classifier(model, node, a, b, out) -> None:
        if not np.allclose(a, a[0], rtol=0, atol=0):
            raise PascalError(f"{_where(node)}: the classifier has per-channel scales; its "
                              f"argmax needs one scale (use a per-tensor weight quantizer)")
        scale = float(a[0])
        if not (np.isfinite(scale) and scale > 0 and np.all(np.isfinite(b))):
            raise PascalError(f"{_where(node)}: the classifier's scale {scale:g} is not positive "
                              f"and finite, or its bias is not finite (the class is the argmax "
                              f"of its accumulators)")
        # Int32Bias' integers times the scale, rounded to float32 by the export (and the scale
        # rounded twice over): an integer bias comes back within a few float32 steps of its
        # magnitude, 2^-20 relative leaves 8 of them; below 2^18 that stays under 1/4
        bias = b / scale
        largest = float(np.max(np.abs(bias), initial=0.0))
        if largest >= BIAS_MAX:
            raise PascalError(f"{_where(node)}: the classifier bias reaches {largest:.0f} "
                              f"accumulator steps, beyond the 2^18 whose integers the float32 "
                              f"export identifies exactly (fewer weight bits in the classifier)")
        tolerance = np.maximum(1e-3, np.abs(bias) * 2.0 ** -20)
        if np.any(np.abs(bias - np.rint(bias)) > tolerance):
            raise PascalError(f"{_where(node)}: the classifier bias is not an integer on the "
                              f"accumulator scale (a float bias: quantize it with Int32Bias, on "
                              f"the scale of the classifier's input times its weights)")
        acc = node.output[0]
        biased = model.make_new_valueinfo_name()
        bias_name = model.make_new_valueinfo_name()
        scale_name = model.make_new_valueinfo_name()
        model.set_initializer(bias_name, np.rint(bias).astype(np.float32).reshape(1, -1))
        model.set_initializer(scale_name, np.asarray(scale, dtype=np.float32))
        model.set_metadata_prop("pascal_fpga.out_scale", repr(scale))
        index = model.get_node_index(node)
        model.graph.node.insert(index + 1, helper.make_node(
            "Add", [acc, bias_name], [biased], name=f"{node.name}_bias"))
        model.graph.node.insert(index + 2, helper.make_node(
            "Mul", [biased, scale_name], [out], name=f"{node.name}_out_scale"))


def _check_in_layer(model, node) -> None:
    """A node that no rewrite took: fine where it is a pool, reshape or converted layer on
    levels, or a shortcut's scale on its way to a residual add; else a PascalError."""
    op = node.op_type
    if op in ("MaxPool", "Reshape", "Flatten", "AveragePool", "Conv", "Gemm"):
        if level_view(model, node.input[0]) is None:
            raise _not_levels(node)
    elif op in AFFINE and _feeds_residual(model, node):
        return  # a shortcut's scale: converted with its block's add
    elif op in AFFINE + ("Quant", "BipolarQuant"):
        raise PascalError(f"{_where(node)}: not part of a layer (a weighted layer, its "
                          f"affine ops, then a QCFS activation)")


class ActivationsToThresholds(Transformation):
    """Expects: the output of FoldWeightQuant. Guarantees: tensors between layers are integer
    levels. The pixel quantizer (scale 1, zero point 0) is removed: the graph takes the integer
    pixels. Each chain Conv/Gemm -> Mul/Add constants -> QCFS Quant becomes Conv/Gemm ->
    MultiThreshold with L thresholds per channel, T_k the smallest integer accumulator whose real
    pre-activation reaches (k - 1/2) * step (float64, checked), clamped to the accumulator's exact
    range [acc_min, acc_max + 1]; rows with a negative folded scale are negated. Each AveragePool
    becomes a sum (a depthwise Conv of ones; its 1/k^2 goes into the next thresholds). The last
    chain (no activation: the classifier) becomes Gemm -> Add(integer bias) -> Mul(out_scale).

    It walks the graph once, in order, and gives each node to the first of ``REWRITES`` that takes
    it (one pass after another would do the same, but qonnx names new tensors at random, seeded
    by compile: the walk keeps the names, and so the saved model, as they are); a node none takes
    must be part of a layer, and every residual add must end converted."""

    REWRITES = (PixelsToIntegers, SumPools, ThresholdLayers, ShiftAddBlocks, IntegerClassifier)

    def apply(self, model):
        _forget_views(model)   # only the rewrites below record views
        rewrites = [kind() for kind in self.REWRITES]
        for node in list(model.graph.node):
            if node in model.graph.node and not any(r.rewrite(model, node) for r in rewrites):
                _check_in_layer(model, node)
        for node in model.graph.node:
            if node.op_type == "Add" and not any(_is_const(model, i) for i in node.input) and \
                    [n.op_type for n in model.find_consumers(node.output[0])] != ["MultiThreshold"]:
                raise PascalError(f"{_where(node)}: a residual add whose branches are not a "
                                  f"shift-add block (conv2 + BatchNorm, and an identity or 1x1 "
                                  f"projection shortcut scaled by a constant)")
        _forget_views(model)
        return _tidy(model), False


OUT_OFFSET = "pascal_fpga.out_offset"


def output_offset(model) -> float:
    """What every logit of the source model has beyond out_scale times the integer accumulator:
    a per-tensor offset after the classifier (TensorNorm, a scalar Add; 0 for our own models)."""
    value = model.get_metadata_prop(OUT_OFFSET)
    try:
        offset = float(value) if value is not None else 0.0
    except ValueError:
        offset = float("nan")
    if not np.isfinite(offset):
        raise PascalError(f"the IR's metadata {OUT_OFFSET} {value!r} is not a finite number "
                          f"(compile again)")
    return offset


def output_scale(model) -> float:
    """The classifier's logits per integer accumulator (set by ActivationsToThresholds)."""
    value = model.get_metadata_prop("pascal_fpga.out_scale")
    if value is None:
        raise PascalError("the model has no classifier output scale (not a compiled IR)")
    return float(value)


# --- from thresholded layers to the IR's ops -----------------------------------------------------

def _levels(model, tensor: str) -> tuple[int, int]:
    """(largest value, timesteps) of a tensor between layers, read from its producer, lowered or
    not: integer pixels (2^b - 1, one frame), a MultiThreshold's L levels (L frames), through
    pools (a sum pool multiplies the largest value by k^2), reshapes and forks."""
    producer = model.find_producer(tensor)
    if producer is None:
        return int(model.get_tensor_datatype(tensor).max()), 1
    op = producer.op_type
    if op == "MultiThreshold":
        levels = int(model.get_initializer(producer.input[1]).shape[1])
        return levels, levels
    if op in ("MaxPool", "Reshape", "Flatten"):
        return _levels(model, producer.input[0])
    if _is_sum_pool(producer):
        level_max, timesteps = _levels(model, producer.input[0])
        return level_max * _square(producer, "kernel_shape", 1) ** 2, timesteps
    if op in ("SpikingMaxPool", "SpikingFork"):
        return node_attr(producer, "in_max"), node_attr(producer, "t_out")
    if op == "SpikingSumPool":
        return node_attr(producer, "in_max") * node_attr(producer, "kernel") ** 2, \
            node_attr(producer, "t_out")
    if producer.domain == ops.DOMAIN:
        return node_attr(producer, "t_out"), node_attr(producer, "t_out")
    raise PascalError(f"{_where(producer)}: unexpected after ActivationsToThresholds")


def _shape(model, tensor: str) -> list[int]:
    return [int(d) for d in model.get_tensor_shape(tensor)[1:]]


def _lower(model, old, new, consumed=()) -> None:
    """``new`` (an IR op) in the place of ``old``; the ``consumed`` nodes removed."""
    index = model.get_node_index(old)
    model.graph.node.remove(old)
    model.graph.node.insert(index, new)
    for node in consumed:
        model.graph.node.remove(node)
    model.set_opset_import(ops.DOMAIN, 1)


class AbsorbFlatten(NodeRewrite):
    """Expects: ActivationsToThresholds' output. Guarantees: no Flatten or Reshape is left; the
    dense layer each fed reads its 4D source (dense ops flatten C, H, W themselves). Refuses a
    reshape that feeds anything but a dense layer."""

    def rewrite(self, model, node) -> bool:
        if node.op_type not in ("Reshape", "Flatten"):
            return False
        for consumer in model.find_consumers(node.output[0]):
            if consumer.op_type != "Gemm":
                raise PascalError(f"{_where(node)}: a reshape that does not feed a dense "
                                  f"layer is not supported")
            consumer.input[0] = node.input[0]
        model.graph.node.remove(node)
        return True


class LowerShiftAddBlocks(NodeRewrite):
    """Expects: ActivationsToThresholds' output. Guarantees: each residual block's add, its
    shift Muls and MultiThreshold are one SpikingAdd (see ops.SpikingAdd: the shifts as
    per-channel initializers, the exact range and width of n), and conv2 and a projection are
    SpikingConvAccs emitting their accumulators (exact range and width)."""

    def rewrite(self, model, node) -> bool:
        if node.op_type != "Add" or any(_is_const(model, i) for i in node.input):
            return False
        ranges: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for tensor in node.input:
            mul = model.find_producer(tensor)
            conv = model.find_producer(mul.input[0]) if mul is not None else None
            if conv is not None and conv.op_type == "Conv":
                _lower(model, conv, self._accumulator(model, conv, ranges))
        self._add(model, node, ranges)
        return True

    @staticmethod
    def _accumulator(model, node, ranges):
        """A block's conv2 or projection: SpikingConvAcc, its accumulators out."""
        source = node.input[0]
        if source == model.graph.input[0].name:
            raise PascalError(f"{_where(node)}: a residual block on the pixels is not supported "
                              f"(start the network with a convolution)")
        level_max, timesteps = _levels(model, source)
        weight = _const(model, node.input[1])
        in_shape = _shape(model, source)
        geometry = dict(kernel=_square(node, "kernel_shape", 1),
                        stride=_square(node, "strides", 1), pad=_square(node, "pads", 0))
        acc_min, acc_max = accumulator_range(weight, level_max, in_shape, **geometry)
        ranges[node.output[0]] = (acc_min, acc_max)
        low, high = int(acc_min.min()), int(acc_max.max())
        wdt = model.get_tensor_datatype(node.input[1])
        bits = int(wdt.bitwidth()) if wdt.is_integer() and wdt.signed() else \
            signed_bits(int(weight.min()), int(weight.max()))
        return ops.make_node(
            "SpikingConvAcc", [source, node.input[1]], [node.output[0]], node.name,
            t_in=timesteps, in_max=level_max, in_shape=in_shape, t_out=1,
            out_shape=_shape(model, node.output[0]), weight_bits=bits, acc_min=low,
            acc_max=high, acc_bits=signed_bits(low, high), layer=node.name, **geometry)

    @staticmethod
    def _add(model, node, ranges) -> None:
        """A block's add and activation: SpikingAdd (see ops.SpikingAdd)."""
        mt = model.find_consumer(node.output[0])
        parts, muls = [], []
        for tensor in node.input:   # the shift Muls: (source tensor, shifts)
            mul = model.find_producer(tensor)
            source = [i for i in mul.input if not _is_const(model, i)][0]
            factor = _const(model, [i for i in mul.input if _is_const(model, i)][0]).reshape(-1)
            parts.append((source, np.rint(np.log2(factor)).astype(np.int64)))
            muls.append(mul)
        (main, shift_main), (short, shift_short) = parts
        thresholds = _const(model, mt.input[1])
        channels, levels = thresholds.shape
        short_acc = short in ranges
        m_min, m_max = ranges[main]
        if short_acc:
            v_min, v_max = ranges[short]
            t_in, in_max = 1, 1
            short_bits = signed_bits(int(v_min.min()), int(v_max.max()))
        else:
            in_max, t_in = _levels(model, short)
            v_min, v_max = np.zeros(channels, np.int64), np.full(channels, in_max, np.int64)
            short_bits = unsigned_bits(in_max)
        n_min = (m_min << shift_main) + (v_min << shift_short)
        n_max = (m_max << shift_main) + (v_max << shift_short)
        low = min(int(n_min.min()), int(thresholds.min()))
        high = max(int(n_max.max()), int(thresholds.max()))
        names = []
        for values in (shift_main, shift_short):
            name = model.make_new_valueinfo_name()
            model.set_initializer(name, values.astype(np.float32))
            names.append(name)
        out = mt.output[0]
        _lower(model, node, ops.make_node(
            "SpikingAdd", [main, short, mt.input[1]] + names, [out], node.name,
            t_in=t_in, in_max=in_max, t_out=levels, in_shape=_shape(model, out),
            out_shape=_shape(model, out), short_acc=int(short_acc),
            main_bits=signed_bits(int(m_min.min()), int(m_max.max())),
            short_bits=short_bits, n_min=int(n_min.min()), n_max=int(n_max.max()),
            n_bits=signed_bits(low, high),
            shift_bits=unsigned_bits(int(max(shift_main.max(), shift_short.max()))),
            layer=f"{node.name}+{mt.name}"), consumed=muls + [mt])


class LowerPools(NodeRewrite):
    """Expects: ActivationsToThresholds' output (LowerShiftAddBlocks first, where a block's
    shortcut is a sum pool's). Guarantees: each MaxPool is a SpikingMaxPool (the OR of thermometer
    trains) and each sum pool a SpikingSumPool (frame-wise sums, largest value times k^2), with
    their timesteps, input range and shapes."""

    def rewrite(self, model, node) -> bool:
        if node.op_type != "MaxPool" and not _is_sum_pool(node):
            return False
        source = node.input[0]
        level_max, timesteps = _levels(model, source)
        kernel = _square(node, "kernel_shape", 1)
        op_type = "SpikingMaxPool" if node.op_type == "MaxPool" else "SpikingSumPool"
        _lower(model, node, ops.make_node(
            op_type, [source], [node.output[0]], node.name, kernel=kernel,
            stride=_square(node, "strides", kernel), t_in=timesteps, t_out=timesteps,
            in_max=level_max, in_shape=_shape(model, source),
            out_shape=_shape(model, node.output[0]), layer=node.name))
        return True


def _weighted_common(model, node, weight) -> dict[str, Any]:
    """A weighted layer's attributes from its input and weights (in_shape, timesteps, weight
    bits, geometry), after AbsorbFlatten."""
    source = node.input[0]
    conv = node.op_type == "Conv"
    in_shape = _shape(model, source)
    geometry = dict(kernel=_square(node, "kernel_shape", 1),
                    stride=_square(node, "strides", 1), pad=_square(node, "pads", 0)) \
        if conv else {}
    if not conv and int(np.prod(in_shape)) != weight.shape[1]:
        raise PascalError(f"{_where(node)}: {weight.shape[1]} inputs per output, the input "
                          f"has {in_shape}")
    level_max, timesteps = _levels(model, source)
    wdt = model.get_tensor_datatype(node.input[1])
    bits = int(wdt.bitwidth()) if wdt.is_integer() and wdt.signed() else None
    return dict(t_in=timesteps, in_max=level_max, in_shape=in_shape,
                weight_bits=bits or signed_bits(int(weight.min()), int(weight.max())),
                **geometry)


def _accumulator_attrs(node, acc_min, acc_max) -> dict[str, int]:
    low, high = int(acc_min.min()), int(acc_max.max())
    if max(abs(low), abs(high)) >= ops.EXACT_LIMIT:
        raise PascalError(f"{_where(node)}: accumulators beyond 2^53 are not supported")
    return dict(acc_min=low, acc_max=high, acc_bits=signed_bits(low, high))


class LowerWeightedLayers(NodeRewrite):
    """Expects: AbsorbFlatten. Guarantees: each Conv/Gemm followed by a MultiThreshold is one
    PixelConv/PixelDense (on the graph input) or SpikingConv/SpikingDense, with its timesteps
    (t_in, t_out = L), input range, shapes, weight bits, threshold width and the exact
    accumulator range and width."""

    def rewrite(self, model, node) -> bool:
        follower = model.find_consumers(node.output[0])
        if node.op_type not in ("Conv", "Gemm") or _is_sum_pool(node) or len(follower) != 1 \
                or follower[0].op_type != "MultiThreshold":
            return False
        weight = _const(model, node.input[1])
        conv = node.op_type == "Conv"
        common = _weighted_common(model, node, weight)
        mt = follower[0]
        thresholds = _const(model, mt.input[1])
        levels = thresholds.shape[1]
        geometry = {k: common[k] for k in ("kernel", "stride", "pad") if k in common}
        acc_min, acc_max = accumulator_range(weight, common["in_max"], common["in_shape"],
                                             **geometry)
        first = node.input[0] == model.graph.input[0].name
        op_type = ("Pixel" if first else "Spiking") + ("Conv" if conv else "Dense")
        _lower(model, node, ops.make_node(
            op_type, [node.input[0], node.input[1], mt.input[1]], [mt.output[0]], node.name,
            t_out=levels, out_shape=_shape(model, mt.output[0]),
            **_accumulator_attrs(node, acc_min, acc_max), layer=f"{node.name}+{mt.name}",
            **common,
            threshold_bits=signed_bits(int(thresholds.min()), int(thresholds.max()))),
            consumed=[mt])
        return True


class LowerClassifier(NodeRewrite):
    """Expects: LowerWeightedLayers and LowerShiftAddBlocks. Guarantees: the classifier, Gemm ->
    Add(integer bias) -> Mul(out_scale) -> the graph output, is one SpikingClassifier named
    ``classifier`` (integer accumulators from the bias, exact range and width below 2^24, the
    float32 output). Refuses any other weighted layer without an activation."""

    def rewrite(self, model, node) -> bool:
        if node.op_type not in ("Conv", "Gemm"):
            return False
        weight = _const(model, node.input[1])
        common = _weighted_common(model, node, weight)
        follower = model.find_consumers(node.output[0])
        add = follower[0] if len(follower) == 1 and follower[0].op_type == "Add" else None
        mul = model.find_consumer(add.output[0]) if add is not None else None
        if node.op_type == "Conv" or mul is None or mul.op_type != "Mul":
            raise PascalError(f"{_where(node)}: a weighted layer without activation that is "
                              f"not the classifier")
        bias_name = [i for i in add.input if _is_const(model, i)][0]
        bias = _const(model, bias_name).reshape(-1)
        model.set_initializer(bias_name, bias.astype(np.float32))
        acc_min, acc_max = accumulator_range(weight, common["in_max"], common["in_shape"],
                                             bias=bias)
        if max(abs(int(acc_min.min())), abs(int(acc_max.max()))) >= 2 ** 24:
            raise PascalError(f"{_where(node)}: classifier accumulators beyond 2^24 do not "
                              f"fit the float32 output")
        _lower(model, node, ops.make_node(
            "SpikingClassifier", [node.input[0], node.input[1], bias_name], [mul.output[0]],
            "classifier", t_out=common["t_in"], out_shape=_shape(model, mul.output[0]),
            **_accumulator_attrs(node, acc_min, acc_max),
            layer=f"{node.name}+{add.name}+{mul.name}", **common,
            out_scale=float(_const(model, mul.input[1]))), consumed=[add, mul])
        return True


class InsertForks(Transformation):
    """Expects: every layer lowered. Guarantees: a SpikingFork before every tensor read by two
    layers (a block input: conv1 and the shortcut); output 0 (``<tensor>_main``) feeds the main
    path, output 1 (``<tensor>_short``) the shortcut. Refuses a tensor read by more than two
    layers, or by two that are not a block's main path and shortcut."""

    def apply(self, model):
        lowered = list(model.graph.node)
        readers: dict[str, list] = {}
        for node in lowered:
            for tensor in node.input[:1] if node.op_type != "SpikingAdd" else node.input[:2]:
                readers.setdefault(tensor, []).append(node)
        adds = [n for n in lowered if n.op_type == "SpikingAdd"]
        for node in lowered:
            for tensor in (node.input[:1] if node.op_type != "SpikingAdd" else node.input[:2]):
                users = readers.get(tensor, [])
                if len(users) < 2 or users[0] is not node:
                    continue
                if len(users) > 2:
                    raise PascalError(f"tensor {shown_name(tensor)} feeds {len(users)} layers; "
                                      f"only a residual block's fork (two) is supported")

                def shortcut(user) -> bool:
                    if user.op_type == "SpikingAdd":
                        return True
                    return user.op_type == "SpikingConvAcc" and any(
                        a.input[1] == user.output[0] for a in adds)

                kinds = [shortcut(u) for u in users]
                if sorted(kinds) != [False, True]:
                    raise PascalError(f"tensor {shown_name(tensor)} feeds two layers that are not "
                                      f"a block's main path and shortcut")
                level_max, timesteps = _levels(model, tensor)
                outs = [f"{tensor}_main", f"{tensor}_short"]
                for user, is_short in zip(users, kinds):
                    target = outs[1] if is_short else outs[0]
                    for i, name in enumerate(user.input):
                        if name == tensor and (user.op_type != "SpikingAdd" or i == 1):
                            user.input[i] = target
                model.graph.node.insert(model.get_node_index(node), ops.make_node(
                    "SpikingFork", [tensor], outs, "fork", t_in=timesteps, t_out=timesteps,
                    in_max=level_max, in_shape=_shape(model, tensor),
                    out_shape=_shape(model, tensor), layer=""))
        return model, False


NAME_KINDS = {"PixelConv": "conv", "SpikingConv": "conv", "SpikingConvAcc": "conv",
              "PixelDense": "dense", "SpikingDense": "dense", "SpikingMaxPool": "pool",
              "SpikingSumPool": "sumpool", "SpikingAdd": "add", "SpikingFork": "fork"}


class NameLayers(Transformation):
    """Expects: every layer lowered (InsertForks). Guarantees: every node is an op of
    :mod:`.ops`, named by its kind and its place among that kind in graph order: conv0, conv1,
    ..., dense0, pool0, sumpool0, add0, fork0, and ``classifier``."""

    def apply(self, model):
        counters: dict[str, int] = {}
        for node in model.graph.node:
            if node.domain != ops.DOMAIN:
                raise PascalError(f"{_where(node)}: unexpected after ActivationsToThresholds")
            kind = NAME_KINDS.get(node.op_type)
            if kind is not None:
                node.name = f"{kind}{counters.get(kind, 0)}"
                counters[kind] = counters.get(kind, 0) + 1
        return model, False


THRESHOLDED_OPS = {"Conv", "Gemm", "MaxPool", "Reshape", "Flatten", "MultiThreshold", "Add",
                   "Mul"}


class LowerToSpikingOps(Transformation):
    """Expects: the output of ActivationsToThresholds. Guarantees: every node is an op of
    :mod:`.ops` (one per hardware layer, named conv0, pool0, dense0, classifier, ... in order),
    with its timesteps (t_in, t_out), input range, shapes, weight bits and the exact accumulator
    range and width; the graph input is integer pixels, the output the classifier's integer
    accumulators. Flatten/Reshape before a dense layer is absorbed (dense ops flatten C, H, W).

    It applies ``PASSES`` in order, each over the whole graph, and tidies once."""

    PASSES = (AbsorbFlatten, LowerShiftAddBlocks, LowerPools, LowerWeightedLayers,
              LowerClassifier)

    def apply(self, model):
        for node in model.graph.node:
            if node.op_type not in THRESHOLDED_OPS:
                raise PascalError(f"{_where(node)}: unexpected after ActivationsToThresholds")
        for kind in self.PASSES:
            kind().rewrite_all(model)
        for kind in (InsertForks, NameLayers):
            model, _ = kind().apply(model)
        model.set_opset_import(ops.DOMAIN, 1)
        return _tidy(model), False


def layer_nodes(model) -> list:
    """The IR's nodes (its layers), in order."""
    return [n for n in model.graph.node if n.domain == ops.DOMAIN]


@dataclass
class Step:
    name: str
    transformation: Transformation


def pipeline() -> list[Step]:
    """The steps before folding, each saved as ir/NN_<name>.onnx by compile."""
    return [Step("normalize_export", NormalizeExport()),
            Step("check_supported", CheckSupported()),
            Step("batchnorm_to_affine", BatchNormToAffine()),
            Step("fold_weight_quant", FoldWeightQuant()),
            Step("activations_to_thresholds", ActivationsToThresholds()),
            Step("lower_to_spiking_ops", LowerToSpikingOps())]
