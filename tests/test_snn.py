"""The PASCAL neuron, the integer conversion and the spiking simulation, against closed forms."""

import json
import math
import shutil

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pascal_fpga.cli import main as cli_main
from pascal_fpga.datasets import load_dataset
from pascal_fpga.model.network import QCFSNet
from pascal_fpga.snn.adapt import al_metric, choose_levels
from pascal_fpga.snn.baseline import simulate_baseline
from pascal_fpga.snn.convert import convert
from pascal_fpga.snn.report import brevitas_levels
from pascal_fpga.snn.simulate import SpikeCounter, emit, float_neuron, integer_neuron, simulate
from pascal_fpga.spec import parse_spec
from pascal_fpga.train.calibrate import calibrate
from pascal_fpga.train.trainer import images_to_tensor

EXTREME = 2 ** 30


def _level_of(thresholds: torch.Tensor):
    return lambda acc: (acc.unsqueeze(-1) >= thresholds).sum(-1)


@st.composite
def neuron_case(draw):
    t_in = draw(st.integers(1, 16))
    levels = draw(st.integers(1, 16))
    n = draw(st.integers(1, 6))
    values = st.one_of(st.integers(-50, 50), st.sampled_from([-EXTREME, EXTREME, 0, 1, -1]))
    inputs = [[draw(values) for _ in range(n)] for _ in range(t_in)]
    thresholds = [sorted(draw(st.lists(st.integers(-200, 200), min_size=levels, max_size=levels)))
                  for _ in range(n)]
    return t_in, levels, inputs, thresholds


@settings(max_examples=300, deadline=None)
@given(neuron_case())
def test_integer_neuron_equals_the_closed_form(case):
    t_in, levels, inputs, thresholds = case
    frames = [torch.tensor(row, dtype=torch.float64) for row in inputs]
    table = torch.tensor(thresholds, dtype=torch.float64)
    counter = SpikeCounter()
    count = integer_neuron(iter(frames), _level_of(table), t_in, levels, counter)
    total = torch.stack(frames).sum(0)
    expected = (total.unsqueeze(-1) >= table).sum(-1)  # q = #{k : acc >= T_k}
    assert torch.equal(count, expected)
    # every spike is accounted for: the count is the positive minus the inhibitory spikes
    assert counter.positive - counter.inhibitory == int(count.sum())


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 16), st.integers(1, 16),
       st.lists(st.lists(st.integers(-64, 64), min_size=3, max_size=3), min_size=16, max_size=16),
       st.sampled_from([0.25, 0.5, 1.0, 2.0]))
def test_float_neuron_equals_the_closed_form(t_in, levels, rows, theta):
    # Inputs on a 1/8 grid and a power-of-two theta: float32 is exact, ties included.
    frames = [torch.tensor(r, dtype=torch.float32) / 8 for r in rows[:t_in]]
    count = float_neuron(iter(frames), theta, 0.0, t_in, levels)
    total = torch.stack(frames).double().sum(0)
    expected = torch.clamp(torch.floor(total / theta + 0.5), 0, levels).long()
    assert torch.equal(count, expected)


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 16), st.lists(st.integers(0, 16), min_size=1, max_size=12))
def test_emission_is_thermometer_ordered(levels, counts):
    count = torch.tensor(counts).clamp(0, levels)
    frames = emit(count, levels)
    assert len(frames) == levels
    train_ = torch.stack(frames)
    assert torch.equal(train_.sum(0).long(), count)
    # thermometer: once a neuron stops spiking it stays silent
    assert torch.all(train_[1:] <= train_[:-1])


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 16), st.integers(1, 3), st.integers(0, 2 ** 31 - 1))
def test_max_pool_as_or_equals_max_of_levels(levels, kernel, seed):
    gen = torch.Generator().manual_seed(seed)
    count = torch.randint(0, levels + 1, (2, 3, 6, 6), generator=gen)
    frames = emit(count, levels)
    pooled = [torch.nn.functional.max_pool2d(f, kernel) for f in frames]  # a per-timestep OR
    assert all(set(p.unique().tolist()) <= {0.0, 1.0} for p in pooled)
    pooled_count = torch.stack(pooled).sum(0).long()
    assert torch.equal(pooled_count, torch.nn.functional.max_pool2d(count.double(), kernel).long())
    assert torch.all(torch.stack(pooled)[1:] <= torch.stack(pooled)[:-1])  # still thermometer


ODD_SPEC = {
    "name": "odd", "input": {"channels": 1, "height": 8, "width": 8, "bits": 5},
    "classes": 10, "weight_bits": 3, "levels": 3,
    "layers": [
        {"type": "conv", "channels": 6, "kernel": 5, "stride": 2, "padding": 2, "levels": 1},
        {"type": "conv", "channels": 8, "kernel": 3, "padding": 1, "batchnorm": False},
        {"type": "avgpool", "kernel": 2},
        {"type": "linear", "features": 12, "weight_bits": 8},
        {"type": "linear", "features": 10},
    ],
}


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def _odd_network(digits):
    torch.manual_seed(0)
    net = QCFSNet(parse_spec(ODD_SPEC))
    pixels = images_to_tensor(digits.train_images[:256])
    calibrate(net, [pixels[:128], pixels[128:]])
    with torch.no_grad():  # negative and zero BatchNorm gains: negated rows, constant channels
        bn = net.units[0].bn
        bn.weight[0] = -abs(bn.weight[0])
        bn.weight[1] = 0.0
        net.units[3].bn.weight[:3] *= -1
    return net.eval()


