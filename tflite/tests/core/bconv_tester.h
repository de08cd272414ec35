// Fluent tester for bconv2d kernels, XNNPACK style:
//
//   BConvTester().in(8, 9, 65).out_channels(33).kernel(3, 3).stride(2).groups(1)
//       .padding(Padding::kSame).pad_values(1).threads(3).Test(kernel);
//
// The expected dot is computed inline by a naive convolution of *unpacked* {-1,+1}
// values (never from bits); the kernel's inputs are produced from those values by a
// separate bitpacking helper. The dot is an integer, so the comparison is exact: a
// binary kernel has no rounding, any difference is a bug. Failures print the kernel,
// the shape and the (batch, y, x, channel) index.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <cmath>
#include <cstring>
#include <limits>

#include "bconv2d.h"
#include "bconv2d_output.h"
#include "sparse_filter_gen.h"

namespace sbnn {
namespace testing {

enum class Padding { kSame, kValid, kExplicit };

// Bitpacking helper, independent of the kernels: value j of `values` goes to bit j % 32
// of word j / 32 (little-endian bit order), bit = 1 for -1; the padding bits of the last
// word are 0 unless `dirty` is given (then they are random junk).
inline void pack_bits(const int8_t* values, int count, uint32_t* words, std::mt19937* dirty) {
  const int n_words = (count + 31) / 32;
  for (int w = 0; w < n_words; ++w) words[w] = 0;
  for (int j = 0; j < count; ++j)
    if (values[j] < 0) words[j / 32] |= 1u << (j % 32);
  if (dirty != nullptr && count % 32 != 0) words[n_words - 1] |= (*dirty)() << (count % 32);
}

struct TestStats {
  long long cases = 0;       // shape cases
  long long runs = 0;        // (case, kernel) runs
  long long outputs = 0;     // outputs compared
  long long failures = 0;    // failing runs
  long long skipped = 0;     // runs with an empty output (checked to write nothing)
};

class BConvTester {
 public:
  BConvTester& batch(int n) { batch_ = n; return *this; }
  BConvTester& in(int h, int w, int c) { in_h_ = h; in_w_ = w; in_c_ = c; return *this; }
  BConvTester& out_channels(int o) { out_c_ = o; return *this; }
  BConvTester& kernel(int h, int w) { k_h_ = h; k_w_ = w; return *this; }
  BConvTester& stride(int s) { return stride(s, s); }
  BConvTester& stride(int h, int w) { s_h_ = h; s_w_ = w; return *this; }
  BConvTester& dilation(int d) { return dilation(d, d); }
  BConvTester& dilation(int h, int w) { d_h_ = h; d_w_ = w; return *this; }
  BConvTester& groups(int g) { groups_ = g; return *this; }
  BConvTester& padding(Padding p) { padding_ = p; return *this; }
  // Any resolved padding and output size (the kernels take them as given).
  BConvTester& explicit_padding(int top, int left, int out_h, int out_w) {
    padding_ = Padding::kExplicit;
    pad_top_ = top; pad_left_ = left; ex_out_h_ = out_h; ex_out_w_ = out_w;
    return *this;
  }
  BConvTester& pad_values(int v) { pad_values_ = v; return *this; }
  // Row ranges: the flattened batch*out_h rows are split into this many pieces and run
  // by that many concurrent threads sharing one prepared filter.
  BConvTester& threads(int t) { threads_ = t; return *this; }
  BConvTester& seed(uint32_t s) { seed_ = s; return *this; }
  // Probability that a value is -1 (bit 1): 0.9 models a sparse {0,1} filter with 10%
  // connections in the LCE bit convention.
  BConvTester& filter_density(double p) { filter_density_ = p; sparse_ = false; return *this; }
  // Sparse filters (sparse_filter_gen.h): a fraction `p` of the weights is alpha (-1,
  // bit 1), the rest are connections (+1); k0k1() draws whole kernels with the given
  // shares of no / one connection instead; minority_flip() negates every other output
  // channel (its connections become the minority -1 weights).
  BConvTester& sparsity(double p) { spec_.sparsity = p; sparse_ = true; return *this; }
  BConvTester& k0k1(double k0, double k1) {
    spec_.kernel_mode = true; spec_.k0 = k0; spec_.k1 = k1; sparse_ = true; return *this;
  }
  BConvTester& minority_flip(bool f) { spec_.minority_flip = f; sparse_ = true; return *this; }
  BConvTester& input_density(double p) { input_density_ = p; return *this; }
  // Put random junk into the padding bits of the last word (the contract says they are
  // 0; kernels mask them anyway, and this checks it).
  BConvTester& dirty_padding_bits(bool d) { dirty_ = d; return *this; }
  BConvTester& verbose(bool v) { verbose_ = v; return *this; }
  // Also check the fused outputs (bconv2d_output.h) of every kernel through
  // run_bconv2d_output: bitpacked (random limits incl. the int32 extremes), float
  // (transform.h's to_float) and the fused q float with and without a residual, each
  // against the expected dot and the transform written out here.
  BConvTester& outputs(bool o) { outputs_ = o; return *this; }
  // Call prepare() with other input spatial sizes than run() gets (an input resize
  // keeps the prepared filter): the packed filter must not depend on them.
  BConvTester& prepare_in(int h, int w) { prep_h_ = h; prep_w_ = w; return *this; }

