"""Foreign export patterns, exactly: every rounding mode of qonnx's Quant as integer thresholds,
signed and bipolar levels as codes, the input adapter, and the rewrites of NormalizeExport
(docs/foreign-models.md). The foreign networks themselves: tests/test_foreign.py."""

from __future__ import annotations

import json

import numpy as np
import pytest
from onnx import TensorProto, helper
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.core.onnx_exec import execute_onnx
from qonnx.custom_op.general.intquant import resolve_rounding_mode
from qonnx.transformation.infer_shapes import InferShapes

from pascal_fpga.cli import main as cli_main
from pascal_fpga.ir.adapter import InputAdapter
from pascal_fpga.ir.normalize import NormalizeExport
from pascal_fpga.qcfs import integer_thresholds, rounding_steps

MODES = ["ROUND", "HALF_EVEN", "HALF_UP", "HALF_DOWN", "CEIL", "FLOOR", "UP", "DOWN"]
RANGES = [(0, 3), (0, 15), (-2, 1), (-1, 1), (-8, 7), (-127, 127)]


def _quantized_levels(values: np.ndarray, mode: str, low: int, high: int) -> np.ndarray:
    """What qonnx's Quant computes, in levels: clamp, then round."""
    return resolve_rounding_mode(mode)(np.clip(values, low, high))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("low, high", RANGES)
def test_rounding_steps_count_levels_exactly(mode, low, high):
    """level = low + #{j : x >= beta_j (x > beta_j where strict)} for every x, the ties at
    integers and half-integers included."""
    steps, strict = rounding_steps(resolve_rounding_mode(mode), low, high)
    assert len(steps) == high - low
    grid = np.arange(4 * (low - 2), 4 * (high + 2) + 1) / 4.0   # every quarter step
    rng = np.random.default_rng(0)
    values = np.concatenate([grid, rng.uniform(low - 2, high + 2, 2000)])
    reached = np.where(strict[None, :], values[:, None] > steps[None, :],
                       values[:, None] >= steps[None, :])
    assert np.array_equal(low + reached.sum(axis=1), _quantized_levels(values, mode, low, high))


def test_half_to_even_is_strict_at_odd_levels():
    steps, strict = rounding_steps(np.round, 0, 4)
    assert steps.tolist() == [0.5, 1.5, 2.5, 3.5]
    assert strict.tolist() == [True, False, True, False]   # 0.5 -> 0, 1.5 -> 2, 2.5 -> 2, ...


@pytest.mark.parametrize("mode", MODES)
def test_integer_thresholds_match_the_quantizer_at_exact_ties(mode):
    """z = a * acc + b with power-of-two a (FINN's fixed-point networks): every tie is exact in
    float arithmetic, and the integer thresholds must give qonnx's level for every accumulator,
    for positive and negative gains."""
    low, high = -4, 3
    steps, strict = rounding_steps(resolve_rounding_mode(mode), low, high)
    scale = 0.25
    a = np.array([2.0 ** -3, -(2.0 ** -4), 2.0 ** -2, 2.0 ** -3])
    b = np.array([0.0, 0.125, -0.375, 1.0 / 16])
    thresholds, sign = integer_thresholds(a, b, steps * scale, np.zeros(4, dtype=np.int64),
                                          strict)
    acc = np.arange(-200, 201)
    for c in range(4):
        z = a[c] * acc + b[c]
        want = _quantized_levels(z / scale, mode, low, high)
        got = low + (sign[c] * acc[:, None] >= thresholds[c][None, :]).sum(axis=1)
        assert np.array_equal(got, want), (mode, c)


