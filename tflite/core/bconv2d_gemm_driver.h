// sbnn_keras native core: the loop nest shared by the gathered-bgemm kernels
// (see bconv2d_pack.h for the formulation). Each ISA file includes this header and
// instantiates run_gemm<UK> with its micro-kernel UK, so the whole loop nest (patch
// gathering and the border correction included) is compiled with that file's ISA flags. Everything here has internal linkage (anonymous
// namespace) so the linker cannot merge copies compiled with different flags.
//
// A micro-kernel UK provides:
//   static constexpr int kMR;           // pixels per tile (rows of the tile)
//   static constexpr int kNV;           // vectors of output channels per tile
//   static constexpr int kLanes;        // output channels per vector (64-bit lanes)
//   static constexpr int kPatchPlanes;  // 1: patch words as gathered; 2: nibble split
//   static constexpr int kChunkBytes;   // patch bytes gathered per pass (L1-sized)
//   static void transform_patch(uint64_t* patch, int count, size_t stride, int k64);
//   template <int MR, int NV> static void tile(const TileArgs&);
// The tile computes dot = kfull - 2 * sum_k popcount(patch ^ filter) for MR pixels and
// NV * kLanes output channels of one block (storing only a.n_valid channels).
#pragma once

#include <array>
#include <cstdlib>
#include <cstring>
#include <utility>

#include "bconv2d_pack.h"