  BConv2DShape shape() const {
    BConv2DShape s;
    s.batch = batch_;
    s.in_h = in_h_; s.in_w = in_w_;
    s.in_channels = in_c_;
    s.in_words = (in_c_ + 31) / 32;
    s.groups = groups_;
    s.out_channels = out_c_;
    s.filter_h = k_h_; s.filter_w = k_w_;
    s.filter_words = (in_c_ / groups_ + 31) / 32;
    s.stride_h = s_h_; s.stride_w = s_w_;
    s.dilation_h = d_h_; s.dilation_w = d_w_;
    s.pad_values = pad_values_;
    resolve(in_h_, k_h_, s_h_, d_h_, pad_top_, ex_out_h_, &s.out_h, &s.pad_top);
    resolve(in_w_, k_w_, s_w_, d_w_, pad_left_, ex_out_w_, &s.out_w, &s.pad_left);
    return s;
  }

  std::string describe() const {
    const BConv2DShape s = shape();
    std::ostringstream o;
    o << "batch " << s.batch << ", in " << s.in_h << "x" << s.in_w << "x" << s.in_channels
      << " -> out " << s.out_h << "x" << s.out_w << "x" << s.out_channels << ", kernel "
      << s.filter_h << "x" << s.filter_w << ", stride " << s.stride_h << "," << s.stride_w
      << ", dilation " << s.dilation_h << "," << s.dilation_w << ", groups " << s.groups
      << ", padding "
      << (padding_ == Padding::kSame ? "SAME" : padding_ == Padding::kValid ? "VALID" : "explicit")
      << " (" << s.pad_top << "," << s.pad_left << ")" << ", pad_values " << s.pad_values
      << ", threads " << threads_;
    if (sparse_) {
      o << ", sparsity " << spec_.sparsity;
      if (spec_.kernel_mode) o << " (K0 " << spec_.k0 << ", K1 " << spec_.k1 << ")";
      if (spec_.minority_flip) o << ", minority flip";
      o << ", input density " << input_density_;
    } else {
      o << ", density w " << filter_density_ << " x " << input_density_;
    }
    o << (dirty_ ? ", dirty padding bits" : "") << ", seed " << seed_;
    if (prep_h_ > 0) o << ", prepared for in " << prep_h_ << "x" << prep_w_;
    return o.str();
  }

