"""The cycle model on compiled designs: data-dependent (zero-skipping) timing, the worst case, FIFO
sizing, the simulate report with the QNN twin, and the folding search through compile."""

import json

import numpy as np
import pytest
from qonnx.core.modelwrapper import ModelWrapper

from pascal_fpga.cli import main as cli_main
from pascal_fpga.flows.compile import CompileConfig, compile_model
from pascal_fpga.hw.layers import WORD_BITS_MAX
from pascal_fpga.hw.design import design_from_ir
from pascal_fpga.ir.execute import ir_outputs
from pascal_fpga.perf.cyclesim import cycle_model, worst_case_programs
from pascal_fpga.perf.timing import simulate
from pascal_fpga.perf.values import run_values


@pytest.fixture(scope="module")
def odd_model(odd_exports):
    """An odd network's export (conftest.py's, shared: read-only)."""
    return odd_exports("maxpool_l8", 4)[1]


@pytest.fixture(scope="module")
def odd_build(odd_builds):
    """``odd_model`` compiled with the defaults (conftest.py's, shared: read-only)."""
    return odd_builds("maxpool_l8", 4)


def _design(build):
    info = json.loads((build / "build.json").read_text())
    return design_from_ir(ModelWrapper(str(build / info["ir"]))), info


def _images(count, seed=0, density=1.0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(count, 3, 10, 12)).astype(np.float32)
    return images * (rng.random(images.shape) < density)


def test_zero_skipping_timing_follows_the_data(odd_build):
    """Sparser images cost fewer cycles; no image costs more than the worst case of any input;
    the values equal the IR's whatever the schedule."""
    design, _ = _design(odd_build)
    assert all(layer.zero_skip for layer in design.layers if hasattr(layer, "nf"))
    dense_images, sparse_images = _images(20, 1), _images(20, 2, density=0.15)
    report = {}
    for name, images in (("dense", dense_images), ("sparse", sparse_images)):
        cm = cycle_model(design, images, 100.0)
        acc, classes = ir_outputs(ModelWrapper(str(odd_build / "ir" / "08_size_fifos.onnx")),
                                  images)
        assert np.array_equal(cm.accumulators, acc) and np.array_equal(cm.classes, classes)
        report[name] = cm.summary()
        # busy cycles of every stage and image within the worst case's
        worst = worst_case_programs(design, 1)
        for program, bound in zip(cm.programs, worst):
            assert program.slots.max() <= bound.slots[0], program.stage
    assert report["sparse"]["interval_cycles"]["mean"] < report["dense"]["interval_cycles"]["mean"]
    for summary in report.values():
        assert summary["interval_cycles"]["worst"] <= summary["worst_case_interval_cycles"]
        assert summary["latency_cycles"]["worst"] <= summary["worst_case_latency_cycles"]
        assert summary["interval_cycles"]["mean"] <= summary["interval_cycles"]["p99"] \
            <= summary["interval_cycles"]["worst"]


def test_the_dense_schedule_has_a_constant_interval(odd_model, tmp_path):
    compile_model(odd_model, tmp_path / "b", config=CompileConfig(zero_skip=False))
    design, info = _design(tmp_path / "b")
    assert info["config"]["zero_skip"] is False
    summary = cycle_model(design, _images(12, 3, density=0.3), 100.0).summary()
    interval = summary["interval_cycles"]
    assert interval["best"] == interval["worst"] == summary["worst_case_interval_cycles"]


def test_fifo_sizing_keeps_the_mean_and_never_deadlocks(odd_build):
    design, info = _design(odd_build)
    depths = design.fifo_depths()
    assert info["fifo_sizing"]["depths"] == depths and min(depths) >= 1
    images = _images(24, 5, density=0.5)
    lanes = run_values(design, images)[3]
    programs = design.programs(design.activity_from_lanes(lanes), len(images))
    sized = simulate(programs, depths)
    free = simulate(programs, [1 << 40] * len(depths))
    assert sized.deadlock is None
    # sized on other images: within a few percent of unbounded FIFOs on these
    assert sized.interval.mean() <= free.interval.mean() * 1.05
    # every FIFO at depth 1: slower, but a chain cannot deadlock
    tight = simulate(programs, [1] * len(depths))
    assert tight.deadlock is None and tight.interval.mean() >= free.interval.mean()
    worst = simulate(worst_case_programs(design), depths)
    assert worst.deadlock is None
    pragma = (odd_build / "hls" / "firmware" / "pascal_top.cpp").read_text()
    assert f"depth = {depths[0]}" in pragma


