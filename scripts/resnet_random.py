"""A residual network of a spec with random calibrated weights, through the whole chain.

    python scripts/resnet_random.py models/cifar10-resnet18.yaml OUT [--images 10] [--rtlsim N]
        [--calibration-images 8] [--resume]

For networks whose data set is not on this machine (CIFAR-10): the spec's network is built,
its BatchNorm statistics and QCFS lambdas calibrated on random images (as ``train --epochs 0``
does on real ones), saved as a run, exported, compiled (``--no-intermediate``), verified on
``--images`` random images with the C simulation (and ``--rtlsim N`` images in Verilator), and
simulated by the cycle model. It prints each step's time, the cycle model's images/s, the
estimated resources, and the thresholds per channel of each block's add against the 8-bit add
quantizer's (``residual: requant``). No accuracy: the weights are random.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
import yaml


def cli(*args: str) -> str:
    start = time.time()
    result = subprocess.run([sys.executable, "-m", "pascal_fpga.cli", *args],
                            capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"pascal-fpga {args[0]} failed ({result.returncode}): "
                 f"{result.stderr.strip()[-2000:]}")
    print(f"  pascal-fpga {' '.join(args)}: {time.time() - start:.0f} s", flush=True)
    return result.stdout


def make_run(spec_path: Path, run: Path, seed: int) -> dict:
    from pascal_fpga.model.network import QCFSNet
    from pascal_fpga.spec import load_spec
    from pascal_fpga.train.calibrate import calibrate

    spec = load_spec(spec_path)
    torch.manual_seed(seed)
    net = QCFSNet(spec)
    rng = np.random.default_rng(seed)
    shape = (128, spec.input.channels, spec.input.height, spec.input.width)
    pixels = torch.from_numpy(rng.integers(0, 2 ** spec.input.bits, size=shape)
                              .astype(np.float32))
    calibrate(net, [pixels[:64], pixels[64:]])
    run.mkdir(parents=True)
    (run / "spec.yaml").write_text(yaml.safe_dump(spec.to_dict()))
    torch.save({"spec": spec.to_dict(), "model": net.state_dict(), "quantized": True},
               run / "checkpoint.pt")
    (run / "metrics.json").write_text(json.dumps({"dataset": None}))
    return spec.to_dict()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("spec", type=Path)
    parser.add_argument("out", type=Path, help="a new folder")
    parser.add_argument("--images", type=int, default=10)
    parser.add_argument("--rtlsim", type=int, default=0, help="images for the RTL simulation")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--calibration-images", type=int, default=8,
                        help="images the FIFO sizing simulates (compile's option; default 8)")
    parser.add_argument("--resume", action="store_true",
                        help="reuse OUT/run and OUT/model.onnx from an earlier call")
    args = parser.parse_args()
    run, model, build = args.out / "run", args.out / "model.onnx", args.out / "build"
    if args.out.exists() and not (args.resume and model.is_file() and not build.exists()):
        sys.exit(f"{args.out}: exists (give a new folder, or --resume one without a build)")
    start = time.time()
    if not model.is_file():
        make_run(args.spec, run, args.seed)
        print(f"  calibrated run: {time.time() - start:.0f} s", flush=True)
        cli("export", str(run), "--out", str(model))
    cli("compile", str(model), "--out", str(build), "--no-intermediate",
        "--calibration-images", str(args.calibration_images))
    print(cli("verify", str(build), "--random", str(args.images), "--csim", "--run", str(run)))
    if args.rtlsim:
        print(cli("verify", str(build), "--random", str(args.rtlsim), "--rtlsim", "--no-snn"))
    report = json.loads(cli("simulate", str(build), "--random", "--images", str(args.images),
                            "--json"))
    print(json.dumps({key: report[key] for key in report if key in (
        "fps", "timing", "resources", "qnn_twin", "cycles")}, indent=1)[:4000])

    from pascal_fpga.buildfolder import load_build
    from pascal_fpga.hw.layers import AddLayer
    from pascal_fpga.hw.design import design_from_ir
    from pascal_fpga.hw.load import load_qonnx_ir

    info = load_build(build)
    design = design_from_ir(load_qonnx_ir(build / info["ir"]))
    print("\nthresholds per channel at each block's add (shift-add block) against the 8-bit add "
          "quantizer of 'residual: requant' (2M = 254 on conv2, and 254 on a projection or an "
          "identity table of in_max + 1 entries):")
    blocks = [layer for layer in design.layers if isinstance(layer, AddLayer)]
    for layer in blocks:
        old = 254 + (254 if layer.short_acc else layer.in_max + 1)
        print(f"  {layer.name}: {layer.out_channels} channels, {layer.t_out} thresholds per "
              f"channel (was {old}), shifts up to {int(max(layer.shift_main.max(), layer.shift_short.max()))}, "
              f"n {layer.n_bits} bits")
    print(f"total: {sum(b.out_channels * b.t_out for b in blocks)} threshold words, was "
          f"{sum(b.out_channels * (254 + (254 if b.short_acc else b.in_max + 1)) for b in blocks)}")
    print(f"done in {time.time() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
