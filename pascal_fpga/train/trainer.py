"""Training of a QCFS network (or its float twin) from a spec, single- or multi-process.

A run directory holds what later stages read:
  spec.yaml           the resolved spec (every layer's L and weight bits explicit)
  checkpoint.pt       model, optimizer and schedule state after the last finished epoch
  metrics.json        test accuracy, epochs, train seconds, per-layer L, data set, the config
  training_curve.png  loss and accuracy per epoch
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import pickle
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DistributedSampler

from ..datasets import Dataset, load_dataset
from ..errors import PascalError
from ..model.network import QCFSNet, lambda_parameter
from ..spec import ModelSpec, load_spec, parse_spec
from ..names import check_optional_strings
from ..progress import ProgressLines, log, progress_bar
from ..staging import write_marker
from .calibrate import calibrate
from .plots import plot_training_curve
from .syncbn import convert_global_batchnorm

CALIBRATION_BATCHES = 4
EVAL_BATCH = 500
MAX_EPOCHS = 100_000
MAX_SEED = 2 ** 32 - 1
DEVICES = ("auto", "cpu", "cuda")
#: auto: crop-flip (pad 4) for CIFAR-10, none for the others; flip: horizontal flips;
#: crop-flip: a random crop of the image padded by --crop-pad zeros on each side, and flips.
AUGMENTATIONS = ("auto", "none", "flip", "crop-flip")
MAX_CROP_PAD = 16


@dataclass
class TrainConfig:
    """Everything a training run depends on; stored in metrics.json and the checkpoint."""

    spec: str                      # path of the spec file
    dataset: str                   # digits | fashion-mnist | cifar10
    out: str                       # the run directory
    data_dir: str | None = None    # folder of the data set files (fashion-mnist, cifar10)
    epochs: int = 10               # 0: calibrate only, no training
    batch_size: int = 128          # global batch (split across processes)
    lr: float = 2e-3               # Adam learning rate, cosine-annealed to 0
    weight_decay: float = 0.0      # on weights only, never on lambdas or BatchNorm
    seed: int = 0
    resume: bool = False           # continue from out/checkpoint.pt
    quantized: bool = True         # False: the float ReLU twin (a baseline)
    init_from: str | None = None   # start from this checkpoint's weights (fine-tuning), no calibration
    world_size: int = 1            # processes (torchrun sets WORLD_SIZE; read at the CLI)
    rank: int = 0
    device: str = "cpu"            # where the model and the data live: cpu, cuda, cuda:N
    amp: bool = False              # bfloat16 autocast in training steps (evaluation float32)
    augment: str = "auto"          # one of AUGMENTATIONS
    crop_pad: int = 4              # zero padding of crop-flip, pixels per side


def images_to_tensor(images: np.ndarray) -> Tensor:
    """Raw uint8 pixels (N, C, H, W) -> float32 tensor of the same integer values."""
    return torch.from_numpy(np.ascontiguousarray(images)).float()


def resolve_device(name: str) -> torch.device:
    """--device: ``auto`` is CUDA when present, else the CPU; ``cuda`` without CUDA is an error.

    Under torchrun on GPUs each process has set its own device (LOCAL_RANK) before this.
    """
    if name not in DEVICES:
        raise PascalError(f"--device must be one of {', '.join(DEVICES)}, got {name!r}")
    if name == "cpu":
        return torch.device("cpu")
    if torch.cuda.is_available():
        return torch.device("cuda", torch.cuda.current_device())
    if name == "cuda":
        why = ("this torch is a CPU-only build" if torch.version.cuda is None
               else "no GPU is visible (check CUDA_VISIBLE_DEVICES and the driver)")
        raise PascalError(f"--device cuda: no CUDA device available: {why} (torch "
                          f"{torch.__version__}); use --device cpu or --device auto")
    return torch.device("cpu")


def check_augment(augment: str, crop_pad: int) -> None:
    if augment not in AUGMENTATIONS:
        raise PascalError(f"--augment must be one of {', '.join(AUGMENTATIONS)}, got {augment!r}")
    if crop_pad < 0 or crop_pad > MAX_CROP_PAD:
        raise PascalError(f"--crop-pad must be 0..{MAX_CROP_PAD}, got {crop_pad}")


def augmentation(config: "TrainConfig", dataset: str) -> tuple[bool, int]:
    """(flip, crop pad) of a run: ``auto`` is crop-flip with pad 4 on CIFAR-10, none elsewhere."""
    mode = config.augment
    if mode == "auto":
        mode = "crop-flip" if dataset == "cifar10" else "none"
        pad = 4
    else:
        pad = config.crop_pad
    return mode in ("flip", "crop-flip"), pad if mode == "crop-flip" else 0


def augment_draws(count: int, pad: int, generator: torch.Generator
                  ) -> tuple[Tensor, Tensor, Tensor]:
    """(dy, dx, flip) for ``count`` images: crop offsets 0..2 pad and a coin per image."""
    dy = torch.randint(0, 2 * pad + 1, (count,), generator=generator)
    dx = torch.randint(0, 2 * pad + 1, (count,), generator=generator)
    flip = torch.rand(count, generator=generator) < 0.5
    return dy, dx, flip


def augment_batch(batch: Tensor, pad: int, flip_allowed: bool, dy: Tensor, dx: Tensor,
                  flip: Tensor) -> Tensor:
    """Crop each image of ``batch`` (N, C, H, W) at (dy, dx) from its zero-padded copy and mirror
    it where ``flip``; one gather, on the batch's device."""
    n, c, h, w = batch.shape
    device = batch.device
    padded = F.pad(batch, (pad, pad, pad, pad)) if pad else batch
    dy, dx, flip = dy.to(device), dx.to(device), flip.to(device)
    rows = dy[:, None] + torch.arange(h, device=device)
    cols = dx[:, None] + torch.arange(w, device=device)
    if flip_allowed:
        cols = torch.where(flip[:, None], cols.flip(1), cols)
    return padded[torch.arange(n, device=device)[:, None, None, None],
                  torch.arange(c, device=device)[None, :, None, None],
                  rows[:, None, :, None], cols[:, None, None, :]]


