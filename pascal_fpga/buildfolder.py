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

from .datasets import DATASETS
from .errors import PascalError
from .names import check_name, check_part, enum_name, show_value, shown_name
from .spec import ACTIVATIONS_MAX, CHANNELS_MAX, INPUT_SIZE_MAX

BUILD_FILE = "build.json"

def read_onnx(path: Path, what: str = "not an ONNX model"):
    """The ModelProto of an ONNX file, read as data: tensors stored in external files are
    refused (a model names those files; we never open a path a model names). A malformed file is
    one PascalError: ``{path}: {what} (...)``."""
    # deferred: onnx is heavy, and reading build.json (every command's start) needs none of it
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
    """A ModelWrapper of an ONNX file, its graph checked as data first: a missing or malformed
    file is one clear error naming it. Checked: one float32 image input (N, C, H, W) with C, H, W
    known and within the spec's limits; one output, computed by a node; no tensor described or
    defined twice; an initializer's value_info fits it, every other tensor is declared float32;
    every node input is the image, an initializer or an earlier node's output (topological
    order); every op outside ONNX's domain is one qonnx knows; onnx's checker passes (every ONNX
    op as its schema defines it); onnx's shape inference (qonnx's InferShapes) agrees with what
    the file declares and fills in what it leaves out.
    Initializers also listed as graph inputs (an export that qonnx's cleanup has not seen) are
    taken as initializers, as cleanup's RemoveStaticGraphInputs does. What the compiler can map
    (ops, quantizers, values) is CheckSupported's part."""
    # deferred: onnx and qonnx are heavy, and reading build.json needs neither
    import onnx
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.custom_op.registry import getCustomOp
    from qonnx.transformation.infer_shapes import InferShapes

    shown = shown_name  # names from the file, kept on one line

    def type_name(elem_type: int) -> str:
        return enum_name(onnx.TensorProto.DataType, elem_type)

    path = Path(path)
    if not path.is_file():
        raise PascalError(f"{path}: no such model file")
    proto = read_onnx(path)
    graph = proto.graph
    if not graph.node:
        raise PascalError(f"{path}: not an ONNX model (no graph nodes)")
    if not any(n.op_type in ("Quant", "BipolarQuant") for n in graph.node):
        kinds = sorted({n.op_type for n in graph.node if n.domain not in ("", "ai.onnx")})
        raise PascalError(f"{path}: not a QONNX model of integer quantizers (no Quant or "
                          f"BipolarQuant nodes{'; it has ' + ', '.join(kinds) if kinds else ''})"
                          f"; export a quantized Brevitas model with export_qonnx, or a trained "
                          f"run with `pascal-fpga export`")

    def count(items, what: str) -> str:  # "no input", "2 inputs (a, b)"
        if not items:
            return f"no {what}"
        listed = ", ".join(shown(item.name) for item in items[:4])
        return f"{len(items)} {what}s ({listed}{', ...' if len(items) > 4 else ''})"

    initializers = set()
    for init in graph.initializer:
        if init.name in initializers:
            raise PascalError(f"{path}: two initializers are named {shown(init.name)}")
        initializers.add(init.name)
    described = {v.name for v in graph.value_info}
    for static in [i for i in graph.input if i.name in initializers]:
        graph.input.remove(static)  # a weight listed as an input too: it is a weight
        if static.name not in described:
            graph.value_info.append(static)
            described.add(static.name)
    if len(graph.input) != 1:
        raise PascalError(f"{path}: the graph has {count(graph.input, 'input')}; one (the "
                          f"image) is supported")
    if len(graph.output) != 1:
        raise PascalError(f"{path}: the graph has {count(graph.output, 'output')}; one (the "
                          f"class scores) is supported")
    source, result = graph.input[0], graph.output[0]
    where = f"{path}: graph input {shown(source.name)}"
    if not source.type.HasField("tensor_type"):
        raise PascalError(f"{where} is not a tensor; a float32 image tensor is needed")
    elem_type = source.type.tensor_type.elem_type
    if elem_type != onnx.TensorProto.FLOAT:
        raise PascalError(f"{where} has element type {type_name(elem_type)}; a float32 (FLOAT) "
                          f"image input is needed")
    dims = source.type.tensor_type.shape.dim
    if not source.type.tensor_type.HasField("shape") or len(dims) != 4:
        count_ = f"{len(dims) or 'no'} dimension{'' if len(dims) == 1 else 's'}"
        raise PascalError(f"{where} has {count_}; an image input (N, C, H, W) is needed")
    if dims[0].HasField("dim_value") and dims[0].dim_value < 1:
        raise PascalError(f"{where}: batch size {dims[0].dim_value} is not positive")
    shape = []
    for axis, dim, top in zip("CHW", dims[1:], (CHANNELS_MAX, INPUT_SIZE_MAX, INPUT_SIZE_MAX)):
        size = dim.dim_value if dim.HasField("dim_value") else None
        if size is None or not 1 <= size <= top:
            got = size if size is not None else (
                show_value(dim.dim_param) if dim.dim_param else "unknown")
            raise PascalError(f"{where}: dimension {axis} is {got}; it must be a number in "
                              f"1..{top}")
        shape.append(size)
    if shape[0] * shape[1] * shape[2] > ACTIVATIONS_MAX:
        raise PascalError(f"{where}: an image of {shape[0]}x{shape[1]}x{shape[2]} values is "
                          f"more than {ACTIVATIONS_MAX}")
    tensors = {init.name: init for init in graph.initializer}
    seen = set()
    for info in [*graph.input, *graph.output, *graph.value_info]:
        if info.name in seen:
            raise PascalError(f"{path}: tensor {shown(info.name)} is described twice (graph "
                              f"inputs, outputs and value_info name each tensor once)")
        seen.add(info.name)
        declared = info.type.tensor_type if info.type.HasField("tensor_type") else None
        if info.name in tensors:  # the description of an initializer must fit it
            init = tensors[info.name]
            fits = declared is not None and declared.elem_type in (0, init.data_type) and (
                not declared.HasField("shape") or (
                    len(declared.shape.dim) == len(init.dims) and all(
                        not d.HasField("dim_value") or d.dim_value == n
                        for d, n in zip(declared.shape.dim, init.dims))))
            if not fits:
                said = "not a tensor" if declared is None else type_name(declared.elem_type) + (
                    " [" + ", ".join(str(d.dim_value) if d.HasField("dim_value") else "?"
                                     for d in declared.shape.dim) + "]"
                    if declared.HasField("shape") else "")
                raise PascalError(f"{path}: initializer {shown(info.name)} holds "
                                  f"{type_name(init.data_type)} {list(init.dims)}, but its "
                                  f"value_info declares {said}")
        elif info.name != source.name and (
                declared is None or declared.elem_type not in (0, onnx.TensorProto.FLOAT)):
            got = type_name(declared.elem_type) if declared is not None else "not a tensor"
            raise PascalError(f"{path}: tensor {shown(info.name)} is declared {got}; every "
                              f"tensor the nodes compute is float32")
    defined = initializers | {source.name}
    later = {out for node in graph.node for out in node.output}
    for node in graph.node:
        node_where = f"{path}: node {shown(node.name)} ({shown(node.op_type)})"
        if node.domain not in ("", "ai.onnx"):
            try:
                getCustomOp(node)
            except Exception:  # qonnx knows no such op: it could neither infer nor execute it
                raise PascalError(f"{node_where}: not an op of domain {show_value(node.domain)} "
                                  f"that qonnx knows") from None
        for name in node.input:
            if not name or name in defined:
                continue  # "" is an optional input left out
            if name in later:
                raise PascalError(f"{node_where}: input {shown(name)} is computed by this or a "
                                  f"later node (the nodes must be in topological order)")
            raise PascalError(f"{node_where}: input {shown(name)} is not defined (neither the "
                              f"graph input, an initializer nor a node's output)")
        for name in node.output:
            if name in defined:
                raise PascalError(f"{node_where}: output {shown(name)} is defined twice")
            if name:
                defined.add(name)
    if result.name in initializers or result.name == source.name or result.name not in defined:
        raise PascalError(f"{path}: graph output {shown(result.name)} is not computed by any "
                          f"node")
    try:  # what the checks above leave to onnx: each ONNX op as its schema defines it, ...
        onnx.checker.check_model(proto)
    except (onnx.checker.ValidationError, ValueError) as exc:
        said = " ".join(str(exc).split())  # one line
        node = re.search(r" ==> Context: Bad node spec for node\. Name: (.*) OpType: (.*)$", said)
        if node:
            said = said[:node.start()]
        said = said[:200] + ("..." if len(said) > 200 else "")
        raise PascalError(f"{path}: node {shown(node[1])} ({shown(node[2])}): {said} (onnx's "
                          f"checker)" if node else f"{path}: not a valid ONNX model (onnx's "
                          f"checker: {said})") from None
    # the shapes of computed tensors come from the graph (qonnx's InferShapes), not from what
    # the file declares: a declared shape must agree with the inferred one where it gives a size
    computed = {info.name: [d.dim_value if d.HasField("dim_value") else None
                            for d in info.type.tensor_type.shape.dim]
                for info in graph.value_info if info.name not in tensors
                and info.type.tensor_type.HasField("shape")}
    kept = [info for info in graph.value_info if info.name not in computed]
    del graph.value_info[:]
    graph.value_info.extend(kept)
    model = ModelWrapper(proto)
    try:
        model = model.transform(InferShapes())
    except Exception as exc:  # onnx's InferenceError, or a qonnx op that cannot infer its own
        first = (str(exc).splitlines() or [""])[0][:200]
        raise PascalError(f"{path}: the graph's types and shapes do not agree (shape inference: "
                          f"{type(exc).__name__}: {first!r})") from exc
    for node in model.graph.node:  # in order: the first without a shape is where it fails
        for name in filter(None, node.output):
            info = model.get_tensor_valueinfo(name)
            if info is None or not info.type.tensor_type.HasField("shape"):
                given = ", ".join(f"{shown(i)} {model.get_tensor_shape(i)}"
                                  for i in node.input[:5] if i)
                raise PascalError(f"{path}: node {shown(node.name)} ({shown(node.op_type)}): "
                                  f"shape inference finds no shape for its output "
                                  f"{shown(name)}; do its inputs fit it? ({given})")
    for name, declared in computed.items():
        info = model.get_tensor_valueinfo(name)
        if info is None or not info.type.tensor_type.HasField("shape"):
            continue  # a value_info of no node's output: nothing to compare
        inferred = model.get_tensor_shape(name)
        if inferred is not None and (len(inferred) != len(declared) or any(
                d is not None and n and d != n for d, n in zip(declared, inferred))):
            said = ", ".join(str(d) if d is not None else "?" for d in declared)
            raise PascalError(f"{path}: tensor {shown(name)} is declared of shape [{said}], but "
                              f"the graph computes {inferred}")
    return model


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
