"""`pascal-fpga snn`: the converted SNN against its ANN, the baseline curve, spikes and energy.

Views compared on the same test images:
- the Brevitas model (float32, eval) and its integer form (:mod:`.convert`, exact integers): their
  levels may differ only at ties (the exact value within TIE_TOLERANCE of a step from a rounding
  boundary, where float32 rounding decides), and their predictions only where the integer maximum
  is shared by two classes (the integer argmax takes the first; float rounding picks either);
- the integer-mode SNN against the integer ANN: must agree exactly, output and every level;
- the float-mode SNN (the paper's neuron in float32) against the integer ANN: differences counted;
- the baseline QCFS conversion (Bu et al.) for T in 1..64.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..errors import PascalError
from ..progress import progress_bar
from ..staging import staged_folder
from ..train.trainer import images_to_tensor, load_run, run_dataset
from .baseline import BASELINE_TIMESTEPS, simulate_baseline
from .convert import IntegerNetwork, convert
from .simulate import LayerStats, simulate

PJ_PER_MAC = 4.6   # 32-bit float multiply-accumulate, 45 nm (Horowitz)
PJ_PER_AC = 0.9    # 32-bit float accumulate, 45 nm (Horowitz)
TIE_TOLERANCE = 1e-4  # in steps (lambda / L)


def distance_to_boundary(z: Tensor, step: float, levels: int) -> Tensor:
    """|z - nearest rounding boundary (k - 1/2) * step, k = 1..L| in steps."""
    k = torch.clamp(torch.floor(z / step) + 0.5, 0.5, levels - 0.5)
    return (z / step - k).abs()


@torch.no_grad()
def brevitas_levels(net, pixels: Tensor) -> tuple[Tensor, list[Tensor]]:
    acts = net.qcfs_activations()
    outs: list[Tensor] = []
    hooks = [a.register_forward_hook(lambda _m, _i, o: outs.append(o.int().long().cpu()))
             for a in acts]
    device = next(net.parameters()).device
    try:
        logits = net(pixels.to(device)).cpu()
    finally:
        for hook in hooks:
            hook.remove()
    return logits, outs


def snn_report(run_dir: str | Path, dataset: str | None = None, data_dir: str | None = None,
               samples: int | None = None, batch_size: int = 250,
               timesteps: tuple[int, ...] = BASELINE_TIMESTEPS, float_mode: bool = True,
               progress: bool = False, device: str = "cpu") -> dict[str, Any]:
    """Compute the report of ``pascal-fpga snn`` (see the module docstring).

    The Brevitas network runs on ``device``; the conversion, the integer network and the SNNs
    run on the CPU in float64 whatever the device (exact integers: the same on every machine).
    """
    spec, net, metrics = load_run(run_dir)
    data = run_dataset(run_dir, spec, metrics, dataset, data_dir)
    if samples is not None and samples < 1:
        raise PascalError(f"--samples must be >= 1, got {samples}")
    if len(data.test_images) == 0:
        raise PascalError(f"{data.name}: no test images to simulate")
    count = len(data.test_images) if samples is None else min(samples, len(data.test_images))
    images = images_to_tensor(data.test_images[:count])
    labels = torch.from_numpy(data.test_labels[:count])
    inet = convert(net)
    net.to(device)
    hidden = inet.hidden()

    correct = {"ann": 0, "integer_ann": 0, "snn": 0, "float_snn": 0}
    baseline_correct = {t: 0 for t in timesteps}
    mismatched = 0
    brevitas = {"mismatched_samples": 0, "differing_levels": 0, "ties": 0, "prediction_differs": 0,
                "prediction_ties": 0}
    float_cmp = {"mismatched_samples": 0, "differing_levels": 0, "ties": 0}
    totals: list[LayerStats] | None = None
    bar = None
    if progress:
        bar = progress_bar(count, "snn", unit="img")
    for start in range(0, count, batch_size):
        x = images[start:start + batch_size]
        y = labels[start:start + batch_size]
        logits, bre_levels = brevitas_levels(net, x)
        accs: list[Tensor] = []
        int_out, int_levels = inet.run(x, accumulators=accs)
        result = simulate(inet, x, "integer")
        correct["ann"] += int((logits.argmax(1) == y).sum())
        correct["integer_ann"] += int((int_out.argmax(1) == y).sum())
        correct["snn"] += int((result.acc.argmax(1) == y).sum())
        # integer SNN vs integer ANN: exact, output and every level
        differs = (result.acc != int_out).any(1)
        for a, b in zip(result.levels, int_levels):
            differs |= (a != b).flatten(1).any(1)
        mismatched += int(differs.sum())
        # Brevitas (float32) vs integer ANN: ties only
        bre_differs = (logits.argmax(1) != int_out.argmax(1))
        brevitas["prediction_differs"] += int(bre_differs.sum())
        top2 = int_out.topk(2, dim=1).values  # a shared integer maximum: float rounding picks
        brevitas["prediction_ties"] += int((bre_differs & (top2[:, 0] == top2[:, 1])).sum())
        if hidden:
            bre_differs |= _compare_levels(hidden, accs, bre_levels, int_levels, brevitas)
        brevitas["mismatched_samples"] += int(bre_differs.sum())
        if float_mode:
            fres = simulate(inet, x, "float")
            correct["float_snn"] += int((fres.acc.argmax(1) == y).sum())
            f_differs = fres.acc.argmax(1) != int_out.argmax(1)
            if hidden:
                f_differs |= _compare_levels(hidden, accs, fres.levels, int_levels, float_cmp)
            float_cmp["mismatched_samples"] += int(f_differs.sum())
        for t, pred in simulate_baseline(inet, x, timesteps).items():
            baseline_correct[t] += int((pred == y).sum())
        if totals is None:
            totals = result.stats
        else:
            for total, st in zip(totals, result.stats):
                for key in ("out_spikes", "positive", "inhibitory", "synops", "macs", "dense_macs"):
                    setattr(total, key, getattr(total, key) + getattr(st, key))
        if bar is not None:
            bar.update(len(x))
    if bar is not None:
        bar.close()
    return _assemble(spec, data.name, count, inet, correct, mismatched, brevitas,
                     float_cmp if float_mode else None, baseline_correct, totals)


def _compare_levels(hidden, accs: list[Tensor], levels: list[Tensor], reference: list[Tensor],
                    counts: dict[str, int]) -> Tensor:
    """Add the differing levels (and how many are ties) to ``counts``; returns, per sample,
    whether any level differs."""
    differs = torch.zeros(len(accs[0]) if accs else 0, dtype=torch.bool)
    for layer, acc, a, b in zip(hidden, accs, levels, reference):
        diff = a != b
        differs |= diff.flatten(1).any(1)
        n_diff = int(diff.sum())
        if n_diff:
            counts["differing_levels"] += n_diff
            counts["ties"] += count_ties(layer, acc, diff)
    return differs


def count_ties(layer, acc: Tensor, diff: Tensor) -> int:
    """How many of the differing levels sit at a rounding boundary (float32 decides there)."""
    view = (1, -1, 1, 1) if acc.dim() == 4 else (1, -1)
    z = torch.from_numpy(layer.scale).view(view) * acc + torch.from_numpy(layer.offset).view(view)
    distance = distance_to_boundary(z, layer.step, layer.levels)
    return int((distance[diff] <= TIE_TOLERANCE).sum())


def _assemble(spec, dataset: str, count: int, inet: IntegerNetwork, correct: dict,
              mismatched: int, brevitas: dict, float_cmp: dict | None,
              baseline_correct: dict, totals: list[LayerStats]) -> dict[str, Any]:
    layers = []
    for st in totals:
        layers.append({
            "layer": st.index, "kind": st.kind, "t_in": st.t_in,
            "levels": st.levels if st.levels else None, "window": st.window,
            "spikes_per_image": st.out_spikes / count,
            "positive_per_image": st.positive / count,
            "inhibitory_per_image": st.inhibitory / count,
            "synops_per_image": st.synops / count,
            "macs_per_image": st.macs / count,
            "ann_macs_per_image": st.dense_macs / count,
        })
    snn_energy = sum(l["macs_per_image"] * PJ_PER_MAC + l["synops_per_image"] * PJ_PER_AC
                     for l in layers)
    ann_energy = sum(l["ann_macs_per_image"] * PJ_PER_MAC for l in layers)
    latency = sum(l["window"] for l in layers)
    report = {
        "name": spec.name, "dataset": dataset, "samples": count,
        "ann_accuracy": correct["ann"] / count,
        "integer_ann_accuracy": correct["integer_ann"] / count,
        "snn_accuracy": correct["snn"] / count,
        "mismatched_samples": mismatched,
        "brevitas_vs_integer": brevitas,
        "baseline": {str(t): c / count for t, c in sorted(baseline_correct.items())},
        "latency_timesteps": latency,
        "levels": [layer.levels for layer in inet.hidden()],
        "spikes_per_image": sum(l["spikes_per_image"] for l in layers),
        "synops_per_image": sum(l["synops_per_image"] for l in layers),
        "first_layer_macs_per_image": layers[0]["macs_per_image"],
        "energy": {"pj_per_mac": PJ_PER_MAC, "pj_per_ac": PJ_PER_AC,
                   "convention": "Horowitz 45 nm: 4.6 pJ per 32-bit float MAC, 0.9 pJ per AC",
                   "snn_uj_per_image": snn_energy / 1e6, "ann_uj_per_image": ann_energy / 1e6,
                   "ann_over_snn": ann_energy / snn_energy if snn_energy else None},
        "layers": layers,
    }
    if float_cmp is not None:
        report["float_snn"] = {"accuracy": correct["float_snn"] / count, **float_cmp}
    return report


def plot_report(report: dict[str, Any], folder: Path) -> list[Path]:
    """accuracy_vs_timesteps.png and spikes_per_layer.png in ``folder``."""
    import matplotlib  # deferred: heavy, and only the plots need it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    fig, ax = plt.subplots(figsize=(6, 4))
    ts = [int(t) for t in report["baseline"]]
    ax.plot(ts, [100 * v for v in report["baseline"].values()], "o-",
            label="QCFS conversion (Bu et al.), one T for all layers")
    ax.plot([report["latency_timesteps"]], [100 * report["snn_accuracy"]], "r*", markersize=14,
            label=f"PASCAL (integer SNN), L = {report['levels']}")
    ax.axhline(100 * report["ann_accuracy"], color="grey", linestyle="--", label="QCFS ANN")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("timesteps (PASCAL: sum of per-layer windows)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"{report['name']} on {report['dataset']} ({report['samples']} images)")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    paths.append(folder / "accuracy_vs_timesteps.png")
    fig.savefig(paths[-1], dpi=100)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4))
    hidden = [l for l in report["layers"] if l["levels"]]
    names = [f"{l['layer']}:{l['kind']} L={l['levels']}" for l in hidden]
    xs = np.arange(len(hidden))
    ax.bar(xs - 0.2, [l["spikes_per_image"] for l in hidden], 0.4, label="emitted spikes")
    ax.bar(xs + 0.2, [l["inhibitory_per_image"] for l in hidden], 0.4, label="inhibitory spikes")
    ax.set_xticks(xs, names, rotation=20, fontsize=8)
    ax.set_ylabel("spikes per image")
    ax.set_title("spikes per layer")
    ax.legend()
    fig.tight_layout()
    paths.append(folder / "spikes_per_layer.png")
    fig.savefig(paths[-1], dpi=100)
    plt.close(fig)
    return paths


def write_report(run_dir: Path, report: dict[str, Any]) -> Path:
    """RUN_DIR/snn/ with report.json and the two plots, replaced as a whole."""
    out = Path(run_dir) / "snn"
    with staged_folder(out, "snn-report") as staging:
        (staging / "report.json").write_text(json.dumps(report, indent=2) + "\n")
        plot_report(report, staging)
    return out