  // Expected dots, from the unpacked values.
  void Setup() {
    const BConv2DShape s = shape();
    std::mt19937 rng(seed_);
    std::bernoulli_distribution xneg(input_density_), wneg(filter_density_);
    const int cg = s.in_channels / s.groups, og = s.out_channels / s.groups;
    x_.assign(static_cast<size_t>(s.batch) * s.in_h * s.in_w * s.in_channels, 1);
    for (auto& v : x_) v = xneg(rng) ? -1 : 1;
    if (sparse_) {
      generate_sparse_weights(&w_, s.out_channels, s.filter_h * s.filter_w, cg, spec_, &rng);
    } else {
      w_.assign(static_cast<size_t>(s.out_channels) * s.filter_h * s.filter_w * cg, 1);
      for (auto& v : w_) v = wneg(rng) ? -1 : 1;
    }

    std::mt19937 junk(seed_ ^ 0x9e3779b9u);
    input_bits_.assign(static_cast<size_t>(s.batch) * s.in_h * s.in_w * s.in_words, 0);
    for (size_t p = 0; p < static_cast<size_t>(s.batch) * s.in_h * s.in_w; ++p)
      pack_bits(&x_[p * s.in_channels], s.in_channels, &input_bits_[p * s.in_words],
                dirty_ ? &junk : nullptr);
    filter_bits_.assign(static_cast<size_t>(s.out_channels) * s.filter_h * s.filter_w *
                            s.filter_words, 0);
    for (size_t t = 0; t < static_cast<size_t>(s.out_channels) * s.filter_h * s.filter_w; ++t)
      pack_bits(&w_[t * cg], cg, &filter_bits_[t * s.filter_words], dirty_ ? &junk : nullptr);

    expected_.assign(static_cast<size_t>(s.batch) * s.out_h * s.out_w * s.out_channels, 0);
    for (int b = 0; b < s.batch; ++b)
      for (int oy = 0; oy < s.out_h; ++oy)
        for (int ox = 0; ox < s.out_w; ++ox)
          for (int o = 0; o < s.out_channels; ++o) {
            const int g = o / og;
            int32_t sum = 0;
            for (int fy = 0; fy < s.filter_h; ++fy)
              for (int fx = 0; fx < s.filter_w; ++fx) {
                const int iy = oy * s.stride_h - s.pad_top + fy * s.dilation_h;
                const int ix = ox * s.stride_w - s.pad_left + fx * s.dilation_w;
                const bool inside = iy >= 0 && iy < s.in_h && ix >= 0 && ix < s.in_w;
                if (!inside && s.pad_values == 0) continue;
                const int8_t* wv =
                    &w_[((static_cast<size_t>(o) * s.filter_h + fy) * s.filter_w + fx) * cg];
                if (!inside) {  // pad_values == 1: outside taps are +1
                  for (int c = 0; c < cg; ++c) sum += wv[c];
                  continue;
                }
                const int8_t* xv = &x_[((static_cast<size_t>(b) * s.in_h + iy) * s.in_w + ix) *
                                           s.in_channels + g * cg];
                for (int c = 0; c < cg; ++c) sum += xv[c] * wv[c];
              }
            expected_[((static_cast<size_t>(b) * s.out_h + oy) * s.out_w + ox) *
                          s.out_channels + o] = sum;
          }
    setup_key_ = describe();
  }

