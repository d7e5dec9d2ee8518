"""`pascal-fpga synth BUILD`: the RTL through Yosys (and nextpnr-ecp5), beside the estimates.

Each layer is synthesized out of context (its wrapper in BUILD/rtl/layers.sv: the layer's input
FIFO and its stages, the same modules and parameters as the top), then the whole top. The table
puts the synthesized LUT/FF/BRAM18/DSP of every layer beside the estimate the folding search used
(:func:`pascal_fpga.perf.estimates.design_resources`) and the relative error. With ``--pnr`` the top
is also synthesized for the ECP5 (whatever ``--part``), placed and routed by nextpnr-ecp5 on an
LFE5U-85F and packed into a bitstream: the routed Fmax and the images/s at that clock (the worst
case of any input: every group active, the RTL's schedule through the build's FIFOs; and the mean
on the first 256 test images of the build's data set when it is at hand).

Logs, netlists, the bitstream and ``synth.json`` go to BUILD/synth/ (built aside and moved into
place; an earlier BUILD/synth is replaced only if this command made it).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from ..buildfolder import load_build
from ..errors import PascalError
from ..hw.backends.rtl import MODULE_ORDER
from ..hw.design import design_from_ir
from ..hw.load import load_qonnx_ir
from ..hw.resources import KEYS
from ..hw.synth import PARTS, place_and_route, synthesize
from ..perf.estimates import design_resources
from ..perf.timing import simulate
from ..perf.values import run_values
from ..progress import heartbeat, log
from ..staging import check_output, staged_folder
from .verify import verify_images


# what a LUT is on each part: the estimates count xc7 LUT6; an ECP5 count is LUT4 (not comparable)
LUT_KIND = {"xc7": "LUT6 (xc7)", "ecp5-85k": "LUT4 (ECP5)"}


def _error(synth: dict[str, Any], estimate: dict[str, Any]) -> dict[str, float | None]:
    """Relative error of the estimate per resource: (estimate - synthesized) / synthesized."""
    return {key: (None if not synth[key] else round((estimate[key] - synth[key]) / synth[key], 3))
            for key in KEYS}


def worst_case_interval(design) -> int:
    """Cycles between images when every group of every layer carries a spike (the RTL's
    schedule through the design's FIFOs): the interval no input exceeds."""
    timing = simulate(design.programs({}, 3, mode="dense", backend="rtl"), design.fifo_depths(),
                      edges=design.edges())
    if timing.deadlock:
        raise PascalError(f"the cycle model reports a deadlock at {timing.deadlock}")
    return int(timing.finish[-1][-1] - timing.finish[-1][-2])


def mean_interval(design, build: dict[str, Any], count: int = 256) -> tuple[float | None, str]:
    """The RTL schedule's mean cycles between images on the first ``count`` test images of the
    build's data set (data-dependent zero-skipping), and what they were; (None, why) when the
    data set is not at hand."""
    try:
        images, _, what = verify_images(build, None, None, count, None)
    except PascalError as exc:
        return None, str(exc)
    if len(images) < 2:
        return None, "fewer than 2 test images"
    lanes = run_values(design, images)[3]
    programs = design.programs(design.activity_from_lanes(lanes), len(images), backend="rtl")
    timing = simulate(programs, design.fifo_depths(), edges=design.edges())
    if timing.deadlock:
        raise PascalError(f"the cycle model reports a deadlock at {timing.deadlock}")
    return float(timing.interval.mean()), what


def synth_build(build_dir: str | Path, part: str = "xc7", pnr: bool = False,
                layers: bool = True, progress: bool = False, seed: int = 1,
                force: bool = False, dsp: bool = True) -> dict[str, Any]:
    """Synthesize BUILD/rtl; the report (``layers``, ``total``, and with ``pnr`` ``fmax_mhz``,
    ``bitstream``, ``images_per_s_at_fmax``). ``dsp=False``: every multiplier in LUTs (Yosys
    ``-nodsp``, for an all-LUT comparison)."""
    if part not in PARTS:
        raise PascalError(f"--part {part!r}: one of {', '.join(PARTS)}")
    build_dir = Path(build_dir).resolve()
    build = load_build(build_dir)
    rtl = build_dir / "rtl"
    if not (rtl / "pascal_top.sv").is_file() or not (rtl / "layers.sv").is_file():
        raise PascalError(f"{build_dir}: no RTL (rtl/pascal_top.sv); compile again")
    design = design_from_ir(load_qonnx_ir(build_dir / build["ir"]))
    estimate = design_resources(design)
    modules = [rtl / "modules" / f"{m}.sv" for m in MODULE_ORDER]
    out = build_dir / "synth"
    check_output(out, "synth", force=force)
    report: dict[str, Any] = {"build_dir": str(build_dir), "name": build["name"], "part": part,
                              "arch": design.arch, "dsp": dsp, "lut_kind": LUT_KIND[part],
                              "layers": [], "seconds": {}}
    options = None if dsp else ["-nodsp"]

    def say(text: str) -> None:
        if progress:
            log.info(f"synth: {text.strip()}")

    with staged_folder(out, "synth") as staging:
        began = time.perf_counter()
        if layers:
            for j, (layer, row) in enumerate(zip(design.layers, estimate["layers"])):
                say(f"  synth {part} {layer.name}")
                got = synthesize(rtl, modules + [rtl / "layers.sv"], f"layer{j}", part,
                                 log=staging / f"layer{j}_{part}.log", extra_options=options)
                est = {key: row[key] for key in KEYS}
                report["layers"].append({
                    "layer": layer.name, "op": layer.op_type, "pe": row["pe"],
                    "simd": row["simd"], "synth": {k: got[k] for k in KEYS}, "estimate": est,
                    "error": _error(got, est), "seconds": round(got["seconds"], 2)})
        report["seconds"]["layers"] = round(time.perf_counter() - began, 2)
        say(f"  synth {part} pascal_top")
        netlist = staging / "pascal_top.json" if pnr and part == "ecp5-85k" else None
        top = synthesize(rtl, modules + [rtl / "pascal_top.sv"], "pascal_top", part,
                         netlist=netlist, log=staging / f"pascal_top_{part}.log",
                         extra_options=options)
        report["total"] = {k: top[k] for k in KEYS}
        report["estimate_total"] = {k: estimate["total"][k] for k in KEYS}
        report["error_total"] = _error(top, estimate["total"])
        report["seconds"]["top"] = round(top["seconds"], 2)
        if pnr:
            if netlist is None:
                say("  synth ecp5-85k pascal_top (for place and route)")
                netlist = staging / "pascal_top.json"
                ecp5 = synthesize(rtl, modules + [rtl / "pascal_top.sv"], "pascal_top",
                                  "ecp5-85k", netlist=netlist,
                                  log=staging / "pascal_top_ecp5-85k.log",
                                  extra_options=options)
                report["ecp5_total"] = {k: ecp5[k] for k in KEYS}
                report["seconds"]["top_ecp5"] = round(ecp5["seconds"], 2)
            say("  nextpnr-ecp5 + ecppack (minutes)")
            clock = float(build.get("hls", {}).get("clock_mhz") or 100.0)
            try:
                with heartbeat("synth: nextpnr-ecp5", enabled=progress):
                    routed = place_and_route(rtl, netlist, freq_mhz=clock,
                                             bitstream=staging / "pascal_top.bit", seed=seed,
                                             log=staging / "pnr.log")
            except PascalError as exc:
                if dsp and "MULT18X18D" in str(exc):
                    raise PascalError(f"{build_dir}: the design needs more multipliers than the "
                                      f"LFE5U-85F's 156 DSPs (Yosys maps every product of two "
                                      f"operands of 2 bits or more to one); --no-dsp maps them "
                                      f"to LUTs ({exc})") from None
                raise
            interval = worst_case_interval(design)
            mean, images = mean_interval(design, build)
            report.update({
                "fmax_mhz": routed["fmax_mhz"], "bitstream": str(out / "pascal_top.bit"),
                "device": "LFE5U-85F-CABGA381", "utilisation": routed.get("utilisation"),
                "worst_case_interval_cycles": interval,
                "images_per_s_at_fmax": routed["fmax_mhz"] * 1e6 / interval,
                "mean_interval_cycles": mean, "mean_on": images,
                "images_per_s_at_fmax_mean": None if mean is None else
                routed["fmax_mhz"] * 1e6 / mean})
            report["seconds"].update({f"pnr_{k}": v for k, v in routed["seconds"].items()})
        (staging / "synth.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def print_report(report: dict[str, Any]) -> None:
    """The table: per layer synthesized beside estimated, the total, Fmax."""
    print(f"{report['name']} ({report.get('arch', 'snn')}): Yosys synthesis for "
          f"{report['part']}, LUT = {report.get('lut_kind', 'LUT')}"
          f"{'' if report.get('dsp', True) else ', multipliers in LUTs (-nodsp)'}; the "
          f"estimates count xc7 LUT6")
    head = f"  {'layer':<14}" + "".join(f"{k + ' syn/est':>18}" for k in KEYS)
    print(head)
    for row in report["layers"]:
        print(f"  {row['layer']:<14}" + "".join(
            f"{row['synth'][k]:>9}/{row['estimate'][k]:<8}" for k in KEYS))
    print(f"  {'total (top)':<14}" + "".join(
        f"{report['total'][k]:>9}/{report['estimate_total'][k]:<8}" for k in KEYS))
    if "fmax_mhz" in report:
        print(f"  ECP5 {report['device']}: routed Fmax {report['fmax_mhz']:.1f} MHz, "
              f"{report['images_per_s_at_fmax']:,.0f} images/s at Fmax (worst case, "
              f"{report['worst_case_interval_cycles']} cycles per image)")
        if report.get("images_per_s_at_fmax_mean"):
            print(f"  mean on {report['mean_on']}: {report['mean_interval_cycles']:.0f} cycles "
                  f"per image, {report['images_per_s_at_fmax_mean']:,.0f} images/s at Fmax")
        print(f"  bitstream: {report['bitstream']}")
