#!/usr/bin/env bash
# Builds the libFuzzer harnesses of the native delegate (tflite/fuzz/, clang with
# -fsanitize=fuzzer,address,undefined) and runs each for a bounded time.
#
#   scripts/fuzz.sh [SECONDS]               # each harness SECONDS (default 60)
#   scripts/fuzz.sh --sanitizers [SECONDS]  # CI: first the ASan+UBSan build of the delegate:
#                                           # its ctest and the Python tests that drive it
#                                           # (tflite/scripts/asan_pytest.sh), the TSan build's
#                                           # native tests, then the fuzzers
#   scripts/fuzz.sh --only ops,model 600    # some harnesses only
#   scripts/fuzz.sh --sanitizers --no-fuzz  # the ASan+UBSan tests only (no clang needed)
#
# Harnesses: flexbuffer (custom-option reader), sbf1 (SBF1 decoder), ops (structured
# graphs of every op through a fake TFLite runtime, differential against the reference
# kernel, the SBF1 path and a naive computation), ops_portable (the ops harness with
# SBNN_DISABLE_ISA=avx2: the portable kernels, i.e. the bit-plane driver, band loop and
# fused-output fallback that the NEON kernel also runs on aarch64), model (mutated
# .tflite models through the fake runtime). Each starts from its working corpus build/fuzz/corpus/<h>/ (kept
# between runs), the seeds tflite/fuzz/corpus/<h>/ and the crash regressions
# tflite/fuzz/regressions/<h>/. Crashes, leaks, timeouts (> 25 s per input) and
# out-of-memory (> 2 GB) inputs land in build/fuzz/artifacts/; a crash fails the run.
# A summary table (executions, coverage, corpus, crashes) goes to stdout and
# build/fuzz/summary.md. Needs clang + libFuzzer: scripts/install_fuzz_deps.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

SANITIZERS=0
ONLY="flexbuffer,sbf1,ops,ops_portable,model"
SECONDS_EACH=60
while [ $# -gt 0 ]; do
  case "$1" in
    --sanitizers) SANITIZERS=1 ;;
    --only) ONLY="$2"; shift ;;
    --no-fuzz) ONLY="" ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) SECONDS_EACH="$1" ;;
  esac
  shift
done
BUILD=${FUZZ_BUILD:-build/fuzz}
JOBS=${JOBS:-2}

if [ "$(id -u)" = 0 ]; then
  bash scripts/install_fuzz_deps.sh
fi

if [ "$SANITIZERS" = 1 ]; then
  echo "== ASan + UBSan: native tests (ctest) and the Python tests that drive the delegate"
  t0=$(date +%s)
  bash tflite/scripts/asan_pytest.sh tests/test_runtime_ops.py tests/test_runtime_bad_input.py \
    tests/test_version_guards.py tests/test_fuzz_regressions.py -q -p no:cacheprovider
  echo "== TSan: native tests (thread pool, multi-threaded ops)"
  cmake -S tflite -B build/tflite-tsan -DSBNN_SANITIZE_THREAD=ON \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build build/tflite-tsan -j"$JOBS" >/dev/null
  (cd build/tflite-tsan && TSAN_OPTIONS=halt_on_error=1 ctest --output-on-failure \
    -R 'sbnn_delegate_(selftest|fake_runtime_test)')
  echo "== sanitizers: passed in $(( $(date +%s) - t0 )) s"
fi
[ -n "$ONLY" ] || exit 0
if ! command -v clang++ >/dev/null; then
  echo "fuzz.sh: clang++ not found; run scripts/install_fuzz_deps.sh (as root)" >&2
  exit 2
fi

echo "== building the harnesses in $BUILD"
cmake -S tflite/fuzz -B "$BUILD" -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_C_COMPILER=clang \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
if ! cmake --build "$BUILD" -j"$JOBS" >"$BUILD/build.log" 2>&1; then
  tail -40 "$BUILD/build.log" >&2
  exit 1
fi
mkdir -p "$BUILD/artifacts"