  // Runs `kernel` and compares exactly. Returns true on success (or an empty output).
  bool Test(const BConv2DKernel* kernel, TestStats* stats = nullptr) {
    if (setup_key_ != describe()) Setup();  // (re)compute after any setter
    const BConv2DShape s = shape();
    if (stats) ++stats->runs;
    const size_t n_out = expected_.size();
    if (n_out == 0 && stats) ++stats->skipped;  // still run: it must write nothing
    if (!kernel->supported(s)) {
      std::printf("FAIL %s: supported() is false for %s\n", kernel->name, describe().c_str());
      if (stats) ++stats->failures;
      return false;
    }
    void* prepared = nullptr;
    if (kernel->prepare != nullptr) {
      BConv2DShape ps = s;
      if (prep_h_ > 0) {
        ps.in_h = prep_h_;
        ps.in_w = prep_w_;
        ps.out_h = (prep_h_ + 1) / 2;
        ps.out_w = (prep_w_ + 2) / 3;
      }
      prepared = kernel->prepare(ps, reinterpret_cast<const int32_t*>(filter_bits_.data()));
      if (prepared == nullptr) {
        std::printf("FAIL %s: prepare() returned null for %s\n", kernel->name,
                    describe().c_str());
        if (stats) ++stats->failures;
        return false;
      }
    }
    const size_t kGuard = 64;
    const int32_t kSentinel = static_cast<int32_t>(0x7eadbeef);
    std::vector<int32_t> out(n_out + 2 * kGuard, kSentinel);
    int32_t* dot = out.data() + kGuard;
    const int rows = s.batch * s.out_h;
    const int parts = std::max(1, threads_);
    run_split(rows, parts, [&](int rb, int re) {
      kernel->run(s, prepared, reinterpret_cast<const int32_t*>(input_bits_.data()),
                  reinterpret_cast<const int32_t*>(filter_bits_.data()), dot, rb, re);
    });

    // Row isolation: a run over rows [rb, re) writes those rows and nothing else (a
    // delegate may pass a dot pointer shifted so that only its chunk is real memory).
    int isolation_errors = 0;
    if (parts > 1) {
      const size_t row_elems = static_cast<size_t>(s.out_w) * s.out_channels;
      std::vector<int32_t> lone(n_out, kSentinel);
      for (int t = 0; t < parts && isolation_errors == 0; ++t) {
        const int rb = split_begin(rows, t, parts), re = split_begin(rows, t + 1, parts);
        std::fill(lone.begin(), lone.end(), kSentinel);
        kernel->run(s, prepared, reinterpret_cast<const int32_t*>(input_bits_.data()),
                    reinterpret_cast<const int32_t*>(filter_bits_.data()), lone.data(), rb, re);
        for (size_t i = 0; i < n_out; ++i) {
          const int r = static_cast<int>(i / row_elems);
          const bool inside = r >= rb && r < re;
          if (inside != (lone[i] != kSentinel)) {
            std::printf("FAIL %s: run over rows [%d, %d) %s row %d (%s)\n", kernel->name, rb,
                        re, inside ? "did not write" : "wrote", r, describe().c_str());
            ++isolation_errors;
            break;
          }
        }
      }
    }
    int bad = isolation_errors;
    if (outputs_) bad += TestOutputs(kernel, prepared, s, stats);
    if (kernel->release != nullptr) kernel->release(prepared);

    for (size_t g = 0; g < kGuard; ++g) {
      if (out[g] != kSentinel || out[kGuard + n_out + g] != kSentinel) {
        if (bad++ < 1)
          std::printf("FAIL %s: wrote outside the dot buffer, %s\n", kernel->name,
                      describe().c_str());
      }
    }
    for (size_t i = 0; i < n_out; ++i) {
      if (dot[i] == expected_[i]) continue;
      if (bad++ < 5) {
        const size_t o = i % s.out_channels, px = i / s.out_channels;
        const size_t ox = px % s.out_w, oy = (px / s.out_w) % s.out_h,
                     b = px / (static_cast<size_t>(s.out_w) * s.out_h);
        std::printf("FAIL %s: dot[b=%zu, y=%zu, x=%zu, o=%zu] = %d, expected %d (%s)\n",
                    kernel->name, b, oy, ox, o, dot[i], expected_[i], describe().c_str());
      }
    }
    if (stats) {
      stats->outputs += static_cast<long long>(n_out);
      if (bad) ++stats->failures;
    }
    if (verbose_ && !bad) std::printf("ok %s: %s\n", kernel->name, describe().c_str());
    return bad == 0;
  }

