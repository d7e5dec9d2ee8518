"""Export a trained run to a clean QONNX model whose activation quantizers mean QCFS exactly.

Brevitas exports every QCFS activation as ``Quant(rounding_mode=ROUND, bitwidth=b)`` with
b = max(2, ceil(log2(L + 1))): its clamp is then 2^b - 1, not L, and its rounding half-to-even,
not half-up (DESIGN.md 5). This module corrects both on the exported graph: each QCFS Quant node
gets ``rounding_mode=HALF_UP`` and the fractional bit width log2(L + 1), so that qonnx's Quant
(clamp to [0, 2^bitwidth - 1], then round) computes clip(floor(x / s + 1/2), 0, L) for x >= 0. The
clamp is then 2^log2(L+1) - 1 in float32, within 1e-5 of L, and since it comes before the rounding
it rounds to exactly L. L is not otherwise in the graph: ``level_count`` reads it back.

The model's metadata (``pascal_fpga.source``) records the model's name, its spec, the run it
came from and its data set. Only the name, the spec and the data set's name are used later
(``compile`` checks them); the run's path is shown to the user, never followed: ``verify`` compares
with a Brevitas run only when the user names it (``--run``), because a model file may come from
anyone.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import math
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import PascalError
from ..model.network import QCFSNet, levels_of
from ..spec import ModelSpec

SOURCE_KEY = "pascal_fpga.source"


def level_count(bit_width: float) -> int:
    """L of a corrected QCFS Quant node: 2^bitwidth - 1, rounded."""
    return int(round(2.0 ** float(bit_width) - 1.0))


def qcfs_bit_width(levels: int) -> np.ndarray:
    """The fractional bit width log2(L + 1) (float32) that makes qonnx's clamp L."""
    width = np.asarray(math.log2(levels + 1), dtype=np.float32)
    clamp = float(2.0 ** width.astype(np.float64)) - 1.0
    assert abs(clamp - levels) < 0.5, (levels, clamp)
    return width


def activation_quant_nodes(model) -> list:
    """The activation Quant nodes of a graph, in topological order: Quant nodes whose input is a
    tensor computed by the graph (not an initializer) and not the graph input."""
    inputs = {i.name for i in model.graph.input}
    nodes = []
    for node in model.graph.node:
        if node.op_type != "Quant":
            continue
        if model.get_initializer(node.input[0]) is not None or node.input[0] in inputs:
            continue
        nodes.append(node)
    return nodes


def node_attr(node, name: str, default=None):
    """An ONNX node's attribute value, or ``default``."""
    from onnx import helper

    for attribute in node.attribute:
        if attribute.name == name:
            return helper.get_attribute_value(attribute)
    return default


def _set_attr(node, name: str, value) -> None:
    from onnx import helper

    for attribute in list(node.attribute):
        if attribute.name == name:
            node.attribute.remove(attribute)
    node.attribute.append(helper.make_attribute(name, value))


def _brevitas_export(net: QCFSNet, spec: ModelSpec, path: Path) -> None:
    with warnings.catch_warnings():  # an optional Hadamard package Brevitas looks for
        warnings.simplefilter("ignore")
        from brevitas.export import export_qonnx

    shape = (1, spec.input.channels, spec.input.height, spec.input.width)
    quiet = logging.getLogger("torch.onnx")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # it warns that torchvision (which we do not use) is missing
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            export_qonnx(net, torch.zeros(shape), export_path=str(path))
        except Exception as exc:  # the exporter's own failure: name it, keep the traceback
            raise PascalError(f"{spec.name}: Brevitas could not export the network to QONNX "
                              f"({type(exc).__name__}: {str(exc).splitlines()[0][:200]})") from exc
        finally:
            quiet.setLevel(level)