@torch.no_grad()
def evaluate(net: nn.Module, images: Tensor, labels: Tensor, batch_size: int = EVAL_BATCH
             ) -> tuple[float, float]:
    """(accuracy, mean cross-entropy) of ``net`` in eval mode; no images is a PascalError."""
    if len(images) == 0:
        raise PascalError("no test images to evaluate the network on")
    was_training = net.training
    net.eval()
    device = next(net.parameters()).device
    correct, loss = 0, 0.0
    for start in range(0, len(images), batch_size):
        logits = net(images[start:start + batch_size].to(device).float())
        target = labels[start:start + batch_size].to(device)
        correct += int((logits.argmax(1) == target).sum())
        loss += float(F.cross_entropy(logits.float(), target, reduction="sum"))
    net.train(was_training)
    return correct / len(images), loss / len(images)


def check_dataset_fits(spec: ModelSpec, data: Dataset) -> None:
    """The spec's input must match the data set's image shape, classes and pixel range."""
    if tuple(data.shape) != (spec.input.channels, spec.input.height, spec.input.width):
        c, h, w = data.shape
        raise PascalError(f"{spec.source}: input: the spec's {spec.input.channels}x"
                          f"{spec.input.height}x{spec.input.width} input does not match "
                          f"{data.name}'s {c}x{h}x{w} images")
    if data.pixel_max > 2 ** spec.input.bits - 1:
        raise PascalError(f"{spec.source}: input: field 'bits': {spec.input.bits} bits cannot hold "
                          f"{data.name}'s pixels (0..{data.pixel_max})")
    if spec.classes != data.classes:
        raise PascalError(f"{spec.source}: field 'classes': {spec.classes} classes, but "
                          f"{data.name} has {data.classes}")


def layer_levels(spec: ModelSpec) -> list[dict[str, Any]]:
    """Per QCFS layer: index, type and L (for metrics and reports)."""
    return [{"layer": layer.index, "type": layer.type, "levels": layer.levels}
            for layer in spec.qcfs_layers()]


