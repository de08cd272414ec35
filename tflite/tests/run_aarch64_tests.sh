#!/usr/bin/env bash
# Cross-builds the delegate and the kernels (tflite/) for aarch64 and runs all their
# native tests under qemu-aarch64 (CI: .ci/run).
# Installs the Debian cross toolchain and qemu-user with apt-get when they are missing
# and this runs as root. Usage: tflite/tests/run_aarch64_tests.sh
# Env: BUILD_DIR (default build/tflite-aarch64), JOBS (default 2).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BUILD_DIR="${BUILD_DIR:-$ROOT/build/tflite-aarch64}"
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

# The whole tree (delegate + core): every CTest test (the delegate's self-test, its
# fake-runtime op tests, the C API test, the kernels' tests) runs through qemu-aarch64
# (the toolchain file sets it as CMake's cross-compiling emulator).
cmake -S "$ROOT/tflite" -B "$BUILD_DIR" \
  -DCMAKE_TOOLCHAIN_FILE="$ROOT/tflite/toolchains/aarch64-linux-gnu.cmake" \
  -DCMAKE_BUILD_TYPE=Release -DSBNN_BUILD_TESTS=ON -DSBNN_BUILD_BENCH=ON >/dev/null
cmake --build "$BUILD_DIR" -j"$JOBS"

file "$BUILD_DIR/libsbnn_delegate.so" 2>/dev/null || true
# What the library asks of a device (docs/deployment.md): glibc floor <= 2.28, no C++
# runtime needed; the C functions its own code calls all exported by Android's bionic.
python3 "$ROOT/tflite/abi/check_library.py" "$BUILD_DIR/libsbnn_delegate.so" --glibc-max 2.28 \
  --objects "$BUILD_DIR"/CMakeFiles/sbnn_delegate_obj.dir/*/*.o "$BUILD_DIR/core/libsbnn_core.a"
echo "running the CTest tests under qemu-aarch64:"
(cd "$BUILD_DIR" && ctest --output-on-failure)
# The sparse kernels once more with extra arguments when given: SPARSE_ARGS selects
# suites/kernels, e.g. SPARSE_ARGS="--suite models".
if [ -n "${SPARSE_ARGS:-}" ]; then
  qemu-aarch64 -L /usr/aarch64-linux-gnu "$BUILD_DIR/tests/sbnn_sparse_tests" ${SPARSE_ARGS}
fi
