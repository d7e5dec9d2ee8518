"""The one thing pyproject.toml cannot say: the top-level models/ folder (specs and zoo) ships
inside the package as pascal_fpga/models, so that a wheel install has the demo's spec and the zoo
(pascal_fpga/bundled.py finds either place). Everything else is in pyproject.toml."""

from setuptools import find_packages, setup

setup(packages=find_packages(include=["pascal_fpga*"]) + ["pascal_fpga.models"],
      package_dir={"pascal_fpga.models": "models"})
