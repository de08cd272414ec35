// sbnn_sparse_bench: sparse vs dense binary conv kernels on the binary 3x3 convs of
// ResNet-18 for 32x32 inputs (CIFAR), batch 1, at several sparsities, with synthetic
// sparse filters from two generators: i.i.d. Bernoulli and the paper's K0/K1 kernel
// shares (Table 2), see tflite/tests/core/sparse_filter_gen.h.
//
//   sbnn_sparse_bench [--json PATH] [--commit SHA] [--min-time SEC] [--min-reps N]
//                     [--kernel SUBSTR]... [--shape SUBSTR]... [--sparsity S]...
//                     [--gen bernoulli|k0k1]... [--rows-per-call N] [--threads N]
//                     [--no-select] [--output dot|bits|float|qfloat|qadd]
//
// --output times the layer's whole output stage instead of `dot` (bconv2d_output.h):
// every kernel through run_bconv2d_output, i.e. the sparse kernels' fused output, the
// dense kernel's `run` + the fastest transform per 16 KB chunk of dot (what the delegate
// does); bits: random thresholds; float: to_float; qfloat: the fused q transform (one
// more filter channel, all +1: the converter's q); qadd: qfloat + a residual (fused_add).
// Each kernel's output is checked against run_output_reference of the reference kernel.
// --compose: each sparse kernel is also timed without its fused output (`run` over the
// whole image, then the fastest transform: the delegate's path before fused outputs),
// interleaved with the others, reported as "<name>+compose".
// --evict-kb N: before every timed call, N KB are written (untimed), as a model's other
// ops would between two invokes of a layer: the cold-cache cost of each kernel.
//
// Method: for each (layer, generator, sparsity) one filter and one input (random bits),
// every kernel prepared once and checked against the reference dense kernel, then the
// kernels are run *interleaved* (dense, sparse 1, sparse 2, ...) until --min-time and
// --min-reps are met, so that all of them see the same machine load; reported: median
// wall, median and minimum thread CPU time per kernel (on a shared machine the minimum is
// the best estimate of the undisturbed cost). The dense kernel is the best dense one
// (select_bconv2d_kernel without force). Speed-up = dense / sparse (CPU time); the ideal
// is the operation-count reduction dense MACs / connection MACs = 1 / (1 - sparsity),
// and "of ideal" = speed-up / ideal. Network totals sum the layers with their
// multiplicity in ResNet-18 (16 binary 3x3 convs; the 1x1 shortcuts are full precision).
// Unless --no-select, select_bconv2d() ("auto") is run on each layer too and its choice
// and estimated/measured times are reported.
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "bconv2d.h"
#include "bench_util.h"
#include "bconv2d_output.h"
#include "bconv2d_select.h"
#include "sparse_filter_gen.h"

