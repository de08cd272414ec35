// Direct strategy of the AVX-512 bit-plane kernel (sparse_bitplane_avx512.cc), for
// outputs wider than 8 pixels. Per block of 16 output channels:
//   1. carry-save counting: for each connection one unaligned 64-byte load from the
//      transposed input Y; 8 inputs are reduced by 7 full adders (2 VPTERNLOG each) into
//      ones/twos/fours, the weight-8 carries ripple into higher planes;
//   2. planes -> count bytes: a byte-interleave network (24 VPUNPCK) puts the 8 plane
//      bytes of 8 pixels into one qword, VGF2P8AFFINEQB transposes each 8x8 bit block
//      (one count byte per pixel);
//   3. a 4-level VPERMT2B network transposes 16 channels x 64 pixels of count bytes into
//      pixel-major order, VPMOVZXBD widens 16 channels of one pixel, and one VPDPWSSD
//      (VNNI) computes base + 4u*C - 2u*B(p) from the pair (C, B(p)) before the store.
// build_band_fast and process_channels are long loop nests on purpose: their state
// (vectors, masks, offsets) lives in registers across the whole band.
// Included only by sparse_bitplane_avx512.cc (internal linkage, that file's flags).
#pragma once

#include <algorithm>
#include <cstring>

#include "sparse_bitplane_avx512_common.h"

