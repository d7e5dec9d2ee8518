"""`pascal-fpga simulate`: the cycle model, resource and energy estimates -> BUILD_DIR/report/.

report.json holds every figure; summary.md a readable summary; cycles_per_layer.png,
resources_per_layer.png and spikes_per_layer.png the pictures.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..snn.report import PJ_PER_AC, PJ_PER_MAC
from ..staging import staged_folder
from ..buildfolder import load_build
from .cyclesim import cycle_model, design_depths
from .estimates import design_estimates
from ..hw.hls import hls_layers
from ..verify.checks import ir_to_integer_network, load_qonnx_ir



def simulate_build(build_dir: str | Path, images: np.ndarray, labels: np.ndarray | None = None
                   ) -> dict[str, Any]:
    """Every figure of the report (see the module docstring) for raw images (N, C, H, W)."""
    import torch

    from ..snn.simulate import simulate

    build_dir = Path(build_dir)
    build = load_build(build_dir)
    model = load_qonnx_ir(build_dir / build["ir"])
    layers = hls_layers(model)
    clock = float(build["hls"]["clock_mhz"])
    started = time.perf_counter()
    cm = cycle_model(layers, images, clock)
    model_seconds = time.perf_counter() - started
    summary = cm.summary()
    depths = design_depths(layers)
    estimates = design_estimates(layers, cm.stages, depths, layers[0].in_word_bits)
    sim = simulate(ir_to_integer_network(model), torch.from_numpy(images.astype(np.float32)))
    count = len(images)
    spikes = {}
    acs = macs = 0
    for layer, stats in zip([n for n in layers if n.kind != "pool"], sim.stats):
        spikes[layer.name] = stats.out_spikes / count
        acs += stats.synops
        macs += stats.macs
    energy_pj = (acs * PJ_PER_AC + macs * PJ_PER_MAC) / count
    slowest_qnn = max(row["qnn_cycles"] for row in estimates["layers"])
    slowest_snn = max(row["cycles"] for row in estimates["layers"])
    report = {
        "name": build["name"], "images": count, "clock_mhz": clock,
        "cycle_model": {**summary, "seconds": model_seconds,
                        "images_per_second": count / model_seconds},
        "estimates": estimates,
        "qnn": {"cycles_per_image": slowest_qnn, "fps": clock * 1e6 / slowest_qnn,
                "note": "FINN-style QNN, same network and folding: multi-bit activations in one "
                        "pass; its interval is its slowest stage"},
        "snn_slowest_stage_cycles": slowest_snn,
        "energy": {"pj_per_image": energy_pj, "uj_per_image": energy_pj / 1e6,
                   "acs_per_image": acs / count, "first_layer_macs_per_image": macs / count,
                   "convention": f"Horowitz 45 nm: {PJ_PER_AC} pJ per accumulate (spike x "
                                 f"fan-out), {PJ_PER_MAC} pJ per MAC (the first layer)"},
        "spikes_per_image": spikes,
    }
    if labels is not None:
        report["accuracy"] = float(np.mean(cm.classes == labels))
    return report


def _markdown(r: dict[str, Any]) -> str:
    cm = r["cycle_model"]
    total = r["estimates"]["total"]
    lines = [f"# {r['name']}: performance and resources", "",
             f"Cycle model on {r['images']} images at {r['clock_mhz']:g} MHz "
             f"(timing simulated for {cm['timed_images']} images; it does not depend on the data).",
             "",
             f"- latency of the first image: {cm['latency_cycles']} cycles "
             f"({cm['latency_us']:.1f} us)",
             f"- steady state: {cm['cycles_per_image']} cycles per image, "
             f"**{cm['fps']:.0f} images/s**",
             f"- FIFO depths: {cm['fifo_depths']}",
             f"- FINN-style QNN of the same network and folding: "
             f"{r['qnn']['cycles_per_image']} cycles per image ({r['qnn']['fps']:.0f} images/s)",
             f"- energy: {r['energy']['uj_per_image']:.3f} uJ per image "
             f"({r['energy']['convention']})",
             f"- total SNN: {total['snn']['LUT']} LUT, {total['snn']['FF']} FF, "
             f"{total['snn']['BRAM18']} BRAM18, {total['snn']['DSP']} DSP; QNN: "
             f"{total['qnn']['LUT']} LUT, {total['qnn']['FF']} FF, {total['qnn']['BRAM18']} "
             f"BRAM18, {total['qnn']['DSP']} DSP", "",
             "| layer | op | PE | SIMD | cycles | QNN cycles | LUT | FF | BRAM18 | DSP | QNN LUT |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in r["estimates"]["layers"]:
        s = row["snn"]
        lines.append(f"| {row['layer']} | {row['op']} | {row['pe']} | {row['simd']} | "
                     f"{row['cycles']} | {row['qnn_cycles']} | {s['LUT']} | {s['FF']} | "
                     f"{s['BRAM18']} | {s['DSP']} | {row['qnn']['LUT']} |")
    lines += ["", "Resource formulas: `pascal_fpga/compiler/estimates.py` (an analytical model, "
              "not a synthesis report)."]
    return "\n".join(lines) + "\n"


def _plots(r: dict[str, Any], folder: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = r["estimates"]["layers"]
    names = [row["layer"] for row in rows]
    x = np.arange(len(names))
    for key, title, fname in (("cycles", "cycles per image", "cycles_per_layer.png"),
                              ("LUT", "estimated LUTs", "resources_per_layer.png")):
        fig, ax = plt.subplots(figsize=(7, 3.5))
        if key == "cycles":
            snn, qnn = [row["cycles"] for row in rows], [row["qnn_cycles"] for row in rows]
        else:
            snn, qnn = [row["snn"]["LUT"] for row in rows], [row["qnn"]["LUT"] for row in rows]
        ax.bar(x - 0.2, snn, 0.4, label="PASCAL SNN")
        ax.bar(x + 0.2, qnn, 0.4, label="FINN-style QNN")
        ax.set_xticks(x, names, rotation=30)
        ax.set_ylabel(title)
        ax.set_title(f"{r['name']}: {title} per layer")
        ax.legend()
        fig.tight_layout()
        fig.savefig(folder / fname, dpi=100)
        plt.close(fig)
    fig, ax = plt.subplots(figsize=(7, 3.5))
    spikes = r["spikes_per_image"]
    ax.bar(list(spikes), list(spikes.values()))
    ax.set_ylabel("output spikes per image")
    ax.set_title(f"{r['name']}: spikes per layer")
    fig.tight_layout()
    fig.savefig(folder / "spikes_per_layer.png", dpi=100)
    plt.close(fig)


def write_report(build_dir: str | Path, report: dict[str, Any]) -> Path:
    """BUILD_DIR/report/, replaced whole."""
    folder = Path(build_dir) / "report"
    with staged_folder(folder, "hw-report") as staging:
        (staging / "report.json").write_text(json.dumps(report, indent=2) + "\n")
        (staging / "summary.md").write_text(_markdown(report))
        _plots(report, staging)
    return folder