namespace {

using sbnn_bench::median;
using sbnn_bench::thread_cpu_ms;

struct Layer {
  const char* name;
  int h, w, c, o, k, stride, count;  // count: occurrences in the network
};

// Binary 3x3 convs of ResNet-18 for 32x32 inputs (the first conv of stages 2-4 has
// stride 2).
const Layer kLayers[] = {
    {"32x32x64->64", 32, 32, 64, 64, 3, 1, 4},
    {"32x32x64->128/2", 32, 32, 64, 128, 3, 2, 1},
    {"16x16x128->128", 16, 16, 128, 128, 3, 1, 3},
    {"16x16x128->256/2", 16, 16, 128, 256, 3, 2, 1},
    {"8x8x256->256", 8, 8, 256, 256, 3, 1, 3},
    {"8x8x256->512/2", 8, 8, 256, 512, 3, 2, 1},
    {"4x4x512->512", 4, 4, 512, 512, 3, 1, 3},
};

// --pad-values 1: SAME padding with +1 outside (LCE's "same one" padding): one border
// class, as for VALID convs.
int g_pad_values = 0;

sbnn::BConv2DShape make_shape(const Layer& l) {
  sbnn::BConv2DShape s = sbnn_bench::same_conv_shape(l.h, l.w, l.c, l.o, l.k, l.stride);
  s.pad_values = g_pad_values;
  return s;
}

struct Options {
  std::string json, commit;
  double min_time = 0.3;
  int min_reps = 20;
  int rows_per_call = 0;
  int threads = 1;
  bool select = true;
  std::string output = "dot";
  bool compose = false;
  int evict_kb = 0;  // --evict-kb
  std::vector<std::string> kernels, shapes, gens;
  std::vector<double> sparsities;
};

bool matches(const std::vector<std::string>& subs, const std::string& s) {
  if (subs.empty()) return true;
  for (const auto& x : subs)
    if (s.find(x) != std::string::npos) return true;
  return false;
}

// Runs the kernel over all rows (optionally in chunks, optionally in threads).
void run_kernel(const sbnn::BConv2DKernel* k, const sbnn::BConv2DShape& s, const void* prep,
                const int32_t* in, const int32_t* flt, int32_t* dot, int rows_per_call,
                int threads) {
  sbnn_bench::run_rows(s.batch * s.out_h, rows_per_call, threads,
                       [&](int r0, int r1) { k->run(s, prep, in, flt, dot, r0, r1); });
}

// The same with a fused output (run_bconv2d_output; compose: `run` per call into `dot`
// scratch, then the fastest transform, for kernels with a fused output too).
void run_kernel_out(const sbnn::BConv2DKernel* k, const sbnn::BConv2DShape& s, const void* prep,
                    const int32_t* in, const int32_t* flt, const sbnn::BConv2DOutput& out,
                    int rows_per_call, int threads, bool compose, int32_t* scratch) {
  const size_t row_elems = static_cast<size_t>(s.out_w) * s.out_channels;
  sbnn_bench::run_rows(s.batch * s.out_h, rows_per_call, threads, [&](int r0, int r1) {
    if (compose && k->run_output != nullptr) {
      k->run(s, prep, in, flt, scratch, r0, r1);  // (full-size scratch: rows at their place)
      sbnn::internal::apply_output_transform(sbnn::transform_kernels(), s, out,
                                             scratch + r0 * row_elems, r0, r1);
    } else {
      sbnn::run_bconv2d_output(*k, s, prep, in, flt, out, r0, r1);
    }
  });
}

struct Timing {
  std::string kernel;
  double wall_ms = 0, cpu_ms = 0, cpu_min_ms = 0, prepare_ms = 0;
  int reps = 0;
};

struct Result {
  std::string layer, gen;
  double sparsity = 0, density = 0, k0 = 0, k1 = 0;
  long long macs = 0, conns = 0;
  int count = 1;
  std::vector<Timing> t;  // t[0] = dense
  std::string auto_choice;
  double auto_ms = 0, auto_dense_ms = 0;
  const char* auto_reason = "";
};

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  for (sbnn_bench::Args args(argc, argv); args.next();) {
    const std::string a = args.flag();
    auto next = [&args] { return args.value(); };
    if (a == "--json") opt.json = next();
    else if (a == "--commit") opt.commit = next();
    else if (a == "--min-time") opt.min_time = std::atof(next());
    else if (a == "--min-reps") opt.min_reps = std::atoi(next());
    else if (a == "--rows-per-call") opt.rows_per_call = std::atoi(next());
    else if (a == "--threads") opt.threads = std::atoi(next());
    else if (a == "--kernel") opt.kernels.push_back(next());
    else if (a == "--shape") opt.shapes.push_back(next());
    else if (a == "--gen") opt.gens.push_back(next());
    else if (a == "--sparsity") opt.sparsities.push_back(std::atof(next()));
    else if (a == "--no-select") opt.select = false;
    else if (a == "--output") opt.output = next();
    else if (a == "--compose") opt.compose = true;
    else if (a == "--pad-values") g_pad_values = std::atoi(next()) != 0 ? 1 : 0;
    else if (a == "--evict-kb") opt.evict_kb = std::max(0, std::atoi(next()));
    else {
      std::fprintf(stderr,
                   "usage: %s [--json PATH] [--commit SHA] [--min-time SEC] [--min-reps N] "
                   "[--kernel SUBSTR]... [--shape SUBSTR]... [--sparsity S]... "
                   "[--gen bernoulli|k0k1]... [--rows-per-call N] [--threads N] [--no-select] "
                   "[--output dot|bits|float|qfloat|qadd] [--compose] [--pad-values 0|1] [--evict-kb N]\n",
                   argv[0]);
      return 2;
    }
  }
  if (opt.sparsities.empty()) opt.sparsities = {0.5, 0.9, 0.95, 0.99};
  if (opt.gens.empty()) opt.gens = {"bernoulli", "k0k1"};

