"""The ``pascal-fpga`` command line: one subcommand per pipeline stage.

User errors (PascalError) print one line and exit with status 2; ``--debug`` shows the traceback.
Environment variables are read here, at the edge, and nowhere deeper.
The heavy libraries (torch, Brevitas, qonnx) are imported inside the commands that use them,
so that ``--help`` and usage errors answer at once.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import os
import signal
import sys
import threading
import math
import time
import traceback
from pathlib import Path

import numpy as np

from . import __version__, bundled
from .buildfolder import load_build
from .datasets import DATASETS
from .driver import ACCELERATOR_BACKENDS, Accelerator
from .errors import PascalError
from .hw.csim import ap_types_dir
from .hw.synth import PARTS as SYNTH_FAMILIES
from .hw.parts import FPGAS, fit_lines
from .progress import LogStream, cli_logging, log
from .staging import artefact_kind, check_output, check_output_file, staged_folder

# Choices argparse checks before torch or qonnx load. Each is a copy of its module's own list
# (train/trainer.py, flows/compile.py's step_names()), which would import torch or qonnx;
# tests/test_cli_usability.py checks that they agree.
DEVICES = ("auto", "cpu", "cuda")
AUGMENTATIONS = ("auto", "none", "flip", "crop-flip")
COMPILE_STEPS = ("qonnx", "normalize_export", "check_supported", "batchnorm_to_affine",
                 "fold_weight_quant", "activations_to_thresholds", "lower_to_spiking_ops",
                 "apply_folding", "size_fifos", "generate_hls", "generate_rtl", "write_driver")

DESCRIPTION = """\
pascal-fpga: QCFS networks trained with Brevitas, converted to PASCAL spiking accelerators for
FPGAs. One subcommand per pipeline stage: train -> (adapt) -> export -> compile -> verify,
simulate, synth, run; demo runs them all on the digits set. "pascal-fpga COMMAND --help" describes
a command; "pascal-fpga models" lists the specs and trained networks that ship with the package.

Errors are one line and exit status 2 (--debug shows the traceback)."""


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """States each option's default, unless it has none (None, or a flag's False) or its help
    already says it."""

    def _get_help_string(self, action):
        text = action.help or ""
        if action.default is None or action.default is False or \
                action.default is argparse.SUPPRESS or "default" in text or \
                not action.option_strings:
            return text
        return f"{text} (default %(default)s)"


class _Parser(argparse.ArgumentParser):
    """argparse, but usage errors are one line and exit 2 like every other user error."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


class _Deprecated(argparse.Action):
    """An option's earlier name: it still works (scripts use it), with a one-line note on
    stderr naming the new one."""

    def __init__(self, option_strings, dest, new: str, **kwargs):
        self.new = new
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"pascal-fpga: warning: {option_string} is deprecated, use {self.new} (the old "
              f"name still works)", file=sys.stderr)
        setattr(namespace, self.dest, values)


def _deprecated_alias(parser, old: str, new: str, dest: str, **kwargs) -> None:
    """``old`` as a hidden second name of the option ``new`` (stored in ``dest``)."""
    parser.add_argument(old, dest=dest, action=_Deprecated, new=new, help=argparse.SUPPRESS,
                        default=argparse.SUPPRESS, **kwargs)


