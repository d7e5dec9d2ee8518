"""`pascal-fpga compare MODEL --out DIR`: the SNN against its FINN-style QNN twin, synthesized
against synthesized.

Both architectures of one model are compiled for the same goal (``--target-fps``: each gets its
own folding search for it; without it, both take the default folding), into DIR/snn and DIR/qnn.
Each top is synthesized with Yosys for the xc7 twice: multipliers on DSP48s as Yosys maps them,
and every multiplier in LUTs (``-nodsp``, the all-LUT comparison). With ``pnr`` each top is also
synthesized for the ECP5 without DSPs (Yosys maps every product of two operands of 2 bits or more
to a MULT18X18D there, and a QNN's lanes outnumber the LFE5U-85F's 156), placed and routed by
nextpnr-ecp5 on an LFE5U-85F: its routed Fmax. The
cycle model (the RTL's schedule, each build's own FIFOs) runs both on the same images: the mean
and the worst case of any input (the QNN's interval does not depend on the data).

The table (DIR/compare.md, every figure in DIR/compare.json) puts side by side: LUT, FF, BRAM18,
DSP (xc7, with DSPs), LUT without DSPs, ECP5 LUT4 and Fmax, images/s (mean, worst) at the common
clock and at each design's own Fmax, images/s per kLUT (xc7 LUT6 with DSPs and without), and the
SNN/QNN ratio of each. Only synthesized counts enter the table; the estimates stay in the
builds' reports.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable

from ..buildfolder import load_build
from ..errors import PascalError
from ..progress import log
from ..staging import staged_folder
from .compile import CompileConfig, compile_model
from .simulate import simulate_build
from .synth import synth_build
from .verify import verify_images

ARCHS = ("snn", "qnn")


def _say(progress: bool) -> Callable[[str], None]:
    def say(text: str) -> None:
        if progress:
            log.info(f"compare: {text}")
    return say


def _images(build_dir: Path, count: int):
    """The build's data set's first ``count`` test images, else ``count`` random pixels."""
    build = load_build(build_dir)
    try:
        images, labels, what = verify_images(build, None, None, count, None)
    except PascalError:
        images, labels, what = verify_images(build, None, None, None, count)
    return images, labels, what


def compare_model(model_path: str | Path, out: str | Path, target_fps: float | None = None,
                  clock_mhz: float = 100.0, pnr: bool = False, images: int = 256,
                  calibration_images: int = 64, progress: bool = False, seed: int = 1,
                  dsp_only: bool = False) -> dict[str, Any]:
    """Compile, synthesize and simulate both architectures of ``model_path`` into ``out`` (a
    fresh folder, built aside and moved into place); the report (see the module docstring).
    ``dsp_only``: skip the all-LUT synthesis (for large networks; not with ``pnr``)."""
    if dsp_only and pnr:
        raise PascalError("the place and route runs on the all-LUT synthesis: --dsp-only "
                          "cannot go with --pnr")
    say = _say(progress)
    out = Path(out)
    report: dict[str, Any] = {"model": str(model_path), "target_fps": target_fps,
                              "clock_mhz": clock_mhz, "pnr": pnr, "archs": {}}
    with staged_folder(out, "compare") as staging:
        sample = None
        for arch in ARCHS:
            began = time.perf_counter()
            build_dir = staging / arch
            say(f"compile --arch {arch}")
            config = CompileConfig(target_fps=target_fps, clock_mhz=clock_mhz, arch=arch,
                                   calibration_images=calibration_images,
                                   save_intermediate=False)
            compile_model(model_path, build_dir, config=config)
            if sample is None:
                sample = _images(build_dir, images)
            say(f"synth {arch}: xc7")
            synth = synth_build(build_dir, "xc7", layers=False)
            nodsp = None
            if not dsp_only:
                say(f"synth {arch}: xc7 without DSPs" + (", ECP5 place and route" if pnr
                                                         else ""))
                nodsp = synth_build(build_dir, "xc7", pnr=pnr, layers=False, seed=seed,
                                    force=True, dsp=False)
            say(f"simulate {arch}: cycle model on {sample[2]}")
            sim = simulate_build(build_dir, sample[0], sample[1], backend="rtl")
            report["archs"][arch] = _row(arch, build_dir, synth, nodsp, sim, clock_mhz,
                                         time.perf_counter() - began)
        report["images"] = sample[2]
        report["ratio"] = _ratios(report["archs"]["snn"], report["archs"]["qnn"])
        (staging / "compare.json").write_text(json.dumps(report, indent=2) + "\n")
        (staging / "compare.md").write_text(markdown(report))
    for arch in ARCHS:   # the paths in the report are where the builds now are
        report["archs"][arch]["build"] = str(out / arch)
    (out / "compare.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def _row(arch: str, build_dir: Path, synth: dict[str, Any], nodsp: dict[str, Any] | None,
         sim: dict[str, Any], clock: float, seconds: float) -> dict[str, Any]:
    cm = sim["cycle_model"]
    mean, worst = cm["interval_cycles"]["mean"], cm["worst_case_interval_cycles"]
    total = synth["total"]
    row = {"build": str(build_dir), "arch": arch,
           "xc7": total, "xc7_nodsp": None if nodsp is None else nodsp["total"],
           "estimate": synth["estimate_total"],
           "cycles_per_image_mean": mean, "cycles_per_image_worst": worst,
           "images_per_s_mean": clock * 1e6 / mean, "images_per_s_worst": clock * 1e6 / worst,
           "accuracy": sim.get("accuracy"), "seconds": round(seconds, 1)}
    row["images_per_s_per_klut_mean"] = row["images_per_s_mean"] / (total["LUT"] / 1000)
    row["images_per_s_per_klut_worst"] = row["images_per_s_worst"] / (total["LUT"] / 1000)
    if nodsp is None:
        return row
    row["images_per_s_per_klut_nodsp_mean"] = \
        row["images_per_s_mean"] / (nodsp["total"]["LUT"] / 1000)
    if "fmax_mhz" in nodsp:   # routed without DSPs: a QNN's products overflow the ECP5's 156
        fmax = nodsp["fmax_mhz"]
        row.update({"fmax_mhz": fmax, "ecp5": nodsp.get("ecp5_total"),
                    "images_per_s_at_fmax_mean": fmax * 1e6 / mean,
                    "images_per_s_at_fmax_worst": fmax * 1e6 / worst})
    return row


RATIO_KEYS = ("images_per_s_mean", "images_per_s_worst", "images_per_s_per_klut_mean",
              "images_per_s_per_klut_worst", "images_per_s_per_klut_nodsp_mean",
              "images_per_s_at_fmax_mean", "images_per_s_at_fmax_worst", "fmax_mhz")


def _ratios(snn: dict[str, Any], qnn: dict[str, Any]) -> dict[str, float]:
    """SNN / QNN of every figure both have (above 1: the SNN is ahead, for LUTs behind)."""
    ratios = {key: snn[key] / qnn[key] for key in RATIO_KEYS
              if snn.get(key) and qnn.get(key)}
    for key in ("LUT", "FF", "BRAM18", "DSP"):
        if qnn["xc7"][key]:
            ratios[key] = snn["xc7"][key] / qnn["xc7"][key]
    if qnn["xc7_nodsp"] and qnn["xc7_nodsp"]["LUT"]:
        ratios["LUT_nodsp"] = snn["xc7_nodsp"]["LUT"] / qnn["xc7_nodsp"]["LUT"]
    if (snn.get("ecp5") or {}).get("LUT") and (qnn.get("ecp5") or {}).get("LUT"):
        ratios["LUT_ecp5"] = snn["ecp5"]["LUT"] / qnn["ecp5"]["LUT"]
    return ratios


def _cell(value: Any, digits: int = 0) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}"


def markdown(r: dict[str, Any]) -> str:
    """The comparison table."""
    snn, qnn, ratio = r["archs"]["snn"], r["archs"]["qnn"], r["ratio"]
    goal = f"{r['target_fps']:g} images/s" if r.get("target_fps") else "the default folding"
    rows = [("LUT (xc7 LUT6, Yosys, DSPs on)", lambda a: a["xc7"]["LUT"], "LUT", 0),
            ("FF", lambda a: a["xc7"]["FF"], "FF", 0),
            ("BRAM18", lambda a: a["xc7"]["BRAM18"], "BRAM18", 0),
            ("DSP48", lambda a: a["xc7"]["DSP"], "DSP", 0),
            ("LUT without DSPs (-nodsp)", lambda a: (a["xc7_nodsp"] or {}).get("LUT"),
             "LUT_nodsp", 0)]
    if r.get("pnr"):
        rows += [("ECP5-85F LUT4 (no DSPs)", lambda a: (a.get("ecp5") or {}).get("LUT"),
                  "LUT_ecp5", 0),
                 ("ECP5-85F routed Fmax, no DSPs (MHz)", lambda a: a.get("fmax_mhz"),
                  "fmax_mhz", 1)]
    clock = r["clock_mhz"]
    rows += [(f"images/s at {clock:g} MHz, mean", lambda a: a["images_per_s_mean"],
              "images_per_s_mean", 0),
             (f"images/s at {clock:g} MHz, worst case", lambda a: a["images_per_s_worst"],
              "images_per_s_worst", 0)]
    if r.get("pnr"):
        rows += [("images/s at own Fmax, mean", lambda a: a.get("images_per_s_at_fmax_mean"),
                  "images_per_s_at_fmax_mean", 0),
                 ("images/s at own Fmax, worst case",
                  lambda a: a.get("images_per_s_at_fmax_worst"), "images_per_s_at_fmax_worst", 0)]
    rows += [("images/s per kLUT (mean)", lambda a: a["images_per_s_per_klut_mean"],
              "images_per_s_per_klut_mean", 1),
             ("images/s per kLUT (worst case)", lambda a: a["images_per_s_per_klut_worst"],
              "images_per_s_per_klut_worst", 1),
             ("images/s per kLUT without DSPs (mean)",
              lambda a: a.get("images_per_s_per_klut_nodsp_mean"),
              "images_per_s_per_klut_nodsp_mean", 1)]
    lines = [f"# {Path(r['model']).name}: PASCAL SNN against its FINN-style QNN twin", "",
             f"Both compiled for {goal} at {clock:g} MHz (each its own folding), synthesized "
             f"with Yosys (whole top); cycle model on {r['images']} (the RTL's schedule).", "",
             "| metric | SNN | QNN | SNN/QNN |", "|---|---|---|---|"]
    for title, get, key, digits in rows:
        a, b = get(snn), get(qnn)
        ratio_text = f"{ratio[key]:.2f}x" if key in ratio else "-"
        lines.append(f"| {title} | {_cell(a, digits)} | {_cell(b, digits)} | {ratio_text} |")
    if snn.get("accuracy") is not None:
        lines += ["", f"Accuracy on those images (cycle model): SNN {snn['accuracy']:.2%}, QNN "
                      f"{qnn['accuracy']:.2%} (the same integer network: equal by construction)."]
    return "\n".join(lines) + "\n"
