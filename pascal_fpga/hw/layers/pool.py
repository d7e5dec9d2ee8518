"""Pooling: SpikingMaxPool (frame-wise OR / max) and SpikingSumPool (frame-wise sum; the 1/K^2
lives in the next thresholds), a K-row line buffer and one word of PE channels per slot."""

from __future__ import annotations

import math

import numpy as np

from ...errors import PascalError
from ...ir.widths import unsigned_bits
from .. import schedule
from ..resources import CONTROL_FF, CONTROL_LUT, Tally, comparator, mux, or_tree
from ..schedule import LOOP_OVERHEAD, READ, WRITE
from .base import HWLayer, rows_needed, sliding_windows


class PoolLayer(HWLayer):
    """SpikingMaxPool, SpikingSumPool: passes its input group through (PE channels a word)."""

    ops = ("SpikingMaxPool", "SpikingSumPool")
    passes_group = True

    def __init__(self, node, model, attrs=None):
        super().__init__(node, model, attrs)
        a = self.attrs
        self.kernel, self.stride = int(a["kernel"]), int(a["stride"])
        self.sum = node.op_type == "SpikingSumPool"
        if not self.sum and self.fb_in > 1 and self.t_in > 1:
            raise PascalError(f"layer {self.name}: max pooling of multi-bit frames over "
                              f"{self.t_in} timesteps is not the max of the levels (a max pool "
                              f"after a sum pool); not supported")

    @property
    def fb_out(self) -> int:
        return unsigned_bits(self.kernel ** 2 * self.frame_max) if self.sum else self.fb_in

    @property
    def out_frames(self) -> int:
        return self.t_in

    @property
    def in_group(self) -> int:
        return self.pe

    @property
    def shown_simd(self) -> int | None:
        return None

    @property
    def cf(self) -> int:
        return self.in_channels // self.pe

    @property
    def out_level_bits(self) -> int:
        return unsigned_bits(self.kernel ** 2 * self.in_max) if self.sum else self.level_bits

    def fold_limits(self) -> tuple[int, int]:
        return self.in_channels, 1

    def shown_mode(self, mode: str) -> str:
        return "qnn" if mode == "qnn" else "snn"   # a pool's two SNN modes are one

    def rows_needed(self) -> list[int]:
        return rows_needed(self.out_h, self.in_h, self.kernel, self.stride)

    def values(self, packed, streams, n):
        frames = streams[self.inputs[0]]
        k, stride = self.kernel, self.stride
        outs = []
        for t in range(frames.shape[-1]):
            win = sliding_windows(frames[..., t], k, stride, 0, self.out_h, self.out_w)
            win = win.reshape(n, self.out_h * self.out_w, k * k, -1)
            outs.append(win.sum(axis=2) if self.sum else win.max(axis=2))
        out = np.stack(outs, axis=-1).reshape(n, self.out_h, self.out_w, -1, len(outs))
        return out, self.levels_of(out, n), None

    def programs(self, activity, n, mode=None):
        row_words = self.in_w * self.cf
        rows = self.rows_needed()
        kinds, lengths = [], []
        for oy in range(self.out_h):
            kinds += [READ, WRITE]
            lengths += [rows[oy] * row_words, self.out_w * self.cf]
        kinds.append(READ)
        lengths.append(rows[-1] * row_words)
        return [schedule.from_runs(self.name, np.array(kinds),
                                   np.tile(np.array(lengths), (n, 1)))]

    def stage_cycles(self, mode, activity=None, worst=False):
        return {self.name: float((self.in_h * self.in_w + self.out_h * self.out_w) * self.cf
                                 + LOOP_OVERHEAD)}

    def count_parts(self, tally: Tally, mode: str, fifo_bits: int, fifo_depth: int) -> None:
        tally.fifo("input FIFO", fifo_bits, fifo_depth)
        p, k = self.pe, self.kernel
        kk = k * k
        cf = self.in_channels // p
        tally.add("control", lut=CONTROL_LUT, ff=CONTROL_FF)
        in_bits = self.lane_bits(mode)
        out_bits = self.out_level_bits if mode == "qnn" else self.t_in * self.fb_out
        tally.memory("line buffer", math.ceil(self.in_w / k) * cf, p * in_bits, kk)
        tally.add("tap muxes", lut=kk * p * in_bits * mux(kk))
        if mode == "qnn":
            a = self.level_bits
            per_channel = (kk - 1) * out_bits if self.sum else (kk - 1) * (comparator(a) + a)
            tally.add("combine", lut=p * per_channel)
        else:
            t, fb = self.t_in, self.fb_in
            if self.sum:
                per_frame = (kk - 1) * self.fb_out
            elif fb == 1:
                per_frame = or_tree(kk)
            else:
                per_frame = (kk - 1) * (comparator(fb) + fb)
            tally.add("combine", lut=p * t * per_frame)
        tally.add("output register", ff=p * out_bits)
