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

}  // namespace internal
}  // namespace sbnn
