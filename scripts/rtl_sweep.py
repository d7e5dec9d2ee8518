#!/usr/bin/env python
"""The RTL against the IR and the cycle model on the odd networks of tests/nets.py, three foldings.

    python scripts/rtl_sweep.py OUT_DIR [--images 100] [--dense]

Each network (calibrated, untrained; kernels 5 with stride 2, padding, non-square inputs, L = 1, 3
and 8, max and sum pooling, a dense first layer) is compiled with a stream of one channel per word
("serial"), of a small divisor ("mid") and of all channels ("full"), zero-skipping (and with
--dense also the dense schedule), then `verify --rtlsim` runs on random images: rtlsim_vs_ir and
rtl_cycles_vs_cyclesim, one line per build. OUT_DIR is created (it must not exist).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from nets import ODD_SPECS, final_ir, make_run, mid_folding  # noqa: E402
from pascal_fpga.flows.compile import CompileConfig, compile_model  # noqa: E402
from pascal_fpga.flows.verify import verify_build, verify_images  # noqa: E402
from pascal_fpga.ir.export import export_run  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--dense", action="store_true")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True)
    rows = []
    failed = 0
    for name, spec in ODD_SPECS.items():
        run = make_run(out / f"run_{name}", spec, seed=1)
        model = out / f"{name}.onnx"
        export_run(run, model)
        modes = [True, False] if args.dense else [True]
        for zero_skip in modes:
            for folding in ("serial", "mid", "full"):
                build = out / f"{name}_{folding}_{'zs' if zero_skip else 'dense'}"
                config = CompileConfig(zero_skip=zero_skip)
                if folding == "mid":
                    compile_model(model, build, config=config)
                    cfg = mid_folding(final_ir(build))
                    (out / f"{build.name}.json").write_text(json.dumps(cfg))
                    shutil.rmtree(build)
                    compile_model(model, build, out / f"{build.name}.json", config=config)
                else:
                    compile_model(model, build, folding, config=config)
                info = json.loads((build / "build.json").read_text())
                images, _, _ = verify_images(info, None, None, None, random=args.images,
                                             seed=7)
                report = verify_build(build, images, snn=False, rtlsim=True)
                checks = {c["name"]: c for c in report["checks"]}
                rtl, cyc = checks["rtlsim_vs_ir"], checks["rtl_cycles_vs_cyclesim"]
                row = {"build": build.name, "rtlsim_vs_ir": f"{rtl['mismatched']}/"
                       f"{rtl['compared']}", "cycles": f"{cyc['mismatched']}/{cyc['compared']}",
                       "rtl_cycles": cyc["cycles"], "passed": report["passed"]}
                failed += not report["passed"]
                rows.append(row)
                print(json.dumps(row), flush=True)
    print(f"{len(rows)} builds, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
