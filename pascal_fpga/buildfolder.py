"""The build folder, at the bottom of the pipeline: reading and writing BUILD_DIR's files.

Every stage that reads a build (verify, simulate, the driver) or writes one (compile) goes through
this module, so that no two stages import each other. It reads model files as data (never a path a
model or a build.json names outside the build) and checks every field of build.json that later
commands read: a damaged or hand-edited build is one clear PascalError naming the file and field.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

from .errors import PascalError
from .names import check_name, check_part

BUILD_FILE = "build.json"

def read_onnx(path: Path, what: str = "not an ONNX model"):
    """The ModelProto of an ONNX file, read as data: tensors stored in external files are
    refused (a model names those files; we never open a path a model names). A malformed file is
    one PascalError: ``{path}: {what} (...)``."""
    import onnx
    from google.protobuf.message import DecodeError

    try:
        proto = onnx.load(str(path), load_external_data=False)
    except (DecodeError, OSError, ValueError, RuntimeError, TypeError) as exc:
        raise PascalError(f"{path}: {what} ({type(exc).__name__})") from exc
    tensors = list(proto.graph.initializer) + [
        tensor for node in proto.graph.node for attribute in node.attribute
        for tensor in [attribute.t, *attribute.tensors]]
    if any(tensor.data_location == onnx.TensorProto.EXTERNAL for tensor in tensors):
        raise PascalError(f"{path}: tensors stored in external files are not supported (save "
                          f"the model with its data inside)")
    return proto


def load_qonnx(path: str | Path):
    """A ModelWrapper of an ONNX file; a missing or malformed file is one clear error."""
    from qonnx.core.modelwrapper import ModelWrapper

    path = Path(path)
    if not path.is_file():
        raise PascalError(f"{path}: no such model file")
    proto = read_onnx(path)
    if not proto.graph.node:
        raise PascalError(f"{path}: not an ONNX model (no graph nodes)")
    if not any(n.op_type == "Quant" for n in proto.graph.node):
        raise PascalError(f"{path}: not a QONNX model (no Quant nodes); export a trained run "
                          f"with `pascal-fpga export`")
    return ModelWrapper(proto)


def read_json(path: Path) -> Any:
    """A JSON file's value; unreadable, non-UTF-8 or malformed JSON is one clear error."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise PascalError(f"{path}: not valid JSON (line {exc.lineno}: {exc.msg})") from exc
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise PascalError(f"{path}: not a readable JSON file ({type(exc).__name__})") from exc


def load_folding(path: str | Path) -> dict[str, Any]:
    """A folding config: {layer: {"pe", "simd", "fifo_depth"}} (or that under "layers");
    its values are checked by ApplyFolding."""
    path = Path(path)
    if not path.is_file():
        raise PascalError(f"{path}: no such folding config")
    config = read_json(path)
    if not isinstance(config, dict):
        raise PascalError(f"{path}: expected an object of layer name -> {{\"pe\": .., "
                          f"\"simd\": ..}}")
    return config.get("layers", config) if isinstance(config.get("layers"), dict) else config


def write_json(path: Path, data: Any, sort_keys: bool = True) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=sort_keys) + "\n")

# the models a build names: BUILD_DIR/ir/NN_<step>.onnx, nothing outside the build
_IR_PATH = re.compile(r"ir/[0-9]{2}_[a-z_]{1,40}\.onnx")
_INPUT_MAX = {"channels": 1 << 16, "height": 1 << 16, "width": 1 << 16, "bits": 16}


def load_build(build_dir: str | Path) -> dict[str, Any]:
    """BUILD_DIR/build.json, with every field that later commands read checked: a damaged or
    hand-edited file is one PascalError naming it and the field."""
    build_dir = Path(build_dir)
    path = build_dir / BUILD_FILE
    if not path.is_file():
        raise PascalError(f"{build_dir}: not a build folder (no {BUILD_FILE}; run "
                          f"`pascal-fpga compile` first)")
    build = read_json(path)
    _check_build(build, path)
    for name in BUILD_FOLDERS:
        own_folder(build_dir, name)
    return build


