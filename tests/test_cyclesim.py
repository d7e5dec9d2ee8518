"""The cycle model's schedule arithmetic, FIFO sizing, the report and the folding search."""

import json

import pytest
from qonnx.core.modelwrapper import ModelWrapper

from pascal_fpga.cli import main as cli_main
from pascal_fpga.compiler.build import compile_model
from pascal_fpga.perf.cyclesim import (UNBOUNDED, Stage, design_depths, design_programs,
                                           fifo_depths, layer_program, simulate_timing)
from pascal_fpga.perf.estimates import layer_resources
from pascal_fpga.ir.export import export_run
from pascal_fpga.perf.folding import _dims, _divisors, search_folding, with_folding
from pascal_fpga.hw.hls import hls_layers

from nets import ODD_SPECS, make_run


def test_timing_by_hand():
    """A producer of 3 words and a consumer that reads one every 6 cycles (see the comments)."""
    producer = Stage("p", [("W", 3)], {})
    consumer = Stage("c", [("R", 1), ("C", 5), ("R", 1), ("C", 5), ("R", 1)], {})
    # depth 1: w0 at 0; r0 at 1; w1 waits for r0: at 2; r1 at 7 (after 5 busy cycles);
    # w2 waits for r1: at 8; r2 at 13; the consumer ends at 14, the producer at 9
    t = simulate_timing([producer, consumer], 1, [1])
    assert t.finish == [[9], [14]]
    assert t.stall[0] == (2 - 1) + (8 - 3)
    assert t.latency == 14
    # depth 3: the producer never waits, the consumer's pace is the same
    t = simulate_timing([producer, consumer], 1, [3])
    assert t.finish == [[3], [14]] and t.stall[0] == 0
    assert t.max_occupancy == [2]  # w2 at 2 with r0 (at 1) gone


def test_timing_of_successive_images_overlaps():
    fast = Stage("fast", [("W", 4), ("C", 2)], {})
    slow = Stage("slow", [("R", 4), ("C", 20)], {})
    t = simulate_timing([fast, slow], 5, [UNBOUNDED])
    assert t.interval == 24  # the slow stage's program, back to back
    assert t.finish[1][0] == 1 + 4 + 20  # first word readable at 1


@pytest.fixture(scope="module")
def odd_model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cyc")
    run = make_run(folder / "run", ODD_SPECS["maxpool_l8"], seed=4)
    export_run(run, folder / "model.onnx")
    return folder / "model.onnx"


def test_fifo_depths_keep_the_unbounded_timing(odd_model, tmp_path):
    compile_model(odd_model, tmp_path / "b")
    model = ModelWrapper(str(tmp_path / "b" / "ir" / "07_size_fifos.onnx"))
    layers = hls_layers(model)
    stages = design_programs(layers, 10 * 12)
    depths = design_depths(layers)
    assert depths == fifo_depths(stages)
    free = simulate_timing(stages, 4, [UNBOUNDED] * len(depths))
    sized = simulate_timing(stages, 4, depths)
    assert (sized.latency, sized.interval) == (free.latency, free.interval)
    assert not sized.deadlock
    folding = json.loads((tmp_path / "b" / "ir" / "folding.json").read_text())
    assert [folding[layer.name]["fifo_depth"] for layer in layers] == depths[:-1]
    pragma = (tmp_path / "b" / "hls" / "firmware" / "pascal_top.cpp").read_text()
    assert f"variable = pixels depth = {depths[0]}" in pragma
    # with every FIFO at depth 1 the design is slower but still finishes (no deadlock)
    tight = simulate_timing(stages, 4, [1] * len(depths))
    assert not tight.deadlock and tight.interval >= free.interval


def test_simulate_writes_the_report(odd_model, tmp_path, capsys):
    compile_model(odd_model, tmp_path / "b", clock_mhz=200)
    assert cli_main(["simulate", str(tmp_path / "b"), "--random", "--images", "30",
                     "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    cm = report["cycle_model"]
    assert cm["fps"] == pytest.approx(200e6 / cm["cycles_per_image"])
    assert cm["latency_cycles"] >= cm["cycles_per_image"] > 0
    assert report["qnn"]["cycles_per_image"] <= report["snn_slowest_stage_cycles"]
    for key in ("LUT", "FF", "BRAM18", "DSP"):
        assert report["estimates"]["total"]["snn"][key] >= 0
    folder = tmp_path / "b" / "report"
    for name in ("report.json", "summary.md", "cycles_per_layer.png", "resources_per_layer.png",
                 "spikes_per_layer.png"):
        assert (folder / name).is_file(), name


def test_folding_search_meets_the_target_with_the_fewest_luts(odd_model, tmp_path, capsys):
    compile_model(odd_model, tmp_path / "b")
    layers = hls_layers(ModelWrapper(str(tmp_path / "b" / "ir" / "07_size_fifos.onnx")))
    target, clock = 20000.0, 100.0
    folding, rows = search_folding(layers, target, clock)
    budget = clock * 1e6 / target
    for layer, row in zip(layers, rows):
        assert row["meets_target"] and row["cycles"] <= budget
        width = 24
        # brute force: no folding meeting the budget has fewer LUTs
        pe_dim, simd_dim = _dims(layer)
        for pe in _divisors(pe_dim):
            for simd in _divisors(simd_dim):
                other = with_folding(layer, pe, simd)
                if layer_program(other).busy <= budget:
                    assert row["lut"] <= layer_resources(other, width if layer is layers[0]
                                                         else layers[layers.index(layer) - 1]
                                                         .out_word_bits, 2)["LUT"]
    assert cli_main(["compile", str(odd_model), "--out", str(tmp_path / "c"), "--target-fps",
                     str(target), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["folding_search"]["achieved_fps"] >= target
    assert cli_main(["compile", str(odd_model), "--out", str(tmp_path / "d"), "--target-fps",
                     "-3"]) == 2
    assert "must be positive" in capsys.readouterr().err
