"""The timing engine (perf/timing.py) against a cycle-by-cycle reference, the old engine, itself
over chunk sizes, and the FIFO sizing."""

import re
import time

import numpy as np
import pytest

from pascal_fpga.hw.schedule import IDLE, LOOP_OVERHEAD, READ, READ_WRITE, WRITE, Program, \
    from_runs, mvu, vector_feed
from legacy_timing import Stage, simulate_timing
from pascal_fpga.perf.timing import UNBOUNDED, simulate, size_fifos

FIELDS = ("start", "finish", "first_read", "last_write", "stall")


# --- a slow reference: the semantics, one cycle at a time ----------------------------------------

def reference(programs: list[Program], depths: list[int], edges=None) -> dict:
    """Each cycle, each stage runs its current slot if the slot's FIFO transaction may happen
    (a read needs its word written at an earlier cycle, on every input FIFO of the stage; the
    w-th write needs w < D or the (w - D)-th read at an earlier cycle, on every output FIFO),
    else stalls; after an image's slots, LOOP_OVERHEAD idle cycles, then the next image.
    ``edges``: FIFO f from stage edges[f][0] to edges[f][1] (None: the chain). A cycle in which
    every unfinished stage stalls repeats forever: then the result is {"deadlock": ...}, with
    each stage's transactions done and what each blocked stage waits on."""
    count, n = len(programs), programs[0].images
    edges = [(f, f + 1) for f in range(count - 1)] if edges is None else list(edges)
    ins = [[f for f, (_, c) in enumerate(edges) if c == s] for s in range(count)]
    outs = [[f for f, (p, _) in enumerate(edges) if p == s] for s in range(count)]
    tx = [{(int(i), int(o)): (bool(r), bool(w)) for i, o, r, w in
           zip(p.image, p.offset, p.read, p.write)} for p in programs]
    writes = [[] for _ in edges]                # cycle of each write, per FIFO
    reads = [[] for _ in edges]
    image = [0] * count
    slot = [0] * count
    done = [0] * count                          # transactions done
    until = [None] * count                      # in the loop overhead until this cycle
    result = {key: np.full((count, n), -1, dtype=np.int64) for key in FIELDS[:-1]}
    stall = np.zeros(count, dtype=np.int64)
    cycle = 0

    def can_read(f):
        k = len(reads[f])
        return k < len(writes[f]) and writes[f][k] <= cycle - 1

    def can_write(f):
        k, d = len(writes[f]), depths[f]
        return k < d or (k - d < len(reads[f]) and reads[f][k - d] <= cycle - 1)

    while any(i < n for i in image):
        assert cycle < 10 ** 6, "the reference does not end"
        events = []
        moved = False
        waits = {}
        for s, p in enumerate(programs):
            while image[s] < n:
                i = image[s]
                if until[s] is not None:
                    if cycle < until[s]:
                        moved = True
                        break
                    result["finish"][s, i] = until[s]
                    moved = True
                    image[s] += 1
                    slot[s] = 0
                    until[s] = None
                    continue
                if p.slots[i] == 0:   # an image without slots: only the overhead
                    result["start"][s, i] = cycle
                    until[s] = cycle + LOOP_OVERHEAD
                    continue
                r, w = tx[s].get((i, slot[s]), (False, False))
                empty = [f for f in ins[s] if not can_read(f)] if r else []
                full = [f for f in outs[s] if not can_write(f)] if w else []
                if empty or full:
                    stall[s] += 1
                    waits[s] = [(f, "full") for f in full] + [(f, "empty") for f in empty]
                    break
                moved = True
                if slot[s] == 0:
                    result["start"][s, i] = cycle
                if r or w:
                    events.append((s, r, w))
                    done[s] += 1
                if r and result["first_read"][s, i] < 0:
                    result["first_read"][s, i] = cycle
                if w:
                    result["last_write"][s, i] = cycle
                slot[s] += 1
                if slot[s] == p.slots[i]:
                    until[s] = cycle + 1 + LOOP_OVERHEAD
                break
        if not moved:   # nothing happened: the next cycle sees the same
            return {"deadlock": waits, "done": done,
                    "words": [(len(writes[f]), len(reads[f])) for f in range(len(edges))]}
        for s, r, w in events:     # the cycle's transactions are seen from the next cycle on
            for f in ins[s] if r else []:
                reads[f].append(cycle)
            for f in outs[s] if w else []:
                writes[f].append(cycle)
        cycle += 1
    occupancy = []
    for f in range(len(edges)):
        w, r = np.array(writes[f]), np.array(reads[f])
        inside = np.arange(1, len(w) + 1) - np.searchsorted(r, w, side="left")
        occupancy.append(int(inside.max()) if len(w) else 0)
    result["stall"] = stall
    result["max_occupancy"] = occupancy
    return result


