"""Convert a trained Brevitas QCFS network to its integer form (docs/design.md, section 2.3).

Every hidden layer becomes "integer weights, then L integer thresholds per output channel":

    acc = W_int . q_prev                      (sum pooling of a preceding avgpool included)
    q   = #{ k in 1..L : acc >= T_k }

with the weight scale, the input scale, BatchNorm, the integer bias and the average-pool divisor
all folded into the thresholds (computed in float64 and checked). The classifier keeps integer
accumulators plus an integer bias. This integer network is "the ANN" that the spiking simulation
must reproduce exactly; its agreement with the float32 Brevitas model is measured separately
(differences there can only be ties at a threshold).

A residual block (``type: block``) with ``residual: shift`` (the default) becomes a
:class:`ShiftBlock`: conv1 is a normal layer; conv2's accumulator (rows negated where its gain
a2 < 0) and the shortcut's integer (the input level, or a projection's accumulator) meet by a
shift and an add, n = acc2' * 2^max(0, -e) + v * 2^max(0, e), and act2 is L integer thresholds on
n. With ``residual: requant`` it becomes an :class:`IntBlock`: conv2 and a projection shortcut
requantize their accumulators onto the add quantizer's signed integers with 2M thresholds each (an
identity shortcut uses a lookup table); the block output is q_out = #{k : q_r + q_s >= U_k}.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import PascalError
from ..model.network import BasicBlock, ConvUnit, LinearUnit, QCFSNet
from ..qcfs import add_boundaries, integer_thresholds, level_boundaries

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
class IntBlock:
    """A residual block in integer form (docs/design.md, section 2.8).

    With the add quantizer's scale s_add and M = 2^(add_bits - 1) - 1, Brevitas computes
    q_r = clamp(halfup(r / s_add), -M, M) for the residual r = BN2(conv2(act1)) and q_s likewise for
    the shortcut, then act2: q_out = clip(halfup(s_add * (q_r + q_s) / s_out), 0, L). Here:

    - ``conv1``: conv3x3(stride) + BN1 + act1, a normal PASCAL layer (T_in = the block input's
      timesteps, L levels);
    - ``conv2``: conv3x3 weights (rows negated where the folded BN2 scale a2 < 0) and
      ``thresholds`` R (out, 2M): q_r = -M + #{j : acc2 >= R_j}, R_j the integer thresholds of the
      boundaries (j - M - 1/2) * s_add on r = a2 * acc2 + b2 (``levels`` = 2M, ``step`` = s_add);
    - the shortcut: ``shortcut`` None and ``identity_table`` (int64, one entry per input value
      v = 0..in_max of the block input's integer sum) q_s = clamp(halfup(s_in * v / s_add), -M, M);
      or ``shortcut`` a conv1x1(stride) + BN layer with the same kind of 2M-threshold table S on
      acc_sc: q_s = -M + #{j : acc_sc >= S_j};
    - ``out_thresholds`` U (L,): q_out = #{k : q_r + q_s >= U_k},
      U_k = ceil((k - 1/2) s_out / s_add).

    The block is also act2's entry in :meth:`IntegerNetwork.hidden`: its "accumulator" is the
    integer sum n = q_r + q_s, with the float view z = ``scale`` * n + ``offset`` = s_add * n
    (act2's exact input) and ``step`` = s_out.
    """

    index: int
    conv1: IntLayer
    conv2: IntLayer
    shortcut: IntLayer | None
    identity_table: np.ndarray | None
    out_thresholds: np.ndarray
    add_max: int                     # M
    add_scale: float                 # s_add
    in_scale: float                  # s_in, the scale of the block input's integers
    t_in: int                        # timesteps of the block input
    levels: int                      # L of act1 and act2
    step: float                      # s_out = lambda_2 / L
    scale: np.ndarray                # s_add per output channel (act2's float view)
    offset: np.ndarray               # zeros
    in_shape: tuple[int, ...] = ()
    out_shape: tuple[int, ...] = ()
    first: bool = False
    acc_bound: int = 0               # the largest |acc| of conv2 or the shortcut (worst case)
    kind: str = "block"
    residual: str = "requant"

    weighted = False                 # not a plain weighted layer: callers must handle blocks
    classifier = False

    @property
    def identity(self) -> bool:
        return self.shortcut is None

    def residual_level(self, acc2: Tensor) -> Tensor:
        """q_r in -M..M from conv2's accumulator."""
        return count_at_least(self.conv2.thresholds, acc2) - self.add_max

    def shortcut_level(self, sc: Tensor) -> Tensor:
        """q_s in -M..M: ``sc`` is the block input's integer sum (identity) or acc_sc."""
        if self.shortcut is None:
            table = torch.from_numpy(self.identity_table).to(sc.dtype)
            return table[sc.long()]
        return count_at_least(self.shortcut.thresholds, sc) - self.add_max

    def total(self, acc2: Tensor, sc: Tensor) -> Tensor:
        """n = q_r + q_s, the integer on scale s_add that act2 thresholds."""
        return self.residual_level(acc2) + self.shortcut_level(sc)

    def out_level(self, total: Tensor) -> Tensor:
        """q_out = #{k : n >= U_k}."""
        levels = torch.zeros_like(total)
        for u in self.out_thresholds.tolist():
            levels += (total >= u).to(total.dtype)
        return levels

    def shortcut_accumulate(self, x: Tensor) -> Tensor:
        """The shortcut's accumulator: the input itself (identity) or acc_sc = W_sc . x."""
        return x if self.shortcut is None else accumulate(self.shortcut, x)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(acc1, act1 levels, n = q_r + q_s, act2 levels) for an integer input x (float64)."""
        acc1 = accumulate(self.conv1, x)
        level1 = fire(self.conv1, acc1)
        total = self.total(accumulate(self.conv2, level1), self.shortcut_accumulate(x))
        return acc1, level1, total, self.out_level(total)


@dataclass
class ShiftBlock:
    """A shift-add residual block in integer form (``residual: shift``; docs/design.md,
    section 2.8; the Brevitas side is ``model.network.BasicBlock``).

    Brevitas computes act2 = QCFS(L) of main + |a2_c| 2^e_c v, with main = a2_c * acc2 + b2_c
    (acc2 conv2's integer accumulator on act1's levels, a2_c BN2's gain times conv2's accumulator
    scale, b2_c BN2's folded offset), v the shortcut's integer (the block input's level summed
    over its timesteps for the identity, the projection's accumulator W_sc . q_in otherwise) and
    e_c the snapping exponent the model computed (float32, clamped to +-E_MAX). Here:

    - ``conv1``: conv3x3(stride) + BN1 + act1, a normal PASCAL layer (T_in = the block input's
      timesteps, L levels);
    - ``conv2``: conv3x3 with weight rows negated where a2_c < 0, so acc2' = sign(a2_c) * acc2;
      ``thresholds`` None (its float view: ``scale`` |a2|, ``offset`` b2);
    - ``shortcut``: None (identity) or the projection conv1x1(stride) with its integer weights
      (not negated; ``thresholds`` None, ``scale`` its unsnapped gain g = s_in * sw_sc);
    - ``shift_main`` = max(0, -e), ``shift_short`` = max(0, e) (C,) int64: the block's integer
      n_c = acc2'_c * 2^shift_main_c + v_c * 2^shift_short_c (both shifts left);
    - ``thresholds`` (C, L) int64: act2's level = #{k : n_c >= T_k},
      T_k = ceil(((k - 1/2) s_out - b2_c) / (|a2_c| 2^min(0, e_c))), checked like every layer's;
      a channel with a2_c = 0 is constant (its shortcut is multiplied by 0, sentinel thresholds).

    No add quantizer, no lookup table. The block is act2's entry in
    :meth:`IntegerNetwork.hidden`: its "accumulator" is n, with the float view
    z = ``scale`` * n + ``offset`` = |a2| 2^min(0, e) * n + b2 (act2's exact input) and ``step``
    s_out. ``acc_bound`` is the largest |n| any input can give.
    """

    index: int
    conv1: IntLayer
    conv2: IntLayer
    shortcut: IntLayer | None
    shift_main: np.ndarray            # (C,) int64, max(0, -e)
    shift_short: np.ndarray           # (C,) int64, max(0, e)
    thresholds: np.ndarray            # (C, L) int64, ascending per row
    exponent: np.ndarray              # (C,) int64, e (0 where a2 = 0)
    short_gain: np.ndarray            # (C,) float64, |a2| 2^e: the snapped gain of v (0: a2 = 0)
    in_scale: float                   # s_in, the scale of the block input's integers
    t_in: int                         # timesteps of the block input
    levels: int                       # L of act1 and act2
    step: float                       # s_out = lambda_2 / L
    scale: np.ndarray                 # (C,) |a2| 2^min(0, e) (act2's float view on n)
    offset: np.ndarray                # (C,) b2
    in_shape: tuple[int, ...] = ()
    out_shape: tuple[int, ...] = ()
    first: bool = False
    acc_bound: int = 0                # the largest |n| (worst case)
    kind: str = "block"
    residual: str = "shift"

    weighted = False                  # not a plain weighted layer: callers must handle blocks
    classifier = False

    @property
    def identity(self) -> bool:
        return self.shortcut is None

    def _per_channel(self, values: np.ndarray, like: Tensor) -> Tensor:
        view = (1, -1) + (1,) * (like.dim() - 2)
        return torch.from_numpy(values).to(like.dtype).view(view)

    def shift_residual(self, acc2: Tensor) -> Tensor:
        """acc2' * 2^shift_main (exact in float64: a left shift)."""
        return acc2 * self._per_channel(2.0 ** self.shift_main, acc2)

    def shift_shortcut(self, v: Tensor) -> Tensor:
        """v * 2^shift_short (exact in float64: a left shift)."""
        return v * self._per_channel(2.0 ** self.shift_short, v)

    def total(self, acc2: Tensor, v: Tensor) -> Tensor:
        """n = acc2' * 2^shift_main + v * 2^shift_short, the integer act2 thresholds."""
        return self.shift_residual(acc2) + self.shift_shortcut(v)

    def out_level(self, total: Tensor) -> Tensor:
        """act2's level #{k : n >= T_k} per channel."""
        return count_at_least(self.thresholds, total)

    def shortcut_accumulate(self, x: Tensor) -> Tensor:
        """v: the input itself (identity) or the projection's accumulator W_sc . x."""
        return x if self.shortcut is None else accumulate(self.shortcut, x)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(acc1, act1 levels, n, act2 levels) for an integer input x (float64)."""
        acc1 = accumulate(self.conv1, x)
        level1 = fire(self.conv1, acc1)
        total = self.total(accumulate(self.conv2, level1), self.shortcut_accumulate(x))
        return acc1, level1, total, self.out_level(total)


# Both kinds of residual block in integer form.
BLOCKS = (IntBlock, ShiftBlock)


def count_at_least(thresholds: np.ndarray, acc: Tensor) -> Tensor:
    """#{j : acc >= T_j} per channel (dim 1) for ascending rows T (out, J), in acc's dtype."""
    table = torch.from_numpy(thresholds).to(torch.float64)  # sentinels 2^40: exact
    channels = acc.shape[1]
    values = acc.double().transpose(0, 1).reshape(channels, -1).contiguous()
    counts = torch.searchsorted(table.contiguous(), values, right=True)
    shape = (channels, acc.shape[0]) + tuple(acc.shape[2:])
    return counts.reshape(shape).transpose(0, 1).to(acc.dtype)


@dataclass
class IntegerNetwork:
    """The integer form of a QCFS network: run it with :meth:`run`."""

    name: str
    layers: list["IntLayer | IntBlock | ShiftBlock"]
    input_bits: int
    classes: int

    def hidden(self) -> list["IntLayer | IntBlock | ShiftBlock"]:
        """The QCFS (thresholded) layers, in order: one entry per QCFS activation, as in
        ``QCFSNet.qcfs_activations()``. A block gives two: its conv1 (act1), then the block itself
        (act2, whose float view is z = |a2| 2^min(0, e) n + b2 for a :class:`ShiftBlock`,
        z = s_add * (q_r + q_s) for an :class:`IntBlock`)."""
        hidden: list[IntLayer | IntBlock | ShiftBlock] = []
        for layer in self.layers:
            if isinstance(layer, BLOCKS):
                hidden += [layer.conv1, layer]
            elif layer.weighted and not layer.classifier:
                hidden.append(layer)
        return hidden

    @torch.no_grad()
    def run(self, pixels: Tensor, accumulators: list[Tensor] | None = None
            ) -> tuple[Tensor, list[Tensor]]:
        """(classifier accumulators int64 (N, classes), per-hidden-layer levels int64).

        In float64, which holds every accumulator exactly. Pass a list as ``accumulators`` to
        receive each hidden layer's accumulator too (aligned with :meth:`hidden`; for a block:
        conv1's accumulator, then the integer that act2 thresholds: n = acc2' * 2^shift_main +
        v * 2^shift_short for a shift block, q_r + q_s for a requant block)."""
        x = pixels.double()
        levels = []
        for layer in self.layers:
            if isinstance(layer, BLOCKS):
                acc1, level1, total, x = layer.forward(x)
                levels += [level1.long(), x.long()]
                if accumulators is not None:
                    accumulators += [acc1, total]
            elif layer.weighted:
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
    if layer.kind == "block":  # never silently flatten a block (a caller that lacks block support)
        raise PascalError(f"layer {layer.index} (block): residual blocks are not supported here "
                          f"(only by IntegerNetwork.run and the PASCAL simulation)")
    if layer.kind == "maxpool":
        return F.max_pool2d(x, layer.kernel, layer.stride)
    if layer.kind == "avgpool":  # a sum pool; the 1/k^2 is in the next layer's thresholds
        return F.avg_pool2d(x, layer.kernel, layer.stride, divisor_override=1)
    return torch.flatten(x, 1)


def _bn_fold(bn: nn.Module) -> tuple[np.ndarray, np.ndarray] | None:
    if isinstance(bn, nn.Identity):
        return None
    inv_std = 1.0 / np.sqrt(bn.running_var.double().numpy() + bn.eps)
    gain = bn.weight.detach().double().numpy() * inv_std
    shift = bn.bias.detach().double().numpy() - gain * bn.running_mean.double().numpy()
    return gain, shift


def _quantized_weight(module: nn.Module) -> tuple[np.ndarray, np.ndarray]:
    """Brevitas' integer weights (int64) and the per-output-channel weight scale (float64)."""
    qweight = module.quant_weight()
    weight = qweight.int().long().numpy().astype(np.int64)
    w_scale = qweight.scale.double().flatten().numpy()
    if w_scale.size == 1:
        w_scale = np.full(weight.shape[0], w_scale[0])
    return weight, w_scale


def _row_bound(weight: np.ndarray) -> int:
    """The largest sum of |weights| of one output (times the largest input: the |acc| bound)."""
    return int(np.abs(weight).reshape(weight.shape[0], -1).sum(axis=1).max())


def _scale_of(x) -> float:
    return float(x.scale.double().flatten()[0])


def _folded_layer(weight: np.ndarray, acc_scale: np.ndarray, bn: nn.Module,
                  boundaries: np.ndarray, bias_int: np.ndarray, step: float, levels: int,
                  **common) -> IntLayer:
    """A thresholded layer: BatchNorm folded into z = a * (acc + bias) + b, thresholds on the
    ascending ``boundaries`` of z, weight rows negated where a < 0 (``levels`` = #boundaries)."""
    folded = _bn_fold(bn)
    gain, shift = folded if folded is not None else (np.ones_like(acc_scale),
                                                     np.zeros_like(acc_scale))
    a = gain * acc_scale
    b = shift
    thresholds, sign = integer_thresholds(a, b, boundaries, bias_int)
    view = (-1,) + (1,) * (weight.ndim - 1)
    return IntLayer(weight=weight * sign.reshape(view), thresholds=thresholds, levels=levels,
                    scale=np.abs(a), offset=b + a * bias_int, step=step, **common)


def _check_add_quantizer(block: BasicBlock, add_max: int, add_scale: float, where: str) -> None:
    """Brevitas' add quantizer is clamp(halfup(x / s_add), -M, M) (narrow signed range)."""
    grid = np.arange(-add_max - 3, add_max + 4, dtype=np.float64)
    grid = np.concatenate([grid - 0.3, grid, grid + 0.3])
    x = torch.from_numpy(grid).float() * torch.tensor(add_scale, dtype=torch.float32)
    got = block.add_quant(x).int().long().numpy()
    expected = np.clip(np.floor(x.double().numpy() / add_scale + 0.5), -add_max, add_max)
    if not np.array_equal(got, expected):
        raise PascalError(f"{where}: the add quantizer is not clamp(halfup(x / s_add), -M, M) with "
                          f"M = {add_max} (check add_bits and SignedAddQuant)")


def _identity_table(block: BasicBlock, in_scale: float, x_scale: Tensor, add_scale: float,
                    add_max: int, size: int, where: str) -> np.ndarray:
    """q_s = clamp(halfup(s_in * v / s_add), -M, M) for v = 0..size-1, in float64, checked
    against Brevitas (which may differ only at a tie: within 1e-4 of a rounding boundary)."""
    values = np.arange(size, dtype=np.float64)
    exact = in_scale * values / add_scale
    table = np.clip(np.floor(exact + 0.5), -add_max, add_max).astype(np.int64)
    brevitas_in = torch.arange(size, dtype=torch.float32) * x_scale.detach().float().flatten()[0]
    brevitas = block.add_quant(brevitas_in).int().long().numpy()
    differ = brevitas != table
    tie = np.abs(exact - np.floor(exact) - 0.5) <= 1e-4
    if np.any(differ & ~tie):
        v = int(np.flatnonzero(differ & ~tie)[0])
        raise PascalError(f"{where}: identity shortcut table check failed at input {v}: "
                          f"{table[v]} (float64) vs {brevitas[v]} (Brevitas)")
    return table


def _convert_block(block: BasicBlock, layer, inputs: dict, t_in: int, first: bool,
                   in_max: int) -> IntBlock:
    where = f"layer {layer.index} (block)"
    x_in = inputs[block]
    in_scale = _scale_of(x_in)
    levels = layer.levels
    add_max = 2 ** (layer.add_bits - 1) - 1
    add_scale = float(block.add_quant.act_quant.scale().double())
    _check_add_quantizer(block, add_max, add_scale, where)
    step1 = float(block.act1.act_quant.scale().double())
    step_out = float(block.act2.act_quant.scale().double())
    add_bounds = add_boundaries(add_scale, add_max)
    input_max = in_max * t_in  # the largest integer sum of the block input over its timesteps
    shapes = dict(index=layer.index, in_shape=layer.in_shape, out_shape=layer.out_shape)

    weight1, w_scale1 = _quantized_weight(block.conv1)
    conv1 = _folded_layer(
        weight1, in_scale * w_scale1, block.bn1, level_boundaries(step1, levels),
        np.zeros(len(weight1), dtype=np.int64), step1, levels, kind="conv", kernel=3,
        stride=layer.stride, padding=1, t_in=t_in, first=first,
        acc_bound=_row_bound(weight1) * input_max, **shapes)

    weight2, w_scale2 = _quantized_weight(block.conv2)
    scale2 = _scale_of(inputs[block.conv2])  # act1's step, as Brevitas feeds it to conv2
    conv2 = _folded_layer(
        weight2, scale2 * w_scale2, block.bn2, add_bounds, np.zeros(len(weight2), dtype=np.int64),
        add_scale, 2 * add_max, kind="conv", kernel=3, stride=1, padding=1, t_in=levels,
        acc_bound=_row_bound(weight2) * levels, index=layer.index, in_shape=layer.out_shape,
        out_shape=layer.out_shape)

    shortcut = table = None
    if isinstance(block.shortcut, nn.Identity):
        table = _identity_table(block, in_scale, x_in.scale, add_scale, add_max, input_max + 1,
                                where)
        sc_bound = input_max
    else:
        conv_sc, bn_sc = block.shortcut[0], block.shortcut[1]
        weight_sc, w_scale_sc = _quantized_weight(conv_sc)
        shortcut = _folded_layer(
            weight_sc, in_scale * w_scale_sc, bn_sc, add_bounds,
            np.zeros(len(weight_sc), dtype=np.int64), add_scale, 2 * add_max, kind="conv",
            kernel=1, stride=layer.stride, padding=0, t_in=t_in, first=first,
            acc_bound=_row_bound(weight_sc) * input_max, **shapes)
        sc_bound = shortcut.acc_bound

    # U_k: the smallest integer n with s_add * n >= (k - 1/2) * s_out (checked in float64)
    out_thresholds, _ = integer_thresholds(np.array([add_scale]), np.zeros(1),
                                           level_boundaries(step_out, levels),
                                           np.zeros(1, np.int64))
    channels = layer.channels
    return IntBlock(index=layer.index, conv1=conv1, conv2=conv2, shortcut=shortcut,
                    identity_table=table, out_thresholds=out_thresholds[0], add_max=add_max,
                    add_scale=add_scale, in_scale=in_scale, t_in=t_in, levels=levels,
                    step=step_out, scale=np.full(channels, add_scale), offset=np.zeros(channels),
                    in_shape=layer.in_shape, out_shape=layer.out_shape, first=first,
                    acc_bound=max(conv2.acc_bound, sc_bound))


def _convert_shift_block(block: BasicBlock, layer, inputs: dict, t_in: int, first: bool,
                         in_max: int) -> ShiftBlock:
    """The :class:`ShiftBlock` of a ``residual: shift`` block. The exponents e are the model's
    own (float32, :meth:`BasicBlock.shift_parameters` on the scales Brevitas feeds the block);
    gains, offsets and thresholds are float64."""
    where = f"layer {layer.index} (block)"
    x_in = inputs[block]
    act1_in = inputs[block.conv2]  # act1's output, as Brevitas feeds it to conv2
    in_scale = _scale_of(x_in)
    scale1 = _scale_of(act1_in)
    levels = layer.levels
    step1 = float(block.act1.act_quant.scale().double())
    step_out = float(block.act2.act_quant.scale().double())
    input_max = in_max * t_in  # the largest integer sum of the block input over its timesteps
    shapes = dict(index=layer.index, in_shape=layer.in_shape, out_shape=layer.out_shape)
    channels = layer.channels

    weight1, w_scale1 = _quantized_weight(block.conv1)
    conv1 = _folded_layer(
        weight1, in_scale * w_scale1, block.bn1, level_boundaries(step1, levels),
        np.zeros(len(weight1), dtype=np.int64), step1, levels, kind="conv", kernel=3,
        stride=layer.stride, padding=1, t_in=t_in, first=first,
        acc_bound=_row_bound(weight1) * input_max, **shapes)

    snap = block.shift_parameters(x_in.scale, act1_in.scale)
    exponent = snap["exponent"].numpy().astype(np.int64)
    weight2, w_scale2 = _quantized_weight(block.conv2)
    gain2, b2 = _bn_fold(block.bn2)
    a2 = gain2 * scale1 * w_scale2                    # float64, conv2's signed gain
    live = a2 != 0.0
    if not np.array_equal(live, snap["a2"].numpy() != 0.0):
        raise PascalError(f"{where}: conv2's gain is zero in float64 but not in float32 (or "
                          f"the reverse): a BatchNorm variance too small to fold")
    exponent = np.where(live, exponent, 0)
    magnitude = np.abs(a2)
    sign = np.where(a2 < 0, -1, 1).astype(np.int64)
    conv2 = IntLayer(kind="conv", index=layer.index, weight=weight2 * sign.reshape(-1, 1, 1, 1),
                     kernel=3, stride=1, padding=1, t_in=levels, levels=0,
                     in_shape=layer.out_shape, out_shape=layer.out_shape, scale=magnitude,
                     offset=b2, step=step_out, acc_bound=_row_bound(weight2) * levels)
    conv2_bound = np.abs(weight2).reshape(channels, -1).sum(axis=1) * levels

    shortcut = None
    gain = np.full(channels, in_scale)
    if block.projection:
        weight_sc, w_scale_sc = _quantized_weight(block.shortcut)
        gain = in_scale * w_scale_sc
        short_bound = np.abs(weight_sc).reshape(channels, -1).sum(axis=1) * input_max
        shortcut = IntLayer(kind="conv", weight=weight_sc, kernel=1, stride=layer.stride,
                            padding=0, t_in=t_in, levels=0, first=first, scale=gain,
                            offset=np.zeros(channels), step=step_out,
                            acc_bound=int(short_bound.max()), **shapes)
    else:
        short_bound = np.full(channels, input_max, dtype=np.int64)
    if np.any(live & ~(gain > 0)):
        raise PascalError(f"{where}: the shortcut's gain is not positive in a channel")
    short_gain = np.where(live, magnitude * np.exp2(exponent.astype(np.float64)), 0.0)
    # the model's factor |a2| 2^e / g (float32) against float64: the same snapping
    factor = np.where(live, short_gain / np.where(live, gain, 1.0), 0.0)
    if not np.allclose(snap["factor"].double().numpy(), factor, rtol=1e-5, atol=0.0):
        raise PascalError(f"{where}: the shortcut's snapping factor disagrees between the model "
                          f"(float32) and float64")
    shift_main = np.maximum(0, -exponent).astype(np.int64)
    shift_short = np.maximum(0, exponent).astype(np.int64)
    n_scale = np.where(live, magnitude * np.exp2(np.minimum(0, exponent).astype(np.float64)), 0.0)
    thresholds, signs = integer_thresholds(n_scale, b2, level_boundaries(step_out, levels),
                                           np.zeros(channels, dtype=np.int64))
    assert np.all(signs == 1)
    bound = conv2_bound * 2 ** shift_main + short_bound * 2 ** shift_short
    return ShiftBlock(index=layer.index, conv1=conv1, conv2=conv2, shortcut=shortcut,
                      shift_main=shift_main, shift_short=shift_short, thresholds=thresholds,
                      exponent=exponent, short_gain=short_gain, in_scale=in_scale, t_in=t_in,
                      levels=levels, step=step_out, scale=n_scale, offset=b2,
                      in_shape=layer.in_shape, out_shape=layer.out_shape, first=first,
                      acc_bound=int(bound.max()))


@torch.no_grad()
def convert(net: QCFSNet) -> IntegerNetwork:
    """The integer network of a trained (eval-mode) QCFS network."""
    spec = net.spec
    if not net.quantized:
        raise PascalError(f"{spec.name}: a float network has no integer form (train without --float)")
    net.eval()
    # One forward pass records the exact float32 scales Brevitas uses at every layer input.
    inputs: dict[nn.Module, object] = {}
    watched = list(net.units) + [unit.conv2 for unit in net.units if isinstance(unit, BasicBlock)]
    hooks = [unit.register_forward_pre_hook(lambda m, args: inputs.__setitem__(m, args[0]))
             for unit in watched]
    shape = (1, spec.input.channels, spec.input.height, spec.input.width)
    net(torch.zeros(shape))
    for hook in hooks:
        hook.remove()

    layers: list[IntLayer | IntBlock | ShiftBlock] = []
    t_in = 1
    first = True
    in_max = 2 ** spec.input.bits - 1  # the largest input value of one frame
    for unit, layer in zip(net.units, spec.layers):
        if isinstance(unit, BasicBlock):
            if unit.residual == "shift":
                layers.append(_convert_shift_block(unit, layer, inputs, t_in, first, in_max))
            else:
                layers.append(_convert_block(unit, layer, inputs, t_in, first, in_max))
            t_in = layer.levels
            first = False
            in_max = 1  # spikes
        elif isinstance(unit, (ConvUnit, LinearUnit)):
            module = unit.conv if isinstance(unit, ConvUnit) else unit.linear
            x_in = inputs[unit]
            in_scale = _scale_of(x_in)
            weight, w_scale = _quantized_weight(module)
            bias_int = np.zeros(weight.shape[0], dtype=np.int64)
            if module.bias is not None:
                flat_in = torch.flatten(x_in, 1) if isinstance(unit, LinearUnit) and \
                    x_in.value.dim() > 2 else x_in
                qbias = module.bias_quant(module.bias, flat_in, module.quant_weight())
                bias_int = qbias.int().long().numpy().astype(np.int64)
            acc_scale = in_scale * w_scale
            kind = "conv" if isinstance(unit, ConvUnit) else "linear"
            acc_bound = _row_bound(weight) * in_max * t_in
            common = dict(kind=kind, index=layer.index, t_in=t_in, first=first,
                          in_shape=layer.in_shape, out_shape=layer.out_shape, acc_bound=acc_bound)
            if kind == "conv":
                common.update(kernel=layer.kernel, stride=layer.stride, padding=layer.padding)
            if layer is spec.layers[-1]:
                layers.append(IntLayer(weight=weight, bias=bias_int, out_scale=float(acc_scale[0]),
                                       scale=acc_scale, offset=np.zeros_like(acc_scale), **common))
                break
            step = float(unit.act.act_quant.scale().double())
            layers.append(_folded_layer(weight, acc_scale, unit.bn,
                                        level_boundaries(step, layer.levels), bias_int, step,
                                        layer.levels, **common))
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
