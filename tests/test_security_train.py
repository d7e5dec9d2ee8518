"""Hostile or damaged inputs on the training side: crafted checkpoints, runs put together from two
runs, broken metrics, and training/adapt options out of range. Each must be one PascalError line
(exit status 2 on the command line), and a crafted file must never run code."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
import torch
import yaml

from pascal_fpga.cli import main as cli_main
from pascal_fpga.errors import PascalError
from pascal_fpga.snn.adapt import adapt_run
from pascal_fpga.train import TrainConfig, load_run, train
from pascal_fpga.train.trainer import load_checkpoint

REPO = Path(__file__).resolve().parent.parent
DIGITS_SPEC = REPO / "models" / "digits-cnn.yaml"
DIGITS_TRAIN_IMAGES = 1437

TINY = {
    "name": "tiny",
    "input": {"channels": 1, "height": 8, "width": 8, "bits": 5},
    "classes": 10,
    "layers": [
        {"type": "conv", "channels": 4, "kernel": 3, "padding": 1},
        {"type": "maxpool", "kernel": 2},
        {"type": "flatten"},
        {"type": "linear", "features": 10},
    ],
}


class _CreatesMarker:
    """Unpickling this object opens (creates) ``marker``: a stand-in for arbitrary code."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _write_tiny(folder: Path, name: str = "tiny.yaml", **changes) -> Path:
    raw = {**TINY, **changes}
    path = folder / name
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def _cli(capsys, *argv) -> tuple[int, str]:
    status = cli_main([str(a) for a in argv])
    captured = capsys.readouterr()
    return status, captured.err


