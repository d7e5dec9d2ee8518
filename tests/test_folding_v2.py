"""The v2 folding search (perf/folding.py), the resource formulas (hw/resources.py) and the design
estimates (perf/estimates.py), on small designs built by hand (no trained network)."""

import itertools

import numpy as np
import pytest

from pascal_fpga.errors import PascalError
from pascal_fpga.hw.layers import ClassifierLayer, ConvLayer, DenseLayer, PoolLayer
from pascal_fpga.hw.design import Design
from pascal_fpga.hw.resources import (layer_resources,
                                      resource_parts)
from pascal_fpga.perf.estimates import design_resources, input_adapter, output_adapter
from pascal_fpga.perf.folding import (divisors, input_cycles, output_cycles, program_cycles,
                                      search_folding, search_summary, stage_cycles, LayerActivity)

CLOCK = 100.0


class _Node:
    def __init__(self, name, op_type):
        self.name, self.op_type = name, op_type
        self.input = [f"{name}_in", f"{name}_w", f"{name}_t"]


class _Model:
    def __init__(self):
        self.inits = {}

    def get_initializer(self, name):
        return self.inits[name]


def _attrs(in_shape, out_shape, t_in, t_out, in_max, **extra):
    a = dict(in_shape=list(in_shape), out_shape=list(out_shape), t_in=t_in, t_out=t_out,
             in_max=in_max, pe=1, simd=1, fifo_depth=2, zero_skip=1, token_depth=2,
             weight_bits=4, acc_bits=16, acc_min=-1000, acc_max=1000, threshold_bits=0)
    a.update(extra)
    return a


def conv(name, cin, cout, h, w, t_in, t_out, in_max, k=3, stride=1, pad=1, seed=0, op=None):
    rng = np.random.default_rng(seed)
    model = _Model()
    model.inits[f"{name}_w"] = rng.integers(-7, 8, (cout, cin, k, k)).astype(np.float32)
    model.inits[f"{name}_t"] = np.sort(rng.integers(-20, 20, (cout, t_out)), axis=1)
    oh, ow = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
    op = op or ("PixelConv" if t_in == 1 else "SpikingConv")
    return ConvLayer(_Node(name, op), model,
                     _attrs((cin, h, w), (cout, oh, ow), t_in, t_out, in_max,
                            kernel=k, stride=stride, pad=pad))


def pool(name, c, h, w, t, in_max, k=2):
    oh, ow = (h - k) // k + 1, (w - k) // k + 1
    return PoolLayer(_Node(name, "SpikingMaxPool"), _Model(),
                     _attrs((c, h, w), (c, oh, ow), t, t, in_max, kernel=k, stride=k))


def dense(name, in_shape, cout, t_in, t_out, in_max, seed=0, classifier=False):
    rng = np.random.default_rng(seed)
    model = _Model()
    fanin = int(np.prod(in_shape))
    model.inits[f"{name}_w"] = rng.integers(-7, 8, (cout, fanin)).astype(np.float32)
    if classifier:
        model.inits[f"{name}_t"] = rng.integers(-5, 5, cout)
        return ClassifierLayer(_Node(name, "SpikingClassifier"), model,
                               _attrs(in_shape, (cout,), t_in, 1, in_max))
    model.inits[f"{name}_t"] = np.sort(rng.integers(-20, 20, (cout, t_out)), axis=1)
    return DenseLayer(_Node(name, "SpikingDense"), model,
                      _attrs(in_shape, (cout,), t_in, t_out, in_max))


def tiny_design():
    """conv 2 -> 4 (6x6, L 3), max pool 2, dense 36 -> 6 (L 2), classifier 6 -> 3."""
    layers = [conv("c0", 2, 4, 6, 6, 1, 3, 15),
              pool("p0", 4, 6, 6, 3, 3),
              dense("d0", (4, 3, 3), 6, 3, 2, 3),
              dense("cls", (6,), 3, 2, 1, 2, classifier=True)]
    return Design(layers, 2, 6, 6, 4)


def sample_lanes(design, n=6, density=0.5, seed=1):
    """Random lane activity (levels 0..T_in) of every weighted layer."""
    rng = np.random.default_rng(seed)
    lanes = {}
    for layer in design.layers:
        if isinstance(layer, PoolLayer):
            continue
        shape = (n, layer.in_h, layer.in_w, layer.in_channels)
        level = rng.integers(1, layer.t_in + 1, shape)
        lanes[layer.name] = np.where(rng.random(shape) < density, level, 0).astype(np.int16)
    return lanes


