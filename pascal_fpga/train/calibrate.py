"""Calibration: BatchNorm statistics and initial lambdas from a few batches of training images.

Used before training (a good starting lambda per layer) and alone for ``--epochs 0`` (an untrained
but well-scaled network, a fast way to try the rest of the pipeline).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..model.network import QCFSNet, lambda_parameter

# Lambda of a QCFS layer = this percentile of its positive pre-activations.
LAMBDA_PERCENTILE = 99.9
LAMBDA_NUDGE = 1.0 + 1.0 / 1021


def _percentile(values: Tensor, q: float) -> float:
    values = values.flatten().double()
    if values.numel() == 0:
        return 1.0
    # torch.quantile is limited to 16M elements; a strided sample keeps it deterministic.
    if values.numel() > 1_000_000:
        values = values[:: values.numel() // 1_000_000 + 1]
    return float(torch.quantile(values, q / 100.0))


@torch.no_grad()
def calibrate(net: QCFSNet, batches: list[Tensor]) -> list[float]:
    """Set BatchNorm running statistics and every QCFS / add-quantizer lambda, layer by layer.

    Quantizers are calibrated in forward order, each on the inputs it sees with the earlier ones
    already set; BatchNorm statistics are the plain average over the batches of the last pass.
    Returns the lambdas set, in order.
    """
    was_training = net.training
    bns = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [bn.momentum for bn in bns]
    for bn in bns:
        bn.momentum = None  # cumulative average over the calibration batches
    net.train()
    quantizers = [(q, False) for q in net.qcfs_activations()]
    quantizers += [(q, True) for q in net.add_quantizers()]
    # Forward order: sort by the order modules are called.
    order: list[nn.Module] = []
    hooks = [q.register_forward_pre_hook(lambda m, _a: order.append(m) if m not in order else None)
             for q, _ in quantizers]
    _run(net, batches, bns)
    for hook in hooks:
        hook.remove()
    signed = {id(q): s for q, s in quantizers}
    lambdas = []
    for quantizer in order:
        seen: list[Tensor] = []
        hook = quantizer.register_forward_pre_hook(
            lambda _m, args: seen.append(_value(args[0]).detach()))
        _run(net, batches, bns)
        hook.remove()
        inputs = torch.cat([s.flatten() for s in seen])
        if signed[id(quantizer)]:
            lam = _percentile(inputs.abs(), LAMBDA_PERCENTILE)
        else:
            lam = _percentile(inputs[inputs > 0], LAMBDA_PERCENTILE)
        # Off any grid the inputs may sit on (a residual sum is a multiple of s_add): a lambda on
        # it would put rounding boundaries exactly on reachable values, ties that float32 decides.
        lam = max(lam, 1e-3) * LAMBDA_NUDGE
        lambda_parameter(quantizer).fill_(lam)
        lambdas.append(lam)
    _run(net, batches, bns)  # final BatchNorm statistics, with every lambda set
    for bn, momentum in zip(bns, momenta):
        bn.momentum = momentum
    net.train(was_training)
    return lambdas


def _value(x):
    return x if isinstance(x, Tensor) else x.value


def _run(net: QCFSNet, batches: list[Tensor], bns: list[nn.Module]) -> None:
    for bn in bns:
        bn.reset_running_stats()
    for batch in batches:
        net(batch)
