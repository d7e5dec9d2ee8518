"""What a failing, interrupted or hostile run leaves behind: nothing half-written, nothing of the
user's replaced or written through.

- ``train --force`` replaces the old run only at the final move: a run that fails first (here, its
  data set does not load) leaves the old one as it was;
- a build's own folders (csim, hls, rtlsim, ...) that are symbolic links are refused in one line
  before anything is written or run through them;
- an ``--out`` that is itself a symbolic link (live, empty or dangling) is refused before any work;
- SIGTERM unwinds like Ctrl-C: the staging folder is removed, exit status 143;
- a full disk (a small tmpfs) is one line, exit 2, and leaves nothing.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from pascal_fpga.cli import main

from cliruns import one_line, run_cli, snapshot

REPO = Path(__file__).resolve().parent.parent
SPEC = REPO / "models" / "digits-cnn.yaml"


@pytest.fixture(scope="module")
def build(odd_exports, tmp_path_factory):
    """A small calibrated run, its QONNX export (conftest.py's, shared: read-only) and its
    build."""
    run, model = odd_exports("dense_first")
    folder = tmp_path_factory.mktemp("robust")
    assert main(["compile", str(model), "--out", str(folder / "build")]) == 0
    return run, model, folder / "build"


def _bad_idx_folder(folder: Path) -> Path:
    folder.mkdir()
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                 "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (folder / name).write_bytes(b"not an IDX file at all")
    return folder


@pytest.mark.slow
def test_a_failing_train_force_keeps_the_old_run(tmp_path, capsys):
    out = tmp_path / "run"
    assert run_cli(capsys, "train", SPEC, "--dataset", "digits", "--epochs", "0", "--out", out)[0] == 0
    before = snapshot(out)
    bad = _bad_idx_folder(tmp_path / "bad")
    status, err = run_cli(capsys, "train", SPEC, "--dataset", "fashion-mnist", "--data-dir", bad,
                       "--epochs", "0", "--out", out, "--force")
    assert status == 2
    one_line(err, "IDX")
    assert snapshot(out) == before  # the old run, whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad", "run"]  # no staging left


@pytest.mark.parametrize("folder", ["csim", "hls", "rtlsim"])
def test_a_symlinked_build_folder_is_refused(build, folder, tmp_path, capsys):
    _, _, original = build
    copy = tmp_path / "build"
    shutil.copytree(original, copy, symlinks=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "notes.txt").write_text("mine")
    # a Makefile whose every target would leave a mark if make ran it
    (elsewhere / "Makefile").write_text(f"csim run:\n\ttouch {tmp_path}/made\n")
    if (copy / folder).exists():
        shutil.rmtree(copy / folder)
    (copy / folder).symlink_to(elsewhere, target_is_directory=True)
    before = snapshot(elsewhere)
    options = {"csim": ["--csim"], "hls": ["--csim"], "rtlsim": ["--rtlsim"]}[folder]
    status, err = run_cli(capsys, "verify", copy, "--random", "2", "--no-snn", *options)
    assert status == 2
    one_line(err, f"{folder}: is a symbolic link")
    assert snapshot(elsewhere) == before and not (tmp_path / "made").exists()
    np.save(tmp_path / "images.npy", np.zeros((1, 2, 6, 5), dtype=np.int64))
    status, err = run_cli(capsys, "run", copy, "--input", tmp_path / "images.npy", "--backend",
                       "csim")
    assert status == 2
    one_line(err, f"{folder}: is a symbolic link")
    assert sorted(p.name for p in elsewhere.iterdir()) == ["Makefile", "notes.txt"]


@pytest.mark.slow
def test_csim_builds_aside_and_keeps_its_objects(build, tmp_path):
    """The C simulation is built in a staging folder seeded with the last build's objects and
    moved into place whole: a rebuild compiles nothing that did not change."""
    from pascal_fpga.hw.csim import ap_types_dir, build_csim

    _, _, original = build
    copy = tmp_path / "build"
    shutil.copytree(original, copy, symlinks=True)
    binary = build_csim(copy, ap_types_dir())
    assert binary == copy / "csim" / "tb_pascal" and binary.is_file()
    stamps = {p.name: p.stat().st_mtime_ns for p in (copy / "csim").glob("*.o")}
    assert set(stamps) == {"pascal_top.o", "tb_pascal.o"}
    build_csim(copy, ap_types_dir())
    assert {p.name: p.stat().st_mtime_ns for p in (copy / "csim").glob("*.o")} == stamps
    assert not [p for p in copy.iterdir() if p.name.startswith(".csim")]


@pytest.mark.parametrize("target", ["build", "empty", "dangling"])
def test_a_symlinked_out_is_refused_before_any_work(build, target, tmp_path, capsys):
    _, model, original = build
    if target == "build":
        shutil.copytree(original, tmp_path / "target", symlinks=True)
    elif target == "empty":
        (tmp_path / "target").mkdir()
    link = tmp_path / "out"
    link.symlink_to(tmp_path / "target", target_is_directory=True)
    before = sorted(p.name for p in tmp_path.iterdir())
    status, err = run_cli(capsys, "compile", model, "--out", link, "--force")
    assert status == 2
    one_line(err, "is a symbolic link")
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no .out.old-*, no staging
    assert link.is_symlink()


def _wait_for(predicate, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


@pytest.mark.slow
def test_sigterm_during_compile_leaves_nothing(build, tmp_path):
    _, model, _ = build
    out = tmp_path / "b"
    proc = subprocess.Popen([sys.executable, "-m", "pascal_fpga.cli", "compile", str(model),
                             "--out", str(out)], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        # the staging folder (.b.XXXX) appears once the compile has started writing
        started = _wait_for(lambda: any(p.name.startswith(".b.") for p in tmp_path.iterdir()),
                            240)
        assert started, "the compile never began writing"
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=120)
    finally:
        proc.kill()
    if proc.returncode == 0:  # it finished before the signal landed: nothing to check here
        pytest.skip("the compile finished before SIGTERM arrived")  # not seen on 2 cores
    assert proc.returncode == 128 + signal.SIGTERM, stderr
    assert stderr.strip() == "pascal-fpga: terminated"
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def small_disk(tmp_path):
    """A 32 KiB tmpfs: a full disk for the commands that write more than that."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if shutil.which("mount") is None or os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (CI and the dev machines run as root)")
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=32k", "tmpfs", str(disk)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", str(disk)], check=True)