def _count(text: str) -> int:
    """A count of images: an integer >= 1, refused by argparse before anything loads."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {value}")
    return value


def _debug_option() -> argparse.ArgumentParser:
    """--debug, -v and -q after the subcommand too; SUPPRESS keeps the subcommand from resetting
    what was given before it."""
    parent = _Parser(add_help=False)
    _global_options(parent, argparse.SUPPRESS)
    return parent


def _global_options(parser, default) -> None:
    parser.add_argument("--debug", action="store_true", default=default,
                        help="show tracebacks of errors")
    parser.add_argument("-v", "--verbose", dest="verbosity", action="store_const", const=1,
                        default=default, help="also print debug lines")
    parser.add_argument("-q", "--quiet", dest="verbosity", action="store_const", const=-1,
                        default=default, help="print no progress or info lines (results, "
                        "warnings and errors only)")


def _data_options(parser, default: str = "the run's own data set") -> None:
    parser.add_argument("--dataset", choices=DATASETS, help=f"the data set (default: {default})")
    parser.add_argument("--data-dir", help="folder of the data set's files (default: the data "
                        "set's usual place; see the README's Data sets)")


def _device_option(parser, what: str = "the network runs") -> None:
    parser.add_argument("--device", default="auto", choices=DEVICES,
                        help=f"where {what}: auto (CUDA when present), cpu or cuda")


def _augment_options(parser, resumable: bool = True) -> None:
    # train: default None, so that --resume keeps the run's own (TRAIN_DEFAULTS for a new run)
    if not resumable:
        parser.set_defaults(augment=TRAIN_DEFAULTS["augment"], crop_pad=TRAIN_DEFAULTS["crop_pad"])
    parser.add_argument("--augment", choices=AUGMENTATIONS,
                        help="training augmentation: auto (crop-flip for cifar10, none otherwise; "
                             "the default), none, flip (horizontal), crop-flip (random crop of the "
                             "image padded by --crop-pad zeros, and flips)")
    parser.add_argument("--crop-pad", type=int, help="crop-flip's padding per side (default 4)")
    parser.add_argument("--amp", action="store_true",
                        help="mixed precision (bfloat16 autocast) in the training steps only; "
                             "evaluation and conversion stay float32/float64. Fast on GPUs, "
                             "usually slower on CPUs")


def _add_train(sub) -> None:
    p = sub.add_parser("train", parents=[_debug_option()],
                       help="train a QCFS network from a spec")
    p.add_argument("spec", help="model spec (YAML): a file, e.g. models/fmnist-cnn.yaml, or "
                   "the name of a spec that ships with the package, e.g. digits-cnn (pascal-fpga "
                   "models lists them)")
    p.add_argument("--dataset", required=True, choices=DATASETS, help="the data set to train on")
    p.add_argument("--data-dir", help="folder of the data set's files (default: the data set's "
                   "usual place; see the README's Data sets)")
    p.add_argument("--epochs", type=int, default=10, help="0: calibrate only (default 10)")
    # default None: --resume takes these from the run, a new run from TRAIN_DEFAULTS
    p.add_argument("--batch-size", type=int, help="global batch (default 128)")
    p.add_argument("--lr", type=float, help="Adam learning rate, cosine schedule (default 2e-3)")
    p.add_argument("--weight-decay", type=float, help="on weights only (default 0)")
    p.add_argument("--seed", type=int, help="seed of the initial weights, the shuffling and the "
                   "augmentation (default 0)")
    p.add_argument("--float", dest="float_net", action="store_true",
                   help="train the float ReLU twin instead (a baseline)")
    p.add_argument("--out", required=True, help="run directory to write")
    _device_option(p)
    _augment_options(p)
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out (also with another process count or device)")
    p.add_argument("--force", action="store_true",
                   help="replace the run already in --out (only a pascal-fpga run is replaced)")
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")


def _add_eval(sub) -> None:
    p = sub.add_parser("eval", parents=[_debug_option()], help="test accuracy of a trained run")
    p.add_argument("run_dir", help="a run folder from train or adapt (or a model zoo's)")
    _data_options(p)
    _device_option(p)
    p.add_argument("--json", action="store_true", help="print the result as JSON")


def _add_snn(sub) -> None:
    p = sub.add_parser("snn", parents=[_debug_option()],
                       help="simulate the converted SNN (PASCAL) against its ANN and the baseline")
    p.add_argument("run_dir", help="a run folder from train or adapt; the report goes to "
                   "RUN_DIR/snn")
    _data_options(p)
    p.add_argument("--images", dest="samples", type=_count, metavar="N",
                   help="the first N test images (default: all)")
    _deprecated_alias(p, "--samples", "--images", "samples", type=_count)
    p.add_argument("--no-float", action="store_true", help="skip the float-mode simulation")
    _device_option(p, "the Brevitas network runs (the integer network and the SNNs always run "
                      "on the CPU, in float64)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")


def _add_adapt(sub) -> None:
    p = sub.add_parser("adapt", parents=[_debug_option()],
                       help="Adaptive Layerwise levels: choose L per layer, fine-tune")
    p.add_argument("run_dir", help="the trained run to start from (read only)")
    p.add_argument("--out", required=True, help="the new run directory")
    p.add_argument("--force", action="store_true",
                   help="replace the run already in --out (only a pascal-fpga run is replaced)")
    p.add_argument("--epochs", type=int, default=3, help="fine-tuning epochs (default 3)")
    p.add_argument("--budget", type=float, default=3.0, help="largest mean L (default 3)")
    p.add_argument("--candidates", default="1,2,4,8",
                   help="level counts to choose from, separated by commas")
    p.add_argument("--lr", type=float, default=5e-4, help="the fine-tuning's learning rate")
    p.add_argument("--calibration-images", dest="calibration", type=int, default=2000,
                   metavar="N", help="training images for the metric")
    _deprecated_alias(p, "--calibration", "--calibration-images", "calibration", type=int)
    _device_option(p)
    _augment_options(p, resumable=False)
    p.add_argument("--json", action="store_true", help="print the report as JSON")


def _add_export(sub) -> None:
    p = sub.add_parser("export", parents=[_debug_option()],
                       help="export a trained run to QONNX (QCFS quantizers made exact)")
    p.add_argument("run_dir", help="a run folder from train or adapt (or a model zoo's)")
    p.add_argument("--out", required=True, help="the .onnx file to write")
    p.add_argument("--force", action="store_true", help="replace the file --out if it exists")
    p.add_argument("--json", action="store_true", help="print what was exported as JSON")


def _add_compile(sub) -> None:
    p = sub.add_parser("compile", parents=[_debug_option()],
                       help="QONNX model -> a build folder: the spiking IR (ir/), the HLS "
                       "project (hls/), the RTL (rtl/) and the host driver (driver/)")
    p.add_argument("model", help="a QONNX model from `pascal-fpga export` (its name, from its "
                   "metadata or else its file name with unsafe characters replaced by '_', names "
                   "the HLS project)")
    p.add_argument("--out", required=True, help="the build folder to write")
    p.add_argument("--force", action="store_true",
                   help="replace the build already in --out (only a pascal-fpga build is "
                   "replaced)")
    p.add_argument("--folding", help="JSON: {layer: {\"pe\": P, \"simd\": S, \"zero_skip\": "
                   "true}}, or 'serial' (one channel per stream word) or 'full' (every channel); "
                   "default: each stream carries the largest divisor of its channels up to 8")
    p.add_argument("--part", help="FPGA part of the HLS project: letters, digits, '_' and '-' "
                   "(default xc7z020clg400-1, PYNQ-Z2)")
    p.add_argument("--clock-mhz", type=float, help="target clock (default 100 MHz)")
    p.add_argument("--target-fps", type=float,
                   help="choose PE/SIMD and the schedule per layer for this many images/s (mean) "
                   "with the least estimated LUTs; the QNN twin gets its own search")
    p.add_argument("--lut-budget", type=int,
                   help="choose the folding with the highest throughput within this many LUTs")
    p.add_argument("--fpga", choices=sorted(FPGAS),
                   help="a board to fit: report whether the design's estimate fits it and what "
                   "binds (build.json 'fit'); alone, also search the fastest folding within 80%% "
                   "of its LUTs and use its part (a Xilinx board)")
    p.add_argument("--dense", action="store_true",
                   help="the dense schedule (T_in cycles per input group, a constant interval) "
                   "instead of event-driven zero-skipping, in every layer")
    p.add_argument("--arch", choices=("snn", "qnn"), default="snn",
                   help="snn: PASCAL's spiking accelerator; qnn: its FINN-style QNN twin (the "
                   "same integer network, levels in binary, one cycle per input group, its own "
                   "folding search), the baseline to compare against (default snn)")
    p.add_argument("--calibration-images", type=int, default=64, metavar="N",
                   help="images whose activity sizes the FIFOs and drives the folding search "
                   "(default 64)")
    p.add_argument("--resume", action="store_true",
                   help="--out holds a build stopped with --stop-after: go on from its last step, "
                   "with the options it was started with")
    p.add_argument("--no-intermediate", action="store_true",
                   help="keep only the input model and the final IR in ir/ (not every step's)")
    p.add_argument("--stop-after", metavar="STEP", choices=COMPILE_STEPS,
                   help="stop after this compile step: " + ", ".join(COMPILE_STEPS))
    p.add_argument("--json", action="store_true", help="print build.json's record as JSON")


def _add_verify(sub) -> None:
    p = sub.add_parser("verify", parents=[_debug_option()],
                       help="check the views of a build against each other on test images")
    p.add_argument("build_dir", help="a build folder from compile")
    p.add_argument("--run", metavar="RUN_DIR",
                   help="the Brevitas run to compare the QONNX model against (qonnx_vs_brevitas; "
                   "skipped without it: a run named in a model file is never loaded)")
    p.add_argument("--dataset", choices=DATASETS, help="the data set (default: the one the "
                   "model names)")
    p.add_argument("--data-dir", help="folder of the data set's files (default: the data set's "
                   "usual place; a folder named in the model is not used)")
    p.add_argument("--images", dest="samples", type=_count, metavar="N",
                   help="the first N test images, or N random images with --random (default: "
                   "all test images)")
    _deprecated_alias(p, "--samples", "--images", "samples", type=_count)
    p.add_argument("--random", type=_count, nargs="?", const=0, metavar="N",
                   help="random pixels instead of a data set: N images (--random N, or --random "
                   "--images N)")
    p.add_argument("--seed", type=int, default=0, help="seed of --random's pixels")
    p.add_argument("--input", metavar="FILE.npy",
                   help="verify on these inputs instead of a data set: a .npy (N, C, H, W) of "
                   "what the model takes (integer pixels for our models; a foreign model's own "
                   "float input, which the build's input adapter quantizes)")
    p.add_argument("--labels", metavar="FILE.npy",
                   help="with --input: their integer labels (N,), for the accuracy line")
    p.add_argument("--no-snn", action="store_true", help="skip the PASCAL simulation")
    p.add_argument("--csim", action="store_true",
                   help="also build and run the HLS C simulation (g++; the ap_types headers of "
                   "$XILINX_HLS, else of the hls4ml package)")
    p.add_argument("--rtlsim", action="store_true",
                   help="also build and run the RTL's Verilator simulation (BUILD/rtl): every "
                   "layer and the class against the IR, and each stage's cycles against the "
                   "cycle model")
    p.add_argument("--json", action="store_true", help="print the report as JSON")


def _add_simulate(sub) -> None:
    p = sub.add_parser("simulate", parents=[_debug_option()],
                       help="cycle model, resource and energy estimates -> BUILD_DIR/report/")
    p.add_argument("build_dir", help="a build folder from compile")
    p.add_argument("--images", type=_count, default=100, metavar="N",
                   help="the first N test images, or N random images with --random")
    _data_options(p, "the data set of the model's run")
    p.add_argument("--random", type=_count, nargs="?", const=0, metavar="N",
                   help="random pixels instead of a data set: --images of them (or N)")
    p.add_argument("--schedule", choices=("hls", "rtl"), default="hls",
                   help="the cycle model runs the HLS project's schedule (default) or the RTL's "
                   "(each stage's writes its pipeline latency later)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")


def _add_synth(sub) -> None:
    p = sub.add_parser("synth", parents=[_debug_option()],
                       help="Yosys synthesis of BUILD_DIR/rtl per layer and whole (and with "
                       "--pnr nextpnr-ecp5 and a bitstream) -> BUILD_DIR/synth/")
    p.add_argument("build_dir", help="a build folder from compile (its rtl/)")
    p.add_argument("--family", dest="part", default="xc7", choices=SYNTH_FAMILIES,
                   help="the FPGA family Yosys maps to: xc7 (7-series, synth_xilinx) or ecp5-85k "
                   "(synth_ecp5); not compile's --part, a part number")
    _deprecated_alias(p, "--part", "--family", "part", choices=SYNTH_FAMILIES)
    p.add_argument("--pnr", action="store_true",
                   help="also place and route the top on an ECP5-85F (nextpnr-ecp5) and write "
                   "the bitstream (ecppack)")
    p.add_argument("--no-layers", action="store_true",
                   help="only the whole top, not each layer out of context")
    p.add_argument("--no-dsp", action="store_true",
                   help="map every multiplier to LUTs (Yosys -nodsp), for an all-LUT comparison")
    p.add_argument("--pnr-seed", dest="seed", type=int, default=1,
                   help="nextpnr's placement seed (with --pnr)")
    _deprecated_alias(p, "--seed", "--pnr-seed", "seed", type=int)
    p.add_argument("--force", action="store_true",
                   help="replace an earlier BUILD_DIR/synth (only one this command wrote)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")


def _add_compare(sub) -> None:
    p = sub.add_parser("compare", parents=[_debug_option()],
                       help="the SNN against its FINN-style QNN twin: both compiled for one "
                       "goal, synthesized (Yosys) and simulated -> one table")
    p.add_argument("model", help="a QONNX model from `pascal-fpga export`")
    p.add_argument("--out", required=True,
                   help="the folder to write (snn/ and qnn/ builds, compare.json, compare.md)")
    p.add_argument("--force", action="store_true",
                   help="replace an earlier comparison in --out (only one this command wrote)")
    p.add_argument("--target-fps", type=float,
                   help="compile both for this many images/s, each with its own folding search "
                   "(default: both at the default folding)")
    p.add_argument("--clock-mhz", type=float, default=100.0,
                   help="the common clock of the throughput figures and the search (default 100)")
    p.add_argument("--pnr", action="store_true",
                   help="also place and route both tops on an ECP5-85F (nextpnr-ecp5): routed "
                   "Fmax and images/s at each design's own Fmax")
    p.add_argument("--dsp-only", action="store_true",
                   help="skip the all-LUT synthesis (-nodsp), for large networks (not with --pnr)")
    p.add_argument("--images", type=_count, default=256, metavar="N",
                   help="test images (of the model's data set, else random pixels) for the "
                   "cycle model (default 256)")
    p.add_argument("--calibration-images", type=int, default=64,
                   help="images whose activity sizes the FIFOs and drives the searches "
                   "(default 64)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")


def _add_run(sub) -> None:
    p = sub.add_parser("run", parents=[_debug_option()],
                       help="classify a .npy of raw images with a build (board or simulators)")
    p.add_argument("build_dir", help="a build folder from compile")
    p.add_argument("--input", required=True,
                   help=".npy (N, C, H, W) of what the model takes: raw integer pixels for our "
                   "models, a foreign model's own input (its build's input adapter quantizes it)")
    p.add_argument("--labels", metavar="FILE.npy",
                   help="their integer labels (N,): prints the accuracy (and adds it to --json)")
    p.add_argument("--backend", default="cyclesim", choices=ACCELERATOR_BACKENDS,
                   help="what runs the build: cyclesim (the cycle-accurate model), csim (the HLS "
                   "C simulation, g++) or pynq (the bitstream on a PYNQ board)")
    p.add_argument("--bitfile", help="the bitstream (pynq backend)")
    p.add_argument("--json", action="store_true", help="print classes and logits as JSON")


def _add_demo(sub) -> None:
    p = sub.add_parser("demo", parents=[_debug_option()],
                       help="the whole pipeline on the embedded digits set")
    p.add_argument("--out", default="runs/demo", help="output folder (default runs/demo)")
    p.add_argument("--epochs", type=int, default=None,
                   help="training epochs (default: the demo's, 30)")
    p.add_argument("--zoo", action="store_true",
                   help="skip training and adapt: take the trained digits networks from the "
                        "model zoo (shipped with the package), made with the demo's own settings")
    p.add_argument("--force", action="store_true",
                   help="replace an earlier demo in --out (only a pascal-fpga demo is replaced)")


def _add_models(sub) -> None:
    p = sub.add_parser("models", parents=[_debug_option()],
                       help="list the model specs and the trained networks (model zoo) that ship "
                       "with the package, and where they are")
    p.add_argument("--json", action="store_true", help="print the list as JSON")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="pascal-fpga", description=DESCRIPTION,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"pascal-fpga {__version__}")
    _global_options(parser, False)
    parser.set_defaults(verbosity=0)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser,
                                metavar="COMMAND")
    _add_train(sub)
    _add_eval(sub)
    _add_snn(sub)
    _add_adapt(sub)
    _add_export(sub)
    _add_compile(sub)
    _add_verify(sub)
    _add_simulate(sub)
    _add_synth(sub)
    _add_compare(sub)
    _add_run(sub)
    _add_demo(sub)
    _add_models(sub)
    return parser


def _distributed_env() -> tuple[int, int]:
    """(world size, rank) from torchrun's environment."""
    return int(os.environ.get("WORLD_SIZE", "1")), int(os.environ.get("RANK", "0"))


