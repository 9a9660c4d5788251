#!/usr/bin/env bash
# Install everything jepa-bench needs on a Debian machine: the Fashion-MNIST data package and a
# virtual environment (.venv) with the package and its test tools. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

if ! dpkg -s dataset-fashion-mnist >/dev/null 2>&1; then
    echo "setup: installing Debian's dataset-fashion-mnist"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq dataset-fashion-mnist >/dev/null
fi

PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    echo "setup: creating .venv with $($PYTHON --version)"
    "$PYTHON" -m venv .venv
fi
echo "setup: installing jepa-bench and its dependencies into .venv (torch takes a few minutes the first time)"
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[dev]"
echo "setup: done"
