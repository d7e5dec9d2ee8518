"""Build a QCFS network (Brevitas) or its float ReLU twin from a validated ModelSpec.

The network takes raw integer pixels (float tensors of the data set's pixel values). The input
quantizer makes them unsigned ``input.bits``-bit integers on scale 1, so the first layer multiplies
integer pixels (direct coding). Every conv/linear but the last is followed by BatchNorm (unless
``batchnorm: false``) and a QCFS activation with the layer's level count L. The last layer is the
classifier: integer accumulators plus an Int32 bias on the accumulator's scale.
"""

from __future__ import annotations

import brevitas.nn as qnn
import torch
from brevitas.quant import Int32Bias
from torch import Tensor, nn
from brevitas.quant_tensor import QuantTensor

from ..spec import LayerSpec, ModelSpec
from .quant import (ClassifierWeightQuant, LevelClamp, PixelInputQuant, QCFSActQuant,
                    SignedAddQuant, SignedWeightQuant)

# Lambda before calibration; calibrate() replaces it with a percentile of the pre-activations.
LAMBDA_INIT = 4.0


def qcfs_activation(levels: int) -> nn.Module:
    """A QCFS activation with L = ``levels`` and a learned lambda; returns QuantTensors."""
    return qnn.QuantIdentity(act_quant=QCFSActQuant, levels=levels, lambda_init=LAMBDA_INIT,
                             return_quant_tensor=True)


def _activation(levels: int, quantized: bool) -> nn.Module:
    return qcfs_activation(levels) if quantized else nn.ReLU()


def _conv(in_ch: int, out_ch: int, kernel: int, stride: int, padding: int, bias: bool,
          weight_bits: int, quantized: bool) -> nn.Module:
    if not quantized:
        return nn.Conv2d(in_ch, out_ch, kernel, stride, padding, bias=bias)
    return qnn.QuantConv2d(in_ch, out_ch, kernel, stride, padding, bias=bias,
                           weight_quant=SignedWeightQuant, weight_bit_width=weight_bits,
                           bias_quant=Int32Bias if bias else None)


def _linear(in_f: int, out_f: int, bias: bool, weight_bits: int, quantized: bool,
            classifier: bool = False) -> nn.Module:
    if not quantized:
        return nn.Linear(in_f, out_f, bias=bias)
    return qnn.QuantLinear(in_f, out_f, bias=bias,
                           weight_quant=ClassifierWeightQuant if classifier else SignedWeightQuant,
                           weight_bit_width=weight_bits, bias_quant=Int32Bias if bias else None)


class ConvUnit(nn.Module):
    """conv -> BatchNorm (optional) -> QCFS (or ReLU in the float twin)."""

    def __init__(self, layer: LayerSpec, quantized: bool):
        super().__init__()
        self.conv = _conv(layer.in_shape[0], layer.channels, layer.kernel, layer.stride,
                          layer.padding, not layer.batchnorm, layer.weight_bits, quantized)
        self.bn = nn.BatchNorm2d(layer.channels) if layer.batchnorm else nn.Identity()
        self.act = _activation(layer.levels, quantized)

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))


class LinearUnit(nn.Module):
    """(flatten) -> linear -> BatchNorm (optional) -> QCFS; the classifier has neither BN nor
    activation, one weight scale for all classes, and returns plain logits."""

    def __init__(self, layer: LayerSpec, quantized: bool, classifier: bool):
        super().__init__()
        in_features = 1
        for dim in layer.in_shape:
            in_features *= dim
        self.classifier = classifier
        use_bn = layer.batchnorm and not classifier
        self.linear = _linear(in_features, layer.features, not use_bn, layer.weight_bits, quantized,
                              classifier)
        self.bn = nn.BatchNorm1d(layer.features) if use_bn else nn.Identity()
        self.act = nn.Identity() if classifier else _activation(layer.levels, quantized)

    def forward(self, x):
        if x.dim() > 2:
            x = torch.flatten(x, 1)
        out = self.act(self.bn(self.linear(x)))
        if self.classifier and not isinstance(out, Tensor):
            out = out.value
        return out


# The largest power-of-two exponent |e_c| of a shift block's shortcut (see BasicBlock).
E_MAX = 12


def round_half_up(x: Tensor) -> Tensor:
    """floor(x + 1/2) exactly (the fraction is compared, as in HalfUpRoundSte)."""
    low = torch.floor(x)
    return torch.where(x - low >= 0.5, low + 1.0, low)


