"""The CLI's handling of bad input: one line on stderr naming the file and field, exit status 2,
no traceback unless --debug. Nothing here trains a network."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from pascal_fpga.cli import main
from pascal_fpga.staging import write_marker

REPO = Path(__file__).resolve().parent.parent
MODELS = REPO / "models"
DIGITS_SPEC = MODELS / "digits-cnn.yaml"
FMNIST_SPEC = MODELS / "fmnist-cnn.yaml"


def _digits_like(**layer2) -> dict:
    """A valid spec for the digits set; ``layer2`` overrides fields of layer 2 (a conv)."""
    conv2 = {"type": "conv", "channels": 16, "kernel": 3, "padding": 1}
    conv2.update(layer2)
    return {
        "name": "bad",
        "input": {"channels": 1, "height": 8, "width": 8, "bits": 5},
        "classes": 10,
        "layers": [
            {"type": "conv", "channels": 8, "kernel": 3, "padding": 1},
            {"type": "maxpool", "kernel": 2},
            conv2,
            {"type": "flatten"},
            {"type": "linear", "features": 10},
        ],
    }


def _write_spec(tmp_path: Path, raw: dict, name: str = "bad.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def _run(capsys, *argv) -> tuple[int, str, str]:
    status = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def _assert_one_error_line(err: str, command: str, *needles: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    line = lines[0]
    assert line.startswith(f"pascal-fpga {command}: error: "), line
    for needle in needles:
        assert needle in line, (needle, line)
    assert "Traceback" not in err
    return line


# (id, spec, the layer index and the field the message must name)
BAD_SPECS = [
    ("unknown-type", _digits_like(type="deconv"), "layer 2", "'type'"),
    ("missing-channels", {**_digits_like(), "layers": [
        {"type": "conv", "kernel": 3}, {"type": "flatten"},
        {"type": "linear", "features": 10}]}, "layer 0", "'channels'"),
    ("levels-0", _digits_like(levels=0), "layer 2", "'levels'"),
    ("weight-bits-17", _digits_like(weight_bits=17), "layer 2", "'weight_bits'"),
    ("kernel-too-large", _digits_like(kernel=5, padding=0), "layer 2", "'kernel'"),
    ("batchnorm-str", _digits_like(batchnorm="yes"), "layer 2", "'batchnorm'"),
]


@pytest.mark.parametrize("raw, layer, field", [c[1:] for c in BAD_SPECS],
                         ids=[c[0] for c in BAD_SPECS])
def test_train_bad_spec(tmp_path, capsys, raw, layer, field):
    spec = _write_spec(tmp_path, raw)
    out = tmp_path / "run"
    status, stdout, err = _run(capsys, "train", spec, "--dataset", "digits", "--out", out)
    assert status == 2
    assert stdout == ""
    _assert_one_error_line(err, "train", str(spec), layer, field)
    assert not out.exists()


def test_train_bad_top_level_field(tmp_path, capsys):
    spec = _write_spec(tmp_path, {**_digits_like(), "weight_bits": 1})
    status, _, err = _run(capsys, "train", spec, "--dataset", "digits", "--out", tmp_path / "r")
    assert status == 2
    _assert_one_error_line(err, "train", str(spec), "'weight_bits'")


def test_train_invalid_yaml(tmp_path, capsys):
    spec = tmp_path / "broken.yaml"
    spec.write_text("name: x\nlayers: [\n")
    status, _, err = _run(capsys, "train", spec, "--dataset", "digits", "--out", tmp_path / "r")
    assert status == 2
    _assert_one_error_line(err, "train", str(spec), "YAML")


def test_train_missing_spec_file(tmp_path, capsys):
    spec = tmp_path / "nope.yaml"
    status, _, err = _run(capsys, "train", spec, "--dataset", "digits", "--out", tmp_path / "r")
    assert status == 2
    _assert_one_error_line(err, "train", str(spec))


def test_debug_shows_traceback(tmp_path, capsys):
    spec = _write_spec(tmp_path, _digits_like(levels=-1))
    status, _, err = _run(capsys, "--debug", "train", spec, "--dataset", "digits",
                          "--out", tmp_path / "run")
    assert status == 2
    assert "Traceback" in err
    assert "PascalError" in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("pascal-fpga train: error: ")
    assert str(spec) in last and "'levels'" in last
    assert not (tmp_path / "run").exists()


def test_unknown_dataset(tmp_path, capsys):
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as info:  # a choice: argparse refuses it, before torch loads
        _run(capsys, "train", DIGITS_SPEC, "--dataset", "mnist-digits", "--out", out)
    assert info.value.code == 2
    _assert_one_error_line(capsys.readouterr().err, "train", "mnist-digits", "digits",
                           "fashion-mnist", "cifar10")
    assert not out.exists()


def test_spec_does_not_fit_dataset(tmp_path, capsys):
    out = tmp_path / "run"
    status, _, err = _run(capsys, "train", FMNIST_SPEC, "--dataset", "digits", "--out", out)
    assert status == 2
    _assert_one_error_line(err, "train", str(FMNIST_SPEC), "input", "28", "8x8")
    assert not out.exists()


def test_negative_epochs(tmp_path, capsys):
    status, _, err = _run(capsys, "train", DIGITS_SPEC, "--dataset", "digits", "--epochs", "-1",
                          "--out", tmp_path / "run")
    assert status == 2
    _assert_one_error_line(err, "train", "--epochs")


def test_train_refuses_existing_run(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    write_marker(out, "run")
    ckpt = out / "checkpoint.pt"
    ckpt.write_bytes(b"an earlier run")
    status, _, err = _run(capsys, "train", DIGITS_SPEC, "--dataset", "digits", "--out", out)
    assert status == 2
    _assert_one_error_line(err, "train", str(out), "already holds a run", "--resume")
    assert ckpt.read_bytes() == b"an earlier run"
    assert sorted(p.name for p in out.iterdir()) == [".pascal-fpga", "checkpoint.pt"]


def test_resume_with_unreadable_checkpoint(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    write_marker(out, "run")
    (out / "checkpoint.pt").write_bytes(b"\x00\x01garbage\xff" * 10)
    status, _, err = _run(capsys, "train", DIGITS_SPEC, "--dataset", "digits", "--out", out,
                          "--resume")
    assert status == 2
    _assert_one_error_line(err, "train", str(out / "checkpoint.pt"), "unreadable checkpoint")


def test_resume_without_checkpoint(tmp_path, capsys):
    out = tmp_path / "run"
    status, _, err = _run(capsys, "train", DIGITS_SPEC, "--dataset", "digits", "--out", out,
                          "--resume")
    assert status == 2
    _assert_one_error_line(err, "train", str(out / "checkpoint.pt"))


def test_eval_missing_run_dir(tmp_path, capsys):
    run = tmp_path / "no-such-run"
    status, stdout, err = _run(capsys, "eval", run)
    assert status == 2 and stdout == ""
    _assert_one_error_line(err, "eval", str(run))


def test_eval_run_dir_without_checkpoint(tmp_path, capsys):
    status, _, err = _run(capsys, "eval", tmp_path)
    assert status == 2
    _assert_one_error_line(err, "eval", str(tmp_path / "checkpoint.pt"))


def test_eval_garbage_checkpoint(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoint.pt").write_bytes(os.urandom(64) + b"not a torch file")
    status, _, err = _run(capsys, "eval", run, "--dataset", "digits")
    assert status == 2
    _assert_one_error_line(err, "eval", str(run / "checkpoint.pt"), "unreadable checkpoint")


def test_eval_truncated_zip_checkpoint(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    good = tmp_path / "whole.pt"
    torch.save({"model": {}, "spec": {}}, good)
    (run / "checkpoint.pt").write_bytes(good.read_bytes()[:100])
    status, _, err = _run(capsys, "eval", run)
    assert status == 2
    _assert_one_error_line(err, "eval", str(run / "checkpoint.pt"), "unreadable checkpoint")


def test_eval_foreign_checkpoint(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    torch.save([1, 2, 3], run / "checkpoint.pt")
    status, _, err = _run(capsys, "eval", run)
    assert status == 2
    _assert_one_error_line(err, "eval", str(run / "checkpoint.pt"), "not a pascal-fpga")


def test_usage_error_missing_dataset(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main(["train", str(DIGITS_SPEC), "--out", str(tmp_path / "run")])
    assert info.value.code == 2
    err = capsys.readouterr().err
    _assert_one_error_line(err, "train", "--dataset")


def test_usage_error_no_command(capsys):
    with pytest.raises(SystemExit) as info:
        main([])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "pascal-fpga: error:" in err


def test_usage_error_bad_int(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main(["train", str(DIGITS_SPEC), "--dataset", "digits", "--epochs", "ten",
              "--out", str(tmp_path / "run")])
    assert info.value.code == 2
    _assert_one_error_line(capsys.readouterr().err, "train", "--epochs")


@pytest.mark.slow
def test_subprocess_bad_spec(tmp_path):
    spec = _write_spec(tmp_path, _digits_like(kernel=3.5))
    out = tmp_path / "run"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(REPO)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    proc = subprocess.run(
        [sys.executable, "-m", "pascal_fpga.cli", "train", str(spec), "--dataset", "digits",
         "--out", str(out)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    line = _assert_one_error_line(proc.stderr, "train", str(spec), "layer 2", "'kernel'")
    assert "3.5" in line
    assert not out.exists()
