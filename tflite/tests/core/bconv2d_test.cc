// sbnn_core_tests: every compiled-in bconv2d kernel the CPU supports, against a naive
// convolution of unpacked {-1,+1} values, on sweeps of shapes. Exact comparison.
//
//   sbnn_core_tests                  all suites
//   sbnn_core_tests --dispatch-only  only the dispatch checks (CTest runs this with
//                                    SBNN_LOG_KERNEL=1 and checks the log line)
//   sbnn_core_tests --verbose        print every passing (kernel, shape)
//   sbnn_core_tests --suite NAME     run one suite (see kSuites below)
//   sbnn_core_tests --kernel-id ID   test one kernel (its id in core/bconv2d_kernels.h)
#include <chrono>
#include <cstdio>
#include <cstring>
#include <set>
#include <string>
#include <vector>

#include "bconv2d.h"
#include "bconv_tester.h"
#include "kernel_ids.h"

using sbnn::BConv2DKernel;
using sbnn::BConv2DShape;
using sbnn::testing::BConvTester;
using sbnn::testing::Padding;
using sbnn::testing::TestStats;

namespace {

bool g_verbose = false;
int g_check_failures = 0;
std::vector<const BConv2DKernel*> g_kernels;  // the kernels under test, nullptr-terminated

#define CHECK(cond)                                                          \
  do {                                                                       \
    if (!(cond)) {                                                           \
      std::printf("FAIL %s:%d: CHECK(%s)\n", __FILE__, __LINE__, #cond);    \
      ++g_check_failures;                                                    \
    }                                                                        \
  } while (0)

const BConv2DKernel* find_kernel(const char* name) {
  for (const BConv2DKernel* const* k = sbnn::all_bconv2d_kernels(); *k; ++k)
    if (std::strcmp((*k)->name, name) == 0) return *k;
  return nullptr;
}

// ---------------------------------------------------------------------------------
// Dispatch and table checks.
void TestDispatch() {
  std::set<std::string> names;
  int count = 0;
  for (const BConv2DKernel* const* k = sbnn::all_bconv2d_kernels(); *k; ++k, ++count) {
    CHECK((*k)->name != nullptr);
    CHECK(names.insert((*k)->name).second);  // unique names
    CHECK(std::strncmp((*k)->name, "bconv2d_dot_", 12) == 0);
    CHECK(!sbnn::is_sparse_family((*k)->family));
    CHECK((*k)->supported != nullptr && (*k)->run != nullptr);
    CHECK(((*k)->prepare == nullptr) == ((*k)->release == nullptr));
  }
  CHECK(count >= 2);
  const BConv2DKernel* ref = find_kernel("bconv2d_dot__reference");
  CHECK(ref != nullptr && ref->family == sbnn::BConv2DFamily::kDenseReference);

  const BConv2DShape s = BConvTester().in(6, 6, 64).out_channels(64).shape();
  const BConv2DKernel* best = sbnn::select_bconv2d_kernel(s, nullptr);
  CHECK(best != nullptr);
  if (best) std::printf("dispatch: default kernel for 6x6x64->64 3x3: %s\n", best->name);
  CHECK(sbnn::select_bconv2d_kernel(s, "reference") == ref);
  CHECK(sbnn::select_bconv2d_kernel(s, "bconv2d_dot__reference") == ref);
  CHECK(sbnn::select_bconv2d_kernel(s, "no_such_kernel") == nullptr);
  for (const BConv2DKernel* const* k = sbnn::all_bconv2d_kernels(); *k; ++k) {
    if ((*k)->supported(s)) {
      CHECK(sbnn::select_bconv2d_kernel(s, (*k)->name) == *k);
    } else {
      CHECK(sbnn::select_bconv2d_kernel(s, (*k)->name) == nullptr);
    }
  }
  // A shape no kernel may accept: groups do not divide the channels.
  BConv2DShape bad = BConvTester().in(6, 6, 64).out_channels(64).shape();
  bad.groups = 3;
  CHECK(sbnn::select_bconv2d_kernel(bad, nullptr) == nullptr);
  CHECK(!ref->supported(bad));
  bad = s;
  bad.in_words = 1;  // 64 channels need 2 words
  CHECK(sbnn::select_bconv2d_kernel(bad, nullptr) == nullptr);
  bad = s;
  bad.pad_values = 2;
  CHECK(sbnn::select_bconv2d_kernel(bad, nullptr) == nullptr);
  // Few output channels per group still get an optimized kernel.
  const BConv2DShape narrow = BConvTester().in(6, 6, 64).out_channels(8).shape();
  const BConv2DKernel* nk = sbnn::select_bconv2d_kernel(narrow, nullptr);
  CHECK(nk != nullptr);
  if (nk) std::printf("dispatch: default kernel for 6x6x64->8 3x3: %s\n", nk->name);
}

// ---------------------------------------------------------------------------------
// Sweeps.
struct Suite {
  const char* name;
  void (*fn)(TestStats*);
};

void Run(BConvTester& t, TestStats* st) { t.verbose(g_verbose).TestList(g_kernels.data(), st); }

// Channels 1..130 (all of them), 3x3 SAME, output channels varying with them.
void SuiteChannels(TestStats* st) {
  for (int c = 1; c <= 130; ++c) {
    BConvTester t;
    t.in(5, 6, c).out_channels(1 + (c * 7) % 70).kernel(3, 3).pad_values(c % 2).seed(c);
    Run(t, st);
  }
}

// Output channels 1..70 for two channel counts (a word multiple and one past it).
void SuiteOutChannels(TestStats* st) {
  for (int c : {64, 33})
    for (int o = 1; o <= 70; ++o) {
      BConvTester t;
      t.in(4, 5, c).out_channels(o).kernel(3, 3).pad_values(o % 2).seed(1000 + o);
      Run(t, st);
    }
}

// The Cartesian product of kernel x stride x dilation x padding x pad_values x groups x
// batch, channel counts rotating through the word edges.
void SuiteGrid(TestStats* st) {
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
                Run(t, st);
                ++n;
              }
}

// Row ranges split over threads (uneven pieces, more pieces than rows too).
void SuiteThreads(TestStats* st) {
  int n = 0;
  for (int threads : {2, 3, 5, 16})
    for (int batch : {1, 3})
      for (int pv : {0, 1}) {
        BConvTester t;
        t.batch(batch).in(9, 7, 96).out_channels(40).kernel(3, 3).stride(1 + n % 2)
            .pad_values(pv).threads(threads).seed(3000 + n++);
        Run(t, st);
      }
}

// Bit densities (sparse filters in the LCE convention: mostly -1 bits, or all equal).
void SuiteDensity(TestStats* st) {
  int n = 0;
  for (double wd : {0.0, 0.5, 0.9, 0.99, 1.0})
    for (double xd : {0.0, 0.5, 1.0}) {
      BConvTester t;
      t.in(6, 7, 70).out_channels(36).kernel(3, 3).pad_values(n % 2).filter_density(wd)
          .input_density(xd).seed(4000 + n++);
      Run(t, st);
    }
}

// Odd geometry: tiny inputs, big windows, asymmetric strides and dilations, explicit
// padding, inputs smaller than the window.
void SuiteGeometry(TestStats* st) {
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
  };
  int n = 0;
  for (const G& g : cases)
    for (Padding pad : {Padding::kSame, Padding::kValid})
      for (int pv : {0, 1}) {
        BConvTester t;
        t.batch(1 + n % 2).in(g.h, g.w, g.c).out_channels(g.o).kernel(g.kh, g.kw)
            .stride(g.sh, g.sw).dilation(g.dh, g.dw).padding(pad).pad_values(pv)
            .seed(5000 + n++);
        Run(t, st);
      }
  // Explicit (asymmetric, over-sized) resolved padding.
  for (int pv : {0, 1}) {
    BConvTester t;
    t.in(6, 5, 40).out_channels(12).kernel(3, 3).explicit_padding(2, 0, 6, 4).pad_values(pv)
        .seed(5100 + pv);
    Run(t, st);
    BConvTester u;
    u.in(4, 4, 64).out_channels(10).kernel(3, 3).stride(2).explicit_padding(3, 3, 5, 5)
        .pad_values(pv).seed(5200 + pv);
    Run(u, st);
  }
}