class BasicBlock(nn.Module):
    """ResNet basic block: conv3x3(stride)-BN1-QCFS(L) (act1), conv3x3-BN2 (the main branch), plus
    a shortcut, then act2 = QCFS(L) of the sum. ``layer.residual`` chooses how the add is formed
    (docs/design.md, section 2.8):

    - ``shift`` (the default): the shortcut is the identity (same shape) or a projection
      conv1x1(stride) with quantized per-channel weights (scale sw_sc), no bias and no BatchNorm.
      The main branch is main = a2_c * acc2 + b2_c with acc2 conv2's integer accumulator,
      a2_c = gamma_c / sqrt(var_c + eps) * s1 * sw2_c (BN2's gain times conv2's accumulator scale:
      s1 act1's step, sw2_c conv2's weight scale; var the batch variance in training, the running
      one in eval) and b2_c BN2's folded offset. The shortcut has the gain g_c = s_in (identity,
      s_in the block input's step) or s_in * sw_sc_c (projection) on its integer value v (the
      input's level, or the projection's accumulator). Its gain is snapped to conv2's gain times a
      power of two: e_c = clamp(round_half_up(log2(g_c / |a2_c|)), -E_MAX, E_MAX), and the block
      sums main + |a2_c| * 2^e_c * v. In integers that is one shift of either operand and an add
      (``snn/convert.py`` ShiftBlock), then act2's L thresholds. The snapping factor
      |a2_c| * 2^e_c / g_c (0 where a2_c = 0) is computed without gradient in float32; training
      multiplies the shortcut by it as a constant (straight-through: the value is the snapped one,
      gradients reach the shortcut's weights). Eval keeps the last factor for the QONNX export,
      where it becomes one initializer: Add(BN2(Conv2(..)), Mul(shortcut, c)).
    - ``requant``: the shortcut is the identity or conv1x1(stride)-BN, and both operands pass
      through one shared signed ``add_bits``-bit quantizer, so the sum is an integer on one scale
      (2M thresholds per channel to requantize conv2's accumulator, M = 2^(add_bits-1) - 1).
    """

    def __init__(self, layer: LayerSpec, quantized: bool):
        super().__init__()
        in_ch, out_ch, stride = layer.in_shape[0], layer.channels, layer.stride
        self.residual = layer.residual or "shift"
        self.quantized = quantized
        self.conv1 = _conv(in_ch, out_ch, 3, stride, 1, False, layer.weight_bits, quantized)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.act1 = _activation(layer.levels, quantized)
        self.conv2 = _conv(out_ch, out_ch, 3, 1, 1, False, layer.weight_bits, quantized)
        self.bn2 = nn.BatchNorm2d(out_ch)
        projection = stride != 1 or in_ch != out_ch
        if not projection:
            self.shortcut = nn.Identity()
        elif self.residual == "shift":
            self.shortcut = _conv(in_ch, out_ch, 1, stride, 0, False, layer.weight_bits, quantized)
        else:
            self.shortcut = nn.Sequential(
                _conv(in_ch, out_ch, 1, stride, 0, False, layer.weight_bits, quantized),
                nn.BatchNorm2d(out_ch))
        self.add_quant = (qnn.QuantIdentity(act_quant=SignedAddQuant, bit_width=layer.add_bits,
                                            lambda_init=LAMBDA_INIT, return_quant_tensor=True)
                          if quantized and self.residual == "requant" else None)
        self.act2 = _activation(layer.levels, quantized)
        # the last eval-mode snapping factor (1, C, 1, 1): the export's constant
        self.export_factor: Tensor | None = None

    @property
    def projection(self) -> bool:
        return not isinstance(self.shortcut, nn.Identity)

    @torch.no_grad()
    def shift_parameters(self, in_scale: Tensor, act1_scale: Tensor,
                         conv2_out: Tensor | None = None) -> dict[str, Tensor]:
        """The shift block's snapping, in float32 without gradient (see the class docstring):
        ``a2`` (C,) conv2's signed gain, ``gain`` (C,) the shortcut's unsnapped gain g,
        ``exponent`` (C,) int64 e (0 where a2 = 0), ``factor`` (C,) |a2| 2^e / g (0 where a2 = 0).
        ``in_scale`` is the block input's step, ``act1_scale`` act1's; in training mode the
        variance is the batch's, of ``conv2_out`` (biased, as BatchNorm uses)."""
        bn = self.bn2
        if self.training and conv2_out is not None:
            var = conv2_out.detach().float().var(dim=(0, 2, 3), unbiased=False)
        else:
            var = bn.running_var.float()
        w_scale2 = self.conv2.quant_weight().scale.detach().float().flatten()
        a2 = (bn.weight.detach().float() / torch.sqrt(var + bn.eps)
              * act1_scale.detach().float().flatten()[0] * w_scale2)
        gain = in_scale.detach().float().flatten()[0] * torch.ones_like(a2)
        if self.projection:
            gain = gain * self.shortcut.quant_weight().scale.detach().float().flatten()
        magnitude = a2.abs()
        live = (magnitude > 0) & (gain > 0)
        ratio = torch.where(live, gain / torch.where(live, magnitude, torch.ones_like(a2)),
                            torch.ones_like(a2))
        exponent = torch.clamp(round_half_up(torch.log2(ratio)), -E_MAX, E_MAX)
        exponent = torch.where(live, exponent, torch.zeros_like(exponent))
        snapped = magnitude * torch.exp2(exponent)
        factor = torch.where(live, snapped / torch.where(live, gain, torch.ones_like(a2)),
                             torch.zeros_like(a2))
        return {"a2": a2, "gain": gain, "exponent": exponent.long(), "factor": factor}

    def forward(self, x):
        mid = self.act1(self.bn1(self.conv1(x)))
        conv2_out = self.conv2(mid)
        residual = self.bn2(conv2_out)
        shortcut = self.shortcut(x)
        if not self.quantized:
            return self.act2(residual + _plain(shortcut))
        if self.residual == "requant":
            residual = _plain(self.add_quant(residual))
            shortcut = _plain(self.add_quant(shortcut))
            return self.act2(residual + shortcut)
        if isinstance(x, QuantTensor) and isinstance(mid, QuantTensor):
            factor = self.shift_parameters(x.scale, mid.scale, _plain(conv2_out))["factor"]
            factor = factor.view(1, -1, 1, 1)
            if not self.training:
                self.export_factor = factor.clone()
        elif torch.onnx.is_in_onnx_export() or torch.jit.is_tracing():
            if self.export_factor is None:  # Brevitas' export runs one eval pass first
                raise RuntimeError("a shift block is exported before an eval forward pass")
            factor = self.export_factor
        else:
            raise RuntimeError("a shift block needs quantized inputs (QuantTensors) to snap its "
                               "shortcut")
        return self.act2(residual + _plain(shortcut) * factor)


