"""`pascal-fpga compile`: QONNX model -> BUILD_DIR (the spiking IR, the HLS project, the RTL and
the driver).

The options are one dataclass, :class:`CompileConfig` (recorded in build.json), and the work is a
list of named steps, in the manner of FINN's builder: each step is a function

    step(model: ModelWrapper, ctx: BuildContext) -> ModelWrapper

that takes the model the step before returned and gives the next one its own. :class:`BuildContext`
holds what a step reads besides the model (the config, the build's name and input, the
calibration images) and where it writes (the build folder and build.json's record). The built-in
steps (:func:`builtin_steps`, in their default order) document what each expects and guarantees;
``compile_model(..., steps=[...])`` runs another list, of built-in steps' names and functions of
your own (:func:`resolve_steps`). ``--stop-after STEP`` ends the build after one step, and
``--resume`` goes on from there.

BUILD_DIR/
  build.json        where the model came from (run, data set), the config, the steps, the final IR
  ir/00_qonnx.onnx  the input model; then one model per step (NN_<step>.onnx): the passes of
                    pascal_fpga/ir/transforms.py, apply_folding, size_fifos (the final IR)
  ir/folding.json   PE, SIMD, schedule and FIFO depths per layer, as used
  ir/layers.json    the layer table (shapes, L, T_in/T_out, weight/accumulator/threshold bits)
  ir/layers.md      the same table for reading
  hls/, rtl/, driver/  the HLS project, the RTL and the host driver

Everything is built in a temporary folder and moved into place at the end: a failed compile
leaves no BUILD_DIR behind (and an existing one untouched).

Names reach generated files (the Makefile, run_hls.tcl, C++ comments, folder names), so they are
checked here, before any work: the model's name is its metadata's name (an unsafe one is an
error), else its spec's name, else the model file's stem with every character other than a
letter, digit, '_', '-' or '.' replaced by '_' (a file name is the user's own choice: it is
cleaned, not refused); ``--part`` must be a plain part name. :func:`load_build` checks every field
of build.json that later commands read, so a damaged or hand-edited build is one clear error.
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
import re
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp

from ..buildfolder import BUILD_FILE, load_build, load_folding, load_qonnx, read_onnx, write_json
from ..datasets import DATASETS, load_dataset
from ..driver import board
from ..errors import PascalError
from ..hw.apply import PRESETS as FOLDING_PRESETS, ApplyFolding, default_folding, preset_folding
from ..hw.backends.hls import DEFAULT_CLOCK_MHZ, DEFAULT_PART, generate_hls, sample_images
from ..hw.backends.rtl import generate_rtl
from ..hw.design import ARCH_KEY, ARCHS, Design, design_from_ir, ir_arch
from ..ir.execute import ir_outputs
from ..ir.export import SOURCE_KEY, model_source
from ..ir.adapter import input_adapter
from ..ir.transforms import (Step as Pass, input_quantizer, layer_nodes, output_offset,
                             output_scale, pipeline)
from ..names import check_name, check_part
from ..hw.parts import COMFORT, fit_report, fpga, weight_bits
from ..perf.estimates import design_resources
from ..perf.folding import search_folding
from ..perf.timing import simulate as simulate_cycles, size_fifos
from ..perf.twin import qnn_twin
from ..perf.values import run_values
from ..staging import staged_folder

Step = Callable[[ModelWrapper, "BuildContext"], ModelWrapper]
"""A compile step: the model in, the model for the next step out (see the module docstring)."""

# a step's name names its model, ir/NN_<name>.onnx, which load_build accepts
_STEP_NAME = re.compile(r"[a-z_]{1,40}")


@dataclass
class CompileConfig:
    """Everything ``compile`` is asked for (recorded in build.json as ``config``). Read from the
    command line (``pascal-fpga compile``) or built in Python; FINN's build config in spirit."""

    folding: str | None = None
    """A folding config (JSON file), or a preset: ``serial`` or ``full``; None: the default (every
    stream carries the largest divisor of its channels up to 8 channels per word)."""
    target_fps: float | None = None
    """Search the folding: every stage's mean cycles per image within clock / target_fps, fewest
    estimated LUTs (perf/folding.py). Not with ``folding``."""
    lut_budget: int | None = None
    """Search the folding: the highest throughput whose estimated LUTs fit this budget."""
    clock_mhz: float = DEFAULT_CLOCK_MHZ
    """The clock the HLS project asks for and the throughput figures assume."""
    part: str = DEFAULT_PART
    """The FPGA part of the Vitis project."""
    zero_skip: bool = True
    """Event-driven (zero-skipping) accumulation in every weighted layer unless the folding
    config or the search says otherwise (the search picks per layer); False: the dense,
    constant-interval schedule everywhere (the search too)."""
    calibration_images: int = 64
    """Images whose activity sizes the FIFOs and drives the folding search (the model's data
    set's first test images when it names one and the data is at its default place, else random
    pixels)."""
    save_intermediate: bool = True
    """Save every step's model in ir/ (FINN's save_intermediate_models); False keeps only the
    input model and the final IR (a VGG-11's eight models are 300 MB: every step holds all
    weights)."""
    stop_after: str | None = None
    """Stop after this step (``compile --stop-after``); the build then holds the steps so far.
    Checked against the steps run (:func:`compile_model`)."""
    fpga: str | None = None
    """A board to fit (``pynq-z2``, ``zcu104``, ``u250``, ``ecp5-85f``; pascal_fpga/hw/parts.py):
    compile reports whether the design's estimate fits it and what binds (build.json ``fit``).
    Given alone (no ``folding``, ``target_fps`` or ``lut_budget``), the folding search looks for
    the fastest design within 80% of its LUTs (a Xilinx board; the ECP5's LUT4s are not what
    the estimate counts); on a Xilinx board with the default ``part``, ``part`` becomes the
    board's."""
    arch: str = "snn"
    """The architecture: ``snn`` (PASCAL's spiking accelerator) or ``qnn`` (its FINN-style QNN
    twin: the same integer network with each level in binary, every input group one cycle, its
    own folding search; docs/design.md, section 4.8). Recorded in the IR's metadata
    (``pascal_arch``), so that every later command builds the same design."""

    def check(self) -> None:
        if self.target_fps is not None and self.folding is not None:
            raise PascalError("--target-fps chooses the folding: do not combine it with --folding")
        if self.lut_budget is not None and (self.folding is not None or
                                            self.target_fps is not None):
            raise PascalError("--lut-budget chooses the folding: do not combine it with "
                              "--folding or --target-fps")
        _check_positive(self.target_fps, "--target-fps")
        _check_positive(self.clock_mhz, "--clock-mhz")
        _check_positive(self.lut_budget, "--lut-budget")
        check_part(self.part, "--part")
        if self.arch not in ARCHS:
            raise PascalError(f"--arch {self.arch!r}: one of {', '.join(ARCHS)}")
        if self.fpga is not None:
            fpga(self.fpga)
        if self.arch == "qnn" and not self.zero_skip:
            raise PascalError("--dense is an SNN schedule: the QNN twin (--arch qnn) has one "
                              "schedule; leave --dense out")
        if not isinstance(self.calibration_images, int) \
                or not 1 <= self.calibration_images <= 10000:
            raise PascalError(f"--calibration-images must be an integer in 1..10000, got "
                              f"{self.calibration_images!r}")

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class BuildContext:
    """What a compile step reads besides the model, and where it writes.

    A step writes its files under ``folder`` and records itself in build.json, once, with
    :meth:`save_model` (its model, as ir/NN_<step>.onnx) or :meth:`wrote` (a folder it made); a
    step that records nothing has its model recorded by the runner like a pass's."""

    config: CompileConfig
    folder: Path
    """The build being written: a staging folder, moved to BUILD_DIR once every step is done."""
    record: dict[str, Any]
    """build.json as it grows: ``record["steps"]`` holds one entry per step run, and steps add
    their sections (``folding_search``, ``fifo_sizing``, ``ir``, ``hls``, ``rtl``)."""
    name: str
    """The build's checked name (the HLS project's and the RTL top's)."""
    spec: dict[str, Any]
    """``spec["input"]``: channels, height, width, bits; for a model exported from a run, its
    whole spec."""
    dataset: str | None = None
    """The data set the model names (its first test images are the calibration images)."""
    folding: dict[str, Any] | None = None
    """The folding config file ``config.folding`` names, read and checked before any step."""
    _calibration: tuple[np.ndarray, str] | None = field(default=None, init=False, repr=False)
    _design: tuple[tuple, Design, bool] | None = field(default=None, init=False, repr=False)

    def design(self, model: ModelWrapper, check: bool = True) -> Design:
        """The hardware design of the model's IR, built once per state of its layer nodes (a
        step that changes a folding or a depth gets a new one; every other step reuses it);
        ``check=False``: its streams not checked (a lowered IR before its folding)."""
        key = (ir_arch(model),) + tuple(node.SerializeToString() for node in layer_nodes(model))
        if self._design is None or self._design[0] != key:
            self._design = (key, design_from_ir(model, check=False), False)
        if check and not self._design[2]:
            self._design[1].check_streams()
            self._design = (key, self._design[1], True)
        return self._design[1]

    def calibration(self, model: ModelWrapper) -> tuple[np.ndarray, str]:
        """The calibration images (float32 pixels) and what they are, drawn once per build: the
        data set's first ``config.calibration_images`` test images when the model names one and
        it loads from its default place, else uniform random pixels."""
        if self._calibration is None:
            adapter = input_adapter(model)
            if adapter is not None and self.dataset is None:
                # a foreign model: its own inputs spread over every input code, as the host
                # adapter turns them into codes (padding included)
                shape = self.spec["input"]
                size = (self.config.calibration_images, shape["channels"], shape["height"],
                        shape["width"])
                inputs = adapter.random_inputs(np.random.default_rng(1), size)
                self._calibration = (adapter(inputs), f"{size[0]} random inputs through the "
                                                      f"input adapter")
            else:
                self._calibration = _calibration_images(model, self.dataset,
                                                        self.config.calibration_images,
                                                        accelerator_spec(model, self.spec))
        return self._calibration

    def save_model(self, model: ModelWrapper, step: str, always: bool = False, **extra) -> str:
        """Record ``step`` with its model, ir/NN_<step>.onnx (NN: the step's place in the
        build), saved when every step's model is kept (``config.save_intermediate``), when the
        build stops after this step, or ``always``; ``extra`` goes into the step's entry. The
        model's path in the build."""
        path = f"ir/{len(self.steps):02d}_{step}.onnx"
        if always or self.config.save_intermediate or self.config.stop_after == step:
            model.save(str(self.folder / path))
            self.steps.append({"step": step, "model": path, **extra})
        else:
            self.steps.append({"step": step, "saved": False, **extra})
        return path

    def wrote(self, step: str, folder: str) -> None:
        """Record ``step`` as having written ``folder`` (hls, rtl or driver) in the build."""
        self.steps.append({"step": step, "folder": folder})

    @property
    def steps(self) -> list[dict[str, Any]]:
        return self.record["steps"]