namespace sbnn {
namespace internal {
namespace {

// 16 x 64 bytes [channel][position] (in[j] = channel j) -> pixel order: chunk r's
// positions 8q .. 8q+7 are pixels 8 * kq[r][q] .. + 7 of the vector, so out + 16 * pixel
// holds that pixel's 16 bytes.
inline void transpose16x64_pixels(const __m512i* in, uint8_t* out, const uint8_t* kq_r) {
  const Tables& t = tables();
  __m512i a[16], b[16];
#define SBNN_LEVEL(L, X, Y)                                                      \
  for (int pb = 0; pb < (1 << L); ++pb)                                          \
    for (int cg = 0; cg < (8 >> L); ++cg) {                                      \
      const __m512i u = X[pb * (16 >> L) + 2 * cg], w = X[pb * (16 >> L) + 2 * cg + 1]; \
      Y[(2 * pb) * (8 >> L) + cg] = _mm512_permutex2var_epi8(u, t.perm[L][0], w);   \
      Y[(2 * pb + 1) * (8 >> L) + cg] = _mm512_permutex2var_epi8(u, t.perm[L][1], w); \
    }
  SBNN_LEVEL(0, in, a)
  SBNN_LEVEL(1, a, b)
  SBNN_LEVEL(2, b, a)
  SBNN_LEVEL(3, a, b)
#undef SBNN_LEVEL
  for (int i = 0; i < 16; ++i)
    _mm512_store_si512(out + 16 * (8 * kq_r[i >> 1] + 4 * (i & 1)), b[i]);
}
// Two independent Harley-Seal chains over the same n inputs (two vectors of a band):
// ld(i, &a, &b) yields input i of both; twice the instruction-level parallelism.
template <int NP, class Load>
__attribute__((always_inline)) inline void hs_count2(int n, Load&& ld, __m512i* pa, __m512i* pb) {
  __m512i o0 = _mm512_setzero_si512(), t0 = o0, f0 = o0, o1 = o0, t1 = o0, f1 = o0;
  __m512i h0[NP > 3 ? NP - 3 : 1], h1[NP > 3 ? NP - 3 : 1];
  for (int k = 0; k < NP - 3; ++k) h0[k] = h1[k] = _mm512_setzero_si512();
  int i = 0;
#define SBNN_CSA8(ones, twos, fours, hi, x)                         \
  {                                                                 \
    __m512i ta = SBNN_MAJ(ones, x[0], x[1]);                        \
    ones = SBNN_XOR3(ones, x[0], x[1]);                             \
    __m512i tb = SBNN_MAJ(ones, x[2], x[3]);                        \
    ones = SBNN_XOR3(ones, x[2], x[3]);                             \
    const __m512i fa = SBNN_MAJ(twos, ta, tb);                      \
    twos = SBNN_XOR3(twos, ta, tb);                                 \
    ta = SBNN_MAJ(ones, x[4], x[5]);                                \
    ones = SBNN_XOR3(ones, x[4], x[5]);                             \
    tb = SBNN_MAJ(ones, x[6], x[7]);                                \
    ones = SBNN_XOR3(ones, x[6], x[7]);                             \
    const __m512i fb = SBNN_MAJ(twos, ta, tb);                      \
    twos = SBNN_XOR3(twos, ta, tb);                                 \
    __m512i e = SBNN_MAJ(fours, fa, fb);                            \
    fours = SBNN_XOR3(fours, fa, fb);                               \
    for (int k = 0; k < NP - 3; ++k) {                              \
      const __m512i c = _mm512_and_si512(hi[k], e);                 \
      hi[k] = _mm512_xor_si512(hi[k], e);                           \
      e = c;                                                        \
    }                                                               \
  }
  for (; i + 8 <= n; i += 8) {
    __m512i xa[8], xb[8];
    for (int k = 0; k < 8; ++k) ld(i + k, &xa[k], &xb[k]);
    SBNN_CSA8(o0, t0, f0, h0, xa)
    SBNN_CSA8(o1, t1, f1, h1, xb)
  }
#undef SBNN_CSA8
  // Tail: one input at a time into both chains (ripple through all planes).
  for (; i < n; ++i) {
    __m512i a, b;
    ld(i, &a, &b);
    __m512i* pl0[3] = {&o0, &t0, &f0};
    __m512i* pl1[3] = {&o1, &t1, &f1};
    for (int k = 0; k < 3; ++k) {
      const __m512i ca = _mm512_and_si512(*pl0[k], a), cb = _mm512_and_si512(*pl1[k], b);
      *pl0[k] = _mm512_xor_si512(*pl0[k], a);
      *pl1[k] = _mm512_xor_si512(*pl1[k], b);
      a = ca;
      b = cb;
    }
    for (int k = 0; k < NP - 3; ++k) {
      const __m512i ca = _mm512_and_si512(h0[k], a), cb = _mm512_and_si512(h1[k], b);
      h0[k] = _mm512_xor_si512(h0[k], a);
      h1[k] = _mm512_xor_si512(h1[k], b);
      a = ca;
      b = cb;
    }
  }
  pa[0] = o0, pa[1] = t0, pa[2] = f0;
  pb[0] = o1, pb[1] = t1, pb[2] = f1;
  for (int k = 0; k < NP - 3; ++k) pa[3 + k] = h0[k], pb[3 + k] = h1[k];
}

// Direct strategy, two vectors of the band at once (y and y + 64).
template <int NP>
void count_planes2(const uint8_t* y, const uint32_t* off, int n, __m512i* pa, __m512i* pb) {
  hs_count2<NP>(
      n,
      [&](int i, __m512i* a, __m512i* b) __attribute__((always_inline)) {
        *a = _mm512_loadu_si512(y + off[i]);
        *b = _mm512_loadu_si512(y + off[i] + 64);
      },
      pa, pb);
}
typedef void (*Count2Fn)(const uint8_t*, const uint32_t*, int, __m512i*, __m512i*);
const Count2Fn kCount2[] = {
    &count_planes2<3>,  &count_planes2<4>,  &count_planes2<5>,  &count_planes2<6>,
    &count_planes2<7>,  &count_planes2<8>,  &count_planes2<9>,  &count_planes2<10>,
    &count_planes2<11>, &count_planes2<12>, &count_planes2<13>, &count_planes2<14>,
    &count_planes2<15>, &count_planes2<16>};

// Direct strategy: the input i is the 64 bytes at y + off[i].
template <int NP>
void count_planes(const uint8_t* y, const uint32_t* off, int n, __m512i* planes) {
  hs_count<NP>(
      n, [&](int i) __attribute__((always_inline)) { return _mm512_loadu_si512(y + off[i]); }, planes);
}

typedef void (*CountFn)(const uint8_t*, const uint32_t*, int, __m512i*);
const CountFn kCount[] = {
    &count_planes<3>,  &count_planes<4>,  &count_planes<5>,  &count_planes<6>,
    &count_planes<7>,  &count_planes<8>,  &count_planes<9>,  &count_planes<10>,
    &count_planes<11>, &count_planes<12>, &count_planes<13>, &count_planes<14>,
    &count_planes<15>, &count_planes<16>};
static_assert(sizeof(kCount) / sizeof(kCount[0]) == kMaxPlanes - 2, "one per plane count");

template <int E>
inline __m512i shift_elements(__m512i v, int q) {
  const __m128i n = _mm_cvtsi32_si128(q >= 0 ? q : -q);
  if (E == 2) return q >= 0 ? _mm512_srl_epi16(v, n) : _mm512_sll_epi16(v, n);
  if (E == 4) return q >= 0 ? _mm512_srl_epi32(v, n) : _mm512_sll_epi32(v, n);
  return q >= 0 ? _mm512_srl_epi64(v, n) : _mm512_sll_epi64(v, n);
}

template <int E>
inline void mask_store_rows(uint8_t* dst, uint64_t rowmask, __m512i v) {
  if (E == 2) _mm512_mask_storeu_epi16(dst, static_cast<__mmask32>(rowmask), v);
  else if (E == 4) _mm512_mask_storeu_epi32(dst, static_cast<__mmask16>(rowmask), v);
  else _mm512_mask_storeu_epi64(dst, static_cast<__mmask8>(rowmask), v);
}

// Bytes of the row buffer RC of the fast Y build: [sw][rows_cap][chunks][R/8] registers.
inline size_t rc_bytes(const BitplanePlan& p, int cg) {
  if (p.R != 16 && p.R != 32 && p.R != 64) return 0;
  const int N = 512 / p.R;
  const size_t rows_cap = static_cast<size_t>(p.rows_pp + N - 1) / N * N;
  return static_cast<size_t>(p.sw) * rows_cap * ((cg + 63) / 64) * (p.R / 8) * 64;
}

// Output of one run of pixels [x0, x1) of one stored row (one border class) for NB
// blocks of 16 channels: dot = base + 4u * C - 2u * B(p), one VPDPWSSD per 16 outputs.
struct EmitArgs {
  const uint8_t* tr;        // count bytes of pixel ox of the row at tr + trk[k] + 16 * ox
                            // (block k; high bytes: + kSuper * 512 * 16)
  const size_t* trk;        // [NB] offsets of the blocks
  const int32_t* bb;        // B(p) << 16 of pixel ox of the row at bb[ox]
  int32_t* dst;             // dot of pixel ox, channel s0 at dst + ox * O
  const int32_t* base_row;  // base of class (vc, hc) at base_row + hc * O
  int O, x0, x1, hc;
  const __m512i* W;
  const __mmask16* mask;
  const OutArgs* out;       // fused output (modes 1-3)
};
typedef void (*EmitFn)(const EmitArgs&);

template <int NB, bool TWO, int MODE>
void emit_run(const EmitArgs& e) {
  __m512i base[NB], W[NB];
  __mmask16 mask[NB];
  size_t trk[NB];
  OutRegs<MODE> R[NB];
  const int O = e.O;
  const int32_t* b = e.base_row + static_cast<size_t>(e.hc) * O;
  for (int k = 0; k < NB; ++k) {
    mask[k] = e.mask[k];
    base[k] = _mm512_maskz_loadu_epi32(mask[k], b + 16 * k);
    W[k] = e.W[k];
    trk[k] = e.trk[k];
    if (MODE != kEmitDot) R[k].load(*e.out, k, mask[k]);
  }
  const bool full = mask[NB - 1] == 0xffff;  // (only the last block can be partial)
  int32_t* __restrict dst = MODE == kEmitDot ? e.dst + static_cast<size_t>(e.x0) * O : nullptr;
  const uint8_t* __restrict tr = e.tr + 16 * e.x0;
  const int32_t* __restrict bb = e.bb + e.x0;
  const int n = e.x1 - e.x0;
  constexpr size_t kHi = kSuper * 512 * 16;
  const OutArgs* o = e.out;
  for (int i = 0; i < n; ++i, tr += 16) {
    const __m512i bc = _mm512_set1_epi32(bb[i]);
    const int ox = e.x0 + i;
    __m512 fq = _mm512_setzero_ps();
    if (MODE == kEmitQFloat) fq = _mm512_set1_ps(static_cast<float>(o->qd[ox]));
    float* fl = MODE >= kEmitFloat ? o->fl + static_cast<size_t>(ox) * o->C : nullptr;
    const float* res = MODE == kEmitQFloat && o->res != nullptr ? o->res + static_cast<size_t>(ox) * o->C : nullptr;
    uint64_t bits = 0;
#define SBNN_EMIT(k)                                                                          \
    if ((k) < NB) {                                                                           \
      constexpr int kk = (k) < NB ? (k) : 0;                                                  \
      const uint8_t* t = tr + trk[kk];                                                        \
      __m512i cnt = _mm512_cvtepu8_epi32(_mm_load_si128(reinterpret_cast<const __m128i*>(t))); \
      if (TWO)                                                                                \
        cnt = _mm512_or_si512(cnt, _mm512_slli_epi32(_mm512_cvtepu8_epi32(_mm_load_si128(     \
                                                         reinterpret_cast<const __m128i*>(t + kHi))), \
                                                     8));                                     \
      const __m512i d = _mm512_dpwssd_epi32(base[kk], _mm512_or_si512(cnt, bc), W[kk]);       \
      const bool fk = kk < NB - 1 || full;                                                    \
      if (MODE == kEmitDot) {                                                                 \
        if (fk) _mm512_storeu_si512(dst + 16 * kk, d);                                        \
        else _mm512_mask_storeu_epi32(dst + 16 * kk, mask[kk], d);                            \
      } else if (MODE == kEmitBits) {                                                         \
        bits |= static_cast<uint64_t>(_mm512_mask_cmplt_epi32_mask(mask[kk], d, R[kk].lim)) << (16 * kk); \
      } else {                                                                                \
        store_float<MODE>(R[kk], d, fq, fl, res, kk, mask[kk], fk);                           \
      }                                                                                       \
    }
    SBNN_EMIT(0)
    SBNN_EMIT(1)
    SBNN_EMIT(2)
    SBNN_EMIT(3)
#undef SBNN_EMIT
    if (MODE == kEmitDot) dst += O;
    if (MODE == kEmitBits) std::memcpy(o->bits + static_cast<size_t>(ox) * o->bstride, &bits, 2 * NB);
  }
}

#define SBNN_EMIT_MODES(NB, TWO) \
  &emit_run<NB, TWO, kEmitDot>, &emit_run<NB, TWO, kEmitBits>, &emit_run<NB, TWO, kEmitFloat>, \
      &emit_run<NB, TWO, kEmitQFloat>
// [(nb - 1) * 8 + two * 4 + mode]
const EmitFn kEmit[32] = {SBNN_EMIT_MODES(1, false), SBNN_EMIT_MODES(1, true),
                          SBNN_EMIT_MODES(2, false), SBNN_EMIT_MODES(2, true),
                          SBNN_EMIT_MODES(3, false), SBNN_EMIT_MODES(3, true),
                          SBNN_EMIT_MODES(4, false), SBNN_EMIT_MODES(4, true)};
#undef SBNN_EMIT_MODES

// G channels per vector (bands of <= 512 / G bits): vector j's segment s holds channel
// o0 + 16 s + j, so that the 16 vectors of a unit cover 16 G channels in blocks of 16.
template <int NP, int G>
void count_segments(const uint8_t* y, const uint8_t* zero, const uint32_t* const* offs, const int* ns,
                    __m512i* planes) {
  int n = 0;
  for (int k = 0; k < G; ++k) n = std::max(n, ns[k]);
  hs_count<NP>(
      n,
      [&](int i) __attribute__((always_inline)) {
        const uint8_t* q[G];
        for (int k = 0; k < G; ++k) q[k] = i < ns[k] ? y + offs[k][i] : zero;
        if (G == 2) {
          return _mm512_inserti64x4(
              _mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(q[0]))),
              _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q[1 % G])), 1);
        } else if (G == 4) {
          __m512i v = _mm512_castsi128_si512(_mm_loadu_si128(reinterpret_cast<const __m128i*>(q[0])));
          v = _mm512_inserti32x4(v, _mm_loadu_si128(reinterpret_cast<const __m128i*>(q[1 % G])), 1);
          v = _mm512_inserti32x4(v, _mm_loadu_si128(reinterpret_cast<const __m128i*>(q[2 % G])), 2);
          return _mm512_inserti32x4(v, _mm_loadu_si128(reinterpret_cast<const __m128i*>(q[3 % G])), 3);
        } else {
          __m128i w[4];
          for (int k = 0; k < 4; ++k)
            w[k] = _mm_unpacklo_epi64(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(q[(2 * k) % G])),
                                      _mm_loadl_epi64(reinterpret_cast<const __m128i*>(q[(2 * k + 1) % G])));
          __m512i v = _mm512_castsi128_si512(w[0]);
          v = _mm512_inserti32x4(v, w[1], 1);
          v = _mm512_inserti32x4(v, w[2], 2);
          return _mm512_inserti32x4(v, w[3], 3);
        }
      },
      planes);
}
typedef void (*SegFn)(const uint8_t*, const uint8_t*, const uint32_t* const*, const int*, __m512i*);
#define SBNN_SEG_TABLE(G)                                                                        \
  {&count_segments<3, G>,  &count_segments<4, G>,  &count_segments<5, G>,  &count_segments<6, G>, \
   &count_segments<7, G>,  &count_segments<8, G>,  &count_segments<9, G>,  &count_segments<10, G>, \
   &count_segments<11, G>, &count_segments<12, G>, &count_segments<13, G>, &count_segments<14, G>, \
   &count_segments<15, G>, &count_segments<16, G>}
