#!/usr/bin/env bash
# `make wheels`: the sbnn-runtime wheels a package index accepts, one per architecture
# (x86_64, aarch64), each serving every supported Python (py3-none-manylinux_*).
#
#   scripts/build_wheels.sh            # -> dist/sbnn_runtime-<v>-py3-none-manylinux_2_24_<arch>.whl
#   ARCHES=aarch64 scripts/build_wheels.sh
#
# For each architecture: builds libsbnn_delegate.so (aarch64 with Debian's cross compiler,
# tflite/toolchains/aarch64-linux-gnu.cmake), checks its glibc floor and dependencies
# (tflite/abi/check_library.py: <= 2.28, no libstdc++), builds a py3-none-linux_<arch>
# wheel of sbnn_runtime/ + the library (packaging/sbnn-runtime/setup.py), then
# `auditwheel show` checks it against the manylinux policies and the wheel gets the most
# compatible manylinux tag it satisfies (x86_64 and aarch64: manylinux_2_24, for
# GLIBC_2.18), checked by auditwheel again. As root, the cross compiler is installed
# with apt-get when missing; auditwheel is pip-installed into the venv.
# Env: PY (default .venv/bin/python), OUT (default dist), ARCHES, JOBS (default 2).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="${PY:-$ROOT/.venv/bin/python}"
OUT="${OUT:-$ROOT/dist}"
ARCHES="${ARCHES:-x86_64 aarch64}"
JOBS="${JOBS:-2}"
VERSION=$(tr -d "[:space:]" < VERSION)
[ -n "$VERSION" ] || { echo "VERSION is empty" >&2; exit 1; }

need=()
case " $ARCHES " in *" aarch64 "*)
  command -v aarch64-linux-gnu-g++ >/dev/null 2>&1 || need+=(gcc-aarch64-linux-gnu g++-aarch64-linux-gnu)
esac
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
  else
    echo "missing: ${need[*]} (apt-get install ${need[*]})" >&2; exit 1
  fi
fi
"$PY" -m auditwheel --version >/dev/null 2>&1 || "$PY" -m pip install -q "auditwheel>=6.1,<7"

mkdir -p "$OUT"
for arch in $ARCHES; do
  build="$ROOT/build/wheel-$arch"
  args=(-DCMAKE_BUILD_TYPE=Release -DSBNN_BUILD_TESTS=OFF -DSBNN_BUILD_BENCH=OFF)
  case "$arch" in
    x86_64) ;;
    aarch64) args+=(-DCMAKE_TOOLCHAIN_FILE="$ROOT/tflite/toolchains/aarch64-linux-gnu.cmake") ;;
    *) echo "unsupported architecture: $arch (x86_64, aarch64)" >&2; exit 2 ;;
  esac
  echo "== $arch: libsbnn_delegate.so"
  cmake -S tflite -B "$build" "${args[@]}" >/dev/null
  cmake --build "$build" --target sbnn_delegate -j"$JOBS" >/dev/null
  "$PY" tflite/abi/check_library.py "$build/libsbnn_delegate.so" --glibc-max 2.28

  stage="$ROOT/build/wheel-stage-$arch"
  rm -rf "$stage" && mkdir -p "$stage"
  cp -r sbnn_runtime "$stage/"
  find "$stage" -name __pycache__ -prune -exec rm -rf {} + -o -name '*.so' -exec rm -f {} +
  cp "$build/libsbnn_delegate.so" "$stage/sbnn_runtime/_native/"
  cp packaging/sbnn-runtime/setup.py packaging/sbnn-runtime/README.md "$stage/"
  raw="$ROOT/build/wheel-raw-$arch"
  rm -rf "$raw"
  SBNN_VERSION="$VERSION" SBNN_WHEEL_PLAT="linux_$arch" \
    "$PY" -m pip wheel -q --no-deps --no-build-isolation -w "$raw" "$stage"
  echo "== $arch: auditwheel"
  # The library needs no library outside the manylinux set (check_library.py above), so
  # there is nothing to graft: auditwheel's verdict on the raw wheel gives the tag, the
  # wheel is retagged with it, and auditwheel checks the result once more.
  rawwhl=$(ls "$raw"/sbnn_runtime-*.whl)
  verdict=$("$PY" -m auditwheel show "$rawwhl" 2>/dev/null | tr '\n' ' ')
  plat=$(sed -n 's/.*consistent with the *following platform tag: *"\([^"]*\)".*/\1/p' <<<"$verdict")
  case "$plat" in
    manylinux_*_"$arch") ;;
    *) echo "auditwheel did not find a manylinux tag for $rawwhl: $verdict" >&2; exit 1 ;;
  esac
  rm -f "$OUT"/sbnn_runtime-"$VERSION"-py3-none-*"$arch".whl
  final=$("$PY" -m wheel tags --remove --platform-tag "$plat" "$rawwhl" | tail -1)
  mv "$raw/$final" "$OUT/"
  "$PY" -m auditwheel show "$OUT/$final"
  "$PY" -m auditwheel show "$OUT/$final" 2>/dev/null | tr '\n' ' ' | grep -q "consistent with the *following platform tag: *\"$plat\"" \
    || { echo "auditwheel does not accept $OUT/$final as $plat" >&2; exit 1; }
done
ls -l "$OUT"/sbnn_runtime-"$VERSION"-*.whl