def step_qonnx(model: ModelWrapper, ctx: BuildContext) -> ModelWrapper:
    """Expects: the input QONNX model. Guarantees: the model unchanged, saved as
    ir/00_qonnx.onnx whatever ``save_intermediate`` says (verify runs every view against it)."""
    ctx.save_model(model, "qonnx", always=True)
    return model


def _pass_step(stage: Pass) -> Step:
    """One transformation of ir/transforms.py as a step (its model recorded with its ops)."""
    def step(model: ModelWrapper, ctx: BuildContext) -> ModelWrapper:
        model = model.transform(stage.transformation)
        ctx.save_model(model, stage.name, ops=[n.op_type for n in model.graph.node])
        return model

    kind = type(stage.transformation).__name__
    step.__name__ = f"step_{stage.name}"
    step.__doc__ = (f"The pass {kind} (pascal_fpga/ir/transforms.py documents what it expects "
                    f"and guarantees); its model as ir/NN_{stage.name}.onnx.")
    return step


def step_apply_folding(model: ModelWrapper, ctx: BuildContext) -> ModelWrapper:
    """Expects: the lowered IR (one op of ours per hardware layer). Guarantees: PE, SIMD and the
    schedule set on every layer: the default folding, then a preset, the folding config file or
    the search of ``target_fps`` / ``lut_budget`` on the calibration images' activity (recorded
    as ``folding_search``); FIFO depths are still unset."""
    config = ctx.config
    if not config.zero_skip or config.arch == "qnn":
        for node in layer_nodes(model):
            getCustomOp(node).set_nodeattr("zero_skip", 0)
    if config.arch != "snn":
        model.set_metadata_prop(ARCH_KEY, config.arch)
    lowered = ctx.design(model, check=False)   # its stream classes hold for every folding
    model = model.transform(ApplyFolding(default_folding(lowered), "default folding"))
    images, described = ctx.calibration(model)
    folding = ctx.folding
    if config.folding in FOLDING_PRESETS:
        folding = preset_folding(lowered, config.folding)
    if config.target_fps is not None or config.lut_budget is not None:
        design = ctx.design(model)
        qnn = config.arch == "qnn"
        lanes = None if qnn else run_values(design, images)[3]   # the twin's cycles are fixed
        folding, search_rows = search_folding(
            design, lanes, target_fps=config.target_fps, lut_budget=config.lut_budget,
            clock_mhz=config.clock_mhz, twin=config.arch,
            modes=None if config.zero_skip or qnn else ("dense",))
        ctx.record["folding_search"] = {
            "target_fps": config.target_fps, "lut_budget": config.lut_budget,
            "clock_mhz": config.clock_mhz, "calibration": described, "layers": search_rows}
    if folding is not None:
        model = model.transform(ApplyFolding(folding, config.folding or "search"))
    ctx.save_model(model, "apply_folding")
    return model


