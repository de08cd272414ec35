// Helpers shared by the C++ kernel benchmarks (bconv_kernels.cc, sparse_kernels.cc).
#pragma once

#include <time.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "bconv2d.h"

namespace sbnn_bench {

// The command line, flag by flag: while next(), flag() is the current argument and
// value() consumes the one after it (a flag without a value prints "<flag> needs a
// value" and exits with status 2).
class Args {
 public:
  Args(int argc, char** argv) : argc_(argc), argv_(argv) {}
  bool next() { return ++i_ < argc_; }
  std::string flag() const { return argv_[i_]; }
  const char* value() {
    if (i_ + 1 >= argc_) {
      std::fprintf(stderr, "%s needs a value\n", argv_[i_]);
      std::exit(2);
    }
    return argv_[++i_];
  }

 private:
  const int argc_;
  char** const argv_;
  int i_ = 0;
};

// A batch-1, ungrouped binary conv with SAME padding and pad value 0 (the layers of the
// benchmarked networks).
inline sbnn::BConv2DShape same_conv_shape(int h, int w, int c, int o, int k, int stride) {
  sbnn::BConv2DShape s;
  s.batch = 1;
  s.in_h = h;
  s.in_w = w;
  s.in_channels = c;
  s.in_words = (c + 31) / 32;
  s.groups = 1;
  s.out_channels = o;
  s.filter_h = s.filter_w = k;
  s.filter_words = s.in_words;
  s.stride_h = s.stride_w = stride;
  s.out_h = (h + stride - 1) / stride;
  s.out_w = (w + stride - 1) / stride;
  s.pad_top = std::max((s.out_h - 1) * stride + k - h, 0) / 2;
  s.pad_left = std::max((s.out_w - 1) * stride + k - w, 0) / 2;
  s.pad_values = 0;
  return s;
}

// CPU time of the calling thread, in ms.
inline double thread_cpu_ms() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

inline double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// Calls call(r0, r1) over rows [0, rows) in pieces of rows_per_call (0: all at once),
// split evenly over `threads` threads (1: the calling thread).
template <class Call>
void run_rows(int rows, int rows_per_call, int threads, const Call& call) {
  const int step = rows_per_call > 0 ? rows_per_call : rows;
  auto range = [&](int r0, int r1) {
    for (int r = r0; r < r1; r += step) call(r, std::min(r1, r + step));
  };
  if (threads <= 1) {
    range(0, rows);
    return;
  }
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t)
    pool.emplace_back(range, rows * t / threads, rows * (t + 1) / threads);
  for (auto& th : pool) th.join();
}

}  // namespace sbnn_bench
