"""Model specs: one YAML file describes one QCFS network, its level counts and weight bits per layer.

A spec is validated completely on load, shapes included, so that every later stage can trust it:
every error is one line naming the spec file, the layer index and the field at fault.

The file is a user's: ``load_spec`` reads only a regular file of at most ``SPEC_BYTES_MAX`` bytes
(never a device or a named pipe, which could block or never end), and its YAML loader bounds the
nesting depth, the aliases and the values they expand to, refuses a key given twice in a mapping
and keeps an integer too long for Python's ``int()`` unconverted (``_LongInteger``). Messages show
user values through ``_show``, which is bounded in length and work.

Beyond the per-field bounds, ``parse_spec`` refuses networks that train and export but cannot
compile, because the compiled integer graph holds its constants in float32, exact only for integers
below 2^24 (``ir/transforms.py``). With a layer's inputs in 0..m (m: 2^bits - 1 for pixels, L for a
QCFS layer's levels, times k^2 after a k x k average pool) and its weights in -w..w
(w = 2^(weight_bits - 1) - 1), a product is at most m * w and an accumulator at most
fan_in * m * w:

- the classifier's accumulators are checked against 2^24 on the trained weights; the spec refuses
  a classifier whose worst case fan_in * m * w reaches 2^24;
- the classifier's bias is an integer on the accumulator scale, exported as float32 (the integer
  times the scale): the compile recovers it within float32's relative rounding, up to 2^18 steps,
  and says so if a trained bias is larger;
- a hidden layer's thresholds are float32 integers within its accumulator range: they fit when
  fan_in * m * w < 2^24, and otherwise lie at about m * w times the layer's gain ratio, so m * w
  may be at most ``THRESHOLD_PRODUCT_MAX`` (2^21) there (a 16-bit layer after 256 levels fails);
- a residual block's integer sum (conv2's accumulator plus the shortcut) is checked against 2^24
  on the trained weights; the spec refuses a block whose worst case reaches it;
- the export matches every residual add to one block kind, so shift and requant blocks cannot be
  mixed in one network (and only shift blocks compile).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import reprlib
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .errors import PascalError
from .names import check_name

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
# The file: bounds that keep reading and parsing a hostile spec short.
SPEC_BYTES_MAX = 2 ** 20     # a spec file is at most 1 MiB (the shipped ones are under 2 KiB)
YAML_DEPTH_MAX = 32          # lists and mappings nested in each other (a spec needs 4)
YAML_ALIASES_MAX = 100       # alias uses (*name) in one file
YAML_VALUES_MAX = 100_000    # values (scalars, lists, mappings) with every alias expanded
INT_DIGITS_MAX = 40          # a longer integer stays unconverted (no field takes one)
# The compiled graph's float32 constants (see the module docstring).
FLOAT32_EXACT = 2 ** 24
THRESHOLD_PRODUCT_MAX = 2 ** 21


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
    data = _read_spec(path)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PascalError(f"{path}: not a text (UTF-8) file, so not a YAML spec") from exc
    loader = None
    try:
        loader = _SpecLoader(text)  # (its reader refuses control characters already)
        raw = loader.get_single_data()
    except _YAMLLimit as exc:
        raise PascalError(f"{path}: {exc.text}") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise PascalError(f"{path}: not valid YAML{where}") from exc
    except (ValueError, RecursionError) as exc:  # a value YAML's constructors cannot convert
        raise PascalError(f"{path}: not valid YAML ({_show_text(str(exc))})") from exc
    finally:
        if loader is not None:
            loader.dispose()
    return parse_spec(raw, str(path))


_FILE_KINDS = ((stat.S_ISFIFO, "named pipe"), (stat.S_ISCHR, "character device"),
               (stat.S_ISBLK, "block device"), (stat.S_ISSOCK, "socket"))


def _not_regular(path: Path, mode: int) -> PascalError:
    if stat.S_ISDIR(mode):
        return PascalError(f"{path}: cannot read the spec (a folder, not a file)")
    kind = next((name for test, name in _FILE_KINDS if test(mode)), "special file")
    return PascalError(f"{path}: not a regular file (a {kind}), so not a spec")


def _read_spec(path: Path) -> bytes:
    """The bytes of a spec file: a regular file of at most SPEC_BYTES_MAX bytes. A FIFO, a device
    or a socket is refused before it is opened, and the open does not block (O_NONBLOCK) should
    one replace the file in between; at most SPEC_BYTES_MAX + 1 bytes are ever read."""
    try:
        info = os.stat(path)
    except (OSError, ValueError) as exc:
        raise PascalError(f"{path}: cannot read the spec "
                          f"({getattr(exc, 'strerror', None) or exc})") from exc
    if not stat.S_ISREG(info.st_mode):
        raise _not_regular(path, info.st_mode)
    too_big = (f"{path}: {{}} bytes, more than the {SPEC_BYTES_MAX >> 20} MiB ({SPEC_BYTES_MAX} "
               f"bytes) a spec may have")
    if info.st_size > SPEC_BYTES_MAX:
        raise PascalError(too_big.format(info.st_size))
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | \
        getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise PascalError(f"{path}: cannot read the spec ({exc.strerror or exc})") from exc
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise _not_regular(path, mode)
        chunks, left = [], SPEC_BYTES_MAX + 1
        while left > 0:
            chunk = os.read(fd, min(left, 2 ** 16))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
    except OSError as exc:
        raise PascalError(f"{path}: cannot read the spec ({exc.strerror or exc})") from exc
    finally:
        os.close(fd)
    if left <= 0:  # it grew past the bound after the stat
        raise PascalError(too_big.format("over " + str(SPEC_BYTES_MAX)))
    return b"".join(chunks)


class _LongInteger:
    """An integer of more than INT_DIGITS_MAX digits in a YAML spec, kept unconverted: Python's
    int() refuses more than 4300 digits, and no field takes such a number. Shown by its length."""

    __slots__ = ("digits",)

    def __init__(self, digits: int):
        self.digits = digits

    def __repr__(self) -> str:
        return f"a {self.digits}-digit integer"


class _YAMLLimit(yaml.YAMLError):
    """A YAML spec beyond the loader's bounds: ``text`` is the message after the file name."""

    def __init__(self, text: str):
        super().__init__(text)
        self.text = text


