"""BatchNorm over the whole global batch for several CPU processes (gloo).

torch's ``nn.SyncBatchNorm`` runs on GPUs only. Without it, each CPU process would normalise its
own share of a batch: a different network from the one process trains. ``GlobalBatchNorm`` sums
each channel's count, sum and sum of squares over all processes (one all-reduce, differentiable,
in float64) and normalises with those, so 1 process and W processes compute the same function of
the same batch; only the rounding of float sums differs. The state (weight, bias, running
statistics) keeps BatchNorm's names, so a checkpoint loads into the plain network.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class GlobalBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm1d/2d whose training statistics span every process of the default group."""

    def _check_input_dim(self, x: Tensor) -> None:
        if x.dim() not in (2, 3, 4):
            raise ValueError(f"expected a 2D, 3D or 4D input, got {x.dim()}D")

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or not torch.distributed.is_initialized():
            return super().forward(x)
        # deferred: only under torchrun, and not every torch build has torch.distributed
        from torch.distributed.nn.functional import all_reduce

        channels = x.shape[1]
        dims = [0] + list(range(2, x.dim()))
        wide = x.double()
        local = torch.cat([wide.sum(dims), (wide * wide).sum(dims),
                           wide.new_full((1,), x.numel() // channels)])
        total = all_reduce(local)
        count = total[-1]
        mean = total[:channels] / count
        var = (total[channels:2 * channels] / count - mean * mean).clamp(min=0)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked += 1
                momentum = (1.0 / float(self.num_batches_tracked) if self.momentum is None
                            else self.momentum)
                unbiased = var * (count / (count - 1).clamp(min=1))
                self.running_mean.mul_(1 - momentum).add_(momentum * mean.to(x.dtype))
                self.running_var.mul_(1 - momentum).add_(momentum * unbiased.to(x.dtype))
        shape = [1, channels] + [1] * (x.dim() - 2)
        y = (wide - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        y = y.to(x.dtype)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y


def convert_global_batchnorm(module: nn.Module) -> nn.Module:
    """Replace every BatchNorm1d/2d below ``module`` by a GlobalBatchNorm sharing its parameters
    and buffers (in place; the module itself is returned)."""
    for name, child in module.named_children():
        if isinstance(child, (nn.BatchNorm1d, nn.BatchNorm2d)):
            new = GlobalBatchNorm(child.num_features, child.eps, child.momentum, child.affine,
                                  child.track_running_stats)
            if child.affine:
                new.weight, new.bias = child.weight, child.bias
            if child.track_running_stats:
                new.running_mean, new.running_var = child.running_mean, child.running_var
                new.num_batches_tracked = child.num_batches_tracked
            new.train(child.training)
            setattr(module, name, new)
        else:
            convert_global_batchnorm(child)
    return module
