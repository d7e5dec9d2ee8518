"""`compile --target-fps F [--clock-mhz C]` and `--lut-budget N`: the folding search.

**Variables.** A folding is one G per stream class (pascal_fpga/hls/ARCHITECTURE.md: the word
between two layers carries G channels, G = the producer's PE = the consumer's SIMD; the first
stream's G is the first layer's SIMD), the classifier's PE, and per weighted layer its mode,
zero-skipping or dense. A layer that passes its G through ties its streams into one class: a
pool (its input and output), a residual block's fork (its input and both outputs), its add
(conv2's accumulators, the shortcut and its output; :func:`pascal_fpga.hw.apply.graph_folding`
forms the same classes). In a chain every class but a pool's is one stream; a weighted layer
reads one class and writes one (SIMD = the G of its input class, PE = that of its output class);
pools, forks and adds are folded {"pe": G, "simd": 1}. Candidate G are the divisors of the
class's channels (what PE and SIMD must divide anyway); foldings with a stream word or token
wider than 4096 bits are left out.

**Cost of a layer** for a candidate: each of its stages' MEAN busy cycles per image (slots +
``LOOP_OVERHEAD``, the stage programs of pascal_fpga/hls/ARCHITECTURE.md) on sample images, and its LUTs
(:mod:`pascal_fpga.hw.resources`, with its input FIFO as wide as the stream and the token FIFO).
A zero-skipping layer's cycles depend on its input activity (per channel: the level, i.e. the
frames carrying spikes) measured on the sample images and grouped by the candidate SIMD
(:meth:`~pascal_fpga.hw.layers.HWLayer.group_activity`); a dense-mode or QNN layer's cycles do
not depend on the data. The mean slots come in closed form from the activity sums, per window of
the feeder and of the MVU: conv feeder ``IN_H*IN_W*CF + sum_w (E_w + 1)``, vector feeder
``SF + 1``, MVU ``NF * sum_w (sum(active) + 1)`` (E_w: tokens sent, zero-skip: groups with
activity > 0); a group's share of ``sum_w`` is its activity times the number of windows that
cover its pixel, so the (N, windows, SF) arrays of :meth:`programs` are never built.
:func:`program_cycles` computes the same from the programs themselves (the tests check that
both agree). The input adapter (``PIXELS * C / G_0`` slots) and the output adapter
(``CLASSES / PE + CLASSES + 1``) are stages too, charged to the first layer and the classifier.
A fork and an add are one stage each, one slot per word (the fork ``IN_H*IN_W*C/G``, the add
``OUT_H*OUT_W*C/G``) + ``LOOP_OVERHEAD``, whatever the data; their LUTs (the add's two input
FIFOs) are :func:`~pascal_fpga.hw.resources.layer_resources`'s too.

**Objective.** ``target_fps``: every stage's mean busy cycles <= clock / F, least total LUT (the
layers, plus the classifier's output FIFO, which grows with its PE). The interval is the slowest
stage's, in a chain and in a graph with residual blocks alike: a fork and its join do not change
the steady-state bound, every stage still handles one image per interval (the FIFO depths, sized
afterwards on the design's edges, decide whether the pipeline gets there). A layer's cost depends
only on the G of its input and output classes, so a dynamic program over the layers in
topological order finds the exact minimum: its state is the G of every open class (one that a
layer already visited and a layer still to come touch: in a chain the stream between two layers,
i.e. the chain's one-G-per-stream program; in a residual block also the block's input class
until the last layer that reads it), ties broken by the sum of the stages' cycles. When no
folding meets the target, the fastest folding (the smallest largest-stage bound any folding
meets) at least LUT is returned and the rows say ``met: false``. ``lut_budget``: the highest
throughput (smallest largest-stage mean cycles) whose total LUT fits: a binary search over the
candidate stage cycles, each step the same dynamic program. Rows also give the worst case
(every group of every window active at T_in) of the chosen folding.

The QNN twin (``twin="qnn"``: multi-bit levels, one cycle per group, every group) gets its own
search with the same objective, so that the SNN and the QNN are compared each at its best.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import PascalError
from ..hw.backends.hls import DEFAULT_CLOCK_MHZ
from ..hw.design import Design, StreamClasses
from ..hw.layers import WORD_BITS_MAX, HWLayer
from ..hw.resources import layer_resources
from .estimates import input_adapter, output_adapter
from ..hw.schedule import LOOP_OVERHEAD

TWINS = ("snn", "qnn")
SNN_MODES = ("zero_skip", "dense")
TOLERANCE = 1e-9    # relative slack of a cycle bound


def divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


class LayerActivity:
    """One weighted layer's sampled lane activity, and per SIMD the mean over images of
    sum_w sum(active) and sum_w E_w (each group weighted by the windows that cover it)."""

    def __init__(self, layer, lanes: np.ndarray | None):
        self.layer = layer
        self.rows, self.cols = layer.coverage()
        self.lanes = None
        if lanes is not None:
            lanes = np.asarray(lanes)
            expected = (layer.in_h, layer.in_w, layer.in_channels)
            if lanes.ndim != 4 or tuple(lanes.shape[1:]) != expected:
                raise PascalError(f"layer {layer.name}: lane activity of shape "
                                  f"{tuple(lanes.shape)}, expected (N,) + {expected}")
            if len(lanes):
                self.lanes = lanes
        self.cache: dict[int, tuple[float, float]] = {}

    @property
    def sampled(self) -> bool:
        return self.lanes is not None

    def sums(self, simd: int) -> tuple[float, float]:
        """(mean sum_w sum(active), mean sum_w E_w) for this SIMD (zero-skip mode)."""
        if simd not in self.cache:
            cover = np.outer(self.rows, self.cols)                    # (H, W)
            cf = self.layer.in_channels // simd
            if self.lanes is None:      # no sample: the worst case, every group active at T_in
                groups = float(cover.sum() * cf)
                self.cache[simd] = (groups * self.layer.t_in, groups)
            else:
                n, h, w, c = self.lanes.shape
                groups = self.lanes if simd == 1 else \
                    self.lanes.reshape(n, h, w, cf, simd).max(axis=-1)
                active = groups.sum(axis=(0, 3), dtype=np.int64)
                emitted = np.count_nonzero(groups, axis=3).sum(axis=0, dtype=np.int64)
                self.cache[simd] = (float((active * cover).sum()) / n,
                                    float((emitted * cover).sum()) / n)
        return self.cache[simd]

    def worst(self, simd: int) -> tuple[float, float]:
        groups = float(np.outer(self.rows, self.cols).sum() * (self.layer.in_channels // simd))
        return groups * self.layer.t_in, groups


def stage_cycles(layer: HWLayer, mode: str, activity: LayerActivity | None = None,
                 worst: bool = False) -> dict[str, float]:
    """Mean busy cycles per image (slots + LOOP_OVERHEAD) of each stage of ``layer`` (folded as
    it is) in ``mode`` (:meth:`~pascal_fpga.hw.layers.HWLayer.stage_cycles`); zero-skip without
    ``activity`` takes the worst case, every group active."""
    if activity is None and layer.data_dependent(mode):
        activity = LayerActivity(layer, None)
    return layer.stage_cycles(mode, activity, worst)


def program_cycles(layer: HWLayer, lanes: np.ndarray | None, mode: str) -> dict[str, float]:
    """The same as :func:`stage_cycles`, from the layer's stage programs (slow; the reference)."""
    activity = None
    n = 1
    if layer.data_dependent(mode):
        activity = layer.group_activity(lanes)
        n = len(lanes)
    return {p.stage: float(p.slots.mean() + LOOP_OVERHEAD)
            for p in layer.programs(activity, n, mode)}