const SegFn kSeg[3][kMaxPlanes - 2] = {SBNN_SEG_TABLE(2), SBNN_SEG_TABLE(4), SBNN_SEG_TABLE(8)};
#undef SBNN_SEG_TABLE

struct Avx512Direct : BitplanePortable<8> {
  // Work memory of the direct strategy (see process_channels).
  static size_t work_bytes(const BitplanePlan& p, const SparseFilter& f) {
    const size_t lq = (static_cast<size_t>(p.nb) * p.R + 63) / 64;
    const size_t nv = (lq + 7) / 8;
    const size_t planes = kSuper * 16 * nv * kMaxPlanes * 64;  // [kSuper][16][nv][planes] ZMM
    const size_t bb = sizeof(int32_t) * (nv * 512 + 64);
    const size_t tr = static_cast<size_t>(2 * kSuper) * 512 * 16;  // count bytes, pixel order
    return std::max(planes + bb + tr + 64, rc_bytes(p, f.cg) + 64);
  }

  // Y and B(p) of a band: the register-transposing build for R = 16, 32 or 64 when the
  // groups are word-aligned and a phase row fits a stored row, else the portable one.
  static void build_band(BandCtx& x) {
    const BConv2DShape& s = *x.s;
    const BitplanePlan& p = *x.p;
    const int nxp = (s.in_w + p.sw - 1) / p.sw;
    const bool fast = (s.groups == 1 || x.f->cg % 32 == 0) &&
                      (p.R == 16 || p.R == 32 || p.R == 64) && nxp <= p.R;
    if (!fast) {
      BitplanePortable<8>::build_band(x);
      return;
    }
    if (p.R == 16) build_band_fast<2>(x);
    else if (p.R == 32) build_band_fast<4>(x);
    else build_band_fast<8>(x);
    band_bits(x);
  }

