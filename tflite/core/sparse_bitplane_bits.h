// sbnn_keras native core: the bitpacked output (bconv2d_output.h, kBits) of the bit-plane
// kernels compared *bit-sliced on the count planes*, without count bytes or int32 dot
// values (docs/sparse_kernels.md, "Bitpacked output from the count planes").
//
// The algebra. For output channel o with sign u (sparse_bitplane.h),
//   dot(p, o) = base[cl(p)][o] + u * (4 C(p, o) - 2 B(p)),  bit = dot < limit[o].
// With V = 2C - B this is, exactly in integers,
//   u = +1:  bit =     V < K,   K = ceil((limit - base) / 2)
//   u = -1:  bit = not V < K,   K = floor((base - limit) / 2) + 1.
// Border classes differ in base (N(cl) effective taps * cg, E(cl, o) inside connections);
// half of N(cl), a(cl) = floor(N(cl) / 2), moves to the pixel side so that the classes'
// thresholds differ by little (E only, when N is even):
//   V < K  <=>  S(p) = 2C + W(p) < Kp(cl, o) = K + a(cl) + M,   W(p) = M - B(p) + a(cl(p)),
// with M = max over classes of N(cl) - a(cl), so that W >= 0 (B(p) <= N(cl(p))). W is the
// same for every output channel: it is built once per band (planes of W, bit p = band
// position p). Per channel and vector the kernel adds 2C to W (a full adder per plane)
// and compares the sum with the per-pixel threshold Kp(cl(p), o) by a borrow chain
// (one majority per plane): the threshold planes are those of the band's most frequent
// class, with the bits in which another class's threshold differs flipped on that
// class's pixels. Kp is clamped to [0, 2^P - 1] with S < 2^P - 1 always, so thresholds
// below every sum give 0 and above every sum give 1 without special cases.
//
// Everything here is portable and exact; the kernels' SIMD versions (AVX-512 in
// sparse_bitplane_avx512_direct.h) follow the same planes and must give the same bits.
// Like the driver, this header has internal linkage and is compiled with each ISA
// file's flags.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include "sparse_bitplane.h"
#include "sparse_format.h"

