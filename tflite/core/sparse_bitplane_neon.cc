// bconv2d_sparse_bitplane_128__neon: the bit-plane carry-save sparse kernel on 128-bit
// Advanced SIMD vectors (128 output pixels per register), see sparse_bitplane.h.
// ARMv8.0 baseline (the Raspberry Pi 4's Cortex-A72): no optional extension is used.
//
// Stages (docs/sparse_kernels.md, "The NEON stages"):
//   1. input transposition (build_band): 8 pixels x 16 channel bytes per step, an 8x8
//      bit transpose across 8 registers (SLI/SRI and BSL butterflies) gives one byte of
//      8 pixel bits per channel; on narrow maps those bytes are whole rows, staged as
//      vectors and turned channel-major by 16x16 byte transposes (build_band_staged);
//   2. carry-save counting (count_*): one 128-bit load per connection and vector, a full
//      adder is EOR, EOR, BSL (3 instructions), 8 inputs cost 7 full adders; two vectors
//      of a band are counted in two independent chains (the A72 and A76 have two 128-bit
//      pipes);
//   3. planes -> count bytes: the same 8x8 bit transpose across the plane registers of
//      one channel (16 x 8 pixels per pass), then a 16x16 byte transpose (TRN1/TRN2 on
//      bytes, halfwords, words, doublewords) of 16 channels puts the 16 channel counts of
//      one pixel into one register, stored in pixel order;
//   4. output: per pixel and 16 channels, USHLL (4C), SUB (2B(p)), EOR with the channel's
//      sign mask give dot - (base + [u = -1]) in int16; SADDW onto base gives 16 int32
//      dots, stored, or the fused output (bconv2d_output.h) made from the registers:
//      bits by an int16 compare with the limits minus base (saturated), floats by the
//      transform's own operations (exact).
// Channels whose band is narrower than a vector (8x8 and 4x4 maps) share a vector: G = 2
// or 4 segments of 64 or 32 bits, segment s of vector j holding channel o0 + 16 s + j.
#include <arm_neon.h>

#include <initializer_list>
#include <new>
#include <vector>

#include "bconv2d_kernels.h"
#include "cpu_features.h"
#include "sparse_bitplane_driver.h"

