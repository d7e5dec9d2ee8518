"""`pascal-fpga compare`: both architectures of one model compiled, synthesized (Yosys, whole top,
with and without DSPs) and simulated, one table; bad settings are one line."""

import json

import pytest

from pascal_fpga.flows.compare import compare_model

from cliruns import one_line, run_cli


@pytest.mark.slow
def test_compare_synthesizes_both_architectures(odd_exports, tmp_path):
    model = odd_exports("pools")[1]
    out = tmp_path / "cmp"
    report = compare_model(model, out, images=4, calibration_images=4)
    snn, qnn = report["archs"]["snn"], report["archs"]["qnn"]
    for arch, row in (("snn", snn), ("qnn", qnn)):
        build = json.loads((out / arch / "build.json").read_text())
        assert build["config"]["arch"] == arch
        assert row["xc7"]["LUT"] > 0 and row["xc7_nodsp"]["LUT"] > 0
        # -nodsp maps every multiplier to LUTs
        assert row["xc7_nodsp"]["DSP"] == 0
        assert row["images_per_s_mean"] > 0
    # the twin's schedule does not depend on the data
    assert qnn["cycles_per_image_mean"] == qnn["cycles_per_image_worst"]
    assert report["ratio"]["LUT"] == pytest.approx(snn["xc7"]["LUT"] / qnn["xc7"]["LUT"])
    table = (out / "compare.md").read_text()
    assert "| LUT (xc7 LUT6, Yosys, DSPs on) |" in table and "SNN/QNN" in table
    assert json.loads((out / "compare.json").read_text())["archs"]["qnn"]["build"] == \
        str(out / "qnn")


def test_compare_refuses_bad_settings_in_one_line(capsys, odd_exports, tmp_path):
    model = odd_exports("pools")[1]
    with pytest.raises(SystemExit) as exit_:  # a count: argparse refuses it
        run_cli(capsys, "compare", model, "--out", tmp_path / "a", "--images", "0")
    assert exit_.value.code == 2
    one_line(capsys.readouterr().err, "--images")
    status, err = run_cli(capsys, "compare", model, "--out", tmp_path / "b", "--target-fps",
                          "-3")
    assert status == 2
    one_line(err, "--target-fps")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    status, err = run_cli(capsys, "compare", model, "--out", tmp_path / "mine")
    assert status == 2
    one_line(err, "mine")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep"
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
