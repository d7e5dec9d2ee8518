"""The fitted per-module cost functions (pascal_fpga.hw.costs): the structural BRAM18 / DSP rules
reproduce every synthesized sweep point, the fitted LUT / FF models are monotone where the
hardware is, and a layer's cost is the sum of its stages' and FIFOs' (no Yosys here)."""

import json

import pytest

from pascal_fpga.hw import costs, resources
from pascal_fpga.perf.estimates import design_resources

from test_folding_v2 import conv, dense, pool, tiny_design

SWEEP = costs.COSTS_DIR / "sweep_xc7.json"
pytestmark = pytest.mark.skipif(not costs.has_fit("xc7") or not SWEEP.is_file(),
                                reason="no fitted xc7 cost functions")


def sweep_points():
    return json.loads(SWEEP.read_text())["points"] if SWEEP.is_file() else []


def test_structural_rules_reproduce_every_sweep_point():
    points = sweep_points()
    assert len(points) > 50
    misses = [(r["module"], r["params"], r["BRAM18"], costs.bram18(r["module"], r["params"]),
               r["DSP"], costs.dsp(r["module"], r["params"]))
              for r in points
              if costs.bram18(r["module"], r["params"]) != r["BRAM18"]
              or costs.dsp(r["module"], r["params"]) != r["DSP"]]
    assert not misses


def test_every_module_is_fitted_and_close_on_its_sweep():
    fit = costs.load_fit("xc7")
    for module in costs.MODULES:
        if module not in fit["modules"]:
            continue
        for key in ("LUT", "FF"):
            assert fit["modules"][module][key]["mean_abs_rel_err"] < 0.25, (module, key)
    points = sweep_points()
    for r in points:   # stage_cost reproduces the stored fit within its largest error
        got = costs.stage_cost(r["module"], r["params"])
        assert got["BRAM18"] == r["BRAM18"] and got["DSP"] == r["DSP"]
        assert got["LUT"] >= 0 and got["FF"] >= 0


MVU = dict(SIMD=8, PE=8, T_IN=2, FB=1, SF=18, NF=4, WINDOWS=64, T_OUT=2, WB=4, ACC_BITS=12,
           CLASSIFIER=0)
WIN = dict(IN_CH=16, IN_H=14, IN_W=14, OUT_H=14, OUT_W=14, K=3, STRIDE=1, PAD=1, T_IN=2, FB=1,
           SIMD=8, ZERO_SKIP=1)


@pytest.mark.parametrize("module,base,key,values", [
    ("pascal_mvu", MVU, "PE", [1, 2, 4, 8, 16, 32]),
    ("pascal_mvu", MVU, "SIMD", [1, 2, 4, 8, 16, 32]),
    ("pascal_mvu", MVU, "ACC_BITS", [8, 10, 12, 16, 20]),
    ("pascal_mvu", MVU, "T_OUT", [1, 2, 4, 8, 15]),
    ("pascal_mvu", MVU, "WB", [2, 3, 4, 6, 8]),
    # (FB = 8 would move the products into DSPs: fewer LUTs, by design)
    ("pascal_mvu", dict(MVU, T_IN=1, OUT_BINARY=1), "FB", [1, 2, 3, 4]),
    ("pascal_window_gen", WIN, "IN_W", [4, 8, 14, 28]),
    ("pascal_window_gen", WIN, "T_IN", [1, 2, 4, 8]),
    ("pascal_vector_gen", dict(SIMD=8, T_IN=2, FB=1, SF=64, ZERO_SKIP=1), "SIMD", [1, 2, 8, 32]),
    ("pascal_pool", dict(CH=32, IN_H=8, IN_W=8, OUT_H=4, OUT_W=4, K=2, STRIDE=2, T=2, FB_IN=1,
                         FB_OUT=1, PE=8, SUM=0), "PE", [2, 4, 8, 16, 32]),
    # (a FIFO of at most 24 bits is registers, wider LUT RAM with fewer FFs: LUTs only)
    ("pascal_fifo", dict(WIDTH=16, DEPTH=2), "WIDTH", [1, 8, 16, 64, 256]),
    ("pascal_fifo", dict(WIDTH=32, DEPTH=2), "DEPTH", [2, 16, 32, 64, 128]),
])
def test_more_hardware_never_cheaper(module, base, key, values):
    """More PE, SIMD, bits, frames or image never costs fewer LUTs (nor FFs), as long as no
    memory moves into block RAM (Yosys trades its LUT RAM and registers for BRAM18 then)."""
    got = [costs.stage_cost(module, dict(base, **{key: v})) for v in values]
    for what in ("LUT",) if module == "pascal_fifo" else ("LUT", "FF"):
        for a, b in zip(got, got[1:]):
            if a["BRAM18"] == b["BRAM18"]:
                assert b[what] >= a[what], (module, key, what, [g[what] for g in got])


def test_dense_mvu_more_pe_never_cheaper_at_every_simd():
    for simd in (1, 4, 16):
        for fb in (1, 4):
            seq = [costs.stage_cost("pascal_mvu", dict(MVU, SIMD=simd, FB=fb, PE=pe))["LUT"]
                   for pe in (1, 2, 4, 8, 16)]
            assert seq == sorted(seq), (simd, fb, seq)


@pytest.fixture(scope="module")
def tiny():
    return tiny_design()


def test_layer_cost_is_the_sum_of_its_stages_and_fifos(tiny):
    layers = list(tiny.layers) + [conv("c", 8, 16, 10, 10, 4, 3, 4), pool("p", 8, 8, 8, 3, 3),
                                  dense("k", (12,), 6, 2, 1, 2, classifier=True)]
    for layer in layers:
        for mode in ("zero_skip", "dense", "qnn"):
            bits = layer.mode_input_bits(mode)
            parts = costs.layer_stages(layer, mode, bits, layer.fifo_depth)
            assert parts[0] == ("pascal_fifo", {"WIDTH": bits if layer.data_inputs == 1 else
                                                parts[0][1]["WIDTH"],
                                                "DEPTH": layer.fifo_depth})
            total = {k: sum(costs.stage_cost(m, p)[k] for m, p in parts) for k in costs.KEYS}
            assert costs.layer_cost(layer, mode, bits, layer.fifo_depth) == total
            assert resources.layer_resources(layer, mode, bits, layer.fifo_depth) == total
            breakdown = costs.layer_breakdown(layer, mode, bits, layer.fifo_depth)
            assert {k: sum(v[k] for v in breakdown.values()) for k in costs.KEYS} == total


def test_design_resources_use_the_fitted_costs(tiny):
    est = design_resources(tiny)
    for row, layer in zip(est["layers"], tiny.layers):
        mode = layer.mode_of(None)
        assert {k: row[k] for k in costs.KEYS} == costs.layer_cost(
            layer, mode, layer.mode_input_bits(mode), layer.fifo_depth)
    total = {k: sum(r[k] for r in est["layers"] + est["adapters"]) for k in costs.KEYS}
    assert total == est["total"]
    qnn = design_resources(tiny, mode="qnn")
    assert qnn["total"]["LUT"] > 0
