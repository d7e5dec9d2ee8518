"""The HLS backend: a design -> BUILD_DIR/hls/, a self-contained Vitis HLS project.

The C++ library (``hls/include/pascal/``) and the Jinja templates (``hls/templates/``) ship inside
the package (``pascal_fpga/hls``; ``hls/`` at the top of the repository points there); this module reads the IR, packs weights and thresholds for each layer's PE
and SIMD, and renders the templates. The same IR and options give a byte-identical folder.

Per layer the generated code holds a config struct (sizes, T_IN/T_OUT, frame bits, PE, SIMD, the
weight and accumulator types), the packed arrays, and a wrapper function that calls the library
template; ``pascal_top`` chains the wrappers in a DATAFLOW region between AXI-Stream adapters.
What each layer class becomes is its emitter here (:data:`EMITTERS`): its config constants,
its C++ types and its stages (library calls with their parameter arrays). A design of the QNN twin
(``design.arch == "qnn"``) has the same configs and arrays; its thresholding layers
(``layer.binary_out``) call ``mvu_threshold_binary`` and ``add_join_binary``, which write each
channel's level in binary (hls/ARCHITECTURE.md).
"""

from __future__ import annotations

import math
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
import numpy as np

from ...errors import PascalError
from ...names import show_value
from ..layers import AddLayer, ForkLayer, HWLayer, PoolLayer, WeightedLayer
from .registry import Emitters

HLS_ROOT = Path(__file__).resolve().parents[2] / "hls"   # pascal_fpga/hls (the repo's hls/)
LIBRARY = HLS_ROOT / "include" / "pascal"
TEMPLATES = HLS_ROOT / "templates"
DEFAULT_PART = "xc7z020clg400-1"   # PYNQ-Z2
DEFAULT_CLOCK_MHZ = 100.0
SAMPLE_IMAGES = 4                   # random test images shipped in tb/ for Vitis csim / cosim


@dataclass
class StageSpec:
    """One stage of the DATAFLOW region: its name (C identifier), the library call (without
    arguments), the parameter arrays passed after its two streams, and its output stream's
    C++ element type."""

    name: str
    call: str
    args: list[str] = field(default_factory=list)
    out_type: str = ""
    inputs: int = 1      # input streams (an add reads two)
    outputs: int = 1     # output streams (a fork writes two)
    counters: str = ""   # the testbench's loop-counter tag of the stage (pascal/types.h)


class HLSEmitter:
    """What one layer class becomes in the HLS project: its config constants, its C++ types
    and its stages."""

    def config(self, layer: HWLayer) -> dict[str, int]:
        raise NotImplementedError

    def types(self, layer: HWLayer) -> dict[str, str]:
        return {}

    def stages(self, layer: HWLayer) -> list[StageSpec]:
        raise NotImplementedError


EMITTERS: Emitters[HLSEmitter] = Emitters("hls")


@EMITTERS.register(WeightedLayer)
class WeightedEmitter(HLSEmitter):
    """A feeder (window or vector generator) and an MVU with its emitter."""

    def config(self, layer):
        return dict(IN_CH=layer.in_channels, IN_H=layer.in_h, IN_W=layer.in_w,
                    OUT_CH=layer.out_channels, OUT_H=layer.out_h, OUT_W=layer.out_w,
                    K=layer.kernel, STRIDE=layer.stride, PAD=layer.pad, T_IN=layer.t_in,
                    FB=layer.fb_in, T_OUT=_thresholds(layer), PE=layer.pe, SIMD=layer.simd,
                    ZERO_SKIP=int(layer.zero_skip))

    def types(self, layer):
        return {"weight_t": f"ap_int<{layer.weight_bits}>", "acc_t": f"ap_int<{layer.acc_bits}>"}

    def stages(self, layer):
        feeder = "window_generator" if layer.is_conv else "vector_generator"
        mvu = {"classifier": "mvu_classifier", "accumulator": "mvu_accumulator"}.get(
            layer.emitter, "mvu_threshold_binary" if layer.binary_out else "mvu_threshold")
        roles = list(layer.arrays_roles())
        if layer.emitter == "accumulator":   # starts at 0: no bias array
            roles = ["weights"]
        return [StageSpec(f"{layer.name}_feed", f"pascal::{feeder}<{layer.name}_cfg>", [],
                          f"pascal::token<{layer.name}_cfg>", counters="feed_stage"),
                StageSpec(f"{layer.name}_mvu", f"pascal::{mvu}<{layer.name}_cfg>",
                          [f"{layer.name}_{role}" for role in roles],
                          f"ap_uint<{layer.out_word_bits}>", counters="mvu_stage")]


