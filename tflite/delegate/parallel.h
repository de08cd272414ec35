// Splits a row range over the delegate's thread pool.
#pragma once

#include <algorithm>
#include <cstdint>

#include "delegate/thread_pool.h"

namespace sbnn {

// Calls f(begin, end) on disjoint chunks covering [0, rows). Chunks hold at
// least `min_rows` rows (except when rows < min_rows); with one thread f runs
// once on the whole range.
template <typename F>
void parallel_rows(ThreadPool* pool, int64_t rows, int64_t min_rows, F&& f) {
  if (rows <= 0) return;
  const int threads = pool == nullptr ? 1 : pool->num_threads();
  if (min_rows < 1) min_rows = 1;
  int64_t tasks = std::min<int64_t>(rows / min_rows, int64_t{4} * threads);
  if (threads == 1 || tasks <= 1) {
    f(int64_t{0}, rows);
    return;
  }
  struct Job {
    F* f;
    int64_t rows;
    int64_t tasks;
  } job{&f, rows, tasks};
  pool->parallel_for(
      static_cast<int>(tasks),
      [](void* ctx, int t) {
        const Job* j = static_cast<const Job*>(ctx);
        const int64_t begin = j->rows * t / j->tasks;
        const int64_t end = j->rows * (t + 1) / j->tasks;
        if (begin < end) (*j->f)(begin, end);
      },
      &job);
}

}  // namespace sbnn