// Groups: word-aligned and unaligned channel ranges per group.
void SuiteGroups(TestStats* st) {
  int n = 0;
  for (int groups : {2, 3, 4, 8})
    for (int cg : {1, 5, 16, 32, 33, 48, 64})
      for (int og : {1, 8, 33}) {
        BConvTester t;
        t.in(5, 6, cg * groups).out_channels(og * groups).groups(groups).kernel(3, 3)
            .pad_values(n % 2).stride(1 + (n / 2) % 2).seed(6000 + n++);
        Run(t, st);
      }
}

// Junk in the padding bits, and a prepared filter reused with other spatial sizes.
void SuiteRobustness(TestStats* st) {
  int n = 0;
  for (int c : {1, 20, 33, 70, 130})
    for (int groups : {1, 2}) {
      if (c % groups) continue;
      BConvTester t;
      t.in(6, 6, c).out_channels(18).groups(groups).kernel(3, 3).pad_values(n % 2)
          .dirty_padding_bits(true).seed(7000 + n++);
      Run(t, st);
    }
  for (int pv : {0, 1}) {
    BConvTester t;
    t.in(7, 5, 96).out_channels(40).kernel(3, 3).stride(2).pad_values(pv).prepare_in(20, 30)
        .seed(7100 + pv);
    Run(t, st);
  }
}

