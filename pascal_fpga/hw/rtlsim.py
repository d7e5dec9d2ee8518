"""Verilator simulation of the RTL: one module alone (:func:`run_stage`, for the modules' unit
tests) and the Verilator build helpers the whole-design testbench uses (:mod:`.rtl`).

The C++ harnesses are files of ``pascal_fpga/rtl/harness`` (``stage.cpp``, ``ports.cpp``), read at
run time. Builds are cached by content (sources, parameters, harness, Verilator version) in
``$PASCAL_FPGA_CACHE/rtlsim`` (default ``~/.cache/pascal-fpga/rtlsim``): a test suite that
simulates the same module with the same parameters twice compiles it once.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import PascalError
from .csim import MAKE_SAFE

MODULES = Path(__file__).resolve().parent.parent / "rtl" / "modules"
HARNESS = MODULES.parent / "harness"   # the C++ harnesses of run_stage and run_ports
# the stream ports (input, output prefix) of the modules that are not in_* -> out_*: the AXI
# adapters (run_ports names the streams of the residual fork and add itself)
STREAM_PORTS = {"pascal_input": ("s_axis", "out"), "pascal_output": ("in", "m_axis")}
_PARAM_NAME = re.compile(r"[A-Z_][A-Z0-9_]*")
_PORT_NAME = re.compile(r"[a-z][a-z0-9]*(_[a-z0-9]+)*")
_SAFE_PATH = MAKE_SAFE   # what make and the shell read literally (as for the C simulation)


def verilator() -> str:
    """The verilator executable, or one line saying how to get it."""
    exe = shutil.which("verilator")
    if exe is None:
        raise PascalError("verilator is not installed: apt-get install verilator (5.006 is the "
                          "tested version; .ci/run installs it)")
    return exe


def verilator_version() -> str:
    result = subprocess.run([verilator(), "--version"], capture_output=True, text=True)
    return result.stdout.strip()


def cache_dir() -> Path:
    root = os.environ.get("PASCAL_FPGA_CACHE")
    base = Path(root) if root else Path.home() / ".cache" / "pascal-fpga"
    return base / "rtlsim"


def words_to_u32(words: list[int] | np.ndarray, bits: int) -> np.ndarray:
    """Python ints (each < 2**bits) as (len, ceil(bits/32)) little-endian uint32 limbs."""
    n32 = (bits + 31) // 32
    out = np.zeros((len(words), n32), dtype=np.uint32)
    mask = (1 << 32) - 1
    for i, word in enumerate(words):
        word = int(word)
        if word < 0 or word >> bits:
            raise ValueError(f"word {i} does not fit {bits} bits")
        for j in range(n32):
            out[i, j] = (word >> (32 * j)) & mask
    return out


def u32_to_words(limbs: np.ndarray) -> list[int]:
    """(len, n32) uint32 limbs -> Python ints."""
    words = []
    for row in np.asarray(limbs, dtype=np.uint64):
        value = 0
        for j, limb in enumerate(row):
            value |= int(limb) << (32 * j)
        words.append(value)
    return words


def parameter_flags(params: dict[str, int | str]) -> list[str]:
    """Verilator -G flags; string values (file names) become quoted SystemVerilog strings."""
    flags = []
    for name, value in params.items():
        if not _PARAM_NAME.fullmatch(name):
            raise PascalError(f"RTL parameter {name!r} is not an upper-case identifier")
        if isinstance(value, str):
            if not _SAFE_PATH.fullmatch(value):
                raise PascalError(f"RTL parameter {name}={value!r}: only paths of letters, "
                                  f"digits and _ . , / + = @ % ~ - are passed to the simulator")
            flags.append(f'-G{name}="{value}"')
        else:
            flags.append(f"-G{name}={int(value)}")
    return flags


def build(sources: list[Path], top: str, harness: str, params: dict[str, int | str],
          extra_flags: tuple[str, ...] = (), root: Path | None = None) -> Path:
    """Compile ``sources`` with the C++ ``harness`` (text) into a cached binary; its path. The
    cache is ``root`` when given (a build folder's own), else :func:`cache_dir`."""
    digest = hashlib.sha256()
    for path in sources:
        digest.update(path.name.encode() + b"\0" + Path(path).read_bytes() + b"\0")
    for path in [p for p in params.values() if isinstance(p, str)]:
        if Path(path).is_file():   # memory files: their contents are part of the design
            digest.update(Path(path).read_bytes())
    digest.update(repr(sorted(params.items())).encode() + harness.encode() + top.encode() +
                  repr(extra_flags).encode() + verilator_version().encode())
    key = digest.hexdigest()[:24]
    base = (root if root is not None else cache_dir()).resolve()
    sources = [Path(path).resolve() for path in sources]
    for path in [base, *sources]:
        if not _SAFE_PATH.fullmatch(str(path)):
            raise PascalError(f"{str(path)!r}: Verilator builds only in folders whose path is "
                              f"letters, digits and _ . , / + = @ % ~ - (make and the shell "
                              f"would read the others); move the build elsewhere")
    folder = base / f"{top}-{key}"
    binary = folder / "sim"
    if binary.is_file():
        return binary
    base.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{top}.", dir=base) as tmp:
        tmp = Path(tmp)
        (tmp / "harness.cpp").write_text(harness)
        command = [verilator(), "--cc", "--exe", "--build", "-j", "2", "--prefix", "Vdut",
                   "--top-module", top, "-Wno-fatal", "-Wno-lint", "-Wno-style",
                   "-Werror-USERERROR",   # the modules' parameter checks ($error) stop the build
                   "-O3", "--x-assign", "0", "--x-initial", "0",
                   "-CFLAGS", "-O1", "-Mdir", str(tmp / "obj"), "-o", str(tmp / "sim"),
                   *extra_flags, *parameter_flags(params),
                   *[str(p) for p in sources], str(tmp / "harness.cpp")]
        env = dict(os.environ)
        if shutil.which("ccache") and "OBJCACHE" not in env:
            env["OBJCACHE"] = "ccache"   # Verilator's runtime files compile once, not per build
        result = subprocess.run(command, capture_output=True, text=True, env=env)
        if result.returncode != 0 or not (tmp / "sim").is_file():
            log = result.stderr + result.stdout
            first = next((line for line in log.splitlines() if "%Error" in line and
                          "exited with" not in line), None) or next(
                (line for line in log.splitlines() if "error" in line.lower()),
                (log.strip().splitlines() or [""])[-1])
            raise PascalError(f"verilator could not build {top}: {str(first).strip()[:400]}")
        done = tmp / "done"
        done.mkdir()
        shutil.move(str(tmp / "sim"), done / "sim")
        try:
            os.rename(done, folder)
        except OSError:
            if not binary.is_file():   # another process won the race with its own copy
                raise
    return binary


def stream_ports(prefix: str) -> tuple[str, str, str]:
    """The (data, valid, ready) ports of a stream: ``PREFIX_data``, ``PREFIX_valid``,
    ``PREFIX_ready``, or for an AXI-Stream prefix (``s_axis``, ``m_axis``) ``PREFIX_tdata``,
    ``PREFIX_tvalid``, ``PREFIX_tready``."""
    if prefix.endswith("axis"):
        return f"{prefix}_tdata", f"{prefix}_tvalid", f"{prefix}_tready"
    return f"{prefix}_data", f"{prefix}_valid", f"{prefix}_ready"


def harness_text(name: str) -> str:
    """A C++ harness of ``pascal_fpga/rtl/harness`` with ``common.h`` in place of its
    ``@COMMON@`` (its other ``@NAME@`` placeholders unfilled)."""
    texts = []
    for part in (name, "common.h"):
        path = HARNESS / part
        if not path.is_file():
            raise PascalError(f"{path}: the RTL simulation harness is missing (reinstall "
                              f"pascal-fpga)")
        texts.append(path.read_text())
    return texts[0].replace("@COMMON@", texts[1])


def _stage_harness(in_port: str, out_port: str) -> str:
    """The one-module harness (``harness/stage.cpp``) for the streams ``in_port`` -> ``out_port``."""
    text = harness_text("stage.cpp")
    for side, prefix in (("IN", in_port), ("OUT", out_port)):
        for field, port in zip(("DATA", "VALID", "READY"), stream_ports(prefix)):
            text = text.replace(f"@{side}_{field}@", port)
    return text


@dataclass
class StageRun:
    """What a one-module simulation saw: the output words (ints) and the cycle of every input
    and output transfer."""

    out_words: list[int]
    in_cycles: np.ndarray
    out_cycles: np.ndarray


def run_stage(module: str, params: dict[str, int | str], in_bits: int, out_bits: int,
              words: list[int], cycles: int, ready: list[bool] | np.ndarray | None = None,
              valid: list[bool] | np.ndarray | None = None, max_outputs: int = 0,
              sources: list[Path] | None = None,
              ports: tuple[str, str] | None = None) -> StageRun:
    """Simulate ``module`` (the library's modules unless ``sources``; Verilator keeps those
    under ``module``)
    with ``params`` for ``cycles`` cycles (or until ``max_outputs`` outputs): ``in_valid``
    whenever input words remain (and ``valid[cycle]``), ``out_ready = ready[cycle]`` (1 by
    default and past the pattern's end). ``ports``: the (input, output) stream prefixes
    (:func:`stream_ports`), by default :data:`STREAM_PORTS`' or ``("in", "out")``."""
    in_port, out_port = ports or STREAM_PORTS.get(module, ("in", "out"))
    for name in (in_port, out_port):
        if not _PORT_NAME.fullmatch(name):
            raise PascalError(f"stream {name!r} is not a lower-case port prefix")
    sources = sources or sorted(MODULES.glob("*.sv"))
    binary = build([Path(s) for s in sources], module, _stage_harness(in_port, out_port),
                   params)
    in_n32, out_n32 = (in_bits + 31) // 32, (out_bits + 31) // 32
    with tempfile.TemporaryDirectory(prefix="rtlsim.") as tmp:
        tmp = Path(tmp)
        words_to_u32(words, in_bits).tofile(tmp / "in.bin")
        args = [str(binary), str(tmp / "in.bin"), str(in_n32), str(out_n32), str(cycles),
                str(max_outputs)]
        for name, pattern in (("ready", ready), ("valid", valid)):
            if pattern is None:
                args.append("-")
            else:
                np.asarray(pattern, dtype=np.uint8).tofile(tmp / f"{name}.bin")
                args.append(str(tmp / f"{name}.bin"))
        args += [str(tmp / "out.bin"), str(tmp / "incyc.bin"), str(tmp / "outcyc.bin")]
        result = subprocess.run(args, capture_output=True, text=True)
        if result.returncode != 0:
            raise PascalError(f"the simulation of {module} failed (status "
                              f"{result.returncode}): {(result.stderr or result.stdout)[:300]}")
        limbs = np.fromfile(tmp / "out.bin", dtype=np.uint32).reshape(-1, out_n32)
        return StageRun(u32_to_words(limbs), np.fromfile(tmp / "incyc.bin", dtype=np.int64),
                        np.fromfile(tmp / "outcyc.bin", dtype=np.int64))


# --- modules with several input or output streams (the residual fork and add) ---------------------

def _ports_harness(inputs: list[tuple[str, int]], outputs: list[tuple[str, int]]) -> str:
    """The multi-stream harness (``harness/ports.cpp``) for streams ``(port prefix, bits)``:
    the ports of :func:`stream_ports`."""
    reset, drive, sample = [], [], []
    for i, (name, _) in enumerate(inputs):
        data, valid, ready = stream_ports(name)
        reset.append(f"    dut->{valid} = 0;")
        drive.append(f"        dut->{valid} = in[{i}].have(cycle);\n"
                     f"        put(dut->{data}, in[{i}].word(), in[{i}].n32);")
        sample.append(f"        in_fire[{i}] = dut->{valid} && dut->{ready};")
    for o, (name, _) in enumerate(outputs):
        data, valid, ready = stream_ports(name)
        reset.append(f"    dut->{ready} = 0;")
        drive.append(f"        dut->{ready} = out[{o}].take(cycle);")
        sample.append(f"        out_fire[{o}] = dut->{valid} && dut->{ready};\n"
                      f"        if (out_fire[{o}]) get(dut->{data}, out[{o}].word.data(), "
                      f"out[{o}].n32);")
    return (harness_text("ports.cpp").replace("@N_IN@", str(len(inputs)))
            .replace("@N_OUT@", str(len(outputs)))
            .replace("@IN_N32@", ", ".join(str((b + 31) // 32) for _, b in inputs) or "0")
            .replace("@OUT_N32@", ", ".join(str((b + 31) // 32) for _, b in outputs) or "0")
            .replace("@RESET@", "\n".join(reset))
            .replace("@DRIVE@", "\n".join(drive))
            .replace("@SAMPLE@", "\n".join(sample)))


@dataclass
class PortsRun:
    """What a multi-stream simulation saw, per stream (port prefix): the output streams' words
    (ints) and the cycle of every transfer of every stream."""

    out_words: dict[str, list[int]]
    in_cycles: dict[str, np.ndarray]
    out_cycles: dict[str, np.ndarray]


def run_ports(module: str, params: dict[str, int | str],
              inputs: dict[str, tuple[int, list[int]]], outputs: dict[str, int], cycles: int,
              ready: dict[str, list[bool] | np.ndarray] | None = None,
              valid: dict[str, list[bool] | np.ndarray] | None = None, max_outputs: int = 0,
              sources: list[Path] | None = None) -> PortsRun:
    """:func:`run_stage` for a module with several input and / or output streams (the residual
    fork: ``in`` -> ``out0``, ``out1``; the residual add: ``main``, ``short`` -> ``out``).

    ``inputs``: port prefix -> (bits, words); ``outputs``: port prefix -> bits; a stream
    ``p`` is the ports ``p_data``, ``p_valid``, ``p_ready`` (``p_tdata``, ``p_tvalid``,
    ``p_tready`` for an AXI-Stream prefix ``s_axis`` / ``m_axis``; plus ``clk``, ``rst``). Each input
    stream is driven on its own: ``p_valid`` whenever its words remain (and ``valid[p][cycle]``
    if given); ``p_ready = ready[p][cycle]`` for an output (1 by default and past the
    pattern's end). Runs ``cycles`` cycles, or until every output stream has made
    ``max_outputs`` transfers. Returns the words and transfer cycles per stream (cycle 0 = the
    first cycle after reset)."""
    ready, valid = dict(ready or {}), dict(valid or {})
    names = [*inputs, *outputs]
    for name in names:
        if not _PORT_NAME.fullmatch(name):
            raise PascalError(f"stream {name!r} is not a lower-case port prefix")
    if len(set(names)) != len(names) or not outputs:
        raise PascalError(f"{module}: the streams need distinct names and an output "
                          f"({', '.join(names)})")
    unknown = (set(ready) - set(outputs)) | (set(valid) - set(inputs))
    if unknown:
        raise PascalError(f"{module}: patterns for unknown streams {sorted(unknown)}")
    in_list = [(name, int(bits)) for name, (bits, _) in inputs.items()]
    out_list = [(name, int(bits)) for name, bits in outputs.items()]
    sources = sources or sorted(MODULES.glob("*.sv"))
    binary = build([Path(s) for s in sources], module, _ports_harness(in_list, out_list), params)
    with tempfile.TemporaryDirectory(prefix="rtlsim.") as tmp:
        tmp = Path(tmp)
        args = [str(binary), str(cycles), str(max_outputs)]
        for name, (bits, words) in inputs.items():
            words_to_u32(words, bits).tofile(tmp / f"in_{name}.bin")
            args.append(str(tmp / f"in_{name}.bin"))
            if name in valid:
                np.asarray(valid[name], dtype=np.uint8).tofile(tmp / f"valid_{name}.bin")
                args.append(str(tmp / f"valid_{name}.bin"))
            else:
                args.append("-")
            args.append(str(tmp / f"incyc_{name}.bin"))
        for name in outputs:
            if name in ready:
                np.asarray(ready[name], dtype=np.uint8).tofile(tmp / f"ready_{name}.bin")
                args.append(str(tmp / f"ready_{name}.bin"))
            else:
                args.append("-")
            args += [str(tmp / f"out_{name}.bin"), str(tmp / f"outcyc_{name}.bin")]
        result = subprocess.run(args, capture_output=True, text=True)
        if result.returncode != 0:
            raise PascalError(f"the simulation of {module} failed (status "
                              f"{result.returncode}): {(result.stderr or result.stdout)[:300]}")
        out_words, out_cycles, in_cycles = {}, {}, {}
        for name, bits in outputs.items():
            limbs = np.fromfile(tmp / f"out_{name}.bin", dtype=np.uint32)
            out_words[name] = u32_to_words(limbs.reshape(-1, (bits + 31) // 32))
            out_cycles[name] = np.fromfile(tmp / f"outcyc_{name}.bin", dtype=np.int64)
        for name in inputs:
            in_cycles[name] = np.fromfile(tmp / f"incyc_{name}.bin", dtype=np.int64)
        return PortsRun(out_words, in_cycles, out_cycles)
