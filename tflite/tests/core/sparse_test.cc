// sbnn_sparse_tests: every compiled-in sparse bconv2d kernel the CPU supports, against
// a naive convolution of unpacked {-1,+1} values (the same fluent tester as the dense
// kernels), on the dense suites' shape sweeps with sparse filters: sparsity 0, 0.5, 0.9,
// 0.95, 0.99, 1, Bernoulli and K0/K1 (paper Table 2) generators, minority flip. Exact.
//
//   sbnn_sparse_tests [--verbose] [--suite NAME] [--kernel SUBSTR]... [--kernel-id ID]
//   (--kernel-id: one kernel, by its id in core/bconv2d_kernels.h)
#include <algorithm>
#include <chrono>
#include <random>
#include <cstdio>
#include <cstring>
#include <set>
#include <string>
#include <vector>

#include "bconv2d.h"
#include "bconv2d_select.h"
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

const double kSparsities[] = {0.0, 0.5, 0.9, 0.95, 0.99, 1.0};

// The n-th filter flavour: sparsity from the list, Bernoulli or K0/K1, flipped or not.
void Flavour(BConvTester& t, int n) {
  const double sp = kSparsities[n % 6];
  t.sparsity(sp);
  const int kind = (n / 6) % 3;
  double k0 = 0, k1 = 0;
  if (kind == 1 && sbnn::testing::paper_k0k1(sp, &k0, &k1)) t.k0k1(k0, k1);
  if (kind == 2) t.minority_flip(true);
}

void Run(BConvTester& t, TestStats* st) {
  t.verbose(g_verbose).outputs(true).TestList(g_kernels.data(), st);
}

void TestTable() {
  std::set<std::string> names;
  int count = 0;
  for (const BConv2DKernel* const* k = sbnn::all_sparse_bconv2d_kernels(); *k; ++k, ++count) {
    CHECK((*k)->name != nullptr);
    CHECK(names.insert((*k)->name).second);
    CHECK(std::strncmp((*k)->name, "bconv2d_sparse", 14) == 0);
    CHECK(sbnn::is_sparse_family((*k)->family));
    CHECK((*k)->supported != nullptr && (*k)->run != nullptr);
    CHECK((*k)->prepare != nullptr && (*k)->release != nullptr);
  }
  CHECK(count >= 2);
  const BConv2DShape s = BConvTester().in(6, 6, 64).out_channels(64).shape();
  // The dense dispatch never picks a sparse kernel by itself...
  const BConv2DKernel* dense = sbnn::select_bconv2d_kernel(s, nullptr);
  CHECK(dense != nullptr && std::strncmp(dense->name, "bconv2d_dot_", 12) == 0);
  CHECK(dense != nullptr && dense->family == sbnn::BConv2DFamily::kDense);
  // ...but finds one by name.
  for (const BConv2DKernel* const* k = sbnn::all_sparse_bconv2d_kernels(); *k; ++k)
    if ((*k)->supported(s)) CHECK(sbnn::select_bconv2d_kernel(s, (*k)->name) == *k);
}

// Packs a tester-like random sparse filter for select_bconv2d tests.
std::vector<uint32_t> SparseFilterBits(const BConv2DShape& s, double sparsity, uint32_t seed) {
  sbnn::testing::SparseFilterSpec spec;
  spec.sparsity = sparsity;
  std::vector<int8_t> w;
  std::mt19937 rng(seed);
  const int taps = s.filter_h * s.filter_w, cg = s.in_channels / s.groups;
  sbnn::testing::generate_sparse_weights(&w, s.out_channels, taps, cg, spec, &rng);
  std::vector<uint32_t> bits(static_cast<size_t>(s.out_channels) * taps * s.filter_words, 0);
  for (int o = 0; o < s.out_channels; ++o)
    for (int t = 0; t < taps; ++t)
      for (int c = 0; c < cg; ++c)
        if (w[(static_cast<size_t>(o) * taps + t) * cg + c] < 0)
          bits[(static_cast<size_t>(o) * taps + t) * s.filter_words + c / 32] |= 1u << (c % 32);
  return bits;
}

bool IsSparse(const BConv2DKernel* k) {
  return k != nullptr && sbnn::is_sparse_family(k->family);
}

