"""The cycle model's timing engine: each image's own, data-dependent timing through the FIFOs.

**Semantics** (cycle level). The design is a chain of stages (:meth:`Design.programs`: stage 0
the input adapter, the last the output adapter); FIFO ``f`` of depth ``D_f`` connects stage ``f``
to stage ``f + 1``. A stage runs its images back to back, one slot per cycle: without stalls,
image ``i``'s slot ``s`` runs at ``base_i + s`` with ``base_0 = 0`` and ``base_{i+1} = base_i +
slots_i + LOOP_OVERHEAD``. A *transaction* (one entry of a :class:`Program`) is a slot that reads
the stage's input FIFO and/or writes its output FIFO; counting over all images,

- the r-th read of a FIFO at cycle t needs the producer's r-th write at a cycle <= t - 1;
- the w-th write at cycle t needs w < D, or the consumer's (w - D)-th read at a cycle <= t - 1.

A stall delays its slot and every later slot of the stage by the same amount (no reordering), so
over a stage's transactions in order, with ideal times ``g_k = base_{image_k} + offset_k`` and
``C_k`` the cycle the constraints above allow (the larger of the two for a read-write slot):
``T_0 = max(g_0, C_0)``, ``T_k = max(T_{k-1} + g_k - g_{k-1}, C_k)``, i.e. the delay ``T - g`` is
the running maximum of ``C - g`` (a max-plus prefix scan: ``np.maximum.accumulate``). The delay
carries over from image to image; after an image's last transaction its remaining slots and the
overhead run without stalls, so the image's loop exits at ``base_{i+1} + delay``. The input
adapter's AXI side is always valid and the output adapter's always ready (neither is in the
programs). This is the model of :func:`pascal_fpga.perf.cyclesim.simulate_timing`, per image.

**The fixed point.** For given times of the other stages, a stage's times are that one scan;
the stages constrain each other both ways (a read waits for its producer's write, a write for
its consumer's read D words back), so the times are a fixed point ``T = F(T)``. Every constraint
puts an event at least one cycle after another one, so whenever the times exist the events and
constraints form an acyclic graph and the fixed point is *unique*; ``F`` is monotone, so
iterating it from a lower bound rises to it, and an iteration that changes nothing has reached
it: the result is exact, however the iteration is ordered. Here the iteration is Gauss-Seidel:
sweeps over the stages, alternately forwards (starvation travels downstream) and backwards
(back-pressure travels upstream), each stage recomputed from the newest times of its neighbours
and only from its first slot whose constraint now exceeds its delay (times only rise); a
changed stage marks its neighbours from the first slot that depends on the change. It starts
from a lower bound: what is known from earlier chunks, the rest of the chunk unconstrained. It
takes about as many sweeps as the critical paths change direction between stages (a stall
handed from stage to stage and back), a few per image at depth 2.

**Depth 1.** Through a FIFO of one word, a write and the next write (a read and the next read)
are at least 2 cycles apart: the word had to be read in between. Where the next one is in the
next slot, that implied constraint is part of the stage's own scan (``delay_k >= delay_{k-1} +
1``, a running maximum of ``x - cumsum(step)``), so that the producer and the consumer of a
one-word FIFO, which hand a stall back and forth at every word, do not need a sweep per word.

**No deadlock in a chain.** Let every depth be >= 1 and every stream balanced (the consumer
reads no more words than the producer writes, and at most D fewer). Suppose the design got
stuck, some stage unfinished. The last unfinished stage is not waiting for room to write: it is
the output adapter (no FIFO to write), or its consumer has finished, having read all its words
but at most D. So it waits on a read, of a word not yet written: its input FIFO is empty. Its
producer still has that word to write (balance), and there is room for it (the FIFO is empty,
D >= 1), so the producer waits on a read of its own input FIFO, which is empty; and so on,
stage by stage, down to the input adapter, which reads no FIFO (its AXI input is always valid):
a contradiction. A depth below 1 or an unbalanced stream is reported as a deadlock naming the
FIFO (the arrays then hold -1); so would be, as a guard only, an iteration that does not
converge within twice as many sweeps as the chunk has transactions.

**Chunks.** The transactions are cut into chunks, word-aligned across the FIFOs: the input
stage stops before some write, every next stage before its read of the first word its producer
has not written yet. Then every constraint of a chunk points into the same or an earlier chunk
(a read to its word's write, a write to the read D words back), so the chunks are solved one
after another, exactly, carrying each stage's delay and each FIFO's last D read cycles across;
a chunk may end inside an image. Chunks of about ``CHUNK_TRANSACTIONS`` transactions (all
stages together) make a few numpy calls per stage and sweep cover many transactions; chunks are
grouped into blocks of ``BLOCK_TRANSACTIONS`` whose constraints are built at once, which bounds
the memory. The result does not depend on either size (tests/test_timing.py).

**Cost** (one CPU core; ``python tests/test_timing.py 1000 [fold]``: 1,000 images of a synthetic
fmnist-size design, two 3 x 3 convolutions, pooling, two dense layers, 30 % of the input groups
active). At PE = SIMD = 1 (1.4e5 transactions per image, 1e4-3e4 per large stage): about 95
images/s (1.3e7 transactions/s) with every FIFO of depth 2, 110 with the depths
:func:`size_fifos` finds, 170 with unbounded FIFOs; at PE = SIMD = 8 (2.3e4 transactions per
image): 400, 540 and 1,000 images/s. With every FIFO of depth 1 stalls still change hands
between stages at many words (11 and 110 images/s); :func:`size_fifos` never chooses depth 1.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import PascalError
from ..hw.schedule import LOOP_OVERHEAD, Program

UNBOUNDED = 1 << 40            # a FIFO depth that never blocks
CHUNK_TRANSACTIONS = 100_000   # transactions per chunk (all stages together) by default
BLOCK_TRANSACTIONS = 1 << 20   # transactions whose constraints are built at once (memory)
_NEG = -(1 << 62)
_SHALLOW = 16                  # FIFOs up to this depth count their words without a search


@dataclass
class Timing:
    """Every image's timing at every stage (cycles from the first slot of the first image).

    ``start``: the cycle of the image's first slot (after any stall of that slot); ``finish``:
    the cycle its loop (with ``LOOP_OVERHEAD``) ends; ``first_read`` / ``last_write``: the cycle
    of its first FIFO read / last FIFO write (-1 where the stage has none: the input stage reads
    no FIFO, the output stage writes none). ``max_occupancy``: per FIFO, the most words it held
    (counted just after each write: the words written so far minus those read before that
    cycle). ``stall``: per stage, the cycles it spent blocked. ``deadlock``: None, or which FIFO
    could not make progress (then the arrays hold -1)."""

    stages: list[str]
    depths: list[int]
    images: int
    start: np.ndarray
    finish: np.ndarray
    first_read: np.ndarray
    last_write: np.ndarray
    max_occupancy: list[int]
    stall: np.ndarray
    deadlock: str | None = None
    iterations: int = field(default=0, repr=False)   # stage updates of the fixed point (work)

    @property
    def latency(self) -> np.ndarray:
        """(N,) cycles from each image's first input slot to the end of its output."""
        return self.finish[-1] - self.start[0]

    @property
    def interval(self) -> np.ndarray:
        """(N - 1,) cycles between successive images' outputs."""
        return np.diff(self.finish[-1])

    @property
    def makespan(self) -> int:
        """Cycles from the first image's first slot to the last image's output."""
        return int(self.finish[-1][-1] - self.start[0][0]) if self.images else 0

    def summary(self, clock_mhz: float | None = None) -> dict[str, Any]:
        """Latency and interval statistics (cycles: mean, p99, worst = max, min), with the
        images/s they give at ``clock_mhz`` (the interval's mean, p99 and worst); the interval's
        figures are None for a single image."""

        def stats(values: np.ndarray) -> dict[str, float] | None:
            if not len(values):
                return None
            return {"mean": float(values.mean()), "p99": float(np.percentile(values, 99)),
                    "worst": int(values.max()), "min": int(values.min())}

        if self.deadlock:
            return {"images": self.images, "deadlock": self.deadlock,
                    "fifo_depths": list(self.depths)}
        latency, interval = stats(self.latency), stats(self.interval)
        result: dict[str, Any] = {
            "images": self.images, "latency_cycles": latency, "interval_cycles": interval,
            "makespan_cycles": self.makespan, "fifo_depths": list(self.depths),
            "fifo_max_occupancy": list(self.max_occupancy),
            "stall_cycles": {name: int(s) for name, s in zip(self.stages, self.stall)},
            "deadlock": None}
        if clock_mhz:
            hz = clock_mhz * 1e6
            result["clock_mhz"] = clock_mhz
            result["latency_us_mean"] = latency["mean"] / clock_mhz if latency else None
            for key in ("mean", "p99", "worst"):
                result[f"fps_{key}"] = hz / interval[key] if interval and interval[key] else None
        return result


