"""Try the whole flow on networks nobody here wrote, as their user would, and tabulate it.

    python scripts/foreign_models.py --out DIR [--only NAME ...] [--images N] [--timeout S]
                                     [--jobs J] [--csim] [--rtlsim] [--rebuild] [--list]

The corpus is ``tests/foreign_nets.py``: FINN's BNN-PYNQ networks (TFC, SFC, LFC, CNV at w1a1,
w1a2, w2a2; random weights, real BatchNorm statistics), plain Brevitas networks with the
library's default quantizers (BatchNorm, pools, biases, per-channel scales, residual blocks, a
fixed-point network) and one uncleaned export. Each network is exported once into DIR/models
(NAME.onnx, NAME.json: what it is and its parameter count, NAME.ops.txt: its node sequence;
``--rebuild`` exports again). Then, per network, in its own process with a time limit:

1. ``pascal-fpga compile DIR/models/NAME.onnx --out DIR/builds/NAME --calibration-images K``;
   a refusal is recorded by its first error line;
2. when it compiled, ``pascal-fpga run BUILD --input DIR/inputs/NAME.npy --json`` (the cycle
   model) on N inputs in the model's own domain (float32 in [0, 1]: Fashion-MNIST test images
   for 1x28x28 networks, random 8-bit pixels / 255 for 3x32x32), compared with qonnx's
   ``execute_onnx`` of the untouched DIR/models/NAME.onnx, one image at a time, nothing of ours
   in between: classes differing (counted apart as a tie where the build's logits of its class
   and of the model's class are equal and the model's are equal up to float32 rounding: an
   integer tie that the model's float sums split), logits differing (beyond float32 rounding:
   1e-4 of the largest), and the largest
   residual of the best affine map from the build's logits to the model's, in units of the
   build's accumulator step (0 when the integers are exact);
3. ``pascal-fpga verify BUILD --input DIR/inputs/NAME.npy --json`` (``--random 8`` where verify
   has no ``--input``), with ``--csim`` / ``--rtlsim`` when asked: every check's mismatches.

Writes DIR/foreign.md (the table) and DIR/foreign.json (everything, per network); each
network's record is also in DIR/results/NAME.json, written after every stage, so a network
that runs out of time still shows how far it got.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

STAGE_LIMIT = 3600  # a single command inside a worker (the worker's own limit comes first)


def cli() -> list[str]:
    """The user's command: the venv's pascal-fpga beside this Python, else the one on PATH."""
    beside = Path(sys.executable).with_name("pascal-fpga")
    if beside.is_file():
        return [str(beside)]
    found = shutil.which("pascal-fpga")
    return [found] if found else [sys.executable, "-m", "pascal_fpga.cli"]


def error_line(stderr: str) -> str:
    """The first line of a command's refusal: its first 'error:' line, else its last line."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    for line in lines:
        if "error:" in line:
            return line.split("error:", 1)[1].strip()
    return lines[-1] if lines else "(no message)"


def run_cli(args: list[str], timeout: float = STAGE_LIMIT) -> tuple[int, str, str, float]:
    start = time.monotonic()
    try:
        proc = subprocess.run(cli() + args, capture_output=True, text=True, timeout=timeout,
                              env={**os.environ, "PYTHONWARNINGS": "ignore"})
    except subprocess.TimeoutExpired as exc:
        return 124, exc.stdout or "", f"timed out after {timeout:.0f} s", timeout
    return proc.returncode, proc.stdout, proc.stderr, time.monotonic() - start


# ----------------------------------------------------------------------------------------------
# one network (the worker process)

def ensure_model(name: str, out: Path, rebuild: bool) -> tuple[Path, dict]:
    import foreign_nets as fn

    folder = out / "models"
    path = folder / fn.file_name(name)
    meta_path = folder / f"{name}.json"
    if path.is_file() and meta_path.is_file() and not rebuild:
        return path, json.loads(meta_path.read_text())
    start = time.monotonic()
    net = fn.NETWORKS[name]
    model = fn.build(name)
    fn.export_model(model, net.shape, path, net.cleanup)
    meta = {"name": name, "family": net.family, "about": net.about, "shape": list(net.shape),
            "params": fn.param_count(model), "cleanup": net.cleanup,
            "export_s": round(time.monotonic() - start, 1)}
    (folder / f"{name}.ops.txt").write_text("\n".join(fn.op_sequence(path)) + "\n")
    meta_path.write_text(json.dumps(meta, indent=1))
    return path, meta


