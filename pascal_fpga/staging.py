"""Where outputs go: checked before any work, built in a temporary folder, moved into place whole.

Every folder a command writes (a training run, a build, the demo, a report inside a run or a build)
carries a marker file, ``.pascal-fpga``, that says which kind of artefact it is. A command may
replace only an artefact of its own kind, and only when the user says so (``--force``); it never
deletes or replaces anything else: a non-empty folder without our marker, the current folder or a
parent of it, ``/``, a home folder, or a folder that holds the command's own input.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import PascalError

MARKER = ".pascal-fpga"
KINDS = ("run", "build", "demo", "snn-report", "hw-report", "synth", "csim", "compare")
# folders written before the marker existed: recognised by the files that define them
_LEGACY = {"run": ("checkpoint.pt", "spec.yaml"), "build": ("build.json", "ir"),
           "snn-report": ("report.json", "accuracy_vs_timesteps.png"),
           "hw-report": ("report.json", "summary.md"), "csim": ("build.log",)}
_REPLACE_TRIES = 100


def artefact_kind(folder: Path) -> str | None:
    """The kind of pascal-fpga artefact ``folder`` is, or None (not ours, or not a folder)."""
    folder = Path(folder)
    if folder.is_symlink() or not folder.is_dir():
        return None  # a link is never ours: we write folders, not links to them
    marker = folder / MARKER
    if marker.is_file():
        try:
            kind = json.loads(marker.read_text()).get("kind")
        except (OSError, ValueError, AttributeError):
            return None
        return kind if kind in KINDS else None
    for kind, defining in _LEGACY.items():
        if all((folder / name).exists() for name in defining):
            return kind
    if (folder / "run" / "checkpoint.pt").is_file() and (folder / "build").is_dir():
        return "demo"
    return None


def write_marker(folder: Path, kind: str) -> None:
    """Mark ``folder`` as a pascal-fpga artefact of ``kind``."""
    if kind not in KINDS:
        raise ValueError(f"unknown artefact kind {kind!r}")
    (Path(folder) / MARKER).write_text(json.dumps({"kind": kind, "version": 1}) + "\n")


def _is_empty_dir(folder: Path) -> bool:
    try:
        return not any(folder.iterdir())
    except OSError:
        return False


def _protected(resolved: Path) -> str | None:
    """Why ``resolved`` may never be an output folder, or None."""
    if resolved == Path(resolved.anchor):
        return "is the root folder"
    home = Path.home().resolve()
    if resolved == home or resolved in home.parents:
        return "is a home folder or one of its parents"
    cwd = Path.cwd().resolve()
    if resolved == cwd or resolved in cwd.parents:
        return "is the current folder or one of its parents"
    return None


def _refuse_link(path: Path, where: str) -> None:
    """An output that is itself a symbolic link (even a dangling one) is refused before any
    work: replacing it would replace the link, writing into it would write into whatever it
    names. Links among its parent folders are fine (they only say where the output goes)."""
    if path.is_symlink():
        try:
            target = os.readlink(path)
        except OSError:
            target = "?"
        raise PascalError(f"{where}: is a symbolic link (to {target}); name the folder or file "
                          f"itself, or a new path")


def _nearest_folder(resolved: Path, where: str) -> Path:
    """The nearest existing ancestor of ``resolved``, which must be a folder."""
    ancestor = resolved.parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise PascalError(f"{where}: lies under {ancestor}, which is a file")
    return ancestor


def check_output(out: str | Path, kind: str, force: bool = False,
                 inputs: Iterable[str | Path | None] = (), option: str = "--out",
                 existing_ok: bool = False) -> Path:
    """Check, before any work, that ``out`` may become (or be replaced by) an artefact of ``kind``.

    Refused, each with one line naming ``out``: a protected folder (root, home, the current folder
    or a parent of it), a folder that is or holds one of ``inputs``, a path that is a file or lies
    under a file, a parent that cannot be written, a non-empty folder that is not our artefact of
    this kind, and our own artefact unless ``force`` (or ``existing_ok``: the command continues it,
    like ``train --resume``). Returns ``out`` as a Path.
    """
    path = Path(out)
    where = f"{option} {out}"
    _refuse_link(path, where)
    resolved = path.resolve()
    reason = _protected(resolved)
    if reason is not None:
        raise PascalError(f"{where}: refusing to write there: it {reason} (choose a new folder)")
    for item in inputs:
        if item is None:
            continue
        source = Path(item).resolve()
        if source == resolved or resolved in source.parents:
            raise PascalError(f"{where}: refusing to write there: it holds the input {item} "
                              f"(choose a new folder)")
    if path.exists() and not path.is_dir():
        raise PascalError(f"{where}: is a file, not a folder")
    ancestor = _nearest_folder(resolved, where)
    if not path.exists() and not os.access(ancestor, os.W_OK | os.X_OK):
        raise PascalError(f"{where}: cannot create it: {ancestor} is not writable")
    if path.is_dir() and not _is_empty_dir(path):
        found = artefact_kind(path)
        if found != kind:
            what = f"a pascal-fpga {found}" if found else "not a pascal-fpga folder"
            raise PascalError(f"{where}: refusing to replace a non-empty folder that is {what} "
                              f"(expected a {kind}); choose a new folder")
        if not (force or existing_ok):
            raise PascalError(f"{where}: already holds a {kind}; pass --force to replace it, or "
                              f"choose a new folder")
        if not os.access(path.parent, os.W_OK | os.X_OK):
            raise PascalError(f"{where}: cannot replace it: {path.parent} is not writable")
    return path


def check_output_file(out: str | Path, force: bool = False,
                      inputs: Iterable[str | Path | None] = (), option: str = "--out",
                      suffix: str | None = None) -> Path:
    """Check, before any work, that the file ``out`` may be written: not a folder, not under a
    file, in a writable folder, not one of ``inputs``; an existing file only with ``force``."""
    path = Path(out)
    where = f"{option} {out}"
    _refuse_link(path, where)
    resolved = path.resolve()
    if suffix is not None and path.suffix != suffix:
        raise PascalError(f"{where}: the file name must end in {suffix}")
    for item in inputs:
        if item is not None and Path(item).resolve() == resolved:
            raise PascalError(f"{where}: is the input {item}; choose another file")
    if path.is_dir():
        raise PascalError(f"{where}: is a folder; name a file")
    ancestor = _nearest_folder(resolved, where)
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise PascalError(f"{where}: cannot write it: {ancestor} is not writable")
    if path.exists() and not force:
        raise PascalError(f"{where}: the file exists; pass --force to replace it, or choose "
                          f"another file")
    return path


def _user_mode() -> int:
    """The mode a plain mkdir would give (mkdtemp gives 0700)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o777 & ~mask


