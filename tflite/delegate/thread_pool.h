// A small fixed-size thread pool: parallel_for over [0, n_tasks) with the calling
// thread taking part. One pool per delegate; calls are serialised, so a delegate
// shared by two interpreters running at once stays correct.
//
// Workers spin for a short while after their last task before they sleep on a
// condition variable: waking a sleeping thread costs tens of microseconds on a
// virtual machine (an inter-processor interrupt through the hypervisor), as long as
// a whole small binary conv, and an invoke calls parallel_for twice per binary layer.
// While spinning they yield the core to any other runnable thread (e.g. XNNPACK's
// workers), so an idle spin costs little when the cores are shared.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

namespace sbnn {

class ThreadPool {
 public:
  using TaskFn = void (*)(void* ctx, int task);

  // `num_threads` counts the caller: 1 means no worker threads at all.
  // `spin_us`: how long an idle worker polls for new work before it sleeps.
  explicit ThreadPool(int num_threads, int spin_us = kDefaultSpinUs);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int num_threads() const { return num_threads_; }

  // Runs fn(ctx, t) for every t in [0, n_tasks), spread over the threads, and
  // returns when all have finished.
  void parallel_for(int n_tasks, TaskFn fn, void* ctx);

  static constexpr int kDefaultSpinUs = 2000;

 private:
  void worker_loop();
  // Takes and runs tasks of generation `gen` until none is left.
  void run_tasks(uint32_t gen);

  const int num_threads_;
  const int spin_us_;
  std::vector<std::thread> workers_;
  std::mutex call_mutex_;  // one parallel_for at a time

  // state_ = generation << 32 | next task index: a worker can only take a task of the
  // generation it read the job of (a compare-and-swap on both halves).
  std::atomic<uint64_t> state_{0};
  std::atomic<int> pending_{0};  // tasks of the current generation not finished
  std::atomic<TaskFn> fn_{nullptr};
  std::atomic<void*> ctx_{nullptr};
  std::atomic<int> n_tasks_{0};

  std::mutex mutex_;  // for sleeping workers
  std::condition_variable work_cv_;
  std::atomic<int> sleepers_{0};
  std::atomic<bool> stop_{false};
};

}  // namespace sbnn
