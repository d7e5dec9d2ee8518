"""The HLS backend of the QNN twin (``design_from_ir(ir, arch="qnn")``): its project's C simulation
equals the values datapath (every layer's levels, in binary one frame per channel, the
classifier's accumulators and the class) and the cycle model's loop counters, exactly; the SNN
design's project is the one the compile wrote."""

from pathlib import Path

import numpy as np
import pytest

from pascal_fpga.buildfolder import load_build
from pascal_fpga.hw.backends.hls import generate_hls
from pascal_fpga.hw.csim import ap_types_dir, build_csim, run_csim
from pascal_fpga.hw.design import design_from_ir
from pascal_fpga.hw.layers import AddLayer, WeightedLayer
from pascal_fpga.hw.load import load_qonnx_ir
from pascal_fpga.ir.execute import ir_outputs
from pascal_fpga.perf.values import run_values

IMAGES = 6


def _design(build_dir: Path, arch: str):
    build = load_build(build_dir)
    return build, design_from_ir(load_qonnx_ir(build_dir / build["ir"]), arch=arch)


def _stage_calls(project: Path) -> str:
    return (project / "firmware" / "pascal_top.cpp").read_text()


@pytest.mark.slow
def test_qnn_csim_equals_the_values_datapath(digits_build, tmp_path):
    build, design = _design(digits_build, "qnn")
    binary_layers = [layer for layer in design.layers if layer.binary_out]
    assert design.arch == "qnn" and binary_layers
    assert all(layer.out_frames == 1 and layer.fb_out == int(layer.t_out).bit_length()
               for layer in binary_layers)
    folder = tmp_path / "qnn"           # a build folder of its own: hls/ and csim/
    generate_hls(design, folder / "hls", build["spec"], build["name"])
    calls = _stage_calls(folder / "hls")
    for layer in design.layers:
        if isinstance(layer, WeightedLayer) and layer.binary_out:
            assert f"pascal::mvu_threshold_binary<{layer.name}_cfg>" in calls
        if isinstance(layer, AddLayer):
            assert f"pascal::add_join_binary<{layer.name}_cfg>" in calls
    assert "pascal::mvu_threshold<" not in calls and "pascal::add_join<" not in calls

    binary = build_csim(folder, ap_types_dir())
    shape = build["spec"]["input"]
    rng = np.random.default_rng(3)
    images = rng.integers(0, 2 ** shape["bits"], size=(IMAGES, shape["channels"],
                                                       shape["height"], shape["width"]))
    names = [layer.name for layer in design.layers if layer.output_kind is not None]
    outputs, dumps, counts = run_csim(binary, images.astype(np.int32), names)

    acc, classes, levels, lanes = run_values(design, images.astype(np.float32))
    for name in names:
        want = np.asarray(levels[name]).reshape(IMAGES, -1).astype(np.int64)
        assert dumps[name].shape == want.shape, name
        assert np.array_equal(dumps[name], want), (name, int((dumps[name] != want).sum()))
    for layer in binary_layers:   # the binary words carry levels above 1
        assert dumps[layer.name].max() > 1, layer.name
    classes_n = acc.shape[1]
    assert np.array_equal(outputs[:, :classes_n], acc.astype(np.int64))
    assert np.array_equal(outputs[:, classes_n], classes)
    ir_acc, ir_classes = ir_outputs(load_qonnx_ir(digits_build / build["ir"]),
                                    images.astype(np.float32))
    assert np.array_equal(outputs[:, :classes_n], ir_acc.astype(np.int64))
    assert np.array_equal(outputs[:, classes_n], ir_classes)

    # every stage's reads, writes and slots per image: the cycle model's qnn programs
    programs = design.programs(design.activity_from_lanes(lanes), IMAGES)
    assert programs
    for program in programs:
        assert np.array_equal(counts[program.stage], program.counters()), program.stage


def test_snn_project_is_the_compiled_one(digits_build, tmp_path):
    """generate_hls of the SNN design writes the files the compile wrote (the QNN emitters leave
    it alone), with PASCAL's thermometer stages; the QNN twin's project differs only in the
    generated firmware, testbench and README."""
    build, design = _design(digits_build, "snn")
    generate_hls(design, tmp_path / "snn", build["spec"], build["name"])
    compiled = digits_build / "hls"
    files = sorted(p.relative_to(tmp_path / "snn") for p in (tmp_path / "snn").rglob("*")
                   if p.is_file())
    assert files and {p for p in files} >= {Path("firmware/pascal_top.cpp"),
                                             Path("include/pascal/mvu.h")}
    for name in files:
        assert (compiled / name).read_bytes() == (tmp_path / "snn" / name).read_bytes(), name
    calls = _stage_calls(tmp_path / "snn")
    assert "_binary<" not in calls and "pascal::mvu_threshold<" in calls
    for layer in design.layers:
        if isinstance(layer, WeightedLayer) and not layer.accumulates:
            assert f"static const unsigned T_OUT = {layer.t_out};" in \
                (tmp_path / "snn" / "firmware" / "parameters.h").read_text()
    assert "QNN twin" not in (tmp_path / "snn" / "README.md").read_text()

    _, qnn = _design(digits_build, "qnn")
    generate_hls(qnn, tmp_path / "qnn", build["spec"], build["name"])
    differ = sorted(str(name) for name in files
                    if (tmp_path / "snn" / name).read_bytes() !=
                    (tmp_path / "qnn" / name).read_bytes())
    assert set(differ) <= {"firmware/pascal_top.cpp", "firmware/parameters.h",
                           "firmware/layers.h", "tb/tb_pascal.cpp", "README.md"}, differ
    assert "firmware/pascal_top.cpp" in differ
