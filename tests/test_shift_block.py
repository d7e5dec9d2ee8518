"""Shift-add residual blocks (``residual: shift``, the default): the integer form against Brevitas
(ties only), the spiking block against the integer ANN (exactly), both shortcut kinds, negative and
zero BatchNorm gains, exponents e < 0 and e > 0 (and clamped), the thresholds against brute force,
the QONNX export's pattern and its execution, training and AL on a shift network."""

import copy
import json
import math
from fractions import Fraction

import numpy as np
import pytest
import torch

from pascal_fpga.datasets import load_dataset
from pascal_fpga.model.network import E_MAX, BasicBlock, QCFSNet, lambda_parameter
from pascal_fpga.snn.baseline import simulate_baseline
from pascal_fpga.qcfs import ALWAYS, NEVER, integer_thresholds, level_boundaries
from pascal_fpga.snn.convert import ShiftBlock, accumulate, convert, fire, pool_or_flatten
from pascal_fpga.snn.report import brevitas_levels, count_ties
from pascal_fpga.snn.simulate import simulate
from pascal_fpga.spec import parse_spec
from pascal_fpga.train.calibrate import calibrate
from pascal_fpga.train.trainer import images_to_tensor

TIE = 1e-4  # in steps: a value this close to a rounding boundary is decided by float32 rounding

SHIFT_SPEC = {
    "name": "shift", "input": {"channels": 1, "height": 8, "width": 8, "bits": 5},
    "classes": 10, "weight_bits": 4, "levels": 3,
    "layers": [
        {"type": "conv", "channels": 8, "kernel": 3, "padding": 1},
        {"type": "block", "channels": 8},                 # identity shortcut
        {"type": "block", "channels": 16, "stride": 2},   # projection conv1x1, stride 2
        {"type": "avgpool", "kernel": 4},
        {"type": "flatten"},
        {"type": "linear", "features": 10},
    ],
}

# A pixel-fed block first (projection from 1 channel), then an identity block after a max pool.
PIXEL_SPEC = {
    "name": "pixel-block", "input": {"channels": 1, "height": 8, "width": 8, "bits": 5},
    "classes": 10, "weight_bits": 3, "levels": 2,
    "layers": [
        {"type": "block", "channels": 6, "levels": 4},
        {"type": "maxpool", "kernel": 2},
        {"type": "block", "channels": 6},
        {"type": "flatten"},
        {"type": "linear", "features": 10},
    ],
}


def _calibrated(spec_dict, pixels, seed=0):
    torch.manual_seed(seed)
    net = QCFSNet(parse_spec(spec_dict))
    calibrate(net, [pixels[:32], pixels[32:64]])
    return net.eval()


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.fixture(scope="module")
def train_pixels(digits):
    return images_to_tensor(digits.train_images[:64])


@pytest.fixture(scope="module")
def test_pixels(digits):
    return images_to_tensor(digits.test_images[:120])


@pytest.fixture(scope="module")
def shift_net(train_pixels):
    return _calibrated(SHIFT_SPEC, train_pixels)


def _blocks(inet):
    return [layer for layer in inet.layers if isinstance(layer, ShiftBlock)]


def _units(net):
    return [unit for unit in net.units if isinstance(unit, BasicBlock)]


def _scale_gains(net, block_index: int, factors: dict[int, float]):
    """A copy whose block ``block_index`` has BN2's gamma of channel c times factors[c]."""
    net = copy.deepcopy(net)
    with torch.no_grad():
        bn2 = _units(net)[block_index].bn2
        for c, factor in factors.items():
            bn2.weight[c] *= factor
    return net.eval()


def _distance(exact: torch.Tensor) -> torch.Tensor:
    """|x - (nearest half-integer)|: how far a value in steps is from a rounding boundary."""
    return (exact - torch.floor(exact) - 0.5).abs()


def _z(layer, acc: torch.Tensor) -> torch.Tensor:
    view = (1, -1, 1, 1) if acc.dim() == 4 else (1, -1)
    return torch.from_numpy(layer.scale).view(view) * acc + \
        torch.from_numpy(layer.offset).view(view)