  // E = bytes per stored row (R / 8): rows are E-byte elements, N = 64 / E per register.
  template <int E>
  static void build_band_fast(BandCtx& x) {
    const BConv2DShape& s = *x.s;
    const BitplanePlan& p = *x.p;
    const Tables& tab = tables();
    constexpr int N = 64 / E, U = E == 2 ? 1 : E == 4 ? 2 : 3;
    const int cg = x.f->cg, fw = s.filter_words, sw = p.sw;
    const int nch = (cg + 63) / 64;                 // 64-channel chunks
    const int gbytes = fw * 4;                      // bytes of the group per pixel
    const size_t pstride = static_cast<size_t>(s.in_words) * 4;  // bytes per pixel
    const int rows = x.nbr + p.qmax - p.qmin;
    const int rows_cap = (p.rows_pp + N - 1) / N * N;
    __m512i* RC = reinterpret_cast<__m512i*>(x.work);
    auto rc = [&](int phi, int jj, int ch) {
      return RC + ((static_cast<size_t>(phi) * rows_cap + jj) * nch + ch) * E;
    };
    const __m512i unit = _mm512_set1_epi64(static_cast<long long>(0x8040201008040201ull));
    // Chunk masks: the group's real channels.
    auto chunk_mask = [&](int ch) {
      const int bits = std::min(64, cg - 64 * ch);
      return bits >= 64 ? ~0ull : ((1ull << bits) - 1);
    };
    const UsedPhases phi_used(p, s.filter_w);
    const uint64_t outmask1 = s.out_w >= 64 ? ~0ull : ((1ull << s.out_w) - 1);
    const __m512i outmask = E == 2   ? _mm512_set1_epi16(static_cast<short>(outmask1))
                            : E == 4 ? _mm512_set1_epi32(static_cast<int>(outmask1))
                                     : _mm512_set1_epi64(static_cast<long long>(outmask1));
    const bool need_mask = s.out_w < 8 * E;
    const __m512i lane = _mm512_set_epi64(7, 6, 5, 4, 3, 2, 1, 0);

    for (int ph = 0; ph < p.sh; ++ph) {
      if (!phase_used(p, s.filter_h, s.filter_w, ph)) continue;
      SBNN_PROF_BEGIN(ta);
      // (a) transpose the band's input rows of this phase into RC.
      for (int jj = 0; jj < rows; ++jj) {
        const int j = x.oy0 + p.qmin + jj;
        const long iy = static_cast<long>(j) * p.sh + ph;
        int32_t* h = x.H + (static_cast<size_t>(ph) * p.rows_pp + jj) * s.out_w;
        if (iy < 0 || iy >= s.in_h) {
          for (int phi = 0; phi < sw; ++phi)
            if (phi_used[phi])
              for (int ch = 0; ch < nch; ++ch)
                for (int m = 0; m < E; ++m) rc(phi, jj, ch)[m] = _mm512_setzero_si512();
          for (int ox = 0; ox < s.out_w; ++ox) h[ox] = 0;
          continue;
        }
        const uint8_t* row = reinterpret_cast<const uint8_t*>(x.input) +
                             (x.b * s.in_h + iy) * static_cast<size_t>(s.in_w) * pstride +
                             static_cast<size_t>(x.g) * gbytes;
        for (int phi = 0; phi < sw && phi < s.in_w; ++phi) {
          const int n_px = (s.in_w - phi + sw - 1) / sw;
          const uint8_t* base = row + static_cast<size_t>(phi) * pstride;
          const size_t step = pstride * sw;
          __m512i pcv[8];
          for (int xb = 0; xb < E; ++xb) pcv[xb] = _mm512_setzero_si512();
          for (int ch = 0; ch < nch; ++ch) {
            const __m512i cm = _mm512_set1_epi64(static_cast<long long>(chunk_mask(ch)));
            const bool full8 = 8 * ch + 8 <= gbytes;
            __m512i z[8];
            for (int xb = 0; xb < E; ++xb) {
              const int j0 = 8 * xb;
              const int nv = std::max(0, std::min(8, n_px - j0));
              const __mmask8 lm = static_cast<__mmask8>((1u << nv) - 1u);
              __m512i v;
              if (nv == 0) {
                v = _mm512_setzero_si512();
              } else {
                const uint8_t* b0 = base + j0 * step + 8 * ch;
                if (full8 && step == 8) {
                  v = _mm512_maskz_loadu_epi64(lm, b0);
                } else {
                  const __m512i vidx = _mm512_mul_epu32(lane, _mm512_set1_epi64(static_cast<long long>(step)));
                  if (full8) {
                    v = _mm512_mask_i64gather_epi64(_mm512_setzero_si512(), lm, vidx, b0, 1);
                  } else {
                    v = _mm512_cvtepu32_epi64(
                        _mm512_mask_i64gather_epi32(_mm256_setzero_si256(), lm, vidx, b0, 1));
                  }
                }
                v = _mm512_and_si512(v, cm);
              }
              pcv[xb] = _mm512_add_epi64(pcv[xb], _mm512_popcnt_epi64(v));
              z[xb] = _mm512_gf2p8affine_epi64_epi8(unit, _mm512_permutexvar_epi8(tab.bytes8x8, v), 0);
            }
            __m512i o[8];
            Tables::interleave_rows(U, z, o);
            __m512i* dst = rc(phi, jj, ch);
            for (int m = 0; m < E; ++m) dst[m] = o[m];
          }
          // (VPMOVQD to memory is slow on some cores: narrow in registers, then store;
          // lanes past the row are zero and the pc row has room for R entries.)
          int32_t* pc = x.pc + phi * x.pc_stride + x.pc_margin;
          for (int xb = 0; xb < E; ++xb)
            _mm256_storeu_si256(reinterpret_cast<__m256i*>(pc + 8 * xb), _mm512_cvtepi64_epi32(pcv[xb]));
        }
        h_row_avx512(x, h);
      }
      SBNN_PROF_END(ta, 6);
      SBNN_PROF_BEGIN(tb);
      // (b) RC [row][channel] -> Y [fx][channel][row], shifted per filter column.
      const size_t plane_bytes = p.plane_bytes;
      for (int phi = 0; phi < sw; ++phi) {
        if (!phi_used[phi]) continue;
        int nfx = 0, fq[16];
        size_t fbase[16];
        for (int fx = 0; fx < s.filter_w && nfx < 16; ++fx)
          if (p.phx[fx] == phi) {
            fq[nfx] = p.qx[fx];
            fbase[nfx++] = static_cast<size_t>(fx) * cg * plane_bytes;
          }
        for (int fx = 0, k = 0; fx < s.filter_w; ++fx)  // (more than 16 columns: rare)
          if (p.phx[fx] == phi && k++ >= 16) {
            BitplanePortable<8>::build_band(x);
            return;
          }
        for (int ch = 0; ch < nch; ++ch)
          for (int m = 0; m < E; ++m)
            for (int jj0 = 0; jj0 < rows; jj0 += N) {
              __m512i t[N];
              for (int i = 0; i < N; ++i) t[i] = rc(phi, jj0 + i, ch)[m];
              transpose_square<E>(t);
              const int nvalid = std::min(N, rows - jj0);
              const uint64_t rowmask = nvalid >= 64 ? ~0ull : ((1ull << nvalid) - 1);
              uint8_t* ybase = x.Y + (static_cast<size_t>(ph) * p.rows_pp + jj0) * p.rb;
              const uint8_t* scr = tab.scramble[U] + m * N;
              for (int e = 0; e < N; ++e) {
                const int c = 64 * ch + scr[e];
                if (c >= cg) continue;
                uint8_t* yc = ybase + static_cast<size_t>(c) * plane_bytes;
                for (int k = 0; k < nfx; ++k) {
                  __m512i v = fq[k] == 0 ? t[e] : shift_elements<E>(t[e], fq[k]);
                  if (need_mask) v = _mm512_and_si512(v, outmask);
                  mask_store_rows<E>(yc + fbase[k], rowmask, v);
                }
              }
            }
      }
      SBNN_PROF_END(tb, 7);
    }
  }

