#!/usr/bin/env python
"""Compile time and images per second of a build's HLS C simulation, beside the IR's execution.

    python scripts/bench_csim.py BUILD_DIR [--images 200] [--repeat 2]

Builds the C simulation from scratch (g++ against the ap_types headers of $XILINX_HLS, else of
the hls4ml package) and times the compile; then, side by side in this process on the same random
images, the top function alone in the csim binary, the csim with every layer's output written out
(what `verify --csim` runs), the spiking IR under qonnx's execute_onnx, and the PASCAL simulation of
the IR. Prints the best of --repeat runs and each one's speed relative to the IR's execution.
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
import torch

from pascal_fpga.buildfolder import load_build
from pascal_fpga.hw.csim import ap_types_dir, build_csim
from pascal_fpga.hw.load import load_qonnx_ir
from pascal_fpga.ir.execute import run_model
from pascal_fpga.ir.integer import ir_to_integer_network
from pascal_fpga.errors import PascalError
from pascal_fpga.snn.simulate import simulate

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchutil import best_seconds  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("build_dir")
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    build_dir = Path(args.build_dir)
    try:
        build = load_build(build_dir)
        headers = ap_types_dir(os.environ.get("XILINX_HLS"))
        shutil.rmtree(build_dir / "csim", ignore_errors=True)
        start = time.perf_counter()
        binary = build_csim(build_dir, headers)
        compile_seconds = time.perf_counter() - start
    except PascalError as exc:
        print(f"bench_csim: error: {exc}", file=sys.stderr)
        return 2
    shape = build["spec"]["input"]
    rng = np.random.default_rng(0)
    images = rng.integers(0, 2 ** shape["bits"], size=(args.images, shape["channels"],
                                                        shape["height"], shape["width"]))
    model = load_qonnx_ir(build_dir / build["ir"])
    inet = ir_to_integer_network(model)
    x = images.astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        images.astype(np.int32).tofile(tmp / "in.bin")

        def csim(layers: bool):
            command = [str(binary), "--in", str(tmp / "in.bin"), "--out", str(tmp / "out.bin")]
            if layers:
                command += ["--layers", str(tmp)]
            subprocess.run(command, check=True, capture_output=True)

        cases = [
            ("spiking IR (qonnx execute_onnx)", lambda: run_model(model, x)),
            ("PASCAL simulation of the IR", lambda: simulate(inet, torch.from_numpy(x))),
            ("C simulation, top function", lambda: csim(False)),
            ("C simulation, with layer dumps", lambda: csim(True)),
        ]
        results = {name: args.images / best_seconds(fn, args.repeat) for name, fn in cases}
    base = results["spiking IR (qonnx execute_onnx)"]
    report = {"build": build["name"], "images": args.images, "csim_compile_seconds": compile_seconds,
              "images_per_second": results,
              "relative_to_ir": {name: rate / base for name, rate in results.items()}}
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"{build['name']}: C simulation compiled in {compile_seconds:.1f} s; {args.images} "
          f"random images, best of {args.repeat}")
    for name, rate in results.items():
        print(f"  {name:<34} {rate:>9.1f} img/s  ({rate / base:.3f}x the IR)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
