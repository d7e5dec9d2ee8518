#!/usr/bin/env python
"""Fit the analytic resource estimate's calibration constants to Yosys synthesis of the RTL.

The estimate itself is now the per-module cost functions fitted on synthesized module sweeps
(pascal_fpga/hw/costs.py; scripts/sweep_modules.py, scripts/fit_costs.py); this script
calibrates the analytic fallback (``resources.analytic_resources``, used when no fit file
exists), and its table shows how far that fallback is from synthesis.

    python scripts/calibrate_resources.py BUILD_DIR... [--synth] [--json OUT.json]

For every build (its BUILD/synth/synth.json from `pascal-fpga synth BUILD`, run here first with
--synth or when missing) each layer's synthesized xc7 LUT and FF counts are set against the
uncalibrated formula of pascal_fpga/hw/resources.py split into groups of parts (control, memory,
logic; see ``resources.part_group``), and one scale per group and resource is fitted by
non-negative least squares (residuals divided by the square root of the synthesized count, so
that large layers weigh more than tiny ones, not in proportion). Prints
the fitted constants (to copy into ``resources.CALIBRATION``) and, per layer, the synthesized
count beside the estimate before and after calibration (the uncalibrated formula, the fitted
one, and the one currently in resources.py).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from pascal_fpga.buildfolder import load_build
from pascal_fpga.errors import PascalError
from pascal_fpga.flows.synth import synth_build
from pascal_fpga.hw.design import design_from_ir
from pascal_fpga.hw.load import load_qonnx_ir
from pascal_fpga.hw.resources import (CALIBRATION, GROUPS, analytic_resources,
                                      part_group, resource_parts)

RESOURCES = ("LUT", "FF")


def _rows(build_dir: Path, synth: bool) -> list[dict]:
    report_path = build_dir / "synth" / "synth.json"
    if synth or not report_path.is_file():
        print(f"synthesizing {build_dir} (xc7, per layer)", file=sys.stderr, flush=True)
        report = synth_build(build_dir, "xc7", force=True, progress=True)
    else:
        report = json.loads(report_path.read_text())
    build = load_build(build_dir)
    design = design_from_ir(load_qonnx_ir(build_dir / build["ir"]))
    rows = []
    for layer, synthesized in zip(design.layers, report["layers"]):
        mode = layer.mode_of(None)
        bits = layer.mode_input_bits(mode)
        parts = resource_parts(layer, mode, bits, layer.fifo_depth)
        groups = {key: dict.fromkeys(GROUPS, 0) for key in RESOURCES}
        for part, values in parts.items():
            for key in RESOURCES:
                groups[key][part_group(part)] += values[key]
        rows.append({"build": build_dir.name, "layer": layer.name, "op": layer.op_type,
                     "pe": layer.pe, "simd": getattr(layer, "simd", 1),
                     "synth": synthesized["synth"], "groups": groups,
                     "current": analytic_resources(layer, mode, bits, layer.fifo_depth)})
    return rows


def _fit(rows: list[dict], key: str, power: float = 1.0) -> dict[str, float]:
    """Non-negative least squares of synth = sum_g c_g * group_g, each layer's residual divided
    by synth ** power (1: relative errors, every layer alike; 0.5: larger layers count more)."""
    a = np.array([[row["groups"][key][g] for g in GROUPS] for row in rows], dtype=float)
    y = np.array([row["synth"][key] for row in rows], dtype=float)
    weight = 1.0 / np.maximum(y, 1.0) ** power
    a, y = a * weight[:, None], y * weight
    active = [i for i in range(len(GROUPS)) if a[:, i].any()]
    while True:   # active-set NNLS for a handful of columns
        coef = np.zeros(len(GROUPS))
        if active:
            coef[active] = np.linalg.lstsq(a[:, active], y, rcond=None)[0]
        negative = [i for i in active if coef[i] < 0]
        if not negative:
            break
        active.remove(min(negative, key=lambda i: coef[i]))
    empty = [not a[:, i].any() for i in range(len(GROUPS))]   # no data: keep the formula
    return {g: 1.0 if e else round(float(c), 3) for g, c, e in zip(GROUPS, coef, empty)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("builds", nargs="+")
    parser.add_argument("--synth", action="store_true", help="synthesize again")
    parser.add_argument("--json", help="write the rows and constants here")
    parser.add_argument("--power", type=float, default=0.5,
                        help="residuals divided by synth ** POWER (1: relative, every layer "
                        "alike; default 0.5: larger layers count more)")
    args = parser.parse_args()
    try:
        rows = [row for b in args.builds for row in _rows(Path(b), args.synth)]
    except PascalError as exc:
        print(f"calibrate_resources: {exc}", file=sys.stderr)
        return 2
    fitted = {key: _fit(rows, key, args.power) for key in RESOURCES}
    print("fitted CALIBRATION = " + json.dumps(fitted))
    print(f"current CALIBRATION = {json.dumps(CALIBRATION)}")
    summary = {}
    print(f"\n{'build':<14} {'layer':<12} {'res':<4} {'synth':>7} {'raw':>7} {'fitted':>7} "
          f"{'current':>7}   errors raw / fitted / current")
    for key in RESOURCES:
        errors = {"raw": [], "fitted": [], "current": []}
        for row in rows:
            synth = row["synth"][key]
            raw = sum(row["groups"][key].values())
            fit = sum(fitted[key][g] * row["groups"][key][g] for g in GROUPS)
            cur = row["current"][key]
            rel = [(v - synth) / synth if synth else 0.0 for v in (raw, fit, cur)]
            for name, value in zip(errors, rel):
                errors[name].append(abs(value))
            row.setdefault("estimates", {})[key] = {"raw": raw, "fitted": round(fit),
                                                    "current": cur}
            print(f"{row['build'][:14]:<14} {row['layer'][:12]:<12} {key:<4} {synth:>7} "
                  f"{raw:>7} {fit:>7.0f} {cur:>7}   {rel[0]:+.0%} / {rel[1]:+.0%} / "
                  f"{rel[2]:+.0%}")
        summary[key] = {name: {"mean_abs": float(np.mean(v)), "max_abs": float(np.max(v))}
                        for name, v in errors.items()}
        print(f"  {key}: mean |error| raw {summary[key]['raw']['mean_abs']:.0%}, fitted "
              f"{summary[key]['fitted']['mean_abs']:.0%}, current "
              f"{summary[key]['current']['mean_abs']:.0%}")
    for key in ("BRAM18", "DSP"):   # counted structurally, not scaled: synthesized beside it
        synth = sum(row["synth"][key] for row in rows)
        est = sum(row["current"][key] for row in rows)
        differ = sum(row["synth"][key] != row["current"][key] for row in rows)
        print(f"  {key}: synthesized {synth}, estimated {est} over all layers; {differ} of "
              f"{len(rows)} layers differ")
        summary[key] = {"synth": synth, "estimate": est, "layers_differing": differ}
    if args.json:
        Path(args.json).write_text(json.dumps({"fitted": fitted, "summary": summary,
                                               "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
