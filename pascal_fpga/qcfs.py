"""The QCFS integer-threshold maths (docs/design.md, section 2.3), shared by the Brevitas
conversion (``snn/convert.py``) and the compiler (``ir/transforms.py``).

A QCFS level is q = #{k in 1..L : z >= (k - 1/2) * step} of a real pre-activation z. Where z is an
affine map a * (acc + bias) + b of an integer accumulator, each rounding boundary becomes the
smallest integer accumulator that reaches it, so that q = #{k : acc >= T_k}: integer thresholds,
computed in float64 and checked one by one. A leaf: numpy and the project's error only.
"""

from __future__ import annotations

import numpy as np

from .errors import PascalError

# Threshold sentinels of a channel whose folded scale is zero (constant output).
ALWAYS = -(2 ** 40)
NEVER = 2 ** 40


def level_boundaries(step: float, levels: int) -> np.ndarray:
    """The rounding boundaries (k - 1/2) * step, k = 1..L, of a QCFS activation."""
    return (np.arange(1, levels + 1, dtype=np.float64) - 0.5) * step


def rounding_steps(round_fn, low: int, high: int) -> tuple[np.ndarray, np.ndarray]:
    """The boundaries, in steps, between the integer levels low..high of a quantizer that rounds
    with ``round_fn`` (a numpy rounding function, as qonnx's ``resolve_rounding_mode`` gives, on
    values clamped to [low, high]), and whether each is strict. Boundary j (j = 1..high - low)
    separates level low + j - 1 from low + j: the level is at least low + j where x >= beta_j
    (``strict`` False) or x > beta_j (``strict`` True). Every rounding of qonnx's Quant is a step
    function whose steps sit at integers or half-integers, so each boundary is read off the
    function itself: the first of q - 1, q - 1/2 and q (q = low + j) where the level is below q
    a quarter step before and at least q a quarter step after (qonnx's UP jumps from -1 to 1
    at 0, level 0 only at 0 itself: two boundaries at 0, the second strict):
    half-up gives q - 1/2, non-strict, for q >= 1 (and strict below zero: qonnx's half-up rounds
    away from zero); half-to-even (ROUND) gives q - 1/2, strict where q is odd; floor gives q."""
    levels = np.arange(low + 1, high + 1, dtype=np.float64)
    boundaries = np.empty(len(levels))
    strict = np.zeros(len(levels), dtype=bool)
    for j, q in enumerate(levels):
        for beta in (q - 1.0, q - 0.5, q):
            below, at, above = (float(round_fn(np.clip(np.float64(v), low, high)))
                                for v in (beta - 0.25, beta, beta + 0.25))
            if below <= q - 1 and above >= q:  # monotone: level q is first reached at beta
                boundaries[j], strict[j] = beta, at < q
                break
        else:
            raise PascalError(f"the rounding function does not step from level {q - 1:g} to "
                              f"{q:g} at an integer or half-integer")
    return boundaries, strict


def add_boundaries(add_scale: float, add_max: int) -> np.ndarray:
    """The rounding boundaries (j - M - 1/2) * s_add, j = 1..2M, of the signed add quantizer."""
    return (np.arange(1, 2 * add_max + 1, dtype=np.float64) - add_max - 0.5) * add_scale


def integer_thresholds(a: np.ndarray, b: np.ndarray, boundaries: np.ndarray,
                       bias_int: np.ndarray, strict: np.ndarray | None = None
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Integer thresholds T (out, J) and the sign (+1/-1) folded into each weight row.

    For ascending real ``boundaries`` beta_1 < ... < beta_J of z = a * (acc + bias) + b, T_j is the
    smallest integer with z >= beta_j, so that #{j : acc >= T_j} = #{j : z >= beta_j}. A QCFS layer
    has beta_k = (k - 1/2) * step, k = 1..L (:func:`level_boundaries`); the add quantizer of a
    block has beta_j = (j - M - 1/2) * s_add, j = 1..2M (:func:`add_boundaries`). For a > 0 that
    is acc >= ceil(tau_j) - bias with tau_j = (beta_j - b) / a; for a < 0 the row is negated and
    -acc >= ceil(-tau_j) + bias; for a = 0 the count is the constant #{j : b >= beta_j} (sentinel
    thresholds ALWAYS / NEVER). Raises a PascalError where a threshold fails its check.
    """
    out = len(a)
    boundaries = np.asarray(boundaries, dtype=np.float64)
    thresholds = np.zeros((out, len(boundaries)), dtype=np.int64)
    sign = np.ones(out, dtype=np.int64)
    strict = np.zeros(len(boundaries), dtype=bool) if strict is None else \
        np.asarray(strict, dtype=bool)

    def smallest_reaching(value: np.ndarray) -> np.ndarray:
        """The smallest integer n with n >= value (non-strict) or n > value (strict)."""
        return np.where(strict, np.floor(value) + 1, np.ceil(value)).astype(np.int64)

    for c in range(out):
        if a[c] == 0.0:
            reached = np.where(strict, b[c] > boundaries, b[c] >= boundaries)
            thresholds[c] = np.where(reached, ALWAYS, NEVER)
            continue
        tau = (boundaries - b[c]) / a[c]
        if a[c] > 0:
            thresholds[c] = smallest_reaching(tau) - bias_int[c]
        else:
            sign[c] = -1
            thresholds[c] = smallest_reaching(-tau) + bias_int[c]
        _check_thresholds(thresholds[c], sign[c], a[c], b[c], bias_int[c], boundaries, strict)
    return thresholds, sign


def _check_thresholds(row: np.ndarray, sign: int, a: float, b: float, bias: int,
                      boundaries: np.ndarray, strict: np.ndarray) -> None:
    """Each T_j is the smallest integer accumulator reaching boundary j (in float64; within a
    relative 1e-9, the comparison's kind aside)."""
    for j, (t, boundary) in enumerate(zip(row, boundaries), start=1):
        acc = sign * float(t)
        acc_below = sign * float(t - 1)
        z_at = a * (acc + bias) + b
        z_below = a * (acc_below + bias) + b
        tol = 1e-9 * max(abs(boundary), 1.0)
        if not (z_at >= boundary - tol and z_below < boundary + tol):
            raise PascalError(f"threshold check failed at boundary {j}: T = {t}")