@EMITTERS.register(PoolLayer)
class PoolEmitter(HLSEmitter):
    def config(self, layer):
        return dict(CH=layer.in_channels, IN_H=layer.in_h, IN_W=layer.in_w, OUT_H=layer.out_h,
                    OUT_W=layer.out_w, K=layer.kernel, STRIDE=layer.stride, T=layer.t_in,
                    FB_IN=layer.fb_in, FB_OUT=layer.fb_out, PE=layer.pe, SUM=int(layer.sum))

    def stages(self, layer):
        return [StageSpec(layer.name, f"pascal::pool<{layer.name}_cfg>", [],
                          f"ap_uint<{layer.out_word_bits}>", counters="pool_stage")]


@EMITTERS.register(ForkLayer)
class ForkEmitter(HLSEmitter):
    def config(self, layer):
        return dict(WORDS=layer.words, BITS=layer.in_word_bits)

    def stages(self, layer):
        return [StageSpec(layer.name, f"pascal::fork<{layer.name}_cfg>", [],
                          f"ap_uint<{layer.out_word_bits}>", outputs=2,
                          counters="fork_stage")]


@EMITTERS.register(AddLayer)
class AddEmitter(HLSEmitter):
    def config(self, layer):
        return dict(CH=layer.out_channels, OUT_H=layer.out_h, OUT_W=layer.out_w, PE=layer.pe,
                    ACC_BITS=layer.main_bits, SC_ACC=int(layer.short_acc), T_SC=layer.t_in,
                    FB_SC=layer.fb_in, SC_BITS=layer.short_bits, N_BITS=layer.n_bits,
                    T_OUT=layer.t_out, SH_BITS=layer.shift_bits)

    def types(self, layer):
        return {"thr_t": f"ap_int<{layer.n_bits}>"}

    def stages(self, layer):
        join = "add_join_binary" if layer.binary_out else "add_join"
        return [StageSpec(layer.name, f"pascal::{join}<{layer.name}_cfg>",
                          [f"{layer.name}_{role}" for role in layer.arrays()],
                          f"ap_uint<{layer.out_word_bits}>", inputs=2,
                          counters="add_stage")]


def _thresholds(layer: HWLayer) -> int:
    """T_OUT of a weighted layer's config: its thresholds per channel, which are also the frames
    it writes unless it writes each channel's level in binary (the QNN twin's
    ``binary_out``: one frame of ``fb_out`` = bits(T_OUT) bits, mvu_threshold_binary)."""
    return layer.t_out if layer.binary_out else layer.out_frames


def c_initializer(values: np.ndarray, per_line: int = 32) -> str:
    """The body of a flat C initializer list: integers, ``per_line`` to a line, no braces."""
    flat = np.asarray(values).reshape(-1).astype(np.int64)
    lines = [", ".join(map(str, flat[i:i + per_line].tolist()))
             for i in range(0, len(flat), per_line)]
    return ",\n".join(lines)


def _param_type(values: np.ndarray, bits: int) -> str:
    """PASCAL_PARAM(bits, smallest C integer type holding the values)."""
    low, high = int(values.min()), int(values.max())
    for ctype, width in (("signed char", 8), ("short", 16), ("int", 32)):
        if -(2 ** (width - 1)) <= low and high < 2 ** (width - 1):
            return f"PASCAL_PARAM({bits}, {ctype})"
    return f"PASCAL_PARAM({bits}, long long)"


