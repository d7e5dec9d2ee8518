#!/usr/bin/env bash
# Fill .gpu/ (git-ignored) with what scripts/gpu_check.sh needs on a GPU machine that has its own
# torch and no network: wheels of brevitas, our package and their pure dependencies (not torch),
# and the Fashion-MNIST files. Run here, then carry .gpu to the machine (64 MiB at most).
#   bash scripts/gpu_wheels.sh && du -sh .gpu
set -euo pipefail
cd "$(dirname "$0")/.."
PIP=${PIP:-.venv/bin/pip}
rm -rf .gpu/wheels && mkdir -p .gpu/wheels .gpu/fashion-mnist
# our package, without its dependencies (the machine keeps its torch)
"$PIP" wheel --quiet --no-deps --no-build-isolation -w .gpu/wheels .
# what training and the SNN conversion import, pinned to the versions of pyproject.toml /
# this venv (pip freeze); numpy (16 MB) is left out to stay under 64 MiB: the GPU machine's
# torch image brings its own
"$PIP" freeze | grep -E '^(brevitas|dependencies|unfoldNd|sympy|mpmath|packaging|typing_extensions|pyyaml|PyYAML|tqdm|matplotlib|contourpy|cycler|fonttools|kiwisolver|pillow|pyparsing|python-dateutil|six)==' \
  > .gpu/requirements.txt
"$PIP" download --quiet --no-deps --only-binary=:all: -d .gpu/wheels -r .gpu/requirements.txt
cp /usr/share/datasets/fashion-mnist/*.gz .gpu/fashion-mnist/
du -sh .gpu
