// The sparse kernel table and the dense/sparse selection (bconv2d_select.h).
#include <time.h>

#include <algorithm>
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

}  // namespace

const BConv2DKernel* const* all_sparse_bconv2d_kernels() { return kSparseKernels; }

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
    if (opt.use_cache) {
      std::lock_guard<std::mutex> lock(g_cache_mutex);
      for (const CacheEntry& e : cache())
        if (e.filter_hash == h && e.rows_per_call == opt.rows_per_call &&
            e.dense_rows_per_call == opt.dense_rows_per_call &&
            e.time_transform == opt.time_transform &&
            std::memcmp(&e.shape, &shape, sizeof shape) == 0) {
          chosen = e.kernel;
          sel->chosen_ms = e.chosen_ms;
          sel->dense_ms = e.dense_ms;
          sel->num_candidates = e.num_candidates;
          std::copy(e.candidates, e.candidates + e.num_candidates, sel->candidates);
          sel->reason = "cached";
          break;
        }
    }
    if (chosen == nullptr) {
      std::vector<const BConv2DKernel*> ks = {dense};
      // Sparse candidates are timed whenever there is a budget: even at 50% density the
      // bit-plane kernel beats dense on some layers (32x32x64->64: 1.2x), and loses 3x
      // on others (docs/sparse_kernels.md), so no density cut-off is safe. Without a
      // budget the choice is dense ("model").
      if (opt.budget_ms > 0) {
        const auto c = sparse_candidates(shape);
        ks.insert(ks.end(), c.begin(), c.end());
      }
      std::vector<BConv2DCandidate> cands;
      if (ks.size() > 1) {
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
      chosen = cands[best].kernel;
      sel->chosen_ms = cands[best].ms;
      sel->dense_ms = cands[0].ms;
      sel->num_candidates = static_cast<int>(std::min<size_t>(cands.size(), 8));
      std::copy(cands.begin(), cands.begin() + sel->num_candidates, sel->candidates);
      if (opt.use_cache) {
        std::lock_guard<std::mutex> lock(g_cache_mutex);
        if (cache().size() >= kCacheMax) cache().erase(cache().begin());
        CacheEntry e;
        e.shape = shape;
        e.filter_hash = h;
        e.rows_per_call = opt.rows_per_call;
        e.dense_rows_per_call = opt.dense_rows_per_call;
        e.time_transform = opt.time_transform;
        e.kernel = chosen;
        e.chosen_ms = sel->chosen_ms;
        e.dense_ms = sel->dense_ms;
        e.num_candidates = sel->num_candidates;
        std::copy(sel->candidates, sel->candidates + sel->num_candidates, e.candidates);
        cache().push_back(e);
      }
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