def program(name: str, slots: list[list[int]]) -> Program:
    """A program from each image's slot kinds (IDLE/READ/WRITE/READ_WRITE)."""
    image, offset, read, write = [], [], [], []
    for i, kinds in enumerate(slots):
        for o, kind in enumerate(kinds):
            if kind != IDLE:
                image.append(i)
                offset.append(o)
                read.append(kind in (READ, READ_WRITE))
                write.append(kind in (WRITE, READ_WRITE))
    as_int = lambda values: np.array(values, dtype=np.int64)  # noqa: E731
    return Program(name, as_int([len(k) for k in slots]),
                   as_int([sum(x in (READ, READ_WRITE) for x in k) for k in slots]),
                   as_int([sum(x in (WRITE, READ_WRITE) for x in k) for k in slots]),
                   as_int(image), as_int(offset), np.array(read, dtype=bool),
                   np.array(write, dtype=bool))


def random_chain(rng, stages: int, images: int) -> list[Program]:
    """Random stages whose streams balance image by image, with idle and read-write slots."""
    words = rng.integers(0, 7, size=(stages - 1, images))    # per FIFO and image
    programs = []
    for s in range(stages):
        per_image = []
        for i in range(images):
            r = int(words[s - 1, i]) if s > 0 else 0
            w = int(words[s, i]) if s < stages - 1 else 0
            both = int(rng.integers(0, min(r, w) + 1))
            kinds = [READ] * (r - both) + [WRITE] * (w - both) + [READ_WRITE] * both
            kinds += [IDLE] * int(rng.integers(0, 6))
            order = rng.permutation(len(kinds))
            # the reads (and writes) of a stage keep their order: only their kinds matter here
            per_image.append([kinds[j] for j in order])
        programs.append(program(f"s{s}", per_image))
    return programs


def same(timing, expected: dict) -> None:
    assert timing.deadlock is None
    for key in FIELDS:
        np.testing.assert_array_equal(getattr(timing, key), expected[key], err_msg=key)
    assert list(timing.max_occupancy) == expected["max_occupancy"]


def test_matches_the_cycle_by_cycle_reference():
    rng = np.random.default_rng(1)
    for case in range(300):
        stages, images = int(rng.integers(2, 6)), int(rng.integers(1, 6))
        programs = random_chain(rng, stages, images)
        depths = [int(d) for d in rng.integers(1, 7, size=stages - 1)]
        if case % 10 == 0:
            depths[int(rng.integers(0, stages - 1))] = UNBOUNDED
        expected = reference(programs, depths)
        same(simulate(programs, depths), expected)
        same(simulate(programs, depths, chunk=1), expected)
        same(simulate(programs, depths, chunk_transactions=int(rng.integers(1, 20))), expected)


def test_words_left_in_a_fifo():
    """A producer may write up to D words more than its consumer reads (they stay inside)."""
    producer = program("p", [[WRITE, IDLE, WRITE], [WRITE, WRITE, WRITE]])
    consumer = program("c", [[IDLE, READ, IDLE, IDLE], [READ, READ]])
    for depth in (2, 3):
        same(simulate([producer, consumer], [depth]), reference([producer, consumer], [depth]))


