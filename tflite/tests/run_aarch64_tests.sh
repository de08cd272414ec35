#!/usr/bin/env bash
# Cross-builds sbnn_core_tests for aarch64 (static) and runs it under qemu-aarch64.
# Installs the Debian cross toolchain and qemu-user with apt-get when they are missing
# and this runs as root. Usage: tflite/tests/run_aarch64_tests.sh [extra test args]
# Env: BUILD_DIR (default build/core-aarch64), JOBS (default 2).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BUILD_DIR="${BUILD_DIR:-$ROOT/build/core-aarch64}"
JOBS="${JOBS:-2}"

need=()
command -v aarch64-linux-gnu-g++ >/dev/null 2>&1 || need+=(gcc-aarch64-linux-gnu g++-aarch64-linux-gnu)
command -v qemu-aarch64 >/dev/null 2>&1 || need+=(qemu-user)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing: ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
  else
    echo "missing: ${need[*]} (install them, e.g. apt-get install ${need[*]})" >&2
    exit 1
  fi
fi

cmake -S "$ROOT/tflite/core" -B "$BUILD_DIR" \
  -DCMAKE_TOOLCHAIN_FILE="$ROOT/tflite/toolchains/aarch64-linux-gnu.cmake" \
  -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_EXE_LINKER_FLAGS="-static" \
  -DSBNN_CORE_BENCH=ON >/dev/null
cmake --build "$BUILD_DIR" -j"$JOBS" --target sbnn_core_tests sbnn_sparse_tests sbnn_transform_tests sbnn_bconv_bench

file "$BUILD_DIR/sbnn_core_tests" 2>/dev/null || true
echo "running under qemu-aarch64:"
qemu-aarch64 "$BUILD_DIR/sbnn_core_tests" "$@"
# The output transforms and quantize packers (NEON vs the scalar reference).
qemu-aarch64 "$BUILD_DIR/sbnn_transform_tests"
# The sparse kernels (NEON bit-plane, portable, K0/K1, reference): SPARSE_ARGS selects
# suites/kernels, e.g. SPARSE_ARGS="--suite models".
qemu-aarch64 "$BUILD_DIR/sbnn_sparse_tests" ${SPARSE_ARGS:-}