// select_bconv2d: policies, the auto decision on dense and very sparse filters, the
// cache, and that the returned prepared object computes the right dot.
void TestSelect() {
  const BConv2DShape s = BConvTester().in(32, 32, 64).out_channels(64).kernel(3, 3).shape();
  const BConv2DKernel* dense = sbnn::select_bconv2d_kernel(s, nullptr);
  const auto half = SparseFilterBits(s, 0.5, 1);
  const auto sparse = SparseFilterBits(s, 0.99, 2);
  const int32_t* fh = reinterpret_cast<const int32_t*>(half.data());
  const int32_t* fs = reinterpret_cast<const int32_t*>(sparse.data());
  sbnn::BConv2DSelectOptions opt;
  sbnn::BConv2DSelection sel;

  opt.policy = "dense";
  CHECK(sbnn::select_bconv2d(s, fs, opt, &sel) && sel.kernel == dense);
  sbnn::release_bconv2d_selection(&sel);
  CHECK(sel.prepared == nullptr);

  opt.policy = "sparse";
  CHECK(sbnn::select_bconv2d(s, fh, opt, &sel) && IsSparse(sel.kernel) && sel.prepared != nullptr);
  sbnn::release_bconv2d_selection(&sel);

  opt.policy = "bconv2d_sparse__reference";
  CHECK(sbnn::select_bconv2d(s, fs, opt, &sel) && sel.kernel != nullptr &&
        std::strcmp(sel.kernel->name, "bconv2d_sparse__reference") == 0);
  sbnn::release_bconv2d_selection(&sel);
  opt.policy = "no_such_kernel";
  CHECK(!sbnn::select_bconv2d(s, fs, opt, &sel) && sel.kernel == nullptr);

  // auto on a dense (50%) filter: timed too; never slower than dense by the measurement.
  opt.policy = "auto";
  CHECK(sbnn::select_bconv2d(s, fh, opt, &sel) && sel.kernel != nullptr);
  CHECK(std::strcmp(sel.reason, "timed") == 0 || std::strcmp(sel.reason, "cached") == 0);
  CHECK(sel.chosen_ms <= sel.dense_ms);
  CHECK(sel.density > 0.45 && sel.density <= 0.5);
  std::printf("select: 32x32x64->64 at 50%%: %s (%s), %.4f ms vs dense %.4f ms\n", sel.kernel->name,
              sel.reason, sel.chosen_ms, sel.dense_ms);
  sbnn::release_bconv2d_selection(&sel);

  // auto on a 99% sparse filter: timed; whatever wins, the choice is never slower than
  // dense by the measurement, and it is cached.
  CHECK(sbnn::select_bconv2d(s, fs, opt, &sel) && sel.kernel != nullptr);
  CHECK(std::strcmp(sel.reason, "timed") == 0);
  CHECK(sel.num_candidates >= 1 && sel.candidates[0].kernel == dense);
  CHECK(sel.chosen_ms <= sel.dense_ms);
  CHECK(sel.density > 0.005 && sel.density < 0.02);
  std::printf("select: 32x32x64->64 at 99%%: %s (%s), %.4f ms vs dense %.4f ms, %d candidates\n",
              sel.kernel->name, sel.reason, sel.chosen_ms, sel.dense_ms, sel.num_candidates);
  const BConv2DKernel* first = sel.kernel;
  // The prepared object computes the same dot as the reference.
  {
    std::mt19937 rng(3);
    std::vector<uint32_t> in(static_cast<size_t>(s.in_h) * s.in_w * s.in_words);
    for (auto& v : in) v = rng();
    const size_t n = static_cast<size_t>(s.out_h) * s.out_w * s.out_channels;
    std::vector<int32_t> a(n), b(n);
    sel.kernel->run(s, sel.prepared, reinterpret_cast<const int32_t*>(in.data()), fs, a.data(), 0, s.out_h);
    sbnn::select_bconv2d_kernel(s, "reference")->run(s, nullptr, reinterpret_cast<const int32_t*>(in.data()),
                                                    fs, b.data(), 0, s.out_h);
    CHECK(a == b);
  }
  sbnn::release_bconv2d_selection(&sel);
  CHECK(sbnn::select_bconv2d(s, fs, opt, &sel) && sel.kernel == first);
  CHECK(std::strcmp(sel.reason, "cached") == 0);
  sbnn::release_bconv2d_selection(&sel);
  // A zero budget: model only (dense).
  opt.budget_ms = 0;
  opt.use_cache = false;
  CHECK(sbnn::select_bconv2d(s, fs, opt, &sel) && sel.kernel == dense);
  sbnn::release_bconv2d_selection(&sel);
  // Invalid shape.
  BConv2DShape bad = s;
  bad.groups = 3;
  CHECK(!sbnn::select_bconv2d(bad, fs, opt, &sel));
}

// Every channel count 1..130.
void SuiteChannels(TestStats* st) {
  for (int c = 1; c <= 130; ++c) {
    BConvTester t;
    t.in(5, 6, c).out_channels(1 + (c * 7) % 70).kernel(3, 3).pad_values(c % 2).seed(c);
    Flavour(t, c);
    Run(t, st);
  }
}

