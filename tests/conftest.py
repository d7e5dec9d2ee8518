"""Networks the test files share, built once per session.

- ``digits_run``: models/digits-cnn.yaml trained on digits (2 epochs, batch 64, seed 0);
  ``digits_model`` its QONNX export; ``digits_build`` that export compiled with the defaults.
- ``odd_exports(name, seed=0)``: ``nets.make_exported`` of ``nets.ODD_SPECS[name]``, (run, model);
  ``odd_builds(name, seed=0)`` that model compiled with the defaults (its run beside it).

They are shared, so they are read-only: a test that writes into one (a verify that builds the
C simulation, a damaged copy) works on its own copy (``shutil.copytree`` into its tmp_path).
After each test that uses one, every shared folder must be as it was built: a file the test
added, removed or rewrote there is an error in that test's teardown, naming the file.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from nets import ODD_SPECS, make_exported

REPO = Path(__file__).resolve().parent.parent
DIGITS_SPEC = REPO / "models" / "digits-cnn.yaml"
# the fixtures below that hand out shared folders
SHARED = {"digits_run", "digits_model", "digits_build", "odd_exports", "odd_builds"}


def _stamps(path: Path) -> dict[str, tuple[int, int]]:
    """Size and modification time of a file, or of every file under a folder."""
    path = Path(path)
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    return {("" if p == path else str(p.relative_to(path))): (p.stat().st_size,
                                                               p.stat().st_mtime_ns)
            for p in files}


class _Shared:
    """The files and folders built once per session, with their stamps when built."""

    def __init__(self):
        self.stamps: dict[Path, dict[str, tuple[int, int]]] = {}

    def keep(self, path: Path) -> Path:
        self.stamps[Path(path)] = _stamps(path)
        return path

    def changes(self) -> list[str]:
        """What differs from the stamps (which then become the new ones, so that one test's
        change is reported once)."""
        changed = []
        for path, before in self.stamps.items():
            after = _stamps(path)
            for name in sorted(set(before) | set(after)):
                if before.get(name) != after.get(name):
                    what = ("added" if name not in before else "removed" if name not in after
                            else "rewritten")
                    changed.append(f"{path / name}: {what}")
            self.stamps[path] = after
        return changed


@pytest.fixture(scope="session")
def _shared() -> _Shared:
    return _Shared()


@pytest.fixture(autouse=True)
def _shared_unchanged(request, _shared):
    """After each test that uses a shared network: every shared file as it was built."""
    yield
    if not SHARED.isdisjoint(request.fixturenames):
        changed = _shared.changes()
        assert not changed, ("this test wrote into a shared session folder (copy it into "
                             "tmp_path instead): " + "; ".join(changed[:10]))


@pytest.fixture(scope="session")
def digits_run(tmp_path_factory, _shared) -> Path:
    """models/digits-cnn.yaml trained on digits: 2 epochs, batch 64, seed 0 (read-only)."""
    from pascal_fpga.train import TrainConfig, train

    out = tmp_path_factory.mktemp("digits") / "run"
    train(TrainConfig(spec=str(DIGITS_SPEC), dataset="digits", out=str(out), epochs=2,
                      batch_size=64, seed=0), progress=False)
    return _shared.keep(out)


@pytest.fixture(scope="session")
def digits_model(digits_run, tmp_path_factory, _shared) -> Path:
    """The QONNX export of ``digits_run`` (read-only)."""
    from pascal_fpga.ir.export import export_run

    folder = tmp_path_factory.mktemp("digits_model")
    export_run(digits_run, folder / "model.onnx")
    return _shared.keep(folder / "model.onnx")


@pytest.fixture(scope="session")
def digits_build(digits_model, tmp_path_factory, _shared) -> Path:
    """``digits_model`` compiled with the defaults (read-only)."""
    from pascal_fpga.flows.compile import compile_model

    out = tmp_path_factory.mktemp("digits_build") / "build"
    compile_model(digits_model, out)
    return _shared.keep(out)


@pytest.fixture(scope="session")
def odd_exports(tmp_path_factory, _shared):
    """``odd_exports(name, seed=0)``: ``nets.make_exported`` of ``ODD_SPECS[name]`` made once,
    (run, model) (read-only)."""
    made: dict[tuple[str, int], tuple[Path, Path]] = {}

    def get(name: str, seed: int = 0) -> tuple[Path, Path]:
        if (name, seed) not in made:
            folder = tmp_path_factory.mktemp(f"odd_{name}_{seed}")
            run, model = make_exported(folder, ODD_SPECS[name], seed=seed)
            made[name, seed] = _shared.keep(run), _shared.keep(model)
        return made[name, seed]

    return get


@pytest.fixture(scope="session")
def odd_builds(odd_exports, tmp_path_factory, _shared):
    """``odd_builds(name, seed=0)``: ``odd_exports(name, seed)``'s model compiled with the
    defaults, once, with a copy of its run beside it as ``build.parent / "run"`` (read-only)."""
    from pascal_fpga.flows.compile import compile_model

    made: dict[tuple[str, int], Path] = {}

    def get(name: str, seed: int = 0) -> Path:
        if (name, seed) not in made:
            run, model = odd_exports(name, seed)
            folder = tmp_path_factory.mktemp(f"odd_build_{name}_{seed}")
            compile_model(model, folder / "build")
            shutil.copytree(run, folder / "run")
            made[name, seed] = _shared.keep(folder) / "build"
        return made[name, seed]

    return get