def input_cycles(design: Design, group: int) -> float:
    return float(design.pixels * (design.channels // group) + LOOP_OVERHEAD)


def output_cycles(design: Design, pe: int) -> float:
    classes = design.classifier.out_channels
    return float(classes // pe + classes + 1 + LOOP_OVERHEAD)


@dataclass
class _Option:
    """One folding of one layer: input G, output G (a weighted layer's PE), mode."""

    g_in: int
    g_out: int
    zero_skip: bool | None
    mode: str
    stages: dict[str, float]
    worst: dict[str, float]
    lut: int
    extra: int = 0            # LUTs outside the layer that come with it (the adapters, the
                              # output FIFO), so that the search's total is the design's

    @property
    def cycles(self) -> float:
        return max(self.stages.values())

    @property
    def cost(self) -> tuple[int, float]:
        return self.lut + self.extra, sum(self.stages.values())


@dataclass
class _Chain:
    """The candidates of every layer, by (input G, output G), and the stream classes they
    read and write (a chain: class j is the stream into layer j, the last the classifier's
    PE)."""

    design: Design
    twin: str
    classes: StreamClasses
    options: list[dict[tuple[int, int], list[_Option]]] = field(default_factory=list)

    def bounds(self) -> list[float]:
        return sorted({o.cycles for layer in self.options for opts in layer.values()
                       for o in opts})

    def solve(self, bound: float) -> tuple[tuple[int, float], list[_Option]] | None:
        """The least (LUT, cycles) folding whose every stage is within ``bound``: a dynamic
        program over the layers in order, its state the G of every open class."""
        bound = bound * (1 + TOLERANCE)  # a bound from clock / F is not exact in floating point
        classes = self.classes
        first = classes.of[0][0]
        frontier = [first]                              # the open classes, in a fixed order
        # state (G of each open class) -> ((LUT, cycles), the options so far, newest first)
        best: dict[tuple[int, ...], tuple[tuple[int, float], Any]] = {
            (g,): ((0, 0.0), None) for g in classes.groups(first)}
        for j, table in enumerate(self.options):
            c_in, c_out = classes.of[j]
            pos_in = frontier.index(c_in)
            pos_out = frontier.index(c_out) if c_out in frontier else None
            after = [c for c in frontier + ([] if pos_out is not None else [c_out])
                     if classes.last[c] > j]
            # the states by the G they give this layer's classes (an open output class: set)
            by_groups: dict[tuple[int, int | None], list[tuple[int, ...]]] = {}
            for state in best:
                key = (state[pos_in], None if pos_out is None else state[pos_out])
                by_groups.setdefault(key, []).append(state)
            nxt: dict[tuple[int, ...], tuple[tuple[int, float], Any]] = {}
            for (g_in, g_out), opts in table.items():
                states = by_groups.get((g_in, None if pos_out is None else g_out))
                if not states:
                    continue
                choice = next((o for o in opts if o.cycles <= bound), None)
                if choice is None:
                    continue
                for state in states:
                    groups = dict(zip(frontier, state))
                    groups[c_out] = g_out
                    key = tuple(groups[c] for c in after)
                    (lut, cyc), path = best[state]
                    cost = (lut + choice.cost[0], cyc + choice.cost[1])
                    if key not in nxt or cost < nxt[key][0]:
                        nxt[key] = (cost, (choice, path))
            best, frontier = nxt, after
            if not best:
                return None
        cost, path = min(best.values(), key=lambda entry: entry[0])
        options = []
        while path is not None:
            options.append(path[0])
            path = path[1]
        return cost, options[::-1]


def _options(design: Design, index: int, layer: HWLayer, g_ins: list[int], g_outs: list[int],
             modes: tuple[str, ...], activity: LayerActivity | None
             ) -> dict[tuple[int, int], list[_Option]]:
    """The candidates of layer ``index`` by (input G, output G), cheapest first."""
    table: dict[tuple[int, int], list[_Option]] = {}
    last = index == len(design.layers) - 1
    pool = layer.passes_group     # a pool, fork or add: its G passes through
    for g_in in g_ins:
        for g_out in ([g_in] if pool else g_outs):
            opts = []
            # a pool, fork or add has no mode of its own: the SNN's are equal ("dense"), the
            # QNN's is "qnn"
            for mode in (("qnn",) if modes == ("qnn",) else ("dense",)) if pool else modes:
                if pool:
                    folded, zero_skip = layer.folded(pe=g_in), None
                else:
                    zero_skip = mode == "zero_skip"
                    folded = layer.folded(pe=g_out, simd=g_in, zero_skip=zero_skip)
                if max(folded.mode_word_widths(mode).values()) > WORD_BITS_MAX:
                    continue
                stages = stage_cycles(folded, mode, activity)
                worst = stage_cycles(folded, mode, activity, worst=True)
                extra = 0
                if index == 0:   # the input adapter: its cycles and its LUTs
                    stages["input"] = worst["input"] = input_cycles(design, g_in)
                    extra += input_adapter(design, g_in)["LUT"]
                if last:         # the output adapter and the FIFO into it
                    stages["output"] = worst["output"] = output_cycles(design, g_out)
                    extra += output_adapter(design, folded)["LUT"]
                lut = layer_resources(folded, mode, folded.mode_input_bits(mode),
                                      layer.fifo_depth)["LUT"]
                opts.append(_Option(g_in, g_out, zero_skip, mode, stages, worst, lut, extra))
            if opts:
                opts.sort(key=lambda o: o.cost)
                table[(g_in, g_out)] = opts
    return table


def build_chain(design: Design, lanes: dict[str, np.ndarray] | None, twin: str = "snn",
                modes: tuple[str, ...] | None = None) -> _Chain:
    """Every layer's candidate foldings and their costs (the search's tables), for a chain or
    a graph with residual blocks (the name is historical)."""
    if twin not in TWINS:
        raise PascalError(f"twin {twin!r}: expected one of {', '.join(TWINS)}")
    if twin == "qnn":
        modes = ("qnn",)
    else:
        modes = tuple(modes or SNN_MODES)
        if not modes or set(modes) - set(SNN_MODES):
            raise PascalError(f"modes {modes!r}: expected some of {', '.join(SNN_MODES)}")
    lanes = lanes or {}
    layers = design.layers
    if design.channels != layers[0].in_channels:
        raise PascalError(f"layer {layers[0].name}: {layers[0].in_channels} input channels, the "
                          f"design's input has {design.channels}")
    classes = design.stream_classes
    chain = _Chain(design, twin, classes)
    for index, layer in enumerate(layers):
        activity = None
        if not layer.passes_group and "zero_skip" in modes:
            activity = LayerActivity(layer, lanes.get(layer.name))
        c_in, c_out = classes.of[index]
        table = _options(design, index, layer, classes.groups(c_in), classes.groups(c_out),
                         modes, activity)
        if not table:
            raise PascalError(f"layer {layer.name}: no folding keeps its words within "
                              f"{WORD_BITS_MAX} bits")
        chain.options.append(table)
    return chain


def _rows(chain: _Chain, path: list[_Option], budget_cycles: float | None,
          lut_budget: int | None, clock_mhz: float, sampled: dict[str, bool]
          ) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]]]:
    folding: dict[str, dict[str, Any]] = {}
    rows = []
    total = sum(o.lut + o.extra for o in path)
    for layer, option in zip(chain.design.layers, path):
        if layer.passes_group:
            folding[layer.name] = {"pe": option.g_in, "simd": 1}
        else:
            folding[layer.name] = {"pe": option.g_out, "simd": option.g_in,
                                   "zero_skip": bool(option.zero_skip)}
        cycles = option.cycles
        if budget_cycles is not None:
            met = cycles <= budget_cycles * (1 + TOLERANCE)
        else:
            met = lut_budget is None or total <= lut_budget
        rows.append({
            "layer": layer.name, "op": layer.op_type, "pe": folding[layer.name]["pe"],
            "simd": folding[layer.name]["simd"], "zero_skip": option.zero_skip,
            "mode": chain.twin if layer.passes_group else option.mode,
            "cycles": float(cycles),
            "stage_cycles": {k: float(v) for k, v in option.stages.items()},
            "worst_cycles": int(math.ceil(max(option.worst.values()))),
            "fps": clock_mhz * 1e6 / cycles,
            "lut": int(option.lut), "lut_outside": int(option.extra),
            "budget_cycles": budget_cycles, "lut_budget": lut_budget, "met": bool(met),
            "activity": ("sampled" if sampled.get(layer.name) else "worst case (no sample)")
            if option.mode == "zero_skip" else "data independent",
        })
    return folding, rows


