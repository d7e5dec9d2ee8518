"""`pascal-fpga verify`: the views of one network (docs/design.md, section 3) on the same images.

Checks, each ``{"name", "compared", "mismatched", "ties", ...}`` over samples:

- ``qonnx_vs_brevitas``: the Brevitas model (float32, PyTorch) against qonnx's execution of the
  exported QONNX model: every QCFS level, and the predicted class;
- ``ir_vs_qonnx``: the spiking IR (our ops, executed by qonnx) against the QONNX model: every
  level, and the classifier's integer accumulators (QONNX logits / out_scale, rounded);
- ``snn_vs_ir``: the PASCAL simulation (timestep by timestep, integer neurons) of the IR against
  the IR itself: every level and accumulator, exactly;
- ``cyclesim_vs_ir``: the cycle model's datapath (frame by frame, packed weights) against the IR:
  every layer's levels, the accumulators and the class, exactly;
- ``csim_vs_ir`` (with ``--csim``): the HLS project's C simulation, likewise;
- ``rtlsim_vs_ir`` (with ``--rtlsim``): the RTL's Verilator simulation (BUILD_DIR/rtl), likewise,
  every layer's output stream tapped in the testbench;
- ``rtl_cycles_vs_cyclesim`` (with ``--rtlsim``): per stage and image, the cycle of the image's
  first input and last output in the RTL simulation against the cycle model running the RTL's
  schedule (:meth:`Design.programs` with ``backend="rtl"``) through the same FIFO depths; a
  stage-image pair is mismatched when either cycle differs, and every FIFO's number of words
  written and read must equal the model's. The images run in batches of ``BATCH``, each batch
  from reset in the RTL and from empty FIFOs in the model, back to back within the batch.

``qonnx_vs_brevitas`` runs only when the user names the Brevitas run (``run_dir``, the CLI's
``--run``): the run a model's metadata records is shown in the skip reason, never loaded, because
a model file may come from anyone. Likewise the data folder is the user's (``--data-dir``) or the
data set's usual place, never one the metadata names.

A sample is mismatched when any of its compared values differ. Float views may differ at a tie:
a pre-activation within ``TIE_TOLERANCE`` steps of a rounding boundary, where float32 rounding
decides the level (everything after such a level may follow it). A mismatched sample counts as a
tie when the first layer where it differs differs only at ties; a differing prediction counts as
a tie when the two classes share the integer maximum. The exit status is 1 when any mismatch is
not a tie.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import datasets
from ..buildfolder import load_build, load_qonnx
from ..errors import PascalError
from ..progress import progress_bar
from ..hw.backends.rtl import build_rtlsim, model_cycles, run_rtlsim
from ..hw.csim import build_csim, run_csim
from ..hw.design import design_from_ir
from ..hw.load import load_qonnx_ir
from ..ir.execute import BATCH, Batched
from ..ir.adapter import InputAdapter, input_adapter
from ..ir.export import activation_quant_nodes
from ..ir.integer import ir_to_integer_network
from ..ir.transforms import (act_quant, input_quantizer, layer_nodes, level_codes,
                             output_offset, output_scale)
from ..perf.timing import simulate as simulate_cycles
from ..perf.values import run_values
from ..snn.report import TIE_TOLERANCE, brevitas_levels, distance_to_boundary
from ..snn.simulate import simulate
from ..train import trainer


class _Counter:
    def __init__(self, name: str):
        self.name = name
        self.compared = 0
        self.mismatched = 0
        self.ties = 0
        self.differing_levels = 0
        self.tie_levels = 0
        self.extra: dict[str, Any] = {}

    def add(self, layer_diffs: list[tuple[np.ndarray, np.ndarray | None]],
            output_diff: np.ndarray, output_tie: np.ndarray | None = None) -> None:
        """Per layer in order (differs (N, ...), is-tie (N, ...) or None), then the output's
        differs (N,) and whether each output difference is a tie (shared maximum)."""
        n = len(output_diff)
        self.compared += n
        explained = np.zeros(n, dtype=bool)   # decided at the first differing layer
        tie = np.zeros(n, dtype=bool)
        mismatch = output_diff.copy()
        for differs, ties in layer_diffs:
            flat = differs.reshape(n, -1)
            any_diff = flat.any(axis=1)
            self.differing_levels += int(flat.sum())
            if ties is not None:
                tie_flat = ties.reshape(n, -1) & flat
                self.tie_levels += int(tie_flat.sum())
                only_ties = (tie_flat == flat).all(axis=1)
            else:
                only_ties = np.zeros(n, dtype=bool)
            first = any_diff & ~explained
            tie |= first & only_ties
            explained |= any_diff
            mismatch |= any_diff
        output_only = output_diff & ~explained
        if output_tie is not None:
            tie |= output_only & output_tie
        self.mismatched += int(mismatch.sum())
        self.ties += int((mismatch & tie).sum())

    def result(self) -> dict[str, Any]:
        return {"name": self.name, "compared": self.compared, "mismatched": self.mismatched,
                "ties": self.ties, "differing_levels": self.differing_levels,
                "tie_levels": self.tie_levels, **self.extra}


def _near_boundary(pre: np.ndarray, steps: np.ndarray) -> np.ndarray:
    """Ties as the snn report defines them: ``pre`` (in steps) within TIE_TOLERANCE of one of
    the quantizer's rounding boundaries (k - 1/2, k = 1..L, for a QCFS activation)."""
    if len(steps) and np.array_equal(steps, np.arange(1, len(steps) + 1) - 0.5):
        return (distance_to_boundary(torch.from_numpy(pre), 1.0, len(steps))
                <= TIE_TOLERANCE).numpy()
    near = np.zeros(pre.shape, dtype=bool)
    for step in steps:
        near |= np.abs(pre - step) <= TIE_TOLERANCE
    return near


