"""The cycle model's timing engine: each image's own, data-dependent timing through the FIFOs.

**Semantics** (cycle level). The design is a DAG of stages in topological order
(:meth:`Design.programs`: stage 0 the input adapter, the last the output adapter), joined by
FIFOs: FIFO ``f`` of depth ``D_f`` goes from stage ``edges[f][0]`` to a later stage
``edges[f][1]``; by default (``edges=None``) the design is the chain, FIFO ``f`` from stage ``f``
to ``f + 1``. Every stage but the input adapter reads at least one FIFO, every stage but the
output adapter writes at least one. A stage runs its images back to back, one slot per cycle:
without stalls, image ``i``'s slot ``s`` runs at ``base_i + s`` with ``base_0 = 0`` and
``base_{i+1} = base_i + slots_i + LOOP_OVERHEAD``. A *transaction* (one entry of a
:class:`Program`) is a slot that reads the stage's input FIFOs and/or writes its output FIFOs:
a *fork* (several outputs) writes its k-th written word to each of them in the same slot, a
*join* (several inputs, e.g. a residual add) reads the k-th word of each in the same slot. Per
FIFO, counting over all images,

- the r-th read of a FIFO at cycle t needs the producer's r-th write at a cycle <= t - 1;
- the w-th write at cycle t needs w < D, or the consumer's (w - D)-th read at a cycle <= t - 1;

and a transaction on several FIFOs needs all of their constraints.

A stall delays its slot and every later slot of the stage by the same amount (no reordering), so
over a stage's transactions in order, with ideal times ``g_k = base_{image_k} + offset_k`` and
``C_k`` the cycle the constraints above allow (the largest of them for a slot on several FIFOs):
``T_0 = max(g_0, C_0)``, ``T_k = max(T_{k-1} + g_k - g_{k-1}, C_k)``, i.e. the delay ``T - g`` is
the running maximum of ``C - g`` (a max-plus prefix scan: ``np.maximum.accumulate``). The delay
carries over from image to image; after an image's last transaction its remaining slots and the
overhead run without stalls, so the image's loop exits at ``base_{i+1} + delay``. The input
adapter's AXI side is always valid and the output adapter's always ready (neither is in the
programs). This is the model of :func:`pascal_fpga.perf.cyclesim.cycle_model`, per image.

**The fixed point.** For given times of the other stages, a stage's times are that one scan;
the stages constrain each other both ways (a read waits for its producer's write, a write for
its consumer's read D words back), so the times are a fixed point ``T = F(T)``. Every constraint
puts an event at least one cycle after another one, so whenever the times exist the events and
constraints form an acyclic graph and the fixed point is *unique*; ``F`` is monotone, so
iterating it from a lower bound rises to it, and an iteration that changes nothing has reached
it: the result is exact, however the iteration is ordered. Here the iteration is Gauss-Seidel:
sweeps over the stages in topological order, alternately forwards (starvation travels
downstream) and backwards (back-pressure travels upstream), each stage recomputed from the
newest times of its neighbours and only from its first slot whose constraint now exceeds its
delay (times only rise); a changed stage marks every neighbour it shares a FIFO with (its
producers and its consumers) from the first slot that depends on the change. It starts from a
lower bound: what is known from earlier chunks, the rest of the chunk unconstrained. It takes
about as many sweeps as the critical paths change direction between stages (a stall handed from
stage to stage and back), a few per image at depth 2.

**Depth 1.** Through a FIFO of one word, a write and the next write (a read and the next read)
are at least 2 cycles apart: the word had to be read in between. Where the next one is in the
next slot, that implied constraint is part of the stage's own scan (``delay_k >= delay_{k-1} +
1``, a running maximum of ``x - cumsum(step)``), so that the producer and the consumer of a
one-word FIFO, which hand a stall back and forth at every word, do not need a sweep per word
(per FIFO: a fork or a join with one such FIFO steps there).

**No deadlock in a chain.** Let every depth be >= 1 and every stream balanced (the consumer
reads no more words than the producer writes, and at most D fewer). Suppose the design got
stuck, some stage unfinished. The last unfinished stage is not waiting for room to write: it is
the output adapter (no FIFO to write), or its consumer has finished, having read all its words
but at most D. So it waits on a read, of a word not yet written: its input FIFO is empty. Its
producer still has that word to write (balance), and there is room for it (the FIFO is empty,
D >= 1), so the producer waits on a read of its own input FIFO, which is empty; and so on,
stage by stage, down to the input adapter, which reads no FIFO (its AXI input is always valid):
a contradiction. A depth below 1 or an unbalanced stream is reported as a deadlock naming the
FIFO (the arrays then hold -1), on a DAG too; so would be, as a guard only, an iteration that
does not converge within twice as many sweeps as the chunk has transactions.

**Deadlock on a DAG.** The proof does not carry over: a stuck stage waits on an empty input
(upstream) or a full output (downstream), and a waiting stage's producer or consumer is stuck
too, so the waits close a cycle of stages; two stages cannot wait on each other through one FIFO
(it is not both empty and full), so in a chain, whose stages form a tree, no such cycle exists,
but in a DAG one can go around a fork and a join. A residual block: the fork writes word k to
the main path and to the shortcut FIFO, and the add reads word k of both; if the main path
needs more words ahead (a 3 x 3 convolution reads rows ahead before its first output) than the
shortcut holds, the fork waits on the full shortcut, the add on the empty main path, the main
path on the fork: stuck, whatever the timing. A deadlock is a property of the transaction
sequences and depths alone: transaction k of a stage *needs* the write of each word it reads,
for a write of word w >= D the consumer's read of word w - D, and the transaction before it;
the design deadlocks iff these needs have a cycle. Over a stage's transactions up to k each need
is a monotone step function (the last transaction of the other stage needed), so along a closed
walk of stages their composition H has a cycle through k iff H(k) >= k. Where a cycle's walk
returns to a stage at an earlier transaction, leaving that loop out only needs more; where at a
later one, the loop is a shorter cycle: so every cycle of needs contains or needs a transaction
found, from its own stage, on a simple cycle of stages, and a cycle of two stages through one
FIFO never closes (the chain). :func:`_cyclic` enumerates the simple cycles of three or more
stages (in a design of residual blocks, two per block: few), composing the needs, vectorised
over the words of the first FIFO, and finds on each the first transaction of its lowest stage
on a cycle. A set of transactions that contains every transaction needed by one of it and no
cycle can be done in order of the needs (a stage may do its next transaction when each word it
reads has been written and each write has room given its consumer's reads, within the set); the
greatest such set below the transactions found (:func:`_prefix`) has none, as it would contain
what they need, and contains every set that can be done: it is the state the design gets stuck
in. There the cycle of
waits is walked, and the deadlock named by the FIFO that is full while its consumer waits on an
empty one: ``FIFO 7 (fork0 -> add0): deadlock: full at depth 4 while add0 waits on FIFO 6
(conv2_mvu -> add0), empty`` (any other full FIFO on the cycle follows: ``; also full: ...``).
All of it costs a few searches over the stages' transactions per cycle of stages (none for a
chain), against the guard's many sweeps.

**Chunks.** The transactions are cut into chunks: the input stage stops before some write, every
next stage in a chain before its read of the first word its producer has not written yet. Then
every constraint of a chunk points into the same or an earlier chunk (a read to its word's write,
a write to the read D words back), so the chunks are solved one after another, exactly, carrying
each stage's delay and each FIFO's last D read cycles across; a chunk may end inside an image. On
a DAG a join's read may be cut early by its other input, and then a producer's write would need
a read beyond its consumer's cut: the cuts are the greatest set of transactions closed under the
needs below the input stage's cut (:func:`_prefix`: each stage stops before a read of a word not
written and, backwards, before a write with no room given its consumer's reads, until nothing
changes); with no cycle of needs that set can be done, and a chunk's constraints still point into
the same or earlier chunks. Words written in one chunk may then be read in a later one, so a
FIFO also carries the write cycles of its words not yet read, and a FIFO's occupancy after a
write is counted once all earlier words' reads are known. Chunks of about ``CHUNK_TRANSACTIONS``
transactions (all stages together) make a few numpy calls per stage and sweep cover many
transactions; chunks are grouped into blocks of ``BLOCK_TRANSACTIONS`` whose constraints are
built at once, which bounds the memory. The result does not depend on either size
(tests/test_timing.py).

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


@dataclass
class _Graph:
    """The FIFOs between the stages: ``edges[f]`` = (producer, consumer) of FIFO ``f``; per
    stage the FIFOs it reads (``ins``) and writes (``outs``), in FIFO order. ``chain``: every
    stage has at most one of each (then FIFO f connects stage f to f + 1)."""

    edges: list[tuple[int, int]]
    ins: list[list[int]]
    outs: list[list[int]]
    chain: bool


def _graph(count: int, edges: list[tuple[int, int]] | None) -> _Graph:
    """The checked FIFO graph of ``count`` stages (``edges`` None: the chain)."""
    if edges is None:
        pairs = [(f, f + 1) for f in range(count - 1)]
    else:
        pairs = []
        for edge in edges:
            try:
                p, c = (int(x) for x in edge)
            except (TypeError, ValueError):
                raise ValueError(f"FIFO edge {edge!r}: not a (producer, consumer) pair") from None
            if not 0 <= p < c < count:
                raise ValueError(f"FIFO edge {edge!r}: needs 0 <= producer < consumer < {count} "
                                 f"(stages in topological order)")
            pairs.append((p, c))
    ins: list[list[int]] = [[] for _ in range(count)]
    outs: list[list[int]] = [[] for _ in range(count)]
    for f, (p, c) in enumerate(pairs):
        outs[p].append(f)
        ins[c].append(f)
    for s in range(count):
        if (s > 0 and not ins[s]) or (s < count - 1 and not outs[s]):
            raise ValueError(f"FIFO edges {pairs}: stage {s} has no input or no output FIFO "
                             f"(only the first stage reads none, only the last writes none)")
    chain = all(len(ins[s]) <= 1 and len(outs[s]) <= 1 for s in range(count))
    return _Graph(pairs, ins, outs, chain)


def _failed(names: list[str], depths: list[int], n: int, why: str) -> Timing:
    s = len(names)
    blank = np.full((s, n), -1, dtype=np.int64)
    return Timing(names, list(depths), n, blank, blank.copy(), blank.copy(), blank.copy(),
                  [0] * len(depths), np.zeros(s, dtype=np.int64), why)


def _fifo(names: list[str], graph: _Graph, f: int) -> str:
    p, c = graph.edges[f]
    return f"FIFO {f} ({names[p]} -> {names[c]})"


def simulate(programs: list[Program], depths: list[int], chunk: int | None = None,
             chunk_transactions: int | None = None,
             edges: list[tuple[int, int]] | None = None) -> Timing:
    """Every image's timing through the stages (see the module docstring) with FIFO ``f`` of
    depth ``depths[f]`` from stage ``edges[f][0]`` to stage ``edges[f][1]`` (``edges`` None: the
    chain, FIFO ``f`` from stage ``f`` to ``f + 1``). The images are processed in chunks of
    ``chunk`` images, or else of about ``chunk_transactions`` transactions (default
    ``CHUNK_TRANSACTIONS``; a chunk may end inside an image); the result does not depend on
    either. A design that deadlocks gives a Timing whose ``deadlock`` names the FIFO."""
    count = len(programs)
    names = [p.stage for p in programs]
    if count < 2:
        raise ValueError("a design has at least the input and the output stage")
    graph = _graph(count, edges)
    if len(depths) != len(graph.edges):
        raise ValueError(f"{len(depths)} FIFO depths for {len(graph.edges)} FIFOs")
    depths = [int(d) for d in depths]
    n = programs[0].images
    if any(p.images != n for p in programs):
        raise ValueError("the programs are for different numbers of images")
    stages = [_prepare(p, n) for p in programs]
    if len(stages[0].rpos) or len(stages[-1].wpos):
        raise ValueError("the input stage reads no FIFO and the output stage writes none")
    why = _check(stages, depths, graph)
    if why:
        return _failed(names, depths, n, why)
    if chunk is not None:
        starts = stages[0].wb[max(1, int(chunk))::max(1, int(chunk))]
        cuts = _splits(stages, starts[starts < len(stages[0].wpos)], graph, depths)
    else:
        cuts = _even_cuts(stages, int(chunk_transactions or CHUNK_TRANSACTIONS), graph, depths)
    total = np.array([s.count for s in stages], dtype=np.int64)
    bounds = np.concatenate([np.zeros((count, 1), dtype=np.int64), cuts, total[:, None]], axis=1)
    return _Engine(stages, depths, graph).run(bounds)


def _check(stages: list[_Stage], depths: list[int], graph: _Graph) -> str | None:
    """Why the design cannot run to the end (a FIFO named), or None: a depth below 1, an
    unbalanced stream, or (a DAG) a deadlock of the transaction sequences."""
    names = [s.name for s in stages]
    for f, (p, c) in enumerate(graph.edges):
        made, taken, depth = len(stages[p].wpos), len(stages[c].rpos), depths[f]
        why = None
        if depth < 1:
            why = f"depth {depth} holds no word"
        elif taken > made:
            why = f"{names[c]} reads {taken} words, {names[p]} writes only {made}"
        elif made > taken + depth:
            why = (f"{names[p]} writes {made} words, {names[c]} reads {taken}: the last "
                   f"{made - taken - depth} never fit")
        if why:
            return f"{_fifo(names, graph, f)}: {why}"
    if graph.chain:   # a chain never deadlocks (module docstring)
        return None
    cyclic = _cyclic(stages, depths, graph)
    if not cyclic:
        return None
    limits = np.array([[cyclic.get(s, stage.count)] for s, stage in enumerate(stages)],
                      dtype=np.int64)
    stuck = _prefix(stages, depths, graph, limits)[:, 0]
    return _stuck(stages, depths, graph, stuck)


# --- deadlock: cycles of needs -------------------------------------------------------------------

def _cyclic(stages: list[_Stage], depths: list[int], graph: _Graph) -> dict[int, int]:
    """Transactions on cycles of needs: for each simple cycle of stages, the first transaction of
    its lowest stage whose needs around it come back to it or later; per stage the first of
    those (stages without one are left out; an empty dict: no deadlock, as every cycle of needs
    contains or needs such a transaction). Transaction k of stage u *needs* (directly) the write
    of each word it reads (an arc from the consumer u to the producer) and, for a write of word
    w >= D to a FIFO of depth D, the consumer's read of word w - D (an arc from the producer to
    the consumer); and the transaction before it. Over transactions up to k those needs are
    monotone step functions of k, the last transaction of the other stage needed; along a
    closed walk of stages their composition H gives a cycle through transaction k iff H(k) >= k.
    Two stages needing each other through a FIFO never do (H(k) < k for D >= 1: the chain's
    proof); the simple cycles of three or more stages are enumerated (each from its lowest
    stage, through higher ones) with the composition carried along (module docstring)."""
    count = len(stages)
    # arcs[u][v]: u's transactions need v's: ("read", 0) or ("write", depth) (the shallowest of
    # parallel FIFOs needs the most)
    arcs: list[dict[int, tuple[str, int]]] = [{} for _ in range(count)]
    for f, (p, c) in enumerate(graph.edges):
        if len(stages[c].rpos):
            arcs[c][p] = ("read", 0)
        made, depth = len(stages[p].wpos), depths[f]
        if depth < made:
            old = arcs[p].get(c)
            arcs[p][c] = ("write", depth if old is None else min(old[1], depth))
    # a simple cycle of stages lies in one biconnected component of the (undirected) graph
    blocks = _blocks(count, {(p, c) for p, c in graph.edges})
    if not blocks:
        return {}
    counted: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def need(u: int, v: int, reading: bool, j: np.ndarray) -> tuple[bool, np.ndarray]:
        """The last transaction of v needed by u's transactions up to u's j-th read (reading)
        or write (j >= 0): v's read or write (reading), its index (-1: none). Each transaction
        is carried as its index among the stage's reads or writes: every need is a lookup."""
        if u not in counted:   # the reads up to each write, the writes up to each read
            st = stages[u]
            reads, writes = np.zeros(st.count, dtype=np.int64), np.zeros(st.count, dtype=np.int64)
            reads[st.rpos] = writes[st.wpos] = 1
            counted[u] = (np.cumsum(reads)[st.wpos], np.cumsum(writes)[st.rpos])
        kind, depth = arcs[u][v]
        if kind == "read":     # v's write of the last word u has read
            return False, (j if reading else counted[u][0][j] - 1)
        # v's read D words before the last word u has written
        return True, (counted[u][1][j] if reading else j + 1) - 1 - depth

    first: dict[int, int] = {}
    for block in blocks:
        for s in sorted(block):
            for v in (v for v in arcs[s] if v > s and v in block):
                # H is a step function, constant from each of the first arc's transactions to
                # the next: a cycle through one of those ranges passes its first one
                reading = arcs[s][v][0] == "read"
                start = stages[s].rpos if reading else stages[s].wpos
                stack = [(v, start, *need(s, v, reading, np.arange(len(start))), {s, v})]
                while stack:
                    u, k, kind, x, path = stack.pop()
                    live = x >= 0           # transactions that need nothing here need no more
                    k, x = k[live], x[live]
                    if not len(k):
                        continue
                    for w in arcs[u]:
                        if w == s and len(path) > 2:
                            back, y = need(u, s, kind, x)
                            hit = (y >= 0) & ((stages[s].rpos if back else stages[s].wpos)
                                              [np.maximum(y, 0)] >= k)
                            if hit.any():
                                at = int(k[int(hit.argmax())])
                                first[s] = min(first.get(s, at), at)
                        elif w > s and w in block and w not in path:
                            stack.append((w, k, *need(u, w, kind, x), path | {w}))
    return first