// Layers of real models, and sizes that exercise chunking and the heap scratch path.
void SuiteModels(TestStats* st) {
  struct M {
    int h, w, c, o, k, s;
  };
  const M cases[] = {
      {14, 14, 256, 256, 3, 1}, {7, 7, 512, 512, 3, 1},   {16, 16, 128, 128, 3, 1},
      {16, 16, 64, 128, 3, 2},  {14, 14, 256, 512, 1, 2}, {28, 28, 64, 64, 3, 1},
      {6, 6, 1024, 40, 3, 1},   {3, 3, 4096, 8, 5, 1},    {40, 40, 32, 16, 1, 1},
  };
  int n = 0;
  for (const M& m : cases) {
    BConvTester t;
    t.in(m.h, m.w, m.c).out_channels(m.o).kernel(m.k, m.k).stride(m.s).pad_values(n % 2)
        .seed(8000 + n++);
    Run(t, st);
  }
  BConvTester t;  // batch 2, SAME, pad 0, threads: the delegate's common case
  t.batch(2).in(10, 10, 256).out_channels(256).kernel(3, 3).threads(2).seed(8100);
  Run(t, st);
}

const Suite kSuites[] = {
    {"channels", SuiteChannels}, {"out_channels", SuiteOutChannels}, {"grid", SuiteGrid},
    {"threads", SuiteThreads},   {"density", SuiteDensity},          {"geometry", SuiteGeometry},
    {"groups", SuiteGroups},     {"robustness", SuiteRobustness},    {"models", SuiteModels},
};

}  // namespace

int main(int argc, char** argv) {
  bool dispatch_only = false;
  const char* only = nullptr;
  const char* kernel_id = nullptr;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--dispatch-only") == 0) dispatch_only = true;
    else if (std::strcmp(argv[i], "--verbose") == 0) g_verbose = true;
    else if (std::strcmp(argv[i], "--suite") == 0 && i + 1 < argc) only = argv[++i];
    else if (std::strcmp(argv[i], "--kernel-id") == 0 && i + 1 < argc) kernel_id = argv[++i];
    else {
      std::printf("usage: %s [--dispatch-only] [--verbose] [--suite NAME] [--kernel-id ID]\n",
                  argv[0]);
      return 2;
    }
  }
  g_kernels = sbnn::testing::kernels_to_test(sbnn::all_bconv2d_kernels(),
                                             sbnn::testing::kDenseKernelIds, kernel_id);
  if (g_kernels.size() == 1) {
    std::printf("--kernel-id %s: no such kernel in core/bconv2d_kernels.h\n", kernel_id);
    return 2;
  }
  std::printf("kernels compiled in:");
  const BConv2DShape probe = BConvTester().shape();
  for (const BConv2DKernel* const* k = sbnn::all_bconv2d_kernels(); *k; ++k)
    std::printf(" %s%s", (*k)->name, (*k)->supported(probe) ? "" : " (not on this CPU)");
  std::printf("\n");

  TestDispatch();
  if (dispatch_only) {
    std::printf("%s: dispatch checks\n", g_check_failures ? "FAILED" : "PASSED");
    return g_check_failures ? 1 : 0;
  }

  TestStats total;
  const auto t0 = std::chrono::steady_clock::now();
  for (const Suite& suite : kSuites) {
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
  const bool ok = total.failures == 0 && g_check_failures == 0;
  std::printf("%s: %lld cases, %lld kernel runs, %lld outputs compared exactly, %lld failed "
              "runs, %d failed checks, %.1f s\n",
              ok ? "PASSED" : "FAILED", total.cases, total.runs, total.outputs, total.failures,
              g_check_failures, sec);
  return ok ? 0 : 1;
}
