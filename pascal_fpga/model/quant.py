"""Brevitas quantizers of the QCFS network: QCFS activations, signed weights, the pixel input.

The QCFS activation (docs/design.md, section 2.1) with threshold lambda and level count L is

    q = clip(floor(z * L / lambda + 1/2), 0, L),   a = q * lambda / L.

Brevitas computes ``scale = scaling_impl(x) / int_scaling_impl(bit_width)``, rounds ``x / scale`` with
``float_to_int_impl`` and clamps with ``tensor_clamp_impl``. Three small modules bend that into QCFS:
the integer scale is L (not 2^b - 1), the clamp is [0, L] (not the bit width's range) and the
rounding is half-up with a straight-through gradient (Brevitas only rounds half-to-even). Lambda is
Brevitas' learned ``ParameterScaling``, so the step lambda / L is trained with an LSQ-style gradient.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from brevitas.core.scaling import ScalingImplType
from brevitas.quant.base import UintQuant, PerTensorFloatScaling8bit
from brevitas.quant.scaled_int import Int8WeightPerChannelFloat, Int8WeightPerTensorFloat
from brevitas.quant.solver import ActQuantSolver
from brevitas.inject import value


def level_bit_width(levels: int) -> int:
    """Bits of an unsigned integer holding 0..levels; at least 2, since an unsigned 1-bit
    Brevitas activation exports as BipolarQuant (another meaning)."""
    return max(2, math.ceil(math.log2(levels + 1)))


class HalfUpRoundSte(nn.Module):
    """Round half up, floor(x + 1/2) exactly for every float x; identity gradient (STE)."""

    def __init__(self):
        super().__init__()

    def forward(self, x: Tensor) -> Tensor:
        # floor(x + 0.5) in float32 rounds 0.5 - 2^-25 up to 1: compare the fraction instead.
        low = torch.floor(x)
        rounded = torch.where(x - low >= 0.5, low + 1.0, low)
        return x + (rounded - x).detach()


class LevelIntScaling(nn.Module):
    """The integer scale of a QCFS activation: the level count L, whatever the bit width."""

    def __init__(self, levels: int):
        super().__init__()
        self.levels = int(levels)

    def forward(self, bit_width: Tensor) -> Tensor:
        return torch.tensor(float(self.levels), dtype=bit_width.dtype, device=bit_width.device)


class LevelClamp(nn.Module):
    """Clamp integer levels to [0, L] (zero gradient outside), ignoring the bit width's range."""

    def __init__(self, levels: int):
        super().__init__()
        self.levels = int(levels)

    def forward(self, x: Tensor, min_val: Tensor, max_val: Tensor) -> Tensor:
        return torch.clamp(x, 0.0, float(self.levels))


class QCFSActQuant(UintQuant, PerTensorFloatScaling8bit, ActQuantSolver):
    """QCFS activation quantizer: L levels, learned per-tensor lambda (set ``levels`` and
    ``lambda_init`` when building the layer)."""

    scaling_impl_type = ScalingImplType.PARAMETER
    scaling_min_val = 1e-6
    int_scaling_impl = LevelIntScaling
    tensor_clamp_impl = LevelClamp
    float_to_int_impl = HalfUpRoundSte
    lambda_init = 1.0

    @value
    def bit_width(levels):
        return level_bit_width(levels)

    @value
    def scaling_init(lambda_init):
        return lambda_init


class PixelInputQuant(QCFSActQuant):
    """The network input: unsigned ``bits``-bit integer pixels on scale 1 (a fixed lambda = L =
    2^bits - 1), so the first layer sees the raw integer pixel values."""

    scaling_impl_type = ScalingImplType.CONST

    @value
    def levels(bits):
        return 2 ** bits - 1

    @value
    def lambda_init(bits):
        return float(2 ** bits - 1)


class SignedWeightQuant(Int8WeightPerChannelFloat):
    """Signed, narrow-range (symmetric) integer weights with a per-output-channel scale from the
    channel's largest magnitude; the bit width comes from the spec (``weight_bit_width``)."""


class SignedAddQuant(UintQuant, PerTensorFloatScaling8bit, ActQuantSolver):
    """The shared quantizer of a residual add: both operands become signed ``bit_width``-bit
    integers on one learned scale, so their sum is an exact integer on that scale."""

    signed = True
    narrow_range = True
    scaling_impl_type = ScalingImplType.PARAMETER
    scaling_min_val = 1e-6
    float_to_int_impl = HalfUpRoundSte
    lambda_init = 1.0

    @value
    def scaling_init(lambda_init):
        return lambda_init


class ClassifierWeightQuant(Int8WeightPerTensorFloat):
    """Signed, narrow-range integer weights with ONE scale for the whole classifier, so that every
    class's integer accumulator is on the same scale and the argmax of the integers is the class."""
