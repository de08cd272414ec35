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
#include "shape_suites.h"
#include "sparse_format.h"

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

// The NEON cost model against the instruction-count benchmark: llvm-mca Neoverse-N1
// model cycles of one run of the dense and the sparse NEON kernels on the binary
// ResNet-18 layers (Bernoulli filters of sparse_filter_gen.h, the benchmark's seeds),
// measured at the commit that fitted the model (docs/sparse_kernels.md, "NEON cost
// model"). The model's sparse/dense ratio must stay within 25% of the measured one and
// on the same side of 1 where the measured ratio is clearly away from it.
struct MeasuredLayer {
  int h, c, o, stride;
  double sparsity;
  int64_t conns;
  int max_conns;
  double dense_cycles, sparse_cycles;
};
const MeasuredLayer kMeasured[] = {
#include "neon_cost_measured.inc"
};

BConv2DShape LayerShape(int h, int c, int o, int stride) {
  BConv2DShape s = BConvTester().in(h, h, c).out_channels(o).kernel(3, 3).shape();
  s.stride_h = s.stride_w = stride;
  s.out_h = (h + stride - 1) / stride;
  s.out_w = s.out_h;
  s.pad_top = s.pad_left = std::max((s.out_h - 1) * stride + 3 - h, 0) / 2;
  s.pad_values = 0;
  return s;
}

void TestCostModel() {
  int n = 0;
  for (const MeasuredLayer& m : kMeasured) {
    const BConv2DShape s = LayerShape(m.h, m.c, m.o, m.stride);
    const sbnn::NeonCostEstimate e = sbnn::estimate_neon_bconv2d_cost(s, m.conns, m.max_conns);
    const double measured = m.sparse_cycles / m.dense_cycles, model = e.sparse / e.dense;
    CHECK(e.sparse_vector_path);
    CHECK(e.dense > 0.8 * m.dense_cycles && e.dense < 1.25 * m.dense_cycles);
    CHECK(model > 0.75 * measured && model < 1.25 * measured);
    if (measured < 0.8) CHECK(model < 1);
    if (measured > 1.25) CHECK(model > 1);
    if (g_verbose || !(model > 0.75 * measured && model < 1.25 * measured))
      std::printf("cost model %dx%dx%d->%d/%d at %.2f: measured %.3f, model %.3f\n", m.h, m.h, m.c, m.o,
                  m.stride, m.sparsity, measured, model);
    ++n;
  }
  CHECK(n > 0);
  // Bad input: no estimate for an invalid shape, the portable path rated for huge counts.
  BConv2DShape bad = LayerShape(8, 64, 64, 1);
  bad.groups = 3;
  CHECK(sbnn::estimate_neon_bconv2d_cost(bad, 10, 1).sparse == 0);
  CHECK(!sbnn::estimate_neon_bconv2d_cost(LayerShape(8, 64, 64, 1), 100, 1 << 20).sparse_vector_path);
}

// What the cost model picks for the binary convs of the demo SBNN (sbnn_keras.demo,
// models.fashion_mnist_cnn: 14x14 and 7x7 maps) at the connection densities of the
// trained demo SBNN (docs/data/table1_cnn_learned.json), with Bernoulli filters of those
// densities: printed for docs/deployment.md (an estimate: model cycles, not a device).
void TestCostModelDemo() {
  struct DemoLayer {
    const char* name;
    int h, c, o;
    double density;
  };
  const DemoLayer demo[] = {{"bconv1", 14, 32, 64, 0.2454},
                            {"bconv2", 14, 64, 64, 0.0806},
                            {"bconv3", 7, 64, 128, 0.0402},
                            {"bconv4", 7, 128, 128, 0.0283}};
  double dense_total = 0, chosen_total = 0;
  for (const DemoLayer& l : demo) {
    const BConv2DShape s = LayerShape(l.h, l.c, l.o, 1);
    const auto bits = SparseFilterBits(s, 1.0 - l.density, 11);
    const sbnn::internal::SparsityStats st =
        sbnn::internal::sparsity_stats(s, reinterpret_cast<const int32_t*>(bits.data()));
    const sbnn::NeonCostEstimate e = sbnn::estimate_neon_bconv2d_cost(s, st.conns, st.max_conns);
    const bool sparse = e.sparse_vector_path && e.sparse < e.dense * 0.95;
    dense_total += e.dense;
    chosen_total += sparse ? e.sparse : e.dense;
    std::printf("cost model (demo SBNN) %s %dx%dx%d->%d density %.3f: dense %.0f, sparse %.0f cycles -> %s\n",
                l.name, l.h, l.h, l.c, l.o, st.density, e.dense, e.sparse, sparse ? "sparse" : "dense");
    if (l.density < 0.1) CHECK(sparse);
  }
  std::printf("cost model (demo SBNN) binary convs: dense %.0f, chosen %.0f cycles, %.2fx\n", dense_total,
              chosen_total, dense_total / chosen_total);
}

