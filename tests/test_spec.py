"""Tests for pascal_fpga.spec: shipped specs, defaults, shapes, round trips and every bad input.

Every bad input must raise a PascalError whose message is one line naming the spec file, the
layer index (where a layer is at fault) and the field.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pascal_fpga.errors import PascalError
from pascal_fpga.spec import LayerSpec, ModelSpec, load_spec, parse_spec

MODELS = Path(__file__).resolve().parent.parent / "models"
SHIPPED = sorted(MODELS.glob("*.yaml"))


def _base() -> dict:
    """A small valid spec (8x8 grey input) that the bad-input cases mutate.

    Layers: 0 conv 8x8x8, 1 maxpool 8x4x4, 2 conv 16x4x4, 3 flatten 256, 4 linear 32, 5 linear 10.
    """
    return {
        "name": "small",
        "input": {"channels": 1, "height": 8, "width": 8, "bits": 5},
        "classes": 10,
        "weight_bits": 4,
        "levels": 4,
        "layers": [
            {"type": "conv", "channels": 8, "kernel": 3, "padding": 1},
            {"type": "maxpool", "kernel": 2},
            {"type": "conv", "channels": 16, "kernel": 3, "padding": 1},
            {"type": "flatten"},
            {"type": "linear", "features": 32},
            {"type": "linear", "features": 10},
        ],
    }


def _spec(layers: list[dict], *, height: int = 8, width: int = 8, channels: int = 1,
          **top) -> dict:
    raw = {"name": "t", "input": {"channels": channels, "height": height, "width": width,
                                  "bits": 8},
           "classes": 10, "layers": layers}
    raw.update(top)
    return raw


def _write(tmp_path: Path, raw, name: str = "spec.yaml") -> Path:
    path = tmp_path / name
    if isinstance(raw, (str, bytes)):
        (path.write_bytes if isinstance(raw, bytes) else path.write_text)(raw)
    else:
        path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path




def test_models_folder_has_specs():
    names = {p.stem for p in SHIPPED}
    assert {"digits-cnn", "fmnist-cnn", "cifar10-vgg11", "cifar10-resnet18"} <= names


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_shipped_spec_loads_and_chains(path):
    spec = load_spec(path)
    assert isinstance(spec, ModelSpec)
    assert spec.source == str(path)
    assert spec.name == path.stem
    inp = spec.input
    assert spec.layers[0].in_shape == (inp.channels, inp.height, inp.width)
    for prev, layer in zip(spec.layers, spec.layers[1:]):
        assert layer.in_shape == prev.out_shape, f"layer {layer.index}"
    assert [layer.index for layer in spec.layers] == list(range(len(spec.layers)))
    for layer in spec.layers:
        assert all(isinstance(d, int) and d >= 1 for d in layer.out_shape)
    # The classifier: a linear with `classes` outputs and no activation.
    clf = spec.classifier
    assert clf is spec.layers[-1]
    assert clf.type == "linear" and clf.features == spec.classes
    assert clf.out_shape == (spec.classes,)
    assert clf.levels is None
    assert clf.batchnorm is False
    assert clf.weight_bits is not None
    # Every other weighted layer has a QCFS activation with resolved levels and weight bits.
    qcfs = spec.qcfs_layers()
    assert qcfs and clf not in qcfs
    for layer in qcfs:
        assert layer.has_weights
        assert 1 <= layer.levels <= 256
        assert 2 <= layer.weight_bits <= 16


def test_fmnist_cnn_shapes_and_defaults():
    spec = load_spec(MODELS / "fmnist-cnn.yaml")
    assert spec.input.channels == 1 and spec.input.height == 28 and spec.input.width == 28
    assert spec.input.bits == 8
    assert spec.classes == 10 and spec.weight_bits == 4 and spec.levels == 4
    shapes = [(layer.type, layer.in_shape, layer.out_shape) for layer in spec.layers]
    assert shapes == [
        ("conv", (1, 28, 28), (32, 28, 28)),
        ("maxpool", (32, 28, 28), (32, 14, 14)),
        ("conv", (32, 14, 14), (64, 14, 14)),
        ("avgpool", (64, 14, 14), (64, 7, 7)),
        ("flatten", (64, 7, 7), (3136,)),
        ("linear", (3136,), (128,)),
        ("linear", (128,), (10,)),
    ]
    assert [layer.levels for layer in spec.qcfs_layers()] == [8, 4, 2]
    assert [layer.index for layer in spec.qcfs_layers()] == [0, 2, 5]
    assert all(layer.weight_bits == 4 for layer in spec.layers if layer.has_weights)
    # Pooling stride defaults to the kernel.
    assert spec.layers[1].stride == 2 and spec.layers[3].stride == 2
    # Conv defaults.
    assert spec.layers[2].stride == 1 and spec.layers[2].padding == 1
    assert spec.layers[0].batchnorm is True
    assert spec.classifier.levels is None


def test_digits_cnn_shapes():
    spec = load_spec(MODELS / "digits-cnn.yaml")
    assert [layer.out_shape for layer in spec.layers] == [
        (16, 8, 8), (32, 8, 8), (32, 4, 4), (512,), (64,), (10,)]
    assert [layer.levels for layer in spec.qcfs_layers()] == [8, 4, 2]


def test_resnet18_blocks_downsample_to_one_pixel():
    spec = load_spec(MODELS / "cifar10-resnet18.yaml")
    blocks = [layer for layer in spec.layers if layer.type == "block"]
    assert [b.out_shape for b in blocks] == [
        (64, 32, 32), (64, 32, 32), (128, 16, 16), (128, 16, 16),
        (256, 8, 8), (256, 8, 8), (512, 4, 4), (512, 4, 4)]
    assert all(b.residual == "shift" and b.add_bits is None for b in blocks)
    assert spec.layers[-3].type == "avgpool" and spec.layers[-3].out_shape == (512, 1, 1)
    assert spec.layers[-2].out_shape == (512,)


def test_vgg11_shapes():
    spec = load_spec(MODELS / "cifar10-vgg11.yaml")
    assert spec.layers[-5].type == "avgpool"
    assert spec.layers[-5].in_shape == (512, 2, 2) and spec.layers[-5].out_shape == (512, 1, 1)
    assert spec.layers[-4].out_shape == (512,)  # flatten
    assert [layer.out_shape for layer in spec.layers[-3:]] == [(512,), (512,), (10,)]
    assert len(spec.qcfs_layers()) == 10
    assert spec.qcfs_layers()[0].levels == 8
    assert all(layer.levels == 4 for layer in spec.qcfs_layers()[1:])




def test_top_level_defaults_fill_layers_and_own_values_win():
    raw = _spec([
        {"type": "conv", "channels": 4, "kernel": 3, "padding": 1},
        {"type": "conv", "channels": 4, "kernel": 3, "padding": 1, "levels": 16,
         "weight_bits": 8},
        {"type": "linear", "features": 12, "weight_bits": 2},
        {"type": "linear", "features": 10},
    ], levels=6, weight_bits=3)
    spec = parse_spec(raw, "x.yaml")
    assert spec.levels == 6 and spec.weight_bits == 3
    l0, l1, l2, clf = spec.layers
    assert (l0.levels, l0.weight_bits) == (6, 3)
    assert (l1.levels, l1.weight_bits) == (16, 8)
    assert (l2.levels, l2.weight_bits) == (6, 2)
    assert clf.weight_bits == 3 and clf.levels is None


def test_builtin_defaults_without_top_level_values():
    spec = parse_spec(_spec([{"type": "linear", "features": 5}, {"type": "linear",
                                                                    "features": 10}]))
    assert spec.levels == 4 and spec.weight_bits == 4
    assert spec.layers[0].levels == 4 and spec.layers[0].weight_bits == 4
    assert spec.source == "<spec>"


def test_batchnorm_false_is_kept():
    raw = _spec([
        {"type": "conv", "channels": 4, "kernel": 3, "batchnorm": False},
        {"type": "linear", "features": 7, "batchnorm": False},
        {"type": "linear", "features": 12},
        {"type": "linear", "features": 10},
    ])
    spec = parse_spec(raw)
    assert spec.layers[0].batchnorm is False
    assert spec.layers[1].batchnorm is False
    assert spec.layers[2].batchnorm is True
    again = parse_spec(spec.to_dict())
    assert [layer.batchnorm for layer in again.layers] == [False, False, True, False]


def test_block_defaults():
    spec = parse_spec(_spec([{"type": "conv", "channels": 4, "kernel": 3, "padding": 1},
                             {"type": "block", "channels": 4},
                             {"type": "linear", "features": 10}], levels=5))
    block = spec.layers[1]
    assert block.stride == 1 and block.residual == "shift" and block.add_bits is None
    assert block.levels == 5 and block.weight_bits == 4
    assert block.out_shape == (4, 8, 8)
    assert block.to_dict() == {"type": "block", "channels": 4, "stride": 1, "levels": 5,
                               "weight_bits": 4, "residual": "shift"}
    # residual: requant keeps the add quantizer's bits (default 8)
    spec = parse_spec(_spec([{"type": "conv", "channels": 4, "kernel": 3, "padding": 1},
                             {"type": "block", "channels": 4, "residual": "requant"},
                             {"type": "block", "channels": 4, "residual": "requant",
                              "add_bits": 6},
                             {"type": "linear", "features": 10}], levels=5))
    assert [(b.residual, b.add_bits) for b in spec.layers[1:3]] == [("requant", 8),
                                                                    ("requant", 6)]
    assert parse_spec(spec.to_dict()) == dataclasses.replace(spec, source="<spec>")




@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_to_dict_parse_round_trip(path):
    spec = load_spec(path)
    raw = spec.to_dict()
    again = parse_spec(raw, spec.source)
    assert again == spec
    assert again.to_dict() == raw
    # Resolved: every weighted non-classifier layer states its levels and weight bits.
    for layer_raw, layer in zip(raw["layers"], spec.layers):
        if layer.has_weights:
            assert "weight_bits" in layer_raw
        if layer in spec.qcfs_layers():
            assert layer_raw["levels"] == layer.levels
    assert "levels" not in raw["layers"][-1]


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_dump_load_round_trip(path, tmp_path):
    spec = load_spec(path)
    out = tmp_path / "resolved.yaml"
    spec.dump(out)
    again = load_spec(out)
    assert again.source == str(out)
    assert again == dataclasses.replace(spec, source=str(out))
    # The dumped file is plain YAML with the resolved fields.
    raw = yaml.safe_load(out.read_text())
    assert raw == spec.to_dict()


def test_with_levels_replaces_levels():
    spec = load_spec(MODELS / "fmnist-cnn.yaml")
    changed = spec.with_levels([3, 5, 7])
    assert [layer.levels for layer in changed.qcfs_layers()] == [3, 5, 7]
    assert changed.source == spec.source
    assert changed.classifier.levels is None
    # Everything else is unchanged.
    for old, new in zip(spec.layers, changed.layers):
        assert dataclasses.replace(new, levels=old.levels) == old
    # The original is untouched (frozen dataclasses).
    assert [layer.levels for layer in spec.qcfs_layers()] == [8, 4, 2]
    # Accepts any int-like sequence values.
    assert changed.with_levels([8, 4, 2]) == spec


def test_with_levels_on_resnet_blocks():
    spec = load_spec(MODELS / "cifar10-resnet18.yaml")
    n = len(spec.qcfs_layers())
    assert n == 9
    changed = spec.with_levels(list(range(1, n + 1)))
    assert [layer.levels for layer in changed.qcfs_layers()] == list(range(1, n + 1))


@pytest.mark.parametrize("levels", [[], [4, 4], [4, 4, 4, 4]])
def test_with_levels_rejects_wrong_count(levels):
    spec = load_spec(MODELS / "fmnist-cnn.yaml")
    with pytest.raises(PascalError) as info:
        spec.with_levels(levels)
    msg = str(info.value)
    assert "\n" not in msg
    assert spec.source in msg
    assert f"{len(levels)} level counts" in msg and "3 QCFS layers" in msg


def test_with_levels_rejects_out_of_range_level():
    spec = load_spec(MODELS / "fmnist-cnn.yaml")
    with pytest.raises(PascalError, match="'levels'"):
        spec.with_levels([8, 0, 2])




@pytest.mark.parametrize("padding, expected", [(0, (6, 12, 12)), (2, (6, 14, 14))])
def test_conv_kernel5_stride2(padding, expected):
    spec = parse_spec(_spec([{"type": "conv", "channels": 6, "kernel": 5, "stride": 2,
                              "padding": padding},
                             {"type": "linear", "features": 10}], height=28, width=28))
    assert spec.layers[0].out_shape == expected


def test_non_square_input():
    spec = parse_spec(_spec([
        {"type": "conv", "channels": 4, "kernel": 5, "stride": 2},        # 4 x 4 x 8
        {"type": "conv", "channels": 4, "kernel": 3, "padding": 1},      # 4 x 4 x 8
        {"type": "maxpool", "kernel": 2},                                # 4 x 2 x 4
        {"type": "avgpool", "kernel": 2, "stride": 1},                   # 4 x 1 x 3
        {"type": "flatten"},                                             # 12
        {"type": "linear", "features": 10},
    ], height=12, width=20))
    assert [layer.out_shape for layer in spec.layers] == [
        (4, 4, 8), (4, 4, 8), (4, 2, 4), (4, 1, 3), (12,), (10,)]
    assert spec.layers[3].stride == 1


def test_kernel_equal_to_input_gives_one_pixel():
    spec = parse_spec(_spec([{"type": "conv", "channels": 3, "kernel": 8},
                             {"type": "linear", "features": 10}]))
    assert spec.layers[0].out_shape == (3, 1, 1)


def test_block_with_stride_2():
    spec = parse_spec(_spec([
        {"type": "conv", "channels": 8, "kernel": 3, "padding": 1},
        {"type": "block", "channels": 16, "stride": 2},
        {"type": "block", "channels": 16, "stride": 2},
        {"type": "block", "channels": 16},
        {"type": "linear", "features": 10},
    ], height=9, width=16))
    assert [layer.out_shape for layer in spec.layers[:4]] == [
        (8, 9, 16), (16, 5, 8), (16, 3, 4), (16, 3, 4)]
    assert spec.layers[1].in_shape == (8, 9, 16)


def test_implicit_flatten_linear_after_input():
    spec = parse_spec(_spec([{"type": "linear", "features": 20},
                             {"type": "linear", "features": 10}], channels=2, height=3,
                            width=5))
    first = spec.layers[0]
    assert first.out_shape == (20,)
    assert first.in_shape in ((2, 3, 5), (30,))
    assert spec.layers[1].in_shape == (20,)
    assert spec.qcfs_layers() == [first]


def test_implicit_flatten_linear_after_conv():
    spec = parse_spec(_spec([{"type": "conv", "channels": 4, "kernel": 3},
                             {"type": "linear", "features": 10}]))
    assert spec.layers[0].out_shape == (4, 6, 6)
    assert spec.layers[1].in_shape in ((4, 6, 6), (144,))
    assert spec.layers[1].out_shape == (10,)


def test_layer_to_dict_of_pool_and_flatten():
    spec = load_spec(MODELS / "fmnist-cnn.yaml")
    assert spec.layers[1].to_dict() == {"type": "maxpool", "kernel": 2, "stride": 2}
    assert spec.layers[4].to_dict() == {"type": "flatten"}
    assert isinstance(spec.layers[4], LayerSpec) and not spec.layers[4].has_weights




def _with_layer(index: int, layer, base=None) -> dict:
    raw = copy.deepcopy(base or _base())
    raw["layers"][index] = layer
    return raw


def _with_top(**fields) -> dict:
    raw = _base()
    raw.update(fields)
    return raw


def _without_top(key: str) -> dict:
    raw = _base()
    del raw[key]
    return raw


def _with_input(**fields) -> dict:
    raw = _base()
    raw["input"].update(fields)
    return raw


_CONV2 = {"type": "conv", "channels": 16, "kernel": 3, "padding": 1}

# (id, spec content, layer index or None for a top-level error, text the message must contain)
BAD_SPECS = [
    # layer type
    ("unknown-type", _with_layer(2, {**_CONV2, "type": "deconv"}), 2, "'type'"),
    ("type-is-list", _with_layer(2, {**_CONV2, "type": ["conv"]}), 2, "'type'"),
    ("type-is-int", _with_layer(2, {**_CONV2, "type": 3}), 2, "'type'"),
    ("missing-type", _with_layer(2, {"channels": 16, "kernel": 3}), 2, "'type'"),
    ("layer-not-mapping", _with_layer(2, "conv"), 2, "'type'"),
    # missing required fields
    ("conv-no-channels", _with_layer(2, {"type": "conv", "kernel": 3}), 2, "'channels'"),
    ("conv-no-kernel", _with_layer(2, {"type": "conv", "channels": 16}), 2, "'kernel'"),
    ("maxpool-no-kernel", _with_layer(1, {"type": "maxpool"}), 1, "'kernel'"),
    ("linear-no-features", _with_layer(4, {"type": "linear"}), 4, "'features'"),
    ("block-no-channels", _with_layer(2, {"type": "block"}), 2, "'channels'"),
    # mistyped fields
    ("channels-str", _with_layer(2, {**_CONV2, "channels": "32"}), 2, "'channels'"),
    ("kernel-float", _with_layer(2, {**_CONV2, "kernel": 3.5}), 2, "'kernel'"),
    ("kernel-null", _with_layer(2, {**_CONV2, "kernel": None}), 2, "'kernel'"),
    ("batchnorm-str", _with_layer(2, {**_CONV2, "batchnorm": "yes"}), 2, "'batchnorm'"),
    ("batchnorm-int", _with_layer(4, {"type": "linear", "features": 32, "batchnorm": 1}), 4,
     "'batchnorm'"),
    ("levels-bool", _with_layer(2, {**_CONV2, "levels": True}), 2, "'levels'"),
    ("features-list", _with_layer(4, {"type": "linear", "features": [32]}), 4, "'features'"),
    # unknown fields
    ("conv-unknown-field", _with_layer(2, {**_CONV2, "dilation": 2}), 2, "'dilation'"),
    ("maxpool-weight-bits", _with_layer(1, {"type": "maxpool", "kernel": 2, "weight_bits": 4}),
     1, "'weight_bits'"),
    ("flatten-field", _with_layer(3, {"type": "flatten", "features": 256}), 3, "'features'"),
    # out-of-range values per layer
    ("levels-0", _with_layer(2, {**_CONV2, "levels": 0}), 2, "'levels'"),
    ("levels-neg", _with_layer(2, {**_CONV2, "levels": -1}), 2, "'levels'"),
    ("levels-257", _with_layer(2, {**_CONV2, "levels": 257}), 2, "'levels'"),
    ("weight-bits-1", _with_layer(2, {**_CONV2, "weight_bits": 1}), 2, "'weight_bits'"),
    ("weight-bits-17", _with_layer(2, {**_CONV2, "weight_bits": 17}), 2, "'weight_bits'"),
    ("linear-weight-bits-17", _with_layer(4, {"type": "linear", "features": 32,
                                              "weight_bits": 17}), 4, "'weight_bits'"),
    ("classifier-weight-bits-1", _with_layer(5, {"type": "linear", "features": 10,
                                                 "weight_bits": 1}), 5, "'weight_bits'"),
    ("stride-0", _with_layer(2, {**_CONV2, "stride": 0}), 2, "'stride'"),
    ("padding-neg", _with_layer(2, {**_CONV2, "padding": -1}), 2, "'padding'"),
    ("channels-0", _with_layer(2, {**_CONV2, "channels": 0}), 2, "'channels'"),
    ("padding-not-below-kernel", _with_layer(2, {**_CONV2, "padding": 3}), 2, "'padding'"),
    ("block-add-bits-1", _with_layer(2, {"type": "block", "channels": 16, "residual": "requant",
                                         "add_bits": 1}), 2, "'add_bits'"),
    ("block-add-bits-with-shift", _with_layer(2, {"type": "block", "channels": 16,
                                                  "add_bits": 8}), 2, "'add_bits'"),
    ("block-residual-unknown", _with_layer(2, {"type": "block", "channels": 16,
                                               "residual": "concat"}), 2, "'residual'"),
    ("block-residual-int", _with_layer(2, {"type": "block", "channels": 16, "residual": 1}), 2,
     "'residual'"),
    ("block-residual-null", _with_layer(2, {"type": "block", "channels": 16, "residual": None}),
     2, "'residual'"),
    ("conv-residual", _with_layer(2, {**_CONV2, "residual": "shift"}), 2, "'residual'"),
    # shapes
    ("kernel-9-on-8x8", _with_layer(0, {"type": "conv", "channels": 8, "kernel": 9}), 0,
     "'kernel'"),
    ("kernel-5-on-4x4", _with_layer(2, {"type": "conv", "channels": 16, "kernel": 5}), 2,
     "'kernel'"),
    ("pool-larger-than-input", _with_layer(1, {"type": "maxpool", "kernel": 9}), 1, "'kernel'"),
    ("kernel-wider-than-input", _spec([{"type": "conv", "channels": 4, "kernel": 5},
                                       {"type": "linear", "features": 10}], height=8, width=4),
     0, "'kernel'"),
    ("maxpool-after-flatten", {**_base(), "layers": _base()["layers"][:4]
                               + [{"type": "maxpool", "kernel": 2}]
                               + _base()["layers"][4:]}, 4, "'type'"),
    ("conv-after-linear", {**_base(), "layers": _base()["layers"][:5]
                           + [{"type": "conv", "channels": 4, "kernel": 1}]
                           + _base()["layers"][5:]}, 5, "'type'"),
    # the classifier
    ("last-not-linear", {**_base(), "layers": _base()["layers"][:3]}, 2, "'type'"),
    ("last-is-flatten", {**_base(), "layers": _base()["layers"][:4]}, 3, "'type'"),
    ("last-features-not-classes", _with_layer(5, {"type": "linear", "features": 12}), 5,
     "'features'"),
    # top level
    ("top-weight-bits-1", _with_top(weight_bits=1), None, "'weight_bits'"),
    ("top-weight-bits-17", _with_top(weight_bits=17), None, "'weight_bits'"),
    ("top-weight-bits-str", _with_top(weight_bits="4"), None, "'weight_bits'"),
    ("top-levels-0", _with_top(levels=0), None, "'levels'"),
    ("top-levels-neg", _with_top(levels=-1), None, "'levels'"),
    ("classes-1", _with_top(classes=1), None, "'classes'"),
    ("classes-str", _with_top(classes="10"), None, "'classes'"),
    ("name-empty", _with_top(name=""), None, "'name'"),
    ("name-space", _with_top(name="my net"), None, "'name'"),
    ("name-path", _with_top(name="../etc"), None, "'name'"),
    ("name-newline", _with_top(name="net\nrm -rf"), None, "'name'"),
    ("name-quote", _with_top(name='a"b'), None, "'name'"),
    ("name-dollar", _with_top(name="a$(b)"), None, "'name'"),
    ("name-int", _with_top(name=7), None, "'name'"),
    ("name-65-chars", _with_top(name="a" * 65), None, "'name'"),
    # size bounds
    ("channels-8193", _with_layer(2, {**_CONV2, "channels": 8193}), 2, "'channels'"),
    ("channels-million", _with_layer(0, {"type": "conv", "channels": 1000000, "kernel": 3}), 0,
     "'channels'"),
    ("block-channels-8193", _with_layer(2, {"type": "block", "channels": 8193}), 2,
     "'channels'"),
    ("features-8193", _with_layer(4, {"type": "linear", "features": 8193}), 4, "'features'"),
    ("classifier-features-100001", _spec([{"type": "linear", "features": 100001}],
                                         classes=100000), 0, "'features'"),
    ("kernel-32", _spec([{"type": "conv", "channels": 4, "kernel": 32},
                         {"type": "linear", "features": 10}], height=64, width=64), 0,
     "'kernel'"),
    ("pool-kernel-32", _spec([{"type": "maxpool", "kernel": 32},
                              {"type": "linear", "features": 10}], height=64, width=64), 0,
     "'kernel'"),
    ("stride-32", _with_layer(2, {**_CONV2, "stride": 32}), 2, "'stride'"),
    ("input-height-4097", _with_input(height=4097), None, "'height'"),
    ("input-width-4097", _with_input(width=4097), None, "'width'"),
    ("input-channels-8193", _with_input(channels=8193), None, "'channels'"),
    ("classes-100001", _with_top(classes=100001), None, "'classes'"),
    ("weights-over-budget", _spec([{"type": "conv", "channels": 8192, "kernel": 3, "padding": 1},
                                   {"type": "linear", "features": 200},
                                   {"type": "linear", "features": 10}]), 1, "'features'"),
    ("weights-over-budget-conv", _spec([{"type": "conv", "channels": 8192, "kernel": 3},
                                        {"type": "conv", "channels": 8192, "kernel": 3},
                                        {"type": "linear", "features": 10}], height=16, width=16),
     1, "'channels'"),
    ("weights-over-budget-block", _spec([{"type": "conv", "channels": 1024, "kernel": 1},
                                         {"type": "block", "channels": 1024},
                                         {"type": "block", "channels": 2048},
                                         {"type": "linear", "features": 10}]), 2, "'channels'"),
    ("layers-empty", _with_top(layers=[]), None, "'layers'"),
    ("layers-mapping", _with_top(layers={"type": "linear"}), None, "'layers'"),
    ("unknown-top-field", _with_top(optimizer="adam"), None, "'optimizer'"),
    ("missing-name", _without_top("name"), None, "'name'"),
    ("missing-input", _without_top("input"), None, "'input'"),
    ("missing-classes", _without_top("classes"), None, "'classes'"),
    ("missing-layers", _without_top("layers"), None, "'layers'"),
    ("input-not-mapping", _with_top(input=[1, 8, 8]), None, "'input'"),
    ("input-missing-bits", {**_base(), "input": {"channels": 1, "height": 8, "width": 8}},
     None, "'bits'"),
    ("input-bits-0", _with_input(bits=0), None, "'bits'"),
    ("input-height-float", _with_input(height=8.0), None, "'height'"),
    ("input-unknown-field", _with_input(depth=3), None, "'depth'"),
    # the file itself
    ("invalid-yaml", "name: x\nlayers: [\n  {type: conv\n", None, "YAML"),
    ("tab-yaml", "name: x\n\tclasses: 10\n", None, "YAML"),
    ("non-mapping-list", "- a\n- b\n", None, "mapping"),
    ("non-mapping-scalar", "just a string\n", None, "mapping"),
    ("empty-file", "", None, "mapping"),
    ("binary-file", b"\x80\x81\xff\x00PK\x03\x04", None, "YAML"),
    ("control-character", "name: a\x01b\n", None, "YAML"),
    ("two-documents", "name: a\n---\nname: b\n", None, "YAML"),
]


@pytest.mark.parametrize("content, layer, needle", [case[1:] for case in BAD_SPECS],
                         ids=[case[0] for case in BAD_SPECS])
def test_bad_spec(tmp_path, content, layer, needle):
    path = _write(tmp_path, content)
    with pytest.raises(PascalError) as info:
        load_spec(path)
    msg = str(info.value)
    assert "\n" not in msg and "\r" not in msg, msg
    assert msg.startswith(str(path)), msg
    assert needle in msg, msg
    rest = msg[len(str(path)):]
    if layer is None:
        assert re.search(r"layer \d", rest) is None, msg
    else:
        found = re.findall(r"layer (\d+)", rest)
        assert found and int(found[0]) == layer, msg


def test_size_bounds_are_inclusive():
    # the input's channels and width at their bounds (8192 x 2 x 1 and 1 x 1 x 4096)
    spec = parse_spec(_spec([{"type": "conv", "channels": 8, "kernel": 1},
                             {"type": "linear", "features": 10}],
                            height=2, width=1, channels=8192))
    assert spec.layers[0].out_shape == (8, 2, 1)
    spec = parse_spec(_spec([{"type": "conv", "channels": 8, "kernel": 31, "stride": 31},
                             {"type": "linear", "features": 10}], height=31, width=4096))
    assert spec.layers[0].out_shape == (8, 1, 132)
    spec = parse_spec(_spec([{"type": "conv", "channels": 8192, "kernel": 31},
                             {"type": "linear", "features": 10}], height=31, width=31))
    assert spec.layers[0].out_shape == (8192, 1, 1)
    spec = parse_spec(_spec([{"type": "conv", "channels": 1, "kernel": 31, "stride": 31},
                             {"type": "maxpool", "kernel": 31},
                             {"type": "linear", "features": 10}], height=4096, width=4096))
    assert spec.layers[1].out_shape == (1, 4, 4)
    # the classifier's features are bounded by classes (100000), hidden ones by 8192
    assert parse_spec(_spec([{"type": "linear", "features": 100000}],
                            classes=100000)).classifier.features == 100000
    with pytest.raises(PascalError, match=r"layer 0 \(linear\): field 'features' must be "
                                          r"1\.\.8192, got 8193"):
        parse_spec(_spec([{"type": "linear", "features": 8193},
                          {"type": "linear", "features": 10}]))


def _linear_weights(features: int) -> dict:
    """8192 inputs, a hidden linear of ``features``, a 2-class classifier: features * 8194
    weights."""
    return _spec([{"type": "linear", "features": features}, {"type": "linear", "features": 2}],
                 channels=8192, height=1, width=1, classes=2)


def test_weight_budget_is_exact():
    assert 8190 * (8192 + 2) == 2 ** 26 - 4
    assert len(parse_spec(_linear_weights(8190)).layers) == 2  # 2^26 - 4 weights
    with pytest.raises(PascalError) as info:
        parse_spec(_linear_weights(8191), "big.yaml")  # 2^26 + 8190 weights
    msg = str(info.value)
    assert msg.startswith("big.yaml: layer 1 (linear): field 'features': ")
    assert f"{8191 * 8194} weights" in msg and f"{2 ** 26}" in msg


def test_shipped_specs_are_within_the_bounds():
    # every shipped spec loads, names pass the name check, and the weights are far from the budget
    for path in SHIPPED:
        spec = load_spec(path)
        weights = 0
        for layer in spec.layers:
            if layer.type == "conv":
                weights += layer.channels * layer.in_shape[0] * layer.kernel ** 2
            elif layer.type == "linear":
                weights += layer.features * math.prod(layer.in_shape)
        assert weights < 2 ** 26, path


def test_bad_spec_reports_first_bad_layer(tmp_path):
    raw = _base()
    raw["layers"][2]["levels"] = 0
    raw["layers"][4]["weight_bits"] = 99
    with pytest.raises(PascalError, match=r"layer 2 .*'levels'"):
        load_spec(_write(tmp_path, raw))


def test_missing_spec_file(tmp_path):
    path = tmp_path / "nope.yaml"
    with pytest.raises(PascalError) as info:
        load_spec(path)
    msg = str(info.value)
    assert "\n" not in msg and str(path) in msg and "cannot read" in msg


def test_spec_path_is_a_directory(tmp_path):
    with pytest.raises(PascalError) as info:
        load_spec(tmp_path)
    assert str(tmp_path) in str(info.value) and "\n" not in str(info.value)


def test_parse_spec_names_its_source():
    with pytest.raises(PascalError, match=r"^my/spec\.yaml: layer 0 \(conv\): .*'channels'"):
        parse_spec(_spec([{"type": "conv", "kernel": 3}, {"type": "linear", "features": 10}]),
                   "my/spec.yaml")


def _wide(input_shape: tuple[int, int, int], channels: int) -> dict:
    c, h, w = input_shape
    return {"name": "wide", "input": {"channels": c, "height": h, "width": w, "bits": 8},
            "classes": 10, "layers": [{"type": "conv", "channels": channels, "kernel": 1},
                                      {"type": "maxpool", "kernel": 31},
                                      {"type": "linear", "features": 10}]}


def test_activation_bound_on_the_input_and_every_layer_output():
    # 3 x 4096 x 4096: each bound alone holds, the image does not fit
    with pytest.raises(PascalError, match=r"wide.yaml: input: 3x4096x4096 = 50331648 values"):
        parse_spec(_wide((3, 4096, 4096), 4), "wide.yaml")
    # a 1 x 2048 x 2048 image is within the bound, 8 channels of it are not
    with pytest.raises(PascalError, match=r"layer 0 \(conv\): field 'channels': its output has "
                                          r"8x2048x2048 = 33554432 values"):
        parse_spec(_wide((1, 2048, 2048), 8), "wide.yaml")
    # exactly at the bound is accepted
    spec = parse_spec(_wide((1, 2048, 2048), 4), "wide.yaml")
    assert math.prod(spec.layers[0].out_shape) == 2 ** 24


# ------------------------------------------------------------------------------------------------
# Hostile spec files (issue 21): one line naming the file and the field, promptly, never a hang,
# a traceback or a silent acceptance.

REPO = MODELS.parent
ZOO_SPECS = sorted(MODELS.glob("zoo/*/spec.yaml"))
GUARD_S = 60  # a guard against a hang, not a timing assertion

_CHILD = """\
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))
from pascal_fpga.errors import PascalError
from pascal_fpga.spec import load_spec
try:
    load_spec(sys.argv[1])