def _blocks(count: int, pairs: set[tuple[int, int]]) -> list[set[int]]:
    """The biconnected components of three or more stages of the undirected graph ``pairs``
    (Tarjan's algorithm): those with a cycle."""
    neighbours: list[set[int]] = [set() for _ in range(count)]
    for a, b in pairs:
        neighbours[a].add(b)
        neighbours[b].add(a)
    order, low = [-1] * count, [0] * count   # visiting order; the lowest reachable back
    edges: list[tuple[int, int]] = []
    blocks: list[set[int]] = []
    visited = iter(range(count))

    def visit(v: int, parent: int) -> None:
        order[v] = low[v] = next(visited)
        for w in sorted(neighbours[v]):
            if w == parent:
                continue
            if order[w] < 0:
                edges.append((v, w))
                visit(w, v)
                low[v] = min(low[v], low[w])
                if low[w] >= order[v]:   # v separates w's part: one component
                    block: set[int] = set()
                    while True:
                        edge = edges.pop()
                        block.update(edge)
                        if edge == (v, w):
                            break
                    if len(block) >= 3:
                        blocks.append(block)
            elif order[w] < order[v]:
                edges.append((v, w))
                low[v] = min(low[v], order[w])

    for v in range(count):
        if order[v] < 0:
            visit(v, -1)
    return blocks