@contextmanager
def staged_folder(out: str | Path, kind: str, replace: bool = True) -> Iterator[Path]:
    """Yield a fresh folder beside ``out``, marked as ``kind``; when the block succeeds it takes
    the place of ``out`` whole, when it raises it is removed and ``out`` is left as it was.

    ``out`` must be absent, empty, or (with ``replace``) our artefact of the same kind: the caller
    checks that before any work (``check_output``), and it is checked again here, at the moment of
    the move, since another process may have written there meanwhile. Concurrent writers of one
    ``out`` do not crash: each move is atomic and the last one wins.
    """
    out = Path(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
        staging.chmod(_user_mode())
    except OSError as exc:
        raise PascalError(f"{out}: cannot create the output folder ({exc.strerror})") from None
    try:
        write_marker(staging, kind)
        yield staging
        _move_into_place(staging, out, kind, replace)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def _move_into_place(staging: Path, out: Path, kind: str, replace: bool) -> None:
    for _ in range(_REPLACE_TRIES):
        try:
            os.rename(staging, out)  # atomic; succeeds onto an absent or empty folder
            return
        except OSError as exc:
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR, errno.EISDIR):
                raise PascalError(f"{out}: cannot move the output into place "
                                  f"({exc.strerror})") from None
        if not replace:
            raise PascalError(f"{out}: something was written there meanwhile; nothing replaced "
                              f"(the output was discarded)")
        if not _delete_artefact(out, kind, "something else was written there meanwhile; "
                                            "nothing replaced (the output was discarded)"):
            continue  # another process moved it first
    raise PascalError(f"{out}: other processes keep writing there; nothing replaced")


def _delete_artefact(folder: Path, kind: str, refusal: str) -> bool:
    """Delete ``folder`` if it is our artefact of ``kind``; False if it is gone already.

    The only place that deletes a folder this package did not just create. It first renames the
    folder aside and only then reads its marker, so no other process can swap the folder under
    the check; anything that is not ours is put back and refused with ``refusal``.
    """
    aside = folder.with_name(f".{folder.name}.old-{uuid.uuid4().hex[:8]}")
    try:
        os.rename(folder, aside)
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise PascalError(f"{folder}: cannot move it aside ({exc.strerror})") from None
    if artefact_kind(aside) != kind:
        try:
            os.rename(aside, folder)
        except OSError:
            raise PascalError(f"{folder}: {refusal}; it is now in {aside} (nothing "
                              f"deleted)") from None
        raise PascalError(f"{folder}: {refusal}")
    shutil.rmtree(aside, ignore_errors=True)
    return True
