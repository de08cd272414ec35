// bconv2d_sparse_bitplane_512__avx512: the bit-plane carry-save sparse kernel on 512-bit
// vectors (512 output pixels per register), see sparse_bitplane.h.
//
// Per block of 16 output channels:
//   1. carry-save counting: for each connection one unaligned 64-byte load from the
//      transposed input Y; 8 inputs are reduced by 7 full adders (2 VPTERNLOG each) into
//      ones/twos/fours, the weight-8 carries ripple into higher planes;
//   2. planes -> count bytes: a byte-interleave network (24 VPUNPCK) puts the 8 plane
//      bytes of 8 pixels into one qword, VGF2P8AFFINEQB transposes each 8x8 bit block
//      (one count byte per pixel);
//   3. a 4-level VPERMT2B network transposes 16 channels x 64 pixels of count bytes into
//      pixel-major order, VPMOVZXBD widens 16 channels of one pixel, and one VPDPWSSD
//      (VNNI) computes base + 4u*C - 2u*B(p) from the pair (C, B(p)) before the store.
// Compiled with -mavx512f -mavx512bw -mavx512vl -mavx512vpopcntdq -mavx512vbmi
// -mavx512vnni -mgfni; requires CpuFeatures::x86_avx512_vbmi_vnni_gfni.
// GCC 12 warns about the deliberately undefined registers inside some intrinsics.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>


#include "bconv2d_kernels.h"
#include "cpu_features.h"
#include "sparse_bitplane_driver.h"

#include <new>
#include <vector>