  // Count planes of channels [o0, o0 + 16) (absent channels: zero planes) into
  // PL[j][v][b] (ZMM), j < 16, v < nv, b < round_up(np, 8).
  static void count_block(const BandCtx& x, int o0, int nch, int G, int nv, int np, __m512i* PL) {
    const BitplanePlan& p = *x.p;
    const SparseFilter& f = *x.f;
    const uint8_t* Y = x.Y;
    const int npad = 8 * ((np + 7) / 8);
    if (G == 1 && nv == 2) {
      const Count2Fn count2 = kCount2[np - 3];
      for (int j = 0; j < 16; ++j) {
        __m512i* pa = PL + (j * nv) * npad;
        __m512i* pb = pa + npad;
        int b = 0;
        if (j < nch) {
          const int o = o0 + j;
          count2(Y, p.off + f.conn_begin[o], static_cast<int>(f.conn_begin[o + 1] - f.conn_begin[o]), pa, pb);
          b = np;
        }
        for (; b < npad; ++b) pa[b] = pb[b] = _mm512_setzero_si512();
      }
      return;
    }
    if (G == 1) {
      const CountFn count = kCount[np - 3];
      for (int j = 0; j < 16; ++j)
        for (int v = 0; v < nv; ++v) {
          __m512i* pl = PL + (j * nv + v) * npad;
          int b = 0;
          if (j < nch) {
            const int o = o0 + j;
            count(Y + static_cast<size_t>(v) * 64, p.off + f.conn_begin[o],
                  static_cast<int>(f.conn_begin[o + 1] - f.conn_begin[o]), pl);
            b = np;
          }
          for (; b < npad; ++b) pl[b] = _mm512_setzero_si512();
        }
      return;
    }
    // G channels per vector: vector j's segment s holds channel o0 + 16 s + j.
    const uint8_t* zero = Y + *p.zero_off;
    const SegFn count = kSeg[G == 2 ? 0 : G == 4 ? 1 : 2][np - 3];
    for (int j = 0; j < 16; ++j) {
      __m512i* pl = PL + (j * nv) * npad;
      const uint32_t* offs[8];
      int ns[8];
      for (int sg = 0; sg < G; ++sg) {
        const int c = 16 * sg + j, o = o0 + c;
        ns[sg] = c < nch ? static_cast<int>(f.conn_begin[o + 1] - f.conn_begin[o]) : 0;
        offs[sg] = c < nch ? p.off + f.conn_begin[o] : p.off;
      }
      count(Y, zero, offs, ns, pl);
      for (int b = np; b < npad; ++b) pl[b] = _mm512_setzero_si512();
    }
  }

