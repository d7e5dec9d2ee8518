#!/usr/bin/env python3
"""Run a .npy set of images on the accelerator on a PYNQ board: classes, accuracy, throughput.

    python3 run_on_board.py --bitfile pascal.bit --images images.npy [--labels labels.npy]
                            [--batch 100] [--repeat 5]

Run from BUILD_DIR/driver/ on the board (it needs numpy and pynq, and board.py and design.json
beside it). images.npy: raw pixels (N, C, H, W) in the data set's range.
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from board import PynqAccelerator, load_design  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bitfile", required=True)
    parser.add_argument("--images", required=True)
    parser.add_argument("--labels")
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=5, help="throughput runs")
    args = parser.parse_args()
    design_path = Path(__file__).resolve().parent / "design.json"
    try:
        design = load_design(design_path)
    except ValueError as exc:  # a damaged or hand-edited design.json
        print(f"run_on_board: {design_path}: {exc}", file=sys.stderr)
        return 2
    images = np.load(args.images)
    expected = (design["channels"], design["height"], design["width"])
    if images.ndim != 4 or tuple(images.shape[1:]) != expected:
        print(f"run_on_board: {args.images}: shape {images.shape}, expected (N, "
              f"{', '.join(map(str, expected))})", file=sys.stderr)
        return 2
    accel = PynqAccelerator(design, bitfile=args.bitfile)
    classes = np.concatenate([accel.run(images[i:i + args.batch])[1]
                              for i in range(0, len(images), args.batch)])
    print("classes:", " ".join(map(str, classes[:20])), "..." if len(classes) > 20 else "")
    if args.labels:
        labels = np.load(args.labels)
        print(f"accuracy: {100 * np.mean(classes == labels[:len(classes)]):.2f}% on "
              f"{len(classes)} images")
    batch = images[:args.batch]
    times = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        accel.run(batch)
        times.append(time.perf_counter() - start)
    print(f"throughput: {len(batch) / min(times):.1f} images/s (batches of {len(batch)}, best of "
          f"{args.repeat}, DMA included)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
