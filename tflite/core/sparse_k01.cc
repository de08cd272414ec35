// bconv2d_sparse_k01__scalar: kernel-level skipping, the execution model the SBNN paper's
// storage suggests (K0: no connection, K1: one tap, other kernels; docs/sparse_kernels.md,
// "Design space explored"). prepare() turns the
// filter into, per output channel, the list of its *nonzero* kernels (input channel c,
// tap code = the taps of its connections); all-alpha kernels (K0) are never visited.
// run() builds, per output pixel, the neighborhood word of every input channel
// (bit t = input bit at tap t, 0 outside) and sums
//
//   C(p, o) = sum over nonzero kernels (c, code) of o of popcount(code & N(p, c))
//
// (a K1 kernel is a single tap: code has one bit), then dot = u*(A - 2E + 4C) as in
// sparse_format.h. Work is proportional to the nonzero kernels, one popcount each, per
// output pixel: far more than the bit-plane kernels' carry-save work per connection and
// 512 pixels, see docs/sparse_kernels.md. Portable, every shape (filters with more than
// 64 taps fall back to the connection lists).
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>
#include <vector>

#include "bconv2d_kernels.h"
#include "bconv2d_pack.h"
#include "sparse_bitplane.h"
#include "sparse_format.h"

namespace sbnn {
namespace internal {
namespace {

constexpr int kKindK01 = 20;

struct KernelLists {
  uint32_t magic;             // kK01Magic
  int taps, cg, out_channels;
  uint32_t* begin;            // [out_channels + 1]
  uint32_t* channel;          // [kernels] input channel (within the group)
  uint64_t* code;             // [kernels] tap mask
};
constexpr uint32_t kK01Magic = 0x5342304bu;  // "SB0K"

void free_lists(void* p) { std::free(p); }

KernelLists* build_lists(const SparseFilter& f) {
  if (f.taps > 64) return nullptr;
  const int O = f.shape.out_channels;
  std::vector<uint32_t> begin(static_cast<size_t>(O) + 1, 0), ch;
  std::vector<uint64_t> code;
  for (int o = 0; o < O; ++o) {
    // conns are sorted by channel, then tap: one kernel per run of equal channels.
    for (uint32_t i = f.conn_begin[o]; i < f.conn_begin[o + 1];) {
      const uint32_t c = f.conns[i] / f.taps;
      uint64_t m = 0;
      for (; i < f.conn_begin[o + 1] && f.conns[i] / f.taps == c; ++i) m |= uint64_t{1} << (f.conns[i] % f.taps);
      ch.push_back(c);
      code.push_back(m);
    }
    begin[o + 1] = static_cast<uint32_t>(ch.size());
  }
  const size_t n = ch.size();
  const size_t bytes = 64 + sizeof(uint32_t) * (begin.size() + n + 2) + sizeof(uint64_t) * (n + 1);
  void* mem = nullptr;
  if (posix_memalign(&mem, 64, bytes) != 0 || mem == nullptr) return nullptr;
  auto* kl = new (mem) KernelLists();
  char* p = static_cast<char*>(mem) + 64;
  kl->code = reinterpret_cast<uint64_t*>(p);
  p += sizeof(uint64_t) * (n + 1);
  kl->begin = reinterpret_cast<uint32_t*>(p);
  p += sizeof(uint32_t) * begin.size();
  kl->channel = reinterpret_cast<uint32_t*>(p);
  kl->magic = kK01Magic;
  kl->taps = f.taps;
  kl->cg = f.cg;
  kl->out_channels = O;
  std::copy(begin.begin(), begin.end(), kl->begin);
  std::copy(ch.begin(), ch.end(), kl->channel);
  std::copy(code.begin(), code.end(), kl->code);
  return kl;
}

bool supported(const BConv2DShape& s) { return shape_is_valid(s); }

void* prepare(const BConv2DShape& s, const int32_t* filter) {
  SparsePrepared* sp = make_sparse_prepared(s, filter, kKindK01, 8, 0, false);
  if (sp == nullptr) return nullptr;
  sp->extra = build_lists(*sp->filter);  // nullptr for > 64 taps: connection lists then
  sp->free_extra = &free_lists;
  return sp;
}

void run_k01(const BConv2DShape& s, const SparseFilter& f, const KernelLists& kl, const int32_t* input,
             int32_t* dot, int row_begin, int row_end) {
  const uint32_t* in = reinterpret_cast<const uint32_t*>(input);
  const int cg = f.cg, og = f.og, taps = f.taps, kw = s.filter_w, O = s.out_channels;
  std::vector<uint64_t> N(static_cast<size_t>(cg));  // neighborhood words of one pixel
  for (int r = row_begin; r < row_end; ++r) {
    const size_t b = static_cast<size_t>(r / s.out_h);
    const int oy = r % s.out_h;
    for (int ox = 0; ox < s.out_w; ++ox) {
      int32_t* out = dot + (static_cast<size_t>(r) * s.out_w + ox) * O;
      for (int g = 0; g < s.groups; ++g) {
        std::fill(N.begin(), N.end(), 0);
        int32_t bits = 0, n_eff = 0;  // B(p) and effective taps
        uint64_t inside = 0;          // taps inside the input
        for (int t = 0; t < taps; ++t) {
          const int iy = oy * s.stride_h - s.pad_top + (t / kw) * s.dilation_h;
          const int ix = ox * s.stride_w - s.pad_left + (t % kw) * s.dilation_w;
          if (iy < 0 || iy >= s.in_h || ix < 0 || ix >= s.in_w) {
            n_eff += s.pad_values;
            continue;
          }
          ++n_eff;
          inside |= uint64_t{1} << t;
          const uint32_t* px = in + ((b * s.in_h + iy) * static_cast<size_t>(s.in_w) + ix) * s.in_words;
          for (int j = 0; j < s.filter_words; ++j) {
            uint32_t w = (s.groups == 1 || cg % 32 == 0) ? px[g * s.filter_words + j] & word_mask(cg, j)
                                                         : group_word(px, s.in_words, cg, g, j);
            bits += __builtin_popcount(w);
            while (w) {  // set bits: the input channels that are -1 at this tap
              const int c = 32 * j + __builtin_ctz(w);
              N[c] |= uint64_t{1} << t;
              w &= w - 1;
            }
          }
        }
        const uint64_t eff = s.pad_values ? ~uint64_t{0} : inside;
        for (int ol = 0; ol < og; ++ol) {
          const int o = g * og + ol;
          int32_t c_cnt = 0, e_cnt = 0;
          for (uint32_t k = kl.begin[o]; k < kl.begin[o + 1]; ++k) {
            const uint64_t code = kl.code[k];
            c_cnt += __builtin_popcountll(code & N[kl.channel[k]]);  // K1: a single tap
            e_cnt += __builtin_popcountll(code & eff);
          }
          const int32_t a = n_eff * cg - 2 * bits;
          out[o] = f.sign[o] * (a - 2 * e_cnt + 4 * c_cnt);
        }
      }
    }
  }
}

void run(const BConv2DShape& s, const void* prepared, const int32_t* input, const int32_t* filter,
         int32_t* dot, int row_begin, int row_end) {
  if (row_begin < 0) row_begin = 0;
  if (row_end > s.batch * s.out_h) row_end = s.batch * s.out_h;
  if (row_end <= row_begin || s.out_w <= 0 || !shape_is_valid(s)) return;
  const auto* sp = static_cast<const SparsePrepared*>(prepared);
  SparsePrepared* own = nullptr;
  if (sp == nullptr || sp->magic != kSparsePreparedMagic || sp->kind != kKindK01 ||
      !sparse_filter_matches(sp->filter, s)) {
    if (filter == nullptr) return;
    own = static_cast<SparsePrepared*>(prepare(s, filter));
    if (own == nullptr) {
      run_reference(s, input, filter, dot, row_begin, row_end);
      return;
    }
    sp = own;
  }
  const auto* kl = static_cast<const KernelLists*>(sp->extra);
  if (kl != nullptr && kl->magic == kK01Magic) {
    run_k01(s, *sp->filter, *kl, input, dot, row_begin, row_end);
  } else {
    run_sparse_reference(s, *sp->filter, input, dot, row_begin, row_end);
  }
  if (own) release_sparse_prepared(own);
}

}  // namespace
}  // namespace internal

const BConv2DKernel kBConv2DKernel_sparse_k01_scalar = {
    "bconv2d_sparse_k01__scalar", BConv2DFamily::kSparseK01,
    internal::supported, internal::prepare, internal::run,
    internal::release_sparse_prepared};

}  // namespace sbnn
