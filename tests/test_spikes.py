"""The per-layer spike bound of `simulate` (pascal_fpga/perf/spikes.py): counted independently
from the IR's levels, and consistent with the cycle model's own busy cycles."""

from __future__ import annotations

import json
import shutil

import numpy as np
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp

from pascal_fpga.cli import main as cli_main
from pascal_fpga.ir.execute import run_model
from pascal_fpga.ir.transforms import layer_nodes


def _window_spikes(levels: np.ndarray, kernel: int, stride: int, pad: int) -> np.ndarray:
    """Per image: the sum over every window of its inputs' levels (N, C, H, W) -> (N,)."""
    x = np.pad(levels, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    h = (x.shape[2] - kernel) // stride + 1
    w = (x.shape[3] - kernel) // stride + 1
    total = np.zeros(len(levels))
    for i in range(h):
        for j in range(w):
            total += x[:, :, i * stride:i * stride + kernel,
                       j * stride:j * stride + kernel].sum(axis=(1, 2, 3))
    return total


def test_spike_bound_counts_the_levels_of_each_window(digits_build, tmp_path, capsys):
    build_dir = tmp_path / "build"
    shutil.copytree(digits_build, build_dir)   # simulate writes its report into the build
    assert cli_main(["simulate", str(build_dir), "--images", "40", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    rows = {r["layer"]: r for r in report["spike_bound"]}
    stages = {s["stage"]: s["busy_cycles_mean"] for s in report["cycle_model"]["stages"]}
    build = json.loads((build_dir / "build.json").read_text())
    ir = ModelWrapper(str(build_dir / build["ir"]))
    from pascal_fpga.datasets import load_dataset

    images = load_dataset("digits", None).test_images[:40].astype(np.float32)
    ctx = run_model(ir, images)
    checked = 0
    for node in layer_nodes(ir):
        if node.name not in rows:
            continue
        row, inst = rows[node.name], getCustomOp(node)
        levels = ctx[node.input[0]].astype(np.float64)
        if node.op_type.startswith("Pixel"):
            levels = (levels != 0).astype(np.float64)   # a pixel is one frame, sent or not
        if levels.ndim == 2:   # a dense layer's flat input: one window of everything
            spikes = levels.sum(axis=1)
        elif "Dense" in node.op_type or "Classifier" in node.op_type:
            spikes = levels.reshape(len(levels), -1).sum(axis=1)
        else:
            spikes = _window_spikes(levels, inst.get_nodeattr("kernel"),
                                    inst.get_nodeattr("stride"), inst.get_nodeattr("pad"))
        nf = inst.get_nodeattr("out_shape")[0] // inst.get_nodeattr("pe")
        bound = nf * spikes.mean() / inst.get_nodeattr("simd")
        assert abs(row["spike_bound_cycles"] - bound) < 1e-6 * max(bound, 1), node.name
        # the cycle model's busy cycles are the schedule's: zero-skipping or dense
        assert row["mvu_busy_cycles"] == stages[f"{node.name}_mvu"]
        expected = row["zero_skip_cycles"] if row["schedule"] == "zero_skip" \
            else row["dense_cycles"]
        assert abs(row["mvu_busy_cycles"] - expected) < 1e-6 * expected, node.name
        # no schedule beats the bound; a lane carries at most one spike a cycle
        assert row["spike_bound_cycles"] <= row["data_cycles"] + 1e-9
        assert 0 < row["lane_use"] <= 1
        checked += 1
    assert checked == len(rows) >= 3