def test_malformed_programs_are_refused():
    good = program("p", [[WRITE, WRITE]])
    reader = program("c", [[READ, READ]])
    two_in_a_slot = Program("p", good.slots, good.reads, good.writes, np.array([0, 0]),
                            np.array([1, 1]), good.read, good.write)
    outside = Program("p", good.slots, good.reads, good.writes, good.image,
                      np.array([0, 2]), good.read, good.write)
    for bad in (two_in_a_slot, outside):
        with pytest.raises(ValueError):
            simulate([bad, reader], [2])
    with pytest.raises(ValueError):
        simulate([good, reader], [2, 2])                    # one depth per FIFO
    with pytest.raises(ValueError):
        simulate([good, program("c", [[READ], [READ]])], [2])   # other images


def test_by_hand():
    """A producer of 3 words and a consumer that reads one every 6 cycles (tests/test_cyclesim)."""
    producer = program("p", [[WRITE] * 3])
    consumer = program("c", [[READ] + [IDLE] * 5 + [READ] + [IDLE] * 5 + [READ]])
    # depth 1: w0 at 0; r0 at 1; w1 waits for r0: at 2; r1 at 7; w2 waits for r1: at 8;
    # r2 at 13; the consumer ends at 14 (+ the loop overhead), the producer at 9 (+)
    t = simulate([producer, consumer], [1])
    assert t.finish.tolist() == [[9 + LOOP_OVERHEAD], [14 + LOOP_OVERHEAD]]
    assert t.stall.tolist() == [(2 - 1) + (8 - 3), 1]   # r0 waits a cycle for w0
    assert t.first_read.tolist() == [[-1], [1]] and t.last_write.tolist() == [[8], [-1]]
    assert t.latency.tolist() == [14 + LOOP_OVERHEAD]
    t = simulate([producer, consumer], [3])
    assert t.finish.tolist() == [[3 + LOOP_OVERHEAD], [14 + LOOP_OVERHEAD]]
    assert t.max_occupancy == [2]   # w2 at 2 with r0 (at 1) gone


# --- the old engine's op lists -------------------------------------------------------------------

def from_ops(name: str, ops: list[tuple[str, int]], images: int) -> tuple[Stage, Program]:
    """An old-style stage (the same ops every image, ending in at least LOOP_OVERHEAD busy
    cycles) and the equivalent program (those last LOOP_OVERHEAD cycles are the overhead)."""
    kinds = {"R": READ, "W": WRITE, "C": IDLE}
    slots = [kinds[k] for k, n in ops for _ in range(n)]
    assert slots[-LOOP_OVERHEAD:] == [IDLE] * LOOP_OVERHEAD
    return Stage(name, ops, {}), program(name, [slots[:-LOOP_OVERHEAD]] * images)


@pytest.mark.parametrize("seed", range(6))
def test_reproduces_the_old_engine(seed):
    rng = np.random.default_rng(seed)
    stages = int(rng.integers(2, 6))
    words = rng.integers(1, 9, size=stages - 1)
    old, new = [], []
    for s in range(stages):
        ops = []
        r = int(words[s - 1]) if s > 0 else 0
        w = int(words[s]) if s < stages - 1 else 0
        while r or w:   # reads and writes in random runs, busy cycles between
            if r and (not w or rng.random() < 0.5):
                n = int(rng.integers(1, r + 1))
                ops.append(("R", n))
                r -= n
            else:
                n = int(rng.integers(1, w + 1))
                ops.append(("W", n))
                w -= n
            ops.append(("C", int(rng.integers(0, 4))))
        ops.append(("C", LOOP_OVERHEAD + int(rng.integers(0, 3))))
        ops = [op for op in ops if op[1]]
        stage, prog = from_ops(f"s{s}", ops, 5)
        old.append(stage)
        new.append(prog)
    for depths in ([UNBOUNDED] * (stages - 1), [int(d) for d in rng.integers(1, 5, stages - 1)]):
        before = simulate_timing(old, 5, depths)
        after = simulate(new, depths)
        assert not before.deadlock and after.deadlock is None
        assert after.finish.tolist() == before.finish
        assert after.stall.tolist() == before.stall
        assert after.max_occupancy == before.max_occupancy
        assert int(after.interval[-1]) == before.interval


