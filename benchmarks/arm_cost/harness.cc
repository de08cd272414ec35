// arm_cost harness: runs sbnn_core's binary conv kernels (dense and sparse, every one
// in the kernel table that supports the layer, reference kernels excluded) once per
// measured region, between calls of sbnn_cost_begin() and sbnn_cost_end(), so that the
// insn_regions QEMU plugin counts the instructions of exactly one `run` (or `prepare`).
// Built and run by arm_cost.py; see docs/benchmarks.md ("ARM cost").
//
//   harness --layer NAME:H:W:C:O:K:STRIDE:PAD ... [--gen bernoulli|k0k1]...
//           [--sparsity S]... [--kernel SUBSTR]... [--reps N] [--no-check]
//           [--output dot|bits|float] [--time N] [--list-kernels]
//
// stdout: one JSON object per line, one per region, in region order, e.g.
//   {"region": 3, "layer": "8x8x256->256", "gen": "bernoulli", "sparsity": 0.95,
//    "kernel": "bconv2d_sparse_bitplane_128__neon", "sparse": true, "phase": "run", ...}
// and {"mismatch": ...} lines when a kernel's output differs from the reference kernel.
// --output: what one measured operation produces: "dot" (default) is the kernel
// contract's int32 dot; "bits" and "float" are a layer's bitpacked or float output, made
// by the library's one call for them (run_bconv2d_output, bconv2d_output.h): the
// kernel's fused run_output when it has one, else its run followed by the output
// transform of this CPU.
// Exit status 1 on a mismatch, 2 on bad arguments. --time N (for native x86 runs, the
// driver's --x86-check) also times N rounds of the kernels, interleaved, and prints
// {"timing": kernel, ..., "min_ms", "median_ms"} lines (thread CPU time per run).
//
// Filters and input are made as benchmarks/sparse_kernels.cc makes them (same
// generators from tflite/tests/core/sparse_filter_gen.h, same seeds), so the counts
// belong to the filters of docs/sparse_kernels.md's timings. Before the measured runs
// each kernel runs once unmeasured (it grows its scratch buffers) and that output is
// checked against the reference kernel.
#include <time.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "bconv2d.h"
#include "bconv2d_output.h"
#include "bconv2d_select.h"
#include "sparse_filter_gen.h"
#include "transform.h"

extern "C" {
// The region markers, found by symbol name by the plugin. noinline + used + distinct
// bodies: no pass may inline, drop or merge them.
__attribute__((noinline, used)) void sbnn_cost_begin(void) { __asm__ volatile("" ::: "memory"); }
__attribute__((noinline, used)) void sbnn_cost_end(void) { __asm__ volatile("nop" ::: "memory"); }
}