except PascalError as exc:
    print(exc)
    sys.exit(3)
print("accepted")
"""


def _refused_elsewhere(path) -> str:
    """load_spec(path) in a child process (2 GiB of address space, killed after GUARD_S): the
    PascalError's message; the test fails if the child hangs, crashes or accepts the file."""
    try:
        done = subprocess.run([sys.executable, "-c", _CHILD, str(path)], cwd=REPO,
                              capture_output=True, text=True, timeout=GUARD_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"load_spec({path}) did not return within {GUARD_S} s")
    assert done.returncode == 3, (done.returncode, done.stdout[-300:], done.stderr[-1500:])
    msg = done.stdout.rstrip("\n")
    assert "\n" not in msg and msg.startswith(str(path)), msg
    return msg


def _refused(path) -> str:
    with pytest.raises(PascalError) as info:
        load_spec(path)
    msg = str(info.value)
    assert "\n" not in msg and "\r" not in msg and msg.startswith(str(path)), msg
    assert len(msg) < 400, msg
    return msg


DIGITS_TEXT = (MODELS / "digits-cnn.yaml").read_text()


def _digits_with_classes(text: str) -> str:
    """digits-cnn.yaml with the text of ``classes`` replaced."""
    assert "\nclasses: 10\n" in DIGITS_TEXT
    return DIGITS_TEXT.replace("\nclasses: 10\n", f"\nclasses: {text}\n")