def correct_qcfs_quantizers(model, net: QCFSNet) -> list[dict[str, Any]]:
    """Give each QCFS Quant node its exact meaning (see the module docstring); returns one row per
    activation (node name, L, step). The add quantizers of residual blocks are signed: they get
    HALF_UP too (qonnx's HALF_UP rounds negative ties away from zero, Brevitas' up: a tie)."""
    acts = net.qcfs_activations()
    adds = net.add_quantizers()
    nodes = activation_quant_nodes(model)
    unsigned = [n for n in nodes if not node_attr(n, "signed")]
    signed = [n for n in nodes if node_attr(n, "signed")]
    if len(unsigned) != len(acts) or len(signed) != 2 * len(adds):
        raise PascalError(f"{net.spec.name}: the exported graph has {len(unsigned)} unsigned and "
                          f"{len(signed)} signed activation quantizers, the network {len(acts)} "
                          f"QCFS activations and {len(adds)} add quantizers (used twice each)")
    rows = []
    for node, act in zip(unsigned, acts):
        levels = levels_of(act)
        step = np.float32(act.act_quant.scale().detach().float().item())
        scale = model.get_initializer(node.input[1])
        if scale is None or scale.size != 1 or np.float32(scale.item()) != step:
            raise PascalError(f"{node.name}: exported scale {scale} is not the QCFS step "
                              f"lambda / L = {step} of its activation")
        model.set_initializer(node.input[3], qcfs_bit_width(levels))
        _set_attr(node, "rounding_mode", "HALF_UP")
        rows.append({"node": node.name, "levels": levels, "step": float(step)})
    for node in signed:
        _set_attr(node, "rounding_mode", "HALF_UP")
    return rows


def export_network(net: QCFSNet, out: str | Path, source: dict[str, Any] | None = None
                   ) -> dict[str, Any]:
    """Export an eval-mode QCFS network to ``out`` (written whole, or not at all)."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.transformation.infer_shapes import InferShapes
    from qonnx.util.cleanup import cleanup_model

    spec = net.spec
    if not net.quantized:
        raise PascalError(f"{spec.name}: a float network has no QONNX export (train without "
                          f"--float)")
    net.eval()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".export.", dir=out.parent) as tmp:
        raw = Path(tmp) / "brevitas.onnx"
        _brevitas_export(net, spec, raw)
        model = cleanup_model(ModelWrapper(str(raw)))
        model = model.transform(InferShapes())
        rows = correct_qcfs_quantizers(model, net)
        info = {"name": spec.name, "spec": spec.to_dict(), "activations": rows}
        info.update(source or {})
        model.set_metadata_prop(SOURCE_KEY, json.dumps(info, sort_keys=True))
        staged = Path(tmp) / "model.onnx"
        model.save(str(staged))
        os.replace(staged, out)
    return info


def export_run(run_dir: str | Path, out: str | Path, record_as: str | Path | None = None
               ) -> dict[str, Any]:
    """Export the network of a run directory; the model records the run (its absolute path, or
    ``record_as`` for a run that is about to move there) and its data set."""
    from ..train.trainer import load_run

    run_dir = Path(run_dir).resolve()
    spec, net, metrics = load_run(run_dir)
    recorded = Path(record_as).resolve() if record_as is not None else run_dir
    source = {"run_dir": str(recorded), "dataset": metrics.get("dataset"),
              "data_dir": metrics.get("data_dir")}
    return export_network(net, out, source)


def model_source(model, where: str = "the model") -> dict[str, Any]:
    """The ``pascal_fpga.source`` metadata of an exported model ({} when absent), checked:
    a JSON object whose ``name`` is a safe name, ``spec`` a valid spec (its name safe too),
    ``dataset`` one of the data sets, ``run_dir`` and ``data_dir`` strings (recorded, never
    followed). Anything else is a PascalError naming ``where`` (the model's file) and the field."""
    from ..datasets import DATASETS
    from ..names import check_name, check_optional_strings, show_value
    from ..spec import parse_spec

    value = model.get_metadata_prop(SOURCE_KEY)
    if value is None:
        return {}
    field = f"{where}: metadata {SOURCE_KEY}"
    try:
        info = json.loads(value)
    except (ValueError, RecursionError) as exc:
        raise PascalError(f"{field}: not valid JSON ({type(exc).__name__})") from exc
    if not isinstance(info, dict):
        raise PascalError(f"{field}: must be a JSON object, got a {type(info).__name__}")
    if "name" in info:
        check_name(info["name"], f"{field}: field 'name'")
    if info.get("spec") is not None:
        if not isinstance(info["spec"], dict):
            raise PascalError(f"{field}: field 'spec' must be an object, got a "
                              f"{type(info['spec']).__name__}")
        info["spec"] = parse_spec(info["spec"], f"{field}: field 'spec'").to_dict()
    dataset = info.get("dataset")
    if dataset is not None and dataset not in DATASETS:
        raise PascalError(f"{field}: field 'dataset' must be one of {', '.join(DATASETS)}, got "
                          f"{show_value(dataset)}")
    check_optional_strings(info, ("run_dir", "data_dir"), f"{field}: field ")
    return info
