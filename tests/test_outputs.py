"""Where commands write: no command deletes or replaces a folder it did not create, outputs move
into place whole (also when several processes write the same folder), and Ctrl-C while the
libraries import ends the command with status 130."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pascal_fpga.errors import PascalError
from pascal_fpga.staging import (MARKER, artefact_kind, check_output, staged_folder,
                                 write_marker)

from cliruns import one_line, run_cli, snapshot

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def exported(odd_exports):
    """A small calibrated run and its QONNX export (conftest.py's, shared: read-only)."""
    return odd_exports("dense_first")


def test_compile_out_dot_keeps_the_current_folder(exported, tmp_path, capsys, monkeypatch):
    _, model = exported
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    (scratch / "keep.txt").write_text("mine")
    monkeypatch.chdir(scratch)
    for out in (".", "..", str(scratch)):
        status, err = run_cli(capsys, "compile", model, "--out", out, "--force")
        assert status == 2
        one_line(err, "refusing", "current folder")
    assert (scratch / "keep.txt").read_text() == "mine"
    assert sorted(p.name for p in scratch.iterdir()) == ["keep.txt"]


def test_compile_never_replaces_a_training_run(exported, tmp_path, capsys):
    run, model = exported
    before = snapshot(run)
    for extra in ([], ["--force"]):
        status, err = run_cli(capsys, "compile", model, "--out", run, *extra)
        assert status == 2
        one_line(err, str(run), "pascal-fpga run", "expected a build")
    assert snapshot(run) == before


def test_compile_refuses_a_users_folder_and_the_inputs_folder(exported, tmp_path, capsys):
    _, model = exported
    users = tmp_path / "users"
    users.mkdir()
    (users / "notes.txt").write_text("mine")
    status, err = run_cli(capsys, "compile", model, "--out", users, "--force")
    assert status == 2
    one_line(err, "not a pascal-fpga folder")
    assert (users / "notes.txt").read_text() == "mine"
    status, err = run_cli(capsys, "compile", model, "--out", model.parent, "--force")
    assert status == 2
    one_line(err, "holds the input")


def test_replacing_a_build_needs_force(exported, tmp_path, capsys):
    _, model = exported
    out = tmp_path / "build"
    assert run_cli(capsys, "compile", model, "--out", out)[0] == 0
    assert artefact_kind(out) == "build"
    assert oct(out.stat().st_mode & 0o777) == oct(0o777 & ~_umask())
    (out / "stale.txt").write_text("from before")
    status, err = run_cli(capsys, "compile", model, "--out", out)
    assert status == 2
    one_line(err, "already holds a build", "--force")
    assert (out / "stale.txt").exists()
    assert run_cli(capsys, "compile", model, "--out", out, "--force")[0] == 0
    assert not (out / "stale.txt").exists() and (out / "build.json").is_file()
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert leftovers == []


def test_out_that_is_a_file_or_under_a_file(exported, tmp_path, capsys):
    _, model = exported
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    status, err = run_cli(capsys, "compile", model, "--out", a_file)
    assert status == 2
    one_line(err, "is a file")
    status, err = run_cli(capsys, "compile", model, "--out", a_file / "sub" / "build")
    assert status == 2
    one_line(err, "lies under", "which is a file")
    status, err = run_cli(capsys, "train", REPO / "models" / "digits-cnn.yaml", "--dataset",
                       "digits", "--out", a_file / "run")
    assert status == 2
    one_line(err, "lies under")
    assert a_file.read_text() == "x"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_out_in_a_read_only_folder(exported, tmp_path, capsys):
    _, model = exported
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        status, err = run_cli(capsys, "compile", model, "--out", locked / "build")
        assert status == 2
        one_line(err, "not writable")
    finally:
        locked.chmod(0o755)


def test_train_and_adapt_keep_existing_folders(exported, tmp_path, capsys):
    run, _ = exported
    before = snapshot(run)
    spec = REPO / "models" / "digits-cnn.yaml"
    status, err = run_cli(capsys, "train", spec, "--dataset", "digits", "--out", run)
    assert status == 2
    one_line(err, "already holds a run", "--resume", "--force")
    users = tmp_path / "users"
    users.mkdir()
    (users / "notes.txt").write_text("mine")
    for argv in (["train", spec, "--dataset", "digits", "--out", users, "--force"],
                 ["adapt", run, "--out", users, "--force"],
                 ["adapt", run, "--out", run],
                 ["demo", "--out", users, "--force"]):
        status, err = run_cli(capsys, *argv)
        assert status == 2, argv
        one_line(err, "refusing")
    assert (users / "notes.txt").read_text() == "mine"
    assert snapshot(run) == before


def test_train_force_replaces_only_its_own_run(tmp_path, capsys):
    spec = REPO / "models" / "digits-cnn.yaml"
    out = tmp_path / "run"
    argv = ["train", spec, "--dataset", "digits", "--epochs", "0", "--out", out]
    assert run_cli(capsys, *argv)[0] == 0
    assert artefact_kind(out) == "run"
    (out / "stale.txt").write_text("old")
    status, err = run_cli(capsys, *argv, "--force", "--lr", "nan")  # a bad option deletes nothing
    assert status == 2 and (out / "stale.txt").exists()
    assert run_cli(capsys, *argv, "--force")[0] == 0
    assert not (out / "stale.txt").exists() and (out / "checkpoint.pt").is_file()
    # resuming from the run's own spec.yaml: the spec inside --out is no reason to refuse
    assert run_cli(capsys, "train", out / "spec.yaml", "--dataset", "digits", "--epochs", "0",
                "--out", out, "--resume")[0] == 0


def test_export_replaces_a_file_only_with_force(exported, tmp_path, capsys):
    run, _ = exported
    target = tmp_path / "m.onnx"
    target.write_text("someone's file")
    status, err = run_cli(capsys, "export", run, "--out", target)
    assert status == 2
    one_line(err, "exists", "--force")
    assert target.read_text() == "someone's file"
    status, err = run_cli(capsys, "export", run, "--out", tmp_path)
    assert status == 2
    one_line(err, "is a folder")
    assert run_cli(capsys, "export", run, "--out", target, "--force")[0] == 0
    assert target.read_bytes()[:1] != b"s"


def test_check_output_refuses_root_and_home(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    for target in ("/", tmp_path / "home", tmp_path):
        with pytest.raises(PascalError, match="refusing"):
            check_output(target, "build", force=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _write_build(out: str, tag: int, barrier) -> None:
    barrier.wait()
    with staged_folder(out, "build") as staging:
        (staging / "build.json").write_text(str(tag))
        (staging / "ir").mkdir()
        (staging / f"from_{tag}").write_text("x")


def test_concurrent_writers_of_one_folder_do_not_crash(tmp_path):
    out = tmp_path / "build"
    ctx = multiprocessing.get_context("fork")
    count = 16
    barrier = ctx.Barrier(count)
    procs = [ctx.Process(target=_write_build, args=(str(out), i, barrier)) for i in range(count)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(60)
    assert [proc.exitcode for proc in procs] == [0] * count
    names = sorted(p.name for p in out.iterdir())
    assert len([n for n in names if n.startswith("from_")]) == 1
    assert MARKER in names and artefact_kind(out) == "build"
    assert [p.name for p in tmp_path.iterdir()] == ["build"]  # no staging or old copies left


def test_a_folder_that_appears_meanwhile_is_not_replaced(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(PascalError, match="meanwhile"):
        with staged_folder(out, "build") as staging:
            (staging / "x").write_text("x")
            out.mkdir()
            (out / "users.txt").write_text("mine")
    assert (out / "users.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_marker_kinds(tmp_path):
    folder = tmp_path / "f"
    folder.mkdir()
    assert artefact_kind(folder) is None
    write_marker(folder, "demo")
    assert artefact_kind(folder) == "demo"
    (folder / MARKER).write_text("not json")
    assert artefact_kind(folder) is None


# Sends Ctrl-C to itself at the moment Brevitas' import reaches for torch._dynamo, inside
# Brevitas' ``try: ... except:`` that would swallow the KeyboardInterrupt and carry on.
_INTERRUPTED_IMPORT = """
import os, signal, sys
class InterruptAtDynamo:
    def find_spec(self, name, path=None, target=None):
        if name == "torch._dynamo":
            sys.meta_path.remove(self)
            os.kill(os.getpid(), signal.SIGINT)
        return None
sys.meta_path.insert(0, InterruptAtDynamo())
from pascal_fpga.cli import main
sys.exit(main(["eval", sys.argv[1]]))
"""


@pytest.mark.slow
def test_ctrl_c_while_the_libraries_import_exits_130(tmp_path):
    result = subprocess.run([sys.executable, "-c", _INTERRUPTED_IMPORT, str(tmp_path / "run")],
                            capture_output=True, text=True, cwd=tmp_path, timeout=300,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 130, result.stderr
    assert result.stderr.strip() == "pascal-fpga: interrupted"