namespace sbnn {
namespace internal {
namespace {

constexpr int kKindNeon = 13;
constexpr size_t kYBudget = 48 * 1024;
constexpr int kMaxPlanes = 16;       // counts < 65536 (two count bytes)
constexpr int32_t kMaxKfull = 16383;  // 4C - 2B(p) and its negation fit int16

// ----------------------------------------------------------------------------------
// Bit and byte transposes.

// Swaps the s-bit groups of x (kept: mask m) with those of y shifted by s: afterwards
// x holds x's low groups and y's low groups above them, y the high groups.
template <int S>
inline void swap_bits(uint8x16_t& x, uint8x16_t& y) {
  if (S == 4) {
    const uint8x16_t a = vsliq_n_u8(x, y, 4);
    y = vsriq_n_u8(y, x, 4);
    x = a;
  } else {
    const uint8x16_t m = vdupq_n_u8(S == 2 ? 0x33 : 0x55);
    const uint8x16_t a = vbslq_u8(m, x, vshlq_n_u8(y, S));
    y = vbslq_u8(m, vshrq_n_u8(x, S), y);
    x = a;
  }
}

// 8x8 bit transpose across 8 registers, per byte position: afterwards bit k of byte b
// of r[i] is bit i of byte b of the input r[k].
inline void transpose_bits8(uint8x16_t* r) {
  for (int k = 0; k < 4; ++k) swap_bits<4>(r[k], r[k + 4]);
  for (int k : {0, 1, 4, 5}) swap_bits<2>(r[k], r[k + 2]);
  for (int k : {0, 2, 4, 6}) swap_bits<1>(r[k], r[k + 1]);
}

// 16x16 byte transpose: afterwards byte j of r[b] is byte b of the input r[j].
inline void transpose_bytes16(uint8x16_t* r) {
  uint8x16_t t[16];
  for (int k = 0; k < 16; k += 2) {
    t[k] = vtrn1q_u8(r[k], r[k + 1]);
    t[k + 1] = vtrn2q_u8(r[k], r[k + 1]);
  }
  for (int g = 0; g < 16; g += 4)
    for (int i = 0; i < 2; ++i) {
      const uint16x8_t a = vreinterpretq_u16_u8(t[g + i]), b = vreinterpretq_u16_u8(t[g + i + 2]);
      r[g + i] = vreinterpretq_u8_u16(vtrn1q_u16(a, b));
      r[g + i + 2] = vreinterpretq_u8_u16(vtrn2q_u16(a, b));
    }
  for (int g = 0; g < 16; g += 8)
    for (int i = 0; i < 4; ++i) {
      const uint32x4_t a = vreinterpretq_u32_u8(r[g + i]), b = vreinterpretq_u32_u8(r[g + i + 4]);
      t[g + i] = vreinterpretq_u8_u32(vtrn1q_u32(a, b));
      t[g + i + 4] = vreinterpretq_u8_u32(vtrn2q_u32(a, b));
    }
  for (int i = 0; i < 8; ++i) {
    const uint64x2_t a = vreinterpretq_u64_u8(t[i]), b = vreinterpretq_u64_u8(t[i + 8]);
    r[i] = vreinterpretq_u8_u64(vtrn1q_u64(a, b));
    r[i + 8] = vreinterpretq_u8_u64(vtrn2q_u64(a, b));
  }
}

// ----------------------------------------------------------------------------------
// Carry-save counting.

// Full adder: l = a ^ b ^ c, h = majority(a, b, c) = (a ^ b) ? c : a.
#define SBNN_CSA(h, l, a, b, c)                     \
  {                                                 \
    const uint8x16_t u_ = veorq_u8((a), (b));       \
    const uint8x16_t c_ = (c);                      \
    h = vbslq_u8(u_, c_, (a));                      \
    l = veorq_u8(u_, c_);                           \
  }

// Counts n inputs ld(i) into bit-sliced planes[0 .. NP) with NV independent chains
// (ld(i, v) is input i of chain v).
template <int NP, int NV, class Load>
__attribute__((always_inline)) inline void hs_count(int n, Load&& ld, uint8x16_t (*planes)[kMaxPlanes]) {
  uint8x16_t ones[NV], twos[NV], fours[NV], hi[NV][NP > 3 ? NP - 3 : 1];
  for (int v = 0; v < NV; ++v) {
    ones[v] = twos[v] = fours[v] = vdupq_n_u8(0);
    for (int k = 0; k < NP - 3; ++k) hi[v][k] = vdupq_n_u8(0);
  }
  int i = 0;
  for (; i + 8 <= n; i += 8) {
    for (int v = 0; v < NV; ++v) {
      uint8x16_t ta, tb, fa, fb, e;
      SBNN_CSA(ta, ones[v], ones[v], ld(i, v), ld(i + 1, v));
      SBNN_CSA(tb, ones[v], ones[v], ld(i + 2, v), ld(i + 3, v));
      SBNN_CSA(fa, twos[v], twos[v], ta, tb);
      SBNN_CSA(ta, ones[v], ones[v], ld(i + 4, v), ld(i + 5, v));
      SBNN_CSA(tb, ones[v], ones[v], ld(i + 6, v), ld(i + 7, v));
      SBNN_CSA(fb, twos[v], twos[v], ta, tb);
      SBNN_CSA(e, fours[v], fours[v], fa, fb);
      for (int k = 0; k < NP - 3; ++k) {
        const uint8x16_t c = vandq_u8(hi[v][k], e);
        hi[v][k] = veorq_u8(hi[v][k], e);
        e = c;
      }
    }
  }
  for (; i < n; ++i) {
    for (int v = 0; v < NV; ++v) {
      uint8x16_t c = ld(i, v);
      uint8x16_t* pl[3] = {&ones[v], &twos[v], &fours[v]};
      for (int k = 0; k < 3; ++k) {
        const uint8x16_t t = vandq_u8(*pl[k], c);
        *pl[k] = veorq_u8(*pl[k], c);
        c = t;
      }
      for (int k = 0; k < NP - 3; ++k) {
        const uint8x16_t t = vandq_u8(hi[v][k], c);
        hi[v][k] = veorq_u8(hi[v][k], c);
        c = t;
      }
    }
  }
  for (int v = 0; v < NV; ++v) {
    planes[v][0] = ones[v];
    planes[v][1] = twos[v];
    planes[v][2] = fours[v];
    for (int k = 0; k < NP - 3; ++k) planes[v][3 + k] = hi[v][k];
  }
}
#undef SBNN_CSA

// Direct strategy, NV vectors of one channel: input i of vector v is the 16 bytes at
// y + off[i] + 16 v.
template <int NP, int NV>
void count_direct(const uint8_t* y, const uint32_t* off, int n, uint8x16_t (*planes)[kMaxPlanes]) {
  hs_count<NP, NV>(
      n, [&](int i, int v) __attribute__((always_inline)) { return vld1q_u8(y + off[i] + 16 * v); },
      planes);
}

// Segments: G channels per vector, segment s (128 / G bits) of input i read from
// y + offs[s][i] (zero beyond ns[s]).
template <int NP, int G>
void count_segments(const uint8_t* y, const uint8_t* zero, const uint32_t* const* offs, const int* ns,
                    uint8x16_t (*planes)[kMaxPlanes]) {
  int n = 0;
  for (int k = 0; k < G; ++k) n = std::max(n, ns[k]);
  hs_count<NP, 1>(
      n,
      [&](int i, int) __attribute__((always_inline)) {
        const uint8_t* q[G];
        for (int k = 0; k < G; ++k) q[k] = i < ns[k] ? y + offs[k][i] : zero;
        if (G == 2) {
          return vcombine_u8(vld1_u8(q[0]), vld1_u8(q[1 % G]));  // (byte loads: any alignment)
        }
        uint32x4_t v = vdupq_n_u32(0);
        uint32_t w;
        std::memcpy(&w, q[0], 4);
        v = vsetq_lane_u32(w, v, 0);
        std::memcpy(&w, q[1 % G], 4);
        v = vsetq_lane_u32(w, v, 1);
        std::memcpy(&w, q[2 % G], 4);
        v = vsetq_lane_u32(w, v, 2);
        std::memcpy(&w, q[3 % G], 4);
        v = vsetq_lane_u32(w, v, 3);
        return vreinterpretq_u8_u32(v);
      },
      planes);
}

// Scalar loads into lane 0 of a vector (LDR S / LDR D with a register offset: load
// pipe only, where a lane-inserting LD1 also occupies a vector pipe).
inline uint32x4_t load_s(const uint8_t* base, uint32_t off) {
  uint32x4_t v;
  __asm__("ldr %s0, [%1, %w2, uxtw]" : "=w"(v) : "r"(base), "r"(off) : "memory");
  return v;
}
inline uint64x2_t load_d(const uint8_t* base, uint32_t off) {
  uint64x2_t v;
  __asm__("ldr %d0, [%1, %w2, uxtw]" : "=w"(v) : "r"(base), "r"(off) : "memory");
  return v;
}

// Segments from a prepared list: entry i holds the G offsets of input i (zero_off where
// a channel has fewer connections), so a load is an address add and a lane load.
template <int NP, int G>
void count_segment_list(const uint8_t* y, const uint32_t* list, int n, uint8x16_t (*planes)[kMaxPlanes]) {
  hs_count<NP, 1>(
      n,
      [&](int i, int) __attribute__((always_inline)) {
        const uint32_t* o = list + G * i;
        if constexpr (G == 2) {
          const uint64x2_t a = load_d(y, o[0]), b = load_d(y, o[1]);
          return vreinterpretq_u8_u64(vzip1q_u64(a, b));
        }
        // Two 64-bit loads for the 4 offsets; segments 0, 1 by LDR S + ZIP1, segments 2,
        // 3 through a general register (LDR W, ORR, INS): the vector pipes, which the
        // CSAs keep busy, see 2 instructions per input instead of 3 (llvm-mca
        // Neoverse-N1: 25.6 instead of 32 cycles per 8 inputs).
        uint64_t ab, cd;
        std::memcpy(&ab, o, 8);
        std::memcpy(&cd, o + 2, 8);
        const uint32x4_t a = load_s(y, static_cast<uint32_t>(ab)), b = load_s(y, static_cast<uint32_t>(ab >> 32));
        uint32_t wc, wd;
        std::memcpy(&wc, y + static_cast<uint32_t>(cd), 4);
        std::memcpy(&wd, y + (cd >> 32), 4);
        return vreinterpretq_u8_u64(
            vsetq_lane_u64(wc | static_cast<uint64_t>(wd) << 32, vreinterpretq_u64_u32(vzip1q_u32(a, b)), 1));
      },
      planes);
}

typedef void (*DirectFn)(const uint8_t*, const uint32_t*, int, uint8x16_t (*)[kMaxPlanes]);
typedef void (*SegFn)(const uint8_t*, const uint8_t*, const uint32_t* const*, const int*,
                      uint8x16_t (*)[kMaxPlanes]);
#define SBNN_NP_TABLE(F, ...)                                                               \
  {&F<3, __VA_ARGS__>,  &F<4, __VA_ARGS__>,  &F<5, __VA_ARGS__>,  &F<6, __VA_ARGS__>,       \
   &F<7, __VA_ARGS__>,  &F<8, __VA_ARGS__>,  &F<9, __VA_ARGS__>,  &F<10, __VA_ARGS__>,      \
   &F<11, __VA_ARGS__>, &F<12, __VA_ARGS__>, &F<13, __VA_ARGS__>, &F<14, __VA_ARGS__>,      \
   &F<15, __VA_ARGS__>, &F<16, __VA_ARGS__>}
const DirectFn kDirect[2][kMaxPlanes - 2] = {SBNN_NP_TABLE(count_direct, 1), SBNN_NP_TABLE(count_direct, 2)};
const SegFn kSeg[2][kMaxPlanes - 2] = {SBNN_NP_TABLE(count_segments, 2), SBNN_NP_TABLE(count_segments, 4)};
typedef void (*ListFn)(const uint8_t*, const uint32_t*, int, uint8x16_t (*)[kMaxPlanes]);
const ListFn kList[2][kMaxPlanes - 2] = {SBNN_NP_TABLE(count_segment_list, 2),
                                         SBNN_NP_TABLE(count_segment_list, 4)};
#undef SBNN_NP_TABLE

// Planes of one vector -> count bytes: out[i] byte b = low byte of the count of bit
// 8b + i of the vector, out[8 + i] the high byte (when np > 8).
inline void planes_to_counts(const uint8x16_t* planes, int np, uint8x16_t* out) {
  for (int k = 0; k < 8; ++k) out[k] = k < np ? planes[k] : vdupq_n_u8(0);
  transpose_bits8(out);
  if (np > 8) {
    for (int k = 0; k < 8; ++k) out[8 + k] = 8 + k < np ? planes[8 + k] : vdupq_n_u8(0);
    transpose_bits8(out + 8);
  }
}

// Prepared segment lists (SparsePrepared::extra) for plans whose whole band fits 64
// bits (8x8 and 4x4 maps): for unit u (16 G channels from g * og + 16 G u' in group g)
// and vector j, first[u * 16 + j] .. first[u * 16 + j + 1] are its inputs, G offsets each.
struct SegLists {
  uint32_t magic;  // kSegListMagic
  int G, groups, og, units_per_group;
  const BitplanePlan* plan;  // the plan the offsets index
  uint32_t* first;           // [groups * units_per_group * 16 + 1]
  uint32_t* offs;            // [first[last] * G]
};
constexpr uint32_t kSegListMagic = 0x53425347u;  // "SBSG"

int band_segments(int band_bits) { return band_bits > 64 ? 1 : band_bits > 32 ? 2 : 4; }

void free_seg_lists(void* p) { std::free(p); }

SegLists* build_seg_lists(const BConv2DShape& s, const SparseFilter& f, const BitplanePlan& p) {
  const int G = band_segments(p.nb * p.R);
  if (G == 1) return nullptr;
  const int og = f.og, upg = (og + 16 * G - 1) / (16 * G);
  const size_t nfirst = static_cast<size_t>(s.groups) * upg * 16 + 1;
  std::vector<uint32_t> first(nfirst, 0);
  auto conns = [&](int o) { return static_cast<uint32_t>(f.conn_begin[o + 1] - f.conn_begin[o]); };
  size_t k = 0;
  for (int g = 0; g < s.groups; ++g)
    for (int u = 0; u < upg; ++u)
      for (int j = 0; j < 16; ++j, ++k) {
        uint32_t n = 0;
        for (int sg = 0; sg < G; ++sg) {
          const int c = 16 * G * u + 16 * sg + j;
          if (c < og) n = std::max(n, conns(g * og + c));
        }
        first[k + 1] = first[k] + n;
      }
  const size_t entries = first.back();
  const size_t head = (sizeof(SegLists) + 63) / 64 * 64;
  void* mem = nullptr;
  if (posix_memalign(&mem, 64, head + 4 * nfirst + 4 * entries * G + 64) != 0 || mem == nullptr) return nullptr;
  auto* sl = new (mem) SegLists();
  sl->magic = kSegListMagic;
  sl->G = G;
  sl->groups = s.groups;
  sl->og = og;
  sl->units_per_group = upg;
  sl->plan = &p;
  sl->first = reinterpret_cast<uint32_t*>(static_cast<char*>(mem) + head);
  sl->offs = sl->first + nfirst;
  std::copy(first.begin(), first.end(), sl->first);
  k = 0;
  for (int g = 0; g < s.groups; ++g)
    for (int u = 0; u < upg; ++u)
      for (int j = 0; j < 16; ++j, ++k) {
        uint32_t* e = sl->offs + static_cast<size_t>(sl->first[k]) * G;
        const uint32_t n = sl->first[k + 1] - sl->first[k];
        for (int sg = 0; sg < G; ++sg) {
          const int c = 16 * G * u + 16 * sg + j, o = g * og + c;
          const uint32_t m = c < og ? conns(o) : 0;
          for (uint32_t i = 0; i < n; ++i)
            e[static_cast<size_t>(i) * G + sg] = i < m ? p.off[f.conn_begin[o] + i] : *p.zero_off;
        }
      }
  return sl;
}

// ----------------------------------------------------------------------------------
// Output.

// One valid output pixel of the band: its band bit, the offset of its dot row
// (channel 0), of its border class's base row (channel o_begin), 2 B(p), its pixel
// index in the output tensor and in the band (for BandCtx::qd).
struct Pix {
  int32_t q;
  int32_t base_off;
  int64_t dst_off;
  int64_t px;
  int32_t qi;
  int16_t b2;
};

// What emit writes: the kernel contract's dot, or a fused output (bconv2d_output.h)
// straight from the 16 channels' registers, with the operations of transform_impl.h
// (so the results are the reference transforms' bit for bit).
enum EmitMode { kEmitDot, kEmitBits, kEmitFloat, kEmitQFloat, kEmitQBits };

// One 16-channel block (oc .. oc + nch - 1) of emit: base + [u = -1] per class (at
// Pix::base_off), the sign masks, and the output's per-channel parameters in registers
// (zero-padded past nch).
struct EmitBlock {
  const int32_t* bp;
  const int16_t* lim;  // kEmitBits: saturate16(limit - bp), indexed like bp
  int oc, nch;
  int16x8_t sm[2];
  float32x4_t pa[4], pb[4], pc[4];  // kEmitFloat: m, b; kEmitQ*: a, d, b
};

// Fills `e`'s registers from the output's parameters (channels oc .. oc + nch - 1).
inline void load_params(const float* src, int oc, int nch, float32x4_t* v) {
  float tmp[16] = {0};
  std::memcpy(tmp, src + oc, sizeof(float) * nch);
  for (int k = 0; k < 4; ++k) v[k] = vld1q_f32(tmp + 4 * k);
}

// The 16 bits of a 16-lane byte mask (bit j = lane j): bit weights and three pairwise
// adds (simple vector ops; ADDV is slower).
inline uint32_t movemask8x16(uint8x16_t m) {
  const uint8x16_t w = {1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128};
  uint8x16_t b = vandq_u8(m, w);
  b = vpaddq_u8(b, b);
  b = vpaddq_u8(b, b);
  b = vpaddq_u8(b, b);
  return vgetq_lane_u16(vreinterpretq_u16_u8(b), 0);
}

// The 16 channels' bits (bit j = lane j of the four masks) as a 16-bit value.
inline uint32_t movemask16(uint32x4_t m0, uint32x4_t m1, uint32x4_t m2, uint32x4_t m3) {
  const uint16x8_t lo = vcombine_u16(vmovn_u32(m0), vmovn_u32(m1));
  const uint16x8_t hi = vcombine_u16(vmovn_u32(m2), vmovn_u32(m3));
  return movemask8x16(vcombine_u8(vmovn_u16(lo), vmovn_u16(hi)));
}

// ORs the 16-bit mask of channels oc.. into a bitpacked pixel (words of 32 channels).
inline void or_bits(uint32_t* w, int oc, uint32_t bits) {
  const int sh = oc & 31;
  w += oc >> 5;
  w[0] |= bits << sh;
  if (sh > 16) w[1] |= bits >> (32 - sh);
}

// Stores nch (<= 16) floats of v[0..4) at o.
inline void store_floats(float* o, const float32x4_t* v, int nch) {
  if (nch == 16) {
    for (int k = 0; k < 4; ++k) vst1q_f32(o + 4 * k, v[k]);
    return;
  }
  float tmp[16];
  for (int k = 0; k < 4; ++k) vst1q_f32(tmp + 4 * k, v[k]);
  std::memcpy(o, tmp, sizeof(float) * nch);
}

// The fused q transform of 4 channels (transform_neon.cc's q_affine4 on registers).
inline float32x4_t q_affine(int32x4_t d, float32x4_t fq, float32x4_t a, float32x4_t dd, float32x4_t b,
                            float32x4_t lo, float32x4_t hi) {
  const float32x4_t t = vmulq_f32(vcvtq_f32_s32(d), a);
  const float32x4_t u = vmulq_f32(fq, dd);
  float32x4_t y = vaddq_f32(vaddq_f32(t, u), b);
  y = vbslq_f32(vcltq_f32(y, lo), lo, y);  // (selects: FMAX/FMIN would turn NaN into lo/hi)
  return vbslq_f32(vcgtq_f32(y, hi), hi, y);
}

// The output of 16 channels (block e) for pixels pix[0 .. n): counts in pixel order at
// tr + 16 q (low bytes) and trh + 16 q (high bytes, when TWO), q = pix[k].q - q0.
// kEmitDot writes dot (full-tensor base); the other modes x.out.
// (One function per mode and everything it reads in locals: the stores must not make
// the loop reload its parameters.)
template <bool TWO, int MODE>
__attribute__((noinline)) void emit(const BandCtx& x, const Pix* pix, int n, int q0, const uint8_t* tr,
                                    const uint8_t* trh, const EmitBlock& e, int32_t* dot) {
  const int16x8_t m0 = e.sm[0], m1 = e.sm[1];
  const int nch = e.nch, oc = e.oc;
  const int32_t* const bp = e.bp;
  const int16_t* const limits = e.lim;
  float32x4_t pa[4], pb[4], pc[4];
  for (int j = 0; j < 4; ++j) {
    pa[j] = e.pa[j];
    pb[j] = e.pb[j];
    pc[j] = e.pc[j];
  }
  const BConv2DOutput* out = x.out;
  const int C = MODE == kEmitDot ? 0 : out->channels;
  void* const obase = MODE == kEmitDot ? nullptr : out->out;
  const float* const qadd = MODE == kEmitQFloat ? out->q.add : nullptr;
  const int32_t* const qd = x.qd;
  const int words = (C + 31) / 32;
  int32x4_t K = vdupq_n_s32(0), xlo = K, xhi = K;
  float32x4_t flo = vdupq_n_f32(0.0f), fhi = flo;
  if (MODE == kEmitFloat) {
    K = vdupq_n_s32(out->t.K);
    xlo = vdupq_n_s32(out->t.x_min);
    xhi = vdupq_n_s32(out->t.x_max);
  }
  if (MODE == kEmitQFloat || MODE == kEmitQBits) {
    flo = vdupq_n_f32(out->q.lo);
    fhi = vdupq_n_f32(out->q.hi);
  }
  for (int k = 0; k < n; ++k) {
    const Pix& px = pix[k];
    const uint8x16_t c = vld1q_u8(tr + 16 * (px.q - q0));
    int16x8_t lo, hi;
    if (TWO) {
      const uint8x16_t h = vld1q_u8(trh + 16 * (px.q - q0));
      lo = vshlq_n_s16(vreinterpretq_s16_u8(vzip1q_u8(c, h)), 2);
      hi = vshlq_n_s16(vreinterpretq_s16_u8(vzip2q_u8(c, h)), 2);
    } else {
      lo = vreinterpretq_s16_u16(vshll_n_u8(vget_low_u8(c), 2));
      hi = vreinterpretq_s16_u16(vshll_high_n_u8(c, 2));
    }
    // lo, hi: u * (4C - 2B(p)) - [u = -1], i.e. dot - bp (in int16: see kMaxKfull).
    const int16x8_t b2 = vdupq_n_s16(px.b2);
    lo = veorq_s16(vsubq_s16(lo, b2), m0);
    hi = veorq_s16(vsubq_s16(hi, b2), m1);
    if (MODE == kEmitBits) {
      // dot < limit  <=>  dot - bp < limit - bp, compared in int16 (saturated limits
      // keep the answer: |dot - bp| < 32767).
      const int16_t* l = limits + px.base_off;
      const uint16x8_t c0 = vcltq_s16(lo, vld1q_s16(l)), c1 = vcltq_s16(hi, vld1q_s16(l + 8));
      uint32_t bits = movemask8x16(vcombine_u8(vmovn_u16(c0), vmovn_u16(c1)));
      if (nch < 16) bits &= (1u << nch) - 1u;
      or_bits(static_cast<uint32_t*>(obase) + px.px * words, oc, bits);
      continue;
    }
    const int32_t* b = bp + px.base_off;
    int32x4_t d[4];
    d[0] = vaddw_s16(vld1q_s32(b), vget_low_s16(lo));
    d[1] = vaddw_high_s16(vld1q_s32(b + 4), lo);
    d[2] = vaddw_s16(vld1q_s32(b + 8), vget_low_s16(hi));
    d[3] = vaddw_high_s16(vld1q_s32(b + 12), hi);
    if (MODE == kEmitDot) {
      int32_t* o = dot + px.dst_off;
      if (nch == 16) {
        for (int j = 0; j < 4; ++j) vst1q_s32(o + 4 * j, d[j]);
      } else {
        int32_t tmp[16];
        for (int j = 0; j < 4; ++j) vst1q_s32(tmp + 4 * j, d[j]);
        std::memcpy(o, tmp, sizeof(int32_t) * nch);
      }
    } else if (MODE == kEmitFloat) {
      float32x4_t y[4];
      for (int j = 0; j < 4; ++j) {
        const int32x4_t v = vminq_s32(xhi, vmaxq_s32(xlo, vsubq_s32(K, d[j])));
        y[j] = vaddq_f32(vmulq_f32(vcvtq_f32_s32(v), pa[j]), pb[j]);
      }
      store_floats(static_cast<float*>(obase) + px.px * C + oc, y, nch);
    } else {
      const float32x4_t fq = vdupq_n_f32(static_cast<float>(qd[px.qi]));
      float32x4_t y[4];
      for (int j = 0; j < 4; ++j) y[j] = q_affine(d[j], fq, pa[j], pb[j], pc[j], flo, fhi);
      if (MODE == kEmitQBits) {
        uint32_t bits = movemask16(vcltzq_f32(y[0]), vcltzq_f32(y[1]), vcltzq_f32(y[2]), vcltzq_f32(y[3]));
        if (nch < 16) bits &= (1u << nch) - 1u;
        or_bits(static_cast<uint32_t*>(obase) + px.px * words, oc, bits);
        continue;
      }
      if (qadd != nullptr) {
        const float* a = qadd + px.px * C + oc;
        if (nch == 16) {
          for (int j = 0; j < 4; ++j) y[j] = vaddq_f32(y[j], vld1q_f32(a + 4 * j));
        } else {
          float r[16] = {0};
          std::memcpy(r, a, sizeof(float) * nch);
          for (int j = 0; j < 4; ++j) y[j] = vaddq_f32(y[j], vld1q_f32(r + 4 * j));
        }
      }
      store_floats(static_cast<float*>(obase) + px.px * C + oc, y, nch);
    }
  }
}

// ----------------------------------------------------------------------------------
// Input transposition.

// Where transpose_row_neon puts a row (Mode): into T (kToT; extract_rows_* then cuts
// the Y rows out of it), or, when R == 8 and a phase has at most 8 pixels (a transposed
// byte is a whole row), straight into Y (kToY: per filter column one vector shift and
// mask for 16 channels, then 16 strided byte stores) or into the band's staging rows
// (kToStage: the same shifted vectors, one 16-byte store each; build_band_staged turns
// the staging rows into Y with 16x16 byte transposes).
enum TransposeMode { kToT, kToY, kToStage };

// Staging rows (kToStage): S[fx][slot][channel position], slot = ph * rows_pp + jj (the
// byte of the row within a channel's Y plane), cgp positions per slot; channel
// 128 b + 8 k + c sits at position 128 b + 16 c + k (the order the bit transpose leaves
// the channel bytes in).
inline size_t stage_cgp(int cg) { return static_cast<size_t>((cg + 127) / 128) * 128; }
inline size_t stage_bytes(const BConv2DShape& s, int cg) { return static_cast<size_t>(s.filter_w) * 16 * stage_cgp(cg); }

// transpose_row_portable's result (T and pc for input row iy of group g) with the 8x8
// bit transposes done 16 channel bytes x 8 pixels at a time across 8 registers; kToY and
// kToStage write the rows of stored row jj of phase ph instead of T (see TransposeMode).
template <TransposeMode MODE = kToT>
inline void transpose_row_neon(BandCtx& x, int iy, int ph = 0, int jj = 0, uint8_t* stage = nullptr) {
  constexpr bool DIRECT = MODE != kToT;
  const BConv2DShape& s = *x.s;
  const BitplanePlan& p = *x.p;
  const int cg = x.f->cg, sw = p.sw, tq = p.tq;
  const int cg8 = (cg + 7) & ~7, nbytes = (cg + 7) / 8;
  if (!DIRECT) std::memset(x.T, 0, sizeof(uint64_t) * cg8 * sw * tq);
  const size_t pstride = static_cast<size_t>(s.in_words) * 4;
  const size_t rowoff = (static_cast<size_t>(ph) * p.rows_pp + jj) * p.rb;
  const uint8x16_t outmask = vdupq_n_u8(static_cast<uint8_t>(s.out_w >= 8 ? 0xff : (1u << s.out_w) - 1u));
  // The group's channels start at byte g * filter_words * 4 of a pixel when groups are
  // word-aligned (groups == 1 or cg % 32 == 0): the caller checks.
  const size_t gofs = static_cast<size_t>(x.g) * s.filter_words * 4;
  const size_t avail = pstride - gofs;  // bytes of the pixel from the group's start
  const uint8_t* row = reinterpret_cast<const uint8_t*>(x.input) + (x.b * s.in_h + iy) * s.in_w * pstride + gofs;
  uint8_t* T8 = reinterpret_cast<uint8_t*>(x.T);
  const size_t cstride = static_cast<size_t>(sw) * tq * 8;  // bytes between channels
  const uint8_t last_mask = static_cast<uint8_t>(cg % 8 == 0 ? 0xff : (1u << (cg % 8)) - 1u);
  for (int phi = 0; phi < sw && phi < s.in_w; ++phi) {
    const int nxp = (s.in_w - phi + sw - 1) / sw;
    int32_t* pc = x.pc + phi * x.pc_stride + x.pc_margin;
    for (int j0 = 0; j0 < nxp; j0 += 8) {
      const int n = std::min(8, nxp - j0);
      uint32_t cnt[8] = {0, 0, 0, 0, 0, 0, 0, 0};
      for (int k0 = 0; k0 < nbytes; k0 += 16) {
        const int nb = std::min(16, nbytes - k0);
        // Bytes k0 + nb - 1 and beyond are masked (the group's last channels).
        alignas(16) uint8_t mask_bytes[16];
        for (int k = 0; k < 16; ++k)
          mask_bytes[k] = k < nb - 1 ? 0xff : k == nb - 1 ? (k0 + k == nbytes - 1 ? last_mask : 0xff) : 0;
        const uint8x16_t mask = vld1q_u8(mask_bytes);
        uint8x16_t r[8];
        for (int i = 0; i < 8; ++i) {
          if (i >= n) {
            r[i] = vdupq_n_u8(0);
            continue;
          }
          const uint8_t* px = row + static_cast<size_t>((j0 + i) * sw + phi) * pstride + k0;
          uint8x16_t v;
          if (static_cast<size_t>(k0) + 16 <= avail) {
            v = vld1q_u8(px);
          } else if (nb <= 8 && static_cast<size_t>(k0) + 8 <= avail) {
            v = vcombine_u8(vld1_u8(px), vdup_n_u8(0));
          } else {
            alignas(16) uint8_t tmp[16] = {0};
            std::memcpy(tmp, px, std::min<size_t>(16, avail - k0));
            v = vld1q_u8(tmp);
          }
          v = vandq_u8(v, mask);
          cnt[i] += vaddvq_u8(vcntq_u8(v));
          r[i] = v;
        }
        transpose_bits8(r);
        // r[c] byte k: pixels j0 .. j0 + 7 of channel 8 (k0 + k) + c.
        if (DIRECT) {
          for (int fx = 0; fx < s.filter_w; ++fx) {
            if (p.phx[fx] != phi) continue;
            const int8x16_t shift = vdupq_n_s8(static_cast<int8_t>(std::max(-8, std::min(8, -p.qx[fx]))));
            if (MODE == kToStage) {
              uint8_t* st = stage + (static_cast<size_t>(fx) * 16 + rowoff) * stage_cgp(cg) + 8 * k0;
              for (int c = 0; c < 8; ++c) vst1q_u8(st + 16 * c, vandq_u8(vshlq_u8(r[c], shift), outmask));
              continue;
            }
            uint8_t* ybase = x.Y + static_cast<size_t>(fx) * cg * p.plane_bytes + rowoff +
                             static_cast<size_t>(8 * k0) * p.plane_bytes;
            for (int c = 0; c < 8; ++c) {
              alignas(16) uint8_t b[16];
              vst1q_u8(b, vandq_u8(vshlq_u8(r[c], shift), outmask));
              uint8_t* d = ybase + c * p.plane_bytes;
              // (channels past cg would land in the next column's block)
              for (int k = 0; k < nb && 8 * (k0 + k) + c < cg; ++k) d[static_cast<size_t>(8 * k) * p.plane_bytes] = b[k];
            }
          }
          continue;
        }
        uint8_t* dst = T8 + static_cast<size_t>(phi) * tq * 8 + (p.tmargin + j0) / 8 +
                       static_cast<size_t>(8 * k0) * cstride;
        for (int c = 0; c < 8; ++c) {
          alignas(16) uint8_t b[16];
          vst1q_u8(b, r[c]);
          uint8_t* d = dst + c * cstride;
          for (int k = 0; k < nb; ++k) d[static_cast<size_t>(8 * k) * cstride] = b[k];
        }
      }
      for (int i = 0; i < n; ++i) pc[j0 + i] = static_cast<int32_t>(cnt[i]);
    }
  }
}

// extract_rows_portable for rows of RB <= 8 bytes (R <= 64): one shifted, masked word
// per (column, channel), stored with one RB-byte store (no library call).
template <int RB>
inline void extract_rows_small(BandCtx& x, int ph, int jj) {
  const BConv2DShape& s = *x.s;
  const BitplanePlan& p = *x.p;
  const int cg = x.f->cg, sw = p.sw, tq = p.tq;
  const size_t rowoff = (static_cast<size_t>(ph) * p.rows_pp + jj) * RB;
  const uint64_t mask = s.out_w >= 64 ? ~uint64_t{0} : (uint64_t{1} << s.out_w) - 1;
  const size_t cstep = static_cast<size_t>(sw) * tq;
  for (int fx = 0; fx < s.filter_w; ++fx) {
    const long start = p.tmargin + p.qx[fx];
    const int sh = static_cast<int>(start & 63);
    const uint64_t* t = x.T + static_cast<size_t>(p.phx[fx]) * tq + (start >> 6);
    uint8_t* y = x.Y + static_cast<size_t>(fx) * cg * p.plane_bytes + rowoff;
    for (int c = 0; c < cg; ++c, t += cstep, y += p.plane_bytes) {
      // (t[1] << 1) << (63 - sh): the high part without a shift by 64 when sh == 0.
      const uint64_t v = ((t[0] >> sh) | ((t[1] << 1) << (63 - sh))) & mask;
      std::memcpy(y, &v, RB);  // little-endian: the RB low bytes
    }
  }
}

// One border class's base + [u = -1] (the EOR-negation's +1) of channels [o0, o1) into
// bp[0 ..), and with `limit` the limits relative to it, saturated to int16, into lim.
inline void class_bases(const int32_t* base, const int8_t* sign, const int32_t* limit, int o0, int o1,
                        int32_t* bp, int16_t* lim) {
  int o = o0;
  for (; o + 8 <= o1; o += 8) {
    const int16x8_t neg = vmovl_s8(vshr_n_s8(vld1_s8(sign + o), 7));  // -1 where u = -1
    const int32x4_t b0 = vsubq_s32(vld1q_s32(base + o), vmovl_s16(vget_low_s16(neg)));
    const int32x4_t b1 = vsubq_s32(vld1q_s32(base + o + 4), vmovl_high_s16(neg));
    vst1q_s32(bp + o - o0, b0);
    vst1q_s32(bp + o - o0 + 4, b1);
    if (limit != nullptr)
      vst1q_s16(lim + o - o0, vcombine_s16(vqmovn_s32(vqsubq_s32(vld1q_s32(limit + o), b0)),
                                           vqmovn_s32(vqsubq_s32(vld1q_s32(limit + o + 4), b1))));
  }
  for (; o < o1; ++o) {
    bp[o - o0] = base[o] + (sign[o] < 0 ? 1 : 0);
    if (limit != nullptr) {
      const int64_t l = int64_t{limit[o]} - bp[o - o0];
      lim[o - o0] = static_cast<int16_t>(std::max<int64_t>(-32768, std::min<int64_t>(32767, l)));
    }
  }
}

inline int emit_mode(const BandCtx& x) {
  if (x.out == nullptr) return kEmitDot;
  switch (x.out->kind) {
    case BConv2DOutputKind::kBits: return kEmitBits;
    case BConv2DOutputKind::kFloat: return kEmitFloat;
    case BConv2DOutputKind::kQFloat: return kEmitQFloat;
    case BConv2DOutputKind::kQBits: return kEmitQBits;
  }
  return kEmitDot;
}

template <bool TWO>
void emit_mode_of(const BandCtx& x, int mode, const Pix* pix, int n, int q0, const uint8_t* tr,
                  const uint8_t* trh, const EmitBlock& e) {
  switch (mode) {
    case kEmitDot: return emit<TWO, kEmitDot>(x, pix, n, q0, tr, trh, e, x.dot + e.oc);
    case kEmitBits: return emit<TWO, kEmitBits>(x, pix, n, q0, tr, trh, e, nullptr);
    case kEmitFloat: return emit<TWO, kEmitFloat>(x, pix, n, q0, tr, trh, e, nullptr);
    case kEmitQFloat: return emit<TWO, kEmitQFloat>(x, pix, n, q0, tr, trh, e, nullptr);
    default: return emit<TWO, kEmitQBits>(x, pix, n, q0, tr, trh, e, nullptr);
  }
}

inline void emit_any(const BandCtx& x, int mode, bool two, const Pix* pix, int n, int q0, const uint8_t* tr,
                     const uint8_t* trh, const EmitBlock& e) {
  if (two) emit_mode_of<true>(x, mode, pix, n, q0, tr, trh, e);
  else emit_mode_of<false>(x, mode, pix, n, q0, tr, trh, e);
}

// True when the band's rows go through the staging rows (kToStage): R == 8, a phase
// of at most 8 pixels (every phase has one: sw <= in_w) and Y planes of at most 16
// bytes, i.e. the narrow maps (8x8 and 4x4 outputs), where the strided byte stores of
// kToY cost a third of the kernel.
inline bool staged_rows(const BConv2DShape& s, const BitplanePlan& p) {
  return p.R == 8 && (s.in_w + p.sw - 1) / p.sw <= 8 && s.in_w >= p.sw && p.plane_bytes <= 16;
}

// build_band_generic with kToStage: the band's rows go to the staging rows (zero where
// no input row is), then to Y by 16x16 byte transposes (16 slots x 16 channels: one
// 8- or 16-byte store per channel plane instead of one byte store per row).
inline void build_band_staged(BandCtx& x, uint8_t* stage) {
  const BConv2DShape& s = *x.s;
  const BitplanePlan& p = *x.p;
  const int cg = x.f->cg, pb = static_cast<int>(p.plane_bytes);
  const size_t cgp = stage_cgp(cg);
  for (int fx = 0; fx < s.filter_w; ++fx) std::memset(stage + static_cast<size_t>(fx) * 16 * cgp, 0, pb * cgp);
  const int rows = x.nbr + p.qmax - p.qmin;  // stored rows needed per phase
  for (int ph = 0; ph < p.sh; ++ph) {
    if (!phase_used(p, s.filter_h, s.filter_w, ph)) continue;
    for (int jj = 0; jj < rows; ++jj) {
      const long iy = static_cast<long>(x.oy0 + p.qmin + jj) * p.sh + ph;
      int32_t* h = x.H + (static_cast<size_t>(ph) * p.rows_pp + jj) * s.out_w;
      if (iy < 0 || iy >= s.in_h) {
        for (int ox = 0; ox < s.out_w; ++ox) h[ox] = 0;
        continue;
      }
      transpose_row_neon<kToStage>(x, static_cast<int>(iy), ph, jj, stage);
      h_row(x, h);
    }
  }
  band_bits(x);
  for (int fx = 0; fx < s.filter_w; ++fx) {
    uint8_t* yb = x.Y + static_cast<size_t>(fx) * cg * pb;
    const uint8_t* sb = stage + static_cast<size_t>(fx) * 16 * cgp;
    for (size_t b = 0; b < cgp; b += 128)
      for (int c = 0; c < 8; ++c) {
        uint8x16_t r[16];
        for (int sl = 0; sl < 16; ++sl) r[sl] = sl < pb ? vld1q_u8(sb + sl * cgp + b + 16 * c) : vdupq_n_u8(0);
        transpose_bytes16(r);
        // r[k]: the pb slots of channel b + 8 k + c.
        for (int k = 0; k < 16; ++k) {
          const size_t ch = b + 8 * k + c;
          if (ch >= static_cast<size_t>(cg)) break;
          if (pb == 16) vst1q_u8(yb + ch * 16, r[k]);
          else vst1_u8(yb + ch * 8, vget_low_u8(r[k]));
        }
      }
  }
}

struct NeonImpl : BitplanePortable<2> {
  // Fused outputs (bconv2d_output.h): emit writes bits and floats itself from the 16
  // channels' registers (no int32 dot in memory); the portable fallback of
  // process_channels (write_output_one) writes them too.
  static bool native_output(const BandCtx&) { return true; }
  // kBits is compared in registers after the count bytes (emit), not on the count planes
  // (sparse_bitplane_bits.h): on NEON the planes' form measured slower, 1.18x on
  // 56x56x64 (one border class) and 1.7x on 32x32x64 (nine), docs/sparse_kernels.md.
  static bool bits_sliced(const BitplanePlan&) { return false; }