def _path_part(parent: Any, index: Any) -> str:
    if parent is None:
        return ""
    if isinstance(index, int):
        return f"[{index}]"
    if isinstance(index, yaml.ScalarNode):
        key = index.value if len(index.value) <= 24 else index.value[:21] + "..."
        return "." + "".join(c if c.isprintable() and c != "'" else "?" for c in key)
    return ".?" if index is not None else ".(a key)"


class _SpecLoader(yaml.SafeLoader):
    """PyYAML's safe loader with bounds (the module docstring): YAML_DEPTH_MAX, YAML_ALIASES_MAX,
    YAML_VALUES_MAX, no recursive alias, no key twice in a mapping (merge keys aside), integers of
    at most INT_DIGITS_MAX digits. Each refusal is a _YAMLLimit naming the field's path
    (``layers[2].kernel``) and the line."""

    def __init__(self, stream: str):
        super().__init__(stream)
        self._path: list[str] = []
        self._aliases = 0
        self._sizes: dict[int, int] = {}  # id(node) -> its values with aliases expanded

    def _field(self, extra: str = "") -> str:
        """The path of the node being composed (plus ``extra``), e.g. ``layers[2].kernel``."""
        text = ("".join(self._path) + extra).lstrip(".")
        return text if len(text) <= 60 else text[:57] + "..."

    def _refuse(self, problem: str, mark) -> _YAMLLimit:
        field = self._field()
        line = f" (line {mark.line + 1})" if mark is not None else ""
        return _YAMLLimit(f"field '{field}': {problem}{line}" if field else f"{problem}{line}")

    def compose_node(self, parent, index):
        self._path.append(_path_part(parent, index))
        try:
            event = self.peek_event()
            if isinstance(event, yaml.AliasEvent):
                self._aliases += 1
                if self._aliases > YAML_ALIASES_MAX:
                    raise self._refuse(f"more than {YAML_ALIASES_MAX} aliases (*name) in the "
                                       f"file", event.start_mark)
                target = self.anchors.get(event.anchor)
                if target is not None and id(target) not in self._sizes:
                    raise self._refuse(f"the alias *{_show_text(event.anchor)} lies inside its own "
                                       f"anchor (a recursive value)", event.start_mark)
            elif len(self._path) > YAML_DEPTH_MAX:
                raise self._refuse(f"nested more than {YAML_DEPTH_MAX} levels deep",
                                   event.start_mark)
            node = super().compose_node(parent, index)
            if id(node) not in self._sizes:  # a new node (an alias gives an anchored one)
                self._sizes[id(node)] = self._size(node)
            return node
        finally:
            self._path.pop()

    def _size(self, node) -> int:
        """The values of a just-composed node, aliases expanded; checks its keys for twins."""
        size = 1
        if isinstance(node, yaml.SequenceNode):
            size += sum(self._sizes[id(item)] for item in node.value)
        elif isinstance(node, yaml.MappingNode):
            seen: dict[tuple[str, str], int] = {}  # (tag, text) of a key -> its line
            for key, value in node.value:
                size += self._sizes[id(key)] + self._sizes[id(value)]
                if not isinstance(key, yaml.ScalarNode) or key.tag == "tag:yaml.org,2002:merge":
                    continue
                line = key.start_mark.line + 1
                first = seen.get((key.tag, key.value))
                if first is not None:
                    lines = f"line {line}" if first == line else f"lines {first} and {line}"
                    raise _YAMLLimit(f"field '{self._field(_path_part(node, key))}' is given "
                                     f"twice ({lines})")
                seen[(key.tag, key.value)] = line
        if size > YAML_VALUES_MAX:
            raise self._refuse(f"its aliases expand to more than {YAML_VALUES_MAX} values",
                               node.start_mark)
        return size

    def construct_yaml_int(self, node):
        text = str(node.value).replace("_", "").lstrip("+-")
        if len(text) > INT_DIGITS_MAX:
            return _LongInteger(len(text))
        return super().construct_yaml_int(node)


