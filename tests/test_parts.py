"""compile --fpga: the fit of a design on a real board (pascal_fpga/hw/parts.py)."""

from __future__ import annotations

import json

import pytest

from pascal_fpga.cli import main as cli_main
from pascal_fpga.hw.parts import BRAM18_BITS, FPGAS, fit_lines, fit_report


def test_fit_names_what_binds_and_what_the_weights_need():
    pynq = FPGAS["pynq-z2"]
    small = fit_report(pynq, {"LUT": 20_000, "FF": 30_000, "BRAM18": 250, "DSP": 10}, 10 ** 6)
    assert small["fits"] and not small["fits_comfortably"] and small["binding"] == "BRAM18"
    big = fit_report(pynq, {"LUT": 60_000, "FF": 1, "BRAM18": 10, "DSP": 1}, 10 ** 6)
    assert not big["fits"] and big["binding"] == "LUT"
    assert "does NOT fit" in fit_lines(big)[0]
    # ResNet-34's 4-bit weights (about 87 Mbit) fit no on-chip memory of a PYNQ-Z2 (5 Mbit)
    huge = fit_report(pynq, {"LUT": 10 ** 6, "FF": 10 ** 6, "BRAM18": 6000, "DSP": 100},
                      87 * 10 ** 6)
    assert not huge["fits"] and any("DRAM" in note for note in huge["notes"])
    u250 = FPGAS["u250"]
    # short of block RAM by what its UltraRAMs could hold: said so
    spill = fit_report(u250, {"LUT": 10, "FF": 10, "BRAM18": u250.bram18 + 100, "DSP": 1},
                       (u250.bram18 + 100) * BRAM18_BITS // 2)
    assert any("UltraRAM" in note for note in spill["notes"])
    # the ECP5's LUT4s are not compared with LUT6 estimates
    ecp5 = fit_report(FPGAS["ecp5-85f"], {"LUT": 10 ** 6, "FF": 1, "BRAM18": 1, "DSP": 1}, 1)
    assert "LUT" not in ecp5["resources"] and ecp5["fits"]


@pytest.mark.slow
def test_compile_fpga_searches_within_the_board_and_records_the_fit(digits_model, tmp_path,
                                                                    capsys):
    out = tmp_path / "b"
    assert cli_main(["compile", str(digits_model), "--out", str(out), "--fpga", "pynq-z2",
                     "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    fit = result["fit"]
    assert fit["fpga"] == "pynq-z2" and fit["part"] == result["hls"]["part"]
    budget = int(0.8 * FPGAS["pynq-z2"].lut)
    assert result["folding_search"]["lut_budget"] == budget
    assert fit["resources"]["LUT"]["used"] <= budget and fit["fits_comfortably"]
    assert fit["weight_bits"] > 0
    with pytest.raises(SystemExit):   # a board we do not know: argparse's one line
        cli_main(["compile", str(digits_model), "--out", str(tmp_path / "c"), "--fpga", "vu9p"])
    assert not (tmp_path / "c").exists()