def step_size_fifos(model: ModelWrapper, ctx: BuildContext) -> ModelWrapper:
    """Expects: the folded IR. Guarantees: every FIFO's depth, from the cycle model on the
    calibration images' programs and proven on the worst case (``fifo_sizing``; a depth the
    folding config gives is kept); the final IR, saved always and recorded as ``ir``, with
    ir/folding.json, ir/layers.json and ir/layers.md; beside a folding search, the SNN's figures
    and the QNN twin's at its own best folding."""
    config = ctx.config
    images, described = ctx.calibration(model)
    sizing = _fifo_sizing(model, ctx, images, ctx.folding or {})
    sizing["calibration"] = described
    final = ctx.save_model(model, "size_fifos", always=True)
    ctx.record["fifo_sizing"] = sizing
    search = ctx.record.get("folding_search")
    ctx.record["arch"] = config.arch
    if search is not None and sizing.get("mean_interval") and config.arch == "snn":
        # the FINN-style QNN twin at its own best folding for the same goal, side by side
        design = ctx.design(model)
        clock = config.clock_mhz
        target = config.target_fps or clock * 1e6 / sizing["mean_interval"]
        lut = design_resources(design)["total"]
        twin = qnn_twin(design, target, clock)
        search["snn"] = {"images_per_s_mean": clock * 1e6 / sizing["mean_interval"],
                         "images_per_s_worst": clock * 1e6 / sizing["worst_case_interval"],
                         "lut": lut["LUT"], "resources": lut}
        search["qnn"] = {key: twin[key] for key in ("images_per_s", "lut", "resources",
                                                    "folding", "target_fps", "met")}
        if config.lut_budget is not None and lut["LUT"] > config.lut_budget:
            # the sized FIFOs took the design past the budget the layers met: not met
            for row in search["layers"]:
                row["met"] = False
    if config.fpga is not None:
        total = design_resources(ctx.design(model))["total"]
        ctx.record["fit"] = fit_report(fpga(config.fpga), total, weight_bits(model))
    ir_dir = ctx.folder / "ir"
    rows = layer_table(model)
    write_json(ir_dir / "folding.json", _folding_of(model), sort_keys=False)
    write_json(ir_dir / "layers.json", rows)
    (ir_dir / "layers.md").write_text(_layers_markdown(rows, ctx.name))
    preset = config.folding if config.folding in FOLDING_PRESETS else None
    ctx.record.update(ir=final, folding="ir/folding.json", folding_from=(
        f"preset {preset}" if preset else config.folding if config.folding
        else f"search for {config.target_fps:g} images/s" if config.target_fps is not None
        else f"search for {config.lut_budget} LUTs" if config.lut_budget is not None
        else "default (the largest divisor of each stream's channels up to 8)"))
    return model