def _expect_ties(got, expected, exact, counts, name):
    assert got.shape == expected.shape, name
    diff = got != expected
    ties = _distance(exact)[diff] <= TIE
    counts["differing"] += int(diff.sum())
    counts["ties"] += int(ties.sum())
    assert bool(ties.all()), f"{name}: {int((~ties).sum())} differences away from a tie"


def _compare_with_brevitas(net, inet, pixels) -> dict:
    """Each shift block, fed with Brevitas' own input and act1 levels: act1 and act2 equal
    Brevitas' except at ties, and Brevitas' act2 input equals z = |a2| 2^min(0,e) n + b2."""
    records: dict = {}
    hooks = []
    for unit in _units(net):
        rec = records.setdefault(unit, {})
        hooks += [
            unit.register_forward_pre_hook(
                lambda _m, a, rec=rec: rec.__setitem__("in", a[0].int().long())),
            unit.act1.register_forward_hook(
                lambda _m, _i, o, rec=rec: rec.__setitem__("act1", o.int().long())),
            unit.act2.register_forward_hook(
                lambda _m, i, o, rec=rec: rec.update(act2=o.int().long(), pre=i[0].double())),
        ]
    try:
        with torch.no_grad():
            net(pixels)
    finally:
        for hook in hooks:
            hook.remove()
    counts = {"differing": 0, "ties": 0}
    for block, unit in zip(_blocks(inet), _units(net)):
        rec = records[unit]
        x = rec["in"].double()
        acc1 = accumulate(block.conv1, x)
        _expect_ties(fire(block.conv1, acc1).long(), rec["act1"],
                     _z(block.conv1, acc1) / block.conv1.step, counts, "act1")
        n = block.total(accumulate(block.conv2, rec["act1"].double()),
                        block.shortcut_accumulate(x))
        z = _z(block, n)
        assert torch.allclose(rec["pre"], z, rtol=1e-5, atol=1e-5 * float(z.abs().max())), \
            "Brevitas' act2 input is not main + |a2| 2^e v"
        _expect_ties(block.out_level(n).long(), rec["act2"], z / block.step, counts, "act2")
    return counts


def _tie_free_samples(inet, pixels) -> torch.Tensor:
    clean = torch.ones(len(pixels), dtype=torch.bool)

    def mark(exact):
        clean.__iand__(~(_distance(exact) <= TIE).flatten(1).any(1))

    x = pixels.double()
    for layer in inet.layers:
        if isinstance(layer, ShiftBlock):
            acc1 = accumulate(layer.conv1, x)
            mark(_z(layer.conv1, acc1) / layer.conv1.step)
            n = layer.total(accumulate(layer.conv2, fire(layer.conv1, acc1)),
                            layer.shortcut_accumulate(x))
            mark(_z(layer, n) / layer.step)
            x = layer.out_level(n)
        elif layer.weighted and not layer.classifier:
            acc = accumulate(layer, x)
            mark(_z(layer, acc) / layer.step)
            x = fire(layer, acc)
        elif layer.classifier:
            break
        else:
            x = pool_or_flatten(layer, x)
    return clean


def _check_exact(net, inet, pixels, expected_levels: int) -> dict:
    """Brevitas vs the integer network (ties only, tie-free samples exactly), and the integer SNN
    vs the integer network (exactly)."""
    counts = _compare_with_brevitas(net, inet, pixels)
    logits, bre_levels = brevitas_levels(net, pixels)
    accs: list = []
    acc, levels = inet.run(pixels, accumulators=accs)
    assert len(bre_levels) == len(levels) == len(accs) == len(inet.hidden()) == expected_levels
    clean = _tie_free_samples(inet, pixels)
    differs = torch.zeros(len(pixels), dtype=torch.bool)
    for a, b in zip(bre_levels, levels):
        differs |= (a != b).flatten(1).any(1)
    assert clean.sum() > len(pixels) // 2 and not differs[clean].any()
    out_scale = inet.layers[-1].out_scale
    assert torch.allclose((acc.double() * out_scale)[clean], logits.double()[clean], atol=1e-4)
    # the report's tie count works on the block entries (z = scale * n + offset)
    for layer, z_acc, a, b in zip(inet.hidden(), accs, bre_levels, levels):
        assert z_acc.shape == a.shape
        assert count_ties(layer, z_acc, a != b) <= int((a != b).sum())
    result = simulate(inet, pixels, "integer")
    assert torch.equal(result.acc, acc)
    for a, b in zip(result.levels, levels):
        assert torch.equal(a, b)
    for block, n in zip(_blocks(inet), [a for layer, a in zip(inet.hidden(), accs)
                                         if isinstance(layer, ShiftBlock)]):
        assert float(n.abs().max()) <= block.acc_bound
    return counts


