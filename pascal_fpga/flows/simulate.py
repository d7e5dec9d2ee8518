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
import torch

from ..buildfolder import load_build
from ..hw.design import design_from_ir
from ..hw.load import load_qonnx_ir
from ..ir.adapter import input_adapter
from ..ir.integer import ir_to_integer_network
from ..perf.cyclesim import cycle_model
from ..perf.spikes import spike_bound_markdown, spike_bound_rows
from ..perf.estimates import design_resources
from ..perf.twin import qnn_twin, snn_at_folding
from ..snn.report import PJ_PER_AC, PJ_PER_MAC
from ..snn.simulate import simulate
from ..staging import staged_folder

ARCH_NAMES = {"snn": "PASCAL SNN", "qnn": "FINN-style QNN twin"}


def simulate_build(build_dir: str | Path, images: np.ndarray, labels: np.ndarray | None = None,
                   backend: str = "hls") -> dict[str, Any]:
    """Every figure of the report (see the module docstring) for raw images (N, C, H, W); the
    cycle model runs the HLS project's schedule or (``backend="rtl"``) the RTL's."""
    build_dir = Path(build_dir)
    build = load_build(build_dir)
    model = load_qonnx_ir(build_dir / build["ir"])
    design = design_from_ir(model)
    adapter = input_adapter(model)
    if adapter is not None:  # a foreign model's own inputs -> the codes the accelerator takes
        images = adapter(images)
    clock = float(build["hls"]["clock_mhz"])
    started = time.perf_counter()
    cm = cycle_model(design, images, clock, backend=backend)
    model_seconds = time.perf_counter() - started
    summary = cm.summary()
    resources = design_resources(design)
    sim = simulate(ir_to_integer_network(model), torch.from_numpy(images.astype(np.float32)))
    count = len(images)
    spikes = {}
    acs = macs = 0
    for layer, stats in zip([n for n in design.layers if n.has_neurons], sim.stats):
        spikes[layer.name] = stats.out_spikes / count
        acs += stats.synops
        macs += stats.macs
    energy_pj = (acs * PJ_PER_AC + macs * PJ_PER_MAC) / count
    config = build.get("config") or {}
    target = config.get("target_fps") or summary["fps_mean"]
    own = _figures(summary, resources["total"])
    if design.arch == "snn":
        snn, spiking = own, design
    else:   # a QNN twin's build: the SNN of the same IR at this folding, its FIFOs its own
        spiking = design_from_ir(model, arch="snn")
        snn = _figures(snn_at_folding(spiking, images, clock, backend).summary(),
                       design_resources(spiking)["total"])
        snn["note"] = "the SNN of the same network at this build's folding, its FIFOs sized " \
                      "for it"
    qnn = qnn_twin(spiking, target, clock)
    report = {
        "name": build["name"], "images": count, "clock_mhz": clock, "schedule": backend,
        "arch": design.arch,
        "cycle_model": {**summary, "seconds": model_seconds,
                        "images_per_second": count / model_seconds},
        "estimates": resources,
        "design": {"arch": design.arch, "images_per_s_mean": own["images_per_s_mean"],
                   "images_per_s_worst": own["images_per_s_worst"], "lut": own["lut"]},
        "snn": snn,
        "qnn": qnn,
        "qnn_target_fps": target,
        "energy": {"pj_per_image": energy_pj, "uj_per_image": energy_pj / 1e6,
                   "acs_per_image": acs / count, "first_layer_macs_per_image": macs / count,
                   "convention": f"Horowitz 45 nm: {PJ_PER_AC} pJ per accumulate (spike x "
                                 f"fan-out), {PJ_PER_MAC} pJ per MAC (the first layer)"},
        "spikes_per_image": spikes,
        # per weighted layer: the MVU's cycles against what its spikes need (perf/spikes.py)
        "spike_bound": spike_bound_rows(design, cm.lanes or {},
                                        {s["stage"]: s["busy_cycles_mean"]
                                         for s in summary["stages"]}),
    }
    if labels is not None:
        report["accuracy"] = float(np.mean(cm.classes == labels))
    return report


def _figures(summary: dict[str, Any], total: dict[str, int]) -> dict[str, Any]:
    """images/s (mean, p99, worst case) and LUTs of a design's cycle model and estimate."""
    lut = total["LUT"]
    return {"images_per_s_mean": summary["fps_mean"], "images_per_s_p99": summary["fps_p99"],
            "images_per_s_worst": summary["fps_worst_case"], "lut": lut,
            "images_per_s_per_klut_mean": summary["fps_mean"] / (lut / 1000),
            "images_per_s_per_klut_worst": summary["fps_worst_case"] / (lut / 1000),
            "resources": total}