  // ---- kBits from the count planes (sparse_bitplane_bits.h; bits_of_channel is the
  // reference these registers follow). A register holds G channels (segments of 8 / G
  // qwords); the thresholds are per qword lane.

  // One band array (W plane, class mask, valid) as the register of vector v: the words
  // of the vector, or for G > 1 the band's words repeated in every segment.
  static __m512i band_vec(const uint64_t* a, int v, int G) {
    if (G == 1) return _mm512_loadu_si512(a + 8 * v);
    const int seg = 8 / G;
    const __m512i idx = _mm512_set_epi64(7 % seg, 6 % seg, 5 % seg, 4 % seg, 3 % seg, 2 % seg, 1 % seg, 0);
    return _mm512_permutexvar_epi64(idx, _mm512_loadu_si512(a));
  }

  // Output bits of the register of G channels o[s] (o[s] < 0: absent, bits 0) of vector v
  // from its count planes pl (npad planes, zero past the counted ones); Mz[i]: the pixels
  // of the band's other class bb.other[cls[i]] present in the vector. The thresholds are
  // per qword lane (KB; DV[i]: where class i's threshold differs), tested plane by plane.
  static __m512i bits_register(const BitsThresholds& t, const BitsBand& bb, const int* o, int G,
                               const __m512i* pl, int npad, const __m512i* Wz, const __m512i* Mz,
                               const int* cls, int ncls_v, __m512i valid) {
    const int seg = 8 / G;
    const unsigned segm = (1u << seg) - 1u;
    __m512i KB = _mm512_setzero_si512(), DV[kBitsMaxClasses];
    uint32_t dor[kBitsMaxClasses];
    for (int i = 0; i < ncls_v; ++i) {
      DV[i] = _mm512_setzero_si512();
      dor[i] = 0;
    }
    unsigned negm = 0;
    for (int sg = 0; sg < G; ++sg) {
      if (o[sg] < 0) continue;
      const __mmask8 lm = static_cast<__mmask8>(segm << (seg * sg));
      const uint32_t kb = band_threshold(t, bb, o[sg], bb.base_cl);
      KB = _mm512_mask_set1_epi64(KB, lm, kb);
      if (t.neg[o[sg]]) negm |= lm;
      for (int i = 0; i < ncls_v; ++i) {
        const uint32_t d = kb ^ band_threshold(t, bb, o[sg], bb.other[cls[i]]);
        if (d == 0) continue;
        DV[i] = _mm512_mask_set1_epi64(DV[i], lm, d);
        dor[i] |= d;
      }
    }
    const __m512i zero = _mm512_setzero_si512();
    __m512i carry = zero, lt = zero, bit = _mm512_set1_epi64(1);
    for (int k = 0; k < bb.P; ++k, bit = _mm512_add_epi64(bit, bit)) {
      const __m512i a = k >= 1 && k - 1 < npad ? pl[k - 1] : zero;
      const __m512i sk = SBNN_XOR3(a, Wz[k], carry);
      carry = SBNN_MAJ(a, Wz[k], carry);
      __m512i tk = _mm512_maskz_set1_epi64(_mm512_test_epi64_mask(KB, bit), -1);
      for (int i = 0; i < ncls_v; ++i)
        if ((dor[i] >> k) & 1u)  // t ^= mask & d
          tk = _mm512_mask_ternarylogic_epi64(tk, _mm512_test_epi64_mask(DV[i], bit), Mz[i], Mz[i], 0x3C);
      lt = _mm512_ternarylogic_epi64(sk, tk, lt, 0x8E);  // maj(~s, t, lt): s < t so far
    }
    return _mm512_and_si512(_mm512_mask_xor_epi64(lt, static_cast<__mmask8>(negm), lt, valid), valid);
  }