# --- the integer form -----------------------------------------------------------------------

@pytest.mark.slow
def test_shift_blocks_integer_form_matches_brevitas_and_snn(shift_net, test_pixels):
    inet = convert(shift_net)
    blocks = _blocks(inet)
    assert [b.identity for b in blocks] == [True, False]
    assert all(b.thresholds.shape == (b.out_shape[0], 3) for b in blocks)  # L per channel
    assert all(not hasattr(b, "identity_table") for b in blocks)
    for b in blocks:
        e = b.exponent
        assert np.array_equal(b.shift_main, np.maximum(0, -e))
        assert np.array_equal(b.shift_short, np.maximum(0, e))
        assert b.conv2.thresholds is None and np.all(b.conv2.scale >= 0)
    counts = _check_exact(shift_net, inet, test_pixels, 5)
    print(f"\nshift blocks vs Brevitas: {counts}")
    result = simulate(inet, test_pixels, "integer")
    kinds = [(s.index, s.kind) for s in result.stats]
    assert kinds == [(0, "conv"), (1, "block.conv1"), (1, "block"), (2, "block.conv1"),
                     (2, "block"), (5, "linear")]
    _, levels = inet.run(test_pixels)

    def conv3x3_acs(act1, out_channels):
        fan = torch.ones((1, 1, 3, 3), dtype=torch.float64)
        covered = torch.nn.functional.conv2d(act1.double().sum(1, keepdim=True), fan, padding=1)
        return int(covered.sum()) * out_channels

    # ACs: conv2's, plus one per input spike (identity) or per spike and output channel (1x1)
    assert result.stats[2].synops == conv3x3_acs(levels[1], 8) + int(levels[0].sum())
    assert result.stats[4].synops == conv3x3_acs(levels[3], 16) + \
        int(levels[2][:, :, ::2, ::2].sum()) * 16


def test_shift_block_snapping_is_the_definition(shift_net):
    """e = clamp(round_half_up(log2(g / |a2|)), -E_MAX, E_MAX) on BN2's running statistics, and
    the shortcut's gain |a2| 2^e; the projection's weights are not negated."""
    inet = convert(shift_net)
    for block, unit in zip(_blocks(inet), _units(shift_net)):
        bn = unit.bn2
        with torch.no_grad():
            s_in = block.in_scale
            s1 = float(unit.act1.act_quant.scale())
            sw2 = unit.conv2.quant_weight().scale.double().flatten().numpy()
            a2 = (bn.weight.double() / torch.sqrt(bn.running_var.double() + bn.eps)).numpy() \
                * s1 * sw2
            g = np.full(len(a2), s_in)
            if unit.projection:
                g = g * unit.shortcut.quant_weight().scale.double().flatten().numpy()
                raw = unit.shortcut.quant_weight().int().long().numpy()
                assert np.array_equal(block.shortcut.weight, raw)
        e = np.clip(np.floor(np.log2(g / np.abs(a2)) + 0.5), -E_MAX, E_MAX)
        assert np.array_equal(block.exponent, e.astype(np.int64))
        np.testing.assert_allclose(block.short_gain, np.abs(a2) * 2.0 ** e, rtol=1e-6)
        np.testing.assert_allclose(unit.export_factor.flatten().double().numpy(),
                                   np.abs(a2) * 2.0 ** e / g, rtol=1e-5)


