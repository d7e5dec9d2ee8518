"""Foreign networks: models a Brevitas or FINN user has, written by nobody on this project.

Each network is built in-process and exported to QONNX the way its user would export it
(``brevitas.export.export_qonnx``, then qonnx's ``cleanup_model``, except for the one uncleaned
export). Used by ``scripts/foreign_models.py`` (the whole corpus through the command line, as a
table) and by ``tests/test_foreign.py`` (a few small ones, exactly against qonnx).

Three families:

- ``bnn-pynq``: FINN's BNN-PYNQ reference networks from ``brevitas_examples.bnn_pynq``: TFC, SFC,
  LFC (fully connected, 1x28x28 input) and CNV (convolutional, 3x32x32 input) at w1a1, w1a2 and
  w2a2. Brevitas ships no configuration for LFC w2a2: ``lfc-w2a2`` is the FC model class at LFC's
  widths with the 2-bit settings of the other w2a2 networks. Random weights as the classes build
  them; BatchNorm (and the TensorNorm after the classifier) get their running statistics from a
  few forward passes in train mode on inputs in [0, 1] (Fashion-MNIST images for the FC nets,
  random 8-bit pixels / 255 for CNV). ``small=True`` builds a narrower twin (FC widths 32,
  CNV channels 8-32) for tests; for the plain networks it skips their short training.
- ``plain``: networks as a user writes them with ``brevitas.nn`` and Brevitas' default
  quantizers (``QuantIdentity`` signed 8 bit at the input, ``QuantReLU`` at 2-4 bits, weights at
  2-4 bits), BatchNorm, pools, biases, per-channel scales, residual blocks, and one FINN-style
  fixed-point network (power-of-two scales, no BatchNorm).
- ``uncleaned``: ``mlp-flatten-first`` exported without qonnx cleanup (its initializers are
  listed as graph inputs).

Every network takes float32 images in [0, 1] of its input shape (N, C, H, W): :func:`inputs`
gives some (Fashion-MNIST test images / 255 for 1x28x28, random 8-bit pixels / 255 for 3x32x32).
Everything is seeded: the same name, seed and ``small`` give the same model on one machine.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import tempfile
import warnings
from configparser import ConfigParser
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

FMNIST = (1, 28, 28)
CIFAR = (3, 32, 32)

# how many images set the BatchNorm statistics, in how many train-mode passes
CALIBRATION_PASSES = 4
CALIBRATION_BATCH = 64
# a few seconds of training for two of the plain networks
TRAIN_IMAGES = 4096


@dataclass(frozen=True)
class Foreign:
    name: str
    family: str                       # "bnn-pynq", "plain" or "uncleaned"
    shape: tuple[int, int, int]       # one input (C, H, W), values in [0, 1]
    about: str                        # what it exercises, one line
    make: Callable[[bool], nn.Module]  # small -> the model in train mode, freshly built
    train_images: int = 0             # a short Fashion-MNIST training on this many images
    cleanup: bool = True              # qonnx cleanup after the export


# ----------------------------------------------------------------------------------------------
# data

_FMNIST_CACHE: dict[str, np.ndarray] = {}


def _fmnist(split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """Fashion-MNIST images as float32 in [0, 1] (N, 1, 28, 28) and labels (cached)."""
    if split not in _FMNIST_CACHE:
        from pascal_fpga.datasets import load_dataset

        data = load_dataset("fashion-mnist", None)
        _FMNIST_CACHE["train"] = (data.train_images.astype(np.float32) / 255.0,
                                  data.train_labels)
        _FMNIST_CACHE["test"] = (data.test_images.astype(np.float32) / 255.0, data.test_labels)
    return _FMNIST_CACHE[split]


def inputs(name: str, count: int, seed: int = 0, split: str = "test") -> np.ndarray:
    """``count`` float32 inputs of network ``name`` in its own domain [0, 1], (count, C, H, W):
    Fashion-MNIST images (from ``seed``'s offset in ``split``) for 1x28x28 networks, random
    8-bit pixels / 255 for the others."""
    shape = NETWORKS[name].shape
    if shape == FMNIST:
        images, _ = _fmnist(split)
        start = (seed * 7919) % max(1, len(images) - count)
        return np.ascontiguousarray(images[start:start + count])
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 256, size=(count, *shape)) / 255.0).astype(np.float32)


# ----------------------------------------------------------------------------------------------
# FINN's BNN-PYNQ networks

# (OUT_FEATURES of the configuration, or None for CNV); brevitas ships no lfc_2w2a.ini
_BNN_PYNQ = {"tfc": [64, 64, 64], "sfc": [256, 256, 256], "lfc": [1024, 1024, 1024],
             "cnv": None}
_BITS = {"w1a1": (1, 1), "w1a2": (1, 2), "w2a2": (2, 2)}
SMALL_FC = 32
SMALL_CNV = {"conv": [(8, False), (8, True), (16, False), (16, True), (32, False), (32, False)],
             "fc": [(32, 64), (64, 64)], "last": 64}


def _bnn_cfg(arch: str, weight_bits: int, act_bits: int, small: bool) -> ConfigParser:
    """The configuration brevitas_examples reads from cfg/<name>.ini, built here so that the
    missing lfc_2w2a and the narrow test twins come from the same model classes."""
    from brevitas_examples.bnn_pynq.models import get_model_cfg

    cfg = ConfigParser()
    name = f"{arch}_{weight_bits}w{act_bits}a"
    try:
        cfg = get_model_cfg(name)
    except AssertionError:  # lfc_2w2a: LFC's widths with the w2a2 settings of SFC
        cfg = get_model_cfg(f"sfc_{weight_bits}w{act_bits}a")
        cfg.set("MODEL", "OUT_FEATURES", str(_BNN_PYNQ[arch]))
    if small and arch != "cnv":
        cfg.set("MODEL", "OUT_FEATURES", str([SMALL_FC] * 3))
    return cfg


@contextlib.contextmanager
def _small_cnv():
    """CNV's layer widths are module constants of brevitas_examples: narrow them while one
    CNV is built."""
    from brevitas_examples.bnn_pynq.models import CNV as cnv_module

    saved = (cnv_module.CNV_OUT_CH_POOL, cnv_module.INTERMEDIATE_FC_FEATURES,
             cnv_module.LAST_FC_IN_FEATURES)
    cnv_module.CNV_OUT_CH_POOL = SMALL_CNV["conv"]
    cnv_module.INTERMEDIATE_FC_FEATURES = SMALL_CNV["fc"]
    cnv_module.LAST_FC_IN_FEATURES = SMALL_CNV["last"]
    try:
        yield
    finally:
        (cnv_module.CNV_OUT_CH_POOL, cnv_module.INTERMEDIATE_FC_FEATURES,
         cnv_module.LAST_FC_IN_FEATURES) = saved


def _bnn_pynq(arch: str, bits: str) -> Callable[[bool], nn.Module]:
    def make(small: bool) -> nn.Module:
        from brevitas_examples.bnn_pynq.models import model_impl

        cfg = _bnn_cfg(arch, *_BITS[bits], small)
        builder = model_impl[cfg.get("MODEL", "ARCH")]
        if small and arch == "cnv":
            with _small_cnv():
                return builder(cfg)
        return builder(cfg)
    return make


# ----------------------------------------------------------------------------------------------
# plain Brevitas networks, as a user writes them

def _quant():
    import brevitas.nn as qnn
    import brevitas.quant as bq
    return qnn, bq


class MlpFlattenFirst(nn.Module):
    """Flatten, then the default signed 8-bit QuantIdentity, two hidden layers (4- and 3-bit
    weights, BatchNorm, QuantReLU 4 and 3 bits), an Int32Bias classifier."""

    def __init__(self):
        super().__init__()
        qnn, bq = _quant()
        self.inp = qnn.QuantIdentity(return_quant_tensor=True)
        self.fc1 = qnn.QuantLinear(784, 64, bias=False, weight_bit_width=4)
        self.bn1 = nn.BatchNorm1d(64)
        self.act1 = qnn.QuantReLU(bit_width=4)
        self.fc2 = qnn.QuantLinear(64, 32, bias=False, weight_bit_width=3)
        self.bn2 = nn.BatchNorm1d(32)
        self.act2 = qnn.QuantReLU(bit_width=3, return_quant_tensor=True)
        self.fc3 = qnn.QuantLinear(32, 10, bias=True, weight_bit_width=4, bias_quant=bq.Int32Bias)

    def forward(self, x):
        x = self.inp(torch.flatten(x, 1))
        x = self.act1(self.bn1(self.fc1(x)))
        x = self.act2(self.bn2(self.fc2(x)))
        return self.fc3(x)


class MlpDefaultRelu(nn.Module):
    """Brevitas' defaults: QuantIdentity input (then a flatten), 3-bit QuantLinear, QuantReLU
    at 3 bits with its default quantizer, no BatchNorm, no bias."""

    def __init__(self):
        super().__init__()
        qnn, _ = _quant()
        self.inp = qnn.QuantIdentity()
        self.fc1 = qnn.QuantLinear(784, 48, bias=False, weight_bit_width=3)
        self.act1 = qnn.QuantReLU(bit_width=3)
        self.fc2 = qnn.QuantLinear(48, 10, bias=False, weight_bit_width=3)

    def forward(self, x):
        x = self.inp(x)
        x = torch.flatten(x, 1)
        return self.fc2(self.act1(self.fc1(x)))


class MlpFloatBias(nn.Module):
    """QuantLinear's default bias (float, not quantized) in the hidden layers and the
    classifier, BatchNorm in one of them, QuantReLU at 4 and 2 bits."""

    def __init__(self):
        super().__init__()
        qnn, _ = _quant()
        self.inp = qnn.QuantIdentity()
        self.fc1 = qnn.QuantLinear(784, 40, bias=True, weight_bit_width=4)
        self.act1 = qnn.QuantReLU(bit_width=4)
        self.fc2 = qnn.QuantLinear(40, 24, bias=True, weight_bit_width=4)
        self.bn2 = nn.BatchNorm1d(24)
        self.act2 = qnn.QuantReLU(bit_width=2)
        self.fc3 = qnn.QuantLinear(24, 10, bias=True, weight_bit_width=4)

    def forward(self, x):
        x = self.inp(torch.flatten(x, 1))
        x = self.act2(self.bn2(self.fc2(self.act1(self.fc1(x)))))
        return self.fc3(x)


class CnnMaxPoolPerChannel(nn.Module):
    """Conv-BN-QuantReLU-MaxPool twice with per-channel weight scales (4 and 3 bits), the
    default signed input quantizer, a 2-bit-weight Int32Bias classifier."""

    def __init__(self):
        super().__init__()
        qnn, bq = _quant()
        self.inp = qnn.QuantIdentity(return_quant_tensor=True)
        self.conv1 = qnn.QuantConv2d(1, 8, 3, padding=1, bias=False, weight_bit_width=4,
                                     weight_scaling_per_output_channel=True)
        self.bn1 = nn.BatchNorm2d(8)
        self.act1 = qnn.QuantReLU(bit_width=4, return_quant_tensor=True)
        self.pool1 = nn.MaxPool2d(2)
        self.conv2 = qnn.QuantConv2d(8, 16, 3, padding=1, bias=False, weight_bit_width=3,
                                     weight_scaling_per_output_channel=True)
        self.bn2 = nn.BatchNorm2d(16)
        self.act2 = qnn.QuantReLU(bit_width=3, return_quant_tensor=True)
        self.pool2 = nn.MaxPool2d(2)
        self.fc = qnn.QuantLinear(16 * 7 * 7, 10, bias=True, weight_bit_width=2,
                                  bias_quant=bq.Int32Bias)

    def forward(self, x):
        x = self.inp(x)
        x = self.pool1(self.act1(self.bn1(self.conv1(x))))
        x = self.pool2(self.act2(self.bn2(self.conv2(x))))
        return self.fc(torch.flatten(x, 1))


class CnnAvgPoolBias(nn.Module):
    """Convs with Int32Bias biases and no BatchNorm, 3- and 2-bit weights, QuantReLU at 2 bits
    (per-channel activation scales in the second), average pooling, a bias-free classifier."""

    def __init__(self):
        super().__init__()
        qnn, bq = _quant()
        self.inp = qnn.QuantIdentity(return_quant_tensor=True)
        self.conv1 = qnn.QuantConv2d(1, 8, 3, stride=2, padding=1, bias=True, weight_bit_width=3,
                                     bias_quant=bq.Int32Bias)
        self.act1 = qnn.QuantReLU(bit_width=2, return_quant_tensor=True)
        self.conv2 = qnn.QuantConv2d(8, 16, 3, padding=1, bias=True, weight_bit_width=2,
                                     bias_quant=bq.Int32Bias)
        # a per-channel input scale admits no Int32Bias after it: the classifier has no bias
        self.act2 = qnn.QuantReLU(bit_width=2, scaling_per_output_channel=True,
                                  per_channel_broadcastable_shape=(1, 16, 1, 1),
                                  scaling_stats_permute_dims=(1, 0, 2, 3))
        self.pool = nn.AvgPool2d(2)
        self.fc = qnn.QuantLinear(16 * 7 * 7, 10, bias=False, weight_bit_width=3)

    def forward(self, x):
        x = self.act1(self.conv1(self.inp(x)))
        x = self.pool(self.act2(self.conv2(x)))
        return self.fc(torch.flatten(x, 1))


class _Block(nn.Module):
    """A basic residual block: conv-BN-ReLU-conv-BN, plus the block input, then QuantReLU."""

    def __init__(self, channels: int, bits: int):
        super().__init__()
        qnn, _ = _quant()
        self.conv1 = qnn.QuantConv2d(channels, channels, 3, padding=1, bias=False,
                                     weight_bit_width=bits)
        self.bn1 = nn.BatchNorm2d(channels)
        self.act1 = qnn.QuantReLU(bit_width=bits)
        self.conv2 = qnn.QuantConv2d(channels, channels, 3, padding=1, bias=False,
                                     weight_bit_width=bits)
        self.bn2 = nn.BatchNorm2d(channels)
        self.act2 = qnn.QuantReLU(bit_width=bits)

    def forward(self, x):
        y = self.bn2(self.conv2(self.act1(self.bn1(self.conv1(x)))))
        return self.act2(y + x)


class _SharedQuantBlock(_Block):
    """A FINN-style residual block: both summands pass one shared signed QuantIdentity before
    the add, then a QuantReLU."""

    def __init__(self, channels: int, bits: int):
        super().__init__(channels, bits)
        qnn, _ = _quant()
        self.shared = qnn.QuantIdentity(bit_width=bits + 1)

    def forward(self, x):
        y = self.bn2(self.conv2(self.act1(self.bn1(self.conv1(x)))))
        return self.act2(self.shared(y) + self.shared(x))


class ResNetBlock(nn.Module):
    """Stem conv-BN-QuantReLU, max pool, one residual block (4-bit), average pool, classifier."""

    block = _Block

    def __init__(self):
        super().__init__()
        qnn, bq = _quant()
        self.inp = qnn.QuantIdentity()
        self.conv = qnn.QuantConv2d(1, 8, 3, padding=1, bias=False, weight_bit_width=4)
        self.bn = nn.BatchNorm2d(8)
        self.act = qnn.QuantReLU(bit_width=4)
        self.pool1 = nn.MaxPool2d(2)
        self.res = self.block(8, 4)
        self.pool2 = nn.AvgPool2d(2)
        self.fc = qnn.QuantLinear(8 * 7 * 7, 10, bias=False, weight_bit_width=4)

    def forward(self, x):
        x = self.pool1(self.act(self.bn(self.conv(self.inp(x)))))
        x = self.pool2(self.res(x))
        return self.fc(torch.flatten(x, 1))


class ResNetSharedQuant(ResNetBlock):
    """ResNetBlock with the FINN-style shared signed requantizer at the add."""

    block = _SharedQuantBlock


class FixedPointCnn(nn.Module):
    """FINN-typical fixed point: power-of-two scales everywhere (Int8ActPerTensorFixedPoint
    input, Int8WeightPerTensorFixedPoint weights at 4 and 3 bits, Uint8ActPerTensorFixedPoint
    activations at 3 bits), Int32Bias biases, max pooling, no BatchNorm."""

    def __init__(self):
        super().__init__()
        qnn, bq = _quant()
        fixed = dict(weight_quant=bq.Int8WeightPerTensorFixedPoint, bias=True,
                     bias_quant=bq.Int32Bias)
        self.inp = qnn.QuantIdentity(act_quant=bq.Int8ActPerTensorFixedPoint,
                                     return_quant_tensor=True)
        self.conv1 = qnn.QuantConv2d(1, 8, 3, padding=1, weight_bit_width=4, **fixed)
        self.act1 = qnn.QuantReLU(act_quant=bq.Uint8ActPerTensorFixedPoint, bit_width=3,
                                  return_quant_tensor=True)
        self.pool1 = nn.MaxPool2d(2)
        self.conv2 = qnn.QuantConv2d(8, 16, 3, padding=1, weight_bit_width=3, **fixed)
        self.act2 = qnn.QuantReLU(act_quant=bq.Uint8ActPerTensorFixedPoint, bit_width=3,
                                  return_quant_tensor=True)
        self.pool2 = nn.MaxPool2d(2)
        self.fc = qnn.QuantLinear(16 * 7 * 7, 10, weight_bit_width=4, **fixed)

    def forward(self, x):
        x = self.pool1(self.act1(self.conv1(self.inp(x))))
        x = self.pool2(self.act2(self.conv2(x)))
        return self.fc(torch.flatten(x, 1))


def _plain(cls) -> Callable[[bool], nn.Module]:
    return lambda small: cls()


# ----------------------------------------------------------------------------------------------
# the corpus

def _corpus() -> dict[str, Foreign]:
    nets = {}
    for arch in ("tfc", "sfc", "lfc", "cnv"):
        for bits in ("w1a1", "w1a2", "w2a2"):
            name = f"{arch}-{bits}"
            shape = CIFAR if arch == "cnv" else FMNIST
            note = " (no brevitas cfg: SFC's w2a2 settings at LFC widths)" \
                if name == "lfc-w2a2" else ""
            nets[name] = Foreign(name, "bnn-pynq", shape,
                                 f"BNN-PYNQ {arch.upper()} {bits}{note}", _bnn_pynq(arch, bits))
    plain = [
        ("mlp-flatten-first", MlpFlattenFirst, TRAIN_IMAGES),
        ("mlp-default-relu", MlpDefaultRelu, 0),
        ("mlp-float-bias", MlpFloatBias, 0),
        ("cnn-maxpool-perchannel", CnnMaxPoolPerChannel, 0),
        ("cnn-avgpool-bias", CnnAvgPoolBias, 0),
        ("resnet-block", ResNetBlock, 0),
        ("resnet-shared-quant", ResNetSharedQuant, 0),
        ("fixedpoint-cnn", FixedPointCnn, 0),
    ]
    for name, cls, count in plain:
        nets[name] = Foreign(name, "plain", FMNIST, " ".join(cls.__doc__.split()),
                             _plain(cls), train_images=count)
    nets["mlp-uncleaned"] = Foreign("mlp-uncleaned", "uncleaned", FMNIST,
                                    "mlp-flatten-first exported without qonnx cleanup",
                                    _plain(MlpFlattenFirst), train_images=TRAIN_IMAGES, cleanup=False)
    return nets


NETWORKS: dict[str, Foreign] = _corpus()


def names(family: str | None = None) -> list[str]:
    """The corpus' network names (of one family)."""
    return [n for n, f in NETWORKS.items() if family is None or f.family == family]


# ----------------------------------------------------------------------------------------------
# building and exporting

def _calibrate(model: nn.Module, shape: tuple[int, int, int], seed: int) -> None:
    """Running statistics of every BatchNorm (and TensorNorm) and every runtime-statistics
    quantizer scale from a few train-mode passes without gradient: each pass weighs 1/k, so
    the running values are the mean over the passes."""
    norms = [m for m in model.modules()
             if isinstance(m, nn.modules.batchnorm._BatchNorm) or type(m).__name__ == "TensorNorm"]
    saved = [m.momentum for m in norms]
    model.train()
    with torch.no_grad():
        for k in range(CALIBRATION_PASSES):
            for m in norms:
                m.momentum = 1.0 / (k + 1)
            if shape == FMNIST:
                images, _ = _fmnist("train")
                start = (seed * 1009 + k * CALIBRATION_BATCH) % (len(images) - CALIBRATION_BATCH)
                x = torch.from_numpy(images[start:start + CALIBRATION_BATCH])
            else:
                gen = torch.Generator().manual_seed(seed * 1000 + k)
                x = torch.randint(0, 256, (CALIBRATION_BATCH, *shape), generator=gen) / 255.0
            model(x)
    for m, momentum in zip(norms, saved):
        m.momentum = momentum


def _train(model: nn.Module, count: int, seed: int) -> None:
    """A short Adam training on ``count`` Fashion-MNIST images (one pass, batches of 128), so
    that classes mean something."""
    images, labels = _fmnist("train")
    gen = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(images), generator=gen)[:count]
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    model.train()
    for start in range(0, count, 128):
        batch = order[start:start + 128]
        x = torch.from_numpy(images[batch.numpy()])
        y = torch.from_numpy(labels[batch.numpy()]).long()
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()


