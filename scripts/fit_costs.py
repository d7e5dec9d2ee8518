"""Fit the per-module cost functions (:mod:`pascal_fpga.hw.costs`) on a module sweep.

    python scripts/fit_costs.py [--part xc7]      (or: python scripts/sweep_modules.py --fit)
    python scripts/fit_costs.py --validate BUILD...  (per layer: synthesized, old, fitted)

Reads ``pascal_fpga/hw/costs/sweep_<part>.json`` (scripts/sweep_modules.py), fits per module and
resource (LUT, FF) the coefficients of the module's structural features by non-negative least
squares on relative residuals (each point's row divided by max(count, 16): a small module's 20%
counts as much as a big one's), checks the structural BRAM18 / DSP rules against every point
and writes ``pascal_fpga/hw/costs/fit_<part>.json``: the coefficients, per module the points,
the mean and largest |relative error| of the fit, and the leave-one-out mean (how it predicts a
point it was not fitted on). Prints the table. Takes a second.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from scipy.optimize import nnls

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pascal_fpga.hw import costs  # noqa: E402

FLOOR = 16   # relative residuals over max(count, FLOOR)
PRIOR_WEIGHT = 0.5   # pull of a feature's prior coefficient (costs.PRIORS) against the data


def _solve(x: np.ndarray, y: np.ndarray, prior: np.ndarray | None = None) -> np.ndarray:
    """Non-negative least squares on relative residuals; features with a prior coefficient
    (one LUT per adder bit, ...) are pulled towards it where the points leave them loose."""
    w = 1.0 / np.maximum(y, FLOOR)
    a, b = x * w[:, None], y * w
    if prior is not None:
        rows = [i for i, v in enumerate(prior) if v is not None]
        if rows:
            # each prior row compares the feature's share of a typical point with its prior
            scale = np.array([np.median(a[:, i][a[:, i] > 0]) if np.any(a[:, i] > 0) else 0.0
                              for i in rows])
            extra = np.zeros((len(rows), x.shape[1]))
            for r, (i, sc) in enumerate(zip(rows, scale)):
                extra[r, i] = PRIOR_WEIGHT * sc
            a = np.vstack([a, extra])
            b = np.concatenate([b, [PRIOR_WEIGHT * sc * prior[i] for i, sc in zip(rows, scale)]])
    coef, _ = nnls(a, b)
    return coef


def fit_module(module: str, records: list[dict], key: str) -> dict:
    names = costs.FIT_FEATURES[module][key]
    x = np.array([[costs.features(module, r["params"])[n] for n in names] for r in records],
                 dtype=float)
    y = np.array([r[key] for r in records], dtype=float)
    priors = costs.PRIORS.get(module, {}).get(key, {})
    prior = [priors.get(n) for n in names]
    coef = _solve(x, y, prior)
    pred = x @ coef
    rel = np.abs(pred - y) / np.maximum(y, 1)
    loo = []
    if len(records) > len(names):
        for i in range(len(records)):
            keep = np.arange(len(records)) != i
            c = _solve(x[keep], y[keep], prior)
            loo.append(abs(float(x[i] @ c) - y[i]) / max(y[i], 1))
    worst = int(np.argmax(rel))
    return {"coef": {n: round(float(c), 6) for n, c in zip(names, coef) if c > 0},
            "mean_abs_rel_err": round(float(rel.mean()), 4),
            "max_abs_rel_err": round(float(rel.max()), 4),
            "loo_mean_abs_rel_err": round(float(np.mean(loo)), 4) if loo else None,
            "worst": {"params": records[worst]["params"], "synth": int(y[worst]),
                      "fit": round(float(pred[worst]), 1)}}


def check_structural(records: list[dict], part: str) -> list[str]:
    """The points where the BRAM18 / DSP rules miss (should be none)."""
    misses = []
    for r in records:
        b = costs.bram18(r["module"], r["params"], part)
        d = costs.dsp(r["module"], r["params"], part)
        if b != r["BRAM18"] or d != r["DSP"]:
            misses.append(f"{r['module']} {json.dumps(r['params'])}: BRAM18 {r['BRAM18']} "
                          f"(rule {b}), DSP {r['DSP']} (rule {d})")
    return misses


def fit_part(part: str) -> dict:
    sweep = json.loads((costs.COSTS_DIR / f"sweep_{part}.json").read_text())
    points = sweep["points"]
    out = {"part": part, "yosys": points[0].get("yosys") if points else None,
           "points": len(points), "cpu_seconds": round(sum(r["seconds"] for r in points), 1),
           "modules": {}}
    print(f"{part}: {len(points)} points, {out['cpu_seconds']:.0f} s of synthesis")
    print(f"{'module':20s} {'n':>4s}  {'LUT mean':>8s} {'max':>6s} {'loo':>6s}   "
          f"{'FF mean':>8s} {'max':>6s} {'loo':>6s}")
    for module in costs.MODULES:
        records = [r for r in points if r["module"] == module]
        if not records:
            print(f"{module:20s}    0  (no points)")
            continue
        entry = {"points": len(records)}
        for key in ("LUT", "FF"):
            entry[key] = fit_module(module, records, key)
        out["modules"][module] = entry
        lut, ff = entry["LUT"], entry["FF"]

        def pct(v):
            return "   -  " if v is None else f"{100 * v:5.1f}%"
        print(f"{module:20s} {len(records):4d}  {pct(lut['mean_abs_rel_err']):>8s} "
              f"{pct(lut['max_abs_rel_err'])} {pct(lut['loo_mean_abs_rel_err'])}   "
              f"{pct(ff['mean_abs_rel_err']):>8s} {pct(ff['max_abs_rel_err'])} "
              f"{pct(ff['loo_mean_abs_rel_err'])}")
    misses = check_structural(points, part)
    out["structural_misses"] = len(misses)
    for miss in misses:
        print("  BRAM18/DSP rule misses:", miss)
    print(f"BRAM18/DSP rules: {len(points) - len(misses)} of {len(points)} points exact")
    path = costs.fit_path(part)
    path.write_text(json.dumps(out, indent=1) + "\n")
    costs.load_fit.cache_clear()
    print(f"wrote {path}")
    return out


def _rel(est: int, syn: int) -> float:
    return (est - syn) / syn if syn else (0.0 if est == syn else float("inf"))


def validate(builds: list[str], part: str) -> None:
    """Per layer of each build: its wrapper in BUILD/rtl/layers.sv synthesized (as
    ``pascal-fpga synth`` does; cached in BUILD/synth/layers_<part>.json), against the old
    analytic estimate and the fitted one. One Yosys at a time; run it niced."""
    from pascal_fpga.buildfolder import load_build
    from pascal_fpga.hw import resources
    from pascal_fpga.hw.backends.rtl import MODULE_ORDER
    from pascal_fpga.hw.design import design_from_ir
    from pascal_fpga.hw.load import load_qonnx_ir
    from pascal_fpga.hw.synth import synthesize

    errs: dict[str, dict[str, list[float]]] = {w: {"LUT": [], "FF": []} for w in ("old", "new")}
    for build_dir in map(Path, builds):
        build = load_build(build_dir)
        design = design_from_ir(load_qonnx_ir(build_dir / build["ir"]))
        rtl = build_dir / "rtl"
        cache_path = build_dir / "synth" / f"layers_{part}.json"
        cache = json.loads(cache_path.read_text()) if cache_path.is_file() else {}
        modules = [rtl / "modules" / f"{m}.sv" for m in MODULE_ORDER]
        print(f"\n{build_dir.name} ({build.get('arch', 'snn')}): per layer, synthesized / old "
              f"estimate (error) / fitted estimate (error)")
        for j, layer in enumerate(design.layers):
            if layer.name not in cache:
                got = synthesize(rtl, modules + [rtl / "layers.sv"], f"layer{j}", part)
                cache[layer.name] = {k: got[k] for k in ("LUT", "FF", "BRAM18", "DSP")}
                cache_path.parent.mkdir(exist_ok=True)
                cache_path.write_text(json.dumps(cache, indent=1) + "\n")
            syn = cache[layer.name]
            mode = layer.mode_of(None)
            bits = layer.mode_input_bits(mode)
            old = resources.analytic_resources(layer, mode, bits, layer.fifo_depth)
            new = costs.layer_cost(layer, mode, bits, layer.fifo_depth, part)
            cells = []
            for key in ("LUT", "FF"):
                cells.append(f"{key} {syn[key]:5d} / {old[key]:5d} ({100 * _rel(old[key], syn[key]):+4.0f}%)"
                             f" / {new[key]:5d} ({100 * _rel(new[key], syn[key]):+4.0f}%)")
                errs["old"][key].append(abs(_rel(old[key], syn[key])))
                errs["new"][key].append(abs(_rel(new[key], syn[key])))
            for key in ("BRAM18", "DSP"):
                cells.append(f"{key} {syn[key]}/{old[key]}/{new[key]}")
            print(f"  {layer.name:12s} {mode:9s} " + "  ".join(cells))
    for which in ("old", "new"):
        for key in ("LUT", "FF"):
            e = errs[which][key]
            if e:
                print(f"{which} {key}: mean |error| {100 * sum(e) / len(e):.1f}%, largest "
                      f"{100 * max(e):.1f}%, within 20%: {sum(x <= 0.2 for x in e)} of {len(e)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", default="xc7", choices=("xc7", "ecp5-85k"))
    ap.add_argument("--validate", nargs="+", metavar="BUILD",
                    help="instead of fitting: each build's layers synthesized against the old "
                         "and the fitted estimate")
    args = ap.parse_args()
    if args.validate:
        validate(args.validate, args.part)
    else:
        fit_part(args.part)


if __name__ == "__main__":
    main()
