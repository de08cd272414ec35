/* Popcount peak of one core: the ceiling for binary convolutions on this CPU.
 *
 * Two loops, each with 12 independent accumulators in ZMM registers (enough to
 * cover latency on any AVX-512 core), nothing but register operations:
 *
 *   xor_popcnt_add: acc += popcount(a ^ w)   VPXORQ + VPOPCNTQ + VPADDQ per 512 MACs,
 *                   the inner-loop instruction mix of bconv2d_dot_6x32__avx512vpopcnt
 *                   (without its loads and broadcasts: an upper bound for it);
 *   popcnt_only:    acc += popcount(a)       VPOPCNTQ + VPADDQ per 512 bits.
 *
 * An empty asm statement makes the operands opaque each iteration, so the compiler
 * cannot hoist the loop-invariant work. Time is the thread's CPU time
 * (CLOCK_THREAD_CPUTIME_ID: robust to other jobs on a shared machine); the best of
 * several runs is printed as JSON: MACs/s and binary ops/s (BOPS = 2 * MACs/s, the
 * XOR + popcount convention of docs/kernels.md).
 *
 * Build: cc -O2 -mavx512f -mavx512vpopcntdq popcount_peak.c -o popcount_peak
 */
#include <immintrin.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#define ACC 12 /* accumulators, see REP12 */

static double thread_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static double wall_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static uint64_t sink;

/* 12 accumulators as named registers (an array would live on the stack at -O2). */
#define REP12(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)
#define DECL(i)                                                                        \
  __m512i acc##i = _mm512_setzero_si512();                                             \
  __m512i a##i = _mm512_set1_epi64((long long)(0x5555555555555555ULL * (i + 1ULL)));
#define SUM(i) s = _mm512_add_epi64(s, acc##i);
#define XPA(i) acc##i = _mm512_add_epi64(acc##i, _mm512_popcnt_epi64(_mm512_xor_si512(a##i, w)));
#define OPAQUE(i) __asm__ volatile("" : "+v"(a##i));
#define PA(i) acc##i = _mm512_add_epi64(acc##i, _mm512_popcnt_epi64(a##i));

__attribute__((noinline)) static void xor_popcnt_add(long iters) {
  REP12(DECL)
  __m512i w = _mm512_set1_epi64(0x0123456789abcdefLL);
  for (long n = 0; n < iters; ++n) {
    __asm__ volatile("" : "+v"(w));
    REP12(XPA)
  }
  __m512i s = _mm512_setzero_si512();
  REP12(SUM)
  sink += (uint64_t)_mm512_reduce_add_epi64(s);
}

__attribute__((noinline)) static void popcnt_only(long iters) {
  REP12(DECL)
  for (long n = 0; n < iters; ++n) {
    REP12(OPAQUE)
    REP12(PA)
  }
  __m512i s = _mm512_setzero_si512();
  REP12(SUM)
  sink += (uint64_t)_mm512_reduce_add_epi64(s);
}

static void measure(const char* name, void (*fn)(long), int last) {
  const long iters = 20000000; /* 20 M x 12 x 512 bits: ~0.1 s */
  double best_cpu = 1e9, best_wall = 1e9;
  fn(iters / 10); /* warm-up (frequency, page-in) */
  for (int r = 0; r < 7; ++r) {
    double w0 = wall_seconds(), c0 = thread_seconds();
    fn(iters);
    double c = thread_seconds() - c0, w = wall_seconds() - w0;
    if (c < best_cpu) best_cpu = c;
    if (w < best_wall) best_wall = w;
  }
  double macs = (double)iters * ACC * 512;
  printf("  \"%s\": {\"macs_per_s\": %.4g, \"bops\": %.4g, \"instructions_per_ns\": %.4g, "
         "\"best_cpu_s\": %.4g, \"best_wall_s\": %.4g}%s\n",
         name, macs / best_cpu, 2 * macs / best_cpu, iters * ACC / best_cpu * 1e-9, best_cpu, best_wall,
         last ? "" : ",");
}

int main(void) {
  printf("{\n");
  measure("xor_popcnt_add", xor_popcnt_add, 0);
  measure("popcnt_only", popcnt_only, 1);
  printf("}\n");
  return sink == 42; /* keep the results alive */
}
