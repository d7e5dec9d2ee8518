"""`pascal-fpga compile`: QONNX model -> BUILD_DIR/ir/ (the spiking IR after every step).

BUILD_DIR/
  build.json        where the model came from (run, data set), the steps, the final IR's path
  ir/00_qonnx.onnx  the input model; then one model per transformation step (NN_<step>.onnx)
  ir/folding.json   PE and SIMD per layer, as used (the --folding file, or the default)
  ir/layers.json    the layer table (shapes, L, T_in/T_out, weight/accumulator/threshold bits)
  ir/layers.md      the same table for reading

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

import json
import math
import random
import re
from pathlib import Path
from typing import Any

from ..errors import PascalError
from ..names import check_name, check_part
from ..staging import staged_folder
from ..buildfolder import BUILD_FILE, load_folding, load_qonnx, write_json as _write_json
from ..ir.export import SOURCE_KEY, model_source
from ..ir.transforms import ApplyFolding, default_folding, layer_nodes, pipeline

FOLDING_PRESETS = ("serial", "full")  # --folding serial: PE = SIMD = 1; full: fully parallel
FINAL_STEP = "apply_folding"






def _pixels(model) -> int:
    """Pixels per input image (one input word each)."""
    shape = model.get_tensor_shape(model.graph.input[0].name)
    return int(shape[2]) * int(shape[3])


def _size_fifos(model, folding: dict, given: dict) -> None:
    """FIFO depths from the cycle model (the largest occupancy with unbounded FIFOs), except
    where the folding config gives one; recorded in ``folding`` and on the IR nodes."""
    from qonnx.custom_op.registry import getCustomOp

    from ..perf.cyclesim import design_programs, fifo_depths
    from ..hw.hls import hls_layers

    layers = hls_layers(model)
    depths = fifo_depths(design_programs(layers, _pixels(model)))
    for node, depth in zip(layer_nodes(model), depths):
        entry = given.get(node.name)
        depth = entry.get("fifo_depth", depth) if isinstance(entry, dict) else depth
        getCustomOp(node).set_nodeattr("fifo_depth", depth)
        folding[node.name]["fifo_depth"] = depth


def _achieved(model, clock_mhz: float) -> dict[str, Any]:
    """The cycle model's throughput and latency of the folded design."""
    from ..perf.cyclesim import design_depths, design_programs, simulate_timing
    from ..hw.hls import hls_layers

    layers = hls_layers(model)
    timing = simulate_timing(design_programs(layers, _pixels(model)), 4,
                             design_depths(layers))
    return {"achieved_fps": clock_mhz * 1e6 / timing.interval,
            "cycles_per_image": timing.interval, "latency_cycles": timing.latency}


def preset_folding(model, preset: str) -> dict[str, dict[str, int]]:
    """``serial``: PE = SIMD = 1 everywhere; ``full``: PE = all output channels, SIMD = all
    inputs (a convolution's input channels, a dense layer's fan-in)."""
    from ..ir.transforms import fold_limits

    folding = {}
    for node in layer_nodes(model):
        pe, simd = fold_limits(node)
        folding[node.name] = {"pe": 1, "simd": 1} if preset == "serial" else \
            {"pe": pe, "simd": simd}
    return folding


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
                       threshold_bits=attrs.get("threshold_bits") or None)
        else:
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



def compile_model(model_path: str | Path, out: str | Path,
                  folding_path: str | Path | None = None, progress: bool = False,
                  record_model_as: str | Path | None = None, part: str | None = None,
                  clock_mhz: float | None = None, target_fps: float | None = None
                  ) -> dict[str, Any]:
    """Run the transformation pass on a QONNX model; writes BUILD_DIR (see the module doc).
    build.json names the model's absolute path (or ``record_model_as``, where it will move)."""
    if part is not None:
        check_part(part, "--part")
    if target_fps is not None and folding_path is not None:
        raise PascalError("--target-fps chooses the folding: do not combine it with --folding")
    _check_positive(target_fps, "--target-fps")
    _check_positive(clock_mhz, "--clock-mhz")
    model = load_qonnx(model_path)
    preset = str(folding_path) if str(folding_path) in FOLDING_PRESETS else None
    folding_config = load_folding(folding_path) if folding_path is not None and not preset \
        else None
    source = model_source(model, str(model_path))
    _check_spec_input(model, source.get("spec"), model_path)
    title = model_name(source, model_path)
    out = Path(out)
    # qonnx names new tensors with random.choice: seed it (and restore it after) so that the same
    # model gives byte-identical files
    random_state = random.getstate()
    random.seed(0)
    try:
        return _compile(model, model_path, out, folding_path, folding_config, preset, source,
                        title, progress, record_model_as, part, clock_mhz, target_fps)
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


