"""compile's step list from Python: built-in steps by name, a step of the user's own among them,
run on data; a list that breaks a rule is one clear error."""

import json
from pathlib import Path

import pytest
from qonnx.custom_op.registry import getCustomOp

from pascal_fpga.buildfolder import load_build
from pascal_fpga.errors import PascalError
from pascal_fpga.flows.compile import CompileConfig, compile_model, step_names
from pascal_fpga.flows.verify import verify_build, verify_images
from pascal_fpga.hw.load import load_qonnx_ir
from pascal_fpga.ir.transforms import layer_nodes

from nets import ODD_SPECS, make_exported


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return make_exported(tmp_path_factory.mktemp("steps"), ODD_SPECS["dense_first"])[1]


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


def test_a_users_step_runs_among_the_built_in_ones(model, tmp_path):
    seen = []

    def step_annotate(model, ctx):
        # apply_folding, the step before, guarantees PE and SIMD on every layer
        seen.append({n.name: getCustomOp(n).get_nodeattr("pe") for n in layer_nodes(model)})
        model.set_metadata_prop("annotated_by", ctx.name)
        return model

    steps = step_names()
    steps.insert(steps.index("apply_folding") + 1, step_annotate)
    result = compile_model(model, tmp_path / "custom", steps=steps)
    names = [step["step"] for step in result["steps"]]
    assert names[names.index("apply_folding") + 1] == "annotate"
    assert result["steps"][names.index("annotate")]["model"] == "ir/08_annotate.onnx"
    assert result["ir"] == "ir/09_size_fifos.onnx"
    assert len(seen) == 1 and all(pe >= 1 for pe in seen[0].values())
    assert set(seen[0]) == {row["layer"] for row in result["layers"]}
    # the annotation reaches the final IR; the hardware is the default build's, byte for byte
    final = load_qonnx_ir(tmp_path / "custom" / result["ir"])
    assert final.get_metadata_prop("annotated_by") == result["name"]
    plain = compile_model(model, tmp_path / "plain")
    for folder in ("hls", "rtl", "driver"):
        assert _files(tmp_path / "custom" / folder) == _files(tmp_path / "plain" / folder)
    assert json.loads((tmp_path / "custom" / "ir" / "folding.json").read_text()) == \
        json.loads((tmp_path / "plain" / "ir" / "folding.json").read_text())
    assert plain["fifo_sizing"] == result["fifo_sizing"]
    # and every view of the build agrees on data
    images, _, _ = verify_images(load_build(tmp_path / "custom"), None, None, None, 24)
    report = verify_build(tmp_path / "custom", images)
    assert report["passed"] and report["samples"] == 24
    assert {check["name"] for check in report["checks"]} >= {"ir_vs_qonnx", "snn_vs_ir",
                                                             "cyclesim_vs_ir"}


def test_a_shorter_list_ends_at_its_last_model(model, tmp_path):
    result = compile_model(model, tmp_path / "b",
                           steps=["qonnx", "check_supported", "batchnorm_to_affine"])
    assert [step["step"] for step in result["steps"]] == ["qonnx", "check_supported",
                                                          "batchnorm_to_affine"]
    build = load_build(tmp_path / "b")
    assert build["ir"] == "ir/02_batchnorm_to_affine.onnx" and "stopped_after" not in build
    assert not (tmp_path / "b" / "hls").exists()


@pytest.mark.parametrize("steps, message", [
    (["qonnx", "fold_weights"], "'fold_weights' is not a compile step"),
    (["check_supported"], "the first step must be 'qonnx'"),
    (["qonnx", "check_supported", "check_supported"], "'check_supported' appears twice"),
    (["qonnx", "check_supported", "batchnorm_to_affine", "activations_to_thresholds"],
     "'activations_to_thresholds' needs 'fold_weight_quant' before it"),
    (["qonnx", lambda model, ctx: model], "a step function's name"),
    (["qonnx", 3], "each step is a built-in step's name or a function"),
    ("qonnx", "must be a list"),
])
def test_a_bad_step_list_is_one_error(model, tmp_path, steps, message):
    with pytest.raises(PascalError, match="^steps: ") as error:
        compile_model(model, tmp_path / "b", steps=steps)
    assert message in str(error.value) and "\n" not in str(error.value)
    assert not (tmp_path / "b").exists()


def test_stop_after_is_checked_against_the_list(model, tmp_path):
    with pytest.raises(PascalError, match="--stop-after 'apply_folding': not a step"):
        compile_model(model, tmp_path / "b", config=CompileConfig(stop_after="apply_folding"),
                      steps=["qonnx", "check_supported"])
