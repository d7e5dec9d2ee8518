"""The RTL backend: a design -> BUILD_DIR/rtl/, and its Verilator testbench.

The SystemVerilog library (``pascal_fpga/rtl/modules``; ``rtl/`` at the top of the repository
points to ``pascal_fpga/rtl``) and its contract (``pascal_fpga/rtl/README.md``) ship inside the
package. From the same hardware layer classes as the HLS project (each class's emitter here,
:data:`EMITTERS`: its modules, their parameters and write latencies, its memory files) this
module writes a top that chains the library's modules and FIFOs, the memory files of weights,
thresholds and biases, per-layer wrappers for out-of-context synthesis, a Verilator testbench and a
Makefile. Generated identifiers are indices (``stage3``, ``fifo3``, ``layer1``); the layer names
appear only in comments, quoted. The same design gives a byte-identical folder.

:func:`run_rtlsim` runs the testbench on images: the outputs, the words of every layer's output
stream, and the cycles of chosen transfers (each image's first read and last write per stage), to
compare with the IR and the cycle model (``pascal-fpga verify --rtlsim``).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ...buildfolder import own_folder
from ...errors import PascalError
from ..layers import AddLayer, ForkLayer, HWLayer, PoolLayer, WeightedLayer
from .. import rtlsim
from ..rtlsim import build
from ..schedule import LOOP_OVERHEAD
from .hls import template_environment
from .registry import Emitters

RTL_ROOT = Path(__file__).resolve().parents[2] / "rtl"   # pascal_fpga/rtl (the repo's rtl/)
MODULES = rtlsim.MODULES   # pascal_fpga/rtl/modules, the library (one definition)
TEMPLATES = RTL_ROOT / "templates"
IDLE_LIMIT = 1 << 22     # cycles without any transfer before the testbench calls the design stuck
MODULE_ORDER = ("pascal_fifo", "pascal_rom", "pascal_handshake", "pascal_active", "pascal_input",
                "pascal_window_gen", "pascal_vector_gen", "pascal_mvu", "pascal_pool", "pascal_fork",
                "pascal_add", "pascal_output")
# the stream ports of the modules with more than one input or output (others: in_*, out_*)
IN_PORTS = {"pascal_add": ("main", "short")}
OUT_PORTS = {"pascal_fork": ("out0", "out1")}


# each stage's SystemVerilog module and its write latency P in slots (pascal_fpga/rtl/README.md:
# its program is the HLS one with every write P slots later and P drain slots per image)
RTL_LATENCY = {"pascal_input": 0, "pascal_window_gen": 1, "pascal_vector_gen": 1, "pascal_mvu": 3,
               "pascal_pool": 1, "pascal_output": 0, "pascal_fork": 0, "pascal_add": 2}


@dataclass
class RTLStage:
    """One stage of the RTL top: its name (as in the HLS top), module, parameters (file
    parameters are paths relative to BUILD/rtl), its input and output word widths, and its
    write latency in slots (by default the library module's, :data:`RTL_LATENCY`)."""

    name: str
    module: str
    params: dict[str, Any]
    in_bits: int
    out_bits: int
    latency: int = -1

    def __post_init__(self):
        if self.latency < 0:
            self.latency = RTL_LATENCY[self.module]


class RTLEmitter:
    """What one layer class becomes in the RTL top: its modules with their parameters, and the
    contents of its memory files."""

    def stages(self, layer: HWLayer, files: dict[str, str]) -> list[RTLStage]:
        """The layer's stages; ``files``: role -> memory file path (empty for what does not
        need them, like the write latencies)."""
        raise NotImplementedError

    def memories(self, layer: HWLayer) -> dict[str, str]:
        """Role -> the text of its ``$readmemh`` file (one hex number a line)."""
        return {}


EMITTERS: Emitters[RTLEmitter] = Emitters("rtl")


@EMITTERS.register(WeightedLayer)
class WeightedEmitter(RTLEmitter):
    """pascal_window_gen or pascal_vector_gen, then pascal_mvu."""

    def stages(self, layer, files):
        if layer.is_conv:
            feed = RTLStage(f"{layer.name}_feed", "pascal_window_gen", dict(
                IN_CH=layer.in_channels, IN_H=layer.in_h, IN_W=layer.in_w, OUT_H=layer.out_h,
                OUT_W=layer.out_w, K=layer.kernel, STRIDE=layer.stride, PAD=layer.pad,
                T_IN=layer.t_in, FB=layer.fb_in, SIMD=layer.simd,
                ZERO_SKIP=int(layer.zero_skip)), layer.in_word_bits, layer.token_bits)
        else:
            feed = RTLStage(f"{layer.name}_feed", "pascal_vector_gen", dict(
                SIMD=layer.simd, T_IN=layer.t_in, FB=layer.fb_in, SF=layer.sf,
                ZERO_SKIP=int(layer.zero_skip)), layer.in_word_bits, layer.token_bits)
        param_role = layer.arrays_roles()[1]
        mvu = RTLStage(f"{layer.name}_mvu", "pascal_mvu", dict(
            SIMD=layer.simd, PE=layer.pe, T_IN=layer.t_in, FB=layer.fb_in, SF=layer.sf,
            NF=layer.nf, WINDOWS=layer.windows, T_OUT=_thresholds(layer), WB=layer.weight_bits,
            ACC_BITS=layer.acc_bits, CLASSIFIER=int(layer.accumulates),
            WEIGHT_FILE=files.get("weights", ""), PARAM_FILE=files.get(param_role, "")),
            layer.token_bits, layer.out_word_bits)
        if layer.binary_out:
            mvu.params["OUT_BINARY"] = 1
        return [feed, mvu]

    def memories(self, layer):
        return {role: hex_rows(values.reshape(values.shape[0], -1), layer.array_bits(role))
                for role, values in layer.arrays().items()}


@EMITTERS.register(PoolLayer)
class PoolEmitter(RTLEmitter):
    def stages(self, layer, files):
        return [RTLStage(layer.name, "pascal_pool", dict(
            CH=layer.in_channels, IN_H=layer.in_h, IN_W=layer.in_w, OUT_H=layer.out_h,
            OUT_W=layer.out_w, K=layer.kernel, STRIDE=layer.stride, T=layer.t_in,
            FB_IN=layer.fb_in, FB_OUT=layer.fb_out, PE=layer.pe, SUM=int(layer.sum)),
            layer.in_word_bits, layer.out_word_bits)]


@EMITTERS.register(ForkLayer)
class ForkEmitter(RTLEmitter):
    def stages(self, layer, files):
        return [RTLStage(layer.name, "pascal_fork", dict(BITS=layer.in_word_bits,
                                                         WORDS=layer.words),
                         layer.in_word_bits, layer.out_word_bits)]


@EMITTERS.register(AddLayer)
class AddEmitter(RTLEmitter):
    def stages(self, layer, files):
        params = dict(CH=layer.out_channels, OUT_PIXELS=layer.out_h * layer.out_w, PE=layer.pe,
                      ACC_BITS=layer.main_bits, SC_ACC=int(layer.short_acc), T_SC=layer.t_in,
                      FB_SC=layer.fb_in, SC_BITS=layer.short_bits, N_BITS=layer.n_bits,
                      T_OUT=layer.t_out, SH_BITS=layer.shift_bits,
                      THRESH_FILE=files.get("thresh", ""), SHIFT_FILE=files.get("shift", ""))
        if layer.binary_out:
            params["OUT_BINARY"] = 1
        return [RTLStage(layer.name, "pascal_add", params, layer.in_word_bits,
                         layer.out_word_bits)]

    def memories(self, layer):
        tables = add_memories(layer.thresholds, layer.shift_main, layer.shift_short, layer.pe,
                              layer.n_bits, layer.shift_bits)
        return {role: "".join(line.rstrip("\n") + "\n" for line in lines)
                for role, lines in tables.items()}


def _thresholds(layer: HWLayer) -> int:
    """T_OUT of pascal_mvu: the thresholds per channel (the frames it writes unless the
    level leaves in binary, OUT_BINARY = 1)."""
    return layer.t_out if layer.binary_out else layer.out_frames


def hex_rows(values: np.ndarray, bits: int) -> str:
    """One hex number per row of ``values`` (rows x elements, signed ints): element e in two's
    complement at bits [e*bits, (e+1)*bits). Vectorised: bits -> nibbles -> hex digits."""
    rows = np.asarray(values, dtype=np.int64).reshape(len(values), -1)
    count, elements = rows.shape
    width = (elements * bits + 3) // 4
    if count == 0:
        return ""
    masked = rows.astype(np.uint64) & np.uint64((1 << bits) - 1)
    flat = ((masked[:, :, None] >> np.arange(bits, dtype=np.uint64)) & np.uint64(1))
    flat = flat.reshape(count, elements * bits).astype(np.uint8)
    flat = np.pad(flat, ((0, 0), (0, width * 4 - elements * bits)))
    nibbles = flat.reshape(count, width, 4) @ np.array([1, 2, 4, 8], dtype=np.uint8)
    digits = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)[nibbles[:, ::-1]]
    lines = np.concatenate([digits, np.full((count, 1), ord("\n"), dtype=np.uint8)], axis=1)
    return lines.tobytes().decode("ascii")


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