def test_negative_and_zero_gains(shift_net, test_pixels):
    net = copy.deepcopy(shift_net)
    with torch.no_grad():
        units = _units(net)
        units[0].bn1.weight[0] *= -1
        units[0].bn2.weight[:3] *= -1
        units[1].bn2.weight[::2] *= -1
        units[1].bn2.weight[1] = 0.0   # a2 = 0: a constant channel, the shortcut times 0
    net.eval()
    inet = convert(net)
    blocks = _blocks(inet)
    raw = _units(net)[0].conv2.quant_weight().int().long().numpy()
    assert np.array_equal(blocks[0].conv2.weight[:3], -raw[:3])  # negated rows
    assert np.array_equal(blocks[0].conv2.weight[3:], raw[3:])
    raw_sc = _units(net)[1].shortcut.quant_weight().int().long().numpy()
    assert np.array_equal(blocks[1].shortcut.weight, raw_sc)     # never negated
    assert np.all(np.isin(blocks[1].thresholds[1], [ALWAYS, NEVER]))
    assert blocks[1].short_gain[1] == 0.0 and blocks[1].exponent[1] == 0
    assert float(_units(net)[1].export_factor.flatten()[1]) == 0.0
    counts = _check_exact(net, inet, test_pixels[:60], 5)
    print(f"\nnegative and zero gains vs Brevitas: {counts}")


def test_exponents_of_both_signs_and_clamped(shift_net, test_pixels):
    # BN2's gamma times 2^k moves e by about -k: channels with e < 0, e > 0, and both clamps
    net = _scale_gains(shift_net, 0, {0: 2.0 ** 8, 1: 2.0 ** 7, 2: 2.0 ** 30, 3: 2.0 ** -30})
    net = _scale_gains(net, 1, {c: 2.0 ** 6 for c in range(0, 16, 2)})
    inet = convert(net)
    blocks = _blocks(inet)
    e0, e1 = blocks[0].exponent, blocks[1].exponent
    assert (e0 < 0).any() and (e0 > 0).any() and (e1 < 0).any() and (e1 > 0).any()
    assert e0[2] == -E_MAX and e0[3] == E_MAX
    assert blocks[0].shift_main[2] == E_MAX and blocks[0].shift_short[3] == E_MAX
    counts = _check_exact(net, inet, test_pixels[:60], 5)
    print(f"\nexponents {e0.tolist()} / {e1.tolist()} vs Brevitas: {counts}")


@pytest.mark.slow
@pytest.mark.parametrize("pool", ["maxpool", "avgpool"])
def test_pixel_fed_block_and_block_after_a_pool(pool, train_pixels, test_pixels):
    """A pixel-fed projection block, then an identity block whose input is a max pool or a sum
    pool (its integer v the sum of k^2 levels, its gain s_in / k^2)."""
    spec = copy.deepcopy(PIXEL_SPEC)
    spec["layers"][1]["type"] = pool
    net = _calibrated(spec, train_pixels)
    inet = convert(net)
    blocks = _blocks(inet)
    assert blocks[0].first and not blocks[0].identity and blocks[1].identity
    counts = _check_exact(net, inet, test_pixels[:60], 4)
    print(f"\npixel-fed block vs Brevitas: {counts}")
    result = simulate(inet, test_pixels[:60], "integer")
    assert result.stats[0].macs > 0 and result.stats[1].macs > 0  # conv1, projection: MACs
    assert result.stats[0].synops == 0


@pytest.mark.slow
def test_float_mode_and_baseline_run_shift_blocks(shift_net, test_pixels):
    inet = convert(shift_net)
    pixels = test_pixels[:60]
    acc, levels = inet.run(pixels)
    result = simulate(inet, pixels, "float")
    assert result.acc.shape == acc.shape and len(result.levels) == len(levels)
    agree = [float((a == b).double().mean()) for a, b in zip(result.levels, levels)]
    print(f"\nfloat-mode agreement per hidden level: {agree}")
    assert min(agree) > 0.95
    preds = simulate_baseline(inet, pixels, (1, 8, 64))
    assert sorted(preds) == [1, 8, 64] and all(p.shape == (60,) for p in preds.values())
    # the rate-coded baseline of this untrained network agrees with the ANN on about half of the
    # images at T = 64 (as the requant block's does), far above chance (0.1)
    assert float((preds[64] == acc.argmax(1)).double().mean()) > 0.4