  // Writes the bits of up to 64 channels c0 .. c0 + nch - 1 (RC[c]: that channel's
  // words, band positions from pos0) for the positions of nw words.
  static void bits_store(const BandCtx& x, const __m512i* RC, int nch, int c0, int pos0, int nw,
                         uint64_t* PQ) {
    const BConv2DShape& s = *x.s;
    const Tables& tab = tables();
    const int R = x.p->R, span = std::min(R, 64);
    const size_t bstride = 4 * static_cast<size_t>(transform_internal::words_for(x.out->channels));
    uint8_t* obase = static_cast<uint8_t*>(x.out->out) +
                     (x.b * s.out_h + x.oy0) * static_cast<size_t>(s.out_w) * bstride + c0 / 8;
    const int nbytes = (nch + 7) / 8;
    const __m512i unit = _mm512_set1_epi64(static_cast<long long>(0x8040201008040201ull));
    // X[g][w]: word w of the 8 channels of group g (a square transpose of 8 registers).
    __m512i X[8][8];
    for (int g = 0; g < nbytes; ++g) {
      for (int i = 0; i < 8; ++i) X[g][i] = 8 * g + i < nch ? RC[8 * g + i] : _mm512_setzero_si512();
      transpose_square<8>(X[g]);
    }
    alignas(64) uint64_t sorted[64];
    for (int w = 0; w < nw; ++w) {
      // Z[g] byte b = the 8 channel bits of group g at position 64 w + b; the byte
      // interleave gives each position's 64 channel bits (position kq[r][q] at PQ[8r + q]).
      __m512i Z[8], out[8];
      for (int g = 0; g < 8; ++g)
        Z[g] = g < nbytes ? _mm512_gf2p8affine_epi64_epi8(unit, _mm512_permutexvar_epi8(tab.bytes8x8, X[g][w]), 0)
                          : _mm512_setzero_si512();
      Tables::interleave(Z, out);
      for (int r = 0; r < 8; ++r) _mm512_store_si512(PQ + 8 * r, out[r]);
      for (int r = 0; r < 8; ++r)
        for (int q = 0; q < 8; ++q) sorted[tab.kq[r][q]] = PQ[8 * r + q];
      for (int sub = 0; sub < 64; sub += span) {
        const int pos = pos0 + 64 * w + sub, r = pos / R, ox0 = pos % R;
        if (r >= x.nbr) break;
        const int n = std::min(span, s.out_w - ox0);
        uint8_t* dst = obase + (static_cast<size_t>(r) * s.out_w + ox0) * bstride;
        const uint64_t* src = sorted + sub;
        if (nbytes == 8 && bstride == 8) {
          if (n > 0) std::memcpy(dst, src, 8 * static_cast<size_t>(n));
        } else {
          for (int i = 0; i < n; ++i) std::memcpy(dst + i * bstride, src + i, static_cast<size_t>(nbytes));
        }
      }
    }
  }

  // kBits of channels [s0, s0 + nch) of a super-block counted into PL. Scratch: RC
  // (128 registers) and 64 words after it.
  static void bits_superblock(const BandCtx& x, int s0, int nch, int G, int nv, int npad,
                              const __m512i* PL, __m512i* RC) {
    const BitsThresholds& t = *x.bt;
    const BitsBand& bb = *x.bb;
    uint64_t* PQ = reinterpret_cast<uint64_t*>(RC + 128);
    const int unit_ch = 16 * G, nunit = (nch + unit_ch - 1) / unit_ch, seg = 8 / G;
    __m512i Wz[kBitsMaxPlanes], Mz[kBitsMaxClasses];
    int cls[kBitsMaxClasses];
    for (int v = 0; v < nv; ++v) {
      for (int k = 0; k < bb.P; ++k) Wz[k] = band_vec(bb.W + static_cast<size_t>(k) * bb.lqs, v, G);
      const __m512i valid = band_vec(bb.valid, v, G);
      int ncls_v = 0;
      for (int i = 0; i < bb.nother; ++i) {
        const __m512i m = band_vec(bb.mask + static_cast<size_t>(i) * bb.lqs, v, G);
        if (_mm512_test_epi64_mask(m, m) == 0) continue;
        Mz[ncls_v] = m;
        cls[ncls_v++] = i;
      }
      for (int u = 0; u < nunit; ++u)
        for (int j = 0; j < 16; ++j) {
          int o[8];
          for (int sg = 0; sg < G; ++sg) {
            const int c = unit_ch * u + 16 * sg + j;
            o[sg] = c < nch ? s0 + c : -1;
          }
          const __m512i r = bits_register(t, bb, o, G, PL + ((u * 16 + j) * nv + v) * npad, npad, Wz, Mz,
                                          cls, ncls_v, valid);
          for (int sg = 0; sg < G; ++sg) {
            const int c = unit_ch * u + 16 * sg + j;
            if (c >= nch) continue;
            // (channel c's words: the vector, or segment sg moved to the low words)
            RC[c] = G == 1 ? r
                           : _mm512_maskz_permutexvar_epi64(
                                 static_cast<__mmask8>((1u << seg) - 1u),
                                 _mm512_add_epi64(_mm512_set_epi64(7, 6, 5, 4, 3, 2, 1, 0),
                                                  _mm512_set1_epi64(seg * sg)),
                                 r);
          }
        }
      const int nw = G == 1 ? std::min(8, bb.lq - 8 * v) : bb.lq;
      for (int h = 0; 64 * h < nch; ++h)
        bits_store(x, RC + 64 * h, std::min(64, nch - 64 * h), s0 + 64 * h, 512 * v, nw, PQ);
    }
  }