def test_simulate_reports_the_snn_and_its_qnn_twin(odd_model, tmp_path, capsys):
    compile_model(odd_model, tmp_path / "b", clock_mhz=200)
    assert cli_main(["simulate", str(tmp_path / "b"), "--random", "--images", "30",
                     "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    cm = report["cycle_model"]
    assert cm["fps_mean"] == pytest.approx(200e6 / cm["interval_cycles"]["mean"])
    assert cm["fps_worst_case"] <= cm["fps_p99"] <= cm["fps_mean"] * 1.0001 or \
        cm["fps_worst_case"] <= cm["fps_mean"]
    snn, qnn = report["snn"], report["qnn"]
    for key in ("images_per_s_mean", "images_per_s_worst", "lut"):
        assert snn[key] > 0
    assert snn["images_per_s_worst"] <= snn["images_per_s_mean"]
    assert qnn["images_per_s"] > 0 and qnn["lut"] > 0
    # the twin has its own folding: every layer in the QNN mode
    assert {row["mode"] for row in qnn["layers"]} == {"qnn"}
    folder = tmp_path / "b" / "report"
    for name in ("report.json", "summary.md", "cycles_per_layer.png", "resources_per_layer.png",
                 "spikes_per_layer.png"):
        assert (folder / name).is_file(), name


def test_compile_target_fps_searches_the_folding(odd_model, tmp_path, capsys):
    target = 20000.0
    assert cli_main(["compile", str(odd_model), "--out", str(tmp_path / "c"), "--target-fps",
                     str(target), "--calibration-images", "16", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    search = result["folding_search"]
    assert search["target_fps"] == target and all(row["met"] for row in search["layers"])
    budget = 100e6 / target
    assert all(row["cycles"] <= budget for row in search["layers"])
    # the cycle model's mean interval on the calibration images, FIFOs included, meets it too
    assert result["fifo_sizing"]["mean_interval"] <= budget * 1.05
    assert cli_main(["compile", str(odd_model), "--out", str(tmp_path / "d"), "--target-fps",
                     "-3"]) == 2
    assert "must be positive" in capsys.readouterr().err
    assert cli_main(["compile", str(odd_model), "--out", str(tmp_path / "e"), "--lut-budget",
                     "100000", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["folding_search"]["lut_budget"] == 100000


def test_stop_after_keeps_the_steps_so_far(odd_model, tmp_path, capsys):
    assert cli_main(["compile", str(odd_model), "--out", str(tmp_path / "s"), "--stop-after",
                     "apply_folding"]) == 0
    info = json.loads((tmp_path / "s" / "build.json").read_text())
    assert info["stopped_after"] == "apply_folding" and not (tmp_path / "s" / "hls").exists()
    assert [s["step"] for s in info["steps"]][-1] == "apply_folding"
    with pytest.raises(SystemExit) as exit_:   # a choice of argparse's: its usage line, exit 2
        cli_main(["compile", str(odd_model), "--out", str(tmp_path / "t"), "--stop-after",
                  "nonsense"])
    assert exit_.value.code == 2 and "invalid choice" in capsys.readouterr().err
    # resumed, the build equals a straight compile, file for file (build.json aside)
    assert cli_main(["compile", str(odd_model), "--out", str(tmp_path / "s"), "--resume"]) == 0
    assert cli_main(["compile", str(odd_model), "--out", str(tmp_path / "u")]) == 0
    capsys.readouterr()
    resumed = json.loads((tmp_path / "s" / "build.json").read_text())
    assert resumed["resumed_after"] == "apply_folding" and "stopped_after" not in resumed
    assert _hashes(tmp_path / "s") == _hashes(tmp_path / "u")
    assert cli_main(["compile", str(odd_model), "--out", str(tmp_path / "u"), "--resume"]) == 2
    assert "not a stopped build" in capsys.readouterr().err


def _hashes(folder):
    import hashlib

    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != "build.json"}


def test_a_word_wider_than_the_library_allows_is_a_compile_error(odd_model, tmp_path, capsys):
    """The full folding of a 12-channel stream with L = 8 is far below the cap; force the cap
    down to see the check name the layer."""
    import pascal_fpga.hw.layers.base as layers   # where the cap is read

    cap = layers.WORD_BITS_MAX
    try:
        layers.WORD_BITS_MAX = 16
        assert cli_main(["compile", str(odd_model), "--out", str(tmp_path / "w"), "--folding",
                         "full"]) == 2
    finally:
        layers.WORD_BITS_MAX = cap
    err = capsys.readouterr().err
    assert "bits, wider than the 16 bits the HLS library allows" in err and "layer conv0" in err
    assert WORD_BITS_MAX == 4096 and not (tmp_path / "w").exists()