def test_integer_network_matches_brevitas_up_to_ties(digits):
    net = _odd_network(digits)
    inet = convert(net)
    assert [layer.levels for layer in inet.hidden()] == [1, 3, 3]
    pixels = images_to_tensor(digits.test_images)
    logits, bre_levels = brevitas_levels(net, pixels)
    accs = []
    acc, levels = inet.run(pixels, accumulators=accs)
    top2 = acc.topk(2, dim=1).values
    unique = top2[:, 0] > top2[:, 1]  # equal integer maxima are argmax ties in float too
    assert unique.sum() > len(acc) // 2
    assert torch.equal(acc.argmax(1)[unique], logits.argmax(1)[unique])
    for layer, a, b, z_acc in zip(inet.hidden(), bre_levels, levels, accs):
        assert a.shape == b.shape
        diff = a != b
        if diff.any():  # only at a rounding boundary
            view = (1, -1, 1, 1) if z_acc.dim() == 4 else (1, -1)
            z = torch.from_numpy(layer.scale).view(view) * z_acc + \
                torch.from_numpy(layer.offset).view(view)
            frac = (z / layer.step)[diff] % 1.0
            assert torch.all((frac - 0.5).abs() < 1e-4)
    # classifier logits = (integer accumulators + integer bias) * one scale
    classifier = inet.layers[-1]
    assert torch.allclose(acc.double() * classifier.out_scale, logits.double(), atol=1e-4)


def test_integer_snn_equals_the_integer_ann_exactly(digits):
    net = _odd_network(digits)
    inet = convert(net)
    pixels = images_to_tensor(digits.test_images)
    acc, levels = inet.run(pixels)
    result = simulate(inet, pixels, "integer")
    assert torch.equal(result.acc, acc)
    for a, b in zip(result.levels, levels):
        assert torch.equal(a, b)
    windows = [s.window for s in result.stats]
    assert windows == [1 + max(1, 1) - 1, 1 + max(1, 3) - 1, 3 + 3 - 1, 3]
    first = result.stats[0]
    assert first.macs == first.dense_macs and first.synops == 0  # direct coding


def test_float_snn_and_baseline_run(digits):
    net = _odd_network(digits)
    inet = convert(net)
    pixels = images_to_tensor(digits.test_images[:60])
    acc, levels = inet.run(pixels)
    result = simulate(inet, pixels, "float")
    assert result.acc.shape == acc.shape
    agree = sum(int((a == b).sum()) for a, b in zip(result.levels, levels))
    total = sum(a.numel() for a in levels)
    assert agree / total > 0.99  # the paper's float neuron differs only near thresholds
    preds = simulate_baseline(inet, pixels, (1, 4, 64))
    assert sorted(preds) == [1, 4, 64] and all(p.shape == (60,) for p in preds.values())


def test_al_metric_closed_form():
    from scipy.stats import kurtosis, skew

    concentrated = np.concatenate([np.zeros(900), np.linspace(0.1, 1.0, 100)])
    m = al_metric(concentrated)
    counts = np.histogram(concentrated, bins=5)[0].astype(float)
    assert m["counts"] == counts.astype(int).tolist()
    assert m["A"] == 1.0  # one bin above the mean count
    g, k = skew(counts), kurtosis(counts)
    assert m["b"] == pytest.approx((g ** 2 + 1) * (k + 3 * 25 / (3 * 2)))
    assert m["metric"] == pytest.approx(m["A"] * m["b"])
    even = al_metric(np.repeat(np.arange(5), 40).astype(float))
    assert even["A"] == 0.0 and even["metric"] == 0.0


def test_choose_levels_keeps_the_budget_and_favours_spread_layers():
    levels = choose_levels([5.0, 0.5, 2.0, 10.0], budget=3.0)
    assert sum(levels) / len(levels) <= 3.0
    assert all(level in (1, 2, 4, 8) for level in levels)
    assert levels[1] >= levels[2] >= levels[0] >= levels[3]
    assert choose_levels([1.0, 1.0], budget=8.0) == [8, 8]
    assert choose_levels([1.0, 1.0], budget=1.0) == [1, 1]


# digits_run (models/digits-cnn.yaml trained on digits) is conftest.py's, shared with
# test_compiler.py and test_hls.py: read-only, a test that changes it copies it


def test_cli_snn_json(digits_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(digits_run, run)  # snn writes its report into the run
    assert cli_main(["snn", str(run), "--images", "40", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    for key in ("samples", "ann_accuracy", "snn_accuracy", "mismatched_samples", "baseline"):
        assert key in report
    assert report["samples"] == 40 and report["mismatched_samples"] == 0
    assert report["snn_accuracy"] == report["integer_ann_accuracy"]
    assert sorted(map(int, report["baseline"])) == [1, 2, 4, 8, 16, 32, 64]
    assert report["latency_timesteps"] == 8 + (8 + 8 - 1) + (4 + 4 - 1) + 2
    folder = run / "snn"
    assert {"report.json", "accuracy_vs_timesteps.png", "spikes_per_layer.png"} <= \
        {p.name for p in folder.iterdir()}


@pytest.mark.slow
def test_cli_adapt(digits_run, tmp_path, capsys):
    out = tmp_path / "adapted"
    assert cli_main(["adapt", str(digits_run), "--out", str(out), "--epochs", "1",
                     "--budget", "2.5", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    after = [layer["levels_after"] for layer in report["layers"]]
    assert all(level in (1, 2, 4, 8) for level in after)
    assert sum(after) / len(after) <= 2.5 and report["mean_levels_after"] <= 2.5
    assert (out / "adapt.json").exists() and (out / "checkpoint.pt").exists()
    from pascal_fpga.spec import load_spec
    assert [layer.levels for layer in load_spec(out / "spec.yaml").qcfs_layers()] == after
    assert math.isfinite(report["accuracy_after"])
