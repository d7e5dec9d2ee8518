"""The HLS project: generated C++, the g++ C simulation against the IR, layer by layer."""

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from qonnx.core.modelwrapper import ModelWrapper

from pascal_fpga.cli import main as cli_main
from pascal_fpga.flows.compile import CompileConfig, compile_model
from pascal_fpga.hw.csim import ap_types_dir
from pascal_fpga.hw.layers import fold_weights
from pascal_fpga.hw.design import design_from_ir
from pascal_fpga.flows.verify import verify_build, verify_images

from nets import ODD_SPECS, final_ir as _final_ir, mid_folding as _mid_folding

REPO = Path(__file__).resolve().parent.parent
HEADERS = ap_types_dir()


@pytest.fixture(scope="module")
def odd_models(odd_exports):
    """Every odd network's export, seed 1 (conftest.py's, shared: read-only): name -> model."""
    return {name: odd_exports(name, 1)[1] for name in ODD_SPECS}


@pytest.mark.slow
@pytest.mark.parametrize("folding,zero_skip", [("serial", True), ("mid", True), ("full", True),
                                               ("mid", False)])
def test_csim_matches_the_ir_layer_by_layer(odd_models, odd_builds, folding, zero_skip,
                                            tmp_path):
    """Every kernel (pixel-fed and spiking conv and dense, max and sum pooling, the classifier) on
    odd shapes, L = 1, 3 and 8, streams of 1 channel, of a small divisor and of all channels,
    event-driven and dense: each layer's every output level, the accumulators and the class
    equal the IR's, and the C simulation's loop counters (reads, writes, slots of every stage and
    image) equal the cycle model's."""
    config = CompileConfig(zero_skip=zero_skip)
    for name, model in odd_models.items():
        build = tmp_path / name
        if folding == "mid":
            # from the streams of the default build (the same whether zero_skip or not)
            folding_config = _mid_folding(_final_ir(odd_builds(name, 1)))
            (tmp_path / f"{name}.json").write_text(json.dumps(folding_config))
            compile_model(model, build, tmp_path / f"{name}.json", config=config)
        else:
            compile_model(model, build, folding, config=config)
        spec_info = json.loads((build / "build.json").read_text())
        images, _, _ = verify_images(spec_info, None, None, None, random=40, seed=5)
        report = verify_build(build, images, snn=False, csim_headers=HEADERS)
        csim = [c for c in report["checks"] if c["name"] == "csim_vs_ir"][0]
        assert csim["compared"] == 40
        assert csim["mismatched"] == 0 and csim["differing_levels"] == 0, (name, csim)
        stages = len(design_from_ir(ModelWrapper(str(_final_ir(build)))).stage_names())
        counters = csim["loop_counters"]
        assert counters["compared"] == 40 * stages * 3
        assert counters["mismatched"] == 0, (name, counters["first_mismatch"])
        cycle = [c for c in report["checks"] if c["name"] == "cyclesim_vs_ir"][0]
        assert cycle["compared"] == 40 and cycle["mismatched"] == 0


# digits_model and digits_build (the trained digits network's export and its build) are
# conftest.py's, shared with test_compiler.py: read-only, a test that changes one copies it


@pytest.mark.slow
def test_verify_csim_digits_end_to_end(digits_model, tmp_path, capsys):
    build = tmp_path / "build"
    assert cli_main(["compile", str(digits_model), "--out", str(build)]) == 0
    capsys.readouterr()
    assert cli_main(["verify", str(build), "--csim", "--json", "--no-snn"]) == 0
    report = json.loads(capsys.readouterr().out)
    csim = [c for c in report["checks"] if c["name"] == "csim_vs_ir"][0]
    assert csim["compared"] == 360 and csim["mismatched"] == 0
    assert report["accuracy"]["csim"] == report["accuracy"]["ir"]
    # the project's own testbench: sample images against the IR's expected outputs
    assert (build / "hls" / "tb" / "inputs.bin").stat().st_size > 0
    # the cycle model's reads, writes and slots are the C simulation's, per stage and image
    counters = csim["loop_counters"]
    stages = len(design_from_ir(ModelWrapper(str(_final_ir(build)))).stage_names())
    assert counters["compared"] == 360 * stages * 3 and counters["mismatched"] == 0


