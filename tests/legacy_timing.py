"""The previous cycle model's engine (op lists of reads, writes and busy cycles, data independent),
kept as a second, independent reference for tests/test_timing.py."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

UNBOUNDED = 1 << 40


@dataclass
class Stage:
    """One stage's program for one image: ops ('R', n) n reads, ('W', n) n writes (one per cycle),
    ('C', n) n busy cycles; and its loop iteration counts (as the C simulation counts them)."""

    name: str
    ops: list[tuple[str, int]]
    iterations: dict[str, int]
    busy: int = 0

    def __post_init__(self):
        self.busy = sum(n for _, n in self.ops)


@dataclass
class LegacyTiming:
    images: int
    depths: list[int]                       # FIFO i connects stage i to stage i + 1
    finish: list[list[int]]                 # per stage, the cycle each image's program ended
    max_occupancy: list[int]
    stall: list[int]                        # cycles each stage spent blocked, over all images
    deadlock: bool = False

    @property
    def latency(self) -> int:
        """Cycles from the first input word to the end of the first image's output."""
        return self.finish[-1][0]

    @property
    def interval(self) -> int:
        """Steady-state cycles per image: between the last two images' outputs."""
        ends = self.finish[-1]
        return ends[-1] - ends[-2] if len(ends) > 1 else ends[0]


def simulate_timing(stages: list[Stage], images: int, depths: list[int]) -> LegacyTiming:
    """The transaction-level simulation of ``images`` images through the stages (see the module
    docstring); exact for the schedule, with back-pressure."""
    count = len(stages)
    fifos = count - 1
    writes: list[list[int]] = [[] for _ in range(fifos)]
    reads: list[list[int]] = [[] for _ in range(fifos)]
    time = [0] * count
    op_index = [0] * count
    image = [0] * count
    left = [stages[s].ops[0][1] for s in range(count)]
    finish: list[list[int]] = [[] for _ in range(count)]
    stall = [0] * count
    done = [False] * count
    while not all(done):
        progress = False
        for s in range(count):
            if done[s]:
                continue
            ops = stages[s].ops
            while True:
                kind, n = ops[op_index[s]]
                if kind == "C":
                    time[s] += left[s]
                    left[s] = 0
                elif kind == "R":
                    queue_w, queue_r = writes[s - 1], reads[s - 1]
                    while left[s]:
                        k = len(queue_r)
                        if k >= len(queue_w):
                            break
                        t = max(time[s], queue_w[k] + 1)
                        stall[s] += t - time[s]
                        queue_r.append(t)
                        time[s] = t + 1
                        left[s] -= 1
                        progress = True
                else:  # W
                    queue_w, queue_r, depth = writes[s], reads[s], depths[s]
                    while left[s]:
                        k = len(queue_w)
                        t = time[s]
                        if k >= depth:
                            if len(queue_r) <= k - depth:
                                break
                            t = max(t, queue_r[k - depth] + 1)
                        stall[s] += t - time[s]
                        queue_w.append(t)
                        time[s] = t + 1
                        left[s] -= 1
                        progress = True
                if left[s]:
                    break  # blocked on a FIFO
                op_index[s] += 1
                progress = True
                if op_index[s] == len(ops):
                    finish[s].append(time[s])
                    image[s] += 1
                    op_index[s] = 0
                    if image[s] == images:
                        done[s] = True
                        break
                left[s] = ops[op_index[s]][1]
        if not progress:
            return LegacyTiming(images, depths, finish, [0] * fifos, stall, deadlock=True)
    occupancy = []
    for f in range(fifos):
        w = np.asarray(writes[f])
        r = np.asarray(reads[f])
        # words in the FIFO just after each write: written so far minus read before that cycle
        inside = np.arange(1, len(w) + 1) - np.searchsorted(r, w, side="left")
        occupancy.append(int(inside.max()) if len(w) else 0)
    return LegacyTiming(images, depths, finish, occupancy, stall)


