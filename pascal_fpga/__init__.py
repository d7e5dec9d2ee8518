"""pascal-fpga: QCFS networks trained with Brevitas, converted to PASCAL spiking accelerators.

The Python API, one call per pipeline stage (the command line runs the same functions)::

    import pascal_fpga as pf

    spec = pf.models_dir() / "digits-cnn.yaml"        # the specs and zoo that ship with us
    pf.train_model(pf.TrainConfig(spec=str(spec), dataset="digits", epochs=3, out="runs/d"))
    pf.export_run("runs/d", "d.onnx")                 # QONNX, QCFS quantizers made exact
    pf.compile_model("d.onnx", "build/d", pf.CompileConfig(target_fps=20000))
    images, labels, _ = pf.verify_images(pf.load_build("build/d"), None, None, 100, None)
    report = pf.verify_build("build/d", images, labels)   # every view, bit for bit
    pf.Accelerator("build/d", backend="cyclesim").predict(images).classes

Importing the package is cheap: each name loads its stage (and torch or qonnx) when first used.
Errors a user can cause are :class:`PascalError`, with a one-line message. Progress goes to the
``logging`` logger ``pascal_fpga`` (info level).
"""

from __future__ import annotations

import importlib
from pathlib import Path

from .errors import PascalError

__version__ = "0.1.0"

# name -> (module, attribute), imported on first use (PEP 562)
_LAZY = {
    "models_dir": ("pascal_fpga.bundled", "models_dir"),
    "load_spec": ("pascal_fpga.spec", "load_spec"),
    "TrainConfig": ("pascal_fpga.train", "TrainConfig"),
    "train_model": ("pascal_fpga.train", "train"),
    "evaluate_run": ("pascal_fpga.train", "evaluate_run"),
    "adapt_run": ("pascal_fpga.snn.adapt", "adapt_run"),
    "snn_report": ("pascal_fpga.snn.report", "snn_report"),
    "export_run": ("pascal_fpga.ir.export", "export_run"),
    "CompileConfig": ("pascal_fpga.flows.compile", "CompileConfig"),
    "load_build": ("pascal_fpga.buildfolder", "load_build"),
    "verify_images": ("pascal_fpga.flows.verify", "verify_images"),
    "verify_build": ("pascal_fpga.flows.verify", "verify_build"),
    "simulate_build": ("pascal_fpga.flows.simulate", "simulate_build"),
    "synth_build": ("pascal_fpga.flows.synth", "synth_build"),
    "Accelerator": ("pascal_fpga.driver", "Accelerator"),
    "Prediction": ("pascal_fpga.driver", "Prediction"),
}

__all__ = ["PascalError", "compile_model", *_LAZY]


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'pascal_fpga' has no attribute {name!r}")
    module, attribute = _LAZY[name]
    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


def compile_model(model_path: str | Path, out: str | Path, config=None, *,
                  folding_path: str | Path | None = None, progress: bool = False,
                  record_model_as: str | Path | None = None, resume: bool = False,
                  steps=None, **fields) -> dict:
    """Compile a QONNX model into the build folder ``out``; returns what build.json records.

    ``config`` is a :class:`CompileConfig`; keyword arguments named after its fields
    (``target_fps=``, ``lut_budget=``, ``part=``, ``clock_mhz=``, ``folding=``, ...) override
    it. ``steps``, ``resume`` and ``record_model_as``: see
    :func:`pascal_fpga.flows.compile.compile_model`. For earlier callers, a folding file (a str
    or a path) in ``config``'s place, or ``folding_path=``, is ``folding=``.
    """
    import dataclasses

    from .flows import compile as flow

    if isinstance(config, (str, Path)):  # the earlier third positional parameter, folding_path
        config, folding_path = None, config
    if config is not None and not isinstance(config, flow.CompileConfig):
        raise TypeError(f"config must be a CompileConfig, got {type(config).__name__}")
    if folding_path is not None:
        fields.setdefault("folding", str(folding_path))
    config = dataclasses.replace(config or flow.CompileConfig(), **fields)
    return flow.compile_model(model_path, out, config=config, progress=progress,
                              record_model_as=record_model_as, resume=resume, steps=steps)