void SuiteOutChannels(TestStats* st) {
  for (int c : {64, 33})
    for (int o = 1; o <= 70; o += 3) {
      BConvTester t;
      t.in(4, 5, c).out_channels(o).kernel(3, 3).pad_values(o % 2).seed(1000 + o);
      Flavour(t, o);
      Run(t, st);
    }
}

// kernel x stride x dilation x padding x pad_values x groups x batch.
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
                Flavour(t, n);
                Run(t, st);
                ++n;
              }
}

void SuiteThreads(TestStats* st) {
  int n = 0;
  for (int threads : {2, 3, 5, 16})
    for (int batch : {1, 3})
      for (int pv : {0, 1}) {
        BConvTester t;
        t.batch(batch).in(9, 7, 96).out_channels(40).kernel(3, 3).stride(1 + n % 2)
            .pad_values(pv).threads(threads).seed(3000 + n);
        Flavour(t, n++);
        Run(t, st);
      }
}

// The full sparsity sweep x generator x input density, on a 3x3 and a 1x1 layer.
void SuiteSparsity(TestStats* st) {
  int n = 0;
  for (double sp : kSparsities)
    for (int kind = 0; kind < 3; ++kind)
      for (double xd : {0.0, 0.5, 1.0})
        for (int k : {3, 1}) {
          BConvTester t;
          t.in(7, 9, 70).out_channels(36).kernel(k, k).pad_values(n % 2).input_density(xd)
              .stride(1 + (n / 2) % 2).seed(4000 + n++);
          t.sparsity(sp);
          double k0 = 0, k1 = 0;
          if (kind == 1 && sbnn::testing::paper_k0k1(sp, &k0, &k1)) t.k0k1(k0, k1);
          if (kind == 2) t.minority_flip(true);
          Run(t, st);
        }
}

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
      {3, 70, 16, 8, 3, 3, 1, 1, 1, 1},  {2, 150, 8, 4, 3, 3, 1, 2, 1, 1},
      {70, 3, 16, 8, 3, 3, 1, 1, 1, 1},  {5, 66, 40, 12, 3, 5, 1, 1, 1, 3},
  };
  int n = 0;
  for (const G& g : cases)
    for (Padding pad : {Padding::kSame, Padding::kValid})
      for (int pv : {0, 1}) {
        BConvTester t;
        t.batch(1 + n % 2).in(g.h, g.w, g.c).out_channels(g.o).kernel(g.kh, g.kw)
            .stride(g.sh, g.sw).dilation(g.dh, g.dw).padding(pad).pad_values(pv)
            .seed(5000 + n);
        Flavour(t, n++);
        Run(t, st);
      }
  for (int pv : {0, 1}) {
    BConvTester t;
    t.in(6, 5, 40).out_channels(12).kernel(3, 3).explicit_padding(2, 0, 6, 4).pad_values(pv)
        .seed(5100 + pv);
    Flavour(t, 3 + pv);
    Run(t, st);
    BConvTester u;
    u.in(4, 4, 64).out_channels(10).kernel(3, 3).stride(2).explicit_padding(3, 3, 5, 5)
        .pad_values(pv).seed(5200 + pv);
    Flavour(u, 4 + pv);
    Run(u, st);
  }
}

void SuiteGroups(TestStats* st) {
  int n = 0;
  for (int groups : {2, 3, 4, 8})
    for (int cg : {1, 5, 16, 32, 33, 48, 64})
      for (int og : {1, 8, 33}) {
        BConvTester t;
        t.in(5, 6, cg * groups).out_channels(og * groups).groups(groups).kernel(3, 3)
            .pad_values(n % 2).stride(1 + (n / 2) % 2).seed(6000 + n);
        Flavour(t, n++);
        Run(t, st);
      }
}

void SuiteRobustness(TestStats* st) {
  int n = 0;
  for (int c : {1, 20, 33, 70, 130})
    for (int groups : {1, 2}) {
      if (c % groups) continue;
      BConvTester t;
      t.in(6, 6, c).out_channels(18).groups(groups).kernel(3, 3).pad_values(n % 2)
          .dirty_padding_bits(true).seed(7000 + n);
      Flavour(t, n++);
      Run(t, st);
    }
  for (int pv : {0, 1}) {
    BConvTester t;
    t.in(7, 5, 96).out_channels(40).kernel(3, 3).stride(2).pad_values(pv).prepare_in(20, 30)
        .seed(7100 + pv);
    Flavour(t, 3 + pv);
    Run(t, st);
  }
}

