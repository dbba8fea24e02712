// A reusable pool of worker threads. run() hands out task indices 0..ntasks-1 dynamically to at most
// num_threads participants (the caller is participant 0); results must not depend on which worker
// ran a task, so kernels write to per-task outputs or per-participant buffers indexed by `worker`.
#pragma once
#include <cstdint>
#include <functional>

namespace edgecolbert {

// Cores this process may run on (sched_getaffinity), at least 1.
int default_num_threads();

// Runs fn(task, worker) for every task. worker is in [0, num_threads). Blocks until all are done;
// rethrows the first exception a task threw. Safe to call from several threads at once (a call that
// finds the pool busy runs its tasks on the calling thread) and after fork().
void parallel_for(int64_t ntasks, int num_threads, const std::function<void(int64_t, int)>& fn);

// While one lives (with num_threads > 1 and spin_enabled()), the pool's helpers spin for the next
// parallel_for instead of blocking (up to 2 ms each time): for a sequence of short regions such as one
// search, whose regions (~0.1 ms) would otherwise each pay a thread wake-up of about as long. Keep it
// around the sequence only, not across waits for other work: spinning helpers hold their cores.
bool spin_enabled();  // EDGECOLBERT_SPIN=1 (read when a scope is made)
class SpinScope {
 public:
  explicit SpinScope(int num_threads);
  ~SpinScope();
  SpinScope(const SpinScope&) = delete;
  SpinScope& operator=(const SpinScope&) = delete;

 private:
  bool active_;
};

}  // namespace edgecolbert
