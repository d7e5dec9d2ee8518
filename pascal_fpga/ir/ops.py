"""The spiking IR's custom ops: every node of a lowered graph is one hardware layer.

qonnx finds these by the node's domain (this module's import path, ``DOMAIN``) and op type, so
``qonnx.core.onnx_exec.execute_onnx`` runs a lowered graph directly. Tensors between the ops are
integer *levels*, held in float32 containers: a level q of a layer with L = ``t_out`` levels
stands for its thermometer spike train (one spike in each of the first q of L timesteps,
docs/design.md, section 2.5), and the receiving layer's ``t_in`` is that L. The first layer
receives integer pixels (one frame, ``t_in`` = 1: direct coding, a multiply-accumulate per pixel).

Weighted ops compute acc = W_int . x exactly (float64 holds every accumulator: compilation checks
``acc_min`` / ``acc_max`` against 2^53) and, except the classifier, emit the level
q = #{k : acc >= T_k} with the integer thresholds T (out, L) of their output channel:

=================  ======================================================================
``PixelConv``      first layer, a convolution on integer pixels 0..2^in_bits - 1
``PixelDense``     first layer, fully connected on integer pixels
``SpikingConv``    convolution on spike levels (adds one weight per input spike)
``SpikingDense``   fully connected on spike levels; takes (N, C, H, W) and flattens C, H, W
``SpikingMaxPool`` max pooling: a per-timestep OR of thermometer trains (max of levels)
``SpikingSumPool`` average pooling without its divisor (folded into the next thresholds)
``SpikingClassifier``  integer accumulators plus an integer bias; logits = out * out_scale
``SpikingFork``    a residual block's stream duplicator: both outputs are its input
``SpikingConvAcc`` a convolution whose output is its integer accumulators (a block's conv2 and
                   projection shortcut: the add thresholds them)
``SpikingAdd``     a residual block's add and activation: n = (main << shift_main) +
                   (shortcut << shift_short) per channel, then q = #{k : n >= T_k}
=================  ======================================================================

Folding attributes (``pe``: output channels computed at once; ``simd``: inputs consumed at once)
do not change the values, only the hardware (the cycle model and the HLS project read them).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from onnx import helper
from qonnx.custom_op.base import CustomOp

from ..errors import PascalError

DOMAIN = "pascal_fpga.ir.ops"
EXACT_LIMIT = 2 ** 53  # float64 holds every integer below this exactly


def _count_at_least(acc: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """#{k : acc >= T_k} per channel (axis 1) for thresholds (C, L)."""
    view = (1, -1) + (1,) * (acc.ndim - 2)
    levels = np.zeros(acc.shape, dtype=np.float64)
    for k in range(thresholds.shape[1]):
        levels += acc >= thresholds[:, k].reshape(view)
    return levels


class _IROp(CustomOp):
    """Common attributes of the spiking IR ops."""

    def get_nodeattr_types(self):
        return {
            "t_in": ("i", True, 1),        # input timesteps: the previous layer's L (1: pixels)
            "t_out": ("i", True, 1),       # output timesteps: this layer's L
            "in_max": ("i", True, 1),      # the largest input level (2^in_bits - 1 for pixels)
            "in_shape": ("ints", True, []),   # (C, H, W) or (features,), without the batch
            "out_shape": ("ints", True, []),
            "pe": ("i", False, 1),
            "simd": ("i", False, 1),
            "fifo_depth": ("i", False, 2),  # depth of the FIFO that feeds this layer
            "token_depth": ("i", False, 2),  # a weighted layer's FIFO from feeder to MVU
            "out_depth": ("i", False, 2),   # the classifier's FIFO to the output adapter
            "zero_skip": ("i", False, 1),   # 1: event-driven accumulation, 0: dense (T_in/group)
            "layer": ("s", False, ""),     # where it came from (the QONNX node names)
        }

    def make_shape_compatible_op(self, model):
        batch = model.get_tensor_shape(model.graph.input[0].name)[0]  # one batch everywhere
        return self.make_const_shape_op([batch] + list(self.get_nodeattr("out_shape")))

    def infer_node_datatype(self, model):
        pass

    def verify_node(self):
        return [f"{self.onnx_node.name}: {self.onnx_node.op_type}"]

    def _input(self, context) -> np.ndarray:
        x = np.asarray(context[self.onnx_node.input[0]], dtype=np.float64)
        expected = tuple(self.get_nodeattr("in_shape"))
        if tuple(x.shape[1:]) != expected:
            raise PascalError(f"{self.onnx_node.name} ({self.onnx_node.op_type}): input shape "
                              f"{tuple(x.shape[1:])}, expected {expected}")
        return x

    def _check_levels(self, x: np.ndarray) -> None:
        """Inputs must be integer levels in 0..in_max (pixels out of range are a user error)."""
        in_max = self.get_nodeattr("in_max")
        bad = (x < 0) | (x > in_max) | (x != np.floor(x))
        if np.any(bad):
            value = x[bad].flat[0]
            raise PascalError(f"{self.onnx_node.name} ({self.onnx_node.op_type}): input value "
                              f"{value:g} is not an integer level in 0..{in_max}")

    def _output(self, context, value: np.ndarray) -> None:
        context[self.onnx_node.output[0]] = value.astype(np.float32)


