"""The standard QCFS conversion (Bu et al., ICLR 2022) of the same trained network: the baseline.

IF neurons with threshold lambda (= L * step), membrane starting at lambda / 2, reset by subtraction,
one global number of timesteps T for every layer (float32, as a GPU framework would run it), rate output = spike count / T (a spike of layer l
carries lambda_l), no accumulation or correction phase. Every layer runs at every timestep; the first
layer receives the pixels as a constant current; the classifier's prediction at T is the argmax of
its summed input over the first T timesteps, so one run up to the largest T gives every smaller T.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .convert import IntBlock, IntegerNetwork, ShiftBlock, pool_or_flatten
from .simulate import frame_accumulate

BASELINE_TIMESTEPS = (1, 2, 4, 8, 16, 32, 64)


def _view(layer) -> tuple[int, ...]:
    return (1, -1, 1, 1) if layer.kind == "conv" else (1, -1)


class _IFPopulation:
    """IF neurons with threshold lambda, membrane starting at lambda / 2, reset by subtraction."""

    def __init__(self, lam: float):
        self.lam = lam
        self.mem: Tensor | None = None

    def step(self, current: Tensor) -> Tensor:
        if self.mem is None:
            self.mem = torch.full_like(current, self.lam / 2)
        self.mem = self.mem + current
        spikes = (self.mem >= self.lam).float()
        self.mem = self.mem - self.lam * spikes
        return spikes


def _current(layer, x: Tensor) -> Tensor:
    """z = a * acc + b of a weighted layer for input x in level units (float32)."""
    acc = frame_accumulate(layer, x, torch.from_numpy(layer.weight).float())
    scale = torch.from_numpy(layer.scale).float().view(_view(layer))
    return scale * acc + torch.from_numpy(layer.offset).float().view(_view(layer))


@torch.no_grad()
def simulate_baseline(net: IntegerNetwork, pixels: Tensor,
                      timesteps: tuple[int, ...] = BASELINE_TIMESTEPS) -> dict[int, Tensor]:
    """Predicted classes (N,) at each T in ``timesteps``.

    A residual block runs as two IF populations: conv1's, and the output's, whose current is the
    residual (BN2(conv2)) plus the shortcut: for a shift block the snapped |a2| 2^e times the
    input's value or the projection's accumulation, for a requant block the input's value or
    BN(conv1x1) (the rate-coded baseline has no add quantizer).
    """
    populations: dict[tuple[int, str], _IFPopulation] = {}

    def population(layer, part: str, lam: float) -> _IFPopulation:
        key = (id(layer), part)
        if key not in populations:
            populations[key] = _IFPopulation(lam)
        return populations[key]

    total = None
    wanted = set(timesteps)
    predictions: dict[int, Tensor] = {}
    x_pixels = pixels.float()
    for t in range(1, max(timesteps) + 1):
        x = x_pixels  # level units: a pixel is its integer value
        for layer in net.layers:
            if isinstance(layer, (IntBlock, ShiftBlock)):
                conv1 = layer.conv1
                mid = population(layer, "conv1", conv1.levels * conv1.step).step(
                    _current(conv1, x)) * conv1.levels
                residual = _current(layer.conv2, mid)
                if isinstance(layer, ShiftBlock):
                    value = x if layer.shortcut is None else frame_accumulate(
                        layer.shortcut, x, torch.from_numpy(layer.shortcut.weight).float())
                    shortcut = torch.from_numpy(layer.short_gain).float().view(
                        _view(layer.conv2)) * value
                elif layer.shortcut is None:
                    shortcut = layer.in_scale * x
                else:
                    shortcut = _current(layer.shortcut, x)
                lam = layer.levels * layer.step
                x = population(layer, "out", lam).step(residual + shortcut) * layer.levels
                continue
            if not layer.weighted:
                x = F.max_pool2d(x, layer.kernel, layer.stride) if layer.kind == "maxpool" \
                    else pool_or_flatten(layer, x)
                continue
            if layer.classifier:
                acc = frame_accumulate(layer, x, torch.from_numpy(layer.weight).float())
                out = acc + torch.from_numpy(layer.bias).float()
                total = out if total is None else total + out
                break
            spikes = population(layer, "", layer.levels * layer.step).step(_current(layer, x))
            x = spikes * layer.levels  # a spike carries lambda = L steps, in level units
        if t in wanted:
            predictions[t] = total.argmax(1)
    return predictions
