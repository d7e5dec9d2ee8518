#!/usr/bin/env python
"""Images per second of the spiking simulation against the ANN forward, on the same batch.

    python scripts/bench_snn.py RUN_DIR [--images 1000] [--repeat 3]

Times, side by side in this process on the first N test images: the Brevitas QCFS model (eval), the
integer network (thresholds), the PASCAL SNN in integer and float mode, and the baseline QCFS
conversion run to T = 64. Prints the best of --repeat runs and each one's ratio to the ANN.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from pascal_fpga.datasets import load_dataset
from pascal_fpga.errors import PascalError
from pascal_fpga.snn.baseline import simulate_baseline
from pascal_fpga.snn.convert import convert
from pascal_fpga.snn.simulate import simulate
from pascal_fpga.train.trainer import images_to_tensor, load_run

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchutil import best_seconds  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=250)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    try:
        spec, net, metrics = load_run(args.run_dir)
        data = load_dataset(metrics["dataset"], metrics.get("data_dir"))
    except PascalError as exc:
        print(f"bench_snn: error: {exc}", file=sys.stderr)
        return 2
    pixels = images_to_tensor(data.test_images[:args.images])
    batches = list(torch.split(pixels, args.batch_size))
    inet = convert(net)

    def ann():
        with torch.no_grad():
            for b in batches:
                net(b)

    cases = [
        ("ANN forward (Brevitas, float32)", ann),
        ("integer ANN (thresholds, float64)", lambda: [inet.run(b) for b in batches]),
        ("SNN, PASCAL integer mode", lambda: [simulate(inet, b, "integer") for b in batches]),
        ("SNN, PASCAL float mode", lambda: [simulate(inet, b, "float") for b in batches]),
        ("baseline QCFS conversion, T = 64", lambda: [simulate_baseline(inet, b, (64,))
                                                      for b in batches]),
    ]
    print(f"{spec.name}: {len(pixels)} test images of {metrics['dataset']}, batches of "
          f"{args.batch_size}, best of {args.repeat}, torch threads {torch.get_num_threads()}")
    print(f"{'what':<36} {'seconds':>9} {'images/s':>10} {'vs ANN':>8}")
    base = None
    for label, fn in cases:
        seconds = best_seconds(fn, args.repeat)
        rate = len(pixels) / seconds
        base = base or rate
        print(f"{label:<36} {seconds:>9.3f} {rate:>10.1f} {rate / base:>7.3f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
