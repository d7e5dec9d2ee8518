"""The hardware layer classes: one class per kind of layer, the single source of its hardware facts.

Like FINN's ``HWCustomOp`` subclasses, a layer object built from an IR node (:mod:`pascal_fpga.ir.ops`)
knows its folded shapes, its stream word widths, its fold limits (what PE and SIMD must divide),
its stages and their schedule (:meth:`HWLayer.programs`, the loop program the cycle model runs and
the C simulation counts), its C++ configuration and packed parameters, and its resources
(:mod:`.resources`). Code generation, the cycle model, the estimates, the folding search, the
reports and the driver ask it; none restates it. Classes are named by what they implement and
keyed by the IR op type, the one name a layer kind has from the IR to the report.

Streams (pascal_fpga/hls/ARCHITECTURE.md: the contract of the library, these classes and the
cycle model): words of G channels x T frames x FB bits, pixel-major; G is the
producer's PE and the consumer's SIMD (a pool passes G through), so a folding must give every
stream one G (``check_streams``). A weighted layer is two stages, a feeder (the sliding-window
generator of a convolution, the vector generator of a dense layer) that sends the input vector's
SIMD groups as tokens, and the matrix-vector unit (MVU) with its emitter (thresholds, or the
classifier's accumulators). In ``zero_skip`` mode (event-driven) the feeder sends only groups
with a spike and a token costs the MVU as many cycles as its group's largest level (thermometer
order: its spike-carrying frames); in dense mode every group costs T_in cycles. The QNN twin
(``mode="qnn"``) is the same structure on multi-bit levels: every group, one cycle each.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from ..errors import PascalError
from ..ir.widths import unsigned_bits
from ..names import show_value
from . import schedule
from .schedule import IDLE, READ, WRITE, Program

WORD_BITS_MAX = 4096          # the widest ap_uint of a stream word or token (AP_INT_MAX_W)
ACC_BITS_OUT = 32             # the classifier's accumulators leave as 32-bit AXI words
MODES = ("zero_skip", "dense", "qnn")  # event-driven, dense, the FINN-style QNN twin
# a layer's name becomes C identifiers (functions, config structs, arrays, streams) and the file
# its csim dump is written to: a C identifier, nothing else
LAYER_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")


@dataclass
class StageSpec:
    """One stage of the DATAFLOW region: its name (C identifier), the library call (without
    arguments), the parameter arrays passed after its two streams, and its output stream's
    C++ element type."""

    name: str
    call: str
    args: list[str] = field(default_factory=list)
    out_type: str = ""
    inputs: int = 1      # input streams (an add reads two)
    outputs: int = 1     # output streams (a fork writes two)


# RTL backend (pascal_fpga/rtl/README.md): each stage's SystemVerilog module and its write latency
# P in slots (its program is the HLS one with every write P slots later and P drain slots per image)
RTL_LATENCY = {"pascal_input": 0, "pascal_window_gen": 1, "pascal_vector_gen": 1, "pascal_mvu": 3,
               "pascal_pool": 1, "pascal_output": 0, "pascal_fork": 0, "pascal_add": 2}
BACKENDS = ("hls", "rtl")


@dataclass
class RTLStage:
    """One stage of the RTL top: its name (as in the HLS top), module, parameters (file
    parameters are paths relative to BUILD/rtl), and its input and output word widths."""

    name: str
    module: str
    params: dict[str, Any]
    in_bits: int
    out_bits: int

    @property
    def latency(self) -> int:
        return RTL_LATENCY[self.module]


def _attrs(node) -> dict[str, Any]:
    from qonnx.custom_op.registry import getCustomOp

    inst = getCustomOp(node)
    return {name: inst.get_nodeattr(name) for name in inst.get_nodeattr_types()}


def _divides(value: int, dim: int) -> bool:
    return isinstance(value, int) and value >= 1 and dim % value == 0


class HWLayer:
    """What every layer shares: shapes, timesteps, frames, folding, stream words."""

    ops: ClassVar[tuple[str, ...]] = ()
    data_inputs: ClassVar[int] = 1      # node inputs that are streams (the rest: parameters)

    def __init__(self, node, model, attrs: dict[str, Any] | None = None):
        self.name = node.name
        self.op_type = node.op_type
        # the streams it reads and writes, in order (tensor names; a chain needs none)
        self.inputs = list(getattr(node, "input", [""] * self.data_inputs))[:self.data_inputs]
        self.outputs = list(getattr(node, "output", [""]))
        a = attrs if attrs is not None else _attrs(node)
        self.attrs = a
        self.in_shape = [int(d) for d in a["in_shape"]]
        self.out_shape = [int(d) for d in a["out_shape"]]
        self.t_in, self.t_out, self.in_max = int(a["t_in"]), int(a["t_out"]), int(a["in_max"])
        if self.t_in < 1 or self.in_max % self.t_in:
            raise PascalError(f"layer {self.name}: input range {self.in_max} is not a whole "
                              f"number of frames of T_in = {self.t_in}")
        self.frame_max = self.in_max // self.t_in
        self.fb_in = unsigned_bits(self.frame_max)     # bits per input frame
        self.pe, self.simd = int(a["pe"]), int(a["simd"])
        self.fifo_depth = int(a["fifo_depth"])         # the FIFO that feeds the layer
        self.zero_skip = bool(a.get("zero_skip", 1))
        self.token_depth = int(a.get("token_depth", 2))
        self.in_channels = self.in_shape[0]
        self.in_h, self.in_w = (self.in_shape[1], self.in_shape[2]) if len(self.in_shape) == 3 \
            else (1, 1)
        self.out_channels = self.out_shape[0]
        self.out_h, self.out_w = (self.out_shape[1], self.out_shape[2]) \
            if len(self.out_shape) == 3 else (1, 1)
        pe_dim, simd_dim = self.fold_limits()
        for key, value, dim in (("PE", self.pe, pe_dim), ("SIMD", self.simd, simd_dim)):
            if not _divides(value, dim):
                raise PascalError(f"layer {self.name}: {key} {value} does not divide {dim} (not "
                                  f"a valid spiking IR)")

    # --- folding and streams ---------------------------------------------------------------
    def fold_limits(self) -> tuple[int, int]:
        """(the dimension PE must divide, the dimension SIMD must divide)."""
        raise NotImplementedError

    @property
    def in_group(self) -> int:
        """Channels per input word (= SIMD)."""
        return self.simd

    @property
    def out_group(self) -> int:
        """Channels per output word (= PE)."""
        return self.pe

    @property
    def fb_out(self) -> int:
        return 1

    @property
    def out_frames(self) -> int:
        return self.t_out

    @property
    def in_word_bits(self) -> int:
        return self.in_group * self.t_in * self.fb_in

    @property
    def out_word_bits(self) -> int:
        return self.out_group * self.out_frames * self.fb_out

    @property
    def out_pixels(self) -> int:
        return self.out_h * self.out_w

    def check_words(self) -> None:
        """No stream word or token wider than the library allows (a compile-time error)."""
        for what, bits in self.word_widths().items():
            if bits > WORD_BITS_MAX:
                raise PascalError(f"layer {self.name} ({self.op_type}): its {what} would be "
                                  f"{bits} bits, wider than the {WORD_BITS_MAX} bits the HLS "
                                  f"library allows; lower its PE/SIMD (folding config)")

    def word_widths(self) -> dict[str, int]:
        return {"input word": self.in_word_bits, "output word": self.out_word_bits}

    def stage_names(self) -> list[str]:
        return [self.name]

    # --- activity: how many cycles each input group costs (zero-skipping) -------------------
    def lane_activity(self, frames: np.ndarray) -> np.ndarray:
        """(N, H, W, C) per input channel: 1 + the index of its last nonzero frame, 0 if none
        (a thermometer train's level), from the input frames (N, H, W, C, T)."""
        nonzero = frames != 0
        last = frames.shape[-1] - np.argmax(nonzero[..., ::-1], axis=-1)
        return np.where(nonzero.any(axis=-1), last, 0).astype(np.int16)

    def group_activity(self, lanes: np.ndarray, simd: int | None = None) -> np.ndarray:
        """(N, windows, SF): each input group's activity (the largest of its SIMD lanes) in the
        order the feeder sends the groups of each window."""
        raise NotImplementedError

    # --- schedule ---------------------------------------------------------------------------
    def programs(self, activity: np.ndarray | None, n: int, mode: str | None = None
                 ) -> list[Program]:
        """The layer's stage programs for ``n`` images; ``activity`` is :meth:`group_activity`
        (None for layers whose schedule does not depend on the data). ``mode``: None (the
        layer's own: zero_skip or dense), "zero_skip", "dense" or "qnn" (the QNN twin)."""
        raise NotImplementedError

    def data_dependent(self, mode: str | None = None) -> bool:
        return False

    def _mode(self, mode: str | None) -> str:
        mode = mode or ("zero_skip" if self.zero_skip else "dense")
        if mode not in MODES:
            raise ValueError(mode)
        return mode

    # --- codegen ----------------------------------------------------------------------------
    def cfg(self) -> dict[str, int]:
        raise NotImplementedError

    def types(self) -> dict[str, str]:
        return {}

    def arrays(self) -> dict[str, np.ndarray]:
        """The packed parameter arrays by role."""
        return {}

    def array_bits(self, role: str) -> int:
        """Bits of one element of the ``role`` array (two's complement)."""
        return self.weight_bits if role == "weights" else self.acc_bits

    def stages(self) -> list[StageSpec]:
        raise NotImplementedError

    # --- resources (the formulas live in .resources) ----------------------------------------
    def resources(self, mode: str | None = None, fifo_bits: int = 0, fifo_depth: int = 2
                  ) -> dict[str, int]:
        from .resources import layer_resources

        return layer_resources(self, self._mode(mode), fifo_bits, fifo_depth)

    def folded(self, pe: int | None = None, simd: int | None = None,
               zero_skip: bool | None = None) -> "HWLayer":
        """A copy with another folding (for the folding search)."""
        copy = object.__new__(type(self))
        copy.__dict__.update(self.__dict__)
        if pe is not None:
            copy.pe = pe
        if simd is not None:
            copy.simd = simd
        if zero_skip is not None:
            copy.zero_skip = zero_skip
        return copy


def _fold_weights(matrix: np.ndarray, pe: int, simd: int) -> np.ndarray:
    """(OUT, FANIN) -> [NF * SF][PE][SIMD] with output o = nf * PE + pe and input
    i = sf * SIMD + s (the order the MVU reads them)."""
    out, fanin = matrix.shape
    nf, sf = out // pe, fanin // simd
    return matrix.reshape(nf, pe, sf, simd).transpose(0, 2, 1, 3).reshape(nf * sf, pe, simd)


def _fold_rows(table: np.ndarray, pe: int) -> np.ndarray:
    """(OUT, ...) -> [NF][PE][...]."""
    return table.reshape((table.shape[0] // pe, pe) + table.shape[1:])


class _Weighted(HWLayer):
    """A feeder and a matrix-vector unit; weights [NF*SF][PE][SIMD]."""

    emitter = "threshold"   # or "classifier" / "accumulator": PE accumulators per word

    @property
    def out_frames(self) -> int:
        return self.t_out if self.emitter == "threshold" else 1

    @property
    def out_word_bits(self) -> int:
        if self.emitter == "threshold":
            return super().out_word_bits
        return self.pe * self.acc_bits

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

    is_conv = False

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

    def matrix(self) -> np.ndarray:
        """(OUT, FANIN) integer weights in the input vector's order."""
        raise NotImplementedError

    def stage_names(self) -> list[str]:
        return [f"{self.name}_feed", f"{self.name}_mvu"]

    def group_activity(self, lanes: np.ndarray, simd: int | None = None) -> np.ndarray:
        simd = simd or self.simd
        n, h, w, c = lanes.shape
        groups = lanes.reshape(n, h, w, c // simd, simd).max(axis=-1)
        if not self.is_conv:
            return groups.reshape(n, 1, -1)
        k, stride, pad = self.kernel, self.stride, self.pad
        if pad:
            groups = np.pad(groups, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
        view = np.lib.stride_tricks.sliding_window_view(groups, (k, k), axis=(1, 2))
        view = view[:, :stride * (self.out_h - 1) + 1:stride, :stride * (self.out_w - 1) + 1:stride]
        # (N, OH, OW, CF, K, K) -> (N, OH * OW, K * K * CF): tap-major, channel group minor
        return view.transpose(0, 1, 2, 4, 5, 3).reshape(n, self.windows, -1)

    def data_dependent(self, mode: str | None = None) -> bool:
        return self._mode(mode) == "zero_skip"

    def token_costs(self, activity: np.ndarray | None, n: int, mode: str | None
                    ) -> tuple[np.ndarray, np.ndarray]:
        """(cost, emitted), both (N, windows, SF): the MVU cycles of each group's token and
        whether the feeder sends it."""
        mode = self._mode(mode)
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
        return [self._feed_program(emitted, n),
                schedule.mvu(f"{self.name}_mvu", cost, emitted, self.nf)]

    def _feed_program(self, emitted: np.ndarray, n: int) -> Program:
        raise NotImplementedError

    def cfg(self) -> dict[str, int]:
        return dict(IN_CH=self.in_channels, IN_H=self.in_h, IN_W=self.in_w,
                    OUT_CH=self.out_channels, OUT_H=self.out_h, OUT_W=self.out_w,
                    K=self.kernel, STRIDE=self.stride, PAD=self.pad, T_IN=self.t_in,
                    FB=self.fb_in, T_OUT=self.t_out if self.emitter == "threshold" else 1,
                    PE=self.pe, SIMD=self.simd, ZERO_SKIP=int(self.zero_skip))

    def types(self) -> dict[str, str]:
        return {"weight_t": f"ap_int<{self.weight_bits}>", "acc_t": f"ap_int<{self.acc_bits}>"}

    def arrays(self) -> dict[str, np.ndarray]:
        folded = _fold_weights(self.matrix(), self.pe, self.simd)
        if self.emitter == "accumulator":   # a zero bias: the RTL MVU's classifier emitter
            return {"weights": folded,
                    "bias": np.zeros((self.nf, self.pe), dtype=np.int64)}
        if self.emitter == "classifier":
            return {"weights": folded, "bias": _fold_rows(self.third.reshape(-1), self.pe)}
        return {"weights": folded, "thresholds": _fold_rows(self.third, self.pe)}

    def stages(self) -> list[StageSpec]:
        feeder = "window_generator" if self.is_conv else "vector_generator"
        mvu = {"classifier": "mvu_classifier", "accumulator": "mvu_accumulator"}.get(
            self.emitter, "mvu_threshold")
        roles = list(self.arrays_roles())
        if self.emitter == "accumulator":
            roles = ["weights"]
        return [StageSpec(f"{self.name}_feed", f"pascal::{feeder}<{self.name}_cfg>", [],
                          f"pascal::token<{self.name}_cfg>"),
                StageSpec(f"{self.name}_mvu", f"pascal::{mvu}<{self.name}_cfg>",
                          [f"{self.name}_{role}" for role in roles],
                          f"ap_uint<{self.out_word_bits}>")]

    def arrays_roles(self) -> tuple[str, str]:
        return ("weights", "bias") if self.emitter in ("classifier", "accumulator") \
            else ("weights", "thresholds")

    def rtl_stages(self, files: dict[str, str] | None = None) -> list[RTLStage]:
        """The feeder and the MVU as RTL modules; ``files``: role -> memory file path (none:
        empty names, for what does not need them, like the write latencies)."""
        files = files or {}
        c = self.cfg()
        if self.is_conv:
            feed = RTLStage(f"{self.name}_feed", "pascal_window_gen", dict(
                IN_CH=c["IN_CH"], IN_H=c["IN_H"], IN_W=c["IN_W"], OUT_H=c["OUT_H"],
                OUT_W=c["OUT_W"], K=c["K"], STRIDE=c["STRIDE"], PAD=c["PAD"], T_IN=c["T_IN"],
                FB=c["FB"], SIMD=c["SIMD"], ZERO_SKIP=c["ZERO_SKIP"]),
                self.in_word_bits, self.token_bits)
        else:
            feed = RTLStage(f"{self.name}_feed", "pascal_vector_gen", dict(
                SIMD=c["SIMD"], T_IN=c["T_IN"], FB=c["FB"], SF=self.sf,
                ZERO_SKIP=c["ZERO_SKIP"]), self.in_word_bits, self.token_bits)
        param_role = self.arrays_roles()[1]
        mvu = RTLStage(f"{self.name}_mvu", "pascal_mvu", dict(
            SIMD=self.simd, PE=self.pe, T_IN=self.t_in, FB=self.fb_in, SF=self.sf, NF=self.nf,
            WINDOWS=self.windows, T_OUT=c["T_OUT"], WB=self.weight_bits, ACC_BITS=self.acc_bits,
            CLASSIFIER=int(self.emitter != "threshold"), WEIGHT_FILE=files.get("weights", ""),
            PARAM_FILE=files.get(param_role, "")), self.token_bits, self.out_word_bits)
        return [feed, mvu]


class ConvLayer(_Weighted):
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
        counts, read = [], 0
        for oy in range(self.out_h):
            need = min(oy * self.stride - self.pad + self.kernel, self.in_h)
            counts.append(max(need - read, 0))
            read = max(read, need)
        return counts + [self.in_h - read]

    def _feed_program(self, emitted, n):
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


class DenseLayer(_Weighted):
    """PixelDense, SpikingDense: vector generator + MVU with the threshold emitter. The input is
    the (C, H, W) map flattened pixel-major (input index (y * W + x) * C + c)."""

    ops = ("PixelDense", "SpikingDense")

    def matrix(self) -> np.ndarray:
        if len(self.in_shape) == 3:  # flattened C, H, W -> the stream's pixel-major H, W, C
            c, h, w = self.in_shape
            m = self.weight.reshape(self.weight.shape[0], c, h, w).transpose(0, 2, 3, 1)
            return m.reshape(self.weight.shape[0], -1)
        return self.weight

    def _feed_program(self, emitted, n):
        return schedule.vector_feed(f"{self.name}_feed", emitted[:, 0, :])


class ClassifierLayer(DenseLayer):
    """SpikingClassifier: vector generator + MVU with the accumulator emitter (PE accumulators
    per word, starting at the integer bias)."""

    ops = ("SpikingClassifier",)
    emitter = "classifier"


class ConvAccLayer(ConvLayer):
    """SpikingConvAcc (a residual block's conv2 or 1x1 projection): sliding-window generator +
    MVU with the accumulator emitter (PE accumulators per word, starting at 0)."""

    ops = ("SpikingConvAcc",)
    emitter = "accumulator"


class ForkLayer(HWLayer):
    """SpikingFork: the stream duplicator of a residual block. One slot per word: it reads the
    word and writes it to both outputs (main path, shortcut) in the same slot."""

    ops = ("SpikingFork",)

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

    def group_activity(self, lanes, simd=None):
        return None

    def programs(self, activity, n, mode=None):
        return [schedule.from_runs(self.name, np.array([schedule.READ_WRITE]),
                                   np.full((n, 1), self.words))]

    def cfg(self) -> dict[str, int]:
        return dict(WORDS=self.words, BITS=self.in_word_bits)

    def stages(self) -> list[StageSpec]:
        return [StageSpec(self.name, f"pascal::fork<{self.name}_cfg>", [],
                          f"ap_uint<{self.out_word_bits}>", outputs=2)]

    def rtl_stages(self, files: dict[str, str] | None = None) -> list[RTLStage]:
        return [RTLStage(self.name, "pascal_fork", dict(BITS=self.in_word_bits, WORDS=self.words),
                         self.in_word_bits, self.out_word_bits)]


class AddLayer(HWLayer):
    """SpikingAdd: a residual block's add and activation. Per output word (PE channels of one
    pixel) one slot that reads conv2's accumulator word and the shortcut's word (the block
    input's spike frames, or the projection's accumulators) and writes the levels' word:
    n = (acc << shift_main) + (v << shift_short), spike t iff n >= T_t."""

    ops = ("SpikingAdd",)
    data_inputs = 2

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

    def word_widths(self) -> dict[str, int]:
        return {"main input word": self.main_word_bits, "shortcut word": self.in_word_bits,
                "output word": self.out_word_bits}

    def fold_limits(self) -> tuple[int, int]:
        return self.out_channels, 1

    def group_activity(self, lanes, simd=None):
        return None

    def programs(self, activity, n, mode=None):
        return [schedule.from_runs(self.name, np.array([schedule.READ_WRITE]),
                                   np.full((n, 1), self.words))]

    def cfg(self) -> dict[str, int]:
        return dict(CH=self.out_channels, OUT_H=self.out_h, OUT_W=self.out_w, PE=self.pe,
                    ACC_BITS=self.main_bits, SC_ACC=int(self.short_acc), T_SC=self.t_in,
                    FB_SC=self.fb_in, SC_BITS=self.short_bits, N_BITS=self.n_bits,
                    T_OUT=self.t_out, SH_BITS=self.shift_bits)

    def types(self) -> dict[str, str]:
        return {"thr_t": f"ap_int<{self.n_bits}>"}

    def arrays(self) -> dict[str, np.ndarray]:
        return {"thresholds": _fold_rows(self.thresholds, self.pe),
                "shift_main": _fold_rows(self.shift_main, self.pe),
                "shift_short": _fold_rows(self.shift_short, self.pe)}

    def array_bits(self, role: str) -> int:
        return self.n_bits if role == "thresholds" else self.shift_bits + 1

    def stages(self) -> list[StageSpec]:
        return [StageSpec(self.name, f"pascal::add_join<{self.name}_cfg>",
                          [f"{self.name}_{role}" for role in self.arrays()],
                          f"ap_uint<{self.out_word_bits}>", inputs=2)]

    def rtl_stages(self, files: dict[str, str] | None = None) -> list[RTLStage]:
        files = files or {}
        c = self.cfg()
        params = dict(CH=c["CH"], OUT_PIXELS=self.out_h * self.out_w, PE=self.pe,
                      ACC_BITS=c["ACC_BITS"], SC_ACC=c["SC_ACC"], T_SC=c["T_SC"],
                      FB_SC=c["FB_SC"], SC_BITS=c["SC_BITS"], N_BITS=c["N_BITS"],
                      T_OUT=c["T_OUT"], SH_BITS=c["SH_BITS"],
                      THRESH_FILE=files.get("thresh", ""), SHIFT_FILE=files.get("shift", ""))
        return [RTLStage(self.name, "pascal_add", params, self.in_word_bits, self.out_word_bits)]


class PoolLayer(HWLayer):
    """SpikingMaxPool (frame-wise OR / max), SpikingSumPool (frame-wise sum; the 1/K^2 lives in
    the next thresholds): a K-row line buffer, one word of PE channels per slot."""

    ops = ("SpikingMaxPool", "SpikingSumPool")

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
    def cf(self) -> int:
        return self.in_channels // self.pe

    def fold_limits(self) -> tuple[int, int]:
        return self.in_channels, 1

    def group_activity(self, lanes, simd=None):
        return None

    def rows_needed(self) -> list[int]:
        counts, read = [], 0
        for oy in range(self.out_h):
            need = min(oy * self.stride + self.kernel, self.in_h)
            counts.append(max(need - read, 0))
            read = max(read, need)
        return counts + [self.in_h - read]

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

    def cfg(self) -> dict[str, int]:
        return dict(CH=self.in_channels, IN_H=self.in_h, IN_W=self.in_w, OUT_H=self.out_h,
                    OUT_W=self.out_w, K=self.kernel, STRIDE=self.stride, T=self.t_in,
                    FB_IN=self.fb_in, FB_OUT=self.fb_out, PE=self.pe, SUM=int(self.sum))

    def stages(self) -> list[StageSpec]:
        return [StageSpec(self.name, f"pascal::pool<{self.name}_cfg>", [],
                          f"ap_uint<{self.out_word_bits}>")]

    def rtl_stages(self, files: dict[str, str] | None = None) -> list[RTLStage]:
        return [RTLStage(self.name, "pascal_pool", self.cfg(), self.in_word_bits,
                         self.out_word_bits)]


LAYER_CLASSES: dict[str, type[HWLayer]] = {
    op: cls for cls in (ConvLayer, DenseLayer, ClassifierLayer, PoolLayer, ConvAccLayer,
                        ForkLayer, AddLayer) for op in cls.ops}


def hw_layer(node, model) -> HWLayer:
    """The hardware layer of an IR node."""
    cls = LAYER_CLASSES.get(node.op_type)
    if cls is None:
        raise PascalError(f"layer {show_value(node.name)}: op {show_value(node.op_type)} has no "
                          f"hardware layer class")
    return cls(node, model)


# --- the whole design ---------------------------------------------------------------------------

@dataclass
class Fifo:
    """One FIFO of the design: from stage ``producer`` (its output ``out_port``) to stage
    ``consumer`` (its input ``in_port``); ``layer`` and ``key``: the layer attribute that holds
    its depth (fifo_depth, short_depth, token_depth; the classifier's out_depth)."""

    producer: int
    consumer: int
    depth: int
    bits: int
    layer: str
    key: str
    out_port: int = 0
    in_port: int = 0


@dataclass
class Design:
    """The layers of an IR (in topological order) plus the design's input and output adapters:
    a dataflow graph of stages connected by FIFOs. A chain, except for residual blocks: a fork
    writes two FIFOs (the main path and the shortcut) and an add reads two."""

    layers: list[HWLayer]
    channels: int          # input pixel channels
    height: int
    width: int
    bits: int              # bits per input pixel
    output_depth: int = 2  # the FIFO from the classifier to the output adapter
    input_tensor: str | None = None   # the IR's input (None: the layers form a chain)

    def stage_ranges(self) -> list[tuple[int, int]]:
        """Per layer, its first and last stage's index (stage 0 is the input adapter)."""
        ranges, k = [], 1
        for layer in self.layers:
            count = len(layer.stage_names())
            ranges.append((k, k + count - 1))
            k += count
        return ranges

    def fifos(self) -> list[Fifo]:
        """Every FIFO in order: per layer the FIFOs into it (its inputs in order), then a
        weighted layer's token FIFO; last the classifier's FIFO to the output adapter."""
        ranges = self.stage_ranges()
        producers: dict[str, tuple[int, int]] = {}     # tensor -> (layer, output port)
        for j, layer in enumerate(self.layers):
            for port, tensor in enumerate(layer.outputs):
                producers[tensor] = (j, port)
        fifos = []
        for j, layer in enumerate(self.layers):
            first, last = ranges[j]
            for port, tensor in enumerate(layer.inputs):
                if self.input_tensor is not None and tensor == self.input_tensor:
                    source, out_port, bits = 0, 0, self.input_group * self.bits
                elif self.input_tensor is not None and tensor in producers:
                    k, out_port = producers[tensor]
                    source, bits = ranges[k][1], self.layers[k].out_word_bits
                else:   # a chain: the previous layer (or the input adapter)
                    source, out_port = (ranges[j - 1][1] if j else 0), 0
                    bits = self.layers[j - 1].out_word_bits if j else \
                        self.input_group * self.bits
                key = "fifo_depth" if port == 0 else "short_depth"
                depth = layer.fifo_depth if port == 0 else getattr(layer, "short_depth", 2)
                if isinstance(layer, AddLayer) and port == 0:
                    bits = layer.main_word_bits
                fifos.append(Fifo(source, first, depth, bits, layer.name, key, out_port, port))
            if isinstance(layer, _Weighted):
                fifos.append(Fifo(first, last, layer.token_depth, layer.token_bits, layer.name,
                                  "token_depth"))
        c = self.classifier
        fifos.append(Fifo(ranges[-1][1], ranges[-1][1] + 1, self.output_depth, c.out_word_bits,
                          c.name, "out_depth"))
        return fifos

    def edges(self) -> list[tuple[int, int]]:
        """(producer stage, consumer stage) of every FIFO, in :meth:`fifos` order."""
        return [(f.producer, f.consumer) for f in self.fifos()]

    @property
    def branching(self) -> bool:
        """Whether the design has residual blocks (a fork and an add): not a chain."""
        return any(isinstance(layer, (ForkLayer, AddLayer)) for layer in self.layers)

    @property
    def pixels(self) -> int:
        return self.height * self.width

    @property
    def classifier(self) -> ClassifierLayer:
        return self.layers[-1]  # type: ignore[return-value]

    @property
    def input_group(self) -> int:
        return self.layers[0].in_group

    @property
    def axi_bits(self) -> int:
        return 8 * ((self.channels * self.bits + 7) // 8)

    def stage_names(self) -> list[str]:
        return ["input"] + [s for layer in self.layers for s in layer.stage_names()] + ["output"]

    def fifo_depths(self) -> list[int]:
        """One per FIFO, in :meth:`fifos` order (for a chain: a layer's input FIFO, then, for a
        weighted layer, its token FIFO, ..., the classifier's output FIFO)."""
        return [f.depth for f in self.fifos()]

    def activity_from_lanes(self, lanes: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Each weighted layer's group activity (N, windows, SF) from its per-channel input
        activity (N, H, W, C), as :func:`pascal_fpga.perf.values.run_values` records it."""
        return {layer.name: layer.group_activity(lanes[layer.name]) for layer in self.layers
                if isinstance(layer, _Weighted) and layer.name in lanes}

    def rtl_stages(self, files: dict[str, dict[str, str]] | None = None) -> list[RTLStage]:
        """Every stage of the RTL top in dataflow order; ``files``: layer -> role -> memory
        file path (relative to BUILD/rtl)."""
        files = files or {}
        c = self.classifier
        stages = [RTLStage("input", "pascal_input", dict(
            PIXELS=self.pixels, CH=self.channels, IN_BITS=self.bits, AXI_BITS=self.axi_bits,
            GROUP=self.input_group), self.axi_bits, self.input_group * self.bits)]
        for layer in self.layers:
            stages += layer.rtl_stages(files.get(layer.name, {}))
        stages.append(RTLStage("output", "pascal_output", dict(
            CLASSES=c.out_channels, ACC_BITS=c.acc_bits, PE=c.pe), c.out_word_bits, 32))
        return stages

    def programs(self, activity: dict[str, np.ndarray], n: int, mode: str | None = None,
                 backend: str = "hls") -> list[Program]:
        """Every stage's program for ``n`` images, in dataflow order: the HLS loops, or with
        ``backend="rtl"`` the RTL modules' (each stage's writes ``RTL_LATENCY`` slots later)."""
        if backend == "rtl":
            latency = [stage.latency for stage in self.rtl_stages()]
            return [schedule.delayed(p, d) for p, d in
                    zip(self.programs(activity, n, mode), latency)]
        if backend != "hls":
            raise PascalError(f"unknown backend {backend!r} (one of {', '.join(BACKENDS)})")
        cf0 = self.channels // self.input_group
        runs = [schedule.from_runs("input", np.array([WRITE, IDLE]),
                                   np.tile([self.pixels * cf0, 0], (n, 1)),
                                   reads=np.full(n, self.pixels))]
        for layer in self.layers:
            runs += layer.programs(activity.get(layer.name), n, mode)
        classes, nf = self.classifier.out_channels, self.classifier.nf
        out = schedule.from_runs("output", np.array([READ, IDLE]), np.tile([nf, classes + 1],
                                                                           (n, 1)),
                                 writes=np.full(n, classes + 1))
        return runs + [out]

    def check_streams(self) -> None:
        """Every stream has one word layout on both sides; no word wider than the library's cap;
        the classifier's accumulators fit its 32-bit output words."""
        if self.channels % self.input_group:
            raise PascalError(f"layer {self.layers[0].name}: SIMD {self.input_group} does not "
                              f"divide the {self.channels} input channels")
        by_stage = {}
        for j, (first, last) in enumerate(self.stage_ranges()):
            by_stage[last] = self.layers[j]
        index = {layer.name: layer for layer in self.layers}
        for fifo in self.fifos():
            if fifo.key in ("token_depth", "out_depth") or fifo.producer == 0:
                continue
            before, after = by_stage[fifo.producer], index[fifo.layer]
            self._check_stream(before, after, fifo.in_port)
        for layer in self.layers:
            layer.check_words()
        if self.channels * self.bits > 1024:
            raise PascalError(f"{self.channels} channels of {self.bits} bits do not fit one "
                              f"AXI-Stream word")
        if self.classifier.acc_bits > ACC_BITS_OUT:
            raise PascalError(f"layer {self.classifier.name}: {self.classifier.acc_bits}-bit "
                              f"classifier accumulators do not fit the 32-bit output words")

    @staticmethod
    def _check_stream(before: HWLayer, after: HWLayer, port: int) -> None:
        if before.out_group != after.in_group:
            what = "PE" if isinstance(before, _Weighted) else "PE (channels per word)"
            side = "SIMD" if isinstance(after, _Weighted) else "PE"
            raise PascalError(
                f"layers {before.name} -> {after.name}: {before.name}'s {what} "
                f"{before.out_group} must equal {after.name}'s {side} {after.in_group} (the "
                f"stream between them carries one word layout; there are no width "
                f"converters)")
        if isinstance(after, AddLayer):
            acc = isinstance(before, ConvAccLayer)
            if port == 0 and not (acc and before.acc_bits == after.main_bits):
                raise PascalError(f"layer {after.name}: its main input must be a block's conv2 "
                                  f"accumulators of {after.main_bits} bits, {before.name} "
                                  f"sends {before.out_word_bits // before.out_group}-bit values")
            if port == 1 and acc != after.short_acc:
                raise PascalError(f"layer {after.name}: the shortcut from {before.name} is not "
                                  f"of the kind the add expects")
            if port == 1 and acc and before.acc_bits != after.short_bits:
                raise PascalError(f"layer {after.name}: expects {after.short_bits}-bit shortcut "
                                  f"accumulators, {before.name} sends {before.acc_bits}")
            if port == 0 or acc:
                return
        elif isinstance(before, ConvAccLayer):
            raise PascalError(f"layer {before.name}: its accumulators must go to a block's add, "
                              f"not to {after.name}")
        if (before.out_frames, before.fb_out) != (after.t_in, after.fb_in):
            raise PascalError(f"layer {after.name}: expects {after.t_in} frames of "
                              f"{after.fb_in} bits, {before.name} sends {before.out_frames} "
                              f"of {before.fb_out}")


def design_from_ir(model) -> Design:
    """The hardware design of a (folded) IR model; checks names, streams and word widths."""
    from ..ir.transforms import layer_nodes

    layers: list[HWLayer] = []
    seen: set[str] = set()
    for node in layer_nodes(model):
        if not LAYER_NAME.fullmatch(node.name) or node.name in seen:
            raise PascalError(f"layer {show_value(node.name)}: a layer name must be a unique C "
                              f"identifier (letters, digits, '_', at most 64)")
        seen.add(node.name)
        layers.append(hw_layer(node, model))
    if not layers or not isinstance(layers[-1], ClassifierLayer):
        raise PascalError("the IR does not end with a classifier")
    shape = model.get_tensor_shape(model.graph.input[0].name)
    bits = unsigned_bits(layers[0].in_max)
    classifier = layers[-1]
    design = Design(layers, int(shape[1]), int(shape[2]), int(shape[3]), bits,
                    int(classifier.attrs.get("out_depth", 2)), model.graph.input[0].name)
    design.check_streams()
    return design