namespace {

struct Layer {
  std::string name;
  int h = 0, w = 0, c = 0, o = 0, k = 3, stride = 1, pad_values = 0;
};

bool parse_layer(const std::string& spec, Layer* l) {
  // NAME:H:W:C:O:K:STRIDE:PAD (the name must not contain ':')
  std::vector<std::string> f;
  size_t p = 0;
  for (;;) {
    const size_t q = spec.find(':', p);
    f.push_back(spec.substr(p, q == std::string::npos ? std::string::npos : q - p));
    if (q == std::string::npos) break;
    p = q + 1;
  }
  if (f.size() != 8 || f[0].empty()) return false;
  int v[7];
  for (int i = 0; i < 7; ++i) {
    char* end = nullptr;
    const long x = std::strtol(f[i + 1].c_str(), &end, 10);
    if (end == f[i + 1].c_str() || *end != '\0' || x < 0 || x > 4096) return false;
    v[i] = static_cast<int>(x);
  }
  l->name = f[0];
  l->h = v[0], l->w = v[1], l->c = v[2], l->o = v[3], l->k = v[4], l->stride = v[5], l->pad_values = v[6];
  return l->h > 0 && l->w > 0 && l->c > 0 && l->o > 0 && l->k > 0 && l->stride > 0 && l->pad_values <= 1;
}

// SAME padding, as benchmarks/sparse_kernels.cc.
sbnn::BConv2DShape make_shape(const Layer& l) {
  sbnn::BConv2DShape s;
  s.batch = 1;
  s.in_h = l.h;
  s.in_w = l.w;
  s.in_channels = l.c;
  s.in_words = (l.c + 31) / 32;
  s.groups = 1;
  s.out_channels = l.o;
  s.filter_h = s.filter_w = l.k;
  s.filter_words = s.in_words;
  s.stride_h = s.stride_w = l.stride;
  s.out_h = (l.h + l.stride - 1) / l.stride;
  s.out_w = (l.w + l.stride - 1) / l.stride;
  s.pad_top = std::max((s.out_h - 1) * l.stride + l.k - l.h, 0) / 2;
  s.pad_left = std::max((s.out_w - 1) * l.stride + l.k - l.w, 0) / 2;
  s.pad_values = l.pad_values;
  return s;
}

double thread_cpu_ms() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

bool matches(const std::vector<std::string>& subs, const std::string& s) {
  if (subs.empty()) return true;
  for (const auto& x : subs)
    if (s.find(x) != std::string::npos) return true;
  return false;
}

bool is_reference(const sbnn::BConv2DKernel* k) { return std::strstr(k->name, "reference") != nullptr; }

// The kernels to measure: the dense table then the sparse table, in table order.
std::vector<std::pair<const sbnn::BConv2DKernel*, bool>> kernel_list(const std::vector<std::string>& subs) {
  std::vector<std::pair<const sbnn::BConv2DKernel*, bool>> ks;
  for (const sbnn::BConv2DKernel* const* k = sbnn::all_bconv2d_kernels(); *k; ++k)
    if (!is_reference(*k) && matches(subs, (*k)->name)) ks.push_back({*k, false});
  for (const sbnn::BConv2DKernel* const* k = sbnn::all_sparse_bconv2d_kernels(); *k; ++k)
    if (!is_reference(*k) && matches(subs, (*k)->name)) ks.push_back({*k, true});
  return ks;
}

int next_region = 0;

struct FilterInfo {
  std::string gen;
  double sparsity = 0, density = 0, k0 = 0, k1 = 0;
  long long connections = 0;
  int max_conns = 0;  // most connections of one output channel (the cost model's input)
};

void print_region(const Layer& l, const FilterInfo& fi, const sbnn::BConv2DKernel* k, bool sparse,
                  const char* phase, int rep, long long macs) {
  std::printf(
      "{\"region\": %d, \"layer\": \"%s\", \"gen\": \"%s\", \"sparsity\": %.4f, \"kernel\": \"%s\", "
      "\"sparse\": %s, \"fused_output\": %s, \"phase\": \"%s\", \"rep\": %d, \"connections\": %lld, "
      "\"max_conns\": %d, \"density\": %.6f, \"k0\": %.6f, \"k1\": %.6f, \"macs\": %lld}\n",
      next_region++, l.name.c_str(), fi.gen.c_str(), fi.sparsity, k->name, sparse ? "true" : "false",
      k->run_output != nullptr ? "true" : "false", phase, rep, fi.connections, fi.max_conns, fi.density, fi.k0, fi.k1, macs);
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<Layer> layers;
  std::vector<std::string> gens, kernel_subs;
  std::vector<double> sparsities;
  int reps = 2, time_reps = 0;
  std::string output = "dot";
  bool check = true, list = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--no-check") { check = false; continue; }
    if (a == "--list-kernels") { list = true; continue; }
    if (i + 1 >= argc) {
      std::fprintf(stderr, "harness: %s needs a value\n", a.c_str());
      return 2;
    }
    const std::string v = argv[++i];
    if (a == "--layer") {
      Layer l;
      if (!parse_layer(v, &l)) {
        std::fprintf(stderr, "harness: --layer %s: expected NAME:H:W:C:O:K:STRIDE:PAD (PAD 0 or 1)\n", v.c_str());
        return 2;
      }
      layers.push_back(l);
    } else if (a == "--gen") {
      if (v != "bernoulli" && v != "k0k1") {
        std::fprintf(stderr, "harness: --gen %s: expected bernoulli or k0k1\n", v.c_str());
        return 2;
      }
      gens.push_back(v);
    } else if (a == "--sparsity") {
      char* end = nullptr;
      const double sp = std::strtod(v.c_str(), &end);
      if (end == v.c_str() || *end != '\0' || !(sp >= 0.5 && sp < 1.0)) {
        std::fprintf(stderr, "harness: --sparsity %s: expected a number in [0.5, 1)\n", v.c_str());
        return 2;
      }
      sparsities.push_back(sp);
    } else if (a == "--kernel") {
      kernel_subs.push_back(v);
    } else if (a == "--reps") {
      reps = std::atoi(v.c_str());
      if (reps < 1 || reps > 100) {
        std::fprintf(stderr, "harness: --reps %s: expected 1..100\n", v.c_str());
        return 2;
      }
    } else if (a == "--output") {
      if (v != "dot" && v != "bits" && v != "float") {
        std::fprintf(stderr, "harness: --output %s: expected dot, bits or float\n", v.c_str());
        return 2;
      }
      output = v;
    } else if (a == "--time") {
      time_reps = std::atoi(v.c_str());
      if (time_reps < 1 || time_reps > 100000) {
        std::fprintf(stderr, "harness: --time %s: expected 1..100000\n", v.c_str());
        return 2;
      }
    } else {
      std::fprintf(stderr, "harness: unknown argument %s\n", a.c_str());
      return 2;
    }
  }
  if (list) {
    for (const auto& k : kernel_list(kernel_subs))
      std::printf("{\"kernel\": \"%s\", \"sparse\": %s}\n", k.first->name, k.second ? "true" : "false");
    return 0;
  }
  if (gens.empty()) gens = {"bernoulli"};
  if (sparsities.empty()) sparsities = {0.95};

