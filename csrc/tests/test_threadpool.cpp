// The thread pool: every task runs exactly once, with any thread count, under both wait policies
// (helpers polling for the next job, or blocking at once), across many back-to-back regions and
// regions separated by pauses longer than the polling window, and a region that throws; and a pool
// busy with another caller's job runs the second caller's tasks inline.
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <numeric>
#include <stdexcept>
#include <thread>
#include <vector>

#include "edgecolbert/threadpool.hpp"
#include "test_util.hpp"

using namespace edgecolbert;

namespace {

// Runs `regions` parallel_for calls of `ntasks` tasks and checks each task ran once, by a valid worker.
void check_regions(int threads, int regions, int64_t ntasks) {
  std::vector<std::atomic<int>> hits(static_cast<std::size_t>(ntasks));
  for (int r = 0; r < regions; ++r) {
    for (auto& h : hits) h.store(0);
    std::atomic<int> bad_worker{0};
    parallel_for(ntasks, threads, [&](int64_t t, int worker) {
      if (worker < 0 || worker >= threads) bad_worker.fetch_add(1);
      hits[static_cast<std::size_t>(t)].fetch_add(1);
    });
    EC_CHECK(bad_worker.load() == 0, "threads=%d: a worker index out of range", threads);
    for (int64_t t = 0; t < ntasks; ++t)
      EC_CHECK(hits[static_cast<std::size_t>(t)].load() == 1, "threads=%d region %d: task %lld ran %d times", threads,
               r, (long long)t, hits[static_cast<std::size_t>(t)].load());
  }
}

}  // namespace

EC_TEST(threadpool_tasks_run_once_under_both_wait_policies) {
  for (const char* policy : {"", "passive"}) {
    if (*policy) setenv("EDGECOLBERT_WAIT_POLICY", policy, 1);
    else unsetenv("EDGECOLBERT_WAIT_POLICY");
    EC_CHECK(polling_enabled() == !*policy, "policy '%s' read wrongly", policy);
    for (int threads : {1, 2, 3, 4}) {
      check_regions(threads, 20, 37);
      check_regions(threads, 500, 5);  // many short regions: helpers find the next job while polling
      for (int r = 0; r < 3; ++r) {     // regions after the polling window: helpers blocked, woken again
        std::this_thread::sleep_for(std::chrono::milliseconds(3));
        check_regions(threads, 1, 9);
      }
      check_regions(threads, 20, 1);
    }
    // An exception in a task reaches the caller, and the pool keeps working.
    for (int threads : {2, 4}) {
      bool thrown = false;
      try {
        parallel_for(16, threads, [](int64_t t, int) {
          if (t == 7) throw std::runtime_error("task 7");
        });
      } catch (const std::runtime_error&) {
        thrown = true;
      }
      EC_CHECK(thrown, "threads=%d: the task's exception was not rethrown", threads);
      check_regions(threads, 5, 16);
    }
    // Two callers at once: one holds the pool, the other runs inline; both complete every task.
    std::atomic<int64_t> sum_a{0}, sum_b{0};
    std::thread other([&] {
      for (int r = 0; r < 200; ++r) parallel_for(10, 2, [&](int64_t t, int) { sum_a.fetch_add(t); });
    });
    for (int r = 0; r < 200; ++r) parallel_for(10, 2, [&](int64_t t, int) { sum_b.fetch_add(t); });
    other.join();
    EC_CHECK(sum_a.load() == 200 * 45 && sum_b.load() == 200 * 45, "concurrent callers: %lld and %lld, want %d",
             (long long)sum_a.load(), (long long)sum_b.load(), 200 * 45);
  }
  unsetenv("EDGECOLBERT_WAIT_POLICY");
}