// Small row ranges (a delegate's row chunks, threads): bands of 1 .. few rows exercise
// the kernels' narrow-band paths (several channels per vector).
void SuiteRowSplit(TestStats* st) {
  struct M {
    int h, w, c, o, k, s;
  };
  const M cases[] = {{16, 16, 128, 40, 3, 1}, {28, 28, 64, 48, 3, 1}, {14, 14, 96, 33, 3, 1},
                     {56, 56, 32, 16, 3, 1},  {32, 32, 64, 20, 3, 2}, {12, 40, 64, 24, 3, 1}};
  int n = 0;
  for (const M& m : cases)
    for (int threads : {3, 7, 16}) {
      BConvTester t;
      t.in(m.h, m.w, m.c).out_channels(m.o).kernel(m.k, m.k).stride(m.s).pad_values(n % 2)
          .threads(threads).seed(8500 + n);
      Flavour(t, n++);
      Run(t, st);
    }
}

// Layers of real models at the sparsities that matter, both generators.
void SuiteModels(TestStats* st) {
  struct M {
    int h, w, c, o, k, s;
  };
  const M cases[] = {
      {32, 32, 64, 64, 3, 1},  {32, 32, 64, 128, 3, 2}, {16, 16, 128, 128, 3, 1},
      {16, 16, 128, 256, 3, 2}, {8, 8, 256, 256, 3, 1},  {8, 8, 256, 512, 3, 2},
      {4, 4, 512, 512, 3, 1},  {14, 14, 256, 256, 3, 1}, {7, 7, 512, 512, 3, 1},
      {28, 28, 64, 64, 3, 1},  {56, 56, 64, 64, 3, 1},   {14, 14, 256, 512, 1, 2},
      {3, 3, 4096, 8, 5, 1},   {40, 40, 32, 16, 1, 1},   {100, 100, 32, 8, 3, 1},
  };
  int n = 0;
  for (const M& m : cases)
    for (double sp : {0.95, 0.99}) {
      BConvTester t;
      t.in(m.h, m.w, m.c).out_channels(m.o).kernel(m.k, m.k).stride(m.s).pad_values(n % 2)
          .seed(8000 + n);
      t.sparsity(sp);
      double k0 = 0, k1 = 0;
      if (n % 2 && sbnn::testing::paper_k0k1(sp, &k0, &k1)) t.k0k1(k0, k1);
      ++n;
      Run(t, st);
    }
  BConvTester t;
  t.batch(2).in(10, 10, 256).out_channels(256).kernel(3, 3).threads(2).seed(8100).sparsity(0.95);
  Run(t, st);
}

struct Suite {
  const char* name;
  void (*fn)(TestStats*);
};

const Suite kSuites[] = {
    {"channels", SuiteChannels}, {"out_channels", SuiteOutChannels}, {"grid", SuiteGrid},
    {"threads", SuiteThreads},   {"sparsity", SuiteSparsity},        {"geometry", SuiteGeometry},
    {"groups", SuiteGroups},     {"robustness", SuiteRobustness},    {"rowsplit", SuiteRowSplit},
    {"models", SuiteModels},
};

}  // namespace

int main(int argc, char** argv) {
  const char* only = nullptr;
  const char* kernel_id = nullptr;
  std::vector<const char*> filters;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--verbose") == 0) g_verbose = true;
    else if (std::strcmp(argv[i], "--suite") == 0 && i + 1 < argc) only = argv[++i];
    else if (std::strcmp(argv[i], "--kernel") == 0 && i + 1 < argc) filters.push_back(argv[++i]);
    else if (std::strcmp(argv[i], "--kernel-id") == 0 && i + 1 < argc) kernel_id = argv[++i];
    else {
      std::printf("usage: %s [--verbose] [--suite NAME] [--kernel SUBSTR]... [--kernel-id ID]\n",
                  argv[0]);
      return 2;
    }
  }
  const std::vector<const BConv2DKernel*> by_id = sbnn::testing::kernels_to_test(
      sbnn::all_sparse_bconv2d_kernels(), sbnn::testing::kSparseKernelIds, kernel_id);
  if (by_id.size() == 1) {
    std::printf("--kernel-id %s: no such sparse kernel in core/bconv2d_kernels.h\n", kernel_id);
    return 2;
  }
  std::printf("sparse kernels compiled in:");
  const BConv2DShape probe = BConvTester().shape();
  for (const BConv2DKernel* const* k = sbnn::all_sparse_bconv2d_kernels(); *k; ++k) {
    const bool on = (*k)->supported(probe);
    std::printf(" %s%s", (*k)->name, on ? "" : " (not on this CPU)");
    bool selected = filters.empty();
    for (const char* f : filters) selected = selected || std::strstr((*k)->name, f) != nullptr;
    selected = selected && std::find(by_id.begin(), by_id.end(), *k) != by_id.end();
    if (selected) g_kernels.push_back(*k);
  }
  g_kernels.push_back(nullptr);
  std::printf("\n");

  TestTable();
  TestSelect();
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