  // The constant cost of the markers themselves: an empty region.
  sbnn_cost_begin();
  sbnn_cost_end();
  std::printf("{\"region\": %d, \"phase\": \"empty\"}\n", next_region++);

  const auto kernels = kernel_list(kernel_subs);
  bool ok = true;
  for (const Layer& l : layers) {
    const sbnn::BConv2DShape s = make_shape(l);
    const sbnn::BConv2DKernel* ref = sbnn::select_bconv2d_kernel(s, "reference");
    const int taps = l.k * l.k, cg = l.c;
    const long long macs = static_cast<long long>(s.out_h) * s.out_w * s.out_channels * taps * cg;
    std::mt19937 rng(1234);
    std::vector<uint32_t> input(static_cast<size_t>(s.in_h) * s.in_w * s.in_words);
    for (auto& v : input) v = rng();
    if (l.c % 32)
      for (size_t p = 0; p < input.size(); p += s.in_words) input[p + s.in_words - 1] &= (1u << (l.c % 32)) - 1;
    const size_t n_out = static_cast<size_t>(s.out_h) * s.out_w * s.out_channels;
    const int64_t pixels = static_cast<int64_t>(s.out_h) * s.out_w;
    // The layer's output: `dot` itself, or what the caller makes of it. "bits": the
    // bitpacked output of a binary consumer (bit o = dot < limit[o]); "float": the float
    // output transform (x = clamp(K - dot), x * m + b). Parameters are random.
    const int words = (l.o + 31) / 32;
    const size_t out_bytes = output == "dot"    ? n_out * 4
                             : output == "bits" ? static_cast<size_t>(pixels) * words * 4
                                                : n_out * 4;
    std::vector<int32_t> limit(l.o);
    std::vector<float> mul(l.o), add(l.o);
    sbnn::TransformParams tp;
    {
      std::mt19937 prng(99);
      const int32_t K = taps * cg;
      for (int o = 0; o < l.o; ++o) {
        limit[o] = static_cast<int32_t>(prng() % (2 * 64 + 1)) - 64;
        mul[o] = 0.5f + static_cast<float>(prng() % 1000) / 1000.0f;
        add[o] = static_cast<float>(static_cast<int>(prng() % 200) - 100) / 10.0f;
      }
      tp.K = K;
      tp.x_min = -K;
      tp.x_max = K;
      tp.m = mul.data();
      tp.b = add.data();
    }
    std::vector<int32_t> ref_dot(n_out);
    std::vector<unsigned char> expect(out_bytes), got(out_bytes);
    // The measured operation: for `dot` the kernel's run; for an output, the library's
    // one call for it (run_bconv2d_output): the kernel's fused run_output when it has
    // one, else its run followed by the output transform of this CPU.
    bool produced = true;
    auto produce = [&](const sbnn::BConv2DKernel* k, const void* prep, const int32_t* in,
                       const int32_t* flt, unsigned char* out) {
      if (output == "dot") {
        k->run(s, prep, in, flt, reinterpret_cast<int32_t*>(out), 0, s.out_h);
        return;
      }
      sbnn::BConv2DOutput o;
      o.kind = output == "bits" ? sbnn::BConv2DOutputKind::kBits : sbnn::BConv2DOutputKind::kFloat;
      o.channels = l.o;
      o.limit = limit.data();
      o.t = tp;
      o.out = out;
      produced = sbnn::run_bconv2d_output(*k, s, prep, in, flt, o, 0, s.out_h) && produced;
    };
    for (const std::string& gen : gens)
      for (double sp : sparsities) {
        sbnn::testing::SparseFilterSpec spec;
        spec.sparsity = sp;
        FilterInfo fi;
        fi.gen = gen;
        fi.sparsity = sp;
        if (gen == "k0k1") {
          double k0 = 0, k1 = 0;
          if (!sbnn::testing::paper_k0k1(sp, &k0, &k1)) {
            std::fprintf(stderr, "harness: no K0/K1 shares for sparsity %.4f: skipped\n", sp);
            continue;
          }
          spec.kernel_mode = true;
          spec.k0 = k0;
          spec.k1 = k1;
        }
        std::vector<int8_t> w;
        std::mt19937 frng(static_cast<uint32_t>(sp * 1000) + (gen == "k0k1" ? 7 : 0));
        sbnn::testing::generate_sparse_weights(&w, l.o, taps, cg, spec, &frng);
        std::vector<uint32_t> filter(static_cast<size_t>(l.o) * taps * s.filter_words, 0);
        std::vector<int> per_kernel(static_cast<size_t>(l.o) * cg, 0);
        fi.max_conns = 0;
        for (int o = 0; o < l.o; ++o) {
          const long long before = fi.connections;
          for (int t = 0; t < taps; ++t)
            for (int c = 0; c < cg; ++c) {
              const int8_t v = w[(static_cast<size_t>(o) * taps + t) * cg + c];
              if (v < 0) {
                filter[(static_cast<size_t>(o) * taps + t) * s.filter_words + c / 32] |= 1u << (c % 32);
              } else {
                ++fi.connections;
                ++per_kernel[static_cast<size_t>(o) * cg + c];
              }
            }
          fi.max_conns = std::max(fi.max_conns, static_cast<int>(fi.connections - before));
        }
        fi.density = static_cast<double>(fi.connections) / (static_cast<double>(l.o) * taps * cg);
        for (int v : per_kernel) {
          fi.k0 += v == 0;
          fi.k1 += v == 1;
        }
        fi.k0 /= per_kernel.size();
        fi.k1 /= per_kernel.size();
        const int32_t* in = reinterpret_cast<const int32_t*>(input.data());
        const int32_t* flt = reinterpret_cast<const int32_t*>(filter.data());
        if (check) {  // the reference kernel and the scalar reference transform
          const sbnn::TransformKernels& rt = sbnn::transform_kernels_scalar();
          ref->run(s, nullptr, in, flt, ref_dot.data(), 0, s.out_h);
          if (output == "dot")
            std::memcpy(expect.data(), ref_dot.data(), out_bytes);
          else if (output == "bits")
            rt.to_bits(ref_dot.data(), pixels, l.o, limit.data(), reinterpret_cast<int32_t*>(expect.data()));
          else
            rt.to_float(ref_dot.data(), pixels, l.o, tp, reinterpret_cast<float*>(expect.data()));
        }
        // Prepare every kernel, check it, count its runs; then (--time) time them
        // interleaved, so that all of them see the same machine load.
        std::vector<const sbnn::BConv2DKernel*> ks;
        std::vector<bool> sparse;
        std::vector<void*> preps;
        for (const auto& kp : kernels) {
          const sbnn::BConv2DKernel* k = kp.first;
          if (!k->supported(s)) continue;
          void* prep = nullptr;
          sbnn_cost_begin();
          if (k->prepare) prep = k->prepare(s, flt);
          sbnn_cost_end();
          print_region(l, fi, k, kp.second, "prepare", 0, macs);
          if (k->prepare && prep == nullptr) {
            std::printf("{\"error\": \"prepare failed\", \"kernel\": \"%s\", \"layer\": \"%s\"}\n", k->name,
                        l.name.c_str());
            ok = false;
            continue;
          }
          std::fill(got.begin(), got.end(), 0xa5);
          produce(k, prep, in, flt, got.data());  // warm-up: scratch buffers
          if (!produced) {
            std::printf("{\"error\": \"run_bconv2d_output failed\", \"kernel\": \"%s\", \"layer\": \"%s\"}\n",
                        k->name, l.name.c_str());
            ok = false;
          }
          if (check && got != expect) {
            std::printf("{\"mismatch\": \"%s\", \"layer\": \"%s\", \"gen\": \"%s\", \"sparsity\": %.4f}\n",
                        k->name, l.name.c_str(), gen.c_str(), sp);
            ok = false;
          }
          for (int r = 0; r < reps; ++r) {
            sbnn_cost_begin();
            produce(k, prep, in, flt, got.data());
            sbnn_cost_end();
            print_region(l, fi, k, kp.second, "run", r, macs);
          }
          if (check && got != expect) {
            std::printf("{\"mismatch\": \"%s\", \"layer\": \"%s\", \"gen\": \"%s\", \"sparsity\": %.4f, "
                        "\"measured\": true}\n",
                        k->name, l.name.c_str(), gen.c_str(), sp);
            ok = false;
          }
          ks.push_back(k);
          sparse.push_back(kp.second);
          preps.push_back(prep);
        }
        if (time_reps > 0) {
          std::vector<std::vector<double>> t(ks.size());
          for (int r = 0; r < time_reps; ++r)
            for (size_t i = 0; i < ks.size(); ++i) {
              const double t0 = thread_cpu_ms();
              produce(ks[i], preps[i], in, flt, got.data());
              t[i].push_back(thread_cpu_ms() - t0);
            }
          for (size_t i = 0; i < ks.size(); ++i) {
            std::sort(t[i].begin(), t[i].end());
            std::printf("{\"timing\": \"%s\", \"layer\": \"%s\", \"gen\": \"%s\", \"sparsity\": %.4f, "
                        "\"sparse\": %s, \"reps\": %d, \"min_ms\": %.6f, \"median_ms\": %.6f}\n",
                        ks[i]->name, l.name.c_str(), gen.c_str(), sp, sparse[i] ? "true" : "false", time_reps,
                        t[i][0], t[i][t[i].size() / 2]);
          }
        }
        for (size_t i = 0; i < ks.size(); ++i)
          if (ks[i]->release) ks[i]->release(preps[i]);
        std::fflush(stdout);
      }
  }
  return ok ? 0 : 1;
}
