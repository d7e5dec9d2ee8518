"""The C simulation of a build's HLS project: g++ against the ap_types headers, run on images.

The headers are those of a Vitis HLS installation when its path is given (``XILINX_HLS``, read by
the CLI), else the open-source copy that the hls4ml wheel ships (a pinned dependency).
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from ..buildfolder import own_folder
from ..errors import PascalError
from ..staging import MARKER, artefact_kind, staged_folder


def ap_types_dir(xilinx_hls: str | None = None) -> Path:
    """The folder of ap_int.h and hls_stream.h."""
    if xilinx_hls:
        folder = Path(xilinx_hls) / "include"
        if not (folder / "ap_int.h").is_file():
            raise PascalError(f"XILINX_HLS={xilinx_hls}: no include/ap_int.h there")
        return folder
    spec = importlib.util.find_spec("hls4ml")
    if spec is None or spec.origin is None:
        raise PascalError("no ap_types headers: install hls4ml (pip install hls4ml==1.3.0) or set "
                          "XILINX_HLS to a Vitis HLS installation")
    folder = Path(spec.origin).parent / "templates" / "vivado" / "ap_types"
    if not (folder / "ap_int.h").is_file():
        raise PascalError(f"{folder}: the hls4ml package has no ap_types headers here")
    return folder


def _first_error(log: str) -> str:
    for line in log.splitlines():
        if "error" in line.lower():
            return line.strip()[:300]
    lines = [line for line in log.splitlines() if line.strip()]
    return lines[-1].strip()[:300] if lines else "no output"


MAKE_SAFE = re.compile(r"[A-Za-z0-9_.,/+=@%~\-]+")


def _make_path(path: Path) -> str:
    """A path as a make variable's value. make expands '$' in it and hands the recipes to the
    shell, where quotes, '$', backquotes and spaces would act: such a path is refused."""
    text = str(path)
    if not MAKE_SAFE.fullmatch(text):
        raise PascalError(f"{text!r}: the C simulation builds only in folders whose path is "
                          f"letters, digits and _ . , / + = @ % ~ - (make and the shell would "
                          f"read the others); move the build elsewhere")
    return text


def build_csim(build_dir: Path, ap_types: Path) -> Path:
    """make csim in BUILD_DIR/hls, the binary in BUILD_DIR/csim/; the log in csim/build.log.

    The build happens in a staging folder beside csim/ (seeded with the object files of the last
    build, so make recompiles only what changed) that takes csim/'s place whole at the end, also
    when g++ fails (its log is then the folder's content): an interrupted build leaves the old
    csim/ as it was. hls/ and csim/ must be real folders of the build, not links elsewhere."""
    build_dir = Path(build_dir)
    hls = own_folder(build_dir, "hls")
    if not (hls / "Makefile").is_file():
        raise PascalError(f"{build_dir}: no HLS project (hls/Makefile); compile again")
    target = own_folder(build_dir, "csim")
    ap_types_text = _make_path(ap_types)
    _make_path(target.resolve())
    with staged_folder(target, "csim") as staging:
        if artefact_kind(target) == "csim":
            for item in target.iterdir():
                if item.name != MARKER and item.is_file() and not item.is_symlink():
                    shutil.copy2(item, staging / item.name)
        command = ["make", "-s", "-C", str(hls), "csim", f"BUILD={_make_path(staging.resolve())}",
                   f"AP_TYPES={ap_types_text}"]
        try:
            result = subprocess.run(command, capture_output=True, text=True)
        except FileNotFoundError as exc:
            raise PascalError("make is not installed (apt-get install make g++)") from exc
        (staging / "build.log").write_text(" ".join(command) + "\n" + result.stdout +
                                           result.stderr)
    log = target / "build.log"
    if result.returncode != 0:
        raise PascalError(f"the C simulation did not compile: {_first_error(result.stderr)} "
                          f"(full log: {log})")
    return target / "tb_pascal"


def run_csim(binary: Path, images: np.ndarray, layers: list[str]
             ) -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, tuple[int, int, int]]]:
    """Run images (N, C, H, W) through the csim: (outputs int64 N x (classes + 1), each layer's
    dump as int64 N x values in stream order, per stage the loop counters (N, 3): reads, writes
    and slots of each image)."""
    with tempfile.TemporaryDirectory(prefix="csim.", dir=binary.parent) as tmp:
        tmp = Path(tmp)
        np.ascontiguousarray(images, dtype=np.int32).tofile(tmp / "inputs.bin")
        command = [str(binary), "--in", str(tmp / "inputs.bin"), "--out", str(tmp / "out.bin"),
                   "--layers", str(tmp), "--counters", str(tmp / "counters.txt")]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            raise PascalError(f"the C simulation failed (status {result.returncode}): "
                              f"{(result.stderr or result.stdout).strip()[:300]}")
        count = len(images)
        outputs = np.fromfile(tmp / "out.bin", dtype=np.int32).astype(np.int64).reshape(count, -1)
        dumps = {name: np.fromfile(tmp / f"{name}.bin", dtype=np.int32).astype(np.int64)
                 .reshape(count, -1) for name in layers}
        rows: dict[str, list[tuple[int, int, int, int]]] = {}
        for line in (tmp / "counters.txt").read_text().splitlines():
            image, stage, reads, writes, slots = line.split()
            rows.setdefault(stage, []).append((int(image), int(reads), int(writes), int(slots)))
    counters = {}
    for stage, values in rows.items():
        table = np.zeros((count, 3), dtype=np.int64)
        for image, reads, writes, slots in values:
            table[image] = (reads, writes, slots)
        counters[stage] = table
    return outputs, dumps, counters
