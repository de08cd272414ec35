// The shape sweeps shared by the dense and the sparse kernel tests (bconv2d_test.cc,
// sparse_test.cc), and the runner both use. A sweep builds each case's BConvTester and
// hands it to `run` with the case's index n within the sweep; the sparse tests choose
// the filter's flavour (sparsity, generator) from n before they run the case.
#pragma once

#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>

#include "bconv_tester.h"

namespace sbnn {
namespace testing {

using CaseFn = std::function<void(BConvTester& t, int n)>;

// Channels 1..130 (all of them), 3x3 SAME, output channels varying with them.
inline void SweepChannels(const CaseFn& run) {
  for (int c = 1; c <= 130; ++c) {
    BConvTester t;
    t.in(5, 6, c).out_channels(1 + (c * 7) % 70).kernel(3, 3).pad_values(c % 2).seed(c);
    run(t, c);
  }
}

// Output channels 1..70 in steps of `step`, for two channel counts (a word multiple and
// one past it).
inline void SweepOutChannels(const CaseFn& run, int step) {
  for (int c : {64, 33})
    for (int o = 1; o <= 70; o += step) {
      BConvTester t;
      t.in(4, 5, c).out_channels(o).kernel(3, 3).pad_values(o % 2).seed(1000 + o);
      run(t, o);
    }
}

// The Cartesian product of kernel x stride x dilation x padding x pad_values x groups x
// batch, channel counts rotating through the word edges.
inline void SweepGrid(const CaseFn& run) {
  const int kernels[][2] = {{1, 1}, {3, 3}, {5, 5}, {1, 3}};
  const int edges[] = {1, 31, 32, 33, 63, 64, 65, 127, 130};
  const int ogs[] = {1, 5, 8, 17, 32, 33, 40};
  int n = 0;
  for (const auto& k : kernels)
    for (int stride : {1, 2})
      for (int dil : {1, 2})
        for (Padding pad : {Padding::kSame, Padding::kValid})
          for (int pv : {0, 1})
            for (int groups : {1, 2, 4})
              for (int batch : {1, 3}) {
                const int cg = edges[n % 9];
                const int og = ogs[(n / 9) % 7];
                BConvTester t;
                t.batch(batch)
                    .in(9 + n % 3, 10 - n % 2, cg * groups)
                    .out_channels(og * groups)
                    .kernel(k[0], k[1])
                    .stride(stride)
                    .dilation(dil)
                    .padding(pad)
                    .pad_values(pv)
                    .groups(groups)
                    .seed(2000 + n);
                run(t, n);
                ++n;
              }
}

// Row ranges split over threads (uneven pieces, more pieces than rows too).
inline void SweepThreads(const CaseFn& run) {
  int n = 0;
  for (int threads : {2, 3, 5, 16})
    for (int batch : {1, 3})
      for (int pv : {0, 1}) {
        BConvTester t;
        t.batch(batch).in(9, 7, 96).out_channels(40).kernel(3, 3).stride(1 + n % 2)
            .pad_values(pv).threads(threads).seed(3000 + n);
        run(t, n++);
      }
}

// Odd geometry: tiny inputs, big windows, asymmetric strides and dilations, explicit
// padding, inputs smaller than the window; `wide_rows` adds very wide and very tall
// inputs (many pixels per row of a sparse kernel's band).
inline void SweepGeometry(const CaseFn& run, bool wide_rows) {
  struct G {
    int h, w, c, o, kh, kw, sh, sw, dh, dw;
  };
  const G cases[] = {
      {1, 1, 32, 8, 3, 3, 1, 1, 1, 1},  {1, 7, 40, 9, 3, 3, 1, 1, 1, 1},
      {2, 2, 64, 16, 5, 5, 1, 1, 1, 1}, {7, 9, 33, 17, 3, 3, 1, 2, 1, 1},
      {9, 7, 65, 24, 3, 3, 2, 1, 2, 1}, {10, 10, 32, 32, 3, 3, 3, 3, 3, 3},
      {5, 12, 48, 20, 1, 5, 1, 2, 1, 2}, {12, 5, 48, 20, 5, 1, 2, 1, 2, 1},
      {8, 8, 96, 70, 7, 7, 1, 1, 1, 1}, {3, 17, 1, 3, 3, 3, 1, 1, 1, 1},
      {11, 13, 160, 48, 2, 2, 2, 2, 1, 1}, {6, 6, 64, 64, 4, 4, 1, 1, 1, 1},
      {3, 70, 16, 8, 3, 3, 1, 1, 1, 1},  {2, 150, 8, 4, 3, 3, 1, 2, 1, 1},
      {70, 3, 16, 8, 3, 3, 1, 1, 1, 1},  {5, 66, 40, 12, 3, 5, 1, 1, 1, 3},
  };
  const int count = wide_rows ? 16 : 12;
  int n = 0;
  for (int i = 0; i < count; ++i)
    for (Padding pad : {Padding::kSame, Padding::kValid})
      for (int pv : {0, 1}) {
        const G& g = cases[i];
        BConvTester t;
        t.batch(1 + n % 2).in(g.h, g.w, g.c).out_channels(g.o).kernel(g.kh, g.kw)
            .stride(g.sh, g.sw).dilation(g.dh, g.dw).padding(pad).pad_values(pv)
            .seed(5000 + n);
        run(t, n++);
      }
  // Explicit (asymmetric, over-sized) resolved padding.
  for (int pv : {0, 1}) {
    BConvTester t;
    t.in(6, 5, 40).out_channels(12).kernel(3, 3).explicit_padding(2, 0, 6, 4).pad_values(pv)
        .seed(5100 + pv);
    run(t, 3 + pv);
    BConvTester u;
    u.in(4, 4, 64).out_channels(10).kernel(3, 3).stride(2).explicit_padding(3, 3, 5, 5)
        .pad_values(pv).seed(5200 + pv);
    run(u, 4 + pv);
  }
}

// Groups: word-aligned and unaligned channel ranges per group.
inline void SweepGroups(const CaseFn& run) {
  int n = 0;
  for (int groups : {2, 3, 4, 8})
    for (int cg : {1, 5, 16, 32, 33, 48, 64})
      for (int og : {1, 8, 33}) {
        BConvTester t;
        t.in(5, 6, cg * groups).out_channels(og * groups).groups(groups).kernel(3, 3)
            .pad_values(n % 2).stride(1 + (n / 2) % 2).seed(6000 + n);
        run(t, n++);
      }
}

// Junk in the padding bits, and a prepared filter reused with other spatial sizes.
inline void SweepRobustness(const CaseFn& run) {
  int n = 0;
  for (int c : {1, 20, 33, 70, 130})
    for (int groups : {1, 2}) {
      if (c % groups) continue;
      BConvTester t;
      t.in(6, 6, c).out_channels(18).groups(groups).kernel(3, 3).pad_values(n % 2)
          .dirty_padding_bits(true).seed(7000 + n);
      run(t, n++);
    }
  for (int pv : {0, 1}) {
    BConvTester t;
    t.in(7, 5, 96).out_channels(40).kernel(3, 3).stride(2).pad_values(pv).prepare_in(20, 30)
        .seed(7100 + pv);
    run(t, 3 + pv);
  }
}

// ---- the runner ---------------------------------------------------------------------

struct Suite {
  const char* name;
  void (*fn)(TestStats*);
};

// Runs the suites (only the one named `only` when not null) and prints a line per suite
// and a summary; true when no kernel run failed and `check_failures` is 0.
template <size_t N>
bool RunSuites(const Suite (&suites)[N], const char* only, const int& check_failures) {
  TestStats total;
  const auto t0 = std::chrono::steady_clock::now();
  for (const Suite& suite : suites) {
    if (only && std::strcmp(only, suite.name) != 0) continue;
    TestStats st;
    const auto s0 = std::chrono::steady_clock::now();
    suite.fn(&st);
    const double sec =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - s0).count();
    std::printf("suite %-12s %4lld cases %5lld kernel runs %10lld outputs %3lld failed"
                " %2lld empty  %.1f s\n",
                suite.name, st.cases, st.runs, st.outputs, st.failures, st.skipped, sec);
    total.cases += st.cases;
    total.runs += st.runs;
    total.outputs += st.outputs;
    total.failures += st.failures;
    total.skipped += st.skipped;
  }
  const double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const bool ok = total.failures == 0 && check_failures == 0;
  std::printf("%s: %lld cases, %lld kernel runs, %lld outputs compared exactly, %lld failed "
              "runs, %d failed checks, %.1f s\n",
              ok ? "PASSED" : "FAILED", total.cases, total.runs, total.outputs, total.failures,
              check_failures, sec);
  return ok;
}

}  // namespace testing
}  // namespace sbnn

// Records a failed check in g_check_failures (each test file defines it) and goes on.
#define CHECK(cond)                                                          \
  do {                                                                       \
    if (!(cond)) {                                                           \
      std::printf("FAIL %s:%d: CHECK(%s)\n", __FILE__, __LINE__, #cond);    \
      ++g_check_failures;                                                    \
    }                                                                        \
  } while (0)