namespace sbnn {
namespace internal {
namespace {

typedef uint64_t __attribute__((may_alias)) u64_alias;

// Output pixel coordinates, advanced one pixel at a time (no division per pixel).
struct PixelCursor {
  int ox, oy;
  size_t b;
  PixelCursor(const BConv2DShape& s, size_t q) {
    ox = static_cast<int>(q % s.out_w);
    const size_t r = q / s.out_w;
    oy = static_cast<int>(r % s.out_h);
    b = r / s.out_h;
  }
  void next(const BConv2DShape& s) {
    if (++ox == s.out_w) {
      ox = 0;
      if (++oy == s.out_h) {
        oy = 0;
        ++b;
      }
    }
  }
};

inline void copy_words(uint32_t* dst, const uint32_t* src, int n) {
  if (n > 32) {
    std::memcpy(dst, src, sizeof(uint32_t) * n);
    return;
  }
  int i = 0;
  for (; i + 2 <= n; i += 2) {  // 8 bytes at a time (memcpy: no alignment or aliasing)
    uint64_t v;
    std::memcpy(&v, src + i, sizeof v);
    std::memcpy(dst + i, &v, sizeof v);
  }
  if (i < n) dst[i] = src[i];
}

inline void zero_words(uint32_t* dst, int n) {
  if (n > 16) {
    std::memset(dst, 0, sizeof(uint32_t) * n);
  } else {
    for (int i = 0; i < n; ++i) dst[i] = 0;
  }
}

// Gathers the patches of group g for the `count` output pixels starting at flattened
// pixel index `first` (index over batch * out_h * out_w) into `patch`: pixel i occupies
// patch[i * patch_stride .. i * patch_stride + k64). patch_stride >= k64.
void gather_patches(const BConv2DShape& s, const GemmDims& d, const int32_t* input, int g,
                    size_t first, int count, uint64_t* patch, size_t patch_stride) {
  const uint32_t* in = reinterpret_cast<const uint32_t*>(input);
  const int fw = s.filter_words, kh = s.filter_h, kw = s.filter_w;
  const bool aligned = s.groups == 1 || d.cg % 32 == 0;
  const uint32_t tail_mask = word_mask(d.cg, fw - 1);
  // Whole filter rows can be copied at once when the taps of a row are adjacent
  // pixels and a pixel holds exactly the group's words.
  const bool row_copy = s.groups == 1 && s.dilation_w == 1 && tail_mask == 0xffffffffu;
  PixelCursor px_at(s, first);
  for (int i = 0; i < count; ++i, px_at.next(s)) {
    const int ox = px_at.ox, oy = px_at.oy;
    const size_t b = px_at.b;
    uint32_t* dst = reinterpret_cast<uint32_t*>(patch + i * patch_stride);
    const int iy0 = oy * s.stride_h - s.pad_top;
    const int ix0 = ox * s.stride_w - s.pad_left;
    const bool x_inside = ix0 >= 0 && ix0 + (kw - 1) * s.dilation_w < s.in_w;
    for (int fy = 0; fy < kh; ++fy) {
      uint32_t* drow = dst + static_cast<size_t>(fy) * kw * fw;
      const int iy = iy0 + fy * s.dilation_h;
      if (iy < 0 || iy >= s.in_h) {
        zero_words(drow, kw * fw);
        continue;
      }
      const uint32_t* row = in + (b * s.in_h + iy) * static_cast<size_t>(s.in_w) * s.in_words;
      if (row_copy && x_inside) {
        copy_words(drow, row + static_cast<size_t>(ix0) * s.in_words, kw * fw);
        continue;
      }
      for (int fx = 0; fx < kw; ++fx) {
        uint32_t* dw = drow + fx * fw;
        const int ix = ix0 + fx * s.dilation_w;
        if (ix < 0 || ix >= s.in_w) {
          zero_words(dw, fw);
          continue;
        }
        const uint32_t* px = row + static_cast<size_t>(ix) * s.in_words;
        if (aligned) {
          copy_words(dw, px + g * fw, fw);
          dw[fw - 1] &= tail_mask;
        } else {
          for (int j = 0; j < fw; ++j) dw[j] = group_word(px, s.in_words, d.cg, g, j);
        }
      }
    }
    if (d.k32 & 1) dst[d.k32] = 0;
  }
}

// For pad_values == 0: corrects dot of the group-g output channels of the `count`
// pixels starting at `first`, whose windows cross the input border (see bconv2d_pack.h).
// `dot` points at the dot row of pixel `first`.
void fixup_pad0(const BConv2DShape& s, const PackedFilter& pf, int g, size_t first, int count,
                int32_t* dot) {
  const int kh = s.filter_h, kw = s.filter_w, og = pf.dims.og;
  const int32_t cg = pf.dims.cg;
  const int32_t* tap_popcount = pf.tap_popcount + static_cast<size_t>(g) * og;
  PixelCursor at(s, first);
  for (int i = 0; i < count; ++i, at.next(s)) {
    const int iy0 = at.oy * s.stride_h - s.pad_top;
    const int ix0 = at.ox * s.stride_w - s.pad_left;
    if (iy0 >= 0 && iy0 + (kh - 1) * s.dilation_h < s.in_h && ix0 >= 0 &&
        ix0 + (kw - 1) * s.dilation_w < s.in_w)
      continue;
    int32_t* __restrict drow = dot + static_cast<size_t>(i) * s.out_channels + g * og;
    for (int fy = 0; fy < kh; ++fy) {
      const int iy = iy0 + fy * s.dilation_h;
      const bool y_out = iy < 0 || iy >= s.in_h;
      for (int fx = 0; fx < kw; ++fx) {
        const int ix = ix0 + fx * s.dilation_w;
        if (!y_out && ix >= 0 && ix < s.in_w) continue;
        const int32_t* __restrict pc =
            tap_popcount + static_cast<size_t>(fy * kw + fx) * s.out_channels;
        for (int o = 0; o < og; ++o) drow[o] += 2 * pc[o] - cg;
      }
    }
  }
}

struct TileArgs {
  const u64_alias* patch;  // pixel i of the tile at patch + i * patch_stride
  size_t patch_stride;     // uint64 words between pixels
  const uint64_t* w;       // the block's packed filter: [k][planes][block_width]
  int k64;                 // 64-bit words per patch
  int32_t* dot;            // channel c of pixel i at dot[i * dot_stride + c]
  size_t dot_stride;       // out_channels
  int n_valid;             // valid channels in this block (1 .. block width)
  int32_t kfull;           // taps * channels per group
};
using TileFn = void (*)(const TileArgs&);

template <class UK, int MR, int NV>
void tile_entry(const TileArgs& a) {
  UK::template tile<MR, NV>(a);
}

template <class UK, size_t... I>
constexpr std::array<TileFn, sizeof...(I)> make_tile_table(std::index_sequence<I...>) {
  return {{&tile_entry<UK, static_cast<int>(I / UK::kNV) + 1,
                       static_cast<int>(I % UK::kNV) + 1>...}};
}

template <class UK>
void* gemm_prepare(const BConv2DShape& s, const int32_t* filter) {
  return pack_filter(s, filter, UK::kNV * UK::kLanes,
                     UK::kPatchPlanes == 2 ? PlaneMode::kNibbleSplit : PlaneMode::kPlain);
}

// The packed filter depends only on these fields; the spatial sizes, strides, dilation
// and padding may change between prepare and run (e.g. after an input resize).
inline bool packed_matches(const PackedFilter* pf, const BConv2DShape& s, int block_width,
                           PlaneMode mode) {
  if (pf == nullptr || pf->magic != kPackedMagic) return false;
  const BConv2DShape& p = pf->shape;
  return p.in_channels == s.in_channels && p.in_words == s.in_words && p.groups == s.groups &&
         p.out_channels == s.out_channels && p.filter_h == s.filter_h &&
         p.filter_w == s.filter_w && p.filter_words == s.filter_words &&
         pf->block_width == block_width && pf->mode == mode;
}

template <class UK>
void run_gemm(const BConv2DShape& s, const void* prepared, const int32_t* input,
              const int32_t* filter, int32_t* dot, int row_begin, int row_end) {
  static constexpr std::array<TileFn, UK::kMR * UK::kNV> kTiles =
      make_tile_table<UK>(std::make_index_sequence<UK::kMR * UK::kNV>());
  constexpr int kBlockWidth = UK::kNV * UK::kLanes;
  constexpr PlaneMode kMode = UK::kPatchPlanes == 2 ? PlaneMode::kNibbleSplit : PlaneMode::kPlain;

  if (row_begin < 0) row_begin = 0;
  if (row_end > s.batch * s.out_h) row_end = s.batch * s.out_h;
  if (row_end <= row_begin || s.out_w <= 0 || !shape_is_valid(s)) return;
  const auto* pf = static_cast<const PackedFilter*>(prepared);
  if (!packed_matches(pf, s, kBlockWidth, kMode)) {
    // Misuse (no or foreign prepared filter): still compute the right answer.
    if (filter != nullptr) run_reference(s, input, filter, dot, row_begin, row_end);
    return;
  }
  const GemmDims& d = pf->dims;
  const size_t pstride = static_cast<size_t>(d.k64) * UK::kPatchPlanes;
  const size_t total = static_cast<size_t>(row_end - row_begin) * s.out_w;

  size_t chunk = UK::kChunkBytes / (pstride * sizeof(uint64_t));
  chunk = chunk / UK::kMR * UK::kMR;
  if (chunk < static_cast<size_t>(UK::kMR)) chunk = UK::kMR;
  if (chunk > 4096) chunk = 4096;
  if (chunk > total) chunk = total;

  // Scratch: on the stack when it fits (the usual case), else on the heap.
  constexpr size_t kStackWords = 32768 / sizeof(uint64_t);
  alignas(64) uint64_t stack_buf[kStackWords];
  uint64_t* buf = stack_buf;
  void* heap = nullptr;
  if (chunk * pstride > kStackWords) {
    if (posix_memalign(&heap, 64, chunk * pstride * sizeof(uint64_t)) != 0 || !heap) {
      if (filter != nullptr) run_reference(s, input, filter, dot, row_begin, row_end);
      return;
    }
    buf = static_cast<uint64_t*>(heap);
  }

  const size_t first_pixel = static_cast<size_t>(row_begin) * s.out_w;
  const int bpg = pf->blocks_per_group;
  for (size_t c0 = 0; c0 < total; c0 += chunk) {
    const int n = static_cast<int>(total - c0 < chunk ? total - c0 : chunk);
    const size_t first = first_pixel + c0;
    int32_t* dchunk = dot + first * s.out_channels;
    for (int g = 0; g < s.groups; ++g) {
      gather_patches(s, d, input, g, first, n, buf, pstride);
      if (UK::kPatchPlanes == 2) UK::transform_patch(buf, n, pstride, d.k64);
      for (int blk = 0; blk < bpg; ++blk) {
        const int o0 = g * d.og + blk * kBlockWidth;
        const int n_valid = d.og - blk * kBlockWidth < kBlockWidth ? d.og - blk * kBlockWidth
                                                                    : kBlockWidth;
        const int nv = (n_valid + UK::kLanes - 1) / UK::kLanes;
        TileArgs a;
        a.patch_stride = pstride;
        a.w = pf->weights + (static_cast<size_t>(g) * bpg + blk) * pf->block_stride;
        a.k64 = d.k64;
        a.dot_stride = s.out_channels;
        a.n_valid = n_valid;
        a.kfull = d.kfull;
        const TileFn full = kTiles[(UK::kMR - 1) * UK::kNV + nv - 1];
        int p = 0;
        for (; p + UK::kMR <= n; p += UK::kMR) {
          a.patch = buf + static_cast<size_t>(p) * pstride;
          a.dot = dchunk + static_cast<size_t>(p) * s.out_channels + o0;
          full(a);
        }
        if (p < n) {
          a.patch = buf + static_cast<size_t>(p) * pstride;
          a.dot = dchunk + static_cast<size_t>(p) * s.out_channels + o0;
          kTiles[(n - p - 1) * UK::kNV + nv - 1](a);
        }
      }
      if (s.pad_values == 0) fixup_pad0(s, *pf, g, first, n, dchunk);
    }
  }
  if (heap) std::free(heap);
}

template <class UK>
constexpr BConv2DKernel make_gemm_kernel(const char* name, bool (*supported)(const BConv2DShape&)) {
  return BConv2DKernel{name, BConv2DFamily::kDense, supported, &gemm_prepare<UK>, &run_gemm<UK>,
                       &release_packed_filter};
}

}  // namespace
}  // namespace internal
}  // namespace sbnn
