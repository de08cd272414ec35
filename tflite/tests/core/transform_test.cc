// sbnn_transform_tests: every transform implementation the CPU supports (core/transform.h)
// against the scalar reference, and the scalar reference against plain element-by-element
// loops of LCE's formulas (the form tests/test_runtime_ops.py checks against LCE).
// Bitwise comparison (memcmp) of whole output buffers plus guard bytes around them, over
// 1..130 channels (tails), several pixel/row counts, unaligned buffers, NaN / inf / -0.0
// inputs, clamping extremes and int8 saturation.
//
//   sbnn_transform_tests [--verbose]
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "transform.h"

namespace {

using sbnn::TransformKernels;
using sbnn::TransformParams;

int g_failures = 0;
bool g_verbose = false;
std::mt19937 g_rng(12345);

#define CHECK(cond, ...)                                             \
  do {                                                               \
    if (!(cond)) {                                                   \
      if (++g_failures <= 20) {                                      \
        std::printf("FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); \
        std::printf(__VA_ARGS__);                                    \
        std::printf("\n");                                           \
      }                                                              \
    }                                                                \
  } while (0)

constexpr int kGuard = 64;  // bytes checked on both sides of every output
constexpr unsigned char kJunk = 0xA5;

// A buffer of n T's at a given misalignment, with guard bytes on both sides.
template <typename T>
struct Buf {
  std::vector<unsigned char> raw;
  int shift;
  size_t n;
  Buf(size_t count, int misalign) : raw(count * sizeof(T) + 2 * kGuard + 64, kJunk), shift(misalign), n(count) {}
  T* data() { return reinterpret_cast<T*>(raw.data() + kGuard + shift); }
  bool same(const Buf& o) const { return raw == o.raw; }
};

// Every NaN among the n floats made the quiet NaN 0x7fc00000. The sign/payload of a NaN
// from (t + u) + b depends on which operand the compiler puts first (x86 keeps the
// first NaN operand), and compilers may commute float additions (the ASan build of the
// scalar reference does): not an observable difference for a TFLite float output.
void canonical_nans(Buf<float>& b) {
  const uint32_t qnan = 0x7fc00000u;
  for (size_t i = 0; i < b.n; ++i)
    if (b.data()[i] != b.data()[i]) std::memcpy(b.data() + i, &qnan, sizeof qnan);
}

// ---- plain loops: LCE's output transforms and bitpacking stated element by element,
// independently of transform_impl.h ----

void plain_float(const int32_t* dot, int64_t pixels, int cout, int32_t K, int32_t lo, int32_t hi,
                  const float* m, const float* b, float* out) {
  for (int64_t p = 0; p < pixels; ++p)
    for (int c = 0; c < cout; ++c) {
      const int32_t x = std::min(hi, std::max(lo, K - dot[p * cout + c]));
      out[p * cout + c] = static_cast<float>(x) * m[c] + b[c];
    }
}

void plain_int8(const int32_t* dot, int64_t pixels, int cout, int32_t K, int32_t lo, int32_t hi,
                 const float* m, const float* b, int8_t* out) {
  for (int64_t p = 0; p < pixels; ++p)
    for (int c = 0; c < cout; ++c) {
      const int32_t x = std::min(hi, std::max(lo, K - dot[p * cout + c]));
      const float y = static_cast<float>(x) * m[c] + b[c];
      float r = std::round(y);
      if (!(r == r)) r = 0.0f;
      r = std::min(127.0f, std::max(-128.0f, r));
      out[p * cout + c] = static_cast<int8_t>(r);
    }
}

void plain_bits(const int32_t* dot, int64_t pixels, int cout, int32_t K, const int32_t* thr,
                 int32_t* out) {
  const int words = (cout + 31) / 32;
  for (int64_t p = 0; p < pixels; ++p)
    for (int w = 0; w < words; ++w) {
      uint32_t word = 0;
      for (int c = w * 32; c < std::min(cout, (w + 1) * 32); ++c) {
        const int64_t x = int64_t{K} - dot[p * cout + c];
        word |= static_cast<uint32_t>(x > 2 * int64_t{thr[c]}) << (c % 32);
      }
      out[p * words + w] = static_cast<int32_t>(word);
    }
}

template <typename T, typename Neg>
void plain_pack(const T* in, int64_t rows, int channels, int32_t* out, Neg neg) {
  const int words = (channels + 31) / 32;
  for (int64_t r = 0; r < rows; ++r)
    for (int w = 0; w < words; ++w) {
      uint32_t word = 0;
      for (int b = 0; b < 32 && w * 32 + b < channels; ++b)
        word |= static_cast<uint32_t>(neg(in[r * channels + w * 32 + b]) ? 1 : 0) << b;
      out[r * words + w] = static_cast<int32_t>(word);
    }
}

// ---- inputs -----------------------------------------------------------------------------

float special_float(std::mt19937& rng) {
  static const float kSpecial[] = {0.0f,
                                   -0.0f,
                                   std::numeric_limits<float>::infinity(),
                                   -std::numeric_limits<float>::infinity(),
                                   std::numeric_limits<float>::quiet_NaN(),
                                   -std::numeric_limits<float>::quiet_NaN(),
                                   std::numeric_limits<float>::denorm_min(),
                                   -std::numeric_limits<float>::denorm_min(),
                                   std::numeric_limits<float>::min(),
                                   -std::numeric_limits<float>::min(),
                                   std::numeric_limits<float>::max(),
                                   -std::numeric_limits<float>::max(),
                                   0.5f,
                                   -0.5f,
                                   1.5f,
                                   -2.5f,
                                   127.5f,
                                   -128.5f,
                                   1e-30f,
                                   -1e-30f};
  return kSpecial[rng() % (sizeof(kSpecial) / sizeof(kSpecial[0]))];
}

float random_float(std::mt19937& rng, int mode) {
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  switch (mode) {
    case 0:
      return u(rng);
    case 1:  // scales that push int8 past its range
      return u(rng) * 300.0f;
    case 2:  // half-integers after the multiply (ties of the rounding)
      return static_cast<float>(static_cast<int>(rng() % 9) - 4) * 0.25f;
    default:
      return (rng() % 4 == 0) ? special_float(rng) : u(rng) * 4.0f;
  }
}

// ---- output transforms ------------------------------------------------------------------

void test_output_transforms(const TransformKernels& ref, const TransformKernels& k) {
  std::uniform_int_distribution<int> misalign(0, 3);
  int cases = 0;
  for (int channels = 1; channels <= 130; ++channels) {
    for (int pixels : {1, 3}) {
      for (int mode = 0; mode < 4; ++mode) {
        const int32_t K = std::vector<int32_t>{1, 9, 27, 576, 4608, 1 << 28}[(channels + mode) % 6];
        // activation ranges in x space (none, relu, relu_n1_to_1, relu6)
        int32_t lo = 0, hi = 2 * K;
        switch ((channels + pixels + mode) % 4) {
          case 1:
            hi = K;
            break;
          case 2:
            lo = std::max(0, K - 1), hi = std::min(2 * K, K + 1);
            break;
          case 3:
            lo = std::max(0, K - 6), hi = K;
            break;
          default:
            break;
        }
        const size_t n = static_cast<size_t>(pixels) * channels;
        Buf<int32_t> dot(n, 4 * misalign(g_rng));
        std::uniform_int_distribution<int32_t> dd(-K, K);
        for (size_t i = 0; i < n; ++i) {
          const int r = static_cast<int>(g_rng() % 16);
          dot.data()[i] = r == 0 ? -K : r == 1 ? K : r == 2 ? 0 : dd(g_rng);
        }
        Buf<float> m(channels, 4 * misalign(g_rng)), b(channels, 4 * misalign(g_rng));
        for (int c = 0; c < channels; ++c) {
          m.data()[c] = random_float(g_rng, mode);
          b.data()[c] = mode == 2 ? 0.5f * static_cast<float>(static_cast<int>(g_rng() % 7) - 3)
                                  : random_float(g_rng, mode);
        }
        TransformParams p;
        p.K = K;
        p.x_min = lo;
        p.x_max = hi;
        p.m = m.data();
        p.b = b.data();
        const int out_shift = misalign(g_rng);

        Buf<float> f_ref(n, 4 * out_shift), f_got(n, 4 * out_shift), f_old(n, 4 * out_shift);
        ref.to_float(dot.data(), pixels, channels, p, f_ref.data());
        k.to_float(dot.data(), pixels, channels, p, f_got.data());
        plain_float(dot.data(), pixels, channels, K, lo, hi, p.m, p.b, f_old.data());
        CHECK(f_ref.same(f_old), "scalar float != plain loops, channels %d", channels);
        CHECK(f_got.same(f_ref), "%s float, channels %d pixels %d mode %d", k.isa, channels, pixels, mode);

        Buf<int8_t> i_ref(n, out_shift), i_got(n, out_shift), i_old(n, out_shift);
        ref.to_int8(dot.data(), pixels, channels, p, i_ref.data());
        k.to_int8(dot.data(), pixels, channels, p, i_got.data());
        plain_int8(dot.data(), pixels, channels, K, lo, hi, p.m, p.b, i_old.data());
        CHECK(i_ref.same(i_old), "scalar int8 != plain loops, channels %d", channels);
        CHECK(i_got.same(i_ref), "%s int8, channels %d pixels %d mode %d", k.isa, channels, pixels, mode);

        Buf<int32_t> thr(channels, 0), lim(channels, 4 * misalign(g_rng));
        std::uniform_int_distribution<int32_t> td(-K - 2, K + 2);
        for (int c = 0; c < channels; ++c) {
          const int r = static_cast<int>(g_rng() % 12);
          thr.data()[c] = r == 0   ? std::numeric_limits<int32_t>::min()
                          : r == 1 ? std::numeric_limits<int32_t>::max()
                          : r == 2 ? K / 2
                                   : td(g_rng) / 2;
          lim.data()[c] = sbnn::bitpack_limit(K, thr.data()[c]);
        }
        const size_t words = static_cast<size_t>(pixels) * ((channels + 31) / 32);
        Buf<int32_t> w_ref(words, 4 * out_shift), w_got(words, 4 * out_shift), w_old(words, 4 * out_shift);
        ref.to_bits(dot.data(), pixels, channels, lim.data(), w_ref.data());
        k.to_bits(dot.data(), pixels, channels, lim.data(), w_got.data());
        plain_bits(dot.data(), pixels, channels, K, thr.data(), w_old.data());
        CHECK(w_ref.same(w_old), "scalar bits != plain loops, channels %d", channels);
        CHECK(w_got.same(w_ref), "%s bits, channels %d pixels %d", k.isa, channels, pixels);
        ++cases;
      }
    }
  }
  // Every x of a small K with ties: y = x * 0.5 + b hits every .5 (rounding direction).
  for (int channels : {16, 17, 35}) {
    const int32_t K = 300;
    std::vector<int32_t> dot;
    for (int32_t d = -K; d <= K; ++d)
      for (int c = 0; c < channels; ++c) dot.push_back(d);
    const int64_t pixels = 2 * K + 1;
    std::vector<float> m(channels), b(channels);
    for (int c = 0; c < channels; ++c) {
      m[c] = (c % 2 ? 0.5f : -0.5f) * (1 + c % 3);
      b[c] = -150.25f + 0.25f * static_cast<float>(c);
    }
    TransformParams p{K, 0, 2 * K, m.data(), b.data()};
    std::vector<int8_t> r(dot.size()), g(dot.size());
    std::vector<float> rf(dot.size()), gf(dot.size());
    ref.to_int8(dot.data(), pixels, channels, p, r.data());
    k.to_int8(dot.data(), pixels, channels, p, g.data());
    ref.to_float(dot.data(), pixels, channels, p, rf.data());
    k.to_float(dot.data(), pixels, channels, p, gf.data());
    CHECK(r == g, "%s int8 ties, channels %d", k.isa, channels);
    CHECK(std::memcmp(rf.data(), gf.data(), rf.size() * 4) == 0, "%s float ties", k.isa);
    ++cases;
  }
  if (g_verbose) std::printf("  %s output transforms: %d cases\n", k.isa, cases);
}

// ---- fused q transforms ---------------------------------------------------------------

// Restatement of QTransformParams' definition (core/transform.h), in double where it is
// exact: float(a) * float(b) rounded to float equals the float product.
float q_restated(int32_t d, int32_t q, float a, float dq, float b, float lo, float hi) {
  volatile float t = static_cast<float>(d) * a;
  volatile float u = static_cast<float>(q) * dq;
  volatile float s = t + u;
  float y = s + b;
  if (y < lo) y = lo;
  if (y > hi) y = hi;
  return y;
}

void test_q_transforms(const TransformKernels& ref, const TransformKernels& k) {
  std::uniform_int_distribution<int> misalign(0, 3);
  const float inf = std::numeric_limits<float>::infinity();
  int cases = 0;
  for (int channels = 1; channels <= 130; ++channels) {
    for (int pixels : {1, 3}) {
      for (int mode = 0; mode < 4; ++mode) {
        const int32_t K = std::vector<int32_t>{1, 9, 27, 576, 4608, 1 << 24}[(channels + mode) % 6];
        float lo = -inf, hi = inf;  // none, relu, relu_n1_to_1, relu6, random
        switch ((channels + pixels + mode) % 5) {
          case 1: lo = 0.0f; break;
          case 2: lo = -1.0f, hi = 1.0f; break;
          case 3: lo = 0.0f, hi = 6.0f; break;
          case 4: lo = random_float(g_rng, mode), hi = lo + 3.0f; break;
          default: break;
        }
        const int stride = channels + 1;
        const size_t n = static_cast<size_t>(pixels) * channels;
        Buf<int32_t> dot(static_cast<size_t>(pixels) * stride, 4 * misalign(g_rng));
        std::uniform_int_distribution<int32_t> dd(-K, K);
        for (size_t i = 0; i < static_cast<size_t>(pixels) * stride; ++i) {
          const int r = static_cast<int>(g_rng() % 16);
          dot.data()[i] = r == 0 ? -K : r == 1 ? K : r == 2 ? 0 : dd(g_rng);
        }
        Buf<float> a(channels, 4 * misalign(g_rng)), d(channels, 4 * misalign(g_rng)),
            b(channels, 4 * misalign(g_rng));
        for (int c = 0; c < channels; ++c) {
          a.data()[c] = random_float(g_rng, mode);
          d.data()[c] = random_float(g_rng, mode);
          b.data()[c] = mode == 2 ? 0.5f * static_cast<float>(static_cast<int>(g_rng() % 7) - 3)
                                  : random_float(g_rng, mode);
        }
        sbnn::QTransformParams p;
        p.a = a.data();
        p.d = d.data();
        p.b = b.data();
        p.lo = lo;
        p.hi = hi;
        const int out_shift = misalign(g_rng);

        Buf<float> f_ref(n, 4 * out_shift), f_got(n, 4 * out_shift);
        ref.q_to_float(dot.data(), pixels, channels, p, f_ref.data());
        k.q_to_float(dot.data(), pixels, channels, p, f_got.data());
        canonical_nans(f_ref);
        canonical_nans(f_got);
        CHECK(f_got.same(f_ref), "%s q float, channels %d pixels %d mode %d", k.isa, channels, pixels, mode);
        bool restated = true;
        for (int px = 0; px < pixels; ++px)
          for (int c = 0; c < channels; ++c) {
            const int32_t* row = dot.data() + px * stride;
            const float want = q_restated(row[c], row[channels], a.data()[c], d.data()[c],
                                          b.data()[c], lo, hi);
            const float got = f_ref.data()[px * channels + c];
            restated = restated && (std::memcmp(&want, &got, 4) == 0 || (want != want && got != got));
          }
        CHECK(restated, "scalar q float != its definition, channels %d mode %d", channels, mode);

        // With a residual added after the clamp (option fused_add): y + add, as TFLite's ADD.
        Buf<float> res(n, 4 * misalign(g_rng));
        for (size_t i = 0; i < n; ++i) res.data()[i] = random_float(g_rng, mode);
        sbnn::QTransformParams pa = p;
        pa.add = res.data();
        Buf<float> fa_ref(n, 4 * out_shift), fa_got(n, 4 * out_shift);
        ref.q_to_float(dot.data(), pixels, channels, pa, fa_ref.data());
        k.q_to_float(dot.data(), pixels, channels, pa, fa_got.data());
        canonical_nans(fa_ref);
        canonical_nans(fa_got);
        CHECK(fa_got.same(fa_ref), "%s q float + add, channels %d pixels %d mode %d", k.isa,
              channels, pixels, mode);
        bool added = true;
        for (size_t i = 0; i < n; ++i) {
          volatile float want = f_ref.data()[i] + res.data()[i];
          const float w = want, got = fa_ref.data()[i];
          added = added && (std::memcmp(&w, &got, 4) == 0 || (w != w && got != got));
        }
        CHECK(added, "scalar q float + add != (q float) + add, channels %d mode %d", channels, mode);

        Buf<int8_t> i_ref(n, out_shift), i_got(n, out_shift);
        ref.q_to_int8(dot.data(), pixels, channels, p, i_ref.data());
        k.q_to_int8(dot.data(), pixels, channels, p, i_got.data());
        CHECK(i_got.same(i_ref), "%s q int8, channels %d pixels %d mode %d", k.isa, channels, pixels, mode);

        const size_t words = static_cast<size_t>(pixels) * ((channels + 31) / 32);
        Buf<int32_t> w_ref(words, 4 * out_shift), w_got(words, 4 * out_shift);
        ref.q_to_bits(dot.data(), pixels, channels, p, w_ref.data());
        k.q_to_bits(dot.data(), pixels, channels, p, w_got.data());
        CHECK(w_got.same(w_ref), "%s q bits, channels %d pixels %d mode %d", k.isa, channels, pixels, mode);
        // bits == LceQuantize (pack_float) of the float output
        Buf<int32_t> w_pack(words, 4 * out_shift);
        ref.pack_float(f_ref.data(), pixels, channels, w_pack.data());
        CHECK(w_pack.same(w_ref), "scalar q bits != pack_float(q float), channels %d", channels);
        ++cases;
      }
    }
  }
  if (g_verbose) std::printf("  %s q transforms: %d cases\n", k.isa, cases);
}

// ---- quantize -----------------------------------------------------------------------

void test_pack(const TransformKernels& ref, const TransformKernels& k) {
  std::uniform_int_distribution<int> misalign(0, 3);
  int cases = 0;
  for (int channels = 1; channels <= 130; ++channels) {
    for (int rows : {1, 2, 5}) {
      const size_t n = static_cast<size_t>(rows) * channels;
      const size_t words = static_cast<size_t>(rows) * ((channels + 31) / 32);
      const int out_shift = 4 * misalign(g_rng);

      Buf<float> f(n, 4 * misalign(g_rng));
      for (size_t i = 0; i < n; ++i) f.data()[i] = random_float(g_rng, 3);
      Buf<int32_t> a(words, out_shift), b(words, out_shift), c(words, out_shift);
      ref.pack_float(f.data(), rows, channels, a.data());
      k.pack_float(f.data(), rows, channels, b.data());
      plain_pack(f.data(), rows, channels, c.data(), [](float x) { return x < 0.0f; });
      CHECK(a.same(c), "scalar pack_float != plain loops, channels %d", channels);
      CHECK(b.same(a), "%s pack_float, channels %d rows %d", k.isa, channels, rows);

      Buf<int8_t> q(n, misalign(g_rng));
      for (size_t i = 0; i < n; ++i) q.data()[i] = static_cast<int8_t>(g_rng());
      for (int32_t zp : {0, -128, 127, -1, 1, 5, -77, 128, -129, 1000, -1000}) {
        Buf<int32_t> qa(words, out_shift), qb(words, out_shift), qc(words, out_shift);
        ref.pack_int8(q.data(), rows, channels, zp, qa.data());
        k.pack_int8(q.data(), rows, channels, zp, qb.data());
        plain_pack(q.data(), rows, channels, qc.data(),
                    [zp](int8_t x) { return static_cast<int32_t>(x) < zp; });
        CHECK(qa.same(qc), "scalar pack_int8 != plain loops, channels %d zp %d", channels, zp);
        CHECK(qb.same(qa), "%s pack_int8, channels %d rows %d zp %d", k.isa, channels, rows, zp);
      }

      Buf<uint8_t> t(n, misalign(g_rng));
      for (size_t i = 0; i < n; ++i) {
        const unsigned r = g_rng() % 4;
        t.data()[i] = r < 2 ? 0 : r == 2 ? 1 : static_cast<uint8_t>(g_rng());
      }
      Buf<int32_t> ta(words, out_shift), tb(words, out_shift), tc(words, out_shift);
      ref.pack_bool(t.data(), rows, channels, ta.data());
      k.pack_bool(t.data(), rows, channels, tb.data());
      plain_pack(t.data(), rows, channels, tc.data(), [](uint8_t x) { return x == 0; });
      CHECK(ta.same(tc), "scalar pack_bool != plain loops, channels %d", channels);
      CHECK(tb.same(ta), "%s pack_bool, channels %d rows %d", k.isa, channels, rows);
      ++cases;
    }
  }
  // Empty inputs write nothing.
  Buf<int32_t> e(4, 0), e2(4, 0);
  k.pack_float(nullptr, 0, 5, e.data());
  k.pack_int8(nullptr, 3, 0, 0, e.data());
  k.to_float(nullptr, 0, 7, TransformParams{}, nullptr);
  CHECK(e.same(e2), "%s wrote for an empty input", k.isa);
  if (g_verbose) std::printf("  %s quantize: %d cases\n", k.isa, cases);
}

}  // namespace

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--verbose") == 0) {
      g_verbose = true;
    } else {
      std::printf("usage: %s [--verbose]\n", argv[0]);
      return 2;
    }
  }
  const TransformKernels& ref = sbnn::transform_kernels_scalar();
  int count = 0;
  for (const TransformKernels* const* k = sbnn::all_transform_kernels(); *k; ++k, ++count) {
    std::printf("transform implementation: %s%s\n", (*k)->isa,
                *k == &sbnn::transform_kernels() ? " (chosen)" : "");
    test_output_transforms(ref, **k);
    test_q_transforms(ref, **k);
    test_pack(ref, **k);
  }
  CHECK(count >= 1, "no implementations");
  CHECK(std::strcmp(sbnn::all_transform_kernels()[count - 1]->isa, "scalar") == 0, "scalar last");
  CHECK(sbnn::all_transform_kernels()[0] == &sbnn::transform_kernels(), "chosen is the first");
  if (g_failures) {
    std::printf("sbnn_transform_tests: %d FAILURES\n", g_failures);
    return 1;
  }
  std::printf("sbnn_transform_tests: all passed (%d implementations)\n", count);
  return 0;
}
