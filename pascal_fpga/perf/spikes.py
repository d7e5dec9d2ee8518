"""How far each layer's cycles are from what its spikes need: the spike bound (issue 24).

A weighted layer's MVU spends, per image, ``NF`` passes (its output channels over PE) over every
window; in each pass it spends on each input group that the feeder sends as many cycles as the
group's busiest lane has frames (zero-skipping: a group costs its busiest of SIMD lanes), and one
more slot per window for the window's end (the emit slot). What the spikes themselves need is
less: if every one of the SIMD lanes carried a spike in every cycle, a pass would take

    spike bound = (sum over the window's inputs of their spike-carrying frames) / SIMD

cycles, so NF times that per image. The ratio busy / bound says how much of the MVU's time
carries no spike: a group waiting for its busiest lane (``lane use`` below 1), the window's end
slots, groups sent with no spike. The dense (QNN-style) cost of the same pass, every group for
T_in frames, is the other end of the scale.

Counts come from the cycle model's datapath (:func:`pascal_fpga.perf.values.run_values`' input
activity per channel: each input's spike-carrying frames, its level for a thermometer train),
which the Verilator simulation reproduces cycle for cycle.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def spike_bound_rows(design, lanes: dict[str, np.ndarray],
                     busy: dict[str, float] | None = None) -> list[dict[str, Any]]:
    """Per weighted layer, means per image: ``mvu_busy_cycles`` (the cycle model's busy cycles
    of the layer's MVU stage, ``busy``, on its own schedule), ``schedule``, and what each
    schedule costs: ``zero_skip_cycles`` = ``data_cycles`` (each sent group's busiest lane's
    frames, times NF) + ``end_slots`` (one per window and pass), ``dense_cycles`` (every group
    for T_in frames, and the end slots); ``spike_bound_cycles``; ``busy_over_bound``;
    ``lane_use`` (spike-carrying lane-cycles over the lane-cycles of the zero-skipping data
    cycles) and ``groups_sent_share`` (groups with a spike over all)."""
    rows = []
    for layer in design.layers:
        if layer.name not in lanes or not hasattr(layer, "windows"):
            continue
        activity = lanes[layer.name]
        n = len(activity)
        groups = layer.group_activity(activity)            # (N, windows, SF): busiest lane
        per_lane = layer.group_activity(activity, simd=1)  # (N, windows, channels x taps)
        if groups is None or per_lane is None:
            continue
        nf, simd, windows = layer.nf, layer.simd, layer.windows
        data = nf * groups.reshape(n, -1).sum(axis=1).astype(np.float64)
        spikes = per_lane.reshape(n, -1).sum(axis=1).astype(np.float64)
        bound = nf * spikes / simd
        skipping = data + nf * windows
        dense = nf * (windows * layer.sf * layer.t_in + windows)
        mvu = (busy or {}).get(f"{layer.name}_mvu")
        mvu = float(skipping.mean()) if mvu is None else float(mvu)
        rows.append({
            "layer": layer.name, "schedule": layer.mode_of(None),
            "nf": nf, "simd": simd, "windows": windows, "t_in": layer.t_in,
            "mvu_busy_cycles": mvu,
            "zero_skip_cycles": float(skipping.mean()),
            "data_cycles": float(data.mean()),
            "end_slots": float(nf * windows),
            "spike_bound_cycles": float(bound.mean()),
            "busy_over_bound": float(mvu * n / bound.sum()) if bound.sum() else None,
            "lane_use": float(nf * spikes.sum() / (simd * data.sum())) if data.sum() else None,
            "groups_sent_share": float((groups > 0).mean()),
            "dense_cycles": float(dense),
        })
    return rows


def spike_bound_markdown(rows: list[dict[str, Any]]) -> list[str]:
    """The rows as a markdown table (lines)."""
    if not rows:
        return []
    lines = ["| layer | schedule | MVU busy | spike bound | busy / bound | zero-skip: data + "
             "end slots | lane use | groups sent | dense |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        ratio = "-" if r["busy_over_bound"] is None else f"{r['busy_over_bound']:.2f}x"
        use = "-" if r["lane_use"] is None else f"{100 * r['lane_use']:.1f}%"
        lines.append(f"| {r['layer']} | {r['schedule']} | {r['mvu_busy_cycles']:.0f} | "
                     f"{r['spike_bound_cycles']:.0f} | {ratio} | {r['data_cycles']:.0f} + "
                     f"{r['end_slots']:.0f} | {use} | {100 * r['groups_sent_share']:.1f}% | "
                     f"{r['dense_cycles']:.0f} |")
    return lines
