"""Training runs on the digits set: outputs, calibration, determinism, resume, eval (torchrun:
test_distributed.py)."""

import json
from pathlib import Path

import pytest
import torch

from pascal_fpga.cli import main as cli_main
from pascal_fpga.model.network import LAMBDA_INIT, lambda_parameter
from pascal_fpga.train import TrainConfig, evaluate_run, load_run, train
from pascal_fpga.train import trainer as trainer_module

REPO = Path(__file__).resolve().parent.parent
DIGITS_SPEC = str(REPO / "models" / "digits-cnn.yaml")


def _config(tmp_path, name="run", **kw):
    base = dict(spec=DIGITS_SPEC, dataset="digits", out=str(tmp_path / name), epochs=1,
                batch_size=64, seed=3)
    base.update(kw)
    return TrainConfig(**base)


def _same_state(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_epochs_zero_calibrates_an_untrained_network(tmp_path):
    metrics = train(_config(tmp_path, epochs=0), progress=False)
    run = tmp_path / "run"
    assert {"spec.yaml", "checkpoint.pt", "metrics.json"} <= {p.name for p in run.iterdir()}
    assert metrics["epochs"] == 0 and metrics["history"] == []
    state = torch.load(run / "checkpoint.pt", weights_only=True)  # tensors and plain data only
    assert state["epoch"] == 0 and state["history"] == [] and state["config"]["epochs"] == 0
    _, net, _ = load_run(run)
    lambdas = [float(lambda_parameter(a).detach()) for a in net.qcfs_activations()]
    assert len(lambdas) == 3
    assert all(lam > 0 and lam != LAMBDA_INIT for lam in lambdas)
    bn = net.units[0].bn
    assert not torch.equal(bn.running_mean, torch.zeros_like(bn.running_mean))


@pytest.fixture(scope="module")
def two_epochs(tmp_path_factory):
    """A two-epoch run (seed 3) and what train returned, for the tests that read it (read-only:
    the resume test compares its interrupted run with it)."""
    folder = tmp_path_factory.mktemp("two_epochs")
    metrics = train(_config(folder, epochs=2), progress=False)
    return folder / "run", metrics


@pytest.mark.slow
def test_training_writes_the_run_directory(two_epochs):
    run, metrics = two_epochs
    names = {p.name for p in run.iterdir()}
    assert {"spec.yaml", "checkpoint.pt", "metrics.json", "training_curve.png"} <= names
    on_disk = json.loads((run / "metrics.json").read_text())
    for key in ("test_accuracy", "epochs", "train_seconds", "levels", "dataset"):
        assert key in on_disk
    assert on_disk["epochs"] == 2 and len(on_disk["history"]) == 2
    assert [layer["levels"] for layer in on_disk["levels"]] == [8, 4, 2]
    assert metrics["test_accuracy"] > 0.5  # two epochs on digits already learn a lot
    assert (run / "training_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    result = evaluate_run(run)
    assert result["test_accuracy"] == pytest.approx(metrics["test_accuracy"], abs=0)
    assert result["test_images"] == 360


@pytest.mark.slow
def test_seeded_runs_repeat_exactly(tmp_path):
    train(_config(tmp_path, "a"), progress=False)
    train(_config(tmp_path, "b"), progress=False)
    state_a = torch.load(tmp_path / "a" / "checkpoint.pt", weights_only=True)["model"]
    state_b = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=True)["model"]
    assert _same_state(state_a, state_b)
    train(_config(tmp_path, "c", seed=4), progress=False)
    state_c = torch.load(tmp_path / "c" / "checkpoint.pt", weights_only=True)["model"]
    assert not _same_state(state_a, state_c)


@pytest.mark.slow
def test_resume_after_an_interruption_repeats_the_uninterrupted_run(two_epochs, tmp_path,
                                                                    monkeypatch):
    whole, _ = two_epochs  # the same config: seed 3, two epochs
    real_save = trainer_module.save_checkpoint

    def save_then_interrupt(path, state):
        real_save(path, state)
        raise KeyboardInterrupt  # the user stops the run after its first epoch

    monkeypatch.setattr(trainer_module, "save_checkpoint", save_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        train(_config(tmp_path, "cut", epochs=2), progress=False)
    monkeypatch.setattr(trainer_module, "save_checkpoint", real_save)
    assert torch.load(tmp_path / "cut" / "checkpoint.pt", weights_only=True)["epoch"] == 1
    assert not (tmp_path / "cut" / "metrics.json").exists()

    metrics = train(_config(tmp_path, "cut", epochs=2, resume=True), progress=False)
    whole = torch.load(whole / "checkpoint.pt", weights_only=True)
    resumed = torch.load(tmp_path / "cut" / "checkpoint.pt", weights_only=True)
    assert resumed["epoch"] == 2 and len(metrics["history"]) == 2
    assert _same_state(whole["model"], resumed["model"])


@pytest.mark.slow
def test_float_twin_and_a_residual_spec_train(tmp_path):
    metrics = train(_config(tmp_path, "float", quantized=False), progress=False)
    assert metrics["quantized"] is False and metrics["test_accuracy"] > 0.5
    spec = tmp_path / "res.yaml"
    spec.write_text(
        "name: tiny-res\n"
        "input: {channels: 1, height: 8, width: 8, bits: 5}\n"
        "classes: 10\nlevels: 3\n"
        "layers:\n"
        "  - {type: conv, channels: 8, kernel: 3, padding: 1}\n"
        "  - {type: block, channels: 8}\n"
        "  - {type: block, channels: 16, stride: 2}\n"
        "  - {type: avgpool, kernel: 4}\n"
        "  - {type: flatten}\n"
        "  - {type: linear, features: 10}\n")
    metrics = train(_config(tmp_path, "res", spec=str(spec)), progress=False)
    assert [layer["type"] for layer in metrics["levels"]] == ["conv", "block", "block"]
    _, net, _ = load_run(tmp_path / "res")
    assert len(net.qcfs_activations()) == 5  # stem + two per block
    assert all(float(lambda_parameter(q).detach()) != LAMBDA_INIT for q in net.add_quantizers())


@pytest.mark.slow
def test_cli_train_and_eval_json(tmp_path, capsys):
    out = tmp_path / "cli"
    assert cli_main(["train", DIGITS_SPEC, "--dataset", "digits", "--epochs", "1",
                     "--out", str(out), "--json"]) == 0
    trained = json.loads(capsys.readouterr().out)
    assert cli_main(["eval", str(out), "--json"]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["test_accuracy"] == trained["test_accuracy"]
    assert cli_main(["eval", str(out)]) == 0
    assert "test accuracy" in capsys.readouterr().out
