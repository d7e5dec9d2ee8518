"""Adaptive Layerwise (AL) level counts: a metric per QCFS layer, and a rule that maps it to L.

The metric (PASCAL, as the project's issue transcribes the reference computation), on one layer's
QCFS outputs over a calibration set:

    counts = a 5-bin histogram of the outputs (numpy's equal-width bins over their range)
    A = 1 - (#{bins : count >= mean count} - 1) / (bins - 1)
    b = (g^2 + 1) * (k + 3 n^2 / ((n - 2)(n - 3)))     g: skewness, k: excess kurtosis of the
                                                        counts (scipy, biased); n = 5 bins
    metric = A * b

A is 1 when one bin holds more than the mean count and the others less (the outputs pile up in
one place) and 0 when the counts are even; b grows with the skew of the counts. A high metric says the
layer's outputs are concentrated: it needs few levels; a low one says they are spread.

The rule (ours; the paper does not publish one): candidate level counts {1, 2, 4, 8} and a budget
on the mean L (default 3). Every layer starts at the smallest candidate; then, while the mean stays
within the budget, the layer with the largest priority 1 / (metric * L) moves up to its next
candidate. Layers with low metrics (spread outputs) get more levels first, and each doubling of a
layer's L halves its claim on the next one. Deterministic, no training in the loop.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..errors import PascalError
from ..model.network import QCFSNet
from ..spec import LEVELS_MAX
from ..staging import staged_folder
from ..train.trainer import (TrainConfig, check_augment, check_batch_fits, check_training_args,
                             evaluate, images_to_tensor, load_run, run_dataset, train)

BINS = 5
CANDIDATES = (1, 2, 4, 8)
DEFAULT_BUDGET = 3.0


def al_metric(outputs: np.ndarray, bins: int = BINS) -> dict[str, float]:
    """The AL metric of one layer's QCFS outputs (any shape; flattened)."""
    from scipy.stats import kurtosis, skew  # deferred: half a second to import, only for this


    values = np.asarray(outputs, dtype=np.float64).ravel()
    counts, _ = np.histogram(values, bins=bins)
    counts = counts.astype(np.float64)
    n = bins
    above = int((counts >= counts.mean()).sum())
    a = 1.0 - (above - 1) / (n - 1)
    if np.all(counts == counts[0]):
        g, k = 0.0, -3.0  # a constant sample: no skew; the flattest possible
    else:
        g = float(skew(counts))
        k = float(kurtosis(counts))
    b = (g ** 2 + 1.0) * (k + 3.0 * n ** 2 / ((n - 2) * (n - 3)))
    return {"A": a, "b": b, "skewness": g, "kurtosis": k, "metric": a * b,
            "counts": counts.astype(int).tolist()}


@torch.no_grad()
def layer_outputs(net: QCFSNet, pixels: Tensor, batch_size: int = 500) -> list[np.ndarray]:
    """The QCFS outputs (activation values q * lambda / L) of every QCFS layer on ``pixels``."""
    net.eval()
    acts = net.qcfs_activations()
    collected: list[list[np.ndarray]] = [[] for _ in acts]
    hooks = [act.register_forward_hook(
        lambda _m, _i, out, slot=slot: slot.append(
            out.value.detach().flatten().cpu().numpy().copy()))
        for act, slot in zip(acts, collected)]
    device = next(net.parameters()).device
    try:
        for start in range(0, len(pixels), batch_size):
            net(pixels[start:start + batch_size].to(device))
    finally:
        for hook in hooks:
            hook.remove()
    return [np.concatenate(parts) for parts in collected]


def choose_levels(metrics: list[float], budget: float = DEFAULT_BUDGET,
                  candidates: tuple[int, ...] = CANDIDATES) -> list[int]:
    """Level counts per layer by the budgeted greedy rule of the module docstring."""
    candidates = tuple(sorted(set(int(c) for c in candidates)))
    if not metrics:
        return []
    if budget < candidates[0]:
        raise ValueError(f"a mean-L budget of {budget} is below the smallest candidate "
                         f"{candidates[0]}")
    position = [0] * len(metrics)
    levels = [candidates[0]] * len(metrics)
    while True:
        best, best_priority = None, -1.0
        for i, metric in enumerate(metrics):
            if position[i] + 1 >= len(candidates):
                continue
            upgraded = levels[:]
            upgraded[i] = candidates[position[i] + 1]
            if sum(upgraded) / len(upgraded) > budget + 1e-12:
                continue
            priority = 1.0 / (max(metric, 1e-9) * levels[i])
            if priority > best_priority:
                best, best_priority = i, priority
        if best is None:
            return levels
        position[best] += 1
        levels[best] = candidates[position[best]]


