"""Hostile and malformed inputs to export/compile/verify/simulate/run: names that would inject
into the generated Makefile, tcl and C++, paths in a model's metadata, damaged build folders,
non-finite or non-QCFS quantizers, out-of-range folding. Each is refused with one line (exit 2)
or stays inert; nothing runs a command the input carries."""

from __future__ import annotations

import json
import shutil
import subprocess
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from onnx import helper
from qonnx.core.modelwrapper import ModelWrapper

from pascal_fpga.cli import main
from pascal_fpga.flows.compile import compile_model
from pascal_fpga.ir.export import SOURCE_KEY
from pascal_fpga.hw.backends.hls import generate_hls
from pascal_fpga.hw.design import design_from_ir
from pascal_fpga.ir.transforms import guard_affine
from pascal_fpga.errors import PascalError

from nets import ODD_SPECS, make_exported

IR = Path("ir") / "08_size_fifos.onnx"


@pytest.fixture(scope="module")
def exported(odd_exports):
    """The exported model (conftest.py's, shared: read-only)."""
    return odd_exports("pools")[1]


@pytest.fixture(scope="module")
def build(odd_builds):
    """Its build with the defaults (conftest.py's, shared with test_compiler.py: read-only)."""
    return odd_builds("pools")


def _one_error(capsys, command: str, *argv) -> str:
    status = main([command, *[str(a) for a in argv]])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert status == 2, err
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith(f"pascal-fpga {command}: error: "), lines[0]
    return lines[0]


def _mutated(exported: Path, folder: Path, change, name: str = "mutated.onnx") -> Path:
    model = ModelWrapper(str(exported))
    change(model)
    path = folder / name
    model.save(str(path))
    return path


def _with_source(exported: Path, folder: Path, update=None, raw: str | None = None) -> Path:
    """The exported model with its pascal_fpga.source metadata updated (or replaced by raw)."""
    def change(model):
        if raw is not None:
            model.set_metadata_prop(SOURCE_KEY, raw)
            return
        info = json.loads(model.get_metadata_prop(SOURCE_KEY))
        update(info)
        model.set_metadata_prop(SOURCE_KEY, json.dumps(info))
    return _mutated(exported, folder, change)


# --- names that reach the Makefile, run_hls.tcl and C++ --------------------------------------

def _hostile_names(marker: Path) -> list[str]:
    return [f"x\n$(shell touch {marker})", f"x\nexec touch {marker}", "x]; exec touch M; #",
            "../../x", "x y", ""]


def test_hostile_metadata_name_is_refused(exported, tmp_path, capsys):
    marker = tmp_path / "MARKER"
    for hostile in _hostile_names(marker):
        def set_name(info):
            info["name"] = hostile
        model = _with_source(exported, tmp_path, set_name)
        line = _one_error(capsys, "compile", model, "--out", tmp_path / "b")
        assert str(model) in line and "'name'" in line and repr(hostile)[:20] in line
        assert not (tmp_path / "b").exists()
    assert not marker.exists()


def test_hostile_spec_name_in_metadata_is_refused(exported, tmp_path, capsys):
    def set_spec_name(info):
        del info["name"]
        info["spec"]["name"] = "x\n$(shell touch MARKER)"
    model = _with_source(exported, tmp_path, set_spec_name)
    line = _one_error(capsys, "compile", model, "--out", tmp_path / "b")
    assert str(model) in line and "'spec'" in line and "'name'" in line


def test_hostile_part_is_refused_before_any_work(exported, tmp_path, capsys):
    out = tmp_path / "b"
    for part in ("xc7z020clg400-1} ; exec touch MARKER ;#", "[exec touch MARKER]",
                 "xc7z020\nclg400", "../x", ""):
        line = _one_error(capsys, "compile", exported, "--out", out, "--part", part)
        assert "--part" in line
        with pytest.raises(PascalError, match="--part"):
            compile_model(exported, out, part=part)
        assert not out.exists()


def test_unsafe_file_stem_becomes_a_clean_name_and_make_runs_nothing(exported, tmp_path,
                                                                       capsys):
    """No metadata: the name is the file's stem, its unsafe characters replaced by '_'."""
    model = ModelWrapper(str(exported))
    del model.graph.metadata_props[:]
    path = tmp_path / "evil\n$(shell touch MARKER)\n.onnx"
    model.save(str(path))
    assert main(["compile", str(path), "--out", str(tmp_path / "b")]) == 0
    capsys.readouterr()
    build = json.loads((tmp_path / "b" / "build.json").read_text())
    assert build["name"] == "evil___shell_touch_MARKER__"
    hls = tmp_path / "b" / "hls"
    # make parses the whole Makefile (a $(shell) at its top level would run) without building
    subprocess.run(["make", "-n", "-C", str(hls), "csim", "AP_TYPES=/nonexistent"], check=True,
                   capture_output=True)
    assert not (hls / "MARKER").exists() and not (tmp_path / "MARKER").exists()


