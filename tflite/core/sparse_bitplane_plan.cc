// Execution plans of the bit-plane sparse kernels (see sparse_bitplane.h). Portable,
// compiled once.
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>
#include <vector>

#include "bconv2d_pack.h"
#include "sparse_bitplane.h"

namespace sbnn {
namespace internal {
namespace {

int floor_div(int a, int b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }
size_t round_up(size_t x, size_t a) { return (x + a - 1) / a * a; }

// Bytes a kernel with vectors of `vbytes` loads per connection for a band of `rows` rows.
int band_read_bytes(int rows, int R, int vbytes) {
  const int lq = (rows * R + 63) / 64;        // 64-bit words of the band
  const int nw = vbytes / 8;
  if (lq >= nw) return (lq + nw - 1) / nw * vbytes;
  int seg = 1;
  while (seg < lq) seg *= 2;
  return seg * 8;
}

struct ScratchBuffer {
  void* p = nullptr;
  size_t size = 0;
  ~ScratchBuffer() { std::free(p); }
};

}  // namespace

void* sparse_scratch(size_t bytes) {
  thread_local ScratchBuffer buf;
  if (bytes <= buf.size) return buf.p;
  std::free(buf.p);
  buf.p = nullptr;
  buf.size = 0;
  const size_t want = round_up(std::max(bytes, bytes + bytes / 4), 4096);
  void* p = nullptr;
  if (posix_memalign(&p, 64, want) != 0 || p == nullptr) return nullptr;
  buf.p = p;
  buf.size = want;
  return p;
}

namespace {

// Vertical geometry: rows per stored row R, the tap rows' offsets q0/phases ph, the band
// height nb (everything when the image fits one vector or the Y budget allows, else a
// multiple of the rows one vector holds) and the sizes of Y.
bool plan_vertical(const BConv2DShape& s, int cg, int vector_bytes, size_t y_budget,
                   BitplanePlan* pl, std::vector<int>* q0, std::vector<int>* ph) {
  const int kh = s.filter_h, kw = s.filter_w;
  const int vbits = vector_bytes * 8;
  if (s.out_w <= 64) {
    pl->R = 8;
    while (pl->R < s.out_w) pl->R *= 2;
  } else {
    pl->R = static_cast<int>(round_up(static_cast<size_t>(s.out_w), 64));
  }
  pl->rb = pl->R / 8;
  pl->sh = s.stride_h;
  pl->sw = s.stride_w;
  q0->assign(kh, 0);
  ph->assign(kh, 0);
  pl->qmin = 1 << 30;
  pl->qmax = -(1 << 30);
  for (int fy = 0; fy < kh; ++fy) {
    const int d = fy * s.dilation_h - s.pad_top;
    (*q0)[fy] = floor_div(d, s.stride_h);
    (*ph)[fy] = d - (*q0)[fy] * s.stride_h;
    pl->qmin = std::min(pl->qmin, (*q0)[fy]);
    pl->qmax = std::max(pl->qmax, (*q0)[fy]);
  }
  const int qspan = pl->qmax - pl->qmin;
  const int unit = pl->R <= vbits ? vbits / pl->R : 1;
  auto y_size = [&](int nb) {
    const size_t rows_pp = static_cast<size_t>(nb + qspan);
    const size_t plane = round_up(static_cast<size_t>(pl->sh) * rows_pp * pl->rb, 8);
    return static_cast<size_t>(kw) * cg * plane;
  };
  int nb = s.out_h;
  if (static_cast<long long>(s.out_h) * pl->R > vbits && y_size(nb) > y_budget) {
    nb = unit;
    while (nb + unit <= s.out_h && y_size(nb + unit) <= y_budget) nb += unit;
    nb = std::min(nb, s.out_h);
  }
  pl->nb = nb;
  pl->rows_pp = nb + qspan;
  pl->read_bytes = band_read_bytes(nb, pl->R, vector_bytes);
  pl->plane_bytes = round_up(static_cast<size_t>(pl->sh) * pl->rows_pp * pl->rb, 8);
  const size_t blocks = static_cast<size_t>(kw) * cg * pl->plane_bytes;
  // Y = blocks, then a zero region (read_bytes long) for padded lists, then slack for
  // the over-read of the last block.
  pl->y_bytes = round_up(blocks + 2 * static_cast<size_t>(pl->read_bytes) + 64, 64);
  return pl->y_bytes < (size_t{1} << 32);
}

// Horizontal geometry: the tap columns' offsets qx/phases phx, the margin and length of
// a transposed input row.
void plan_horizontal(const BConv2DShape& s, BitplanePlan* pl, std::vector<int>* qx,
                     std::vector<int>* phx) {
  const int kw = s.filter_w;
  qx->assign(kw, 0);
  phx->assign(kw, 0);
  int qxmin = 1 << 30, qxmax = -(1 << 30);
  for (int fx = 0; fx < kw; ++fx) {
    const int d = fx * s.dilation_w - s.pad_left;
    (*qx)[fx] = floor_div(d, s.stride_w);
    (*phx)[fx] = d - (*qx)[fx] * s.stride_w;
    qxmin = std::min(qxmin, (*qx)[fx]);
    qxmax = std::max(qxmax, (*qx)[fx]);
  }
  pl->tmargin = static_cast<int>(round_up(static_cast<size_t>(std::max(0, -qxmin)), 64));
  const int nxp = (s.in_w + s.stride_w - 1) / s.stride_w;
  const long long need_bits =
      pl->tmargin + std::max<long long>(nxp, static_cast<long long>(std::max(qxmax, 0)) + pl->R) + 64;
  pl->tq = static_cast<int>((need_bits + 63) / 64) + 1;
}

// Border classes along one axis: output o gets the class of its inside tap range [lo, hi]
// (with pad_values 1 all taps are effective: one class).
void classify(int n_out, int stride, int pad, int dil, int k, int n_in, int pv,
              std::vector<int>* cls, std::vector<std::pair<int, int>>* ranges) {
  cls->assign(n_out, 0);
  for (int o = 0; o < n_out; ++o) {
    int lo = 0, hi = k - 1;
    if (pv == 0) {
      lo = k;
      hi = -1;
      for (int t = 0; t < k; ++t) {
        const long long i = static_cast<long long>(o) * stride - pad + static_cast<long long>(t) * dil;
        if (i >= 0 && i < n_in) {
          lo = std::min(lo, t);
          hi = std::max(hi, t);
        }
      }
      if (lo > hi) lo = 0, hi = -1;
    }
    const std::pair<int, int> r(lo, hi);
    auto it = std::find(ranges->begin(), ranges->end(), r);
    (*cls)[o] = static_cast<int>(it - ranges->begin());
    if (it == ranges->end()) ranges->push_back(r);
  }
}

// One allocation for the plan (a copy of `head`) and its arrays, pointers set.
BitplanePlan* allocate_plan(const BitplanePlan& head, const BConv2DShape& s, size_t total_conns) {
  const int kw = s.filter_w, taps = s.filter_h * s.filter_w, O = s.out_channels;
  const size_t ncl = static_cast<size_t>(head.nvc) * head.nhc;
  const size_t b_head = round_up(sizeof(BitplanePlan), 64);
  const size_t b_q = round_up(sizeof(int) * kw * 2, 8);
  const size_t b_tap = round_up(sizeof(int) * taps * 2, 8);
  const size_t b_cls = round_up(sizeof(int) * (static_cast<size_t>(s.out_h) + s.out_w), 8);
  const size_t b_base = round_up(sizeof(int32_t) * ncl * O, 8);
  const size_t b_nt = round_up(sizeof(int32_t) * ncl, 8);
  const size_t b_off = round_up(sizeof(uint32_t) * (total_conns + 1), 8);
  const size_t bytes = b_head + b_q + b_tap + b_cls + b_base + b_nt + b_off;
  void* mem = nullptr;
  if (posix_memalign(&mem, 64, bytes) != 0 || mem == nullptr) return nullptr;
  std::memset(mem, 0, bytes);
  auto* p = new (mem) BitplanePlan(head);
  char* m = static_cast<char*>(mem) + b_head;
  p->qx = reinterpret_cast<int*>(m);
  p->phx = p->qx + kw;
  m += b_q;
  p->tap_row = reinterpret_cast<int*>(m);
  p->tap_fx = p->tap_row + taps;
  m += b_tap;
  p->vclass = reinterpret_cast<int*>(m);
  p->hclass = p->vclass + s.out_h;
  m += b_cls;
  p->base = reinterpret_cast<int32_t*>(m);
  m += b_base;
  p->ntaps = reinterpret_cast<int32_t*>(m);
  m += b_nt;
  p->off = reinterpret_cast<uint32_t*>(m);
  p->zero_off = p->off + total_conns;
  return p;
}

// base[cl][o] = u_o * (N(cl) - 2 * E(cl, o)) and ntaps[cl] of every border class.
void fill_class_bases(const BConv2DShape& s, const SparseFilter& f,
                      const std::vector<std::pair<int, int>>& vr,
                      const std::vector<std::pair<int, int>>& hr, BitplanePlan* p) {
  const int kw = s.filter_w, taps = s.filter_h * s.filter_w, O = s.out_channels;
  for (int vc = 0; vc < p->nvc; ++vc)
    for (int hc = 0; hc < p->nhc; ++hc) {
      const size_t cl = static_cast<size_t>(vc) * p->nhc + hc;
      const int nv = vr[vc].second - vr[vc].first + 1, nh = hr[hc].second - hr[hc].first + 1;
      p->ntaps[cl] = nv * nh;
      const int32_t n = p->ntaps[cl] * f.cg;
      int32_t* b = p->base + cl * O;
      for (int o = 0; o < O; ++o) {
        int32_t e = 0;
        if (nv * nh == taps) {
          e = f.minority[o];
        } else {
          for (int fy = vr[vc].first; fy <= vr[vc].second; ++fy)
            for (int fx = hr[hc].first; fx <= hr[hc].second; ++fx)
              e += f.tap_minority[static_cast<size_t>(fy * kw + fx) * O + o];
        }
        b[o] = f.sign[o] * (n - 2 * e);
      }
    }
}

}  // namespace

BitplanePlan* build_bitplane_plan(const BConv2DShape& s, const SparseFilter& f, int vector_bytes,
                                  size_t y_budget) {
  if (!shape_is_valid(s) || !sparse_filter_matches(&f, s)) return nullptr;
  if (s.out_h < 1 || s.out_w < 1) return nullptr;
  const int kw = s.filter_w, taps = s.filter_h * s.filter_w, cg = f.cg;
  BitplanePlan tmp;
  tmp.magic = kBitplaneMagic;
  tmp.shape = s;
  std::vector<int> q0, ph, qx, phx, vclass, hclass;
  std::vector<std::pair<int, int>> vr, hr;
  if (!plan_vertical(s, cg, vector_bytes, y_budget, &tmp, &q0, &ph)) return nullptr;
  plan_horizontal(s, &tmp, &qx, &phx);
  classify(s.out_h, s.stride_h, s.pad_top, s.dilation_h, s.filter_h, s.in_h, s.pad_values,
           &vclass, &vr);
  classify(s.out_w, s.stride_w, s.pad_left, s.dilation_w, kw, s.in_w, s.pad_values, &hclass,
           &hr);
  tmp.nvc = static_cast<int>(vr.size());
  tmp.nhc = static_cast<int>(hr.size());
  const size_t total_conns = static_cast<size_t>(f.total_conns);
  BitplanePlan* p = allocate_plan(tmp, s, total_conns);
  if (p == nullptr) return nullptr;
  std::copy(qx.begin(), qx.end(), p->qx);
  std::copy(phx.begin(), phx.end(), p->phx);
  for (int t = 0; t < taps; ++t) {
    const int fy = t / kw, fx = t % kw;
    p->tap_row[t] = (ph[fy] * p->rows_pp + q0[fy] - p->qmin) * p->rb;
    p->tap_fx[t] = fx;
  }
  std::copy(vclass.begin(), vclass.end(), p->vclass);
  std::copy(hclass.begin(), hclass.end(), p->hclass);
  fill_class_bases(s, f, vr, hr, p);
  for (size_t i = 0; i < total_conns; ++i) {
    const uint32_t k = f.conns[i];
    const int c = static_cast<int>(k / taps), t = static_cast<int>(k % taps);
    p->off[i] = static_cast<uint32_t>((static_cast<size_t>(p->tap_fx[t]) * cg + c) * p->plane_bytes +
                                      p->tap_row[t]);
  }
  *p->zero_off = static_cast<uint32_t>(static_cast<size_t>(kw) * cg * p->plane_bytes);
  return p;
}

void release_bitplane_plan(BitplanePlan* p) {
  if (p == nullptr) return;
  p->~BitplanePlan();
  std::free(p);
}

SparsePrepared* make_sparse_prepared(const BConv2DShape& s, const int32_t* filter, int kind,
                                     int vector_bytes, size_t y_budget, bool with_plan) {
  SparseFilter* f = build_sparse_filter(s, filter);
  if (f == nullptr) return nullptr;
  BitplanePlan* plan = nullptr;
  if (with_plan && s.out_h > 0 && s.out_w > 0) {
    plan = build_bitplane_plan(s, *f, vector_bytes, y_budget);
    if (plan == nullptr) {
      release_sparse_filter(f);
      return nullptr;
    }
  }
  void* mem = std::malloc(sizeof(SparsePrepared));
  if (mem == nullptr) {
    release_bitplane_plan(plan);
    release_sparse_filter(f);
    return nullptr;
  }
  auto* sp = new (mem) SparsePrepared();
  sp->magic = kSparsePreparedMagic;
  sp->kind = kind;
  sp->filter = f;
  sp->plan = plan;
  return sp;
}

void release_sparse_prepared(void* p) {
  if (p == nullptr) return;
  auto* sp = static_cast<SparsePrepared*>(p);
  if (sp->extra != nullptr && sp->free_extra != nullptr) sp->free_extra(sp->extra);
  release_bitplane_plan(sp->plan);
  release_sparse_filter(sp->filter);
  sp->~SparsePrepared();
  std::free(sp);
}

}  // namespace internal
}  // namespace sbnn
