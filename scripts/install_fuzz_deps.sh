#!/usr/bin/env bash
# Installs what the fuzzing and sanitizer runs need (scripts/fuzz.sh, docs/reliability.md):
# clang with libFuzzer (Debian 12: clang 14 + libclang-rt-14-dev), g++'s libasan (for the
# ASan build of the delegate under Python), cmake. Idempotent; needs root for apt-get.
# Without root it only reports what is missing and exits 1 if something is.
set -euo pipefail

have_libfuzzer() {
  command -v clang++ >/dev/null || return 1
  local probe
  probe=$(mktemp -d)
  printf 'extern "C" int LLVMFuzzerTestOneInput(const unsigned char*, unsigned long){return 0;}\n' \
    >"$probe/p.cc"
  clang++ -fsanitize=fuzzer,address,undefined "$probe/p.cc" -o "$probe/p" >/dev/null 2>&1
  local rc=$?
  rm -rf "$probe"
  return $rc
}

missing=()
have_libfuzzer || missing+=(clang libclang-rt-14-dev)
command -v cmake >/dev/null || missing+=(cmake)
command -v g++ >/dev/null || missing+=(g++)
if command -v g++ >/dev/null && [ ! -e "$(g++ -print-file-name=libasan.so)" ]; then
  missing+=(libasan8)
fi

if [ ${#missing[@]} -eq 0 ]; then
  echo "[fuzz-deps] clang/libFuzzer, cmake, g++ and libasan are present"
  exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "[fuzz-deps] missing: ${missing[*]} (as root on Debian 12: apt-get install -y ${missing[*]})" >&2
  exit 1
fi
echo "[fuzz-deps] installing ${missing[*]}"
apt-get update -qq >/dev/null
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
have_libfuzzer || { echo "[fuzz-deps] clang still cannot link -fsanitize=fuzzer" >&2; exit 1; }
echo "[fuzz-deps] ok"