def _adapter_model(ops, quant_attrs, scale, bits, shape=(1, 1, 4, 4)):
    """input -> ops -> Quant: the prefix an adapter replaces, as a model qonnx executes."""
    nodes, inits, tensor = [], [], "x"
    for i, (op, value, first) in enumerate(ops):
        const = f"c{i}"
        inits.append(helper.make_tensor(const, TensorProto.FLOAT, [1], [value]))
        out = f"t{i}"
        nodes.append(helper.make_node(op, [const, tensor] if first else [tensor, const], [out]))
        tensor = out
    for name, value in (("s", scale), ("z", 0.0), ("b", float(bits))):
        inits.append(helper.make_tensor(name, TensorProto.FLOAT, [], [value]))
    nodes.append(helper.make_node("Quant", [tensor, "s", "z", "b"], ["y"],
                                  domain="qonnx.custom_op.general", **quant_attrs))
    graph = helper.make_graph(nodes, "prefix",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)],
                              initializer=inits)
    return ModelWrapper(helper.make_model(graph)).transform(InferShapes())


@pytest.mark.parametrize("mode", ["ROUND", "HALF_UP", "FLOOR"])
def test_the_input_adapter_equals_qonnx_on_the_model_prefix(mode):
    """FINN's input: 2x - 1, then a signed narrow 8-bit quantizer at scale 2^-7 (ties exactly at
    half steps for some pixels / 255); the adapter's codes are qonnx's levels + 127."""
    ops = [["Mul", 2.0, False], ["Sub", 1.0, False]]
    attrs = dict(signed=1, narrow=1, rounding_mode=mode)
    model = _adapter_model(ops, attrs, 2.0 ** -7, 8, shape=(1, 1, 16, 16))
    adapter = InputAdapter(ops=ops, quant="Quant", scale=2.0 ** -7, bits=8, signed=True,
                           narrow=True, rounding_mode=mode, low=-127, mult=1, codes=254)
    pixels = np.arange(256, dtype=np.float32).reshape(1, 1, 16, 16)
    for x in (pixels / np.float32(255), (pixels - 128) / np.float32(128) + np.float32(0.5)):
        want = execute_onnx(model, {"x": x})["y"] / np.float32(2.0 ** -7)
        got = adapter(x)
        assert np.array_equal(got, np.rint(want) + 127)
        assert got.min() >= 0 and got.max() <= 254
    rng = np.random.default_rng(1)
    spread = adapter(adapter.random_inputs(rng, (200, 1, 16, 16)))
    assert spread.min() == 0 and spread.max() == 254   # the random inputs reach every end
    assert InputAdapter.from_json(json.dumps(adapter.to_json())) == adapter


def _relu_quant_model(signed: int):
    inits = [helper.make_tensor(n, TensorProto.FLOAT, [], [v])
             for n, v in (("s", 0.5), ("z", 0.0), ("b", 2.0))]
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="relu"),
             helper.make_node("Quant", ["r", "s", "z", "b"], ["y"], name="quant",
                              domain="qonnx.custom_op.general", signed=signed, narrow=0,
                              rounding_mode="ROUND")]
    graph = helper.make_graph(nodes, "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 64])],
                              initializer=inits)
    return ModelWrapper(helper.make_model(graph)).transform(InferShapes())


def test_a_relu_before_an_unsigned_quantizer_is_dropped_and_changes_nothing():
    x = np.linspace(-3, 3, 64, dtype=np.float32).reshape(1, 64)
    model = _relu_quant_model(signed=0)
    before = execute_onnx(model, {"x": x})["y"]
    after_model = model.transform(NormalizeExport())
    assert [n.op_type for n in after_model.graph.node] == ["Quant"]
    assert np.array_equal(execute_onnx(after_model, {"x": x})["y"], before)
    # before a signed quantizer the Relu is not a no-op: it stays (and CheckSupported refuses)
    signed = _relu_quant_model(signed=1).transform(NormalizeExport())
    assert [n.op_type for n in signed.graph.node] == ["Relu", "Quant"]


def _set_attribute(node, name, value):
    for attribute in list(node.attribute):
        if attribute.name == name:
            node.attribute.remove(attribute)
    node.attribute.append(helper.make_attribute(name, value))