def memory_files(design) -> tuple[dict[str, dict[str, str]], dict[str, str]]:
    """Per layer the memory file of each role (paths relative to BUILD/rtl) and the files'
    contents: weights [NF*SF][PE][SIMD] (WB bits each), thresholds [NF][PE][T_OUT] and
    biases [NF][PE] (ACC_BITS each), a residual add's threshold and shift tables."""
    files: dict[str, dict[str, str]] = {}
    contents: dict[str, str] = {}
    for index, layer in enumerate(design.layers):
        files[layer.name] = {}
        for role, text in EMITTERS(layer).memories(layer).items():
            path = f"mem/layer{index}_{role}.mem"
            contents[path] = text
            files[layer.name][role] = path
    return files, contents


def design_stages(design, files: dict[str, dict[str, str]] | None = None) -> list[RTLStage]:
    """Every stage of the RTL top in dataflow order; ``files``: layer -> role -> memory file
    path (relative to BUILD/rtl)."""
    files = files or {}
    c = design.classifier
    stages = [RTLStage("input", "pascal_input", dict(
        PIXELS=design.pixels, CH=design.channels, IN_BITS=design.bits, AXI_BITS=design.axi_bits,
        GROUP=design.input_group), design.axi_bits, design.input_group * design.bits)]
    for layer in design.layers:
        stages += EMITTERS(layer).stages(layer, files.get(layer.name, {}))
    stages.append(RTLStage("output", "pascal_output", dict(
        CLASSES=c.out_channels, ACC_BITS=c.acc_bits, PE=c.pe), c.out_word_bits, 32))
    return stages


