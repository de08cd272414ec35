// The pieces both strategies of the AVX-512 bit-plane kernel share
// (sparse_bitplane_avx512.cc): constants, the constant tables, carry-save counting of
// inputs into bit planes, planes -> count bytes, square register transposes, the H row,
// the fused output stores.
// Included only by sparse_bitplane_avx512.cc through its strategy headers: like
// sparse_bitplane_driver.h, everything here has internal linkage and is compiled with
// that file's flags (-mavx512vbmi -mavx512vnni -mgfni ...), so no copy built for a
// smaller instruction set can be merged with it by the linker.
#pragma once

#include <immintrin.h>

#include <vector>

#include "sparse_bitplane_driver.h"

namespace sbnn {
namespace internal {
namespace {

constexpr int kMaxPlanes = 16;  // counts < 65536 on the fast conversion path
constexpr int kSuper = 4;       // 16-channel blocks written together (64 channels)

// ----------------------------------------------------------------------------------
// Constant tables, computed once.
struct Tables {
  // Step 2 output: byte i of qword q of register r holds the count of pixel
  // 8 * kq[r][q] + i of the vector.
  uint8_t kq[8][8];
  // Step 3: vpermt2b indices per level (1..4) and half (0, 1).
  __m512i perm[4][2];
  // Input transposition: after the byte-interleave of u = log2(R/8) stages, element e of
  // register m holds channel scramble[u][m * (512 / R) + e] of the 64-channel chunk.
  uint8_t scramble[4][64];
  // Square transposes of N x N elements (N = 16 dwords, 32 words, 8 qwords): per
  // butterfly step (bit b = N/2 .. 1) two vpermt2 index vectors.
  __m512i tr32[4][2], tr16[5][2], tr64[3][2];
  // Byte transpose of 8 qwords (row reversal for VGF2P8AFFINEQB): out qword k byte i =
  // in qword (7 - i) byte k.
  __m512i bytes8x8;
  // Plain 8x8 byte transpose of the 8 qwords: out byte 8i + q = in byte 8q + i.
  __m512i bytes8x8t;
  Tables() {
    // Simulate the interleave network on byte indices.
    alignas(64) uint8_t in[8][64];
    for (int b = 0; b < 8; ++b)
      for (int k = 0; k < 64; ++k) in[b][k] = static_cast<uint8_t>(k);
    __m512i p[8], out[8];
    for (int b = 0; b < 8; ++b) p[b] = _mm512_load_si512(in[b]);
    interleave(p, out);
    for (int r = 0; r < 8; ++r) {
      alignas(64) uint8_t o[64];
      _mm512_store_si512(o, out[r]);
      for (int q = 0; q < 8; ++q) kq[r][q] = o[8 * q];
    }
    for (int l = 1; l <= 4; ++l)
      for (int h = 0; h < 2; ++h) {
        alignas(64) uint8_t idx[64];
        const int nch = 1 << l, half = nch / 2, npos = 64 >> l;
        for (int pos = 0; pos < npos; ++pos)
          for (int ch = 0; ch < nch; ++ch) {
            const int src_pos = h * npos + pos;
            int v = src_pos * half + (ch % half);
            if (ch >= half) v += 64;
            idx[pos * nch + ch] = static_cast<uint8_t>(v);
          }
        perm[l - 1][h] = _mm512_load_si512(idx);
      }
    // Input-side interleave scramble, simulated on channel ids.
    for (int u = 1; u <= 3; ++u) {
      __m512i z[8], o[8];
      for (int xb = 0; xb < 8; ++xb) {
        alignas(64) uint8_t ids[64];
        for (int c = 0; c < 64; ++c) ids[c] = static_cast<uint8_t>(c);
        z[xb] = _mm512_load_si512(ids);
      }
      interleave_rows(u, z, o);
      const int esz = 1 << u, per = 64 / esz;  // bytes per element, elements per register
      for (int m = 0; m < esz; ++m) {
        alignas(64) uint8_t b[64];
        _mm512_store_si512(b, o[m]);
        for (int e = 0; e < per; ++e) scramble[u][m * per + e] = b[e * esz];
      }
    }
    auto butterfly = [](int N, int b, int h, int width, __m512i* out) {
      alignas(64) uint8_t idx[64];
      for (int e = 0; e < N; ++e) {
        const bool eb = (e & b) != 0;
        int v;
        if (h == 0) v = !eb ? e : N + (e ^ b);
        else v = eb ? N + e : (e ^ b);
        for (int k = 0; k < width; ++k) {
          // index vectors are per element; widths 2/4/8 use epi16/32/64 permutes
          if (width == 2) reinterpret_cast<uint16_t*>(idx)[e] = static_cast<uint16_t>(v);
          if (width == 4) reinterpret_cast<uint32_t*>(idx)[e] = static_cast<uint32_t>(v);
          if (width == 8) reinterpret_cast<uint64_t*>(idx)[e] = static_cast<uint64_t>(v);
        }
      }
      *out = _mm512_load_si512(idx);
    };
    for (int st = 0; st < 4; ++st)
      for (int h = 0; h < 2; ++h) butterfly(16, 8 >> st, h, 4, &tr32[st][h]);
    for (int st = 0; st < 5; ++st)
      for (int h = 0; h < 2; ++h) butterfly(32, 16 >> st, h, 2, &tr16[st][h]);
    for (int st = 0; st < 3; ++st)
      for (int h = 0; h < 2; ++h) butterfly(8, 4 >> st, h, 8, &tr64[st][h]);
    alignas(64) uint8_t bt[64];
    for (int k = 0; k < 8; ++k)
      for (int i = 0; i < 8; ++i) bt[8 * k + i] = static_cast<uint8_t>(8 * (7 - i) + k);
    bytes8x8 = _mm512_load_si512(bt);
    for (int i = 0; i < 8; ++i)
      for (int q = 0; q < 8; ++q) bt[8 * i + q] = static_cast<uint8_t>(8 * q + i);
    bytes8x8t = _mm512_load_si512(bt);
  }