@dataclass
class _Stage:
    """One program's arrays for the engine (over all images), and where its results are read."""

    name: str
    count: int             # M transactions
    image: np.ndarray      # (M,) as in the program
    offset: np.ndarray     # (M,)
    base: np.ndarray       # (N + 1,) ideal start of each image (and the end of the last)
    rpos: np.ndarray       # transaction index of each FIFO read, in order
    wpos: np.ndarray       # ... of each FIFO write
    wb: np.ndarray         # (N + 1,) index of each image's first write
    slot0: np.ndarray      # (N,) the image's first transaction is in its slot 0
    q_last: np.ndarray     # (N,) each image's last transaction (or the one before; -1: none)
    q_first: np.ndarray    # the first transaction of the images i_first (those with slot0)
    i_first: np.ndarray
    q_read: np.ndarray     # the first read of the images i_read (those that read)
    i_read: np.ndarray
    q_write: np.ndarray    # the last write of the images i_write (those that write)
    i_write: np.ndarray
    step: np.ndarray | None = None   # (M,) see _Engine._block (FIFOs of depth 1)

    def ideal(self, index) -> np.ndarray:
        """The ideal cycle (``base[image] + offset``) of transactions ``index``."""
        return self.base[self.image[index]] + self.offset[index]

    def ideal_block(self, a: int, b: int) -> np.ndarray:
        """The ideal cycles of transactions a..b-1, checked to increase (one slot each)."""
        g = self.ideal(slice(max(a - 1, 0), b))
        if np.any(g[1:] <= g[:-1]):
            raise ValueError(f"stage {self.name}: transactions not in image-then-slot order, "
                             f"one per slot")
        return g[1:] if a > 0 else g