# --- chunks --------------------------------------------------------------------------------------

def layered(images: int, seed: int = 0) -> list[Program]:
    """A small data-dependent design: input, a dense layer (feeder + MVU with zero-skipping),
    a classifier-like MVU of one fold, the output adapter."""
    rng = np.random.default_rng(seed)
    sf, folds = 12, 3
    active = rng.integers(0, 4, size=(images, 1, sf))
    emitted = active > 0
    programs = [from_runs("input", np.array([WRITE, IDLE]), np.tile([sf, 0], (images, 1))),
                vector_feed("fc_feed", emitted[:, 0, :]),
                mvu("fc_mvu", active, emitted, folds)]
    out = rng.integers(0, 2, size=(images, 1, folds)) + 1
    programs.append(vector_feed("cls_feed", np.ones((images, folds), dtype=bool)))
    programs.append(mvu("cls_mvu", out, np.ones((images, 1, folds), dtype=bool), 1))
    programs.append(from_runs("output", np.array([READ, IDLE]), np.tile([1, 11], (images, 1))))
    return programs


@pytest.mark.parametrize("depths", [[2] * 5, [1, 2, 1, 3, 1], [UNBOUNDED] * 5])
def test_chunks_do_not_change_the_result(depths):
    programs = layered(40)
    whole = simulate(programs, depths, chunk=40)
    assert whole.deadlock is None
    for kwargs in ({"chunk": 1}, {"chunk": 3}, {"chunk_transactions": 7},
                   {"chunk_transactions": 100}, {}):
        timing = simulate(programs, depths, **kwargs)
        for key in FIELDS:
            np.testing.assert_array_equal(getattr(timing, key), getattr(whole, key))
        assert timing.max_occupancy == whole.max_occupancy
    same(whole, reference(programs, depths))


def test_deadlocks_are_reported():
    producer = program("p", [[WRITE] * 5])
    consumer = program("c", [[READ] * 3])
    t = simulate([producer, consumer], [1])     # the 5th word never fits
    assert t.deadlock and "FIFO 0 (p -> c)" in t.deadlock
    assert (t.finish == -1).all()
    assert simulate([producer, consumer], [2]).deadlock is None   # two words stay inside
    t = simulate([program("p", [[WRITE] * 2]), consumer], [4])
    assert t.deadlock and "reads 3 words" in t.deadlock
    assert "depth 0" in simulate([producer, program("c", [[READ] * 5])], [0]).deadlock
    with pytest.raises(ValueError):
        simulate([consumer, producer], [2])     # the input stage reads no FIFO


# --- FIFO sizing ---------------------------------------------------------------------------------

def test_size_fifos_keeps_the_unbounded_timing():
    programs = layered(24, seed=3)
    depths = size_fifos(programs)
    free = simulate(programs, [UNBOUNDED] * 5)
    sized = simulate(programs, depths)
    assert all(d >= 2 for d in depths)
    assert sized.interval.mean() == free.interval.mean()
    assert sized.finish[-1][0] == free.finish[-1][0]
    assert sized.latency.mean() <= free.latency.mean()
    assert depths.timing.finish.tolist() == sized.finish.tolist()
    for f, depth in enumerate(depths):   # one word less slows it (where the search could go)
        if depth > 2:
            shallower = list(depths)
            shallower[f] -= 1
            t = simulate(programs, shallower)
            assert (t.finish[-1][0], t.finish[-1][-1]) != (free.finish[-1][0],
                                                           free.finish[-1][-1]) \
                or t.latency.mean() > free.latency.mean()