# --- brute force: every folding of the chain, costed from the layers' own programs ------------

def brute_force(design, lanes, twin="snn"):
    """[(total LUT, largest stage mean cycles, {layer: (g_in, g_out, zero_skip)})] for every
    folding, with cycles from ``layer.programs`` and LUT from ``layer.resources``."""
    layers = design.layers
    groups = [divisors(l.in_channels) for l in layers] + [divisors(layers[-1].out_channels)]
    cache = {}

    def cost(index, g_in, g_out, mode):
        key = (index, g_in, g_out, mode)
        if key not in cache:
            layer = layers[index]
            if isinstance(layer, PoolLayer):
                folded = layer.folded(pe=g_in)
            else:
                folded = layer.folded(pe=g_out, simd=g_in, zero_skip=mode == "zero_skip")
            cycles = program_cycles(folded, lanes.get(layer.name), mode)
            lut = folded.resources(mode, folded.mode_input_bits(mode), layer.fifo_depth)["LUT"]
            cache[key] = (max(cycles.values()), lut)
        return cache[key]

    weighted = [i for i, l in enumerate(layers) if not isinstance(l, PoolLayer)]
    modes = ("qnn",) if twin == "qnn" else ("zero_skip", "dense")
    results = []
    for gs in itertools.product(*groups):
        if any(isinstance(l, PoolLayer) and gs[i] != gs[i + 1] for i, l in enumerate(layers)):
            continue
        for ms in itertools.product(modes, repeat=len(weighted)):
            mode_of = dict(zip(weighted, ms))
            total, worst = 0, max(input_cycles(design, gs[0]), output_cycles(design, gs[-1]))
            for i, layer in enumerate(layers):
                mode = mode_of.get(i, "qnn" if twin == "qnn" else "dense")
                cycles, lut = cost(i, gs[i], gs[i + 1], mode)
                total += lut
                worst = max(worst, cycles)
            # the adapters: the pixel reader, the class writer and the FIFO into it
            total += input_adapter(design, gs[0])["LUT"] + \
                output_adapter(design, layers[-1].folded(pe=gs[-1]))["LUT"]
            results.append((total, worst, gs, ms))
    return results


def _total(rows):
    return sum(r["lut"] + r["lut_outside"] for r in rows)


@pytest.fixture(scope="module")
def tiny():
    design = tiny_design()
    lanes = sample_lanes(design)
    return design, lanes, brute_force(design, lanes), brute_force(design, lanes, "qnn")


def test_fast_cycles_equal_the_programs():
    """The closed form equals the stage programs, every kind and mode, odd strides and pads."""
    layers = [conv("a", 3, 4, 9, 7, 4, 2, 4, k=3, stride=2, pad=1),
              conv("b", 4, 6, 8, 8, 2, 3, 2, k=5, stride=2, pad=0),
              conv("c", 2, 2, 5, 5, 1, 1, 255, k=3, stride=1, pad=2),
              dense("d", (4, 3, 2), 6, 3, 2, 3),
              dense("e", (6,), 4, 2, 1, 2, classifier=True)]
    rng = np.random.default_rng(3)
    for layer in layers:
        shape = (5, layer.in_h, layer.in_w, layer.in_channels)
        lanes = np.where(rng.random(shape) < 0.4, rng.integers(1, layer.t_in + 1, shape), 0)
        for simd in divisors(layer.in_channels):
            for pe in divisors(layer.out_channels):
                folded = layer.folded(pe=pe, simd=simd)
                for mode in ("zero_skip", "dense", "qnn"):
                    fast = stage_cycles(folded, mode, LayerActivity(folded, lanes))
                    assert fast == pytest.approx(program_cycles(folded, lanes, mode)), \
                        (layer.name, pe, simd, mode)
                # worst case: every group of every window active at T_in
                full = np.full(shape, layer.t_in)
                worst = stage_cycles(folded, "zero_skip", LayerActivity(folded, lanes), worst=True)
                assert worst == pytest.approx(program_cycles(folded, full, "zero_skip"))
    p = pool("p", 4, 6, 6, 3, 3).folded(pe=2)
    assert stage_cycles(p, "dense") == pytest.approx(program_cycles(p, None, "dense"))


