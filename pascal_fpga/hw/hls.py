"""HLS code generation: the spiking IR -> BUILD_DIR/hls/, a self-contained Vitis HLS project.

The C++ library (``hls/include/pascal/``) and the Jinja templates (``hls/templates/``) live at the
top of the repository; this module reads the IR, packs weights and thresholds for each layer's PE
and SIMD, and renders the templates. The same IR and options give a byte-identical folder.

Per layer the generated code holds a config struct (sizes, T_IN/T_OUT, frame bits, PE, SIMD, the
weight and accumulator types), the packed arrays, and a wrapper function that calls the library
template; ``pascal_top`` chains the wrappers in a DATAFLOW region between AXI-Stream adapters.
"""

from __future__ import annotations

import math
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import PascalError
from ..names import show_value
from ..ir.transforms import layer_nodes
from ..ir.widths import unsigned_bits

HLS_ROOT = Path(__file__).resolve().parent.parent.parent / "hls"
LIBRARY = HLS_ROOT / "include" / "pascal"
TEMPLATES = HLS_ROOT / "templates"
DEFAULT_PART = "xc7z020clg400-1"   # PYNQ-Z2
DEFAULT_CLOCK_MHZ = 100.0
SAMPLE_IMAGES = 4                   # random test images shipped in tb/ for Vitis csim / cosim
OUTPUT_FIFO_DEPTH = 2              # classifier -> output adapter (one word per image)
# a layer's name becomes C++ identifiers (its function, config struct, arrays, streams) and the
# file its csim dump is written to: a C identifier, nothing else
LAYER_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")


@dataclass
class HLSLayer:
    """What the templates need to know about one layer."""

    name: str
    op: str
    kind: str                      # conv, pool, dense, classifier
    cfg: dict[str, Any]            # static const unsigned members of the config struct
    in_word_bits: int
    out_word_bits: int
    t_out: int                     # frames per output channel (the next layer's T_IN)
    fb_out: int                    # bits per output frame
    out_channels: int
    out_pixels: int
    weight_bits: int = 0
    acc_bits: int = 0
    call: str = ""
    types: dict[str, str] = field(default_factory=dict)        # weight_t, acc_t
    # the packed arrays by role: weights, then thresholds (or the classifier's bias)
    params: dict[str, np.ndarray] = field(default_factory=dict)
    fifo_depth: int = 2            # of the FIFO that feeds this layer

    @property
    def arrays(self) -> list[dict[str, Any]]:
        """The packed arrays as C declarations (name, type, dims, initializer text), rendered
        only when the templates ask: the cycle model and the estimates need the numbers alone."""
        rows = []
        for role, values in self.params.items():
            bits = self.weight_bits if role == "weights" else self.acc_bits
            rows.append({"name": f"{self.name}_{role}", "type": _param_type(values, bits),
                         "dims": "".join(f"[{d}]" for d in values.shape),
                         "text": _c_array(values)})
        return rows


def _c_array(values: np.ndarray) -> str:
    """A nested C initializer list of integers."""
    if values.ndim == 1:
        return "{" + ", ".join(str(int(v)) for v in values) + "}"
    inner = ",\n".join(_c_array(v) for v in values)
    return "{\n" + inner + "}"


def _param_type(values: np.ndarray, bits: int) -> str:
    """PASCAL_PARAM(bits, smallest C integer type holding the values)."""
    low, high = int(values.min()), int(values.max())
    for ctype, width in (("signed char", 8), ("short", 16), ("int", 32)):
        if -(2 ** (width - 1)) <= low and high < 2 ** (width - 1):
            return f"PASCAL_PARAM({bits}, {ctype})"
    return f"PASCAL_PARAM({bits}, long long)"


def _fold_weights(matrix: np.ndarray, pe: int, simd: int) -> np.ndarray:
    """(OUT, FANIN) -> [NF * SF][PE][SIMD] with output o = nf * PE + pe and input
    i = sf * SIMD + s (the order the kernels read them)."""
    out, fanin = matrix.shape
    nf, sf = out // pe, fanin // simd
    folded = matrix.reshape(nf, pe, sf, simd).transpose(0, 2, 1, 3)
    return folded.reshape(nf * sf, pe, simd)