def _alias_bomb(levels: int = 9, fanout: int = 9) -> str:
    """Billion laughs: ``levels`` anchors, each a list of ``fanout`` aliases of the one before."""
    parts = ["&a [" + ", ".join(['"lol"'] * fanout) + "]"]
    names = "abcdefghijklmnopqrstuvwxyz"
    for prev, name in zip(names, names[1:levels]):
        parts.append(f"&{name} [" + ", ".join([f"*{prev}"] * fanout) + "]")
    return "[" + ", ".join(parts) + "]"


def test_yaml_alias_bomb_is_refused_promptly(tmp_path):
    # 9 levels of 9 aliases: 81 aliases, 9^9 leaves (before: the error path's repr never ended)
    path = _write(tmp_path, _digits_with_classes(_alias_bomb()), "bomb.yaml")
    msg = _refused_elsewhere(path)
    assert "field 'classes[" in msg and "alias" in msg, msg


def test_yaml_many_aliases_are_refused(tmp_path):
    # many aliases of a small anchor: a bound on the aliases themselves
    text = DIGITS_TEXT + "extra: [&x 1, " + ", ".join(["*x"] * 500) + "]\n"
    msg = _refused(_write(tmp_path, text))
    assert "field 'extra[" in msg and "aliases" in msg, msg


