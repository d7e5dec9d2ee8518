"""The host driver: AXI packing against the C testbench, the backends, `pascal-fpga run`."""

import json
import subprocess
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from pascal_fpga.cli import main as cli_main
from pascal_fpga.flows.compile import compile_model
from pascal_fpga.hw.csim import ap_types_dir, build_csim, run_csim
from pascal_fpga.ir.export import export_run
from pascal_fpga.driver import Accelerator, pack_images
from pascal_fpga.driver.board import load_design

from nets import ODD_SPECS, make_run, random_images
from pascal_fpga.spec import parse_spec


class _Channel:
    def __init__(self):
        self.buffer = None

    def transfer(self, buffer):
        self.buffer = buffer

    def wait(self):
        pass


class StandInDMA:
    """An AXI DMA stand-in: the bytes sent go through the C simulation in raw (AXI word) mode
    and its output words land in the receive buffer, as the board's DMA would move them."""

    def __init__(self, binary: Path, folder: Path):
        self.binary, self.folder = binary, folder
        self.sendchannel = _Channel()
        self.recvchannel = SimpleNamespace(transfer=self._recv_transfer, wait=self._recv_wait)
        self._out = None

    def _recv_transfer(self, buffer):
        self._out = buffer

    def _recv_wait(self):
        sent = np.asarray(self.sendchannel.buffer, dtype=np.uint8)
        sent.tofile(self.folder / "axi_in.bin")
        subprocess.run([str(self.binary), "--axi-in", str(self.folder / "axi_in.bin"),
                        "--axi-out", str(self.folder / "axi_out.bin")], check=True)
        self._out[:] = np.fromfile(self.folder / "axi_out.bin", dtype="<i4")


@pytest.fixture(scope="module")
def rgb_build(tmp_path_factory):
    """Three 8-bit channels: 24-bit pixels in 3-byte AXI words."""
    folder = tmp_path_factory.mktemp("driver")
    run = make_run(folder / "run", ODD_SPECS["maxpool_l8"], seed=2)
    export_run(run, folder / "model.onnx")
    compile_model(folder / "model.onnx", folder / "build")
    return folder / "build"


def test_pack_images_bit_layout():
    design = {"channels": 3, "bits": 5, "axi_bytes": 2}
    images = np.array([[[[1, 31]], [[2, 0]], [[17, 5]]]])  # (1, 3, 1, 2): 2 pixels
    data = pack_images(images, design)
    words = data.reshape(2, 2).astype(np.int64)
    values = words[:, 0] | (words[:, 1] << 8)
    assert values[0] == 1 | (2 << 5) | (17 << 10)
    assert values[1] == 31 | (0 << 5) | (5 << 10)


@pytest.mark.slow
def test_pynq_backend_through_a_stand_in_dma(rgb_build, tmp_path):
    design = load_design(rgb_build / "driver" / "design.json")
    assert design["axi_bytes"] == 3 and design["channels"] == 3
    binary = build_csim(rgb_build, ap_types_dir())
    spec = parse_spec(json.loads((rgb_build / "build.json").read_text())["spec"], "spec")
    images = random_images(spec, 12, 7).astype(np.int64)
    overlay = SimpleNamespace(axi_dma_0=StandInDMA(binary, tmp_path))
    board = Accelerator(rgb_build, backend="pynq", overlay=overlay).predict(images)
    # the testbench's own packing of the same images (its int32 image files)
    outputs, _, _ = run_csim(binary, images, [])
    assert np.array_equal(board.accumulators, outputs[:, :-1])
    assert np.array_equal(board.classes, outputs[:, -1])
    model = Accelerator(rgb_build, backend="cyclesim").predict(images)
    assert np.array_equal(model.accumulators, board.accumulators)
    assert np.allclose(model.logits, board.logits)


