"""The residual blocks' RTL modules (pascal_fpga/rtl/modules/pascal_fork.sv, pascal_add.sv):
their write latencies and the ``$readmemh`` tables of ``pascal_add``.

``pascal_add`` computes, for channel o of an output word,
``n = (acc <<< shift_main[o]) + (v <<< shift_short[o])`` modulo 2^N_BITS (two's complement),
and fires output frame t iff ``n >= thresholds[o][t]``. Its two tables (one line per fold nf,
channels nf*PE .. nf*PE+PE-1; pascal_fpga/rtl/README.md):

* ``thresh``: PE*T_OUT*N_BITS bits, threshold (pe, t) at [(pe*T_OUT + t)*N_BITS +: N_BITS];
* ``shift``: PE*2*SH_BITS bits, lane pe's shift_main at [(2*pe)*SH_BITS +: SH_BITS] and its
  shift_short at [(2*pe+1)*SH_BITS +: SH_BITS].
"""

from __future__ import annotations

import numpy as np

from ..errors import PascalError

FORK_LATENCY = 0   # pascal_fork: a word is written to both outputs in the slot that reads it
ADD_LATENCY = 2    # pascal_add: shift ROM read -> n register -> compare against the threshold ROM


def _field(value: int, bits: int, what: str, signed: bool) -> int:
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    if not lo <= value <= hi:
        raise PascalError(f"{what} {value} does not fit {bits} "
                          f"{'signed' if signed else 'unsigned'} bits")
    return value & ((1 << bits) - 1)


def add_memories(thresholds, shift_main, shift_short, pe: int, n_bits: int,
                 sh_bits: int) -> dict[str, list[str]]:
    """pascal_add's ``$readmemh`` lines: ``{"thresh": [...], "shift": [...]}``, one hex number
    (no prefix, no address) per fold nf = 0 .. CH/PE - 1.

    ``thresholds``: (CH, T_OUT) ints, each a signed ``n_bits``-bit value; ``shift_main``,
    ``shift_short``: (CH,) ints in 0 .. 2**sh_bits - 1; ``pe`` divides CH."""
    th = np.asarray(thresholds)
    sm, ss = np.asarray(shift_main).reshape(-1), np.asarray(shift_short).reshape(-1)
    if th.ndim != 2:
        raise PascalError(f"thresholds must be (CH, T_OUT), not {th.shape}")
    ch, t_out = th.shape
    if sm.shape != (ch,) or ss.shape != (ch,):
        raise PascalError(f"shifts must be ({ch},), not {sm.shape} and {ss.shape}")
    if pe < 1 or ch % pe or n_bits < 1 or sh_bits < 1:
        raise PascalError(f"pe={pe}, n_bits={n_bits}, sh_bits={sh_bits}: pe must divide "
                          f"{ch} channels and the widths be >= 1")
    thresh, shift = [], []
    for nf in range(ch // pe):
        word_t = word_s = 0
        for lane in range(pe):
            o = nf * pe + lane
            for t in range(t_out):
                word_t |= _field(int(th[o, t]), n_bits, f"threshold [{o}][{t}]",
                                 True) << ((lane * t_out + t) * n_bits)
            word_s |= _field(int(sm[o]), sh_bits, f"shift_main [{o}]",
                             False) << ((2 * lane) * sh_bits)
            word_s |= _field(int(ss[o]), sh_bits, f"shift_short [{o}]",
                             False) << ((2 * lane + 1) * sh_bits)
        thresh.append(f"{word_t:x}")
        shift.append(f"{word_s:x}")
    return {"thresh": thresh, "shift": shift}