def design_context(design, name: str, part: str, clock_mhz: float) -> dict[str, Any]:
    """What the templates render (hls/README.md): configs, parameter arrays, stages, FIFOs and
    the taps of each layer's output stream, all read from the hardware layer classes and
    their emitters."""
    classifier = design.classifier
    input_cfg = {"PIXELS": design.pixels, "CH": design.channels, "IN_BITS": design.bits,
                 "AXI_BITS": design.axi_bits, "GROUP": design.input_group}
    output_cfg = {"CLASSES": classifier.out_channels, "ACC_BITS": classifier.acc_bits,
                  "PE": classifier.pe}
    configs = [{"name": "input_cfg", "comment": "the AXI-Stream input adapter",
                "consts": input_cfg, "types": {}}]
    arrays, stages, fifos, taps = [], [], [], []
    stages.append({"name": "input", "call": "pascal::read_pixels<input_cfg>", "args": [],
                   "type": f"ap_uint<{design.input_group * design.bits}>",
                   "counters": "input_stage"})
    for layer in design.layers:
        emitter = EMITTERS(layer)
        specs = emitter.stages(layer)
        configs.append({"name": f"{layer.name}_cfg", "comment": f"{layer.name} {layer.op_type}",
                        "consts": emitter.config(layer), "types": emitter.types(layer)})
        used = {arg[len(layer.name) + 1:] for spec in specs for arg in spec.args}
        for role, values in layer.arrays().items():
            if role not in used:
                continue
            bits = layer.array_bits(role)
            arrays.append({"layer": layer.name, "role": role, "name": f"{layer.name}_{role}",
                           "ctype": _param_type(values, bits), "shape": list(values.shape),
                           "dims": "".join(f"[{d}]" for d in values.shape),
                           "size": int(values.size), "text": c_initializer(values)})
        for spec in specs:
            stages.append({"name": spec.name, "call": spec.call, "args": spec.args,
                           "type": spec.out_type, "counters": spec.counters})
        if layer.output_kind is None:
            continue   # its output is its input (the next layers' taps check it)
        taps.append({"layer": layer.name, "fifo": f"{stages[-1]['name']}_out",
                     "kind": layer.output_kind, "acc_bits": layer.acc_bits_out,
                     "frames": layer.out_frames, "frame_bits": layer.fb_out,
                     "group": layer.out_group, "channels": layer.out_channels,
                     "pixels": layer.out_pixels})
    stages.append({"name": "output", "call": "pascal::write_classes<output_cfg>", "args": [],
                   "type": "", "counters": "output_stage"})
    configs.append({"name": "output_cfg", "comment": "the AXI-Stream output adapter",
                    "consts": output_cfg, "types": {}})
    for stage in stages:
        stage["in_fifos"], stage["out_fifos"] = [], []
    for fifo in design.fifos():
        producer = stages[fifo.producer]
        name = f"{producer['name']}_out" + (str(fifo.out_port) if fifo.out_port else "")
        fifos.append({"name": name, "type": producer["type"], "depth": fifo.depth,
                      "source": producer["name"], "target": stages[fifo.consumer]["name"]})
        producer["out_fifos"].append((fifo.out_port, name))
        stages[fifo.consumer]["in_fifos"].append((fifo.in_port, name))
    stages[0]["in_fifos"] = [(0, "in")]
    stages[-1]["out_fifos"] = [(0, "out")]
    for stage in stages:
        stage["in_fifos"] = [name for _, name in sorted(stage["in_fifos"])]
        stage["out_fifos"] = [name for _, name in sorted(stage["out_fifos"])]
        stage["in_fifo"], stage["out_fifo"] = stage["in_fifos"][0], stage["out_fifos"][0]
        stage["streams"] = stage["in_fifos"] + stage["out_fifos"]
    return {
        "name": name, "part": part, "clock_mhz": clock_mhz,
        "arch": getattr(design, "arch", "snn"),   # README.md.j2 names the QNN twin
        "clock_ns": f"{1000.0 / clock_mhz:.3f}",
        "input": {"channels": design.channels, "bits": design.bits, "height": design.height,
                  "width": design.width, "pixels": design.pixels, "axi_bits": design.axi_bits,
                  "word_bits": design.channels * design.bits, "group": design.input_group},
        "classes": classifier.out_channels, "acc_bits": classifier.acc_bits,
        "classifier_pe": classifier.pe, "sample_images": SAMPLE_IMAGES,
        "configs": configs, "arrays": arrays, "stages": stages, "fifos": fifos, "taps": taps,
        "layers": [layer.name for layer in design.layers],
    }


# Quoting for the generated files. The model name and the part are checked where they enter
# (pascal_fpga.names); these filters keep anything that slips past inert where it is written.
_COMMENT_UNSAFE = re.compile(r"[^A-Za-z0-9_.+\- ]")
_TCL_SAFE = re.compile(r"[A-Za-z0-9_.+\-]")


def comment_text(value: object) -> str:
    """Text for a one-line comment of any generated file (C++ ``//``, tcl and Makefile ``#``,
    Markdown): letters, digits, space, '_', '.', '+', '-'; everything else, newlines and a
    backslash (which would continue the comment onto the next line) included, becomes '_'."""
    return _COMMENT_UNSAFE.sub("_", str(value))


def tcl_word(value: object) -> str:
    """One tcl word that stands for ``value`` literally: every character outside letters,
    digits, '_', '.', '+', '-' is backslash-escaped (so ``$``, ``[``, ``;``, braces and quotes
    lose their meaning) and non-printable characters become '_' (an escaped newline would
    still split the command)."""
    text = str(value)
    if not text:
        return "{}"
    return "".join(c if _TCL_SAFE.fullmatch(c) else "\\" + c if " " <= c <= "~" else "_"
                   for c in text)