  static void build_band(BandCtx& x) {
    const BConv2DShape& s = *x.s;
    if (s.groups != 1 && x.f->cg % 32 != 0) {
      BitplanePortable<2>::build_band(x);
      return;
    }
    if (staged_rows(s, *x.p)) {
      size_t a, b, c;
      return build_band_staged(x, reinterpret_cast<uint8_t*>(x.work) + layout(*x.p, *x.f, &a, &b, &c));
    }
    switch (x.p->R) {
      case 8:
        if ((s.in_w + x.p->sw - 1) / x.p->sw <= 8 && s.in_w >= x.p->sw)
          return build_band_generic(x, [](BandCtx& c, int iy, int ph, int jj) {
            transpose_row_neon<kToY>(c, iy, ph, jj);
          });
        return build_band_generic(x, [](BandCtx& c, int iy, int ph, int jj) {
          transpose_row_neon(c, iy);
          extract_rows_small<1>(c, ph, jj);
        });
      case 16:
        return build_band_generic(x, [](BandCtx& c, int iy, int ph, int jj) {
          transpose_row_neon(c, iy);
          extract_rows_small<2>(c, ph, jj);
        });
      case 32:
        return build_band_generic(x, [](BandCtx& c, int iy, int ph, int jj) {
          transpose_row_neon(c, iy);
          extract_rows_small<4>(c, ph, jj);
        });
      case 64:
        return build_band_generic(x, [](BandCtx& c, int iy, int ph, int jj) {
          transpose_row_neon(c, iy);
          extract_rows_small<8>(c, ph, jj);
        });
      default:
        return build_band_generic(x, [](BandCtx& c, int iy, int ph, int jj) {
          transpose_row_neon(c, iy);
          extract_rows_portable(c, ph, jj);
        });
    }
  }