def _markdown(r: dict[str, Any]) -> str:
    cm = r["cycle_model"]
    total = r["estimates"]["total"]
    snn, qnn = r["snn"], r["qnn"]
    lines = [f"# {r['name']}: performance and resources", "",
             f"Cycle model on {r['images']} images at {r['clock_mhz']:g} MHz, the "
             f"{r.get('schedule', 'hls').upper()} schedule (each image's own "
             f"timing: zero-skipping layers cost what their spikes cost).", "",
             f"- interval: mean {cm['interval_cycles']['mean']:.0f} cycles "
             f"(**{cm['fps_mean']:.0f} images/s**), p99 {cm['interval_cycles']['p99']:.0f}, "
             f"worst case of any input {cm['worst_case_interval_cycles']} cycles "
             f"({cm['fps_worst_case']:.0f} images/s)",
             f"- latency: mean {cm['latency_cycles']['mean']:.0f} cycles "
             f"({cm['latency_us_mean']:.1f} us), worst case {cm['worst_case_latency_cycles']}",
             f"- FIFO depths: {cm['fifo_depths']}",
             f"- this design ({ARCH_NAMES[r.get('arch', 'snn')]}): {total['LUT']} LUT, "
             f"{total['FF']} FF, {total['BRAM18']} BRAM18, {total['DSP']} DSP (estimated)",
             f"- SNN{'' if r.get('arch', 'snn') == 'snn' else ' at this folding'}: "
             f"{snn['images_per_s_mean']:.0f} images/s (mean), {snn['lut']} LUT; "
             f"{snn['images_per_s_per_klut_mean']:.1f} images/s per kLUT "
             f"(mean), {snn['images_per_s_per_klut_worst']:.1f} (worst case)",
             f"- FINN-style QNN twin at its own folding for {r['qnn_target_fps']:.0f} images/s: "
             f"{qnn['images_per_s']:.0f} images/s, {qnn['lut']} LUT, "
             f"{qnn['images_per_s_per_klut']:.1f} images/s per kLUT",
             f"- energy: {r['energy']['uj_per_image']:.3f} uJ per image "
             f"({r['energy']['convention']})", "",
             "| stage | busy cycles (mean) | busy (max) | stall (mean) |",
             "|---|---|---|---|"]
    for stage in cm["stages"]:
        lines.append(f"| {stage['stage']} | {stage['busy_cycles_mean']:.0f} | "
                     f"{stage['busy_cycles_max']} | {stage['stall_cycles_mean']:.0f} |")
    if r.get("spike_bound"):
        lines += ["", "Cycles against spikes, per weighted layer (means per image; the spike "
                  "bound: spike-carrying lane-frames over SIMD lanes, times NF; "
                  "`pascal_fpga/perf/spikes.py`):", ""] + spike_bound_markdown(r["spike_bound"])
    lines += ["", "| layer | op | PE | SIMD | mode | LUT | FF | BRAM18 | DSP |",
              "|---|---|---|---|---|---|---|---|---|"]
    for row in r["estimates"]["layers"]:
        lines.append(f"| {row['layer']} | {row['op']} | {row['pe']} | {row['simd']} | "
                     f"{row['mode']} | {row['LUT']} | {row['FF']} | {row['BRAM18']} | "
                     f"{row['DSP']} |")
    lines += ["", "Resource formulas: `pascal_fpga/hw/resources.py` (an analytical model, not a "
              "synthesis report)."]
    return "\n".join(lines) + "\n"


def _plots(r: dict[str, Any], folder: Path) -> None:
    # deferred: matplotlib is only needed here, and its file-only backend must be set first
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stages = r["cycle_model"]["stages"]
    fig, ax = plt.subplots(figsize=(8, 3.5))
    x = np.arange(len(stages))
    ax.bar(x, [s["busy_cycles_mean"] for s in stages], label="mean")
    ax.plot(x, [s["busy_cycles_max"] for s in stages], "k_", markersize=14, label="max")
    ax.set_xticks(x, [s["stage"] for s in stages], rotation=45, ha="right")
    ax.set_ylabel("busy cycles per image")
    ax.set_title(f"{r['name']}: cycles per stage")
    ax.legend()
    fig.tight_layout()
    fig.savefig(folder / "cycles_per_layer.png", dpi=100)
    plt.close(fig)
    rows = r["estimates"]["layers"]
    qnn_rows = {row["layer"]: row for row in r["qnn"]["layers"]}
    fig, ax = plt.subplots(figsize=(7, 3.5))
    x = np.arange(len(rows))
    ax.bar(x - 0.2, [row["LUT"] for row in rows], 0.4, label="PASCAL SNN")
    ax.bar(x + 0.2, [qnn_rows[row["layer"]]["LUT"] for row in rows], 0.4,
           label="FINN-style QNN (own folding)")
    ax.set_xticks(x, [row["layer"] for row in rows], rotation=30)
    ax.set_ylabel("estimated LUTs")
    ax.set_title(f"{r['name']}: LUTs per layer")
    ax.legend()
    fig.tight_layout()
    fig.savefig(folder / "resources_per_layer.png", dpi=100)
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
