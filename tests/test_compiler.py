"""QONNX export, the spiking transformation pass, the IR ops, compile and verify."""

import json
from pathlib import Path

import numpy as np
import pytest
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp

from pascal_fpga.cli import main as cli_main
from pascal_fpga.buildfolder import load_qonnx
from pascal_fpga.flows.compile import compile_model
from pascal_fpga.ir.export import export_run, level_count
from pascal_fpga.ir.transforms import layer_nodes, output_scale, pipeline
from pascal_fpga.flows.verify import (integer_outputs, qcfs_tensors, verify_build,
                                      verify_images)
from pascal_fpga.ir.execute import run_model
from pascal_fpga.ir.widths import accumulator_range, signed_bits
from pascal_fpga.spec import parse_spec

from nets import ODD_SPECS, random_images


# digits_run and digits_build (the trained digits network and its build) are conftest.py's,
# shared with test_hls.py and test_snn.py: read-only, a test that changes one copies it


@pytest.fixture(scope="module", params=sorted(ODD_SPECS))
def odd_build(request, odd_builds):
    """Each odd network compiled with the defaults (conftest.py's, shared: read-only)."""
    return odd_builds(request.param)


# --- export ------------------------------------------------------------------------------------

def test_export_marks_qcfs_quantizers_exactly(digits_run, tmp_path):
    info = export_run(digits_run, tmp_path / "m.onnx")
    model = load_qonnx(tmp_path / "m.onnx")
    quants = {n.name: n for n in model.graph.node if n.op_type == "Quant"}
    assert [row["levels"] for row in info["activations"]] == [8, 4, 2]
    for row in info["activations"]:
        node = quants[row["node"]]
        mode = [a.s for a in node.attribute if a.name == "rounding_mode"][0]
        assert mode == b"HALF_UP"
        assert level_count(model.get_initializer(node.input[3])) == row["levels"]
    source = json.loads(model.get_metadata_prop("pascal_fpga.source"))
    assert source["run_dir"] == str(Path(digits_run).resolve())
    assert source["dataset"] == "digits"


@pytest.mark.parametrize("levels", [1, 2, 3, 5, 8, 15, 16, 100])
def test_qonnx_quant_with_fractional_bit_width_is_qcfs(levels):
    """qonnx's Quant with bitwidth log2(L + 1) and HALF_UP is clip(floor(x + 1/2), 0, L)."""
    from qonnx.custom_op.general.intquant import int_quant

    from pascal_fpga.ir.export import qcfs_bit_width

    x = np.concatenate([np.arange(-2, levels + 3, 0.25), np.array([levels + 0.49, 1e6])])
    x = x.astype(np.float32)
    got = int_quant(x, np.float32(1.0), np.float32(0.0), qcfs_bit_width(levels), 0, 0, "HALF_UP")
    assert np.array_equal(got, np.clip(np.floor(x.astype(np.float64) + 0.5), 0, levels))


# --- each transformation, before against after -----------------------------------------------

def _steps_outputs(model_path: Path, images: np.ndarray):
    model = load_qonnx(model_path)
    names = qcfs_tensors(model)
    models = [model]
    for step in pipeline():
        models.append(models[-1].transform(step.transformation))
    scale = output_scale(models[-1])
    return [integer_outputs(m, run_model(m, images), names, scale) for m in models], names


def _check_steps(build: Path, images: np.ndarray) -> None:
    outputs, names = _steps_outputs(build / "ir" / "00_qonnx.onnx", images)
    assert len(outputs) == len(pipeline()) + 1
    for before, after in zip(outputs, outputs[1:]):
        assert before.keys() == after.keys()
        for name in before:
            np.testing.assert_array_equal(before[name], after[name], err_msg=name)
    # the levels are not trivial: several values per layer
    assert all(len(np.unique(outputs[-1][name])) > 1 for name in names)


def test_each_transformation_keeps_every_level_digits(digits_build):
    from pascal_fpga.datasets import load_dataset

    _check_steps(digits_build, load_dataset("digits").test_images[:200].astype(np.float32))


def test_each_transformation_keeps_every_level_odd(odd_build):
    spec = parse_spec(json.loads((odd_build / "build.json").read_text())["spec"], "spec")
    _check_steps(odd_build, random_images(spec, 64, 1))


def test_lowered_graph_is_only_spiking_ops(odd_build):
    for build in (odd_build,):
        model = ModelWrapper(str(build / "ir" / "08_size_fifos.onnx"))
        assert all(n.domain == "pascal_fpga.ir.ops" for n in model.graph.node)
        assert model.graph.node[-1].op_type == "SpikingClassifier"
        assert model.graph.node[0].op_type.startswith("Pixel")


