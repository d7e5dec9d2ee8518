#!/usr/bin/env python
"""Images per second of the RTL simulation beside the cycle model and the C simulation; the wall
times of synthesis and place and route.

    python scripts/bench_rtl.py BUILD_DIR [--images 200] [--dataset NAME | --random]
        [--synth] [--pnr] [--json]

Side by side in this process on the same images: the Verilator testbench of BUILD_DIR/rtl (what
`verify --rtlsim` runs: every layer's stream tapped, the cycles of each image's first input and
last output per stage recorded), the cycle model (values and data-dependent timing of the HLS
schedule, perf/cyclesim.py) and the g++ C simulation of BUILD_DIR/hls (with every layer written
out, as `verify --csim` runs it). The compile times of the two simulators are listed apart. With
--synth, `pascal-fpga synth` of the build (Yosys synth_xilinx per layer and the top); with --pnr
also nextpnr-ecp5 and ecppack; their wall times. The Verilator build goes to a fresh temporary
folder (from scratch, though ccache, when installed, keeps Verilator's runtime objects).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from pascal_fpga.buildfolder import load_build
from pascal_fpga.errors import PascalError
from pascal_fpga.flows.synth import synth_build
from pascal_fpga.flows.verify import verify_images
from pascal_fpga.hw.csim import ap_types_dir, build_csim, run_csim
from pascal_fpga.hw.design import design_from_ir
from pascal_fpga.hw.load import load_qonnx_ir
from pascal_fpga.hw.backends.rtl import build_rtlsim, run_rtlsim
from pascal_fpga.ir.transforms import layer_nodes
from pascal_fpga.perf.cyclesim import cycle_model
from pascal_fpga.perf.values import run_values


def _timed(fn):
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("build_dir")
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--dataset")
    parser.add_argument("--data-dir")
    parser.add_argument("--random", action="store_true")
    parser.add_argument("--synth", action="store_true")
    parser.add_argument("--pnr", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    scratch = None
    try:
        build_dir = Path(args.build_dir)
        build = load_build(build_dir)
        images, _, what = verify_images(build, args.dataset, args.data_dir,
                                        None if args.random else args.images,
                                        args.images if args.random else None)
        model = load_qonnx_ir(build_dir / build["ir"])
        design = design_from_ir(model)
        scratch = Path(tempfile.mkdtemp(prefix="bench_rtl."))
        binary, t_rtl_build = _timed(lambda: build_rtlsim(build_dir, root=scratch))
        lanes = run_values(design, images)[3]
        programs = design.programs(design.activity_from_lanes(lanes), len(images),
                                   backend="rtl")
        run, t_rtl = _timed(lambda: run_rtlsim(binary, build_dir, design, programs, images))
        clock = float(build.get("hls", {}).get("clock_mhz") or 100.0)
        _, t_model = _timed(lambda: cycle_model(design, images, clock))
        headers = ap_types_dir(os.environ.get("XILINX_HLS"))
        csim, t_csim_build = _timed(lambda: build_csim(build_dir, headers))
        names = [node.name for node in layer_nodes(model)]
        _, t_csim = _timed(lambda: run_csim(csim, images, names))
        n = len(images)
        result = {
            "build_dir": str(build_dir), "images": what, "count": n,
            "rtl_cycles_simulated": run.cycles,
            "rtlsim": {"images_per_s": n / t_rtl, "cycles_per_s": run.cycles / t_rtl,
                       "build_s": t_rtl_build},
            "cyclesim": {"images_per_s": n / t_model},
            "csim": {"images_per_s": n / t_csim, "build_s": t_csim_build},
        }
        result["rtlsim"]["relative_to_cyclesim"] = t_model / t_rtl
        result["csim"]["relative_to_cyclesim"] = t_model / t_csim
        if args.synth or args.pnr:
            report, t_synth = _timed(lambda: synth_build(build_dir, "xc7", pnr=args.pnr,
                                                         force=True))
            result["synth"] = {"wall_s": t_synth, "seconds": report["seconds"],
                               "total": report["total"]}
            if args.pnr:
                result["synth"]["fmax_mhz"] = report["fmax_mhz"]
    except PascalError as exc:
        print(f"bench_rtl: {exc}", file=sys.stderr)
        return 2
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)   # the temporary folder made above
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"{build['name']}: {what}")
    print(f"  RTL simulation (Verilator) {result['rtlsim']['images_per_s']:10.1f} images/s  "
          f"({result['rtlsim']['cycles_per_s'] / 1e6:.2f} M cycles/s, "
          f"{result['rtlsim']['relative_to_cyclesim']:.2f}x the cycle model; build "
          f"{t_rtl_build:.1f} s)")
    print(f"  cycle model                {result['cyclesim']['images_per_s']:10.1f} images/s")
    print(f"  C simulation (g++)         {result['csim']['images_per_s']:10.1f} images/s  "
          f"({result['csim']['relative_to_cyclesim']:.2f}x the cycle model; build "
          f"{t_csim_build:.1f} s)")
    if "synth" in result:
        print(f"  synthesis: {result['synth']['seconds']} (wall {result['synth']['wall_s']:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
