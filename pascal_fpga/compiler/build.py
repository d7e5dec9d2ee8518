"""`pascal-fpga compile`: QONNX model -> BUILD_DIR (the spiking IR, the HLS project, the driver).

The options are one dataclass, :class:`CompileConfig` (recorded in build.json), and the work is a
list of named steps (:func:`step_names`; ``--stop-after STEP`` ends the build after one):

BUILD_DIR/
  build.json        where the model came from (run, data set), the config, the steps, the final IR
  ir/00_qonnx.onnx  the input model; then one model per step (NN_<step>.onnx): the passes of
                    pascal_fpga/ir/transforms.py, apply_folding, size_fifos (the final IR)
  ir/folding.json   PE, SIMD, schedule and FIFO depths per layer, as used
  ir/layers.json    the layer table (shapes, L, T_in/T_out, weight/accumulator/threshold bits)
  ir/layers.md      the same table for reading
  hls/, driver/     the HLS project and the host driver

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
from pathlib import Path
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import PascalError
from ..names import check_name, check_part
from ..staging import staged_folder
from ..buildfolder import BUILD_FILE, load_folding, load_qonnx, write_json as _write_json
from ..ir.export import SOURCE_KEY, model_source
from ..hw.apply import PRESETS as FOLDING_PRESETS, ApplyFolding, default_folding, preset_folding
from ..hw.hls import DEFAULT_CLOCK_MHZ, DEFAULT_PART
from ..ir.transforms import layer_nodes, pipeline











def layer_table(model) -> list[dict[str, Any]]:
    """One row per IR layer: what the hardware needs to know about it."""
    from qonnx.custom_op.registry import getCustomOp

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


def _markdown(rows: list[dict[str, Any]], title: str) -> str:
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
    """Stop after this step (``compile --stop-after``); the build then holds the steps so far."""

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
        if not isinstance(self.calibration_images, int) or not 1 <= self.calibration_images <= 10000:
            raise PascalError(f"--calibration-images must be an integer in 1..10000, got "
                              f"{self.calibration_images!r}")
        if self.stop_after is not None and self.stop_after not in step_names():
            raise PascalError(f"--stop-after {self.stop_after!r}: not a step (steps: "
                              f"{', '.join(step_names())})")

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def step_names() -> list[str]:
    """The named compile steps, in order (each writes its artefact into the build)."""
    return [name for name, _ in compile_steps()]


def compile_model(model_path: str | Path, out: str | Path,
                  folding_path: str | Path | None = None, progress: bool = False,
                  record_model_as: str | Path | None = None, part: str | None = None,
                  clock_mhz: float | None = None, target_fps: float | None = None,
                  config: CompileConfig | None = None, resume: bool = False) -> dict[str, Any]:
    """Run the compile steps on a QONNX model; writes BUILD_DIR (see the module doc).
    build.json names the model's absolute path (or ``record_model_as``, where it will move).
    ``config`` holds every option; the keyword arguments are shortcuts for its fields.
    ``resume``: BUILD_DIR was stopped (``stop_after``); go on from its last step with its own
    options (only ``stop_after`` is taken from ``config``)."""
    previous = None
    if resume:
        previous, config = _resumable(model_path, out, config)
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
    model = load_qonnx(model_path)
    preset = config.folding if config.folding in FOLDING_PRESETS else None
    folding_config = load_folding(config.folding) if config.folding is not None and not preset \
        else None
    source = model_source(model, str(model_path))
    _check_spec_input(model, source.get("spec"), model_path)
    title = model_name(source, model_path)
    out = Path(out)
    # qonnx names new tensors with random.choice: seed it (and restore it after) so that the same
    # model gives byte-identical files
    random_state = random.getstate()
    random.seed(0)
    if previous is not None:
        from qonnx.core.modelwrapper import ModelWrapper

        from ..buildfolder import read_onnx

        model = ModelWrapper(read_onnx(Path(out) / previous["ir"]))
    try:
        return _compile(model, model_path, out, config, folding_config, preset, source, title,
                        progress, record_model_as, previous)
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


def _resumable(model_path, out, config: CompileConfig | None
               ) -> tuple[dict[str, Any], CompileConfig]:
    """The stopped build in ``out`` and its options (with ``config``'s stop_after)."""
    from ..buildfolder import load_build

    previous = load_build(out)
    if "stopped_after" not in previous:
        raise PascalError(f"{out}: not a stopped build (compile --stop-after STEP makes one); "
                          f"nothing to resume")
    if Path(previous["model"]) != Path(model_path).resolve():
        raise PascalError(f"{out}: was compiled from {previous['model']}, not {model_path}")
    if previous["stopped_after"] not in step_names() or previous["stopped_after"] == "write_driver":
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


def _calibration(model, source: dict[str, Any], count: int, spec) -> tuple[np.ndarray, str]:
    """Images for the activity statistics: the data set's first test images when the model names
    one and it loads from its default place, else uniform random pixels."""
    from ..datasets import DATASETS, load_dataset

    name = source.get("dataset")
    if name in DATASETS:
        try:
            data = load_dataset(name, None)
            images = data.test_images[:count].astype(np.float32)
            shape = model.get_tensor_shape(model.graph.input[0].name)
            if tuple(images.shape[1:]) == tuple(shape[1:]):
                return images, f"{len(images)} test images of {name}"
        except PascalError:
            pass
    from ..hw.hls import sample_images

    return sample_images(spec, count, seed=1).astype(np.float32), f"{count} random images"


@dataclass
class _Run:
    """What the compile steps pass along."""

    model: Any
    config: CompileConfig
    staging: Path
    build: dict[str, Any]
    source: dict[str, Any]
    spec: dict[str, Any]
    title: str
    folding_config: dict[str, Any] | None
    preset: str | None
    images: np.ndarray | None = None
    described: str = ""
    rows: list[dict[str, Any]] | None = None

    @property
    def steps(self) -> list[dict[str, Any]]:
        return self.build["steps"]


def _step_qonnx(run: _Run) -> None:
    run.model.save(str(run.staging / "ir" / "00_qonnx.onnx"))
    run.steps.append({"step": "qonnx", "model": "ir/00_qonnx.onnx"})


def _pass_step(number: int, step) -> Any:
    def apply(run: _Run) -> None:
        run.model = run.model.transform(step.transformation)
        _save_step(run.model, run.staging, f"ir/{number:02d}_{step.name}.onnx", step.name,
                   run.steps, run.config, run.config.stop_after,
                   ops=[n.op_type for n in run.model.graph.node])
    return apply


def _calibrate(run: _Run) -> None:
    if run.images is None:
        run.images, run.described = _calibration(run.model, run.source,
                                                  run.config.calibration_images, run.spec)


def _step_apply_folding(run: _Run) -> None:
    """The default, a preset, a folding config, or a search on calibration activity."""
    from qonnx.custom_op.registry import getCustomOp

    from ..hw.layers import design_from_ir
    from ..perf.values import run_values

    config, model = run.config, run.model
    if not config.zero_skip:
        for node in layer_nodes(model):
            getCustomOp(node).set_nodeattr("zero_skip", 0)
    model = model.transform(ApplyFolding(default_folding(model), "default folding"))
    _calibrate(run)
    if run.preset is not None:
        run.folding_config = preset_folding(model, run.preset)
    if config.target_fps is not None or config.lut_budget is not None:
        from ..perf.folding import search_folding

        design = design_from_ir(model)
        lanes = run_values(design, run.images)[3]
        run.folding_config, search_rows = search_folding(
            design, lanes, target_fps=config.target_fps, lut_budget=config.lut_budget,
            clock_mhz=config.clock_mhz, modes=None if config.zero_skip else ("dense",))
        run.build["folding_search"] = {
            "target_fps": config.target_fps, "lut_budget": config.lut_budget,
            "clock_mhz": config.clock_mhz, "calibration": run.described, "layers": search_rows}
    if run.folding_config is not None:
        model = model.transform(ApplyFolding(run.folding_config, config.folding or "search"))
    run.model = model
    _save_step(model, run.staging, f"ir/{len(run.steps):02d}_apply_folding.onnx",
               "apply_folding", run.steps, config, config.stop_after)


def _step_size_fifos(run: _Run) -> None:
    """On the calibration images' programs, proven on the worst case; then the layer table."""
    _calibrate(run)
    config = run.config
    given = run.folding_config if run.folding_config is not None else \
        (load_folding(config.folding) if config.folding not in (None, *FOLDING_PRESETS) else {})
    sizing = _size_fifos(run.model, run.images, given or {})
    sizing["calibration"] = run.described
    final = f"ir/{len(run.steps):02d}_size_fifos.onnx"
    run.model.save(str(run.staging / final))
    run.steps.append({"step": "size_fifos", "model": final})
    run.build["fifo_sizing"] = sizing
    search = run.build.get("folding_search")
    if search is not None and sizing.get("mean_interval"):
        # the FINN-style QNN twin at its own best folding for the same goal, side by side
        from ..hw.layers import design_from_ir
        from ..perf.estimates import design_resources
        from ..perf.report import qnn_twin

        design = design_from_ir(run.model)
        clock = config.clock_mhz
        target = config.target_fps or clock * 1e6 / sizing["mean_interval"]
        lut = design_resources(design)["total"]
        twin = qnn_twin(design, target, clock)
        search["snn"] = {"images_per_s_mean": clock * 1e6 / sizing["mean_interval"],
                         "images_per_s_worst": clock * 1e6 / sizing["worst_case_interval"],
                         "lut": lut["LUT"], "resources": lut}
        search["qnn"] = {key: twin[key] for key in ("images_per_s", "lut", "resources",
                                                    "folding", "target_fps", "met")}
    ir_dir = run.staging / "ir"
    run.rows = layer_table(run.model)
    _write_json(ir_dir / "folding.json", _folding_of(run.model), sort_keys=False)
    _write_json(ir_dir / "layers.json", run.rows)
    (ir_dir / "layers.md").write_text(_markdown(run.rows, run.title))
    preset = run.preset
    run.build.update(ir=final, folding="ir/folding.json", folding_from=(
        f"preset {preset}" if preset else config.folding if config.folding
        else f"search for {config.target_fps:g} images/s" if config.target_fps is not None
        else f"search for {config.lut_budget} LUTs" if config.lut_budget is not None
        else "default (the largest divisor of each stream's channels up to 8)"))


def _step_generate_hls(run: _Run) -> None:
    hls, run.spec = _write_hls(run.model, run.staging / "hls", run.spec, run.title,
                               run.config.part, run.config.clock_mhz)
    run.build["hls"] = hls
    run.steps.append({"step": "generate_hls", "folder": "hls"})


def _step_generate_rtl(run: _Run) -> None:
    from ..hw.layers import design_from_ir
    from ..hw.rtl import generate_rtl

    run.build["rtl"] = generate_rtl(design_from_ir(run.model), run.staging / "rtl", run.title,
                                    run.config.clock_mhz if run.config.clock_mhz is not None
                                    else DEFAULT_CLOCK_MHZ)
    run.steps.append({"step": "generate_rtl", "folder": "rtl"})


def _step_write_driver(run: _Run) -> None:
    _write_driver(run.model, run.staging / "driver", run.spec, run.build["hls"])
    run.steps.append({"step": "write_driver", "folder": "driver"})


def compile_steps() -> list[tuple[str, Any]]:
    """(name, function) of every compile step, in order."""
    passes = [(step.name, _pass_step(number, step))
              for number, step in enumerate(pipeline(), start=1)]
    return ([("qonnx", _step_qonnx)] + passes +
            [("apply_folding", _step_apply_folding), ("size_fifos", _step_size_fifos),
             ("generate_hls", _step_generate_hls), ("generate_rtl", _step_generate_rtl),
             ("write_driver", _step_write_driver)])


def _compile(model, model_path, out: Path, config: CompileConfig, folding_config, preset,
             source, title, progress, record_model_as, resume: dict | None = None
             ) -> dict[str, Any]:
    stop = config.stop_after
    spec = source.get("spec") or _graph_spec(model)
    with staged_folder(out, "build") as staging:
        (staging / "ir").mkdir()
        build = {"name": title, "model": str(Path(record_model_as or model_path).resolve()),
                 "source": {key: source.get(key) for key in ("run_dir", "dataset")},
                 "spec": spec, "steps": [], "config": config.to_json(),
                 "hls": {"part": config.part, "clock_mhz": config.clock_mhz}}
        first = 0
        if resume is not None:  # the stopped build's models, then the steps after its last
            import shutil

            for path in sorted((out / "ir").glob("*")):
                shutil.copyfile(path, staging / "ir" / path.name)
            build["steps"] = list(resume["steps"])
            build["resumed_after"] = resume["stopped_after"]
            names = [name for name, _ in compile_steps()]
            first = names.index(resume["stopped_after"]) + 1
        run = _Run(model, config, staging, build, source, spec, title, folding_config, preset)
        for index, (name, function) in enumerate(compile_steps()):
            if index < first:
                continue
            if progress:
                print(f"  [{index}] {name}", flush=True)
            function(run)
            if stop == name:
                saved = [s for s in run.steps if s.get("model")]
                build["ir"] = build.get("ir") if name in ("generate_hls", "generate_rtl",
                                                         "write_driver") \
                    else saved[-1]["model"]
                build["stopped_after"] = name
                break
        _write_json(staging / BUILD_FILE, build)
    result = {"build_dir": str(out), **build}
    if run.rows is None and any(step["step"] == "size_fifos" for step in build["steps"]):
        run.rows = layer_table(run.model)
    if run.rows is not None:
        result["layers"] = run.rows
    return result


def _save_step(model, staging: Path, name: str, step: str, steps: list, config: CompileConfig,
               stop: str | None, **extra) -> None:
    """Save a step's model (unless intermediate models are not kept and the build goes on)."""
    if config.save_intermediate or stop == step:
        model.save(str(staging / name))
        steps.append({"step": step, "model": name, **extra})
    else:
        steps.append({"step": step, "saved": False, **extra})


def _graph_spec(model) -> dict[str, Any]:
    """A QONNX model from elsewhere: the input read from the graph."""
    name = model.graph.input[0].name
    shape = model.get_tensor_shape(name)
    datatype = model.get_tensor_datatype(name)
    bits = datatype.bitwidth()
    quant = model.find_consumer(name)
    if not datatype.is_integer() and quant is not None and quant.op_type == "Quant":
        bits = int(np.asarray(model.get_initializer(quant.input[3])).reshape(-1)[0])  # pixels
    return {"input": {"channels": int(shape[1]), "height": int(shape[2]),
                      "width": int(shape[3]), "bits": int(bits)}}


def _folding_of(model) -> dict[str, dict[str, Any]]:
    """The folding as set on the IR, in layer order (ir/folding.json)."""
    from qonnx.custom_op.registry import getCustomOp

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


def _size_fifos(model, images: np.ndarray, given: dict[str, Any]) -> dict[str, Any]:
    """FIFO depths from the cycle model on the calibration images (the smallest that keep the
    mean interval and latency of unbounded FIFOs), run on the worst case (every group active) to
    show that no input deadlocks; a depth the folding config gives is kept."""
    from qonnx.custom_op.registry import getCustomOp

    from ..hw.layers import design_from_ir
    from ..perf.timing import simulate, size_fifos
    from ..perf.values import run_values

    design = design_from_ir(model)
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
    sized = design_from_ir(model)
    timing = simulate(sized.programs(activity, len(images)), sized.fifo_depths(), edges=edges)
    worst_timing = simulate(sized.programs({}, 3, mode="dense"), sized.fifo_depths(),
                            edges=edges)
    if timing.deadlock or worst_timing.deadlock:
        raise PascalError(f"the sized FIFOs deadlock: {timing.deadlock or worst_timing.deadlock}")
    for backend in ("rtl",) if sized.branching else ():
        for check in (simulate(sized.programs(activity, len(images), backend=backend),
                               sized.fifo_depths(), edges=edges),
                      simulate(sized.programs({}, 3, mode="dense", backend=backend),
                               sized.fifo_depths(), edges=edges)):
            if check.deadlock:
                raise PascalError(f"the sized FIFOs deadlock in the RTL: {check.deadlock}")
    return {"depths": sized.fifo_depths(), "mean_interval": float(timing.interval.mean())
            if len(images) > 1 else None,
            "worst_case_interval": int(worst_timing.finish[-1][-1] - worst_timing.finish[-1][-2]),
            "worst_case_latency": int(worst_timing.finish[-1][0] - worst_timing.start[0][0])}


def _write_hls(model, out: Path, spec: dict[str, Any] | None, name: str, part: str | None,
               clock_mhz: float | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """The HLS project, with sample images and the IR's outputs for them in tb/; returns its
    description and the spec (for a model without one, the input read from the graph)."""
    from ..hw.hls import generate_hls, sample_images
    from ..ir.execute import ir_outputs

    if not spec:  # a QONNX model from elsewhere: the input from the graph
        shape = model.get_tensor_shape(model.graph.input[0].name)
        bits = model.get_tensor_datatype(model.graph.input[0].name).bitwidth()
        spec = {"input": {"channels": int(shape[1]), "height": int(shape[2]),
                          "width": int(shape[3]), "bits": int(bits)}}
    info = generate_hls(model, out, spec, name, part or DEFAULT_PART,
                        clock_mhz if clock_mhz is not None else DEFAULT_CLOCK_MHZ)
    images = sample_images(spec)
    images.tofile(out / "tb" / "inputs.bin")
    acc, classes = ir_outputs(model, images.astype(np.float32))
    expected = np.concatenate([acc, classes[:, None]], axis=1).astype(np.int32)
    expected.tofile(out / "tb" / "expected.bin")
    return info, spec


def _write_driver(model, folder: Path, spec: dict[str, Any], info: dict[str, Any]) -> None:
    """BUILD_DIR/driver/: the board-side driver (board.py), its host script and design.json."""
    import shutil

    from ..driver import board
    from ..ir.transforms import output_scale

    folder.mkdir()
    shape = spec["input"]
    design = {"pixels": shape["height"] * shape["width"], "channels": shape["channels"],
              "height": shape["height"], "width": shape["width"], "bits": shape["bits"],
              "axi_bytes": info["axi_in_bits"] // 8, "classes": info["classes"],
              "out_scale": output_scale(model)}
    (folder / "design.json").write_text(json.dumps(design, indent=2, sort_keys=True) + "\n")
    shutil.copyfile(board.__file__, folder / "board.py")
    script = Path(board.__file__).resolve().parent / "run_on_board.py"
    if not script.is_file():
        raise PascalError(f"{script}: the board script is missing (reinstall pascal-fpga)")
    shutil.copyfile(script, folder / "run_on_board.py")

