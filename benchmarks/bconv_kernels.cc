// sbnn_bconv_bench: times every bconv2d kernel the CPU supports on binary conv layers of
// real models (ResNet-18 for 224x224 and 32x32 inputs), plus 56x56x256->256 3x3 (the
// layer docs/kernels.md compares with LCE's x86 kernels).
//
//   sbnn_bconv_bench [--json PATH] [--kernel SUBSTR]... [--shape SUBSTR]...
//                    [--min-time SEC] [--min-reps N] [--threads N] [--commit SHA]
//                    [--rows-per-call N]
//
// Method: batch 1, random bits, one prepare() per (shape, kernel), one warm-up run, then
// runs until both --min-reps and --min-time are reached; the median (and the minimum)
// wall time is reported, and (1 thread) the median thread CPU time, which is robust
// when other processes share the cores. Caches are warm (the same input, filter and output every run:
// the steady state of a layer inside a model that fits in L2/L3). --threads N splits
// the output rows over N threads (default 1); --rows-per-call N makes each run() call
// cover N output rows (a delegate's chunking; default: one call). Every kernel's output is checked against
// the reference kernel's before it is timed.
// Work: MACs = out_h * out_w * out_channels * filter_h * filter_w * in_channels/groups
// (dense, including outside taps); GBOPS = 2 * MACs / time / 1e9 (a binary MAC is an
// XOR/XNOR plus a popcount share, counted as 2 ops as LCE and others do).
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "bconv2d.h"
#include "bench_util.h"

namespace {

using sbnn_bench::median;
using sbnn_bench::thread_cpu_ms;

struct Layer {
  const char* model;
  const char* name;
  int h, w, c, o, k, stride;
};

// Binary 3x3 convs of ResNet-18 (the first conv of a stage has stride 2).
const Layer kLayers[] = {
    {"resnet18-224", "56x56x64->64", 56, 56, 64, 64, 3, 1},
    {"resnet18-224", "56x56x64->128/2", 56, 56, 64, 128, 3, 2},
    {"resnet18-224", "28x28x128->128", 28, 28, 128, 128, 3, 1},
    {"resnet18-224", "28x28x128->256/2", 28, 28, 128, 256, 3, 2},
    {"resnet18-224", "14x14x256->256", 14, 14, 256, 256, 3, 1},
    {"resnet18-224", "14x14x256->512/2", 14, 14, 256, 512, 3, 2},
    {"resnet18-224", "7x7x512->512", 7, 7, 512, 512, 3, 1},
    {"resnet18-32", "32x32x64->64", 32, 32, 64, 64, 3, 1},
    {"resnet18-32", "16x16x128->128", 16, 16, 128, 128, 3, 1},
    {"resnet18-32", "8x8x256->256", 8, 8, 256, 256, 3, 1},
    {"resnet18-32", "4x4x512->512", 4, 4, 512, 512, 3, 1},
    {"lce-x86", "56x56x256->256", 56, 56, 256, 256, 3, 1},
};

sbnn::BConv2DShape make_shape(const Layer& l) {
  return sbnn_bench::same_conv_shape(l.h, l.w, l.c, l.o, l.k, l.stride);
}

double macs(const sbnn::BConv2DShape& s) {
  return static_cast<double>(s.batch) * s.out_h * s.out_w * s.out_channels * s.filter_h *
         s.filter_w * (s.in_channels / s.groups);
}

std::string cpu_model() {
  std::ifstream f("/proc/cpuinfo");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("model name", 0) == 0) {
      const size_t p = line.find(':');
      if (p != std::string::npos) return line.substr(p + 2);
    }
  }
  return "unknown";
}

std::string json_escape(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '"' || c == '\\') o += '\\';
    o += c;
  }
  return o;
}

struct Result {
  const Layer* layer;
  const char* kernel;
  double median_ms, min_ms, cpu_ms, gbops;
  int reps;
  double speedup;  // reference median / this median
};