def _prepare(p: Program, n: int) -> _Stage:
    slots = np.asarray(p.slots, dtype=np.int64)
    image = np.asarray(p.image, dtype=np.int64)
    offset = np.asarray(p.offset, dtype=np.int64)
    read = np.asarray(p.read, dtype=bool)
    write = np.asarray(p.write, dtype=bool)
    if len(slots) != n or not (len(image) == len(offset) == len(read) == len(write)):
        raise ValueError(f"stage {p.stage}: inconsistent program arrays")
    base = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(slots + LOOP_OVERHEAD, out=base[1:])
    if len(image) and (image[0] < 0 or image[-1] >= n or np.any(image[1:] < image[:-1])):
        raise ValueError(f"stage {p.stage}: transactions not in image order")
    bounds = np.searchsorted(image, np.arange(n + 1))
    has = bounds[1:] > bounds[:-1]
    # (offsets increase within an image: checked block by block, _Stage.ideal_block)
    if np.any(offset[bounds[:-1][has]] < 0) or np.any(offset[bounds[1:][has] - 1] >= slots[has]):
        raise ValueError(f"stage {p.stage}: a transaction outside its image's slots")
    rpos, wpos = np.flatnonzero(read), np.flatnonzero(write)
    rb, wb = np.searchsorted(rpos, bounds), np.searchsorted(wpos, bounds)
    slot0 = np.zeros(n, dtype=bool)
    slot0[has] = offset[bounds[:-1][has]] == 0
    i_first = np.flatnonzero(slot0)
    i_read = np.flatnonzero(rb[1:] > rb[:-1])
    i_write = np.flatnonzero(wb[1:] > wb[:-1])
    return _Stage(p.stage, len(image), image, offset, base, rpos, wpos, wb, slot0, bounds[1:] - 1,
                  bounds[:-1][i_first], i_first, rpos[rb[:-1][i_read]], i_read,
                  wpos[wb[1:][i_write] - 1], i_write)


