// The sparse view of a binary filter and the reference sparse computation (see
// sparse_format.h). Portable, compiled once.
#include "sparse_format.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>
#include <vector>

#include "bconv2d_pack.h"

namespace sbnn {
namespace internal {
namespace {

size_t round_up(size_t x, size_t a) { return (x + a - 1) / a * a; }

// Bit (t, c) of output channel o's filter, masked to the group's real channels.
inline int filter_bit(const uint32_t* fo, int fw, int t, int c) {
  return (fo[static_cast<size_t>(t) * fw + (c >> 5)] >> (c & 31)) & 1u;
}

}  // namespace

bool sparse_filter_matches(const SparseFilter* f, const BConv2DShape& s) {
  if (f == nullptr || f->magic != kSparseMagic) return false;
  const BConv2DShape& p = f->shape;
  return p.in_channels == s.in_channels && p.in_words == s.in_words && p.groups == s.groups &&
         p.out_channels == s.out_channels && p.filter_h == s.filter_h &&
         p.filter_w == s.filter_w && p.filter_words == s.filter_words;
}

SparsityStats sparsity_stats(const BConv2DShape& s, const int32_t* filter) {
  SparsityStats st;
  if (!shape_is_valid(s) || filter == nullptr) return st;
  const int cg = s.in_channels / s.groups, taps = s.filter_h * s.filter_w;
  const int fw = s.filter_words;
  const uint32_t* f32 = reinterpret_cast<const uint32_t*>(filter);
  const int64_t n = static_cast<int64_t>(taps) * cg;
  int64_t k0 = 0, k1 = 0;
  std::vector<int> per_c(static_cast<size_t>(cg));
  for (int o = 0; o < s.out_channels; ++o) {
    const uint32_t* fo = f32 + static_cast<size_t>(o) * taps * fw;
    int64_t ones = 0;
    for (int t = 0; t < taps; ++t)
      for (int j = 0; j < fw; ++j) ones += __builtin_popcount(fo[t * fw + j] & word_mask(cg, j));
    const int mb = ones < n - ones ? 1 : 0;
    const int64_t m = mb ? ones : n - ones;
    st.conns += m;
    if (m > st.max_conns) st.max_conns = static_cast<int>(m);
    std::fill(per_c.begin(), per_c.end(), 0);
    for (int t = 0; t < taps; ++t)
      for (int c = 0; c < cg; ++c) per_c[c] += filter_bit(fo, fw, t, c) == mb;
    for (int c = 0; c < cg; ++c) {
      k0 += per_c[c] == 0;
      k1 += per_c[c] == 1;
    }
  }
  st.weights = n * s.out_channels;
  st.density = st.weights ? static_cast<double>(st.conns) / st.weights : 0;
  const double kernels = static_cast<double>(s.out_channels) * cg;
  st.k0_share = kernels ? k0 / kernels : 0;
  st.k1_share = kernels ? k1 / kernels : 0;
  return st;
}

SparseFilter* build_sparse_filter(const BConv2DShape& s, const int32_t* filter) {
  if (!shape_is_valid(s) || filter == nullptr) return nullptr;
  const int cg = s.in_channels / s.groups, og = s.out_channels / s.groups;
  const int taps = s.filter_h * s.filter_w, fw = s.filter_words;
  const int O = s.out_channels;
  const int64_t n = static_cast<int64_t>(taps) * cg;
  const uint32_t* f32 = reinterpret_cast<const uint32_t*>(filter);

  // First pass: minority value and count per channel.
  std::vector<int8_t> mbit(static_cast<size_t>(O));
  std::vector<uint32_t> begin(static_cast<size_t>(O) + 1, 0);
  for (int o = 0; o < O; ++o) {
    const uint32_t* fo = f32 + static_cast<size_t>(o) * taps * fw;
    int64_t ones = 0;
    for (int t = 0; t < taps; ++t)
      for (int j = 0; j < fw; ++j) ones += __builtin_popcount(fo[t * fw + j] & word_mask(cg, j));
    // Ties go to bit 0 (+1 weights are the connections, the SBNN convention).
    mbit[o] = ones < n - ones ? 1 : 0;
    const int64_t m = mbit[o] ? ones : n - ones;
    if (static_cast<int64_t>(begin[o]) + m > 0xffffffffll) return nullptr;
    begin[o + 1] = static_cast<uint32_t>(begin[o] + m);
  }
  const size_t total = begin[O];

  const size_t head = round_up(sizeof(SparseFilter), 64);
  const size_t b_sign = round_up(static_cast<size_t>(O), 8);
  const size_t b_min = round_up(sizeof(int32_t) * O, 8);
  const size_t b_tap = round_up(sizeof(int32_t) * static_cast<size_t>(taps) * O, 8);
  const size_t b_begin = round_up(sizeof(uint32_t) * (static_cast<size_t>(O) + 1), 8);
  const size_t b_conns = round_up(sizeof(uint32_t) * (total + 1), 8);
  const size_t b_kw = sizeof(int64_t) * (static_cast<size_t>(taps) + 1);
  const size_t bytes = head + b_sign + b_min + b_tap + b_begin + b_conns + b_kw;
  void* mem = nullptr;
  if (posix_memalign(&mem, 64, bytes) != 0 || mem == nullptr) return nullptr;
  std::memset(mem, 0, bytes);
  auto* f = new (mem) SparseFilter();
  char* p = static_cast<char*>(mem) + head;
  f->sign = reinterpret_cast<int8_t*>(p), p += b_sign;
  f->minority = reinterpret_cast<int32_t*>(p), p += b_min;
  f->tap_minority = reinterpret_cast<int32_t*>(p), p += b_tap;
  f->conn_begin = reinterpret_cast<uint32_t*>(p), p += b_begin;
  f->conns = reinterpret_cast<uint32_t*>(p), p += b_conns;
  f->kernels_by_weight = reinterpret_cast<int64_t*>(p);
  f->magic = kSparseMagic;
  f->shape = s;
  f->cg = cg;
  f->og = og;
  f->taps = taps;
  f->kfull = static_cast<int32_t>(n);
  std::memcpy(f->conn_begin, begin.data(), sizeof(uint32_t) * (static_cast<size_t>(O) + 1));

  for (int o = 0; o < O; ++o) {
    const uint32_t* fo = f32 + static_cast<size_t>(o) * taps * fw;
    const int mb = mbit[o];
    f->sign[o] = static_cast<int8_t>(2 * mb - 1);
    f->minority[o] = static_cast<int32_t>(begin[o + 1] - begin[o]);
    if (f->minority[o] > f->max_conns) f->max_conns = f->minority[o];
    uint32_t* out = f->conns + begin[o];
    for (int c = 0; c < cg; ++c) {
      int h = 0;
      for (int t = 0; t < taps; ++t) {
        if (filter_bit(fo, fw, t, c) != mb) continue;
        *out++ = static_cast<uint32_t>(c) * taps + t;
        ++f->tap_minority[static_cast<size_t>(t) * O + o];
        ++h;
      }
      ++f->kernels_by_weight[h];
    }
  }
  f->total_conns = static_cast<int64_t>(total);
  return f;
}

void release_sparse_filter(SparseFilter* f) {
  if (f == nullptr) return;
  f->~SparseFilter();
  std::free(f);
}

void run_sparse_reference(const BConv2DShape& s, const SparseFilter& f, const int32_t* input,
                          int32_t* dot, int row_begin, int row_end) {
  const uint32_t* in = reinterpret_cast<const uint32_t*>(input);
  const int cg = f.cg, og = f.og, taps = f.taps, kw = s.filter_w;
  // x(b, iy, ix, channel c of group g) in {-1, +1}; outside taps are handled by the caller.
  auto xval = [&](size_t b, int iy, int ix, int g, int c) -> int {
    const uint32_t* px = in + ((b * s.in_h + iy) * static_cast<size_t>(s.in_w) + ix) * s.in_words;
    const int bit = g * cg + c;
    return (px[bit >> 5] >> (bit & 31)) & 1u ? -1 : 1;
  };
  for (int r = row_begin; r < row_end; ++r) {
    const size_t b = static_cast<size_t>(r / s.out_h);
    const int oy = r % s.out_h;
    for (int ox = 0; ox < s.out_w; ++ox) {
      int32_t* out = dot + (static_cast<size_t>(r) * s.out_w + ox) * s.out_channels;
      for (int g = 0; g < s.groups; ++g) {
        // Q(p): the window's sum of x, shared by the group's output channels.
        int32_t q = 0;
        for (int t = 0; t < taps; ++t) {
          const int iy = oy * s.stride_h - s.pad_top + (t / kw) * s.dilation_h;
          const int ix = ox * s.stride_w - s.pad_left + (t % kw) * s.dilation_w;
          if (iy < 0 || iy >= s.in_h || ix < 0 || ix >= s.in_w) {
            if (s.pad_values == 1) q += cg;  // outside taps are x = +1
            continue;
          }
          for (int c = 0; c < cg; ++c) q += xval(b, iy, ix, g, c);
        }
        for (int ol = 0; ol < og; ++ol) {
          const int o = g * og + ol;
          // S(p, o): sum of x over o's connections in the effective taps.
          int32_t sum = 0;
          for (uint32_t i = f.conn_begin[o]; i < f.conn_begin[o + 1]; ++i) {
            const int c = static_cast<int>(f.conns[i] / taps), t = static_cast<int>(f.conns[i] % taps);
            const int iy = oy * s.stride_h - s.pad_top + (t / kw) * s.dilation_h;
            const int ix = ox * s.stride_w - s.pad_left + (t % kw) * s.dilation_w;
            if (iy < 0 || iy >= s.in_h || ix < 0 || ix >= s.in_w) {
              if (s.pad_values == 1) sum += 1;
              continue;
            }
            sum += xval(b, iy, ix, g, c);
          }
          out[o] = f.sign[o] * q - 2 * f.sign[o] * sum;
        }
      }
    }
  }
}

}  // namespace internal
}  // namespace sbnn
