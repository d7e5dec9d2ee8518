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

from .convert import IntegerNetwork, pool_or_flatten
from .simulate import _frame_accumulate

BASELINE_TIMESTEPS = (1, 2, 4, 8, 16, 32, 64)


@torch.no_grad()
def simulate_baseline(net: IntegerNetwork, pixels: Tensor,
                      timesteps: tuple[int, ...] = BASELINE_TIMESTEPS) -> dict[int, Tensor]:
    """Predicted classes (N,) at each T in ``timesteps``."""
    weights = {id(layer): torch.from_numpy(layer.weight).float()
               for layer in net.layers if layer.weighted}
    params = {}
    for layer in net.layers:
        if layer.weighted and not layer.classifier:
            view = (1, -1, 1, 1) if layer.kind == "conv" else (1, -1)
            params[id(layer)] = (torch.from_numpy(layer.scale).float().view(view),
                                 torch.from_numpy(layer.offset).float().view(view),
                                 layer.levels * layer.step)
    membranes: dict[int, Tensor] = {}
    total = None
    wanted = set(timesteps)
    predictions: dict[int, Tensor] = {}
    x_pixels = pixels.float()
    for t in range(1, max(timesteps) + 1):
        x = x_pixels  # level units: a pixel is its integer value
        for layer in net.layers:
            if not layer.weighted:
                x = F.max_pool2d(x, layer.kernel, layer.stride) if layer.kind == "maxpool" \
                    else pool_or_flatten(layer, x)
                continue
            acc = _frame_accumulate(layer, x, weights[id(layer)])
            if layer.classifier:
                out = acc + torch.from_numpy(layer.bias).float()
                total = out if total is None else total + out
                break
            scale, offset, lam = params[id(layer)]
            current = scale * acc + offset
            mem = membranes.get(id(layer))
            if mem is None:
                mem = torch.full_like(current, lam / 2)
            mem = mem + current
            spikes = (mem >= lam).float()
            membranes[id(layer)] = mem - lam * spikes
            x = spikes * layer.levels  # a spike carries lambda = L steps, in level units
        if t in wanted:
            predictions[t] = total.argmax(1)
    return predictions
