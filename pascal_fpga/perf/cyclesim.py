"""The cycle-accurate model of the generated design (docs/design.md, section 4.7): values and
data-dependent timing.

**Values** (:mod:`.values`): every layer's output computed the way the hardware does, frame by
frame, with the parameters as the hardware layer classes pack them; ``verify`` compares them with
the IR (``cyclesim_vs_ir``).

**Timing**: each stage's schedule is its layer class's program (:meth:`HWLayer.programs`, slot by
slot: the loop the C simulation counts), built from each image's own input activity, so that a
zero-skipping layer costs each image what its spikes cost; :mod:`.timing` places every stream
transaction of every image in time against the FIFOs (back-pressure included). The report gives
the mean, p99 and worst interval and latency over the images simulated, and the worst case of
any input (every input group active: the dense schedule's count), which bounds them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import PascalError
from ..hw.design import Design
from .timing import Timing, simulate
from .values import run_values


def _stats(values: np.ndarray) -> dict[str, float]:
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return {"mean": None, "p99": None, "worst": None, "best": None}
    return {"mean": float(values.mean()), "p99": float(np.percentile(values, 99)),
            "worst": float(values.max()), "best": float(values.min())}


@dataclass
class CycleReport:
    accumulators: np.ndarray
    classes: np.ndarray
    levels: dict[str, np.ndarray]
    activity: dict[str, np.ndarray]
    timing: Timing
    worst_case: Timing
    programs: list
    clock_mhz: float
    lanes: dict | None = None   # each weighted layer's input activity per channel (run_values)

    def summary(self) -> dict[str, Any]:
        t, clock = self.timing, self.clock_mhz
        interval = t.interval if t.images > 1 else np.asarray([t.finish[-1][0] - t.start[0][0]])
        worst_interval = int(self.worst_case.finish[-1][-1] - self.worst_case.finish[-1][-2]) \
            if self.worst_case.images > 1 else int(self.worst_case.latency[0])
        stats = _stats(interval)
        latency = _stats(t.latency)
        return {
            "clock_mhz": clock,
            "timed_images": t.images,
            "interval_cycles": stats,
            "latency_cycles": latency,
            "worst_case_interval_cycles": worst_interval,
            "worst_case_latency_cycles": int(self.worst_case.latency[0]),
            "cycles_per_image": stats["mean"],
            "fps_mean": clock * 1e6 / stats["mean"],
            "fps_p99": clock * 1e6 / stats["p99"],
            "fps_worst_case": clock * 1e6 / worst_interval,
            "latency_us_mean": latency["mean"] / clock,
            "fifo_depths": list(t.depths),
            "fifo_max_occupancy": list(t.max_occupancy),
            "stages": [{"stage": p.stage, "busy_cycles_mean": float(p.slots.mean()),
                        "busy_cycles_max": int(p.slots.max()),
                        "reads_mean": float(p.reads.mean()), "writes_mean": float(p.writes.mean()),
                        "stall_cycles_mean": float(stall) / t.images}
                       for p, stall in zip(self.programs, t.stall)],
        }


def worst_case_programs(design: Design, images: int = 2, backend: str = "hls") -> list:
    """The programs of the worst input: every group of every window active for all T_in frames
    (the dense schedule's count, the largest any input can cost)."""
    return design.programs({}, images, mode="dense", backend=backend)


def cycle_model(design: Design, images: np.ndarray, clock_mhz: float,
                depths: list[int] | None = None, backend: str = "hls",
                edges: list[tuple[int, int]] | None = None) -> CycleReport:
    """Outputs and timing of the design on raw images (N, C, H, W), with the design's FIFO depths
    (or ``depths``), on the HLS project's schedule or (``backend="rtl"``) the RTL's. ``edges``:
    each FIFO's (producer, consumer) stages (None: the chain; :func:`.timing.simulate`)."""
    depths = design.fifo_depths() if depths is None else depths
    edges = design.edges() if edges is None else edges
    acc, classes, levels, lanes = run_values(design, images)
    activity = design.activity_from_lanes(lanes)
    programs = design.programs(activity, len(images), backend=backend)
    fifos = len(programs) - 1 if edges is None else len(edges)
    if len(depths) != fifos:
        raise PascalError(f"{len(depths)} FIFO depths for {fifos} FIFOs")
    timing = simulate(programs, depths, edges=edges)
    worst = simulate(worst_case_programs(design, backend=backend), depths, edges=edges)
    for t in (timing, worst):
        if t.deadlock:
            raise PascalError(f"the design deadlocks: {t.deadlock}")
    return CycleReport(acc, classes, levels, activity, timing, worst, programs, clock_mhz,
                       lanes)