def _value(value: Any) -> str:
    return f'"{value}"' if isinstance(value, str) else str(int(value))


def _output_fifo(design) -> dict[int, int]:
    """Stage index -> the FIFO its output (port 0) writes."""
    return {f.producer: k for k, f in reversed(list(enumerate(design.fifos())))
            if f.out_port == 0}


def stage_fifos(design) -> tuple[list[int], list[int]]:
    """Per stage, the FIFO of its first input (-1: the AXI input) and of its first output (-2:
    the AXI output): the transfers the testbench marks."""
    fifos = design.fifos()
    count = len(design.stage_names())
    first_in, first_out = [-1] * count, [-2] * count
    for k, f in reversed(list(enumerate(fifos))):
        if f.in_port == 0:
            first_in[f.consumer] = k
        if f.out_port == 0:
            first_out[f.producer] = k
    return first_in, first_out


def layer_taps(design) -> list[dict[str, Any]]:
    """Per layer (a fork has none: its output is its input) the FIFO its last stage writes
    (tapped by the testbench) and how to decode its words."""
    out_fifo = _output_fifo(design)
    taps = []
    for j, (layer, (_, last)) in enumerate(zip(design.layers, design.stage_ranges())):
        if layer.output_kind is None:
            continue
        taps.append({"index": j, "layer": layer.name, "fifo": out_fifo[last],
                     "bits": layer.out_word_bits, "group": layer.out_group,
                     "frames": layer.out_frames, "frame_bits": layer.fb_out,
                     "kind": layer.output_kind, "acc_bits": getattr(layer, "acc_bits", 0)})
    return taps


