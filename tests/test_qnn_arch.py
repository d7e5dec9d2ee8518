"""The FINN-style QNN twin as an architecture (`compile --arch qnn`): the same integer network
with each level in binary, every input group one cycle; every view agrees with the IR, the RTL
(pascal_mvu / pascal_add with OUT_BINARY = 1) bit for bit and cycle for cycle against the cycle
model, on a chain and on a residual network."""

import json

import numpy as np
import pytest
from qonnx.core.modelwrapper import ModelWrapper

from pascal_fpga.flows.compile import CompileConfig, compile_model
from pascal_fpga.flows.simulate import simulate_build
from pascal_fpga.flows.verify import verify_build
from pascal_fpga.hw.backends.rtl import design_stages
from pascal_fpga.hw.design import ARCH_KEY, design_from_ir
from pascal_fpga.perf.values import run_values

from cliruns import one_line, run_cli
from nets import final_ir, make_run
from test_residual_hw import SPEC as RESNET_SPEC


def _random(design, count, seed=0):
    rng = np.random.default_rng(seed)
    size = (count, design.channels, design.height, design.width)
    return rng.integers(0, 2 ** design.bits, size=size).astype(np.float32)


def random_images(spec: dict, count: int, seed: int) -> np.ndarray:
    shape = spec["input"]
    rng = np.random.default_rng(seed)
    size = (count, shape["channels"], shape["height"], shape["width"])
    return rng.integers(0, 2 ** shape["bits"], size=size).astype(np.float32)


def test_the_twin_computes_the_same_levels_in_binary(digits_build):
    model = ModelWrapper(str(final_ir(digits_build)))
    snn, qnn = design_from_ir(model), design_from_ir(model, arch="qnn")
    assert (snn.arch, qnn.arch) == ("snn", "qnn")
    images = _random(snn, 12)
    acc_s, cls_s, levels_s, _ = run_values(snn, images)
    acc_q, cls_q, levels_q, _ = run_values(qnn, images)
    assert np.array_equal(acc_s, acc_q) and np.array_equal(cls_s, cls_q)
    assert levels_s.keys() == levels_q.keys()
    for name in levels_s:
        assert np.array_equal(levels_s[name], levels_q[name]), name
    for layer in qnn.layers:
        # one frame of bits(in_max) bits in, every group sent, one cycle each
        assert layer.t_in == 1 and not layer.zero_skip and layer.mode_of(None) == "qnn"
        if layer.binary_out:
            assert layer.out_frames == 1 and layer.fb_out == int(layer.t_out).bit_length()
    mvus = [s for s in design_stages(qnn) if s.module == "pascal_mvu"]
    assert [s.params.get("OUT_BINARY", 0) for s in mvus] == \
        [0 if s.params["CLASSIFIER"] else 1 for s in mvus]
    assert all("OUT_BINARY" not in s.params for s in design_stages(snn))
    # the data-independent schedule: the same programs whatever the images
    programs = qnn.programs({}, 2)
    assert all(np.all(p.slots == p.slots[0]) for p in programs)


@pytest.fixture(scope="module")
def digits_qnn(digits_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("digits_qnn") / "b"
    compile_model(digits_model, out, config=CompileConfig(arch="qnn"))
    return out


def test_compile_arch_qnn_records_the_arch_and_every_view_agrees(digits_qnn, digits_model):
    build = json.loads((digits_qnn / "build.json").read_text())
    assert build["arch"] == "qnn" and build["config"]["arch"] == "qnn"
    ir = ModelWrapper(str(digits_qnn / build["ir"]))
    assert ir.get_metadata_prop(ARCH_KEY) == "qnn"
    top = (digits_qnn / "rtl" / "pascal_top.sv").read_text()
    assert ".OUT_BINARY(1)" in top
    images = random_images(build["spec"], 6, seed=3)
    report = verify_build(digits_qnn, images, rtlsim=True)
    checks = {c["name"]: c for c in report["checks"]}
    for name in ("ir_vs_qonnx", "snn_vs_ir", "cyclesim_vs_ir", "rtlsim_vs_ir"):
        assert checks[name]["compared"] == 6 and checks[name]["mismatched"] == 0, checks[name]
    cycles = checks["rtl_cycles_vs_cyclesim"]
    assert cycles["compared"] > 0 and cycles["mismatched"] == 0, cycles
    assert report["passed"]


def test_simulate_adds_the_design_key_and_keeps_snn_and_qnn(digits_qnn):
    build = json.loads((digits_qnn / "build.json").read_text())
    images = random_images(build["spec"], 4, seed=1)
    report = simulate_build(digits_qnn, images)
    design = report["design"]
    assert design["arch"] == "qnn" and design["lut"] == report["estimates"]["total"]["LUT"]
    # the twin's interval does not depend on the data: mean = worst case
    assert design["images_per_s_mean"] == pytest.approx(design["images_per_s_worst"])
    assert {"images_per_s_mean", "lut"} <= report["snn"].keys()
    assert {"images_per_s", "lut", "folding"} <= report["qnn"].keys()


def test_the_twin_of_a_residual_network_in_rtl(tmp_path):
    run = make_run(tmp_path / "run", RESNET_SPEC)
    from pascal_fpga.ir.export import export_run

    export_run(run, tmp_path / "model.onnx")
    out = tmp_path / "qnn"
    compile_model(tmp_path / "model.onnx", out, config=CompileConfig(arch="qnn"))
    design = design_from_ir(ModelWrapper(str(final_ir(out))))
    adds = [s for s in design_stages(design) if s.module == "pascal_add"]
    assert adds and all(s.params["OUT_BINARY"] == 1 for s in adds)
    images = random_images(RESNET_SPEC, 5, seed=2)
    report = verify_build(out, images, rtlsim=True, snn=False)
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["rtlsim_vs_ir"]["mismatched"] == 0 and checks["rtlsim_vs_ir"]["compared"] == 5
    assert checks["rtl_cycles_vs_cyclesim"]["mismatched"] == 0
    assert report["passed"]


def test_bad_arch_settings_are_one_line(capsys, digits_model, tmp_path):
    status, err = run_cli(capsys, "compile", digits_model, "--out", tmp_path / "b", "--arch",
                          "qnn", "--dense")
    assert status == 2
    one_line(err, "--dense", "--arch qnn")
    assert not (tmp_path / "b").exists()
    with pytest.raises(SystemExit) as exc:
        run_cli(capsys, "compile", digits_model, "--out", tmp_path / "c", "--arch", "bnn")
    assert exc.value.code == 2
    assert "--arch" in capsys.readouterr().err