def test_yaml_recursive_alias_is_refused(tmp_path):
    msg = _refused(_write(tmp_path, _digits_with_classes("&r [1, *r]")))
    assert "field 'classes[1]'" in msg and "alias" in msg, msg


def test_yaml_anchors_aliases_and_merges_within_bounds_still_load(tmp_path):
    text = """\
name: shared
input: {channels: 1, height: 8, width: 8, bits: 5}
classes: 10
layers:
  - &conv {type: conv, channels: 8, kernel: 3, padding: 1, levels: 6}
  - *conv
  - {<<: *conv, channels: 16}
  - {type: linear, features: 10}
"""
    spec = load_spec(_write(tmp_path, text))
    assert [layer.channels for layer in spec.layers[:3]] == [8, 8, 16]
    assert [layer.levels for layer in spec.layers[:3]] == [6, 6, 6]


def test_huge_integer_is_refused_naming_the_field(tmp_path):
    # 5000 digits: beyond Python's int-from-str limit (before: a ValueError traceback)
    msg = _refused(_write(tmp_path, _digits_with_classes("1" + "0" * 4999)))
    assert "field 'classes'" in msg and "5000-digit integer" in msg, msg
    # a long integer within the limit is refused by its bound, and shown short
    msg = _refused(_write(tmp_path, _digits_with_classes("9" * 4000)))
    assert "field 'classes'" in msg and "4000-digit integer" in msg, msg
    # in a layer: the layer and the field
    text = DIGITS_TEXT.replace("{type: conv, channels: 16,",
                               "{type: conv, channels: 1" + "6" * 5000 + ",")
    msg = _refused(_write(tmp_path, text))
    assert "layer 0 (conv): field 'channels'" in msg and "5001-digit integer" in msg, msg