  // The fused outputs of `kernel` (see outputs()); returns the number of failures.
  int TestOutputs(const BConv2DKernel* kernel, const void* prepared, const BConv2DShape& s,
                  TestStats* stats) {
    const int O = s.out_channels;
    const size_t pixels = static_cast<size_t>(s.batch) * s.out_h * s.out_w;
    const int K = s.filter_h * s.filter_w * (s.in_channels / s.groups);
    std::mt19937 rng(seed_ * 7919u + 17u);
    std::uniform_int_distribution<int> lim(-K - 2, K + 2), pick(0, 15);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    int failures = 0;
    // kind 1 bits, 2 float, 3 q float, 4 q float + residual, 5 q bits
    for (int kind = 1; kind <= 5; ++kind) {
      const bool q = kind >= 3;
      if (q && (s.groups != 1 || O < 2)) continue;
      const int C = q ? O - 1 : O;
      const int words = (C + 31) / 32;
      BConv2DOutput out;
      out.kind = kind == 1 ? BConv2DOutputKind::kBits
                 : kind == 2 ? BConv2DOutputKind::kFloat
                 : kind == 5 ? BConv2DOutputKind::kQBits : BConv2DOutputKind::kQFloat;
      const bool bits = kind == 1 || kind == 5;
      out.channels = C;
      std::vector<int32_t> limit(C);
      std::vector<float> m(C), b(C), a(C), d(C), res;
      for (int c = 0; c < C; ++c) {
        const int r = pick(rng);
        limit[c] = r == 0 ? std::numeric_limits<int32_t>::min()
                          : r == 1 ? std::numeric_limits<int32_t>::max() : lim(rng);
        if (r >= 4 && r < 10 && pixels > 0) {
          // A limit at a dot value the layer produces (or one above): the comparison's
          // equality case, on whatever pixel (border or not) was drawn.
          const size_t px = std::uniform_int_distribution<size_t>(0, pixels - 1)(rng);
          limit[c] = expected_[px * O + c] + (r & 1);
        }
        m[c] = r == 2 ? 0.0f : nd(rng);
        b[c] = nd(rng) * 10.0f;
        a[c] = r == 3 ? -0.0f : nd(rng);
        d[c] = nd(rng) * 0.5f;
      }
      out.limit = limit.data();
      out.t.K = K;
      out.t.x_min = lim(rng) / 2 - K / 2;
      out.t.x_max = std::max(out.t.x_min, K - lim(rng) / 4);
      out.t.m = m.data();
      out.t.b = b.data();
      out.q.a = a.data();
      out.q.d = d.data();
      out.q.b = b.data();
      out.q.lo = kind != 4 ? -std::numeric_limits<float>::infinity() : 0.0f;
      out.q.hi = kind != 4 ? std::numeric_limits<float>::infinity() : 6.0f + nd(rng);
      if (kind == 4) {
        res.resize(pixels * C);
        for (auto& v : res) v = nd(rng);
        out.q.add = res.data();
      }
      // Expected output words (bits: one int32 per 32 channels; float: raw bits).
      const size_t per_px = bits ? words : C;
      std::vector<uint32_t> want(pixels * per_px, 0);
      for (size_t px = 0; px < pixels; ++px) {
        const int32_t* e = &expected_[px * O];
        for (int c = 0; c < C; ++c) {
          if (kind == 1) {
            if (e[c] < limit[c]) want[px * words + c / 32] |= 1u << (c % 32);
            continue;
          }
          float y;
          if (out.kind == BConv2DOutputKind::kFloat) {
            const int32_t x = std::min(out.t.x_max, std::max(out.t.x_min, K - e[c]));
            const float prod = static_cast<float>(x) * m[c];
            y = prod + b[c];
          } else {
            const float t = static_cast<float>(e[c]) * a[c];
            const float u = static_cast<float>(e[O - 1]) * d[c];
            const float tu = t + u;
            y = tu + b[c];
            y = y < out.q.lo ? out.q.lo : y;
            y = y > out.q.hi ? out.q.hi : y;
            if (kind == 4) y = y + res[px * C + c];
            if (kind == 5) {
              if (y < 0.0f) want[px * words + c / 32] |= 1u << (c % 32);
              continue;
            }
          }
          std::memcpy(&want[px * per_px + c], &y, 4);
        }
      }
      const size_t kGuard = 16;
      const uint32_t kSentinel = 0x7eadbeefu;
      std::vector<uint32_t> got(pixels * per_px + 2 * kGuard, kSentinel);
      out.out = got.data() + kGuard;
      const int rows = s.batch * s.out_h;
      const int parts = std::max(1, threads_);
      run_split(rows, parts, [&](int rb, int re) {
        run_bconv2d_output(*kernel, s, prepared, reinterpret_cast<const int32_t*>(input_bits_.data()),
                           reinterpret_cast<const int32_t*>(filter_bits_.data()), out, rb, re);
      });
      int bad = 0;
      for (size_t g = 0; g < kGuard; ++g)
        if (got[g] != kSentinel || got[kGuard + pixels * per_px + g] != kSentinel) ++bad;
      if (bad) std::printf("FAIL %s: output kind %d wrote outside its buffer (%s)\n", kernel->name, kind, describe().c_str());
      for (size_t i = 0; i < pixels * per_px; ++i) {
        if (got[kGuard + i] == want[i]) continue;
        if (bad++ < 3)
          std::printf("FAIL %s: output kind %d, pixel %zu, %s %zu: 0x%08x, expected 0x%08x (%s)\n",
                      kernel->name, kind, i / per_px,
                      bits ? "word" : "channel", i % per_px,
                      got[kGuard + i], want[i], describe().c_str());
      }
      if (stats) stats->outputs += static_cast<long long>(pixels * per_px);
      if (bad) ++failures;
    }
    return failures;
  }

