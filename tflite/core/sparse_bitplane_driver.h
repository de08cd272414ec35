// sbnn_keras native core: the loop nest of the bit-plane sparse kernels (see
// sparse_bitplane.h). Each ISA file includes this header and instantiates
// run_bitplane<Impl>, so everything is compiled with that file's flags; all of it has
// internal linkage (anonymous namespace).
//
// Impl provides
//   static constexpr int kNW;   // vector width in 64-bit words (1, 2, 4 or 8)
//   static void build_band(BandCtx&);          // transposed input Y and B(p) of a band
//   static void process_channels(BandCtx&, int o_begin, int o_end);  // dot of channels
//   static bool native_output(const BandCtx&);  // process_channels writes x.out itself
//   static bool bits_sliced(const BitplanePlan&);  // kBits from the count planes
// and can inherit the portable versions from BitplanePortable<kNW>, which are written
// as plain loops over arrays of kNW words (the compiler vectorizes them).
//
// Fused outputs (bconv2d_output.h): run_bitplane_output<Impl> sets BandCtx::out. When
// Impl::native_output is true, process_channels writes the output from its counts
// (bits, or floats through the same per-element operations as transform_impl.h, so the
// including file must be compiled with -ffp-contract=off); otherwise the driver lets it
// write the band's `dot` into scratch and applies the vectorised transform to the band
// (still no full-tensor int32 round trip). For kQFloat / kQBits the q channel's dot of
// the band is computed first (BandCtx::qd) and process_channels gets the other channels.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "bconv2d_output.h"
#include "bconv2d_pack.h"
#include "sparse_bitplane.h"
#include "sparse_bitplane_bits.h"
#include "transform_impl.h"
#include "sparse_format.h"

// -DSBNN_SPARSE_PROFILE=1 accumulates per-stage cycle counts (x86-64 only, for tuning).
#if defined(SBNN_SPARSE_PROFILE) && SBNN_SPARSE_PROFILE && defined(__x86_64__)
#include <x86intrin.h>
#include <cstdio>
namespace sbnn {
namespace internal {
struct StageProfile {
  unsigned long long t[8] = {};
  const char* name[8] = {"build", "count", "convert", "other", "cv:bytes", "cv:transp", "b:rows", "b:transp"};
  ~StageProfile() {
    unsigned long long tot = 0;
    for (auto v : t) tot += v;
    for (int i = 0; i < 8; ++i)
      if (t[i]) std::fprintf(stderr, "sbnn sparse profile: %-8s %5.1f%%\n", name[i], 100.0 * t[i] / tot);
  }
};
inline StageProfile& stage_profile() {
  static StageProfile p;
  return p;
}
}  // namespace internal
}  // namespace sbnn
#define SBNN_PROF_BEGIN(var) const unsigned long long var = __rdtsc()
#define SBNN_PROF_END(var, i) (::sbnn::internal::stage_profile().t[i] += __rdtsc() - var)
#else
#define SBNN_PROF_BEGIN(var) (void)0
#define SBNN_PROF_END(var, i) (void)0
#endif