def file_stem(value: object) -> str:
    """The start of a file or folder name, and a plain tcl word: letters, digits, '_', '.' and
    '-', other characters ('/' included) replaced by '_', starting with a letter, digit or '_'
    (not an option, not a hidden file, never '..'), so ``open_project`` stays in its folder."""
    text = re.sub(r"[^A-Za-z0-9_.\-]", "_", str(value))
    return text if text[:1].isalnum() or text[:1] == "_" else "_" + text


def template_environment(templates: Path = TEMPLATES) -> jinja2.Environment:
    """The Jinja environment of generated files (HLS, and the RTL's with its own templates)."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(templates)),
                             undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                             trim_blocks=True, lstrip_blocks=True)
    env.filters.update(comment=comment_text, tcl_word=tcl_word, file_stem=file_stem)
    return env


def sample_images(spec: dict[str, Any], count: int = SAMPLE_IMAGES, seed: int = 0) -> np.ndarray:
    """Deterministic random test images (int32, N C H W) for the project's own testbench."""
    shape = spec["input"]
    rng = np.random.default_rng(seed)
    size = (count, shape["channels"], shape["height"], shape["width"])
    return rng.integers(0, 2 ** shape["bits"], size=size).astype(np.int32)


def _input_shape(spec: Any) -> dict[str, int]:
    """The spec's input (channels, height, width, bits) as positive Python ints: these numbers
    are written into C++ as they are."""
    shape = spec.get("input") if isinstance(spec, dict) else None
    if not isinstance(shape, dict):
        raise PascalError("the spec has no input shape")
    values = {}
    for key in ("channels", "height", "width", "bits"):
        value = shape.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise PascalError(f"the spec's input field {key!r} must be a positive integer, got "
                              f"{show_value(value)}")
        values[key] = int(value)
    return values


def render_project(context: dict[str, Any], out: Path, library: Path = LIBRARY) -> None:
    """Render the templates with a design's context (:func:`design_context`) into ``out``: the
    project files, one parameter header per layer, and a copy of the library's headers."""
    env = template_environment()
    out.mkdir(parents=True, exist_ok=True)
    files = {
        "firmware/pascal_top.h": "pascal_top.h.j2",
        "firmware/pascal_top.cpp": "pascal_top.cpp.j2",
        "firmware/layers.h": "layers.h.j2",
        "firmware/parameters.h": "parameters.h.j2",
        "tb/tb_pascal.cpp": "tb_pascal.cpp.j2",
        "Makefile": "Makefile.j2",
        "run_hls.tcl": "run_hls.tcl.j2",
        "README.md": "README.md.j2",
    }
    for target, template in files.items():
        path = out / target
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(env.get_template(template).render(**context))
    params = out / "firmware" / "params"
    params.mkdir(parents=True, exist_ok=True)
    template = env.get_template("params.h.j2")
    layers = context.get("layers") or list(dict.fromkeys(a["layer"] for a in context["arrays"]))
    for layer in layers:
        layer_arrays = [a for a in context["arrays"] if a["layer"] == layer]
        (params / f"{layer}.h").write_text(template.render(
            layer=layer, layer_arrays=layer_arrays, **context))
    include = out / "include" / "pascal"
    include.mkdir(parents=True)
    for header in sorted(Path(library).glob("*.h")):
        shutil.copyfile(header, include / header.name)


def generate_hls(design, out: Path, spec: dict[str, Any], name: str,
                 part: str = DEFAULT_PART, clock_mhz: float = DEFAULT_CLOCK_MHZ) -> dict[str, Any]:
    """Write the HLS project of ``design`` (:class:`pascal_fpga.hw.design.Design`) into ``out``
    (a fresh folder). Returns its description."""
    if not LIBRARY.is_dir() or not TEMPLATES.is_dir():
        raise PascalError(f"{HLS_ROOT}: the HLS library is missing (reinstall pascal-fpga)")
    if not isinstance(clock_mhz, (int, float)) or not math.isfinite(clock_mhz) or clock_mhz <= 0:
        raise PascalError(f"--clock-mhz must be positive and finite, got {clock_mhz}")
    shape = _input_shape(spec)
    if (shape["channels"], shape["bits"]) != (design.channels, design.bits):
        raise PascalError(f"layer {design.layers[0].name}: takes {design.channels} channels of "
                          f"{design.bits} bits, the input is {shape['channels']} x "
                          f"{shape['bits']} bits")
    context = design_context(design, name, part, clock_mhz)
    render_project(context, out)
    return {"layers": [layer.name for layer in design.layers], "part": part,
            "clock_mhz": clock_mhz, "axi_in_bits": design.axi_bits,
            "classes": design.classifier.out_channels,
            "stages": [stage["name"] for stage in context["stages"]]}