def test_a_too_shallow_fifo_slows_the_stream():
    # a bursty producer (8 words, then 8 idle cycles) and a steady consumer (a word every 2
    # cycles): the consumer keeps pace only if the FIFO absorbs the burst
    images = 6
    producer = program("p", [[WRITE] * 8 + [IDLE] * 8] * images)
    consumer = program("c", [[READ, IDLE] * 8] * images)
    depths = size_fifos([producer, consumer])
    free = simulate([producer, consumer], [UNBOUNDED])
    assert depths[0] > 2
    assert simulate([producer, consumer], depths).interval.mean() == free.interval.mean()
    slow = simulate([producer, consumer], [2])
    assert slow.interval.mean() >= free.interval.mean()
    assert slow.finish[-1][-1] > free.finish[-1][-1]
    # the worst case runs at the depths found
    depths = size_fifos([producer, consumer], worst=[producer, consumer])
    assert depths.worst is not None and depths.worst.deadlock is None


def test_summary():
    programs = layered(10)
    timing = simulate(programs, [2] * 5)
    summary = timing.summary(clock_mhz=200)
    assert summary["interval_cycles"]["mean"] == pytest.approx(timing.interval.mean())
    assert summary["latency_cycles"]["worst"] == int(timing.latency.max())
    assert summary["fps_mean"] == pytest.approx(200e6 / timing.interval.mean())
    assert summary["makespan_cycles"] == timing.finish[-1][-1] - timing.start[0][0]


# --- DAGs: forks and joins ----------------------------------------------------------------------

def random_dag(rng, stages: int) -> list[tuple[int, int]]:
    """Random FIFO edges (producer < consumer) in which every stage but the first reads and every
    stage but the last writes, with forks and joins; in random FIFO order."""
    edges = set()
    for c in range(1, stages):
        for p in rng.choice(c, size=min(c, int(rng.integers(1, 3))), replace=False):
            edges.add((int(p), c))
    for p in range(stages - 1):
        if not any(e[0] == p for e in edges):
            edges.add((p, int(rng.integers(p + 1, stages))))
    edges = sorted(edges)
    return [edges[j] for j in rng.permutation(len(edges))]


def random_programs(rng, stages: int, edges, images: int, words: int = 7) -> list[Program]:
    """Random stages on the DAG whose streams balance image by image: a stage writes the same
    words to all its outputs and reads the same from all its inputs, so every FIFO of a producer
    and every FIFO into its consumers carry one count (per image, random)."""
    parent = list(range(2 * stages))   # union-find over (stage, side): 2 s reads, 2 s + 1 writes

    def root(x):
        while parent[x] != x:
            x = parent[x]
        return x

    for p, c in edges:
        parent[root(2 * p + 1)] = root(2 * c)
    per_image = [[] for _ in range(stages)]
    for i in range(images):
        counts = {}
        for s in range(stages):
            r = counts.setdefault(root(2 * s), int(rng.integers(0, words))) if s > 0 else 0
            w = counts.setdefault(root(2 * s + 1), int(rng.integers(0, words))) \
                if s < stages - 1 else 0
            both = int(rng.integers(0, min(r, w) + 1))
            kinds = [READ] * (r - both) + [WRITE] * (w - both) + [READ_WRITE] * both
            kinds += [IDLE] * int(rng.integers(0, 5))
            per_image[s].append([kinds[j] for j in rng.permutation(len(kinds))])
    return [program(f"s{s}", per_image[s]) for s in range(stages)]


DEADLOCK = re.compile(r"^FIFO (\d+) \((\w+) -> (\w+)\): deadlock: full at depth (\d+) while "
                      r"(\w+) waits on FIFO (\d+) \((\w+) -> (\w+)\), empty")


def check_deadlock(message: str, expected: dict, names: list[str], edges, depths) -> None:
    """The engine's deadlock names a FIFO full while its writer is blocked on it (in the
    reference's stuck state), and its consumer blocked on the empty FIFO named."""
    match = DEADLOCK.match(message or "")
    assert match, message
    f, p, c, depth, waiter, g, gp, gc = match.groups()
    f, g = int(f), int(g)
    assert (names[edges[f][0]], names[edges[f][1]], int(depth)) == (p, c, depths[f])
    assert (names[edges[g][0]], names[edges[g][1]]) == (gp, gc) and waiter == c == gc
    waits = expected["deadlock"]
    assert (f, "full") in waits[edges[f][0]]
    assert (g, "empty") in waits[edges[f][1]]