def rtl_context(design, name: str, clock_mhz: float) -> tuple[dict[str, Any], dict[str, str]]:
    """What the templates render, and the memory files' contents."""
    files, contents = memory_files(design)
    stages = []
    for index, stage in enumerate(design_stages(design, files)):
        stages.append({"index": index, "name": stage.name, "module": stage.module,
                       "params": [(k, _value(v)) for k, v in stage.params.items()],
                       "in_bits": stage.in_bits, "out_bits": stage.out_bits,
                       "latency": stage.latency, "ins": [], "outs": []})
    fifos = []
    for k, f in enumerate(design.fifos()):
        producer, consumer = stages[f.producer], stages[f.consumer]
        fifos.append({"index": k, "width": f.bits, "depth": int(f.depth),
                      "source": producer["name"], "target": consumer["name"]})
        out_name = OUT_PORTS.get(producer["module"], ("out",))[f.out_port]
        in_name = IN_PORTS.get(consumer["module"], ("in",))[f.in_port]
        producer["outs"].append({"port": out_name, "fifo": k, "bits": f.bits})
        consumer["ins"].append({"port": in_name, "fifo": k, "bits": f.bits})
    layers = []
    for j, (layer, (first, last)) in enumerate(zip(design.layers, design.stage_ranges())):
        own = stages[first:last + 1]
        inner = [fifos[p["fifo"]] for s in own[:-1] for p in s["outs"]]
        layers.append({"index": j, "name": layer.name, "stages": own, "ins": own[0]["ins"],
                       "outs": own[-1]["outs"], "inner": inner})
    context = {
        "name": name, "clock_mhz": clock_mhz,
        "input": {"channels": design.channels, "bits": design.bits, "pixels": design.pixels,
                  "axi_bits": design.axi_bits},
        "classes": design.classifier.out_channels, "stages": stages, "fifos": fifos,
        "taps": layer_taps(design), "layers": layers, "idle_limit": IDLE_LIMIT,
        "modules": [m for m in MODULE_ORDER if (MODULES / f"{m}.sv").is_file()],
    }
    return context, contents


def generate_rtl(design, out: Path, name: str, clock_mhz: float) -> dict[str, Any]:
    """Write BUILD_DIR/rtl into ``out`` (a fresh folder). Returns its description."""
    missing = [m for m in MODULE_ORDER if not (MODULES / f"{m}.sv").is_file()]
    if missing:
        raise PascalError(f"{MODULES}: the RTL library is missing {', '.join(missing)} "
                          f"(reinstall pascal-fpga)")
    context, contents = rtl_context(design, name, clock_mhz)
    env = template_environment(TEMPLATES)
    out.mkdir(parents=True, exist_ok=True)
    for target, template in {"pascal_top.sv": "pascal_top.sv.j2", "layers.sv": "layers.sv.j2",
                             "tb/tb_pascal.cpp": "tb_pascal.cpp.j2", "Makefile": "Makefile.j2",
                             "README.md": "README.md.j2"}.items():
        path = out / target
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(env.get_template(template).render(**context))
    for path, text in sorted(contents.items()):
        (out / path).parent.mkdir(parents=True, exist_ok=True)
        (out / path).write_text(text)
    (out / "modules").mkdir()
    for module in MODULE_ORDER:
        shutil.copyfile(MODULES / f"{module}.sv", out / "modules" / f"{module}.sv")
    return {"top": "pascal_top", "stages": [s["name"] for s in context["stages"]],
            "modules": list(MODULE_ORDER),
            "latency": {s["name"]: s["latency"] for s in context["stages"]}}