namespace sbnn {
namespace internal {
namespace {

constexpr int kKindAvx512 = 14;
constexpr size_t kYBudget = 48 * 1024;
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

// 16 x 64 bytes [channel][position] (in[j] = channel j) -> [position/4][position%4][channel]
// (out + 64 * k holds positions 4k .. 4k+3, 16 channel bytes each).
inline void transpose16x64(const __m512i* in, uint8_t* out) {
  const Tables& t = tables();
  __m512i a[16], b[16];
  // Level l: input reg index pb * (16 >> l) + cg, output (2 pb + h) * (8 >> l) + cg.
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
  for (int i = 0; i < 16; ++i) _mm512_store_si512(out + 64 * i, b[i]);
}

// The same, storing in pixel order: chunk r's positions 8q .. 8q+7 are pixels
// 8 * kq[r][q] .. + 7 of the vector, so out + 16 * pixel holds that pixel's 16 bytes.
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

// Permute strategy: input i selects, for each of 64 lanes (bytes), entry idx[i][lane] of
// the 128-byte table at base + cell_off[cell[i]] (lanes off in mask[i] read 0).
template <int NP>
void count_permute(const uint8_t* base, const uint32_t* toff, const uint64_t* mask,
                   const uint8_t* idx, int n, __m512i* planes) {
  hs_count<NP>(
      n,
      [&](int i) __attribute__((always_inline)) {
        const uint8_t* t = base + toff[i];
        return _mm512_maskz_permutex2var_epi8(static_cast<__mmask64>(mask[i]), _mm512_loadu_si512(t),
                                              _mm512_load_si512(idx + 64 * static_cast<size_t>(i)),
                                              _mm512_loadu_si512(t + 64));
      },
      planes);
}
typedef void (*PermuteFn)(const uint8_t*, const uint32_t*, const uint64_t*, const uint8_t*, int,
                          __m512i*);
const PermuteFn kPermute[] = {
    &count_permute<3>,  &count_permute<4>,  &count_permute<5>,  &count_permute<6>,
    &count_permute<7>,  &count_permute<8>,  &count_permute<9>,  &count_permute<10>,
    &count_permute<11>, &count_permute<12>, &count_permute<13>, &count_permute<14>,
    &count_permute<15>, &count_permute<16>};

typedef void (*CountFn)(const uint8_t*, const uint32_t*, int, __m512i*);
const CountFn kCount[] = {
    &count_planes<3>,  &count_planes<4>,  &count_planes<5>,  &count_planes<6>,
    &count_planes<7>,  &count_planes<8>,  &count_planes<9>,  &count_planes<10>,
    &count_planes<11>, &count_planes<12>, &count_planes<13>, &count_planes<14>,
    &count_planes<15>, &count_planes<16>};
static_assert(sizeof(kCount) / sizeof(kCount[0]) == kMaxPlanes - 2, "one per plane count");

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

// Column phases (0 .. sw - 1) that some filter column reads, for any stride (a
// 64-entry array was indexed past its end for strides above 64: fuzz_ops finding).
struct UsedPhases {
  std::vector<uint8_t> used;
  UsedPhases(const BitplanePlan& p, int kw) : used(static_cast<size_t>(p.sw), 0) {
    for (int fx = 0; fx < kw; ++fx) used[static_cast<size_t>(p.phx[fx])] = 1;
  }
  bool operator[](int phi) const { return used[static_cast<size_t>(phi)] != 0; }
};

// Bytes of the row buffer RC of the fast Y build: [sw][rows_cap][chunks][R/8] registers.
inline size_t rc_bytes(const BitplanePlan& p, int cg) {
  if (p.R != 16 && p.R != 32 && p.R != 64) return 0;
  const int N = 512 / p.R;
  const size_t rows_cap = static_cast<size_t>(p.rows_pp + N - 1) / N * N;
  return static_cast<size_t>(p.sw) * rows_cap * ((cg + 63) / 64) * (p.R / 8) * 64;
}

// ----------------------------------------------------------------------------------
// Permute strategy for narrow outputs (out_w <= 8: one stored row = one byte).
//
// A register holds 64 lanes = 64 output channels, one byte each = the 8 pixels of one
// output row. The transposed input YT[phase][fx][row][channel] (bytes) is used directly
// as 128-entry VPERMI2B tables (128 consecutive channels of one filter tap's input row),
// and a prepare-time schedule lists, for each (tap, 128-channel chunk) cell, steps that
// pick for every lane the channel of its next connection in that cell (masked lanes
// read 0). Steps per cell = the largest connection count of a lane in it.
struct PermSchedule {
  uint32_t magic;       // kPermMagic
  int groups, og, cg, taps, nchunk, nlg;  // nlg: lane groups of 64 channels per group
  uint32_t* first;      // [groups * nlg + 1] steps of lane group (g, L)
  uint32_t* cell;       // [steps] t * nchunk + ch
  uint64_t* mask;       // [steps] lanes with a connection
  uint8_t* idx;         // [steps][64] channel within the chunk, 64-byte aligned
  size_t steps;
};
constexpr uint32_t kPermMagic = 0x53425053u;  // "SBPS"

// Lane of output channel slot s (0..63) of a lane group: the conversion puts the count
// of lane kq[s / 8][s % 8] at byte s of a pixel's register (channel order).
inline int lane_of_slot(int slot) { return tables().kq[slot / 8][slot % 8]; }

void free_perm_schedule(void* p) { std::free(p); }

PermSchedule* build_perm_schedule(const BConv2DShape& s, const SparseFilter& f) {
  const int cg = f.cg, og = f.og, taps = f.taps, G = s.groups;
  const int nchunk = (cg + 127) / 128, nlg = (og + 63) / 64;
  const int ncell = taps * nchunk;
  // Pass 1: steps per (g, L) = sum over cells of the largest lane count.
  std::vector<uint32_t> first(static_cast<size_t>(G) * nlg + 1, 0);
  std::vector<int> cnt(static_cast<size_t>(ncell) * 64);
  auto fill_counts = [&](int g, int L) {
    std::fill(cnt.begin(), cnt.end(), 0);
    for (int slot = 0; slot < 64; ++slot) {
      const int ol = 64 * L + slot;
      if (ol >= og) break;
      const int o = g * og + ol, lane = lane_of_slot(slot);
      for (uint32_t i = f.conn_begin[o]; i < f.conn_begin[o + 1]; ++i) {
        const int c = static_cast<int>(f.conns[i] / taps), t = static_cast<int>(f.conns[i] % taps);
        ++cnt[(static_cast<size_t>(t) * nchunk + c / 128) * 64 + lane];
      }
    }
  };
  size_t total = 0;
  for (int g = 0; g < G; ++g)
    for (int L = 0; L < nlg; ++L) {
      fill_counts(g, L);
      for (int cl = 0; cl < ncell; ++cl) {
        int mx = 0;
        for (int l = 0; l < 64; ++l) mx = std::max(mx, cnt[static_cast<size_t>(cl) * 64 + l]);
        total += mx;
      }
      first[static_cast<size_t>(g) * nlg + L + 1] = static_cast<uint32_t>(total);
    }
  if (total >= (size_t{1} << 31)) return nullptr;
  const size_t head = 64 * ((sizeof(PermSchedule) + 63) / 64);
  const size_t b_idx = 64 * total;
  const size_t b_mask = 8 * total;
  const size_t b_cell = 4 * total + 8;
  const size_t b_first = 4 * first.size() + 8;
  void* mem = nullptr;
  if (posix_memalign(&mem, 64, head + b_idx + b_mask + b_cell + b_first + 64) != 0 || !mem) return nullptr;
  auto* ps = new (mem) PermSchedule();
  char* m = static_cast<char*>(mem) + head;
  ps->idx = reinterpret_cast<uint8_t*>(m), m += b_idx;
  ps->mask = reinterpret_cast<uint64_t*>(m), m += b_mask;
  ps->cell = reinterpret_cast<uint32_t*>(m), m += b_cell;
  ps->first = reinterpret_cast<uint32_t*>(m);
  ps->magic = kPermMagic;
  ps->groups = G, ps->og = og, ps->cg = cg, ps->taps = taps, ps->nchunk = nchunk, ps->nlg = nlg;
  ps->steps = total;
  std::copy(first.begin(), first.end(), ps->first);
  // Pass 2: the steps.
  std::vector<std::vector<uint8_t>> lists(static_cast<size_t>(ncell) * 64);
  for (int g = 0; g < G; ++g)
    for (int L = 0; L < nlg; ++L) {
      for (auto& l : lists) l.clear();
      for (int slot = 0; slot < 64; ++slot) {
        const int ol = 64 * L + slot;
        if (ol >= og) break;
        const int o = g * og + ol, lane = lane_of_slot(slot);
        for (uint32_t i = f.conn_begin[o]; i < f.conn_begin[o + 1]; ++i) {
          const int c = static_cast<int>(f.conns[i] / taps), t = static_cast<int>(f.conns[i] % taps);
          lists[(static_cast<size_t>(t) * nchunk + c / 128) * 64 + lane].push_back(static_cast<uint8_t>(c % 128));
        }
      }
      size_t st = ps->first[static_cast<size_t>(g) * nlg + L];
      for (int cl = 0; cl < ncell; ++cl) {
        size_t mx = 0;
        for (int l = 0; l < 64; ++l) mx = std::max(mx, lists[static_cast<size_t>(cl) * 64 + l].size());
        for (size_t k = 0; k < mx; ++k, ++st) {
          uint64_t mk = 0;
          uint8_t* ix = ps->idx + 64 * st;
          for (int l = 0; l < 64; ++l) {
            const auto& li = lists[static_cast<size_t>(cl) * 64 + l];
            ix[l] = k < li.size() ? li[k] : 0;
            if (k < li.size()) mk |= uint64_t{1} << l;
          }
          ps->mask[st] = mk;
          ps->cell[st] = static_cast<uint32_t>(cl);
        }
      }
    }
  return ps;
}

// YT geometry of a plan (row stride cgs bytes: channels, padded so that a 128-byte
// table read from any chunk start stays inside the row). Work layout of the permute
// strategy: YT, Z ([sw][rows_pp + 8][cgs]), cell offsets, step offsets.
inline size_t yt_cgs(int cg) { return static_cast<size_t>((cg + 63) / 64 * 64 + 64); }
inline size_t yt_bytes(const BitplanePlan& p, const BConv2DShape& s, int cg) {
  return static_cast<size_t>(p.sh) * s.filter_w * p.rows_pp * yt_cgs(cg) + 128;
}
inline size_t perm_work_offset(const BitplanePlan& p, const BConv2DShape& s, int cg) {
  return (yt_bytes(p, s, cg) + 63) / 64 * 64 +
         (static_cast<size_t>(p.sw) * (p.rows_pp + 8) * yt_cgs(cg) + 63) / 64 * 64;
}

// Rows per byte lane of the permute strategy: k = 8 / Rp output rows of Rp bits
// (Rp = the smallest power of two >= out_w), so 4x4 maps put 2 rows in a byte.
inline int perm_row_bits(int out_w) {
  int rp = 1;
  while (rp < out_w) rp *= 2;
  return rp;
}

// The byte-wise linear map of VGF2P8AFFINEQB that takes an input row (8 bits, pixel j
// of the phase row at bit j) to row slot m of a packed byte for a filter column with
// offset q: out bit m * Rp + ox = in bit (ox + q) for 0 <= ox < out_w, else 0.
inline __m512i row_shift_matrix(int q, int out_w, int rp, int m) {
  uint64_t a = 0;
  for (int ox = 0; ox < rp && ox < out_w; ++ox) {
    const int src = ox + q, dst = m * rp + ox;
    if (src >= 0 && src < 8) a |= (uint64_t{1} << src) << (8 * (7 - dst));
  }
  return _mm512_set1_epi64(static_cast<long long>(a));
}

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

inline int emit_mode(const BandCtx& x) {
  if (x.out == nullptr) return kEmitDot;
  switch (x.out->kind) {
    case BConv2DOutputKind::kBits: return kEmitBits;
    case BConv2DOutputKind::kFloat: return kEmitFloat;
    case BConv2DOutputKind::kQFloat: return kEmitQFloat;
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

struct Avx512Impl : BitplanePortable<8> {
  // Fused outputs: written by the emit stages (direct and permute strategies) when they
  // run; the portable fallbacks inside process_channels write them too.
  static bool native_output(const BandCtx& x) {
    // Bits are stored as 16-bit masks per block of 16 channels: blocks must start on a
    // multiple of 16 channels in every group.
    return x.out == nullptr || x.out->kind != BConv2DOutputKind::kBits || x.s->groups == 1 ||
           x.f->og % 16 == 0;
  }

  static size_t work_bytes(const BitplanePlan& p, const SparseFilter& f, const SparsePrepared* sp) {
    const size_t lq = (static_cast<size_t>(p.nb) * p.R + 63) / 64;
    const size_t nv = (lq + 7) / 8;
    const size_t planes = kSuper * 16 * nv * kMaxPlanes * 64;  // [kSuper][16][nv][planes] ZMM
    const size_t bb = sizeof(int32_t) * (nv * 512 + 64);
    const size_t tr = static_cast<size_t>(2 * kSuper) * 512 * 16;  // count bytes, pixel order
    size_t mine = std::max(planes + bb + tr + 64, rc_bytes(p, f.cg) + 64);
    if (p.R == 8) {
      // YT, then cell offsets and per-step table offsets of the largest group.
      size_t steps = 0;
      const auto* ps = static_cast<const PermSchedule*>(sp ? sp->extra : nullptr);
      if (ps != nullptr && ps->magic == kPermMagic)
        for (int g = 0; g < ps->groups; ++g)
          steps = std::max<size_t>(steps, ps->first[static_cast<size_t>(g + 1) * ps->nlg] -
                                              ps->first[static_cast<size_t>(g) * ps->nlg]);
      const size_t cells = static_cast<size_t>(f.taps) * ((f.cg + 127) / 128);
      mine = std::max(mine, perm_work_offset(p, p.shape, f.cg) + 4 * (cells + 16 + steps) + 64);
    }
    return std::max(mine, BitplanePortable<8>::work_bytes(p, f, sp));
  }

  static const PermSchedule* schedule(const BandCtx& x) {
    const auto* ps = static_cast<const PermSchedule*>(x.sp->extra);
    if (ps == nullptr || ps->magic != kPermMagic || ps->groups != x.s->groups || ps->og != x.f->og ||
        ps->cg != x.f->cg || ps->taps != x.f->taps)
      return nullptr;
    return ps;
  }

  static void build_band(BandCtx& x) {
    const BConv2DShape& s = *x.s;
    const BitplanePlan& p = *x.p;
    const int cg = x.f->cg;
    const int nxp = (s.in_w + p.sw - 1) / p.sw;
    x.mode = 0;
    if (p.R == 8 && nxp <= 8 && (s.groups == 1 || cg % 32 == 0) && schedule(x) != nullptr &&
        x.f->kfull <= 32767 && bit_length(static_cast<unsigned>(x.f->max_conns)) <= kMaxPlanes) {
      x.mode = 1;
      build_yt(x);
      band_bits(x);
      return;
    }
    const bool fast = (s.groups == 1 || cg % 32 == 0) && (p.R == 16 || p.R == 32 || p.R == 64) &&
                      nxp <= p.R;
    if (!fast) {
      BitplanePortable<8>::build_band(x);
      return;
    }
    if (p.R == 16) build_band_fast<2>(x);
    else if (p.R == 32) build_band_fast<4>(x);
    else build_band_fast<8>(x);
    band_bits(x);
  }

  // Permute strategy: YT[(ph * kw + fx) * rows_pp + jj][cgs] bytes = output rows jj ..
  // jj + k - 1 (k rows of Rp bits per byte) for column fx, in the work buffer; Z (the
  // transposed input rows of one phase, before the column shift) follows it.
  static void build_yt(BandCtx& x) {
    const BConv2DShape& s = *x.s;
    const BitplanePlan& p = *x.p;
    const Tables& tab = tables();
    const int cg = x.f->cg, fw = s.filter_words, sw = p.sw, kw = s.filter_w;
    const int nch = (cg + 63) / 64, gbytes = fw * 4;
    const size_t pstride = static_cast<size_t>(s.in_words) * 4, cgs = yt_cgs(cg);
    const int rows = x.nbr + p.qmax - p.qmin;
    const int rp = perm_row_bits(s.out_w), k = 8 / rp;
    uint8_t* YT = reinterpret_cast<uint8_t*>(x.work);
    uint8_t* Z = YT + (yt_bytes(p, s, cg) + 63) / 64 * 64;  // [sw][rows + k][cgs]
    const size_t zrows = static_cast<size_t>(rows + k);
    const __m512i unit = _mm512_set1_epi64(static_cast<long long>(0x8040201008040201ull));
    const __m512i lane = _mm512_set_epi64(7, 6, 5, 4, 3, 2, 1, 0);
    const UsedPhases phi_used(p, kw);
    for (int ph = 0; ph < p.sh; ++ph) {
      if (!phase_used(p, s.filter_h, kw, ph)) continue;
      // (a) input rows -> Z[phi][jj] (bit j = pixel j*sw + phi of row jj, per channel).
      for (int jj = 0; jj < rows + k - 1; ++jj) {
        const long iy = static_cast<long>(x.oy0 + p.qmin + jj) * p.sh + ph;
        const bool inside = jj < rows && iy >= 0 && iy < s.in_h;
        int32_t* h = jj < rows ? x.H + (static_cast<size_t>(ph) * p.rows_pp + jj) * s.out_w : nullptr;
        if (!inside) {
          for (int phi = 0; phi < sw; ++phi)
            if (phi_used[phi])
              for (int ch = 0; ch < nch; ++ch)
                _mm512_storeu_si512(Z + (phi * zrows + jj) * cgs + 64 * ch, _mm512_setzero_si512());
          if (h)
            for (int ox = 0; ox < s.out_w; ++ox) h[ox] = 0;
          continue;
        }
        const uint8_t* row = reinterpret_cast<const uint8_t*>(x.input) +
                             (x.b * s.in_h + iy) * static_cast<size_t>(s.in_w) * pstride +
                             static_cast<size_t>(x.g) * gbytes;
        // Phases with no pixel in the row (in_w < sw) are read by step (b) as empty rows.
        for (int phi = s.in_w; phi < sw; ++phi)
          if (phi_used[phi])
            for (int ch = 0; ch < nch; ++ch)
              _mm512_storeu_si512(Z + (phi * zrows + jj) * cgs + 64 * ch, _mm512_setzero_si512());
        for (int phi = 0; phi < sw && phi < s.in_w; ++phi) {
          const int n_px = std::min(8, (s.in_w - phi + sw - 1) / sw);
          const __mmask8 lm = static_cast<__mmask8>((1u << n_px) - 1u);
          const uint8_t* base = row + static_cast<size_t>(phi) * pstride;
          const size_t step = pstride * sw;
          const __m512i vidx = _mm512_mul_epu32(lane, _mm512_set1_epi64(static_cast<long long>(step)));
          __m512i pcv = _mm512_setzero_si512();
          for (int ch = 0; ch < nch; ++ch) {
            const int bits = std::min(64, cg - 64 * ch);
            const __m512i cm = _mm512_set1_epi64(static_cast<long long>(bits >= 64 ? ~0ull : ((1ull << bits) - 1)));
            const uint8_t* b0 = base + 8 * ch;
            __m512i v;
            if (8 * ch + 8 <= gbytes) {
              v = step == 8 ? _mm512_maskz_loadu_epi64(lm, b0)
                            : _mm512_mask_i64gather_epi64(_mm512_setzero_si512(), lm, vidx, b0, 1);
            } else {
              v = _mm512_cvtepu32_epi64(_mm512_mask_i64gather_epi32(_mm256_setzero_si256(), lm, vidx, b0, 1));
            }
            v = _mm512_and_si512(v, cm);
            pcv = _mm512_add_epi64(pcv, _mm512_popcnt_epi64(v));
            _mm512_storeu_si512(Z + (phi * zrows + jj) * cgs + 64 * ch,
                                _mm512_gf2p8affine_epi64_epi8(unit, _mm512_permutexvar_epi8(tab.bytes8x8, v), 0));
          }
          _mm256_storeu_si256(reinterpret_cast<__m256i*>(x.pc + phi * x.pc_stride + x.pc_margin),
                              _mm512_cvtepi64_epi32(pcv));
        }
        h_row_avx512(x, h);
      }
      // (b) YT[fx][jj] = the k output rows jj .. jj+k-1 of column fx.
      for (int fx = 0; fx < kw; ++fx) {
        __m512i m[8];
        for (int r = 0; r < k; ++r) m[r] = row_shift_matrix(p.qx[fx], s.out_w, rp, r);
        const uint8_t* zb = Z + static_cast<size_t>(p.phx[fx]) * zrows * cgs;
        uint8_t* yb = YT + (static_cast<size_t>(ph) * kw + fx) * p.rows_pp * cgs;
        for (int jj = 0; jj < rows; ++jj)
          for (int ch = 0; ch < nch; ++ch) {
            __m512i acc = _mm512_gf2p8affine_epi64_epi8(_mm512_loadu_si512(zb + jj * cgs + 64 * ch), m[0], 0);
            for (int r = 1; r < k; ++r)
              acc = _mm512_or_si512(
                  acc, _mm512_gf2p8affine_epi64_epi8(_mm512_loadu_si512(zb + (jj + r) * cgs + 64 * ch), m[r], 0));
            _mm512_storeu_si512(yb + jj * cgs + 64 * ch, acc);
          }
      }
    }
  }

  // Channels [o_begin, o_end) are written (o_end < the group's end only for kQFloat,
  // whose q channel, the last, is not an output).
  static void process_permute(BandCtx& x, int o_begin, int o_end) {
    const BConv2DShape& s = *x.s;
    const BitplanePlan& p = *x.p;
    const SparseFilter& f = *x.f;
    const PermSchedule& ps = *schedule(x);
    const Tables& tab = tables();
    const int kw = s.filter_w, O = s.out_channels;
    const size_t cgs = yt_cgs(f.cg);
    const uint8_t* YT = reinterpret_cast<const uint8_t*>(x.work);
    const int ncell = ps.taps * ps.nchunk;
    uint32_t* cell_off = reinterpret_cast<uint32_t*>(reinterpret_cast<uint8_t*>(x.work) + perm_work_offset(p, s, f.cg));
    for (int t = 0; t < ps.taps; ++t) {
      const int ph = p.tap_row[t] / p.rows_pp, jq = p.tap_row[t] % p.rows_pp;
      for (int ch = 0; ch < ps.nchunk; ++ch)
        cell_off[t * ps.nchunk + ch] =
            static_cast<uint32_t>(((static_cast<size_t>(ph) * kw + p.tap_fx[t]) * p.rows_pp + jq) * cgs + 128 * ch);
    }
    // Table offset of every step of this group (cells repeat across the band's rows).
    uint32_t* toff = cell_off + ncell + 16;
    {
      const size_t g0 = static_cast<size_t>(x.g) * ps.nlg;
      const uint32_t s0 = ps.first[g0], s1 = ps.first[g0 + ps.nlg];
      for (uint32_t i = s0; i < s1; ++i) toff[i - s0] = cell_off[ps.cell[i]];
    }
    const int np = std::max(3, bit_length(static_cast<unsigned>(f.max_conns)));
    const PermuteFn count = kPermute[np - 3];
    const bool two = np > 8;
    const int rp = perm_row_bits(s.out_w), krows = 8 / rp;
    const int mode = emit_mode(x);
    for (int L = 0; L < ps.nlg; ++L) {
      const size_t gl = static_cast<size_t>(x.g) * ps.nlg + L;
      const uint32_t st0 = ps.first[gl], nst = ps.first[gl + 1] - st0;
      const int o_l = o_begin + 64 * L;  // first output channel of the lane group
      const int nvalid = std::min(64, o_end - o_l);
      if (nvalid <= 0) continue;
      const int nblk = (nvalid + 15) / 16;
      __m512i W[4];
      __mmask16 mask[4];
      for (int j = 0; j < nblk; ++j) {
        const int nch = std::min(16, nvalid - 16 * j);
        mask[j] = static_cast<__mmask16>((1u << nch) - 1u);
        alignas(64) int16_t wv[32];
        for (int e = 0; e < 16; ++e) {
          const int32_t u = e < nch ? f.sign[o_l + 16 * j + e] : 0;
          wv[2 * e] = static_cast<int16_t>(4 * u);
          wv[2 * e + 1] = static_cast<int16_t>(-2 * u);
        }
        W[j] = _mm512_load_si512(wv);
      }
      for (int r0 = 0; r0 < x.nbr; r0 += krows) {
        __m512i planes[kMaxPlanes];
        count(YT + static_cast<size_t>(r0) * cgs, toff + (st0 - ps.first[static_cast<size_t>(x.g) * ps.nlg]),
              ps.mask + st0, ps.idx + 64 * static_cast<size_t>(st0), static_cast<int>(nst), planes);
        for (int b = np; b < 8 * ((np + 7) / 8); ++b) planes[b] = _mm512_setzero_si512();
        __m512i lo[8], hi[8];
        pixels_of_lanes(planes, lo, tab);
        if (two) pixels_of_lanes(planes + 8, hi, tab);
        for (int bit = 0; bit < 8; ++bit) {
          const int r = r0 + bit / rp, ox = bit % rp;
          if (r >= x.nbr || ox >= s.out_w) continue;
          const int oy = x.oy0 + r;
          const int32_t* bp =
              p.base + (static_cast<size_t>(p.vclass[oy]) * p.nhc + p.hclass[ox]) * O + o_l;
          const __m512i bc = _mm512_set1_epi32(x.B[static_cast<size_t>(r) * s.out_w + ox] << 16);
          __m512i dv[4];
          for (int j = 0; j < nblk; ++j) {
            __m512i cnt = _mm512_cvtepu8_epi32(extract128(lo[bit], j));
            if (two) cnt = _mm512_or_si512(cnt, _mm512_slli_epi32(_mm512_cvtepu8_epi32(extract128(hi[bit], j)), 8));
            const __m512i base = _mm512_maskz_loadu_epi32(mask[j], bp + 16 * j);
            dv[j] = _mm512_dpwssd_epi32(base, _mm512_or_si512(cnt, bc), W[j]);
          }
          if (mode == kEmitDot) {
            int32_t* d = x.dot + ((x.b * s.out_h + oy) * static_cast<size_t>(s.out_w) + ox) * O + o_l;
            for (int j = 0; j < nblk; ++j) _mm512_mask_storeu_epi32(d + 16 * j, mask[j], dv[j]);
          } else {
            permute_output(x, mode, oy, r, ox, o_l, nblk, mask, dv);
          }
        }
      }
    }
  }

  // Fused output of one pixel (band row r, column ox) of the permute strategy: nblk
  // blocks of 16 channels from c0 with their dot values dv.
  static void permute_output(const BandCtx& x, int mode, int oy, int r, int ox, int c0, int nblk,
                             const __mmask16* mask, const __m512i* dv) {
    OutArgs oa;
    out_args_at(x, oy, r, c0, &oa);
    if (mode == kEmitBits) {
      uint64_t bits = 0;
      for (int j = 0; j < nblk; ++j) {
        OutRegs<kEmitBits> R;
        R.load(oa, j, mask[j]);
        bits |= static_cast<uint64_t>(_mm512_mask_cmplt_epi32_mask(mask[j], dv[j], R.lim)) << (16 * j);
      }
      std::memcpy(oa.bits + static_cast<size_t>(ox) * oa.bstride, &bits, 2 * static_cast<size_t>(nblk));
      return;
    }
    float* fl = oa.fl + static_cast<size_t>(ox) * oa.C;
    if (mode == kEmitFloat) {
      for (int j = 0; j < nblk; ++j) {
        OutRegs<kEmitFloat> R;
        R.load(oa, j, mask[j]);
        store_float<kEmitFloat>(R, dv[j], _mm512_setzero_ps(), fl, nullptr, j, mask[j], false);
      }
      return;
    }
    const __m512 fq = _mm512_set1_ps(static_cast<float>(oa.qd[ox]));
    const float* res = oa.res != nullptr ? oa.res + static_cast<size_t>(ox) * oa.C : nullptr;
    for (int j = 0; j < nblk; ++j) {
      OutRegs<kEmitQFloat> R;
      R.load(oa, j, mask[j]);
      store_float<kEmitQFloat>(R, dv[j], fq, fl, res, j, mask[j], false);
    }
  }

  static __m128i extract128(__m512i v, int j) {
    switch (j) {
      case 0: return _mm512_castsi512_si128(v);
      case 1: return _mm512_extracti32x4_epi32(v, 1);
      case 2: return _mm512_extracti32x4_epi32(v, 2);
      default: return _mm512_extracti32x4_epi32(v, 3);
    }
  }

  // 8 count planes of 64 lanes x 8 pixels -> out[i] = the 64 channel bytes (slot order)
  // of pixel i.
  static void pixels_of_lanes(const __m512i* planes, __m512i out[8], const Tables& tab) {
    __m512i c[8];
    planes_to_counts(planes, c);
    for (int r = 0; r < 8; ++r) out[r] = _mm512_permutexvar_epi8(tab.bytes8x8t, c[r]);
    transpose_square<8>(out);
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

  static void process_channels(BandCtx& x, int o_begin, int o_end) {
    if (x.mode == 1) {
      process_permute(x, o_begin, o_end);
      return;
    }
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

bool supported(const BConv2DShape& s) {
  return cpu_features().x86_avx512_vbmi_vnni_gfni && shape_is_valid(s);
}

void* prepare(const BConv2DShape& s, const int32_t* filter) {
  SparsePrepared* sp = make_sparse_prepared(s, filter, kKindAvx512, Avx512Impl::kNW * 8, kYBudget, true);
  if (sp != nullptr && sp->plan != nullptr && sp->plan->R == 8) {
    // Narrow outputs: the permute strategy's schedule (without it, run falls back to the
    // direct strategy).
    sp->extra = build_perm_schedule(s, *sp->filter);
    sp->free_extra = &free_perm_schedule;
  }
  return sp;
}

void run(const BConv2DShape& s, const void* prepared, const int32_t* input,
         const int32_t* filter, int32_t* dot, int row_begin, int row_end) {
  run_bitplane<Avx512Impl>(s, prepared, input, filter, dot, row_begin, row_end, kKindAvx512,
                           kYBudget);
}

void run_output(const BConv2DShape& s, const void* prepared, const int32_t* input,
                const int32_t* filter, const BConv2DOutput& out, int row_begin, int row_end) {
  run_bitplane_output<Avx512Impl>(s, prepared, input, filter, out, row_begin, row_end,
                                  kKindAvx512, kYBudget);
}

}  // namespace
}  // namespace internal

const BConv2DKernel kBConv2DKernel_sparse_bitplane_avx512 = {
    "bconv2d_sparse_bitplane_512__avx512", BConv2DFamily::kSparseBitplane,
    internal::supported, internal::prepare, internal::run,
    internal::release_sparse_prepared, internal::run_output};

}  // namespace sbnn
