"""Fuzzing `pascal-fpga compile` with hostile ONNX graphs (issue 21): a real exported QONNX model
of a small network, mutated in its outputs, inputs, declared value types, initializers, node
inputs and attributes, and metadata. Every outcome is a success (exit 0) or one error line with
exit 2, never a traceback or another status, and a failed compile writes no --out folder. The
examples are derandomized so that CI runs the same ones every time."""

from __future__ import annotations

import warnings

import numpy as np
import onnx
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from pascal_fpga.cli import main

FUZZ = settings(max_examples=60, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])

# element types: the float32 a graph needs, its neighbours, odd ones, and numbers that are no
# TensorProto type at all
ELEM_TYPES = [TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.FLOAT16, TensorProto.INT64,
              TensorProto.INT8, TensorProto.UINT8, TensorProto.BOOL, TensorProto.STRING,
              TensorProto.UNDEFINED, 99]
# dimensions: plausible, zero, negative, huge, symbolic, unknown
DIMS = st.one_of(st.integers(1, 12), st.sampled_from([0, -1, 2 ** 31, 2 ** 40]),
                 st.sampled_from(["N", "batch", "H", ""]), st.none())
# values for an initializer: edges of float32 and of the integer graph (2^24)
ODD_NUMBERS = st.one_of(
    st.sampled_from([np.nan, np.inf, -np.inf, 3e38, -3e38, 1e30, 2.0 ** 24, 2.0 ** 31, 0.0, -1.0,
                     1e-45, 1e-30, 0.5, 7.0]),
    st.floats(-1e3, 1e3, allow_nan=False))
# attribute values of every kind onnx has (helper.make_attribute picks the kind)
ATTR_VALUES = st.one_of(
    st.integers(-3, 9), st.sampled_from([2 ** 40, -2 ** 40]), st.floats(allow_nan=True),
    st.sampled_from(["HALF_UP", "ROUND", "FLOOR", "", "NOTAMODE", "SAME_UPPER", "a\nb"]),
    st.lists(st.integers(-2, 6), min_size=1, max_size=5),
    st.lists(st.floats(-2, 2), min_size=1, max_size=3))
ATTR_NAMES = ["kernel_shape", "strides", "pads", "group", "dilations", "ceil_mode", "auto_pad",
              "signed", "narrow", "rounding_mode", "epsilon", "transA", "transB", "alpha", "beta",
              "axis", "bogus"]
# changes of values and attributes (which reach the deeper checks) more often than changes of the
# graph's structure (which load_qonnx refuses at once); hypothesis favours the first entries
MUTATIONS = ["initializer", "attribute", "metadata", "value_info"] * 3 + [
    "initializer_dims", "node_input", "node", "output", "input", "input_type", "input_dims"]


def _set_dims(shape, dims) -> None:
    del shape.dim[:]
    for value in dims:
        dim = shape.dim.add()
        if isinstance(value, str):
            dim.dim_param = value
        elif value is not None:
            dim.dim_value = value


def _tensor_names(graph) -> list[str]:
    names = [i.name for i in graph.input] + [t.name for t in graph.initializer]
    return names + [o for node in graph.node for o in node.output]