TRAIN_DEFAULTS = {"batch_size": 128, "lr": 2e-3, "weight_decay": 0.0, "seed": 0,
                  "augment": "auto", "crop_pad": 4}


def _device(name: str, world_size: int = 1):
    """The torch device of --device; under torchrun on GPUs, this process's GPU (LOCAL_RANK)."""
    # deferred: torch (module docstring)
    import torch

    from .train.trainer import resolve_device

    if world_size > 1 and name != "cpu" and torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")) % torch.cuda.device_count())
    return resolve_device(name)


def _check_amp(amp: bool, device) -> None:
    # deferred: torch (module docstring)
    import torch

    if amp and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise PascalError(f"--amp: {torch.cuda.get_device_name(device)} has no bfloat16 support; "
                          f"train without --amp")


def _training_settings(args) -> None:
    """Fill --batch-size, --lr, --weight-decay and --seed: from the run with --resume (a resumed
    run repeats an uninterrupted one only with the same settings: a different value given is an
    error), else from TRAIN_DEFAULTS."""
    stored: dict = {}
    checkpoint = Path(args.out) / "checkpoint.pt"
    if args.resume and checkpoint.is_file():
        # deferred: torch (module docstring)
        from .train.trainer import load_checkpoint

        config = load_checkpoint(checkpoint).get("config")
        stored = config if isinstance(config, dict) else {}
    for key, default in TRAIN_DEFAULTS.items():
        given, kept = getattr(args, key), stored.get(key)
        if not isinstance(kept, type(default)) or isinstance(kept, bool):
            kept = None
        if given is None:
            setattr(args, key, kept if kept is not None else default)
        elif kept is not None and given != kept:
            flag = "--" + key.replace("_", "-")
            raise PascalError(f"{flag} {given}: the run in {args.out} was trained with {flag} "
                              f"{kept}; --resume continues it with its own settings (leave "
                              f"{flag} out)")