def _stuck(stages: list[_Stage], depths: list[int], graph: _Graph, cut: np.ndarray) -> str:
    """The deadlock at the stuck state ``cut`` (each stage's transactions done): a cycle of
    stages each waiting on the next, named by a FIFO on it that is full while its consumer
    waits on an empty one."""
    names = [s.name for s in stages]
    written = [int(np.searchsorted(stages[p].wpos, cut[p])) for p, _ in graph.edges]
    read = [int(np.searchsorted(stages[c].rpos, cut[c])) for _, c in graph.edges]

    def waits(s: int) -> list[tuple[int, int, str]]:
        """(next stage, FIFO, 'full' / 'empty') that stage s's next transaction waits on."""
        k, st, result = int(cut[s]), stages[s], []
        if k >= st.count:
            return result
        at = int(np.searchsorted(st.wpos, k))
        if at < len(st.wpos) and st.wpos[at] == k:
            result += [(graph.edges[f][1], f, "full") for f in graph.outs[s]
                       if written[f] >= read[f] + depths[f]]
        at = int(np.searchsorted(st.rpos, k))
        if at < len(st.rpos) and st.rpos[at] == k:
            result += [(graph.edges[f][0], f, "empty") for f in graph.ins[s]
                       if written[f] <= read[f]]
        return result

    # every unfinished stage waits on another unfinished one: walk until a stage repeats
    s = min(s for s in range(len(stages)) if cut[s] < stages[s].count)
    walk: list[tuple[int, int, str]] = []
    seen: dict[int, int] = {}
    while s not in seen:
        seen[s] = len(walk)
        step = waits(s)
        if not step:   # cannot be (the stuck state is the greatest reachable one)
            return f"stage {names[s]}: deadlock"
        walk.append((s,) + step[0][1:])
        s = step[0][0]
    cycle = walk[seen[s]:]
    # a FIFO full while its consumer waits on an empty one (on a cycle of waits there is one:
    # full ones lead downstream, empty ones upstream)
    turn = next(i for i in range(len(cycle))
                if cycle[i][2] == "full" and cycle[(i + 1) % len(cycle)][2] == "empty")
    _, f, _ = cycle[turn]
    consumer, g, _ = cycle[(turn + 1) % len(cycle)]
    text = (f"{_fifo(names, graph, f)}: deadlock: full at depth {depths[f]} while "
            f"{names[consumer]} waits on {_fifo(names, graph, g)}, empty")
    others = [h for _, h, state in cycle[turn + 1:] + cycle[:turn] if state == "full"]
    if others:
        text += "; also full: " + ", ".join(f"{_fifo(names, graph, h)} at depth {depths[h]}"
                                            for h in others)
    return text


