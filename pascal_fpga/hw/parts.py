"""Real FPGAs: what a few boards users have hold, and whether a design fits one (``compile
--fpga NAME``).

The capacities are the vendors' published device totals (LUT, flip-flops, 18 Kb block RAMs, DSP
slices, 288 Kb UltraRAMs). The design's side is the fitted estimate (:mod:`pascal_fpga.hw.costs`:
Yosys' xc7 synthesis of our modules, LUT6 counts), so the check is an estimate against the
part's totals: ``pascal-fpga synth`` gives the synthesized counts. The ECP5's LUTs are LUT4s: an
xc7 LUT6 count is no ECP5 count, so its LUT line is left to ``synth --family ecp5-85k`` and its
fit is read from flip-flops, block RAM and multipliers only.

Placement and routing need headroom: a design is said to fit when every resource is within the
part (``fits``), and to fit comfortably within ``COMFORT`` of each (what the folding search
aims at when ``--fpga`` is its only goal).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import PascalError

COMFORT = 0.8        # the share of a part's LUTs the search may use (routing headroom)
URAM_BITS = 288 * 1024
BRAM18_BITS = 18 * 1024
KEYS = ("LUT", "FF", "BRAM18", "DSP")


@dataclass(frozen=True)
class Fpga:
    name: str
    board: str
    part: str          # the part number (the Vitis project's, for Xilinx parts)
    family: str        # xc7 (7-series and UltraScale+ LUT6 fabric) or ecp5
    lut: int
    ff: int
    bram18: int
    dsp: int
    uram: int = 0

    def capacity(self) -> dict[str, int]:
        return {"LUT": self.lut, "FF": self.ff, "BRAM18": self.bram18, "DSP": self.dsp,
                "URAM": self.uram}


FPGAS = {f.name: f for f in (
    Fpga("pynq-z2", "PYNQ-Z2 (Zynq-7020)", "xc7z020clg400-1", "xc7",
         53_200, 106_400, 280, 220),
    Fpga("zcu104", "ZCU104 (Zynq UltraScale+ XCZU7EV)", "xczu7ev-ffvc1156-2-e", "xc7",
         230_400, 460_800, 624, 1_728, 96),
    Fpga("u250", "Alveo U250 (XCU250)", "xcu250-figd2104-2L-e", "xc7",
         1_728_000, 3_456_000, 5_376, 12_288, 1_280),
    Fpga("ecp5-85f", "Lattice ECP5-85F (LFE5U-85F)", "LFE5U-85F", "ecp5",
         83_640, 83_640, 208, 156),
)}


def fpga(name: str) -> Fpga:
    if name not in FPGAS:
        raise PascalError(f"--fpga {name!r}: one of {', '.join(FPGAS)}")
    return FPGAS[name]


def weight_bits(model) -> int:
    """The bits of every weight of an IR (initializer size x the layer's weight bits)."""
    from qonnx.custom_op.registry import getCustomOp

    from ..ir.transforms import layer_nodes

    total = 0
    for node in layer_nodes(model):
        inst = getCustomOp(node)
        if "weight_bits" not in inst.get_nodeattr_types():
            continue   # pools, forks and adds hold no weights
        bits = int(inst.get_nodeattr("weight_bits"))
        weights = model.get_initializer(node.input[1]) if len(node.input) > 1 else None
        if weights is not None:
            total += int(weights.size) * bits
    return total


def fit_report(board: Fpga, total: dict[str, int], weights: int) -> dict[str, Any]:
    """Whether ``total`` (the design's estimate: LUT, FF, BRAM18, DSP) fits ``board``: each
    resource's use and share, what binds, and where the weights (``weights`` bits) cannot all
    sit in block RAM, what it would take."""
    capacity = board.capacity()
    rows = {}
    for key in KEYS:
        if key == "LUT" and board.family == "ecp5":
            continue   # LUT6 estimates are no LUT4 counts (module doc)
        rows[key] = {"used": int(total[key]), "available": capacity[key],
                     "share": total[key] / capacity[key]}
    binding = max(rows, key=lambda k: rows[k]["share"])
    fits = all(r["share"] <= 1.0 for r in rows.values())
    report = {"fpga": board.name, "board": board.board, "part": board.part,
              "resources": rows, "binding": binding, "fits": fits,
              "fits_comfortably": all(r["share"] <= COMFORT for r in rows.values()),
              "weight_bits": weights,
              "estimate": "fitted estimate (xc7 LUT6); `pascal-fpga synth` for synthesized "
                          "counts"}
    notes = []
    if board.family == "ecp5":
        notes.append("LUTs not compared: the estimate counts xc7 LUT6s, the ECP5 has LUT4s "
                     "(pascal-fpga synth --family ecp5-85k)")
    on_chip = board.bram18 * BRAM18_BITS + board.uram * URAM_BITS
    if weights > on_chip:
        notes.append(f"the weights alone ({weights / 1e6:.1f} Mbit) exceed every on-chip "
                     f"memory of the {board.board} ({on_chip / 1e6:.1f} Mbit of block RAM"
                     f"{' and UltraRAM' if board.uram else ''}): they would have to stream from "
                     f"DRAM, which this accelerator does not do")
    elif rows["BRAM18"]["share"] > 1.0 and board.uram:
        spill = (total["BRAM18"] - board.bram18) * BRAM18_BITS
        if spill <= board.uram * URAM_BITS:
            notes.append(f"block RAM is short by {total['BRAM18'] - board.bram18} BRAM18; the "
                         f"part's {board.uram} UltraRAMs could hold that much (the generated "
                         f"design does not place weights in URAM yet)")
    report["notes"] = notes
    return report


def fit_lines(report: dict[str, Any]) -> list[str]:
    """The fit report as a few printed lines."""
    parts = [f"{key} {row['used']:,} of {row['available']:,} ({100 * row['share']:.0f}%)"
             for key, row in report["resources"].items()]
    verdict = ("fits comfortably" if report["fits_comfortably"] else "fits" if report["fits"]
               else "does NOT fit")
    lines = [f"{report['board']}: {verdict} (estimate; binding: {report['binding']}): "
             + ", ".join(parts)]
    lines += [f"  note: {note}" for note in report["notes"]]
    return lines
