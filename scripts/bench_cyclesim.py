#!/usr/bin/env python
"""The SNN (dense and zero-skipping schedules) beside its FINN-style QNN twin, each at its own best
folding for one target; and the cycle model's own speed.

    python scripts/bench_cyclesim.py MODEL.onnx [--target-fps 10000] [--clock-mhz 200]
        [--images 1000] [--dataset fashion-mnist] [--random] [--out DIR]

Side by side in one run, on the same test images: the model is compiled twice with
``--target-fps`` (the folding search: the SNN with every weighted layer dense, then with the
search free to pick zero-skipping per layer), the cycle model runs each build on the images
(each image's own timing: mean, p99 and the worst case of any input), and the QNN twin gets its
own folding search for the same target (perf/folding.py, mode "qnn"). The figure of merit is
images/s per estimated kLUT (hw/resources.py: an analytical model, not synthesis). The cycle
model's images/s (values and data-dependent timing) is measured on the zero-skipping build.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from pascal_fpga.datasets import load_dataset
from pascal_fpga.errors import PascalError
from pascal_fpga.flows.compile import CompileConfig, compile_model
from pascal_fpga.hw.design import design_from_ir
from pascal_fpga.hw.load import load_qonnx_ir
from pascal_fpga.perf.cyclesim import cycle_model
from pascal_fpga.perf.estimates import design_resources
from pascal_fpga.perf.twin import qnn_twin


def _images(args, model_path: Path, design):
    if args.random:
        rng = np.random.default_rng(0)
        shape = (args.images, design.channels, design.height, design.width)
        return rng.integers(0, 2 ** design.bits, size=shape).astype(np.float32), "random"
    data = load_dataset(args.dataset, args.data_dir)
    return data.test_images[:args.images].astype(np.float32), f"{args.dataset} test"


def _row(name, fps_mean, fps_worst, lut, extra=""):
    return {"design": name, "images_per_s_mean": fps_mean, "images_per_s_worst": fps_worst,
            "lut": lut, "per_klut_mean": fps_mean / (lut / 1000),
            "per_klut_worst": fps_worst / (lut / 1000), "folding": extra}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--target-fps", type=float, default=10000.0)
    parser.add_argument("--clock-mhz", type=float, default=200.0)
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--dataset", default="fashion-mnist")
    parser.add_argument("--data-dir")
    parser.add_argument("--random", action="store_true")
    parser.add_argument("--out", help="keep the builds here (default: a temporary folder)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    work = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="bench_cyclesim."))
    rows, detail = [], {}
    images = None
    for label, zero_skip in (("SNN dense", False), ("SNN zero-skip", True)):
        build = work / label.replace(" ", "_").lower()
        config = CompileConfig(target_fps=args.target_fps, clock_mhz=args.clock_mhz,
                               zero_skip=zero_skip, calibration_images=256)
        started = time.perf_counter()
        result = compile_model(args.model, build, config=config)
        compile_s = time.perf_counter() - started
        design = design_from_ir(load_qonnx_ir(build / result["ir"]))
        if images is None:
            images, what = _images(args, Path(args.model), design)
        started = time.perf_counter()
        cm = cycle_model(design, images, args.clock_mhz)
        model_s = time.perf_counter() - started
        summary = cm.summary()
        lut = design_resources(design)["total"]["LUT"]
        folding = " ".join(f"{l.name}:{l.pe}/{getattr(l, 'simd', 1)}"
                           f"{'z' if getattr(l, 'zero_skip', False) and hasattr(l, 'nf') else ''}"
                           for l in design.layers)
        rows.append(_row(label, summary["fps_mean"], summary["fps_worst_case"], lut, folding))
        detail[label] = {"compile_s": compile_s, "cycle_model_s": model_s,
                         "cycle_model_images_per_s": len(images) / model_s,
                         "p99_fps": summary["fps_p99"], "met": [r["met"] for r in
                                                                 result["folding_search"]["layers"]]}
        if zero_skip:
            twin = qnn_twin(design, args.target_fps, args.clock_mhz)
            qfold = " ".join(f"{k}:{v['pe']}/{v['simd']}" for k, v in twin["folding"].items())
            rows.append(_row("QNN twin", twin["images_per_s"], twin["images_per_s"],
                             twin["lut"], qfold))
    qnn = rows[-1]
    print(f"{Path(args.model).name}: target {args.target_fps:g} images/s at {args.clock_mhz:g} "
          f"MHz, {len(images)} {what} images\n")
    print("| design | images/s mean | images/s worst case | LUT (est.) | images/s per kLUT mean "
          "| per kLUT worst | vs QNN (mean) | folding PE/SIMD (z: zero-skip) |")
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['design']} | {row['images_per_s_mean']:.0f} | "
              f"{row['images_per_s_worst']:.0f} | {row['lut']} | {row['per_klut_mean']:.2f} | "
              f"{row['per_klut_worst']:.2f} | {row['per_klut_mean'] / qnn['per_klut_mean']:.2f}x "
              f"| {row['folding']} |")
    zs = detail["SNN zero-skip"]
    print(f"\ncycle model (values + each image's timing, zero-skip build): "
          f"{zs['cycle_model_images_per_s']:.0f} images/s ({zs['cycle_model_s']:.1f} s for "
          f"{len(images)} images); compile with the search: {zs['compile_s']:.1f} s")
    if args.json:
        print(json.dumps({"rows": rows, "detail": detail}, indent=2))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except PascalError as exc:
        print(f"bench_cyclesim: {exc}", file=sys.stderr)
        sys.exit(2)
