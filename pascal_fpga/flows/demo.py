"""The main job: the whole pipeline on the embedded digits set, with one summary at the end.

Train, evaluate, adapt (AL levels), the SNN check, QONNX export, compile to the spiking IR and
the HLS project, verify every view (C simulation and cycle model included) on all test images,
simulate (performance, resources, energy) and classify through the host driver. Everything is built
in a temporary folder beside ``out`` and moved into place at the end, so a failed demo leaves no
half-written folder.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

from ..driver import Accelerator
from ..errors import PascalError
from ..hw.csim import ap_types_dir
from ..ir.export import export_run
from ..progress import log
from ..snn.adapt import adapt_run
from ..snn.report import snn_report, write_report
from ..staging import staged_folder
from ..train import TrainConfig, evaluate_run, train
from .compile import compile_model
from .simulate import simulate_build, write_report as write_hw_report
from .verify import verify_build, verify_images

DEMO_SPEC = "digits-cnn.yaml"
DEMO_DATASET = "digits"
DEMO_EPOCHS = 30
DEMO_BUDGET = 3.0
DEMO_ADAPT_EPOCHS = 5
DEMO_TARGET_FPS = 20000.0  # the folding search's target at the default 100 MHz clock


def run_demo(out: Path, models_dir: Path, epochs: int | None = None, progress: bool = False,
             xilinx_hls: str | None = None, zoo: bool = False) -> dict:
    """Run the demo into ``out`` and print its summary; returns the summary rows. Each step is
    an info line of the log (pascal_fpga/progress.py); ``models_dir`` holds the specs and the zoo
    (:func:`pascal_fpga.bundled.models_dir`).

    With ``zoo`` the trained and adapted networks come from the model zoo (zoo/digits-cnn and
    zoo/digits-cnn-al, made by the demo's own training and adapt settings) instead of training.
    """
    spec_path = models_dir / DEMO_SPEC
    if not spec_path.is_file():
        raise PascalError(f"{spec_path}: the demo's spec is missing (reinstall pascal-fpga)")
    zoo_dirs = (models_dir / "zoo" / "digits-cnn", models_dir / "zoo" / "digits-cnn-al")
    if zoo and epochs is not None:
        raise PascalError("--zoo takes the trained networks from the model zoo: --epochs does not "
                          "apply")
    if zoo and not all((d / "checkpoint.pt").is_file() for d in zoo_dirs):
        raise PascalError(f"{zoo_dirs[0].parent}: the zoo's digits networks are missing "
                          f"(reinstall pascal-fpga)")
    out = out.resolve()
    started = time.perf_counter()
    with staged_folder(out, "demo") as staging:
        run_dir = staging / "run"
        adapted_dir = staging / "adapted"
        if zoo:
            log.info(f"[1/9] train: taken from the model zoo ({zoo_dirs[0]})")
            shutil.copytree(zoo_dirs[0], run_dir)
            metrics = json.loads((run_dir / "metrics.json").read_text())
        else:
            log.info(f"[1/9] train {DEMO_SPEC} on {DEMO_DATASET}")
            metrics = train(TrainConfig(spec=str(spec_path), dataset=DEMO_DATASET,
                                        out=str(run_dir),
                                        epochs=DEMO_EPOCHS if epochs is None else epochs,
                                        batch_size=64, lr=2e-3, seed=0), progress=progress)
        log.info("[2/9] evaluate the trained QCFS network")
        result = evaluate_run(run_dir)
        if zoo:
            log.info(f"[3/9] adapt: taken from the model zoo ({zoo_dirs[1]})")
            shutil.copytree(zoo_dirs[1], adapted_dir)
            plan = json.loads((adapted_dir / "adapt.json").read_text())
        else:
            log.info(f"[3/9] adapt: Adaptive Layerwise L (mean L <= {DEMO_BUDGET}), "
                     f"fine-tune {DEMO_ADAPT_EPOCHS} epochs")
            plan = adapt_run(run_dir, adapted_dir, epochs=DEMO_ADAPT_EPOCHS, budget=DEMO_BUDGET,
                             progress=progress)
        log.info("[4/9] snn: PASCAL simulation of the adapted network on every test image")
        report = snn_report(adapted_dir, progress=progress)
        write_report(adapted_dir, report)
        log.info("[5/9] export the adapted network to QONNX")
        model_path = staging / "model.onnx"
        export_run(adapted_dir, model_path, record_as=out / "adapted")
        log.info(f"[6/9] compile: QONNX -> spiking IR (folding searched for "
                 f"{DEMO_TARGET_FPS:.0f} images/s) -> HLS project")
        build_dir = staging / "build"
        compiled = compile_model(model_path, build_dir, record_model_as=out / "model.onnx",
                                 target_fps=DEMO_TARGET_FPS)
        log.info("[7/9] verify: Brevitas, QONNX, spiking IR, PASCAL simulation, the HLS C "
                 "simulation (g++) and the RTL simulation (Verilator, cycle by cycle against the "
                 "cycle model) on every test image")
        images, labels, _ = verify_images(compiled, None, None, None, None)
        # verify's bar is tqdm's own: on a terminal only
        verified = verify_build(build_dir, images, labels,
                                progress=progress and sys.stderr.isatty(),
                                run_dir=adapted_dir, csim_headers=ap_types_dir(xilinx_hls),
                                rtlsim=True)
        if not verified["passed"]:
            raise PascalError(f"demo: verify found mismatches that are not ties: "
                              f"{verified['checks']}")
        log.info("[8/9] simulate: cycle model, resource and energy estimates -> build/report")
        sim = simulate_build(build_dir, images, labels)
        write_hw_report(build_dir, sim)
        log.info("[9/9] run the test images through the host driver (cycle-model backend)")
        prediction = Accelerator(build_dir, backend="cyclesim").predict(images)
        driver_accuracy = float((prediction.classes == labels).mean())
        levels = lambda rows, key: " ".join(str(r[key]) for r in rows)  # noqa: E731
        summary = {
            "spec": DEMO_SPEC,
            "dataset": f"{DEMO_DATASET} ({metrics['train_images']} train / "
                       f"{result['test_images']} test)",
            "epochs": metrics["epochs"],
            "train seconds": f"{metrics['train_seconds']:.1f}",
            "L per QCFS layer": levels(metrics["levels"], "levels"),
            "QCFS test accuracy": f"{100 * result['test_accuracy']:.2f}%",
            "AL metric per layer": " ".join(f"{r['metric']:.2f}" for r in plan["layers"]),
            "AL L per layer": levels(plan["layers"], "levels_after"),
            "AL accuracy": f"{100 * plan['accuracy_after']:.2f}% (mean L "
                           f"{plan['mean_levels_after']:.2f}, {DEMO_ADAPT_EPOCHS} fine-tune "
                           f"epochs)",
            "SNN accuracy (integer)": f"{100 * report['snn_accuracy']:.2f}% on "
                                      f"{report['samples']} images, "
                                      f"{report['latency_timesteps']} timesteps",
            "SNN vs integer ANN": f"{report['mismatched_samples']} differing samples",
            "Brevitas vs integer ANN": _brevitas_line(report["brevitas_vs_integer"]),
            "baseline (Bu et al.) T=4/16/64": " / ".join(
                f"{100 * report['baseline'][t]:.2f}%" for t in ("4", "16", "64")),
            "energy ANN / SNN": f"{report['energy']['ann_over_snn']:.2f}x",
            "spiking IR layers": " ".join(f"{row['layer']}:{row['op']}"
                                          for row in compiled["layers"]),
        }
        for check in verified["checks"]:
            if check["name"] == "rtl_cycles_vs_cyclesim":
                summary[f"verify {check['name']}"] = (
                    f"{check['mismatched']} of {check['compared']} stage-image pairs differ "
                    f"(first input and last output cycle of every stage and image, "
                    f"{check['cycles']} RTL cycles)")
                continue
            summary[f"verify {check['name']}"] = (
                f"{check['mismatched']} of {check['compared']} samples differ "
                f"({check['ties']} ties)")
            counters = check.get("loop_counters")
            if counters:
                summary[f"verify {check['name']}"] += (
                    f"; loop counters {counters['mismatched']} of {counters['compared']} "
                    f"differ from the cycle model (reads, writes, slots per stage and image)")
        cm, total = sim["cycle_model"], sim["estimates"]["total"]
        snn, qnn = sim["snn"], sim["qnn"]
        summary["hardware (cycle model)"] = (
            f"mean {cm['interval_cycles']['mean']:.0f} cycles per image = {cm['fps_mean']:.0f} "
            f"images/s at {sim['clock_mhz']:g} MHz (worst case of any input "
            f"{cm['fps_worst_case']:.0f}), latency {cm['latency_us_mean']:.1f} us")
        summary["resource estimate"] = (f"{total['LUT']} LUT, {total['FF']} FF, "
                                        f"{total['BRAM18']} BRAM18, {total['DSP']} DSP = "
                                        f"{snn['images_per_s_per_klut_mean']:.1f} images/s "
                                        f"per kLUT")
        summary["FINN-style QNN twin, own folding"] = (
            f"{qnn['images_per_s']:.0f} images/s, {qnn['lut']} LUT = "
            f"{qnn['images_per_s_per_klut']:.1f} images/s per kLUT")
        summary["energy per image"] = f"{sim['energy']['uj_per_image']:.3f} uJ"
        summary["driver (cyclesim backend)"] = (f"{100 * driver_accuracy:.2f}% on "
                                                f"{len(images)} images")
    summary["run directories"] = f"{out / 'run'}, {out / 'adapted'} (snn/ plots inside)"
    summary["QONNX model, build"] = (f"{out / 'model.onnx'}, {out / 'build'} (ir/, hls/, "
                                     f"rtl/, csim/, rtlsim/, report/, driver/ inside)")
    summary["synthesis (not run here)"] = (f"pascal-fpga synth {out / 'build'} [--pnr]: Yosys "
                                           f"LUT/FF/BRAM/DSP per layer, ECP5 Fmax, bitstream")
    summary["total seconds"] = f"{time.perf_counter() - started:.1f}"
    width = max(len(key) for key in summary)
    print("\npascal-fpga demo summary")
    for key, val in summary.items():
        print(f"  {key:<{width}}  {val}")
    return summary


def _brevitas_line(counts: dict) -> str:
    return (f"{counts['differing_levels']} differing levels ({counts['ties']} ties), "
            f"{counts['prediction_differs']} differing predictions "
            f"({counts['prediction_ties']} shared integer maxima)")