def search_folding(design: Design, lanes: dict[str, np.ndarray] | None = None,
                   target_fps: float | None = None, lut_budget: int | None = None,
                   clock_mhz: float = DEFAULT_CLOCK_MHZ, twin: str = "snn",
                   modes: tuple[str, ...] | None = None
                   ) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]]]:
    """({layer: {"pe", "simd", "zero_skip"}} (pools, forks, adds: {"pe", "simd": 1}; the QNN
    twin's weighted layers: zero_skip False), one row per layer in the design's order: pe, simd,
    zero_skip, mode, cycles (its slowest stage's mean busy cycles per image, the adapters'
    included for the first layer and the classifier), stage_cycles, worst_cycles, fps, lut,
    budget_cycles, lut_budget, met).

    ``lanes``: {weighted layer name: (N, H, W, C) lane activity of sample images} (a zero-skip
    layer without a sample is costed at its worst case). ``target_fps``: least LUT with every
    stage within clock / F (missed: the fastest folding, rows with met False); ``lut_budget``:
    the highest throughput within the LUTs; with both, the target decides and ``met`` also needs
    the budget. ``twin``: "snn" (zero_skip or dense per layer; ``modes`` may restrict) or "qnn".
    """
    if target_fps is None and lut_budget is None:
        raise PascalError("the folding search needs a target (images/s) or a LUT budget")
    if target_fps is not None and not target_fps > 0:
        raise PascalError(f"--target-fps must be positive, got {target_fps}")
    if lut_budget is not None and not lut_budget > 0:
        raise PascalError(f"--lut-budget must be positive, got {lut_budget}")
    if not clock_mhz > 0:
        raise PascalError(f"--clock-mhz must be positive, got {clock_mhz}")
    chain = build_chain(design, lanes, twin, modes)
    sampled = {name: value is not None and len(value) > 0 for name, value in (lanes or {}).items()}
    bounds = chain.bounds()

    def smallest(ok) -> float:
        lo, hi = 0, len(bounds) - 1          # ok(bounds[-1]) holds (checked by the callers)
        while lo < hi:
            mid = (lo + hi) // 2
            if ok(bounds[mid]):
                hi = mid
            else:
                lo = mid + 1
        return bounds[lo]

    budget_cycles = None
    if target_fps is not None:
        budget_cycles = clock_mhz * 1e6 / target_fps
        solution = chain.solve(budget_cycles)
        if solution is None:   # missed: the fastest folding, least LUT
            solution = chain.solve(smallest(lambda b: chain.solve(b) is not None))
    else:
        loosest = chain.solve(bounds[-1])
        if loosest[0][0] > lut_budget:
            solution = loosest  # nothing fits: the smallest folding, met False
        else:
            solution = chain.solve(smallest(
                lambda b: (s := chain.solve(b)) is not None and s[0][0] <= lut_budget))
    return _rows(chain, solution[1], budget_cycles, lut_budget, clock_mhz, sampled)


def search_summary(rows: list[dict[str, Any]], clock_mhz: float = DEFAULT_CLOCK_MHZ
                   ) -> dict[str, Any]:
    """The chosen folding as a whole: its slowest stage (mean and worst case), images/s, LUT."""
    cycles = max(row["cycles"] for row in rows)
    worst = max(row["worst_cycles"] for row in rows)
    return {"cycles_per_image": cycles, "fps": clock_mhz * 1e6 / cycles,
            "worst_cycles_per_image": worst, "worst_fps": clock_mhz * 1e6 / worst,
            "lut": sum(row["lut"] + row["lut_outside"] for row in rows),
            "met": all(row["met"] for row in rows)}