// aarch64 "auto": decided by the cost model ("model"), both candidates estimated, the
// cheaper one chosen (sparse only when it beats dense by min_gain), never timed.
void TestSelectModel(const BConv2DShape& s, const int32_t* fh, const int32_t* fs,
                     const BConv2DKernel* dense) {
  sbnn::BConv2DSelectOptions opt;
  opt.use_cache = false;
  for (double budget : {10.0, 0.0})
    for (const int32_t* f : {fh, fs}) {
      opt.budget_ms = budget;
      sbnn::BConv2DSelection sel;
      CHECK(sbnn::select_bconv2d(s, f, opt, &sel) && sel.kernel != nullptr);
      CHECK(std::strcmp(sel.reason, "model") == 0);
      CHECK(sel.num_candidates == 2 && sel.candidates[0].kernel == dense && !sel.candidates[0].measured &&
            !sel.candidates[1].measured && IsSparse(sel.candidates[1].kernel));
      const sbnn::internal::SparsityStats st = sbnn::internal::sparsity_stats(s, f);
      const sbnn::NeonCostEstimate e = sbnn::estimate_neon_bconv2d_cost(s, st.conns, st.max_conns);
      const bool sparse = e.sparse < e.dense * (1 - opt.min_gain);
      CHECK(sel.kernel == (sparse ? sel.candidates[1].kernel : dense));
      CHECK(sel.chosen_ms <= sel.dense_ms);
      if (f == fs) CHECK(IsSparse(sel.kernel));  // 99%: the model must pick the sparse kernel
      std::printf("select (model): 32x32x64->64 at %s: %s, est. %.4f ms vs dense %.4f ms\n",
                  f == fs ? "99%" : "50%", sel.kernel->name, sel.chosen_ms, sel.dense_ms);
      sbnn::release_bconv2d_selection(&sel);
    }
  // With the NEON kernels masked the model has no sparse candidate: dense.
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

  opt.policy = "auto";
#if defined(__aarch64__)
  // aarch64: the NEON cost model decides, never timing (budget or not).
  TestSelectModel(s, fh, fs, dense);
  return;
#endif
  // auto on a dense (50%) filter: timed too; never slower than dense by the measurement.
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

// ---------------------------------------------------------------------------------
// Sweeps: the shared ones (shape_suites.h) with the filter flavour of the case's index,
// then the sparse kernels' own.

sbnn::testing::CaseFn Runner(TestStats* st) {
  return [st](BConvTester& t, int n) {
    Flavour(t, n);
    Run(t, st);
  };
}

void SuiteChannels(TestStats* st) { sbnn::testing::SweepChannels(Runner(st)); }
void SuiteOutChannels(TestStats* st) { sbnn::testing::SweepOutChannels(Runner(st), 3); }
void SuiteGrid(TestStats* st) { sbnn::testing::SweepGrid(Runner(st)); }
void SuiteThreads(TestStats* st) { sbnn::testing::SweepThreads(Runner(st)); }
void SuiteGeometry(TestStats* st) { sbnn::testing::SweepGeometry(Runner(st), true); }
void SuiteGroups(TestStats* st) { sbnn::testing::SweepGroups(Runner(st)); }
void SuiteRobustness(TestStats* st) { sbnn::testing::SweepRobustness(Runner(st)); }

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

// Bitpacked outputs compared on the count planes (core/sparse_bitplane_bits.h) with
// few border classes (pad_values 1, VALID, 1xk / kx1 filters: the maps where the AVX-512
// kernel uses them) and many (SAME, pad 0: the portable stages), wide and narrow bands,
// flipped channels; the fused-output check draws limits at the layer's own dot values.
void SuiteBits(TestStats* st) {
  struct M {
    int h, w, c, o, kh, kw, s, pv;
  };
  const M cases[] = {{32, 32, 64, 64, 3, 3, 1, 1}, {16, 16, 128, 96, 3, 3, 1, 1},
                     {32, 32, 64, 80, 1, 3, 1, 0}, {16, 16, 96, 48, 3, 1, 1, 0},
                     {24, 40, 64, 40, 1, 3, 2, 0}, {33, 20, 32, 33, 3, 1, 1, 0},
                     {40, 40, 32, 16, 3, 3, 1, 1}, {20, 70, 64, 24, 1, 5, 1, 0},
                     {12, 12, 128, 130, 3, 3, 1, 1}, {9, 9, 64, 70, 1, 3, 1, 0}};
  int n = 0;
  for (const M& m : cases)
    for (double sp : {0.5, 0.95, 0.99}) {
      BConvTester t;
      t.in(m.h, m.w, m.c).out_channels(m.o).kernel(m.kh, m.kw).stride(m.s).pad_values(m.pv)
          .seed(9300 + n);
      t.sparsity(sp);
      if (n % 3 == 1) t.minority_flip(true);
      double k0 = 0, k1 = 0;
      if (n % 3 == 2 && sbnn::testing::paper_k0k1(sp, &k0, &k1)) t.k0k1(k0, k1);
      ++n;
      Run(t, st);
    }
}

const Suite kSuites[] = {
    {"channels", SuiteChannels}, {"out_channels", SuiteOutChannels}, {"grid", SuiteGrid},
    {"threads", SuiteThreads},   {"sparsity", SuiteSparsity},        {"geometry", SuiteGeometry},
    {"groups", SuiteGroups},     {"robustness", SuiteRobustness},    {"rowsplit", SuiteRowSplit},
    {"models", SuiteModels},     {"bits", SuiteBits},
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
  TestCostModel();
  TestCostModelDemo();
  return sbnn::testing::RunSuites(kSuites, only, g_check_failures) ? 0 : 1;
}
