// Portable building blocks of the optimized bconv2d kernels (see bconv2d_pack.h).
#include "bconv2d_pack.h"

#include <climits>
#include <cstdlib>
#include <cstring>
#include <new>

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "patches pair 32-bit words into 64-bit words by memory layout");

namespace sbnn {
namespace internal {

bool shape_is_valid(const BConv2DShape& s) {
  if (s.batch < 0 || s.out_h < 0 || s.out_w < 0) return false;
  if (s.in_h < 1 || s.in_w < 1 || s.in_channels < 1 || s.out_channels < 1) return false;
  if (s.groups < 1 || s.in_channels % s.groups != 0 || s.out_channels % s.groups != 0)
    return false;
  if (s.filter_h < 1 || s.filter_w < 1) return false;
  if (s.stride_h < 1 || s.stride_w < 1 || s.dilation_h < 1 || s.dilation_w < 1) return false;
  if (s.pad_top < 0 || s.pad_left < 0) return false;
  if (s.pad_values != 0 && s.pad_values != 1) return false;
  if (s.in_words != (s.in_channels + 31) / 32) return false;
  const int cg = s.in_channels / s.groups;
  if (s.filter_words != (cg + 31) / 32) return false;
  // Sizes that keep every int computation below in range.
  const long long taps = static_cast<long long>(s.filter_h) * s.filter_w;
  if (taps * s.filter_words > INT_MAX / 2 || taps * cg > INT_MAX / 2) return false;
  if (static_cast<long long>(s.batch) * s.out_h > INT_MAX) return false;
  // Window coordinates: oy * stride - pad + fy * dilation must fit in int.
  const long long ymax = static_cast<long long>(s.out_h) * s.stride_h +
                         static_cast<long long>(s.filter_h) * s.dilation_h + s.in_h;
  const long long xmax = static_cast<long long>(s.out_w) * s.stride_w +
                         static_cast<long long>(s.filter_w) * s.dilation_w + s.in_w;
  if (ymax > INT_MAX / 2 || xmax > INT_MAX / 2) return false;
  if (s.pad_top > INT_MAX / 4 || s.pad_left > INT_MAX / 4) return false;
  return true;
}

GemmDims gemm_dims(const BConv2DShape& s) {
  GemmDims d;
  d.cg = s.in_channels / s.groups;
  d.og = s.out_channels / s.groups;
  d.taps = s.filter_h * s.filter_w;
  d.k32 = d.taps * s.filter_words;
  d.k64 = (d.k32 + 1) / 2;
  d.kfull = d.taps * d.cg;
  return d;
}

namespace {

// Mask of the real channels of filter word j of a group with cg channels.
inline uint32_t word_mask(int cg, int j) {
  const int nbits = cg - 32 * j;
  return nbits >= 32 ? 0xffffffffu : ((1u << nbits) - 1u);
}

constexpr uint64_t kLowNibbles = 0x0f0f0f0f0f0f0f0full;

size_t round_up(size_t x, size_t a) { return (x + a - 1) / a * a; }

}  // namespace

PackedFilter* pack_filter(const BConv2DShape& s, const int32_t* filter, int block_width,
                          PlaneMode mode) {
  if (!shape_is_valid(s) || filter == nullptr || block_width < 1) return nullptr;
  const GemmDims d = gemm_dims(s);
  const int bpg = (d.og + block_width - 1) / block_width;
  const size_t planes = mode == PlaneMode::kNibbleSplit ? 2 : 1;
  const size_t block_stride = static_cast<size_t>(d.k64) * block_width * planes;
  const size_t n_weights = static_cast<size_t>(s.groups) * bpg * block_stride;
  const size_t n_popcount = static_cast<size_t>(d.taps) * s.out_channels;

  const size_t head = round_up(sizeof(PackedFilter), 64);
  const size_t weights_bytes = round_up(n_weights * sizeof(uint64_t), 64);
  const size_t total = head + weights_bytes + n_popcount * sizeof(int32_t);
  void* mem = nullptr;
  if (posix_memalign(&mem, 64, total) != 0 || mem == nullptr) return nullptr;
  std::memset(mem, 0, total);

  auto* pf = new (mem) PackedFilter();
  pf->magic = kPackedMagic;
  pf->shape = s;
  pf->dims = d;
  pf->block_width = block_width;
  pf->blocks_per_group = bpg;
  pf->mode = mode;
  pf->block_stride = block_stride;
  pf->weights = reinterpret_cast<uint64_t*>(static_cast<char*>(mem) + head);
  pf->tap_popcount =
      reinterpret_cast<int32_t*>(static_cast<char*>(mem) + head + weights_bytes);

  const int fw = s.filter_words;
  const uint32_t* f32 = reinterpret_cast<const uint32_t*>(filter);
  for (int o = 0; o < s.out_channels; ++o) {
    const int g = o / d.og, ol = o % d.og;
    const int blk = ol / block_width, lane = ol % block_width;
    uint64_t* base = pf->weights + (static_cast<size_t>(g) * bpg + blk) * block_stride;
    const uint32_t* fo = f32 + static_cast<size_t>(o) * d.k32;
    for (int t = 0; t < d.taps; ++t) {
      int32_t pc = 0;
      for (int j = 0; j < fw; ++j) pc += __builtin_popcount(fo[t * fw + j] & word_mask(d.cg, j));
      pf->tap_popcount[static_cast<size_t>(t) * s.out_channels + o] = pc;
    }
    for (int k = 0; k < d.k64; ++k) {
      const int i0 = 2 * k, i1 = 2 * k + 1;
      const uint64_t lo = fo[i0] & word_mask(d.cg, i0 % fw);
      const uint64_t hi = i1 < d.k32 ? (fo[i1] & word_mask(d.cg, i1 % fw)) : 0;
      const uint64_t w = lo | (hi << 32);
      if (mode == PlaneMode::kPlain) {
        base[static_cast<size_t>(k) * block_width + lane] = w;
      } else {
        base[(2 * static_cast<size_t>(k)) * block_width + lane] = w & kLowNibbles;
        base[(2 * static_cast<size_t>(k) + 1) * block_width + lane] = (w >> 4) & kLowNibbles;
      }
    }
  }
  return pf;
}

void release_packed_filter(void* packed) {
  if (packed == nullptr) return;
  static_cast<PackedFilter*>(packed)->~PackedFilter();
  std::free(packed);
}

void gather_patches(const BConv2DShape& s, const GemmDims& d, const int32_t* input, int g,
                    size_t first, int count, uint64_t* patch, size_t patch_stride) {
  const uint32_t* in = reinterpret_cast<const uint32_t*>(input);
  const int fw = s.filter_words, kh = s.filter_h, kw = s.filter_w;
  const bool aligned = s.groups == 1 || d.cg % 32 == 0;
  const uint32_t tail_mask = word_mask(d.cg, fw - 1);
  // Whole filter rows can be copied at once when the taps of a row are adjacent
  // pixels and a pixel holds exactly the group's words.
  const bool row_copy = s.groups == 1 && s.dilation_w == 1 && tail_mask == 0xffffffffu;
  for (int i = 0; i < count; ++i) {
    const size_t q = first + i;
    const int ox = static_cast<int>(q % s.out_w);
    const size_t r = q / s.out_w;
    const int oy = static_cast<int>(r % s.out_h);
    const size_t b = r / s.out_h;
    uint32_t* dst = reinterpret_cast<uint32_t*>(patch + i * patch_stride);
    const int iy0 = oy * s.stride_h - s.pad_top;
    const int ix0 = ox * s.stride_w - s.pad_left;
    const bool x_inside = ix0 >= 0 && ix0 + (kw - 1) * s.dilation_w < s.in_w;
    for (int fy = 0; fy < kh; ++fy) {
      uint32_t* drow = dst + static_cast<size_t>(fy) * kw * fw;
      const int iy = iy0 + fy * s.dilation_h;
      if (iy < 0 || iy >= s.in_h) {
        std::memset(drow, 0, sizeof(uint32_t) * kw * fw);
        continue;
      }
      const uint32_t* row = in + (b * s.in_h + iy) * static_cast<size_t>(s.in_w) * s.in_words;
      if (row_copy && x_inside) {
        std::memcpy(drow, row + static_cast<size_t>(ix0) * s.in_words,
                    sizeof(uint32_t) * kw * fw);
        continue;
      }
      for (int fx = 0; fx < kw; ++fx) {
        uint32_t* dw = drow + fx * fw;
        const int ix = ix0 + fx * s.dilation_w;
        if (ix < 0 || ix >= s.in_w) {
          std::memset(dw, 0, sizeof(uint32_t) * fw);
          continue;
        }
        const uint32_t* px = row + static_cast<size_t>(ix) * s.in_words;
        if (aligned) {
          std::memcpy(dw, px + g * fw, sizeof(uint32_t) * fw);
          dw[fw - 1] &= tail_mask;
        } else {
          for (int j = 0; j < fw; ++j) dw[j] = group_word(px, s.in_words, d.cg, g, j);
        }
      }
    }
    if (d.k32 & 1) dst[d.k32] = 0;
  }
}

void fixup_pad0(const BConv2DShape& s, const PackedFilter& pf, int g, size_t first, int count,
                int32_t* dot) {
  const GemmDims& d = pf.dims;
  const int kh = s.filter_h, kw = s.filter_w;
  for (int i = 0; i < count; ++i) {
    const size_t q = first + i;
    const int ox = static_cast<int>(q % s.out_w);
    const int oy = static_cast<int>((q / s.out_w) % s.out_h);
    const int iy0 = oy * s.stride_h - s.pad_top;
    const int ix0 = ox * s.stride_w - s.pad_left;
    if (iy0 >= 0 && iy0 + (kh - 1) * s.dilation_h < s.in_h && ix0 >= 0 &&
        ix0 + (kw - 1) * s.dilation_w < s.in_w)
      continue;
    int32_t* drow = dot + static_cast<size_t>(i) * s.out_channels + g * d.og;
    for (int fy = 0; fy < kh; ++fy) {
      const int iy = iy0 + fy * s.dilation_h;
      const bool y_out = iy < 0 || iy >= s.in_h;
      for (int fx = 0; fx < kw; ++fx) {
        const int ix = ix0 + fx * s.dilation_w;
        if (!y_out && ix >= 0 && ix < s.in_w) continue;
        const int32_t* pc =
            pf.tap_popcount + static_cast<size_t>(fy * kw + fx) * s.out_channels + g * d.og;
        for (int o = 0; o < d.og; ++o) drow[o] += 2 * pc[o] - d.cg;
      }
    }
  }
}

}  // namespace internal
}  // namespace sbnn
