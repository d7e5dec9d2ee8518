#!/usr/bin/env python3
"""Run bad or hostile inputs against the ``pascal-fpga`` command line of a source tree and print a
markdown table of what happened: the "before / after" of the robustness work.

    python scripts/bad_inputs.py --source DIR [--only NAME,...] [--json OUT] [--keep]

Each case runs ``sys.executable -m pascal_fpga.cli ...`` as a subprocess with ``PYTHONPATH=DIR``
(so the same script measures an old worktree and the current tree), in a fresh folder of a
temporary scratch root, under umask 022, with a per-case timeout and an 8 GiB address-space limit
(``RLIMIT_AS``) so that a case that asks for absurd amounts of memory fails instead of taking the
machine. Shared fixtures are made once per run with the tree under test: a calibrated digits run
(``train models/digits-cnn.yaml --dataset digits --epochs 0``), its export and a compiled build.

A row: the case, the command (short), its exit status, whether stderr is exactly one line without a
traceback, the side-effect check of the case (marker file created, user file survived, ...) and
the first 90 characters of the last stderr line. A case that breaks the harness itself is an error
row; the run goes on. Progress goes to stderr, the table to stdout.

Run it with the project's virtual environment (torch, onnx and PyYAML are used to build the
crafted inputs): ``.venv/bin/python scripts/bad_inputs.py --source .``
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import json
import os
import pickle
import resource
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

MEM_LIMIT = 8 << 30          # bytes of address space per command
CASE_TIMEOUT = 300           # seconds per command
SOURCE_KEY = "pascal_fpga.source"
VITIS_COMMANDS = ("open_project", "set_top", "add_files", "open_solution", "set_part",
                  "create_clock", "csim_design", "csynth_design", "cosim_design", "export_design")


# ------------------------------------------------------------------------------------------------
# running commands


@dataclass
class Result:
    args: list[str]
    rc: int | None            # None: timed out
    stdout: str
    stderr: str
    seconds: float

    @property
    def timed_out(self) -> bool:
        return self.rc is None

    @property
    def lines(self) -> list[str]:
        return self.stderr.rstrip("\n").splitlines() if self.stderr.strip() else []

    @property
    def traceback(self) -> bool:
        return "Traceback" in self.stderr

    @property
    def one_line(self) -> bool:
        return len(self.lines) == 1 and not self.traceback

    @property
    def last_line(self) -> str:
        lines = [line for line in self.lines if line.strip()]
        return lines[-1].strip() if lines else ""


def _limit_child() -> None:
    """In the child, before exec: umask 022 and an address-space limit."""
    os.umask(0o022)
    resource.setrlimit(resource.RLIMIT_AS, (MEM_LIMIT, MEM_LIMIT))


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


class Harness:
    def __init__(self, source: Path, root: Path, timeout: float):
        self.source = source
        self.root = root
        self.timeout = timeout
        self.fixture_dir = root / "fx"
        self._fixtures: dict[str, Path | Exception] = {}
        self.fixture_log: list[dict] = []

    # -- environment ------------------------------------------------------------------------------

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PYTHONPATH"] = str(self.source)
        env["PYTHONDONTWRITEBYTECODE"] = "1"   # leave no __pycache__ in the tree under test
        return env

    def spec(self, name: str) -> Path:
        return self.source / "models" / name

    def start(self, args: list[str], cwd: Path) -> subprocess.Popen:
        """Start ``python -m pascal_fpga.cli ARGS`` in its own process group."""
        return subprocess.Popen([sys.executable, "-m", "pascal_fpga.cli", *map(str, args)],
                                cwd=cwd, env=self.env(), stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                errors="replace", preexec_fn=_limit_child,
                                start_new_session=True)

    def finish(self, proc: subprocess.Popen, args, started: float,
               timeout: float | None = None) -> Result:
        try:
            out, err = proc.communicate(timeout=timeout or self.timeout)
            rc = proc.returncode
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            out, err = proc.communicate()
            rc = None
        _kill_group(proc)   # anything the command left running in its group
        return Result([str(a) for a in args], rc, out, err, time.monotonic() - started)

    def cli(self, args: list, cwd: Path, timeout: float | None = None) -> Result:
        started = time.monotonic()
        return self.finish(self.start(args, cwd), args, started, timeout)

    # -- shared fixtures --------------------------------------------------------------------------

    def fixture(self, name: str) -> Path:
        """``run``, ``model`` or ``build`` under the scratch root, made on first use."""
        if name not in self._fixtures:
            try:
                self._fixtures[name] = self._make_fixture(name)
            except Exception as exc:  # noqa: BLE001 - remembered, raised for every case needing it
                self._fixtures[name] = exc
        value = self._fixtures[name]
        if isinstance(value, Exception):
            raise FixtureError(f"fixture {name} unavailable: {value}")
        return value

    def _make_fixture(self, name: str) -> Path:
        self.fixture_dir.mkdir(exist_ok=True)
        if name == "run":
            args = ["train", self.spec("digits-cnn.yaml"), "--dataset", "digits", "--epochs", "0",
                    "--out", "run"]
            path = self.fixture_dir / "run"
        elif name == "model":
            self.fixture("run")
            args = ["export", "run", "--out", "model.onnx"]
            path = self.fixture_dir / "model.onnx"
        elif name == "build":
            self.fixture("model")
            args = ["compile", "model.onnx", "--out", "build"]
            path = self.fixture_dir / "build"
        else:
            raise ValueError(name)
        progress(f"  fixture {name}: {' '.join(map(str, args))}")
        result = self.cli(args, self.fixture_dir)
        self.fixture_log.append({"fixture": name, "args": result.args, "rc": result.rc,
                                 "seconds": round(result.seconds, 1),
                                 "last_stderr": result.last_line})
        if result.rc != 0 or not path.exists():
            raise FixtureError(f"{' '.join(result.args)} exited {result.rc}: {result.last_line}")
        return path


class FixtureError(Exception):
    pass


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------------
# helpers for crafting inputs and checking side effects


class _Payload:
    """Unpickling this runs a shell command: the hostile object in crafted pickles."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def yes(flag: bool) -> str:
    return "yes" if flag else "no"