def sources(rtl_dir: Path) -> list[Path]:
    """The SystemVerilog files of a generated RTL folder (modules first, then the top)."""
    return [rtl_dir / "modules" / f"{m}.sv" for m in MODULE_ORDER] + [rtl_dir / "pascal_top.sv"]


def build_rtlsim(build_dir: Path, root: Path | None = None) -> Path:
    """Compile BUILD_DIR/rtl's testbench with Verilator (into ``root``, by default
    BUILD_DIR/rtlsim/, reused while the sources are unchanged); the binary."""
    rtl_dir = build_dir / "rtl"
    if not (rtl_dir / "pascal_top.sv").is_file():
        raise PascalError(f"{build_dir}: no RTL (rtl/pascal_top.sv); compile again")
    harness = (rtl_dir / "tb" / "tb_pascal.cpp").read_text()
    if root is None:
        own_folder(build_dir, "rtl")
        root = own_folder(build_dir, "rtlsim")  # a link would send the build elsewhere
    return build(sources(rtl_dir), "pascal_top", harness, {},
                 extra_flags=("+define+PASCAL_TAPS",), root=root)


def axi_words(images: np.ndarray, bits: int, axi_bits: int) -> np.ndarray:
    """Images (N, C, H, W) -> the AXI input words as (N*H*W, axi_bits/32 rounded up) uint32:
    one pixel per word, channel c at bits [c*bits, (c+1)*bits)."""
    n, c, h, w = images.shape
    pix = np.asarray(images, dtype=np.uint64).transpose(0, 2, 3, 1).reshape(-1, c)
    n32 = (axi_bits + 31) // 32
    out = np.zeros((len(pix), n32), dtype=np.uint64)
    for ch in range(c):
        pos = ch * bits
        limb, shift = divmod(pos, 32)
        out[:, limb] |= (pix[:, ch] << np.uint64(shift)) & np.uint64(0xFFFFFFFF)
        if shift + bits > 32:
            out[:, limb + 1] |= pix[:, ch] >> np.uint64(32 - shift)
    return out.astype(np.uint32)


def _fields(limbs: np.ndarray, count: int, bits: int) -> np.ndarray:
    """(M, n32) uint32 words -> (M, count) unsigned fields of ``bits`` bits each (field i at
    bits [i*bits, (i+1)*bits))."""
    as_bytes = np.ascontiguousarray(limbs.astype("<u4")).view(np.uint8)
    flat = np.unpackbits(as_bytes, axis=1, bitorder="little")[:, :count * bits]
    flat = flat.reshape(len(limbs), count, bits).astype(np.int64)
    return (flat << np.arange(bits, dtype=np.int64)).sum(axis=2)


def decode_tap(limbs: np.ndarray, tap: dict[str, Any], images: int) -> np.ndarray:
    """A layer's output words -> (N, values) in stream order: levels (the sum of each channel's
    frames) or, for the classifier, the signed accumulators."""
    if tap["kind"] == "accumulators":
        bits = tap["acc_bits"]
        values = _fields(limbs, tap["group"], bits)
        values = np.where(values >= 1 << (bits - 1), values - (1 << bits), values)
    else:
        frames = _fields(limbs, tap["group"] * tap["frames"], tap["frame_bits"])
        values = frames.reshape(len(limbs), tap["group"], tap["frames"]).sum(axis=2)
    return values.reshape(images, -1)


