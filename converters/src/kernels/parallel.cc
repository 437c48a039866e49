// A tiny persistent thread pool for ParallelFor: workers wait on a condition variable
// (after a short spin, since invocations come back to back), the caller runs the first
// range itself and spins until the others are done. One job at a time (a mutex serialises
// callers from different interpreters).
#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include "kernels/binary_conv.h"

namespace tfcompress {
namespace {

class ThreadPool {
 public:
  void Run(int tasks, int threads, void (*fn)(void*, int, int), void* ctx) {
    std::lock_guard<std::mutex> job_lock(job_mutex_);
    Grow(threads - 1);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      fn_ = fn;
      ctx_ = ctx;
      tasks_ = tasks;
      parts_ = threads;
      pending_.store(threads - 1, std::memory_order_relaxed);
      generation_.fetch_add(1, std::memory_order_release);
    }
    wake_.notify_all();
    RunPart(0);
    while (pending_.load(std::memory_order_acquire) != 0) std::this_thread::yield();
  }

 private:
  void RunPart(int part) {
    const int begin = static_cast<int>(static_cast<int64_t>(tasks_) * part / parts_);
    const int end = static_cast<int>(static_cast<int64_t>(tasks_) * (part + 1) / parts_);
    if (begin < end) fn_(ctx_, begin, end);
  }

  void Grow(int workers) {
    while (static_cast<int>(workers_) < workers) {
      const int part = static_cast<int>(++workers_);
      const uint64_t current = generation_.load(std::memory_order_acquire);
      std::thread([this, part, current] { WorkerLoop(part, current); }).detach();
    }
  }

  // A worker takes part in a job at most once: it snapshots the generation and the job's
  // size under the lock, and the caller keeps the job's fields until every part is done.
  void WorkerLoop(int part, uint64_t seen) {
    for (;;) {
      for (int spin = 0; spin < 20000 && generation_.load(std::memory_order_acquire) == seen; ++spin) {
      }
      int parts;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, [&] { return generation_.load(std::memory_order_acquire) != seen; });
        seen = generation_.load(std::memory_order_acquire);
        parts = parts_;
      }
      if (part < parts) {
        RunPart(part);
        pending_.fetch_sub(1, std::memory_order_acq_rel);
      }
    }
  }

  std::mutex job_mutex_, mutex_;
  std::condition_variable wake_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> pending_{0};
  std::atomic<unsigned> workers_{0};
  void (*fn_)(void*, int, int) = nullptr;
  void* ctx_ = nullptr;
  int tasks_ = 0;
  int parts_ = 1;
};

}  // namespace

void ParallelFor(int tasks, int threads, void (*fn)(void* ctx, int begin, int end), void* ctx) {
  threads = std::max(1, std::min(threads, tasks));
  if (threads == 1) {
    if (tasks > 0) fn(ctx, 0, tasks);
    return;
  }
  // Never destroyed: detached workers may outlive static destruction at exit.
  static ThreadPool* pool = new ThreadPool();
  pool->Run(tasks, threads, fn, ctx);
}

}  // namespace tfcompress