@pytest.mark.slow
def test_a_full_disk_is_one_line_and_leaves_nothing(build, small_disk, capsys):
    run, model, _ = build
    cases = [   # -q: training's progress lines (after 10 s off a terminal) aside, one line
        ["train", SPEC, "--dataset", "digits", "--epochs", "1", "--out", small_disk / "run",
         "-q"],
        ["export", run, "--out", small_disk / "m.onnx"],
        ["compile", model, "--out", small_disk / "b"],
    ]
    for argv in cases:
        status, err = run_cli(capsys, *argv)
        assert status == 2, argv
        one_line(err)
        assert list(small_disk.iterdir()) == [], argv


def test_run_input_npy_header_is_checked_before_loading(build, tmp_path, capsys):
    _, _, folder = build
    huge = tmp_path / "huge.npy"
    with open(huge, "wb") as f:  # 6.4e12 int64 elements declared, 64 bytes present
        np.lib.format.write_array_header_1_0(
            f, {"descr": "<i8", "fortran_order": False, "shape": (1000000, 1, 8, 800000)})
        f.write(bytes(64))
    objects = tmp_path / "objects.npy"
    np.save(objects, np.array([1, "a"], dtype=object), allow_pickle=True)
    truncated = tmp_path / "truncated.npy"
    np.save(truncated, np.zeros((2, 2, 6, 5), dtype=np.int64))
    truncated.write_bytes(truncated.read_bytes()[:200])
    for path, needle in ((huge, "declares a 1000000x1x8x800000 array"),
                         (objects, "holds Python objects"), (truncated, "holds 72 bytes")):
        status, err = run_cli(capsys, "run", folder, "--input", path)
        assert status == 2
        one_line(err, str(path), needle)