def untouched_logits(path: Path, x):
    """qonnx's execute_onnx of the file as exported, one input at a time (no transformation:
    not even a batch-size change)."""
    import numpy as np
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx

    model = ModelWrapper(str(path))
    name_in, name_out = model.graph.input[0].name, model.graph.output[0].name
    rows = [execute_onnx(model, {name_in: x[i:i + 1]})[name_out].reshape(-1) for i in range(len(x))]
    return np.stack(rows).astype(np.float64)


def compare(q_logits, classes, logits, out_scale: float | None) -> dict:
    """The build's classes and logits against the untouched model's logits."""
    import numpy as np

    classes = np.asarray(classes, dtype=np.int64)
    logits = np.asarray(logits, dtype=np.float64)
    if logits.shape != q_logits.shape:
        return {"compared": int(len(classes)), "error": f"the build gives logits of shape "
                f"{list(logits.shape)}, the model {list(q_logits.shape)}"}
    rows = np.arange(len(classes))
    q_class = q_logits.argmax(axis=1)
    tol = 1e-4 * (1.0 + np.abs(q_logits).max(axis=1))
    differ = classes != q_class
    # a tie: the build's logits of both classes are equal (the same accumulator), and so are
    # the model's up to float32 rounding (float sums in another order may split an integer tie)
    tied = differ & (logits[rows, classes] == logits[rows, q_class]) & \
        (np.abs(q_logits[rows, classes] - q_logits[rows, q_class]) <= tol)
    logit_diff = np.abs(logits - q_logits).max(axis=1)
    result = {"compared": int(len(classes)), "classes_differing": int((differ & ~tied).sum()),
              "classes_tied": int(tied.sum()),
              "logits_differing": int((logit_diff > tol).sum()),
              "largest_logit_difference": float(logit_diff.max()),
              "first_differing": (int(np.flatnonzero(differ & ~tied)[0])
                                  if (differ & ~tied).any() else None)}
    # the best affine map logits -> q_logits; its residual in accumulator steps
    a, b = np.polyfit(logits.reshape(-1), q_logits.reshape(-1), 1) \
        if np.ptp(logits) > 0 else (1.0, 0.0)
    residual = float(np.abs(a * logits + b - q_logits).max())
    result["affine"] = [float(a), float(b)]
    if out_scale:
        result["residual_acc_steps"] = residual / abs(a * out_scale) if a else None
    return result


def verify_args(build: Path, inputs: Path, csim: bool, rtlsim: bool) -> list[str]:
    rc, out, _, _ = run_cli(["verify", "--help"], timeout=120)
    args = ["verify", str(build), "--json"]
    args += ["--input", str(inputs)] if "--input" in out else ["--random", "8"]
    return args + (["--csim"] if csim else []) + (["--rtlsim"] if rtlsim else [])


def check_counts(report: dict) -> dict:
    """{check: {compared, mismatched, ties}} of a verify report."""
    counts = {}
    for check in report.get("checks", []):
        counts[check.get("name", "?")] = {k: v for k, v in check.items()
                                          if isinstance(v, (int, float)) and k != "name"}
    return counts