namespace sbnn {
namespace internal {
namespace {

constexpr int kBitsMaxClasses = 64;  // more border classes: the per-pixel path is used
constexpr int kBitsMaxPlanes = 24;   // planes of S (kfull up to ~4 M)
constexpr int kBitsPad = 8;          // zero words after each band array (whole 512-bit loads)

// Per run: thresholds of every (channel, border class).
struct BitsThresholds {
  int P = 0;              // planes of S = 2C + W
  int ncls = 0;           // border classes (plan nvc * nhc)
  int32_t M = 0;
  int32_t cmax = 0;       // largest count (the filter's max_conns)
  const int32_t* kp = nullptr;   // [out_channels][ncls] Kp(cl, o), in [0, 2^P - 1]
  const uint8_t* neg = nullptr;  // [out_channels] 1: the output bit is the inverted compare
  const int32_t* a = nullptr;    // [ncls] a(cl) = floor(N(cl) / 2)
};

inline int bits_bit_length(uint64_t v) { return v == 0 ? 0 : 64 - __builtin_clzll(v); }

// Bytes of scratch make_bits_thresholds needs (64-byte multiples).
inline size_t bits_thresholds_bytes(const BitplanePlan& p, int out_channels) {
  const size_t ncls = static_cast<size_t>(p.nvc) * p.nhc;
  const size_t kp = sizeof(int32_t) * ncls * out_channels;
  return (kp + 63) / 64 * 64 + (static_cast<size_t>(out_channels) + 63) / 64 * 64 +
         (sizeof(int32_t) * ncls + 63) / 64 * 64;
}

// Fills `t` (arrays in `mem`, bits_thresholds_bytes long) for kBits with `limit`.
// False when the bit-sliced output does not apply (too many classes or planes): the
// kernel then converts per pixel.
inline bool make_bits_thresholds(const BitplanePlan& p, const SparseFilter& f, const int32_t* limit,
                                 int out_channels, void* mem, BitsThresholds* t) {
  const int ncls = p.nvc * p.nhc;
  if (ncls > kBitsMaxClasses || ncls < 1 || limit == nullptr) return false;
  uint8_t* m = static_cast<uint8_t*>(mem);
  int32_t* kp = reinterpret_cast<int32_t*>(m);
  m += (sizeof(int32_t) * static_cast<size_t>(ncls) * out_channels + 63) / 64 * 64;
  uint8_t* neg = m;
  m += (static_cast<size_t>(out_channels) + 63) / 64 * 64;
  int32_t* a = reinterpret_cast<int32_t*>(m);
  int64_t M = 0, amax = 0;
  for (int cl = 0; cl < ncls; ++cl) {
    const int64_t N = static_cast<int64_t>(p.ntaps[cl]) * f.cg;
    a[cl] = static_cast<int32_t>(N / 2);
    M = std::max(M, N - a[cl]);
    amax = std::max<int64_t>(amax, a[cl]);
  }
  const int64_t smax = 2 * static_cast<int64_t>(f.max_conns) + M + amax;
  const int P = std::max(1, bits_bit_length(static_cast<uint64_t>(smax + 1)));
  if (P > kBitsMaxPlanes) return false;
  const int64_t top = (int64_t{1} << P) - 1;
  for (int o = 0; o < out_channels; ++o) neg[o] = f.sign[o] > 0 ? 0 : 1;
  for (int cl = 0; cl < ncls; ++cl) {
    const int32_t* base = p.base + static_cast<size_t>(cl) * out_channels;
    const int64_t add = a[cl] + M;
    for (int o = 0; o < out_channels; ++o) {
      // (v >> 1 is floor(v / 2); -floor(-x) = ceil(x))
      const int64_t h = (static_cast<int64_t>(base[o]) - limit[o]) >> 1;
      const int64_t K = neg[o] ? h + 1 : -h;
      const int64_t v = K + add;
      kp[static_cast<size_t>(o) * ncls + cl] = static_cast<int32_t>(v < 0 ? 0 : v > top ? top : v);
    }
  }
  t->P = P;
  t->ncls = ncls;
  t->M = static_cast<int32_t>(M);
  t->cmax = f.max_conns;
  t->kp = kp;
  t->neg = neg;
  t->a = a;
  return true;
}

// Per band (and group): planes of W, the border classes present and their masks.
struct BitsBand {
  int P = 0;               // planes of S - off in this band (<= the run's P)
  int32_t off = 0;         // the band's smallest W: W planes hold W - off, thresholds
                           // are Kp - off clamped to [0, 2^P - 1]
  int lq = 0;              // words of the band (positions r * R + ox)
  size_t lqs = 0;          // words per plane / mask (>= lq; words past lq are 0)
  int base_cl = 0;         // the class of most pixels
  int nother = 0;          // other classes present
  int other[kBitsMaxClasses];
  uint64_t* W = nullptr;      // [P][lqs]
  uint64_t* mask = nullptr;   // [nother][lqs] pixels of class other[i]
  uint64_t* valid = nullptr;  // [lqs] the band's output pixels
};

// Words of scratch a BitsBand needs for bands of `nb` rows of R bits (`pad` words of
// zero slack after each array, for kernels that read whole vectors), the values of W
// included.
inline size_t bits_band_words(const BitplanePlan& p, int P, int ncls, int pad) {
  const size_t lqs = (static_cast<size_t>(p.nb) * p.R + 63) / 64 + pad;
  return lqs * (static_cast<size_t>(P) + ncls + 1) + lqs * 32;
}

// Planes of 64 values: out[k * stride] bit i = bit k of v[i], k < P.
inline void value_planes64(const uint32_t* v, int P, uint64_t* out, size_t stride) {
#if defined(__AVX512F__)
  const __m512i x0 = _mm512_loadu_si512(v), x1 = _mm512_loadu_si512(v + 16);
  const __m512i x2 = _mm512_loadu_si512(v + 32), x3 = _mm512_loadu_si512(v + 48);
  for (int k = 0; k < P; ++k) {
    const __m512i b = _mm512_set1_epi32(static_cast<int>(1u << k));
    out[static_cast<size_t>(k) * stride] =
        static_cast<uint64_t>(_mm512_test_epi32_mask(x0, b)) |
        static_cast<uint64_t>(_mm512_test_epi32_mask(x1, b)) << 16 |
        static_cast<uint64_t>(_mm512_test_epi32_mask(x2, b)) << 32 |
        static_cast<uint64_t>(_mm512_test_epi32_mask(x3, b)) << 48;
  }
#else
  for (int k = 0; k < P; ++k) {
    uint64_t m = 0;
    for (int i = 0; i < 64; ++i) m |= static_cast<uint64_t>((v[i] >> k) & 1u) << i;
    out[static_cast<size_t>(k) * stride] = m;
  }
#endif
}

// Builds the band's W planes and class masks from B(p) ([nbr][out_w]) into `mem`
// (bits_band_words(p, t.P, t.ncls, pad) words).
inline void build_bits_band(const BitplanePlan& p, const BitsThresholds& t, int out_w, int oy0,
                            int nbr, const int32_t* B, int pad, uint64_t* mem, BitsBand* bb) {
  const int R = p.R;
  const int lq = (nbr * R + 63) / 64;
  const size_t lqs = (static_cast<size_t>(p.nb) * R + 63) / 64 + pad;
  bb->lq = lq;
  bb->lqs = lqs;
  bb->W = mem;
  bb->valid = mem + lqs * t.P;
  uint64_t* cmask = bb->valid + lqs;  // [ncls][lqs], compacted to the present ones below
  uint32_t* vals = reinterpret_cast<uint32_t*>(cmask + lqs * t.ncls);  // [lq * 64] W(p)
  std::memset(bb->valid, 0, sizeof(uint64_t) * lqs * (static_cast<size_t>(t.ncls) + 1));
  std::memset(vals, 0, sizeof(uint32_t) * 64 * static_cast<size_t>(lq));
  int count[kBitsMaxClasses] = {};
  for (int r = 0; r < nbr; ++r) {
    const int vrow = p.vclass[oy0 + r] * p.nhc;
    const int32_t* br = B + static_cast<size_t>(r) * out_w;
    uint32_t* vr = vals + static_cast<size_t>(r) * R;
    for (int ox = 0; ox < out_w;) {
      // (runs of one class: a few per row)
      const int hc = p.hclass[ox], cl = vrow + hc;
      int e = ox + 1;
      while (e < out_w && p.hclass[e] == hc) ++e;
      const uint32_t add = static_cast<uint32_t>(t.M + t.a[cl]);
      for (int i = ox; i < e; ++i) vr[i] = add - static_cast<uint32_t>(br[i]);
      for (int i = ox; i < e; ++i) {
        const size_t pos = static_cast<size_t>(r) * R + i;
        const uint64_t bit = uint64_t{1} << (pos & 63);
        bb->valid[pos >> 6] |= bit;
        cmask[static_cast<size_t>(cl) * lqs + (pos >> 6)] |= bit;
      }
      count[cl] += e - ox;
      ox = e;
    }
  }
  // The band's range of W: its high planes are often the same on every pixel, so the
  // band compares S - off on fewer planes.
  uint32_t lo = ~0u, hi = 0;
  for (int r = 0; r < nbr; ++r)
    for (int ox = 0; ox < out_w; ++ox) {
      const uint32_t v = vals[static_cast<size_t>(r) * R + ox];
      lo = std::min(lo, v);
      hi = std::max(hi, v);
    }
  if (lo > hi) lo = hi = 0;
  for (int r = 0; r < nbr; ++r)
    for (int ox = 0; ox < out_w; ++ox) vals[static_cast<size_t>(r) * R + ox] -= lo;
  bb->off = static_cast<int32_t>(lo);
  bb->P = std::min(t.P, bits_bit_length(static_cast<uint64_t>(hi - lo) + 2 * static_cast<uint64_t>(t.cmax) + 1));
  for (int w = 0; w < lq; ++w) value_planes64(vals + 64 * static_cast<size_t>(w), bb->P, bb->W + w, lqs);
  for (int k = 0; k < bb->P; ++k)
    std::memset(bb->W + static_cast<size_t>(k) * lqs + lq, 0, sizeof(uint64_t) * (lqs - lq));
  int best = 0;
  for (int cl = 1; cl < t.ncls; ++cl)
    if (count[cl] > count[best]) best = cl;
  bb->base_cl = best;
  bb->nother = 0;
  bb->mask = cmask;
  for (int cl = 0; cl < t.ncls; ++cl) {
    if (cl == best || count[cl] == 0) continue;
    uint64_t* dst = cmask + static_cast<size_t>(bb->nother) * lqs;
    if (dst != cmask + static_cast<size_t>(cl) * lqs)
      std::memcpy(dst, cmask + static_cast<size_t>(cl) * lqs, sizeof(uint64_t) * lqs);
    bb->other[bb->nother++] = cl;
  }
}

// Threshold of class cl of channel o in band bb: Kp - off clamped to [0, 2^P - 1] (the
// band's S - off stays below 2^P - 1).
inline uint32_t band_threshold(const BitsThresholds& t, const BitsBand& bb, int o, int cl) {
  const int32_t v = t.kp[static_cast<size_t>(o) * t.ncls + cl] - bb.off;
  const int32_t top = (int32_t{1} << bb.P) - 1;
  return static_cast<uint32_t>(v < 0 ? 0 : v > top ? top : v);
}

// The reference compare of one channel: res[w] (w < bb.lq) = the output bits of channel o
// at the band positions of word w (0 outside the band's pixels). planes[k * pstride + w]
// is word w of count plane k (np planes).
inline void bits_of_channel(const uint64_t* planes, size_t pstride, int np, const BitsThresholds& t,
                            const BitsBand& bb, int o, uint64_t* res) {
  const uint32_t kb = band_threshold(t, bb, o, bb.base_cl);
  const uint64_t negw = t.neg[o] ? ~uint64_t{0} : 0;
  uint32_t d[kBitsMaxClasses];
  for (int i = 0; i < bb.nother; ++i) d[i] = kb ^ band_threshold(t, bb, o, bb.other[i]);
  for (int w = 0; w < bb.lq; ++w) {
    uint64_t carry = 0, lt = 0;
    for (int k = 0; k < bb.P; ++k) {
      const uint64_t a = k >= 1 && k - 1 < np ? planes[static_cast<size_t>(k - 1) * pstride + w] : 0;
      const uint64_t wk = bb.W[static_cast<size_t>(k) * bb.lqs + w];
      const uint64_t s = a ^ wk ^ carry;
      carry = (a & wk) | (carry & (a ^ wk));
      uint64_t tk = ((kb >> k) & 1u) ? ~uint64_t{0} : 0;
      for (int i = 0; i < bb.nother; ++i)
        if ((d[i] >> k) & 1u) tk ^= bb.mask[static_cast<size_t>(i) * bb.lqs + w];
      lt = (~s & tk) | (~s & lt) | (tk & lt);  // borrow of s - t: s < t so far
    }
    res[w] = (lt ^ negw) & bb.valid[w];
  }
}

}  // namespace
}  // namespace internal
}  // namespace sbnn