_SpecLoader.add_constructor("tag:yaml.org,2002:int", _SpecLoader.construct_yaml_int)


class _BoundedRepr(reprlib.Repr):
    """reprlib with small limits; an integer beyond about 40 digits shown by its size (repr of an
    int beyond 4300 digits raises)."""

    def __init__(self):
        super().__init__()
        self.maxlevel, self.maxlist, self.maxtuple, self.maxdict = 2, 4, 4, 4
        self.maxset = self.maxfrozenset = self.maxdeque = self.maxarray = 4
        self.maxstring, self.maxother, self.maxlong = 40, 40, 40

    def repr_int(self, x, level):
        if abs(x).bit_length() > 130:
            return f"an integer of about {int(abs(x).bit_length() * math.log10(2)) + 1} digits"
        return repr(x)


_REPR = _BoundedRepr()


def _show(value: Any) -> str:
    """A user value for a one-line message: repr, bounded in length and in work."""
    return _show_text(_REPR.repr(value))


def _show_text(text: str) -> str:
    """``text`` printable and at most 60 characters long."""
    text = "".join(c if c.isprintable() else "?" for c in text[:200])
    return text if len(text) <= 60 else text[:57] + "..."


def _int_field(value: Any, where: str, name: str, minimum: int, maximum: int | None = None) -> int:
    bound = f"{minimum}..{maximum}" if maximum is not None else f">= {minimum}"
    if isinstance(value, _LongInteger):
        raise PascalError(f"{where}: field '{name}' must be {bound}, got {value!r}")
    if isinstance(value, bool) or not isinstance(value, int):
        raise PascalError(f"{where}: field '{name}' must be an integer, got {_show(value)}")
    if value < minimum or (maximum is not None and value > maximum):
        raise PascalError(f"{where}: field '{name}' must be {bound}, got {_show(value)}")
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
            raise PascalError(f"{source}: unknown top-level field {_show(key)} "
                              f"(known: {', '.join(sorted(known))})")
    for key in ("name", "input", "classes", "layers"):
        if key not in raw:
            raise PascalError(f"{source}: missing top-level field '{key}'")
    if not isinstance(raw["name"], str):  # (check_name's message shows the whole value)
        raise PascalError(f"{source}: field 'name': a name is a string of letters, digits, '_', "
                          f"'-' or '.'; got {_show(raw['name'])}")
    name = check_name(raw["name"], f"{source}: field 'name'")

    inp = raw["input"]
    if not isinstance(inp, dict):
        raise PascalError(f"{source}: field 'input' must be a mapping of channels, height, width, bits")
    for key in inp:
        if key not in ("channels", "height", "width", "bits"):
            raise PascalError(f"{source}: input: unknown field {_show(key)}")
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
            raise PascalError(f"{where}: field 'type': unknown layer type {_show(kind)} "
                              f"(known: {', '.join(LAYER_TYPES)})")
        where = f"{where} ({kind})"
        fields = _LAYER_FIELDS[kind]
        values: dict[str, Any] = {}
        for key, val in entry.items():
            if key == "type":
                continue
            if key not in fields:
                raise PascalError(f"{where}: unknown field {_show(key)} for a {kind} layer "
                                  f"(known: {', '.join(fields) or 'none'})")
            if key == "residual":
                if not isinstance(val, str) or val not in RESIDUAL_KINDS:
                    raise PascalError(f"{where}: field 'residual' must be one of "
                                      f"{', '.join(RESIDUAL_KINDS)}, got {_show(val)}")
                values[key] = val
            elif key == "batchnorm":
                if not isinstance(val, bool):
                    raise PascalError(f"{where}: field 'batchnorm' must be true or false, "
                                      f"got {_show(val)}")
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
    blocks = [layer for layer in layers if layer.type == "block"]
    for block in blocks[1:]:
        if block.residual != blocks[0].residual:
            raise PascalError(f"{source}: layer {block.index} (block): field 'residual': "
                              f"{block.residual} here, but layer {blocks[0].index} is residual: "
                              f"{blocks[0].residual}; the blocks of a network must be of one kind "
                              f"(the export matches every residual add to one pattern; only "
                              f"shift blocks compile)")
    _check_float32(layers, input_spec, source)
    return ModelSpec(name=name, input=input_spec, classes=classes, weight_bits=weight_bits,
                     levels=levels, layers=tuple(layers), source=source)


