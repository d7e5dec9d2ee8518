"""The input adapter of a build whose model does not take integer pixels (docs/foreign-models.md).

The accelerator takes the integer codes of the model's input quantizer. Our own models quantize
integer pixels at scale 1, so the codes are the pixels and a build has no adapter. A foreign
model's input quantizer (FINN's signed 8-bit Q1.7 after ``2x - 1``, a Brevitas ``QuantIdentity``
of scale 1/255, ...) is recorded by :class:`pascal_fpga.ir.transforms.PixelsToIntegers` in the
IR's metadata: the constant per-tensor ops before it and its parameters. :class:`InputAdapter`
runs them on the host in float32, each op as one IEEE float32 operation in the model's order and
the quantizer as qonnx's own ``int_quant`` / ``binary_quant``, so the codes are exactly those of
qonnx's execution of the model: ``code = (level - low) / mult`` for the quantizer's integer
level (``low`` its lowest level; ``mult`` 2 for a bipolar quantizer, else 1).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import PascalError

INPUT_ADAPTER = "pascal_fpga.input_adapter"
OPS = ("Mul", "Add", "Sub", "Div")


@dataclass
class InputAdapter:
    ops: list            # [op type, constant, constant first] in the model's order
    quant: str           # Quant | BipolarQuant
    scale: float
    bits: int
    signed: bool
    narrow: bool
    rounding_mode: str
    low: int
    mult: int
    codes: int
    pad: int = 0               # the host pads the codes (a padded first conv on a signed input)
    pad_code: int = 0          # ... with the code of the real value 0
    model_shape: list | None = None   # (C, H, W) of the model's own input, where padded

    @classmethod
    def from_json(cls, text: str) -> "InputAdapter":
        try:
            data = json.loads(text)
            adapter = cls(ops=[[str(op), float(c), bool(first)] for op, c, first in data["ops"]],
                          quant=str(data["quant"]), scale=float(data["scale"]),
                          bits=int(data["bits"]), signed=bool(data["signed"]),
                          narrow=bool(data["narrow"]), rounding_mode=str(data["rounding_mode"]),
                          low=int(data["low"]), mult=int(data["mult"]), codes=int(data["codes"]),
                          pad=int(data.get("pad", 0)), pad_code=int(data.get("pad_code", 0)),
                          model_shape=[int(v) for v in data["model_shape"]]
                          if data.get("model_shape") is not None else None)
            from qonnx.custom_op.general.intquant import resolve_rounding_mode
            resolve_rounding_mode(adapter.rounding_mode)
        except (ValueError, TypeError, KeyError, AttributeError):
            raise PascalError(f"the IR's metadata {INPUT_ADAPTER} is damaged (compile "
                              f"again)") from None
        if any(op not in OPS or not np.isfinite(c) for op, c, _ in adapter.ops) \
                or adapter.quant not in ("Quant", "BipolarQuant") \
                or not (np.isfinite(adapter.scale) and adapter.scale > 0) \
                or not 1 <= adapter.bits <= 16 or adapter.mult not in (1, 2) \
                or not 1 <= adapter.codes < 2 ** adapter.bits \
                or not 0 <= adapter.pad <= 16 or not 0 <= adapter.pad_code <= adapter.codes \
                or (adapter.pad and (adapter.model_shape is None
                                     or len(adapter.model_shape) != 3)):
            raise PascalError(f"the IR's metadata {INPUT_ADAPTER} is damaged (compile again)")
        return adapter

    def to_json(self) -> dict[str, Any]:
        return {"ops": self.ops, "quant": self.quant, "scale": self.scale, "bits": self.bits,
                "signed": self.signed, "narrow": self.narrow,
                "rounding_mode": self.rounding_mode, "low": self.low, "mult": self.mult,
                "codes": self.codes,
                **({"pad": self.pad, "pad_code": self.pad_code, "model_shape": self.model_shape}
                   if self.pad else {})}

    def describe(self) -> str:
        """One line: what the host computes."""
        steps = []
        for op, c, first in self.ops:
            sym = {"Mul": "*", "Add": "+", "Sub": "-", "Div": "/"}[op]
            steps.append(f"{c:g} {sym} x" if first else f"x {sym} {c:g}")
        pre = "; ".join(steps)
        kind = "bipolar" if self.mult == 2 else (
            f"{'signed' if self.signed else 'unsigned'} {self.bits}-bit"
            f"{' narrow' if self.narrow else ''}, {self.rounding_mode}")
        return (f"{pre + ', then ' if pre else ''}quantize ({kind}) at scale {self.scale:.6g}; "
                f"code = (level - {self.low}) / {self.mult}, 0..{self.codes}"
                + (f"; padded by {self.pad} with code {self.pad_code}" if self.pad else ""))

    def levels(self, x: np.ndarray) -> np.ndarray:
        """The quantizer's integer levels of the model's own input ``x`` (float32), exactly as
        qonnx executes the model's ops and quantizer."""
        # deferred: qonnx is heavy (the driver imports this module)
        from qonnx.custom_op.general.bipolar_quant import binary_quant
        from qonnx.custom_op.general.intquant import int_quant

        x = np.asarray(x, dtype=np.float32)
        if not np.all(np.isfinite(x)):
            raise PascalError("the input holds NaN or infinite values")
        for op, c, first in self.ops:
            c = np.float32(c)
            if op == "Mul":
                x = x * c
            elif op == "Add":
                x = x + c
            elif op == "Sub":
                x = c - x if first else x - c
            else:
                x = c / x if first else x / c
            x = x.astype(np.float32)
        scale = np.asarray(self.scale, dtype=np.float32)
        if self.quant == "BipolarQuant":
            out = binary_quant(x, scale)
        else:
            out = int_quant(x, scale, np.asarray(0.0, dtype=np.float32),
                            np.asarray(float(self.bits), dtype=np.float32), int(self.signed),
                            int(self.narrow), self.rounding_mode)
        return np.rint(np.asarray(out, dtype=np.float64) / float(scale))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """The codes (float32, 0..codes) that the accelerator takes for the model's input x."""
        codes = (self.levels(x) - self.low) / self.mult
        if self.pad:
            p = self.pad
            codes = np.pad(codes, ((0, 0), (0, 0), (p, p), (p, p)), constant_values=self.pad_code)
        return codes.astype(np.float32)

    def _inverse(self, value):
        """The model input that the preprocessing ops map to ``value`` (float64)."""
        for op, c, first in reversed(self.ops):
            if op == "Mul":
                value = value / c
            elif op == "Add":
                value = value - c
            elif op == "Sub":
                value = c - value if first else value + c
            else:
                value = c / value if first else value * c
        return value

    def takes_unit_range(self) -> bool:
        """Whether the model's input is a [0, 1] image (its quantizer's levels, back through
        the preprocessing, span at most 1.5): data-set pixels are then given as pixels / 255."""
        ends = self._inverse(np.array([self.low, self.low + self.mult * self.codes],
                                      dtype=np.float64) * self.scale)
        return bool(np.all(np.isfinite(ends)) and np.max(np.abs(ends)) <= 1.5)

    def random_inputs(self, rng: np.random.Generator, shape: tuple) -> np.ndarray:
        """Model inputs whose codes spread over the whole range: each code's level (plus up to
        half a step either way) mapped back through the affine ops (float32; a draw lands on a
        neighbouring code now and then, which is fine for an exactness check)."""
        level = self.low + self.mult * rng.integers(0, self.codes + 1, size=shape)
        value = (level + rng.uniform(-0.45, 0.45, size=shape)) * self.scale
        return self._inverse(value).astype(np.float32)


def input_adapter(model) -> InputAdapter | None:
    """The IR's input adapter, or None where the IR takes the pixels themselves."""
    value = model.get_metadata_prop(INPUT_ADAPTER)
    return None if value is None else InputAdapter.from_json(value)