def _failed(names: list[str], depths: list[int], n: int, why: str) -> Timing:
    s = len(names)
    blank = np.full((s, n), -1, dtype=np.int64)
    return Timing(names, list(depths), n, blank, blank.copy(), blank.copy(), blank.copy(),
                  [0] * (s - 1), np.zeros(s, dtype=np.int64), why)


def _fifo(names: list[str], f: int) -> str:
    return f"FIFO {f} ({names[f]} -> {names[f + 1]})"


def simulate(programs: list[Program], depths: list[int], chunk: int | None = None,
             chunk_transactions: int | None = None) -> Timing:
    """Every image's timing through the chain of stages (see the module docstring) with FIFO
    ``f`` (stage ``f`` -> ``f + 1``) of depth ``depths[f]``. The images are processed in chunks
    of ``chunk`` images, or else of about ``chunk_transactions`` transactions (default
    ``CHUNK_TRANSACTIONS``; a chunk may end inside an image); the result does not depend on
    either."""
    count = len(programs)
    names = [p.stage for p in programs]
    if count < 2:
        raise ValueError("a design has at least the input and the output stage")
    if len(depths) != count - 1:
        raise ValueError(f"{len(depths)} FIFO depths for {count - 1} FIFOs")
    depths = [int(d) for d in depths]
    n = programs[0].images
    if any(p.images != n for p in programs):
        raise ValueError("the programs are for different numbers of images")
    stages = [_prepare(p, n) for p in programs]
    if len(stages[0].rpos) or len(stages[-1].wpos):
        raise ValueError("the input stage reads no FIFO and the output stage writes none")
    for f in range(count - 1):
        made, taken, depth = len(stages[f].wpos), len(stages[f + 1].rpos), depths[f]
        why = None
        if depth < 1:
            why = f"depth {depth} holds no word"
        elif taken > made:
            why = f"{names[f + 1]} reads {taken} words, {names[f]} writes only {made}"
        elif made > taken + depth:
            why = (f"{names[f]} writes {made} words, {names[f + 1]} reads {taken}: the last "
                   f"{made - taken - depth} never fit")
        if why:
            return _failed(names, depths, n, f"{_fifo(names, f)}: {why}")
    if chunk is not None:
        starts = stages[0].wb[max(1, int(chunk))::max(1, int(chunk))]
        cuts = _splits(stages, starts[starts < len(stages[0].wpos)])
    else:
        cuts = _even_cuts(stages, int(chunk_transactions or CHUNK_TRANSACTIONS))
    total = np.array([s.count for s in stages], dtype=np.int64)
    bounds = np.concatenate([np.zeros((count, 1), dtype=np.int64), cuts, total[:, None]], axis=1)
    return _Engine(stages, depths).run(bounds)


def _splits(stages: list[_Stage], words: np.ndarray) -> np.ndarray:
    """(stages, len(words)): chunk boundaries, in transactions of each stage, after ``words``
    writes of the input stage: the first stage stops before that write, each next one before
    the read of the first word its producer has not written yet (so every read's write, and
    every write's read D words back, is in the same or an earlier chunk)."""
    out = np.empty((len(stages), len(words)), dtype=np.int64)
    x = np.asarray(words, dtype=np.int64)
    for k, s in enumerate(stages):
        if k == 0:
            cut = _at(s.wpos, x, s.count)
        else:
            cut = _at(s.rpos, x, s.count)
        out[k] = cut
        x = np.searchsorted(s.wpos, cut)
    return out


def _at(positions: np.ndarray, index: np.ndarray, end: int) -> np.ndarray:
    """positions[index], or ``end`` past the last."""
    if not len(positions):
        return np.full(len(index), end, dtype=np.int64)
    return np.where(index < len(positions), positions[np.minimum(index, len(positions) - 1)],
                    end)


