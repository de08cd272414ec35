// Permute strategy of the AVX-512 bit-plane kernel (sparse_bitplane_avx512.cc), for
// narrow outputs (out_w <= 8: one stored row = one byte).
// Included only by sparse_bitplane_avx512.cc (internal linkage, that file's flags).
#pragma once

#include <algorithm>
#include <cstdlib>
#include <new>

#include "sparse_bitplane_avx512_common.h"

namespace sbnn {
namespace internal {
namespace {

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

struct Avx512Permute : BitplanePortable<8> {
  // Work memory: YT, then cell offsets and per-step table offsets of the largest group.
  static size_t work_bytes(const BitplanePlan& p, const SparseFilter& f, const SparsePrepared* sp) {
    size_t steps = 0;
    const auto* ps = static_cast<const PermSchedule*>(sp ? sp->extra : nullptr);
    if (ps != nullptr && ps->magic == kPermMagic)
      for (int g = 0; g < ps->groups; ++g)
        steps = std::max<size_t>(steps, ps->first[static_cast<size_t>(g + 1) * ps->nlg] -
                                            ps->first[static_cast<size_t>(g) * ps->nlg]);
    const size_t cells = static_cast<size_t>(f.taps) * ((f.cg + 127) / 128);
    return perm_work_offset(p, p.shape, f.cg) + 4 * (cells + 16 + steps) + 64;
  }

  static const PermSchedule* schedule(const BandCtx& x) {
    const auto* ps = static_cast<const PermSchedule*>(x.sp->extra);
    if (ps == nullptr || ps->magic != kPermMagic || ps->groups != x.s->groups || ps->og != x.f->og ||
        ps->cg != x.f->cg || ps->taps != x.f->taps)
      return nullptr;
    return ps;
  }

  // True when the band can run the permute strategy (R = 8, a phase row of at most 8
  // pixels, word-aligned groups, a schedule from prepare, counts on the fast path).
  static bool applies(const BandCtx& x) {
    const BConv2DShape& s = *x.s;
    const BitplanePlan& p = *x.p;
    const int nxp = (s.in_w + p.sw - 1) / p.sw;
    return p.R == 8 && nxp <= 8 && (s.groups == 1 || x.f->cg % 32 == 0) &&
           schedule(x) != nullptr && x.f->kfull <= 32767 &&
           bit_length(static_cast<unsigned>(x.f->max_conns)) <= kMaxPlanes;
  }

  static void build_band(BandCtx& x) {
    build_yt(x);
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
      // The lane group's output parameters in registers once, the row's pointers per row.
      PermOut po;
      if (mode != kEmitDot) {
        out_args_at(x, x.oy0, 0, o_l, &po.oa);
        po.row = 0;
        for (int j = 0; j < nblk; ++j) {
          if (mode == kEmitBits) po.rb[j].load(po.oa, j, mask[j]);
          else if (mode == kEmitFloat) po.rf[j].load(po.oa, j, mask[j]);
          else po.rq[j].load(po.oa, j, mask[j]);
        }
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
            if (po.row != r) {
              out_args_at(x, oy, r, o_l, &po.oa);
              po.row = r;
            }
            permute_output(mode, ox, nblk, mask, dv, po);
          }
        }
      }
    }
  }

  // A lane group's fused output: its parameters (per 16-channel block, loaded once per
  // lane group) and the output pointers of band row `row` (out_args_at, once per row).
  struct PermOut {
    int row = -1;
    OutArgs oa;
    OutRegs<kEmitBits> rb[4];
    OutRegs<kEmitFloat> rf[4];
    OutRegs<kEmitQFloat> rq[4];
  };

  // Fused output of one pixel (column ox of po's row) of the permute strategy: nblk
  // blocks of 16 channels with their dot values dv.
  static void permute_output(int mode, int ox, int nblk, const __mmask16* mask, const __m512i* dv,
                             const PermOut& po) {
    const OutArgs& oa = po.oa;
    if (mode == kEmitBits) {
      uint64_t bits = 0;
      for (int j = 0; j < nblk; ++j)
        bits |= static_cast<uint64_t>(_mm512_mask_cmplt_epi32_mask(mask[j], dv[j], po.rb[j].lim)) << (16 * j);
      std::memcpy(oa.bits + static_cast<size_t>(ox) * oa.bstride, &bits, 2 * static_cast<size_t>(nblk));
      return;
    }
    float* fl = oa.fl + static_cast<size_t>(ox) * oa.C;
    if (mode == kEmitFloat) {
      for (int j = 0; j < nblk; ++j)
        store_float<kEmitFloat>(po.rf[j], dv[j], _mm512_setzero_ps(), fl, nullptr, j, mask[j], false);
      return;
    }
    const __m512 fq = _mm512_set1_ps(static_cast<float>(oa.qd[ox]));
    const float* res = oa.res != nullptr ? oa.res + static_cast<size_t>(ox) * oa.C : nullptr;
    for (int j = 0; j < nblk; ++j) store_float<kEmitQFloat>(po.rq[j], dv[j], fq, fl, res, j, mask[j], false);
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

};

}  // namespace
}  // namespace internal
}  // namespace sbnn