def stuck_state(programs, depths, edges) -> list[int]:
    """The engine's stuck state (each stage's transactions done) when it deadlocks."""
    from pascal_fpga.perf.timing import _cyclic, _graph, _prefix, _prepare
    graph = _graph(len(programs), edges)
    stages = [_prepare(p, programs[0].images) for p in programs]
    cyclic = _cyclic(stages, depths, graph)
    limits = np.array([[cyclic.get(s, st.count)] for s, st in enumerate(stages)])
    return _prefix(stages, depths, graph, limits)[:, 0].tolist()


def test_dags_match_the_cycle_by_cycle_reference():
    """Random DAGs with forks and joins, random depths (1 and 2 often): the engine equals the
    reference in every field, whatever the chunks, or both deadlock, in the same state, and the
    engine names a FIFO that is full while its consumer waits on an empty one."""
    rng = np.random.default_rng(7)
    outcomes = {"runs": 0, "deadlocks": 0}
    for case in range(300):
        stages, images = int(rng.integers(3, 8)), int(rng.integers(1, 5))
        edges = random_dag(rng, stages)
        programs = random_programs(rng, stages, edges, images)
        depths = [int(d) for d in rng.choice([1, 2, 2, 3, 4, 6, 9], size=len(edges))]
        if case % 7 == 0:
            depths[int(rng.integers(0, len(edges)))] = UNBOUNDED
        expected = reference(programs, depths, edges)
        timing = simulate(programs, depths, edges=edges)
        if "deadlock" in expected:
            outcomes["deadlocks"] += 1
            check_deadlock(timing.deadlock, expected, [p.stage for p in programs], edges, depths)
            assert stuck_state(programs, depths, edges) == expected["done"]
            assert (timing.finish == -1).all() and len(timing.max_occupancy) == len(edges)
            continue
        outcomes["runs"] += 1
        same(timing, expected)
        same(simulate(programs, depths, chunk=1, edges=edges), expected)
        for _ in range(2):
            size = int(rng.integers(1, 30))
            same(simulate(programs, depths, chunk_transactions=size, edges=edges), expected)
    assert min(outcomes.values()) > 40, outcomes


def test_blocks_do_not_change_the_result(monkeypatch):
    """Blocks of a few transactions: what a block carries to the next (each stage's delay, with
    its depth-1 step; each FIFO's last reads and, on a DAG, the words written but not read)."""
    from pascal_fpga.perf import timing as engine
    rng = np.random.default_rng(5)
    for case in range(120):
        stages, images = int(rng.integers(3, 7)), int(rng.integers(1, 5))
        if case % 2:
            edges = None
            programs = random_chain(rng, stages, images)
        else:
            edges = random_dag(rng, stages)
            programs = random_programs(rng, stages, edges, images, words=9)
        fifos = stages - 1 if edges is None else len(edges)
        depths = [int(d) for d in rng.choice([1, 1, 2, 3, 5, 12, UNBOUNDED], size=fifos)]
        expected = reference(programs, depths, edges)
        if "deadlock" in expected:
            continue
        for block in (1, int(rng.integers(2, 40))):
            monkeypatch.setattr(engine, "BLOCK_TRANSACTIONS", block)
            for kwargs in ({"chunk": 1}, {"chunk_transactions": int(rng.integers(1, 20))}):
                same(simulate(programs, depths, edges=edges, **kwargs), expected)


def test_chain_edges_are_the_chain():
    rng = np.random.default_rng(3)
    programs = random_chain(rng, 5, 4)
    depths = [1, 2, 3, 2]
    a = simulate(programs, depths)
    b = simulate(programs, depths, edges=[(f, f + 1) for f in range(4)])
    for key in FIELDS:
        np.testing.assert_array_equal(getattr(a, key), getattr(b, key))
    assert a.max_occupancy == b.max_occupancy