  // Tests every supported kernel in the table; counts the case once.
  bool TestAll(TestStats* stats) { return TestList(all_bconv2d_kernels(), stats); }

  // Tests every supported kernel of a nullptr-terminated list; counts the case once.
  bool TestList(const BConv2DKernel* const* list, TestStats* stats) {
    if (stats) ++stats->cases;
    bool ok = true;
    int ran = 0;
    for (const BConv2DKernel* const* k = list; *k; ++k) {
      if (!(*k)->supported(shape())) continue;  // the CPU lacks its instructions
      ok = Test(*k, stats) && ok;
      ++ran;
    }
    if (ran == 0 && !reference_supports()) {  // the test itself is wrong
      std::printf("FAIL: not even the reference kernel supports %s\n", describe().c_str());
      if (stats) ++stats->failures;
      return false;
    }
    return ok;
  }

 private:
  // Start of piece t of `parts` uneven pieces of [0, rows): rows*t^2/parts^2, so that
  // the pieces differ in size (piece t is rows [split_begin(t), split_begin(t + 1))).
  static int split_begin(int rows, int t, int parts) {
    return static_cast<int>(static_cast<long long>(rows) * t * t / (parts * parts));
  }

  // Runs run(rb, re) on each piece, one thread per piece (inline for a single piece).
  template <class Run>
  static void run_split(int rows, int parts, Run run) {
    std::vector<std::thread> pool;
    for (int t = 0; t < parts; ++t) {
      const int rb = split_begin(rows, t, parts), re = split_begin(rows, t + 1, parts);
      if (parts == 1) {
        run(rb, re);
      } else {
        pool.emplace_back([&run, rb, re] { run(rb, re); });
      }
    }
    for (auto& th : pool) th.join();
  }

  // The dense reference kernel accepts every valid shape (a list of one kernel may
  // legitimately skip a shape its kernel does not handle).
  bool reference_supports() const {
    for (const BConv2DKernel* const* k = all_bconv2d_kernels(); *k; ++k)
      if ((*k)->family == BConv2DFamily::kDenseReference) return (*k)->supported(shape());
    return false;
  }

  void resolve(int in, int k, int stride, int dil, int ex_pad, int ex_out, int* out,
               int* pad) const {
    const int eff = (k - 1) * dil + 1;
    if (padding_ == Padding::kSame) {
      *out = (in + stride - 1) / stride;
      const int total = std::max((*out - 1) * stride + eff - in, 0);
      *pad = total / 2;
    } else if (padding_ == Padding::kValid) {
      *out = in >= eff ? (in - eff) / stride + 1 : 0;
      *pad = 0;
    } else {
      *out = ex_out;
      *pad = ex_pad;
    }
  }

  int batch_ = 1, in_h_ = 5, in_w_ = 5, in_c_ = 32, out_c_ = 8;
  int k_h_ = 3, k_w_ = 3, s_h_ = 1, s_w_ = 1, d_h_ = 1, d_w_ = 1, groups_ = 1;
  Padding padding_ = Padding::kSame;
  int pad_top_ = 0, pad_left_ = 0, ex_out_h_ = 0, ex_out_w_ = 0;
  int pad_values_ = 0, threads_ = 1, prep_h_ = 0, prep_w_ = 0;
  uint32_t seed_ = 1;
  double filter_density_ = 0.5, input_density_ = 0.5;
  bool sparse_ = false;
  SparseFilterSpec spec_;
  bool dirty_ = false, verbose_ = false, outputs_ = false;
  std::string setup_key_;
  std::vector<int8_t> x_, w_;
  std::vector<uint32_t> input_bits_, filter_bits_;
  std::vector<int32_t> expected_;
};

}  // namespace testing
}  // namespace sbnn