@dataclass
class RTLRun:
    outputs: np.ndarray                 # (N, classes + 1) int64
    taps: dict[str, np.ndarray]         # layer -> (N, values)
    first_read: np.ndarray              # (stages, N): cycle of each image's first input
    last_write: np.ndarray              # (stages, N): cycle of each image's last output
    counts: list[tuple[int, int]]       # per FIFO (writes, reads)
    cycles: int


def run_rtlsim(binary: Path, build_dir: Path, design, programs, images: np.ndarray) -> RTLRun:
    """Run ``images`` (N, C, H, W) through the RTL testbench. ``programs``: the design's RTL
    programs for these images (:meth:`~pascal_fpga.hw.design.Design.programs` with ``backend="rtl"``), whose
    per-image read and write counts say which transfers open and close each image at each
    stage: the cycles of those transfers are recorded."""
    n = len(images)
    first_in, first_out = stage_fifos(design)
    marks: list[tuple[int, int, np.ndarray]] = []   # (channel, kind, indices)
    for k, program in enumerate(programs):
        reads = np.asarray(program.reads, dtype=np.int64)
        writes = np.asarray(program.writes, dtype=np.int64)
        first = np.cumsum(reads) - reads                 # index of each image's first read
        last = np.cumsum(writes) - 1                     # index of each image's last write
        marks.append((first_in[k], 1, first))
        marks.append((first_out[k], 0, last))
    with tempfile.TemporaryDirectory(prefix="rtlsim.", dir=binary.parent) as tmp:
        tmp = Path(tmp)
        axi_words(images, design.bits, design.axi_bits).tofile(tmp / "axi_in.bin")
        with open(tmp / "marks.txt", "w") as f:
            for channel, kind, idx in marks:
                f.write(f"{channel} {kind} {len(idx)} " + " ".join(map(str, idx.tolist())) + "\n")
        command = [str(binary), "--axi-in", str(tmp / "axi_in.bin"), "--marks",
                   str(tmp / "marks.txt"), "--out", str(tmp)]
        result = subprocess.run(command, capture_output=True, text=True,
                                cwd=build_dir / "rtl")
        if result.returncode != 0:
            raise PascalError(f"the RTL simulation failed (status {result.returncode}): "
                              f"{(result.stderr or result.stdout).strip()[:300]}")
        outputs = np.fromfile(tmp / "outputs.bin", dtype=np.int32).astype(np.int64)
        outputs = outputs.reshape(n, -1)
        taps = {}
        for tap in layer_taps(design):
            n32 = (tap["bits"] + 31) // 32
            limbs = np.fromfile(tmp / f"tap_{tap['index']}.bin", dtype=np.uint32)
            limbs = limbs.reshape(-1, n32)
            layer = design.layers[tap["index"]].name
            if len(limbs) % n:
                raise PascalError(f"the RTL simulation: layer {layer} wrote {len(limbs)} words "
                                  f"for {n} images")
            taps[layer] = decode_tap(limbs, tap, n)
        cycles = np.fromfile(tmp / "cycles.bin", dtype=np.int64).reshape(len(marks), n)
        counts, total = [], 0
        for line in (tmp / "counts.txt").read_text().splitlines():
            parts = line.split()
            if parts[0] == "cycles":
                total = int(parts[1])
            else:
                counts.append((int(parts[1]), int(parts[2])))
    first_read = cycles[0::2]
    last_write = cycles[1::2]
    return RTLRun(outputs, taps, first_read, last_write, counts, total)


def model_cycles(timing) -> tuple[np.ndarray, np.ndarray]:
    """The cycle model's (first input, last output) per stage and image, the way the testbench
    records them: a stage's first FIFO read (the input stage: its first slot, which reads the
    AXI word) and its last FIFO write (the output stage: its last slot, the last AXI word)."""
    first = timing.first_read.copy()
    last = timing.last_write.copy()
    first[0] = timing.start[0]
    last[-1] = timing.finish[-1] - LOOP_OVERHEAD - 1
    return first, last