def _mutate(draw, model) -> str:
    """One mutation of the model, drawn; returns its description (for failure reports)."""
    graph = model.graph
    kind = draw(st.sampled_from(MUTATIONS))
    if kind == "output":
        action = draw(st.sampled_from(["add", "remove", "duplicate", "rename"]))
        if action == "remove" and graph.output:
            del graph.output[draw(st.integers(0, len(graph.output) - 1))]
        elif action == "duplicate" and graph.output:
            graph.output.append(graph.output[0])
        else:
            name = draw(st.one_of(st.sampled_from(_tensor_names(graph)),
                                  st.sampled_from(["nowhere", "", "a\nb"])))
            info = helper.make_tensor_value_info(name, TensorProto.FLOAT, [1, 10])
            if action == "rename" and graph.output:
                graph.output[0].name = name
            else:
                graph.output.append(info)
        return f"output {action}"
    if kind == "input":
        action = draw(st.sampled_from(["remove", "add", "initializer"]))
        if action == "remove" and graph.input:
            del graph.input[0]
        elif action == "initializer" and graph.initializer:
            init = graph.initializer[draw(st.integers(0, len(graph.initializer) - 1))]
            graph.input.append(helper.make_tensor_value_info(init.name, init.data_type,
                                                             list(init.dims)))
        else:
            graph.input.append(helper.make_tensor_value_info(
                draw(st.sampled_from(["extra", "global_in", "Quant_1_param0"])),
                TensorProto.FLOAT, [1, 1, 8, 8]))
        return f"input {action}"
    if kind == "input_type" and graph.input:
        elem_type = draw(st.sampled_from(ELEM_TYPES))
        if draw(st.booleans()):
            graph.input[0].type.tensor_type.elem_type = elem_type
        else:  # not a tensor at all: a sequence of them
            graph.input[0].type.CopyFrom(helper.make_sequence_type_proto(
                helper.make_tensor_type_proto(elem_type, [1, 1, 8, 8])))
        return f"input type {elem_type}"
    if kind == "input_dims" and graph.input:
        dims = [1, 1, 8, 8]
        if draw(st.integers(0, 4)) == 0:
            dims = draw(st.lists(DIMS, max_size=6))
        else:
            dims[draw(st.integers(0, 3))] = draw(DIMS)
        _set_dims(graph.input[0].type.tensor_type.shape, dims)
        return f"input dims {dims}"
    if kind == "value_info" and graph.value_info:
        info = graph.value_info[draw(st.integers(0, len(graph.value_info) - 1))]
        action = draw(st.sampled_from(["type", "dims", "remove", "duplicate"]))
        if action == "type":
            info.type.tensor_type.elem_type = draw(st.sampled_from(ELEM_TYPES))
        elif action == "dims":
            _set_dims(info.type.tensor_type.shape, draw(st.lists(DIMS, max_size=5)))
        elif action == "remove":
            graph.value_info.remove(info)
        else:
            graph.value_info.append(info)
        return f"value_info {action} {info.name}"
    if kind in ("initializer", "initializer_dims") and graph.initializer:
        index = draw(st.integers(0, len(graph.initializer) - 1))
        init = graph.initializer[index]
        values = numpy_helper.to_array(init).astype(np.float64)
        if kind == "initializer":
            action = draw(st.sampled_from(["value", "value", "all", "dtype", "remove"]))
            if action == "remove":
                del graph.initializer[index]
                return f"initializer remove {init.name}"
            if action == "dtype":
                dtype = draw(st.sampled_from([np.float64, np.float16, np.int64, np.int8,
                                              np.bool_]))
                with np.errstate(all="ignore"):
                    cast = values.astype(dtype)
                init.CopyFrom(numpy_helper.from_array(cast, init.name))
                return f"initializer dtype {init.name} {np.dtype(dtype).name}"
            number = draw(ODD_NUMBERS)
            if values.size and action == "value":
                values.reshape(-1)[draw(st.integers(0, values.size - 1))] = number
            else:
                values = np.full_like(values, number)
            target = np.int64 if init.data_type == TensorProto.INT64 else np.float32
            with np.errstate(all="ignore"):
                init.CopyFrom(numpy_helper.from_array(values.astype(target), init.name))
            return f"initializer {action} {init.name} {number}"
        dims = draw(st.lists(st.integers(0, 4), max_size=4))
        size = int(np.prod(dims)) if dims else 1
        flat = np.resize(values.reshape(-1), size) if values.size else np.zeros(size)
        target = np.int64 if init.data_type == TensorProto.INT64 else np.float32
        init.CopyFrom(numpy_helper.from_array(flat.reshape(dims).astype(target), init.name))
        return f"initializer dims {init.name} {dims}"
    if kind == "node_input" and graph.node:
        node = graph.node[draw(st.integers(0, len(graph.node) - 1))]
        action = draw(st.sampled_from(["rename", "drop", "add", "empty"]))
        if action == "drop" and node.input:
            del node.input[-1]
        elif action == "add":
            node.input.append(draw(st.sampled_from(_tensor_names(graph) + ["nowhere"])))
        elif node.input:
            node.input[draw(st.integers(0, len(node.input) - 1))] = (
                "" if action == "empty" else draw(st.sampled_from(_tensor_names(graph) +
                                                                 ["nowhere"])))
        return f"node input {action} {node.name}"
    if kind == "attribute" and graph.node:
        node = graph.node[draw(st.integers(0, len(graph.node) - 1))]
        own = [a.name for a in node.attribute]
        name = draw(st.sampled_from(own * 3 + ATTR_NAMES if own else ATTR_NAMES))
        for attribute in [a for a in node.attribute if a.name == name]:
            node.attribute.remove(attribute)
        if draw(st.integers(0, 4)):  # else: the attribute is removed
            value = draw(ATTR_VALUES)
            node.attribute.append(helper.make_attribute(name, value))
            return f"attribute {node.name}.{name} = {value!r}"
        return f"attribute {node.name}.{name} removed"
    if kind == "node" and graph.node:
        index = draw(st.integers(0, len(graph.node) - 1))
        action = draw(st.sampled_from(["remove", "duplicate", "swap", "op_type", "domain"]))
        node = graph.node[index]
        if action == "remove":
            del graph.node[index]
        elif action == "duplicate":
            graph.node.append(node)
        elif action == "swap":
            other = draw(st.integers(0, len(graph.node) - 1))
            first, second = onnx.NodeProto(), onnx.NodeProto()
            first.CopyFrom(graph.node[index])
            second.CopyFrom(graph.node[other])
            graph.node[index].CopyFrom(second)
            graph.node[other].CopyFrom(first)
        elif action == "op_type":
            node.op_type = draw(st.sampled_from(["Relu", "Conv", "Gemm", "Quant", "Identity",
                                                 "MultiThreshold", "Nope", ""]))
        else:
            node.domain = draw(st.sampled_from(["", "qonnx.custom_op.general", "ai.onnx.ml",
                                                "evil.domain"]))
        return f"node {action} {node.name}"
    if kind == "metadata":
        # without pascal_fpga.source the input is read from the graph (a foreign model)
        del graph.metadata_props[:]
        return "metadata removed"
    return f"{kind} (nothing to mutate)"