def work(name: str, out: Path, images: int, calibration: int, csim: bool, rtlsim: bool,
         rebuild: bool) -> int:
    """Every stage for one network; its record in out/results/NAME.json after each."""
    import numpy as np

    import foreign_nets as fn

    start = time.monotonic()
    record: dict = {"name": name, "family": fn.NETWORKS[name].family, "compiled": None}
    result_path = out / "results" / f"{name}.json"
    result_path.parent.mkdir(parents=True, exist_ok=True)

    def save(stage: str) -> None:
        record["stage"] = stage
        record["wall_s"] = round(time.monotonic() - start, 1)
        tmp = result_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(record, indent=1))
        os.replace(tmp, result_path)

    save("start")
    try:
        model, meta = ensure_model(name, out, rebuild)
    except Exception as exc:  # a model that does not even export: that is the finding
        record["compiled"] = False
        record["refusal"] = f"export failed: {type(exc).__name__}: {str(exc).splitlines()[0]}"
        save("export")
        return 0
    record.update(params=meta["params"], about=meta["about"], model=str(model))
    save("export")

    build = out / "builds" / name
    build.parent.mkdir(parents=True, exist_ok=True)
    rc, stdout, stderr, seconds = run_cli(["compile", str(model), "--out", str(build),
                                           "--calibration-images", str(calibration), "--force"])
    record["compile_s"] = round(seconds, 1)
    record["compiled"] = rc == 0
    if rc != 0:
        record["refusal"] = error_line(stderr)
        record["compile_rc"] = rc
        save("compile")
        return 0
    save("compile")

    inputs_path = out / "inputs" / f"{name}.npy"
    inputs_path.parent.mkdir(parents=True, exist_ok=True)
    x = fn.inputs(name, images)
    np.save(inputs_path, x)
    q_logits = untouched_logits(model, x)

    rc, stdout, stderr, seconds = run_cli(["run", str(build), "--input", str(inputs_path),
                                           "--json"])
    record["run_s"] = round(seconds, 1)
    if rc != 0:
        record["run_error"] = error_line(stderr)
    else:
        result = json.loads(stdout)
        out_scale = None
        design = build / "driver" / "design.json"
        if design.is_file():
            out_scale = json.loads(design.read_text()).get("out_scale")
        record["vs_untouched"] = compare(q_logits, result["classes"], result["logits"],
                                         out_scale)
    save("run")

    rc, stdout, stderr, seconds = run_cli(verify_args(build, inputs_path, csim, rtlsim))
    record["verify_s"] = round(seconds, 1)
    try:
        report = json.loads(stdout)
    except json.JSONDecodeError:
        report = None
    if report is None:
        record["verify_error"] = error_line(stderr)
    else:
        record["verify"] = check_counts(report)
        record["verify_passed"] = report.get("passed")
        record["verify_samples"] = report.get("samples")
    save("done")
    return 0


# ----------------------------------------------------------------------------------------------
# the corpus (the parent process)

def run_worker(name: str, args, timeout: float) -> dict:
    """One network in its own process (and process group, so that a hang is ended whole)."""
    command = [sys.executable, __file__, "--out", str(args.out), "--images", str(args.images),
               "--calibration-images", str(args.calibration_images), "--worker", name]
    command += ["--csim"] * args.csim + ["--rtlsim"] * args.rtlsim + ["--rebuild"] * args.rebuild
    start = time.monotonic()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        _, stderr = proc.communicate(timeout=timeout)
        timed_out = False
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            _, stderr = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            _, stderr = proc.communicate()
        timed_out = True
    path = args.out / "results" / f"{name}.json"
    record = json.loads(path.read_text()) if path.is_file() else {"name": name}
    record["wall_s"] = round(time.monotonic() - start, 1)
    if timed_out:
        record["timed_out"] = f"timed out after {timeout:.0f} s in stage after " \
                              f"{record.get('stage', 'start')!r}"
        if record.get("compiled") is None:
            record["compiled"] = False
            record["refusal"] = record["timed_out"]
    elif proc.returncode != 0:
        record["worker_error"] = error_line(stderr)
        if record.get("compiled") is None:
            record["compiled"] = False
            record["refusal"] = f"script error: {record['worker_error']}"
    return record


def verify_cell(record: dict) -> str:
    if "verify" in record:
        counts = record["verify"]
        bad = {k: v for k, v in counts.items() if (v.get("mismatched") or 0) != (v.get("ties") or 0)}
        samples = record.get("verify_samples")
        text = "0 in " + ", ".join(counts) if not bad else ", ".join(
            f"{k} {v['mismatched']}/{v['compared']}" for k, v in bad.items())
        return f"{text} ({samples} inputs)" if samples else text
    if "verify_error" in record:
        return "error: " + record["verify_error"][:120]
    return ""


def vs_cell(record: dict) -> str:
    vs = record.get("vs_untouched")
    if vs is None:
        return ("run error: " + record["run_error"][:120]) if "run_error" in record else ""
    if "error" in vs:
        return vs["error"]
    text = f"{vs['classes_differing']}/{vs['compared']}"
    if vs["classes_tied"]:
        text += f" (+{vs['classes_tied']} ties)"
    text += f"; logits {vs['logits_differing']}"
    steps = vs.get("residual_acc_steps")
    if steps is not None:
        text += f", resid {steps:.2g} acc steps"
    return text


