#!/usr/bin/env bash
# Wheels for a lent GPU machine of this workplace, whose image has torch, torchvision, timm, typer, rich,
# pandas, scikit-learn, matplotlib and pyyaml but not the rest of pyproject.toml's dependencies, and
# reaches no package registry: run this here, carry `.whl` (git ignores it), and begin the device
# command with the install line below. faiss-gpu's wheel is larger than what a call may carry, so
# faiss-cpu stands in: the k-NN then searches on the GPU machine's CPU cores (bench/evals/knn.py uses
# a GPU index only where faiss sees a GPU). wandb is imported only when asked for (W&B logging, reports).
#
#   bash scripts/gpu_wheels.sh
#   # device command: python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
#   #   --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site && \
#   #   PYTHON=python3 bash scripts/gpu_check.sh "$OUT"
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >>.git/info/exclude
PLATFORMS=(--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform any)
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    "${PLATFORMS[@]}" -d .whl submitit==1.5.4 tabulate==0.10.0 faiss-cpu
du -sh .whl && ls .whl
