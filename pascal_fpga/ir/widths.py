"""Exact worst-case accumulator ranges and the bit widths that hold them
(docs/design.md, section 4.5).

An input level lies in 0..in_max (in_max = 2^bits - 1 for pixels, L_prev for spikes, k^2 L_prev
after a sum pool). The largest accumulator of output channel c is in_max times the largest sum of
its positive weights over the taps of one output position that lie inside the image (padding
contributes nothing); the smallest is in_max times the most negative such sum. Both are reached:
feed in_max where a weight is positive (or negative) and 0 elsewhere.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def accumulator_range(weight: np.ndarray, in_max: int, in_shape: tuple[int, ...],
                      kernel: int = 1, stride: int = 1, pad: int = 0,
                      bias: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(acc_min, acc_max) per output channel, int64, for a conv weight (out, in, k, k) on inputs
    of shape ``in_shape`` (C, H, W), or a dense weight (out, fan_in) on any input shape."""
    weight = np.asarray(weight, dtype=np.float64)
    positive = np.maximum(weight, 0.0)
    negative = np.minimum(weight, 0.0)
    if weight.ndim == 4:
        ones = torch.ones((1,) + tuple(in_shape), dtype=torch.float64)

        def reach(part: np.ndarray, pick) -> np.ndarray:
            sums = F.conv2d(ones, torch.from_numpy(part), stride=stride, padding=pad)
            return pick(sums[0].reshape(len(part), -1), dim=1).values.numpy()

        high = reach(positive, torch.max)
        low = reach(negative, torch.min)
    else:
        high = positive.sum(axis=1)
        low = negative.sum(axis=1)
    acc_max = np.rint(high).astype(np.int64) * int(in_max)
    acc_min = np.rint(low).astype(np.int64) * int(in_max)
    if bias is not None:
        bias = np.asarray(bias).astype(np.int64).reshape(-1)
        acc_max = acc_max + bias
        acc_min = acc_min + bias
    return acc_min, acc_max


def signed_bits(low: int, high: int) -> int:
    """The fewest bits of a two's-complement integer holding every value in low..high."""
    bits = 1
    while not (-(2 ** (bits - 1)) <= low and high <= 2 ** (bits - 1) - 1):
        bits += 1
    return bits


def unsigned_bits(high: int) -> int:
    """The fewest bits of an unsigned integer holding 0..high (at least 1)."""
    return max(1, int(high).bit_length())