def build(name: str, small: bool = False, seed: int = 0) -> nn.Module:
    """Network ``name``, built (seeded), its statistics set (and briefly trained where the
    corpus says), in eval mode."""
    net = NETWORKS[name]
    torch.manual_seed(seed)
    np.random.seed(seed)
    with _quiet():
        model = net.make(small)
        if net.train_images and not small:
            _train(model, net.train_images, seed)
        _calibrate(model, net.shape, seed)
    return model.eval()


@contextlib.contextmanager
def _quiet():
    """Brevitas and torch.onnx print progress and warnings on every export: keep them off the
    terminal (a failure still raises)."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._dynamo")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
                contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def file_name(name: str, small: bool = False) -> str:
    return f"{name}{'-small' if small else ''}.onnx"


def export_model(model: nn.Module, shape: tuple[int, int, int], path: str | Path,
                 cleanup: bool = True) -> Path:
    """``export_qonnx`` of an eval-mode ``model`` with a random input of ``shape``, then qonnx's
    cleanup (unless told not to), written to ``path`` (atomically)."""
    from brevitas.export import export_qonnx
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.util.cleanup import cleanup_model

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        raw = Path(tmp) / "raw.onnx"
        with _quiet(), torch.no_grad():
            export_qonnx(model, input_t=torch.rand(1, *shape), export_path=str(raw))
        if cleanup:
            model_wrapper = cleanup_model(ModelWrapper(str(raw)))
            model_wrapper.save(str(raw))
        os.replace(raw, path)
    return path


def export(name: str, folder: str | Path, small: bool = False, seed: int = 0) -> Path:
    """Build network ``name`` and export it into ``folder`` (as :func:`file_name`); the path."""
    net = NETWORKS[name]
    model = build(name, small=small, seed=seed)
    return export_model(model, net.shape, Path(folder) / file_name(name, small), net.cleanup)


def param_count(model: nn.Module) -> int:
    """Trainable parameters (weights, biases, BatchNorm affine)."""
    return sum(p.numel() for p in model.parameters())


# ----------------------------------------------------------------------------------------------
# reading an export

def _attrs(node) -> str:
    from onnx import helper

    shown = []
    for a in node.attribute:
        value = helper.get_attribute_value(a)
        if isinstance(value, bytes):
            value = value.decode()
        if a.name in ("rounding_mode", "signed", "narrow", "kernel_shape", "strides", "pads",
                      "transB", "group", "perm", "axis"):
            shown.append(f"{a.name}={value}")
    return ",".join(shown)


def op_sequence(path: str | Path) -> list[str]:
    """The graph's nodes in order, one line each: index, op type, constants and attributes that
    matter (a Quant's scale, zero point and bit width; a scalar Mul/Div/Add/Sub operand), and
    where each input comes from (``in``: the graph input, ``init``: an initializer, a number:
    that node). Nodes computed from initializers only (weight and bias quantizers) are marked
    ``(const)``."""
    from qonnx.core.modelwrapper import ModelWrapper

    model = ModelWrapper(str(path))
    inits = {i.name for i in model.graph.initializer}
    graph_inputs = {i.name for i in model.graph.input} - inits
    producer = {out: index for index, node in enumerate(model.graph.node) for out in node.output}
    constant = set(inits)
    for node in model.graph.node:  # in topological order after cleanup; good enough otherwise
        if all(i in constant or i == "" for i in node.input):
            constant.update(node.output)

    def const_text(value) -> str:
        return f"{float(value.reshape(-1)[0]):.6g}" if value.size == 1 else \
            f"shape{list(value.shape)}"

    lines = []
    for index, node in enumerate(model.graph.node):
        text = f"{index:3d} {node.op_type}"
        if node.op_type in ("Quant", "BipolarQuant", "Trunc"):
            params = [const_text(model.get_initializer(i)) if model.get_initializer(i) is not None
                      else "?" for i in node.input[1:]]
            text += f"({', '.join(params)})"
        elif node.op_type in ("Mul", "Div", "Add", "Sub", "Reshape"):
            shown = [const_text(c) for c in (model.get_initializer(i) for i in node.input[1:])
                     if c is not None]
            if shown:
                text += f"[{', '.join(shown)}]"
        attrs = _attrs(node)
        if attrs:
            text += " {" + attrs + "}"
        sources = []
        for i in node.input:
            if i in graph_inputs:
                sources.append("in")
            elif i in inits:
                sources.append("init")
            elif i in producer:
                sources.append(str(producer[i]))
            elif i:
                sources.append("?")
        text += f" <- {', '.join(sources)}"
        if node.output[0] in constant:
            text += " (const)"
        lines.append(text)
    return lines