def qonnx_levels(model, ctx) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(tensor name, levels, tie mask) per activation quantizer of a QONNX execution (the input
    quantizer aside): QCFS, or a foreign model's signed or bipolar one."""
    rows = []
    first = input_quantizer(model)
    for node in activation_quant_nodes(model):
        if model.get_initializer(node.input[1]) is None or node is first:
            continue
        quant = act_quant(model, node)
        value = np.rint(ctx[node.output[0]].astype(np.float64) / quant.scale)
        pre = ctx[node.input[0]].astype(np.float64) / quant.scale
        rows.append((node.output[0], value, _near_boundary(pre, quant.steps)))
    return rows


def _as_codes(q_levels, codes: dict[str, tuple[int, int]]) -> list:
    """The QONNX levels as the IR holds them: a signed or bipolar activation's codes
    (level - offset) / mult (the IR's metadata), every other tensor its levels."""
    rows = []
    for name, value, tie in q_levels:
        offset, mult = codes.get(name, (0, 1))
        rows.append((name, (value - offset) / mult, tie))
    return rows


def _shared_max(acc: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Whether classes a and b both hold the maximum of the integer accumulators."""
    rows = np.arange(len(acc))
    top = acc.max(axis=1)
    return (acc[rows, a] == top) & (acc[rows, b] == top)


def _stream_diffs(ir_layers, ir_ctx, dumps: dict[str, np.ndarray], ir_acc: np.ndarray) -> list:
    """Per layer, where a hardware view's levels (in stream order: pixel-major, channels inside)
    differ from the IR's; the classifier's accumulators last."""
    diffs = []
    for node in ir_layers[:-1]:
        if node.op_type == "SpikingFork":
            continue   # its outputs are its input, checked as the previous layer's
        ir_value = ir_ctx[node.output[0]]
        if ir_value.ndim == 4:
            ir_value = ir_value.transpose(0, 2, 3, 1)
        diffs.append((dumps[node.name] != ir_value.reshape(len(ir_value), -1), None))
    diffs.append((dumps[ir_layers[-1].name] != ir_acc, None))
    return diffs


def _brevitas(run_dir: str | Path | None):
    """The Brevitas network of the run the user named, or None when none was named."""
    if run_dir is None:
        return None
    if not Path(run_dir).is_dir():
        raise PascalError(f"--run {run_dir}: no such run directory")
    _, net, _ = trainer.load_run(run_dir)
    return net


def _brevitas_skipped(build: dict[str, Any]) -> str:
    """Why qonnx_vs_brevitas did not run, and how to ask for it."""
    recorded = build["source"].get("run_dir")
    if recorded:
        return (f"no --run given; the model names the run {recorded!r}: pass --run PATH to "
                f"compare against it (a path from a model file is never followed)")
    return "no --run given and the model names no run: pass --run PATH to compare against one"


def verify_build(build_dir: str | Path, images: np.ndarray, labels: np.ndarray | None = None,
                 progress: bool = False, snn: bool = True, run_dir: str | Path | None = None,
                 csim_headers: str | Path | None = None, cyclesim: bool = True,
                 rtlsim: bool = False) -> dict[str, Any]:
    """Run every view on ``images`` (N, C, H, W) raw integer pixels; the report dict (with each
    view's accuracy when ``labels`` are given). The Brevitas model comes from ``run_dir`` only
    (without it qonnx_vs_brevitas is skipped, see the module docstring). With ``csim_headers``
    (the ap_types folder) the HLS project's C simulation is built and compared with the IR too
    (``csim_vs_ir``: every layer's levels, the accumulators and the class)."""
    build_dir = Path(build_dir)
    build = load_build(build_dir)
    qonnx_model = load_qonnx(build_dir / build["steps"][0]["model"])
    ir_model = load_qonnx_ir(build_dir / build["ir"])
    produced = {name for node in ir_model.graph.node for name in node.output}
    missing = [name for name in qcfs_tensors(qonnx_model) if name not in produced]
    if missing:
        raise PascalError(f"{build_dir / build['ir']}: the IR does not compute the QCFS levels of "
                          f"{build_dir / build['steps'][0]['model']} (compile again)")
    scale = output_scale(ir_model)
    offset = output_offset(ir_model)
    adapter = input_adapter(ir_model)
    codes = level_codes(ir_model)
    qonnx_exec, ir_exec = Batched(qonnx_model), Batched(ir_model)
    net = _brevitas(run_dir)
    inet = ir_to_integer_network(ir_model, build["name"]) if snn else None
    ir_out = ir_model.graph.output[0].name
    q_out = qonnx_model.graph.output[0].name

    checks = {"qonnx_vs_brevitas": _Counter("qonnx_vs_brevitas"),
              "ir_vs_qonnx": _Counter("ir_vs_qonnx"), "snn_vs_ir": _Counter("snn_vs_ir"),
              "csim_vs_ir": _Counter("csim_vs_ir"), "cyclesim_vs_ir": _Counter("cyclesim_vs_ir"),
              "rtlsim_vs_ir": _Counter("rtlsim_vs_ir")}
    hardware = design_from_ir(ir_model)
    design = hardware if cyclesim else None
    binary = None
    ir_layers = layer_nodes(ir_model)
    counters = {"compared": 0, "mismatched": 0, "first_mismatch": None}
    if csim_headers is not None:
        binary = build_csim(build_dir, Path(csim_headers))
    rtl_binary = None
    rtl_cycles = {"name": "rtl_cycles_vs_cyclesim", "compared": 0, "mismatched": 0, "ties": 0,
                  "first_mismatch": None, "fifo_counts_mismatched": 0, "cycles": 0}
    if rtlsim:
        rtl_binary = build_rtlsim(build_dir)
    largest_logit = 0.0
    predictions = {"brevitas": [], "qonnx": [], "ir": [], "snn": [], "csim": [],
                   "cyclesim": [], "rtlsim": []}
    bar = None
    if progress:
        bar = progress_bar(len(images), "verify", unit="img")
    for start in range(0, len(images), BATCH):
        x = np.asarray(images[start:start + BATCH], dtype=np.float32)
        q_ctx = qonnx_exec.run(x)
        q_levels = qonnx_levels(qonnx_model, q_ctx)
        q_logits = q_ctx[q_out].astype(np.float64)
        q_acc = np.rint((q_logits - offset) / scale)
        q_pred = q_logits.argmax(axis=1)
        predictions["qonnx"].append(q_pred)

        if net is not None:
            with torch.no_grad():
                b_logits, b_levels = brevitas_levels(net, torch.from_numpy(x))
            b_logits = b_logits.double().numpy()
            largest_logit = max(largest_logit, float(np.abs(b_logits - q_logits).max()))
            b_pred = b_logits.argmax(axis=1)
            predictions["brevitas"].append(b_pred)
            diffs = [(bl.numpy() != ql, tie) for bl, (_, ql, tie) in zip(b_levels, q_levels)]
            checks["qonnx_vs_brevitas"].add(diffs, b_pred != q_pred,
                                            _shared_max(q_acc, b_pred, q_pred))

        if adapter is not None:   # the model's own input -> the codes the accelerator takes
            x = adapter(x)
        ir_ctx = ir_exec.run(x)
        ir_acc = ir_ctx[ir_out].astype(np.float64)
        predictions["ir"].append(ir_acc.argmax(axis=1))
        diffs = [(ir_ctx[name] != ql, tie) for name, ql, tie in _as_codes(q_levels, codes)]
        checks["ir_vs_qonnx"].add(diffs, (ir_acc != q_acc).any(axis=1))

        if inet is not None:
            result = simulate(inet, torch.from_numpy(x), mode="integer")
            ir_levels = [ir_ctx[name] for name, _, _ in q_levels]
            diffs = [(s.numpy() != il, None) for s, il in zip(result.levels, ir_levels)]
            checks["snn_vs_ir"].add(diffs, (result.acc.numpy() != ir_acc).any(axis=1))
            predictions["snn"].append(result.acc.numpy().argmax(axis=1))
        lanes = None
        if design is not None:
            acc, classes, dumps, lanes = run_values(design, x)
            checks["cyclesim_vs_ir"].add(_stream_diffs(ir_layers, ir_ctx, dumps, ir_acc),
                                         (acc != ir_acc).any(axis=1) |
                                         (classes != ir_acc.argmax(axis=1)))
            predictions["cyclesim"].append(classes)
        if binary is not None:
            outputs, dumps, counts = run_csim(binary, x, [n.name for n in ir_layers
                                                          if n.op_type != "SpikingFork"])
            if lanes is None:
                lanes = run_values(hardware, x)[3]
            _compare_counters(hardware, lanes, counts, counters, start)
            diffs = _stream_diffs(ir_layers, ir_ctx, dumps, ir_acc)
            classes = ir_acc.shape[1]
            out_diff = (outputs[:, :classes] != ir_acc).any(axis=1) | \
                (outputs[:, classes] != ir_acc.argmax(axis=1))
            checks["csim_vs_ir"].add(diffs, out_diff)
            predictions["csim"].append(outputs[:, classes])
        if rtl_binary is not None:
            if lanes is None:
                lanes = run_values(hardware, x)[3]
            outputs = _rtlsim_batch(rtl_binary, build_dir, hardware, lanes, x, rtl_cycles,
                                    start, ir_layers, ir_ctx, ir_acc, checks["rtlsim_vs_ir"])
            predictions["rtlsim"].append(outputs[:, -1])
        if bar is not None:
            bar.update(len(x))
    if bar is not None:
        bar.close()
    report_checks = []
    if net is not None:
        checks["qonnx_vs_brevitas"].extra["largest_logit_difference"] = largest_logit
        report_checks.append(checks["qonnx_vs_brevitas"].result())
    report_checks.append(checks["ir_vs_qonnx"].result())
    if inet is not None:
        report_checks.append(checks["snn_vs_ir"].result())
    if design is not None:
        report_checks.append(checks["cyclesim_vs_ir"].result())
    if binary is not None:
        check = checks["csim_vs_ir"].result()
        check["loop_counters"] = counters
        report_checks.append(check)
    if rtl_binary is not None:
        report_checks.append(checks["rtlsim_vs_ir"].result())
        report_checks.append(rtl_cycles)
    report = {"build_dir": str(build_dir), "name": build["name"], "samples": len(images),
              # what ir_vs_qonnx compares with: the user's model file as compile read it,
              # before any rewrite of ours (ir/00_qonnx.onnx)
              "reference_model": build["steps"][0]["model"],
              "checks": report_checks,
              "skipped": [] if net is not None else [{
                  "name": "qonnx_vs_brevitas", "reason": _brevitas_skipped(build)}],
              }
    if labels is not None:
        report["accuracy"] = {view: float(np.mean(np.concatenate(p) == labels))
                              for view, p in predictions.items() if p}
    report["passed"] = all(c["mismatched"] == c["ties"] for c in report_checks) and \
        counters["mismatched"] == 0
    return report


def _rtlsim_batch(binary, build_dir, design, lanes, x, cycles: dict[str, Any], start: int,
                  ir_layers, ir_ctx, ir_acc, counter: _Counter) -> np.ndarray:
    """One batch through the RTL simulation (from reset) and the cycle model (the RTL's
    schedule, the build's FIFO depths, from an empty pipeline): values into ``counter``, cycles
    into ``cycles``. The RTL's outputs (N, classes + 1)."""
    n = len(x)
    programs = design.programs(design.activity_from_lanes(lanes), n, backend="rtl")
    run = run_rtlsim(binary, build_dir, design, programs, x)
    diffs = _stream_diffs(ir_layers, ir_ctx, run.taps, ir_acc)
    classes = ir_acc.shape[1]
    out_diff = (run.outputs[:, :classes] != ir_acc).any(axis=1) | \
        (run.outputs[:, classes] != ir_acc.argmax(axis=1))
    counter.add(diffs, out_diff)
    timing = simulate_cycles(programs, design.fifo_depths(), edges=design.edges())
    if timing.deadlock:
        raise PascalError(f"the cycle model reports a deadlock at {timing.deadlock}")
    first, last = model_cycles(timing)
    bad = (first != run.first_read) | (last != run.last_write)     # (stages, N)
    cycles["compared"] += int(bad.size)
    cycles["mismatched"] += int(bad.sum())
    cycles["cycles"] += int(run.cycles)
    for k, ((writes, reads), (producer, consumer)) in enumerate(zip(run.counts,
                                                                    design.edges())):
        want = (int(programs[producer].writes.sum()), int(programs[consumer].reads.sum()))
        if (writes, reads) != want:
            cycles["fifo_counts_mismatched"] += 1
            cycles["mismatched"] += 1
            if cycles["first_mismatch"] is None:
                cycles["first_mismatch"] = {"fifo": k, "rtl_writes_reads": [writes, reads],
                                            "model": list(want)}
    if bad.any() and cycles["first_mismatch"] is None:
        stage, image = (int(v[0]) for v in np.nonzero(bad))
        cycles["first_mismatch"] = {
            "stage": programs[stage].stage, "image": start + image,
            "rtl": [int(run.first_read[stage, image]), int(run.last_write[stage, image])],
            "model": [int(first[stage, image]), int(last[stage, image])]}
    return run.outputs


def _compare_counters(design, lanes, counts: dict[str, np.ndarray], counters: dict[str, Any],
                      start: int) -> None:
    """The C simulation's loop counters (reads, writes, slots per stage and image) against the
    cycle model's programs for the same images: every number equal."""
    activity = design.activity_from_lanes(lanes)
    programs = design.programs(activity, len(next(iter(counts.values()))))
    for program in programs:
        model = program.counters()
        got = counts.get(program.stage)
        counters["compared"] += model.size
        if got is None or got.shape != model.shape:
            counters["mismatched"] += model.size
            counters["first_mismatch"] = (counters["first_mismatch"]
                                          or f"stage {program.stage}: missing")
            continue
        wrong = np.argwhere(got != model)
        counters["mismatched"] += len(wrong)
        if len(wrong) and counters["first_mismatch"] is None:
            image, column = wrong[0]
            what = ("reads", "writes", "slots")[column]
            counters["first_mismatch"] = (f"image {start + image}, stage {program.stage}: "
                                          f"{what} {got[image, column]} in the C simulation, "
                                          f"{model[image, column]} in the cycle model")


def build_adapter(build: dict[str, Any]) -> InputAdapter | None:
    """The build's input adapter (build.json's ``input_adapter``, from the IR), or None where
    the accelerator takes the pixels themselves."""
    value = build.get("input_adapter")
    return None if value is None else InputAdapter.from_json(json.dumps(value))


def load_inputs(path: str | Path, shape: dict[str, int]) -> np.ndarray:
    """A .npy file of the model's own inputs (N, C, H, W), read as data (no pickles): finite
    numbers of the build's input shape, as float32."""
    path = Path(path)
    try:
        values = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise PascalError(f"{path}: not a readable .npy file of numbers ({type(exc).__name__})"
                          ) from None
    if not isinstance(values, np.ndarray) or not (np.issubdtype(values.dtype, np.integer) or
                                                  np.issubdtype(values.dtype, np.floating)):
        raise PascalError(f"{path}: holds {getattr(values, 'dtype', type(values).__name__)}, "
                          f"not numbers")
    expected = tuple(shape[key] for key in ("channels", "height", "width")) if shape else None
    if values.ndim != 4 or len(values) == 0 or (expected and tuple(values.shape[1:]) != expected):
        raise PascalError(f"{path}: shape {list(values.shape)}, expected (N, "
                          f"{', '.join(map(str, expected or ('C', 'H', 'W')))}) with N >= 1")
    values = values.astype(np.float32)
    if not np.all(np.isfinite(values)):
        raise PascalError(f"{path}: holds NaN or infinite values")
    return values


def verify_images(build: dict[str, Any], dataset: str | None, data_dir: str | None,
                  samples: int | None, random: int | None, seed: int = 0,
                  input_file: str | Path | None = None, labels_file: str | Path | None = None
                  ) -> tuple[np.ndarray, np.ndarray | None, str]:
    """The model inputs to verify on: ``input_file`` (a .npy of the model's own inputs, with
    ``labels_file`` optionally); the build's data set (or ``dataset``), its first ``samples``;
    or ``random`` images of uniform random pixels. (images, labels, description).

    A build with an input adapter (a foreign model: docs/foreign-models.md) takes the model's
    own input: where its input quantizer covers a [0, 1] image (FINN's BNN-PYNQ, most Brevitas
    examples: torchvision's ToTensor convention) data-set images are given as pixels / 255,
    else as the pixels; its random images spread over every code of its input quantizer."""
    spec = build.get("spec") or {}
    shape = spec.get("input", {})
    adapter = build_adapter(build)
    if input_file is not None:
        images = load_inputs(input_file, shape)
        labels = None
        if labels_file is not None:
            labels = np.load(labels_file, allow_pickle=False)
            if labels.shape != (len(images),) or not np.issubdtype(labels.dtype, np.integer):
                raise PascalError(f"{labels_file}: expected {len(images)} integer labels, got "
                                  f"{labels.dtype} of shape {list(labels.shape)}")
        count = len(images) if samples is None else min(samples, len(images))
        if count < 1:
            raise PascalError(f"--images must be >= 1, got {samples}")
        return (images[:count], None if labels is None else labels[:count],
                f"{count} inputs of {Path(input_file).name}")
    if random is not None:
        if random < 1:
            raise PascalError(f"--random must be >= 1, got {random}")
        if not shape:
            raise PascalError("the build does not record its input shape; pass --dataset")
        rng = np.random.default_rng(seed)
        size = (random, shape["channels"], shape["height"], shape["width"])
        if adapter is not None:
            return (adapter.random_inputs(rng, size), None,
                    f"{random} random inputs over the input quantizer's codes (seed {seed})")
        images = rng.integers(0, 2 ** shape["bits"], size=size)
        return images.astype(np.float32), None, f"{random} random images (seed {seed})"
    source = build.get("source", {})
    name = dataset or source.get("dataset")
    if name is None:
        raise PascalError("the build does not say its data set; pass --dataset or --random N "
                          "(or --input FILE.npy)")
    # the data folder is the user's (--data-dir) or the data set's default: a folder recorded
    # in the model's metadata is never read
    data = datasets.load_dataset(name, data_dir)
    if shape:
        expected = (shape["channels"], shape["height"], shape["width"])
        if tuple(data.test_images.shape[1:]) != expected:
            raise PascalError(f"{data.name}: images of shape {data.test_images.shape[1:]}, the "
                              f"model takes {expected}")
    count = len(data.test_images) if samples is None else min(samples, len(data.test_images))
    if count < 1:
        raise PascalError(f"--images must be >= 1, got {samples}")
    images = data.test_images[:count].astype(np.float32)
    if adapter is not None and adapter.takes_unit_range():
        return (images / np.float32(255), data.test_labels[:count],
                f"{count} test images of {data.name} (pixels / 255)")
    return images, data.test_labels[:count], f"{count} test images of {data.name}"


def qcfs_tensors(qonnx_model) -> list[str]:
    """The QCFS activations' output tensors of an exported model; every later step keeps these
    names for the same layers' levels."""
    first = input_quantizer(qonnx_model)
    return [node.output[0] for node in activation_quant_nodes(qonnx_model) if node is not first]


def integer_outputs(model, ctx: dict[str, np.ndarray], names: list[str], out_scale: float
                    ) -> dict[str, np.ndarray]:
    """The integer content of any step's execution: each QCFS tensor as levels (a Quant's output
    divided by its scale; later steps carry levels already) and the classifier's integer
    accumulators (logits / out_scale, rounded, until the IR outputs them directly)."""
    values = {}
    for name in names:
        producer = model.find_producer(name)
        value = ctx[name].astype(np.float64)
        if producer.op_type == "Quant":
            value = np.rint(value / float(model.get_initializer(producer.input[1])))
        values[name] = value
    output = model.graph.output[0].name
    value = ctx[output].astype(np.float64)
    classifier = model.find_producer(output).op_type == "SpikingClassifier"
    values[output] = value if classifier else np.rint(value / out_scale)
    return values