def test_bad_edges_are_refused():
    producer, fork = program("p", [[WRITE] * 2]), program("f", [[READ_WRITE] * 2])
    consumer = program("c", [[READ] * 2])
    three = [producer, fork, consumer]
    for edges in ([(0, 1)], [(0, 1), (2, 1)], [(0, 1), (1, 1)], [(0, 2), (1, 2)],
                  [(0, 1), (1, 3)], [(0, 1), (1,)], [(0, 1), "ab"]):
        with pytest.raises(ValueError):
            simulate(three, [2] * len(edges), edges=edges)
    with pytest.raises(ValueError):
        simulate(three, [2, 2, 2], edges=[(0, 1), (1, 2)])   # one depth per FIFO
    # parallel FIFOs between two stages are a fork and a join
    edges = [(0, 1), (1, 2), (1, 2)]
    same(simulate(three, [2, 2, 1], edges=edges), reference(three, [2, 2, 1], edges))


def residual(images: int, lookahead: int = 3, words: int = 16) -> tuple[list[Program], list]:
    """A residual block: input -> fork0; fork0 -> conv1_feed -> conv1_mvu -> conv2_feed ->
    conv2_mvu -> add0 (the main path: each feed writes its word k after reading word
    k + ``lookahead``); fork0 -> add0 (the shortcut, FIFO 6); add0 -> output."""
    def feed(name):
        return program(name, [[READ] * lookahead + [READ_WRITE] * (words - lookahead) +
                              [WRITE] * lookahead] * images)

    programs = [program("input", [[WRITE] * words] * images),
                program("fork0", [[READ_WRITE] * words] * images),
                feed("conv1_feed"), program("conv1_mvu", [[READ_WRITE, IDLE] * words] * images),
                feed("conv2_feed"), program("conv2_mvu", [[READ_WRITE, IDLE] * words] * images),
                program("add0", [[READ_WRITE] * words] * images),
                program("output", [[READ, IDLE] * words] * images)]
    edges = [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5), (5, 6), (1, 6), (6, 7)]
    return programs, edges


def test_a_too_shallow_shortcut_deadlocks():
    """The fork writes 2 * lookahead + 1 words before add0 can read its first: a shortcut FIFO
    shallower than that deadlocks, and the message names it; the depths size_fifos finds do
    not deadlock (nor on a worst case with a longer lookahead)."""
    programs, edges = residual(3)
    depths = [4] * 8
    t = simulate(programs, depths, edges=edges)
    assert t.deadlock == ("FIFO 6 (fork0 -> add0): deadlock: full at depth 4 while add0 waits "
                          "on FIFO 5 (conv2_mvu -> add0), empty")
    assert (t.finish == -1).all()
    expected = reference(programs, depths, edges)
    check_deadlock(t.deadlock, expected, [p.stage for p in programs], edges, depths)
    assert simulate(programs, depths[:6] + [7, 4], edges=edges).deadlock is None
    assert simulate(programs, depths[:6] + [6, 4], edges=edges).deadlock == t.deadlock.replace(
        "depth 4", "depth 6")
    for chunks in ({"chunk": 1}, {"chunk_transactions": 5}):
        assert simulate(programs, depths, edges=edges, **chunks).deadlock == t.deadlock
    sized = size_fifos(programs, edges=edges)
    assert sized[6] >= 7
    timing = simulate(programs, sized, edges=edges)
    assert timing.deadlock is None
    same(timing, reference(programs, list(sized), edges))
    free = simulate(programs, [UNBOUNDED] * 8, edges=edges)
    assert timing.finish[-1][-1] == free.finish[-1][-1]
    worst, _ = residual(2, lookahead=5)
    sized = size_fifos(programs, worst=worst, edges=edges)
    assert sized[6] >= 11 and sized.worst.deadlock is None
    assert simulate(worst, sized, edges=edges).deadlock is None


def test_size_fifos_never_deadlocks_on_dags():
    rng = np.random.default_rng(11)
    for case in range(40):
        stages = int(rng.integers(3, 7))
        edges = random_dag(rng, stages)
        programs = random_programs(rng, stages, edges, int(rng.integers(1, 4)))
        worst = random_programs(rng, stages, edges, 2) if case % 2 else None
        depths = size_fifos(programs, worst=worst, edges=edges)
        assert all(d >= 2 for d in depths)
        assert "deadlock" not in reference(programs, list(depths), edges)
        if worst is not None:
            assert depths.worst.deadlock is None
            assert "deadlock" not in reference(worst, list(depths), edges)
        free = simulate(programs, [UNBOUNDED] * len(edges), edges=edges)
        assert depths.timing.finish[-1][-1] == free.finish[-1][-1]


