"""Verilator simulation of the RTL: one module alone (:func:`run_stage`, for the modules' unit
tests) and the Verilator build helpers the whole-design testbench uses (:mod:`.rtl`).

Builds are cached by content (sources, parameters, harness, Verilator version) in
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
from .csim import _MAKE_SAFE

MODULES = Path(__file__).resolve().parent.parent / "rtl" / "modules"
_PARAM_NAME = re.compile(r"[A-Z_][A-Z0-9_]*")
_SAFE_PATH = _MAKE_SAFE   # what make and the shell read literally (as for the C simulation)


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


# The one-module harness: drives in_* from a word file, out_ready from a pattern, and records
# every transfer's cycle (cycle 0 = the first cycle after reset).
_STAGE_HARNESS = r"""
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>
#include "Vdut.h"
#include "verilated.h"

template <class T> static void put(T &port, const uint32_t *w, unsigned n) {
    uint64_t v = w[0];
    if (n > 1 && sizeof(T) > 4) v |= (uint64_t)w[1] << 32;
    port = (T)v;
}
template <std::size_t N> static void put(VlWide<N> &port, const uint32_t *w, unsigned n) {
    for (std::size_t i = 0; i < N; i++) port[i] = i < n ? w[i] : 0;
}
template <class T> static void get(const T &port, uint32_t *w, unsigned n) {
    uint64_t v = port;
    w[0] = (uint32_t)v;
    if (n > 1) w[1] = (uint32_t)(v >> 32);
}
template <std::size_t N> static void get(const VlWide<N> &port, uint32_t *w, unsigned n) {
    for (std::size_t i = 0; i < N && i < n; i++) w[i] = port[i];
}

static std::vector<uint8_t> slurp(const char *path) {
    std::vector<uint8_t> data;
    FILE *f = fopen(path, "rb");
    if (!f) { fprintf(stderr, "harness: cannot open %s\n", path); exit(2); }
    int c;
    while ((c = fgetc(f)) != EOF) data.push_back((uint8_t)c);
    fclose(f);
    return data;
}