def _check_float32(layers: list[LayerSpec], input_spec: InputSpec, source: str) -> None:
    """The compiled graph's float32 bounds (the module docstring), layer by layer."""
    in_max = 2 ** input_spec.bits - 1  # the largest input value of the next layer
    for layer in layers:
        where = f"{source}: layer {layer.index} ({layer.type})"
        if layer.type == "avgpool":  # compiled as a sum: its divisor goes to the thresholds
            in_max *= layer.kernel ** 2
        if not layer.has_weights:
            continue
        if layer is layers[-1]:
            fan_in = math.prod(layer.in_shape)
            _need_fewer_bits(layer.weight_bits, functools.partial(
                _classifier_problem, fan_in, in_max), where)
            continue
        fan_in = (layer.in_shape[0] * layer.kernel ** 2 if layer.type == "conv" else
                  math.prod(layer.in_shape) if layer.type == "linear" else
                  layer.in_shape[0] * 9)  # a block's conv1
        _need_fewer_bits(layer.weight_bits, functools.partial(_thresholds_problem, fan_in,
                                                              in_max), where)
        if layer.type == "block":
            _need_fewer_bits(layer.weight_bits, functools.partial(_block_sum_problem, layer,
                                                                  in_max), where)
        in_max = layer.levels


def _weight_max(bits: int) -> int:
    """The largest weight magnitude of ``bits``-bit signed narrow-range weights."""
    return 2 ** (bits - 1) - 1


def _classifier_problem(fan_in: int, m: int, bits: int) -> str | None:
    """Why a classifier of ``fan_in`` inputs up to ``m`` cannot have ``bits``-bit weights."""
    w = _weight_max(bits)
    if fan_in * m * w >= FLOAT32_EXACT:
        return (f"its worst-case accumulator {fan_in} x {m} x {w} = {fan_in * m * w} (inputs x "
                f"largest input x largest {bits}-bit weight) reaches 2^24, beyond the integers "
                f"the float32 graph holds exactly (compile: 'classifier accumulators beyond "
                f"2^24')")
    return None


def _thresholds_problem(fan_in: int, m: int, bits: int) -> str | None:
    """Why a hidden layer (or a block's conv1) cannot have ``bits``-bit weights."""
    w = _weight_max(bits)
    if m * w <= THRESHOLD_PRODUCT_MAX or fan_in * m * w < FLOAT32_EXACT:
        return None
    return (f"{bits}-bit weights (up to {w}) on inputs up to {m} make products up to {m * w} "
            f"(over 2^21) and accumulators up to {fan_in * m * w} (2^24 or more): its integer "
            f"thresholds, about a product times the layer's gain, would not be exact in the "
            f"float32 graph (compile: 'thresholds beyond 2^24')")


def _block_sum_problem(layer: LayerSpec, m: int, bits: int) -> str | None:
    """Why a residual block on inputs up to ``m`` cannot have ``bits``-bit weights."""
    w = _weight_max(bits)
    main = 9 * layer.channels * layer.levels * w
    projection = layer.stride != 1 or layer.in_shape[0] != layer.channels
    short = layer.in_shape[0] * m * w if projection else m
    if main + short < FLOAT32_EXACT:
        return None
    return (f"the block's worst-case integer sum, 9 x {layer.channels} x {layer.levels} x {w} "
            f"(conv2) + {short} (the shortcut) = {main + short}, reaches 2^24, beyond the "
            f"integers the float32 graph holds exactly (compile: 'the block's integer sum "
            f"reaches 2^24')")


def _need_fewer_bits(bits: int, problem, where: str) -> None:
    """A PascalError on field 'weight_bits' with ``problem(bits)`` and the most weight bits
    without a problem, if ``problem(bits)`` is one."""
    reason = problem(bits)
    if reason is None:
        return
    fewer = [b for b in range(WEIGHT_BITS_RANGE[0], bits) if problem(b) is None]
    hint = (f"use at most {fewer[-1]} weight bits here" if fewer else
            "even 2-bit weights do not fit: use fewer levels (or input bits) before this layer")
    raise PascalError(f"{where}: field 'weight_bits': {reason}; {hint}")


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

