"""The ``pascal-fpga`` command line: one subcommand per pipeline stage.

User errors (PascalError) print one line and exit with status 2; ``--debug`` shows the traceback.
Environment variables are read here, at the edge, and nowhere deeper.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from pathlib import Path

from .errors import PascalError

REPO_MODELS = Path(__file__).resolve().parent.parent / "models"


class _Parser(argparse.ArgumentParser):
    """argparse, but usage errors are one line and exit 2 like every other user error."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def _add_train(sub) -> None:
    p = sub.add_parser("train", help="train a QCFS network from a spec")
    p.add_argument("spec", help="model spec (YAML), e.g. models/fmnist-cnn.yaml")
    p.add_argument("--dataset", required=True, help="digits | fashion-mnist | cifar10")
    p.add_argument("--data-dir", help="folder of the data set's files")
    p.add_argument("--epochs", type=int, default=10, help="0: calibrate only (default 10)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=2e-3, help="Adam learning rate (cosine schedule)")
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--float", dest="float_net", action="store_true",
                   help="train the float ReLU twin instead (a baseline)")
    p.add_argument("--out", required=True, help="run directory to write")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")


def _add_eval(sub) -> None:
    p = sub.add_parser("eval", help="test accuracy of a trained run")
    p.add_argument("run_dir")
    p.add_argument("--dataset", help="default: the run's own data set")
    p.add_argument("--data-dir")
    p.add_argument("--json", action="store_true")


def _add_demo(sub) -> None:
    p = sub.add_parser("demo", help="the whole pipeline on the embedded digits set")
    p.add_argument("--out", default="runs/demo", help="output folder (default runs/demo)")
    p.add_argument("--epochs", type=int, default=None, help="training epochs (default: the demo's)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="pascal-fpga", description=__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    _add_train(sub)
    _add_eval(sub)
    _add_demo(sub)
    return parser


def _distributed_env() -> tuple[int, int]:
    """(world size, rank) from torchrun's environment."""
    return int(os.environ.get("WORLD_SIZE", "1")), int(os.environ.get("RANK", "0"))


def cmd_train(args) -> int:
    from .train import TrainConfig, train

    world_size, rank = _distributed_env()
    config = TrainConfig(spec=args.spec, dataset=args.dataset, data_dir=args.data_dir,
                         epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                         weight_decay=args.weight_decay, seed=args.seed, out=args.out,
                         resume=args.resume, quantized=not args.float_net,
                         world_size=world_size, rank=rank)
    if world_size > 1:
        import torch
        import torch.distributed as dist

        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend)
    try:
        metrics = train(config, progress=sys.stderr.isatty())
    finally:
        if world_size > 1:
            import torch.distributed as dist

            dist.destroy_process_group()
    if rank != 0:
        return 0
    if args.json:
        print(json.dumps({k: v for k, v in metrics.items() if k != "history"}, indent=2))
    else:
        levels = " ".join(str(layer["levels"]) for layer in metrics["levels"])
        print(f"{metrics['name']} on {metrics['dataset']}: test accuracy "
              f"{100 * metrics['test_accuracy']:.2f}% after {metrics['epochs']} epochs "
              f"({metrics['train_seconds']:.1f} s); L per layer: {levels}; run in {args.out}")
    return 0


def cmd_eval(args) -> int:
    from .train import evaluate_run

    result = evaluate_run(args.run_dir, args.dataset, args.data_dir)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{result['name']} on {result['dataset']}: test accuracy "
              f"{100 * result['test_accuracy']:.2f}% ({result['test_images']} images)")
    return 0


def cmd_demo(args) -> int:
    from .demo import run_demo

    run_demo(Path(args.out), REPO_MODELS, epochs=args.epochs, progress=sys.stderr.isatty())
    return 0


COMMANDS = {"train": cmd_train, "eval": cmd_eval, "demo": cmd_demo}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except PascalError as exc:
        if args.debug:
            traceback.print_exc()
        print(f"pascal-fpga {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("pascal-fpga: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
