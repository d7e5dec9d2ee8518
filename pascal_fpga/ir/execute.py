"""Executing a model with qonnx on a batch of any size: the IR's own outputs."""

from __future__ import annotations

from typing import Any

import numpy as np
from qonnx.core.onnx_exec import execute_onnx
from qonnx.transformation.change_batchsize import ChangeBatchSize
from qonnx.transformation.infer_shapes import InferShapes

BATCH = 250


class Batched:
    """Executes a model with qonnx on any batch size (one reshaped copy per size)."""

    def __init__(self, model):
        self.model = model
        self.copies: dict[int, Any] = {}

    def run(self, x: np.ndarray) -> dict[str, np.ndarray]:
        size = len(x)
        if size not in self.copies:
            self.copies[size] = self.model.transform(ChangeBatchSize(size)).transform(
                InferShapes())
        model = self.copies[size]
        return execute_onnx(model, {model.graph.input[0].name: x.astype(np.float32)},
                            return_full_exec_context=True)


def ir_outputs(model, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The IR's classifier accumulators (int64, N x classes) and classes (first argmax)."""
    ctx = Batched(model).run(images)
    acc = np.rint(ctx[model.graph.output[0].name]).astype(np.int64)
    return acc, acc.argmax(axis=1)


def run_model(model, images: np.ndarray) -> dict[str, np.ndarray]:
    """qonnx's execution of ``model`` on a batch (every tensor of the graph)."""
    return Batched(model).run(images)