def test_deep_nesting_is_refused(tmp_path):
    depth = 100_000  # before: a RecursionError traceback
    msg = _refused(_write(tmp_path, _digits_with_classes("[" * depth + "]" * depth)))
    assert "field 'classes[0]" in msg and "nested" in msg, msg
    deep_map = "{a: " * depth + "1" + "}" * depth
    msg = _refused(_write(tmp_path, DIGITS_TEXT.replace("{type: flatten}", deep_map)))
    assert "field 'layers[3]" in msg and "nested" in msg, msg


def test_spec_on_dev_zero_is_refused_promptly():
    # a character device: before, read forever (MemoryError under a memory limit)
    msg = _refused_elsewhere("/dev/zero")
    assert "not a regular file" in msg, msg


def test_spec_fifo_is_refused_promptly(tmp_path):
    # a named pipe without a writer: before, open() blocked forever
    path = tmp_path / "spec.yaml"
    os.mkfifo(path)
    msg = _refused_elsewhere(path)
    assert "not a regular file" in msg, msg


def test_spec_through_a_symlink_to_a_device_is_refused(tmp_path):
    link = tmp_path / "spec.yaml"
    link.symlink_to("/dev/zero")
    assert "not a regular file" in _refused_elsewhere(link)


def test_spec_larger_than_the_limit_is_refused(tmp_path):
    text = DIGITS_TEXT + ("# " + "x" * 1021 + "\n") * 1024  # valid YAML, over 1 MiB
    msg = _refused(_write(tmp_path, text))
    assert "MiB" in msg and "bytes" in msg, msg
    # a large valid spec within the limit loads
    text = DIGITS_TEXT + ("# " + "x" * 1021 + "\n") * 1000
    assert load_spec(_write(tmp_path, text, "ok.yaml")).name == "digits-cnn"


