"""The command line as a user and a script see it: choices refused before torch loads, help for
every argument, deprecated option names that still work, --version, -v/-q and progress lines;
the shipped specs and zoo; the package's Python API."""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

import pascal_fpga
from pascal_fpga import bundled, progress
from pascal_fpga.cli import (AUGMENTATIONS, COMPILE_STEPS, DEVICES, build_parser, main)

REPO = Path(__file__).resolve().parent.parent


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_choice_lists_agree_with_their_modules():
    from pascal_fpga.flows.compile import step_names
    from pascal_fpga.train.trainer import AUGMENTATIONS as TRAIN_AUGMENTATIONS, DEVICES as \
        TRAIN_DEVICES

    assert DEVICES == TRAIN_DEVICES
    assert AUGMENTATIONS == TRAIN_AUGMENTATIONS
    assert list(COMPILE_STEPS) == step_names()


@pytest.mark.parametrize("argv, needle", [
    (["eval", "run", "--device", "gpu"], "argument --device: invalid choice: 'gpu'"),
    (["compile", "m.onnx", "--out", "b", "--stop-after", "generate_vhdl"],
     "argument --stop-after: invalid choice: 'generate_vhdl'"),
    (["train", "s.yaml", "--dataset", "mnist", "--out", "r"], "argument --dataset"),
    (["run", "b", "--input", "x.npy", "--backend", "fpga"], "argument --backend"),
    (["simulate", "b", "--images", "0"], "argument --images: must be an integer >= 1, got 0"),
    (["synth", "b", "--family", "xc9"], "argument --family"),
    (["adapt", "r", "--out", "o", "--augment", "mirror"], "argument --augment"),
])
def test_a_bad_choice_is_one_line_before_torch_loads(argv, needle):
    # a fresh interpreter: nothing heavy may be imported to refuse a choice
    code = ("import sys\nfrom pascal_fpga.cli import main\n"
            "try:\n    main(sys.argv[1:])\nexcept SystemExit as exc:\n    status = exc.code\n"
            "print(status, 'torch' in sys.modules, 'qonnx' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True,
                          cwd=REPO, timeout=120)
    assert done.stdout.split() == ["2", "False", "False"], done
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], done.stderr


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"pascal-fpga {pascal_fpga.__version__}"


def test_every_argument_has_help_and_the_top_level_no_markup():
    parser = build_parser()
    assert "``" not in parser.format_help()
    for name, sub in _subparsers(parser).items():
        for action in sub._actions:
            if action.help == argparse.SUPPRESS:  # a deprecated alias
                continue
            assert action.help, f"{name} {action.option_strings or action.dest}: no help"
        # defaults stated: an option with a default has it in its help
        text = sub.format_help()
        assert "--debug" in text and "-q, --quiet" in text, name


# old spelling -> (command line with it, command line with the new spelling)
ALIASES = {
    "--samples": (["snn", "r", "--samples", "5"], ["snn", "r", "--images", "5"]),
    "verify --samples": (["verify", "b", "--samples", "5"], ["verify", "b", "--images", "5"]),
    "--calibration": (["adapt", "r", "--out", "o", "--calibration", "300"],
                      ["adapt", "r", "--out", "o", "--calibration-images", "300"]),
    "synth --part": (["synth", "b", "--part", "ecp5-85k"], ["synth", "b", "--family", "ecp5-85k"]),
    "synth --seed": (["synth", "b", "--seed", "7"], ["synth", "b", "--pnr-seed", "7"]),
}


@pytest.mark.parametrize("old", ALIASES)
def test_a_deprecated_name_still_works_with_a_note(old, capsys):
    with_old, with_new = ALIASES[old]
    parsed_old = build_parser().parse_args(with_old)
    note = capsys.readouterr().err.strip().splitlines()
    parsed_new = build_parser().parse_args(with_new)
    assert capsys.readouterr().err == ""
    assert vars(parsed_old) == vars(parsed_new)
    assert len(note) == 1 and "deprecated" in note[0] and old.split()[-1] in note[0], note


def test_random_takes_its_count_from_images_or_itself():
    parse = build_parser().parse_args
    assert parse(["verify", "b", "--random", "8"]).random == 8
    assert parse(["verify", "b", "--random", "--images", "8"]).random == 0  # bare: --images
    assert parse(["simulate", "b", "--random"]).random == 0
    assert parse(["simulate", "b", "--random", "6"]).random == 6
    assert parse(["verify", "b"]).random is None


def test_verbosity_before_or_after_the_command():
    parse = build_parser().parse_args
    assert parse(["models"]).verbosity == 0
    assert parse(["-q", "models"]).verbosity == -1
    assert parse(["models", "-v"]).verbosity == 1
    assert parse(["-v", "models"]).verbosity == 1


