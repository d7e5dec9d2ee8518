"""The RTL backend on whole designs: BUILD/rtl is generated from the layer classes, and its Verilator
simulation equals the IR on every layer and the cycle model on every stage's cycles."""

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from qonnx.core.modelwrapper import ModelWrapper

from pascal_fpga.flows.compile import CompileConfig, compile_model
from pascal_fpga.hw.design import design_from_ir
from pascal_fpga.hw.backends.rtl import hex_rows, memory_files, model_cycles
from pascal_fpga.hw.schedule import delayed
from pascal_fpga.perf.timing import simulate
from pascal_fpga.flows.verify import verify_build, verify_images

from nets import ODD_SPECS, final_ir as _final_ir, mid_folding


@pytest.fixture(scope="module")
def odd_models(odd_exports):
    """The odd networks' exports at seed 1, shared with test_hls (conftest.py)."""
    return {name: odd_exports(name, 1)[1] for name in ODD_SPECS}


def _compile(model: Path, build: Path, folding: str, zero_skip: bool = True) -> None:
    config = CompileConfig(zero_skip=zero_skip)
    if folding == "mid":
        compile_model(model, build, config=config)
        folding_file = build.parent / f"{build.name}.json"
        folding_file.write_text(json.dumps(mid_folding(_final_ir(build))))
        shutil.rmtree(build)
        compile_model(model, build, folding_file, config=config)
    else:
        compile_model(model, build, folding, config=config)


# every odd network at least once, each folding (a stream of one channel, of a small divisor, of
# all channels) at least twice, and the dense schedule once
CASES = [("strided", "serial", True), ("strided", "full", True), ("dense_first", "mid", True),
         ("pools", "mid", True), ("pools", "serial", False), ("maxpool_l8", "full", True),
         ("maxpool_l8", "serial", True)]


@pytest.mark.parametrize("name,folding,zero_skip", CASES)
def test_rtlsim_matches_the_ir_and_the_cycle_model(odd_models, name, folding, zero_skip,
                                                   tmp_path):
    """Every layer's levels, the accumulators and the class of the RTL simulation equal the IR's,
    and per stage and image the cycle of the first input and of the last output equal the cycle
    model's (the RTL schedule through the compiled FIFO depths), as do every FIFO's word
    counts."""
    build = tmp_path / name
    _compile(odd_models[name], build, folding, zero_skip)
    info = json.loads((build / "build.json").read_text())
    images, _, _ = verify_images(info, None, None, None, random=24, seed=3)
    report = verify_build(build, images, snn=False, cyclesim=False, rtlsim=True)
    checks = {c["name"]: c for c in report["checks"]}
    rtl = checks["rtlsim_vs_ir"]
    assert rtl["compared"] == 24
    assert rtl["mismatched"] == 0 and rtl["differing_levels"] == 0, rtl
    cycles = checks["rtl_cycles_vs_cyclesim"]
    stages = len(design_from_ir(ModelWrapper(str(_final_ir(build)))).stage_names())
    assert cycles["compared"] == stages * 24
    assert cycles["mismatched"] == 0 and cycles["fifo_counts_mismatched"] == 0, cycles
    assert report["passed"]


def test_the_cycle_check_sees_the_schedule(odd_models, tmp_path):
    """The check can fail: the HLS schedule (no write latency) through the same FIFOs gives other
    cycles than the RTL's, so a model that ignored the RTL pipelines would be caught."""
    build = tmp_path / "b"
    compile_model(odd_models["pools"], build, "serial")
    design = design_from_ir(ModelWrapper(str(_final_ir(build))))
    rng = np.random.default_rng(0)
    activity = {layer.name: rng.integers(0, layer.t_in + 1, size=(3, layer.windows, layer.sf))
                for layer in design.layers if hasattr(layer, "sf")}
    hls = simulate(design.programs(activity, 3), design.fifo_depths())
    rtl = simulate(design.programs(activity, 3, backend="rtl"), design.fifo_depths())
    assert (model_cycles(hls)[1] != model_cycles(rtl)[1]).any()
    mvu = design.programs(activity, 3)[3]
    moved = delayed(mvu, 2)
    assert (moved.slots == mvu.slots + 2).all()
    assert moved.writes.sum() == mvu.writes.sum() and moved.reads.sum() == mvu.reads.sum()