def _plain(x) -> Tensor:
    """A QuantTensor's value; in export mode Brevitas layers return plain tensors already."""
    return x if isinstance(x, Tensor) else x.value


class QCFSNet(nn.Module):
    """The network of a spec: ``quantized=True`` gives the Brevitas QCFS network, ``False`` the
    float ReLU network of the same architecture (the accuracy baseline)."""

    def __init__(self, spec: ModelSpec, quantized: bool = True):
        super().__init__()
        self.spec = spec
        self.quantized = quantized
        self.input_quant = (qnn.QuantIdentity(act_quant=PixelInputQuant, bits=spec.input.bits,
                                              return_quant_tensor=True)
                            if quantized else nn.Identity())
        units = []
        for layer in spec.layers:
            if layer.type == "conv":
                units.append(ConvUnit(layer, quantized))
            elif layer.type == "linear":
                units.append(LinearUnit(layer, quantized, classifier=layer is spec.layers[-1]))
            elif layer.type == "block":
                units.append(BasicBlock(layer, quantized))
            elif layer.type == "maxpool":
                units.append(nn.MaxPool2d(layer.kernel, layer.stride))
            elif layer.type == "avgpool":
                units.append(nn.AvgPool2d(layer.kernel, layer.stride))
            elif layer.type == "flatten":
                units.append(nn.Flatten(1))
            else:  # parse_spec rejects unknown types; this guards against a stale spec object
                raise ValueError(f"layer {layer.index}: unsupported type {layer.type!r}")
        self.units = nn.ModuleList(units)

    def forward(self, pixels: Tensor) -> Tensor:
        """Logits for a batch of raw pixels, shape (N, C, H, W)."""
        x = self.input_quant(pixels)
        for unit in self.units:
            x = unit(x)
        return x

    def qcfs_activations(self) -> list[nn.Module]:
        """The QCFS activation modules, in forward order (empty for the float twin)."""
        return [m for m in self.modules()
                if isinstance(m, qnn.QuantIdentity) and m is not self.input_quant
                and _is_qcfs(m)]

    def add_quantizers(self) -> list[nn.Module]:
        return [m.add_quant for m in self.modules()
                if isinstance(m, BasicBlock) and m.add_quant is not None]


def _is_qcfs(module: nn.Module) -> bool:
    clamp = module.act_quant.fused_activation_quant_proxy.tensor_quant.int_quant.tensor_clamp_impl
    return isinstance(clamp, LevelClamp)


def levels_of(act: nn.Module) -> int:
    """The level count L of a QCFS activation module."""
    return act.act_quant.fused_activation_quant_proxy.tensor_quant.int_quant.tensor_clamp_impl.levels


def lambda_parameter(act: nn.Module) -> nn.Parameter:
    """The learned lambda (clip value) of a QCFS activation or add quantizer."""
    return act.act_quant.fused_activation_quant_proxy.tensor_quant.scaling_impl.value