@pytest.mark.parametrize("twin", ["snn", "qnn"])
def test_dp_equals_brute_force(tiny, twin):
    design, lanes, snn, qnn = tiny
    results = snn if twin == "snn" else qnn
    bottlenecks = sorted({r[1] for r in results})
    fastest = bottlenecks[0]
    for bound in bottlenecks[::max(1, len(bottlenecks) // 12)] + [bottlenecks[-1]]:
        fps = CLOCK * 1e6 / bound
        folding, rows = search_folding(design, lanes, target_fps=fps, clock_mhz=CLOCK, twin=twin)
        best = min(r[0] for r in results if r[1] <= bound * (1 + 1e-12))
        assert _total(rows) == best, bound
        assert all(row["met"] for row in rows)
        assert max(row["cycles"] for row in rows) <= bound + 1e-6
    # a target nobody meets: the fastest folding, at least LUT among the fastest
    folding, rows = search_folding(design, lanes, target_fps=CLOCK * 1e6 / (fastest * 0.5),
                                   clock_mhz=CLOCK, twin=twin)
    assert not all(row["met"] for row in rows)
    assert max(row["cycles"] for row in rows) == pytest.approx(fastest)
    assert _total(rows) == min(r[0] for r in results if r[1] == fastest)


@pytest.mark.parametrize("twin", ["snn", "qnn"])
def test_lut_budget_is_the_fastest_that_fits(tiny, twin):
    design, lanes, snn, qnn = tiny
    results = snn if twin == "snn" else qnn
    luts = sorted({r[0] for r in results})
    for budget in luts[::max(1, len(luts) // 10)]:
        folding, rows = search_folding(design, lanes, lut_budget=budget, clock_mhz=CLOCK,
                                       twin=twin)
        fits = [r for r in results if r[0] <= budget]
        fastest = min(r[1] for r in fits)
        assert max(row["cycles"] for row in rows) == pytest.approx(fastest)
        assert _total(rows) <= budget
        assert all(row["met"] for row in rows)
    folding, rows = search_folding(design, lanes, lut_budget=luts[0] - 1, clock_mhz=CLOCK,
                                   twin=twin)
    assert not any(row["met"] for row in rows) and _total(rows) == luts[0]


def test_chosen_folding_is_consistent_and_meets_the_target(tiny):
    design, lanes, snn, _ = tiny
    bounds = sorted({r[1] for r in snn})
    bound = bounds[len(bounds) // 3]
    folding, rows = search_folding(design, lanes, target_fps=CLOCK * 1e6 / bound,
                                   clock_mhz=CLOCK)
    layers = []
    for layer in design.layers:
        f = folding[layer.name]
        pe_dim, simd_dim = layer.fold_limits()
        assert pe_dim % f["pe"] == 0 and simd_dim % f["simd"] == 0
        layers.append(layer.folded(pe=f["pe"], simd=f["simd"], zero_skip=f.get("zero_skip")))
    folded = Design(layers, design.channels, design.height, design.width, design.bits)
    folded.check_streams()      # one G per stream: producer PE = consumer SIMD
    assert design.channels % layers[0].simd == 0
    for layer, row in zip(layers, rows):
        mode = layer.mode_of(None)
        cycles = program_cycles(layer, lanes.get(layer.name), mode)
        assert max(cycles.values()) <= bound + 1e-6
        assert row["met"] and row["worst_cycles"] >= row["cycles"] - 1e-9
    summary = search_summary(rows, CLOCK)
    assert summary["met"] and summary["cycles_per_image"] <= bound + 1e-6


def test_sparser_activity_fewer_cycles_and_luts(tiny):
    design, _, _, _ = tiny
    layer = design.layers[0].folded(pe=2, simd=1)
    cycles = []
    for density in (0.9, 0.5, 0.1, 0.0):
        lanes = sample_lanes(design, density=density)[layer.name]
        cycles.append(stage_cycles(layer, "zero_skip", LayerActivity(layer, lanes))["c0_mvu"])
    assert cycles == sorted(cycles, reverse=True) and cycles[0] > cycles[-1]
    dense_cycles = stage_cycles(layer, "dense")
    assert dense_cycles == stage_cycles(layer.folded(zero_skip=False), "dense")
    # the same target costs no more LUTs on sparser data; more than the densest at some targets
    targets = [CLOCK * 1e6 / b for b in (150, 300, 600, 1200)]
    for fps in targets:
        luts = [_total(search_folding(design, sample_lanes(design, density=d), target_fps=fps,
                                      clock_mhz=CLOCK)[1]) for d in (1.0, 0.5, 0.05)]
        assert luts == sorted(luts, reverse=True), (fps, luts)


def test_zero_skip_chosen_when_sparse_and_tight():
    """A spiking conv with long trains and little activity: zero-skipping pays off."""
    layers = [conv("c0", 1, 8, 12, 12, 1, 8, 15),
              conv("c1", 8, 8, 12, 12, 8, 4, 8, seed=2),
              dense("cls", (8, 12, 12), 4, 4, 1, 4, classifier=True)]
    design = Design(layers, 1, 12, 12, 4)
    sparse = sample_lanes(design, n=8, density=0.05)
    folding, rows = search_folding(design, sparse, target_fps=CLOCK * 1e6 / 3000,
                                   clock_mhz=CLOCK)
    assert folding["c1"]["zero_skip"] is True
    row = next(r for r in rows if r["layer"] == "c1")
    assert row["worst_cycles"] > row["cycles"] and row["activity"] == "sampled"


def test_qnn_search_is_independent_of_activity(tiny):
    design, lanes, _, qnn = tiny
    fps = CLOCK * 1e6 / 400
    a = search_folding(design, lanes, target_fps=fps, clock_mhz=CLOCK, twin="qnn")
    b = search_folding(design, sample_lanes(design, density=0.01), target_fps=fps,
                       clock_mhz=CLOCK, twin="qnn")
    c = search_folding(design, None, target_fps=fps, clock_mhz=CLOCK, twin="qnn")
    assert a == b == c
    assert {row["mode"] for row in a[1]} == {"qnn"}
    assert all(row["worst_cycles"] == pytest.approx(row["cycles"], abs=1) for row in a[1])
    assert all(f.get("zero_skip") in (None, False) for f in a[0].values())


def _without_zero_skip_logic(layer, mode):
    """LUT, FF, DSP of the layer without its zero-skip parts: those scale with the groups per
    window (SF = K*K*IN_CH/SIMD: flags, mask, encoder), so they shrink as SIMD grows."""
    total = dict.fromkeys(("LUT", "FF", "DSP"), 0)
    for name, part in resource_parts(layer, mode).items():
        if not name.startswith("zero-skip"):
            for key in total:
                total[key] += part[key]
    return total


def test_resources_monotone_in_pe_and_simd():
    layers = [conv("c", 8, 16, 10, 10, 4, 3, 4), dense("d", (16, 2, 2), 12, 3, 2, 3),
              dense("k", (12,), 6, 2, 1, 2, classifier=True), conv("px", 2, 8, 8, 8, 1, 3, 255),
              conv("w8", 4, 8, 6, 6, 1, 3, 255)]
    layers[-1].weight_bits = 8      # 8 x 8 >= 64: a DSP per lane
    for layer in layers:
        for mode in ("zero_skip", "dense", "qnn"):
            pes, simds = divisors(layer.out_channels), divisors(layer.in_channels)
            grid = [[_without_zero_skip_logic(layer.folded(pe=p, simd=s), mode)
                     for s in simds] for p in pes]
            # PE alone: the whole layer, zero-skip logic included
            for j in range(len(simds)):
                luts = [layer_resources(layer.folded(pe=p, simd=simds[j]), mode)["LUT"]
                        for p in pes]
                assert luts == sorted(luts), (layer.name, mode)
            for i, j in itertools.product(range(len(pes)), range(len(simds))):
                here = grid[i][j]
                for key in ("LUT", "FF", "DSP"):
                    if i + 1 < len(pes):
                        assert grid[i + 1][j][key] >= here[key], (layer.name, mode, key)
                    if j + 1 < len(simds):
                        assert grid[i][j + 1][key] >= here[key], (layer.name, mode, key)
    p = pool("p", 8, 8, 8, 3, 3)
    for mode in ("dense", "qnn"):
        luts = [layer_resources(p.folded(pe=g), mode)["LUT"] for g in divisors(8)]
        assert luts == sorted(luts)


def test_zero_skip_costs_are_counted():
    layer = conv("c", 8, 16, 10, 10, 4, 3, 4).folded(pe=4, simd=2)
    zs, dn, q = (layer_resources(layer, m) for m in ("zero_skip", "dense", "qnn"))
    assert zs["LUT"] > dn["LUT"]
    parts = resource_parts(layer, "zero_skip")
    for part in ("zero-skip priority encoder", "zero-skip active", "zero-skip window mask",
                 "frame select", "token FIFO"):
        assert parts[part]["LUT"] > 0, part
    assert "zero-skip priority encoder" not in resource_parts(layer, "dense")
    assert "frame select" not in resource_parts(layer, "qnn")
    # the QNN multiplies a = 3-bit levels: more LUTs per lane than the spike gates (its
    # multipliers are a part of their own, kept out of the calibration: no RTL of the twin)
    assert resource_parts(layer, "qnn")["qnn multipliers"]["LUT"] > parts["lanes"]["LUT"]


def test_design_resources_snn_and_qnn():
    design = tiny_design()
    snn, qnn = design_resources(design), design_resources(design, mode="qnn")
    dense = design_resources(design, mode="dense")
    for result in (snn, qnn, dense):
        for key in ("LUT", "FF", "BRAM18", "DSP"):
            assert result["total"][key] == sum(r[key] for r in result["layers"] +
                                               result["adapters"])
    assert [r["mode"] for r in snn["layers"]] == ["zero_skip", "snn", "zero_skip", "zero_skip"]
    assert {r["mode"] for r in dense["layers"]} == {"dense", "snn"}
    # QNN streams: a bits per channel instead of T frames
    d0 = design.layers[2]
    row = next(r for r in qnn["layers"] if r["layer"] == "d0")
    assert row["fifo_bits"] == d0.simd * d0.level_bits == 2
    assert next(r for r in snn["layers"] if r["layer"] == "d0")["fifo_bits"] == 3


def test_search_rejects_bad_arguments(tiny):
    design, lanes, _, _ = tiny
    with pytest.raises(PascalError):
        search_folding(design, lanes)
    with pytest.raises(PascalError):
        search_folding(design, lanes, target_fps=-1)
    with pytest.raises(PascalError):
        search_folding(design, lanes, target_fps=10, twin="ann")
    with pytest.raises(PascalError, match="lane activity"):
        search_folding(design, {"c0": np.zeros((2, 5, 5, 2))}, target_fps=10)


def fmnist_design():
    layers = [conv("conv0", 1, 16, 28, 28, 1, 4, 255),
              conv("conv1", 16, 32, 28, 28, 4, 4, 4, seed=1),
              pool("pool1", 32, 28, 28, 4, 4),
              conv("conv2", 32, 64, 14, 14, 4, 4, 4, seed=2),
              pool("pool2", 64, 14, 14, 4, 4),
              dense("fc", (64, 7, 7), 10, 4, 1, 4, classifier=True)]
    return Design(layers, 1, 28, 28, 8)


def test_fmnist_cnn_size_search_meets_the_target():
    design = fmnist_design()
    lanes = sample_lanes(design, n=1000, density=0.2)
    folding, rows = search_folding(design, lanes, target_fps=2000, clock_mhz=CLOCK)
    qnn = search_folding(design, lanes, target_fps=2000, clock_mhz=CLOCK, twin="qnn")
    assert all(row["met"] for row in rows) and all(row["met"] for row in qnn[1])
    for layer in design.layers:
        pe_dim, simd_dim = layer.fold_limits()
        assert pe_dim % folding[layer.name]["pe"] == 0
        assert simd_dim % folding[layer.name]["simd"] == 0


@pytest.mark.slow
@pytest.mark.parametrize("budget", [2500, 4000])
def test_the_whole_design_keeps_to_the_lut_budget(digits_model, tmp_path, budget):
    """``--lut-budget``: the design's own estimate (its layers, the adapters, the output FIFO,
    the FIFOs as sized) is what the search keeps within the budget; every layer reports met
    exactly when that estimate fits."""
    import json

    from pascal_fpga.cli import main as cli_main
    from pascal_fpga.hw.design import design_from_ir
    from pascal_fpga.hw.load import load_qonnx_ir

    build = tmp_path / "b"
    assert cli_main(["compile", str(digits_model), "--out", str(build), "--lut-budget",
                     str(budget), "--calibration-images", "16"]) == 0
    record = json.loads((build / "build.json").read_text())
    search = record["folding_search"]
    lut = design_resources(design_from_ir(load_qonnx_ir(build / record["ir"])))["total"]["LUT"]
    assert search["snn"]["lut"] == lut
    met = all(row["met"] for row in search["layers"])
    assert met == (lut <= budget), (lut, budget)
    if budget >= 4000:
        assert met   # the digits network fits 4,000 LUTs (about 1,000 LUTs of margin)