def _fold_rows(table: np.ndarray, pe: int) -> np.ndarray:
    """(OUT, ...) -> [NF][PE][...]."""
    return table.reshape((table.shape[0] // pe, pe) + table.shape[1:])


def _attrs(node) -> dict[str, Any]:
    from qonnx.custom_op.registry import getCustomOp

    inst = getCustomOp(node)
    return {name: inst.get_nodeattr(name) for name in inst.get_nodeattr_types()}


def hls_layers(model) -> list[HLSLayer]:
    """The layers of an IR model, packed for the templates."""
    layers = []
    previous_fb = None
    seen: set[str] = set()
    for node in layer_nodes(model):
        name = node.name
        if not LAYER_NAME.fullmatch(name) or name in seen:
            raise PascalError(f"layer {show_value(name)}: a layer name must be a unique C "
                              f"identifier (letters, digits, '_', at most 64)")
        seen.add(name)
        a = _attrs(node)
        in_shape, out_shape = list(a["in_shape"]), list(a["out_shape"])
        t_in, t_out, in_max = a["t_in"], a["t_out"], a["in_max"]
        if in_max % t_in:
            raise PascalError(f"layer {name}: input range {in_max} is not a whole number of "
                              f"frames of T_in = {t_in}")
        frame_max = in_max // t_in
        fb = unsigned_bits(frame_max)
        if previous_fb is not None and fb != previous_fb:
            raise PascalError(f"layer {name}: expects {fb}-bit frames, the previous layer sends "
                              f"{previous_fb}-bit frames")
        in_channels = in_shape[0]
        in_pixels = int(np.prod(in_shape[1:])) if len(in_shape) == 3 else 1
        pe, simd = a["pe"], a["simd"]
        if node.op_type in ("SpikingMaxPool", "SpikingSumPool"):
            total = node.op_type == "SpikingSumPool"
            if not total and fb > 1 and t_in > 1:
                raise PascalError(f"layer {name}: max pooling of multi-bit frames over "
                                  f"{t_in} timesteps is not the max of the levels (a max pool "
                                  f"after a sum pool); not supported")
            k = a["kernel"]
            fb_out = unsigned_bits(k * k * frame_max) if total else fb
            cfg = dict(CH=in_channels, IN_H=in_shape[1], IN_W=in_shape[2], OUT_H=out_shape[1],
                       OUT_W=out_shape[2], K=k, STRIDE=a["stride"], T=t_in, FB_IN=fb,
                       FB_OUT=fb_out, PE=pe, SUM=int(total))
            layer = HLSLayer(name, node.op_type, "pool", cfg, in_channels * t_in * fb,
                             in_channels * t_in * fb_out, t_in, fb_out, out_shape[0],
                             out_shape[1] * out_shape[2])
            layer.call = f"pascal::spiking_pool<{name}_cfg>(in, out);"
            layer.fifo_depth = a["fifo_depth"]
            layers.append(layer)
            previous_fb = fb_out
            continue
        weight = np.rint(model.get_initializer(node.input[1])).astype(np.int64)
        third = np.rint(model.get_initializer(node.input[2])).astype(np.int64)
        acc_bits = max(a["acc_bits"], a.get("threshold_bits") or 0)
        weight_bits = a["weight_bits"]
        types = dict(weight_t=f"ap_int<{weight_bits}>", acc_t=f"ap_int<{acc_bits}>")
        if node.op_type.endswith("Conv"):
            k = a["kernel"]
            # (O, C, K, K) -> (O, [ky, kx, c]): the window's tap-major, channel-minor order
            matrix = weight.transpose(0, 2, 3, 1).reshape(weight.shape[0], -1)
            cfg = dict(IN_CH=in_channels, IN_H=in_shape[1], IN_W=in_shape[2],
                       OUT_CH=out_shape[0], OUT_H=out_shape[1], OUT_W=out_shape[2], K=k,
                       STRIDE=a["stride"], PAD=a["pad"], T_IN=t_in, FB=fb, T_OUT=t_out, PE=pe,
                       SIMD=simd)
            kind, out_pixels = "conv", out_shape[1] * out_shape[2]
            call = f"pascal::spiking_conv<{name}_cfg>(in, out, {name}_weights, {name}_thresholds);"
        else:
            if len(in_shape) == 3:  # flattened C, H, W -> the stream's pixel-major H, W, C
                c, h, w = in_shape
                matrix = weight.reshape(weight.shape[0], c, h, w).transpose(0, 2, 3, 1)
                matrix = matrix.reshape(weight.shape[0], -1)
            else:
                matrix = weight
            cfg = dict(IN_PIX=in_pixels, IN_CH=in_channels, OUT_CH=out_shape[0], T_IN=t_in,
                       FB=fb, T_OUT=t_out, PE=pe, SIMD=simd)
            out_pixels = 1
            if node.op_type == "SpikingClassifier":
                kind = "classifier"
                call = f"pascal::classifier<{name}_cfg>(in, out, {name}_weights, {name}_bias);"
            else:
                kind = "dense"
                call = (f"pascal::spiking_dense<{name}_cfg>(in, out, {name}_weights, "
                        f"{name}_thresholds);")
        folded = _fold_weights(matrix, pe, simd)
        if kind == "classifier":
            table = _fold_rows(third.reshape(-1), pe)
            out_bits = out_shape[0] * acc_bits
        else:
            table = _fold_rows(third, pe)
            out_bits = out_shape[0] * t_out
        layer = HLSLayer(name, node.op_type, kind, cfg, in_channels * t_in * fb, out_bits,
                         t_out, 1, out_shape[0], out_pixels, weight_bits, acc_bits, call,
                         types, {"weights": folded,
                                 ("bias" if kind == "classifier" else "thresholds"): table},
                         a["fifo_depth"])
        layers.append(layer)
        previous_fb = 1
    if not layers or layers[-1].kind != "classifier":
        raise PascalError("the IR does not end with a classifier")
    if layers[-1].acc_bits > 32:
        raise PascalError(f"layer {layers[-1].name}: {layers[-1].acc_bits}-bit classifier "
                          f"accumulators do not fit the 32-bit output words")
    return layers


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


def _environment():
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)),
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