  // Input side: 2^u registers z[xb] (byte c = channel c of 8 pixels xb*8..) -> 2^u
  // registers of (R/8)-byte elements (bytes xb = 0 .. R/8-1 of one channel).
  static void interleave_rows(int u, const __m512i* z, __m512i* o) {
    if (u == 1) {
      o[0] = _mm512_unpacklo_epi8(z[0], z[1]);
      o[1] = _mm512_unpackhi_epi8(z[0], z[1]);
      return;
    }
    __m512i a[8];
    const int n = 1 << u;
    for (int i = 0; i < n; i += 2) {
      a[i] = _mm512_unpacklo_epi8(z[i], z[i + 1]);
      a[i + 1] = _mm512_unpackhi_epi8(z[i], z[i + 1]);
    }
    __m512i b[8];
    // stage 2: words; pair (a[i], a[i+2]) within groups of 4
    for (int g = 0; g < n; g += 4)
      for (int i = 0; i < 2; ++i) {
        b[g + 2 * i] = _mm512_unpacklo_epi16(a[g + i], a[g + i + 2]);
        b[g + 2 * i + 1] = _mm512_unpackhi_epi16(a[g + i], a[g + i + 2]);
      }
    if (u == 2) {
      for (int i = 0; i < 4; ++i) o[i] = b[i];
      return;
    }
    // stage 3: dwords; pair (b[i], b[i+4])
    for (int i = 0; i < 4; ++i) {
      o[2 * i] = _mm512_unpacklo_epi32(b[i], b[i + 4]);
      o[2 * i + 1] = _mm512_unpackhi_epi32(b[i], b[i + 4]);
    }
  }

