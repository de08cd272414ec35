// bconv2d_dot__reference: the portable reference kernel. Direct loops over output
// pixels, output channels, taps and channel words; one 32-bit XOR + popcount per word.
// No repacking, no scratch memory, every shape that shape_is_valid() accepts.
#include "bconv2d_kernels.h"
#include "bconv2d_pack.h"

namespace sbnn {
namespace internal {

void run_reference(const BConv2DShape& s, const int32_t* input, const int32_t* filter,
                   int32_t* dot, int row_begin, int row_end) {
  const uint32_t* in = reinterpret_cast<const uint32_t*>(input);
  const uint32_t* flt = reinterpret_cast<const uint32_t*>(filter);
  const int cg = s.in_channels / s.groups;
  const int og = s.out_channels / s.groups;
  const int fw = s.filter_words;
  for (int r = row_begin; r < row_end; ++r) {
    const int b = r / s.out_h, oy = r % s.out_h;
    for (int ox = 0; ox < s.out_w; ++ox) {
      int32_t* out = dot + (static_cast<size_t>(r) * s.out_w + ox) * s.out_channels;
      for (int o = 0; o < s.out_channels; ++o) {
        const int g = o / og;
        int32_t sum = 0;
        for (int fy = 0; fy < s.filter_h; ++fy) {
          const int iy = oy * s.stride_h - s.pad_top + fy * s.dilation_h;
          for (int fx = 0; fx < s.filter_w; ++fx) {
            const int ix = ox * s.stride_w - s.pad_left + fx * s.dilation_w;
            const bool inside = iy >= 0 && iy < s.in_h && ix >= 0 && ix < s.in_w;
            if (!inside && s.pad_values == 0) continue;  // outside taps contribute 0
            const uint32_t* w =
                flt + ((static_cast<size_t>(o) * s.filter_h + fy) * s.filter_w + fx) * fw;
            const uint32_t* px =
                inside ? in + ((static_cast<size_t>(b) * s.in_h + iy) * s.in_w + ix) * s.in_words
                       : nullptr;
            for (int j = 0; j < fw; ++j) {
              const int nbits = cg - 32 * j < 32 ? cg - 32 * j : 32;
              const uint32_t mask = nbits == 32 ? 0xffffffffu : (1u << nbits) - 1u;
              // Outside taps with pad_values == 1 are x = +1, i.e. bits 0.
              const uint32_t x = inside ? group_word(px, s.in_words, cg, g, j) : 0u;
              // Each agreeing bit is +1, each differing bit is -1.
              sum += nbits - 2 * __builtin_popcount(x ^ (w[j] & mask));
            }
          }
        }
        out[o] = sum;
      }
    }
  }
}

namespace {

bool reference_supported(const BConv2DShape& s) { return shape_is_valid(s); }

void reference_run(const BConv2DShape& s, const void* /*prepared*/, const int32_t* input,
                   const int32_t* filter, int32_t* dot, int row_begin, int row_end) {
  run_reference(s, input, filter, dot, row_begin, row_end);
}

}  // namespace
}  // namespace internal

const BConv2DKernel kBConv2DKernel_reference = {
    "bconv2d_dot__reference", BConv2DFamily::kDenseReference,
    internal::reference_supported, nullptr, internal::reference_run,
    nullptr};

}  // namespace sbnn