  // Work memory of process_channels: bp [ncl][og] int32, pix [nb * R], CB [2][8 or 16][16]
  // vectors (count bytes of 16 channels, before the byte transpose), TR [2][G or 2
  // vectors * 128][16] bytes (count bytes in pixel order, low and high).
  static size_t layout(const BitplanePlan& p, const SparseFilter& f, size_t* o_pix, size_t* o_cb,
                       size_t* o_tr, size_t* o_lim = nullptr) {
    auto up = [](size_t v) { return (v + 63) / 64 * 64; };
    const size_t ncl = static_cast<size_t>(p.nvc) * p.nhc;
    *o_pix = up(sizeof(int32_t) * (ncl * f.og + 16));
    *o_cb = *o_pix + up(sizeof(Pix) * (static_cast<size_t>(p.nb) * p.R + 1));
    *o_tr = *o_cb + 2 * 16 * 16 * 16;
    const size_t lim = *o_tr + 2 * 256 * 16 * 2;  // int16 limits [ncl][og] (kEmitBits)
    if (o_lim != nullptr) *o_lim = lim;
    return lim + up(sizeof(int16_t) * (ncl * f.og + 16));
  }

  // (+ the staging rows after the layout, when build_band uses them)
  static size_t work_bytes(const BitplanePlan& p, const SparseFilter& f, const SparsePrepared* sp) {
    size_t a, b, c;
    const size_t stage = staged_rows(p.shape, p) ? stage_bytes(p.shape, f.cg) : 0;
    return std::max(layout(p, f, &a, &b, &c) + stage, BitplanePortable<2>::work_bytes(p, f, sp));
  }