def cmd_train(args) -> int:
    # deferred: torch and Brevitas (module docstring)
    from .train import TrainConfig, train
    from .train.trainer import check_augment, check_training_args

    world_size, rank = _distributed_env()
    shipped = bundled.spec_path(args.spec) if not Path(args.spec).exists() else None
    if shipped is not None:  # `train digits-cnn`: the spec that ships with the package
        log.info(f"train: the shipped spec {shipped}")
        args.spec = str(shipped)
    _training_settings(args)
    if not args.resume and not args.force and artefact_kind(Path(args.out)) == "run":
        raise PascalError(f"--out {args.out}: already holds a run; use --resume to continue it, "
                          f"--force to replace it, or choose another --out")
    if args.resume and args.force:
        raise PascalError("--resume continues the run in --out and --force replaces it: choose one")
    out = check_output(args.out, "run", force=args.force, existing_ok=args.resume,
                       inputs=[args.data_dir] if args.resume else [args.spec, args.data_dir])
    check_training_args(args.epochs, args.batch_size, args.lr, args.weight_decay, args.seed)
    check_augment(args.augment, args.crop_pad)
    device = _device(args.device, world_size)
    _check_amp(args.amp, device)
    config = TrainConfig(spec=args.spec, dataset=args.dataset, data_dir=args.data_dir,
                         epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                         weight_decay=args.weight_decay, seed=args.seed, out=args.out,
                         resume=args.resume, quantized=not args.float_net,
                         world_size=world_size, rank=rank, device=str(device), amp=args.amp,
                         augment=args.augment, crop_pad=args.crop_pad)
    if world_size > 1:
        import torch.distributed as dist

        # nccl reduces GPU tensors only, gloo CPU tensors
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    try:
        progress = args.verbosity >= 0
        if args.resume or rank != 0:  # a resumed run goes on in place (atomic files)
            metrics = train(config, progress=progress)
        else:  # a new run is built aside and replaces an old one (--force) only when complete
            with staged_folder(out, "run", replace=args.force) as staging:
                metrics = train(config, progress=progress, write_to=staging)
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
    # deferred: torch and Brevitas (module docstring)
    from .train import evaluate_run

    result = evaluate_run(args.run_dir, args.dataset, args.data_dir,
                          device=str(_device(args.device)))
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{result['name']} on {result['dataset']}: test accuracy "
              f"{100 * result['test_accuracy']:.2f}% ({result['test_images']} images)")
    return 0