def _tree_hashes(folder: Path) -> dict:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.slow
def test_two_compiles_give_identical_folders(digits_model, tmp_path):
    compile_model(digits_model, tmp_path / "a", "full", part="xczu3eg-sbva484-1-e",
                  clock_mhz=200)
    compile_model(digits_model, tmp_path / "b", "full", part="xczu3eg-sbva484-1-e",
                  clock_mhz=200)
    first, second = _tree_hashes(tmp_path / "a"), _tree_hashes(tmp_path / "b")
    assert first == second
    assert "hls/firmware/parameters.h" in first and "hls/include/pascal/mvu.h" in first and "hls/firmware/params/conv0.h" in first
    tcl = (tmp_path / "a" / "hls" / "run_hls.tcl").read_text()
    assert "xczu3eg-sbva484-1-e" in tcl and "create_clock -period 5.000" in tcl


@pytest.mark.slow
def test_compile_error_names_the_first_error_and_the_log(digits_build, tmp_path, capsys):
    build = tmp_path / "build"
    shutil.copytree(digits_build, build)
    params = build / "hls" / "firmware" / "parameters.h"
    params.write_text(params.read_text().replace("struct conv0_cfg {", "struct conv0_cfg { oops"))
    assert cli_main(["verify", str(build), "--csim", "--images", "5", "--no-snn"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "did not compile" in err and "error" in err and "csim/build.log" in err


@pytest.mark.slow
def test_library_stage_units_fork_add_join_mvu_accumulator():
    """The HLS self-test's stage unit tests (hls/selftest/selftest.py, --configs U): fork, add_join
    (identity shortcuts of spikes and of multi-bit frames, projections; random PE/CH/T, shifts
    0..2^SH_BITS - 1, thresholds with sentinels at both ends of ap_int<N_BITS>, N_BITS = 64 once)
    and mvu_accumulator on small convolutions (every window and fold), each on random words against
    numpy, with every stage's per-image reads, writes and slots equal to ARCHITECTURE.md's."""
    import importlib.util

    path = REPO / "pascal_fpga" / "hls" / "selftest" / "selftest.py"
    spec = importlib.util.spec_from_file_location("pascal_hls_selftest", path)
    selftest = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(selftest)
    failures = selftest.check_units(HEADERS, seed=0)
    assert failures == [], "\n".join(failures)


def test_weight_packing_order():
    matrix = np.arange(6 * 4).reshape(6, 4)  # 6 outputs, 4 inputs
    folded = fold_weights(matrix, pe=3, simd=2)  # [NF * SF][PE][SIMD] = [2 * 2][3][2]
    assert folded.shape == (4, 3, 2)
    for nf in range(2):
        for sf in range(2):
            for pe in range(3):
                for s in range(2):
                    assert folded[nf * 2 + sf, pe, s] == matrix[nf * 3 + pe, sf * 2 + s]


def test_the_wheel_ships_the_library_and_templates(tmp_path):
    """A non-editable install has what compile copies: the headers, the templates, the RTL
    modules, the board script (built as a wheel, without its dependencies)."""
    import subprocess
    import sys
    import zipfile

    result = subprocess.run([sys.executable, "-m", "pip", "wheel", str(REPO), "--no-deps",
                             "--no-build-isolation", "-q", "-w", str(tmp_path)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-500:]
    (wheel,) = tmp_path.glob("pascal_fpga-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    library = REPO / "pascal_fpga" / "hls"
    for path in [*library.glob("include/pascal/*.h"), *library.glob("templates/*.j2")]:
        assert f"pascal_fpga/hls/{path.relative_to(library)}" in names, path
    rtl = REPO / "pascal_fpga" / "rtl"   # the RTL library, its templates and contract too
    for path in [*rtl.glob("modules/*.sv"), *rtl.glob("templates/*.j2"), *rtl.glob("harness/*"),
                 rtl / "README.md"]:
        assert f"pascal_fpga/rtl/{path.relative_to(rtl)}" in names, path
    assert "pascal_fpga/driver/run_on_board.py" in names
