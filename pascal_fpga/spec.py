"""Model specs: one YAML file describes one QCFS network, its level counts and weight bits per layer.

A spec is validated completely on load, shapes included, so that every later stage can trust it:
every error is one line naming the spec file, the layer index and the field at fault.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .errors import PascalError
from .names import check_name, show_value

LAYER_TYPES = ("conv", "linear", "maxpool", "avgpool", "flatten", "block")
WEIGHT_BITS_RANGE = (2, 16)
INPUT_BITS_RANGE = (1, 16)
LEVELS_MAX = 256
# Size bounds: a spec is a file a user hands us, and a network is built from it in memory.
CHANNELS_MAX = 8192      # channels of a conv/block/the input, features of a hidden linear
INPUT_SIZE_MAX = 4096    # input height and width
KERNEL_MAX = 31          # kernel (and stride) of a conv or pooling layer
CLASSES_MAX = 100_000    # classes, and so the features of the classifier
WEIGHTS_MAX = 64 * 2 ** 20  # weights summed over all layers (about 67M)
ACTIVATIONS_MAX = 2 ** 24   # values of one image's input or of one layer's output (VGG-16 on
                            # ImageNet has 3.2M in its largest map)

# The fields each layer type accepts; a value of REQUIRED has no default.
REQUIRED = object()
_LAYER_FIELDS: dict[str, dict[str, Any]] = {
    "conv": {"channels": REQUIRED, "kernel": REQUIRED, "stride": 1, "padding": 0,
             "levels": None, "weight_bits": None, "batchnorm": True},
    "linear": {"features": REQUIRED, "levels": None, "weight_bits": None, "batchnorm": True},
    "maxpool": {"kernel": REQUIRED, "stride": None},
    "avgpool": {"kernel": REQUIRED, "stride": None},
    "flatten": {},
    "block": {"channels": REQUIRED, "stride": 1, "levels": None, "weight_bits": None,
              "residual": "shift", "add_bits": None},
}
# How a residual block forms its add (see model/network.py BasicBlock): "shift" snaps the
# shortcut's gain to conv2's gain times a power of two (n = acc2 << a + v << b, then L thresholds);
# "requant" requantizes both operands through a shared signed add_bits-bit add quantizer.
RESIDUAL_KINDS = ("shift", "requant")
ADD_BITS_DEFAULT = 8  # the add quantizer's bits of a requant block
_INT_FIELDS = ("channels", "kernel", "stride", "padding", "features", "levels", "weight_bits",
               "add_bits")


@dataclass(frozen=True)
class InputSpec:
    """The network input: ``channels`` x ``height`` x ``width`` unsigned ``bits``-bit pixels."""

    channels: int
    height: int
    width: int
    bits: int


@dataclass(frozen=True)
class LayerSpec:
    """One layer, with its defaults resolved (``levels``/``weight_bits`` filled in where they apply).

    ``in_shape``/``out_shape`` are (C, H, W) for spatial tensors and (F,) after a flatten.
    """

    index: int
    type: str
    channels: int | None = None
    kernel: int | None = None
    stride: int | None = None
    padding: int | None = None
    features: int | None = None
    levels: int | None = None
    weight_bits: int | None = None
    batchnorm: bool | None = None
    residual: str | None = None
    add_bits: int | None = None
    in_shape: tuple[int, ...] = ()
    out_shape: tuple[int, ...] = ()

    @property
    def has_weights(self) -> bool:
        return self.type in ("conv", "linear", "block")

    def to_dict(self) -> dict[str, Any]:
        """The layer as it would be written in a spec, defaults resolved."""
        out: dict[str, Any] = {"type": self.type}
        for name in _LAYER_FIELDS[self.type]:
            val = getattr(self, name)
            if val is not None:
                out[name] = val
        return out


@dataclass(frozen=True)
class ModelSpec:
    """A validated network spec. ``layers[-1]`` is the classifier (a linear with ``classes``
    outputs, no activation); every other conv, linear and block has a QCFS activation."""

    name: str
    input: InputSpec
    classes: int
    weight_bits: int
    levels: int
    layers: tuple[LayerSpec, ...]
    source: str = "<spec>"

    @property
    def classifier(self) -> LayerSpec:
        return self.layers[-1]

    def qcfs_layers(self) -> list[LayerSpec]:
        """Layers that end in a QCFS activation, in order (every conv/linear/block but the last)."""
        return [layer for layer in self.layers[:-1] if layer.has_weights]

    def to_dict(self) -> dict[str, Any]:
        """The resolved spec (every layer's levels and weight bits explicit)."""
        return {
            "name": self.name,
            "input": dataclasses.asdict(self.input),
            "classes": self.classes,
            "weight_bits": self.weight_bits,
            "levels": self.levels,
            "layers": [layer.to_dict() for layer in self.layers],
        }

    def with_levels(self, levels: list[int]) -> "ModelSpec":
        """A copy with the level count of each QCFS layer (in ``qcfs_layers`` order) replaced."""
        qcfs = self.qcfs_layers()
        if len(levels) != len(qcfs):
            raise PascalError(f"{self.source}: {len(levels)} level counts given for "
                              f"{len(qcfs)} QCFS layers")
        raw = self.to_dict()
        for layer, level in zip(qcfs, levels):
            raw["layers"][layer.index]["levels"] = int(level)
        return parse_spec(raw, self.source)

    def dump(self, path: str | Path) -> None:
        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))


