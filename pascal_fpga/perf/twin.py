"""The FINN-style QNN twin at its own best folding: the figures ``compile --target-fps`` and
``simulate`` (pascal_fpga/flows/) set beside the SNN's."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..hw.design import Design
from .cyclesim import CycleReport, cycle_model, worst_case_programs
from .estimates import design_resources
from .folding import search_folding
from .timing import simulate, size_fifos
from .values import run_values


def qnn_twin(design: Design, target_fps: float, clock: float) -> dict[str, Any]:
    """The FINN-style QNN of the same network at its own best folding for ``target_fps``
    (perf/folding.py, mode "qnn"): its images/s (the cycle model on its data-independent
    schedule, FIFOs sized for it), its resources, and its folding."""
    folding, rows = search_folding(design, None, target_fps=target_fps, clock_mhz=clock,
                                   twin="qnn")
    twin = design.refolded(folding)
    programs = twin.programs({}, 4, mode="qnn")
    depths = size_fifos(programs, edges=twin.edges())
    timing = simulate(programs, depths, edges=twin.edges())
    interval = float(timing.interval[-1])
    resources = design_resources(twin, "qnn")
    lut = resources["total"]["LUT"]
    return {"images_per_s": clock * 1e6 / interval, "cycles_per_image": interval,
            "lut": lut, "images_per_s_per_klut": clock * 1e6 / interval / (lut / 1000),
            "resources": resources["total"], "layers": resources["layers"],
            "folding": folding, "target_fps": target_fps, "met": all(r["met"] for r in rows),
            "note": "FINN-style QNN of the same network: multi-bit levels, one cycle per input "
                    "group, at its own best folding for the target (fewest estimated LUTs)"}


def snn_at_folding(design: Design, images: np.ndarray, clock: float, backend: str = "hls"
                   ) -> CycleReport:
    """The cycle model of an SNN design on raw ``images`` with FIFOs sized for it on those
    images (and proven on the worst case), whatever depths its IR holds: the SNN beside a QNN
    twin's build, at the twin's folding."""
    lanes = run_values(design, images)[3]
    programs = design.programs(design.activity_from_lanes(lanes), len(images), backend=backend)
    depths = size_fifos(programs, worst_case_programs(design, backend=backend),
                        edges=design.edges())
    return cycle_model(design, images, clock, depths=depths, backend=backend)
