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
  const int32_t* kp = nullptr;   // [out_channels][ncls] Kp(cl, o), in [0, 2^P - 1]
  const uint8_t* neg = nullptr;  // [out_channels] 1: the output bit is the inverted compare
  const int32_t* a = nullptr;    // [ncls] a(cl) = floor(N(cl) / 2)
};

inline int bits_bit_length(uint64_t v) { return v == 0 ? 0 : 64 - __builtin_clzll(v); }

inline int64_t bits_floor_div2(int64_t v) { return v >= 0 ? v / 2 : -((-v + 1) / 2); }

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
  for (int o = 0; o < out_channels; ++o) {
    const bool pos = f.sign[o] > 0;
    neg[o] = pos ? 0 : 1;
    for (int cl = 0; cl < ncls; ++cl) {
      const int64_t base = p.base[static_cast<size_t>(cl) * out_channels + o];
      const int64_t K = pos ? -bits_floor_div2(base - static_cast<int64_t>(limit[o]))  // ceil
                            : bits_floor_div2(base - static_cast<int64_t>(limit[o])) + 1;
      const int64_t v = K + a[cl] + M;
      kp[static_cast<size_t>(o) * ncls + cl] = static_cast<int32_t>(std::min(top, std::max<int64_t>(0, v)));
    }
  }
  t->P = P;
  t->ncls = ncls;
  t->M = static_cast<int32_t>(M);
  t->kp = kp;
  t->neg = neg;
  t->a = a;
  return true;
}

// Per band (and group): planes of W, the border classes present and their masks.
struct BitsBand {
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
// zero slack after each array, for kernels that read whole vectors).
inline size_t bits_band_words(const BitplanePlan& p, const BitsThresholds& t, int pad) {
  const size_t lqs = (static_cast<size_t>(p.nb) * p.R + 63) / 64 + pad;
  return lqs * (static_cast<size_t>(t.P) + t.ncls + 1);
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
// (bits_band_words(p, t, pad) words).
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
  std::memset(mem, 0, sizeof(uint64_t) * lqs * (static_cast<size_t>(t.P) + t.ncls + 1));
  int count[kBitsMaxClasses] = {};
  alignas(64) uint32_t vals[64];
  for (int w = 0; w < lq; ++w) {
    for (int i = 0; i < 64; ++i) {
      const int pos = 64 * w + i, r = pos / R, ox = pos % R;
      if (r >= nbr || ox >= out_w) {
        vals[i] = 0;
        continue;
      }
      const int cl = p.vclass[oy0 + r] * p.nhc + p.hclass[ox];
      vals[i] = static_cast<uint32_t>(t.M - B[static_cast<size_t>(r) * out_w + ox] + t.a[cl]);
      bb->valid[w] |= uint64_t{1} << i;
      cmask[static_cast<size_t>(cl) * lqs + w] |= uint64_t{1} << i;
      ++count[cl];
    }
    value_planes64(vals, t.P, bb->W + w, lqs);
  }
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

// The reference compare of one channel: res[w] (w < bb.lq) = the output bits of channel o
// at the band positions of word w (0 outside the band's pixels). planes[k * pstride + w]
// is word w of count plane k (np planes).
inline void bits_of_channel(const uint64_t* planes, size_t pstride, int np, const BitsThresholds& t,
                            const BitsBand& bb, int o, uint64_t* res) {
  const int32_t* kp = t.kp + static_cast<size_t>(o) * t.ncls;
  const uint32_t kb = static_cast<uint32_t>(kp[bb.base_cl]);
  const uint64_t negw = t.neg[o] ? ~uint64_t{0} : 0;
  for (int w = 0; w < bb.lq; ++w) {
    uint64_t carry = 0, lt = 0;
    for (int k = 0; k < t.P; ++k) {
      const uint64_t a = k >= 1 && k - 1 < np ? planes[static_cast<size_t>(k - 1) * pstride + w] : 0;
      const uint64_t wk = bb.W[static_cast<size_t>(k) * bb.lqs + w];
      const uint64_t s = a ^ wk ^ carry;
      carry = (a & wk) | (carry & (a ^ wk));
      uint64_t tk = ((kb >> k) & 1u) ? ~uint64_t{0} : 0;
      for (int i = 0; i < bb.nother; ++i) {
        const uint32_t d = kb ^ static_cast<uint32_t>(kp[bb.other[i]]);
        if ((d >> k) & 1u) tk ^= bb.mask[static_cast<size_t>(i) * bb.lqs + w];
      }
      lt = (~s & tk) | (~s & lt) | (tk & lt);  // borrow of s - t: s < t so far
    }
    res[w] = (lt ^ negw) & bb.valid[w];
  }
}

}  // namespace
}  // namespace internal
}  // namespace sbnn