def step_generate_hls(model: ModelWrapper, ctx: BuildContext) -> ModelWrapper:
    """Expects: the final IR (FIFOs sized). Guarantees: hls/, the Vitis HLS project, with sample
    images and the IR's outputs for them in tb/ (recorded as ``hls``); the model unchanged."""
    out = ctx.folder / "hls"
    clock = ctx.config.clock_mhz if ctx.config.clock_mhz is not None else DEFAULT_CLOCK_MHZ
    ctx.record["hls"] = generate_hls(ctx.design(model), out, ctx.spec, ctx.name,
                                     ctx.config.part or DEFAULT_PART, clock)
    images = sample_images(accelerator_spec(model, ctx.spec))
    images.tofile(out / "tb" / "inputs.bin")
    acc, classes = ir_outputs(model, images.astype(np.float32))
    expected = np.concatenate([acc, classes[:, None]], axis=1).astype(np.int32)
    expected.tofile(out / "tb" / "expected.bin")
    ctx.wrote("generate_hls", "hls")
    return model


def step_generate_rtl(model: ModelWrapper, ctx: BuildContext) -> ModelWrapper:
    """Expects: the final IR. Guarantees: rtl/, the SystemVerilog design and its testbench
    (recorded as ``rtl``); the model unchanged."""
    clock = ctx.config.clock_mhz if ctx.config.clock_mhz is not None else DEFAULT_CLOCK_MHZ
    ctx.record["rtl"] = generate_rtl(ctx.design(model), ctx.folder / "rtl", ctx.name, clock)
    ctx.wrote("generate_rtl", "rtl")
    return model


def step_write_driver(model: ModelWrapper, ctx: BuildContext) -> ModelWrapper:
    """Expects: the final IR and generate_hls's record. Guarantees: driver/, the board-side
    driver (board.py), its host script and design.json; the model unchanged."""
    _write_driver(model, ctx.folder / "driver", accelerator_spec(model, ctx.spec),
                  ctx.record["hls"])
    ctx.wrote("write_driver", "driver")
    return model


def builtin_steps() -> dict[str, Step]:
    """The built-in steps by name, in their default order (each writes its artefact into the
    build). The passes are made afresh on each call."""
    passes = {stage.name: _pass_step(stage) for stage in pipeline()}
    return {"qonnx": step_qonnx, **passes, "apply_folding": step_apply_folding,
            "size_fifos": step_size_fifos, "generate_hls": step_generate_hls,
            "generate_rtl": step_generate_rtl, "write_driver": step_write_driver}


def step_names() -> list[str]:
    """The built-in steps' names, in their default order."""
    return list(builtin_steps())


def _needs() -> dict[str, str]:
    """The built-in step each built-in step builds on (which must run before it)."""
    chain = step_names()[:step_names().index("size_fifos") + 1]
    needs = dict(zip(chain[1:], chain))
    needs.update(generate_hls="size_fifos", generate_rtl="size_fifos",
                 write_driver="generate_hls",
                 check_supported="qonnx")  # normalize_export may be left out (a list from
    # before it existed): CheckSupported then refuses the export patterns it rewrites
    return needs