def test_models_lists_the_shipped_specs_and_zoo(capsys):
    assert main(["models", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert Path(listing["folder"]) == REPO / "models"
    assert "digits-cnn" in listing["specs"] and "digits-cnn-al" in listing["zoo"]
    for path in listing["zoo"].values():
        assert (Path(path) / "checkpoint.pt").is_file()


def test_a_shipped_spec_by_name_only():
    assert bundled.spec_path("digits-cnn") == REPO / "models" / "digits-cnn.yaml"
    assert bundled.spec_path("digits-cnn.yaml") == REPO / "models" / "digits-cnn.yaml"
    for name in ("../models/digits-cnn", "zoo/digits-cnn/spec", "/etc/passwd", ""):
        assert bundled.spec_path(name) is None


# --- logging and progress --------------------------------------------------------------------

def test_quiet_and_verbose_levels(capsys):
    for verbosity, shown in ((-1, {"warn"}), (0, {"warn", "info"}),
                             (1, {"warn", "info", "debug"})):
        progress.HOLD_S, hold = 0.0, progress.HOLD_S  # nothing held back here
        try:
            with progress.cli_logging(verbosity):
                progress.log.debug("debug")
                progress.log.info("info")
                progress.log.warning("warn")
        finally:
            progress.HOLD_S = hold
        lines = capsys.readouterr().err.splitlines()
        assert {line.split()[-1] for line in lines} == shown, (verbosity, lines)
    assert progress.log.level == logging.NOTSET and not progress.log.handlers


def test_info_lines_of_a_quick_command_are_held_back(capsys):
    # stderr is not a terminal under pytest: a command that ends within HOLD_S prints no progress
    with progress.cli_logging(0):
        progress.log.info("a step")
        progress.log.warning("a warning")
    assert capsys.readouterr().err.splitlines() == ["pascal-fpga: warning: a warning"]


def test_progress_lines_off_a_terminal(caplog):
    caplog.set_level(logging.INFO, logger="pascal_fpga")
    bar = progress.progress_bar(10, "train x", unit="batch")
    assert isinstance(bar, progress.ProgressLines)
    bar.every_s = 0.0  # a line at every update
    bar.update(4)
    bar.set_postfix(epoch=1, loss="0.5")
    bar.close()
    bar.close()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2
    assert lines[0].startswith("train x: 4/10 batch (40%)")
    assert lines[1].startswith("train x: 4/10 batch (40%)") and lines[1].endswith(
        "epoch 1, loss 0.5")


# --- the Python API --------------------------------------------------------------------------

def test_importing_the_package_is_cheap():
    code = "import sys, pascal_fpga; print('torch' in sys.modules, 'qonnx' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd="/", timeout=60)
    assert done.stdout.split() == ["False", "False"], done


def test_every_public_name_resolves():
    for name in pascal_fpga.__all__:
        assert getattr(pascal_fpga, name) is not None, name
    assert pascal_fpga.train_model is pascal_fpga.train.train
    with pytest.raises(AttributeError):
        pascal_fpga.no_such_name  # noqa: B018


def test_compile_model_takes_its_config_third(digits_model, tmp_path):
    pf = pascal_fpga
    result = pf.compile_model(digits_model, tmp_path / "a",
                              pf.CompileConfig(stop_after="qonnx", clock_mhz=125.0))
    assert result["config"]["clock_mhz"] == 125.0 and result["stopped_after"] == "qonnx"
    # keywords override the config's fields
    result = pf.compile_model(digits_model, tmp_path / "b", pf.CompileConfig(stop_after="qonnx"),
                              part="xc7z010clg400-1")
    assert result["config"]["part"] == "xc7z010clg400-1"
    # the earlier third positional parameter, a folding, and its keyword name
    result = pf.compile_model(digits_model, tmp_path / "c", "serial", stop_after="qonnx")
    assert result["config"]["folding"] == "serial"
    result = pf.compile_model(digits_model, tmp_path / "d", folding_path="full",
                              stop_after="qonnx")
    assert result["config"]["folding"] == "full"
    with pytest.raises(TypeError):
        pf.compile_model(digits_model, tmp_path / "e", 3)


# --- --lut-budget: the whole design, adapters and FIFOs counted ------------------------------

@pytest.mark.slow
def test_lut_budget_bounds_the_whole_design_estimate(digits_model, tmp_path, capsys):
    budget = 2000
    build = tmp_path / "b"
    assert main(["compile", str(digits_model), "--out", str(build), "--lut-budget", str(budget),
                 "--calibration-images", "16", "--json"]) == 0
    search = json.loads(capsys.readouterr().out)["folding_search"]
    assert main(["simulate", str(build), "--random", "--images", "4", "--json"]) == 0
    estimate = json.loads(capsys.readouterr().out)["estimates"]
    # the estimate simulate reports (layers, adapters, sized FIFOs) is the one the search reports
    assert estimate["total"]["LUT"] == search["snn"]["lut"]
    assert estimate["adapters"], "the adapters are part of the estimate"
    met = all(row["met"] for row in search["layers"])
    assert met == (estimate["total"]["LUT"] <= budget), (met, estimate["total"])


@pytest.mark.slow
def test_the_packages_docstring_example_runs(tmp_path, monkeypatch):
    # the example block of pascal_fpga's docstring (the API's documentation), as written
    doc = pascal_fpga.__doc__
    block = doc[doc.index("::\n") + 3:doc.index("\nImporting")]
    code = "\n".join(line[4:] for line in block.splitlines())
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(code, "pascal_fpga.__doc__", "exec"), scope)  # noqa: S102
    assert scope["report"]["passed"]
    assert (tmp_path / "build" / "d" / "build.json").is_file()