# --- speed (run this file as a script for the measurement) ---------------------------------------

def synthetic(images: int, fold: int = 1, seed: int = 0) -> list[Program]:
    """A design of fmnist size (28 x 28 input, two 3 x 3 convolutions, pooling, two dense
    layers) with random spike activity, every PE and SIMD = ``fold``: at fold 1, 1.4e5
    transactions per image, 1e4-3e4 in each large stage; at fold 8, 2.3e4."""
    from pascal_fpga.hw.layers import ClassifierLayer, ConvLayer, DenseLayer, PoolLayer
    from pascal_fpga.hw.design import Design

    def layer(cls, name, in_shape, out_shape, pe, simd, t_in, k=1, stride=1, pad=0):
        item = object.__new__(cls)
        item.name, item.in_shape, item.out_shape = name, in_shape, out_shape
        item.pe, item.simd, item.t_in, item.zero_skip = pe, simd, t_in, True
        item.fifo_depth = item.token_depth = 2
        item.in_channels, item.out_channels = in_shape[0], out_shape[0]
        item.in_h, item.in_w = (in_shape[1], in_shape[2]) if len(in_shape) == 3 else (1, 1)
        item.out_h, item.out_w = (out_shape[1], out_shape[2]) if len(out_shape) == 3 else (1, 1)
        item.kernel, item.stride, item.pad = k, stride, pad
        return item

    g = fold
    layers = [layer(ConvLayer, "conv1", [1, 28, 28], [32, 28, 28], g, 1, 1, k=3, pad=1),
              layer(PoolLayer, "pool1", [32, 28, 28], [32, 14, 14], g, g, 8, k=2, stride=2),
              layer(ConvLayer, "conv2", [32, 14, 14], [64, 14, 14], g, g, 8, k=3, pad=1),
              layer(PoolLayer, "pool2", [64, 14, 14], [64, 7, 7], g, g, 8, k=2, stride=2),
              layer(DenseLayer, "fc1", [64, 7, 7], [128], g, g, 8),
              layer(ClassifierLayer, "fc2", [128], [10], 10 if g > 1 else 1, g, 2)]
    design = Design(layers, 1, 28, 28, 8)
    rng = np.random.default_rng(seed)
    activity = {}
    for item in layers:
        if not isinstance(item, PoolLayer):
            shape = (images, item.windows, item.sf)
            level = rng.integers(1, item.t_in + 1, size=shape)
            activity[item.name] = np.where(rng.random(shape) < 0.3, level, 0)
    return design.programs(activity, images)


def test_a_synthetic_fmnist_size_design_runs_without_deadlock():
    programs = synthetic(4)
    timing = simulate(programs, [2] * (len(programs) - 1))
    assert timing.deadlock is None


if __name__ == "__main__":   # python tests/test_timing.py [images [fold]]: the engine's speed
    import sys

    count = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    fold = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    programs = synthetic(count, fold)
    transactions = sum(len(p.image) for p in programs)
    print(f"{count} images, fold {fold}: {transactions / count:.0f} transactions per image, "
          f"{len(programs)} stages")
    sized = size_fifos(synthetic(16, fold))
    fifos = len(programs) - 1
    for depths in ([2] * fifos, list(sized), [UNBOUNDED] * fifos):
        started = time.perf_counter()
        timing = simulate(programs, depths)
        seconds = time.perf_counter() - started
        print(f"depths {depths if depths[0] < UNBOUNDED else 'unbounded'}: {seconds:.2f} s, "
              f"{count / seconds:.0f} images/s, {transactions / seconds:.3g} transactions/s, "
              f"mean interval {timing.interval.mean():.0f} cycles")
