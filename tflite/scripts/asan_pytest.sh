#!/usr/bin/env bash
# Runs the delegate's Python tests against an ASan+UBSan build of libsbnn_delegate.so.
#   tflite/scripts/asan_pytest.sh [pytest args]   (default: the two runtime test files)
# The sanitizer runtime must be loaded before Python (LD_PRELOAD), together with
# libstdc++ (else ASan's __cxa_throw interceptor finds no real symbol once
# TensorFlow throws its first C++ exception). Leak checking is off: CPython and
# TensorFlow keep memory until exit by design.
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build/tflite-asan}
PY=${PY:-.venv/bin/python}
cmake -S tflite -B "$BUILD" -DSBNN_SANITIZE=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD" -j"$(nproc)"
(cd "$BUILD" && ctest --output-on-failure)
CXX=${CXX:-g++}
export LD_PRELOAD="$($CXX -print-file-name=libasan.so) $($CXX -print-file-name=libstdc++.so)"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:halt_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
export SBNN_DELEGATE_LIB="$PWD/$BUILD/libsbnn_delegate.so"
export TF_CPP_MIN_LOG_LEVEL=3
if [ $# -eq 0 ]; then
  set -- tests/test_runtime_ops.py tests/test_runtime_bad_input.py -q -p no:cacheprovider
fi
exec "$PY" -m pytest "$@"