@pytest.mark.slow
def test_csim_backend_and_run_command(rgb_build, tmp_path, capsys):
    spec = parse_spec(json.loads((rgb_build / "build.json").read_text())["spec"], "spec")
    images = random_images(spec, 6, 3).astype(np.uint8)
    np.save(tmp_path / "images.npy", images)
    results = {}
    for backend in ("cyclesim", "csim"):
        assert cli_main(["run", str(rgb_build), "--input", str(tmp_path / "images.npy"),
                         "--backend", backend, "--json"]) == 0
        results[backend] = json.loads(capsys.readouterr().out)
    assert results["cyclesim"] == results["csim"]
    assert len(results["csim"]["classes"]) == 6 and len(results["csim"]["logits"][0]) == 5


def test_run_errors(rgb_build, tmp_path, capsys):
    np.save(tmp_path / "wrong.npy", np.zeros((2, 1, 10, 12)))
    np.save(tmp_path / "range.npy", np.full((2, 3, 10, 12), 300))
    np.save(tmp_path / "frac.npy", np.full((2, 3, 10, 12), 0.5))
    (tmp_path / "junk.npy").write_bytes(b"not numpy")
    cases = [("wrong.npy", "cyclesim", "shape (2, 1, 10, 12), expected (N, 3, 10, 12)"),
             ("range.npy", "cyclesim", "pixels must lie in 0..255"),
             ("frac.npy", "cyclesim", "non-integer pixels"),
             ("junk.npy", "cyclesim", "not a .npy array"),
             ("missing.npy", "cyclesim", "no such file"),
             ("wrong.npy", "pynq", "needs --bitfile")]
    for name, backend, message in cases:
        assert cli_main(["run", str(rgb_build), "--input", str(tmp_path / name),
                         "--backend", backend]) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, err
    with pytest.raises(SystemExit) as exit_:   # a choice: argparse's usage line, exit 2
        cli_main(["run", str(rgb_build), "--input", str(tmp_path / "wrong.npy"),
                  "--backend", "gpu"])
    assert exit_.value.code == 2 and "invalid choice: 'gpu'" in capsys.readouterr().err


def test_driver_folder_is_self_contained(rgb_build):
    """board.py and run_on_board.py need numpy and pynq only (the board has no torch)."""
    import ast

    folder = rgb_build / "driver"
    assert sorted(p.name for p in folder.iterdir()) == ["board.py", "design.json",
                                                         "run_on_board.py"]
    for name in ("board.py", "run_on_board.py"):
        tree = ast.parse((folder / name).read_text())
        modules = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                modules |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                modules.add((node.module or "").split(".")[0])
        assert modules <= {"__future__", "argparse", "json", "pathlib", "sys", "time", "numpy",
                           "pynq", "board"}, (name, modules)


def test_run_reports_the_accuracy_of_given_labels(rgb_build, tmp_path, capsys):
    spec = parse_spec(json.loads((rgb_build / "build.json").read_text())["spec"], "spec")
    images = random_images(spec, 8, 5).astype(np.uint8)
    np.save(tmp_path / "images.npy", images)
    args = ["run", str(rgb_build), "--input", str(tmp_path / "images.npy")]
    assert cli_main(args + ["--json"]) == 0
    classes = np.array(json.loads(capsys.readouterr().out)["classes"])
    labels = classes.copy()
    labels[:3] = (labels[:3] + 1) % 5                  # three of eight wrong
    np.save(tmp_path / "labels.npy", labels)
    assert cli_main(args + ["--labels", str(tmp_path / "labels.npy"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["accuracy"] == 5 / 8
    assert cli_main(args + ["--labels", str(tmp_path / "labels.npy")]) == 0
    out, err = capsys.readouterr()
    assert out.split() == [str(c) for c in classes] and "accuracy 62.50%" in err
    np.save(tmp_path / "short.npy", labels[:3])
    assert cli_main(args + ["--labels", str(tmp_path / "short.npy")]) == 2
    assert "expected 8 integer labels" in capsys.readouterr().err
