"""Export a trained run to a clean QONNX model whose activation quantizers mean QCFS exactly.

Brevitas exports every QCFS activation as ``Quant(rounding_mode=ROUND, bitwidth=b)`` with
b = max(2, ceil(log2(L + 1))): its clamp is then 2^b - 1, not L, and its rounding half-to-even,
not half-up (docs/design.md, section 5.2). This module corrects both on the exported graph:
each QCFS Quant node gets ``rounding_mode=HALF_UP`` and the fractional bit width log2(L + 1), so
that qonnx's Quant
(clamp to [0, 2^bitwidth - 1], then round) computes clip(floor(x / s + 1/2), 0, L) for x >= 0. The
clamp is then 2^log2(L+1) - 1 in float32, within 1e-5 of L, and since it comes before the rounding
it rounds to exactly L. L is not otherwise in the graph: ``level_count`` reads it back.

A residual block with ``residual: shift`` (``model.network.BasicBlock``) exports as exactly this
pattern (see :func:`shift_block_patterns`), x being the block input tensor (the output of the
previous QCFS Quant, of the pixel input's Quant, or of a pool):

    Conv1(x, Quant(W1)) -> BatchNormalization -> Quant (act1, QCFS)
      -> Conv2(., Quant(W2)) -> BatchNormalization (BN2) -> main
    identity:   Mul(x, c)                       -> shortcut
    projection: Mul(Conv_sc(x, Quant(W_sc)), c) -> shortcut   (1x1, the block's stride, no bias)
    Add(main, shortcut) -> Quant (act2, QCFS)

with c an initializer of shape (1, C, 1, 1): the snapping factor |a2_c| 2^e_c / g_c (0 where
a2_c = 0), computed by the model in eval without gradient, so main + c * shortcut equals
a2 acc2 + b2 + |a2| 2^e v. The Convs have no bias input.

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
from onnx import helper
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.infer_shapes import InferShapes
from qonnx.util.cleanup import cleanup_model

from ..datasets import DATASETS
from ..errors import PascalError
from ..model.network import BasicBlock, QCFSNet, levels_of
from ..names import check_name, check_optional_strings, show_value
from ..spec import ModelSpec, parse_spec
from ..train.trainer import load_run

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
    """The activation quantizers of a graph, in topological order: Quant (and a foreign model's
    BipolarQuant) nodes whose input is a tensor computed by the graph (not an initializer) and
    not the graph input."""
    inputs = {i.name for i in model.graph.input}
    nodes = []
    for node in model.graph.node:
        if node.op_type not in ("Quant", "BipolarQuant"):
            continue
        if model.get_initializer(node.input[0]) is not None or node.input[0] in inputs:
            continue
        nodes.append(node)
    return nodes


def node_attr(node, name: str, default=None):
    """An ONNX node's attribute value, or ``default``."""
    for attribute in node.attribute:
        if attribute.name == name:
            return helper.get_attribute_value(attribute)
    return default


def _set_attr(node, name: str, value) -> None:
    for attribute in list(node.attribute):
        if attribute.name == name:
            node.attribute.remove(attribute)
    node.attribute.append(helper.make_attribute(name, value))


def _brevitas_export(net: QCFSNet, spec: ModelSpec, path: Path) -> None:
    with warnings.catch_warnings():  # an optional Hadamard package Brevitas looks for
        warnings.simplefilter("ignore")
        from brevitas.export import export_qonnx  # deferred: heavy, and only an export needs it

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


def _producer(model, tensor: str):
    return model.find_producer(tensor)