@st.composite
def mutated_models(draw, base: bytes):
    model = onnx.ModelProto()
    model.ParseFromString(base)
    done = [_mutate(draw, model) for _ in range(draw(st.sampled_from([1, 1, 1, 2, 3])))]
    return model, done


@pytest.fixture(scope="module")
def exported(odd_exports):
    """The exported model's file (a path: hypothesis prints it when an example fails;
    conftest.py's, shared: read-only)."""
    return odd_exports("pools")[1]


# where compile stops: after the checks (where hostile files are refused), after the lowering
# to the spiking IR, or at the end (about a second)
STOPS = ["check_supported", None, "lower_to_spiking_ops", "check_supported", None]


@pytest.mark.slow
@FUZZ
@given(data=st.data(), stop=st.sampled_from(STOPS))
def test_fuzz_onnx_graph(data, stop, exported, tmp_path_factory, capsys):
    model, done = data.draw(mutated_models(exported.read_bytes()), label="model")
    folder = tmp_path_factory.mktemp("onnx")
    path = folder / "model.onnx"
    path.write_bytes(model.SerializeToString())
    out = folder / "build"
    argv = ["compile", str(path), "--out", str(out)] + (["--stop-after", stop] if stop else [])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RuntimeWarning)
        status = main(argv)
    err = capsys.readouterr().err
    event(f"exit {status}" + (f" after {stop or 'write_driver'}" if status == 0 else ""))
    assert "Traceback" not in err, (done, err)
    assert status in (0, 2), (done, status, err)
    if status == 2:
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1, (done, err)
        assert lines[0].startswith("pascal-fpga compile: error: "), (done, lines[0])
        assert not out.exists(), (done, lines[0])
    else:
        assert (out / "build.json").is_file(), done
    # numpy's overflow warnings would be printed to stderr: an extra line, and the sign of a
    # hostile value that no check caught
    assert not [w for w in caught if issubclass(w.category, RuntimeWarning)], \
        (done, [str(w.message) for w in caught])