@pytest.mark.parametrize("text, needle", [
    (DIGITS_TEXT + "classes: 7\n", "field 'classes' is given twice (lines 4 and 14)"),
    (DIGITS_TEXT.replace("{channels: 1, height: 8,", "{channels: 1, height: 8, channels: 3,"),
     "field 'input.channels' is given twice (line 3)"),
    (DIGITS_TEXT.replace("{type: conv, channels: 32, kernel: 3,",
                         "{type: conv, channels: 32, kernel: 3, kernel: 5,"),
     "field 'layers[1].kernel' is given twice (line 9)"),
], ids=["top-level", "input", "layer"])
def test_duplicate_keys_are_refused(tmp_path, text, needle):
    # before: the last value won silently
    assert needle in _refused(_write(tmp_path, text))


def test_error_messages_bound_user_values(tmp_path):
    long_name = "x" * 100_000
    for raw in (_with_top(classes=long_name), _with_top(classes=list(range(100_000))),
                _with_top(classes=10 ** 5000), _with_top(name=[long_name] * 1000),
                _with_layer(2, {**_CONV2, "batchnorm": long_name}),
                _with_layer(2, {**_CONV2, "type": long_name}),
                _with_layer(2, {**_CONV2, long_name + "\n": 1}),
                _with_input(**{long_name: 1}), {**_base(), "a\nb" * 1000: 1}):
        with pytest.raises(PascalError) as info:
            parse_spec(raw, "big.yaml")
        msg = str(info.value)
        assert "\n" not in msg and len(msg) < 300, msg[:500]