def _even_cuts(stages: list[_Stage], target: int) -> np.ndarray:
    """Chunk boundaries of about ``target`` transactions (all stages together)."""
    words = len(stages[0].wpos)
    total = sum(s.count for s in stages)
    chunks = total // max(target, 1)
    if chunks < 2 or words < 2:
        return np.empty((len(stages), 0), dtype=np.int64)
    step = max(1, words // (16 * chunks))
    candidates = np.arange(step, words, step)
    sizes = _splits(stages, candidates).sum(axis=0)
    picks = np.unique(np.searchsorted(sizes, np.arange(1, chunks) * (total / chunks)))
    picks = picks[picks < len(candidates)]
    return _splits(stages, candidates[picks])


class _Engine:
    """The chunked fixed-point iteration (see the module docstring). A block of chunks is laid
    out stage by stage in flat arrays, every transaction's constraint given as the flat index
    of the transaction it waits for; what a block needs from earlier ones is each stage's delay
    and each FIFO's last D read cycles."""

    def __init__(self, stages: list[_Stage], depths: list[int]):
        self.stages = stages
        self.depths = depths
        self.names = [s.name for s in stages]
        count = len(stages)
        n = len(stages[0].slot0)
        self.n = n
        # a FIFO at least as deep as all its words never blocks: no constraint, no history
        self.bounded = [depths[f] < len(stages[f].wpos) for f in range(count - 1)]
        ones = [f for f in range(count - 1) if depths[f] == 1 and self.bounded[f]]
        self.stepping = bool(ones)
        for s in stages:
            s.step = np.zeros(s.count, dtype=np.int64) if ones else None
        for f in ones:
            for s, where in ((stages[f], stages[f].wpos), (stages[f + 1], stages[f + 1].rpos)):
                # the next transaction, in the next slot, on the same FIFO
                follows = (np.diff(where) == 1) & (np.diff(s.ideal(where)) == 1)
                s.step[where[1:][follows]] = 1
        self.carry = np.zeros(count, dtype=np.int64)       # each stage's accumulated delay
        self.history = [_Queue() for _ in range(count - 1)]   # each FIFO's last D read cycles
        self.pending = [_Queue() for _ in range(count - 1)]   # reads not before the last write
        self.done = [0] * (count - 1)      # reads before the last write
        self.occupancy = [0] * (count - 1)
        self.last_delay = np.zeros((count, n), dtype=np.int64)  # after each image's last slot
        self.first_time = np.zeros((count, n), dtype=np.int64)  # of a transaction in slot 0
        self.first_read = np.full((count, n), -1, dtype=np.int64)
        self.last_write = np.full((count, n), -1, dtype=np.int64)
        self.iterations = 0

    def run(self, bounds: np.ndarray) -> Timing:
        sizes = bounds.sum(axis=0)
        k = 0
        chunks = bounds.shape[1] - 1
        while k < chunks:
            end = int(np.searchsorted(sizes, sizes[k] + BLOCK_TRANSACTIONS, side="right")) - 1
            end = min(max(end, k + 1), chunks)
            why = self._block(bounds[:, k:end + 1])
            if why:
                return _failed(self.names, self.depths, self.n, why)
            k = end
        count = len(self.stages)
        start = np.empty((count, self.n), dtype=np.int64)
        finish = np.empty((count, self.n), dtype=np.int64)
        for k, s in enumerate(self.stages):
            delay = self.last_delay[k]
            finish[k] = s.base[1:] + delay
            before = np.concatenate([[0], delay[:-1]])
            start[k] = np.where(s.slot0, self.first_time[k], s.base[:-1] + before)
        stall = self.last_delay[:, -1].copy() if self.n else np.zeros(count, dtype=np.int64)
        return Timing(self.names, self.depths, self.n, start, finish, self.first_read,
                      self.last_write, self.occupancy, stall, None, self.iterations)

    def _block(self, bounds: np.ndarray) -> str | None:
        stages, depths = self.stages, self.depths
        count = len(stages)
        lo, hi = bounds[:, 0], bounds[:, -1]
        # layout: stage by stage, each stage's transactions of the block in order (a chunk of a
        # stage is a slice of its part); one more cell at the end, never written, stands for
        # "no constraint"
        off = np.zeros(count + 1, dtype=np.int64)
        np.cumsum(hi - lo, out=off[1:])
        total = int(off[-1])
        none = total
        ideal = np.concatenate([s.ideal_block(a, b) for s, a, b in zip(stages, lo, hi)])
        gap = 1 - ideal                    # a constraint's source time + gap: the least delay
        floor = np.full(total, _NEG, dtype=np.int64)   # least delays known before the block
        floor[off[:-1][hi > lo]] = self.carry[hi > lo]
        after_write = np.full(total, none, dtype=np.int64)   # a read: its word's write
        after_read = np.full(total, none, dtype=np.int64) \
            if any(self.bounded) else None                  # a write: the read D words back
        # the same, as sorted lists per stage: (its constrained slots, their sources)
        by_write: list[tuple[np.ndarray, np.ndarray] | None] = [None] * count
        by_read: list[tuple[np.ndarray, np.ndarray] | None] = [None] * count
        ranges = []
        for f in range(count - 1):
            p, c = stages[f], stages[f + 1]
            wlo, whi = np.searchsorted(p.wpos, [lo[f], hi[f]])
            rlo, rhi = np.searchsorted(c.rpos, [lo[f + 1], hi[f + 1]])
            writes = off[f] + p.wpos[wlo:whi] - lo[f]
            reads = off[f + 1] + c.rpos[rlo:rhi] - lo[f + 1]
            ranges.append((wlo, whi, rlo, rhi, writes, reads))
            after_write[reads] = writes[:rhi - rlo]
            by_write[f + 1] = (reads, writes[:rhi - rlo])
            if not self.bounded[f] or whi == wlo:
                continue
            depth, hist = depths[f], self.history[f].values()
            need = np.arange(wlo, whi) - depth              # the read each write waits for
            old = (need >= 0) & (need < rlo)
            at = writes[old]
            floor[at] = np.maximum(floor[at], hist[need[old] - (rlo - len(hist))] + 1 - ideal[at])
            new = need >= rlo
            after_read[writes[new]] = reads[need[new] - rlo]
            by_read[f] = (writes[new], reads[need[new] - rlo])
        # FIFOs of depth 1: a transaction right after one of the same kind on the same FIFO
        # (in the next slot) is at least 2 cycles after it (the word had to go through), so the
        # delay grows by one there (implied by the constraints; makes the fixed point fast)
        step = np.concatenate([s.step[a:b] for s, a, b in zip(stages, lo, hi)]) \
            if self.stepping else None
        grown = None
        if step is not None:
            grown = np.concatenate([np.cumsum(step[off[k]:off[k + 1]])
                                    for k in range(count)])
            floor[off[:-1][hi > lo]] += step[off[:-1][hi > lo]]
        reading = [f > 0 for f in range(count)]
        writing = [f < count - 1 and self.bounded[f] for f in range(count)]
        times = np.full(total + 1, _NEG, dtype=np.int64)
        for k in range(bounds.shape[1] - 1):
            seg = [int(x) for x in off[:-1] + bounds[:, k] - lo]
            end = [int(x) for x in off[:-1] + bounds[:, k + 1] - lo]
            for s in range(count):   # the delay carried from the stage's previous chunk
                u = seg[s]
                if u < end[s] and u > off[s]:
                    carried = times[u - 1] - ideal[u - 1] + (step[u] if step is not None else 0)
                    floor[u] = max(floor[u], carried)
            # the first slot of each stage whose constraints may have risen since the stage was
            # last computed (its end: none)
            since = list(seg)
            sweeps = 0
            while any(since[s] < end[s] for s in range(count)):
                sweeps += 1
                if sweeps > 2 * (sum(end) - sum(seg)) + 4:   # a guard (module docstring)
                    stuck = min(s for s in range(count) if since[s] < end[s])
                    return f"{_fifo(self.names, min(stuck, count - 2))}: the timing does " \
                           f"not converge"
                for s in (range(count) if sweeps % 2 else range(count - 1, -1, -1)):
                    u, w = since[s], end[s]
                    if u >= w:
                        continue
                    since[s] = w
                    self.iterations += 1
                    if reading[s]:
                        v = times[after_write[u:w]]
                        if writing[s]:
                            np.maximum(v, times[after_read[u:w]], out=v)
                    elif writing[s]:
                        v = times[after_read[u:w]]
                    else:
                        v = floor[u:w].copy()
                    if reading[s] or writing[s]:
                        v += gap[u:w]
                        np.maximum(v, floor[u:w], out=v)
                    # times only rise, so the stage moves from its first slot whose constraint
                    # now exceeds its delay, and nowhere if there is none
                    rises = v > times[u:w] - ideal[u:w]
                    first = int(rises.argmax())
                    if not rises[first]:
                        continue
                    u, x = u + first, v[first:]
                    if u > seg[s]:   # the delay carried from the slot before
                        carried = times[u - 1] - ideal[u - 1]
                        if step is not None:
                            carried += step[u]
                        x[0] = max(x[0], carried)
                    if grown is not None:
                        # delay_k = max(delay_{k-1} + step_k, x_k): a running maximum of
                        # x - (sum of steps), plus the sum of steps
                        x -= grown[u:w]
                        np.maximum.accumulate(x, out=x)
                        x += grown[u:w]
                    else:
                        np.maximum.accumulate(x, out=x)
                    x += ideal[u:w]
                    times[u:w] = x
                    changed = u
                    # the neighbours' slots whose constraints come from the moved slots
                    for t, pairs in ((s + 1, by_write[s + 1] if s + 1 < count else None),
                                     (s - 1, by_read[s - 1] if s > 0 else None)):
                        if pairs is None or seg[t] >= end[t]:
                            continue
                        slots, sources = pairs
                        i = int(sources.searchsorted(changed))
                        if i < len(slots):
                            since[t] = min(since[t], max(int(slots[i]), seg[t]))
        self._record(bounds, off, times, ranges)
        return None

    def _record(self, bounds, off, times, ranges) -> None:
        stages = self.stages
        count = len(stages)
        lo, hi = bounds[:, 0], bounds[:, -1]
        for k, s in enumerate(stages):
            if hi[k] == lo[k]:
                continue

            def at(index: np.ndarray) -> tuple[slice, np.ndarray]:
                i, j = np.searchsorted(index, [lo[k], hi[k]])
                return slice(i, j), times[off[k] + index[i:j] - lo[k]]

            where, t = at(s.q_last)
            self.last_delay[k, where] = t - s.ideal(s.q_last[where])
            where, t = at(s.q_first)
            self.first_time[k, s.i_first[where]] = t
            if k > 0:
                where, t = at(s.q_read)
                self.first_read[k, s.i_read[where]] = t
            if k < count - 1:
                where, t = at(s.q_write)
                self.last_write[k, s.i_write[where]] = t
            self.carry[k] = times[off[k + 1] - 1] - s.ideal(hi[k] - 1)
        for f in range(count - 1):
            wlo, whi, rlo, rhi, writes, reads = ranges[f]
            w, r = times[writes], times[reads]
            depth = self.depths[f]
            shallow = self.bounded[f] and depth <= _SHALLOW
            if shallow and len(w):
                # words inside just after the w-th write: w + 1 - the reads before it, which
                # are all of the first w - D + 1 and some of the next D - 1
                hist = self.history[f].values()
                near = np.concatenate([hist, r])          # reads rlo - len(hist) .. rhi - 1
                first = rlo - len(hist)
                word = np.arange(wlo, whi)
                read = np.maximum(word - depth + 1, 0)
                for back in range(1, depth):
                    j = word - back - first
                    ok = (j >= 0) & (j < len(near))
                    read += ok & (near[np.clip(j, 0, max(len(near) - 1, 0))] < w) \
                        if len(near) else 0
                self.occupancy[f] = max(self.occupancy[f], int((word + 1 - read).max()))
            elif not shallow and len(w):
                # the same from the reads kept (those not before the last write) and the new
                pending = self.pending[f]
                pending.push(r)
                seen = pending.values()
                gone = int(seen.searchsorted(w[-1], side="left"))
                before = int(seen.searchsorted(w[0], side="left"))  # all before every write
                inside = wlo + np.arange(1, len(w) + 1) - self.done[f] - before - \
                    seen[before:gone].searchsorted(w, side="left")
                self.occupancy[f] = max(self.occupancy[f], int(inside.max()))
                self.done[f] += gone
                pending.drop(gone)
            elif not shallow:
                self.pending[f].push(r)
            if self.bounded[f]:
                history = self.history[f]
                history.push(r)
                history.drop(len(history) - depth)


class _Queue:
    """A growing array of cycles, dropped from the front (amortised O(1) per value)."""

    def __init__(self):
        self.data = np.empty(16, dtype=np.int64)
        self.head = self.tail = 0

    def __len__(self) -> int:
        return self.tail - self.head

    def values(self) -> np.ndarray:
        return self.data[self.head:self.tail]

    def push(self, values: np.ndarray) -> None:
        size = len(self)
        if self.tail + len(values) > len(self.data):
            room = max(2 * (size + len(values)), 16)
            data = np.empty(room, dtype=np.int64) if room > len(self.data) else self.data
            data[:size] = self.values()
            self.data, self.head, self.tail = data, 0, size
        self.data[self.tail:self.tail + len(values)] = values
        self.tail += len(values)

    def drop(self, count: int) -> None:
        self.head += max(0, min(count, len(self)))


class FifoDepths(list):
    """The depths :func:`size_fifos` found (a list of ints), with the timings it saw: ``free``
    (unbounded FIFOs), ``timing`` (these depths) and ``worst`` (the worst-case programs at these
    depths, or None)."""

    free: Timing
    timing: Timing
    worst: Timing | None = None


def size_fifos(programs: list[Program], worst: list[Program] | None = None,
               chunk_transactions: int | None = None) -> FifoDepths:
    """The smallest FIFO depths (at least 2) that keep the timing of unbounded FIFOs on these
    programs: the first image's output and the last one's at the same cycles (so the same
    latency of the first image and the same mean interval), and a mean latency no longer. With
    unbounded FIFOs the largest occupancy of each FIFO is enough (the unbounded schedule then
    meets every constraint); each FIFO in turn is then made as shallow as keeps that timing, the
    others as found so far (a doubling search from 2, then a binary one; a deeper FIFO never
    delays an output). ``worst``: the programs of a worst-case input (e.g. every group active),
    run at the depths found to show that it does not deadlock (``FifoDepths.worst``, whose
    ``interval`` is the worst case's)."""
    fifos = len(programs) - 1
    free = simulate(programs, [UNBOUNDED] * fifos, chunk_transactions=chunk_transactions)
    if free.deadlock:
        raise PascalError(f"the stage programs deadlock even with unbounded FIFOs: "
                          f"{free.deadlock}")
    n = free.images
    goal = free.finish[-1]
    latency = free.latency.mean() if n else 0.0
    seen: dict[tuple[int, ...], Timing] = {}

    def run(depths: list[int]) -> Timing:
        key = tuple(depths)
        if key not in seen:
            seen[key] = simulate(programs, depths, chunk_transactions=chunk_transactions)
        return seen[key]

    def keeps(depths: list[int]) -> bool:
        t = run(depths)
        if t.deadlock:
            return False
        if not n:
            return True
        out = t.finish[-1]
        return out[0] == goal[0] and out[-1] == goal[-1] and t.latency.mean() <= latency

    depths = [max(2, occupancy) for occupancy in free.max_occupancy]
    if not keeps(depths):   # cannot be (see above)
        raise PascalError("FIFO sizing: the unbounded occupancies do not keep the timing")

    def keeps_at(f: int, depth: int) -> bool:
        return keeps(depths[:f] + [depth] + depths[f + 1:])

    for f in range(fifos):
        low, high, probe = 2, depths[f], 2
        while probe < high and not keeps_at(f, probe):   # doubling: 2, 4, 8, ...
            low, probe = probe + 1, 2 * probe
        if probe < high:
            high = probe
        while low < high:                                # the smallest in low..high
            middle = (low + high) // 2
            if keeps_at(f, middle):
                high = middle
            else:
                low = middle + 1
        depths[f] = high
    result = FifoDepths(depths)
    result.free = free
    result.timing = run(depths)
    if worst is not None:
        result.worst = simulate(worst, depths, chunk_transactions=chunk_transactions)
        if result.worst.deadlock:
            raise PascalError(f"the worst-case input deadlocks with FIFO depths {depths}: "
                              f"{result.worst.deadlock}")
    return result
