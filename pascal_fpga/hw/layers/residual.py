"""A residual block's two stream layers: the fork that duplicates the block's input and the add
that joins conv2's accumulators with the shortcut and fires the block's output frames."""

from __future__ import annotations

import numpy as np

from ...errors import PascalError
from .. import schedule
from ..resources import CONTROL_FF, CONTROL_LUT, Tally, comparator, rom
from ..schedule import LOOP_OVERHEAD
from .base import HWLayer, fold_rows, unfold_rows


class ForkLayer(HWLayer):
    """SpikingFork: the stream duplicator of a residual block. One slot per word: it reads the
    word and writes it to both outputs (main path, shortcut) in the same slot."""

    ops = ("SpikingFork",)
    passes_group = True
    output_kind = None      # its outputs are its input

    @property
    def in_group(self) -> int:
        return self.pe

    @property
    def out_frames(self) -> int:
        return self.t_in

    @property
    def fb_out(self) -> int:
        return self.fb_in

    @property
    def words(self) -> int:
        """Words per image."""
        return self.in_h * self.in_w * (self.in_channels // self.pe)

    def fold_limits(self) -> tuple[int, int]:
        return self.in_channels, 1

    def mode_output_bits(self, mode: str) -> int:
        return self.out_word_bits

    def values(self, packed, streams, n):
        return streams[self.inputs[0]], None, None

    def programs(self, activity, n, mode=None):
        return [schedule.from_runs(self.name, np.array([schedule.READ_WRITE]),
                                   np.full((n, 1), self.words))]

    def stage_cycles(self, mode, activity=None, worst=False):
        return {self.name: float(self.words + LOOP_OVERHEAD)}   # one read-write slot a word

    def count_parts(self, tally: Tally, mode: str, fifo_bits: int, fifo_depth: int) -> None:
        tally.fifo("input FIFO", fifo_bits, fifo_depth)
        tally.add("control", lut=CONTROL_LUT // 2, ff=CONTROL_FF // 2)


class AddLayer(HWLayer):
    """SpikingAdd: a residual block's add and activation. Per output word (PE channels of one
    pixel) one slot that reads conv2's accumulator word and the shortcut's word (the block
    input's spike frames, or the projection's accumulators) and writes the levels' word:
    n = (acc << shift_main) + (v << shift_short), spike t iff n >= T_t."""

    ops = ("SpikingAdd",)
    data_inputs = 2
    passes_group = True
    has_neurons = True

    def __init__(self, node, model, attrs=None):
        super().__init__(node, model, attrs)
        a = self.attrs
        self.short_acc = bool(a["short_acc"])
        self.main_bits, self.short_bits = int(a["main_bits"]), int(a["short_bits"])
        self.n_bits, self.shift_bits = int(a["n_bits"]), int(a["shift_bits"])
        self.short_depth = int(a.get("short_depth", 2))
        self.thresholds = np.rint(model.get_initializer(node.input[2])).astype(np.int64)
        self.shift_main = np.rint(model.get_initializer(node.input[3])).astype(np.int64)
        self.shift_short = np.rint(model.get_initializer(node.input[4])).astype(np.int64)
        channels = self.out_channels
        if self.thresholds.shape != (channels, self.t_out) or \
                self.shift_main.shape != (channels,) or self.shift_short.shape != (channels,):
            raise PascalError(f"layer {self.name}: thresholds and shifts must be ({channels}, "
                              f"{self.t_out}) and ({channels},) (not a valid spiking IR)")
        for shifts in (self.shift_main, self.shift_short):
            if shifts.min() < 0 or shifts.max() >= min(self.n_bits, 2 ** self.shift_bits):
                raise PascalError(f"layer {self.name}: a shift outside 0..{self.n_bits - 1} or "
                                  f"wider than {self.shift_bits} bits (not a valid spiking IR)")

    @property
    def in_group(self) -> int:
        return self.pe

    @property
    def nf(self) -> int:
        return self.out_channels // self.pe

    @property
    def words(self) -> int:
        return self.out_h * self.out_w * self.nf

    @property
    def in_word_bits(self) -> int:
        """The shortcut's word."""
        return self.pe * (self.short_bits if self.short_acc else self.t_in * self.fb_in)

    @property
    def main_word_bits(self) -> int:
        return self.pe * self.main_bits

    def input_fifo_bits(self, port: int, producer_bits: int) -> int:
        return self.main_word_bits if port == 0 else producer_bits

    def word_widths(self) -> dict[str, int]:
        return {"main input word": self.main_word_bits, "shortcut word": self.in_word_bits,
                "output word": self.out_word_bits}

    def fold_limits(self) -> tuple[int, int]:
        return self.out_channels, 1

    def mode_output_bits(self, mode: str) -> int:
        return self.out_word_bits

    def check_input(self, before: HWLayer, port: int) -> bool:
        acc = before.output_kind == "accumulators"
        if port == 0 and not (acc and before.acc_bits_out == self.main_bits):
            raise PascalError(f"layer {self.name}: its main input must be a block's conv2 "
                              f"accumulators of {self.main_bits} bits, {before.name} "
                              f"sends {before.out_word_bits // before.out_group}-bit values")
        if port == 1 and acc != self.short_acc:
            raise PascalError(f"layer {self.name}: the shortcut from {before.name} is not "
                              f"of the kind the add expects")
        if port == 1 and acc and before.acc_bits_out != self.short_bits:
            raise PascalError(f"layer {self.name}: expects {self.short_bits}-bit shortcut "
                              f"accumulators, {before.name} sends {before.acc_bits_out}")
        return port == 0 or acc

    def prepare_values(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        arrays = self.arrays()
        return (unfold_rows(arrays["thresholds"]),
                unfold_rows(arrays["shift_main"]).astype(np.int64),
                unfold_rows(arrays["shift_short"]).astype(np.int64))

    def values(self, packed, streams, n):
        table, shift_main, shift_short = packed
        main = streams[self.inputs[0]].astype(np.int64)
        short = streams[self.inputs[1]]
        v = short.astype(np.int64) if self.short_acc else \
            np.rint(short.sum(axis=-1)).astype(np.int64)
        total = (main << shift_main) + (v << shift_short)
        frames = (total[..., None] >= table).astype(np.float32)
        if self.binary_out:   # the QNN twin: the level in binary
            frames = frames.sum(axis=-1, keepdims=True)
        return frames, self.levels_of(frames, n), None

    def programs(self, activity, n, mode=None):
        return [schedule.from_runs(self.name, np.array([schedule.READ_WRITE]),
                                   np.full((n, 1), self.words))]

    def stage_cycles(self, mode, activity=None, worst=False):
        return {self.name: float(self.words + LOOP_OVERHEAD)}   # one read-write slot a word

    def arrays(self) -> dict[str, np.ndarray]:
        return {"thresholds": fold_rows(self.thresholds, self.pe),
                "shift_main": fold_rows(self.shift_main, self.pe),
                "shift_short": fold_rows(self.shift_short, self.pe)}

    def array_bits(self, role: str) -> int:
        return self.n_bits if role == "thresholds" else self.shift_bits + 1

    def count_parts(self, tally: Tally, mode: str, fifo_bits: int, fifo_depth: int) -> None:
        """Both input FIFOs (conv2's and the shortcut's, whatever ``fifo_bits`` says), the
        shortcut's sum of frames, two barrel shifts and an adder of N_BITS per lane, T_OUT
        comparators, the threshold and shift ROMs, two register stages (RTL pascal_add)."""
        p, n_bits, levels = self.pe, self.n_bits, self.t_out
        tally.fifo("input FIFO", self.main_word_bits, self.fifo_depth)
        tally.fifo("shortcut FIFO", self.in_word_bits, self.short_depth)
        tally.add("control", lut=CONTROL_LUT, ff=CONTROL_FF)
        if not self.short_acc and self.t_in * self.fb_in > 1:
            tally.add("shortcut sum", lut=p * self.t_in * self.fb_in)
        shifts = max(1, self.shift_bits)
        tally.add("shifts", lut=2 * p * n_bits * shifts,
                  ff=p * (self.main_bits + self.short_bits))
        tally.add("adders", lut=p * n_bits, ff=p * n_bits)
        lut, bram = rom(self.nf, p * levels * n_bits)
        tally.add("thresholds", lut=lut, bram=bram)
        lut, bram = rom(self.nf, 2 * p * shifts)
        tally.add("shift table", lut=lut, bram=bram)
        tally.add("emitter", lut=p * levels * comparator(n_bits), ff=p * levels)