def _one_error_line(err: str, command: str, *needles: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith(f"pascal-fpga {command}: error: "), lines[0]
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A one-epoch run of the tiny spec on digits (copied by each test that changes it)."""
    folder = tmp_path_factory.mktemp("trained")
    spec = _write_tiny(folder)
    train(TrainConfig(spec=str(spec), dataset="digits", out=str(folder / "run"), epochs=1,
                      batch_size=64, seed=1), progress=False)
    return folder / "run"


@pytest.fixture
def run(trained, tmp_path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(trained, copy)
    return copy


# --- checkpoints: only tensors and plain data are unpickled ----------------------------------

def test_every_saved_field_loads_with_weights_only(trained):
    state = torch.load(trained / "checkpoint.pt", weights_only=True)
    assert set(state) == {"spec", "model", "optimizer", "epoch", "history", "train_seconds",
                          "config", "quantized"}
    assert state["epoch"] == 1 and len(state["history"]) == 1
    assert state["config"]["dataset"] == "digits" and state["config"]["batch_size"] == 64
    assert state["spec"]["name"] == "tiny"


def test_crafted_checkpoint_does_not_run_code(run, tmp_path, capsys):
    marker = tmp_path / "marker"
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    state["history"] = [_CreatesMarker(marker)]
    torch.save(state, run / "checkpoint.pt")
    with pytest.raises(PascalError) as err:
        load_checkpoint(run / "checkpoint.pt")
    assert not marker.exists()
    assert str(run / "checkpoint.pt") in str(err.value) and "\n" not in str(err.value)
    status, out_err = _cli(capsys, "eval", run)
    assert status == 2 and not marker.exists()
    _one_error_line(out_err, "eval", str(run / "checkpoint.pt"), "refused")


def test_crafted_checkpoint_as_init_from_does_not_run_code(tmp_path):
    marker = tmp_path / "marker"
    evil = tmp_path / "evil.pt"
    torch.save({"spec": TINY, "model": {"w": _CreatesMarker(marker)}}, evil)
    spec = _write_tiny(tmp_path)
    with pytest.raises(PascalError, match="refused"):
        train(TrainConfig(spec=str(spec), dataset="digits", out=str(tmp_path / "ft"), epochs=0,
                          batch_size=64, init_from=str(evil)), progress=False)
    assert not marker.exists()
    assert not (tmp_path / "ft").exists()


def test_crafted_checkpoint_on_resume_does_not_run_code(run, tmp_path, capsys):
    marker = tmp_path / "marker"
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    state["optimizer"] = _CreatesMarker(marker)
    torch.save(state, run / "checkpoint.pt")
    status, err = _cli(capsys, "train", _write_tiny(tmp_path), "--dataset", "digits",
                       "--epochs", 2, "--out", run, "--resume")
    assert status == 2 and not marker.exists()
    assert "refused" in err and str(run / "checkpoint.pt") in err


@pytest.mark.parametrize("name, bad", [
    ("units.0.bn.weight", math.nan),
    ("units.0.conv.weight", math.inf),
    ("units.0.bn.running_var", -math.inf),
])
def test_non_finite_parameter_is_refused(run, capsys, name, bad):
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    assert name in state["model"]
    state["model"][name].view(-1)[0] = bad
    torch.save(state, run / "checkpoint.pt")
    status, err = _cli(capsys, "eval", run)
    assert status == 2
    _one_error_line(err, "eval", f"{run / 'checkpoint.pt'}: parameter '{name}' has NaN or "
                                 f"infinite values")


def test_non_finite_init_from_is_refused(run, tmp_path):
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    state["model"]["units.0.conv.weight"].view(-1)[0] = math.nan
    torch.save(state, tmp_path / "nan.pt")
    with pytest.raises(PascalError, match="has NaN or infinite values"):
        train(TrainConfig(spec=str(run / "spec.yaml"), dataset="digits", out=str(tmp_path / "ft"),
                          epochs=0, batch_size=64, init_from=str(tmp_path / "nan.pt")),
              progress=False)


@pytest.mark.parametrize("model, words", [
    ({"units.0.bn.weight": 3}, "parameter 'units.0.bn.weight' is a int, not a tensor"),
    ({"units.0.bn.weight": [1.0, 2.0]}, "parameter 'units.0.bn.weight' is a list, not a tensor"),
    ([1, 2], "field 'model' is a list"),
])
def test_model_state_that_is_not_tensors(run, capsys, model, words):
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    state["model"] = {**state["model"], **model} if isinstance(model, dict) else model
    torch.save(state, run / "checkpoint.pt")
    status, err = _cli(capsys, "eval", run)
    assert status == 2
    _one_error_line(err, "eval", str(run / "checkpoint.pt"), words)


def test_not_a_checkpoint(run, capsys):
    (run / "checkpoint.pt").write_bytes(b"not a zip, not a pickle")
    status, err = _cli(capsys, "eval", run)
    assert status == 2
    _one_error_line(err, "eval", str(run / "checkpoint.pt"), "unreadable checkpoint")


@pytest.mark.filterwarnings("ignore:Sparse CSR tensor support is in beta")
@pytest.mark.parametrize("name, change, words", [
    ("units.0.conv.weight", lambda t: torch.empty(t.shape, device="meta"),
     "is a meta tensor (a shape without values)"),
    ("units.0.conv.weight", lambda t: t.to_sparse(), "is a sparse_coo tensor, not a dense one"),
    ("units.3.linear.weight", lambda t: t.to_sparse_csr(), "is a sparse_csr tensor"),
    ("units.0.bn.weight", lambda t: t.to(torch.complex64),
     "has dtype complex64, expected float32 or float64"),
    ("units.0.bn.bias", lambda t: t.half(), "has dtype float16, expected float32 or float64"),
    ("units.3.linear.weight", lambda t: t.to(torch.int32), "has dtype int32"),
    ("units.3.linear.bias", lambda t: t.bool(), "has dtype bool"),
    ("units.0.bn.num_batches_tracked", lambda t: t.float(),
     "has dtype float32, expected int64"),
], ids=["meta", "sparse-coo", "sparse-csr", "complex", "half", "int", "bool", "counter-float"])
def test_model_tensor_of_another_kind_is_refused(run, capsys, name, change, words):
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    assert name in state["model"]
    state["model"][name] = change(state["model"][name])
    torch.save(state, run / "checkpoint.pt")
    status, err = _cli(capsys, "eval", run)
    assert status == 2
    _one_error_line(err, "eval", f"{run / 'checkpoint.pt'}: parameter '{name}' {words}")


def test_float64_model_state_loads(run):
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    state["model"] = {k: v.double() if v.is_floating_point() else v
                      for k, v in state["model"].items()}
    torch.save(state, run / "checkpoint.pt")
    load_run(run)


@pytest.mark.parametrize("change, words", [
    (lambda t: torch.empty(t.shape, device="meta"), "is a meta tensor"),
    (lambda t: t.to_sparse(), "is a sparse_coo tensor"),
    (lambda t: t.to(torch.complex64), "has dtype complex64"),
], ids=["meta", "sparse", "complex"])
def test_optimizer_tensor_of_another_kind_is_refused(run, tmp_path, capsys, change, words):
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    exp_avg = state["optimizer"]["state"][0]["exp_avg"]
    state["optimizer"]["state"][0]["exp_avg"] = change(exp_avg)
    torch.save(state, run / "checkpoint.pt")
    before = (run / "checkpoint.pt").read_bytes()
    status, err = _cli(capsys, "train", _write_tiny(tmp_path), "--dataset", "digits",
                       "--epochs", 2, "--out", run, "--resume")
    assert status == 2
    _one_error_line(err, "train", f"{run / 'checkpoint.pt'}: field 'optimizer'['state'][0]"
                                  f"['exp_avg'] {words}")
    assert (run / "checkpoint.pt").read_bytes() == before


# --- a run directory must be one run ---------------------------------------------------------

def test_checkpoint_copied_from_another_run(run, capsys):
    # another run's checkpoint: the zoo's digits-cnn (models/digits-cnn.yaml, not the tiny spec)
    shutil.copy(REPO / "models" / "zoo" / "digits-cnn" / "checkpoint.pt", run / "checkpoint.pt")
    status, err = _cli(capsys, "eval", run)
    assert status == 2
    _one_error_line(err, "eval", str(run / "spec.yaml"), str(run / "checkpoint.pt"),
                    "different specs")


def test_spec_yaml_edited_after_training(run, capsys):
    raw = yaml.safe_load((run / "spec.yaml").read_text())
    raw["layers"][0]["levels"] = 7
    (run / "spec.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    status, err = _cli(capsys, "eval", run)
    assert status == 2
    _one_error_line(err, "eval", str(run / "spec.yaml"), str(run / "checkpoint.pt"))


def test_without_spec_yaml_the_checkpoint_spec_is_used(run):
    before = load_run(run)[0].to_dict()
    (run / "spec.yaml").unlink()
    spec, _, metrics = load_run(run)
    assert spec.to_dict() == before and metrics["dataset"] == "digits"


@pytest.mark.parametrize("content, words", [
    ("{not json", "not a readable JSON file"),
    ("[1, 2, 3]", "must hold a JSON object, got a list"),
    ("\"text\"", "must hold a JSON object, got a str"),
    ('{"dataset": 5}', "field 'dataset' must be a string, got a int"),
    (b"\xff\xfe\x00", "not a readable JSON file"),
])
def test_broken_metrics_json(run, capsys, content, words):
    path = run / "metrics.json"
    (path.write_bytes if isinstance(content, bytes) else path.write_text)(content)
    status, err = _cli(capsys, "eval", run)
    assert status == 2
    _one_error_line(err, "eval", str(path), words)


@pytest.mark.parametrize("config, words", [
    (["digits"], "field 'config' must be a mapping, got a list"),
    ({"dataset": 5}, "field 'config': 'dataset' must be a string, got a int"),
    ({"dataset": "digits", "data_dir": ["/x"]}, "'data_dir' must be a string, got a list"),
])
def test_checkpoint_config_mistyped(run, capsys, config, words):
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    state["config"] = config
    torch.save(state, run / "checkpoint.pt")
    (run / "metrics.json").unlink()  # so that the checkpoint's config is the one read
    status, err = _cli(capsys, "eval", run)
    assert status == 2
    _one_error_line(err, "eval", str(run / "checkpoint.pt"), words)


# --- train --resume continues the run as it was ----------------------------------------------

def test_resume_with_another_spec_is_refused(run, tmp_path, capsys):
    other = _write_tiny(tmp_path, "other.yaml", levels=7)
    status, err = _cli(capsys, "train", other, "--dataset", "digits", "--epochs", 2,
                       "--out", run, "--resume")
    assert status == 2
    _one_error_line(err, "train", str(other), str(run / "spec.yaml"), "differs")
    assert torch.load(run / "checkpoint.pt", weights_only=True)["epoch"] == 1


def test_resume_with_the_same_spec_in_another_file_works(run, tmp_path, capsys):
    same = _write_tiny(tmp_path, "same.yaml")  # the defaults resolve to the run's spec
    status, _ = _cli(capsys, "train", same, "--dataset", "digits", "--epochs", 2, "--out", run,
                     "--resume", "--batch-size", 64, "--seed", 1)
    assert status == 0
    assert torch.load(run / "checkpoint.pt", weights_only=True)["epoch"] == 2


def test_resume_with_fewer_epochs_is_refused(run, tmp_path, capsys):
    same = _write_tiny(tmp_path, "same.yaml")
    status, err = _cli(capsys, "train", same, "--dataset", "digits", "--epochs", 0, "--out", run,
                       "--resume")
    assert status == 2
    _one_error_line(err, "train", "the run has 1 epochs; --epochs must be >= 1")


def test_resume_with_another_dataset_is_refused(run, tmp_path, capsys):
    same = _write_tiny(tmp_path, "same.yaml")
    status, err = _cli(capsys, "train", same, "--dataset", "fashion-mnist", "--epochs", 2,
                       "--out", run, "--resume")
    assert status == 2
    _one_error_line(err, "train", "--dataset fashion-mnist", "digits")


def test_resume_float_flag_must_match(run, tmp_path, capsys):
    same = _write_tiny(tmp_path, "same.yaml")
    status, err = _cli(capsys, "train", same, "--dataset", "digits", "--epochs", 2, "--out", run,
                       "--resume", "--float")
    assert status == 2
    _one_error_line(err, "train", "without --float")


# --- training options, checked before any work -----------------------------------------------

BAD_TRAIN_OPTIONS = [
    (["--lr", "nan"], "--lr"),
    (["--lr", "inf"], "--lr"),
    (["--lr", "0"], "--lr"),
    (["--lr", "-0.1"], "--lr"),
    (["--weight-decay", "nan"], "--weight-decay"),
    (["--weight-decay", "inf"], "--weight-decay"),
    (["--weight-decay=-1e-4"], "--weight-decay"),
    (["--batch-size", "0"], "--batch-size"),
    (["--batch-size", "-5"], "--batch-size"),
    (["--epochs", "-1"], "--epochs"),
    (["--epochs", "100001"], "--epochs"),
    (["--seed", "-1"], "--seed"),
    (["--seed", str(2 ** 32)], "--seed"),
]


@pytest.mark.parametrize("options, option", BAD_TRAIN_OPTIONS,
                         ids=[" ".join(o) for o, _ in BAD_TRAIN_OPTIONS])
def test_bad_training_option(tmp_path, capsys, options, option):
    out = tmp_path / "out"
    status, err = _cli(capsys, "train", DIGITS_SPEC, "--dataset", "digits", "--epochs", 1,
                       "--out", out, *options)
    assert status == 2
    value = options[-1].split("=")[-1]
    shown = value if value.lstrip("-").isdigit() else str(float(value))
    _one_error_line(err, "train", option, f"got {shown}")
    assert not out.exists()


def test_bad_option_is_refused_before_the_spec_is_read(tmp_path):
    with pytest.raises(PascalError, match="--lr"):
        train(TrainConfig(spec=str(tmp_path / "absent.yaml"), dataset="digits",
                          out=str(tmp_path / "out"), lr=float("nan")), progress=False)


@pytest.mark.parametrize("batch", [DIGITS_TRAIN_IMAGES + 1, 10 ** 9])
def test_batch_larger_than_the_training_set(tmp_path, capsys, batch):
    out = tmp_path / "out"
    status, err = _cli(capsys, "train", DIGITS_SPEC, "--dataset", "digits", "--epochs", 1,
                       "--batch-size", batch, "--out", out)
    assert status == 2
    _one_error_line(err, "train", f"--batch-size {batch}", f"{DIGITS_TRAIN_IMAGES} training "
                                                          f"images of digits")
    assert not out.exists()


def test_batch_of_the_whole_training_set_is_one_step(tmp_path):
    metrics = train(TrainConfig(spec=str(_write_tiny(tmp_path)), dataset="digits",
                                out=str(tmp_path / "run"), epochs=1,
                                batch_size=DIGITS_TRAIN_IMAGES), progress=False)
    assert metrics["epochs"] == 1 and len(metrics["history"]) == 1


def test_batch_of_one_image_is_refused(run, tmp_path, capsys):
    # BatchNorm cannot normalise one image (a traceback from torch in the first step before)
    out = tmp_path / "out"
    status, err = _cli(capsys, "train", DIGITS_SPEC, "--dataset", "digits", "--epochs", 1,
                       "--batch-size", 1, "--out", out)
    assert status == 2
    _one_error_line(err, "train", "--batch-size must be >= 2", "BatchNorm", "got 1")
    assert not out.exists()
    with pytest.raises(PascalError, match="--batch-size must be >= 2"):
        adapt_run(run, tmp_path / "adapted", batch_size=1)
    assert not (tmp_path / "adapted").exists()


@pytest.mark.parametrize("batch", [718, 1436])  # 1437 = 2 * 718 + 1 = 1436 + 1
def test_calibration_batch_of_one_image_is_refused(tmp_path, capsys, batch):
    # calibration splits min(1437, 4 * batch) shuffled training images into batches of `batch`
    out = tmp_path / "out"
    status, err = _cli(capsys, "train", DIGITS_SPEC, "--dataset", "digits", "--epochs", 0,
                       "--batch-size", batch, "--out", out)
    assert status == 2
    _one_error_line(err, "train", f"--batch-size {batch}: calibration", "last one of 1 image")
    assert not out.exists()


def _write_fashion(folder: Path, n_train: int, n_test: int) -> Path:
    """The four Fashion-MNIST IDX files, plain, with random 28x28 images."""
    import numpy as np
    import struct

    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    for stem, shape in (("train-images-idx3-ubyte", (n_train, 28, 28)),
                        ("train-labels-idx1-ubyte", (n_train,)),
                        ("t10k-images-idx3-ubyte", (n_test, 28, 28)),
                        ("t10k-labels-idx1-ubyte", (n_test,))):
        top = 256 if len(shape) == 3 else 10
        data = rng.integers(0, top, shape, dtype=np.uint8)
        header = struct.pack(">BBBB", 0, 0, 0x08, len(shape)) + struct.pack(f">{len(shape)}I",
                                                                            *shape)
        (folder / stem).write_bytes(header + data.tobytes())
    return folder


@pytest.mark.parametrize("command", ["train", "eval", "snn"])
def test_empty_test_set_is_one_line(tmp_path, capsys, command):
    # ZeroDivisionError in train and eval before, and "--samples must be >= 1, got None" in snn
    spec = _write_tiny(tmp_path, input={"channels": 1, "height": 28, "width": 28, "bits": 8})
    empty = _write_fashion(tmp_path / "empty", n_train=64, n_test=0)
    out = tmp_path / "out"
    if command == "train":
        argv = ["train", spec, "--dataset", "fashion-mnist", "--data-dir", empty, "--epochs", 1,
                "--batch-size", 32, "--out", out]
    else:
        run = tmp_path / "run"
        train(TrainConfig(spec=str(spec), dataset="fashion-mnist", out=str(run), epochs=0,
                          batch_size=32, data_dir=str(_write_fashion(tmp_path / "ok", 64, 3))),
              progress=False)
        argv = [command, run, "--data-dir", empty]
    status, err = _cli(capsys, *argv)
    assert status == 2
    _one_error_line(err, command, f"malformed IDX file {empty / 't10k-images-idx3-ubyte'}: "
                                  f"0 images")
    assert not out.exists()


# --- adapt options, checked before any work --------------------------------------------------

BAD_ADAPT_OPTIONS = [
    (dict(calibration_images=0), "--calibration"),
    (dict(calibration_images=-3), "--calibration"),
    (dict(epochs=-1), "--epochs"),
    (dict(epochs=100001), "--epochs"),
    (dict(lr=float("nan")), "--lr"),
    (dict(lr=float("inf")), "--lr"),
    (dict(lr=0.0), "--lr"),
    (dict(budget=float("nan")), "--budget"),
    (dict(budget=float("inf")), "--budget"),
    (dict(budget=0.5), "--budget"),
    (dict(budget=1.5, candidates=(2, 4)), "--budget"),
    (dict(candidates=(0, 2)), "--candidates"),
    (dict(candidates=(2, 257)), "--candidates"),
    (dict(batch_size=0), "--batch-size"),
]


@pytest.mark.parametrize("options, option", BAD_ADAPT_OPTIONS,
                         ids=[repr(o) for o, _ in BAD_ADAPT_OPTIONS])
def test_bad_adapt_option_before_any_work(tmp_path, options, option):
    # the run directory does not exist: the option must be refused before it is looked at
    with pytest.raises(PascalError) as err:
        adapt_run(tmp_path / "absent-run", tmp_path / "out", **options)
    assert str(err.value).startswith(option), str(err.value)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("options, option", [
    (["--calibration-images", "0"], "--calibration-images"),
    (["--budget", "nan"], "--budget"),
    (["--lr", "-1"], "--lr"),
    (["--epochs", "-2"], "--epochs"),
])
def test_bad_adapt_option_on_the_command_line(run, tmp_path, capsys, options, option):
    status, err = _cli(capsys, "adapt", run, "--out", tmp_path / "adapted", *options)
    assert status == 2
    _one_error_line(err, "adapt", option)
    assert not (tmp_path / "adapted").exists()


def test_adapt_batch_larger_than_the_training_set(run, tmp_path):
    with pytest.raises(PascalError, match=f"--batch-size 5000 is larger than the "
                                          f"{DIGITS_TRAIN_IMAGES} training images"):
        adapt_run(run, tmp_path / "adapted", batch_size=5000)


def test_adapt_fine_tunes_through_the_checked_checkpoint(run, tmp_path):
    report = adapt_run(run, tmp_path / "adapted", epochs=0, calibration_images=200,
                       budget=2.0, candidates=(1, 2))
    assert report["mean_levels_after"] <= 2.0
    state = torch.load(tmp_path / "adapted" / "checkpoint.pt", weights_only=True)
    assert state["config"]["init_from"] == str(run / "checkpoint.pt")
    spec, _, _ = load_run(tmp_path / "adapted")
    assert [layer.levels for layer in spec.qcfs_layers()] == [2]
    assert json.loads((tmp_path / "adapted" / "adapt.json").read_text())["fine_tune_epochs"] == 0


@pytest.mark.slow
def test_resume_keeps_the_runs_own_settings(tmp_path, capsys):
    spec = _write_tiny(tmp_path)
    out = tmp_path / "run"
    base = ["train", spec, "--dataset", "digits", "--out", out]
    assert _cli(capsys, *base, "--epochs", "1", "--batch-size", "256", "--lr", "0.01",
                "--seed", "3")[0] == 0
    # another value given with --resume: refused, naming the option and both values
    for flag, value, kept in (("--lr", "0.02", "0.01"), ("--batch-size", "128", "256"),
                              ("--seed", "0", "3"), ("--weight-decay", "0.1", "0.0")):
        status, err = _cli(capsys, *base, "--epochs", "2", "--resume", flag, value)
        assert status == 2, err
        assert f"{flag} {value}: the run in {out} was trained with {flag} {kept}" in err
    assert load_checkpoint(out / "checkpoint.pt")["epoch"] == 1
    # left out (or the same value given): the run's own settings, not the defaults
    assert _cli(capsys, *base, "--epochs", "2", "--resume", "--lr", "0.01")[0] == 0
    config = json.loads((out / "metrics.json").read_text())["config"]
    assert (config["batch_size"], config["lr"], config["seed"]) == (256, 0.01, 3)
    assert load_checkpoint(out / "checkpoint.pt")["epoch"] == 2
