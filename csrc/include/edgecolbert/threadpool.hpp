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

// Whether waits poll (yielding the CPU) before blocking: true unless EDGECOLBERT_WAIT_POLICY=passive.
// Read at each parallel_for (threadpool.cpp explains the policy).
bool polling_enabled();

}  // namespace edgecolbert
