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


class BasicBlock(nn.Module):
    """ResNet basic block: conv3x3(stride)-BN-QCFS, conv3x3-BN, plus the shortcut (identity, or
    conv1x1(stride)-BN when the shape changes), then QCFS. Both operands of the add pass through one
    shared signed quantizer, so the sum is an integer on one scale (DESIGN.md 2)."""

    def __init__(self, layer: LayerSpec, quantized: bool):
        super().__init__()
        in_ch, out_ch, stride = layer.in_shape[0], layer.channels, layer.stride
        self.conv1 = _conv(in_ch, out_ch, 3, stride, 1, False, layer.weight_bits, quantized)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.act1 = _activation(layer.levels, quantized)
        self.conv2 = _conv(out_ch, out_ch, 3, 1, 1, False, layer.weight_bits, quantized)
        self.bn2 = nn.BatchNorm2d(out_ch)
        if stride != 1 or in_ch != out_ch:
            self.shortcut = nn.Sequential(
                _conv(in_ch, out_ch, 1, stride, 0, False, layer.weight_bits, quantized),
                nn.BatchNorm2d(out_ch))
        else:
            self.shortcut = nn.Identity()
        self.add_quant = (qnn.QuantIdentity(act_quant=SignedAddQuant, bit_width=layer.add_bits,
                                            lambda_init=LAMBDA_INIT, return_quant_tensor=True)
                          if quantized else None)
        self.act2 = _activation(layer.levels, quantized)

    def forward(self, x):
        residual = self.bn2(self.conv2(self.act1(self.bn1(self.conv1(x)))))
        shortcut = self.shortcut(x)
        if self.add_quant is not None:
            residual = _plain(self.add_quant(residual))
            shortcut = _plain(self.add_quant(shortcut))
        else:
            shortcut = _plain(shortcut)
        return self.act2(residual + shortcut)


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
