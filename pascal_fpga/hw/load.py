"""Loading a build's spiking IR, checked: what every hardware view (cycle model, simulate, the
driver, verify) reads first."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from qonnx.core.modelwrapper import ModelWrapper

from ..buildfolder import read_onnx
from ..errors import PascalError
from ..ir import ops
from ..ir.transforms import output_scale
from .design import design_from_ir


def load_qonnx_ir(path: Path):
    """The spiking IR of a build, checked: readable, only our ops, layer names that are C
    identifiers, a positive finite output scale, attributes the HLS layers accept. A missing,
    truncated or damaged file is one PascalError naming it."""
    path = Path(path)
    if not path.is_file():
        raise PascalError(f"{path}: the build's IR is missing (compile again)")
    model = ModelWrapper(read_onnx(path, "not a readable ONNX model"))
    graph = model.graph
    known = set(ops.IR_OPS)
    if len(graph.input) != 1 or len(graph.output) != 1 or not graph.node or any(
            n.domain != ops.DOMAIN or n.op_type not in known for n in graph.node):
        raise PascalError(f"{path}: not a spiking IR of pascal-fpga (compile again)")
    try:
        scale = output_scale(model)
    except (PascalError, ValueError) as exc:
        raise PascalError(f"{path}: the IR has no valid classifier output scale (compile "
                          f"again)") from exc
    if not (np.isfinite(scale) and scale > 0):
        raise PascalError(f"{path}: the IR's classifier output scale {scale!r} is not positive "
                          f"and finite (compile again)")
    try:
        design_from_ir(model)  # attributes, weights and thresholds, as every view reads them
    except PascalError as exc:
        raise PascalError(f"{path}: {exc}") from exc
    except Exception as exc:  # an attribute or initializer missing or of the wrong shape
        raise PascalError(f"{path}: not a valid spiking IR ({type(exc).__name__}; compile "
                          f"again)") from exc
    return model
