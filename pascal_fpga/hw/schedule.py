"""Stage programs: what each hardware stage does, slot by slot, for a batch of images.

A stage runs one flattened pipelined loop per image (II = 1): every iteration is a *slot* of one
cycle that reads at most one word of its input stream, writes at most one word of its output
stream, or neither (see hls/README.md for each stage's loop). A :class:`Program` lists those
stream transactions for N images, in order, as flat arrays (vectorised: a 1,000-image program of
fmnist-cnn has a few million transactions), with each transaction's slot inside its image. The
cycle model (:mod:`pascal_fpga.perf.timing`) places them in time against the FIFOs; the C
simulation counts the same reads, writes and slots per image.

The hardware layer classes (:mod:`.layers`) build their programs with the helpers here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LOOP_OVERHEAD = 2   # idle cycles at the end of every stage's image: the loop's pipeline drain

# slot kinds of a run
IDLE, READ, WRITE, READ_WRITE = 0, 1, 2, 3


@dataclass
class Program:
    """One stage's stream transactions for N images.

    ``slots``, ``reads``, ``writes``: (N,) busy slots (without ``LOOP_OVERHEAD``) and stream
    words read and written per image, as the C simulation's counters count them (the input stage
    counts its AXI reads, the output stage its AXI writes). ``image``, ``offset``, ``read``,
    ``write``: (M,) one entry per transaction on a FIFO of the design, ordered by image then slot;
    ``offset`` is the slot within its image; a transaction may read and write in the same slot.
    AXI transactions are not listed (the AXI input is always valid, the output always ready)."""

    stage: str
    slots: np.ndarray
    reads: np.ndarray
    writes: np.ndarray
    image: np.ndarray
    offset: np.ndarray
    read: np.ndarray
    write: np.ndarray

    @property
    def images(self) -> int:
        return len(self.slots)

    def counters(self) -> np.ndarray:
        """(N, 3): reads, writes, slots per image (the C simulation's counters)."""
        return np.stack([self.reads, self.writes, self.slots], axis=1).astype(np.int64)


def _as_int(values) -> np.ndarray:
    return np.asarray(values, dtype=np.int64)


def from_runs(stage: str, kinds: np.ndarray, lengths: np.ndarray, reads: np.ndarray | None = None,
              writes: np.ndarray | None = None) -> Program:
    """A program whose images are the same sequence of runs (``kinds``: (R,) IDLE/READ/WRITE/
    READ_WRITE), of lengths that may differ per image (``lengths``: (N, R)). Every slot of a
    non-idle run is one transaction. ``reads``/``writes`` override the counted words (for AXI)."""
    kinds = _as_int(kinds)
    lengths = _as_int(lengths)
    n, runs = lengths.shape
    starts = np.cumsum(lengths, axis=1) - lengths          # slot where each run starts
    active = np.broadcast_to(kinds != IDLE, lengths.shape)
    run_len = lengths[active]                              # (image-major, run order)
    run_start = starts[active]
    run_image = np.broadcast_to(np.arange(n)[:, None], lengths.shape)[active]
    run_kind = np.broadcast_to(kinds[None, :], lengths.shape)[active]
    total = int(run_len.sum())
    first = np.cumsum(run_len) - run_len                   # index of each run's first transaction
    within = np.arange(total) - np.repeat(first, run_len)
    offset = np.repeat(run_start, run_len) + within
    image = np.repeat(run_image, run_len)
    kind = np.repeat(run_kind, run_len)
    is_read = (kind == READ) | (kind == READ_WRITE)
    is_write = (kind == WRITE) | (kind == READ_WRITE)
    per_read = (lengths * ((kinds == READ) | (kinds == READ_WRITE))).sum(axis=1)
    per_write = (lengths * ((kinds == WRITE) | (kinds == READ_WRITE))).sum(axis=1)
    return Program(stage, lengths.sum(axis=1), per_read if reads is None else _as_int(reads),
                   per_write if writes is None else _as_int(writes), image, offset, is_read,
                   is_write)


def vector_feed(stage: str, emitted: np.ndarray) -> Program:
    """The dense layers' feeder: slot j reads input word j and writes its token in the same slot
    when the group is emitted; a last slot writes the END token. ``emitted``: (N, SF) bool."""
    n, sf = emitted.shape
    flags = np.concatenate([emitted, np.ones((n, 1), dtype=bool)], axis=1)
    reads = np.concatenate([np.ones((n, sf), dtype=bool), np.zeros((n, 1), dtype=bool)], axis=1)
    offset = np.broadcast_to(np.arange(sf + 1), (n, sf + 1))
    image = np.broadcast_to(np.arange(n)[:, None], (n, sf + 1))
    return Program(stage, np.full(n, sf + 1, dtype=np.int64), np.full(n, sf, dtype=np.int64),
                   flags.sum(axis=1).astype(np.int64), image.reshape(-1).astype(np.int64),
                   offset.reshape(-1).astype(np.int64), reads.reshape(-1), flags.reshape(-1))


def mvu(stage: str, active: np.ndarray, emitted: np.ndarray, folds: int) -> Program:
    """The matrix-vector unit: per window, fold 0 reads each emitted token (one slot, then
    active - 1 more for its other frames) and the END token (a slot that also writes the fold's
    output word); folds 1..NF-1 replay the tokens (sum(active) slots) and write (one slot).
    ``active``: (N, W, SF) cycles each token costs, ``emitted``: (N, W, SF) bool, NF = ``folds``."""
    n, windows, sf = active.shape
    cost = np.where(emitted, active, 0).astype(np.int64)
    per_window = cost.sum(axis=2)                                  # S_w (N, W)
    window_len = folds * (per_window + 1)
    window_start = np.cumsum(window_len, axis=1) - window_len      # (N, W)
    # transactions in order, placed without sorting: per window its E_w token reads, then the
    # END slot (read + write), then one write per later fold
    tokens = emitted.sum(axis=2)                                   # E_w (N, W)
    per = (tokens + folds).reshape(-1)
    first = np.cumsum(per) - per                                   # index of each window's first
    total = int(per.sum())
    image = np.repeat(np.repeat(np.arange(n), windows), per)
    offset = np.empty(total, dtype=np.int64)
    read = np.zeros(total, dtype=bool)
    write = np.zeros(total, dtype=bool)
    # token reads: offset = window start + cost of the emitted tokens before it in the window
    token_offset = (window_start[..., None] + np.cumsum(cost, axis=2) - cost)[emitted]
    rank = (np.cumsum(emitted, axis=2) - 1)[emitted]
    token_pos = np.repeat(first, tokens.reshape(-1)) + rank
    offset[token_pos] = token_offset
    read[token_pos] = True
    flat_start, flat_s, flat_e = window_start.reshape(-1), per_window.reshape(-1), \
        tokens.reshape(-1)
    for nf in range(folds):   # END of fold 0 (read + write), the write of each later fold
        pos = first + flat_e + nf
        offset[pos] = flat_start + (nf + 1) * (flat_s + 1) - 1
        write[pos] = True
        if nf == 0:
            read[pos] = True
    reads = emitted.sum(axis=(1, 2)) + windows
    return Program(stage, window_len.sum(axis=1), reads.astype(np.int64),
                   np.full(n, windows * folds, dtype=np.int64), image.astype(np.int64), offset,
                   read, write)


def delayed(program: Program, latency: int) -> Program:
    """The RTL's program of a stage whose writes leave ``latency`` slots after the HLS slot that
    produces them (a pipeline with a global stall: pascal_fpga/rtl/README.md). Every write moves
    ``latency`` slots later and each image gains ``latency`` drain slots; a moved write may share
    its slot with a read (the transactions are re-sorted into slot order, reads and writes of one
    slot merged into one transaction)."""
    if latency == 0:
        return program
    off_r = program.offset[program.read]
    img_r = program.image[program.read]
    off_w = program.offset[program.write] + latency
    img_w = program.image[program.write]
    image = np.concatenate([img_r, img_w])
    offset = np.concatenate([off_r, off_w])
    key = image * (int(program.slots.max(initial=0)) + latency + 1) + offset
    order = np.argsort(key, kind="stable")
    key = key[order]
    unique, first = np.unique(key, return_index=True)
    is_read = np.concatenate([np.ones(len(off_r), bool), np.zeros(len(off_w), bool)])[order]
    read = np.zeros(len(unique), dtype=bool)
    write = np.zeros(len(unique), dtype=bool)
    slot_of = np.searchsorted(unique, key)
    np.logical_or.at(read, slot_of, is_read)
    np.logical_or.at(write, slot_of, ~is_read)
    return Program(program.stage, program.slots + latency, program.reads, program.writes,
                   image[order][first], offset[order][first], read, write)


def ideal_cycles(program: Program) -> np.ndarray:
    """(M,) the cycle of each transaction when the stage never stalls: image i's slot s at
    base_i + s, base_{i+1} = base_i + slots_i + LOOP_OVERHEAD."""
    base = np.cumsum(program.slots + LOOP_OVERHEAD) - (program.slots + LOOP_OVERHEAD)
    return base[program.image] + program.offset