_TCL_STUBS = """
rename exit {}
proc exit {args} {}
proc unknown {args} {}
proc open_project {args} { puts "PROJECT<[lindex $args end]>" }
proc set_part {args} { puts "PART<[join $args |]>" }
set argc 1
set argv {none}
source run_hls.tcl
"""


def _source_tcl(hls: Path) -> str:
    """Source run_hls.tcl in tclsh with the Vitis commands stubbed out."""
    if shutil.which("tclsh") is None:
        pytest.skip("tclsh is not installed (apt-get install tcl; .ci/run installs it)")
    result = subprocess.run(["tclsh"], input=_TCL_STUBS, cwd=hls, capture_output=True,
                            text=True, timeout=60)
    return result.stdout + result.stderr


def test_templates_quote_what_slips_past_the_checks(build, tmp_path):
    """generate_hls called directly with a hostile name and part: the Makefile, the tcl and
    the C++ stay as they are for a plain name (same lines), make and tcl run nothing, and
    set_part receives the part as one literal word."""
    marker = tmp_path / "MARKER"
    design = design_from_ir(ModelWrapper(str(build / IR)))
    spec = json.loads((build / "build.json").read_text())["spec"]
    plain = tmp_path / "plain"
    generate_hls(design, plain, spec, "plain-name", "xc7z020clg400-1")
    for index, name in enumerate(_hostile_names(marker)):
        part = f"xc7z020clg400-1}} ; exec touch {marker} ;# [exec touch {marker}] $x\\"
        out = tmp_path / f"hostile{index}"
        generate_hls(design, out, spec, name, part)
        subprocess.run(["make", "-n", "-C", str(out), "csim", "AP_TYPES=/nonexistent"],
                       capture_output=True)
        printed = _source_tcl(out)
        assert not marker.exists() and not (out / "MARKER").exists(), name
        assert f"PART<{part}>" in printed, printed
        project = printed.split("PROJECT<")[1].split(">")[0]
        assert "/" not in project and not project.startswith(("-", ".")), project
        for path in sorted(p for p in plain.rglob("*") if p.is_file() and p.suffix != ".bin"):
            other = out / path.relative_to(plain)
            assert len(other.read_text().splitlines()) == len(path.read_text().splitlines()), \
                (name, path.name)
        subprocess.run(["make", "-n", "-C", str(out), "csim", "AP_TYPES=/nonexistent"],
                       check=True, capture_output=True)


def test_ir_layer_names_must_be_c_identifiers(build, tmp_path, capsys):
    damaged = tmp_path / "b"
    shutil.copytree(build, damaged)
    model = ModelWrapper(str(damaged / IR))
    model.graph.node[0].name = "conv0/../../x"
    model.save(str(damaged / IR))
    line = _one_error(capsys, "verify", damaged, "--random", "4")
    assert str(damaged / IR) in line and "'conv0/../../x'" in line


def test_node_names_in_errors_stay_on_one_line(exported, tmp_path, capsys):
    def insert_relu(model):
        node = model.get_node_from_name("Quant_8")
        old = node.output[0]
        node.output[0] = old + "_pre"
        model.graph.node.insert(model.get_node_index(node) + 1, helper.make_node(
            "Relu", [old + "_pre"], [old], name="evil\nnode $(x)"))
    line = _one_error(capsys, "compile", _mutated(exported, tmp_path, insert_relu),
                      "--out", tmp_path / "b")
    assert "'evil\\nnode $(x)' (Relu)" in line and "non-QCFS activation" in line


def test_layer_table_cells_stay_in_their_row(exported, tmp_path, capsys):
    def rename(model):
        model.get_node_from_name("Conv_0").name = "conv|x\ny"
    path = _mutated(exported, tmp_path, rename)
    assert main(["compile", str(path), "--out", str(tmp_path / "b")]) == 0
    capsys.readouterr()
    layers = json.loads((tmp_path / "b" / "ir" / "layers.json").read_text())
    assert layers[0]["source"].startswith("conv|x\ny+")
    table = (tmp_path / "b" / "ir" / "layers.md").read_text().split("\n\n")[-1]
    rows = table.strip().splitlines()
    assert len(rows) == 2 + len(layers)
    columns = rows[0].count("|") - rows[0].count("\\|")
    assert all(row.count("|") - row.count("\\|") == columns for row in rows)


# --- the model's metadata: checked, and its paths never followed -----------------------------

BAD_SOURCES = [
    ("not-json", "{not json", "not valid JSON"),
    ("a-list", "[1, 2]", "must be a JSON object"),
    ("name-int", json.dumps({"name": 5}), "'name'"),
    ("spec-str", json.dumps({"spec": "x"}), "'spec'"),
    ("spec-bad-input", json.dumps({"spec": {**ODD_SPECS["pools"], "input": {
        "channels": "1", "height": 8, "width": 8, "bits": 5}}}), "'channels'"),
    ("spec-other-shape", json.dumps({"spec": {**ODD_SPECS["pools"], "input": {
        "channels": 1, "height": 9, "width": 8, "bits": 5}}}), "does not match"),
    ("dataset", json.dumps({"dataset": "../../etc"}), "'dataset'"),
    ("run-dir-int", json.dumps({"run_dir": 7}), "'run_dir'"),
]


