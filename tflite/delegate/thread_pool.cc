#include "delegate/thread_pool.h"

#include <chrono>

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define SBNN_CPU_RELAX() _mm_pause()
#elif defined(__aarch64__)
#define SBNN_CPU_RELAX() asm volatile("yield" ::: "memory")
#else
#define SBNN_CPU_RELAX() ((void)0)
#endif

namespace sbnn {

ThreadPool::ThreadPool(int num_threads, int spin_us)
    : num_threads_(num_threads < 1 ? 1 : num_threads), spin_us_(spin_us < 0 ? 0 : spin_us) {
  for (int i = 1; i < num_threads_; ++i) workers_.emplace_back([this] { worker_loop(); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_.store(true);
  }
  work_cv_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::run_tasks(uint32_t gen) {
  const TaskFn fn = fn_.load(std::memory_order_acquire);
  void* const ctx = ctx_.load(std::memory_order_acquire);
  const uint32_t n = static_cast<uint32_t>(n_tasks_.load(std::memory_order_acquire));
  uint64_t s = state_.load(std::memory_order_acquire);
  for (;;) {
    if (static_cast<uint32_t>(s >> 32) != gen || static_cast<uint32_t>(s) >= n) return;
    if (!state_.compare_exchange_weak(s, s + 1, std::memory_order_acq_rel,
                                      std::memory_order_acquire))
      continue;  // s now holds the current state
    fn(ctx, static_cast<int>(static_cast<uint32_t>(s)));
    pending_.fetch_sub(1, std::memory_order_acq_rel);
    s = state_.load(std::memory_order_acquire);
  }
}

void ThreadPool::worker_loop() {
  using Clock = std::chrono::steady_clock;
  uint32_t seen = 0;
  for (;;) {
    // Spin (polling, then yielding) until a new generation is published.
    const auto deadline = Clock::now() + std::chrono::microseconds(spin_us_);
    uint32_t gen = seen;
    for (int i = 0;; ++i) {
      gen = static_cast<uint32_t>(state_.load(std::memory_order_acquire) >> 32);
      if (gen != seen || stop_.load(std::memory_order_relaxed)) break;
      if (i < 256) {
        SBNN_CPU_RELAX();
      } else {
        if ((i & 15) == 0 && Clock::now() >= deadline) break;
        std::this_thread::yield();
      }
    }
    if (gen == seen) {
      std::unique_lock<std::mutex> lock(mutex_);
      sleepers_.fetch_add(1, std::memory_order_seq_cst);
      work_cv_.wait(lock, [&] {
        return stop_.load() ||
               static_cast<uint32_t>(state_.load(std::memory_order_seq_cst) >> 32) != seen;
      });
      sleepers_.fetch_sub(1, std::memory_order_seq_cst);
      gen = static_cast<uint32_t>(state_.load(std::memory_order_acquire) >> 32);
    }
    if (stop_.load()) return;
    seen = gen;
    run_tasks(gen);
  }
}

void ThreadPool::parallel_for(int n_tasks, TaskFn fn, void* ctx) {
  if (n_tasks <= 0) return;
  if (workers_.empty() || n_tasks == 1) {
    for (int t = 0; t < n_tasks; ++t) fn(ctx, t);
    return;
  }
  std::lock_guard<std::mutex> call_lock(call_mutex_);
  fn_.store(fn, std::memory_order_relaxed);
  ctx_.store(ctx, std::memory_order_relaxed);
  n_tasks_.store(n_tasks, std::memory_order_relaxed);
  pending_.store(n_tasks, std::memory_order_relaxed);
  const uint32_t gen = static_cast<uint32_t>(state_.load(std::memory_order_relaxed) >> 32) + 1;
  // Publishing the new generation (seq_cst) orders the job fields before it, and
  // against the sleepers_ check below (a worker registers as a sleeper before it
  // re-reads state_ under the mutex, so either it sees this generation or we see it).
  state_.store(uint64_t{gen} << 32, std::memory_order_seq_cst);
  if (sleepers_.load(std::memory_order_seq_cst) > 0) {
    std::lock_guard<std::mutex> lock(mutex_);
    work_cv_.notify_all();
  }
  run_tasks(gen);
  // Tasks taken by workers may still run: wait for them (they are awake, so spin).
  for (int i = 0; pending_.load(std::memory_order_acquire) != 0; ++i) {
    if (i < 1024)
      SBNN_CPU_RELAX();
    else
      std::this_thread::yield();
  }
  // Close the generation: a worker that read this job's state but not yet its fields
  // (or read the next job's fields) can no longer take a task with them.
  state_.store(uint64_t{gen} << 32 | 0xffffffffu, std::memory_order_seq_cst);
}

}  // namespace sbnn