# Specs that train and export but cannot compile (the float32 integer graph), refused here.

def test_classifier_weight_bits_16_on_4_levels_is_accepted():
    """Its bias, an integer of ~0.3 * 4 * 32767 accumulator steps, is recovered from float32 by
    the compile (tests/test_security_compile.py compiles and verifies one); only the worst-case
    accumulator bounds a classifier's weight bits."""
    raw = _spec([{"type": "linear", "features": 32},
                 {"type": "linear", "features": 10, "weight_bits": 16}])
    assert parse_spec(raw, "c.yaml").classifier.weight_bits == 16
    # after a 256-level layer 12 bits are too many (1024 x 256 x 2047 >= 2^24), 7 are fine
    raw = _spec([{"type": "conv", "channels": 16, "kernel": 3, "padding": 1, "levels": 256},
                 {"type": "linear", "features": 10, "weight_bits": 12}])
    with pytest.raises(PascalError, match=r"layer 1 \(linear\): field 'weight_bits': .*at most "
                                          r"7 weight bits"):
        parse_spec(raw)
    raw["layers"][1]["weight_bits"] = 7
    assert parse_spec(raw).classifier.weight_bits == 7
    # an average pool multiplies the classifier's input range by its window
    raw = _spec([{"type": "conv", "channels": 16, "kernel": 3, "padding": 1, "levels": 256},
                 {"type": "avgpool", "kernel": 4},
                 {"type": "linear", "features": 10, "weight_bits": 8}])
    with pytest.raises(PascalError, match=r"layer 2 \(linear\): field 'weight_bits': .*4096"):
        parse_spec(raw)
    # within the bound: the digits network's classifier at 16 bits on 2 levels (65534)
    text = DIGITS_TEXT.replace("{type: linear, features: 10}",
                               "{type: linear, features: 10, weight_bits: 16}")
    assert parse_spec(yaml.safe_load(text)).classifier.weight_bits == 16