# --- accumulator widths --------------------------------------------------------------------

def _worst_case_input(weight, in_max, in_shape, kernel=1, stride=1, pad=0, sign=1):
    """The input giving output channel c its extreme accumulator: in_max where the weight has
    the sign ``sign``, 0 elsewhere, at the output position whose window holds the most."""
    part = np.where(sign * weight > 0, weight, 0.0)
    if weight.ndim == 1:  # a dense row
        return np.where(part != 0, in_max, 0).reshape((1,) + tuple(in_shape))
    channels, height, width = in_shape
    out_h = (height + 2 * pad - kernel) // stride + 1
    out_w = (width + 2 * pad - kernel) // stride + 1
    best, best_x = None, None
    for i in range(out_h):
        for j in range(out_w):
            x = np.zeros((channels, height + 2 * pad, width + 2 * pad))
            window = x[:, i * stride:i * stride + kernel, j * stride:j * stride + kernel]
            window[...] = np.where(part != 0, in_max, 0)
            x = x[:, pad:pad + height, pad:pad + width]
            total = float((sign * part * np.pad(x, ((0, 0), (pad, pad), (pad, pad)))[
                :, i * stride:i * stride + kernel, j * stride:j * stride + kernel]).sum())
            if best is None or total > best:
                best, best_x = total, x
    return best_x[None]


def test_accumulator_width_is_the_exact_worst_case(odd_build):
    for build in (odd_build,):
        model = ModelWrapper(str(build / "ir" / "08_size_fifos.onnx"))
        for node in layer_nodes(model):
            if node.domain != "pascal_fpga.ir.ops" or "Pool" in node.op_type:
                continue
            inst = getCustomOp(node)
            weight = np.asarray(model.get_initializer(node.input[1]), dtype=np.float64)
            in_max = inst.get_nodeattr("in_max")
            in_shape = tuple(inst.get_nodeattr("in_shape"))
            geometry = {}
            if weight.ndim == 4:
                geometry = dict(kernel=inst.get_nodeattr("kernel"),
                                stride=inst.get_nodeattr("stride"), pad=inst.get_nodeattr("pad"))
            bias = 0.0
            if node.op_type == "SpikingClassifier":
                bias = np.asarray(model.get_initializer(node.input[2])).reshape(-1)
            reached = {}
            for sign, key in ((1, "acc_max"), (-1, "acc_min")):
                values = []
                for c in range(weight.shape[0]):
                    x = _worst_case_input(weight[c], in_max, in_shape, sign=sign, **geometry)
                    acc = inst.accumulate(x, weight) + np.broadcast_to(bias, weight.shape[:1]) \
                        .reshape((1, -1) + (1,) * (weight.ndim - 2))
                    values.append(acc[0, c].max() if sign > 0 else acc[0, c].min())
                reached[key] = max(values) if sign > 0 else min(values)
            assert reached["acc_max"] == inst.get_nodeattr("acc_max"), node.name
            assert reached["acc_min"] == inst.get_nodeattr("acc_min"), node.name
            bits = inst.get_nodeattr("acc_bits")
            assert bits == signed_bits(reached["acc_min"], reached["acc_max"])
            assert not (-(2 ** (bits - 2)) <= reached["acc_min"]
                        and reached["acc_max"] <= 2 ** (bits - 2) - 1)  # one bit less: overflow


def test_accumulator_range_of_a_known_conv():
    weight = np.zeros((2, 1, 3, 3))
    weight[0] = [[1, -2, 3], [0, 4, 0], [-1, 0, 5]]
    weight[1] = -1
    low, high = accumulator_range(weight, 7, (1, 4, 4), kernel=3, stride=1, pad=1)
    assert high.tolist() == [7 * 13, 0]
    assert low.tolist() == [7 * -3, 7 * -9]
    # with padding 1 on a 1-pixel-wide input only the middle column is inside the image
    low, high = accumulator_range(weight, 1, (1, 1, 1), kernel=3, stride=1, pad=1)
    assert high.tolist() == [4, 0] and low.tolist() == [0, -1]


# --- verify ----------------------------------------------------------------------------------

