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

The cases after the first 34 (issue 21, from ``force_bad_data`` on) add a data set that fails
after ``train --force``, symlinked sub-folders of a build, SIGTERM during ``compile``, a full disk
(a small tmpfs: needs root, else the row says it was skipped), hostile YAML specs (alias bomb,
huge integers, deep nesting, /dev/zero, a FIFO, duplicate keys; those that may hang run under a
60 s timeout), malformed ONNX graphs, checkpoint tensors of odd kinds, crafted IDX files, absurd
``.npy`` headers, specs that may not compile and ``compile --force`` onto symlinks. A row of
several commands gives each one's exit and stderr verdict.

Run it with the project's virtual environment (torch, onnx and PyYAML are used to build the
crafted inputs): ``.venv/bin/python scripts/bad_inputs.py --source .``
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import gzip
import hashlib
import json
import os
import pickle
import re
import resource
import shutil
import signal
import stat
import struct
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import onnx
import torch
import yaml
from onnx import numpy_helper

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


def _limit_child(limit: int = MEM_LIMIT) -> None:
    """In the child, before exec: umask 022 and an address-space limit."""
    os.umask(0o022)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


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

    def start(self, args: list[str], cwd: Path, mem_limit: int = MEM_LIMIT) -> subprocess.Popen:
        """Start ``python -m pascal_fpga.cli ARGS`` in its own process group."""
        return subprocess.Popen([sys.executable, "-m", "pascal_fpga.cli", *map(str, args)],
                                cwd=cwd, env=self.env(), stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                errors="replace", preexec_fn=lambda: _limit_child(mem_limit),
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

    def cli(self, args: list, cwd: Path, timeout: float | None = None,
            mem_limit: int = MEM_LIMIT) -> Result:
        started = time.monotonic()
        return self.finish(self.start(args, cwd, mem_limit), args, started, timeout)

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

    def cli(self, args: list, timeout: float | None = None, mem_limit: int = MEM_LIMIT) -> Result:
        result = self.h.cli(args, self.dir, timeout, mem_limit)
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


# ------------------------------------------------------------------------------------------------
# issue 21: the cases added after the first 34 (their helpers first)

HANG_TIMEOUT = 60            # seconds for the commands where a hang is the likely failure
SMALL_MEM = 4 << 30          # address space for inputs that ask for unbounded memory
FASHION_TRAIN, FASHION_TEST = 160, 64   # images of the small crafted Fashion-MNIST folders


def hang_timeout(c: Case) -> float:
    return min(HANG_TIMEOUT, c.h.timeout)


def folder_state(path: Path) -> dict[str, str]:
    """Every entry under ``path``, links not followed: files by digest, folders, links by target
    (empty for a missing folder). Unlike tree_digest it also sees new folders and links."""
    out: dict[str, str] = {}
    if not path.is_dir():
        return out
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            p = Path(root) / name
            rel = str(p.relative_to(path))
            if p.is_symlink():
                out[rel] = "link:" + os.readlink(p)
            elif p.is_dir():
                out[rel] = "dir"
            else:
                out[rel] = file_digest(p) or "?"
    return out


def entries(folder: Path) -> list[str]:
    try:
        return sorted(p.name for p in folder.iterdir())
    except OSError:
        return []


def names_text(names: list[str], limit: int = 3) -> str:
    if not names:
        return "none"
    more = f" (+{len(names) - limit} more)" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def path_kind(path: Path) -> str:
    if path.is_symlink():
        return "a symlink" + (" (dangling)" if not path.exists() else "")
    if path.is_dir():
        return "a folder"
    return "a file" if path.exists() else "absent"


def steps_row(c: Case, steps: list[tuple[str, Result]], check: str, **details) -> Row:
    """One row for several commands: each one's exit and stderr verdict; the last stderr line of
    the first command that failed (else of the last one)."""
    failed = [r for _, r in steps if r.rc != 0]
    shown = failed[0] if failed else steps[-1][1]
    label = next(label for label, r in steps if r is shown)
    return Row(c.name, "; ".join(c.short(r.args) for _, r in steps),
               ", ".join(f"{label} {exit_text(r)}" for label, r in steps),
               "; ".join(f"{label} {one_line_text(r)}" for label, r in steps), check,
               (f"{label}: {shown.last_line}" if len(steps) > 1 and shown.last_line
                else shown.last_line)[:90], details=details)


def skipped_row(c: Case, command: str, why: str) -> Row:
    return Row(c.name, command, "skipped", "-", why, "")


def run_written(folder: Path) -> str:
    m = metrics_of(folder)
    return f"run written: {yes(m is not None)}" + (
        f" (test accuracy {m.get('test_accuracy')})" if m else "")


# -- data sets


def idx_header(dims: tuple[int, ...]) -> bytes:
    return bytes([0, 0, 0x08, len(dims)]) + struct.pack(f">{len(dims)}I", *dims)


def fashion_folder(folder: Path, train: int = FASHION_TRAIN, test: int = FASHION_TEST,
                   replace: dict[str, bytes | None] | None = None) -> Path:
    """A Fashion-MNIST folder of random images (valid IDX files), some files replaced by the
    given bytes (None: left out, the caller writes it, e.g. as .gz)."""
    rng = np.random.default_rng(0)
    files: dict[str, bytes | None] = {}
    for prefix, n in (("train", train), ("t10k", test)):
        files[f"{prefix}-images-idx3-ubyte"] = idx_header((n, 28, 28)) + rng.integers(
            0, 256, (n, 28, 28), dtype=np.uint8).tobytes()
        files[f"{prefix}-labels-idx1-ubyte"] = idx_header((n,)) + rng.integers(
            0, 10, n, dtype=np.uint8).tobytes()
    files.update(replace or {})
    folder.mkdir()
    for name, data in files.items():
        if data is not None:
            (folder / name).write_bytes(data)
    return folder


def gzip_zeros(path: Path, header: bytes, total: int, chunk: int = 1 << 20) -> int:
    """A .gz of ``header`` and ``total`` zero bytes, written in chunks (small in memory)."""
    zeros = bytes(chunk)
    with gzip.open(path, "wb", compresslevel=9) as f:
        f.write(header)
        left = total
        while left > 0:
            f.write(zeros[:min(chunk, left)])
            left -= chunk
    return path.stat().st_size


def fashion_train(c: Case, data: str, out: str = "r", extra: tuple = ()) -> Result:
    return c.cli(["train", c.h.spec("fmnist-cnn.yaml"), "--dataset", "fashion-mnist",
                  "--data-dir", data, "--epochs", "0", "--out", out, *extra])


# -- file systems


class MountError(Exception):
    pass


@contextlib.contextmanager
def tmpfs(folder: Path, size: int):
    """A tmpfs of ``size`` bytes mounted on the new folder ``folder``; unmounted at the end."""
    folder.mkdir()
    if os.geteuid() != 0:
        raise MountError("not root: no tmpfs mounted")
    try:
        result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs",
                                 str(folder)], capture_output=True, text=True, timeout=60,
                                stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise MountError(f"mount failed: {exc}") from None
    if result.returncode != 0:
        lines = (result.stderr or result.stdout).strip().splitlines() or ["no output"]
        raise MountError(f"mount failed (exit {result.returncode}): {lines[-1][:60]}")
    try:
        yield folder
    finally:
        if subprocess.run(["umount", str(folder)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def disk_size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def _enospc(c: Case, fixture: str, args: Callable[[Path], list]) -> Row:
    """The command into a tmpfs of half the size of the fixture it would write (so it runs out of
    space midway): one line, exit 2, nothing left in the tmpfs."""
    size = max(16 << 10, (disk_size(c.h.fixture(fixture)) // 2) // 4096 * 4096)
    disk = c.dir / "small"
    try:
        with tmpfs(disk, size):
            r = c.cli(args(disk))
            left = [name for name in entries(disk)]
    except MountError as exc:
        return skipped_row(c, c.short(args(disk)), str(exc))
    noisy = r.traceback and ("OSError" in r.stderr or "inline_container" in r.stderr)
    named = re.search(r"no space|enospc|errno 28|disk (is )?full|free on (its|the) disk",
                      r.last_line, re.IGNORECASE) is not None
    return c.row(r, f"tmpfs {size >> 10} KiB; left in it: {names_text(left)}; OSError or "
                    f"inline_container traceback: {yes(noisy)}; last line says no space: "
                    f"{yes(named)}", left=left)


# -- specs


def digits_spec_text(c: Case, classes_value: str) -> str:
    """models/digits-cnn.yaml with its ``classes: 10`` line's value replaced by text."""
    text = c.h.spec("digits-cnn.yaml").read_text()
    assert "\nclasses: 10\n" in text
    return text.replace("\nclasses: 10\n", f"\nclasses: {classes_value}\n")


def _spec_case(c: Case, spec: str | Path, timeout: float | None = None,
               mem_limit: int = MEM_LIMIT, note: str = "") -> Row:
    r = c.cli(["train", spec, "--dataset", "digits", "--epochs", "0", "--out", "r"],
              timeout=timeout, mem_limit=mem_limit)
    took = f"{r.seconds:.0f} s" + (f" (timeout {timeout:.0f} s)" if r.timed_out else "")
    return c.row(r, (f"{note}; " if note else "") + f"{took}; " + run_written(c.dir / "r"))


# -- ONNX models


def _onnx_case(c: Case, edit: Callable, what: str) -> Row:
    model_copy(c.h, c.dir / "m.onnx", edit)
    r = c.cli(["compile", "m.onnx", "--out", "b"])
    return c.row(r, f"{what}; compile accepted: {yes(r.rc == 0)}; build written: "
                    f"{yes((c.dir / 'b' / 'build.json').is_file())}")


# -- checkpoints

CKPT_WEIGHT = "units.0.conv.weight"


def _checkpoint_case(c: Case, change: Callable, what: str) -> Row:
    """The shared run with one weight (the first conv's) replaced, re-saved with torch.save;
    then eval and export of it."""
    run = copy_tree(c.h.fixture("run"), c.dir / "run")
    state = torch.load(run / "checkpoint.pt", map_location="cpu", weights_only=True)
    name = CKPT_WEIGHT if CKPT_WEIGHT in state["model"] else next(
        k for k, v in state["model"].items() if torch.is_tensor(v) and v.is_floating_point()
        and v.dim() > 1)
    state["model"][name] = change(state["model"][name])
    torch.save(state, run / "checkpoint.pt")
    re_eval = c.cli(["eval", "run"])
    re_export = c.cli(["export", "run", "--out", "m.onnx"])
    accepted = [label for label, r in (("eval", re_eval), ("export", re_export)) if r.rc == 0]
    return steps_row(c, [("eval", re_eval), ("export", re_export)],
                     f"{name} as {what}; accepted by: {', '.join(accepted) or 'none'}")


# ------------------------------------------------------------------------------------------------
# the cases of issue 21


def case_force_bad_data(c: Case) -> Row:
    """train --force onto an existing run, the data set (IDX files with a bad magic) then fails."""
    run = copy_tree(c.h.fixture("run"), c.dir / "RUN")
    before = folder_state(run)
    bad = b"\x12\x34\x08\x03" + bytes(16)
    fashion_folder(c.dir / "D", replace={name: bad for name in (
        "train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte")})
    r = fashion_train(c, "D", out="RUN", extra=("--force",))
    change = tree_change(before, folder_state(run))
    return c.row(r, f"old run untouched: {yes(change == 'unchanged')}"
                    + ("" if change == "unchanged" else f" ({change}; {path_kind(run)})"))


def _linked_subfolder(c: Case, sub: str, user: Path, verify_args: list) -> Row:
    build = copy_tree(c.h.fixture("build"), c.dir / "B")
    if (build / sub).is_symlink() or (build / sub).is_file():
        (build / sub).unlink()
    elif (build / sub).exists():
        shutil.rmtree(build / sub)
    (build / sub).symlink_to(user, target_is_directory=True)
    before = folder_state(user)
    r = c.cli(["verify", "B", *verify_args])
    change = tree_change(before, folder_state(user))
    return c.row(r, f"B/{sub} -> {user.name}; {user.name} unchanged: "
                    f"{yes(change == 'unchanged')}" + ("" if change == "unchanged"
                                                       else f" ({change})"))


def case_link_csim(c: Case) -> Row:
    """BUILD/csim a symlink to a user folder, then verify --csim: nothing may be written there."""
    user = c.dir / "userdir"
    user.mkdir()
    (user / "mine.txt").write_text("the user's file\n")
    return _linked_subfolder(c, "csim", user, ["--csim", "--samples", "2"])


def case_link_hls(c: Case) -> Row:
    """BUILD/hls a symlink to a folder whose own Makefile creates a marker (every target)."""
    marker = c.dir / "MARKER"
    user = c.dir / "userhls"
    user.mkdir()
    (user / "Makefile").write_text(f".PHONY: all csim\nall csim:\n\ttouch {marker}\n")
    row = _linked_subfolder(c, "hls", user, ["--csim", "--samples", "2"])
    row.check = f"marker created: {yes(marker_created(marker))}; " + row.check
    return row


def case_link_rtlsim(c: Case) -> Row:
    """BUILD/rtlsim a symlink to a user folder, then verify --rtlsim (needs verilator)."""
    if shutil.which("verilator") is None:
        return skipped_row(c, "verify B --rtlsim --samples 2", "verilator not on PATH")
    user = c.dir / "userdir"
    user.mkdir()
    (user / "mine.txt").write_text("the user's file\n")
    return _linked_subfolder(c, "rtlsim", user, ["--rtlsim", "--samples", "2"])


def case_sigterm_compile(c: Case) -> Row:
    """SIGTERM to compile while it works: 0.5 s after its first entry (the staging folder)
    appears beside --out, or at 20 s if none does."""
    args = ["compile", c.h.fixture("model"), "--out", "b"]
    started = time.monotonic()
    proc = c.h.start(args, c.dir)
    seen = sent = None
    while proc.poll() is None and time.monotonic() - started < c.h.timeout:
        now = time.monotonic() - started
        if seen is None and entries(c.dir):
            seen = now
        if (seen is not None and now >= seen + 0.5) or (seen is None and now >= 20):
            try:
                os.kill(proc.pid, signal.SIGTERM)
                sent = now
            except ProcessLookupError:
                pass
            break
        time.sleep(0.02)
    r = c.h.finish(proc, args, started)
    c.results.append(r)
    progress(f"    {c.short(args)} + SIGTERM -> {exit_text(r)} ({r.seconds:.1f} s)")
    left = entries(c.dir)
    staging = [name for name in left if name.startswith(".")]
    how = (f"SIGTERM at {sent:.1f} s" + (f" (first entry at {seen:.1f} s)" if seen is not None
                                        else " (no entry seen)")
           if sent is not None else "finished before any SIGTERM")
    return c.row(r, f"{how}; clean exit 143/130: {yes(r.rc in (143, 130))}; staging folders left: "
                    f"{len(staging)}; b is {path_kind(c.dir / 'b')}", left=left)


def case_enospc_compile(c: Case) -> Row:
    return _enospc(c, "build", lambda disk: ["compile", c.h.fixture("model"), "--out",
                                             disk / "b"])


def case_enospc_export(c: Case) -> Row:
    return _enospc(c, "model", lambda disk: ["export", c.h.fixture("run"), "--out",
                                             disk / "m.onnx"])


def case_enospc_train(c: Case) -> Row:
    return _enospc(c, "run", lambda disk: ["train", c.h.spec("digits-cnn.yaml"), "--dataset",
                                           "digits", "--epochs", "1", "--out", disk / "run"])


def case_yaml_alias_bomb(c: Case) -> Row:
    """Billion laughs: 9 levels of 9 aliases (9^9 leaves) as the value of ``classes``."""
    levels = ['&a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for prev, name in zip("abcdefgh", "bcdefghi"):
        levels.append(f"&{name} [" + ", ".join([f"*{prev}"] * 9) + "]")
    (c.dir / "bomb.yaml").write_text(digits_spec_text(c, "[" + ", ".join(levels) + "]"))
    return _spec_case(c, "bomb.yaml", timeout=hang_timeout(c), mem_limit=SMALL_MEM,
                      note="9^9 leaves via aliases")


def case_yaml_huge_int(c: Case) -> Row:
    (c.dir / "big.yaml").write_text(digits_spec_text(c, "1" + "0" * 4999))
    return _spec_case(c, "big.yaml", note="classes: a 5000-digit integer")


def case_yaml_deep(c: Case) -> Row:
    depth = 100_000
    (c.dir / "deep.yaml").write_text(digits_spec_text(c, "[" * depth + "]" * depth))
    return _spec_case(c, "deep.yaml", timeout=hang_timeout(c), mem_limit=SMALL_MEM,
                      note=f"classes: {depth} nested lists")


def case_yaml_dev_zero(c: Case) -> Row:
    return _spec_case(c, "/dev/zero", timeout=hang_timeout(c), mem_limit=SMALL_MEM,
                      note=f"address space {SMALL_MEM >> 30} GiB")


def case_yaml_fifo(c: Case) -> Row:
    os.mkfifo(c.dir / "spec.yaml")
    return _spec_case(c, "spec.yaml", timeout=hang_timeout(c), note="a FIFO, no writer")


def case_yaml_duplicate_key(c: Case) -> Row:
    (c.dir / "dup.yaml").write_text(digits_spec_text(c, "7\nclasses: 10"))
    r = c.cli(["train", "dup.yaml", "--dataset", "digits", "--epochs", "0", "--out", "r"])
    return c.row(r, f"classes: 7 then classes: 10; accepted: {yes(r.rc == 0)}; "
                    + run_written(c.dir / "r"))


def case_onnx_two_outputs(c: Case) -> Row:
    def edit(model):
        # the output of the first QCFS activation becomes a second graph output (its value_info
        # entry moves to the outputs, so that the model stays well formed)
        name = first_activation_quant(model).output[0]
        infos = [vi for vi in model.graph.value_info if vi.name == name]
        for vi in infos:
            model.graph.value_info.remove(vi)
        model.graph.output.append(infos[0] if infos else onnx.helper.make_tensor_value_info(
            name, onnx.TensorProto.FLOAT, None))
    return _onnx_case(c, edit, "second graph output (the first QCFS activation)")


def case_onnx_no_inputs(c: Case) -> Row:
    return _onnx_case(c, lambda model: model.graph.ClearField("input"), "graph inputs removed")


def case_onnx_string_input(c: Case) -> Row:
    def edit(model):
        model.graph.input[0].type.tensor_type.elem_type = onnx.TensorProto.STRING
    return _onnx_case(c, edit, "graph input typed STRING")


def case_onnx_init_3e38(c: Case) -> Row:
    chosen = {}

    def edit(model):
        chosen["name"] = name = bn_scale_initializer(model)
        edit_initializer(model, name, lambda a: a * 0 + a.dtype.type(3e38))
    row = _onnx_case(c, edit, "")
    row.check = f"{chosen.get('name')} all 3e38" + row.check
    return row


def case_onnx_missing_initializer(c: Case) -> Row:
    chosen = {}

    def edit(model):
        # the weights of the second conv: a node input that names an initializer no longer there
        conv = [n for n in model.graph.node if n.op_type == "Conv"][-1]
        producers = {out: n for n in model.graph.node for out in n.output}
        weight_quant = producers.get(conv.input[1])
        name = weight_quant.input[0] if weight_quant is not None else conv.input[1]
        init = initializer(model, name)
        chosen["name"] = name
        model.graph.initializer.remove(init)
    row = _onnx_case(c, edit, "")
    row.check = f"initializer {chosen.get('name')} removed" + row.check
    return row


def case_ckpt_meta(c: Case) -> Row:
    return _checkpoint_case(c, lambda w: torch.empty_like(w, device="meta"), "a meta tensor")


def case_ckpt_sparse(c: Case) -> Row:
    return _checkpoint_case(c, lambda w: w.to_sparse(), "a sparse COO tensor")


def case_ckpt_complex(c: Case) -> Row:
    return _checkpoint_case(c, lambda w: w.to(torch.complex64), "complex64")


def case_ckpt_int(c: Case) -> Row:
    return _checkpoint_case(c, lambda w: (w * 100).round().to(torch.int64), "int64 (x100)")


def case_ckpt_bool(c: Case) -> Row:
    return _checkpoint_case(c, lambda w: w > 0, "bool (w > 0)")


def case_ckpt_half(c: Case) -> Row:
    return _checkpoint_case(c, lambda w: w.half(), "float16")


def case_idx_dims_wrap(c: Case) -> Row:
    """Training images whose header claims (2^28 + 20) x 28 x 28: the product is 20 x 784 modulo
    2^32, and the payload is exactly that (20 images)."""
    n = 2 ** 28 + 20
    payload = np.random.default_rng(1).integers(0, 256, 20 * 784, dtype=np.uint8).tobytes()
    fashion_folder(c.dir / "D", replace={
        "train-images-idx3-ubyte": idx_header((n, 28, 28)) + payload})
    r = fashion_train(c, "D")
    return c.row(r, f"dims {n}x28x28 with 20 images of data; " + run_written(c.dir / "r"))


def case_idx_empty_test(c: Case) -> Row:
    fashion_folder(c.dir / "D", test=0)
    r = fashion_train(c, "D")
    return c.row(r, "0 test images (valid headers); " + run_written(c.dir / "r"))


def case_idx_gzip_bomb(c: Case) -> Row:
    """train-images-idx3-ubyte.gz: a 60000x28x28 header and 1 GiB of zeros (about 1 MB packed)."""
    folder = fashion_folder(c.dir / "D", replace={"train-images-idx3-ubyte": None})
    packed = gzip_zeros(folder / "train-images-idx3-ubyte.gz", idx_header((60000, 28, 28)),
                        1 << 30)
    r = fashion_train(c, "D")
    return c.row(r, f"{packed >> 10} KiB inflating to 1 GiB; {r.seconds:.0f} s; "
                    + run_written(c.dir / "r"))


def case_batch_one(c: Case) -> Row:
    r = c.cli(["train", c.h.spec("digits-cnn.yaml"), "--dataset", "digits", "--epochs", "1",
               "--batch-size", "1", "--out", "r"])
    return c.row(r, run_written(c.dir / "r"))


def case_npy_huge_header(c: Case) -> Row:
    """A .npy whose header declares (1000000, 1, 8, 800000) uint8 (6.4e12 elements), 64 bytes of
    data."""
    with open(c.dir / "x.npy", "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "|u1", "fortran_order": False,
                                                 "shape": (1000000, 1, 8, 800000)})
        f.write(bytes(64))
    r = c.cli(["run", c.h.fixture("build"), "--input", "x.npy"])
    return c.row(r, f"{r.seconds:.0f} s")


def _spec_pipeline(c: Case, spec_text: str, what: str) -> Row:
    """train --epochs 0, export and compile of a spec, stopping at the first failure."""
    (c.dir / "spec.yaml").write_text(spec_text)
    commands = [("train", ["train", "spec.yaml", "--dataset", "digits", "--epochs", "0",
                           "--out", "r"]),
                ("export", ["export", "r", "--out", "m.onnx"]),
                ("compile", ["compile", "m.onnx", "--out", "b"])]
    steps = []
    for label, args in commands:
        r = c.cli(args)
        steps.append((label, r))
        if r.rc != 0:
            break
    failed = [label for label, r in steps if r.rc != 0]
    return steps_row(c, steps, f"{what}; " + (f"fails at {failed[0]}" if failed
                                              else "train, export and compile all pass"))


def case_spec_weight_bits_16(c: Case) -> Row:
    text = c.h.spec("digits-cnn.yaml").read_text()
    old = "{type: linear, features: 64, levels: 2}"
    assert old in text
    return _spec_pipeline(c, text.replace(old, "{type: linear, features: 64, levels: 2, "
                                               "weight_bits: 16}"),
                          "hidden linear layer with weight_bits: 16")


REQUANT_SPEC = """\
name: digits-requant
input: {channels: 1, height: 8, width: 8, bits: 5}
classes: 10
weight_bits: 4
levels: 4
layers:
  - {type: conv, channels: 8, kernel: 3, padding: 1}
  - {type: block, channels: 8}
  - {type: block, channels: 8, residual: requant}
  - {type: flatten}
  - {type: linear, features: 10}
"""


def case_spec_requant_after_block(c: Case) -> Row:
    return _spec_pipeline(c, REQUANT_SPEC, "a residual: requant block after a shift block")


def _force_onto_link(c: Case, target: Path, what: str) -> Row:
    link = c.dir / "out"
    link.symlink_to(target, target_is_directory=True)
    before = folder_state(target)
    r = c.cli(["compile", c.h.fixture("model"), "--out", "out", "--force"])
    change = tree_change(before, folder_state(target))
    left = [name for name in entries(c.dir) if name.startswith(".")]
    old = [name for name in left if ".old-" in name]
    return c.row(r, f"--out a symlink to {what}; out is now {path_kind(link)}; target "
                    f"{change if target.exists() else 'absent'}; leftovers: {names_text(left)}"
                    + (f" ({len([n for n in old if (c.dir / n).is_symlink()])} .old- symlinks)"
                       if old else ""), left=left)


def case_force_link_build(c: Case) -> Row:
    earlier = copy_tree(c.h.fixture("build"), c.dir / "earlier")
    return _force_onto_link(c, earlier, "an earlier build")


def case_force_link_empty(c: Case) -> Row:
    (c.dir / "empty").mkdir()
    return _force_onto_link(c, c.dir / "empty", "an empty folder")


def case_force_link_dangling(c: Case) -> Row:
    return _force_onto_link(c, c.dir / "nowhere", "nothing (dangling)")


def case_snn_empty_test(c: Case) -> Row:
    """snn of a Fashion-MNIST run (trained on a small valid folder) with --data-dir a folder
    whose test set is empty (0 images, valid headers)."""
    fashion_folder(c.dir / "D")
    setup = fashion_train(c, "D", out="run")
    if setup.rc != 0:
        return c.row(setup, "setup (train on a small valid folder) failed")
    fashion_folder(c.dir / "E", test=0)
    r = c.cli(["snn", "run", "--data-dir", "E"])
    return c.row(r, f"snn report written: {yes((c.dir / 'run' / 'snn' / 'report.json').is_file())}")



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