def shift_block_patterns(model) -> list[dict[str, Any]]:
    """Every shift block of an exported graph, in graph order, as a dict of node names: ``add``,
    ``act2`` (the Quant after it), ``bn2``, ``conv2``, ``act1``, ``mul``, ``conv_sc`` (None for
    the identity), ``input`` (the tensor x), ``factor`` (the initializer c's name). Raises a
    PascalError naming the node when an Add of two computed tensors is not exactly the pattern of
    the module docstring."""
    blocks = []
    for add in model.graph.node:
        if add.op_type != "Add" or any(model.get_initializer(i) is not None for i in add.input):
            continue
        where = f"{add.name} (Add)"
        main, short = (_producer(model, name) for name in add.input)
        consumers = model.find_consumers(add.output[0])
        if len(consumers) != 1 or consumers[0].op_type != "Quant":
            raise PascalError(f"{where}: a residual add must feed exactly one Quant (act2)")
        if main is None or main.op_type != "BatchNormalization":
            raise PascalError(f"{where}: its first input must come from a BatchNormalization")
        conv2 = _producer(model, main.input[0])
        if conv2 is None or conv2.op_type != "Conv" or len(conv2.input) != 2:
            raise PascalError(f"{where}: BN2 must follow a Conv without bias")
        act1 = _producer(model, conv2.input[0])
        if act1 is None or act1.op_type != "Quant":
            raise PascalError(f"{where}: conv2 must read act1's Quant")
        if short is None or short.op_type != "Mul":
            raise PascalError(f"{where}: its second input must come from a Mul (the snapped "
                              f"shortcut)")
        factor = model.get_initializer(short.input[1])
        channels = model.get_tensor_shape(main.output[0])[1]
        if factor is None or tuple(factor.shape) != (1, channels, 1, 1):
            raise PascalError(f"{where}: the shortcut's Mul needs an initializer of shape "
                              f"(1, {channels}, 1, 1) as its second input")
        source = _producer(model, short.input[0])
        conv_sc = None
        x = short.input[0]
        if source is not None and source.op_type == "Conv" and \
                model.get_initializer(source.input[0]) is None and \
                _producer(model, source.input[1]) is not None and \
                _producer(model, source.input[1]).op_type == "Quant" and \
                model.get_initializer(_producer(model, source.input[1]).input[0]) is not None:
            if len(source.input) != 2:
                raise PascalError(f"{source.name} (Conv): a projection shortcut has no bias")
            conv_sc, x = source, source.input[0]
        bn1 = _producer(model, act1.input[0])
        conv1 = _producer(model, bn1.input[0]) if bn1 is not None else None
        if conv1 is None or conv1.op_type != "Conv" or conv1.input[0] != x:
            raise PascalError(f"{where}: the shortcut must read the block input that conv1 reads")
        blocks.append({"add": add.name, "act2": consumers[0].name, "bn2": main.name,
                       "conv2": conv2.name, "act1": act1.name, "mul": short.name,
                       "conv_sc": None if conv_sc is None else conv_sc.name, "input": x,
                       "factor": short.input[1]})
    return blocks


def _check_shift_blocks(model, net: QCFSNet) -> list[dict[str, Any]]:
    """The exported shift blocks match the network's, one by one, each factor c equal to the
    block's ``export_factor``."""
    shift = [m for m in net.modules() if isinstance(m, BasicBlock) and m.residual == "shift"]
    found = shift_block_patterns(model) if shift else []
    if len(found) != len(shift):
        raise PascalError(f"{net.spec.name}: the exported graph has {len(found)} shift blocks, "
                          f"the network {len(shift)}")
    for block, row in zip(shift, found):
        factor = model.get_initializer(row["factor"])
        expected = block.export_factor.detach().numpy()
        if (row["conv_sc"] is None) == block.projection or not np.array_equal(factor, expected):
            raise PascalError(f"{row['mul']} (Mul): not the shortcut of its block (kind or "
                              f"factor)")
    return found


def export_network(net: QCFSNet, out: str | Path, source: dict[str, Any] | None = None
                   ) -> dict[str, Any]:
    """Export an eval-mode QCFS network to ``out`` (written whole, or not at all)."""
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
        blocks = _check_shift_blocks(model, net)
        info = {"name": spec.name, "spec": spec.to_dict(), "activations": rows}
        info.update(source or {})
        model.set_metadata_prop(SOURCE_KEY, json.dumps(info, sort_keys=True))
        if blocks:
            info["shift_blocks"] = blocks
        staged = Path(tmp) / "model.onnx"
        model.save(str(staged))
        os.replace(staged, out)
    return info


def export_run(run_dir: str | Path, out: str | Path, record_as: str | Path | None = None
               ) -> dict[str, Any]:
    """Export the network of a run directory; the model records the run (its absolute path, or
    ``record_as`` for a run that is about to move there) and its data set."""
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