  static void process_channels(BandCtx& x, int o_begin, int o_end) {
    const BConv2DShape& s = *x.s;
    const BitplanePlan& p = *x.p;
    const SparseFilter& f = *x.f;
    const int lq = (x.nbr * p.R + 63) / 64;
    const int np = std::max(3, bit_length(static_cast<unsigned>(f.max_conns)));
    if (np > kMaxPlanes || f.kfull > kMaxKfull) {
      BitplanePortable<2>::process_channels(x, o_begin, o_end);
      return;
    }
    const int band_bits = x.nbr * p.R;
    const int G = band_segments(band_bits);
    const bool two = np > 8;
    size_t o_pix, o_cb, o_tr, o_lim;
    layout(p, f, &o_pix, &o_cb, &o_tr, &o_lim);
    uint8_t* work = reinterpret_cast<uint8_t*>(x.work);
    int32_t* bp = reinterpret_cast<int32_t*>(work);
    int16_t* lim = reinterpret_cast<int16_t*>(work + o_lim);
    Pix* pix = reinterpret_cast<Pix*>(work + o_pix);
    uint8x16_t* CB = reinterpret_cast<uint8x16_t*>(work + o_cb);  // [v 2][i 16][j 16]
    uint8_t* TR = work + o_tr;                                     // [hi 2][512 q][16]
    const int O = s.out_channels, ow = s.out_w, og = o_end - o_begin;
    const int ncl = p.nvc * p.nhc;
    const int mode = emit_mode(x);
    for (int cl = 0; cl < ncl; ++cl)
      class_bases(p.base + static_cast<size_t>(cl) * O, f.sign, mode == kEmitBits ? x.out->limit : nullptr,
                  o_begin, o_end, bp + static_cast<size_t>(cl) * og, lim + static_cast<size_t>(cl) * og);
    // The band's valid pixels in band-bit order.
    int npix = 0;
    for (int r = 0; r < x.nbr; ++r) {
      const int oy = x.oy0 + r;
      const int64_t row = (static_cast<int64_t>(x.b) * s.out_h + oy) * ow;
      for (int ox = 0; ox < ow; ++ox) {
        Pix& px = pix[npix++];
        px.q = r * p.R + ox;
        px.base_off = (p.vclass[oy] * p.nhc + p.hclass[ox]) * og;
        px.dst_off = (row + ox) * O;
        px.px = row + ox;
        px.qi = r * ow + ox;
        px.b2 = static_cast<int16_t>(2 * x.B[static_cast<size_t>(r) * ow + ox]);
      }
    }
    const Pix* pix_end = pix + npix;
    auto emit_range = [&](int q0, int q1, const uint8_t* tr, const uint8_t* trh, int oc, int nch) {
      const Pix* a = pix;
      while (a < pix_end && a->q < q0) ++a;
      const Pix* e = a;
      while (e < pix_end && e->q < q1) ++e;
      EmitBlock eb;
      eb.bp = bp + (oc - o_begin);
      eb.lim = lim + (oc - o_begin);
      eb.oc = oc;
      eb.nch = nch;
      int16_t m[16];
      for (int j = 0; j < 16; ++j) m[j] = j < nch && f.sign[oc + j] < 0 ? -1 : 0;
      eb.sm[0] = vld1q_s16(m);
      eb.sm[1] = vld1q_s16(m + 8);
      if (mode == kEmitFloat) {
        load_params(x.out->t.m, oc, nch, eb.pa);
        load_params(x.out->t.b, oc, nch, eb.pb);
      } else if (mode == kEmitQFloat || mode == kEmitQBits) {
        load_params(x.out->q.a, oc, nch, eb.pa);
        load_params(x.out->q.d, oc, nch, eb.pb);
        load_params(x.out->q.b, oc, nch, eb.pc);
      }
      emit_any(x, mode, two, a, static_cast<int>(e - a), q0, tr, trh, eb);
    };
    uint8x16_t planes[2][kMaxPlanes];
    const uint8_t* Y = x.Y;
    if (G == 1) {
      const int nv = (lq + 1) / 2;
      for (int o0 = o_begin; o0 < o_end; o0 += 16) {
        const int nch = std::min(16, o_end - o0);
        for (int v0 = 0; v0 < nv; v0 += 2) {
          const int nvv = std::min(2, nv - v0);
          for (int j = 0; j < 16; ++j) {
            if (j < nch) {
              const int o = o0 + j;
              kDirect[nvv - 1][np - 3](Y + 16 * v0, p.off + f.conn_begin[o],
                                       static_cast<int>(f.conn_begin[o + 1] - f.conn_begin[o]), planes);
            } else {
              for (int v = 0; v < nvv; ++v)
                for (int k = 0; k < np; ++k) planes[v][k] = vdupq_n_u8(0);
            }
            for (int v = 0; v < nvv; ++v) {
              uint8x16_t c[16];
              planes_to_counts(planes[v], np, c);
              for (int i = 0; i < (two ? 16 : 8); ++i) CB[(v * 16 + i) * 16 + j] = c[i];
            }
          }
          for (int v = 0; v < nvv; ++v)
            for (int i = 0; i < (two ? 16 : 8); ++i) {
              uint8x16_t r[16];
              for (int j = 0; j < 16; ++j) r[j] = CB[(v * 16 + i) * 16 + j];
              transpose_bytes16(r);
              uint8_t* tr = TR + (i >= 8 ? 256 * 16 : 0) + (v * 128 + (i & 7)) * 16;
              for (int b = 0; b < 16; ++b) vst1q_u8(tr + 128 * b, r[b]);
            }
          emit_range(v0 * 128, (v0 + nvv) * 128, TR, TR + 256 * 16, o0, nch);
        }
      }
      return;
    }
    // G channels per vector: vector j's segment s holds channel o0 + 16 s + j.
    const uint8_t* zero = Y + *p.zero_off;
    const SegFn count = kSeg[G == 2 ? 0 : 1][np - 3];
    const int segb = 16 / G;  // bytes per segment
    // The prepared lists when this band is the plan's (whole image) band.
    const auto* sl = static_cast<const SegLists*>(x.sp->extra);
    const bool use_list = sl != nullptr && sl->magic == kSegListMagic && sl->plan == x.p && sl->G == G &&
                          sl->groups == s.groups && sl->og == f.og;
    const ListFn count_list = kList[G == 2 ? 0 : 1][np - 3];
    for (int o0 = o_begin; o0 < o_end; o0 += 16 * G) {
      const size_t unit = static_cast<size_t>(x.g) * (use_list ? sl->units_per_group : 0) +
                          static_cast<size_t>(o0 - o_begin) / (16 * G);
      for (int j = 0; j < 16; ++j) {
        if (use_list) {
          const uint32_t b = sl->first[unit * 16 + j], e = sl->first[unit * 16 + j + 1];
          count_list(Y, sl->offs + static_cast<size_t>(b) * G, static_cast<int>(e - b), planes);
          uint8x16_t c[16];
          planes_to_counts(planes[0], np, c);
          for (int i = 0; i < (two ? 16 : 8); ++i) CB[i * 16 + j] = c[i];
          continue;
        }
        const uint32_t* offs[4];
        int ns[4];
        for (int sg = 0; sg < G; ++sg) {
          const int c = 16 * sg + j, o = o0 + c;
          const bool in = o < o_end;
          ns[sg] = in ? static_cast<int>(f.conn_begin[o + 1] - f.conn_begin[o]) : 0;
          offs[sg] = in ? p.off + f.conn_begin[o] : p.off;
        }
        count(Y, zero, offs, ns, planes);
        uint8x16_t c[16];
        planes_to_counts(planes[0], np, c);
        for (int i = 0; i < (two ? 16 : 8); ++i) CB[i * 16 + j] = c[i];
      }
      for (int i = 0; i < (two ? 16 : 8); ++i) {
        uint8x16_t r[16];
        for (int j = 0; j < 16; ++j) r[j] = CB[i * 16 + j];
        transpose_bytes16(r);
        // Register b: segment b / segb, bit 8 (b % segb) + i of the segment.
        for (int b = 0; b < 16; ++b) {
          const int sg = b / segb, q = 8 * (b % segb) + (i & 7);
          vst1q_u8(TR + (i >= 8 ? 256 * 16 : 0) + (sg * 64 + q) * 16, r[b]);
        }
      }
      for (int sg = 0; sg < G; ++sg) {
        const int oc = o0 + 16 * sg;
        if (oc >= o_end) break;
        emit_range(0, 128 / G, TR + sg * 64 * 16, TR + 256 * 16 + sg * 64 * 16, oc, std::min(16, o_end - oc));
      }
    }
  }
};

bool supported(const BConv2DShape& s) { return cpu_features().arm_neon && shape_is_valid(s); }

void* prepare(const BConv2DShape& s, const int32_t* filter) {
  SparsePrepared* sp = make_sparse_prepared(s, filter, kKindNeon, NeonImpl::kNW * 8, kYBudget, true);
  if (sp != nullptr && sp->plan != nullptr) {
    // Narrow maps: segment lists (without them, run uses the per-input checks).
    sp->extra = build_seg_lists(s, *sp->filter, *sp->plan);
    sp->free_extra = &free_seg_lists;
  }
  return sp;
}

void run(const BConv2DShape& s, const void* prepared, const int32_t* input,
         const int32_t* filter, int32_t* dot, int row_begin, int row_end) {
  run_bitplane<NeonImpl>(s, prepared, input, filter, dot, row_begin, row_end, kKindNeon, kYBudget);
}

void run_output(const BConv2DShape& s, const void* prepared, const int32_t* input,
                const int32_t* filter, const BConv2DOutput& out, int row_begin, int row_end) {
  run_bitplane_output<NeonImpl>(s, prepared, input, filter, out, row_begin, row_end, kKindNeon, kYBudget);
}

}  // namespace
}  // namespace internal

const BConv2DKernel kBConv2DKernel_sparse_bitplane_neon = {
    "bconv2d_sparse_bitplane_128__neon", BConv2DFamily::kSparseBitplane,
    internal::supported, internal::prepare, internal::run,
    internal::release_sparse_prepared, internal::run_output};

}  // namespace sbnn