def resolve_steps(steps: Sequence[str | Step] | None = None) -> list[tuple[str, Step]]:
    """(name, function) of each step to run. None: the built-in steps in their default order.
    Otherwise each entry is a built-in step's name or a function ``step(model, ctx) -> model``
    of your own, named by its ``__name__`` without a leading ``step_`` (lowercase letters and
    '_': it names the step's model, ir/NN_<name>.onnx). The list starts with ``qonnx`` (the input
    model, which verify compares every view with), names no step twice, and puts every built-in
    step after the built-in step it builds on (apply_folding after lower_to_spiking_ops,
    size_fifos after apply_folding, generate_hls and generate_rtl after size_fifos, write_driver
    after generate_hls). A list that breaks a rule is one PascalError."""
    builtin = builtin_steps()
    if steps is None:
        return list(builtin.items())
    if isinstance(steps, str) or not isinstance(steps, Sequence):
        raise PascalError(f"steps: must be a list of step names or functions, got "
                          f"{type(steps).__name__}")
    resolved: list[tuple[str, Step]] = []
    for entry in steps:
        if isinstance(entry, str):
            if entry not in builtin:
                raise PascalError(f"steps: {entry!r} is not a compile step (built-in steps: "
                                  f"{', '.join(builtin)}; or a function step(model, ctx) -> "
                                  f"model)")
            resolved.append((entry, builtin[entry]))
        elif callable(entry):
            name = getattr(entry, "__name__", "")
            name = name[len("step_"):] if name.startswith("step_") else name
            if not _STEP_NAME.fullmatch(name):
                raise PascalError(f"steps: a step function's name (without 'step_') must be 1 "
                                  f"to 40 lowercase letters and '_' (it names ir/NN_<name>.onnx), "
                                  f"got {getattr(entry, '__name__', entry)!r}")
            resolved.append((name, entry))
        else:
            raise PascalError(f"steps: each step is a built-in step's name or a function, got "
                              f"{entry!r}")
    names = [name for name, _ in resolved]
    if not names or names[0] != "qonnx":
        raise PascalError("steps: the first step must be 'qonnx' (the input model, which verify "
                          "compares every view with)")
    if len(names) > 100:
        raise PascalError(f"steps: at most 100 steps (ir/NN_<name>.onnx), got {len(names)}")
    needs = _needs()
    for index, name in enumerate(names):
        if name in names[:index]:
            raise PascalError(f"steps: {name!r} appears twice")
        need = needs.get(name) if resolved[index][1] is builtin.get(name) else None
        if need is not None and need not in names[:index]:
            raise PascalError(f"steps: {name!r} needs {need!r} before it")
    return resolved


def compile_model(model_path: str | Path, out: str | Path,
                  folding_path: str | Path | None = None, progress: bool = False,
                  record_model_as: str | Path | None = None, part: str | None = None,
                  clock_mhz: float | None = None, target_fps: float | None = None,
                  config: CompileConfig | None = None, resume: bool = False,
                  steps: Sequence[str | Step] | None = None) -> dict[str, Any]:
    """Run the compile steps on a QONNX model; writes BUILD_DIR (see the module doc).
    build.json names the model's absolute path (or ``record_model_as``, where it will move).
    ``config`` holds every option; the keyword arguments are shortcuts for its fields.
    ``steps``: the steps to run (:func:`resolve_steps`; None: the built-in ones).
    ``resume``: BUILD_DIR was stopped (``stop_after``); go on from its last step with its own
    options (only ``stop_after`` is taken from ``config``) and the same ``steps``."""
    run = resolve_steps(steps)
    names = [name for name, _ in run]
    previous = None
    if resume:
        previous, config = _resumable(model_path, out, config, names)
    config = dataclasses.replace(config or CompileConfig())
    if folding_path is not None:
        config.folding = str(folding_path)
    if part is not None:
        config.part = part
    if clock_mhz is not None:
        config.clock_mhz = clock_mhz
    if target_fps is not None:
        config.target_fps = target_fps
    config.check()
    if config.fpga is not None and not resume:
        board = fpga(config.fpga)
        if board.family == "xc7" and config.part == DEFAULT_PART:
            config.part = board.part
        if board.family == "xc7" and config.folding is None and config.target_fps is None \
                and config.lut_budget is None:   # the fastest design that fits the board
            config.lut_budget = int(COMFORT * board.lut)
    if config.stop_after is not None and config.stop_after not in names:
        raise PascalError(f"--stop-after {config.stop_after!r}: not a step (steps: "
                          f"{', '.join(names)})")
    model = load_qonnx(model_path)
    folding = load_folding(config.folding) if config.folding is not None and \
        config.folding not in FOLDING_PRESETS else None
    source = model_source(model, str(model_path))
    _check_spec_input(model, source.get("spec"), model_path)
    title = model_name(source, model_path)
    out = Path(out)
    # qonnx names new tensors with random.choice: seed it (and restore it after) so that the same
    # model gives byte-identical files
    random_state = random.getstate()
    random.seed(0)
    if previous is not None:
        model = ModelWrapper(read_onnx(out / previous["ir"]))
    try:
        return _compile(model, model_path, out, config, run, folding, source, title, progress,
                        record_model_as, previous)
    except PascalError:
        raise
    except (OSError, MemoryError):
        raise
    except Exception as exc:  # a model our checks let through and qonnx or numpy choke on
        first = (str(exc).splitlines() or [""])[0][:200]
        raise PascalError(f"{model_path}: cannot compile this model ({type(exc).__name__}: "
                          f"{first!r}; --debug shows where)") from exc
    finally:
        random.setstate(random_state)


