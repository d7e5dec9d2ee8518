"""Fuzzing the command line with hypothesis: spec YAML (train) and folding JSON (compile). Every
outcome is a success (exit 0) or one error line with exit 2; never a traceback, never another
status. The examples are derandomized so that CI runs the same ones every time."""

from __future__ import annotations

import json

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pascal_fpga.cli import main

FUZZ = settings(max_examples=120, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])

# values that hit edges: wrong types, zero, negative, huge, NaN, nested containers
ODD_VALUES = st.one_of(
    st.none(), st.booleans(), st.sampled_from([-1, 0, 1, 2, 3, 7, 16, 10**6, 2**63, -2**70]),
    st.integers(-3, 20), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12), st.sampled_from(["conv", "linear", "maxpool", "avgpool", "flatten",
                                           "block", "../x", "a\nb", "$(x)"]),
    st.lists(st.integers(-2, 5), max_size=3), st.dictionaries(st.text(max_size=5),
                                                             st.integers(), max_size=2))

# mostly plausible small values (which reach the deeper checks, and train), sometimes odd ones
VALUES = st.one_of(st.integers(0, 12), st.integers(1, 4), ODD_VALUES)
LAYER_TYPES = ["conv", "linear", "maxpool", "avgpool", "flatten", "block"]
# hypothesis leans towards a strategy's first values: raw text one time in ten
RAW_SOMETIMES = st.sampled_from([False] * 9 + [True])
FIELDS_OF = {"conv": ["channels", "kernel", "stride", "padding", "levels", "weight_bits",
                      "batchnorm"],
             "linear": ["features", "levels", "weight_bits", "batchnorm"],
             "maxpool": ["kernel", "stride"], "avgpool": ["kernel", "stride"], "flatten": []}
LAYER_FIELDS = ["type", "channels", "kernel", "stride", "padding", "levels", "weight_bits",
                "batchnorm", "features", "add_bits", "bogus"]


def _digits_spec() -> dict:
    return {
        "name": "fuzz",
        "input": {"channels": 1, "height": 8, "width": 8, "bits": 5},
        "classes": 10, "weight_bits": 4, "levels": 2,
        "layers": [
            {"type": "conv", "channels": 4, "kernel": 3, "padding": 1},
            {"type": "maxpool", "kernel": 2},
            {"type": "flatten"},
            {"type": "linear", "features": 10},
        ],
    }


@st.composite
def mutated_specs(draw):
    """The digits spec with a few fields replaced, removed or added, mostly inside its layers
    (where the checks are) and sometimes at the top."""
    spec = _digits_spec()
    where_to = ["layer"] * 5 + ["input"] * 2 + ["insert", "drop_field", "top"]
    for _ in range(draw(st.integers(1, 3))):
        where = draw(st.sampled_from(where_to))
        layers = spec.get("layers")
        if where == "top":
            spec[draw(st.sampled_from(["name", "classes", "weight_bits", "levels", "input",
                                       "layers", "extra"]))] = draw(VALUES)
        elif where == "input" and isinstance(spec.get("input"), dict):
            spec["input"][draw(st.sampled_from(["channels", "height", "width", "bits",
                                                "depth"]))] = draw(VALUES)
        elif where == "layer" and isinstance(layers, list) and layers:
            layer = layers[draw(st.integers(0, len(layers) - 1))]
            if isinstance(layer, dict):
                own = FIELDS_OF.get(layer.get("type"), [])
                fields = own * 4 + LAYER_FIELDS if own else LAYER_FIELDS
                layer[draw(st.sampled_from(fields))] = draw(VALUES)
        elif where == "insert" and isinstance(layers, list):
            layers.insert(draw(st.integers(0, len(layers))), draw(st.one_of(
                st.fixed_dictionaries({"type": st.sampled_from(LAYER_TYPES)},
                                      optional={"channels": VALUES, "kernel": VALUES,
                                                "features": VALUES, "levels": VALUES}),
                ODD_VALUES)))
        elif where == "drop_field" and isinstance(layers, list) and layers:
            layer = layers[draw(st.integers(0, len(layers) - 1))]
            if isinstance(layer, dict) and layer:
                del layer[draw(st.sampled_from(sorted(layer)))]
    return spec


def _yaml_text(spec) -> str:
    try:
        return yaml.safe_dump(spec, sort_keys=False)
    except yaml.YAMLError:
        return "{}"


def _assert_outcome(status: int, err: str, command: str) -> None:
    assert "Traceback" not in err, err
    assert status in (0, 2), (status, err)
    if status == 2:
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1, err
        assert lines[0].startswith(f"pascal-fpga {command}: error: "), lines[0]


@pytest.mark.slow
@FUZZ
@given(spec=mutated_specs(), raw=st.text(max_size=40), use_raw=RAW_SOMETIMES)
def test_fuzz_spec_yaml(spec, raw, use_raw, tmp_path_factory, capsys):
    folder = tmp_path_factory.mktemp("spec")
    path = folder / "spec.yaml"
    path.write_text(raw if use_raw else _yaml_text(spec))
    status = main(["train", str(path), "--dataset", "digits", "--epochs", "0", "--batch-size",
                   "64", "--out", str(folder / "run")])
    _assert_outcome(status, capsys.readouterr().err, "train")


@pytest.fixture(scope="module")
def fuzz_model(odd_exports):
    """The exported model (conftest.py's, shared: read-only)."""
    return odd_exports("pools")[1]


LAYERS = ["conv0", "conv1", "pool0", "dense0", "classifier", "layer", ""]
FOLD_KEYS = ["pe", "simd", "pe", "simd", "fifo_depth", "bogus"]


@st.composite
def foldings(draw):
    """Mostly per-layer objects with small (often valid) factors, sometimes anything."""
    entry = st.one_of(st.dictionaries(st.sampled_from(FOLD_KEYS), VALUES, max_size=3),
                      ODD_VALUES)
    if draw(st.sampled_from([True] * 9 + [False])):
        return draw(st.dictionaries(st.sampled_from(LAYERS), entry, max_size=4))
    return draw(ODD_VALUES)


def _json_text(value) -> str:
    # NaN and infinities as JSON's non-standard tokens: Python's json reads them back
    return json.dumps(value, allow_nan=True, default=str)


@pytest.mark.slow
@settings(FUZZ, max_examples=80)
@given(folding=foldings(), raw=st.text(max_size=30), use_raw=RAW_SOMETIMES)
def test_fuzz_folding_json(folding, raw, use_raw, fuzz_model, tmp_path_factory, capsys):
    folder = tmp_path_factory.mktemp("fold")
    path = folder / "folding.json"
    path.write_text(raw if use_raw else _json_text(folding))
    status = main(["compile", str(fuzz_model), "--out", str(folder / "build"), "--folding",
                   str(path)])
    _assert_outcome(status, capsys.readouterr().err, "compile")
    if status == 0:
        assert (folder / "build" / "build.json").is_file()
    else:
        assert not (folder / "build").exists()