def _per_spec_layer(spec, metrics: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One metric per spec layer: a residual block has two QCFS activations sharing one L, and
    takes the one with the lower metric (the one that needs more levels)."""
    grouped, position = [], 0
    for layer in spec.qcfs_layers():
        count = 2 if layer.type == "block" else 1
        grouped.append(min(metrics[position:position + count], key=lambda m: m["metric"]))
        position += count
    if position != len(metrics):
        raise PascalError(f"{spec.source}: {len(metrics)} QCFS activations for "
                          f"{len(spec.qcfs_layers())} QCFS layers")
    return grouped


def check_adapt_args(epochs: int, budget: float, candidates: tuple[int, ...],
                     calibration_images: int, lr: float) -> None:
    """The options of ``adapt``, checked before any work (one line naming the option)."""
    if calibration_images < 1:
        raise PascalError(f"--calibration-images must be >= 1 image, got {calibration_images}")
    if epochs < 0:
        raise PascalError(f"--epochs must be >= 0, got {epochs}")
    if not math.isfinite(lr) or lr <= 0:
        raise PascalError(f"--lr must be a finite number > 0, got {lr}")
    if not candidates or any(isinstance(c, bool) or not isinstance(c, int)
                             or not 1 <= c <= LEVELS_MAX for c in candidates):
        raise PascalError(f"--candidates must be level counts 1..{LEVELS_MAX}, got "
                          f"{','.join(map(str, candidates)) or 'none'}")
    if not math.isfinite(budget) or budget < 1:
        raise PascalError(f"--budget must be a finite mean L >= 1, got {budget}")
    if budget < min(candidates):
        raise PascalError(f"--budget {budget} is below the smallest candidate level count "
                          f"{min(candidates)}")


def adapt_run(run_dir: str | Path, out: str | Path, epochs: int = 3,
              budget: float = DEFAULT_BUDGET, candidates: tuple[int, ...] = CANDIDATES,
              calibration_images: int = 2000, lr: float = 5e-4, batch_size: int = 128,
              seed: int = 0, progress: bool = False, replace: bool = False,
              device: str = "cpu", amp: bool = False, augment: str = "auto",
              crop_pad: int = 4) -> dict[str, Any]:
    """Phase two of AL training: metrics on the trained run, L per layer, fine-tuning.

    Writes a new run directory ``out`` (the adapted spec, checkpoint, metrics) plus adapt.json;
    an earlier run in ``out`` is replaced only with ``replace`` (``--force``). ``device`` (cpu,
    cuda, cuda:N) runs the metrics, evaluations and fine-tuning there; ``amp``, ``augment`` and
    ``crop_pad`` are the fine-tuning's (see ``TrainConfig``).
    """
    check_adapt_args(epochs, budget, candidates, calibration_images, lr)
    check_training_args(epochs, batch_size, lr, seed=seed)
    check_augment(augment, crop_pad)
    run_dir, out = Path(run_dir), Path(out)
    spec, net, metrics = load_run(run_dir)
    net.to(device)
    if (out / "checkpoint.pt").exists() and not replace:
        raise PascalError(f"{out}: already holds a run; pass --force to replace it, or choose "
                          f"another --out")
    data = run_dataset(run_dir, spec, metrics)
    check_batch_fits(batch_size, data)
    calib = images_to_tensor(data.train_images[:calibration_images])
    test_x = images_to_tensor(data.test_images)
    test_y = torch.from_numpy(data.test_labels)

    layer_metrics = _per_spec_layer(spec, [al_metric(v) for v in layer_outputs(net, calib)])
    before = [layer.levels for layer in spec.qcfs_layers()]
    after = choose_levels([m["metric"] for m in layer_metrics], budget, candidates)
    adapted = spec.with_levels(after)
    accuracy_before, _ = evaluate(net, test_x, test_y)

    with staged_folder(out, "run", replace=replace) as staging:
        adapted.dump(staging / "spec.yaml")
        switched = QCFSNet(adapted)
        switched.load_state_dict(net.state_dict())
        switched.to(device)
        accuracy_switched, _ = evaluate(switched, test_x, test_y)
        result = train(TrainConfig(spec=str(staging / "spec.yaml"), dataset=data.name,
                                   data_dir=metrics.get("data_dir"), out=str(out),
                                   epochs=epochs, batch_size=batch_size, lr=lr, seed=seed,
                                   init_from=str(run_dir / "checkpoint.pt"), device=str(device),
                                   amp=amp, augment=augment, crop_pad=crop_pad),
                       progress=progress, write_to=staging)
        report = {
            "source_run": str(run_dir),
            "budget": budget, "candidates": list(candidates),
            "calibration_images": len(calib),
            "layers": [{"layer": layer.index, "type": layer.type, **m, "levels_before": lb,
                        "levels_after": la}
                       for layer, m, lb, la in zip(spec.qcfs_layers(), layer_metrics, before, after)],
            "mean_levels_before": sum(before) / len(before),
            "mean_levels_after": sum(after) / len(after),
            "accuracy_before": accuracy_before,
            "accuracy_switched": accuracy_switched,
            "accuracy_after": result["test_accuracy"],
            "fine_tune_epochs": epochs,
        }
        (staging / "adapt.json").write_text(json.dumps(report, indent=2) + "\n")
    return report