namespace sbnn {
namespace internal {
namespace {

typedef uint64_t __attribute__((may_alias, aligned(1))) u64_unaligned;

inline uint64_t load_u64(const void* p) {
  uint64_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// n (1..64) bits of the bit string t starting at bit pos; t must have a word after.
inline uint64_t read_bits(const uint64_t* t, long pos, int n) {
  const long w = pos >> 6;
  const int sh = static_cast<int>(pos & 63);
  uint64_t v = t[w] >> sh;
  if (sh != 0) v |= t[w + 1] << (64 - sh);
  return n >= 64 ? v : v & ((uint64_t{1} << n) - 1);
}

// Everything the stages of one band share.
struct BandCtx {
  const SparsePrepared* sp;  // the prepared object (kernel-specific data in sp->extra)
  int mode = 0;              // set by Impl::build_band for its process_channels
  const BConv2DShape* s;
  const SparseFilter* f;
  const BitplanePlan* p;
  const int32_t* input;
  int32_t* dot;           // full-tensor base pointer (rows outside the run are not written)
  int g;                  // group
  size_t b;               // image
  int oy0, nbr;           // band rows [oy0, oy0 + nbr)
  uint8_t* Y;             // transposed input of the band (p->y_bytes)
  uint64_t* T;            // one transposed input row: [cg8][sw][tq]
  int32_t* pc;            // [sw][pc_stride] popcount of the group's bits of pixel
                          // ix = j*sw + phi at pc[phi * pc_stride + pc_margin + j], 0 outside
  int pc_stride, pc_margin;
  int32_t* H;             // [sh * rows_pp][out_w] row sums of pc over the filter columns
  int32_t* B;             // [nbr][out_w] input bits set in each window
  uint64_t* work;         // kernel scratch (planes, counts), work_bytes long
  size_t work_bytes;
  // Fused output (nullptr: write dot). qd: kQFloat / kQBits, the q channel's dot of the
  // band's pixels, [nbr][out_w].
  const BConv2DOutput* out = nullptr;
  const int32_t* qd = nullptr;
  // kBits compared on the count planes (sparse_bitplane_bits.h): the run's thresholds and
  // the band's W planes and class masks (nullptr: per-pixel conversion).
  const BitsThresholds* bt = nullptr;
  BitsBand* bb = nullptr;
};

// Per-element output of one (pixel, channel) dot value d (pixel index px of the whole
// tensor; r, ox its band row and column). The operations are transform_impl.h's, so the
// results are those of the reference transforms.
inline void write_output_one(const BandCtx& x, size_t px, int r, int ox, int o, int32_t d) {
  using namespace transform_internal;
  const BConv2DOutput& out = *x.out;
  const int C = out.channels;
  switch (out.kind) {
    case BConv2DOutputKind::kBits: {
      if (d < out.limit[o]) {
        uint32_t* w = static_cast<uint32_t*>(out.out) + px * static_cast<size_t>(words_for(C)) + o / 32;
        *w |= uint32_t{1} << (o & 31);
      }
      break;
    }
    case BConv2DOutputKind::kFloat:
      static_cast<float*>(out.out)[px * C + o] = float_one(d, out.t, o);
      break;
    case BConv2DOutputKind::kQFloat: {
      const float fq = static_cast<float>(x.qd[static_cast<size_t>(r) * x.s->out_w + ox]);
      float y = q_float_one(d, fq, out.q, o);
      if (out.q.add != nullptr) y = y + out.q.add[px * C + o];
      static_cast<float*>(out.out)[px * C + o] = y;
      break;
    }
    case BConv2DOutputKind::kQBits: {
      const float fq = static_cast<float>(x.qd[static_cast<size_t>(r) * x.s->out_w + ox]);
      if (q_float_one(d, fq, out.q, o) < 0.0f) {
        uint32_t* w = static_cast<uint32_t*>(out.out) + px * static_cast<size_t>(words_for(C)) + o / 32;
        *w |= uint32_t{1} << (o & 31);
      }
      break;
    }
  }
}

// Zeroes the kBits output words of the band's pixels (process_channels ORs bits in).
inline void clear_band_bits(const BandCtx& x) {
  const BConv2DShape& s = *x.s;
  const size_t words = static_cast<size_t>(transform_internal::words_for(x.out->channels));
  const size_t px0 = (x.b * s.out_h + x.oy0) * static_cast<size_t>(s.out_w);
  std::memset(static_cast<int32_t*>(x.out->out) + px0 * words, 0,
              sizeof(int32_t) * words * x.nbr * s.out_w);
}

// ----------------------------------------------------------------------------------
// Portable stages.

// Word jj of group g's channels of one pixel, masked to the group's channels.
inline uint32_t group_word_at(const BConv2DShape& s, int cg, int g, const uint32_t* px, int jj) {
  if (s.groups == 1 || cg % 32 == 0) return px[g * s.filter_words + jj] & word_mask(cg, jj);
  return group_word(px, s.in_words, cg, g, jj);
}

// Transposes input row iy of image b (group g) into T: channel c, phase phi (pixels
// ix = j*sw + phi) at bit tmargin + j of T[(c * sw + phi) * tq ...]; and pc[ix].
inline void transpose_row_portable(BandCtx& x, int iy) {
  const BConv2DShape& s = *x.s;
  const BitplanePlan& p = *x.p;
  const int cg = x.f->cg, fw = s.filter_words, sw = p.sw, tq = p.tq;
  const int cg8 = (cg + 7) & ~7, nbytes = (cg + 7) / 8;
  std::memset(x.T, 0, sizeof(uint64_t) * cg8 * sw * tq);
  const uint32_t* row =
      reinterpret_cast<const uint32_t*>(x.input) + (x.b * s.in_h + iy) * static_cast<size_t>(s.in_w) * s.in_words;
  uint32_t gw[8][16];  // 16 group words (512 channels) of up to 8 pixels
  uint8_t* T8 = reinterpret_cast<uint8_t*>(x.T);
  const size_t cstride = static_cast<size_t>(sw) * tq * 8;  // bytes between channels
  for (int phi = 0; phi < sw && phi < s.in_w; ++phi) {
    const int nxp = (s.in_w - phi + sw - 1) / sw;
    for (int j0 = 0; j0 < nxp; j0 += 8) {
      const int n = std::min(8, nxp - j0);
      for (int w0 = 0; w0 < fw; w0 += 16) {
        const int nw = std::min(16, fw - w0);
        for (int i = 0; i < 8; ++i) {
          const uint32_t* px = row + static_cast<size_t>((j0 + i) * sw + phi) * s.in_words;
          for (int j = 0; j < nw; ++j) gw[i][j] = i < n ? group_word_at(s, cg, x.g, px, w0 + j) : 0u;
        }
        const int kb0 = w0 * 4, kb1 = std::min(nbytes, (w0 + nw) * 4);
        for (int k = kb0; k < kb1; ++k) {
          uint64_t v = 0;
          for (int i = 0; i < 8; ++i)
            v |= static_cast<uint64_t>((gw[i][(k - kb0) >> 2] >> (8 * (k & 3))) & 0xffu) << (8 * i);
          v = transpose8x8(v);
          uint8_t* dst = T8 + static_cast<size_t>(8 * k) * cstride +
                         static_cast<size_t>(phi) * tq * 8 + (p.tmargin + j0) / 8;
          for (int c = 0; c < 8; ++c) dst[c * cstride] = static_cast<uint8_t>(v >> (8 * c));
        }
      }
    }
  }
  // Popcounts of the group's bits per pixel.
  for (int ix = 0; ix < s.in_w; ++ix) {
    const uint32_t* px = row + static_cast<size_t>(ix) * s.in_words;
    int32_t c = 0;
    for (int j = 0; j < fw; ++j) c += __builtin_popcount(group_word_at(s, cg, x.g, px, j));
    x.pc[(ix % sw) * x.pc_stride + x.pc_margin + ix / sw] = c;
  }
}

// H row: for each output column, the sum of pc over the inside filter columns (the
// zero margins of pc stand for the outside ones).
inline void h_row(const BandCtx& x, int32_t* __restrict h) {
  const BConv2DShape& s = *x.s;
  const BitplanePlan& p = *x.p;
  for (int ox = 0; ox < s.out_w; ++ox) h[ox] = 0;
  for (int fx = 0; fx < s.filter_w; ++fx) {
    const int32_t* __restrict pc = x.pc + p.phx[fx] * x.pc_stride + x.pc_margin + p.qx[fx];
    for (int ox = 0; ox < s.out_w; ++ox) h[ox] += pc[ox];
  }
}

// Y rows (all fx, c) for stored row jj of phase ph from the transposed row in T.
inline void extract_rows_portable(BandCtx& x, int ph, int jj) {
  const BConv2DShape& s = *x.s;
  const BitplanePlan& p = *x.p;
  const int cg = x.f->cg, sw = p.sw, tq = p.tq, rb = p.rb, R = p.R;
  const size_t rowoff = (static_cast<size_t>(ph) * p.rows_pp + jj) * rb;
  for (int fx = 0; fx < s.filter_w; ++fx) {
    const long start = p.tmargin + p.qx[fx];
    const int phi = p.phx[fx];
    uint8_t* ybase = x.Y + static_cast<size_t>(fx) * cg * p.plane_bytes + rowoff;
    for (int c = 0; c < cg; ++c) {
      const uint64_t* t = x.T + (static_cast<size_t>(c) * sw + phi) * tq;
      uint8_t* y = ybase + static_cast<size_t>(c) * p.plane_bytes;
      if (R <= 64) {
        const uint64_t v = read_bits(t, start, s.out_w);
        std::memcpy(y, &v, rb);
      } else {
        for (int k = 0; k * 64 < R; ++k) {
          const int n = std::min(64, s.out_w - 64 * k);
          const uint64_t v = n > 0 ? read_bits(t, start + 64 * k, n) : 0;
          std::memcpy(y + 8 * k, &v, 8);
        }
      }
    }
  }
}

inline void zero_rows(BandCtx& x, int ph, int jj) {
  const BitplanePlan& p = *x.p;
  const int cg = x.f->cg;
  const size_t rowoff = (static_cast<size_t>(ph) * p.rows_pp + jj) * p.rb;
  for (int fx = 0; fx < x.s->filter_w; ++fx) {
    uint8_t* ybase = x.Y + static_cast<size_t>(fx) * cg * p.plane_bytes + rowoff;
    for (int c = 0; c < cg; ++c) std::memset(ybase + static_cast<size_t>(c) * p.plane_bytes, 0, p.rb);
  }
}

// Which vertical phases some tap reads.
inline bool phase_used(const BitplanePlan& p, int kh, int kw, int ph) {
  for (int fy = 0; fy < kh; ++fy)
    if (p.tap_row[fy * kw] / p.rb / p.rows_pp == ph) return true;
  return false;
}

// B(p) of the band from the H rows.
inline void band_bits(BandCtx& x) {
  const BConv2DShape& s = *x.s;
  const BitplanePlan& p = *x.p;
  const int ow = s.out_w;
  for (int r = 0; r < x.nbr; ++r) {
    int32_t* bo = x.B + static_cast<size_t>(r) * ow;
    for (int ox = 0; ox < ow; ++ox) bo[ox] = 0;
    for (int fy = 0; fy < s.filter_h; ++fy) {
      const int hrow = p.tap_row[fy * s.filter_w] / p.rb + r;
      const int32_t* h = x.H + static_cast<size_t>(hrow) * ow;
      for (int ox = 0; ox < ow; ++ox) bo[ox] += h[ox];
    }
  }
}

template <class RowFn>
inline void build_band_generic(BandCtx& x, RowFn&& transpose_and_extract) {
  const BConv2DShape& s = *x.s;
  const BitplanePlan& p = *x.p;
  const int rows = x.nbr + p.qmax - p.qmin;  // stored rows needed per phase
  for (int ph = 0; ph < p.sh; ++ph) {
    if (!phase_used(p, s.filter_h, s.filter_w, ph)) continue;
    for (int jj = 0; jj < rows; ++jj) {
      const int j = x.oy0 + p.qmin + jj;
      const long iy = static_cast<long>(j) * p.sh + ph;
      int32_t* h = x.H + (static_cast<size_t>(ph) * p.rows_pp + jj) * s.out_w;
      if (iy < 0 || iy >= s.in_h) {
        zero_rows(x, ph, jj);
        for (int ox = 0; ox < s.out_w; ++ox) h[ox] = 0;
        continue;
      }
      transpose_and_extract(x, static_cast<int>(iy), ph, jj);
      h_row(x, h);
    }
  }
  band_bits(x);
}

// Harley-Seal carry-save accumulation, portable: vectors are arrays of NW words.
template <int NW>
struct Vec {
  uint64_t w[NW];
};

template <int NW>
inline void csa(Vec<NW>& h, Vec<NW>& l, const Vec<NW>& a, const Vec<NW>& b, const Vec<NW>& c) {
  for (int i = 0; i < NW; ++i) {
    const uint64_t u = a.w[i] ^ b.w[i];
    h.w[i] = (a.w[i] & b.w[i]) | (u & c.w[i]);
    l.w[i] = u ^ c.w[i];
  }
}

// Adds v (weight 2^level) into the counter planes [level, nplanes).
template <int NW>
inline void ripple(Vec<NW>* planes, int level, int nplanes, Vec<NW> v) {
  for (int k = level; k < nplanes; ++k)
    for (int i = 0; i < NW; ++i) {
      const uint64_t t = planes[k].w[i] & v.w[i];
      planes[k].w[i] ^= v.w[i];
      v.w[i] = t;
    }
}

inline int bit_length(unsigned v) { return v == 0 ? 0 : 32 - __builtin_clz(v); }

// Counts n inputs (load(i, &vec)) into bit-sliced planes: planes[k] has weight 2^k,
// nplanes = bit_length(n) (at least 3). Returns nplanes.
template <int NW, class Load>
inline int accumulate_portable(int n, Load&& load, Vec<NW>* planes) {
  const int np = std::max(3, bit_length(static_cast<unsigned>(n)));
  for (int k = 0; k < np; ++k)
    for (int i = 0; i < NW; ++i) planes[k].w[i] = 0;
  Vec<NW>& ones = planes[0];
  Vec<NW>& twos = planes[1];
  Vec<NW>& fours = planes[2];
  int i = 0;
  Vec<NW> x[8], ta, tb, fa, fb, e;
  for (; i + 8 <= n; i += 8) {
    for (int k = 0; k < 8; ++k) load(i + k, &x[k]);
    csa(ta, ones, ones, x[0], x[1]);
    csa(tb, ones, ones, x[2], x[3]);
    csa(fa, twos, twos, ta, tb);
    csa(ta, ones, ones, x[4], x[5]);
    csa(tb, ones, ones, x[6], x[7]);
    csa(fb, twos, twos, ta, tb);
    csa(e, fours, fours, fa, fb);
    ripple(planes, 3, np, e);
  }
  for (; i + 2 <= n; i += 2) {
    load(i, &x[0]);
    load(i + 1, &x[1]);
    csa(ta, ones, ones, x[0], x[1]);
    ripple(planes, 1, np, ta);
  }
  if (i < n) {
    load(i, &x[0]);
    ripple(planes, 0, np, x[0]);
  }
  return np;
}

// Writes dot for one channel from its count planes: planes[k] points at the channel's
// words of plane k (stride between planes `pstride` words), lq words of the band.
// Counts of the band positions (bit r*R + ox) from the planes, 8 planes per transpose
// pass: cnt[64 * q + bit] for the lq words.
inline void counts_of_planes(const uint64_t* planes, size_t pstride, int np, int lq, uint32_t* cnt) {
  for (int q = 0; q < lq; ++q)
    for (int k = 0; k < 8; ++k) {
      uint32_t c8[8] = {0, 0, 0, 0, 0, 0, 0, 0};
      for (int b0 = 0; b0 < np; b0 += 8) {
        uint64_t v = 0;
        for (int b = b0; b < std::min(np, b0 + 8); ++b)
          v |= ((planes[b * pstride + q] >> (8 * k)) & 0xffu) << (8 * (b - b0));
        v = transpose8x8(v);
        for (int i = 0; i < 8; ++i) c8[i] |= static_cast<uint32_t>((v >> (8 * i)) & 0xffu) << b0;
      }
      std::memcpy(cnt + 64 * q + 8 * k, c8, sizeof c8);
    }
}

// dot of channel o at band row r, column ox from its count c.
inline int32_t dot_of_count(const BandCtx& x, int o, int r, int ox, uint32_t c) {
  const BitplanePlan& p = *x.p;
  const int O = x.s->out_channels;
  const int32_t base =
      p.base[(static_cast<size_t>(p.vclass[x.oy0 + r]) * p.nhc + p.hclass[ox]) * O + o];
  return base + x.f->sign[o] * (4 * static_cast<int32_t>(c) - 2 * x.B[static_cast<size_t>(r) * x.s->out_w + ox]);
}

// ORs channel o's kBits output bits of the band (res: one bit per band position, lq
// words, 0 outside the band's pixels) into the output.
inline void write_channel_bits(const BandCtx& x, int o, const uint64_t* res) {
  const BConv2DShape& s = *x.s;
  const int R = x.p->R, lq = (x.nbr * R + 63) / 64;
  const size_t words = static_cast<size_t>(transform_internal::words_for(x.out->channels));
  uint32_t* out = static_cast<uint32_t*>(x.out->out) +
                  (x.b * s.out_h + x.oy0) * static_cast<size_t>(s.out_w) * words + o / 32;
  const uint32_t bit = uint32_t{1} << (o & 31);
  for (int w = 0; w < lq; ++w)
    for (uint64_t m = res[w]; m != 0; m &= m - 1) {
      const int pos = 64 * w + __builtin_ctzll(m);
      out[(static_cast<size_t>(pos / R) * s.out_w + pos % R) * words] |= bit;
    }
}

// Writes dot (or the fused output x.out) for one channel from its count planes:
// planes[k] points at the channel's words of plane k (stride between planes `pstride`
// words), lq words of the band.
inline void convert_channel_portable(const BandCtx& x, int o, const uint64_t* planes, size_t pstride,
                                     int np, int lq, uint32_t* cnt) {
  const BConv2DShape& s = *x.s;
  const BitplanePlan& p = *x.p;
  if (x.out != nullptr && x.bb != nullptr) {
    // (cnt has room for the lq result words)
    uint64_t* res = reinterpret_cast<uint64_t*>(cnt);
    bits_of_channel(planes, pstride, np, *x.bt, *x.bb, o, res);
    write_channel_bits(x, o, res);
    return;
  }
  counts_of_planes(planes, pstride, np, lq, cnt);
  const int O = s.out_channels, ow = s.out_w;
  if (x.out != nullptr) {
    for (int r = 0; r < x.nbr; ++r) {
      const size_t px = (x.b * s.out_h + x.oy0 + r) * static_cast<size_t>(ow);
      const uint32_t* cr = cnt + static_cast<size_t>(r) * p.R;
      for (int ox = 0; ox < ow; ++ox) write_output_one(x, px + ox, r, ox, o, dot_of_count(x, o, r, ox, cr[ox]));
    }
    return;
  }
  const int32_t u = x.f->sign[o];
  for (int r = 0; r < x.nbr; ++r) {
    const int oy = x.oy0 + r;
    const int32_t* base = p.base + static_cast<size_t>(p.vclass[oy]) * p.nhc * O + o;
    int32_t* d = x.dot + ((x.b * s.out_h + oy) * static_cast<size_t>(ow)) * O + o;
    const uint32_t* cr = cnt + static_cast<size_t>(r) * p.R;
    const int32_t* br = x.B + static_cast<size_t>(r) * ow;
    for (int ox = 0; ox < ow; ++ox)
      d[static_cast<size_t>(ox) * O] =
          base[static_cast<size_t>(p.hclass[ox]) * O] +
          u * (4 * static_cast<int32_t>(cr[ox]) - 2 * br[ox]);
  }
}

// dot of channel o for the band's pixels into qd[r * out_w + ox] (the q channel of
// kQFloat / kQBits, groups == 1), from the input bits of its connections: it does not depend on
// the layout an Impl builds for the band, and costs nothing for the usual q without
// connections (an all-(+1) filter channel).
inline void band_channel_dot(const BandCtx& x, int o, int32_t* qd) {
  const BConv2DShape& s = *x.s;
  const SparseFilter& f = *x.f;
  const int ow = s.out_w, taps = f.taps;
  const uint32_t c0 = f.conn_begin[o], c1 = f.conn_begin[o + 1];
  for (int r = 0; r < x.nbr; ++r) {
    const int oy = x.oy0 + r;
    for (int ox = 0; ox < ow; ++ox) {
      uint32_t c = 0;
      for (uint32_t i = c0; i < c1; ++i) {
        const int ch = static_cast<int>(f.conns[i] / taps), t = static_cast<int>(f.conns[i] % taps);
        const int fy = t / s.filter_w, fx = t % s.filter_w;
        const long iy = static_cast<long>(oy) * s.stride_h - s.pad_top + static_cast<long>(fy) * s.dilation_h;
        const long ix = static_cast<long>(ox) * s.stride_w - s.pad_left + static_cast<long>(fx) * s.dilation_w;
        if (iy < 0 || iy >= s.in_h || ix < 0 || ix >= s.in_w) continue;  // (as Y's zero rows)
        const uint32_t w = static_cast<uint32_t>(
            x.input[((x.b * s.in_h + iy) * s.in_w + ix) * static_cast<size_t>(s.in_words) + ch / 32]);
        c += (w >> (ch % 32)) & 1u;
      }
      qd[static_cast<size_t>(r) * ow + ox] = dot_of_count(x, o, r, ox, c);
    }
  }
}

// Bytes of work scratch process_channels_portable needs.
template <int NW>
inline size_t portable_work_bytes(const BitplanePlan& p, int max_conns) {
  const int np = std::max(3, bit_length(static_cast<unsigned>(max_conns)));
  const size_t lq = (static_cast<size_t>(p.nb) * p.R + 63) / 64;
  const size_t words = std::max<size_t>(lq, NW) + NW;
  return sizeof(uint64_t) * (words * np) + sizeof(uint32_t) * (words * 64 + 64);
}

template <int NW>
struct BitplanePortable {
  static constexpr int kNW = NW;

  static bool native_output(const BandCtx&) { return true; }

  // kBits compared on the count planes (sparse_bitplane_bits.h) for plans like `p`.
  static bool bits_sliced(const BitplanePlan&) { return true; }

  static void build_band(BandCtx& x) {
    build_band_generic(x, [](BandCtx& c, int iy, int ph, int jj) {
      transpose_row_portable(c, iy);
      extract_rows_portable(c, ph, jj);
    });
  }

  static size_t work_bytes(const BitplanePlan& p, const SparseFilter& f, const SparsePrepared*) {
    return portable_work_bytes<NW>(p, f.max_conns);
  }

  // dot of output channels [o_begin, o_end) (all in group x.g) for the band.
  static void process_channels(BandCtx& x, int o_begin, int o_end) {
    const BitplanePlan& p = *x.p;
    const SparseFilter& f = *x.f;
    const int lq = (x.nbr * p.R + 63) / 64;
    const uint8_t* Y = x.Y;
    const uint8_t* zero = x.Y + *p.zero_off;
    const int np_max = std::max(3, bit_length(static_cast<unsigned>(f.max_conns)));
    const size_t lqv = std::max(lq, NW);                // words per plane in `planes`
    uint64_t* planes = x.work;                          // [np_max][lqv + NW]
    const size_t pstride = lqv + NW;
    uint32_t* cnt = reinterpret_cast<uint32_t*>(planes + pstride * np_max);
    Vec<NW> acc[32];
    if (lq >= NW) {
      const int nv = (lq + NW - 1) / NW;
      for (int o = o_begin; o < o_end; ++o) {
        const uint32_t* off = p.off + f.conn_begin[o];
        const int n = static_cast<int>(f.conn_begin[o + 1] - f.conn_begin[o]);
        int np = 3;
        for (int v = 0; v < nv; ++v) {
          const uint8_t* y = Y + static_cast<size_t>(v) * NW * 8;
          np = accumulate_portable<NW>(
              n, [&](int i, Vec<NW>* out) { std::memcpy(out->w, y + off[i], NW * 8); }, acc);
          for (int k = 0; k < np; ++k) std::memcpy(planes + k * pstride + v * NW, acc[k].w, NW * 8);
        }
        convert_channel_portable(x, o, planes, pstride, np, lq, cnt);
      }
    } else {
      int seg = 1;
      while (seg < lq) seg *= 2;
      const int G = NW / seg;
      for (int o0 = o_begin; o0 < o_end; o0 += G) {
        const int gn = std::min(G, o_end - o0);
        int n = 0;
        for (int k = 0; k < gn; ++k)
          n = std::max(n, static_cast<int>(f.conn_begin[o0 + k + 1] - f.conn_begin[o0 + k]));
        const int np = accumulate_portable<NW>(
            n,
            [&](int i, Vec<NW>* out) {
              for (int k = 0; k < G; ++k) {
                const uint8_t* src = zero;
                if (k < gn) {
                  const uint32_t b = f.conn_begin[o0 + k];
                  if (b + i < f.conn_begin[o0 + k + 1]) src = Y + p.off[b + i];
                }
                std::memcpy(out->w + k * seg, src, seg * 8);
              }
            },
            acc);
        for (int k = 0; k < gn; ++k) {
          for (int b = 0; b < np; ++b) std::memcpy(planes + b * pstride, acc[b].w + k * seg, seg * 8);
          convert_channel_portable(x, o0 + k, planes, pstride, np, lq, cnt);
        }
      }
    }
  }
};

// ----------------------------------------------------------------------------------
// The kernel entry points.

// Fallback of the fused outputs: `dot_rows` computes dot of rows [r0, r1) at a full-tensor
// base pointer; it runs into a scratch array per chunk of rows and the scalar reference
// transform follows (correct, not fast: for misuse and allocation failures only).
template <class DotRows>
inline void output_via_dot(const BConv2DShape& s, const BConv2DOutput& out, int row_begin,
                           int row_end, DotRows&& dot_rows) {
  const int64_t row_elems = int64_t{s.out_w} * s.out_channels;
  const int64_t chunk = std::max<int64_t>(1, (int64_t{1} << 14) / std::max<int64_t>(1, row_elems));
  const int64_t n = std::min<int64_t>(chunk, row_end - row_begin);
  int32_t* d = static_cast<int32_t*>(std::malloc(sizeof(int32_t) * static_cast<size_t>(n * row_elems)));
  if (d == nullptr) return;  // (nothing to write with; the caller's scratch failed too)
  for (int64_t r0 = row_begin; r0 < row_end; r0 += chunk) {
    const int64_t r1 = std::min<int64_t>(row_end, r0 + chunk);
    dot_rows(d - r0 * row_elems, static_cast<int>(r0), static_cast<int>(r1));
    apply_output_transform(transform_kernels_scalar(), s, out, d, r0, r1);
  }
  std::free(d);
}

// The scratch of one run_bitplane_any call beyond BandCtx's buffers: q's band dot and
// the band dot of the unfused fallback (fused outputs), the kBits thresholds and band
// planes.
struct BandScratch {
  int32_t* qd = nullptr;
  int32_t* band_dot = nullptr;
  uint8_t* bt_mem = nullptr;
  uint64_t* bb_mem = nullptr;
  bool bits_out = false;  // kBits written from the count planes
};

// Lays one call's scratch out in sparse_scratch() and points x's buffers (and m's)
// into it, zeroing what must start zero; false when there is no scratch.
template <class Impl>
bool bind_band_scratch(const BConv2DShape& s, const SparsePrepared* sp, const BitplanePlan& p,
                       const BConv2DOutput* out, BandCtx* x, BandScratch* m) {
  const SparseFilter& f = *sp->filter;
  const int cg8 = (f.cg + 7) & ~7;
  const size_t t_bytes = sizeof(uint64_t) * cg8 * p.sw * p.tq;
  // pc: per phase, a margin of max(-qx) zeros, the pixels, zeros up to out_w + max(qx).
  int qxmin = 0, qxmax = 0;
  for (int fx = 0; fx < s.filter_w; ++fx) {
    qxmin = std::min(qxmin, p.qx[fx]);
    qxmax = std::max(qxmax, p.qx[fx]);
  }
  const int pc_margin = (-qxmin + 15) / 16 * 16;
  const int nxp = (s.in_w + p.sw - 1) / p.sw;
  const int pc_stride = (pc_margin + std::max({nxp, s.out_w + qxmax, p.R}) + 16 + 15) / 16 * 16;
  const size_t pc_bytes = sizeof(int32_t) * static_cast<size_t>(pc_stride) * p.sw;
  const size_t h_bytes = sizeof(int32_t) * (static_cast<size_t>(p.sh) * p.rows_pp * s.out_w + 16);
  const size_t b_bytes = sizeof(int32_t) * (static_cast<size_t>(p.nb) * s.out_w + 16);
  const size_t w_bytes = Impl::work_bytes(p, f, sp);
  // Fused outputs: q's band dot, the band dot of the fallback.
  const size_t o_bytes =
      out == nullptr ? 0
                     : sizeof(int32_t) * static_cast<size_t>(p.nb) * s.out_w * (1 + s.out_channels);
  // kBits from the count planes: thresholds per (channel, class), the band's W planes
  // (their size needs the thresholds' plane count: an upper bound here).
  const bool bits_out = out != nullptr && out->kind == BConv2DOutputKind::kBits &&
                        p.nvc * p.nhc <= kBitsMaxClasses && Impl::bits_sliced(p);
  const size_t bt_bytes = bits_out ? bits_thresholds_bytes(p, s.out_channels) : 0;
  const size_t bb_bytes =
      bits_out ? sizeof(uint64_t) * bits_band_words(p, kBitsMaxPlanes, p.nvc * p.nhc, kBitsPad) : 0;
  auto up = [](size_t v) { return (v + 63) / 64 * 64; };
  const size_t total = up(p.y_bytes) + up(t_bytes) + up(pc_bytes) + up(h_bytes) + up(b_bytes) +
                       up(w_bytes) + up(o_bytes) + up(bt_bytes) + up(bb_bytes);
  uint8_t* mem = static_cast<uint8_t*>(sparse_scratch(total));
  if (mem == nullptr) return false;
  x->sp = sp;
  x->s = &s;
  x->f = &f;
  x->p = &p;
  x->Y = mem;
  x->T = reinterpret_cast<uint64_t*>(mem + up(p.y_bytes));
  x->pc = reinterpret_cast<int32_t*>(reinterpret_cast<uint8_t*>(x->T) + up(t_bytes));
  x->H = reinterpret_cast<int32_t*>(reinterpret_cast<uint8_t*>(x->pc) + up(pc_bytes));
  x->B = reinterpret_cast<int32_t*>(reinterpret_cast<uint8_t*>(x->H) + up(h_bytes));
  x->work = reinterpret_cast<uint64_t*>(reinterpret_cast<uint8_t*>(x->B) + up(b_bytes));
  x->work_bytes = w_bytes;
  x->pc_stride = pc_stride;
  x->pc_margin = pc_margin;
  m->qd = reinterpret_cast<int32_t*>(reinterpret_cast<uint8_t*>(x->work) + up(w_bytes));
  m->band_dot = m->qd + static_cast<size_t>(p.nb) * s.out_w;
  m->bt_mem = reinterpret_cast<uint8_t*>(m->qd) + up(o_bytes);
  m->bb_mem = reinterpret_cast<uint64_t*>(m->bt_mem + up(bt_bytes));
  m->bits_out = bits_out;
  std::memset(x->pc, 0, pc_bytes);  // margins stay zero; pixels are overwritten per row
  // The zero region after the blocks (for padded connection lists).
  std::memset(x->Y + *p.zero_off, 0, p.y_bytes - *p.zero_off);
  return true;
}

// Output rows [row_begin, row_end), band by band: per group the band is built, then its
// channels processed, with the fused output written by the strategy itself when it can
// (q's channel dot, kBits planes) and else from the band's dot afterwards.
template <class Impl>
void run_bands(BandCtx& x, const BandScratch& m, const BConv2DOutput* out, int row_begin,
               int row_end) {
  const BConv2DShape& s = *x.s;
  const SparseFilter& f = *x.f;
  const BitplanePlan& p = *x.p;
  BitsThresholds bt;
  BitsBand bband;
  int bits_state = m.bits_out ? 0 : -1;  // 0: thresholds not made yet, 1: made, -1: unused
  const bool qfloat = out != nullptr && (out->kind == BConv2DOutputKind::kQFloat ||
                                         out->kind == BConv2DOutputKind::kQBits);
  int r = row_begin;
  while (r < row_end) {
    x.b = static_cast<size_t>(r / s.out_h);
    x.oy0 = r % s.out_h;
    x.nbr = std::min({p.nb, s.out_h - x.oy0, row_end - r});
    bool native = true;
    for (int g = 0; g < s.groups; ++g) {
      x.g = g;
      SBNN_PROF_BEGIN(t0);
      Impl::build_band(x);
      SBNN_PROF_END(t0, 0);
      int o_end = (g + 1) * f.og;
      if (out != nullptr) {
        if (g == 0) {
          // (the same for every group of the band: it depends on the shape only)
          x.out = out;
          x.bt = nullptr;
          x.bb = nullptr;
          native = Impl::native_output(x);
          if (native) {
            if (bconv2d_output_is_bits(out->kind)) clear_band_bits(x);
          } else {
            x.out = nullptr;
            x.dot = m.band_dot - static_cast<size_t>(r) * s.out_w * s.out_channels;
          }
        }
        if (native && bits_state == 0)  // (once per call, at the first native band)
          bits_state = make_bits_thresholds(p, f, out->limit, s.out_channels, m.bt_mem, &bt) ? 1 : -1;
        if (native && bits_state == 1) {
          build_bits_band(p, bt, s.out_w, x.oy0, x.nbr, x.B, kBitsPad, m.bb_mem, &bband);
          x.bt = &bt;
          x.bb = &bband;
        }
        if (native && qfloat) {
          band_channel_dot(x, s.out_channels - 1, m.qd);
          x.qd = m.qd;
          o_end -= 1;
        }
      }
      Impl::process_channels(x, g * f.og, o_end);
    }
    if (out != nullptr && !native)
      apply_output_transform(transform_kernels(), s, *out, m.band_dot, r, r + x.nbr);
    r += x.nbr;
  }
}

// Both entry points: `out` == nullptr writes dot (the base contract), else the fused
// output (then `dot` is unused).
template <class Impl>
void run_bitplane_any(const BConv2DShape& s, const void* prepared, const int32_t* input,
                      const int32_t* filter, int32_t* dot, const BConv2DOutput* out, int row_begin,
                      int row_end, int kind, size_t y_budget) {
  if (row_begin < 0) row_begin = 0;
  if (row_end > s.batch * s.out_h) row_end = s.batch * s.out_h;
  if (row_end <= row_begin || s.out_w <= 0 || !shape_is_valid(s)) return;
  if (out != nullptr && !bconv2d_output_is_valid(s, *out)) return;
  const auto* sp = static_cast<const SparsePrepared*>(prepared);
  SparsePrepared* own = nullptr;
  if (sp == nullptr || sp->magic != kSparsePreparedMagic || sp->kind != kind ||
      !sparse_filter_matches(sp->filter, s)) {
    // Misuse (no or foreign prepared object): still compute the right answer.
    if (filter == nullptr) return;
    own = make_sparse_prepared(s, filter, kind, Impl::kNW * 8, y_budget, false);
    if (own == nullptr) {
      if (out == nullptr) {
        run_reference(s, input, filter, dot, row_begin, row_end);
      } else {
        output_via_dot(s, *out, row_begin, row_end, [&](int32_t* d, int r0, int r1) {
          run_reference(s, input, filter, d, r0, r1);
        });
      }
      return;
    }
    sp = own;
  }
  const SparseFilter& f = *sp->filter;
  const BitplanePlan* plan = sp->plan;
  BitplanePlan* own_plan = nullptr;
  if (plan == nullptr || plan->magic != kBitplaneMagic ||
      std::memcmp(&plan->shape, &s, sizeof s) != 0) {
    own_plan = build_bitplane_plan(s, f, Impl::kNW * 8, y_budget);
    plan = own_plan;
  }
  bool done = false;
  if (plan != nullptr) {
    BandCtx x;
    BandScratch m;
    if (bind_band_scratch<Impl>(s, sp, *plan, out, &x, &m)) {
      x.input = input;
      x.dot = dot;
      run_bands<Impl>(x, m, out, row_begin, row_end);
      done = true;
    }
  }
  if (!done) {
    if (out == nullptr) {
      run_sparse_reference(s, f, input, dot, row_begin, row_end);
    } else {
      output_via_dot(s, *out, row_begin, row_end, [&](int32_t* d, int r0, int r1) {
        run_sparse_reference(s, f, input, d, r0, r1);
      });
    }
  }
  release_bitplane_plan(own_plan);
  if (own) release_sparse_prepared(own);
}

template <class Impl>
void run_bitplane(const BConv2DShape& s, const void* prepared, const int32_t* input,
                  const int32_t* filter, int32_t* dot, int row_begin, int row_end, int kind,
                  size_t y_budget) {
  run_bitplane_any<Impl>(s, prepared, input, filter, dot, nullptr, row_begin, row_end, kind,
                         y_budget);
}

template <class Impl>
void run_bitplane_output(const BConv2DShape& s, const void* prepared, const int32_t* input,
                         const int32_t* filter, const BConv2DOutput& out, int row_begin,
                         int row_end, int kind, size_t y_budget) {
  run_bitplane_any<Impl>(s, prepared, input, filter, nullptr, &out, row_begin, row_end, kind,
                         y_budget);
}

}  // namespace
}  // namespace internal
}  // namespace sbnn
