"""Weighted layers: a feeder and a matrix-vector unit (MVU) with its emitter.

The feeder (the sliding-window generator of a convolution, the vector generator of a dense
layer) sends the input vector's SIMD groups as tokens to the MVU, which multiplies them with
its PE rows of weights [NF*SF][PE][SIMD] and emits per output word either thermometer frames
(thresholds) or accumulators (the classifier's, or a residual block's conv2 and projection). In
``zero_skip`` mode (event-driven) the feeder sends only groups with a spike and a token costs the
MVU as many cycles as its group's largest level (thermometer order: its spike-carrying frames);
in dense mode every group costs T_in cycles. The QNN twin (``mode="qnn"``) is the same structure
on multi-bit levels: every group, one cycle each.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ...errors import PascalError
from ...ir.widths import unsigned_bits
from .. import schedule
from ..resources import (CONTROL_FF, CONTROL_LUT, UNCALIBRATED, Tally, comparator, mux,
                         or_tree, priority_encoder, product, rom)
from ..schedule import LOOP_OVERHEAD, READ, WRITE, Program
from .base import HWLayer, fold_rows, fold_weights, rows_needed, sliding_windows, unfold_rows


@dataclass
class _Datapath:
    """A weighted layer's unpacked parameters: the (FANIN, OUT) weights and the emitter's table
    (thresholds (OUT, T_OUT) or bias (OUT,)), in the dtype that keeps every sum exact."""

    weights: np.ndarray
    dtype: type
    table: np.ndarray


class WeightedLayer(HWLayer):
    """A feeder and a matrix-vector unit; weights [NF*SF][PE][SIMD]."""

    emitter = "threshold"   # or "classifier" / "accumulator": PE accumulators per word
    is_conv = False

    def __init__(self, node, model, attrs=None):
        super().__init__(node, model, attrs)
        a = self.attrs
        self.weight = np.rint(model.get_initializer(node.input[1])).astype(np.int64)
        self.third = np.rint(model.get_initializer(node.input[2])).astype(np.int64) \
            if len(node.input) > 2 else None
        self.weight_bits = int(a["weight_bits"])
        self.acc_bits = max(int(a["acc_bits"]), int(a.get("threshold_bits") or 0))
        self.acc_min, self.acc_max = int(a["acc_min"]), int(a["acc_max"])
        self.kernel, self.stride, self.pad = 1, 1, 0

    # --- shapes and streams ----------------------------------------------------------------
    @property
    def accumulates(self) -> bool:
        """Whether it emits accumulators (the classifier, a block's conv2 or projection)."""
        return self.emitter != "threshold"

    @property
    def has_neurons(self) -> bool:   # type: ignore[override]
        return self.emitter != "accumulator"   # a block's conv2 and projection only sum

    @property
    def output_kind(self) -> str:   # type: ignore[override]
        return "accumulators" if self.accumulates else "levels"

    @property
    def acc_bits_out(self) -> int:
        return self.acc_bits if self.accumulates else 0

    @property
    def out_frames(self) -> int:
        return 1 if self.accumulates else super().out_frames

    @property
    def out_word_bits(self) -> int:
        if not self.accumulates:
            return super().out_word_bits
        return self.pe * self.acc_bits

    @property
    def cf(self) -> int:
        return self.in_channels // self.simd

    @property
    def nf(self) -> int:
        return self.out_channels // self.pe

    @property
    def sf(self) -> int:
        return self.kernel * self.kernel * self.cf if self.is_conv else \
            self.in_h * self.in_w * self.cf

    @property
    def windows(self) -> int:
        return self.out_h * self.out_w

    @property
    def token_bits(self) -> int:
        sf = self.sf
        return self.simd * self.t_in * self.fb_in + unsigned_bits(max(sf - 1, 1)) + \
            unsigned_bits(self.t_in) + 1

    def word_widths(self) -> dict[str, int]:
        return {"input word": self.in_word_bits, "token": self.token_bits,
                "output word": self.out_word_bits}

    def fold_limits(self) -> tuple[int, int]:
        return self.out_channels, self.in_channels

    def stage_names(self) -> list[str]:
        return [f"{self.name}_feed", f"{self.name}_mvu"]

    def inner_fifos(self) -> list[tuple[int, int, int, str]]:
        return [(0, 1, self.token_bits, "token_depth")]

    def matrix(self) -> np.ndarray:
        """(OUT, FANIN) integer weights in the input vector's order."""
        raise NotImplementedError

    # --- the QNN twin's words ---------------------------------------------------------------
    @property
    def out_level_bits(self) -> int:
        return self.acc_bits if self.accumulates else unsigned_bits(self.t_out)

    def mode_output_bits(self, mode: str) -> int:
        return self.out_word_bits if self.accumulates else super().mode_output_bits(mode)

    def token_word_bits(self, mode: str) -> int:
        """A token: frames + sf + active + end; the QNN's S*a (no side fields)."""
        return self.simd * self.level_bits if mode == "qnn" else self.token_bits

    def mode_word_widths(self, mode: str) -> dict[str, int]:
        widths = super().mode_word_widths(mode)
        if mode == "qnn":
            widths["token"] = self.token_word_bits(mode)
        return widths

    # --- activity ---------------------------------------------------------------------------
    def group_activity(self, lanes: np.ndarray, simd: int | None = None) -> np.ndarray:
        simd = simd or self.simd
        n, h, w, c = lanes.shape
        groups = lanes.reshape(n, h, w, c // simd, simd).max(axis=-1)
        if not self.is_conv:
            return groups.reshape(n, 1, -1)
        return sliding_windows(groups, self.kernel, self.stride, self.pad, self.out_h,
                               self.out_w)

    def coverage(self) -> tuple[np.ndarray, np.ndarray]:
        """How many windows cover each input row and each input column (a dense layer's one
        window covers everything once)."""
        if not self.is_conv:
            return np.ones(self.in_h, dtype=np.int64), np.ones(self.in_w, dtype=np.int64)

        def count(size: int, out: int) -> np.ndarray:
            cover = np.zeros(size, dtype=np.int64)
            for o in range(out):
                start = o * self.stride - self.pad
                cover[max(start, 0):max(min(start + self.kernel, size), 0)] += 1
            return cover

        return count(self.in_h, self.out_h), count(self.in_w, self.out_w)

    def data_dependent(self, mode: str | None = None) -> bool:
        return self.mode_of(mode) == "zero_skip"

    # --- the datapath -----------------------------------------------------------------------
    def prepare_values(self) -> _Datapath:
        arrays = self.arrays()
        folded = arrays["weights"].astype(np.float64)
        nfsf, pe, simd = folded.shape
        nf = self.out_channels // pe
        sf = nfsf // nf
        matrix = folded.reshape(nf, sf, pe, simd).transpose(0, 2, 1, 3).reshape(nf * pe,
                                                                                sf * simd)
        # float32 when every accumulator fits 24 bits (exact), else float64 (exact below 2^53)
        dtype = np.float32 if self.acc_bits <= 24 else np.float64
        role = "bias" if self.accumulates else "thresholds"
        return _Datapath(matrix.T.astype(dtype), dtype, unfold_rows(arrays[role]))

    def accumulate(self, packed: _Datapath, frames: np.ndarray, n: int) -> np.ndarray:
        """(N, windows, OUT) accumulators (float64, exact integers) of input frames
        (N, H, W, C, T), one pass over the input per frame."""
        frames = frames.astype(packed.dtype)
        if self.is_conv:
            acc = np.zeros((n, self.windows, self.out_channels), dtype=packed.dtype)
            for t in range(self.t_in):  # one pass over the window per input frame
                windows = sliding_windows(frames[..., t], self.kernel, self.stride, self.pad,
                                          self.out_h, self.out_w)
                # one 2-D product (numpy's stacked 3-D matmul is several times slower)
                acc += (windows.reshape(-1, windows.shape[-1]) @ packed.weights).reshape(
                    acc.shape)
        else:
            flat = frames.reshape(n, -1, frames.shape[-1])  # stream order
            acc = np.zeros((n, 1, self.out_channels), dtype=packed.dtype)
            for t in range(self.t_in):
                acc[:, 0] += flat[..., t] @ packed.weights
        return np.rint(acc).astype(np.float64)

    def values(self, packed, streams, n):
        frames = streams[self.inputs[0]]
        lanes = self.lane_activity(frames)
        acc = self.accumulate(packed, frames, n)
        # thermometer frames: frame k of channel o is acc >= T[o][k]
        out = (acc[..., None] >= packed.table).astype(np.float32)
        if self.binary_out:   # the QNN twin: the level in binary, the count of those frames
            out = out.sum(axis=-1, keepdims=True)
        out = out.reshape(n, self.out_h, self.out_w, self.out_channels, -1)
        return out, self.levels_of(out, n), lanes

    # --- schedule ---------------------------------------------------------------------------
    def token_costs(self, activity: np.ndarray | None, n: int, mode: str | None
                    ) -> tuple[np.ndarray, np.ndarray]:
        """(cost, emitted), both (N, windows, SF): the MVU cycles of each group's token and
        whether the feeder sends it."""
        mode = self.mode_of(mode)
        shape = (n, self.windows, self.sf)
        if mode == "zero_skip":
            if activity is None or activity.shape != shape:
                raise PascalError(f"layer {self.name}: zero-skipping timing needs the input "
                                  f"activity of shape {shape}")
            return activity.astype(np.int64), activity > 0
        cost = self.t_in if mode == "dense" else 1
        return np.full(shape, cost, dtype=np.int64), np.ones(shape, dtype=bool)

    def programs(self, activity, n, mode=None):
        cost, emitted = self.token_costs(activity, n, mode)
        return [self.feed_program(emitted, n),
                schedule.mvu(f"{self.name}_mvu", cost, emitted, self.nf)]

    def feed_program(self, emitted: np.ndarray, n: int) -> Program:
        raise NotImplementedError

    def feed_slots(self, emitted: float) -> float:
        """The feeder's busy slots per image when it sends ``emitted`` tokens."""
        raise NotImplementedError

    def stage_cycles(self, mode, activity=None, worst=False):
        windows, sf, nf = self.windows, self.sf, self.nf
        if mode == "zero_skip":
            if activity is None:
                raise PascalError(f"layer {self.name}: zero-skipping cycles need its activity")
            active, emitted = activity.worst(self.simd) if worst else activity.sums(self.simd)
        else:
            per_group = self.t_in if mode == "dense" else 1
            emitted = float(windows * sf)
            active = emitted * per_group
        mvu = nf * (active + windows)
        return {f"{self.name}_feed": float(self.feed_slots(emitted) + LOOP_OVERHEAD),
                f"{self.name}_mvu": float(mvu + LOOP_OVERHEAD)}

    # --- the parameters ---------------------------------------------------------------------
    def arrays(self) -> dict[str, np.ndarray]:
        folded = fold_weights(self.matrix(), self.pe, self.simd)
        if self.emitter == "accumulator":   # a zero bias: the RTL MVU's classifier emitter
            return {"weights": folded,
                    "bias": np.zeros((self.nf, self.pe), dtype=np.int64)}
        if self.emitter == "classifier":
            return {"weights": folded, "bias": fold_rows(self.third.reshape(-1), self.pe)}
        return {"weights": folded, "thresholds": fold_rows(self.third, self.pe)}

    def arrays_roles(self) -> tuple[str, str]:
        return ("weights", "bias") if self.accumulates else ("weights", "thresholds")

    # --- resources --------------------------------------------------------------------------
    def count_parts(self, tally: Tally, mode: str, fifo_bits: int, fifo_depth: int) -> None:
        tally.fifo("input FIFO", fifo_bits, fifo_depth)
        self._count_feeder(tally, mode)
        self._count_mvu(tally, mode)

    def _count_feeder(self, tally: Tally, mode: str) -> None:
        s, t, fb = self.simd, self.t_in, self.fb_in
        token = self.token_word_bits(mode)
        frames = s * self.lane_bits(mode)       # the token's data bits
        if not self.is_conv and mode == "qnn":
            return  # FINN's MVAU reads the layer stream itself: no feeder stage
        tally.add("feeder control", lut=CONTROL_LUT, ff=CONTROL_FF)
        tally.add("feeder token register", ff=token)
        if self.is_conv:
            k, cf = self.kernel, self.cf
            tally.memory("line buffer", self.in_w * cf, frames, k)
            tally.add("line buffer row mux", lut=frames * mux(k))
            if mode == "zero_skip":
                sf = self.sf
                tally.memory("zero-skip group flags", math.ceil(self.in_w / k), cf, k * k)
                tally.add("zero-skip flag of each word", lut=or_tree(s * t * fb))
                kk = k * k
                tally.add("zero-skip window mask", lut=sf * (mux(k) + 1), ff=sf)
                tally.add("zero-skip priority encoder",
                          lut=kk * or_tree(cf) + priority_encoder(kk) + cf * mux(kk)
                          + priority_encoder(cf) + sf)
        if mode == "zero_skip":
            tally.add("zero-skip active", lut=t * or_tree(s * fb) + priority_encoder(t))

    def _count_mvu(self, tally: Tally, mode: str) -> None:
        p, s, w, a_acc = self.pe, self.simd, self.weight_bits, self.acc_bits
        t, fb = self.t_in, self.fb_in
        nf, sf = self.nf, self.sf
        token = self.token_word_bits(mode)
        lanes = p * s
        if self.is_conv or mode != "qnn":
            tally.fifo("token FIFO", token, self.token_depth)
        tally.add("MVU control", lut=CONTROL_LUT, ff=CONTROL_FF)
        if nf > 1:
            tally.memory("window buffer", sf, token)
        tally.add("current token", ff=token)
        if mode == "qnn":
            a = self.level_bits
            lut, dsp = product(w, a)
            tally.add(UNCALIBRATED, lut=lanes * lut, dsp=lanes * dsp)
            tally.add("lanes", ff=lanes * (w + a))
        else:
            tally.add("frame select", lut=s * fb * mux(t))
            if fb == 1:
                tally.add("lanes", lut=lanes * w, ff=lanes * (w + fb))
            else:
                lut, dsp = product(w, fb)
                tally.add("lanes", lut=lanes * lut, dsp=lanes * dsp, ff=lanes * (w + fb))
        tally.add("adders", lut=lanes * a_acc, ff=p * a_acc)
        lut, bram = rom(nf * sf, lanes * w)
        tally.add("weights", lut=lut, bram=bram)
        if self.accumulates:
            lut, bram = rom(nf, p * a_acc)
            tally.add("bias", lut=lut, bram=bram)
            tally.add("emitter", lut=p * a_acc, ff=p * a_acc)
            return
        levels = self.t_out
        lut, bram = rom(nf, p * levels * a_acc)
        tally.add("thresholds", lut=lut, bram=bram)
        tally.add("emitter", lut=p * levels * comparator(a_acc), ff=2 * p * a_acc)
        if mode == "qnn":
            a_out = self.out_level_bits
            tally.add("emitter encoder", lut=p * a_out * max(1, math.ceil((levels - 1) / 5)),
                      ff=p * a_out)
        else:
            tally.add("emitter", ff=p * levels)


class ConvLayer(WeightedLayer):
    """PixelConv, SpikingConv: sliding-window generator + MVU with the threshold emitter."""

    ops = ("PixelConv", "SpikingConv")
    is_conv = True

    def __init__(self, node, model, attrs=None):
        super().__init__(node, model, attrs)
        a = self.attrs
        self.kernel, self.stride, self.pad = int(a["kernel"]), int(a["stride"]), int(a["pad"])

    def matrix(self) -> np.ndarray:
        # (O, C, K, K) -> (O, [ky, kx, c]): the window's tap-major, channel-minor order
        return self.weight.transpose(0, 2, 3, 1).reshape(self.weight.shape[0], -1)

    def rows_needed(self) -> list[int]:
        """Input rows read before each output row's windows (then the rest, drained)."""
        return rows_needed(self.out_h, self.in_h, self.kernel, self.stride, self.pad)

    def feed_program(self, emitted, n):
        row_words = self.in_w * self.cf
        rows = self.rows_needed()
        kinds, lengths = [], []
        emits = emitted.sum(axis=2) + 1                     # tokens + END per window (N, W)
        for oy in range(self.out_h):
            kinds.append(READ)
            lengths.append(np.full(n, rows[oy] * row_words))
            for ox in range(self.out_w):
                kinds.append(WRITE)
                lengths.append(emits[:, oy * self.out_w + ox])
        kinds.append(READ)
        lengths.append(np.full(n, rows[-1] * row_words))
        return schedule.from_runs(f"{self.name}_feed", np.array(kinds),
                                  np.stack(lengths, axis=1))

    def feed_slots(self, emitted):
        return self.in_h * self.in_w * self.cf + emitted + self.windows


class DenseLayer(WeightedLayer):
    """PixelDense, SpikingDense: vector generator + MVU with the threshold emitter. The input is
    the (C, H, W) map flattened pixel-major (input index (y * W + x) * C + c)."""

    ops = ("PixelDense", "SpikingDense")

    def matrix(self) -> np.ndarray:
        if len(self.in_shape) == 3:  # flattened C, H, W -> the stream's pixel-major H, W, C
            c, h, w = self.in_shape
            m = self.weight.reshape(self.weight.shape[0], c, h, w).transpose(0, 2, 3, 1)
            return m.reshape(self.weight.shape[0], -1)
        return self.weight

    def feed_program(self, emitted, n):
        return schedule.vector_feed(f"{self.name}_feed", emitted[:, 0, :])

    def feed_slots(self, emitted):
        return self.sf + 1


class ClassifierLayer(DenseLayer):
    """SpikingClassifier: vector generator + MVU with the accumulator emitter (PE accumulators
    per word, starting at the integer bias). The design's last layer."""

    ops = ("SpikingClassifier",)
    emitter = "classifier"
    ends_design = True

    def values(self, packed, streams, n):
        frames = streams[self.inputs[0]]
        lanes = self.lane_activity(frames)
        acc = (self.accumulate(packed, frames, n)[:, 0] + packed.table).astype(np.int64)
        return acc, acc, lanes


class ConvAccLayer(ConvLayer):
    """SpikingConvAcc (a residual block's conv2 or 1x1 projection): sliding-window generator +
    MVU with the accumulator emitter (PE accumulators per word, starting at 0)."""

    ops = ("SpikingConvAcc",)
    emitter = "accumulator"

    def values(self, packed, streams, n):
        frames = streams[self.inputs[0]]
        lanes = self.lane_activity(frames)
        acc = self.accumulate(packed, frames, n).astype(np.int64)
        acc = acc.reshape(n, self.out_h, self.out_w, -1)
        return acc, acc.reshape(n, -1), lanes