declare -A MAXLEN=([flexbuffer]=4096 [sbf1]=4096 [ops]=512 [ops_portable]=512 [model]=65536)
# ops reads a fixed recipe from the first bytes: no need to grow inputs slowly.
declare -A EXTRA=([flexbuffer]="" [sbf1]="" [ops]="-len_control=0" [ops_portable]="-len_control=0" [model]="")
# Variants of a harness: its binary and the ISAs masked (SBNN_DISABLE_ISA).
declare -A EXE=([ops_portable]=ops)
declare -A MASK=([ops_portable]=avx2)
summary="$BUILD/summary.md"
{
  echo "| harness | seconds | executions | exec/s | coverage (edges) | features | corpus | crashes | slow units |"
  echo "|---|---|---|---|---|---|---|---|---|"
} >"$summary"
failed=0
IFS=, read -r -a harnesses <<<"$ONLY"
for h in "${harnesses[@]}"; do
  base=${EXE[$h]:-$h}
  exe="$BUILD/fuzz_$base"
  [ -x "$exe" ] || { echo "fuzz.sh: no harness $exe" >&2; exit 2; }
  work="$BUILD/corpus/$h"
  mkdir -p "$work"
  dirs=("$work")
  for d in "tflite/fuzz/corpus/$base" "tflite/fuzz/regressions/$base"; do
    [ -d "$d" ] && dirs+=("$d")
  done
  log="$BUILD/fuzz_$h.log"
  # crash-, leak-, timeout-, oom- inputs fail the run; slow-unit- (> 10 s, often just a
  # busy machine) are reported in the table only.
  before=$(ls "$BUILD/artifacts" | grep -Ec "^$h-(crash|leak|timeout|oom)-" || true)
  slow_before=$(ls "$BUILD/artifacts" | grep -c "^$h-slow-unit-" || true)
  echo "== fuzz_$h for ${SECONDS_EACH} s (log: $log)"
  set +e
  # malloc_fill: every allocation starts as 0xFF junk (ASan fills only 4 KB by default),
  # so a read of memory nobody wrote gives wrong results at once, not only in a
  # process whose heap happens to hold old data.
  ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1:malloc_fill_byte=255:max_malloc_fill_size=1073741824} \
  UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
  SBNN_DISABLE_ISA=${MASK[$h]:-${SBNN_DISABLE_ISA:-}} \
    "$exe" -max_total_time="$SECONDS_EACH" -timeout=25 -rss_limit_mb=2048 \
      -max_len="${MAXLEN[$h]}" ${EXTRA[$h]} -print_final_stats=1 -artifact_prefix="$BUILD/artifacts/$h-" \
      "${dirs[@]}" >"$log" 2>&1
  rc=$?
  set -e
  after=$(ls "$BUILD/artifacts" | grep -Ec "^$h-(crash|leak|timeout|oom)-" || true)
  slow=$(( $(ls "$BUILD/artifacts" | grep -c "^$h-slow-unit-" || true) - slow_before ))
  execs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | awk '{print $2}' | tail -1)
  rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | awk '{print $2}' | tail -1)
  last=$(grep -E '^#[0-9]+' "$log" | tail -1)
  cov=$(echo "$last" | grep -o 'cov: [0-9]*' | awk '{print $2}')
  ft=$(echo "$last" | grep -o 'ft: [0-9]*' | awk '{print $2}')
  corp=$(echo "$last" | grep -o 'corp: [0-9]*/[0-9]*[a-zA-Z]*' | awk '{print $2}')
  crashes=$((after - before))
  echo "| $h | $SECONDS_EACH | ${execs:-?} | ${rate:-?} | ${cov:-?} | ${ft:-?} | ${corp:-?} | $crashes | $slow |" >>"$summary"
  if [ "$rc" != 0 ] || [ "$crashes" != 0 ]; then
    echo "fuzz_$h FAILED (exit $rc, $crashes new artifacts in $BUILD/artifacts/):" >&2
    grep -E "ERROR|sbnn fuzz|sbnn fake runtime|SUMMARY|runtime error" "$log" | head -20 >&2 || true
    failed=1
  fi
done
echo
cat "$summary"
if [ "$failed" != 0 ]; then
  echo "fuzz.sh: crashes found. Reproduce: $BUILD/fuzz_<h> $BUILD/artifacts/<file>;" \
       "keep each as tflite/fuzz/regressions/<h>/<name> once fixed (docs/reliability.md)." >&2
  exit 1
fi
