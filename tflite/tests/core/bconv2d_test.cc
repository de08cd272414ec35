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
#include "shape_suites.h"

using sbnn::BConv2DKernel;
using sbnn::BConv2DShape;
using sbnn::testing::BConvTester;
using sbnn::testing::Padding;
using sbnn::testing::Suite;
using sbnn::testing::TestStats;

namespace {

bool g_verbose = false;
int g_check_failures = 0;
std::vector<const BConv2DKernel*> g_kernels;  // the kernels under test, nullptr-terminated

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
// Sweeps: the shared ones (shape_suites.h), then the dense kernels' own.

void Run(BConvTester& t, TestStats* st) { t.verbose(g_verbose).TestList(g_kernels.data(), st); }

sbnn::testing::CaseFn Runner(TestStats* st) {
  return [st](BConvTester& t, int) { Run(t, st); };
}

void SuiteChannels(TestStats* st) { sbnn::testing::SweepChannels(Runner(st)); }
void SuiteOutChannels(TestStats* st) { sbnn::testing::SweepOutChannels(Runner(st), 1); }
void SuiteGrid(TestStats* st) { sbnn::testing::SweepGrid(Runner(st)); }
void SuiteThreads(TestStats* st) { sbnn::testing::SweepThreads(Runner(st)); }
void SuiteGeometry(TestStats* st) { sbnn::testing::SweepGeometry(Runner(st), false); }
void SuiteGroups(TestStats* st) { sbnn::testing::SweepGroups(Runner(st)); }
void SuiteRobustness(TestStats* st) { sbnn::testing::SweepRobustness(Runner(st)); }

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

  return sbnn::testing::RunSuites(kSuites, only, g_check_failures) ? 0 : 1;
}