int main(int argc, char **argv) {
    // in.bin in_n32 out_n32 cycles max_outputs ready.bin|- valid.bin|- out.bin incyc.bin outcyc.bin
    if (argc != 11) { fprintf(stderr, "harness: bad arguments\n"); return 2; }
    std::vector<uint8_t> raw = slurp(argv[1]);
    const unsigned in_n32 = atoi(argv[2]), out_n32 = atoi(argv[3]);
    const long long cycles = atoll(argv[4]), max_out = atoll(argv[5]);
    std::vector<uint8_t> ready, valid;
    if (argv[6][0] != '-') ready = slurp(argv[6]);
    if (argv[7][0] != '-') valid = slurp(argv[7]);
    const uint32_t *in = (const uint32_t *)raw.data();
    const size_t n_in = raw.size() / 4 / in_n32;
    std::vector<uint32_t> out;
    std::vector<int64_t> in_cyc, out_cyc;
    std::vector<uint32_t> zero(in_n32 + 2, 0), word(out_n32 + 2, 0);

    Vdut *dut = new Vdut;
    dut->clk = 0; dut->rst = 1; dut->in_valid = 0; dut->out_ready = 0;
    dut->eval();
    for (int i = 0; i < 3; i++) { dut->clk = 1; dut->eval(); dut->clk = 0; dut->eval(); }
    dut->rst = 0;
    size_t idx = 0;
    for (long long cycle = 0; cycle < cycles; cycle++) {
        const bool have = idx < n_in && (valid.empty() || (cycle < (long long)valid.size() && valid[cycle]));
        dut->in_valid = have;
        put(dut->in_data, idx < n_in ? in + idx * in_n32 : zero.data(), in_n32);
        dut->out_ready = ready.empty() ? 1 : (cycle < (long long)ready.size() ? ready[cycle] : 1);
        dut->eval();
        const bool in_fire = dut->in_valid && dut->in_ready;
        const bool out_fire = dut->out_valid && dut->out_ready;
        if (out_fire) {
            get(dut->out_data, word.data(), out_n32);
            out.insert(out.end(), word.begin(), word.begin() + out_n32);
            out_cyc.push_back(cycle);
        }
        if (in_fire) { in_cyc.push_back(cycle); idx++; }
        dut->clk = 1; dut->eval(); dut->clk = 0; dut->eval();
        if (max_out > 0 && (long long)out_cyc.size() >= max_out) break;
    }
    FILE *f = fopen(argv[8], "wb"); fwrite(out.data(), 4, out.size(), f); fclose(f);
    f = fopen(argv[9], "wb"); fwrite(in_cyc.data(), 8, in_cyc.size(), f); fclose(f);
    f = fopen(argv[10], "wb"); fwrite(out_cyc.data(), 8, out_cyc.size(), f); fclose(f);
    delete dut;
    return 0;
}
"""


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
              sources: list[Path] | None = None) -> StageRun:
    """Simulate ``module`` (the library's modules unless ``sources``; Verilator keeps those
    under ``module``)
    with ``params`` for ``cycles`` cycles (or until ``max_outputs`` outputs): ``in_valid``
    whenever input words remain (and ``valid[cycle]``), ``out_ready = ready[cycle]`` (1 by
    default and past the pattern's end)."""
    sources = sources or sorted(MODULES.glob("*.sv"))
    binary = build([Path(s) for s in sources], module, _STAGE_HARNESS, params)
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

_PORT_NAME = re.compile(r"[a-z][a-z0-9]*(_[a-z0-9]+)*")

# The multi-stream harness: as _STAGE_HARNESS, for the streams named by the generated
# definitions (@PORTS@): per input stream its words and valid pattern, per output stream its
# ready pattern; every transfer's cycle on every stream.
_PORTS_HARNESS = r"""
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>
#include "Vdut.h"
#include "verilated.h"

template <class T> static void put(T &port, const uint32_t *w, unsigned n) {
    uint64_t v = w[0];
    if (n > 1 && sizeof(T) > 4) v |= (uint64_t)w[1] << 32;
    port = (T)v;
}
template <std::size_t N> static void put(VlWide<N> &port, const uint32_t *w, unsigned n) {
    for (std::size_t i = 0; i < N; i++) port[i] = i < n ? w[i] : 0;
}
template <class T> static void get(const T &port, uint32_t *w, unsigned n) {
    uint64_t v = port;
    w[0] = (uint32_t)v;
    if (n > 1) w[1] = (uint32_t)(v >> 32);
}
template <std::size_t N> static void get(const VlWide<N> &port, uint32_t *w, unsigned n) {
    for (std::size_t i = 0; i < N && i < n; i++) w[i] = port[i];
}

static std::vector<uint8_t> slurp(const char *path) {
    std::vector<uint8_t> data;
    if (path[0] == '-') return data;
    FILE *f = fopen(path, "rb");
    if (!f) { fprintf(stderr, "harness: cannot open %s\n", path); exit(2); }
    int c;
    while ((c = fgetc(f)) != EOF) data.push_back((uint8_t)c);
    fclose(f);
    return data;
}

static void spill(const char *path, const void *data, size_t size, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) { fprintf(stderr, "harness: cannot write %s\n", path); exit(2); }
    if (n) fwrite(data, size, n, f);
    fclose(f);
}

struct In {       // an input stream: words, valid pattern, transfer cycles
    unsigned n32; std::vector<uint8_t> raw, valid; size_t idx = 0, n = 0;
    std::vector<int64_t> cyc; std::vector<uint32_t> zero;
    const uint32_t *word() const {
        return idx < n ? (const uint32_t *)raw.data() + idx * n32 : zero.data();
    }
    bool have(long long cycle) const {
        return idx < n && (valid.empty() || (cycle < (long long)valid.size() && valid[cycle]));
    }
};
struct Out {      // an output stream: ready pattern, words, transfer cycles
    unsigned n32; std::vector<uint8_t> ready; std::vector<uint32_t> words, word;
    std::vector<int64_t> cyc;
    bool take(long long cycle) const {
        return ready.empty() ? true : (cycle < (long long)ready.size() ? ready[cycle] != 0 : true);
    }
};

int main(int argc, char **argv) {
    // cycles max_outputs, per input: words.bin valid.bin|- cyc.bin,
    // per output: ready.bin|- words.bin cyc.bin
    const int n_in = @N_IN@, n_out = @N_OUT@;
    const unsigned in_n32[] = {@IN_N32@}, out_n32[] = {@OUT_N32@};
    if (argc != 3 + 3 * n_in + 3 * n_out) { fprintf(stderr, "harness: bad arguments\n"); return 2; }
    const long long cycles = atoll(argv[1]), max_out = atoll(argv[2]);
    std::vector<In> in(n_in);
    std::vector<Out> out(n_out);
    for (int i = 0; i < n_in; i++) {
        in[i].n32 = in_n32[i];
        in[i].raw = slurp(argv[3 + 3 * i]);
        in[i].valid = slurp(argv[4 + 3 * i]);
        in[i].n = in[i].raw.size() / 4 / in_n32[i];
        in[i].zero.assign(in_n32[i] + 2, 0);
    }
    const int ob = 3 + 3 * n_in;
    for (int o = 0; o < n_out; o++) {
        out[o].n32 = out_n32[o];
        out[o].ready = slurp(argv[ob + 3 * o]);
        out[o].word.assign(out_n32[o] + 2, 0);
    }

    Vdut *dut = new Vdut;
    dut->clk = 0; dut->rst = 1;
@RESET@
    dut->eval();
    for (int i = 0; i < 3; i++) { dut->clk = 1; dut->eval(); dut->clk = 0; dut->eval(); }
    dut->rst = 0;
    for (long long cycle = 0; cycle < cycles; cycle++) {
@DRIVE@
        dut->eval();
        bool in_fire[n_in > 0 ? n_in : 1], out_fire[n_out > 0 ? n_out : 1];
@SAMPLE@
        for (int o = 0; o < n_out; o++) if (out_fire[o]) {
            out[o].words.insert(out[o].words.end(), out[o].word.begin(),
                                out[o].word.begin() + out[o].n32);
            out[o].cyc.push_back(cycle);
        }
        for (int i = 0; i < n_in; i++) if (in_fire[i]) { in[i].cyc.push_back(cycle); in[i].idx++; }
        dut->clk = 1; dut->eval(); dut->clk = 0; dut->eval();
        if (max_out > 0) {
            bool done = true;
            for (int o = 0; o < n_out; o++) done = done && (long long)out[o].cyc.size() >= max_out;
            if (done) break;
        }
    }
    for (int i = 0; i < n_in; i++) spill(argv[5 + 3 * i], in[i].cyc.data(), 8, in[i].cyc.size());
    for (int o = 0; o < n_out; o++) {
        spill(argv[ob + 1 + 3 * o], out[o].words.data(), 4, out[o].words.size());
        spill(argv[ob + 2 + 3 * o], out[o].cyc.data(), 8, out[o].cyc.size());
    }
    delete dut;
    return 0;
}
"""


def _ports_harness(inputs: list[tuple[str, int]], outputs: list[tuple[str, int]]) -> str:
    """The multi-stream harness for streams ``(port prefix, bits)``: ports ``PREFIX_data``,
    ``PREFIX_valid``, ``PREFIX_ready``."""
    reset, drive, sample = [], [], []
    for i, (name, _) in enumerate(inputs):
        reset.append(f"    dut->{name}_valid = 0;")
        drive.append(f"        dut->{name}_valid = in[{i}].have(cycle);\n"
                     f"        put(dut->{name}_data, in[{i}].word(), in[{i}].n32);")
        sample.append(f"        in_fire[{i}] = dut->{name}_valid && dut->{name}_ready;")
    for o, (name, _) in enumerate(outputs):
        reset.append(f"    dut->{name}_ready = 0;")
        drive.append(f"        dut->{name}_ready = out[{o}].take(cycle);")
        sample.append(f"        out_fire[{o}] = dut->{name}_valid && dut->{name}_ready;\n"
                      f"        if (out_fire[{o}]) get(dut->{name}_data, out[{o}].word.data(), "
                      f"out[{o}].n32);")
    return (_PORTS_HARNESS.replace("@N_IN@", str(len(inputs)))
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
    ``p`` is the ports ``p_data``, ``p_valid``, ``p_ready`` (plus ``clk``, ``rst``). Each input
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
