// A small persistent pool. One job at a time: workers wake on a new generation, pull task indices
// from an atomic counter, and the last one out signals the caller.
// Waiting: a search is a few parallel regions of ~0.1 ms with short serial steps between, and waking a
// blocked thread costs ~85 us on a 2-vCPU VM, as long as a region. So after a job a helper waits for the
// next one by polling with sched_yield() for up to kHelperWaitMicros before it blocks, and the caller
// polls for the helpers for up to kCallerWaitMicros. Yielding, not pausing: any other runnable thread
// (torch's OpenMP workers spinning after an encoder call, say) gets the core first, so the wait costs
// only otherwise idle time (measured in docs/index.md, "Threads and waiting"). EDGECOLBERT_WAIT_POLICY=
// passive (read per job) blocks at once, for hosts where even idle polling is unwelcome.
// Callers that find the pool busy (another Python thread is using it) run inline rather than queue:
// same results, no deadlock, no unbounded waiting.
#include "edgecolbert/threadpool.hpp"

#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace edgecolbert {

int default_num_threads() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    int n = CPU_COUNT(&set);
    if (n > 0) return n;
  }
  unsigned hc = std::thread::hardware_concurrency();
  return hc > 0 ? static_cast<int>(hc) : 1;
}

namespace {

constexpr int64_t kCallerWaitMicros = 200;
constexpr int64_t kHelperWaitMicros = 1000;

// Polls done(), yielding the CPU between polls, until it returns true or `micros` pass; returns
// whether it did.
template <class F>
bool poll_until(F&& done, int64_t micros) {
  const auto t0 = std::chrono::steady_clock::now();
  for (;;) {
    if (done()) return true;
    sched_yield();
    if (std::chrono::steady_clock::now() - t0 > std::chrono::microseconds(micros)) return done();
  }
}

class Pool {
 public:
  Pool() : pid_(getpid()) {}
  ~Pool() {
    {
      std::lock_guard<std::mutex> lk(m_);
      stop_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
  }

  pid_t pid() const { return pid_; }
  std::mutex& busy() { return busy_; }

  // Caller holds busy().
  void run(int64_t ntasks, int num_threads, const std::function<void(int64_t, int)>& fn) {
    const int helpers = num_threads - 1;
    while (static_cast<int>(threads_.size()) < helpers) {
      int idx = static_cast<int>(threads_.size()) + 1;
      threads_.emplace_back([this, idx] { worker_loop(idx); });
    }
    {
      std::lock_guard<std::mutex> lk(m_);
      fn_ = &fn;
      ntasks_ = ntasks;
      next_.store(0);
      participants_ = helpers;
      pending_ = helpers;
      error_ = nullptr;
      poll_ = polling_enabled();
      ++generation_;
    }
    cv_.notify_all();
    work(0);
    if (poll_) poll_until([this] { return pending_.load() == 0; }, kCallerWaitMicros);
    std::unique_lock<std::mutex> lk(m_);
    done_cv_.wait(lk, [this] { return pending_.load() == 0; });
    fn_ = nullptr;
    if (error_) std::rethrow_exception(error_);
  }

 private:
  void work(int worker) {
    try {
      for (;;) {
        int64_t t = next_.fetch_add(1);
        if (t >= ntasks_) break;
        (*fn_)(t, worker);
      }
    } catch (...) {
      std::lock_guard<std::mutex> lk(m_);
      if (!error_) error_ = std::current_exception();
      next_.store(ntasks_);
    }
  }

  void worker_loop(int idx) {
    uint64_t seen = 0;
    bool poll = false;
    for (;;) {
      // The next job usually follows within a search's serial step: poll briefly before blocking.
      if (poll) poll_until([&] { return generation_.load() != seen; }, kHelperWaitMicros);
      {
        std::unique_lock<std::mutex> lk(m_);
        cv_.wait(lk, [&] { return stop_ || generation_ != seen; });
        if (stop_) return;
        seen = generation_;
        poll = poll_;
        if (idx > participants_) continue;
      }
      work(idx);
      {
        std::lock_guard<std::mutex> lk(m_);
        if (--pending_ == 0) done_cv_.notify_one();
      }
    }
  }

  pid_t pid_;
  std::mutex busy_;
  std::mutex m_;
  std::condition_variable cv_, done_cv_;
  std::vector<std::thread> threads_;
  const std::function<void(int64_t, int)>* fn_ = nullptr;
  int64_t ntasks_ = 0;
  std::atomic<int64_t> next_{0};
  int participants_ = 0;
  std::atomic<int> pending_{0};
  std::atomic<uint64_t> generation_{0};
  bool poll_ = true;  // this job's waits poll before blocking (EDGECOLBERT_WAIT_POLICY)
  bool stop_ = false;
  std::exception_ptr error_;
};

std::mutex g_pool_mutex;
Pool* g_pool = nullptr;  // intentionally leaked: joining at static destruction time can deadlock

Pool& pool() {
  std::lock_guard<std::mutex> lk(g_pool_mutex);
  // After fork() the child has none of the parent's threads: start a fresh pool there.
  if (g_pool == nullptr || g_pool->pid() != getpid()) g_pool = new Pool();
  return *g_pool;
}

}  // namespace

bool polling_enabled() {
  const char* env = std::getenv("EDGECOLBERT_WAIT_POLICY");
  return env == nullptr || std::strcmp(env, "passive") != 0;
}

void parallel_for(int64_t ntasks, int num_threads, const std::function<void(int64_t, int)>& fn) {
  if (ntasks <= 0) return;
  num_threads = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(num_threads, ntasks)));
  if (num_threads == 1) {
    for (int64_t t = 0; t < ntasks; ++t) fn(t, 0);
    return;
  }
  Pool& p = pool();
  std::unique_lock<std::mutex> lk(p.busy(), std::try_to_lock);
  if (!lk.owns_lock()) {
    for (int64_t t = 0; t < ntasks; ++t) fn(t, 0);
    return;
  }
  p.run(ntasks, num_threads, fn);
}

}  // namespace edgecolbert
