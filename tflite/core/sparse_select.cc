// The sparse kernel table and the dense/sparse selection (bconv2d_select.h).
#include <time.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <mutex>
#include <random>
#include <vector>

#include "bconv2d_kernels.h"
#include "bconv2d_pack.h"
#include "bconv2d_select.h"
#include "sparse_format.h"
#include "transform.h"

namespace sbnn {
namespace {

#define SBNN_KERNEL_ADDRESS(id) &kBConv2DKernel_##id,
const BConv2DKernel* const kSparseKernels[] = {
    SBNN_SPARSE_BCONV2D_KERNELS(SBNN_KERNEL_ADDRESS) nullptr};
#undef SBNN_KERNEL_ADDRESS

double cpu_ms() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

uint64_t fnv1a(const void* data, size_t bytes, uint64_t h = 1469598103934665603ull) {
  const unsigned char* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < bytes; ++i) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

struct CacheEntry {
  BConv2DShape shape;
  uint64_t filter_hash;
  int rows_per_call, dense_rows_per_call;
  bool time_transform;
  const BConv2DKernel* kernel;
  double chosen_ms, dense_ms;
  int num_candidates;
  BConv2DCandidate candidates[8];
};

std::mutex g_cache_mutex;
std::vector<CacheEntry>& cache() {
  static std::vector<CacheEntry>* c = new std::vector<CacheEntry>();
  return *c;
}
constexpr size_t kCacheMax = 512;

bool is_sparse(const BConv2DKernel* k) { return is_sparse_family(k->family); }

// The sparse kernels worth timing on this CPU: the first supported bit-plane kernel
// (the table lists them fastest first). The reference and the K0/K1 kernel-list variant
// are never faster (docs/sparse_kernels.md).
std::vector<const BConv2DKernel*> sparse_candidates(const BConv2DShape& s) {
  std::vector<const BConv2DKernel*> out;
  for (const BConv2DKernel* const* k = kSparseKernels; *k; ++k) {
    if ((*k)->family == BConv2DFamily::kSparseBitplane && (*k)->supported(s)) {
      out.push_back(*k);
      break;
    }
  }
  return out;
}

// Times candidates interleaved (one run of each per round) on batch-1 random input,
// each in its row split (sparse kernels: rows_per_call, dense: dense_rows_per_call),
// optionally with a float output transform after every call (see time_transform).
void time_candidates(const BConv2DShape& shape, const int32_t* filter,
                     const std::vector<const BConv2DKernel*>& ks, double budget_ms,
                     int rows_per_call, int dense_rows_per_call, bool time_transform,
                     std::vector<BConv2DCandidate>* out) {
  BConv2DShape s = shape;
  s.batch = 1;
  std::mt19937 rng(0x5b17);
  std::vector<uint32_t> input(static_cast<size_t>(s.in_h) * s.in_w * s.in_words);
  for (auto& v : input) v = rng();
  const int64_t row_elems = int64_t{s.out_w} * s.out_channels;
  std::vector<int32_t> dot(static_cast<size_t>(s.out_h * row_elems));
  std::vector<float> out_f(time_transform ? dot.size() : 0);
  std::vector<float> ones(static_cast<size_t>(s.out_channels), 1.0f);
  std::vector<float> zeros(static_cast<size_t>(s.out_channels), 0.0f);
  TransformParams tp;
  tp.K = 0;
  tp.x_min = -(int32_t{1} << 30);
  tp.x_max = int32_t{1} << 30;
  tp.m = ones.data();
  tp.b = zeros.data();
  const TransformKernels& tk = transform_kernels();
  const int32_t* in = reinterpret_cast<const int32_t*>(input.data());
  std::vector<void*> prep(ks.size(), nullptr);
  std::vector<std::vector<double>> t(ks.size());
  out->assign(ks.size(), BConv2DCandidate());
  const int rows = s.out_h;
  auto run = [&](size_t i) {
    const int split = is_sparse(ks[i]) || dense_rows_per_call <= 0 ? rows_per_call
                                                                    : dense_rows_per_call;
    const int step = split > 0 ? std::min(split, rows) : rows;
    for (int r = 0; r < rows; r += step) {
      const int r1 = std::min(rows, r + step);
      // As in the delegate: each call writes its rows to the start of one chunk buffer
      // (the same buffer for every chunk), the transform reads them from there.
      int32_t* base = dot.data() - static_cast<int64_t>(r) * row_elems;
      ks[i]->run(s, prep[i], in, filter, base, r, r1);
      if (time_transform)
        tk.to_float(dot.data(), int64_t{r1 - r} * s.out_w, s.out_channels, tp,
                    out_f.data() + static_cast<int64_t>(r) * row_elems);
    }
  };
  const double start = cpu_ms();
  for (size_t i = 0; i < ks.size(); ++i) {
    (*out)[i].kernel = ks[i];
    const double p0 = cpu_ms();
    if (ks[i]->prepare) prep[i] = ks[i]->prepare(s, filter);
    (*out)[i].prepare_ms = cpu_ms() - p0;
    run(i);  // warm-up
  }
  for (int round = 0; round < 200; ++round) {
    for (size_t i = 0; i < ks.size(); ++i) {
      const double t0 = cpu_ms();
      run(i);
      t[i].push_back(cpu_ms() - t0);
    }
    if (round >= 2 && cpu_ms() - start > budget_ms) break;
  }
  for (size_t i = 0; i < ks.size(); ++i) {
    (*out)[i].ms = median(t[i]) * shape.batch;
    (*out)[i].measured = true;
    if (ks[i]->release) ks[i]->release(prep[i]);
  }
}

// Cost model coefficients (cycles per unit, see estimate_neon_bconv2d_cost).
constexpr double kDenseTile = 134, kDenseTileK = 27.08, kDensePixel = 71.35, kDensePixelWord = 1.261;
constexpr double kTrChunk = 182.8, kTrByte = 0.2929, kExtRow = 4.909, kDirectRow = 3.763, kHb = 2.143;
constexpr double kStageRow = 0, kStagePlane = 2.445;
constexpr double kCount1 = 2.456, kCount2 = 2.835, kCount4 = 4.267, kCountVec = 181.0;
constexpr double kConvert = 1337, kOutput16 = 10.03, kSetup = 22.39;

int floor_div(int a, int b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

// The cost model's features of the sparse kernel for one image: how many times each
// stage's unit of work runs (see estimate_neon_bconv2d_cost). The band geometry follows
// build_bitplane_plan (sparse_bitplane_plan.cc) with 128-bit vectors and the NEON
// kernel's 48 KB budget for the transposed input.
struct SparseFeatures {
  double tr_chunks = 0;   // 8 pixels x 16 channel bytes bit transposes
  double tr_bytes = 0;    // transposed bytes written (pixels x channel bytes)
  double ext_rows = 0;    // (stored row, filter column, channel) row extractions
  double direct_rows = 0; // the same, written straight from the transposed bytes (R = 8)
  double stage_rows = 0;  // the same, as vectors into staging rows (R = 8, planes <= 16 bytes)
  double stage_planes = 0;  // (band, filter column, channel) planes written from staging rows
  double hb = 0;          // B(p) bookkeeping: (stored row x filter column + pixel x
                          // filter row) sums
  double count[3] = {0, 0, 0};  // connection x vector loads, G = 1, 2, 4 channels per vector
  double chan_vec = 0;    // (16-channel block, vector) conversions: bit + byte transposes
  double outputs16 = 0;   // 16-channel pixel outputs
  double setup = 0;       // per band and pixel setup
  bool vector_path = true;
};

SparseFeatures sparse_features(const BConv2DShape& s, int64_t conns, int max_conns) {
  SparseFeatures f;
  const int kh = s.filter_h, kw = s.filter_w, sh = s.stride_h;
  const int cg = s.in_channels / s.groups, og = s.out_channels / s.groups;
  const int64_t kfull = static_cast<int64_t>(kh) * kw * cg;
  int np = 3;
  while (np < 32 && (static_cast<int64_t>(1) << np) <= max_conns) ++np;
  f.vector_path = np <= 16 && kfull <= 16383 && (s.groups == 1 || cg % 32 == 0);
  int R = 8;
  if (s.out_w <= 64) {
    while (R < s.out_w) R *= 2;
  } else {
    R = (s.out_w + 63) / 64 * 64;
  }
  int qmin = 1 << 30, qmax = -(1 << 30);
  for (int fy = 0; fy < kh; ++fy) {
    const int q = floor_div(fy * s.dilation_h - s.pad_top, sh);
    qmin = std::min(qmin, q);
    qmax = std::max(qmax, q);
  }
  const int qspan = qmax - qmin, rb = R / 8;
  auto y_size = [&](int nb) {
    const size_t plane = (static_cast<size_t>(sh) * (nb + qspan) * rb + 7) / 8 * 8;
    return static_cast<size_t>(kw) * cg * plane;
  };
  const int unit = R <= 128 ? 128 / R : 1;
  int nb = s.out_h;
  if (static_cast<int64_t>(s.out_h) * R > 128 && y_size(nb) > 48 * 1024) {
    nb = unit;
    while (nb + unit <= s.out_h && y_size(nb + unit) <= 48 * 1024) nb += unit;
    nb = std::min(nb, s.out_h);
  }
  const double nbands = (s.out_h + nb - 1) / nb;
  const int band_bits = nb * R;
  const int G = band_bits > 64 ? 1 : band_bits > 32 ? 2 : 4;
  const double nv = G == 1 ? (band_bits + 127) / 128 : 1;
  const double groups = s.groups, P = static_cast<double>(s.out_h) * s.out_w;
  const double rows = nbands * (nb + qspan) * sh;  // input rows transposed
  f.tr_chunks = rows * ((s.in_w + 7) / 8 + s.stride_w - 1) * ((cg + 127) / 128) * groups;
  f.tr_bytes = rows * s.in_w * ((cg + 7) / 8) * groups;
  const bool direct = R == 8 && (s.in_w + s.stride_w - 1) / s.stride_w <= 8 && s.in_w >= s.stride_w;
  const size_t plane = (static_cast<size_t>(sh) * (nb + qspan) * rb + 7) / 8 * 8;
  if (direct && plane <= 16) {
    f.stage_rows = rows * kw * cg * groups;
    f.stage_planes = nbands * kw * cg * groups;
  } else {
    (direct ? f.direct_rows : f.ext_rows) = rows * kw * cg * groups;
  }
  f.hb = rows * s.out_w * kw + P * kh;
  f.count[G == 1 ? 0 : G == 2 ? 1 : 2] = static_cast<double>(conns) * nv * nbands / G;
  const double blocks = std::ceil(og / (16.0 * G)) * groups;  // 16 x G channel units
  f.chan_vec = blocks * nv * nbands;
  f.outputs16 = P * std::ceil(og / 16.0) * groups;
  f.setup = P + nbands * groups * 64;
  return f;
}

#if defined(__aarch64__)
constexpr bool kModelOnly = true;
#else
constexpr bool kModelOnly = false;
#endif

}  // namespace

namespace {

// The candidates of the aarch64 choice with their estimated times (cycles at a nominal
// 2 GHz): dense, and the sparse NEON bit-plane kernel when it is the first sparse
// candidate and the model rates its vector path (else dense only).
void model_candidates(const BConv2DShape& shape, const internal::SparsityStats& st,
                      const BConv2DKernel* dense, std::vector<BConv2DCandidate>* out) {
  const NeonCostEstimate e = estimate_neon_bconv2d_cost(shape, st.conns, st.max_conns);
  constexpr double kCyclesPerMs = 2e6;
  out->assign(1, BConv2DCandidate());
  (*out)[0].kernel = dense;
  (*out)[0].ms = e.dense / kCyclesPerMs;
  const auto c = sparse_candidates(shape);
  if (dense == nullptr || std::strcmp(dense->name, "bconv2d_dot_4x8__neon") != 0 || c.empty() ||
      std::strcmp(c[0]->name, "bconv2d_sparse_bitplane_128__neon") != 0 || !e.sparse_vector_path)
    return;
  BConv2DCandidate sc;
  sc.kernel = c[0];
  sc.ms = e.sparse / kCyclesPerMs;
  out->push_back(sc);
}

}  // namespace

NeonCostEstimate estimate_neon_bconv2d_cost(const BConv2DShape& s, int64_t conns, int max_conns) {
  NeonCostEstimate e;
  if (!internal::shape_is_valid(s)) return e;
  // Coefficients: A76-class (llvm-mca Neoverse-N1) cycles per unit of each stage,
  // non-negative least-squares fits of the stages' model cycles over the 7 binary
  // ResNet-18 layer shapes at 90/95/99% (Bernoulli and K0/K1 filters) by
  // benchmarks/arm_cost/fit_neon_cost.py; the modelled sparse/dense ratio is within 12%
  // of the measured one on all 42 points (docs/sparse_kernels.md, "NEON cost model";
  // checked by sbnn_sparse_tests).
  // Dense: 4 pixels x 8 channels per tile, a 64-bit filter word per tap and k step.
  const double P = static_cast<double>(s.out_h) * s.out_w;
  const double taps = static_cast<double>(s.filter_h) * s.filter_w;
  const double k64 = taps * std::ceil(s.filter_words / 2.0);
  const double tiles = std::ceil(P / 4) * std::ceil(s.out_channels / 8.0);
  e.dense = tiles * (kDenseTile + kDenseTileK * k64) + P * (kDensePixel + kDensePixelWord * taps * s.in_words);
  const SparseFeatures f = sparse_features(s, conns, max_conns);
  e.sparse_vector_path = f.vector_path;
  e.sparse_transpose = kTrChunk * f.tr_chunks + kTrByte * f.tr_bytes + kExtRow * f.ext_rows + kDirectRow * f.direct_rows +
                       kStageRow * f.stage_rows + kStagePlane * f.stage_planes + kHb * f.hb;
  e.sparse_count = kCount1 * f.count[0] + kCount2 * f.count[1] + kCount4 * f.count[2] + kCountVec * f.chan_vec;
  e.sparse_convert = kConvert * f.chan_vec;
  e.sparse_output = kOutput16 * f.outputs16 + kSetup * f.setup;
  e.sparse = e.sparse_transpose + e.sparse_count + e.sparse_convert + e.sparse_output;
  const double b = s.batch > 0 ? s.batch : 1;
  e.dense *= b;
  e.sparse *= b;
  e.sparse_transpose *= b;
  e.sparse_count *= b;
  e.sparse_convert *= b;
  e.sparse_output *= b;
  return e;
}

const BConv2DKernel* const* all_sparse_bconv2d_kernels() { return kSparseKernels; }

namespace {

// The kernel of an earlier choice for this shape, filter and timing options (its
// timings copied into *sel), or nullptr.
const BConv2DKernel* cached_choice(const BConv2DShape& shape, uint64_t h,
                                   const BConv2DSelectOptions& opt, BConv2DSelection* sel) {
  std::lock_guard<std::mutex> lock(g_cache_mutex);
  for (const CacheEntry& e : cache())
    if (e.filter_hash == h && e.rows_per_call == opt.rows_per_call &&
        e.dense_rows_per_call == opt.dense_rows_per_call &&
        e.time_transform == opt.time_transform &&
        std::memcmp(&e.shape, &shape, sizeof shape) == 0) {
      sel->chosen_ms = e.chosen_ms;
      sel->dense_ms = e.dense_ms;
      sel->num_candidates = e.num_candidates;
      std::copy(e.candidates, e.candidates + e.num_candidates, sel->candidates);
      sel->reason = "cached";
      return e.kernel;
    }
  return nullptr;
}

// Remembers the choice in *sel for cached_choice (the oldest entry goes when full).
void cache_choice(const BConv2DShape& shape, uint64_t h, const BConv2DSelectOptions& opt,
                  const BConv2DKernel* chosen, const BConv2DSelection& sel) {
  std::lock_guard<std::mutex> lock(g_cache_mutex);
  if (cache().size() >= kCacheMax) cache().erase(cache().begin());
  CacheEntry e;
  e.shape = shape;
  e.filter_hash = h;
  e.rows_per_call = opt.rows_per_call;
  e.dense_rows_per_call = opt.dense_rows_per_call;
  e.time_transform = opt.time_transform;
  e.kernel = chosen;
  e.chosen_ms = sel.chosen_ms;
  e.dense_ms = sel.dense_ms;
  e.num_candidates = sel.num_candidates;
  std::copy(sel.candidates, sel.candidates + sel.num_candidates, e.candidates);
  cache().push_back(e);
}

// The "auto" choice without the cache: dense against the sparse candidates, timed or
// (aarch64) estimated; a candidate wins only by more than opt.min_gain.
const BConv2DKernel* measured_choice(const BConv2DShape& shape, const int32_t* filter,
                                     const internal::SparsityStats& st,
                                     const BConv2DKernel* dense,
                                     const BConv2DSelectOptions& opt, BConv2DSelection* sel) {
  std::vector<const BConv2DKernel*> ks = {dense};
  // Sparse candidates are timed whenever there is a budget: at the same density the
  // bit-plane kernel beats dense on some layers and loses on others
  // (docs/sparse_kernels.md, "Selection"), so no density cut-off is safe. Without a
  // budget the choice is dense ("model"). On aarch64 the NEON cost model decides,
  // whatever the budget: ARM devices are often emulated (CI, qemu) or throttled,
  // where timings say nothing about the device.
  if (opt.budget_ms > 0 && !kModelOnly) {
    const auto c = sparse_candidates(shape);
    ks.insert(ks.end(), c.begin(), c.end());
  }
  std::vector<BConv2DCandidate> cands;
  if (kModelOnly) {
    model_candidates(shape, st, dense, &cands);
    sel->reason = "model";
  } else if (ks.size() > 1) {
    time_candidates(shape, filter, ks, opt.budget_ms, opt.rows_per_call,
                    opt.dense_rows_per_call, opt.time_transform, &cands);
    sel->reason = "timed";
  } else {
    cands.resize(1);
    cands[0].kernel = dense;
    sel->reason = "model";
  }
  size_t best = 0;
  for (size_t i = 1; i < cands.size(); ++i)
    if (cands[i].ms < cands[best].ms * (1.0 - opt.min_gain) &&
        (best == 0 || cands[i].ms < cands[best].ms))
      best = i;
  sel->chosen_ms = cands[best].ms;
  sel->dense_ms = cands[0].ms;
  sel->num_candidates = static_cast<int>(std::min<size_t>(cands.size(), 8));
  std::copy(cands.begin(), cands.begin() + sel->num_candidates, sel->candidates);
  return cands[best].kernel;
}

}  // namespace

bool select_bconv2d(const BConv2DShape& shape, const int32_t* filter,
                    const BConv2DSelectOptions& opt, BConv2DSelection* sel) {
  *sel = BConv2DSelection();
  if (filter == nullptr || !internal::shape_is_valid(shape)) return false;
  const internal::SparsityStats st = internal::sparsity_stats(shape, filter);
  sel->density = st.density;
  sel->k0_share = st.k0_share;
  sel->k1_share = st.k1_share;
  sel->connections = st.conns;
  const char* policy = opt.policy ? opt.policy : "auto";
  const BConv2DKernel* dense = select_bconv2d_kernel(shape, nullptr);
  const BConv2DKernel* chosen = nullptr;

  if (std::strcmp(policy, "dense") == 0) {
    chosen = dense;
    sel->reason = "policy";
  } else if (std::strcmp(policy, "sparse") == 0) {
    const auto c = sparse_candidates(shape);
    chosen = c.empty() ? nullptr : c[0];
    sel->reason = "policy";
  } else if (std::strcmp(policy, "auto") != 0) {
    chosen = select_bconv2d_kernel(shape, policy);
    sel->reason = "forced";
  } else if (dense != nullptr) {
    const size_t fbytes = sizeof(int32_t) * static_cast<size_t>(shape.out_channels) *
                          shape.filter_h * shape.filter_w * shape.filter_words;
    const uint64_t h = fnv1a(filter, fbytes);
    if (opt.use_cache) chosen = cached_choice(shape, h, opt, sel);
    if (chosen == nullptr) {
      chosen = measured_choice(shape, filter, st, dense, opt, sel);
      if (opt.use_cache) cache_choice(shape, h, opt, chosen, *sel);
    }
  }
  if (chosen == nullptr || !chosen->supported(shape)) return false;
  sel->kernel = chosen;
  if (chosen->prepare != nullptr) {
    sel->prepared = chosen->prepare(shape, filter);
    if (sel->prepared == nullptr) {
      sel->kernel = nullptr;
      return false;
    }
  }
  return true;
}

void release_bconv2d_selection(BConv2DSelection* sel) {
  if (sel == nullptr) return;
  if (sel->prepared != nullptr && sel->kernel != nullptr && sel->kernel->release != nullptr)
    sel->kernel->release(sel->prepared);
  sel->prepared = nullptr;
}

}  // namespace sbnn