def test_rtl_folder_is_deterministic_and_holds_the_parameters(odd_models, tmp_path):
    """Two compiles of one model give byte-identical BUILD/rtl folders; the memory files hold the
    packed weights and thresholds of the layer classes; layer names appear only in comments."""
    digests = []
    for copy in ("a", "b"):
        compile_model(odd_models["maxpool_l8"], tmp_path / copy, "serial")
        folder = tmp_path / copy / "rtl"
        digests.append({str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
                        for p in sorted(folder.rglob("*")) if p.is_file()})
    assert digests[0] == digests[1]
    folder = tmp_path / "a" / "rtl"
    for part in ("pascal_top.sv", "layers.sv", "tb/tb_pascal.cpp", "Makefile", "README.md",
                 "modules/pascal_mvu.sv"):
        assert (folder / part).is_file(), part
    design = design_from_ir(ModelWrapper(str(_final_ir(tmp_path / "a"))))
    files, contents = memory_files(design)
    for layer in design.layers:
        for role, values in getattr(layer, "arrays", lambda: {})().items():
            path = files[layer.name][role]
            text = (folder / path).read_text()
            assert text == contents[path]
            bits = layer.weight_bits if role == "weights" else layer.acc_bits
            rows = text.split()
            assert len(rows) == values.shape[0]
            # unpack row 0 and compare with the array
            word = int(rows[0], 16)
            flat = values.reshape(values.shape[0], -1)[0]
            got = [(word >> (e * bits)) & ((1 << bits) - 1) for e in range(len(flat))]
            got = [v - (1 << bits) if v >> (bits - 1) else v for v in got]
            assert got == flat.tolist()
    top = (folder / "pascal_top.sv").read_text()
    code = "\n".join(line.split("//")[0] for line in top.splitlines())
    for layer in design.layers:
        assert layer.name not in code


def test_hex_rows_twos_complement():
    assert hex_rows(np.array([[1, -1], [-2, 3]]), 4) == "f1\n3e\n"


def test_synth_cli_json_on_ecp5(odd_models, tmp_path, capsys):
    """`pascal-fpga synth BUILD --part ecp5-85k --no-layers --json`: the report's interface
    (layers, total with LUT/FF/BRAM18/DSP), BUILD/synth/ with its log; a second run needs
    --force, which replaces only the folder synth made."""
    from pascal_fpga.cli import main as cli_main

    build = tmp_path / "b"
    compile_model(odd_models["dense_first"], build, "serial")
    assert cli_main(["synth", str(build), "--family", "ecp5-85k", "--no-layers", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["layers"] == []
    assert set(report["total"]) == {"LUT", "FF", "BRAM18", "DSP"}
    assert report["total"]["LUT"] > 0 and report["total"]["FF"] > 0
    assert (build / "synth" / "synth.json").is_file()
    assert (build / "synth" / "pascal_top_ecp5-85k.log").is_file()
    assert cli_main(["synth", str(build), "--family", "ecp5-85k", "--no-layers"]) == 2
    assert "--force" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:  # a choice: argparse refuses it
        cli_main(["synth", str(build), "--family", "zynq"])
    assert exit_.value.code == 2
    assert "--family" in capsys.readouterr().err


def test_missing_verilator_is_one_line(monkeypatch, tmp_path):
    from pascal_fpga.errors import PascalError
    from pascal_fpga.hw import rtlsim

    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(PascalError, match="apt-get install verilator"):
        rtlsim.verilator()


def test_rtlsim_refuses_a_path_make_would_read(tmp_path):
    from pascal_fpga.errors import PascalError
    from pascal_fpga.hw import rtlsim

    folder = tmp_path / "a b$(touch x)"
    folder.mkdir()
    source = folder / "m.sv"
    source.write_text("module m; endmodule\n")
    with pytest.raises(PascalError, match="Verilator builds only in folders"):
        rtlsim.build([source], "m", "int main() { return 0; }\n", {}, root=folder)
    assert not (folder / "x").exists() and not (tmp_path / "x").exists()


def test_simulate_runs_either_schedule(odd_models, tmp_path, capsys):
    """`simulate --schedule rtl`: the cycle model on the RTL's schedule; every write is later
    there, so each image's latency is longer than on the HLS schedule."""
    from pascal_fpga.cli import main as cli_main

    build = tmp_path / "b"
    compile_model(odd_models["dense_first"], build, "serial")
    reports = {}
    for schedule in ("hls", "rtl"):
        assert cli_main(["simulate", str(build), "--random", "--images", "6", "--schedule",
                         schedule, "--json"]) == 0
        reports[schedule] = json.loads(capsys.readouterr().out)
        assert reports[schedule]["schedule"] == schedule
    hls, rtl = (reports[s]["cycle_model"]["latency_cycles"]["mean"] for s in ("hls", "rtl"))
    assert rtl > hls