@pytest.mark.parametrize("raw, message", [c[1:] for c in BAD_SOURCES],
                         ids=[c[0] for c in BAD_SOURCES])
def test_malformed_metadata_is_one_line(exported, tmp_path, capsys, raw, message):
    model = _with_source(exported, tmp_path, raw=raw)
    line = _one_error(capsys, "compile", model, "--out", tmp_path / "b")
    assert str(model) in line and SOURCE_KEY in line and message in line, line
    assert not (tmp_path / "b").exists()


def test_verify_without_run_does_not_load_the_named_run(exported, tmp_path, capsys,
                                                        monkeypatch):
    trap = tmp_path / "trap-run"
    trap.mkdir()
    (trap / "checkpoint.pt").write_bytes(b"a pickle would run code here")

    def point_at_trap(info):
        info["run_dir"] = str(trap)
    model = _with_source(exported, tmp_path, point_at_trap)
    out = tmp_path / "b"
    assert main(["compile", str(model), "--out", str(out)]) == 0
    capsys.readouterr()
    loaded = []
    import pascal_fpga.train.trainer as trainer
    monkeypatch.setattr(trainer, "load_run", lambda run_dir: loaded.append(run_dir))
    assert main(["verify", str(out), "--random", "8", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert loaded == []
    assert "qonnx_vs_brevitas" not in [c["name"] for c in report["checks"]]
    (skipped,) = report["skipped"]
    assert skipped["name"] == "qonnx_vs_brevitas"
    assert repr(str(trap)) in skipped["reason"] and "--run PATH" in skipped["reason"]
    monkeypatch.undo()
    # the run the user names is compared
    run = exported.parent / "run"
    assert main(["verify", str(out), "--random", "8", "--json", "--run", str(run)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert "qonnx_vs_brevitas" in [c["name"] for c in report["checks"]]
    assert report["skipped"] == []
    line = _one_error(capsys, "verify", out, "--random", "8", "--run", tmp_path / "nope")
    assert "--run" in line and "nope" in line


def test_verify_reads_only_the_users_data_folder(exported, tmp_path, capsys, monkeypatch):
    trap = tmp_path / "trap-data"
    trap.mkdir()

    def point_at_trap(info):
        info["dataset"] = "digits"
        info["data_dir"] = str(trap)
    model = _with_source(exported, tmp_path, point_at_trap)
    out = tmp_path / "b"
    assert main(["compile", str(model), "--out", str(out)]) == 0
    capsys.readouterr()
    asked = []

    def fake_load_dataset(name, data_dir=None):
        asked.append((name, data_dir))
        images = np.arange(3 * 64).reshape(3, 1, 8, 8) % 17
        return SimpleNamespace(name=name, test_images=images, test_labels=np.zeros(3, int))
    import pascal_fpga.datasets as datasets
    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    assert main(["verify", str(out), "--no-snn", "--json"]) == 0
    assert main(["verify", str(out), "--no-snn", "--json", "--data-dir",
                 str(tmp_path / "mine")]) == 0
    capsys.readouterr()
    assert asked == [("digits", None), ("digits", str(tmp_path / "mine"))]
    assert "data_dir" not in json.loads((out / "build.json").read_text())["source"]


# --- damaged build folders: one line naming the file -----------------------------------------

def _commands(build: Path, images: Path) -> dict[str, list]:
    return {"verify": [build, "--random", "4"],
            "simulate": [build, "--random", "--images", "4"],
            "run": [build, "--input", images]}


@pytest.fixture
def damaged(build, tmp_path):
    copy = tmp_path / "b"
    shutil.copytree(build, copy)
    images = tmp_path / "images.npy"
    np.save(images, np.zeros((2, 1, 8, 8), dtype=np.int64))
    return copy, images


def _good_build_json(build: Path) -> dict:
    return json.loads((build / "build.json").read_text())


BAD_BUILD_JSON = [
    ("list", lambda b: [], "must hold a JSON object"),
    ("empty", lambda b: {}, "missing field 'name'"),
    ("ir-outside", lambda b: {**b, "ir": "../../../etc/passwd"}, "'ir'"),
    ("ir-int", lambda b: {**b, "ir": 5}, "'ir'"),
    ("steps-empty", lambda b: {**b, "steps": []}, "'steps'"),
    ("steps-abs", lambda b: {**b, "steps": [{"model": "/etc/passwd"}]}, "'steps[0].model'"),
    ("name", lambda b: {**b, "name": "a\n$(shell x)"}, "'name'"),
    ("clock", lambda b: {**b, "hls": {**b["hls"], "clock_mhz": "fast"}}, "'hls.clock_mhz'"),
    ("clock-nan", lambda b: {**b, "hls": {**b["hls"], "clock_mhz": float("nan")}},
     "'hls.clock_mhz'"),
    ("part", lambda b: {**b, "hls": {**b["hls"], "part": "x} ; exec y"}}, "'hls.part'"),
    ("channels", lambda b: {**b, "spec": {"input": {**b["spec"]["input"], "channels": "1"}}},
     "'spec.input.channels'"),
    ("dataset", lambda b: {**b, "source": {"dataset": "../x"}}, "'source.dataset'"),
    ("source", lambda b: {**b, "source": "x"}, "'source'"),
]


@pytest.mark.parametrize("command", ["verify", "simulate", "run"])
@pytest.mark.parametrize("change, message", [c[1:] for c in BAD_BUILD_JSON],
                         ids=[c[0] for c in BAD_BUILD_JSON])
def test_malformed_build_json(damaged, capsys, command, change, message):
    folder, images = damaged
    path = folder / "build.json"
    path.write_text(json.dumps(change(_good_build_json(folder))))
    line = _one_error(capsys, command, *_commands(folder, images)[command])
    assert str(path) in line and message in line, line


@pytest.mark.parametrize("content", [b"\xff\xfe\x00garbage", b"[" * 100000, b"{\"name\": "],
                         ids=["not-utf8", "deep", "truncated"])
def test_unreadable_build_json(damaged, capsys, content):
    folder, images = damaged
    (folder / "build.json").write_bytes(content)
    for command, argv in _commands(folder, images).items():
        line = _one_error(capsys, command, *argv)
        assert str(folder / "build.json") in line and "JSON" in line, line


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])


def _set_ir(folder: Path, change) -> None:
    model = ModelWrapper(str(folder / IR))
    change(model)
    model.save(str(folder / IR))


def _set_pe_zero(model) -> None:
    from qonnx.custom_op.registry import getCustomOp

    getCustomOp(model.graph.node[1]).set_nodeattr("pe", 0)


BAD_IRS = [
    ("truncated", _truncate, "not a readable ONNX model"),
    ("garbage", lambda p: p.write_bytes(b"\x08\x07garbage" * 40), "not a readable ONNX model"),
    ("missing", lambda p: p.unlink(), "missing"),
    ("qonnx-instead", lambda p: shutil.copyfile(p.parent / "00_qonnx.onnx", p),
     "not a spiking IR"),
    ("scale-nan", lambda p: _set_ir(p.parent.parent, lambda m: m.set_metadata_prop(
        "pascal_fpga.out_scale", "nan")), "output scale"),
    ("pe-zero", lambda p: _set_ir(p.parent.parent, _set_pe_zero), "spiking IR"),
]


@pytest.mark.parametrize("command", ["verify", "simulate", "run"])
@pytest.mark.parametrize("damage, message", [c[1:] for c in BAD_IRS], ids=[c[0] for c in BAD_IRS])
def test_damaged_ir(damaged, capsys, command, damage, message):
    folder, images = damaged
    damage(folder / IR)
    line = _one_error(capsys, command, *_commands(folder, images)[command])
    assert str(folder / IR) in line and message in line, line


def test_truncated_qonnx_model_in_the_build(damaged, capsys):
    folder, _ = damaged
    _truncate(folder / "ir" / "00_qonnx.onnx")
    line = _one_error(capsys, "verify", folder, "--random", "4")
    assert str(folder / "ir" / "00_qonnx.onnx") in line and "not an ONNX model" in line


BAD_DESIGNS = [
    ("not-json", "{", "not a readable JSON file"),
    ("list", "[]", "must hold a JSON object"),
    ("no-classes", lambda d: {k: v for k, v in d.items() if k != "classes"}, "'classes'"),
    ("channels-str", lambda d: {**d, "channels": "1"}, "'channels'"),
    ("scale-nan", lambda d: {**d, "out_scale": float("nan")}, "'out_scale'"),
    ("pixels", lambda d: {**d, "pixels": 7}, "'pixels'"),
]


@pytest.mark.parametrize("change, message", [c[1:] for c in BAD_DESIGNS],
                         ids=[c[0] for c in BAD_DESIGNS])
def test_malformed_design_json(damaged, capsys, change, message):
    folder, images = damaged
    path = folder / "driver" / "design.json"
    if isinstance(change, str):
        path.write_text(change)
    else:
        path.write_text(json.dumps(change(json.loads(path.read_text()))))
    line = _one_error(capsys, "run", folder, "--input", images)
    assert str(path) in line and message in line, line


# --- folding: bounded ----------------------------------------------------------------------

BAD_FOLDINGS = [
    ("not-utf8", b"\xff\xfe{}", "not a readable JSON file"),
    ("int-too-long", b'{"conv0": {"fifo_depth": 1' + b"0" * 5000 + b"}}",
     "not a readable JSON file"),
    ("deep", b"[" * 100000, "not a readable JSON file"),
    ("fifo-huge", b'{"conv0": {"fifo_depth": 1000000000000}}', "1..1048576"),
    ("fifo-over", b'{"conv0": {"fifo_depth": 1048577}}', "1..1048576"),
    ("fifo-zero", b'{"conv0": {"fifo_depth": 0}}', "1..1048576"),
    ("pe-zero", b'{"conv0": {"pe": 0}}', "pe 0"),
    ("pe-true", b'{"conv0": {"pe": true}}', "pe True"),
    ("pe-float", b'{"conv0": {"pe": 2.0}}', "pe 2.0"),
    ("simd-negative", b'{"conv1": {"simd": -2}}', "simd -2"),
    ("entry-list", b'{"conv0": []}', "conv0: expected"),
]


@pytest.mark.parametrize("content, message", [c[1:] for c in BAD_FOLDINGS],
                         ids=[c[0] for c in BAD_FOLDINGS])
def test_malformed_folding_json_of_a_build(build, tmp_path, capsys, content, message):
    """A build's ir/folding.json, damaged, handed back to compile --folding."""
    copy = tmp_path / "b"
    shutil.copytree(build, copy)
    folding = copy / "ir" / "folding.json"
    folding.write_bytes(content)
    line = _one_error(capsys, "compile", build / "ir" / "00_qonnx.onnx", "--out",
                      tmp_path / "new", "--folding", folding)
    assert str(folding) in line and message in line, line
    assert not (tmp_path / "new").exists()


def test_largest_fifo_depth_is_accepted(build, tmp_path):
    (tmp_path / "fold.json").write_text(json.dumps({"conv0": {"fifo_depth": 2 ** 20}}))
    compile_model(build / "ir" / "00_qonnx.onnx", tmp_path / "b", tmp_path / "fold.json")
    folding = json.loads((tmp_path / "b" / "ir" / "folding.json").read_text())
    assert folding["conv0"]["fifo_depth"] == 2 ** 20


# --- quantizers and initializers that are not QCFS, or not finite ----------------------------

def _set_const(model, node_name: str, index: int, value) -> None:
    """Give input ``index`` of a node a fresh initializer (nothing else shares it)."""
    node = model.get_node_from_name(node_name)
    name = f"{node_name}_mutated{index}"
    model.set_initializer(name, np.asarray(value, dtype=np.float32))
    node.input[index] = name


def _set_attr(node_name: str, attr: str, value):
    def change(model):
        node = model.get_node_from_name(node_name)
        for attribute in list(node.attribute):
            if attribute.name == attr:
                node.attribute.remove(attribute)
        node.attribute.append(helper.make_attribute(attr, value))
    return change


def _poke(tensor: str, value, index=0):
    def change(model):
        values = np.array(model.get_initializer(tensor), dtype=np.float32)
        values.reshape(-1)[index] = value
        model.set_initializer(tensor, values)
    return change


BAD_QUANTS = [
    ("narrow", _set_attr("Quant_7", "narrow", 1), ["Quant_7 (Quant)", "narrow=1"]),
    ("scale-negative", lambda m: _set_const(m, "Quant_7", 1, -0.5),
     ["Quant_7 (Quant)", "not a positive finite"]),
    ("scale-zero", lambda m: _set_const(m, "Quant_7", 1, 0.0),
     ["Quant_7 (Quant)", "not a positive finite"]),
    ("scale-nan", lambda m: _set_const(m, "Quant_7", 1, np.nan),
     ["Quant_7_mutated1", "Quant_7 (Quant)", "NaN or infinite"]),
    ("scale-inf", lambda m: _set_const(m, "Quant_8", 1, np.inf),
     ["Quant_8_mutated1", "Quant_8 (Quant)", "NaN or infinite"]),
    ("bits-40", lambda m: _set_const(m, "Quant_7", 3, 40.0), ["Quant_7 (Quant)", "bit width"]),
    ("bits-not-qcfs", lambda m: _set_const(m, "Quant_8", 3, 2.5),
     ["Quant_8 (Quant)", "L = 2^bitwidth - 1"]),
    ("weight-nan", _poke("Quant_1_param0", np.nan, 3),
     ["initializer Quant_1_param0 of node Quant_1 (Quant)", "1 of its"]),
    ("weight-scale-zero", lambda m: _set_const(m, "Quant_2", 1, 0.0),
     ["Quant_2 (Quant)", "weight scale"]),
    ("bias-inf", _poke("Quant_6_param0", -np.inf),
     ["initializer Quant_6_param0 of node Quant_6 (Quant)"]),
    ("batchnorm-mean-inf", _poke("BatchNormalization_0_param2", np.inf, 1),
     ["BatchNormalization_0_param2", "BatchNormalization_0 (BatchNormalization)"]),
    ("batchnorm-var-negative", _poke("BatchNormalization_1_param3", -1.0, 2),
     ["BatchNormalization_1 (BatchNormalization)", "variance"]),
]


@pytest.mark.parametrize("change, needles", [c[1:] for c in BAD_QUANTS],
                         ids=[c[0] for c in BAD_QUANTS])
def test_non_qcfs_or_non_finite_quantizers_are_refused(exported, tmp_path, capsys, change,
                                                       needles):
    model = _mutated(exported, tmp_path, change)
    line = _one_error(capsys, "compile", model, "--out", tmp_path / "b")
    for needle in needles:
        assert needle in line, (needle, line)
    assert not (tmp_path / "b").exists()


def test_a_vanishing_batchnorm_gain_is_a_constant_channel(exported, tmp_path, capsys):
    """gamma = 1e-40 puts every threshold beyond 2^53 (once cast to int64 garbage): the channel
    is constant, and the IR agrees with QONNX on every level."""
    path = _mutated(exported, tmp_path, _poke("BatchNormalization_0_param0", 1e-40, 2))
    assert main(["compile", str(path), "--out", str(tmp_path / "b")]) == 0
    capsys.readouterr()
    model = ModelWrapper(str(tmp_path / "b" / IR))
    thresholds = model.get_initializer(model.graph.node[0].input[2])
    assert np.all(np.abs(thresholds) < 2 ** 24)
    assert main(["verify", str(tmp_path / "b"), "--random", "60", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    for check in report["checks"]:
        assert check["compared"] == 60 and check["mismatched"] == 0, check


def test_guard_affine():
    boundaries = np.array([0.5, 1.5])
    a = np.array([1e-300, 2.0, -1e-300, 0.0])
    b = np.array([1.0, 0.0, 1.0, 3.0])
    guarded = guard_affine("here", a, b, boundaries)
    assert guarded.tolist() == [0.0, 2.0, 0.0, 0.0]
    assert a[0] == 1e-300  # the caller's array is left alone
    with pytest.raises(PascalError, match="channel 1: the folded scale nan"):
        guard_affine("here", np.array([1.0, np.nan]), np.zeros(2), boundaries)
    with pytest.raises(PascalError, match="channel 0: .* offset inf"):
        guard_affine("here", np.array([1.0]), np.array([np.inf]), boundaries)
    with pytest.raises(PascalError, match="channel 0: some thresholds lie beyond"):
        guard_affine("here", np.array([1e-20]), np.array([0.5]), np.array([0.5, 1e10]))


def test_tensors_in_external_files_are_refused(exported, tmp_path, capsys):
    """A model may keep tensors in files it names: compile never opens them."""
    from onnx import TensorProto

    (tmp_path / "secret.txt").write_bytes(b"\x00" * 64)

    def external(model):
        tensor = [t for t in model.graph.initializer if t.name == "Quant_1_param0"][0]
        tensor.ClearField("raw_data")
        tensor.ClearField("float_data")
        tensor.data_location = TensorProto.EXTERNAL
        for key, value in (("location", "secret.txt"), ("offset", "0"), ("length", "64")):
            entry = tensor.external_data.add()
            entry.key, entry.value = key, value
    model = _mutated(exported, tmp_path, external)
    line = _one_error(capsys, "compile", model, "--out", tmp_path / "b")
    assert str(model) in line and "external files" in line


def test_csim_refuses_a_build_path_that_make_or_the_shell_would_read(build, tmp_path, capsys):
    marker = tmp_path / "MARKER"
    hostile = tmp_path / f"b$$(touch {marker.name})"  # make turns $$ into $ for the shell
    shutil.copytree(build, hostile)
    message = _one_error(capsys, "verify", hostile, "--random", "1", "--no-snn", "--csim")
    assert "builds only in folders" in message
    assert not list(tmp_path.rglob(marker.name)) and not (Path.cwd() / marker.name).exists()


# --- hostile graphs: inputs, outputs, types, undefined tensors, huge weights (issue 21) -------

def _graph_change(change):
    """A change of the model's GraphProto, for ``_mutated``."""
    return lambda model: change(model.graph)


def _add_output(graph):
    graph.output.append(helper.make_tensor_value_info("Quant_9_out0", 1, [1, 12]))


def test_two_graph_outputs_are_one_line(exported, tmp_path, capsys):
    """Was: AssertionError 'Multiple ValueInfoProto found for Quant_9_out0' (a traceback)."""
    model = _mutated(exported, tmp_path, _graph_change(_add_output))
    line = _one_error(capsys, "compile", model, "--out", tmp_path / "b")
    assert str(model) in line and "2 outputs (global_out, Quant_9_out0)" in line, line
    assert not (tmp_path / "b").exists()


def test_a_graph_without_inputs_is_one_line(exported, tmp_path, capsys):
    """Was: IndexError (a traceback)."""
    model = _mutated(exported, tmp_path, _graph_change(lambda g: g.ClearField("input")))
    line = _one_error(capsys, "compile", model, "--out", tmp_path / "b")
    assert str(model) in line and "the graph has no input" in line, line
    assert not (tmp_path / "b").exists()


@pytest.mark.parametrize("elem_type, name", [(8, "STRING"), (7, "INT64"), (11, "DOUBLE"),
                                             (0, "UNDEFINED")])
def test_a_non_float_graph_input_is_refused(exported, tmp_path, capsys, elem_type, name):
    """Was: accepted (exit 0) with a string or integer image input."""
    def retype(graph):
        graph.input[0].type.tensor_type.elem_type = elem_type
    model = _mutated(exported, tmp_path, _graph_change(retype))
    line = _one_error(capsys, "compile", model, "--out", tmp_path / "b")
    assert str(model) in line and f"graph input global_in has element type {name}" in line
    assert not (tmp_path / "b").exists()


HUGE_VALUES = [
    ("weight-3e38", _poke("Quant_1_param0", 3e38),
     ["initializer Quant_1_param0 of node Quant_1 (Quant)", "within 2^24 steps"]),
    ("weight-2^25-steps", lambda m: m.set_initializer(
        "Quant_1_param0", np.full((6, 1, 5, 5), 2.0 ** 25, dtype=np.float32)
        * m.get_initializer("Quant_1_param1")),
     ["initializer Quant_1_param0 of node Quant_1 (Quant)", "3.36e+07 steps"]),
    ("bias-3e38", _poke("Quant_6_param0", -3e38, 2),
     ["initializer Quant_6_param0 of node Quant_6 (Quant)", "the value -3e+38"]),
    ("weight-inf", _poke("Quant_2_param0", np.inf, 5),
     ["initializer Quant_2_param0 of node Quant_2 (Quant)", "NaN or infinite"]),
    ("batchnorm-gain-3e38", lambda m: (_poke("BatchNormalization_0_param0", 3e38, 3)(m),
                                       _poke("BatchNormalization_0_param3", 0.0, 3)(m)),
     ["BatchNormalization_0 (BatchNormalization): channel 3", "overflows float32"]),
]


@pytest.mark.parametrize("change, needles", [c[1:] for c in HUGE_VALUES],
                         ids=[c[0] for c in HUGE_VALUES])
def test_huge_or_non_finite_constants_are_refused(exported, tmp_path, capsys, change, needles):
    """Was: 3e38 weights compiled (exit 0) after numpy's overflow warnings; the integer graph
    holds round(value / scale) as float32, exact only below 2^24 steps."""
    model = _mutated(exported, tmp_path, change)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no overflow before the check
        line = _one_error(capsys, "compile", model, "--out", tmp_path / "b")
    for needle in needles:
        assert needle in line, (needle, line)
    assert not (tmp_path / "b").exists()


def test_an_undefined_tensor_is_named(exported, tmp_path, capsys):
    """Was: 'node Quant_2 (Quant): weight scale nan is not positive and finite'."""
    def drop(graph):
        init = [t for t in graph.initializer if t.name == "Quant_2_param1"][0]
        graph.initializer.remove(init)
    model = _mutated(exported, tmp_path, _graph_change(drop))
    line = _one_error(capsys, "compile", model, "--out", tmp_path / "b")
    assert str(model) in line and "node Quant_2 (Quant): input Quant_2_param1 is not defined" \
        in line, line
    assert not (tmp_path / "b").exists()


def test_initializers_listed_as_graph_inputs_are_initializers(exported, tmp_path, capsys):
    """An export qonnx's cleanup has not seen lists its initializers as graph inputs too. Was:
    'the graph has 46 inputs and 1 outputs'; now taken as qonnx's RemoveStaticGraphInputs
    takes them, and every view agrees."""
    def as_inputs(graph):
        names = {t.name for t in graph.initializer}
        for info in [v for v in graph.value_info if v.name in names]:
            graph.value_info.remove(info)
            graph.input.append(info)
    model = _mutated(exported, tmp_path, _graph_change(as_inputs))
    assert len(ModelWrapper(str(model)).graph.input) > 40
    assert main(["compile", str(model), "--out", str(tmp_path / "b")]) == 0
    capsys.readouterr()
    assert main(["verify", str(tmp_path / "b"), "--random", "40", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["checks"]
    for check in report["checks"]:
        assert check["compared"] == 40 and check["mismatched"] == 0, check


def _floats_attr(node_name: str, attr: str):
    def change(model):
        node = model.get_node_from_name(node_name)
        for attribute in [a for a in node.attribute if a.name == attr]:
            node.attribute.remove(attribute)
        node.attribute.append(helper.make_attribute(attr, [0.5]))
    return change


def _retype_value(name: str, elem_type: int):
    def change(graph):
        [v for v in graph.value_info if v.name == name][0].type.tensor_type.elem_type = elem_type
    return _graph_change(change)


def _set_domain(node_name: str, domain: str):
    def change(model):
        model.get_node_from_name(node_name).domain = domain
    return change


# what the ONNX fuzzer (tests/test_fuzz_onnx.py) found accepted, or refused with a generic line
MALFORMED_GRAPHS = [
    # compiled, but qonnx reads signed=[0.5] as 0 and we as true: the views disagreed
    ("signed-as-floats", _floats_attr("Quant_1", "signed"),
     ["node Quant_1 (Quant): attribute signed is of type FLOATS, Quant takes INT"]),
    # compiled; verify then failed inside onnxruntime (a traceback)
    ("gemm-4-inputs", lambda m: m.get_node_from_name("Gemm_1").input.append("Quant_5_out0"),
     ["node Gemm_1 (Gemm): ", "input size 4", "(onnx's checker)"]),
    ("unknown-attribute", _set_attr("Gemm_1", "group", 2),
     ["node Gemm_1 (Gemm): Unrecognized attribute: group", "(onnx's checker)"]),
    ("quant-in-onnx-domain", _set_domain("Quant_8", ""),
     ["node Quant_8 (Quant): No Op registered for Quant", "(onnx's checker)"]),
    ("quant-signed-missing", _graph_change(lambda g: [
        n.attribute.remove([a for a in n.attribute if a.name == "signed"][0])
        for n in g.node if n.name == "Quant_3"]),
     ["node Quant_3 (Quant): required attribute signed is missing"]),
    ("unknown-domain", _set_domain("Conv_0", "evil.domain"),
     ["node Conv_0 (Conv): not an op of domain 'evil.domain'"]),
    ("auto-pad", _set_attr("Conv_1", "auto_pad", "SAME_UPPER"),
     ["node Conv_1 (Conv): auto_pad 'SAME_UPPER' is not supported"]),
    ("rounding-mode", _set_attr("Quant_1", "rounding_mode", "NOTAMODE"),
     ["node Quant_1 (Quant): rounding_mode 'NOTAMODE'"]),
    ("value-declared-int", _retype_value("Conv_0_out0", 7),
     ["tensor Conv_0_out0 is declared INT64"]),
    ("initializer-declared-otherwise", _retype_value("Quant_1_param0", 11),
     ["initializer Quant_1_param0 holds FLOAT [6, 1, 5, 5], but its value_info declares "
      "DOUBLE [6, 1, 5, 5]"]),
    ("double-initializer", lambda m: m.set_initializer(
        "Quant_1_param1", np.asarray(m.get_initializer("Quant_1_param1"), dtype=np.float64)),
     ["initializer Quant_1_param1 of node Quant_1 (Quant): element type DOUBLE"]),
    ("not-topological", _graph_change(lambda g: g.node.insert(0, g.node.pop())),
     ["node Gemm_1 (Gemm): input Quant_9_out0 is computed by this or a later node"]),
    ("batchnorm-lengths", lambda m: m.set_initializer("BatchNormalization_0_param1",
                                                      np.zeros(4, dtype=np.float32)),
     ["node BatchNormalization_0 (BatchNormalization): shape inference finds no shape",
      "BatchNormalization_0_param1 [4]"]),
]


@pytest.mark.parametrize("change, needles", [c[1:] for c in MALFORMED_GRAPHS],
                         ids=[c[0] for c in MALFORMED_GRAPHS])
def test_malformed_graphs_are_one_clear_line(exported, tmp_path, capsys, change, needles):
    model = _mutated(exported, tmp_path, change)
    line = _one_error(capsys, "compile", model, "--out", tmp_path / "b")
    for needle in needles:
        assert needle in line, (needle, line)
    assert not (tmp_path / "b").exists()


def test_an_invalid_qonnx_model_in_the_build_is_one_line(damaged, capsys):
    """verify reads BUILD/ir/00_qonnx.onnx through the same checks. Was: onnxruntime's
    InvalidGraph (a traceback) for a Gemm given a fourth input."""
    folder, _ = damaged
    path = folder / "ir" / "00_qonnx.onnx"
    model = ModelWrapper(str(path))
    model.get_node_from_name("Gemm_1").input.append("Quant_5_out0")
    model.save(str(path))
    line = _one_error(capsys, "verify", folder, "--random", "4")
    assert f"{path}: node Gemm_1 (Gemm): " in line and "input size 4" in line, line


CLASSIFIER_16_BITS = {
    "name": "cls16", "input": {"channels": 1, "height": 8, "width": 8, "bits": 5},
    "classes": 10, "weight_bits": 4, "levels": 4,
    "layers": [{"type": "flatten"}, {"type": "linear", "features": 32},
               {"type": "linear", "features": 10, "weight_bits": 16}],
}


def test_a_16_bit_classifier_bias_is_recovered_from_float32(tmp_path, capsys):
    """A 16-bit classifier on 4 levels: its bias, tens of thousands of accumulator steps, comes
    back from the float32 export within float32's relative rounding (it was refused as "not an
    integer" with an absolute 1e-3), and every view agrees."""
    run, model = make_exported(tmp_path, CLASSIFIER_16_BITS)
    out = tmp_path / "build"
    assert main(["compile", str(model), "--out", str(out)]) == 0, capsys.readouterr().err
    graph = ModelWrapper(str(out / IR))
    classifier = next(n for n in graph.graph.node if n.op_type == "SpikingClassifier")
    bias = graph.get_initializer(classifier.input[2])
    assert np.abs(bias).max() > 2 ** 13  # beyond what the absolute 1e-3 took in float32
    capsys.readouterr()
    assert main(["verify", str(out), "--run", str(run), "--random", "20", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["passed"] and all(c["mismatched"] == 0 for c in report["checks"])