def cmd_snn(args) -> int:
    # deferred: torch and Brevitas (module docstring)
    from .snn.report import snn_report, write_report

    check_output(Path(args.run_dir) / "snn", "snn-report", force=True, option="report folder")
    report = snn_report(args.run_dir, args.dataset, args.data_dir, args.samples,
                        float_mode=not args.no_float, progress=args.verbosity >= 0,
                        device=str(_device(args.device)))
    folder = write_report(Path(args.run_dir), report)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(format_snn_report(report))
    print(f"report and plots in {folder}")
    return 0


def format_snn_report(report: dict) -> str:
    """The human-readable summary of an snn report."""
    pct = lambda v: f"{100 * v:.2f}%"  # noqa: E731
    bre = report["brevitas_vs_integer"]
    lines = [
        f"{report['name']} on {report['dataset']}, {report['samples']} test images, "
        f"L per layer {report['levels']}",
        f"  ANN (Brevitas) accuracy      {pct(report['ann_accuracy'])}",
        f"  SNN (PASCAL, integer)        {pct(report['snn_accuracy'])}   samples differing from "
        f"the integer ANN (output or any level): {report['mismatched_samples']}",
        f"  Brevitas vs integer ANN      {bre['differing_levels']} differing levels "
        f"({bre['ties']} at ties), {bre['prediction_differs']} differing predictions "
        f"({bre['prediction_ties']} where two classes share the integer maximum)",
    ]
    if "float_snn" in report:
        fl = report["float_snn"]
        lines.append(f"  SNN (PASCAL, float32)        {pct(fl['accuracy'])}   differing levels "
                     f"{fl['differing_levels']} ({fl['ties']} at ties), "
                     f"{fl['mismatched_samples']} samples")
    lines.append(f"  latency                      {report['latency_timesteps']} timesteps "
                 f"(integrate + correct, summed over layers)")
    base = "  ".join(f"T={t}: {100 * v:.2f}" for t, v in report["baseline"].items())
    lines.append(f"  baseline QCFS conversion (%) {base}")
    en = report["energy"]
    lines.append(f"  spikes per image {report['spikes_per_image']:.0f}, ACs per image "
                 f"{report['synops_per_image']:.0f}, first-layer MACs {report['first_layer_macs_per_image']:.0f}")
    lines.append(f"  energy per image: SNN {en['snn_uj_per_image']:.3f} uJ, ANN "
                 f"{en['ann_uj_per_image']:.3f} uJ ({en['ann_over_snn']:.2f}x; {en['convention']})")
    lines.append("  layer        T_in   L  window  spikes/img  inhib/img    ACs/img")
    for l in report["layers"]:
        lines.append(f"  {l['layer']:>2} {l['kind']:<8} {l['t_in']:>5} {l['levels'] or '-':>3} "
                     f"{l['window']:>7} {l['spikes_per_image']:>11.1f} {l['inhibitory_per_image']:>10.1f} "
                     f"{l['synops_per_image']:>9.0f}")
    return "\n".join(lines)


def _candidates(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise PascalError(f"--candidates must be integers separated by commas, got {text!r}")
    if not values or min(values) < 1:
        raise PascalError(f"--candidates must be level counts >= 1, got {text!r}")
    return values


def cmd_adapt(args) -> int:
    # deferred: torch and Brevitas (module docstring)
    from .snn.adapt import adapt_run
    from .train.trainer import check_augment

    check_augment(args.augment, args.crop_pad)
    check_output(args.out, "run", force=args.force, inputs=[args.run_dir])
    device = _device(args.device)
    _check_amp(args.amp, device)
    report = adapt_run(args.run_dir, args.out, epochs=args.epochs, budget=args.budget,
                       candidates=_candidates(args.candidates), calibration_images=args.calibration,
                       lr=args.lr, progress=args.verbosity >= 0, replace=args.force,
                       device=str(device), amp=args.amp, augment=args.augment,
                       crop_pad=args.crop_pad)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"Adaptive Layerwise levels (budget: mean L <= {report['budget']}, candidates "
          f"{report['candidates']})")
    print("  layer  type     metric     A      b     L before  L after")
    for l in report["layers"]:
        print(f"  {l['layer']:>5}  {l['type']:<7} {l['metric']:>7.3f} {l['A']:>6.2f} {l['b']:>6.2f} "
              f"{l['levels_before']:>9} {l['levels_after']:>8}")
    print(f"  mean L {report['mean_levels_before']:.2f} -> {report['mean_levels_after']:.2f}; "
          f"accuracy {100 * report['accuracy_before']:.2f}% -> "
          f"{100 * report['accuracy_switched']:.2f}% (L switched) -> "
          f"{100 * report['accuracy_after']:.2f}% after {report['fine_tune_epochs']} epochs; "
          f"run in {args.out}")
    return 0


def cmd_export(args) -> int:
    # deferred: torch, Brevitas and qonnx (module docstring)
    from .ir.export import export_run

    check_output_file(args.out, force=args.force)
    info = export_run(args.run_dir, args.out)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    levels = " ".join(str(row["levels"]) for row in info["activations"])
    print(f"{info['name']}: exported to {args.out} ({len(info['activations'])} QCFS activations, "
          f"L = {levels}, rounding HALF_UP)")
    return 0