def _resumable(model_path, out, config: CompileConfig | None, names: list[str]
               ) -> tuple[dict[str, Any], CompileConfig]:
    """The stopped build in ``out`` and its options (with ``config``'s stop_after)."""
    previous = load_build(out)
    if "stopped_after" not in previous:
        raise PascalError(f"{out}: not a stopped build (compile --stop-after STEP makes one); "
                          f"nothing to resume")
    if Path(previous["model"]) != Path(model_path).resolve():
        raise PascalError(f"{out}: was compiled from {previous['model']}, not {model_path}")
    if previous["stopped_after"] not in names[:-1]:
        raise PascalError(f"{out}: cannot resume after step {previous['stopped_after']!r}")
    fields = {f.name for f in dataclasses.fields(CompileConfig)}
    recorded = previous.get("config")
    if not isinstance(recorded, dict) or set(recorded) - fields:
        raise PascalError(f"{out}/{BUILD_FILE}: field 'config' is not a compile config "
                          f"(compile again)")
    resumed = CompileConfig(**recorded)
    resumed.stop_after = config.stop_after if config is not None else None
    resumed.check()
    return previous, resumed


def _compile(model: ModelWrapper, model_path, out: Path, config: CompileConfig,
             steps: list[tuple[str, Step]], folding: dict[str, Any] | None,
             source: dict[str, Any], title: str, progress: bool, record_model_as,
             resume: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run ``steps`` into a staging folder that becomes ``out``; the build's record."""
    names = [name for name, _ in steps]
    spec = source.get("spec") or _graph_spec(model)
    with staged_folder(out, "build") as staging:
        (staging / "ir").mkdir()
        build = {"name": title, "model": str(Path(record_model_as or model_path).resolve()),
                 "source": {key: source.get(key) for key in ("run_dir", "dataset")},
                 "spec": spec, "steps": [], "config": config.to_json(),
                 "hls": {"part": config.part, "clock_mhz": config.clock_mhz}}
        first = 0
        if resume is not None:  # the stopped build's models, then the steps after its last
            for path in sorted((out / "ir").glob("*")):
                shutil.copyfile(path, staging / "ir" / path.name)
            build["steps"] = list(resume["steps"])
            build["resumed_after"] = resume["stopped_after"]
            first = names.index(resume["stopped_after"]) + 1
        ctx = BuildContext(config, staging, build, title, spec, source.get("dataset"), folding)
        for index, (name, step) in enumerate(steps):
            if index < first:
                continue
            if progress:
                print(f"  [{index}] {name}", flush=True)
            recorded = len(ctx.steps)
            model = step(model, ctx)
            if len(ctx.steps) == recorded:  # a step of the user's that recorded nothing
                ctx.save_model(model, name)
            if config.stop_after == name:
                entry = ctx.steps[-1]
                build["ir"] = entry["model"] if "model" in entry else build.get("ir")
                build["stopped_after"] = name
                break
        if build.get("ir") is None:  # a step list that ends before size_fifos: its last model
            build["ir"] = [entry["model"] for entry in ctx.steps if "model" in entry][-1]
        adapter = input_adapter(model)
        if adapter is not None:   # a foreign model's input quantizer, run on the host
            build["input_adapter"] = adapter.to_json()
        write_json(staging / BUILD_FILE, build)
    result = {"build_dir": str(out), **build}
    if any(entry["step"] == "size_fifos" for entry in build["steps"]):
        result["layers"] = layer_table(model)
    return result


def layer_table(model) -> list[dict[str, Any]]:
    """One row per IR layer: what the hardware needs to know about it."""
    rows = []
    for node in layer_nodes(model):
        inst = getCustomOp(node)
        attrs = {name: inst.get_nodeattr(name) for name in inst.get_nodeattr_types()}
        row = {
            "layer": node.name,
            "op": node.op_type,
            "in_shape": list(attrs["in_shape"]),
            "out_shape": list(attrs["out_shape"]),
            "t_in": attrs["t_in"],
            "levels": attrs["t_out"] if node.op_type != "SpikingClassifier" else None,
            "t_out": attrs["t_out"],
            "in_max": attrs["in_max"],
            "pe": attrs["pe"],
            "simd": attrs["simd"],
            "source": attrs["layer"].decode() if isinstance(attrs["layer"], bytes)
            else attrs["layer"],
        }
        if "acc_bits" in attrs:
            row.update(kernel=attrs.get("kernel"), stride=attrs.get("stride"),
                       pad=attrs.get("pad"), weight_bits=attrs["weight_bits"],
                       acc_min=attrs["acc_min"], acc_max=attrs["acc_max"],
                       acc_bits=attrs["acc_bits"],
                       threshold_bits=attrs.get("threshold_bits") or None,
                       zero_skip=bool(attrs["zero_skip"]))
        elif "n_bits" in attrs:   # a residual add: its sum n's range and width
            row.update(acc_min=attrs["n_min"], acc_max=attrs["n_max"], acc_bits=attrs["n_bits"])
        elif "kernel" in attrs:
            row.update(kernel=attrs["kernel"], stride=attrs["stride"])
        rows.append(row)
    return rows


def _layers_markdown(rows: list[dict[str, Any]], title: str) -> str:
    columns = [("layer", "layer"), ("op", "op"), ("in_shape", "in"), ("out_shape", "out"),
               ("t_in", "T_in"), ("levels", "L"), ("in_max", "in max"),
               ("weight_bits", "w bits"), ("acc_min", "acc min"), ("acc_max", "acc max"),
               ("acc_bits", "acc bits"), ("threshold_bits", "thr bits"), ("pe", "PE"),
               ("simd", "SIMD"), ("source", "QONNX nodes")]

    def cell(value) -> str:
        if value is None:
            return "-"
        if isinstance(value, list):
            return "x".join(str(v) for v in value)
        # node names from the input model: one table cell, one line
        text = re.sub(r"[^\x20-\x7e]", "?", str(value)).replace("|", "\\|")
        return text if len(text) <= 120 else text[:117] + "..."

    lines = [f"# {title}: spiking IR layers", "",
             "T_in: input timesteps (the previous layer's L; 1 for pixels). L: output levels = "
             "output timesteps. in max: the largest input level. Accumulator ranges are the exact "
             "worst case over all inputs; thresholds are clamped into [acc min, acc max + 1].", "",
             "| " + " | ".join(h for _, h in columns) + " |",
             "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(cell(row.get(key)) for key, _ in columns) + " |")
    return "\n".join(lines) + "\n"


def _check_positive(value, flag: str) -> None:
    if value is None:
        return
    if not isinstance(value, (int, float)) or isinstance(value, bool) \
            or not math.isfinite(value) or value <= 0:
        raise PascalError(f"{flag} must be positive and finite, got {value!r}")


def model_name(source: dict[str, Any], model_path: str | Path) -> str:
    """The build's name (see the module docstring): the metadata's name or its spec's (both
    checked by ``model_source``), else the file's stem, cleaned."""
    if "name" in source:
        return check_name(source["name"], f"{model_path}: metadata {SOURCE_KEY}: field 'name'")
    if source.get("spec"):
        return check_name(source["spec"]["name"],
                          f"{model_path}: metadata {SOURCE_KEY}: field 'spec': field 'name'")
    stem = re.sub(r"[^A-Za-z0-9_.\-]", "_", Path(model_path).stem)
    if not stem[:1].isalnum():
        stem = "model" + stem
    return check_name(stem[:64], f"{model_path}: file name")


def _check_spec_input(model, spec: dict[str, Any] | None, model_path) -> None:
    """The metadata's spec must describe the graph's input (its numbers go into the HLS code)."""
    if not spec:
        return
    shape = model.get_tensor_shape(model.graph.input[0].name) or []
    shape = [d if isinstance(d, int) else None for d in shape]
    wanted = [spec["input"][key] for key in ("channels", "height", "width")]
    if len(shape) != 4 or shape[1:] != wanted:
        raise PascalError(f"{model_path}: metadata {SOURCE_KEY}: field 'spec': input {wanted} "
                          f"does not match the graph's input shape {shape}")


def _calibration_images(model: ModelWrapper, dataset: str | None, count: int,
                        spec: dict[str, Any]) -> tuple[np.ndarray, str]:
    """Images for the activity statistics: the data set's first test images when the model names
    one and it loads from its default place, else uniform random pixels."""
    if dataset in DATASETS:
        try:
            data = load_dataset(dataset, None)
            images = data.test_images[:count].astype(np.float32)
            shape = model.get_tensor_shape(model.graph.input[0].name)
            if tuple(images.shape[1:]) == tuple(shape[1:]):
                return images, f"{len(images)} test images of {dataset}"
        except PascalError:
            pass
    return sample_images(spec, count, seed=1).astype(np.float32), f"{count} random images"


def accelerator_spec(model, spec: dict[str, Any]) -> dict[str, Any]:
    """The spec of what the accelerator takes: the model's, but for an input adapter that pads
    (a padded first convolution on a signed input) the padded height and width."""
    adapter = input_adapter(model)
    if adapter is None or not adapter.pad:
        return spec
    shape = dict(spec["input"])
    shape["height"] += 2 * adapter.pad
    shape["width"] += 2 * adapter.pad
    return {**spec, "input": shape}


def _graph_spec(model) -> dict[str, Any]:
    """A QONNX model from elsewhere: the input read from the graph."""
    name = model.graph.input[0].name
    shape = model.get_tensor_shape(name)
    datatype = model.get_tensor_datatype(name)
    bits = datatype.bitwidth()
    quant = input_quantizer(model)   # through a foreign model's preprocessing
    if not datatype.is_integer() and quant is not None:
        bits = 1 if quant.op_type == "BipolarQuant" else \
            int(np.asarray(model.get_initializer(quant.input[3])).reshape(-1)[0])  # codes
    return {"input": {"channels": int(shape[1]), "height": int(shape[2]),
                      "width": int(shape[3]), "bits": int(bits)}}


def _folding_of(model) -> dict[str, dict[str, Any]]:
    """The folding as set on the IR, in layer order (ir/folding.json)."""
    folding = {}
    for node in layer_nodes(model):
        inst = getCustomOp(node)
        entry = {key: inst.get_nodeattr(key) for key in ("pe", "simd", "fifo_depth")}
        if node.op_type not in ("SpikingMaxPool", "SpikingSumPool"):
            entry["zero_skip"] = bool(inst.get_nodeattr("zero_skip"))
            entry["token_depth"] = inst.get_nodeattr("token_depth")
        if node.op_type == "SpikingClassifier":
            entry["out_depth"] = inst.get_nodeattr("out_depth")
        folding[node.name] = entry
    return folding


def _fifo_sizing(model, ctx: BuildContext, images: np.ndarray, given: dict[str, Any]
                 ) -> dict[str, Any]:
    """FIFO depths from the cycle model on the calibration images (the smallest that keep the
    mean interval and latency of unbounded FIFOs), run on the worst case (every group active) to
    show that no input deadlocks; a depth the folding config gives is kept."""
    design = ctx.design(model)
    lanes = run_values(design, images)[3]
    activity = design.activity_from_lanes(lanes)
    programs = design.programs(activity, len(images))
    worst = design.programs({}, 1, mode="dense") if any(
        layer.data_dependent() for layer in design.layers) else None
    edges = design.edges()
    depths = size_fifos(programs, worst, edges=edges)
    if design.branching:
        # the RTL's writes leave later (rtl/README.md), so a stage reads further ahead before it
        # writes: a shortcut FIFO must also cover the RTL schedule. The larger of the two depths
        # keeps both deadlock-free (a deeper FIFO never blocks what a shallower one let through)
        rtl = size_fifos(design.programs(activity, len(images), backend="rtl"),
                         design.programs({}, 1, mode="dense", backend="rtl"), edges=edges)
        depths = [max(a, b) for a, b in zip(depths, rtl)]
    nodes = {node.name: node for node in layer_nodes(model)}
    for fifo, depth in zip(design.fifos(), depths):
        entry = given.get(fifo.layer)
        depth = entry.get(fifo.key, depth) if isinstance(entry, dict) else depth
        getCustomOp(nodes[fifo.layer]).set_nodeattr(fifo.key, int(depth))
    sized = ctx.design(model)
    timing = simulate_cycles(sized.programs(activity, len(images)), sized.fifo_depths(),
                             edges=edges)
    worst_timing = simulate_cycles(sized.programs({}, 3, mode="dense"), sized.fifo_depths(),
                                   edges=edges)
    if timing.deadlock or worst_timing.deadlock:
        raise PascalError(f"the sized FIFOs deadlock: {timing.deadlock or worst_timing.deadlock}")
    for backend in ("rtl",) if sized.branching else ():
        for check in (simulate_cycles(sized.programs(activity, len(images), backend=backend),
                                      sized.fifo_depths(), edges=edges),
                      simulate_cycles(sized.programs({}, 3, mode="dense", backend=backend),
                                      sized.fifo_depths(), edges=edges)):
            if check.deadlock:
                raise PascalError(f"the sized FIFOs deadlock in the RTL: {check.deadlock}")
    return {"depths": sized.fifo_depths(), "mean_interval": float(timing.interval.mean())
            if len(images) > 1 else None,
            "worst_case_interval": int(worst_timing.finish[-1][-1] - worst_timing.finish[-1][-2]),
            "worst_case_latency": int(worst_timing.finish[-1][0] - worst_timing.start[0][0])}


def _write_driver(model, folder: Path, spec: dict[str, Any], info: dict[str, Any]) -> None:
    """BUILD_DIR/driver/: the board-side driver (board.py), its host script and design.json."""
    folder.mkdir()
    shape = spec["input"]
    design = {"pixels": shape["height"] * shape["width"], "channels": shape["channels"],
              "height": shape["height"], "width": shape["width"], "bits": shape["bits"],
              "axi_bytes": info["axi_in_bits"] // 8, "classes": info["classes"],
              "out_scale": output_scale(model)}
    adapter = input_adapter(model)
    if adapter is not None:  # the host turns the model's own input into the codes it takes
        design["input_adapter"] = adapter.to_json()
    if output_offset(model):  # every logit's share beyond out_scale x accumulator
        design["out_offset"] = output_offset(model)
    (folder / "design.json").write_text(json.dumps(design, indent=2, sort_keys=True) + "\n")
    shutil.copyfile(board.__file__, folder / "board.py")
    script = Path(board.__file__).resolve().parent / "run_on_board.py"
    if not script.is_file():
        raise PascalError(f"{script}: the board script is missing (reinstall pascal-fpga)")
    shutil.copyfile(script, folder / "run_on_board.py")