bool matches_any(const char* name, const std::vector<std::string>& filters) {
  if (filters.empty()) return true;
  for (const auto& f : filters)
    if (std::strstr(name, f.c_str())) return true;
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  std::string json_path, commit;
  std::vector<std::string> kernel_filters, shape_filters;
  double min_time = 0.5;
  int min_reps = 5, threads = 1, rows_per_call = 0;
  for (sbnn_bench::Args args(argc, argv); args.next();) {
    const std::string a = args.flag();
    auto next = [&args] { return args.value(); };
    if (a == "--json") json_path = next();
    else if (a == "--kernel") kernel_filters.push_back(next());
    else if (a == "--shape") shape_filters.push_back(next());
    else if (a == "--min-time") min_time = std::atof(next());
    else if (a == "--min-reps") min_reps = std::max(1, std::atoi(next()));
    else if (a == "--threads") threads = std::max(1, std::atoi(next()));
    else if (a == "--commit") commit = next();
    else if (a == "--rows-per-call") rows_per_call = std::max(0, std::atoi(next()));
    else {
      std::fprintf(stderr,
                   "usage: %s [--json PATH] [--kernel SUBSTR]... [--shape SUBSTR]... "
                   "[--min-time SEC] [--min-reps N] [--threads N] [--commit SHA] "
                   "[--rows-per-call N]\n",
                   argv[0]);
      return 2;
    }
  }

  const std::string cpu = cpu_model();
  std::printf("cpu: %s, threads: %d, min time %.2f s, min reps %d\n", cpu.c_str(), threads,
              min_time, min_reps);
  const sbnn::BConv2DShape probe = make_shape(kLayers[0]);
  const sbnn::BConv2DKernel* chosen = sbnn::select_bconv2d_kernel(probe, nullptr);
  std::printf("dispatch picks: %s\n\n", chosen ? chosen->name : "(none)");
  std::printf("%-13s %-17s %-34s %9s %9s %9s %8s %8s\n", "model", "layer", "kernel",
              "ms(med)", "ms(min)", "cpu(med)", "GBOPS", "x ref");

  std::vector<Result> results;
  std::mt19937 rng(42);
  bool all_ok = true;
  for (const Layer& layer : kLayers) {
    if (!matches_any(layer.name, shape_filters) && !matches_any(layer.model, shape_filters))
      continue;
    const sbnn::BConv2DShape s = make_shape(layer);
    std::vector<int32_t> input(static_cast<size_t>(s.batch) * s.in_h * s.in_w * s.in_words);
    std::vector<int32_t> filter(static_cast<size_t>(s.out_channels) * s.filter_h * s.filter_w *
                                s.filter_words);
    for (auto& v : input) v = static_cast<int32_t>(rng());
    for (auto& v : filter) v = static_cast<int32_t>(rng());
    const size_t n_out = static_cast<size_t>(s.batch) * s.out_h * s.out_w * s.out_channels;
    std::vector<int32_t> expected(n_out), dot(n_out);
    const sbnn::BConv2DKernel* ref = sbnn::select_bconv2d_kernel(s, "reference");
    ref->run(s, nullptr, input.data(), filter.data(), expected.data(), 0, s.batch * s.out_h);
    double ref_ms = 0;

    // The reference first (for the ratio), then the table's order.
    std::vector<const sbnn::BConv2DKernel*> order{ref};
    for (const sbnn::BConv2DKernel* const* k = sbnn::all_bconv2d_kernels(); *k; ++k)
      if (*k != ref) order.push_back(*k);
    for (const sbnn::BConv2DKernel* k : order) {
      if (!k->supported(s)) continue;
      if (k != ref && !matches_any(k->name, kernel_filters)) continue;
      void* prepared = k->prepare ? k->prepare(s, filter.data()) : nullptr;
      const int rows = s.batch * s.out_h;
      // Rows [rb, re) in calls of rows_per_call rows (0: one call), as a delegate does.
      auto run_rows = [&](int rb, int re) {
        const int step = rows_per_call > 0 ? rows_per_call : re - rb;
        for (int r = rb; r < re; r += step)
          k->run(s, prepared, input.data(), filter.data(), dot.data(), r, std::min(re, r + step));
      };
      auto run_once = [&] {
        if (threads == 1) {
          run_rows(0, rows);
          return;
        }
        std::vector<std::thread> pool;
        for (int t = 0; t < threads; ++t) {
          const int rb = rows * t / threads, re = rows * (t + 1) / threads;
          pool.emplace_back([&, rb, re] { run_rows(rb, re); });
        }
        for (auto& th : pool) th.join();
      };
      std::fill(dot.begin(), dot.end(), 0x7fffffff);
      run_once();  // warm-up, and the correctness check
      if (dot != expected) {
        std::printf("MISMATCH: %s differs from the reference on %s\n", k->name, layer.name);
        all_ok = false;
      }
      std::vector<double> times, cpu_times;
      double spent = 0;
      while (static_cast<int>(times.size()) < min_reps || spent < min_time) {
        const double c0 = thread_cpu_ms();
        const auto t0 = std::chrono::steady_clock::now();
        run_once();
        const double dt =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        cpu_times.push_back(thread_cpu_ms() - c0);
        times.push_back(dt * 1e3);
        spent += dt;
        if (times.size() >= 2000) break;
      }
      if (k->release) k->release(prepared);
      const double med = median(times);
      if (k == ref) ref_ms = med;
      Result r{&layer,
               k->name,
               med,
               *std::min_element(times.begin(), times.end()),
               threads == 1 ? median(cpu_times) : 0.0,
               2.0 * macs(s) / (med * 1e-3) / 1e9,
               static_cast<int>(times.size()),
               ref_ms / med};
      results.push_back(r);
      std::printf("%-13s %-17s %-34s %9.3f %9.3f %9.3f %8.1f %8.1f\n", layer.model,
                  layer.name, k->name, r.median_ms, r.min_ms, r.cpu_ms, r.gbops, r.speedup);
      std::fflush(stdout);
    }
  }

  if (!json_path.empty()) {
    std::ostringstream j;
    j << "{\n  \"cpu\": \"" << json_escape(cpu) << "\",\n  \"commit\": \"" << json_escape(commit)
      << "\",\n  \"threads\": " << threads << ",\n  \"min_time_s\": " << min_time
      << ",\n  \"min_reps\": " << min_reps << ",\n  \"rows_per_call\": " << rows_per_call << ",\n  \"dispatch\": \""
      << (chosen ? chosen->name : "") << "\",\n  \"results\": [\n";
    for (size_t i = 0; i < results.size(); ++i) {
      const Result& r = results[i];
      const sbnn::BConv2DShape s = make_shape(*r.layer);
      j << "    {\"model\": \"" << r.layer->model << "\", \"layer\": \"" << r.layer->name
        << "\", \"in\": [" << s.in_h << ", " << s.in_w << ", " << s.in_channels
        << "], \"out\": [" << s.out_h << ", " << s.out_w << ", " << s.out_channels
        << "], \"kernel_size\": " << s.filter_h << ", \"stride\": " << s.stride_h
        << ", \"macs\": " << static_cast<long long>(macs(s)) << ", \"kernel\": \"" << r.kernel
        << "\", \"median_ms\": " << r.median_ms << ", \"min_ms\": " << r.min_ms
        << ", \"thread_cpu_median_ms\": " << r.cpu_ms
        << ", \"reps\": " << r.reps << ", \"gbops\": " << r.gbops
        << ", \"speedup_vs_reference\": " << r.speedup << "}"
        << (i + 1 < results.size() ? ",\n" : "\n");
    }
    j << "  ]\n}\n";
    std::ofstream f(json_path);
    f << j.str();
    std::printf("\nwrote %s\n", json_path.c_str());
  }
  return all_ok ? 0 : 1;
}