# --- thresholds against brute force ---------------------------------------------------------

@pytest.mark.parametrize("seed", range(6))
def test_thresholds_brute_force_small_random_blocks(seed, train_pixels):
    """For small random blocks (random BN2 statistics and gains of both signs, random act2
    lambda), act2's level #{k : n >= T_k} equals the QCFS level of z = |a2| 2^min(0,e) n + b2,
    computed exactly (rationals), for every n in the accumulator range."""
    rng = np.random.default_rng(seed)
    spec = {"name": "tiny", "input": {"channels": 1, "height": 8, "width": 8, "bits": 5},
            "classes": 10, "weight_bits": 2, "levels": int(rng.integers(1, 6)),
            "layers": [{"type": "conv", "channels": 3, "kernel": 3, "padding": 1, "levels": 2},
                       {"type": "block", "channels": 3 if seed % 2 else 4},
                       {"type": "flatten"}, {"type": "linear", "features": 10}]}
    net = _calibrated(spec, train_pixels, seed)
    unit = _units(net)[0]
    with torch.no_grad():
        channels = unit.bn2.weight.shape[0]
        unit.bn2.weight.copy_(torch.from_numpy(rng.normal(0, 2, channels)).float()
                              * torch.from_numpy(2.0 ** rng.integers(-6, 7, channels)).float())
        unit.bn2.bias.copy_(torch.from_numpy(rng.normal(0, 1, channels)).float())
        unit.bn2.running_mean.copy_(torch.from_numpy(rng.normal(0, 1, channels)).float())
        unit.bn2.running_var.copy_(torch.from_numpy(rng.uniform(0.1, 4, channels)).float())
        lambda_parameter(unit.act2).fill_(float(rng.uniform(0.5, 3)))
    net(train_pixels[:2])  # refresh the snapping factor
    block = _blocks(convert(net))[0]
    levels, step = block.levels, Fraction(block.step)
    n = np.arange(-block.acc_bound, block.acc_bound + 1, dtype=np.float64)
    every = torch.from_numpy(n).view(1, 1, -1, 1).expand(1, channels, -1, 1)
    all_levels = block.out_level(every)[0, :, :, 0].long().numpy()
    for c in range(channels):
        got = all_levels[c]
        a, b = Fraction(block.scale[c]), Fraction(block.offset[c])
        exact = np.array([min(max(math.floor((a * int(v) + b) / step + Fraction(1, 2)), 0),
                              levels) for v in n])
        assert np.array_equal(got, exact), f"channel {c}"
        if block.scale[c] > 0:
            t = block.thresholds[c]
            ref, _ = integer_thresholds(block.scale[c:c + 1], block.offset[c:c + 1],
                                        level_boundaries(block.step, levels),
                                        np.zeros(1, np.int64))
            assert np.array_equal(t, ref[0]) and np.all(np.diff(t) >= 0)


# --- export ---------------------------------------------------------------------------------

def _check_pattern(model, inet):
    from pascal_fpga.ir.export import node_attr, shift_block_patterns

    assert not any(n.op_type == "Constant" for n in model.graph.node)
    rows = shift_block_patterns(model)
    blocks = _blocks(inet)
    assert len(rows) == len(blocks)
    nodes = {n.name: n for n in model.graph.node}
    for row, block in zip(rows, blocks):
        add, mul, bn2 = nodes[row["add"]], nodes[row["mul"]], nodes[row["bn2"]]
        assert add.op_type == "Add" and list(add.input) == [bn2.output[0], mul.output[0]]
        assert nodes[row["act2"]].op_type == "Quant" and \
            nodes[row["act2"]].input[0] == add.output[0]
        conv2 = nodes[row["conv2"]]
        assert conv2.op_type == "Conv" and len(conv2.input) == 2 and bn2.input[0] == \
            conv2.output[0] and conv2.input[0] == nodes[row["act1"]].output[0]
        assert model.find_producer(conv2.input[1]).op_type == "Quant"  # the weight quantizer
        factor = model.get_initializer(mul.input[1])
        assert mul.input[1] in {i.name for i in model.graph.initializer}
        assert factor.shape == (1, block.out_shape[0], 1, 1) and factor.dtype == np.float32
        gain = np.full(block.out_shape[0], block.in_scale) if block.identity else \
            block.shortcut.scale
        np.testing.assert_allclose(factor.flatten(), block.short_gain / gain, rtol=1e-5)
        if block.identity:
            assert row["conv_sc"] is None and mul.input[0] == row["input"]
        else:
            conv_sc = nodes[row["conv_sc"]]
            assert mul.input[0] == conv_sc.output[0] and conv_sc.input[0] == row["input"]
            assert len(conv_sc.input) == 2
            assert model.find_producer(conv_sc.input[1]).op_type == "Quant"
            assert list(node_attr(conv_sc, "kernel_shape")) == [1, 1]
            assert list(node_attr(conv_sc, "strides")) == [block.conv1.stride] * 2
        producer = model.find_producer(row["input"])
        assert producer.op_type in ("Quant", "MaxPool", "AveragePool")
    return rows


