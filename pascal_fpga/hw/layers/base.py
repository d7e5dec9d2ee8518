"""What every hardware layer shares: shapes, timesteps, frames, folding and stream words.

A layer kind is one subclass of :class:`HWLayer` (docs/design.md, section 4.1).
The class answers every question about its kind that the rest of the compiler asks:

- **shapes and streams**: its folded shapes, its stream words (G channels x T frames x FB bits),
  its fold limits (what PE and SIMD must divide), whether it passes its input group through
  (``passes_group``: pools, forks, adds) and what its output stream carries (``output_kind``);
- **the bit-exact datapath** (:meth:`HWLayer.prepare_values`, :meth:`HWLayer.values`), which the
  cycle model runs and ``verify`` compares with the IR;
- **its schedule** (:meth:`HWLayer.programs`, the loop program of each stage) and the analytic
  busy cycles the folding search uses (:meth:`HWLayer.stage_cycles`);
- **its resources**, part by part (:meth:`HWLayer.count_parts`, with the building blocks of
  :mod:`pascal_fpga.hw.resources`).

What a backend writes for it (HLS config and template calls, RTL module parameters and
latencies) lives beside the class in :mod:`pascal_fpga.hw.backends`, one emitter per class.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

import numpy as np
from qonnx.custom_op.registry import getCustomOp

from ...errors import PascalError
from ...ir.widths import unsigned_bits
from .. import resources
from ..resources import MODES
from ..schedule import Program

WORD_BITS_MAX = 4096          # the widest ap_uint of a stream word or token (AP_INT_MAX_W)
ACC_BITS_OUT = 32             # the classifier's accumulators leave as 32-bit AXI words

# a layer's name becomes C identifiers (functions, config structs, arrays, streams) and the file
# its csim dump is written to: a C identifier, nothing else
LAYER_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")


def node_attrs(node) -> dict[str, Any]:
    """Every attribute of an IR node, by name (with the custom op's defaults)."""
    inst = getCustomOp(node)
    return {name: inst.get_nodeattr(name) for name in inst.get_nodeattr_types()}


def _divides(value: int, dim: int) -> bool:
    return isinstance(value, int) and value >= 1 and dim % value == 0


def fold_weights(matrix: np.ndarray, pe: int, simd: int) -> np.ndarray:
    """(OUT, FANIN) -> [NF * SF][PE][SIMD] with output o = nf * PE + pe and input
    i = sf * SIMD + s (the order the MVU reads them)."""
    out, fanin = matrix.shape
    nf, sf = out // pe, fanin // simd
    return matrix.reshape(nf, pe, sf, simd).transpose(0, 2, 1, 3).reshape(nf * sf, pe, simd)


def fold_rows(table: np.ndarray, pe: int) -> np.ndarray:
    """(OUT, ...) -> [NF][PE][...]."""
    return table.reshape((table.shape[0] // pe, pe) + table.shape[1:])


def unfold_rows(table: np.ndarray) -> np.ndarray:
    """A packed [NF][PE][...] parameter array back to (OUT, ...) rows, as float64."""
    return table.astype(np.float64).reshape((-1,) + table.shape[2:])


def sliding_windows(grid: np.ndarray, k: int, stride: int, pad: int, out_h: int, out_w: int
                    ) -> np.ndarray:
    """(N, H, W, C) -> (N, OUT_H * OUT_W, K * K * C): each output pixel's window, tap (ky, kx)
    major, channel minor, with ``pad`` zeros around (the window generator's and the pool's
    order; used for the datapath and for the activity of each window's groups)."""
    n, _, _, c = grid.shape
    if pad:
        grid = np.pad(grid, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    view = np.lib.stride_tricks.sliding_window_view(grid, (k, k), axis=(1, 2))
    view = view[:, :stride * (out_h - 1) + 1:stride, :stride * (out_w - 1) + 1:stride]
    return view.transpose(0, 1, 2, 4, 5, 3).reshape(n, out_h * out_w, k * k * c)


def rows_needed(out_h: int, in_h: int, kernel: int, stride: int, pad: int = 0) -> list[int]:
    """Input rows read before each output row's windows (then the rest, drained): the line
    buffer's schedule of a convolution's window generator and of a pool."""
    counts, read = [], 0
    for oy in range(out_h):
        need = min(oy * stride - pad + kernel, in_h)
        counts.append(max(need - read, 0))
        read = max(read, need)
    return counts + [in_h - read]


class HWLayer:
    """What every layer shares: shapes, timesteps, frames, folding, stream words."""

    ops: ClassVar[tuple[str, ...]] = ()
    data_inputs: ClassVar[int] = 1      # node inputs that are streams (the rest: parameters)
    # a pool, fork or add: no SIMD, no mode; all its streams carry one G (its PE)
    passes_group: ClassVar[bool] = False
    # what its output stream carries: "levels" (spike frames), "accumulators" (signed sums), or
    # None when its output is its input (a fork: nothing new to compare)
    output_kind: ClassVar[str | None] = "levels"
    # the design's last layer: its accumulators go to the output adapter
    ends_design: ClassVar[bool] = False
    # whether it holds neurons of the SNN (one entry of snn.simulate's per-layer statistics;
    # a residual block's neurons are its conv1's and its add's)
    has_neurons: ClassVar[bool] = False
    # the architecture it is built for: "snn" (thermometer spike frames, PASCAL) or "qnn" (the
    # FINN-style QNN twin: each channel's level in binary; :meth:`as_qnn`)
    arch: str = "snn"

    def __init__(self, node, model, attrs: dict[str, Any] | None = None):
        self.name = node.name
        self.op_type = node.op_type
        # the streams it reads and writes, in order (tensor names; a chain needs none)
        self.inputs = list(getattr(node, "input", [""] * self.data_inputs))[:self.data_inputs]
        self.outputs = list(getattr(node, "output", [""]))
        a = attrs if attrs is not None else node_attrs(node)
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
    def shown_simd(self) -> int | None:
        """SIMD as the reports show it (None: the kind has no SIMD)."""
        return None if self.passes_group else self.simd

    @property
    def fb_out(self) -> int:
        return unsigned_bits(self.t_out) if self.binary_out else 1

    @property
    def out_frames(self) -> int:
        return 1 if self.binary_out else self.t_out

    @property
    def binary_out(self) -> bool:
        """Whether its emitter writes each channel's level in binary (one frame of
        bits(T_OUT) bits: how many of its T_OUT thresholds it reaches) instead of T_OUT spike
        frames: the thresholding layers of the QNN twin."""
        return self.arch == "qnn" and self.output_kind == "levels" and self.has_neurons

    def as_qnn(self) -> "HWLayer":
        """The layer in the FINN-style QNN twin (docs/design.md, section 4.8): its input
        stream carries each channel's level in binary (T_in = 1 frame of bits(in_max) bits),
        the feeder sends every group and the MVU spends one cycle on it (no zero-skipping),
        and a thresholding emitter writes levels in binary (:attr:`binary_out`). The same
        integer network, the same modules, another word layout."""
        copy = object.__new__(type(self))
        copy.__dict__.update(self.__dict__)
        copy.arch = "qnn"
        copy.t_in = 1
        copy.frame_max = self.in_max
        copy.fb_in = unsigned_bits(self.in_max)
        copy.zero_skip = False
        return copy

    @property
    def in_word_bits(self) -> int:
        return self.in_group * self.t_in * self.fb_in

    def input_fifo_bits(self, port: int, producer_bits: int) -> int:
        """The width of the FIFO into input ``port``, fed with ``producer_bits`` words."""
        return producer_bits

    @property
    def out_word_bits(self) -> int:
        return self.out_group * self.out_frames * self.fb_out

    @property
    def out_pixels(self) -> int:
        return self.out_h * self.out_w

    @property
    def acc_bits_out(self) -> int:
        """Bits of one value of an accumulator output stream (0: a stream of frames)."""
        return 0

    def inner_fifos(self) -> list[tuple[int, int, int, str]]:
        """The FIFOs between the layer's own stages: (producer stage, consumer stage, bits,
        depth key), stage indices relative to the layer's first."""
        return []

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

    def check_input(self, before: "HWLayer", port: int) -> bool:
        """Checks the stream from ``before`` into input ``port`` beyond its group; True when
        the frames need no further check (the stream does not carry frames)."""
        if before.output_kind == "accumulators":
            raise PascalError(f"layer {before.name}: its accumulators must go to a block's add, "
                              f"not to {self.name}")
        return False

    # --- the QNN twin's words ---------------------------------------------------------------
    @property
    def level_bits(self) -> int:
        """a: the QNN twin's bits per input channel (the layer's input levels 0..in_max)."""
        return unsigned_bits(self.in_max)

    @property
    def out_level_bits(self) -> int:
        """a_out: the QNN twin's bits per output channel."""
        return unsigned_bits(self.t_out)

    def lane_bits(self, mode: str) -> int:
        """Bits of one channel of the input stream: T*FB frames, or the QNN's a."""
        return self.level_bits if mode == "qnn" else self.t_in * self.fb_in

    def mode_input_bits(self, mode: str) -> int:
        """The layer's input stream word in this mode (its input FIFO's width)."""
        return self.in_group * self.lane_bits(mode)

    def mode_output_bits(self, mode: str) -> int:
        """The layer's output stream word in this mode."""
        if mode != "qnn":
            return self.out_word_bits
        return self.out_group * self.out_level_bits

    def mode_word_widths(self, mode: str) -> dict[str, int]:
        """Every stream word of the layer in this mode (for the 4096-bit cap)."""
        if mode != "qnn":
            return self.word_widths()
        return {"input word": self.mode_input_bits(mode),
                "output word": self.mode_output_bits(mode)}

    # --- activity: how many cycles each input group costs (zero-skipping) -------------------
    def lane_activity(self, frames: np.ndarray) -> np.ndarray:
        """(N, H, W, C) per input channel: 1 + the index of its last nonzero frame, 0 if none
        (a thermometer train's level), from the input frames (N, H, W, C, T)."""
        nonzero = frames != 0
        last = frames.shape[-1] - np.argmax(nonzero[..., ::-1], axis=-1)
        return np.where(nonzero.any(axis=-1), last, 0).astype(np.int16)

    def group_activity(self, lanes: np.ndarray, simd: int | None = None) -> np.ndarray | None:
        """(N, windows, SF): each input group's activity (the largest of its SIMD lanes) in the
        order the feeder sends the groups of each window; None for a kind whose schedule does
        not depend on the data."""
        return None

    # --- the datapath: the stage's output computed as the hardware computes it --------------
    def prepare_values(self) -> Any:
        """The layer's unpacked parameters for :meth:`values`, computed once for all images."""
        return None

    def values(self, packed: Any, streams: dict[str, np.ndarray], n: int
               ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        """One chunk of ``n`` images through the layer: reads its input streams (by tensor
        name; frames (N, H, W, C, T) float32, or accumulators (N, H, W, C) int64) and returns
        (its output stream, its values as ``verify`` compares them (N, values) or None, its
        input activity per channel (N, H, W, C) or None)."""
        raise NotImplementedError

    def levels_of(self, frames: np.ndarray, n: int) -> np.ndarray:
        """(N, values) levels in stream order: the sum of each channel's frames."""
        return np.rint(frames.sum(axis=-1)).astype(np.int64).reshape(n, -1)

    # --- schedule ---------------------------------------------------------------------------
    def programs(self, activity: np.ndarray | None, n: int, mode: str | None = None
                 ) -> list[Program]:
        """The layer's stage programs for ``n`` images; ``activity`` is :meth:`group_activity`
        (None for layers whose schedule does not depend on the data). ``mode``: None (the
        layer's own: zero_skip or dense), "zero_skip", "dense" or "qnn" (the QNN twin)."""
        raise NotImplementedError

    def stage_cycles(self, mode: str, activity: Any = None, worst: bool = False
                     ) -> dict[str, float]:
        """Mean busy cycles per image (slots + LOOP_OVERHEAD) of each stage in ``mode`` (the
        folding search's analytic form of :meth:`programs`); ``activity``: the search's sampled
        activity of a weighted layer's input (an object with ``sums(simd)`` and
        ``worst(simd)``), ``worst``: every group active."""
        raise NotImplementedError

    def data_dependent(self, mode: str | None = None) -> bool:
        return False

    def mode_of(self, mode: str | None) -> str:
        """The mode ``mode`` names, or the layer's own (zero_skip or dense) for None."""
        mode = mode or ("qnn" if self.arch == "qnn" else
                        "zero_skip" if self.zero_skip else "dense")
        if mode not in MODES:
            raise ValueError(mode)
        return mode

    def shown_mode(self, mode: str) -> str:
        """The mode as the resource rows show it."""
        return mode

    # --- the parameters both backends store --------------------------------------------------
    def arrays(self) -> dict[str, np.ndarray]:
        """The packed parameter arrays by role."""
        return {}

    def array_bits(self, role: str) -> int:
        """Bits of one element of the ``role`` array (two's complement)."""
        return self.weight_bits if role == "weights" else self.acc_bits

    # --- resources (the building blocks live in .resources) ---------------------------------
    def count_parts(self, tally: "resources.Tally", mode: str, fifo_bits: int,
                    fifo_depth: int) -> None:
        """Adds the layer's parts in ``mode`` to ``tally``: the FIFO that feeds it
        (``fifo_bits`` wide, ``fifo_depth`` deep) and its stages."""
        raise NotImplementedError

    def resources(self, mode: str | None = None, fifo_bits: int = 0, fifo_depth: int = 2
                  ) -> dict[str, int]:
        return resources.layer_resources(self, self.mode_of(mode), fifo_bits, fifo_depth)

    def folded(self, pe: int | None = None, simd: int | None = None,
               zero_skip: bool | None = None) -> "HWLayer":
        """A copy with another folding (for the folding search)."""
        copy = object.__new__(type(self))
        copy.__dict__.update(self.__dict__)
        if pe is not None:
            copy.pe = pe
        if simd is not None:
            copy.simd = simd
        if zero_skip is not None and self.arch != "qnn":   # the twin never skips
            copy.zero_skip = zero_skip
        return copy