def _atomic_write(path: Path, write) -> None:
    """Write ``path`` through a temporary file renamed over it: readers see the old file or the
    new one, and a failed write (a full disk) leaves the old file and no temporary one."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    try:
        _atomic_write(path, lambda tmp: torch.save(state, tmp))
    except RuntimeError as exc:  # how torch's zip writer reports a failed write (a full disk)
        free = shutil.disk_usage(path.parent).free
        raise PascalError(f"{path}: cannot write the checkpoint ({free // 2 ** 20} MiB free on "
                          f"its disk; torch: {str(exc).splitlines()[0][-80:]})") from exc


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read a checkpoint; an unreadable, unsafe or damaged file is a PascalError naming it.

    Only tensors and plain data are unpickled (``weights_only=True``): a file that names any other
    Python object is refused before that object is built. The model's tensors and the optimizer's
    must be dense, on the CPU, of a real float type (``num_batches_tracked``: int64) and finite.
    """
    if not path.is_file():
        raise PascalError(f"{path}: no checkpoint here (train first, or check the run directory)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"GLOBAL ([\w.]{1,100})", str(exc))
        if found is None:
            raise PascalError(f"{path}: unreadable checkpoint (not a torch.save file of tensors "
                              f"and plain data)") from exc
        raise PascalError(f"{path}: refused: the checkpoint names the Python object "
                          f"{found.group(1)}; only tensors and plain data are loaded") from exc
    except Exception as exc:  # torch raises many types for corrupt files
        raise PascalError(f"{path}: unreadable checkpoint ({type(exc).__name__})") from exc
    if not isinstance(state, dict) or "model" not in state or "spec" not in state:
        raise PascalError(f"{path}: not a pascal-fpga checkpoint (no model or spec in it)")
    check_model_state(state["model"], path)
    _check_optimizer_state(state.get("optimizer"), path)
    return state


#: dtypes a checkpoint's tensors may have: what a network's own state holds (float32, and int64
#: for BatchNorm's num_batches_tracked), and float64 (rounded to float32 on loading).
_FLOAT_DTYPES = (torch.float32, torch.float64)
_COUNTER_DTYPES = (torch.int64,)


def _tensor_problem(value: Tensor, dtypes: tuple[torch.dtype, ...]) -> str | None:
    """What makes ``value`` unfit for a checkpoint's state, or None: a sparse or other non-dense
    layout, a meta tensor (a shape without values), another device, another dtype (complex would
    lose its imaginary part, half its precision, int and bool are not weights), NaN or infinity."""
    if value.layout != torch.strided:
        return f"is a {str(value.layout).removeprefix('torch.')} tensor, not a dense one"
    if value.device.type == "meta":
        return "is a meta tensor (a shape without values)"
    if value.device.type != "cpu":
        return f"is on device {value.device}, not loadable to the CPU"
    if value.dtype not in dtypes:
        wanted = " or ".join(str(d).removeprefix("torch.") for d in dtypes)
        return f"has dtype {str(value.dtype).removeprefix('torch.')}, expected {wanted}"
    if value.is_floating_point() and not bool(torch.isfinite(value).all()):
        return "has NaN or infinite values"
    return None


def _check_optimizer_state(value: Any, path: Path) -> None:
    """Every tensor in a checkpoint's optimizer state (nested dicts and lists) must be a dense,
    finite float tensor on the CPU, as Adam writes them (three levels deep); the structure is
    checked on load. The walk is iterative and refuses a state nested deeper than 16 levels."""
    todo: list[tuple[Any, str, int]] = [(value, "field 'optimizer'", 0)]
    while todo:
        item, where, depth = todo.pop()
        if depth > 16 and isinstance(item, (Tensor, dict, list, tuple)):
            raise PascalError(f"{path}: field 'optimizer' is nested more than 16 levels deep")
        if isinstance(item, Tensor):
            problem = _tensor_problem(item, _FLOAT_DTYPES)
            if problem is not None:
                raise PascalError(f"{path}: {where} {problem}")
        elif isinstance(item, dict):
            todo.extend((v, f"{where}[{repr(k)[:100]}]", depth + 1)
                        for k, v in reversed(item.items()))
        elif isinstance(item, (list, tuple)):
            todo.extend((v, f"{where}[{i}]", depth + 1) for i, v in reversed(list(enumerate(item))))


def check_model_state(model_state: Any, path: Path) -> None:
    """Every entry of a checkpoint's model state must be a dense CPU tensor of finite float32 or
    float64 values (``*.num_batches_tracked``, BatchNorm's counter: int64), as a network's own
    state_dict holds; anything else is a PascalError naming the entry and what is wrong."""
    if not isinstance(model_state, dict):
        raise PascalError(f"{path}: field 'model' is a {type(model_state).__name__}, "
                          f"not a mapping of parameter names to tensors")
    for name, value in model_state.items():
        if not isinstance(value, Tensor):
            raise PascalError(f"{path}: parameter {str(name)!r} is a {type(value).__name__}, "
                              f"not a tensor")
        counter = str(name).rsplit(".", 1)[-1] == "num_batches_tracked"
        problem = _tensor_problem(value, _COUNTER_DTYPES if counter else _FLOAT_DTYPES)
        if problem is not None:
            raise PascalError(f"{path}: parameter {str(name)[:200]!r} {problem}")


def check_training_args(epochs: int, batch_size: int, lr: float, weight_decay: float = 0.0,
                        seed: int = 0) -> None:
    """The numeric training options, checked before any work (one line naming the option)."""
    if epochs < 0 or epochs > MAX_EPOCHS:
        raise PascalError(f"--epochs must be 0..{MAX_EPOCHS}, got {epochs}")
    if batch_size < 2:
        # BatchNorm in training mode normalises each channel over the batch: one image (after a
        # linear layer, one value per channel) has no batch statistics, and torch raises
        raise PascalError(f"--batch-size must be >= 2 (BatchNorm normalises over the images of a "
                          f"batch), got {batch_size}")
    if not math.isfinite(lr) or lr <= 0:
        raise PascalError(f"--lr must be a finite number > 0, got {lr}")
    if not math.isfinite(weight_decay) or weight_decay < 0:
        raise PascalError(f"--weight-decay must be a finite number >= 0, got {weight_decay}")
    if seed < 0 or seed > MAX_SEED:
        raise PascalError(f"--seed must be 0..{MAX_SEED}, got {seed}")


def check_batch_fits(batch_size: int, data: Dataset) -> None:
    """A batch may not be larger than the training set (an epoch would have no step), nor leave a
    1-image batch in calibration (BatchNorm cannot normalise one image).

    Training batches are always whole (``epoch_batches`` drops the rest of an epoch); calibration
    splits the first ``CALIBRATION_BATCHES * batch_size`` images of a shuffled training set into
    batches, whose last one has ``n % batch_size`` images when the set is smaller than that.
    """
    n = len(data.train_images)
    if batch_size > n:
        raise PascalError(f"--batch-size {batch_size} is larger than the "
                          f"{n} training images of {data.name}")
    if min(n, CALIBRATION_BATCHES * batch_size) % batch_size == 1:
        raise PascalError(f"--batch-size {batch_size}: calibration would split the {n} training "
                          f"images of {data.name} into batches of {batch_size} and a last one of "
                          f"1 image, which BatchNorm cannot normalise; choose another batch size")


def _run_spec(run_dir: Path, state: dict[str, Any]) -> ModelSpec:
    """The spec of a run: its spec.yaml, which must equal the spec inside its checkpoint.pt (a
    checkpoint copied in from another run is refused); the checkpoint's alone if spec.yaml is gone.
    """
    ckpt_path = run_dir / "checkpoint.pt"
    stored = parse_spec(state["spec"], f"{ckpt_path} (its spec)")
    spec_path = run_dir / "spec.yaml"
    if not spec_path.exists():
        return stored
    spec = load_spec(spec_path)
    if spec.to_dict() != stored.to_dict():
        raise PascalError(f"{spec_path} and {ckpt_path} hold different specs (was the checkpoint "
                          f"copied from another run?)")
    return spec


def _resume_state(state: dict[str, Any], path: Path) -> tuple[list, int, float]:
    """(history, epoch, train seconds) of a checkpoint to resume; a PascalError if mistyped."""
    history, epoch, seconds = state.get("history"), state.get("epoch"), state.get("train_seconds")
    if not isinstance(history, list) or not all(isinstance(h, dict) for h in history):
        raise PascalError(f"{path}: field 'history' must be a list of per-epoch records")
    if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
        raise PascalError(f"{path}: field 'epoch' must be an integer >= 0, got {epoch!r}")
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) \
            or not math.isfinite(seconds):
        raise PascalError(f"{path}: field 'train_seconds' must be a number, got {seconds!r}")
    return history, epoch, float(seconds)