  std::vector<Result> results;
  bool all_ok = true;
  for (const Layer& l : kLayers) {
    if (!matches(opt.shapes, l.name)) continue;
    const bool fused = opt.output != "dot";
    const bool qout = opt.output == "qfloat" || opt.output == "qadd";
    if (fused && !qout && opt.output != "bits" && opt.output != "float") {
      std::fprintf(stderr, "--output %s: expected dot, bits, float, qfloat or qadd\n", opt.output.c_str());
      return 2;
    }
    sbnn::BConv2DShape s = make_shape(l);
    if (qout) s.out_channels += 1;  // the q channel (all +1 weights)
    const sbnn::BConv2DKernel* dense = sbnn::select_bconv2d_kernel(s, nullptr);
    const sbnn::BConv2DKernel* ref = sbnn::select_bconv2d_kernel(s, "reference");
    std::vector<const sbnn::BConv2DKernel*> sparse;
    for (const sbnn::BConv2DKernel* const* k = sbnn::all_sparse_bconv2d_kernels(); *k; ++k)
      if ((*k)->supported(s) && std::strstr((*k)->name, "reference") == nullptr &&
          matches(opt.kernels, (*k)->name))
        sparse.push_back(*k);
    const int taps = l.k * l.k, cg = l.c;
    std::mt19937 rng(1234);
    std::vector<uint32_t> input(static_cast<size_t>(s.in_h) * s.in_w * s.in_words);
    for (auto& v : input) v = rng();
    if (l.c % 32) for (size_t p = 0; p < input.size(); p += s.in_words) input[p + s.in_words - 1] &= (1u << (l.c % 32)) - 1;
    const size_t n_out = static_cast<size_t>(s.out_h) * s.out_w * s.out_channels;
    std::vector<int32_t> expect(n_out), got(n_out), compose_dot(n_out);
    // Fused output: parameters and buffers (C output channels).
    const int C = qout ? s.out_channels - 1 : s.out_channels;
    const size_t n_fused = static_cast<size_t>(s.out_h) * s.out_w *
                           (opt.output == "bits" ? (C + 31) / 32 : C);
    std::vector<int32_t> f_expect(n_fused), f_got(n_fused), limit(C);
    std::vector<float> pm(C), pb(C), pa(C), pd(C), residual(static_cast<size_t>(s.out_h) * s.out_w * C);
    {
      std::normal_distribution<float> nd(0.0f, 1.0f);
      const int K = l.k * l.k * l.c;
      for (int c = 0; c < C; ++c) {
        limit[c] = static_cast<int32_t>(rng() % (2 * K + 1)) - K;
        pm[c] = nd(rng), pb[c] = nd(rng), pa[c] = nd(rng), pd[c] = nd(rng);
      }
      for (auto& v : residual) v = nd(rng);
    }
    sbnn::BConv2DOutput fo;
    fo.kind = opt.output == "bits" ? sbnn::BConv2DOutputKind::kBits
              : opt.output == "float" ? sbnn::BConv2DOutputKind::kFloat
                                      : sbnn::BConv2DOutputKind::kQFloat;
    fo.channels = C;
    fo.limit = limit.data();
    fo.t.K = l.k * l.k * l.c;
    fo.t.x_min = -fo.t.K;
    fo.t.x_max = fo.t.K;
    fo.t.m = pm.data();
    fo.t.b = pb.data();
    fo.q.a = pa.data();
    fo.q.d = pd.data();
    fo.q.b = pb.data();
    fo.q.lo = 0.0f;
    fo.q.hi = 1e30f;
    fo.q.add = opt.output == "qadd" ? residual.data() : nullptr;
    for (const std::string& gen : opt.gens)
      for (double sp : opt.sparsities) {
        sbnn::testing::SparseFilterSpec spec;
        spec.sparsity = sp;
        double k0 = 0, k1 = 0;
        if (gen == "k0k1") {
          if (!sbnn::testing::paper_k0k1(sp, &k0, &k1)) continue;
          spec.kernel_mode = true;
          spec.k0 = k0;
          spec.k1 = k1;
        }
        std::vector<int8_t> w;
        std::mt19937 frng(static_cast<uint32_t>(sp * 1000) + (gen == "k0k1" ? 7 : 0));
        sbnn::testing::generate_sparse_weights(&w, l.o, taps, cg, spec, &frng);
        // (qfloat: channel l.o is q, all +1 = bits 0)
        std::vector<uint32_t> filter(static_cast<size_t>(s.out_channels) * taps * s.filter_words, 0);
        long long conns = 0;
        std::vector<int> per_kernel(static_cast<size_t>(l.o) * cg, 0);
        for (int o = 0; o < l.o; ++o)
          for (int t = 0; t < taps; ++t)
            for (int c = 0; c < cg; ++c) {
              const int8_t v = w[(static_cast<size_t>(o) * taps + t) * cg + c];
              if (v < 0) filter[(static_cast<size_t>(o) * taps + t) * s.filter_words + c / 32] |= 1u << (c % 32);
              else { ++conns; ++per_kernel[static_cast<size_t>(o) * cg + c]; }
            }
        Result r;
        r.layer = l.name;
        r.gen = gen;
        r.sparsity = sp;
        r.count = l.count;
        r.macs = static_cast<long long>(s.out_h) * s.out_w * s.out_channels * taps * cg;
        r.conns = conns;
        r.density = static_cast<double>(conns) / (static_cast<double>(l.o) * taps * cg);
        for (int v : per_kernel) { r.k0 += v == 0; r.k1 += v == 1; }
        r.k0 /= per_kernel.size();
        r.k1 /= per_kernel.size();

        const int32_t* in = reinterpret_cast<const int32_t*>(input.data());
        const int32_t* flt = reinterpret_cast<const int32_t*>(filter.data());
        ref->run(s, nullptr, in, flt, expect.data(), 0, s.out_h);
        if (fused) {
          fo.out = f_expect.data();
          sbnn::run_output_reference(*ref, s, nullptr, in, flt, fo, 0, s.out_h);
          fo.out = f_got.data();
        }
        std::vector<const sbnn::BConv2DKernel*> ks = {dense};
        ks.insert(ks.end(), sparse.begin(), sparse.end());
        std::vector<bool> comp(ks.size(), false);
        if (fused && opt.compose)
          for (const sbnn::BConv2DKernel* k : sparse) {
            ks.push_back(k);
            comp.push_back(true);
          }
        auto ks_at = [&](size_t i) { return ks[i]; };
        auto run_any = [&](size_t i, const void* pp) {
          if (fused)
            run_kernel_out(ks_at(i), s, pp, in, flt, fo, opt.rows_per_call, opt.threads,
                           comp[i], compose_dot.data());
          else
            run_kernel(ks_at(i), s, pp, in, flt, got.data(), opt.rows_per_call, opt.threads);
        };
        std::vector<void*> prep(ks.size(), nullptr);
        std::vector<std::vector<double>> wall(ks.size()), cpu(ks.size());
        r.t.resize(ks.size());
        for (size_t i = 0; i < ks.size(); ++i) {
          r.t[i].kernel = std::string(ks[i]->name) + (comp[i] ? "+compose" : "");
          const double p0 = thread_cpu_ms();
          if (ks[i]->prepare) prep[i] = ks[i]->prepare(s, flt);
          r.t[i].prepare_ms = thread_cpu_ms() - p0;
          std::fill(got.begin(), got.end(), 0x7eadbeef);
          std::fill(f_got.begin(), f_got.end(), 0x7eadbeef);
          run_any(i, prep[i]);
          if (fused ? f_got != f_expect : got != expect) {
            std::printf("MISMATCH %s on %s (%s, sparsity %.2f)\n", ks[i]->name, l.name, gen.c_str(), sp);
            all_ok = false;
          }
        }
        std::vector<uint8_t> evict(static_cast<size_t>(opt.evict_kb) * 1024, 0);
        const auto t0 = std::chrono::steady_clock::now();
        for (int rep = 0;; ++rep) {
          for (size_t i = 0; i < ks.size(); ++i) {
            // (as the other ops of a model would: the kernel's filter formats and
            // scratch leave the caches between its calls)
            if (!evict.empty()) {
              for (size_t j = 0; j < evict.size(); j += 64) evict[j] = static_cast<uint8_t>(evict[j] + 1);
            }
            const double c0 = thread_cpu_ms();
            const auto w0 = std::chrono::steady_clock::now();
            run_any(i, prep[i]);
            wall[i].push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - w0).count());
            cpu[i].push_back(thread_cpu_ms() - c0);
          }
          const double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
          if (rep + 1 >= opt.min_reps && el >= opt.min_time) break;
        }
        for (size_t i = 0; i < ks.size(); ++i) {
          r.t[i].wall_ms = median(wall[i]);
          r.t[i].cpu_ms = opt.threads <= 1 ? median(cpu[i]) : r.t[i].wall_ms;
          r.t[i].cpu_min_ms = opt.threads <= 1 ? *std::min_element(cpu[i].begin(), cpu[i].end())
                                                : *std::min_element(wall[i].begin(), wall[i].end());
          r.t[i].reps = static_cast<int>(wall[i].size());
          if (ks[i]->release) ks[i]->release(prep[i]);
        }
        if (opt.select) {
          sbnn::BConv2DSelectOptions so;
          sbnn::BConv2DSelection sel;
          if (sbnn::select_bconv2d(s, flt, so, &sel)) {
            r.auto_choice = sel.kernel->name;
            r.auto_ms = sel.chosen_ms;
            r.auto_dense_ms = sel.dense_ms;
            r.auto_reason = sel.reason;
            sbnn::release_bconv2d_selection(&sel);
          }
        }
        results.push_back(r);
        // One line per configuration as we go.
        size_t best = 1;
        for (size_t i = 2; i < r.t.size(); ++i) if (r.t[i].cpu_ms < r.t[best].cpu_ms) best = i;
        if (r.t.size() > 1) {
          const double speed = r.t[0].cpu_ms / r.t[best].cpu_ms, ideal = 1.0 / r.density;
          std::printf("%-17s %-9s sp %.2f  dense %.4f ms  %s %.4f ms  x%.2f (ideal x%.1f, %.0f%%)%s%s\n",
                      l.name, gen.c_str(), sp, r.t[0].cpu_ms, r.t[best].kernel.c_str(),
                      r.t[best].cpu_ms, speed, ideal, 100 * speed / ideal,
                      r.auto_choice.empty() ? "" : "  auto: ", r.auto_choice.c_str());
          for (size_t i = 1; i < r.t.size(); ++i)
            if (r.t[i].kernel.find("+compose") != std::string::npos)
              std::printf("%-17s %-9s sp %.2f    %s %.4f ms  x%.2f\n", l.name, gen.c_str(), sp,
                          r.t[i].kernel.c_str(), r.t[i].cpu_ms, r.t[0].cpu_ms / r.t[i].cpu_ms);
          std::fflush(stdout);
        }
      }
  }

  if (!opt.json.empty()) {
    std::ofstream js(opt.json);
    js << "{\n  \"benchmark\": \"sbnn_sparse_bench\",\n  \"commit\": \"" << opt.commit
       << "\",\n  \"threads\": " << opt.threads << ",\n  \"rows_per_call\": " << opt.rows_per_call
       << ",\n  \"min_time\": " << opt.min_time << ",\n  \"output\": \"" << opt.output
       << "\",\n  \"results\": [\n";
    for (size_t i = 0; i < results.size(); ++i) {
      const Result& r = results[i];
      js << "    {\"layer\": \"" << r.layer << "\", \"count\": " << r.count << ", \"gen\": \"" << r.gen
         << "\", \"sparsity\": " << r.sparsity << ", \"density\": " << r.density
         << ", \"k0\": " << r.k0 << ", \"k1\": " << r.k1 << ", \"macs\": " << r.macs
         << ", \"connections\": " << r.conns << ", \"auto\": \"" << r.auto_choice
         << "\", \"auto_reason\": \"" << r.auto_reason << "\", \"auto_ms\": " << r.auto_ms
         << ", \"auto_dense_ms\": " << r.auto_dense_ms << ", \"kernels\": [";
      for (size_t j = 0; j < r.t.size(); ++j) {
        js << (j ? ", " : "") << "{\"name\": \"" << r.t[j].kernel << "\", \"dense\": "
           << (j == 0 ? "true" : "false") << ", \"wall_ms\": " << r.t[j].wall_ms
           << ", \"cpu_ms\": " << r.t[j].cpu_ms << ", \"cpu_min_ms\": " << r.t[j].cpu_min_ms
           << ", \"prepare_ms\": " << r.t[j].prepare_ms
           << ", \"reps\": " << r.t[j].reps << "}";
      }
      js << "]}" << (i + 1 < results.size() ? "," : "") << "\n";
    }
    js << "  ]\n}\n";
  }
  return all_ok ? 0 : 1;
}
