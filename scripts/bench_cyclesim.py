#!/usr/bin/env python
"""Images per second of the cycle model beside the C simulation; the design's figures beside the
FINN-style QNN estimate of the same network.

    python scripts/bench_cyclesim.py BUILD_DIR [--images 200] [--repeat 2] [--clock-mhz 200]

Side by side in this run, on the same random images: the cycle model (values and timing) and the
HLS C simulation (its top function; the compile is timed apart). Then cycles per image, FPS and
latency at the clock, and the LUT estimates of the PASCAL design and of the FINN-style QNN under
the same folding (pascal_fpga/compiler/estimates.py).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from pascal_fpga.buildfolder import load_build
from pascal_fpga.hw.csim import ap_types_dir, build_csim
from pascal_fpga.perf.cyclesim import cycle_model, design_depths
from pascal_fpga.perf.estimates import design_estimates
from pascal_fpga.hw.hls import hls_layers
from pascal_fpga.verify.checks import load_qonnx_ir
from pascal_fpga.errors import PascalError

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchutil import best_seconds  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("build_dir")
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--clock-mhz", type=float, default=200.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    build_dir = Path(args.build_dir)
    try:
        build = load_build(build_dir)
        shutil.rmtree(build_dir / "csim", ignore_errors=True)  # time a build from scratch
        start = time.perf_counter()
        binary = build_csim(build_dir, ap_types_dir(os.environ.get("XILINX_HLS")))
        compile_seconds = time.perf_counter() - start
    except PascalError as exc:
        print(f"bench_cyclesim: error: {exc}", file=sys.stderr)
        return 2
    layers = hls_layers(load_qonnx_ir(build_dir / build["ir"]))
    shape = build["spec"]["input"]
    rng = np.random.default_rng(0)
    images = rng.integers(0, 2 ** shape["bits"], size=(args.images, shape["channels"],
                                                        shape["height"], shape["width"]))
    x = images.astype(np.float32)
    report = {}
    model_seconds = best_seconds(lambda: report.setdefault("cm", cycle_model(layers, x, args.clock_mhz)),
                          1)
    model_seconds = min(model_seconds, best_seconds(lambda: cycle_model(layers, x, args.clock_mhz),
                                             args.repeat))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "in.bin"
        images.astype(np.int32).tofile(path)
        csim_seconds = best_seconds(lambda: subprocess.run(
            [str(binary), "--in", str(path), "--out", str(Path(tmp) / "out.bin")],
            check=True, capture_output=True), args.repeat)
    cm = report["cm"].summary()
    estimates = design_estimates(layers, report["cm"].stages, design_depths(layers),
                                 layers[0].in_word_bits)
    qnn_cycles = max(row["qnn_cycles"] for row in estimates["layers"])
    result = {
        "build": build["name"], "images": args.images, "clock_mhz": args.clock_mhz,
        "cycle_model_images_per_second": args.images / model_seconds,
        "csim_images_per_second": args.images / csim_seconds,
        "cycle_model_over_csim": csim_seconds / model_seconds,
        "csim_compile_seconds": compile_seconds,
        "cycles_per_image": cm["cycles_per_image"], "fps": cm["fps"],
        "latency_us": cm["latency_us"],
        "lut": estimates["total"]["snn"]["LUT"], "qnn_lut": estimates["total"]["qnn"]["LUT"],
        "qnn_cycles_per_image": qnn_cycles, "qnn_fps": args.clock_mhz * 1e6 / qnn_cycles,
        "folding": {row["layer"]: [row["pe"], row["simd"]] for row in estimates["layers"]},
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"{build['name']}: {args.images} random images, best of {args.repeat}")
    print(f"  cycle model      {result['cycle_model_images_per_second']:>9.1f} img/s "
          f"({result['cycle_model_over_csim']:.1f}x the C simulation)")
    print(f"  C simulation     {result['csim_images_per_second']:>9.1f} img/s (compiled in "
          f"{compile_seconds:.1f} s)")
    print(f"  PASCAL design    {cm['cycles_per_image']:>9} cycles/image, {cm['fps']:.0f} img/s at "
          f"{args.clock_mhz:g} MHz, latency {cm['latency_us']:.1f} us, {result['lut']} LUT "
          f"(estimate)")
    print(f"  FINN-style QNN   {qnn_cycles:>9} cycles/image, {result['qnn_fps']:.0f} img/s, "
          f"{result['qnn_lut']} LUT (estimate, same folding)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