def marker_created(marker: Path) -> bool:
    """The marker, or any file starting with its name (a shell or tcl line may append text)."""
    folder = marker.parent
    return folder.is_dir() and any(p.name.startswith(marker.name) for p in folder.iterdir())


def file_digest(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def tree_digest(path: Path) -> dict[str, str]:
    out = {}
    if not path.is_dir():
        return out
    for p in sorted(path.rglob("*")):
        if p.is_file() and not p.is_symlink():
            out[str(p.relative_to(path))] = file_digest(p) or "?"
    return out


def tree_change(before: dict[str, str], after: dict[str, str]) -> str:
    removed = [k for k in before if k not in after]
    added = [k for k in after if k not in before]
    changed = [k for k in before if k in after and before[k] != after[k]]
    if not (removed or added or changed):
        return "unchanged"
    parts = []
    for label, names in (("removed", removed), ("changed", changed), ("added", added)):
        if names:
            parts.append(f"{len(names)} {label}")
    return ", ".join(parts)


def copy_tree(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, symlinks=True)
    return dst


def load_onnx(path: Path):
    import onnx

    return onnx.load(str(path))


def _metadata_entries(model):
    """Every metadata entry with the source key, graph-level (qonnx) and model-level."""
    return [p for props in (model.graph.metadata_props, model.metadata_props)
            for p in props if p.key == SOURCE_KEY]


def get_source(model) -> dict:
    for entry in _metadata_entries(model):
        try:
            return json.loads(entry.value)
        except json.JSONDecodeError:
            return {}
    return {}


def set_source_text(model, text: str) -> None:
    entries = _metadata_entries(model)
    if not entries:
        entry = model.graph.metadata_props.add()
        entry.key = SOURCE_KEY
        entries = [entry]
    for entry in entries:
        entry.value = text


def model_copy(h: Harness, dst: Path, edit: Callable) -> Path:
    """A copy of the fixture model, ``edit(model)`` applied; returns the path."""
    import onnx

    model = load_onnx(h.fixture("model"))
    edit(model)
    onnx.save(model, str(dst))
    return dst


def with_source(spec_name: str | None = None, **changes):
    """An edit that updates keys of the source metadata (``spec_name``: the spec's name too)."""
    def edit(model):
        info = get_source(model)
        info.update(changes)
        if spec_name is not None and isinstance(info.get("spec"), dict):
            info["spec"]["name"] = spec_name
        set_source_text(model, json.dumps(info, sort_keys=True))
    return edit


def renamed(name: str):
    return with_source(name=name, spec_name=name)


def initializer(model, name: str):
    for init in model.graph.initializer:
        if init.name == name:
            return init
    return None


def edit_initializer(model, name: str, change: Callable) -> None:
    from onnx import numpy_helper

    init = initializer(model, name)
    array = numpy_helper.to_array(init).copy()
    array = change(array)
    init.CopyFrom(numpy_helper.from_array(array, name))


def first_activation_quant(model):
    """The first QCFS activation: a Quant node fed by a computed tensor (not an initializer, and
    not the graph input, whose Quant is the pixel quantizer)."""
    inits = {i.name for i in model.graph.initializer}
    inputs = {i.name for i in model.graph.input}
    for node in model.graph.node:
        if node.op_type == "Quant" and node.input[0] not in inits | inputs:
            return node
    raise RuntimeError("no Quant node with a non-initializer input")


def bn_scale_initializer(model) -> str:
    """The scale of the first BatchNormalization, else the initializer of a Mul after a Conv."""
    inits = {i.name for i in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "BatchNormalization" and node.input[1] in inits:
            return node.input[1]
    producers = {out: node for node in model.graph.node for out in node.output}
    for node in model.graph.node:
        if node.op_type in ("Mul", "Add"):
            data = [i for i in node.input if i not in inits]
            const = [i for i in node.input if i in inits]
            if data and const and producers.get(data[0]) is not None \
                    and producers[data[0]].op_type == "Conv":
                return const[0]
    raise RuntimeError("no BatchNorm scale or Mul/Add after a Conv found")


def crafted_run(h: Harness, dst: Path, marker: Path) -> Path:
    """A copy of the fixture run whose checkpoint also holds an object that runs ``touch``."""
    import torch

    run = h.fixture("run")
    dst.mkdir()
    for name in ("spec.yaml", "metrics.json"):
        if (run / name).is_file():
            shutil.copy2(run / name, dst / name)
    state = torch.load(run / "checkpoint.pt", map_location="cpu", weights_only=False)
    state["notes"] = _Payload(f"touch {marker}")
    torch.save(state, dst / "checkpoint.pt")
    return dst


def tcl_check(tcl: Path, workdir: Path, marker: Path) -> str:
    """Run a copy of run_hls.tcl under tclsh with the Vitis commands stubbed out; say whether the
    marker appeared. Without tclsh: whether the script has a line starting with exec."""
    if not tcl.is_file():
        return "no run_hls.tcl"
    text = tcl.read_text(errors="replace")
    tclsh = shutil.which("tclsh")
    if tclsh is None:
        has_exec = any(line.lstrip().startswith("exec") for line in text.splitlines())
        return f"no tclsh; tcl has an exec line: {yes(has_exec)}"
    workdir.mkdir(parents=True, exist_ok=True)
    stubs = "".join(f"proc {name} {{args}} {{}}\n" for name in VITIS_COMMANDS)
    stubs += "rename exit __real_exit\nproc exit {args} {}\n"
    script = workdir / "run_hls_stubbed.tcl"
    script.write_text(stubs + text + "\n__real_exit 0\n")
    try:
        result = subprocess.run([tclsh, str(script)], cwd=workdir, capture_output=True,
                                text=True, timeout=60, stdin=subprocess.DEVNULL)
        rc = result.returncode
    except subprocess.TimeoutExpired:
        rc = "timeout"
    return f"tclsh exit {rc}, marker created: {yes(marker_created(marker))}"


def metrics_of(run: Path) -> dict | None:
    try:
        return json.loads((run / "metrics.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None


# ------------------------------------------------------------------------------------------------
# rows


@dataclass
class Row:
    case: str
    command: str
    exit: str
    one_line: str
    check: str
    last_line: str
    seconds: float = 0.0
    details: dict = field(default_factory=dict)


def exit_text(result: Result) -> str:
    if result.rc is None:
        return "timeout"
    if result.rc < 0:
        try:
            return f"{signal.Signals(-result.rc).name}"
        except ValueError:
            return f"signal {-result.rc}"
    return str(result.rc)


def one_line_text(result: Result) -> str:
    if result.one_line:
        return "yes"
    n = len(result.lines)
    if n == 0:
        return "no (empty)"
    return f"no ({n} line{'s' if n != 1 else ''}{', Traceback' if result.traceback else ''})"


class Case:
    """Context of one case: its folder, a shortener for commands, and the row it builds."""

    def __init__(self, h: Harness, name: str, folder: Path):
        self.h = h
        self.name = name
        self.dir = folder
        self.results: list[Result] = []

    def short(self, args) -> str:
        text = " ".join(map(str, args))
        for prefix, repl in ((str(self.dir) + "/", ""), (str(self.h.root) + "/", ""),
                             (str(self.h.source) + "/", "")):
            text = text.replace(prefix, repl)
        text = text.replace("\n", "\\n")
        return text if len(text) <= 80 else text[:77] + "..."

    def cli(self, args: list, timeout: float | None = None) -> Result:
        result = self.h.cli(args, self.dir, timeout)
        self.results.append(result)
        progress(f"    {self.short(args)} -> {exit_text(result)} ({result.seconds:.1f} s)")
        return result

    def row(self, result: Result, check: str, **details) -> Row:
        return Row(self.name, self.short(result.args), exit_text(result), one_line_text(result),
                   check, result.last_line[:90], details=details)


# ------------------------------------------------------------------------------------------------
# the cases


def case_out_dot(c: Case) -> Row:
    keep = c.dir / "keep.txt"
    keep.write_text("the user's file\n")
    digest = file_digest(keep)
    r = c.cli(["compile", c.h.fixture("model"), "--out", "."])
    return c.row(r, f"keep.txt survived: {yes(file_digest(keep) == digest)}")


def case_out_run(c: Case) -> Row:
    run = copy_tree(c.h.fixture("run"), c.dir / "RUN")
    before = file_digest(run / "checkpoint.pt")
    r = c.cli(["compile", c.h.fixture("model"), "--out", "RUN"])
    after = file_digest(run / "checkpoint.pt")
    survived = after is not None and after == before
    return c.row(r, f"checkpoint.pt survived unchanged: {yes(survived)}")


def case_adapt_over_run(c: Case) -> Row:
    run2 = copy_tree(c.h.fixture("run"), c.dir / "run2")
    (run2 / "notes.txt").write_text("the user's notes\n")
    before = tree_digest(run2)
    r = c.cli(["adapt", c.h.fixture("run"), "--out", "run2", "--epochs", "0"])
    change = tree_change(before, tree_digest(run2))
    return c.row(r, f"run2 unchanged: {yes(change == 'unchanged')}"
                    + ("" if change == "unchanged" else f" ({change})"))


def case_crafted_checkpoint(c: Case) -> Row:
    marker = c.dir / "MARKER"
    crafted_run(c.h, c.dir / "evilrun", marker)
    r = c.cli(["eval", "evilrun"])
    return c.row(r, f"marker created: {yes(marker_created(marker))}")


def case_crafted_metadata_run(c: Case) -> Row:
    marker = c.dir / "MARKER"
    evil = crafted_run(c.h, c.dir / "evilrun", marker)
    model_copy(c.h, c.dir / "model_c.onnx", with_source(run_dir=str(evil)))
    rc = c.cli(["compile", "model_c.onnx", "--out", "build_c"])
    after_compile = marker_created(marker)
    if rc.rc != 0:
        return c.row(rc, f"compile failed; marker created: {yes(after_compile)}")
    rv = c.cli(["verify", "build_c", "--random", "2", "--no-snn"])
    return c.row(rv, f"compile exit 0; marker created: {yes(marker_created(marker))}"
                     + (" (by compile)" if after_compile else ""))


def _cifar_batch(n: int, seed: int, extra=None) -> bytes:
    import numpy as np

    rng = np.random.default_rng(seed)
    batch = {b"batch_label": b"tiny", b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
             b"labels": [int(v) for v in rng.integers(0, 10, n)],
             b"filenames": [b"img%d.png" % i for i in range(n)]}
    if extra is not None:
        batch[b"notes"] = extra
    return pickle.dumps(batch, protocol=2)


def case_crafted_cifar(c: Case) -> Row:
    marker = c.dir / "MARKER"
    folder = c.dir / "cifar"
    folder.mkdir()
    for i in range(1, 6):
        extra = _Payload(f"touch {marker}") if i == 1 else None
        (folder / f"data_batch_{i}").write_bytes(_cifar_batch(20, i, extra))
    (folder / "test_batch").write_bytes(_cifar_batch(20, 0))
    r = c.cli(["train", c.h.spec("cifar10-vgg11.yaml"), "--dataset", "cifar10", "--data-dir",
               "cifar", "--epochs", "0", "--out", "r"])
    return c.row(r, f"marker created: {yes(marker_created(marker))}")


def case_name_make(c: Case) -> Row:
    marker = c.dir / "MARKER"
    model_copy(c.h, c.dir / "model_n.onnx", renamed(f"x\n$(shell touch {marker})"))
    rc = c.cli(["compile", "model_n.onnx", "--out", "build"])
    if rc.rc != 0:
        return c.row(rc, f"compile accepted: no; marker created: {yes(marker_created(marker))}")
    after_compile = marker_created(marker)
    rv = c.cli(["verify", "build", "--random", "1", "--no-snn", "--csim"])
    return c.row(rv, f"compile accepted: yes; marker created: {yes(marker_created(marker))}"
                     + (" (by compile)" if after_compile else ""))


def case_name_tcl(c: Case) -> Row:
    marker = c.dir / "MARKER"
    model_copy(c.h, c.dir / "model_n.onnx", renamed(f"x\nexec touch {marker}"))
    r = c.cli(["compile", "model_n.onnx", "--out", "build"])
    if r.rc != 0:
        return c.row(r, f"compile accepted: no; marker created: {yes(marker_created(marker))}")
    return c.row(r, "compile accepted: yes; "
                    + tcl_check(c.dir / "build" / "hls" / "run_hls.tcl", c.dir / "tcl", marker))


def case_name_dotdot(c: Case) -> Row:
    model_copy(c.h, c.dir / "model_n.onnx", renamed("../../../x"))
    r = c.cli(["compile", "model_n.onnx", "--out", "build"])
    tcl = c.dir / "build" / "hls" / "run_hls.tcl"
    if r.rc != 0 or not tcl.is_file():
        return c.row(r, "compile accepted: no")
    lines = [line for line in tcl.read_text().splitlines() if line.startswith("open_project")]
    dotdot = any("../" in line for line in lines)
    return c.row(r, f"compile accepted: yes; open_project has '../': {yes(dotdot)}",
                 open_project=lines)


def case_part_tcl(c: Case) -> Row:
    marker = c.dir / "MARKER"
    r = c.cli(["compile", c.h.fixture("model"), "--out", "b", "--part",
               f"xc7z020clg400-1}} ; exec touch {marker} ;#"])
    if r.rc != 0:
        return c.row(r, f"compile accepted: no; marker created: {yes(marker_created(marker))}")
    return c.row(r, "compile accepted: yes; "
                    + tcl_check(c.dir / "b" / "hls" / "run_hls.tcl", c.dir / "tcl", marker))


def _user_file(c: Case) -> tuple[Path, str]:
    path = c.dir / "file.txt"
    path.write_text("the user's file\n")
    return path, file_digest(path)


def case_out_is_file(c: Case) -> Row:
    path, digest = _user_file(c)
    r = c.cli(["compile", c.h.fixture("model"), "--out", "file.txt"])
    return c.row(r, f"file survived unchanged: {yes(file_digest(path) == digest)}")


def case_out_under_file(c: Case) -> Row:
    path, digest = _user_file(c)
    r = c.cli(["compile", c.h.fixture("model"), "--out", "file.txt/sub"])
    return c.row(r, f"file survived unchanged: {yes(file_digest(path) == digest)}")


def case_train_out_under_file(c: Case) -> Row:
    path, digest = _user_file(c)
    r = c.cli(["train", c.h.spec("digits-cnn.yaml"), "--dataset", "digits", "--epochs", "0",
               "--out", "file.txt/run"])
    return c.row(r, f"file survived unchanged: {yes(file_digest(path) == digest)}")


def case_concurrent_compile(c: Case, n: int = 16) -> Row:
    model = c.h.fixture("model")
    args = ["compile", model, "--out", "same"]
    started = time.monotonic()
    procs = [c.h.start(args, c.dir) for _ in range(n)]
    deadline = started + max(c.h.timeout, 600)
    results = [c.h.finish(p, args, started, max(1.0, deadline - time.monotonic()))
               for p in procs]
    seconds = time.monotonic() - started
    progress(f"    {n} x {c.short(args)} ({seconds:.1f} s)")
    failed = [r for r in results if r.rc != 0]
    tracebacks = sum(r.traceback for r in results)
    multi = sum(not r.one_line for r in failed)
    codes = collections.Counter(exit_text(r) for r in results)
    last = collections.Counter(r.last_line for r in failed)
    build_ok = False
    try:
        build_ok = isinstance(json.loads((c.dir / "same" / "build.json").read_text()), dict) \
            and (c.dir / "same" / "hls" / "run_hls.tcl").is_file()
    except (OSError, json.JSONDecodeError):
        pass
    leftovers = sorted(p.name for p in c.dir.iterdir() if p.name != "same")
    return Row(c.name, f"{n} x " + c.short(args), f"{len(failed)}/{n} non-zero",
               f"{tracebacks} tracebacks, {multi} failures not one line",
               f"valid build at the end: {yes(build_ok)}; leftovers: {len(leftovers)}; "
               f"exits {dict(codes)}",
               (last.most_common(1)[0][0] if last else "")[:90],
               details={"exits": dict(codes), "failure_lines": dict(last),
                        "leftovers": leftovers})


def case_lr_nan(c: Case) -> Row:
    r = c.cli(["train", c.h.spec("digits-cnn.yaml"), "--dataset", "digits", "--epochs", "1",
               "--lr", "nan", "--out", "r"])
    m = metrics_of(c.dir / "r")
    return c.row(r, f"run written: {yes(m is not None)}"
                    + (f"; test accuracy {m.get('test_accuracy')}" if m else ""))


def case_calibration_zero(c: Case) -> Row:
    r = c.cli(["adapt", c.h.fixture("run"), "--out", "r2", "--calibration", "0",
               "--epochs", "0"])
    return c.row(r, f"run written: {yes(metrics_of(c.dir / 'r2') is not None)}")


def case_batch_too_big(c: Case) -> Row:
    r = c.cli(["train", c.h.spec("digits-cnn.yaml"), "--dataset", "digits", "--epochs", "1",
               "--batch-size", "5000", "--out", "r"])
    m = metrics_of(c.dir / "r")
    extra = ""
    if m:
        hist = m.get("history") or [{}]
        extra = (f"; epochs {m.get('epochs')}, last epoch train_loss {hist[-1].get('train_loss')}"
                 f" train_accuracy {hist[-1].get('train_accuracy')}")
    return c.row(r, f"run written: {yes(m is not None)}{extra}")


def case_channels_huge(c: Case) -> Row:
    import yaml

    spec = yaml.safe_load(c.h.spec("digits-cnn.yaml").read_text())
    first = next(layer for layer in spec["layers"] if layer.get("type") == "conv")
    first["channels"] = 1_000_000
    (c.dir / "huge.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    r = c.cli(["train", "huge.yaml", "--dataset", "digits", "--epochs", "0", "--out", "r"])
    return c.row(r, f"{r.seconds:.0f} s; run written: {yes(metrics_of(c.dir / 'r') is not None)}")


def case_metrics_invalid(c: Case) -> Row:
    run = copy_tree(c.h.fixture("run"), c.dir / "run")
    (run / "metrics.json").write_text("{not json")
    r = c.cli(["eval", "run"])
    return c.row(r, "")


def case_build_json_shape(c: Case) -> Row:
    build = copy_tree(c.h.fixture("build"), c.dir / "copy")
    (build / "build.json").write_text("[]")
    r = c.cli(["verify", "copy", "--random", "1", "--no-snn"])
    return c.row(r, "")


def case_ir_truncated(c: Case) -> Row:
    build = copy_tree(c.h.fixture("build"), c.dir / "copy")
    last = sorted((build / "ir").glob("*.onnx"))[-1]
    last.write_bytes(last.read_bytes()[:100])
    r = c.cli(["simulate", "copy", "--random", "--images", "1"])
    return c.row(r, f"truncated {last.name}")


def case_metadata_invalid(c: Case) -> Row:
    model_copy(c.h, c.dir / "m.onnx", lambda m: set_source_text(m, "{oops"))
    r = c.cli(["compile", "m.onnx", "--out", "b"])
    return c.row(r, f"compile accepted: {yes(r.rc == 0)}")


def case_nan_bn(c: Case) -> Row:
    import numpy as np

    chosen = {}

    def edit(model):
        name = bn_scale_initializer(model)
        chosen["name"] = name

        def poison(a):
            a = a.astype(np.float32) if a.dtype.kind != "f" else a
            a.reshape(-1)[0] = np.nan
            return a
        edit_initializer(model, name, poison)

    model_copy(c.h, c.dir / "m.onnx", edit)
    r = c.cli(["compile", "m.onnx", "--out", "b"])
    warnings = sum("RuntimeWarning" in line for line in r.lines)
    params = c.dir / "b" / "hls" / "firmware" / "parameters.h"
    int_min = params.is_file() and "-9223372036854775808" in params.read_text(errors="replace")
    return c.row(r, f"NaN in {chosen.get('name')}; {warnings} RuntimeWarning lines; "
                    f"-9223372036854775808 in parameters.h: {yes(int_min)}")


def _quant_case(c: Case, edit_node: Callable) -> Row:
    chosen = {}

    def edit(model):
        node = first_activation_quant(model)
        chosen["node"] = node.name
        edit_node(model, node)

    model_copy(c.h, c.dir / "m.onnx", edit)
    r = c.cli(["compile", "m.onnx", "--out", "b"])
    if r.rc != 0:
        return c.row(r, f"{chosen.get('node')} edited; compile accepted: no")
    rv = c.cli(["verify", "b", "--random", "10", "--no-snn", "--json"])
    try:
        report = json.loads(rv.stdout)
        mism = ", ".join(f"{ch['name']} {ch['mismatched']}" for ch in report.get("checks", []))
        verdict = f"verify exit {exit_text(rv)}, mismatched: {mism or 'no checks'}"
    except (json.JSONDecodeError, TypeError, KeyError, AttributeError):
        verdict = f"verify exit {exit_text(rv)} ({rv.last_line[:60]})"
    return c.row(r, f"{chosen.get('node')} edited; compile accepted: yes; {verdict}",
                 verify_last_stderr=rv.last_line)


def case_quant_narrow(c: Case) -> Row:
    import onnx

    def edit(model, node):
        for attr in node.attribute:
            if attr.name == "narrow":
                attr.i = 1
                return
        node.attribute.append(onnx.helper.make_attribute("narrow", 1))
    return _quant_case(c, edit)


def case_quant_neg_scale(c: Case) -> Row:
    return _quant_case(c, lambda model, node: edit_initializer(model, node.input[1],
                                                               lambda a: -a))


def case_quant_zero_scale(c: Case) -> Row:
    return _quant_case(c, lambda model, node: edit_initializer(model, node.input[1],
                                                               lambda a: a * 0))


def case_fifo_huge(c: Case) -> Row:
    folding = json.loads((c.h.fixture("build") / "ir" / "folding.json").read_text())
    first = next(iter(folding))
    (c.dir / "fold.json").write_text(json.dumps({first: {"fifo_depth": 10 ** 12}}))
    r = c.cli(["compile", c.h.fixture("model"), "--out", "b", "--folding", "fold.json"])
    top = c.dir / "b" / "hls" / "firmware" / "pascal_top.cpp"
    in_hls = top.is_file() and str(10 ** 12) in top.read_text(errors="replace")
    return c.row(r, f"layer {first}; compile accepted: {yes(r.rc == 0)}; depth 10^12 in "
                    f"pascal_top.cpp: {yes(in_hls)}")


def case_resume_other_spec(c: Case) -> Row:
    run = copy_tree(c.h.fixture("run"), c.dir / "RUNCOPY")
    before = tree_digest(run)
    r = c.cli(["train", c.h.spec("fmnist-cnn.yaml"), "--dataset", "digits", "--resume",
               "--out", "RUNCOPY", "--epochs", "1"])
    change = tree_change(before, tree_digest(run))
    return c.row(r, f"went on silently: {yes(r.rc == 0)}; run {change}")


def case_resume_fewer_epochs(c: Case) -> Row:
    base = ["train", c.h.spec("digits-cnn.yaml"), "--dataset", "digits", "--out", "r"]
    setup = c.cli(base + ["--epochs", "2"])
    if setup.rc != 0:
        return c.row(setup, "setup (2 epochs) failed")
    r = c.cli(base + ["--resume", "--epochs", "1"])
    m = metrics_of(c.dir / "r")
    if m is None:
        return c.row(r, "no metrics.json")
    return c.row(r, f"metrics epochs {m.get('epochs')}, history {len(m.get('history', []))}")


def _foreign_spec(c: Case, change: Callable) -> Row:
    import yaml

    run = copy_tree(c.h.fixture("run"), c.dir / "frun")
    spec = yaml.safe_load((run / "spec.yaml").read_text())
    spec["name"] = "digits-other"
    change(next(layer for layer in spec["layers"] if layer.get("type") == "conv"))
    (run / "spec.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    r = c.cli(["eval", "frun"])
    return c.row(r, f"accepted silently: {yes(r.rc == 0)}"
                    + (f" ({r.stdout.strip()[:60]})" if r.rc == 0 else ""))


def case_foreign_checkpoint(c: Case) -> Row:
    """spec.yaml of a different spec with the same shapes (first conv's L 8 -> 2)."""
    return _foreign_spec(c, lambda layer: layer.update(levels=2))


def case_foreign_checkpoint_shape(c: Case) -> Row:
    """spec.yaml of a different spec with other shapes (first conv 16 -> 8 channels)."""
    return _foreign_spec(c, lambda layer: layer.update(channels=8))


def _ctrl_c(c: Case, trigger: str, what: str) -> Row:
    """Start ``eval RUN``, send one SIGINT as soon as /proc/PID/maps shows ``trigger``."""
    run = c.h.fixture("run")
    args = ["eval", run]
    started = time.monotonic()
    proc = c.h.start(args, c.dir)
    maps = Path(f"/proc/{proc.pid}/maps")
    sent = None
    while proc.poll() is None and time.monotonic() - started < 120:
        try:
            if trigger in maps.read_text():
                os.kill(proc.pid, signal.SIGINT)
                sent = time.monotonic() - started
                break
        except (OSError, UnicodeDecodeError):
            pass
        time.sleep(0.002)
    r = c.h.finish(proc, args, started)
    c.results.append(r)
    progress(f"    {c.short(args)} + SIGINT -> {exit_text(r)} ({r.seconds:.1f} s)")
    how = f"SIGINT at {sent:.2f} s ({what} mapped)" if sent is not None \
        else f"{what} never seen mapped: no SIGINT sent"
    return c.row(r, f"{how}; exit 130: {yes(r.rc == 130)}")


def case_ctrl_c_import(c: Case) -> Row:
    """SIGINT as soon as torch's shared library is mapped (early in ``import torch``)."""
    return _ctrl_c(c, "libtorch", "libtorch")


def case_ctrl_c_import_dynamo(c: Case) -> Row:
    """SIGINT as soon as numpy.fft's extension is mapped: that happens inside Brevitas' import,
    while it touches ``torch._dynamo`` under a bare ``except:`` that swallows KeyboardInterrupt."""
    return _ctrl_c(c, "_pocketfft", "numpy.fft _pocketfft")


def case_build_mode(c: Case) -> Row:
    r = c.cli(["compile", c.h.fixture("model"), "--out", "fresh"])
    try:
        mode = stat.S_IMODE((c.dir / "fresh").stat().st_mode)
        text = f"mode {mode:04o} (umask 022)"
    except OSError:
        text = "no build folder"
    return c.row(r, text)


CASES: dict[str, Callable[[Case], Row]] = {
    name[len("case_"):]: fn for name, fn in list(globals().items()) if name.startswith("case_")
}


# ------------------------------------------------------------------------------------------------
# main


def run_case(h: Harness, name: str) -> Row:
    folder = h.root / "cases" / name
    folder.mkdir(parents=True)
    c = Case(h, name, folder)
    started = time.monotonic()
    try:
        row = CASES[name](c)
    except FixtureError as exc:
        row = Row(name, "-", "error", "-", "fixture missing", str(exc)[:90])
    except Exception as exc:  # noqa: BLE001 - a broken case is a row, not the end of the run
        row = Row(name, "-", "harness error", "-", f"{type(exc).__name__}",
                  f"{type(exc).__name__}: {exc}"[:90],
                  details={"traceback": traceback.format_exc()})
    row.seconds = time.monotonic() - started
    row.details["commands"] = [{"args": [c.short([a]) for a in r.args], "rc": r.rc,
                                "seconds": round(r.seconds, 1),
                                "stderr_tail": r.stderr.splitlines()[-15:],
                                "stdout_tail": r.stdout.splitlines()[-5:]}
                               for r in c.results]
    return row


def _cell(text: str) -> str:
    return str(text).replace("\n", "\\n").replace("|", "\\|").replace("`", "'")


def markdown(rows: list[Row]) -> str:
    header = ["case", "command", "exit", "stderr one line", "check", "last stderr line"]
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [row.case, f"`{_cell(row.command)}`", row.exit, row.one_line, row.check,
                 f"`{_cell(row.last_line)}`" if row.last_line else ""]
        out.append("| " + " | ".join(_cell(c) if i not in (1, 5) else c
                                     for i, c in enumerate(cells)) + " |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", required=True, help="the source tree to test (holds "
                        "pascal_fpga/ and models/)")
    parser.add_argument("--only", help="comma-separated case names (default: all); "
                        "--list shows them")
    parser.add_argument("--list", action="store_true", help="list the cases and exit")
    parser.add_argument("--json", help="also write the rows (with stderr tails) to this file")
    parser.add_argument("--timeout", type=float, default=CASE_TIMEOUT,
                        help=f"seconds per command (default {CASE_TIMEOUT})")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder")
    args = parser.parse_args(argv)
    if args.list:
        print("\n".join(CASES))
        return 0
    source = Path(args.source).resolve()
    if not (source / "pascal_fpga" / "cli.py").is_file():
        parser.error(f"{source}: no pascal_fpga/cli.py here")
    names = list(CASES)
    if args.only:
        names = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = [n for n in names if n not in CASES]
        if unknown:
            parser.error(f"unknown case(s): {', '.join(unknown)}; known: {', '.join(CASES)}")
    root = Path(tempfile.mkdtemp(prefix="bad_inputs."))
    h = Harness(source, root, args.timeout)
    started = time.monotonic()
    progress(f"bad_inputs: {len(names)} cases against {source}, scratch {root}")
    rows = []
    for i, name in enumerate(names, 1):
        progress(f"[{i}/{len(names)}] {name}")
        row = run_case(h, name)
        progress(f"[{i}/{len(names)}] {name}: exit {row.exit}; {row.check} "
                 f"({row.seconds:.1f} s)")
        rows.append(row)
    total = time.monotonic() - started
    fixtures = ", ".join(f"{f['fixture']} {f['seconds']} s" for f in h.fixture_log)
    print(f"Source tree: `{source}`; {len(rows)} cases in {total:.0f} s (fixtures: {fixtures})\n")
    print(markdown(rows))
    if args.json:
        Path(args.json).write_text(json.dumps({
            "source": str(source), "seconds": round(total, 1), "fixtures": h.fixture_log,
            "rows": [{**{k: v for k, v in row.__dict__.items() if k != "details"},
                      "seconds": round(row.seconds, 1), "details": row.details}
                     for row in rows]}, indent=2))
    if args.keep:
        progress(f"scratch kept in {root}")
    else:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
