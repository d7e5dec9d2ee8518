"""Convert a trained Brevitas QCFS network to its integer form (DESIGN.md 2).

Every hidden layer becomes "integer weights, then L integer thresholds per output channel":

    acc = W_int . q_prev                      (sum pooling of a preceding avgpool included)
    q   = #{ k in 1..L : acc >= T_k }

with the weight scale, the input scale, BatchNorm, the integer bias and the average-pool divisor
all folded into the thresholds (computed in float64 and checked). The classifier keeps integer
accumulators plus an integer bias. This integer network is "the ANN" that the spiking simulation
must reproduce exactly; its agreement with the float32 Brevitas model is measured separately
(differences there can only be ties at a threshold).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import PascalError
from ..model.network import BasicBlock, ConvUnit, LinearUnit, QCFSNet

# Threshold sentinels of a channel whose folded scale is zero (constant output).
ALWAYS = -(2 ** 40)
NEVER = 2 ** 40


@dataclass
class IntLayer:
    """One layer of the integer network.

    kind: 'conv', 'linear' (weighted), 'maxpool', 'avgpool' (a sum pool: its 1/k^2 lives in the
    next thresholds), 'flatten'. ``thresholds`` is None for the classifier, which has ``bias``.
    ``t_in`` is the number of input timesteps (the previous layer's L; 1 for pixels), ``levels`` L.
    """

    kind: str
    index: int                      # the spec layer index
    weight: np.ndarray | None = None        # int64 (out, in, kh, kw) or (out, in)
    thresholds: np.ndarray | None = None    # int64 (out, L), ascending per row
    bias: np.ndarray | None = None          # int64 (out,) (classifier only)
    kernel: int = 1
    stride: int = 1
    padding: int = 0
    t_in: int = 1
    levels: int = 0
    first: bool = False              # fed with pixels (direct coding: multiply-accumulate)
    in_shape: tuple[int, ...] = ()
    out_shape: tuple[int, ...] = ()
    # float view, for the float-mode simulation and the baseline: z = a * acc + b, step s_out
    scale: np.ndarray | None = None         # a, float64 (out,) (sign already folded: a >= 0)
    offset: np.ndarray | None = None        # b, float64 (out,)
    step: float = 0.0                        # s_out = lambda / L
    out_scale: float = 0.0                   # classifier: logits = (acc + bias) * out_scale
    acc_bound: int = 0                       # the largest |acc| any input can give (worst case)

    @property
    def weighted(self) -> bool:
        return self.kind in ("conv", "linear")

    @property
    def classifier(self) -> bool:
        return self.weighted and self.thresholds is None


@dataclass
class IntegerNetwork:
    """The integer form of a QCFS network: run it with :meth:`run`."""

    name: str
    layers: list[IntLayer]
    input_bits: int
    classes: int
    notes: list[str] = field(default_factory=list)

    def hidden(self) -> list[IntLayer]:
        """The QCFS (thresholded) layers, in order."""
        return [layer for layer in self.layers if layer.weighted and not layer.classifier]

    @torch.no_grad()
    def run(self, pixels: Tensor, accumulators: list[Tensor] | None = None
            ) -> tuple[Tensor, list[Tensor]]:
        """(classifier accumulators int64 (N, classes), per-hidden-layer levels int64).

        In float64, which holds every accumulator exactly. Pass a list as ``accumulators`` to
        receive each hidden layer's accumulator too."""
        x = pixels.double()
        levels = []
        for layer in self.layers:
            if layer.weighted:
                acc = accumulate(layer, x)
                if layer.classifier:
                    return (acc + torch.from_numpy(layer.bias).double()).long(), levels
                if accumulators is not None:
                    accumulators.append(acc)
                x = fire(layer, acc)
                levels.append(x.long())
            else:
                x = pool_or_flatten(layer, x)
        raise PascalError(f"{self.name}: the integer network has no classifier")


def accumulate(layer: IntLayer, x: Tensor) -> Tensor:
    """acc = W_int . x (float64 carries the exact integers: every |acc| is far below 2^53)."""
    weight = torch.from_numpy(layer.weight).double()
    if layer.kind == "conv":
        return F.conv2d(x, weight, stride=layer.stride, padding=layer.padding)
    return torch.flatten(x, 1) @ weight.T


def fire(layer: IntLayer, acc: Tensor) -> Tensor:
    """q = #{k : acc >= T_k}, per output channel."""
    thresholds = torch.from_numpy(layer.thresholds).to(acc.dtype)  # sentinels 2^40: exact
    view = (1, -1, 1, 1) if acc.dim() == 4 else (1, -1)
    levels = torch.zeros_like(acc)
    for k in range(layer.levels):
        levels += (acc >= thresholds[:, k].view(view)).double()
    return levels


def pool_or_flatten(layer: IntLayer, x: Tensor) -> Tensor:
    if layer.kind == "maxpool":
        return F.max_pool2d(x, layer.kernel, layer.stride)
    if layer.kind == "avgpool":  # a sum pool; the 1/k^2 is in the next layer's thresholds
        return F.avg_pool2d(x, layer.kernel, layer.stride, divisor_override=1)
    return torch.flatten(x, 1)


def _thresholds(a: np.ndarray, b: np.ndarray, step: float, levels: int,
                bias_int: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Integer thresholds T (out, L) and the sign (+1/-1) folded into each weight row.

    q >= k  <=>  a * (acc + bias) + b >= (k - 1/2) * step  (DESIGN.md 2). For a > 0 that is
    acc >= ceil(tau_k) - bias with tau_k = ((k - 1/2) step - b) / a; for a < 0 the row is negated
    and -acc >= ceil(-tau_k) + bias; for a = 0 the level is the constant clip(floor(b/step + 1/2)).
    """
    out = len(a)
    ks = np.arange(1, levels + 1, dtype=np.float64)
    thresholds = np.zeros((out, levels), dtype=np.int64)
    sign = np.ones(out, dtype=np.int64)
    for c in range(out):
        if a[c] == 0.0:
            constant = min(max(math.floor(b[c] / step + 0.5), 0), levels)
            thresholds[c] = np.where(ks <= constant, ALWAYS, NEVER)
            continue
        tau = ((ks - 0.5) * step - b[c]) / a[c]
        if a[c] > 0:
            thresholds[c] = np.ceil(tau).astype(np.int64) - bias_int[c]
        else:
            sign[c] = -1
            thresholds[c] = np.ceil(-tau).astype(np.int64) + bias_int[c]
        _check_thresholds(thresholds[c], sign[c], a[c], b[c], bias_int[c], step)
    return thresholds, sign


def _check_thresholds(row: np.ndarray, sign: int, a: float, b: float, bias: int,
                      step: float) -> None:
    """Each T_k is the smallest integer accumulator reaching level k (in float64)."""
    for k, t in enumerate(row, start=1):
        acc = sign * float(t)
        acc_below = sign * float(t - 1)
        z_at = a * (acc + bias) + b
        z_below = a * (acc_below + bias) + b
        boundary = (k - 0.5) * step
        if not (z_at >= boundary - 1e-9 * max(abs(boundary), 1.0)
                and z_below < boundary + 1e-9 * max(abs(boundary), 1.0)):
            raise PascalError(f"threshold check failed at level {k}: T = {t}")


def _bn_fold(bn: nn.Module) -> tuple[np.ndarray, np.ndarray] | None:
    if isinstance(bn, nn.Identity):
        return None
    inv_std = 1.0 / np.sqrt(bn.running_var.double().numpy() + bn.eps)
    gain = bn.weight.detach().double().numpy() * inv_std
    shift = bn.bias.detach().double().numpy() - gain * bn.running_mean.double().numpy()
    return gain, shift


@torch.no_grad()
def convert(net: QCFSNet) -> IntegerNetwork:
    """The integer network of a trained (eval-mode) QCFS network."""
    spec = net.spec
    if not net.quantized:
        raise PascalError(f"{spec.name}: a float network has no integer form (train without --float)")
    for layer in spec.layers:
        if layer.type == "block":
            raise PascalError(f"{spec.source}: layer {layer.index} (block): field 'type': residual "
                              f"blocks are not supported by the spiking conversion yet")
    net.eval()
    # One forward pass records the exact float32 scales Brevitas uses at every layer input.
    inputs: dict[nn.Module, object] = {}
    hooks = [unit.register_forward_pre_hook(lambda m, args: inputs.__setitem__(m, args[0]))
             for unit in net.units]
    shape = (1, spec.input.channels, spec.input.height, spec.input.width)
    net(torch.zeros(shape))
    for hook in hooks:
        hook.remove()

    layers: list[IntLayer] = []
    t_in = 1
    first = True
    in_max = 2 ** spec.input.bits - 1  # the largest input value of one frame
    for unit, layer in zip(net.units, spec.layers):
        if isinstance(unit, (ConvUnit, LinearUnit)):
            module = unit.conv if isinstance(unit, ConvUnit) else unit.linear
            x_in = inputs[unit]
            in_scale = float(x_in.scale.double().flatten()[0])
            qweight = module.quant_weight()
            weight = qweight.int().long().numpy().astype(np.int64)
            w_scale = qweight.scale.double().flatten().numpy()
            if w_scale.size == 1:
                w_scale = np.full(weight.shape[0], w_scale[0])
            bias_int = np.zeros(weight.shape[0], dtype=np.int64)
            if module.bias is not None:
                flat_in = torch.flatten(x_in, 1) if isinstance(unit, LinearUnit) and \
                    x_in.value.dim() > 2 else x_in
                qbias = module.bias_quant(module.bias, flat_in, qweight)
                bias_int = qbias.int().long().numpy().astype(np.int64)
            acc_scale = in_scale * w_scale
            kind = "conv" if isinstance(unit, ConvUnit) else "linear"
            row_sums = np.abs(weight).reshape(weight.shape[0], -1).sum(axis=1)
            acc_bound = int(row_sums.max()) * in_max * t_in
            common = dict(kind=kind, index=layer.index, t_in=t_in, first=first,
                          in_shape=layer.in_shape, out_shape=layer.out_shape, acc_bound=acc_bound)
            if kind == "conv":
                common.update(kernel=layer.kernel, stride=layer.stride, padding=layer.padding)
            if layer is spec.layers[-1]:
                layers.append(IntLayer(weight=weight, bias=bias_int, out_scale=float(acc_scale[0]),
                                       scale=acc_scale, offset=np.zeros_like(acc_scale), **common))
                break
            folded = _bn_fold(unit.bn)
            gain, shift = folded if folded is not None else (np.ones_like(acc_scale),
                                                             np.zeros_like(acc_scale))
            a = gain * acc_scale
            b = shift
            step = float(unit.act.act_quant.scale().double())
            thresholds, sign = _thresholds(a, b, step, layer.levels, bias_int)
            view = (-1,) + (1,) * (weight.ndim - 1)
            layers.append(IntLayer(
                weight=weight * sign.reshape(view), thresholds=thresholds, levels=layer.levels,
                scale=np.abs(a), offset=b + a * bias_int, step=step, **common))
            t_in = layer.levels
            first = False
            in_max = 1  # spikes
        elif layer.type in ("maxpool", "avgpool"):
            if layer.type == "avgpool":
                in_max *= layer.kernel * layer.kernel  # a sum pool adds up to k^2 spikes
            layers.append(IntLayer(kind=layer.type, index=layer.index, kernel=layer.kernel,
                                   stride=layer.stride, t_in=t_in, levels=t_in,
                                   in_shape=layer.in_shape, out_shape=layer.out_shape))
        elif layer.type == "flatten":
            layers.append(IntLayer(kind="flatten", index=layer.index, t_in=t_in, levels=t_in,
                                   in_shape=layer.in_shape, out_shape=layer.out_shape))
    return IntegerNetwork(name=spec.name, layers=layers, input_bits=spec.input.bits,
                          classes=spec.classes)