class _Weighted(_IROp):
    def get_nodeattr_types(self):
        attrs = super().get_nodeattr_types()
        attrs.update({
            "weight_bits": ("i", True, 8),
            "acc_bits": ("i", True, 32),
            "acc_min": ("i", True, 0),
            "acc_max": ("i", True, 0),
            "threshold_bits": ("i", False, 0),
        })
        return attrs

    def _accumulate(self, context, x: np.ndarray) -> np.ndarray:
        weight = np.asarray(context[self.onnx_node.input[1]], dtype=np.float64)
        return self.accumulate(x, weight)

    def _fire(self, context, acc: np.ndarray) -> np.ndarray:
        thresholds = np.asarray(context[self.onnx_node.input[2]], dtype=np.float64)
        if thresholds.shape[1] != self.get_nodeattr("t_out"):
            raise PascalError(f"{self.onnx_node.name}: {thresholds.shape[1]} thresholds per "
                              f"channel, t_out {self.get_nodeattr('t_out')}")
        return _count_at_least(acc, thresholds)

    def execute_node(self, context, graph):
        x = self._input(context)
        self._check_levels(x)
        self._output(context, self._fire(context, self._accumulate(context, x)))


class _ConvMixin:
    def get_nodeattr_types(self):
        attrs = super().get_nodeattr_types()
        attrs.update({"kernel": ("i", True, 1), "stride": ("i", True, 1), "pad": ("i", True, 0)})
        return attrs

    def accumulate(self, x: np.ndarray, weight: np.ndarray) -> np.ndarray:
        out = F.conv2d(torch.from_numpy(x), torch.from_numpy(weight),
                       stride=self.get_nodeattr("stride"), padding=self.get_nodeattr("pad"))
        return out.numpy()


class _DenseMixin:
    def accumulate(self, x: np.ndarray, weight: np.ndarray) -> np.ndarray:
        return x.reshape(len(x), -1) @ weight.T


class PixelConv(_ConvMixin, _Weighted):
    """The first layer: a convolution on integer pixels (direct coding), then L thresholds."""


class PixelDense(_DenseMixin, _Weighted):
    """The first layer: fully connected on integer pixels (flattened C, H, W), then thresholds."""


class SpikingConv(_ConvMixin, _Weighted):
    """A convolution of spike trains: each input spike adds its weights; L thresholds."""


class SpikingDense(_DenseMixin, _Weighted):
    """Fully connected on spike trains (flattened C, H, W); L thresholds."""


class SpikingClassifier(_DenseMixin, _Weighted):
    """The last layer: integer accumulators plus the integer bias (inputs: x, weights, bias);
    the class is the first argmax, logits = output * ``out_scale``."""

    def get_nodeattr_types(self):
        attrs = super().get_nodeattr_types()
        attrs["out_scale"] = ("f", True, 1.0)
        return attrs

    def execute_node(self, context, graph):
        x = self._input(context)
        self._check_levels(x)
        bias = np.asarray(context[self.onnx_node.input[2]], dtype=np.float64)
        acc = self._accumulate(context, x) + bias.reshape(1, -1)
        self._output(context, acc)


class _Pool(_IROp):
    def get_nodeattr_types(self):
        attrs = super().get_nodeattr_types()
        attrs.update({"kernel": ("i", True, 1), "stride": ("i", True, 1)})
        return attrs


class SpikingMaxPool(_Pool):
    """Max pooling of thermometer trains: the OR of the spikes in a window at each timestep,
    which is the max of the levels (it holds only for thermometer order)."""

    def execute_node(self, context, graph):
        x = self._input(context)
        out = F.max_pool2d(torch.from_numpy(x), self.get_nodeattr("kernel"),
                           self.get_nodeattr("stride"))
        self._output(context, out.numpy())