def markdown(records: list[dict], args, seconds: float) -> str:
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "pascal_fpga"],
                           capture_output=True, text=True).stdout.strip()
    lines = [
        "# Foreign networks through pascal-fpga",
        "",
        f"Commit {commit}{' with uncommitted changes in pascal_fpga/' if dirty else ''}; "
        f"{args.images} inputs per network; compile --calibration-images "
        f"{args.calibration_images}; {seconds:.0f} s in all. \"vs untouched\": the build's "
        "classes differing from qonnx's execution of the exported file (of the inputs), logits "
        "differing, and the residual of the best affine map between the logits in accumulator "
        "steps. \"verify\": every check's mismatches.",
        "",
        "| network | family | params | compiled | refusal (first line) | vs untouched | verify "
        "| wall s |",
        "| --- | --- | ---: | --- | --- | --- | --- | ---: |",
    ]
    for r in records:
        compiled = {True: "yes", False: "no", None: "?"}[r.get("compiled")]
        refusal = (r.get("refusal") or r.get("timed_out") or "").replace("|", "\\|")
        lines.append(f"| {r['name']} | {r.get('family', '')} | {r.get('params', '')} | "
                     f"{compiled} | {refusal} | {vs_cell(r)} | "
                     f"{verify_cell(r).replace('|', '/')} | {r.get('wall_s', '')} |")
    compiled = sum(1 for r in records if r.get("compiled"))
    exact = sum(1 for r in records if r.get("vs_untouched", {}).get("classes_differing") == 0
                and r.get("vs_untouched", {}).get("logits_differing") == 0)
    lines += ["", f"{compiled} of {len(records)} compiled; {exact} exact against the untouched "
              "model (classes and logits)."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    import foreign_nets as fn

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=False, help="the folder of everything")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="these networks only")
    parser.add_argument("--images", type=int, default=200, help="inputs per network (200)")
    parser.add_argument("--calibration-images", type=int, default=4,
                        help="compile --calibration-images (4)")
    parser.add_argument("--timeout", type=float, default=1800,
                        help="seconds per network, every stage together (1800)")
    parser.add_argument("--jobs", type=int, default=1, help="networks at once (1)")
    parser.add_argument("--csim", action="store_true", help="verify --csim as well")
    parser.add_argument("--rtlsim", action="store_true", help="verify --rtlsim as well")
    parser.add_argument("--rebuild", action="store_true",
                        help="export the models again (default: reuse DIR/models)")
    parser.add_argument("--list", action="store_true", help="list the corpus and exit")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.list:
        for name, net in fn.NETWORKS.items():
            print(f"{name:24s} {net.family:10s} {net.about}")
        return 0
    if args.out is None:
        parser.error("--out is required")
    args.out = args.out.resolve()
    if args.worker:
        # the parent's time limit ends the worker with SIGTERM: unwind (temporary folders go)
        signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
        return work(args.worker, args.out, args.images, args.calibration_images, args.csim,
                    args.rtlsim, args.rebuild)
    todo = args.only or fn.names()
    unknown = [n for n in todo if n not in fn.NETWORKS]
    if unknown:
        parser.error(f"unknown network(s) {', '.join(unknown)}; --list shows the corpus")
    args.out.mkdir(parents=True, exist_ok=True)
    for name in todo:  # no stale record from an earlier run
        (args.out / "results" / f"{name}.json").unlink(missing_ok=True)

    from tqdm import tqdm

    start = time.monotonic()
    records: dict[str, dict] = {}
    with tqdm(total=len(todo), unit="net", desc="foreign") as bar, \
            ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futures = {pool.submit(run_worker, name, args, args.timeout): name for name in todo}
        for future in as_completed(futures):
            record = future.result()
            records[futures[future]] = record
            bar.set_postfix_str(f"{record['name']}: "
                                f"{'compiled' if record.get('compiled') else 'refused'}")
            bar.update(1)
    ordered = [records[name] for name in todo]
    seconds = time.monotonic() - start
    (args.out / "foreign.json").write_text(json.dumps(
        {"images": args.images, "calibration_images": args.calibration_images,
         "seconds": round(seconds, 1), "networks": ordered}, indent=1))
    text = markdown(ordered, args, seconds)
    (args.out / "foreign.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