def cmd_compile(args) -> int:
    # deferred: qonnx (module docstring)
    from .flows.compile import CompileConfig, compile_model

    folding_file = args.folding if args.folding not in (None, "serial", "full") else None
    check_output(args.out, "build", force=args.force or args.resume,
                 inputs=[args.model, folding_file])
    config = CompileConfig(lut_budget=args.lut_budget, zero_skip=not args.dense,
                           calibration_images=args.calibration_images,
                           save_intermediate=not args.no_intermediate,
                           stop_after=args.stop_after, arch=args.arch, fpga=args.fpga)
    # compile prints a line per step when asked for progress: to the log (stderr), so that
    # stdout keeps only the result
    with contextlib.redirect_stdout(LogStream("compile: ")):
        result = compile_model(args.model, args.out, args.folding, part=args.part,
                               clock_mhz=args.clock_mhz, target_fps=args.target_fps,
                               config=config, resume=args.resume,
                               progress=args.verbosity >= 0)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    if "stopped_after" in result:
        print(f"{result['name']}: stopped after step {result['stopped_after']}; the IR so far "
              f"in {args.out}/{result['ir']}")
        return 0
    qnn_arch = result.get("arch") == "qnn"
    print(f"{result['name']}: spiking IR in {args.out}/{result['ir']}, HLS project in "
          f"{args.out}/hls (part {result['hls']['part']}, {result['hls']['clock_mhz']:g} MHz)")
    if qnn_arch:
        print("  architecture: the FINN-style QNN twin (each level in binary, one cycle per "
              "input group; T_in below is the SNN's)")
    print("  layer        op                 in -> out           T_in   L  acc bits  PE SIMD "
          "schedule")
    for row in result["layers"]:
        shape = lambda v: "x".join(str(d) for d in v)  # noqa: E731
        schedule = "-" if row.get("zero_skip") is None else "qnn" if qnn_arch else (
            "zero-skip" if row["zero_skip"] else "dense")
        print(f"  {row['layer']:<12} {row['op']:<18} {shape(row['in_shape']):>8} -> "
              f"{shape(row['out_shape']):<9} {row['t_in']:>4} {row['levels'] or '-':>3} "
              f"{row.get('acc_bits') or '-':>9} {row['pe']:>3} {row['simd']:>4} {schedule}")
    print(f"  steps: {', '.join(step['step'] for step in result['steps'])} (one model each in "
          f"{args.out}/ir)")
    if result.get("fit"):
        for line in fit_lines(result["fit"]):
            print(f"  {line}")
    search = result.get("folding_search")
    if search is not None:
        missed = [row["layer"] for row in search["layers"] if not row.get("met", True)]
        goal = (f"target {search['target_fps']:g} images/s" if search.get("target_fps")
                else f"LUT budget {search['lut_budget']}")
        sizing = result.get("fifo_sizing", {})
        achieved = (f", achieved {search['clock_mhz'] * 1e6 / sizing['mean_interval']:.0f} "
                    f"images/s mean (cycle model, {sizing['calibration']})"
                    if sizing.get("mean_interval") else "")
        print(f"  folding search: {goal} at {search['clock_mhz']:g} MHz{achieved}" +
              (f"; cannot reach it: {', '.join(missed)}" if missed else ""))
        if "qnn" in search:
            snn, qnn = search["snn"], search["qnn"]
            print(f"  SNN: {snn['images_per_s_mean']:.0f} images/s mean, "
                  f"{snn['images_per_s_worst']:.0f} worst case, {snn['lut']} LUT "
                  f"({snn['images_per_s_mean'] / snn['lut'] * 1000:.1f} images/s per kLUT); "
                  f"QNN twin at its own folding: {qnn['images_per_s']:.0f} images/s, "
                  f"{qnn['lut']} LUT ({qnn['images_per_s'] / qnn['lut'] * 1000:.1f} images/s "
                  f"per kLUT)")
    return 0


def cmd_verify(args) -> int:
    # deferred: torch and qonnx (module docstring)
    from .flows.verify import verify_build, verify_images

    build = load_build(args.build_dir)
    if args.random == 0:  # --random without N: --images random images
        if args.samples is None:
            raise PascalError("--random: how many images? --random N, or --random --images N")
        args.random, args.samples = args.samples, None
    if args.random is not None and (args.dataset or args.samples):
        raise PascalError("--random replaces the data set: do not combine it with --dataset or "
                          "--samples")
    if args.input is not None and (args.dataset or args.random is not None):
        raise PascalError("--input replaces the data set: do not combine it with --dataset or "
                          "--random")
    if args.labels is not None and args.input is None:
        raise PascalError("--labels goes with --input FILE.npy")
    if args.run is not None and not Path(args.run).is_dir():
        raise PascalError(f"--run {args.run}: no such run directory")
    images, labels, what = verify_images(build, args.dataset, args.data_dir, args.samples,
                                         args.random, args.seed, input_file=args.input,
                                         labels_file=args.labels)
    headers = None
    if args.csim:
        headers = ap_types_dir(os.environ.get("XILINX_HLS"))
    # verify's bar is tqdm's own: on a terminal only
    report = verify_build(args.build_dir, images, labels,
                          progress=args.verbosity >= 0,  # a bar, or log lines off a terminal
                          snn=not args.no_snn, run_dir=args.run, csim_headers=headers,
                          rtlsim=args.rtlsim)
    report["images"] = what
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"{report['name']}: verify on {what}")
        for check in report["checks"]:
            extra = ""
            if check["name"] == "rtl_cycles_vs_cyclesim":
                first = check["first_mismatch"]
                print(f"  {check['name']:<18} compared {check['compared']:>6}  mismatched "
                      f"{check['mismatched']:>4}  (stage-image pairs: first input and last "
                      f"output cycle; {check['cycles']} RTL cycles simulated"
                      + (f"; first mismatch {first}" if first else "") + ")")
                continue
            if "largest_logit_difference" in check:
                extra = f", largest logit difference {check['largest_logit_difference']:.3g}"
            print(f"  {check['name']:<18} compared {check['compared']:>6}  mismatched "
                  f"{check['mismatched']:>4}  ties {check['ties']:>4}  (differing levels "
                  f"{check['differing_levels']}, at ties {check['tie_levels']}{extra})")
            counters = check.get("loop_counters")
            if counters:
                print(f"  {'':<18} loop counters (reads, writes, slots per stage and image) "
                      f"against the cycle model: compared {counters['compared']}, mismatched "
                      f"{counters['mismatched']}" + (f" (first: {counters['first_mismatch']})"
                                                     if counters["first_mismatch"] else ""))
        for skipped in report["skipped"]:
            print(f"  {skipped['name']:<18} skipped: {skipped['reason']}")
        if "accuracy" in report:
            print("  accuracy: " + ", ".join(f"{view} {100 * acc:.2f}%"
                                             for view, acc in report["accuracy"].items()))
        print("  all views agree" + (" (ties aside)" if any(c["ties"] for c in report["checks"])
                                     else "") if report["passed"] else
              "  MISMATCH: some differences are not ties, or a loop counter differs")
    return 0 if report["passed"] else 1


