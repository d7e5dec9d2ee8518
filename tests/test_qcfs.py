"""The Brevitas QCFS activation, weight, input and bias quantizers against their closed forms."""

import math

import brevitas.nn as qnn
import pytest
import torch

from pascal_fpga.model.network import QCFSNet, lambda_parameter, levels_of, qcfs_activation
from pascal_fpga.model.quant import PixelInputQuant, level_bit_width
from pascal_fpga.spec import parse_spec

LEVELS = [1, 2, 3, 4, 5, 8, 16]


def closed_form(z: torch.Tensor, lam: float, levels: int) -> torch.Tensor:
    """docs/design.md, section 2.1, in float64: q = clip(floor(z * L / lambda + 1/2), 0, L)."""
    return torch.clamp(torch.floor(z.double() * levels / lam + 0.5), 0, levels)


def _act(levels: int, lam: float) -> torch.nn.Module:
    act = qcfs_activation(levels)
    with torch.no_grad():
        lambda_parameter(act).fill_(lam)
    return act


@pytest.mark.parametrize("levels", LEVELS)
def test_qcfs_equals_closed_form_on_random_inputs(levels):
    lam = 1.7
    gen = torch.Generator().manual_seed(levels)
    z = torch.randn(20000, generator=gen) * 2
    out = _act(levels, lam)(z)
    ref = closed_form(z, lam, levels)
    assert torch.equal(out.int().double(), ref)
    assert out.scale.item() == pytest.approx(lam / levels, rel=1e-7)
    assert torch.allclose(out.value.double(), ref * (lam / levels), rtol=0, atol=1e-6)


@pytest.mark.parametrize("levels", LEVELS)
def test_qcfs_ties_round_half_up(levels):
    # lambda = L / 8 makes the step 1/8: every tie (k - 1/2) * step is exact in float32.
    lam = levels / 8
    step = 1 / 8
    k = torch.arange(-2, levels + 3, dtype=torch.float32)
    ties = (k - 0.5) * step
    out = _act(levels, lam)(ties).int()
    expected = torch.clamp(k, 0, levels)  # half-up: (k - 1/2) rounds to k, never to k - 1
    assert torch.equal(out.float(), expected)
    # just below a tie rounds down
    below = torch.nextafter(ties, torch.tensor(-math.inf))
    out_below = _act(levels, lam)(below).int()
    assert torch.equal(out_below.float(), torch.clamp(k - 1, 0, levels))


@pytest.mark.parametrize("levels", [1, 3, 8])
def test_qcfs_clips_to_zero_and_L(levels):
    act = _act(levels, 2.0)
    out = act(torch.tensor([-100.0, -1e-6, 0.0, 2.0, 2.5, 1e6])).int().tolist()
    assert out == [0, 0, 0, levels, levels, levels]


@pytest.mark.parametrize("levels", LEVELS)
def test_level_count_and_bit_width(levels):
    act = _act(levels, 1.0)
    assert levels_of(act) == levels
    out = act(torch.linspace(-1, 3, 401))
    assert int(out.bit_width) == level_bit_width(levels) >= 2
    assert 2 ** int(out.bit_width) - 1 >= levels
    assert set(out.int().unique().tolist()) == set(range(levels + 1))  # L + 1 values


@pytest.mark.parametrize("levels", [1, 4])
def test_lambda_receives_a_gradient(levels):
    act = _act(levels, 1.0)
    z = torch.linspace(-1.5, 2.0, 141, requires_grad=True)
    out = act(z).value
    out.sum().backward()
    grad = lambda_parameter(act).grad
    assert grad is not None and torch.isfinite(grad) and grad.item() != 0.0
    # above the clip the output is lambda itself: d out / d lambda = 1 per element
    act.zero_grad()
    act(torch.full((10,), 5.0)).value.sum().backward()
    assert lambda_parameter(act).grad.item() == pytest.approx(10.0)
    # straight-through where the rounded level lies in [0, L], zero where the clamp cuts it
    step = 1.0 / levels
    zd = z.detach()
    assert torch.all(z.grad[(zd > 0) & (zd < 1.0)] == 1)
    assert torch.all(z.grad[zd < -step / 2 - 1e-6] == 0)
    assert torch.all(z.grad[zd > 1.0 + step / 2 + 1e-6] == 0)


def test_pixel_input_is_the_integer_pixel():
    quant = qnn.QuantIdentity(act_quant=PixelInputQuant, bits=8, return_quant_tensor=True)
    pixels = torch.tensor([0.0, 1.0, 17.0, 254.0, 255.0])
    out = quant(pixels)
    assert out.scale.item() == 1.0
    assert torch.equal(out.value, pixels)
    assert int(out.bit_width) == 8 and not out.signed
    five_bit = qnn.QuantIdentity(act_quant=PixelInputQuant, bits=5, return_quant_tensor=True)
    assert five_bit(torch.tensor([16.0, 31.0, 40.0])).value.tolist() == [16.0, 31.0, 31.0]


SPEC = {
    "name": "t", "input": {"channels": 1, "height": 6, "width": 6, "bits": 8},
    "classes": 3, "weight_bits": 3, "levels": 3,
    "layers": [{"type": "conv", "channels": 4, "kernel": 3, "padding": 1},
               {"type": "avgpool", "kernel": 2},
               {"type": "linear", "features": 3}],
}


@pytest.mark.parametrize("weight_bits", [2, 3, 8])
def test_weights_are_signed_integers_of_weight_bits(weight_bits):
    spec = parse_spec({**SPEC, "weight_bits": weight_bits})
    net = QCFSNet(spec)
    conv = net.units[0].conv
    qw = conv.quant_weight()
    ints = qw.int()
    bound = 2 ** (weight_bits - 1) - 1  # narrow range: symmetric
    assert ints.abs().max() == bound  # the largest weight of each channel hits the top level
    assert torch.equal(ints.float(), torch.round(qw.value / qw.scale))
    assert qw.scale.shape[0] == 4  # one scale per output channel


def test_classifier_is_integer_accumulators_plus_an_integer_bias():
    torch.manual_seed(0)
    net = QCFSNet(parse_spec(SPEC)).eval()
    with torch.no_grad():
        net.units[2].linear.bias.uniform_(-0.3, 0.3)
    pixels = torch.randint(0, 256, (5, 1, 6, 6)).float()
    logits = net(pixels)
    # Recompute the classifier in integers: acc = W_int . q_prev (+ bias_int), on scale s_prev*s_w.
    x = net.units[0](net.input_quant(pixels))
    pooled = net.units[1](x)
    linear = net.units[2].linear
    qw = linear.quant_weight()
    flat = torch.flatten(pooled.value, 1)
    q_prev = flat / pooled.scale
    assert torch.allclose(q_prev, torch.round(q_prev), atol=1e-4)  # avg-pool sums are k^2-multiples
    acc_scale = pooled.scale * qw.scale.flatten()
    bias_int = linear.bias / acc_scale
    expected = (torch.round(q_prev).double() @ qw.int().double().T) * acc_scale.double()
    expected += torch.round(bias_int).double() * acc_scale.double()
    assert torch.allclose(logits.double(), expected, rtol=1e-5, atol=1e-5)
    # one weight scale for every class: the argmax of the integer accumulators is the class
    assert qw.scale.numel() == 1
    acc = torch.round(q_prev).double() @ qw.int().double().T + torch.round(bias_int).double()
    assert torch.equal(acc.argmax(1), logits.argmax(1))
