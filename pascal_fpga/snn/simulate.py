"""Timestep-by-timestep simulation of the converted network with PASCAL neurons (DESIGN.md 2).

Layer l receives the previous layer's T_in = L_{l-1} spike frames (thermometer order), and:
1. integrates them, one frame per timestep: a spike adds its weight to the accumulator (adds only);
2. corrects for max(T_in, L) - 1 timesteps with no input;
   in both phases a neuron fires a positive spike (count += 1) or an inhibitory one (count -= 1)
   when its accumulator has crossed the next or the current threshold, one spike per timestep;
3. emits its count as L frames in thermometer order: a spike in each of the first `count` frames.

Integer mode uses the integer thresholds of :mod:`.convert` (count clipped to [0, L] by the table:
T_0 = -inf, T_{L+1} = +inf) and is exact. Float mode is the paper's neuron: real membrane, threshold
theta = the layer's step lambda / L, membrane starting at theta / 2, the bias added at the first
timestep, count unclipped until the emission; its differences from integer mode are counted.

The first layer is direct-coded (one frame of integer pixels, multiply-accumulate). Max pooling is a
per-timestep OR of spikes, average pooling a per-timestep sum (its 1/k^2 is in the next thresholds).
The loop over timesteps is the simulation; batch and neurons are vectorised.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

from .convert import IntegerNetwork, IntLayer, fire, pool_or_flatten

@dataclass
class LayerStats:
    """Totals over the simulated images for one weighted layer."""

    index: int
    kind: str
    t_in: int
    levels: int
    window: int                 # timesteps: integrate + correct
    out_spikes: int = 0         # emitted spikes (sum of the thermometer trains)
    positive: int = 0           # positive spikes fired during integrate + correct
    inhibitory: int = 0         # inhibitory spikes fired during integrate + correct
    synops: int = 0             # accumulate operations (one per spike per synapse)
    macs: int = 0               # multiply-accumulates (the direct-coded first layer)
    dense_macs: int = 0         # MACs of the same layer as an ANN (all images)


@dataclass
class SimResult:
    acc: Tensor                             # classifier accumulators (integer mode: exact ints)
    levels: list[Tensor]                    # emitted counts per hidden layer
    stats: list[LayerStats] = field(default_factory=list)
    images: int = 0


def _window(t_in: int, levels: int) -> int:
    return t_in + max(t_in, levels) - 1


def _frame_accumulate(layer: IntLayer, frame: Tensor, weight: Tensor) -> Tensor:
    if layer.kind == "conv":
        return F.conv2d(frame, weight, stride=layer.stride, padding=layer.padding)
    return torch.flatten(frame, 1) @ weight.T


def _synops(layer: IntLayer, frame: Tensor, fan: Tensor) -> int:
    """Accumulates caused by one input frame: each spike (a count c adds c times) reaches every
    output that its weights connect it to."""
    if layer.kind == "conv":
        covered = F.conv2d(frame.sum(1, keepdim=True), fan, stride=layer.stride,
                           padding=layer.padding)
        return int(covered.sum().item()) * layer.weight.shape[0]
    return int(frame.sum().item()) * layer.weight.shape[0]


def _dense_macs(layer: IntLayer, acc_shape: torch.Size) -> int:
    per_output = 1
    for dim in layer.weight.shape[1:]:
        per_output *= dim
    outputs = 1
    for dim in acc_shape[1:]:
        outputs *= dim
    return per_output * outputs


def simulate(net: IntegerNetwork, pixels: Tensor, mode: str = "integer") -> SimResult:
    """Run the spiking network on a batch of raw pixels (N, C, H, W)."""
    if mode not in ("integer", "float"):
        raise ValueError(f"mode must be 'integer' or 'float', got {mode!r}")
    with torch.no_grad():
        return _simulate(net, pixels, mode)


def _simulate(net: IntegerNetwork, pixels: Tensor, mode: str) -> SimResult:
    frames: list[Tensor] = [pixels.double()]  # the first layer: one frame of integer pixels
    levels: list[Tensor] = []
    stats: list[LayerStats] = []
    images = len(pixels)
    for layer in net.layers:
        if not layer.weighted:
            if layer.kind == "maxpool":  # per-timestep OR = max of 0/1 frames
                frames = [F.max_pool2d(f, layer.kernel, layer.stride) for f in frames]
            else:
                frames = [pool_or_flatten(layer, f) for f in frames]
            continue
        # float32 holds every partial sum exactly while |acc| < 2^24; float mode is the paper's
        # float32 arithmetic anyway.
        dtype = torch.float32 if mode == "float" or layer.acc_bound < 2 ** 24 else torch.float64
        frames = [f.to(dtype) for f in frames]
        weight = torch.from_numpy(layer.weight).to(dtype)
        st = LayerStats(index=layer.index, kind=layer.kind, t_in=len(frames),
                        levels=layer.levels, window=_window(len(frames), layer.levels))
        fan = torch.ones((1, 1, layer.kernel, layer.kernel), dtype=dtype)
        if layer.classifier:
            acc = None
            for frame in frames:
                contrib = _frame_accumulate(layer, frame, weight)
                acc = contrib if acc is None else acc + contrib
                st.synops += _synops(layer, frame, fan)
            st.dense_macs = _dense_macs(layer, acc.shape) * images
            st.window = len(frames)
            stats.append(st)
            if mode == "float":
                out = (acc.double() + torch.from_numpy(layer.bias).double()) * layer.out_scale
            else:
                out = acc.double().round().long() + torch.from_numpy(layer.bias)
            return SimResult(acc=out, levels=levels, stats=stats, images=images)
        if mode == "integer":
            count, frames = _pascal_integer(layer, frames, weight, st, fan)
        else:
            count, frames = _pascal_float(layer, frames, weight, st, fan)
        st.dense_macs = _dense_macs(layer, count.shape) * images
        if layer.first:
            st.macs = st.dense_macs
        frames = [f.to(dtype) for f in frames]
        levels.append(count)
        st.out_spikes = int(count.sum().item())
        stats.append(st)
    raise ValueError(f"{net.name}: no classifier at the end of the network")


def emit(count: Tensor, levels: int) -> list[Tensor]:
    """Phase 3, thermometer order: frame t (of L) carries a spike where t < count."""
    return [(count > t).float() for t in range(levels)]


class SpikeCounter:
    """Counts the positive and inhibitory spikes a population fires."""

    def __init__(self):
        self.positive = 0
        self.inhibitory = 0

    def add(self, up: Tensor, down: Tensor) -> None:
        self.positive += int(up.sum().item())
        self.inhibitory += int(down.sum().item())


def integer_neuron(contributions: Iterable[Tensor], level_of: Callable[[Tensor], Tensor],
                   t_in: int, levels: int, counter: SpikeCounter | None = None) -> Tensor:
    """The integer PASCAL neuron; returns the count it emits (0..L).

    ``contributions`` yields the input of each of the T_in timesteps (integer tensors),
    ``level_of(acc)`` is #{k : acc >= T_k} for ascending thresholds. Phase 1 (integrate): the
    accumulator adds each input, and a neuron fires when acc >= T_{count+1}, i.e. when
    level_of(acc) > count. Phase 2 (correct, max(T_in, L) - 1 timesteps without input): a positive
    spike when level_of(acc) > count, an inhibitory one when acc < T_count, i.e. level_of(acc) < count.
    One spike per neuron per timestep.
    """
    counter = counter or SpikeCounter()
    acc = count = target = None
    for contrib in contributions:
        acc = contrib if acc is None else acc + contrib
        if count is None:
            count = torch.zeros(acc.shape, dtype=torch.long)
        target = level_of(acc).long()  # acc changed: its level may have too
        up = target > count
        counter.add(up, torch.zeros((), dtype=torch.bool))
        count = count + up.long()
    for _ in range(max(t_in, levels) - 1):  # no input: acc and its level stay
        up = target > count
        down = target < count
        counter.add(up, down)
        count = count + up.long() - down.long()
    return count


def float_neuron(currents: Iterable[Tensor], theta: float, offset: Tensor | float, t_in: int,
                 levels: int, counter: SpikeCounter | None = None) -> Tensor:
    """The paper's PASCAL neuron in float32; returns the emitted count clip(count, 0, L).

    Membrane starts at theta / 2 plus the bias; phase 1 adds each timestep's current and fires
    (count += 1, mem -= theta) when mem >= theta; phase 2 (max(T_in, L) - 1 timesteps) also fires
    inhibitory spikes (count -= 1, mem += theta) when mem < 0.
    """
    counter = counter or SpikeCounter()
    theta_t = torch.tensor(theta, dtype=torch.float32)
    mem = count = None
    for current in currents:
        if mem is None:
            mem = theta_t / 2 + offset + torch.zeros(current.shape, dtype=torch.float32)
            count = torch.zeros(current.shape, dtype=torch.long)
        mem = mem + current
        up = mem >= theta_t
        counter.add(up, torch.zeros((), dtype=torch.bool))
        mem = mem - theta_t * up.float()
        count = count + up.long()
    for _ in range(max(t_in, levels) - 1):
        up = mem >= theta_t
        down = mem < 0
        counter.add(up, down)
        mem = mem - theta_t * up.float() + theta_t * down.float()
        count = count + up.long() - down.long()
    return count.clamp(0, levels)


def _contributions(layer: IntLayer, frames: list[Tensor], weight: Tensor, st: LayerStats,
                   fan: Tensor) -> Iterator[Tensor]:
    """Each input frame's weighted sum (adds only: a spike adds its weights), counting ACs."""
    for frame in frames:
        if not layer.first:
            st.synops += _synops(layer, frame, fan)
        yield _frame_accumulate(layer, frame, weight)


def _pascal_integer(layer: IntLayer, frames: list[Tensor], weight: Tensor, st: LayerStats,
                    fan: Tensor) -> tuple[Tensor, list[Tensor]]:
    counter = SpikeCounter()
    count = integer_neuron(_contributions(layer, frames, weight, st, fan),
                           lambda acc: fire(layer, acc), len(frames), layer.levels, counter)
    st.positive, st.inhibitory = counter.positive, counter.inhibitory
    return count, emit(count, layer.levels)


def _pascal_float(layer: IntLayer, frames: list[Tensor], weight: Tensor, st: LayerStats,
                  fan: Tensor) -> tuple[Tensor, list[Tensor]]:
    view = (1, -1, 1, 1) if layer.kind == "conv" else (1, -1)
    scale = torch.from_numpy(layer.scale).float().view(view)
    offset = torch.from_numpy(layer.offset).float().view(view)
    counter = SpikeCounter()
    currents = (scale * contrib for contrib in _contributions(layer, frames, weight, st, fan))
    count = float_neuron(currents, layer.step, offset, len(frames), layer.levels, counter)
    st.positive, st.inhibitory = counter.positive, counter.inhibitory
    return count, emit(count, layer.levels)