@pytest.mark.slow
def test_round_activations_and_a_narrow_input_compile_exactly(digits_build, tmp_path, capsys):
    """The digits model with every hidden activation rounding half to even (as Brevitas exports
    it before our correction) and a narrow input quantizer: compiled, every view equals qonnx's
    execution of that model, on data."""
    model = ModelWrapper(str(digits_build / "ir" / "00_qonnx.onnx"))
    quants = [n for n in model.graph.node if n.op_type == "Quant"
              and model.get_initializer(n.input[0]) is None]
    for node in quants[1:]:
        _set_attribute(node, "rounding_mode", "ROUND")
    _set_attribute(quants[0], "narrow", 1)   # the pixels: 0..2^b - 2 (the top one clamps)
    path = tmp_path / "round.onnx"
    model.save(str(path))
    out = tmp_path / "b"
    assert cli_main(["compile", str(path), "--out", str(out)]) == 0
    capsys.readouterr()
    build = json.loads((out / "build.json").read_text())
    bits = build["spec"]["input"]["bits"]
    assert build["input_adapter"]["codes"] == 2 ** bits - 2 and build["input_adapter"]["narrow"]
    assert cli_main(["verify", str(out), "--images", "120", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["passed"]
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["ir_vs_qonnx"]["compared"] == 120
    for name in ("ir_vs_qonnx", "snn_vs_ir", "cyclesim_vs_ir"):
        assert checks[name]["mismatched"] == checks[name]["ties"], checks[name]


def _as_matmul(model, gemm) -> None:
    """Gemm(x, Quant(W)[, Quant(b)]) -> MatMul(x, Quant(W^T)) [-> Add(Quant(b))], as an export
    of a linear layer without Gemm gives it (the weight's scale transposed with it)."""
    quant = model.find_producer(gemm.input[1])
    model.set_initializer(quant.input[0], model.get_initializer(quant.input[0]).T.copy())
    scale = model.get_initializer(quant.input[1])
    if scale.ndim == 2:
        model.set_initializer(quant.input[1], scale.T.copy())
    out = gemm.output[0]
    matmul_out = out + "_matmul" if len(gemm.input) > 2 else out
    nodes = [helper.make_node("MatMul", list(gemm.input[:2]), [matmul_out],
                              name=gemm.name + "_mm")]
    if len(gemm.input) > 2:
        nodes.append(helper.make_node("Add", [matmul_out, gemm.input[2]], [out],
                                      name=gemm.name + "_bias"))
    index = model.get_node_index(gemm)
    model.graph.node.remove(gemm)
    for offset, node in enumerate(nodes):
        model.graph.node.insert(index + offset, node)
    for tensor in list(model.graph.value_info):
        if tensor.name == quant.output[0]:
            model.graph.value_info.remove(tensor)


@pytest.mark.slow
def test_matmul_layers_and_a_separate_bias_compile_to_the_same_ir(digits_build, tmp_path,
                                                                   capsys):
    """Both dense layers of the digits model as MatMul (one with its bias added by a separate
    Add of a quantized constant): the same integer weights and thresholds as the Gemm model's
    build, and every view agrees."""
    model = ModelWrapper(str(digits_build / "ir" / "00_qonnx.onnx"))
    for gemm in [n for n in model.graph.node if n.op_type == "Gemm"]:
        _as_matmul(model, gemm)
    model = model.transform(InferShapes())
    assert not [n for n in model.graph.node if n.op_type == "Gemm"]
    path = tmp_path / "matmul.onnx"
    model.save(str(path))
    out = tmp_path / "b"
    assert cli_main(["compile", str(path), "--out", str(out)]) == 0
    capsys.readouterr()
    mine = ModelWrapper(str(out / json.loads((out / "build.json").read_text())["ir"]))
    ours = ModelWrapper(str(digits_build / json.loads(
        (digits_build / "build.json").read_text())["ir"]))
    for a, b in zip(mine.graph.node, ours.graph.node):
        assert a.op_type == b.op_type
        for x, y in zip(a.input[1:], b.input[1:]):
            assert np.array_equal(mine.get_initializer(x), ours.get_initializer(y)), a.name
    assert cli_main(["verify", str(out), "--images", "60", "--json", "--no-snn"]) == 0
    assert json.loads(capsys.readouterr().out)["passed"]