def load_spec(path: str | Path) -> ModelSpec:
    """Read and validate a spec file; raises PascalError naming the file, layer and field."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise PascalError(f"{path}: cannot read the spec ({exc.strerror})") from exc
    except UnicodeDecodeError as exc:
        raise PascalError(f"{path}: not a text (UTF-8) file, so not a YAML spec") from exc
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise PascalError(f"{path}: not valid YAML{where}") from exc
    return parse_spec(raw, str(path))


def _int_field(value: Any, where: str, name: str, minimum: int, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise PascalError(f"{where}: field '{name}' must be an integer, got {value!r}")
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"{minimum}..{maximum}" if maximum is not None else f">= {minimum}"
        raise PascalError(f"{where}: field '{name}' must be {bound}, got {value}")
    return value


def _int_range_check(name: str, value: int, where: str) -> int:
    if name == "weight_bits":
        return _int_field(value, where, name, *WEIGHT_BITS_RANGE)
    if name == "levels":
        return _int_field(value, where, name, 1, LEVELS_MAX)
    if name == "add_bits":
        return _int_field(value, where, name, 2, 16)
    if name == "padding":
        return _int_field(value, where, name, 0)
    if name in ("channels", "features"):
        return _int_field(value, where, name, 1, CHANNELS_MAX)
    if name in ("kernel", "stride"):
        return _int_field(value, where, name, 1, KERNEL_MAX)
    return _int_field(value, where, name, 1)


def parse_spec(raw: Any, source: str = "<spec>") -> ModelSpec:
    """Validate a spec given as a dict (as read from YAML) and resolve its defaults and shapes."""
    if not isinstance(raw, dict):
        raise PascalError(f"{source}: a spec must be a mapping with name, input, classes and layers")
    known = {"name", "input", "classes", "weight_bits", "levels", "layers"}
    for key in raw:
        if key not in known:
            raise PascalError(f"{source}: unknown top-level field '{key}' "
                              f"(known: {', '.join(sorted(known))})")
    for key in ("name", "input", "classes", "layers"):
        if key not in raw:
            raise PascalError(f"{source}: missing top-level field '{key}'")
    name = check_name(raw["name"], f"{source}: field 'name'")

    inp = raw["input"]
    if not isinstance(inp, dict):
        raise PascalError(f"{source}: field 'input' must be a mapping of channels, height, width, bits")
    for key in inp:
        if key not in ("channels", "height", "width", "bits"):
            raise PascalError(f"{source}: input: unknown field '{key}'")
    for key in ("channels", "height", "width", "bits"):
        if key not in inp:
            raise PascalError(f"{source}: input: missing field '{key}'")
    input_spec = InputSpec(
        channels=_int_field(inp["channels"], f"{source}: input", "channels", 1, CHANNELS_MAX),
        height=_int_field(inp["height"], f"{source}: input", "height", 1, INPUT_SIZE_MAX),
        width=_int_field(inp["width"], f"{source}: input", "width", 1, INPUT_SIZE_MAX),
        bits=_int_field(inp["bits"], f"{source}: input", "bits", *INPUT_BITS_RANGE),
    )
    classes = _int_field(raw["classes"], source, "classes", 2, CLASSES_MAX)
    weight_bits = _int_range_check("weight_bits", raw.get("weight_bits", 4), source)
    levels = _int_range_check("levels", raw.get("levels", 4), source)

    layers_raw = raw["layers"]
    if not isinstance(layers_raw, list) or not layers_raw:
        raise PascalError(f"{source}: field 'layers' must be a non-empty list")

    shape: tuple[int, ...] = (input_spec.channels, input_spec.height, input_spec.width)
    if math.prod(shape) > ACTIVATIONS_MAX:
        raise PascalError(f"{source}: input: {'x'.join(map(str, shape))} = {math.prod(shape)} "
                          f"values per image, more than the {ACTIVATIONS_MAX} a spec may have")
    layers: list[LayerSpec] = []
    weights = 0
    for index, entry in enumerate(layers_raw):
        where = f"{source}: layer {index}"
        if not isinstance(entry, dict):
            raise PascalError(f"{where}: a layer must be a mapping with a 'type'")
        if "type" not in entry:
            raise PascalError(f"{where}: missing field 'type'")
        kind = entry["type"]
        if not isinstance(kind, str) or kind not in _LAYER_FIELDS:
            raise PascalError(f"{where}: field 'type': unknown layer type {kind!r} "
                              f"(known: {', '.join(LAYER_TYPES)})")
        where = f"{where} ({kind})"
        fields = _LAYER_FIELDS[kind]
        values: dict[str, Any] = {}
        for key, val in entry.items():
            if key == "type":
                continue
            if key not in fields:
                raise PascalError(f"{where}: unknown field '{key}' for a {kind} layer "
                                  f"(known: {', '.join(fields) or 'none'})")
            if key == "residual":
                if not isinstance(val, str) or val not in RESIDUAL_KINDS:
                    raise PascalError(f"{where}: field 'residual' must be one of "
                                      f"{', '.join(RESIDUAL_KINDS)}, got {show_value(val)}")
                values[key] = val
            elif key == "batchnorm":
                if not isinstance(val, bool):
                    raise PascalError(f"{where}: field 'batchnorm' must be true or false, got {val!r}")
                values[key] = val
            elif key == "features" and index == len(layers_raw) - 1:
                # the classifier: its features must equal classes, which has its own bound
                values[key] = _int_field(val, where, key, 1, CLASSES_MAX)
            elif key in _INT_FIELDS:
                values[key] = _int_range_check(key, val, where)
        for key, default in fields.items():
            if key in values:
                continue
            if default is REQUIRED:
                raise PascalError(f"{where}: missing field '{key}'")
            values[key] = default
        if kind in ("conv", "linear", "block"):
            values["levels"] = values["levels"] if values["levels"] is not None else levels
            values["weight_bits"] = (values["weight_bits"] if values["weight_bits"] is not None
                                     else weight_bits)
        if kind == "block":
            if values["residual"] == "requant":
                if values["add_bits"] is None:
                    values["add_bits"] = ADD_BITS_DEFAULT
            elif values["add_bits"] is not None:
                raise PascalError(f"{where}: field 'add_bits' applies only to a block with "
                                  f"residual: requant (this one is residual: shift, the default)")
        if kind in ("maxpool", "avgpool") and values["stride"] is None:
            values["stride"] = values["kernel"]
        out_shape = _out_shape(kind, values, shape, where)
        if math.prod(out_shape) > ACTIVATIONS_MAX:
            field = "features" if kind == "linear" else "channels"
            raise PascalError(f"{where}: field '{field}': its output has "
                              f"{'x'.join(map(str, out_shape))} = {math.prod(out_shape)} values "
                              f"per image, more than the {ACTIVATIONS_MAX} a spec may have")
        if kind in ("conv", "linear", "block"):
            weights += _weight_count(kind, values, shape)
            if weights > WEIGHTS_MAX:
                field = "features" if kind == "linear" else "channels"
                raise PascalError(f"{where}: field '{field}': the layers up to this one have "
                                  f"{weights} weights, more than the {WEIGHTS_MAX} a spec may have")
        layers.append(LayerSpec(index=index, type=kind, in_shape=shape, out_shape=out_shape,
                                **values))
        shape = out_shape

    last = layers[-1]
    where = f"{source}: layer {last.index} ({last.type})"
    if last.type != "linear":
        raise PascalError(f"{where}: field 'type': the last layer must be a linear classifier "
                          f"with {classes} features, got a {last.type}")
    if last.features != classes:
        raise PascalError(f"{where}: field 'features': the classifier must have classes = "
                          f"{classes} outputs, got {last.features}")
    # The classifier has no activation: its levels/batchnorm do not apply.
    layers[-1] = dataclasses.replace(last, levels=None, batchnorm=False)
    return ModelSpec(name=name, input=input_spec, classes=classes, weight_bits=weight_bits,
                     levels=levels, layers=tuple(layers), source=source)


def _weight_count(kind: str, values: dict[str, Any], shape: tuple[int, ...]) -> int:
    """The number of weights of a conv, linear or block layer on an input of ``shape``."""
    if kind == "linear":
        return values["features"] * math.prod(shape)
    in_channels, out_channels = shape[0], values["channels"]
    if kind == "conv":
        return out_channels * in_channels * values["kernel"] ** 2
    # block: two 3x3 convs, plus a 1x1 projection conv when the shape changes
    shortcut = in_channels * out_channels if values["stride"] != 1 or in_channels != out_channels \
        else 0
    return out_channels * in_channels * 9 + out_channels * out_channels * 9 + shortcut


def _out_shape(kind: str, values: dict[str, Any], shape: tuple[int, ...],
               where: str) -> tuple[int, ...]:
    if kind == "linear":
        if len(shape) != 1:
            # A linear directly on a spatial tensor flattens it implicitly.
            shape = (math.prod(shape),)
        return (values["features"],)
    if kind == "flatten":
        return (math.prod(shape),)
    if len(shape) != 3:
        raise PascalError(f"{where}: field 'type': a {kind} needs a spatial (C, H, W) input, "
                          f"but its input is flat ({shape[0]} features)")
    channels, height, width = shape
    if kind == "block":
        kernel, padding, stride = 3, 1, values["stride"]
        out_channels = values["channels"]
    elif kind == "conv":
        kernel, padding, stride = values["kernel"], values["padding"], values["stride"]
        out_channels = values["channels"]
    else:  # pooling
        kernel, padding, stride = values["kernel"], 0, values["stride"]
        out_channels = channels
    if kernel > height + 2 * padding or kernel > width + 2 * padding:
        raise PascalError(f"{where}: field 'kernel': kernel {kernel} is larger than its "
                          f"{height}x{width} input (padding {padding})")
    if kind == "conv" and padding >= kernel:
        raise PascalError(f"{where}: field 'padding': padding {padding} must be smaller than "
                          f"the kernel {kernel}")
    out_h = (height + 2 * padding - kernel) // stride + 1
    out_w = (width + 2 * padding - kernel) // stride + 1
    return (out_channels, out_h, out_w)