def cmd_simulate(args) -> int:
    # deferred: torch and qonnx (module docstring)
    from .flows.simulate import simulate_build, write_report
    from .flows.verify import verify_images

    build = load_build(args.build_dir)
    if args.images < 1:
        raise PascalError(f"--images must be >= 1, got {args.images}")
    count = args.random or args.images  # --random N, else --images (also with a bare --random)
    images, labels, what = verify_images(build, args.dataset, args.data_dir, count,
                                         count if args.random is not None else None)
    report = simulate_build(args.build_dir, images, labels, backend=args.schedule)
    folder = write_report(args.build_dir, report)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    cm = report["cycle_model"]
    snn, qnn = report["snn"], report["qnn"]
    total = report["estimates"]["total"]
    print(f"{report['name']} on {what}, {report['clock_mhz']:g} MHz:")
    print(f"  interval: mean {cm['interval_cycles']['mean']:.0f} cycles = "
          f"{cm['fps_mean']:.0f} images/s, p99 {cm['interval_cycles']['p99']:.0f}, worst case "
          f"{cm['worst_case_interval_cycles']} = {cm['fps_worst_case']:.0f} images/s; latency "
          f"mean {cm['latency_cycles']['mean']:.0f} cycles ({cm['latency_us_mean']:.1f} us)")
    arch = report.get("arch", "snn")
    print(f"  estimate: {arch.upper()} {total['LUT']} LUT, {total['FF']} FF, "
          f"{total['BRAM18']} BRAM18, {total['DSP']} DSP")
    print(f"  SNN{'' if arch == 'snn' else ' at this folding'}: "
          f"{snn['images_per_s_mean']:.0f} images/s, {snn['lut']} LUT = "
          f"{snn['images_per_s_per_klut_mean']:.1f} images/s per kLUT (mean), "
          f"{snn['images_per_s_per_klut_worst']:.1f} (worst case)")
    print(f"  FINN-style QNN twin, own folding for {report['qnn_target_fps']:.0f} images/s: "
          f"{qnn['images_per_s']:.0f} images/s, {qnn['lut']} LUT = "
          f"{qnn['images_per_s_per_klut']:.1f} images/s per kLUT")
    print(f"  energy {report['energy']['uj_per_image']:.3f} uJ per image; cycle model "
          f"{cm['images_per_second']:.0f} images/s" + (
              f"; accuracy {100 * report['accuracy']:.2f}%" if "accuracy" in report else ""))
    print(f"  report in {folder}")
    return 0


def _read_npy(path: Path):
    """A .npy array, its header checked against the file before anything is allocated: a header
    that declares more data than the file holds (6.4e12 elements in a few bytes) is one line, not
    a MemoryError; object arrays are refused (they would need unpickling)."""
    if not path.is_file():
        raise PascalError(f"{path}: no such file")
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            read_header = {(1, 0): np.lib.format.read_array_header_1_0,
                           (2, 0): np.lib.format.read_array_header_2_0}.get(version)
            if read_header is None:
                raise ValueError(f"unknown .npy version {version}")
            shape, _, dtype = read_header(f)
            payload = path.stat().st_size - f.tell()
    except (ValueError, OSError, SyntaxError, TypeError) as exc:
        raise PascalError(f"{path}: not a .npy array ({str(exc)[:120]})") from exc
    if dtype.hasobject:
        raise PascalError(f"{path}: holds Python objects ({dtype}); a numeric array is needed")
    needed = math.prod(shape) * dtype.itemsize
    if needed != payload:
        raise PascalError(f"{path}: its header declares a {'x'.join(map(str, shape))} array of "
                          f"{dtype} ({needed} bytes) but the file holds {payload} bytes of data")
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise PascalError(f"{path}: not a .npy array ({str(exc)[:120]})") from exc


def cmd_run(args) -> int:
    path = Path(args.input)
    images = _read_npy(path)
    labels = None
    if args.labels is not None:
        labels = _read_npy(Path(args.labels))
        if labels.shape != (len(images),) or not np.issubdtype(labels.dtype, np.integer):
            raise PascalError(f"{args.labels}: expected {len(images)} integer labels (N,), got "
                              f"{labels.dtype} of shape {list(labels.shape)}")
    accel = Accelerator(args.build_dir, backend=args.backend, bitfile=args.bitfile,
                        xilinx_hls=os.environ.get("XILINX_HLS"))
    started = time.perf_counter()
    try:
        result = accel.predict(images)
    except PascalError as exc:
        raise PascalError(f"{path}: {exc}") from exc
    seconds = time.perf_counter() - started
    accuracy = None if labels is None else float(np.mean(result.classes == labels))
    if args.json:
        out = {"classes": result.classes.tolist(), "logits": result.logits.tolist()}
        if accuracy is not None:
            out["accuracy"] = accuracy
        print(json.dumps(out))
    else:
        print(" ".join(str(c) for c in result.classes.tolist()))
        print(f"{len(images)} images on {args.backend} in {seconds:.2f} s"
              + (f"; accuracy {100 * accuracy:.2f}%" if accuracy is not None else "")
              + ("" if args.backend == "pynq" else " (a simulator's speed, not the hardware's: "
                 "pascal-fpga simulate gives the hardware's images/s)"), file=sys.stderr)
    return 0


