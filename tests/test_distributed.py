"""Devices, mixed precision, augmentation and torchrun training on several CPU processes.

Tolerance of several processes against one (README, "Training on GPUs and several machines"): the
processes see the same batches, the same augmentation and (GlobalBatchNorm on CPUs,
SyncBatchNorm on GPUs) the same BatchNorm statistics as one process; only the rounding of float
sums differs. On the float twin every parameter agrees within 1e-4 (relative); on a QCFS network
a rounding that moves a value across a level boundary changes that level and the runs drift
apart slowly: test accuracy within 2 points, train loss per epoch within 5%.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from pascal_fpga.cli import main as cli_main
from pascal_fpga.errors import PascalError
from pascal_fpga.train import TrainConfig, train
from pascal_fpga.train.trainer import augment_batch, augment_draws, epoch_batches

REPO = Path(__file__).resolve().parent.parent
DIGITS_SPEC = str(REPO / "models" / "digits-cnn.yaml")
FLOAT_TOLERANCE = 1e-4
ACCURACY_POINTS = 2.0
LOSS_RELATIVE = 0.05


def _torchrun(out: Path, *args: str, processes: int = 2) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node",
         str(processes), "-m", "pascal_fpga.cli", "train", DIGITS_SPEC, "--dataset", "digits",
         "--batch-size", "64", "--device", "cpu", "--out", str(out), "--json", *args],
        env=env, capture_output=True, text=True, timeout=600)


def _one_process(out: Path, *args: str) -> None:
    assert cli_main(["train", DIGITS_SPEC, "--dataset", "digits", "--batch-size", "64",
                     "--device", "cpu", "--out", str(out), *args]) == 0


def _model(run: Path) -> dict:
    return torch.load(run / "checkpoint.pt", weights_only=True)["model"]


def _relative_differences(a: dict, b: dict) -> dict[str, float]:
    assert a.keys() == b.keys()
    return {k: float((a[k] - b[k]).norm() / a[k].norm().clamp(min=1e-12))
            for k in a if a[k].is_floating_point()}


@pytest.mark.slow
def test_two_gloo_processes_train_the_one_process_float_network(tmp_path, capsys):
    """The float twin with BatchNorm and crop-flip: no level boundaries, so two processes must
    give one process's parameters up to float rounding. A wrong share of a batch, of the
    augmentation or of the BatchNorm statistics would differ by far more (1e-2 and up)."""
    options = ("--epochs", "2", "--float", "--augment", "crop-flip", "--crop-pad", "1")
    proc = _torchrun(tmp_path / "two", *options)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count('"test_accuracy"') == 1  # process 0 alone writes and prints
    _one_process(tmp_path / "one", *options)
    capsys.readouterr()
    differences = _relative_differences(_model(tmp_path / "one"), _model(tmp_path / "two"))
    worst = max(differences, key=differences.get)
    assert differences[worst] < FLOAT_TOLERANCE, (worst, differences[worst])
    two = json.loads((tmp_path / "two" / "metrics.json").read_text())
    assert two["processes"] == 2 and two["config"]["world_size"] == 2
    assert len(two["history"]) == 2 and two["device"] == "cpu"


@pytest.mark.slow
def test_two_gloo_processes_train_a_qcfs_network_like_one(tmp_path, capsys):
    proc = _torchrun(tmp_path / "two", "--epochs", "3")
    assert proc.returncode == 0, proc.stderr[-3000:]
    _one_process(tmp_path / "one", "--epochs", "3")
    capsys.readouterr()
    one = json.loads((tmp_path / "one" / "metrics.json").read_text())
    two = json.loads((tmp_path / "two" / "metrics.json").read_text())
    assert abs(one["test_accuracy"] - two["test_accuracy"]) * 100 <= ACCURACY_POINTS
    for a, b in zip(one["history"], two["history"]):
        assert abs(a["train_loss"] - b["train_loss"]) <= LOSS_RELATIVE * a["train_loss"]
    assert two["test_accuracy"] > 0.9


@pytest.mark.slow
def test_resume_with_another_process_count(tmp_path, capsys):
    """One process trains 1 epoch; the run then continues to 2 epochs on two processes, and on
    one process: the same network up to float rounding (float twin)."""
    _one_process(tmp_path / "first", "--epochs", "1", "--float")
    shutil.copytree(tmp_path / "first", tmp_path / "on-two")
    shutil.copytree(tmp_path / "first", tmp_path / "on-one")
    proc = _torchrun(tmp_path / "on-two", "--epochs", "2", "--float", "--resume")
    assert proc.returncode == 0, proc.stderr[-3000:]
    _one_process(tmp_path / "on-one", "--epochs", "2", "--float", "--resume")
    capsys.readouterr()
    differences = _relative_differences(_model(tmp_path / "on-one"), _model(tmp_path / "on-two"))
    assert max(differences.values()) < FLOAT_TOLERANCE
    state = torch.load(tmp_path / "on-two" / "checkpoint.pt", weights_only=True)
    assert state["epoch"] == 2 and state["config"]["world_size"] == 2


def test_global_batches_do_not_depend_on_the_process_count():
    n = 1000

    def batches(world_size):
        parts = [epoch_batches(n, TrainConfig(spec="", dataset="digits", out="", batch_size=64,
                                              seed=5, world_size=world_size, rank=rank), epoch=3)
                 for rank in range(world_size)]
        # global step k = the k-th local batch of every process; order within a step is free
        return [sorted(torch.cat([p[k] for p in parts]).tolist()) for k in range(len(parts[0]))]

    one = batches(1)
    assert len(one) == n // 64 and batches(2) == one and batches(4) == one
    assert len({i for step in one for i in step}) == len(one) * 64  # no image twice an epoch
    other_epoch = epoch_batches(n, TrainConfig(spec="", dataset="digits", out="", batch_size=64,
                                               seed=5), epoch=4)
    assert other_epoch[0].tolist() != [i for i in one[0]]


def test_augment_batch_crops_and_flips_each_image():
    gen = torch.Generator().manual_seed(0)
    batch = torch.arange(6 * 2 * 5 * 7, dtype=torch.float32).view(6, 2, 5, 7)
    dy, dx, flip = augment_draws(6, 2, gen)
    out = augment_batch(batch, 2, True, dy, dx, flip)
    padded = torch.nn.functional.pad(batch, (2, 2, 2, 2))
    for i in range(6):
        crop = padded[i, :, dy[i]:dy[i] + 5, dx[i]:dx[i] + 7]
        assert torch.equal(out[i], crop.flip(-1) if flip[i] else crop)
    centre = torch.full((6,), 2)
    no_flip = torch.zeros(6, dtype=torch.bool)
    assert torch.equal(augment_batch(batch, 2, True, centre, centre, no_flip), batch)
    assert torch.equal(augment_batch(batch, 0, True, centre * 0, centre * 0, ~no_flip),
                       batch.flip(-1))
    assert torch.equal(augment_batch(batch, 0, False, centre * 0, centre * 0, ~no_flip), batch)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_device_cuda_without_cuda_is_one_line(tmp_path, capsys):
    for command in (["train", DIGITS_SPEC, "--dataset", "digits", "--out", str(tmp_path / "r")],
                    ["eval", str(tmp_path / "r")], ["snn", str(tmp_path / "r")],
                    ["adapt", str(tmp_path / "r"), "--out", str(tmp_path / "a")]):
        if command[0] != "train" and not (tmp_path / "r").exists():
            _one_process(tmp_path / "r", "--epochs", "0")
            capsys.readouterr()
        assert cli_main(command + ["--device", "cuda"]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "--device cuda: no CUDA device" in err, err
    assert not (tmp_path / "a").exists()


def test_batch_must_split_evenly_across_processes(tmp_path):
    with pytest.raises(PascalError, match="not a multiple of the 3 processes"):
        train(TrainConfig(spec=DIGITS_SPEC, dataset="digits", out=str(tmp_path / "r"),
                          batch_size=64, world_size=3), progress=False)
    assert not (tmp_path / "r").exists()


def test_bad_augment_and_device_are_one_line(tmp_path, capsys):
    for option in (["--augment", "rotate"], ["--crop-pad", "99", "--augment", "crop-flip"],
                   ["--device", "tpu"]):
        try:
            status = cli_main(["train", DIGITS_SPEC, "--dataset", "digits", "--out",
                               str(tmp_path / "r"), *option])
        except SystemExit as exc:  # a choice argparse refuses, before torch loads
            status = exc.code
        assert status == 2
        assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()


@pytest.mark.slow
def test_amp_training_converts_with_no_difference(tmp_path, capsys):
    """bfloat16 autocast trains; conversion and the integer views stay exact (float64)."""
    _one_process(tmp_path / "amp", "--epochs", "1", "--amp")
    capsys.readouterr()
    state = torch.load(tmp_path / "amp" / "checkpoint.pt", weights_only=True)
    assert state["config"]["amp"] is True
    assert all(v.dtype != torch.bfloat16 for v in state["model"].values())
    assert cli_main(["snn", str(tmp_path / "amp"), "--images", "120", "--no-float", "--json",
                     "--device", "cpu"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["mismatched_samples"] == 0 and report["snn_accuracy"] > 0.5
