#!/usr/bin/env bash
# Wheels for the GPU image, which has PyTorch but no Jupyter and cannot download: papermill, ipykernel and nbformat
# with what they need, for the image's Python (3.12, x86_64; KINDS.md of the device tool), into .whl/ (git-ignored).
# Carry .whl in the device call; gpu_run.sh installs them from there before it runs a notebook.
# Usage: bash benchmarks/gpu_wheels.sh [DEST] [PYTHON_VERSION]
set -euo pipefail
dest=${1:-.whl}
version=${2:-3.12}
mkdir -p "$dest"
${PIP:-.venv/bin/pip} download --only-binary=:all: --python-version "$version" --implementation cp \
    --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 \
    --platform any -d "$dest" papermill ipykernel nbformat
du -sh "$dest"