def cmd_demo(args) -> int:
    # deferred: torch, Brevitas and qonnx (module docstring)
    from .flows.demo import run_demo

    check_output(args.out, "demo", force=args.force)
    run_demo(Path(args.out), bundled.models_dir(), epochs=args.epochs,
             progress=args.verbosity >= 0, xilinx_hls=os.environ.get("XILINX_HLS"), zoo=args.zoo)
    return 0


def cmd_models(args) -> int:
    folder = bundled.models_dir()
    specs, zoo = bundled.specs(), bundled.zoo()
    if args.json:
        print(json.dumps({"folder": str(folder),
                          "specs": {name: str(path) for name, path in specs.items()},
                          "zoo": {name: str(path) for name, path in zoo.items()}}, indent=2))
        return 0
    print(f"specs in {folder} (pascal-fpga train NAME --dataset ... takes them by name):")
    print("  " + " ".join(specs))
    print(f"trained networks in {folder / 'zoo'} (run folders for eval, adapt, export; copy one "
          f"before snn, which writes its report into the folder):")
    for name, path in zoo.items():
        print(f"  {name:<18} {path}")
    return 0


# commands that import torch and Brevitas
_HEAVY = {"train", "eval", "snn", "adapt", "export", "verify", "demo"}


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the process is, so that it unwinds like Ctrl-C: every staging
    folder is removed on the way out and nothing half-written is left."""


def _raise_terminated(signum, frame) -> None:
    raise Terminated()


def _exit_interrupted(signum, frame) -> None:
    print(f"pascal-fpga: {'terminated' if signum == signal.SIGTERM else 'interrupted'}",
          file=sys.stderr)
    os._exit(128 + signum)


def _import_libraries() -> None:
    """Import torch and Brevitas with Ctrl-C ending the process: Brevitas' import has bare
    ``except:`` clauses that would swallow the KeyboardInterrupt and go on."""
    # signal handlers belong to the main thread (main() may run in another, e.g. in tests)
    guarded = threading.current_thread() is threading.main_thread()
    previous = {sig: signal.signal(sig, _exit_interrupted)
                for sig in (signal.SIGINT, signal.SIGTERM)} if guarded else {}
    try:
        from . import model  # noqa: F401  (imports torch and brevitas)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def cmd_synth(args) -> int:
    # deferred: qonnx (module docstring)
    from .flows.synth import print_report, synth_build

    report = synth_build(args.build_dir, args.part, pnr=args.pnr, layers=not args.no_layers,
                         progress=args.verbosity >= 0, seed=args.seed,
                         force=args.force, dsp=not args.no_dsp)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_report(report)
    return 0


def cmd_compare(args) -> int:
    # deferred: qonnx (module docstring)
    from .flows.compare import compare_model, markdown

    if args.images < 1:
        raise PascalError(f"--images must be >= 1, got {args.images}")
    for value, flag in ((args.target_fps, "--target-fps"), (args.clock_mhz, "--clock-mhz")):
        if value is not None and not value > 0:
            raise PascalError(f"{flag} must be positive, got {value}")
    if args.dsp_only and args.pnr:
        raise PascalError("the place and route runs on the all-LUT synthesis: --dsp-only "
                          "cannot go with --pnr")
    check_output(args.out, "compare", force=args.force, inputs=[args.model])
    report = compare_model(args.model, args.out, target_fps=args.target_fps,
                           clock_mhz=args.clock_mhz, pnr=args.pnr, images=args.images,
                           calibration_images=args.calibration_images,
                           progress=args.verbosity >= 0, dsp_only=args.dsp_only)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(markdown(report), end="")
        print(f"(in {args.out}/compare.md and compare.json)")
    return 0


COMMANDS = {"train": cmd_train, "eval": cmd_eval, "snn": cmd_snn, "adapt": cmd_adapt,
            "export": cmd_export, "compile": cmd_compile, "verify": cmd_verify,
            "simulate": cmd_simulate, "synth": cmd_synth, "compare": cmd_compare, "run": cmd_run,
            "demo": cmd_demo, "models": cmd_models}


def _interrupt_behind(exc: BaseException) -> KeyboardInterrupt | None:
    """The Ctrl-C or SIGTERM that caused ``exc``, if any: a signal that lands while a compiled
    module initialises comes back as its ImportError (pybind11: "initialization failed"), which
    a step may then report as a failure of its own."""
    seen = 0
    while exc is not None and seen < 32:
        if isinstance(exc, KeyboardInterrupt):
            return exc
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return None


def _interrupted(exc: KeyboardInterrupt) -> int:
    if isinstance(exc, Terminated):
        print("pascal-fpga: terminated", file=sys.stderr)
        return 128 + signal.SIGTERM
    print("pascal-fpga: interrupted", file=sys.stderr)
    return 130


def _disk_full(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # SIGTERM (kill, a batch system, torchrun) unwinds like Ctrl-C; handlers belong to the main
    # thread (main() may run in another, e.g. in tests)
    guarded = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _raise_terminated) if guarded else None
    try:
        with cli_logging(args.verbosity):
            log.debug(f"pascal-fpga {__version__}: {args}")
            if args.command in _HEAVY:
                _import_libraries()
            return COMMANDS[args.command](args)
    except PascalError as exc:
        interrupt = _interrupt_behind(exc)
        if interrupt is not None:
            return _interrupted(interrupt)
        if args.debug:
            traceback.print_exc()
        print(f"pascal-fpga {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        if not _disk_full(exc):
            raise
        if args.debug:
            traceback.print_exc()
        where = f" writing {exc.filename}" if exc.filename else ""
        print(f"pascal-fpga {args.command}: error: the disk is full{where} ({exc.strerror}); "
              f"nothing half-written is left: free some space and run it again", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        return _interrupted(exc)
    finally:
        if guarded:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