def test_classifier_worst_case_accumulator_is_refused():
    # a classifier on 3x64x64 8-bit pixels: 12288 x 255 x 7 >= 2^24
    raw = _spec([{"type": "linear", "features": 10}], channels=3, height=64, width=64)
    with pytest.raises(PascalError) as info:
        parse_spec(raw, "c.yaml")
    msg = str(info.value)
    assert msg.startswith("c.yaml: layer 0 (linear): field 'weight_bits': "), msg
    assert "12288 x 255 x 7 = 21934080" in msg and "2^24" in msg, msg
    assert "at most 3 weight bits" in msg, msg
    raw["weight_bits"] = 3
    assert parse_spec(raw).classifier.weight_bits == 3


def test_hidden_layer_thresholds_beyond_float32_are_refused():
    # 16-bit weights on 256 levels: thresholds near 2^24 (compile: "thresholds beyond 2^24")
    raw = _spec([{"type": "conv", "channels": 16, "kernel": 3, "padding": 1, "levels": 256},
                 {"type": "conv", "channels": 8, "kernel": 3, "weight_bits": 16},
                 {"type": "linear", "features": 10}])
    with pytest.raises(PascalError, match=r"layer 1 \(conv\): field 'weight_bits': .*thresholds"
                                          r".*at most 14 weight bits"):
        parse_spec(raw)
    raw["layers"][1]["weight_bits"] = 14
    assert parse_spec(raw).layers[1].weight_bits == 14
    # the digits network's hidden linear at 16 bits (on 4 levels) compiles
    text = DIGITS_TEXT.replace("{type: linear, features: 64, levels: 2}",
                               "{type: linear, features: 64, levels: 2, weight_bits: 16}")
    assert parse_spec(yaml.safe_load(text)).layers[4].weight_bits == 16


def test_block_sum_beyond_float32_is_refused():
    raw = _spec([{"type": "conv", "channels": 8, "kernel": 3, "padding": 1},
                 {"type": "block", "channels": 32, "stride": 2, "weight_bits": 16, "levels": 16},
                 {"type": "flatten"}, {"type": "linear", "features": 10}])
    with pytest.raises(PascalError, match=r"layer 1 \(block\): field 'weight_bits': .*sum.*2\^24"
                                          r".*at most 12 weight bits"):
        parse_spec(raw)
    raw["layers"][1]["weight_bits"] = 12
    assert parse_spec(raw).layers[1].weight_bits == 12


@pytest.mark.parametrize("kinds", [("shift", "requant"), ("requant", "shift")])
def test_requant_and_shift_blocks_together_are_refused(kinds):
    # the export matches every residual add to one kind (before: export failed on Add_1)
    raw = _spec([{"type": "conv", "channels": 8, "kernel": 3, "padding": 1},
                 {"type": "block", "channels": 8, "residual": kinds[0]},
                 {"type": "block", "channels": 8, "residual": kinds[1]},
                 {"type": "flatten"}, {"type": "linear", "features": 10}])
    with pytest.raises(PascalError) as info:
        parse_spec(raw, "r.yaml")
    msg = str(info.value)
    assert msg.startswith("r.yaml: layer 2 (block): field 'residual': "), msg
    assert f"layer 1 is residual: {kinds[0]}" in msg and "one kind" in msg, msg
    # the default (shift) counts as shift
    raw["layers"][1].pop("residual")
    if kinds[1] == "requant":
        with pytest.raises(PascalError, match=r"layer 2 \(block\): field 'residual'"):
            parse_spec(raw)


@pytest.mark.parametrize("path", SHIPPED + ZOO_SPECS,
                         ids=[str(p.relative_to(MODELS)) for p in SHIPPED + ZOO_SPECS])
def test_every_shipped_and_zoo_spec_loads(path):
    spec = load_spec(path)
    assert spec.source == str(path) and spec.layers[-1].features == spec.classes