# --- chunks --------------------------------------------------------------------------------------

def _splits(stages: list[_Stage], words: np.ndarray, graph: _Graph,
            depths: list[int]) -> np.ndarray:
    """(stages, len(words)): chunk boundaries, in transactions of each stage, after ``words``
    writes of the input stage: the first stage stops before that write, each next one before
    the read of the first word its producer has not written yet (so every read's write, and
    every write's read D words back, is in the same or an earlier chunk). On a DAG that is the
    greatest such prefix (:func:`_prefix`)."""
    out = np.empty((len(stages), len(words)), dtype=np.int64)
    x = np.asarray(words, dtype=np.int64)
    if not graph.chain:
        out[:] = np.array([s.count for s in stages], dtype=np.int64)[:, None]
        out[0] = _at(stages[0].wpos, x, stages[0].count)
        return _prefix(stages, depths, graph, out)
    for k, s in enumerate(stages):
        if k == 0:
            cut = _at(s.wpos, x, s.count)
        else:
            cut = _at(s.rpos, x, s.count)
        out[k] = cut
        x = np.searchsorted(s.wpos, cut)
    return out


def _prefix(stages: list[_Stage], depths: list[int], graph: _Graph,
            cut: np.ndarray) -> np.ndarray:
    """The greatest prefixes (stages, columns) within ``cut`` (updated in place) in which every
    read's word is written and every write's read D words back is done: alternately, in
    topological order, each stage stops before the read of a word one of its producers has not
    written, and, backwards, before a write that its consumer's reads leave no room for, until
    nothing changes (times only fall). Without a cycle of needs (:func:`_cyclic`) the stages
    can get that far."""
    count = len(stages)
    while True:
        changed = False
        for c in range(1, count):
            for f in graph.ins[c]:
                p = graph.edges[f][0]
                bound = _at(stages[c].rpos, np.searchsorted(stages[p].wpos, cut[p]),
                            stages[c].count)
                if (bound < cut[c]).any():
                    np.minimum(cut[c], bound, out=cut[c])
                    changed = True
        for p in range(count - 2, -1, -1):
            for f in graph.outs[p]:
                c = graph.edges[f][1]
                if depths[f] >= len(stages[p].wpos):   # never blocks
                    continue
                bound = _at(stages[p].wpos, np.searchsorted(stages[c].rpos, cut[c]) + depths[f],
                            stages[p].count)
                if (bound < cut[p]).any():
                    np.minimum(cut[p], bound, out=cut[p])
                    changed = True
        if not changed:
            return cut