  static void process_channels(BandCtx& x, int o_begin, int o_end) {
    const BConv2DShape& s = *x.s;
    const BitplanePlan& p = *x.p;
    const SparseFilter& f = *x.f;
    const int lq = (x.nbr * p.R + 63) / 64;
    const int np = std::max(3, bit_length(static_cast<unsigned>(f.max_conns)));
    // Fast path: one or two channels per vector, counts < 65536, B(p) in int16.
    if (np > kMaxPlanes || f.kfull > 32767 || p.R > 512) {
      BitplanePortable<8>::process_channels(x, o_begin, o_end);
      return;
    }
    const Tables& tab = tables();
    // Channels per vector: G segments of 512 / G bits (bands of up to 512 / G bits).
    const int G = lq > 4 ? 1 : lq > 2 ? 2 : lq > 1 ? 4 : 8;
    const int nv = G == 1 ? (lq + 7) / 8 : 1;
    const bool two = np > 8;       // counts need two bytes
    const int npad = 8 * ((np + 7) / 8);  // plane stride of PL (whole bytes of counts)
    // Work memory: PL [kSuper][16][nv][kMaxPlanes] ZMM, BB, TR [kSuper][2][8][1024] bytes.
    __m512i* PL = reinterpret_cast<__m512i*>(x.work);
    int32_t* BB = reinterpret_cast<int32_t*>(PL + kSuper * 16 * nv * kMaxPlanes);
    uint8_t* TR = reinterpret_cast<uint8_t*>(BB + nv * 512 + 64);
    // BB[band position] = B(p) << 16 (the high int16 of the VPDPWSSD pair).
    {
      const int32_t* __restrict bsrc = x.B;
      int32_t* __restrict bdst = BB;
      const int R = p.R, ow = s.out_w, nbr = x.nbr;
      for (int r = 0; r < nbr; ++r)
        for (int ox = 0; ox < ow; ++ox) bdst[r * R + ox] = bsrc[r * ow + ox] << 16;
    }
    const int O = s.out_channels;
    const int ow = s.out_w;
    // Runs of output columns with one border class.
    struct Seg {
      int x0, x1, hc;
    };
    Seg seg[64];
    int nseg = 0;
    for (int ox = 0; ox < ow;) {
      int e = ox + 1;
      while (e < ow && p.hclass[e] == p.hclass[ox]) ++e;
      if (nseg == 64) {  // (pathological geometry: many classes) use the portable path
        BitplanePortable<8>::process_channels(x, o_begin, o_end);
        return;
      }
      seg[nseg++] = Seg{ox, e, p.hclass[ox]};
      ox = e;
    }
    const int mode = emit_mode(x);

    // A unit = 16 vectors = 16 * G channels; a super-block = max(kSuper, G) blocks of 16
    // channels = max(kSuper / G, 1) units.
    const int unit_ch = 16 * G, sb_blocks = std::max(kSuper, G);
    size_t trk[8];
    for (int k = 0; k < 8; ++k)
      trk[k] = static_cast<size_t>(k / G) * 512 * 16 + static_cast<size_t>(k % G) * (512 / G) * 16;
    for (int s0 = o_begin; s0 < o_end; s0 += 16 * sb_blocks) {
      const int nblk = std::min(sb_blocks, (o_end - s0 + 15) / 16);
      const int nunit = (nblk * 16 + unit_ch - 1) / unit_ch;
      __m512i W[8];
      __mmask16 mask[8];
      SBNN_PROF_BEGIN(tc);
      for (int u = 0; u < nunit; ++u) {
        const int o0 = s0 + unit_ch * u;
        count_block(x, o0, std::min(unit_ch, o_end - o0), G, nv, np, PL + u * 16 * nv * npad);
      }
      for (int k = 0; k < nblk; ++k) {
        const int o0 = s0 + 16 * k, nch = std::min(16, o_end - o0);
        mask[k] = static_cast<__mmask16>((1u << nch) - 1u);
        alignas(64) int16_t wv[32];
        for (int j = 0; j < 16; ++j) {
          const int32_t u = j < nch ? f.sign[o0 + j] : 0;
          wv[2 * j] = static_cast<int16_t>(4 * u);
          wv[2 * j + 1] = static_cast<int16_t>(-2 * u);
        }
        W[k] = _mm512_load_si512(wv);
      }
      SBNN_PROF_END(tc, 1);
      if (mode == kEmitBits && x.bb != nullptr) {
        SBNN_PROF_BEGIN(tb);
        bits_superblock(x, s0, std::min(16 * nblk, o_end - s0), G, nv, npad, PL,
                        reinterpret_cast<__m512i*>(TR));
        SBNN_PROF_END(tb, 2);
        continue;
      }
      SBNN_PROF_BEGIN(tv);
      const int rows_per_vec = 512 / p.R;
      for (int v = 0; v < nv; ++v) {
        // Count bytes in pixel order: TR + ((hi * kSuper + u) * 512 + position) * 16.
        for (int k = 0; k < nunit; ++k) {
          __m512i CB[16 * 16];  // [hi * 8 + r][j]
          for (int j = 0; j < 16; ++j) {
            const __m512i* pl = PL + ((k * 16 + j) * nv + v) * npad;
            __m512i c[8];
            planes_to_counts(pl, c);
            for (int r = 0; r < 8; ++r) CB[r * 16 + j] = c[r];
            if (two) {
              planes_to_counts(pl + 8, c);
              for (int r = 0; r < 8; ++r) CB[(8 + r) * 16 + j] = c[r];
            }
          }
          for (int r = 0; r < 8; ++r) {
            transpose16x64_pixels(CB + r * 16, TR + static_cast<size_t>(k) * 512 * 16, tab.kq[r]);
            if (two)
              transpose16x64_pixels(CB + (8 + r) * 16, TR + static_cast<size_t>(kSuper + k) * 512 * 16,
                                    tab.kq[r]);
          }
        }
        const int r0 = v * rows_per_vec, r1 = std::min(x.nbr, r0 + rows_per_vec);
        for (int row = r0; row < r1; ++row) {
          const int oy = x.oy0 + row;
          for (int kb = 0; kb < nblk; kb += 4) {  // emit in groups of up to 4 blocks
            const int nb = std::min(4, nblk - kb);
            EmitArgs e;
            e.tr = TR + static_cast<size_t>((row - r0) * p.R) * 16;
            e.trk = trk + kb;
            e.bb = BB + row * p.R;
            e.dst = mode == kEmitDot
                        ? x.dot + ((x.b * s.out_h + oy) * static_cast<size_t>(ow)) * O + s0 + 16 * kb
                        : nullptr;
            e.base_row = p.base + static_cast<size_t>(p.vclass[oy]) * p.nhc * O + s0 + 16 * kb;
            e.O = O;
            e.W = W + kb;
            e.mask = mask + kb;
            OutArgs oa;
            if (mode != kEmitDot) out_args_at(x, oy, row, s0 + 16 * kb, &oa);
            e.out = &oa;
            const EmitFn fn = kEmit[(nb - 1) * 8 + (two ? 4 : 0) + mode];
            for (int sg = 0; sg < nseg; ++sg) {
              e.x0 = seg[sg].x0;
              e.x1 = seg[sg].x1;
              e.hc = seg[sg].hc;
              fn(e);
            }
          }
        }
      }
      SBNN_PROF_END(tv, 2);
    }
  }
};

}  // namespace
}  // namespace internal
}  // namespace sbnn