def _compile(model, model_path, out: Path, folding_path, folding_config, preset, source,
             title, progress, record_model_as, part, clock_mhz, target_fps) -> dict[str, Any]:
    with staged_folder(out, "build") as staging:
        ir_dir = staging / "ir"
        ir_dir.mkdir()
        model.save(str(ir_dir / "00_qonnx.onnx"))
        steps = [{"step": "qonnx", "model": "ir/00_qonnx.onnx"}]
        for number, step in enumerate(pipeline(), start=1):
            if progress:
                print(f"  [{number}] {step.name}", flush=True)
            model = model.transform(step.transformation)
            name = f"ir/{number:02d}_{step.name}.onnx"
            model.save(str(staging / name))
            steps.append({"step": step.name, "model": name,
                          "ops": [n.op_type for n in model.graph.node]})
        folding = default_folding(model)
        search = None
        if preset is not None:
            folding_config = preset_folding(model, preset)
        if target_fps is not None:
            from ..perf.folding import search_folding
            from ..hw.hls import DEFAULT_CLOCK_MHZ, hls_layers

            clock = clock_mhz if clock_mhz is not None else DEFAULT_CLOCK_MHZ
            folding_config, search_rows = search_folding(hls_layers(model), target_fps, clock)
            search = {"target_fps": target_fps, "clock_mhz": clock, "layers": search_rows}
        if folding_config is not None:
            model = model.transform(ApplyFolding(folding_config, str(folding_path)))
            for name, config in folding_config.items():
                folding[name] = {"pe": config.get("pe", folding[name]["pe"]),
                                 "simd": config.get("simd", folding[name]["simd"])}
        model = model.transform(ApplyFolding(folding, "default folding"))
        _size_fifos(model, folding, folding_config or {})
        number = len(steps)
        final = f"ir/{number:02d}_{FINAL_STEP}.onnx"
        model.save(str(staging / final))
        steps.append({"step": FINAL_STEP, "model": final})
        if search is not None:
            search.update(_achieved(model, search["clock_mhz"]))
        rows = layer_table(model)
        _write_json(ir_dir / "folding.json", folding, sort_keys=False)  # in layer order
        _write_json(ir_dir / "layers.json", rows)
        (ir_dir / "layers.md").write_text(_markdown(rows, title))
        hls, spec = _write_hls(model, staging / "hls", source.get("spec"), title, part,
                               clock_mhz)
        # the run and the data set the model names, for the user to see: verify follows neither
        # path (a data set's name from the fixed list is used)
        build = {"name": title, "model": str(Path(record_model_as or model_path).resolve()), "source": {
            key: source.get(key) for key in ("run_dir", "dataset")},
            "spec": spec, "steps": steps, "ir": final,
            "folding": "ir/folding.json", "folding_from": (
                f"preset {preset}" if preset else str(folding_path) if folding_path
                else f"search for {target_fps:g} images/s" if target_fps is not None
                else "default (PE, SIMD: largest divisors up to 8)"), "hls": hls}
        if search is not None:
            build["folding_search"] = search
        _write_json(staging / BUILD_FILE, build)
    return {"build_dir": str(out), "layers": rows, **build}


def _write_hls(model, out: Path, spec: dict[str, Any] | None, name: str, part: str | None,
               clock_mhz: float | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """The HLS project, with sample images and the IR's outputs for them in tb/; returns its
    description and the spec (for a model without one, the input read from the graph)."""
    import numpy as np

    from ..hw.hls import DEFAULT_CLOCK_MHZ, DEFAULT_PART, generate_hls, sample_images
    from ..ir.execute import ir_outputs

    if not spec:  # a QONNX model from elsewhere: the input from the graph
        shape = model.get_tensor_shape(model.graph.input[0].name)
        bits = model.get_tensor_datatype(model.graph.input[0].name).bitwidth()
        spec = {"input": {"channels": int(shape[1]), "height": int(shape[2]),
                          "width": int(shape[3]), "bits": int(bits)}}
    info = generate_hls(model, out, spec, name, part or DEFAULT_PART,
                        clock_mhz if clock_mhz is not None else DEFAULT_CLOCK_MHZ)
    _write_driver(model, out.parent / "driver", spec, info)
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
    script = Path(__file__).resolve().parent.parent.parent / "scripts" / "run_on_board.py"
    if not script.is_file():
        raise PascalError(f"{script}: the board script is missing (run from a clone of the "
                          f"repository)")
    shutil.copyfile(script, folder / "run_on_board.py")