# the folders a build holds, written by compile, verify (csim, rtlsim), simulate and synth
BUILD_FOLDERS = ("ir", "hls", "rtl", "driver", "csim", "rtlsim", "report", "synth")


def own_folder(build_dir: Path, name: str, create: bool = False) -> Path:
    """BUILD_DIR/name, which must be a real folder of the build, never a symbolic link: a link
    would send what we write (csim's objects, a report) or run (hls/Makefile) somewhere else.
    A missing folder is made with ``create`` (a dangling link makes mkdir fail, not follow)."""
    folder = Path(build_dir) / name
    if folder.is_symlink():
        raise PascalError(f"{folder}: is a symbolic link; a build's own folders must be real "
                          f"folders inside it (remove the link, or compile again)")
    if folder.exists() and not folder.is_dir():
        raise PascalError(f"{folder}: is not a folder (remove it, or compile again)")
    if create and not folder.exists():
        try:
            folder.mkdir()
        except OSError as exc:
            raise PascalError(f"{folder}: cannot create it ({exc.strerror})") from None
    return folder


def _check_build(build: Any, path: Path) -> None:
    from .datasets import DATASETS

    def bad(field: str, expected: str, value: Any = None) -> PascalError:
        got = repr(value)
        got = got if len(got) <= 60 else got[:57] + "..."
        return PascalError(f"{path}: field {field!r} must be {expected}, got {got} (compile "
                           f"again)")

    if not isinstance(build, dict):
        raise PascalError(f"{path}: must hold a JSON object, got a {type(build).__name__} "
                          f"(compile again)")
    for key in ("name", "ir", "steps", "source", "spec", "hls"):
        if key not in build:
            raise PascalError(f"{path}: missing field {key!r} (compile again)")
    check_name(build["name"], f"{path}: field 'name'")
    if not isinstance(build["ir"], str) or not _IR_PATH.fullmatch(build["ir"]):
        raise bad("ir", "a model in the build (ir/NN_step.onnx)", build["ir"])
    steps = build["steps"]
    if not isinstance(steps, list) or not steps:
        raise bad("steps", "a non-empty list", steps)
    for index, step in enumerate(steps):
        if isinstance(step, dict) and step.get("saved") is False:
            continue  # compiled with save_intermediate off: no model kept for this step
        if isinstance(step, dict) and "folder" in step:
            if step["folder"] not in ("hls", "rtl", "driver"):
                raise bad(f"steps[{index}].folder", "hls, rtl or driver", step["folder"])
            continue
        model = step.get("model") if isinstance(step, dict) else None
        if not isinstance(model, str) or not _IR_PATH.fullmatch(model):
            raise bad(f"steps[{index}].model", "a model in the build (ir/NN_step.onnx)", model)
    source = build["source"]
    if not isinstance(source, dict):
        raise bad("source", "an object", source)
    if source.get("run_dir") is not None and not isinstance(source["run_dir"], str):
        raise bad("source.run_dir", "a string", source["run_dir"])
    if source.get("dataset") is not None and source["dataset"] not in DATASETS:
        raise bad("source.dataset", f"one of {', '.join(DATASETS)}", source["dataset"])
    spec = build["spec"]
    shape = spec.get("input") if isinstance(spec, dict) else None
    if not isinstance(shape, dict):
        raise bad("spec.input", "an object", shape)
    for key, top in _INPUT_MAX.items():
        value = shape.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= top:
            raise bad(f"spec.input.{key}", f"an integer in 1..{top}", value)
    hls = build["hls"]
    if not isinstance(hls, dict):
        raise bad("hls", "an object", hls)
    clock = hls.get("clock_mhz")
    if not isinstance(clock, (int, float)) or isinstance(clock, bool) \
            or not math.isfinite(clock) or clock <= 0:
        raise bad("hls.clock_mhz", "a positive number", clock)
    check_part(hls.get("part"), f"{path}: field 'hls.part'")
