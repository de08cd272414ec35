// A minimal fixed-size thread pool: parallel_for over [0, n_tasks) with the
// calling thread taking part. One pool per delegate; calls are serialised, so a
// delegate shared by two interpreters running at once stays correct.
#pragma once

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
  explicit ThreadPool(int num_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int num_threads() const { return num_threads_; }

  // Runs fn(ctx, t) for every t in [0, n_tasks), spread over the threads, and
  // returns when all have finished.
  void parallel_for(int n_tasks, TaskFn fn, void* ctx);

 private:
  void worker_loop();
  void run_tasks();

  const int num_threads_;
  std::vector<std::thread> workers_;
  std::mutex call_mutex_;  // one parallel_for at a time

  std::mutex mutex_;
  std::condition_variable work_cv_;
  std::condition_variable done_cv_;
  uint64_t generation_ = 0;
  bool stop_ = false;
  int busy_workers_ = 0;

  // The current job (valid while a parallel_for is running).
  TaskFn fn_ = nullptr;
  void* ctx_ = nullptr;
  int n_tasks_ = 0;
  int next_task_ = 0;  // guarded by mutex_
};

}  // namespace sbnn
