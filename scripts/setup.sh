#!/usr/bin/env bash
# One-shot set-up on a fresh machine: Debian data package (when root), a virtualenv
# in .venv with the pinned dependencies, and sbnn_keras installed in editable mode.
# Idempotent: re-running only redoes what is missing or out of date.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}

if [ ! -d /usr/share/datasets/fashion-mnist ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "[setup] installing Debian's dataset-fashion-mnist"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null
  else
    echo "[setup] note: Fashion-MNIST not found; as root run 'apt-get install dataset-fashion-mnist'" \
         "(or let tensorflow-datasets download it)" >&2
  fi
fi

if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating $VENV with $($PYTHON --version)"
  "$PYTHON" -m venv "$VENV"
fi
stamp="$VENV/.sbnn-installed"
if [ ! -f "$stamp" ] || [ setup.py -nt "$stamp" ]; then
  echo "[setup] installing sbnn_keras and its pinned dependencies (a few minutes the first time)"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  "$VENV/bin/python" -m pip install -q -e ".[test]"
  touch "$stamp"
fi
# The native delegate (tflite/ -> sbnn_runtime/_native/libsbnn_delegate.so) is built by the
# install above; rebuild it (incrementally) when its sources changed since.
lib=sbnn_runtime/_native/libsbnn_delegate.so
if [ "${SBNN_SKIP_NATIVE:-0}" != 1 ] && { [ ! -f "$lib" ] || [ -n "$(find tflite -type f -newer "$lib" -print -quit)" ]; }; then
  echo "[setup] building the native delegate ($lib)"
  "$VENV/bin/python" setup.py -q build_ext --inplace
fi