class SpikingSumPool(_Pool):
    """Average pooling without the 1/k^2 (the next layer's thresholds hold it): at each timestep
    the number of spikes in the window; as levels, the window sum."""

    def execute_node(self, context, graph):
        x = self._input(context)
        out = F.avg_pool2d(torch.from_numpy(x), self.get_nodeattr("kernel"),
                           self.get_nodeattr("stride"), divisor_override=1)
        self._output(context, out.numpy())


class SpikingConvAcc(_ConvMixin, _Weighted):
    """A convolution of spike trains whose output is its integer accumulators (inputs: x,
    weights): a residual block's conv2 or projection shortcut, thresholded by the block's
    :class:`SpikingAdd`."""

    def execute_node(self, context, graph):
        x = self._input(context)
        self._check_levels(x)
        self._output(context, self._accumulate(context, x))


class SpikingFork(_IROp):
    """The stream duplicator of a residual block: outputs 0 (the main path) and 1 (the
    shortcut) are both the input, unchanged."""

    def make_shape_compatible_op(self, model):
        # two outputs of the input's shape (shape inference only; the mask's type is not used)
        node = self.onnx_node
        return helper.make_node("Dropout", [node.input[0]], list(node.output[:2]))

    def execute_node(self, context, graph):
        x = self._input(context)
        for name in self.onnx_node.output:
            context[name] = x.astype(np.float32)


class SpikingAdd(_IROp):
    """A residual block's add and QCFS activation (docs/design.md, section 2.8). Inputs:
    conv2's accumulators, the shortcut (the block input's levels, or the projection's
    accumulators), thresholds (C, L), shift_main (C,), shift_short (C,). Per channel c:
    n = main * 2^shift_main[c] + shortcut * 2^shift_short[c] (integer shifts left), then the
    level #{k : n >= T_k}. ``t_in`` / ``in_max`` describe the shortcut stream (an identity
    shortcut's frames and largest level; 1 / 1 for accumulators)."""

    def get_nodeattr_types(self):
        attrs = super().get_nodeattr_types()
        attrs.update({
            "short_acc": ("i", True, 0),     # 1: the shortcut is a projection's accumulators
            "main_bits": ("i", True, 32),    # conv2's accumulator width
            "short_bits": ("i", True, 32),   # the projection's accumulator width (short_acc)
            "n_min": ("i", True, 0),         # the exact range of n
            "n_max": ("i", True, 0),
            "n_bits": ("i", True, 32),
            "shift_bits": ("i", True, 1),
            "short_depth": ("i", False, 2),  # the shortcut FIFO (from the fork or projection)
        })
        return attrs

    def execute_node(self, context, graph):
        node = self.onnx_node
        main = np.asarray(context[node.input[0]], dtype=np.float64)
        short = np.asarray(context[node.input[1]], dtype=np.float64)
        shape = tuple(self.get_nodeattr("out_shape"))
        for what, value in (("main", main), ("shortcut", short)):
            if tuple(value.shape[1:]) != shape:
                raise PascalError(f"{node.name} (SpikingAdd): {what} input shape "
                                  f"{tuple(value.shape[1:])}, expected {shape}")
        if not self.get_nodeattr("short_acc"):
            self._check_levels(short)
        thresholds = np.asarray(context[node.input[2]], dtype=np.float64)
        view = (1, -1, 1, 1)
        shift_main = np.asarray(context[node.input[3]], dtype=np.float64).reshape(view)
        shift_short = np.asarray(context[node.input[4]], dtype=np.float64).reshape(view)
        n = main * 2.0 ** shift_main + short * 2.0 ** shift_short
        self._output(context, _count_at_least(n, thresholds))


WEIGHTED_OPS = ("PixelConv", "PixelDense", "SpikingConv", "SpikingDense", "SpikingClassifier",
                "SpikingConvAcc")
POOL_OPS = ("SpikingMaxPool", "SpikingSumPool")
RESIDUAL_OPS = ("SpikingFork", "SpikingAdd")
IR_OPS = WEIGHTED_OPS + POOL_OPS + RESIDUAL_OPS


def make_node(op_type: str, inputs: list[str], outputs: list[str], name: str, **attrs):
    """An IR node in this module's domain."""
    if op_type not in IR_OPS:
        raise ValueError(op_type)
    return helper.make_node(op_type, inputs, outputs, name=name, domain=DOMAIN, **attrs)
