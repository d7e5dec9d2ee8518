"""Networks for the compiler and HLS tests: odd shapes, calibrated but untrained."""

import json
from pathlib import Path

import numpy as np
import torch
import yaml

from pascal_fpga.model.network import QCFSNet
from pascal_fpga.spec import parse_spec
from pascal_fpga.train.calibrate import calibrate

# Networks of odd shapes: kernel 5 stride 2 with padding 2 and 0, a non-square input, L = 1 and
# L = 3, weight bits 2 and 8, a layer without BatchNorm, a linear layer right after the input,
# average and max pooling.
ODD_SPECS = {
    "strided": {
        "name": "strided", "input": {"channels": 1, "height": 17, "width": 13, "bits": 8},
        "classes": 4, "weight_bits": 2, "levels": 3,
        "layers": [
            {"type": "conv", "channels": 5, "kernel": 5, "stride": 2, "padding": 2, "levels": 1},
            {"type": "conv", "channels": 6, "kernel": 5, "stride": 2, "padding": 0,
             "weight_bits": 8, "batchnorm": False},
            {"type": "flatten"},
            {"type": "linear", "features": 7},
            {"type": "linear", "features": 4},
        ],
    },
    "dense_first": {
        "name": "dense-first", "input": {"channels": 2, "height": 6, "width": 5, "bits": 4},
        "classes": 3, "weight_bits": 8, "levels": 3,
        "layers": [
            {"type": "flatten"},
            {"type": "linear", "features": 9, "weight_bits": 2},
            {"type": "linear", "features": 5, "levels": 1, "batchnorm": False},
            {"type": "linear", "features": 3},
        ],
    },
    "pools": {
        "name": "pools", "input": {"channels": 1, "height": 8, "width": 8, "bits": 5},
        "classes": 10, "weight_bits": 3, "levels": 3,
        "layers": [
            {"type": "conv", "channels": 6, "kernel": 5, "stride": 2, "padding": 2, "levels": 1},
            {"type": "conv", "channels": 8, "kernel": 3, "padding": 1, "batchnorm": False},
            {"type": "avgpool", "kernel": 2},
            {"type": "linear", "features": 12, "weight_bits": 8},
            {"type": "linear", "features": 10},
        ],
    },
    "maxpool_l8": {
        "name": "maxpool-l8", "input": {"channels": 3, "height": 10, "width": 12, "bits": 8},
        "classes": 5, "weight_bits": 4, "levels": 8,
        "layers": [
            {"type": "conv", "channels": 8, "kernel": 3, "padding": 1},
            {"type": "maxpool", "kernel": 2},
            {"type": "conv", "channels": 12, "kernel": 3, "padding": 0, "levels": 2},
            {"type": "avgpool", "kernel": 3, "stride": 1},
            {"type": "flatten"},
            {"type": "linear", "features": 5},
        ],
    },
}


def random_images(spec, count, seed):
    rng = np.random.default_rng(seed)
    shape = (count, spec.input.channels, spec.input.height, spec.input.width)
    return rng.integers(0, 2 ** spec.input.bits, size=shape).astype(np.float32)


def make_exported(folder: Path, spec_dict: dict, seed: int = 0) -> tuple[Path, Path]:
    """``make_run`` in ``folder/run`` and its QONNX export ``folder/model.onnx``: (run, model)."""
    from pascal_fpga.ir.export import export_run

    run = make_run(folder / "run", spec_dict, seed)
    export_run(run, folder / "model.onnx")
    return run, folder / "model.onnx"


def make_run(folder: Path, spec_dict: dict, seed: int = 0) -> Path:
    """A run directory of a calibrated, untrained network, with negative and zero BatchNorm
    gains (negated weight rows, constant channels) where it has BatchNorm."""
    spec = parse_spec(spec_dict, spec_dict["name"])
    torch.manual_seed(seed)
    net = QCFSNet(spec)
    pixels = torch.from_numpy(random_images(spec, 256, seed))
    calibrate(net, [pixels[:128], pixels[128:]])
    with torch.no_grad():
        bns = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm1d)
               or isinstance(m, torch.nn.BatchNorm2d)]
        if bns:
            bns[0].weight[0] = -abs(bns[0].weight[0])
            bns[0].weight[1] = 0.0
    folder.mkdir(parents=True)
    (folder / "spec.yaml").write_text(yaml.safe_dump(spec_dict))
    torch.save({"spec": spec.to_dict(), "model": net.state_dict(), "quantized": True},
               folder / "checkpoint.pt")
    (folder / "metrics.json").write_text(json.dumps({"dataset": None}))
    return folder


def final_ir(build: Path) -> Path:
    """The final IR model of a build folder."""
    return build / json.loads((build / "build.json").read_text())["ir"]


def smallest_divisor(n: int) -> int:
    """The smallest divisor above 1 that is not n itself, else 1."""
    return min([d for d in range(2, n) if n % d == 0] or [1])


def mid_folding(model_path: Path) -> dict:
    """Streams of neither 1 nor all channels per word where the layer allows it: the smallest
    divisor above 1, else 1 (a folding config for ``compile --folding``)."""
    from qonnx.core.modelwrapper import ModelWrapper

    from pascal_fpga.hw.apply import folding_by_class
    from pascal_fpga.hw.design import design_from_ir

    return folding_by_class(design_from_ir(ModelWrapper(str(model_path))), smallest_divisor)