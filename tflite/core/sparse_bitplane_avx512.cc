// bconv2d_sparse_bitplane_512__avx512: the bit-plane carry-save sparse kernel on 512-bit
// vectors (512 output pixels per register), see sparse_bitplane.h.
//
// Two strategies (sparse_bitplane_avx512_direct.h: outputs wider than 8 pixels;
// sparse_bitplane_avx512_permute.h: narrow outputs) over the shared pieces of
// sparse_bitplane_avx512_common.h; this file chooses between them per band.
// Compiled with -mavx512f -mavx512bw -mavx512vl -mavx512vpopcntdq -mavx512vbmi
// -mavx512vnni -mgfni; requires CpuFeatures::x86_avx512_vbmi_vnni_gfni.
// GCC 12 warns about the deliberately undefined registers inside some intrinsics.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <algorithm>

#include "bconv2d_kernels.h"
#include "cpu_features.h"
#include "sparse_bitplane_avx512_direct.h"
#include "sparse_bitplane_avx512_permute.h"

namespace sbnn {
namespace internal {
namespace {

constexpr int kKindAvx512 = 14;
constexpr size_t kYBudget = 48 * 1024;

// The band's strategy is recorded in BandCtx::mode (0 direct, 1 permute).
struct Avx512Impl : BitplanePortable<8> {
  // Fused outputs: written by the emit stages (direct and permute strategies) when they
  // run; the portable fallbacks inside process_channels write them too.
  static bool native_output(const BandCtx& x) {
    // Bits are stored as 16-bit masks per block of 16 channels: blocks must start on a
    // multiple of 16 channels in every group.
    // kQBits (the fused q's sign bits) has no emit stage here yet: the driver's band
    // fallback (band dot + q_to_bits) writes it.
    if (x.out != nullptr && x.out->kind == BConv2DOutputKind::kQBits) return false;
    return x.out == nullptr || x.out->kind != BConv2DOutputKind::kBits || x.s->groups == 1 ||
           x.f->og % 16 == 0;
  }

  // kBits from the count planes in the direct strategy when the map has at most 3 border
  // classes (VALID, pad_values 1, 1x1): with more, the per-class threshold corrections
  // cost more than the per-pixel compares they replace (measured on ResNet-18's SAME,
  // pad 0 layers: 5-8 classes per vector, 0.75-0.9x; pad 1: 1.2-1.6x faster).
  static bool bits_sliced(const BitplanePlan& p) { return p.R != 8 && p.nvc * p.nhc <= 3; }

  static size_t work_bytes(const BitplanePlan& p, const SparseFilter& f, const SparsePrepared* sp) {
    size_t mine = Avx512Direct::work_bytes(p, f);
    if (p.R == 8) mine = std::max(mine, Avx512Permute::work_bytes(p, f, sp));
    return std::max(mine, BitplanePortable<8>::work_bytes(p, f, sp));
  }

  static void build_band(BandCtx& x) {
    x.mode = Avx512Permute::applies(x) ? 1 : 0;
    if (x.mode == 1) Avx512Permute::build_band(x);
    else Avx512Direct::build_band(x);
  }

  static void process_channels(BandCtx& x, int o_begin, int o_end) {
    if (x.mode == 1) Avx512Permute::process_permute(x, o_begin, o_end);
    else Avx512Direct::process_channels(x, o_begin, o_end);
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