def _at(positions: np.ndarray, index: np.ndarray, end: int) -> np.ndarray:
    """positions[index], or ``end`` past the last."""
    if not len(positions):
        return np.full(len(index), end, dtype=np.int64)
    return np.where(index < len(positions), positions[np.minimum(index, len(positions) - 1)],
                    end)


def _even_cuts(stages: list[_Stage], target: int, graph: _Graph,
               depths: list[int]) -> np.ndarray:
    """Chunk boundaries of about ``target`` transactions (all stages together)."""
    words = len(stages[0].wpos)
    total = sum(s.count for s in stages)
    chunks = total // max(target, 1)
    if chunks < 2 or words < 2:
        return np.empty((len(stages), 0), dtype=np.int64)
    step = max(1, words // (16 * chunks))
    candidates = np.arange(step, words, step)
    sizes = _splits(stages, candidates, graph, depths).sum(axis=0)
    picks = np.unique(np.searchsorted(sizes, np.arange(1, chunks) * (total / chunks)))
    picks = picks[picks < len(candidates)]
    return _splits(stages, candidates[picks], graph, depths)


class _Engine:
    """The chunked fixed-point iteration (see the module docstring). A block of chunks is laid
    out stage by stage in flat arrays, every transaction's constraints given as the flat indices
    of the transactions it waits for (one array per input FIFO and per bounded output FIFO of
    its stage); what a block needs from earlier ones is each stage's delay, each FIFO's last D
    read cycles and (on a DAG) the write cycles of the words written but not yet read."""

    def __init__(self, stages: list[_Stage], depths: list[int], graph: _Graph):
        self.stages = stages
        self.depths = depths
        self.graph = graph
        self.names = [s.name for s in stages]
        count, fifos = len(stages), len(graph.edges)
        n = len(stages[0].slot0)
        self.n = n
        # a FIFO at least as deep as all its words never blocks: no constraint, no history
        self.bounded = [depths[f] < len(stages[p].wpos) for f, (p, _) in enumerate(graph.edges)]
        ones = [f for f in range(fifos) if depths[f] == 1 and self.bounded[f]]
        self.stepping = bool(ones)
        for s in stages:
            s.step = np.zeros(s.count, dtype=np.int64) if ones else None
        for f in ones:
            p, c = graph.edges[f]
            for s, where in ((stages[p], stages[p].wpos), (stages[c], stages[c].rpos)):
                # the next transaction, in the next slot, on the same FIFO
                follows = (np.diff(where) == 1) & (np.diff(s.ideal(where)) == 1)
                s.step[where[1:][follows]] = 1
        self.carry = np.zeros(count, dtype=np.int64)       # each stage's accumulated delay
        self.history = [_Queue() for _ in range(fifos)]   # each FIFO's last D read cycles
        self.written = [_Queue() for _ in range(fifos)]   # write cycles of the words not read
        self.pending = [_Queue() for _ in range(fifos)]   # reads not before the last write
        self.done = [0] * fifos      # reads before the last write counted
        self.counted = [0] * fifos   # writes whose occupancy is counted
        self.occupancy = [0] * fifos
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
        stages, depths, graph = self.stages, self.depths, self.graph
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
        # FIFOs of depth 1: a transaction right after one of the same kind on the same FIFO
        # (in the next slot) is at least 2 cycles after it (the word had to go through), so the
        # delay grows by one there (implied by the constraints; makes the fixed point fast)
        step = np.concatenate([s.step[a:b] for s, a, b in zip(stages, lo, hi)]) \
            if self.stepping else None
        grown = None
        floor = np.full(total, _NEG, dtype=np.int64)   # least delays known before the block
        floor[off[:-1][hi > lo]] = self.carry[hi > lo]  # the delay carried, and its step
        if step is not None:
            grown = np.concatenate([np.cumsum(step[off[k]:off[k + 1]])
                                    for k in range(count)])
            floor[off[:-1][hi > lo]] += step[off[:-1][hi > lo]]
        # a read: its word's write, one array per input FIFO of its stage (the i-th of each)
        after_write = [np.full(total, none, dtype=np.int64)
                       for _ in range(max(len(x) for x in graph.ins))]
        # a write: the read D words back, one array per bounded output FIFO of its stage
        after_read = [np.full(total, none, dtype=np.int64)
                      for _ in range(max(sum(self.bounded[f] for f in x) for x in graph.outs))]
        # per stage, the arrays of its constraints; and whom its changes concern: (stage, its
        # constrained slots, their sources here), both sorted
        sources: list[list[np.ndarray]] = [[] for _ in range(count)]
        marks: list[list[tuple[int, np.ndarray, np.ndarray]]] = [[] for _ in range(count)]
        ranges = []
        for s in range(count):
            sources[s] = after_write[:len(graph.ins[s])]
        for f, (p, c) in enumerate(graph.edges):
            ps, cs = stages[p], stages[c]
            wlo, whi = np.searchsorted(ps.wpos, [lo[p], hi[p]])
            rlo, rhi = np.searchsorted(cs.rpos, [lo[c], hi[c]])
            writes = off[p] + ps.wpos[wlo:whi] - lo[p]
            reads = off[c] + cs.rpos[rlo:rhi] - lo[c]
            ranges.append((wlo, whi, rlo, rhi, writes, reads))
            # reads of words written in an earlier block (a DAG: words rlo..wlo-1 wait inside)
            early = int(min(wlo, rhi) - rlo)
            if early > 0:
                at = reads[:early]
                inside = self.written[f].values()[:early]
                floor[at] = np.maximum(floor[at], inside + 1 - ideal[at])
            later, sourced = reads[early:], writes[:rhi - rlo - early]
            after_write[graph.ins[c].index(f)][later] = sourced
            marks[p].append((c, later, sourced))
            if not self.bounded[f]:
                continue
            slot = after_read[len(sources[p]) - len(graph.ins[p])]
            sources[p] = sources[p] + [slot]
            if whi == wlo:
                continue
            depth, hist = depths[f], self.history[f].values()
            need = np.arange(wlo, whi) - depth              # the read each write waits for
            old = (need >= 0) & (need < rlo)
            at = writes[old]
            floor[at] = np.maximum(floor[at], hist[need[old] - (rlo - len(hist))] + 1 - ideal[at])
            new = need >= rlo
            slot[writes[new]] = reads[need[new] - rlo]
            marks[c].append((p, writes[new], reads[need[new] - rlo]))
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
                    f = (graph.outs[stuck] or graph.ins[stuck])[0]
                    return f"{_fifo(self.names, graph, f)}: the timing does not converge"
                for s in (range(count) if sweeps % 2 else range(count - 1, -1, -1)):
                    u, w = since[s], end[s]
                    if u >= w:
                        continue
                    since[s] = w
                    self.iterations += 1
                    constraints = sources[s]
                    if constraints:
                        v = times[constraints[0][u:w]]
                        for more in constraints[1:]:
                            np.maximum(v, times[more[u:w]], out=v)
                        v += gap[u:w]
                        np.maximum(v, floor[u:w], out=v)
                    else:
                        v = floor[u:w].copy()
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
                    for t, slots, origins in marks[s]:
                        if seg[t] >= end[t]:
                            continue
                        i = int(origins.searchsorted(changed))
                        if i < len(slots):
                            since[t] = min(since[t], max(int(slots[i]), seg[t]))
        self._record(bounds, off, times, ranges)
        return None

    def _record(self, bounds, off, times, ranges) -> None:
        stages, graph = self.stages, self.graph
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
            if graph.ins[k]:
                where, t = at(s.q_read)
                self.first_read[k, s.i_read[where]] = t
            if graph.outs[k]:
                where, t = at(s.q_write)
                self.last_write[k, s.i_write[where]] = t
            self.carry[k] = times[off[k + 1] - 1] - s.ideal(hi[k] - 1)
        for f, (p, c) in enumerate(graph.edges):
            wlo, whi, rlo, rhi, writes, reads = ranges[f]
            w, r = times[writes], times[reads]
            # the words whose occupancy can be counted now: those all of whose earlier words'
            # reads are known (a read of a later word comes after the write), i.e. up to word
            # rhi, or all once the consumer has read its last word (in a chain: the block's)
            wlo_, whi_ = int(wlo), int(whi)
            a = self.counted[f]
            b = whi_ if rhi == len(stages[c].rpos) else min(whi_, int(rhi) + 1)
            if a < wlo_:   # words written in an earlier block, still inside
                w_count = np.concatenate([self.written[f].values()[a - rlo:min(b, wlo_) - rlo],
                                          w[:max(b - wlo_, 0)]])
            else:
                w_count = w[a - wlo_:b - wlo_]
            self.counted[f] = max(a, b)
            depth = self.depths[f]
            shallow = self.bounded[f] and depth <= _SHALLOW
            if shallow and len(w_count):
                # words inside just after the w-th write: w + 1 - the reads before it, which
                # are all of the first w - D + 1 and some of the next D - 1
                hist = self.history[f].values()
                near = np.concatenate([hist, r])          # reads rlo - len(hist) .. rhi - 1
                first = rlo - len(hist)
                word = np.arange(a, a + len(w_count))
                read = np.maximum(word - depth + 1, 0)
                for back in range(1, depth):
                    j = word - back - first
                    ok = (j >= 0) & (j < len(near))
                    read += ok & (near[np.clip(j, 0, max(len(near) - 1, 0))] < w_count) \
                        if len(near) else 0
                self.occupancy[f] = max(self.occupancy[f], int((word + 1 - read).max()))
            elif not shallow and len(w_count):
                # the same from the reads kept (those not before the last write) and the new
                pending = self.pending[f]
                pending.push(r)
                seen = pending.values()
                gone = int(seen.searchsorted(w_count[-1], side="left"))
                before = int(seen.searchsorted(w_count[0], side="left"))  # before every write
                inside = a + np.arange(1, len(w_count) + 1) - self.done[f] - before - \
                    seen[before:gone].searchsorted(w_count, side="left")
                self.occupancy[f] = max(self.occupancy[f], int(inside.max()))
                self.done[f] += gone
                pending.drop(gone)
            elif not shallow:
                self.pending[f].push(r)
            if self.bounded[f]:
                history = self.history[f]
                history.push(r)
                history.drop(len(history) - depth)
            # the write cycles of the words written but not read (words rhi .. whi - 1)
            written = self.written[f]
            if whi_ > rhi or len(written):
                written.push(w)
                written.drop(int(rhi - rlo))


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
               chunk_transactions: int | None = None,
               edges: list[tuple[int, int]] | None = None) -> FifoDepths:
    """The smallest FIFO depths (at least 2) that keep the timing of unbounded FIFOs on these
    programs: the first image's output and the last one's at the same cycles (so the same
    latency of the first image and the same mean interval), and a mean latency no longer. With
    unbounded FIFOs the largest occupancy of each FIFO is enough (the unbounded schedule then
    meets every constraint); each FIFO in turn is then made as shallow as keeps that timing, the
    others as found so far (a doubling search from 2, then a binary one; a deeper FIFO never
    delays an output). ``worst``: the programs of a worst-case input (e.g. every group active),
    run at the depths found to show that it does not deadlock (``FifoDepths.worst``, whose
    ``interval`` is the worst case's). ``edges``: the FIFOs' stages, as for :func:`simulate`.

    On a DAG a depth that keeps the timing may still deadlock: a probe that deadlocks does not
    keep, and neither does one at which ``worst`` deadlocks (checked without its timing; the
    search starts from the larger of both inputs' unbounded occupancies, which deadlocks
    neither), so the depths found deadlock on neither."""
    graph = _graph(len(programs), edges)
    fifos = len(graph.edges)
    free = simulate(programs, [UNBOUNDED] * fifos, chunk_transactions=chunk_transactions,
                    edges=edges)
    if free.deadlock:
        raise PascalError(f"the stage programs deadlock even with unbounded FIFOs: "
                          f"{free.deadlock}")
    n = free.images
    goal = free.finish[-1]
    latency = free.latency.mean() if n else 0.0
    seen: dict[tuple[int, ...], Timing] = {}
    occupancy = list(free.max_occupancy)
    worst_stages = None
    if worst is not None and not graph.chain:
        # a chain never deadlocks (module docstring); a DAG may, on the worst case too
        if len(worst) != len(programs):
            raise ValueError(f"{len(worst)} worst-case programs for {len(programs)} stages")
        worst_free = simulate(worst, [UNBOUNDED] * fifos, chunk_transactions=chunk_transactions,
                              edges=edges)
        if worst_free.deadlock:
            raise PascalError(f"the worst-case programs deadlock even with unbounded FIFOs: "
                              f"{worst_free.deadlock}")
        occupancy = [max(a, b) for a, b in zip(occupancy, worst_free.max_occupancy)]
        worst_stages = [_prepare(p, worst[0].images) for p in worst]

    def run(depths: list[int]) -> Timing:
        key = tuple(depths)
        if key not in seen:
            seen[key] = simulate(programs, depths, chunk_transactions=chunk_transactions,
                                 edges=edges)
        return seen[key]

    def keeps(depths: list[int]) -> bool:
        t = run(depths)
        if t.deadlock:
            return False
        if worst_stages is not None and _check(worst_stages, depths, graph):
            return False
        if not n:
            return True
        out = t.finish[-1]
        return out[0] == goal[0] and out[-1] == goal[-1] and t.latency.mean() <= latency

    depths = [max(2, o) for o in occupancy]
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
        result.worst = simulate(worst, depths, chunk_transactions=chunk_transactions,
                                edges=edges)
        if result.worst.deadlock:
            raise PascalError(f"the worst-case input deadlocks with FIFO depths {depths}: "
                              f"{result.worst.deadlock}")
    return result
