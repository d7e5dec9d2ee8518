"""Residual networks through the whole chain: shift-add blocks compile to a fork, conv1, conv2 and
projection with accumulator outputs, and an add; every view (QONNX, IR, SNN, cycle model, C
simulation, RTL simulation, cycles) agrees; the cycle model finds and names a deadlocking shortcut
FIFO, and the compiled depths never deadlock."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from qonnx.core.modelwrapper import ModelWrapper

from pascal_fpga.cli import main as cli_main
from pascal_fpga.flows.compile import CompileConfig, compile_model
from pascal_fpga.hw.csim import ap_types_dir
from pascal_fpga.hw.layers import AddLayer, ConvAccLayer, ForkLayer
from pascal_fpga.hw.design import design_from_ir
from pascal_fpga.perf.timing import simulate
from pascal_fpga.perf.values import run_values
from pascal_fpga.flows.verify import verify_build, verify_images

from nets import final_ir, make_run

# a stem, an identity block, a strided block with a projection shortcut; the classifier reads a
# sum pool (its frames are multi-bit)
SPEC = {"name": "tiny-resnet", "input": {"channels": 2, "height": 8, "width": 8, "bits": 5},
        "classes": 3, "weight_bits": 4, "levels": 2,
        "layers": [{"type": "conv", "channels": 4, "kernel": 3, "padding": 1, "levels": 3},
                   {"type": "block", "channels": 4},
                   {"type": "block", "channels": 6, "stride": 2, "levels": 3},
                   {"type": "avgpool", "kernel": 2},
                   {"type": "flatten"}, {"type": "linear", "features": 3}]}


@pytest.fixture(scope="module")
def resnet(tmp_path_factory):
    folder = tmp_path_factory.mktemp("resnet")
    run = make_run(folder / "run", SPEC)
    assert cli_main(["export", str(run), "--out", str(folder / "model.onnx")]) == 0
    return run, folder / "model.onnx"


@pytest.fixture(scope="module")
def resnet_build(resnet, tmp_path_factory):
    """The residual network compiled with the defaults (read-only: a test that verifies it,
    which builds the simulations inside, copies it)."""
    build = tmp_path_factory.mktemp("resnet_build") / "b"
    compile_model(resnet[1], build)
    return build


def _design(build: Path):
    return design_from_ir(ModelWrapper(str(final_ir(build))))


def test_the_ir_of_a_residual_network(resnet_build):
    """Each block is a fork, conv1 (thresholds), conv2 (accumulators), a projection where the
    shape changes (accumulators), and an add with L thresholds per channel (not 2M = 254)."""
    design = _design(resnet_build)
    kinds = [type(layer).__name__ for layer in design.layers]
    assert kinds.count("ForkLayer") == 2 and kinds.count("AddLayer") == 2
    assert sum(isinstance(layer, ConvAccLayer) for layer in design.layers) == 3
    adds = [layer for layer in design.layers if isinstance(layer, AddLayer)]
    assert [a.short_acc for a in adds] == [False, True]
    assert [a.thresholds.shape for a in adds] == [(4, 2), (6, 3)]
    fifos = design.fifos()
    for add in adds:   # two FIFOs into every add, one of them from a fork or a projection
        into = [f for f in fifos if f.layer == add.name and f.key in ("fifo_depth", "short_depth")]
        assert [f.key for f in into] == ["fifo_depth", "short_depth"]
        assert into[0].producer != into[1].producer


@pytest.mark.slow
def test_every_view_agrees_on_a_residual_network(resnet, resnet_build, tmp_path):
    """Brevitas, QONNX, the IR, the SNN, the cycle model, the C simulation (levels and loop
    counters) and the RTL simulation (levels and cycles) on random images."""
    run, _ = resnet
    build = tmp_path / "b"
    shutil.copytree(resnet_build, build)  # verify builds the simulations inside
    info = json.loads((build / "build.json").read_text())
    images, _, _ = verify_images(info, None, None, None, random=16, seed=5)
    report = verify_build(build, images, run_dir=run, csim_headers=ap_types_dir(), rtlsim=True)
    checks = {c["name"]: c for c in report["checks"]}
    for name in ("qonnx_vs_brevitas", "ir_vs_qonnx", "snn_vs_ir", "cyclesim_vs_ir",
                 "csim_vs_ir", "rtlsim_vs_ir"):
        assert checks[name]["compared"] == 16, name
        assert checks[name]["mismatched"] == 0 and checks[name]["differing_levels"] == 0, \
            checks[name]
    assert checks["csim_vs_ir"]["loop_counters"]["mismatched"] == 0
    assert checks["csim_vs_ir"]["loop_counters"]["compared"] > 0
    cycles = checks["rtl_cycles_vs_cyclesim"]
    assert cycles["compared"] == len(_design(build).stage_names()) * 16
    assert cycles["mismatched"] == 0 and cycles["fifo_counts_mismatched"] == 0, cycles
    assert report["passed"]


@pytest.mark.slow
@pytest.mark.parametrize("folding,zero_skip", [("full", True), ("serial", False)])
def test_rtl_of_other_foldings(resnet, tmp_path, folding, zero_skip):
    """Every stream one channel per word (dense), and all channels per word."""
    _, model = resnet
    build = tmp_path / "b"
    compile_model(model, build, folding, config=CompileConfig(zero_skip=zero_skip))
    info = json.loads((build / "build.json").read_text())
    images, _, _ = verify_images(info, None, None, None, random=8, seed=1)
    report = verify_build(build, images, snn=False, rtlsim=True)
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["cyclesim_vs_ir"]["mismatched"] == 0
    assert checks["rtlsim_vs_ir"]["mismatched"] == 0
    assert checks["rtl_cycles_vs_cyclesim"]["mismatched"] == 0, checks["rtl_cycles_vs_cyclesim"]


@pytest.mark.slow
def test_a_shallow_shortcut_fifo_deadlocks_and_is_named(resnet, tmp_path):
    """The shortcut FIFO (fork -> add) must hold what the fork writes before the add's first
    read (the rows conv1 and conv2 need): at depth 2 the cycle model reports a deadlock naming
    that FIFO; the compiled depths never deadlock, on data or on the worst case, in either
    schedule."""
    _, model = resnet
    build = tmp_path / "b"
    compile_model(model, build, "serial")
    design = _design(build)
    names = design.stage_names()
    fifos = design.fifos()
    short = next(k for k, f in enumerate(fifos) if f.key == "short_depth"
                 and names[f.producer].startswith("fork"))
    assert fifos[short].depth > 2
    rng = np.random.default_rng(0)
    images = rng.integers(0, 32, size=(6, 2, 8, 8)).astype(np.float32)
    activity = design.activity_from_lanes(run_values(design, images)[3])
    programs = design.programs(activity, len(images))
    shallow = design.fifo_depths()
    shallow[short] = 2
    timing = simulate(programs, shallow, edges=design.edges())
    where = f"FIFO {short} ({names[fifos[short].producer]} -> {names[fifos[short].consumer]})"
    assert timing.deadlock is not None and where in timing.deadlock, timing.deadlock
    for backend in ("hls", "rtl"):
        for progs in (design.programs(activity, len(images), backend=backend),
                      design.programs({}, 3, mode="dense", backend=backend)):
            t = simulate(progs, design.fifo_depths(), edges=design.edges())
            assert t.deadlock is None, (backend, t.deadlock)
    # and on many random activities (any input's token costs lie between 0 and T_in)
    for seed in range(5):
        rng = np.random.default_rng(seed)
        activity = {layer.name: rng.integers(0, layer.t_in + 1, size=(3, layer.windows,
                                                                      layer.sf))
                    for layer in design.layers if hasattr(layer, "sf")}
        for backend in ("hls", "rtl"):
            t = simulate(design.programs(activity, 3, backend=backend), design.fifo_depths(),
                         edges=design.edges())
            assert t.deadlock is None, (seed, backend, t.deadlock)


def test_a_requant_block_is_refused_by_compile(tmp_path, capsys):
    """The 8-bit add quantizer's block trains and simulates, but has no hardware: one line."""
    spec = dict(SPEC, layers=[dict(layer, residual="requant") if layer["type"] == "block"
                              else layer for layer in SPEC["layers"]])
    run = make_run(tmp_path / "run", spec)
    assert cli_main(["export", str(run), "--out", str(tmp_path / "m.onnx")]) == 0
    capsys.readouterr()
    assert cli_main(["compile", str(tmp_path / "m.onnx"), "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert "residual: shift" in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "b").exists()


def test_forks_and_adds_in_the_layer_classes(resnet_build):
    """Word widths and schedules: a fork writes both outputs in each slot, an add reads both
    inputs in each slot; the RTL top wires both."""
    build = resnet_build
    design = _design(build)
    fork = next(layer for layer in design.layers if isinstance(layer, ForkLayer))
    add = next(layer for layer in design.layers if isinstance(layer, AddLayer))
    for layer in (fork, add):
        (program,) = layer.programs(None, 2)
        assert program.read.all() and program.write.all()
        assert list(program.slots) == [layer.words] * 2
    top = (build / "rtl" / "pascal_top.sv").read_text()
    assert top.count("pascal_fork #(") == 2 and top.count("pascal_add #(") == 2
    assert ".out1_data(" in top and ".short_data(" in top
