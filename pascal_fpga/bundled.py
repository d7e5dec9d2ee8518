"""The model specs and the model zoo that ship with pascal-fpga.

A checkout keeps them in its top-level ``models/`` folder (``models/*.yaml``, ``models/zoo/``);
an installed wheel carries the same folder inside the package, as ``pascal_fpga/models/``
(setup.py maps one onto the other). :func:`models_dir` finds whichever this installation has, so
``pascal-fpga demo``, ``train digits-cnn`` and the Python API work from a wheel as from a clone.
"""

from __future__ import annotations

import json
from pathlib import Path

from .errors import PascalError

_PACKAGED = Path(__file__).resolve().parent / "models"
_CHECKOUT = Path(__file__).resolve().parent.parent / "models"


def models_dir() -> Path:
    """The folder of the shipped specs and zoo: the wheel's copy, else the checkout's."""
    if (_PACKAGED / "zoo").is_dir():
        return _PACKAGED
    # a checkout (or an editable install of one): models/ beside the package, next to our
    # pyproject.toml, so that an unrelated "models" folder in site-packages is never taken
    if (_CHECKOUT / "zoo").is_dir() and (_CHECKOUT.parent / "pyproject.toml").is_file():
        return _CHECKOUT
    raise PascalError(f"the shipped model specs and zoo are missing (looked in {_PACKAGED} and "
                      f"{_CHECKOUT}); reinstall pascal-fpga")


def specs() -> dict[str, Path]:
    """The shipped specs by name (the file name without ``.yaml``)."""
    return {path.stem: path for path in sorted(models_dir().glob("*.yaml")) if path.is_file()}


def zoo() -> dict[str, Path]:
    """The zoo's run folders by name, as its manifest (zoo/zoo.json) lists them."""
    folder = models_dir() / "zoo"
    manifest = json.loads((folder / "zoo.json").read_text())
    return {entry["name"]: folder / entry["name"] for entry in manifest["models"]
            if (folder / entry["name"] / "checkpoint.pt").is_file()}


def spec_path(name: str) -> Path | None:
    """The shipped spec called ``name`` (``digits-cnn`` or ``digits-cnn.yaml``), else None.
    Only the listed names match: ``name`` is never joined to a path."""
    stem = name[:-len(".yaml")] if name.endswith(".yaml") else name
    return specs().get(stem)