@pytest.mark.parametrize("which", ["shift", "pixel"])
def test_export_pattern_and_execution_agree_with_brevitas(which, shift_net, train_pixels,
                                                          test_pixels, tmp_path):
    from qonnx.core.modelwrapper import ModelWrapper

    from pascal_fpga.ir.export import export_network
    from pascal_fpga.flows.verify import qonnx_levels
    from pascal_fpga.ir.execute import run_model

    net = shift_net if which == "shift" else _calibrated(PIXEL_SPEC, train_pixels)
    net = _scale_gains(net, 0, {0: -1.0, 1: 2.0 ** 8})  # a negative gain, an e < 0
    info = export_network(net, tmp_path / "m.onnx")
    model = ModelWrapper(str(tmp_path / "m.onnx"))
    inet = convert(net)
    rows = _check_pattern(model, inet)
    assert [r["conv_sc"] is None for r in info["shift_blocks"]] == \
        [r["conv_sc"] is None for r in rows]
    pixels = test_pixels[:40]
    ctx = run_model(model, pixels.numpy())
    q_levels = qonnx_levels(model, ctx)
    logits, bre_levels = brevitas_levels(net, pixels)
    assert len(q_levels) == len(bre_levels) == len(inet.hidden())
    differing = ties = 0
    for bre, (_, q, tie) in zip(bre_levels, q_levels):
        diff = bre.numpy() != q
        differing += int(diff.sum())
        ties += int((diff & tie).sum())
        assert not (diff & ~tie).any(), "a QONNX level differs from Brevitas away from a tie"
    print(f"\nQONNX vs Brevitas ({which}): {differing} differing levels, {ties} at ties")
    q_logits = ctx[model.graph.output[0].name]
    assert np.allclose(q_logits, logits.numpy(), atol=1e-3)


# --- training, AL, the report ---------------------------------------------------------------

@pytest.mark.slow
def test_train_adapt_and_report_a_shift_network(tmp_path):
    from pascal_fpga.snn.adapt import adapt_run
    from pascal_fpga.snn.report import snn_report
    from pascal_fpga.train import TrainConfig, train

    spec = tmp_path / "shift.yaml"
    raw = copy.deepcopy(SHIFT_SPEC)
    spec.write_text(json.dumps(raw))  # YAML reads JSON
    train(TrainConfig(spec=str(spec), dataset="digits", out=str(tmp_path / "run"), epochs=1,
                      batch_size=128, seed=0), progress=False)
    report = adapt_run(tmp_path / "run", tmp_path / "al", epochs=1, budget=2.0,
                       calibration_images=200)
    assert [layer["type"] for layer in report["layers"]] == ["conv", "block", "block"]
    assert report["mean_levels_after"] <= 2.0
    snn = snn_report(tmp_path / "al", samples=60, timesteps=(1, 8))
    assert snn["mismatched_samples"] == 0
    bre = snn["brevitas_vs_integer"]
    assert bre["differing_levels"] == bre["ties"]
    assert [layer["kind"] for layer in snn["layers"]][1:3] == ["block.conv1", "block"]