def test_verify_digits_all_test_images(digits_build, digits_run, capsys):
    assert cli_main(["verify", str(digits_build), "--run", str(digits_run), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    checks = {c["name"]: c for c in report["checks"]}
    assert set(checks) == {"qonnx_vs_brevitas", "ir_vs_qonnx", "snn_vs_ir", "cyclesim_vs_ir"}
    for check in checks.values():
        assert check["compared"] == 360
        assert check["mismatched"] == check["ties"]
    assert checks["snn_vs_ir"]["mismatched"] == 0
    assert report["accuracy"]["ir"] == report["accuracy"]["snn"]


def test_verify_odd_networks_on_random_images(odd_build):
    build = json.loads((odd_build / "build.json").read_text())
    images, labels, _ = verify_images(build, None, None, None, random=300, seed=3)
    report = verify_build(odd_build, images, labels, run_dir=odd_build.parent / "run")
    checks = {c["name"]: c for c in report["checks"]}
    assert set(checks) == {"qonnx_vs_brevitas", "ir_vs_qonnx", "snn_vs_ir", "cyclesim_vs_ir"}
    for check in checks.values():
        assert check["compared"] == 300
        assert check["mismatched"] == check["ties"], check
    assert checks["snn_vs_ir"]["mismatched"] == 0


def test_verify_reports_a_corrupted_threshold(digits_build, tmp_path, capsys):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(digits_build, broken)
    path = broken / "ir" / "08_size_fifos.onnx"
    model = ModelWrapper(str(path))
    node = layer_nodes(model)[1]
    thresholds = model.get_initializer(node.input[2]).copy()
    thresholds[:, 0] -= 3  # channel levels now fire early
    model.set_initializer(node.input[2], thresholds)
    model.save(str(path))
    assert cli_main(["verify", str(broken), "--images", "60", "--json", "--no-snn"]) == 1
    report = json.loads(capsys.readouterr().out)
    ir = [c for c in report["checks"] if c["name"] == "ir_vs_qonnx"][0]
    assert ir["mismatched"] > ir["ties"]


def test_compile_writes_steps_folding_and_layer_table(digits_build):
    build = json.loads((digits_build / "build.json").read_text())
    names = [s["step"] for s in build["steps"]]
    assert names == ["qonnx", "normalize_export", "check_supported", "batchnorm_to_affine",
                     "fold_weight_quant",
                     "activations_to_thresholds", "lower_to_spiking_ops", "apply_folding",
                     "size_fifos", "generate_hls", "generate_rtl", "write_driver"]
    for step in build["steps"]:
        assert (digits_build / (step.get("model") or step["folder"])).exists()
    assert build["config"]["zero_skip"] is True and build["ir"] == "ir/08_size_fifos.onnx"
    folding = json.loads((digits_build / "ir" / "folding.json").read_text())
    layers = json.loads((digits_build / "ir" / "layers.json").read_text())
    assert [row["layer"] for row in layers] == list(folding)
    assert [row["levels"] for row in layers if row["op"] != "SpikingMaxPool"][:3] == [8, 4, 2]
    assert [row["t_in"] for row in layers] == [1, 8, 4, 4, 2]
    assert "| conv0 | PixelConv |" in (digits_build / "ir" / "layers.md").read_text()


def test_folding_config_is_applied(digits_build, tmp_path):
    config = {"conv1": {"pe": 4, "simd": 16}, "classifier": {"pe": 10, "simd": 64}}
    (tmp_path / "fold.json").write_text(json.dumps(config))
    compile_model(digits_build / "ir" / "00_qonnx.onnx", tmp_path / "b", tmp_path / "fold.json")
    model = ModelWrapper(str(tmp_path / "b" / "ir" / "08_size_fifos.onnx"))
    nodes = {n.name: getCustomOp(n) for n in layer_nodes(model)}
    assert nodes["conv1"].get_nodeattr("pe") == 4 and nodes["conv1"].get_nodeattr("simd") == 16
    assert nodes["classifier"].get_nodeattr("simd") == 64
    folding = json.loads((tmp_path / "b" / "ir" / "folding.json").read_text())
    assert {k: folding["conv1"][k] for k in ("pe", "simd")} == {"pe": 4, "simd": 16}
    # conv1's SIMD is the stream conv0 writes: conv0's PE follows it; its SIMD is the default
    assert {k: folding["conv0"][k] for k in ("pe", "simd")} == {"pe": 16, "simd": 1}
    assert all(entry["fifo_depth"] >= 2 for entry in folding.values())  # sized by the model


# --- errors: one line, exit 2, no build folder -----------------------------------------------

def _compile_error(capsys, model: Path, out: Path, *extra: str) -> str:
    assert cli_main(["compile", str(model), "--out", str(out), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert not out.exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")]
    return err


def _mutate(digits_build: Path, tmp_path: Path, change) -> Path:
    from onnx import helper

    model = ModelWrapper(str(digits_build / "ir" / "00_qonnx.onnx"))
    change(model, helper)
    path = tmp_path / "mutated.onnx"
    model.save(str(path))
    return path


def _insert_after(model, helper, op_type: str, after: str, **attrs):
    """Insert a node of op_type on the output of the node named ``after``."""
    node = model.get_node_from_name(after)
    old = node.output[0]
    new = old + "_pre"
    node.output[0] = new
    inserted = helper.make_node(op_type, [new], [old], name=f"Inserted_{op_type}", **attrs)
    model.graph.node.insert(model.get_node_index(node) + 1, inserted)


def test_compile_errors(digits_build, tmp_path, capsys):
    out = tmp_path / "build"
    err = _compile_error(capsys, tmp_path / "missing.onnx", out)
    assert "no such model file" in err
    (tmp_path / "junk.onnx").write_bytes(b"\x08\x07garbage" * 50)
    assert "not an ONNX model" in _compile_error(capsys, tmp_path / "junk.onnx", out)

    from onnx import TensorProto, helper, save

    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"], name="relu")], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    save(helper.make_model(graph), str(tmp_path / "plain.onnx"))
    assert "not a QONNX model" in _compile_error(capsys, tmp_path / "plain.onnx", out)

    relu = _mutate(digits_build, tmp_path, lambda m, h: _insert_after(m, h, "Relu", "MaxPool_0"))
    err = _compile_error(capsys, relu, out)
    assert "Inserted_Relu (Relu)" in err and "non-QCFS activation" in err

    transpose = _mutate(digits_build, tmp_path,
                        lambda m, h: _insert_after(m, h, "Transpose", "MaxPool_0",
                                                   perm=[0, 1, 3, 2]))
    err = _compile_error(capsys, transpose, out)
    assert "Inserted_Transpose (Transpose): op type not supported" in err
    # a ROUND (half-to-even) activation is no longer refused: tests/test_import.py


def test_folding_errors(digits_build, tmp_path, capsys):
    model = digits_build / "ir" / "00_qonnx.onnx"
    out = tmp_path / "build"
    cases = [({"conv9": {"pe": 1}}, "layer 'conv9' is not in the model"),
             ({"conv1": {"pe": 5}}, "conv1: pe 5 does not divide its 32"),
             ({"dense0": {"simd": 3}}, "dense0: simd 3 does not divide its 32"),
             ({"conv0": {"pe": 2, "lanes": 4}}, "conv0: expected"),
             ({"pool0": {"simd": 2}}, "pool0: simd 2 does not divide")]
    for config, message in cases:
        (tmp_path / "fold.json").write_text(json.dumps(config))
        err = _compile_error(capsys, model, out, "--folding", str(tmp_path / "fold.json"))
        assert message in err, err
    (tmp_path / "fold.json").write_text("{not json")
    assert "not valid JSON" in _compile_error(capsys, model, out, "--folding",
                                              str(tmp_path / "fold.json"))


def test_compile_failure_keeps_an_existing_build(digits_build, tmp_path, capsys):
    import shutil

    out = tmp_path / "build"
    shutil.copytree(digits_build, out)
    before = sorted(p.name for p in (out / "ir").iterdir())
    (tmp_path / "fold.json").write_text(json.dumps({"nope": {}}))
    assert cli_main(["compile", str(digits_build / "ir" / "00_qonnx.onnx"), "--out", str(out),
                     "--folding", str(tmp_path / "fold.json")]) == 2
    assert sorted(p.name for p in (out / "ir").iterdir()) == before


def test_export_and_verify_errors(digits_run, tmp_path, capsys):
    assert cli_main(["export", str(tmp_path / "nothing"), "--out", str(tmp_path / "m.onnx")]) == 2
    assert "no such run directory" in capsys.readouterr().err
    assert not (tmp_path / "m.onnx").exists()
    assert cli_main(["verify", str(tmp_path)]) == 2
    assert "not a build folder" in capsys.readouterr().err


def test_verify_without_a_data_set_asks_for_one(odd_build, capsys):
    assert cli_main(["verify", str(odd_build)]) == 2
    assert "pass --dataset or --random" in capsys.readouterr().err
    assert cli_main(["verify", str(odd_build), "--random", "20", "--no-snn"]) == 0
    assert "all views agree" in capsys.readouterr().out


def test_compile_a_model_without_our_metadata(digits_build, tmp_path, capsys):
    """A QONNX model with QCFS activations from elsewhere: no run, no spec in its metadata."""
    model = ModelWrapper(str(digits_build / "ir" / "00_qonnx.onnx"))
    del model.graph.metadata_props[:]
    model.save(str(tmp_path / "bare.onnx"))
    assert cli_main(["compile", str(tmp_path / "bare.onnx"), "--out", str(tmp_path / "b")]) == 0
    capsys.readouterr()
    assert cli_main(["verify", str(tmp_path / "b"), "--random", "30", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [c["name"] for c in report["checks"]] == ["ir_vs_qonnx", "snn_vs_ir", "cyclesim_vs_ir"]
    assert report["skipped"][0]["name"] == "qonnx_vs_brevitas"
