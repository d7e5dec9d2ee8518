"""`compile --target-fps F`: PE and SIMD per layer for a target throughput, least LUTs.

In a dataflow pipeline every stage works on its own image, so the throughput is set by the slowest
stage: each layer must finish an image within clock / F cycles. Layers are independent, so for each
one we take, among all (PE, SIMD) pairs that divide its dimensions, the pair with the fewest
estimated LUTs (:mod:`.estimates`) whose cycles per image (the cycle model's schedule of that
stage, :mod:`.cyclesim`) meet the budget; a layer that cannot meet it even fully parallel gets its
fastest folding, and the report says the target was missed. FINN's folding search makes the same
per-layer choice against its own cost model.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ..errors import PascalError
from .cyclesim import layer_program
from .estimates import layer_resources
from ..hw.hls import HLSLayer


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def _dims(layer: HLSLayer) -> tuple[int, int]:
    cfg = layer.cfg
    if layer.kind == "pool":
        return cfg["CH"], 1
    if layer.kind == "conv":
        return cfg["OUT_CH"], cfg["IN_CH"]
    return cfg["OUT_CH"], cfg["IN_PIX"] * cfg["IN_CH"]


def with_folding(layer: HLSLayer, pe: int, simd: int) -> HLSLayer:
    cfg = dict(layer.cfg, PE=pe)
    if "SIMD" in cfg:
        cfg["SIMD"] = simd
    return dataclasses.replace(layer, cfg=cfg)


def search_folding(layers: list[HLSLayer], target_fps: float, clock_mhz: float
                   ) -> tuple[dict[str, dict[str, int]], list[dict[str, Any]]]:
    """({layer: {pe, simd}}, one row per layer: budget, cycles, LUT, met)."""
    if target_fps <= 0:
        raise PascalError(f"--target-fps must be positive, got {target_fps}")
    budget = clock_mhz * 1e6 / target_fps
    folding, rows = {}, []
    for index, layer in enumerate(layers):
        width = layers[index - 1].out_word_bits if index else layer.in_word_bits
        pe_dim, simd_dim = _dims(layer)
        best = fastest = None
        for pe in _divisors(pe_dim):
            for simd in _divisors(simd_dim):
                candidate = with_folding(layer, pe, simd)
                cycles = layer_program(candidate).busy
                lut = layer_resources(candidate, width, 2)["LUT"]
                key = (pe, simd, cycles, lut)
                if fastest is None or (cycles, lut) < (fastest[2], fastest[3]):
                    fastest = key
                if cycles <= budget and (best is None or (lut, cycles) < (best[3], best[2])):
                    best = key
        chosen = best or fastest
        folding[layer.name] = {"pe": chosen[0], "simd": chosen[1]}
        rows.append({"layer": layer.name, "pe": chosen[0], "simd": chosen[1],
                     "cycles": chosen[2], "lut": chosen[3], "budget_cycles": int(budget),
                     "meets_target": best is not None})
    return folding, rows
