#!/usr/bin/env python
"""Train a spec as a QCFS network and as its float ReLU twin, side by side, and compare.

Same architecture, data, epochs, batch size, learning rate and seed; one after the other in this
process. Prints test accuracy, the gap in points, training time and the ratio of training times.

    python scripts/bench_train.py models/fmnist-cnn.yaml --dataset fashion-mnist --epochs 12
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from pascal_fpga.errors import PascalError
from pascal_fpga.train import TrainConfig, train


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("spec")
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--data-dir")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", help="keep the two run directories under this folder")
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args()

    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench_train."))
    results = {}
    try:
        for label, quantized in (("qcfs", True), ("float", False)):
            config = TrainConfig(spec=args.spec, dataset=args.dataset, data_dir=args.data_dir,
                                 epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                                 seed=args.seed, out=str(root / label), quantized=quantized)
            print(f"training the {label} network ...", file=sys.stderr, flush=True)
            results[label] = train(config, progress=sys.stderr.isatty())
    except PascalError as exc:
        print(f"bench_train: error: {exc}", file=sys.stderr)
        return 2
    q, f = results["qcfs"], results["float"]
    levels = " ".join(str(layer["levels"]) for layer in q["levels"])
    print(f"spec {args.spec}, data set {q['dataset']}, {args.epochs} epochs, batch {args.batch_size}, "
          f"lr {args.lr}, seed {args.seed}; QCFS L per layer: {levels}")
    print(f"{'network':<8} {'test acc %':>10} {'train s':>9}")
    for label, res in results.items():
        print(f"{label:<8} {100 * res['test_accuracy']:>10.2f} {res['train_seconds']:>9.1f}")
    gap = 100 * (f["test_accuracy"] - q["test_accuracy"])
    print(f"float - QCFS: {gap:+.2f} points; QCFS/float training time: "
          f"{q['train_seconds'] / f['train_seconds']:.2f}x")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "spec": args.spec, "dataset": q["dataset"], "epochs": args.epochs, "levels": q["levels"],
            "qcfs": {k: q[k] for k in ("test_accuracy", "train_seconds")},
            "float": {k: f[k] for k in ("test_accuracy", "train_seconds")},
            "gap_points": gap}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