  // Byte-interleave network: out[r] qwords = [p[0][k] .. p[7][k]] for k = kq[r][q].
  static void interleave(const __m512i p[8], __m512i out[8]) {
    const __m512i a0 = _mm512_unpacklo_epi8(p[0], p[1]), a1 = _mm512_unpackhi_epi8(p[0], p[1]);
    const __m512i a2 = _mm512_unpacklo_epi8(p[2], p[3]), a3 = _mm512_unpackhi_epi8(p[2], p[3]);
    const __m512i a4 = _mm512_unpacklo_epi8(p[4], p[5]), a5 = _mm512_unpackhi_epi8(p[4], p[5]);
    const __m512i a6 = _mm512_unpacklo_epi8(p[6], p[7]), a7 = _mm512_unpackhi_epi8(p[6], p[7]);
    const __m512i b0 = _mm512_unpacklo_epi16(a0, a2), b1 = _mm512_unpackhi_epi16(a0, a2);
    const __m512i b2 = _mm512_unpacklo_epi16(a1, a3), b3 = _mm512_unpackhi_epi16(a1, a3);
    const __m512i b4 = _mm512_unpacklo_epi16(a4, a6), b5 = _mm512_unpackhi_epi16(a4, a6);
    const __m512i b6 = _mm512_unpacklo_epi16(a5, a7), b7 = _mm512_unpackhi_epi16(a5, a7);
    out[0] = _mm512_unpacklo_epi32(b0, b4);
    out[1] = _mm512_unpackhi_epi32(b0, b4);
    out[2] = _mm512_unpacklo_epi32(b1, b5);
    out[3] = _mm512_unpackhi_epi32(b1, b5);
    out[4] = _mm512_unpacklo_epi32(b2, b6);
    out[5] = _mm512_unpackhi_epi32(b2, b6);
    out[6] = _mm512_unpacklo_epi32(b3, b7);
    out[7] = _mm512_unpackhi_epi32(b3, b7);
  }
};

const Tables& tables() {
  static const Tables t;
  return t;
}

// Counts of 512 pixels from 8 bit planes (weights 1 .. 128): out[r] byte 8q + i is the
// count of pixel 8 * kq[r][q] + i.
inline void planes_to_counts(const __m512i* planes, __m512i out[8]) {
  // Reversed plane order makes VGF2P8AFFINEQB an exact transpose (see docs).
  const __m512i rev[8] = {planes[7], planes[6], planes[5], planes[4],
                          planes[3], planes[2], planes[1], planes[0]};
  Tables::interleave(rev, out);
  const __m512i unit = _mm512_set1_epi64(static_cast<long long>(0x8040201008040201ull));
  for (int r = 0; r < 8; ++r) out[r] = _mm512_gf2p8affine_epi64_epi8(unit, out[r], 0);
}

#define SBNN_MAJ(a, b, c) _mm512_ternarylogic_epi64((a), (b), (c), 0xE8)
#define SBNN_XOR3(a, b, c) _mm512_ternarylogic_epi64((a), (b), (c), 0x96)

// Harley-Seal counting of n inputs ld(0) .. ld(n-1) into bit-sliced planes[0..NP):
// 8 inputs cost 7 full adders (2 VPTERNLOG each), the weight-8 carries ripple upwards.
template <int NP, class Load>
__attribute__((always_inline)) inline void hs_count(int n, Load&& ld, __m512i* planes) {
  __m512i ones = _mm512_setzero_si512(), twos = ones, fours = ones;
  __m512i hi[NP > 3 ? NP - 3 : 1];
  for (int k = 0; k < NP - 3; ++k) hi[k] = _mm512_setzero_si512();
  int i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m512i x0 = ld(i), x1 = ld(i + 1), x2 = ld(i + 2), x3 = ld(i + 3);
    const __m512i x4 = ld(i + 4), x5 = ld(i + 5), x6 = ld(i + 6), x7 = ld(i + 7);
    __m512i ta = SBNN_MAJ(ones, x0, x1);
    ones = SBNN_XOR3(ones, x0, x1);
    __m512i tb = SBNN_MAJ(ones, x2, x3);
    ones = SBNN_XOR3(ones, x2, x3);
    const __m512i fa = SBNN_MAJ(twos, ta, tb);
    twos = SBNN_XOR3(twos, ta, tb);
    ta = SBNN_MAJ(ones, x4, x5);
    ones = SBNN_XOR3(ones, x4, x5);
    tb = SBNN_MAJ(ones, x6, x7);
    ones = SBNN_XOR3(ones, x6, x7);
    const __m512i fb = SBNN_MAJ(twos, ta, tb);
    twos = SBNN_XOR3(twos, ta, tb);
    __m512i e = SBNN_MAJ(fours, fa, fb);
    fours = SBNN_XOR3(fours, fa, fb);
    for (int k = 0; k < NP - 3; ++k) {
      const __m512i c = _mm512_and_si512(hi[k], e);
      hi[k] = _mm512_xor_si512(hi[k], e);
      e = c;
    }
  }
  // Tail: pairs, then one.
  for (; i + 2 <= n; i += 2) {
    const __m512i x0 = ld(i), x1 = ld(i + 1);
    __m512i c = SBNN_MAJ(ones, x0, x1);
    ones = SBNN_XOR3(ones, x0, x1);
    __m512i t = _mm512_and_si512(twos, c);
    twos = _mm512_xor_si512(twos, c);
    c = _mm512_and_si512(fours, t);
    fours = _mm512_xor_si512(fours, t);
    for (int k = 0; k < NP - 3; ++k) {
      t = _mm512_and_si512(hi[k], c);
      hi[k] = _mm512_xor_si512(hi[k], c);
      c = t;
    }
  }
  if (i < n) {
    __m512i c = ld(i);
    __m512i t = _mm512_and_si512(ones, c);
    ones = _mm512_xor_si512(ones, c);
    c = _mm512_and_si512(twos, t);
    twos = _mm512_xor_si512(twos, t);
    t = _mm512_and_si512(fours, c);
    fours = _mm512_xor_si512(fours, c);
    for (int k = 0; k < NP - 3; ++k) {
      c = _mm512_and_si512(hi[k], t);
      hi[k] = _mm512_xor_si512(hi[k], t);
      t = c;
    }
  }
  planes[0] = ones;
  planes[1] = twos;
  planes[2] = fours;
  for (int k = 0; k < NP - 3; ++k) planes[3 + k] = hi[k];
}


// Square transpose of N x N elements of E bytes held in N registers (N = 64 / E).
template <int E>
inline void transpose_square(__m512i* x) {
  const Tables& t = tables();
  constexpr int N = 64 / E;
  constexpr int steps = E == 2 ? 5 : E == 4 ? 4 : 3;
  for (int st = 0; st < steps; ++st) {
    const int b = N >> (st + 1);
    const __m512i* idx = E == 2 ? t.tr16[st] : E == 4 ? t.tr32[st] : t.tr64[st];
    for (int r0 = 0; r0 < N; ++r0) {
      if (r0 & b) continue;
      const __m512i a = x[r0], c = x[r0 | b];
      if (E == 2) {
        x[r0] = _mm512_permutex2var_epi16(a, idx[0], c);
        x[r0 | b] = _mm512_permutex2var_epi16(a, idx[1], c);
      } else if (E == 4) {
        x[r0] = _mm512_permutex2var_epi32(a, idx[0], c);
        x[r0 | b] = _mm512_permutex2var_epi32(a, idx[1], c);
      } else {
        x[r0] = _mm512_permutex2var_epi64(a, idx[0], c);
        x[r0 | b] = _mm512_permutex2var_epi64(a, idx[1], c);
      }
    }
  }
}

// H row (see h_row) with 16 output columns per step.
inline void h_row_avx512(const BandCtx& x, int32_t* h) {
  const BConv2DShape& s = *x.s;
  const BitplanePlan& p = *x.p;
  const int ow = s.out_w;
  for (int ox = 0; ox < ow; ox += 16) {
    const __mmask16 m = ow - ox >= 16 ? static_cast<__mmask16>(0xffff)
                                      : static_cast<__mmask16>((1u << (ow - ox)) - 1u);
    __m512i acc = _mm512_setzero_si512();
    for (int fx = 0; fx < s.filter_w; ++fx)
      acc = _mm512_add_epi32(
          acc, _mm512_maskz_loadu_epi32(m, x.pc + p.phx[fx] * x.pc_stride + x.pc_margin + p.qx[fx] + ox));
    _mm512_mask_storeu_epi32(h + ox, m, acc);
  }
}

// Column phases (0 .. sw - 1) that some filter column reads, for any stride (sized by
// the stride, which may exceed 64).
struct UsedPhases {
  std::vector<uint8_t> used;
  UsedPhases(const BitplanePlan& p, int kw) : used(static_cast<size_t>(p.sw), 0) {
    for (int fx = 0; fx < kw; ++fx) used[static_cast<size_t>(p.phx[fx])] = 1;
  }
  bool operator[](int phi) const { return used[static_cast<size_t>(phi)] != 0; }
};

// Fused outputs (bconv2d_output.h) of the emit stages. Mode 0 writes dot; 1 bits
// (dot < limit, one 16-bit mask per block of 16 channels); 2 float (transform.h's
// to_float); 3 the fused q float (q_to_float, + the residual when there is one). The
// float operations are those of transform_avx512bw.cc, in the same order (this file is
// compiled with -ffp-contract=off), so the outputs are the reference transforms'.
enum EmitMode { kEmitDot = 0, kEmitBits = 1, kEmitFloat = 2, kEmitQFloat = 3 };

// Where and how a block row of fused output goes; pointers are at the first channel of
// the emit group (block k at + 16 k, pixel ox at + ox * stride).
struct OutArgs {
  uint8_t* bits = nullptr;   // kEmitBits: the group's first 16-bit mask of pixel 0
  size_t bstride = 0;        // bytes per pixel of the bitpacked output
  float* fl = nullptr;       // float output of pixel 0
  int C = 0;                 // output channels (floats per pixel)
  const float* res = nullptr;   // residual of pixel 0, or nullptr
  const int32_t* qd = nullptr;  // q's dot of pixel ox at qd[ox]
  const int32_t* lim = nullptr;
  const float *m = nullptr, *b = nullptr, *a = nullptr, *d = nullptr;
  int32_t K = 0, xmin = 0, xmax = 0;
  float lo = 0.0f, hi = 0.0f;
};

// Per-block registers of a fused output.
template <int MODE>
struct OutRegs {
  __m512i lim, K, xmin, xmax;
  __m512 m, b, a, d, lo, hi;
  void load(const OutArgs& o, int k, __mmask16 mk) {
    if (MODE == kEmitBits) lim = _mm512_maskz_loadu_epi32(mk, o.lim + 16 * k);
    if (MODE == kEmitFloat) {
      m = _mm512_maskz_loadu_ps(mk, o.m + 16 * k);
      b = _mm512_maskz_loadu_ps(mk, o.b + 16 * k);
      K = _mm512_set1_epi32(o.K);
      xmin = _mm512_set1_epi32(o.xmin);
      xmax = _mm512_set1_epi32(o.xmax);
    }
    if (MODE == kEmitQFloat) {
      a = _mm512_maskz_loadu_ps(mk, o.a + 16 * k);
      d = _mm512_maskz_loadu_ps(mk, o.d + 16 * k);
      b = _mm512_maskz_loadu_ps(mk, o.b + 16 * k);
      lo = _mm512_set1_ps(o.lo);
      hi = _mm512_set1_ps(o.hi);
    }
  }
  // Float output of the 16 dot values v (fq: q's dot of the pixel, kEmitQFloat).
  __m512 value(__m512i v, __m512 fq) const {
    if (MODE == kEmitFloat) {
      __m512i x = _mm512_sub_epi32(K, v);
      x = _mm512_min_epi32(xmax, _mm512_max_epi32(xmin, x));
      return _mm512_add_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(x), m), b);
    }
    const __m512 t = _mm512_mul_ps(_mm512_cvtepi32_ps(v), a);
    const __m512 u = _mm512_mul_ps(fq, d);
    __m512 y = _mm512_add_ps(_mm512_add_ps(t, u), b);
    y = _mm512_max_ps(lo, y);  // lo > y ? lo : y  (NaN y passes)
    return _mm512_min_ps(hi, y);
  }
};