def generate_hls(model, out: Path, spec: dict[str, Any], name: str,
                 part: str = DEFAULT_PART, clock_mhz: float = DEFAULT_CLOCK_MHZ) -> dict[str, Any]:
    """Write the HLS project into ``out`` (a fresh folder). Returns its description."""
    if not LIBRARY.is_dir() or not TEMPLATES.is_dir():
        raise PascalError(f"{HLS_ROOT}: the HLS library is missing (run from a clone of the "
                          f"repository)")
    if not isinstance(clock_mhz, (int, float)) or not math.isfinite(clock_mhz) or clock_mhz <= 0:
        raise PascalError(f"--clock-mhz must be positive and finite, got {clock_mhz}")
    layers = hls_layers(model)
    shape = _input_shape(spec)
    channels, bits = shape["channels"], shape["bits"]
    axi_bits = 8 * ((channels * bits + 7) // 8)
    if axi_bits > 1024:
        raise PascalError(f"{channels} channels of {bits} bits do not fit one AXI-Stream word")
    first = layers[0]
    if first.in_word_bits != channels * bits:
        raise PascalError(f"layer {first.name}: takes {first.in_word_bits}-bit pixel words, the "
                          f"input is {channels} x {bits} bits")
    classifier = layers[-1]
    context = {
        "name": name, "layers": layers, "part": part, "clock_mhz": clock_mhz,
        "clock_ns": f"{1000.0 / clock_mhz:.3f}", "output_fifo_depth": OUTPUT_FIFO_DEPTH,
        "input": {"channels": channels, "bits": bits, "height": shape["height"],
                  "width": shape["width"], "pixels": shape["height"] * shape["width"],
                  "axi_bits": axi_bits, "word_bits": channels * bits},
        "classes": classifier.out_channels, "classifier": classifier,
        "sample_images": SAMPLE_IMAGES,
        "layer_cfgs": [f"{layer.name}_cfg" for layer in layers],
    }
    env = _environment()
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
    include = out / "include" / "pascal"
    include.mkdir(parents=True)
    for header in sorted(LIBRARY.glob("*.h")):
        shutil.copyfile(header, include / header.name)
    return {"layers": [layer.name for layer in layers], "part": part, "clock_mhz": clock_mhz,
            "axi_in_bits": axi_bits, "classes": classifier.out_channels}