def _checkpoint_config(state: dict[str, Any], path: Path) -> dict[str, Any]:
    config = state.get("config", {})
    if not isinstance(config, dict):
        raise PascalError(f"{path}: field 'config' must be a mapping, got a "
                          f"{type(config).__name__}")
    check_optional_strings(config, ("dataset", "data_dir"), f"{path}: field 'config': ")
    return config


def _optimizer(net: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    decay, no_decay = [], []
    for name, param in net.named_parameters():
        is_weight = name.endswith("weight") and param.dim() > 1
        (decay if is_weight else no_decay).append(param)
    return torch.optim.Adam([{"params": decay, "weight_decay": config.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=config.lr)


def _lr_at(step: int, total: int, base: float) -> float:
    return 0.5 * base * (1.0 + math.cos(math.pi * min(step, total) / max(total, 1)))


def _check_resume(config: TrainConfig, state: dict[str, Any], spec: ModelSpec,
                  ckpt_path: Path) -> None:
    """--resume continues the run in --out as it was: same spec, data set and network kind, and
    at least as many epochs as it already has."""
    run_spec_path = ckpt_path.with_name("spec.yaml")
    given = load_spec(config.spec)
    if given.to_dict() != spec.to_dict():
        raise PascalError(f"{config.spec} differs from the spec of the run being resumed "
                          f"({run_spec_path}); --resume continues that run with its own spec")
    stored = _checkpoint_config(state, ckpt_path)
    if stored.get("dataset") is not None and stored["dataset"] != config.dataset:
        raise PascalError(f"--dataset {config.dataset}: the run in {ckpt_path.parent} was trained "
                          f"on {stored['dataset']} ({ckpt_path})")
    if bool(state.get("quantized", True)) != config.quantized:
        kind = "quantized QCFS" if state.get("quantized", True) else "float (--float)"
        raise PascalError(f"{ckpt_path}: the run is a {kind} network; resume it "
                          f"{'without' if kind.startswith('q') else 'with'} --float")
    _, epoch, _ = _resume_state(state, ckpt_path)
    if config.epochs < epoch:
        raise PascalError(f"{ckpt_path}: the run has {epoch} epochs; --epochs must be >= "
                          f"{epoch}, got {config.epochs}")


def _to_cpu(value: Any) -> Any:
    """A state (dicts, lists, tensors) with every tensor on the CPU: checkpoints load anywhere."""
    if isinstance(value, Tensor):
        return value.detach().cpu()
    if isinstance(value, dict):
        return {k: _to_cpu(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_to_cpu(v) for v in value)
    return value


def _checkpoint_state(spec: ModelSpec, net: nn.Module, optimizer: torch.optim.Optimizer,
                      epoch: int, history: list, train_seconds: float,
                      config: TrainConfig) -> dict[str, Any]:
    return {"spec": spec.to_dict(), "model": _to_cpu(net.state_dict()),
            "optimizer": _to_cpu(optimizer.state_dict()), "epoch": epoch, "history": history,
            "train_seconds": train_seconds, "config": dataclasses.asdict(config),
            "quantized": config.quantized}


def epoch_batches(n: int, config: TrainConfig, epoch: int) -> Tensor:
    """This process's training images of one epoch, in order: (steps, batch / processes).

    A DistributedSampler (seeded per run, reshuffled per epoch) gives this process every W-th
    image of one permutation of the training set; the images of global step k on all processes
    together are positions k*B .. k*B+B-1 of that permutation, whatever the process count W.
    So a run's batches do not depend on W, and --resume may change it.
    """
    sampler = DistributedSampler(range(n), num_replicas=config.world_size, rank=config.rank,
                                 shuffle=True, seed=config.seed * 100_003, drop_last=True)
    sampler.set_epoch(epoch)
    steps = n // config.batch_size
    local = config.batch_size // config.world_size
    return torch.tensor(list(sampler), dtype=torch.long)[:steps * local].view(steps, local)


def train(config: TrainConfig, progress: bool = True,
          write_to: str | Path | None = None) -> dict[str, Any]:
    """Train (or calibrate, with epochs = 0) and write the run directory; returns the metrics.

    The run is written to ``write_to`` when given (a staging folder that the caller moves to
    ``config.out`` at the end, so that a failed or interrupted new run leaves nothing and replaces
    nothing), else to ``config.out`` itself (``--resume`` continues there: every file is replaced
    atomically, so an interruption leaves the last finished epoch).

    Deterministic for a given seed on one machine and device: the shuffling and the augmentation
    of each epoch come from generators seeded with (seed, epoch), so a resumed run repeats an
    uninterrupted one exactly. Several processes (torchrun) split every batch; they see the same
    batches as one process (see ``epoch_batches``).
    """
    check_training_args(config.epochs, config.batch_size, config.lr, config.weight_decay,
                        config.seed)
    check_augment(config.augment, config.crop_pad)
    if config.batch_size % config.world_size:
        raise PascalError(f"--batch-size {config.batch_size} is not a multiple of the "
                          f"{config.world_size} processes (each takes an equal share of a batch)")
    device = torch.device(config.device)
    out = Path(write_to) if write_to is not None else Path(config.out)
    ckpt_path = out / "checkpoint.pt"
    if config.resume:
        if write_to is not None:
            raise ValueError("--resume continues the run in its own folder: no write_to")
        state = load_checkpoint(ckpt_path)
        spec = _run_spec(out, state)
        _check_resume(config, state, spec, ckpt_path)
    else:
        spec = load_spec(config.spec)
        if (out / "checkpoint.pt").exists():
            raise PascalError(f"{out}: already holds a run (checkpoint.pt); use --resume to "
                              f"continue it or choose another --out")
        state = None
    data = load_dataset(config.dataset, config.data_dir)
    check_dataset_fits(spec, data)
    check_batch_fits(config.batch_size, data)
    flip_allowed, crop_pad = augmentation(config, data.name)

    torch.manual_seed(config.seed)
    net = QCFSNet(spec, quantized=config.quantized)
    # The whole data set lives on the device, in its pixel type (uint8: 47 MB for
    # Fashion-MNIST's training set); batches are gathered and made float32 there.
    train_x = torch.from_numpy(np.ascontiguousarray(data.train_images)).to(device)
    train_y = torch.from_numpy(data.train_labels).long().to(device)
    test_x, test_y = images_to_tensor(data.test_images), torch.from_numpy(data.test_labels)
    steps_per_epoch = len(train_x) // config.batch_size
    total_steps = steps_per_epoch * config.epochs
    history: list[dict[str, float]] = []
    start_epoch = 0
    train_seconds = 0.0
    if state is not None:
        try:
            net.load_state_dict(state["model"])
        except RuntimeError as exc:
            raise PascalError(f"{ckpt_path}: its weights do not fit its spec") from exc
    elif config.init_from is not None:
        init = load_checkpoint(Path(config.init_from))
        try:
            net.load_state_dict(init["model"])
        except RuntimeError as exc:
            raise PascalError(f"{config.init_from}: its weights do not fit {spec.source}") from exc
    net.to(device)
    if state is None and config.init_from is None:
        gen = torch.Generator().manual_seed(config.seed)
        idx = torch.randperm(len(train_x), generator=gen)[:CALIBRATION_BATCHES * config.batch_size]
        batches = list(torch.split(train_x[idx.to(device)].float(), config.batch_size))
        calibrate(net, batches)
    # After load_state_dict: Brevitas' scaling modules replace their lambda Parameter objects
    # when loading, so an optimizer made before would update stale copies.
    optimizer = _optimizer(net, config)
    if state is not None:
        if state.get("optimizer") is None:
            raise PascalError(f"{ckpt_path}: has no optimizer state (a model-zoo checkpoint): it "
                              f"can be evaluated, converted, exported and adapted, but not "
                              f"resumed (its commands are in models/zoo/zoo.json)")
        try:
            optimizer.load_state_dict(state["optimizer"])
        except (TypeError, ValueError, KeyError, IndexError, AttributeError) as exc:
            raise PascalError(f"{ckpt_path}: its optimizer state does not fit the network") \
                from exc
        history, start_epoch, train_seconds = _resume_state(state, ckpt_path)

    seconds_before = train_seconds
    is_main = config.rank == 0
    if is_main:
        out.mkdir(parents=True, exist_ok=True)
        write_marker(out, "run")
        spec.dump(out / "spec.yaml")
    model: nn.Module = net
    if config.world_size > 1:
        if device.type == "cuda":
            # BatchNorm statistics over the whole global batch, as in one process
            model = nn.SyncBatchNorm.convert_sync_batchnorm(net)
            model = nn.parallel.DistributedDataParallel(model, device_ids=[device.index])
        else:
            # gloo on CPUs, where SyncBatchNorm does not run: our GlobalBatchNorm does its job
            model = nn.parallel.DistributedDataParallel(convert_global_batchnorm(net))

    bar = None
    if progress and is_main and config.epochs > start_epoch:
        bar = progress_bar((config.epochs - start_epoch) * steps_per_epoch,
                           f"train {spec.name}", unit="batch")
    # a line per epoch: info where no bar shows it (a log, -q aside), debug under a terminal's bar
    epoch_level = logging.DEBUG if bar is not None and not isinstance(bar, ProgressLines) \
        else logging.INFO
    last_test: dict[str, str] = {}  # the bar's test accuracy, of the epoch before
    for epoch in range(start_epoch, config.epochs):
        started = time.perf_counter()
        order = epoch_batches(len(train_x), config, epoch).to(device)
        # augmentation draws for whole global batches, the same on every process: an image's
        # crop and flip follow its place in the batch, not the process that trains it
        aug_gen = torch.Generator().manual_seed(config.seed * 100_003 + epoch + 2 ** 40)
        model.train()
        loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        correct = torch.zeros((), dtype=torch.long, device=device)
        seen = 0
        for step in range(steps_per_epoch):
            batch_idx = order[step]
            images = train_x[batch_idx].float()
            if flip_allowed or crop_pad:
                dy, dx, flip = augment_draws(config.batch_size, crop_pad, aug_gen)
                share = slice(config.rank, None, config.world_size)
                images = augment_batch(images, crop_pad, flip_allowed, dy[share], dx[share],
                                       flip[share])
            labels = train_y[batch_idx]
            for group in optimizer.param_groups:
                group["lr"] = _lr_at(epoch * steps_per_epoch + step, total_steps, config.lr)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=config.amp):
                logits = model(images)
                loss = F.cross_entropy(logits.float(), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            with torch.no_grad():
                for act in net.qcfs_activations() + net.add_quantizers():
                    lambda_parameter(act).clamp_(min=1e-3)
                loss_sum += loss.detach().double() * len(labels)
                correct += (logits.argmax(1) == labels).sum()
            seen += len(labels)
            if bar is not None:
                bar.update(1)
                if step % 20 == 0 or step == steps_per_epoch - 1:
                    bar.set_postfix(epoch=epoch + 1, loss=f"{float(loss_sum) / seen:.3f}",
                                    **last_test)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        train_seconds += time.perf_counter() - started
        if config.world_size > 1:
            torch.distributed.barrier()
        if is_main:
            test_acc, test_loss = evaluate(net, test_x, test_y)
            history.append({"epoch": epoch + 1, "train_loss": float(loss_sum) / max(seen, 1),
                            "train_accuracy": int(correct) / max(seen, 1), "test_loss": test_loss,
                            "test_accuracy": test_acc})
            last_test = {"test_acc": f"{100 * test_acc:.2f}%"}
            if bar is not None:
                bar.set_postfix(epoch=epoch + 1, loss=f"{history[-1]['train_loss']:.3f}",
                                **last_test)
            log.log(epoch_level, f"train {spec.name}: epoch {epoch + 1}/{config.epochs}, train "
                    f"loss {history[-1]['train_loss']:.4f}, train accuracy "
                    f"{100 * history[-1]['train_accuracy']:.2f}%, test accuracy "
                    f"{100 * test_acc:.2f}%, {time.perf_counter() - started:.1f} s")
            save_checkpoint(ckpt_path, _checkpoint_state(spec, net, optimizer, epoch + 1, history,
                                                         train_seconds, config))
        if config.world_size > 1:
            torch.distributed.barrier()
    if bar is not None:
        bar.close()
    if not is_main:
        return {}

    test_acc, test_loss = evaluate(net, test_x, test_y)
    if not ckpt_path.exists():  # epochs = 0: the calibrated, untrained network
        save_checkpoint(ckpt_path, _checkpoint_state(spec, net, optimizer, 0, history,
                                                     train_seconds, config))
    trained_images = (config.epochs - start_epoch) * steps_per_epoch * config.batch_size
    session_seconds = train_seconds - seconds_before
    metrics = {
        "name": spec.name,
        "dataset": data.name,
        "data_dir": config.data_dir,
        "quantized": config.quantized,
        "test_accuracy": test_acc,
        "test_loss": test_loss,
        "epochs": config.epochs,
        "train_seconds": round(train_seconds, 3),
        "train_images": len(train_x),
        "test_images": len(test_x),
        "device": str(device),
        "processes": config.world_size,
        # CPU threads per process: float sums round by thread count, so a QCFS run repeats
        # bit for bit only with the same count
        "threads": torch.get_num_threads(),
        # training images per second of this invocation (all processes together)
        "train_images_per_second": (round(trained_images / session_seconds, 1)
                                    if trained_images and session_seconds > 0 else None),
        "levels": layer_levels(spec),
        "mean_levels": (sum(layer.levels for layer in spec.qcfs_layers())
                        / max(len(spec.qcfs_layers()), 1)),
        "lambdas": [float(lambda_parameter(a).detach()) for a in net.qcfs_activations()],
        "history": history,
        "config": dataclasses.asdict(config),
    }
    _atomic_write(out / "metrics.json",
                  lambda tmp: tmp.write_text(json.dumps(metrics, indent=2) + "\n"))
    if history:
        plot_training_curve(history, out / "training_curve.png", title=spec.name)
    return metrics


def load_run(run_dir: str | Path) -> tuple[ModelSpec, QCFSNet, dict[str, Any]]:
    """The spec, the trained network (eval mode) and the metrics of a run directory."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise PascalError(f"{run_dir}: no such run directory")
    ckpt_path = run_dir / "checkpoint.pt"
    state = load_checkpoint(ckpt_path)
    spec = _run_spec(run_dir, state)
    config = _checkpoint_config(state, ckpt_path)
    net = QCFSNet(spec, quantized=bool(state.get("quantized", True)))
    try:
        net.load_state_dict(state["model"])
    except RuntimeError as exc:
        raise PascalError(f"{ckpt_path}: its weights do not fit its spec") from exc
    net.eval()
    metrics = _read_metrics(run_dir / "metrics.json")
    metrics.setdefault("dataset", config.get("dataset"))
    metrics.setdefault("data_dir", config.get("data_dir"))
    return spec, net, metrics


def _read_metrics(path: Path) -> dict[str, Any]:
    """A run's metrics.json ({} when absent); anything but a JSON object is a PascalError."""
    if not path.is_file():
        return {}
    try:
        metrics = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise PascalError(f"{path}: not a readable JSON file ({type(exc).__name__})") from exc
    if not isinstance(metrics, dict):
        raise PascalError(f"{path}: must hold a JSON object, got a {type(metrics).__name__}")
    check_optional_strings(metrics, ("dataset", "data_dir"), f"{path}: field ")
    return metrics


def run_dataset(run_dir: str | Path, spec: ModelSpec, metrics: dict[str, Any],
                dataset: str | None = None, data_dir: str | None = None) -> Dataset:
    """The data set a run was trained on (or ``dataset``, which must fit the spec)."""
    name = dataset or metrics.get("dataset")
    if name is None:
        raise PascalError(f"{run_dir}: the run does not say its data set; pass --dataset")
    data = load_dataset(name, data_dir if data_dir is not None else metrics.get("data_dir"))
    check_dataset_fits(spec, data)
    return data


def evaluate_run(run_dir: str | Path, dataset: str | None = None,
                 data_dir: str | None = None, device: str = "cpu") -> dict[str, Any]:
    """Test accuracy of a trained run on its data set (or another one of the same shape), with
    the network on ``device``."""
    spec, net, metrics = load_run(run_dir)
    net.to(device)
    data = run_dataset(run_dir, spec, metrics, dataset, data_dir)
    acc, loss = evaluate(net, images_to_tensor(data.test_images), torch.from_numpy(data.test_labels))
    return {"run": str(run_dir), "name": spec.name, "dataset": data.name,
            "test_images": len(data.test_images), "test_accuracy": acc, "test_loss": loss,
            "levels": layer_levels(spec)}