// Stores block k's output of one pixel (fl/res at the pixel's first channel of block 0).
template <int MODE>
__attribute__((always_inline)) inline void store_float(const OutRegs<MODE>& R, __m512i v, __m512 fq,
                                                       float* fl, const float* res, int k,
                                                       __mmask16 mk, bool full) {
  __m512 y = R.value(v, fq);
  if (res != nullptr)
    y = _mm512_add_ps(y, full ? _mm512_loadu_ps(res + 16 * k) : _mm512_maskz_loadu_ps(mk, res + 16 * k));
  if (full) _mm512_storeu_ps(fl + 16 * k, y);
  else _mm512_mask_storeu_ps(fl + 16 * k, mk, y);
}

inline int emit_mode(const BandCtx& x) {
  if (x.out == nullptr) return kEmitDot;
  switch (x.out->kind) {
    case BConv2DOutputKind::kBits: return kEmitBits;
    case BConv2DOutputKind::kFloat: return kEmitFloat;
    case BConv2DOutputKind::kQFloat: return kEmitQFloat;
    case BConv2DOutputKind::kQBits: break;  // (not native here: Avx512Impl::native_output)
  }
  return kEmitDot;
}

// The fused output of rows of the band starting at channel c0 (output row oy, band row r).
inline void out_args_at(const BandCtx& x, int oy, int r, int c0, OutArgs* a) {
  const BConv2DOutput& o = *x.out;
  const BConv2DShape& s = *x.s;
  const size_t px = (x.b * s.out_h + oy) * static_cast<size_t>(s.out_w);
  a->C = o.channels;
  const size_t words = static_cast<size_t>((o.channels + 31) / 32);
  a->bstride = 4 * words;
  a->bits = static_cast<uint8_t*>(o.out) + px * a->bstride + c0 / 8;
  a->fl = static_cast<float*>(o.out) + px * o.channels + c0;
  a->res = o.kind == BConv2DOutputKind::kQFloat && o.q.add != nullptr ? o.q.add + px * o.channels + c0 : nullptr;
  a->qd = x.qd != nullptr ? x.qd + static_cast<size_t>(r) * s.out_w : nullptr;
  a->lim = o.limit != nullptr ? o.limit + c0 : nullptr;
  a->m = o.t.m != nullptr ? o.t.m + c0 : nullptr;
  a->b = o.kind == BConv2DOutputKind::kQFloat ? o.q.b + c0 : o.t.b != nullptr ? o.t.b + c0 : nullptr;
  a->a = o.q.a != nullptr ? o.q.a + c0 : nullptr;
  a->d = o.q.d != nullptr ? o.q.d + c0 : nullptr;
  a->K = o.t.K;
  a->xmin = o.t.x_min;
  a->xmax = o.t.x_max;
  a->lo = o.q.lo;
  a->hi = o.q.hi;
}
}  // namespace
}  // namespace internal
}  // namespace sbnn
