"""Timestep-by-timestep simulation of the converted network with PASCAL neurons
(docs/design.md, section 2.6).

Layer l receives the previous layer's T_in = L_{l-1} spike frames (thermometer order), and:
1. integrates them, one frame per timestep: a spike adds its weight to the accumulator (adds only),
   and a neuron fires a positive spike (count += 1) when its accumulator has crossed the next
   threshold;
2. corrects for max(T_in, L) - 1 timesteps with no input, firing a positive spike as above or an
   inhibitory one (count -= 1) when its accumulator lies below the current threshold;
   one spike per neuron per timestep in both phases;
3. emits its count as L frames in thermometer order: a spike in each of the first `count` frames.

Integer mode uses the integer thresholds of :mod:`.convert` (count clipped to [0, L] by the table:
T_0 = -inf, T_{L+1} = +inf) and is exact. Float mode is the paper's neuron: real membrane, threshold
theta = the layer's step lambda / L, membrane starting at theta / 2, the bias added at the first
timestep, count unclipped until the emission; its differences from integer mode are counted.

The first layer is direct-coded (one frame of integer pixels, multiply-accumulate). Max pooling is a
per-timestep OR of spikes, average pooling a per-timestep sum (its 1/k^2 is in the next thresholds).
The loop over timesteps is the simulation; batch and neurons are vectorised.

A residual block is two populations, each with its own LayerStats: conv1, a normal PASCAL layer
(kind 'block.conv1'), then the block's output neurons (kind 'block'). These integrate conv2's input
spikes (conv1's L frames) and the shortcut's spikes (the block input's T_in frames, kept from
before the block) over max(L, T_in) timesteps (frame t of each stream; none once a stream has
ended), correct for max(L, T_in) - 1 timesteps, then emit L frames.

A shift block (:class:`.convert.ShiftBlock`, ``residual: shift``): integer mode accumulates
n = acc2' * 2^shift_main + v * 2^shift_short, each conv2 spike adding its (row-signed) weight
shifted left by shift_main, each shortcut spike its projection weight (or 1, identity) shifted
left by shift_short, and the neuron moves one step per timestep towards #{k : n >= T_k}: exactly
the integer ANN's level. Float mode is the paper's neuron (threshold s_out, membrane starting at
s_out / 2 + b2) whose current is |a2| * (conv2's weighted spikes) + |a2| 2^e * (the shortcut's
spike values).

A requant block (:class:`.convert.IntBlock`, ``residual: requant``): integer mode: the running
state is the pair (acc2, shortcut accumulator), and the target level is
#{k : q_r(acc2) + q_s(shortcut) >= U_k} (the add quantizer's requantizations, then act2's
thresholds), so the count moves one step per timestep towards it and ends exactly at the integer
ANN's level. Float mode: the add quantizer is itself a population of float PASCAL neurons per
operand (threshold s_add, 2M levels, membrane offset by M * s_add: count = q + M), and the output
neuron is the paper's float neuron fed with z = s_add * (q_r + q_s).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

from .convert import IntBlock, IntegerNetwork, IntLayer, ShiftBlock, fire, pool_or_flatten

@dataclass
class LayerStats:
    """Totals over the simulated images for one weighted layer."""

    index: int
    kind: str                   # 'conv', 'linear'; a block: 'block.conv1', then 'block'
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


def frame_accumulate(layer: IntLayer, frame: Tensor, weight: Tensor) -> Tensor:
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
        if isinstance(layer, (IntBlock, ShiftBlock)):
            frames = _block(layer, frames, mode, images, levels, stats)
            continue
        if not layer.weighted:
            if layer.kind == "maxpool":  # per-timestep OR = max of 0/1 frames
                frames = [F.max_pool2d(f, layer.kernel, layer.stride) for f in frames]
            else:
                frames = [pool_or_flatten(layer, f) for f in frames]
            continue
        dtype = _dtype(layer, mode)
        frames = [f.to(dtype) for f in frames]
        weight = torch.from_numpy(layer.weight).to(dtype)
        st = LayerStats(index=layer.index, kind=layer.kind, t_in=len(frames),
                        levels=layer.levels, window=_window(len(frames), layer.levels))
        fan = torch.ones((1, 1, layer.kernel, layer.kernel), dtype=dtype)
        if layer.classifier:
            acc = None
            for frame in frames:
                contrib = frame_accumulate(layer, frame, weight)
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
        count, frames = _hidden_layer(layer, frames, weight, st, fan, mode, images)
        frames = [f.to(dtype) for f in frames]
        levels.append(count)
        stats.append(st)
    raise ValueError(f"{net.name}: no classifier at the end of the network")


def _dtype(layer: IntLayer | IntBlock | ShiftBlock, mode: str) -> torch.dtype:
    # float32 holds every partial sum exactly while |acc| < 2^24; float mode is the paper's
    # float32 arithmetic anyway.
    return torch.float32 if mode == "float" or layer.acc_bound < 2 ** 24 else torch.float64


def _hidden_layer(layer: IntLayer, frames: list[Tensor], weight: Tensor, st: LayerStats,
                  fan: Tensor, mode: str, images: int) -> tuple[Tensor, list[Tensor]]:
    """One thresholded layer of PASCAL neurons: its count and its L output frames; fills st."""
    if mode == "integer":
        count, out = _pascal_integer(layer, frames, weight, st, fan)
    else:
        count, out = _pascal_float(layer, frames, weight, st, fan)
    st.dense_macs = _dense_macs(layer, count.shape) * images
    if layer.first:
        st.macs = st.dense_macs
    st.out_spikes = int(count.sum().item())
    return count, out


def _block(block: IntBlock | ShiftBlock, frames: list[Tensor], mode: str, images: int,
           levels: list[Tensor], stats: list[LayerStats]) -> list[Tensor]:
    """A residual block of either kind (see the module docstring); appends act1's and act2's
    counts to ``levels`` and two LayerStats (conv1, then the block output) to ``stats``.

    ACs of the block output: conv2's (one per spike per synapse), the projection shortcut's (like
    a 1x1 conv), or the identity shortcut's (one add per input spike per output neuron: the input
    channel's own neuron); a shift block's shifts are wiring, no operations. A first (pixel-fed)
    block multiplies: conv1 and a projection shortcut count MACs, an identity shortcut one add per
    pixel and output neuron."""
    conv1, conv2, shortcut = block.conv1, block.conv2, block.shortcut
    dtype = torch.promote_types(_dtype(conv1, mode), _dtype(block, mode))
    inputs = [f.to(dtype) for f in frames]
    st1 = LayerStats(index=block.index, kind="block.conv1", t_in=len(inputs),
                     levels=conv1.levels, window=_window(len(inputs), conv1.levels))
    fan3 = torch.ones((1, 1, 3, 3), dtype=dtype)
    count1, frames1 = _hidden_layer(conv1, inputs, torch.from_numpy(conv1.weight).to(dtype), st1,
                                    fan3, mode, images)
    frames1 = [f.to(dtype) for f in frames1]
    levels.append(count1)
    stats.append(st1)

    steps = max(block.levels, len(inputs))  # the integrate phase: both streams, frame by frame
    st = LayerStats(index=block.index, kind="block", t_in=steps, levels=block.levels,
                    window=_window(steps, block.levels))
    weight2 = torch.from_numpy(conv2.weight).to(dtype)
    weight_sc = None if shortcut is None else torch.from_numpy(shortcut.weight).to(dtype)
    fan1 = torch.ones((1, 1, 1, 1), dtype=dtype)
    zeros = torch.zeros(count1.shape, dtype=dtype)

    def residual_stream() -> Iterator[Tensor]:
        for t in range(steps):
            if t < len(frames1):
                st.synops += _synops(conv2, frames1[t], fan3)
                yield frame_accumulate(conv2, frames1[t], weight2)
            else:
                yield zeros

    def shortcut_stream() -> Iterator[Tensor]:
        for t in range(steps):
            if t >= len(inputs):
                yield zeros
            elif shortcut is None:  # identity: the input spikes themselves, channel to channel
                if block.first:
                    st.synops += inputs[t][0].numel() * len(inputs[t])
                else:
                    st.synops += int(inputs[t].sum().item())
                yield inputs[t]
            else:
                if not block.first:
                    st.synops += _synops(shortcut, inputs[t], fan1)
                yield frame_accumulate(shortcut, inputs[t], weight_sc)

    counter = SpikeCounter()
    if isinstance(block, ShiftBlock):
        if mode == "integer":
            sums = (block.shift_residual(r) + block.shift_shortcut(v)
                    for r, v in zip(residual_stream(), shortcut_stream()))
            count = integer_neuron(sums, block.out_level, steps, block.levels, counter)
        else:
            count = _float_shift_block(block, residual_stream(), shortcut_stream(), steps,
                                       counter)
    elif mode == "integer":
        stacked = (torch.stack(pair) for pair in zip(residual_stream(), shortcut_stream()))
        count = integer_neuron(stacked, lambda acc: block.out_level(block.total(acc[0], acc[1])),
                               steps, block.levels, counter)
    else:
        count = _float_block(block, residual_stream(), shortcut_stream(), steps, counter)
    st.positive, st.inhibitory = counter.positive, counter.inhibitory
    st.dense_macs = _dense_macs(conv2, count.shape) * images
    if shortcut is not None:
        sc_macs = _dense_macs(shortcut, count.shape) * images
        st.dense_macs += sc_macs
        if block.first:
            st.macs = sc_macs
    st.out_spikes = int(count.sum().item())
    levels.append(count)
    stats.append(st)
    return [f.to(dtype) for f in emit(count, block.levels)]


def _float_shift_block(block: ShiftBlock, residual: Iterator[Tensor],
                       shortcut: Iterator[Tensor], steps: int, counter: SpikeCounter) -> Tensor:
    """Float mode of a shift block's output: the paper's float32 neuron (threshold s_out,
    membrane starting at s_out / 2 + b2) fed, at each timestep, |a2| * (conv2's row-signed
    accumulation of the frame) + |a2| 2^e * (the shortcut's frame value)."""
    view = (1, -1, 1, 1)
    gain2 = torch.from_numpy(block.conv2.scale).float().view(view)
    gain_sc = torch.from_numpy(block.short_gain).float().view(view)
    currents = (gain2 * r.float() + gain_sc * v.float() for r, v in zip(residual, shortcut))
    offset = torch.from_numpy(block.offset).float().view(view)
    return float_neuron(currents, block.step, offset, steps, block.levels, counter)


def _float_block(block: IntBlock, residual: Iterator[Tensor], shortcut: Iterator[Tensor],
                 steps: int, counter: SpikeCounter) -> Tensor:
    """Float mode of a block's output: each add-quantizer operand is a population of float PASCAL
    neurons (threshold s_add, 2M levels, membrane offset by M * s_add, so count = q + M, clipped
    to 0..2M as the quantizer clamps to [-M, M]); the output neuron is the paper's float neuron
    (threshold s_out) fed at once with z = s_add * (q_r + q_s). Spikes of the output neurons only
    are counted."""
    view = (1, -1, 1, 1)
    add_max, theta = block.add_max, block.add_scale
    conv2 = block.conv2
    q_r = float_neuron(
        (torch.from_numpy(conv2.scale).float().view(view) * c for c in residual), theta,
        torch.from_numpy(conv2.offset).float().view(view) + add_max * theta, steps,
        2 * add_max) - add_max
    if block.shortcut is None:
        currents = (block.in_scale * c.float() for c in shortcut)
        offset: Tensor | float = add_max * theta
    else:
        currents = (torch.from_numpy(block.shortcut.scale).float().view(view) * c
                    for c in shortcut)
        offset = torch.from_numpy(block.shortcut.offset).float().view(view) + add_max * theta
    q_s = float_neuron(currents, theta, offset, steps, 2 * add_max) - add_max
    z = theta * (q_r + q_s).float()
    return float_neuron(iter([z]), block.step, 0.0, 1, block.levels, counter)


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
    ``level_of(acc)`` is #{k : acc >= T_k} for ascending thresholds, or any function of the running
    accumulator giving its target level (the accumulator may stack several, as in a residual
    block: the count has the shape of the level). Phase 1 (integrate): the
    accumulator adds each input, and a neuron fires when acc >= T_{count+1}, i.e. when
    level_of(acc) > count. Phase 2 (correct, max(T_in, L) - 1 timesteps without input): a positive
    spike when level_of(acc) > count, an inhibitory one when acc < T_count, i.e. level_of(acc) < count.
    One spike per neuron per timestep.
    """
    counter = counter or SpikeCounter()
    acc = count = target = None
    for contrib in contributions:
        acc = contrib if acc is None else acc + contrib
        target = level_of(acc).long()  # acc changed: its level may have too
        if count is None:
            count = torch.zeros(target.shape, dtype=torch.long)
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
        yield frame_accumulate(layer, frame, weight)


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
