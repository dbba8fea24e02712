// The machine's own limits, measured on it (issue 23): how many arithmetic operations per second one
// core (and every core) completes with each ISA variant's multiply-add instruction, and how many bytes
// per second it reads from each cache level and from memory. `edgecolbert bench` divides each
// kernel's rate by the limit that bounds it (roofline) instead of by a BLAS that may run a generic
// kernel.
//
// Compute probes: a loop of one instruction (vfmadd231ps, vdpbf16ps, vpdpbusd, fmla, bfdot, sdot,
// smmla) on `accumulators` independent registers, enough chains to cover the instruction's latency
// on the pipes that run it (latency x pipes: 4 x 2 on Zen 4, 4 x 4 on Neoverse V2). Every product is
// 1 x 1 (the operands come from a run-time argument, so nothing can be folded), so each accumulator
// lane counts the products it has added; the accumulators are drained into a double every
// kProbeChunk iterations, before a float32 lane could stop being exact (2^24), and the probe returns
// 2 x the products added: the operations it performed, counted from the values it computed. A probe
// that ran fewer instructions than it claims returns less (the tests check the equality).
//
// Read probes: a sum of int32 vector loads into 8 independent accumulators (loads in flight, adds
// off the critical path) over a buffer of a chosen size, pass after pass; the result is the sum of
// what was read, which for a buffer of ones is the number of int32 elements read.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace edgecolbert {

// Iterations between drains of the accumulators: the largest increment per lane and iteration is
// smmla's 8 (8 products into each of its 4 lanes), and 8 x 2^20 < 2^24 keeps float32 lanes exact.
constexpr int64_t kProbeChunk = int64_t{1} << 20;

struct ComputeProbe {
  const char* name;         // operation, dtype and variant: "fma_f32_avx512", "dot_i8_neon_i8mm"
  const char* variant;      // the dispatch variant whose CPU features the instruction needs
  const char* dtype;        // the operands: float32, bfloat16, int8
  const char* instruction;  // what the loop repeats, as the assembler spells it ("vfmadd231ps zmm")
  const char* mnemonic;     // the instruction's mnemonic prefix in a disassembly ("vfmadd", "fmla")
  int accumulators;         // independent accumulator registers; one instruction on each per iteration
  int64_t ops_per_instruction;  // 2 per multiply-add: vfmadd231ps zmm 32, vpdpbusd zmm 16 x 4 x 2 = 128
  // Runs iters iterations (iters x accumulators instructions) with every operand equal to `one`
  // (pass 1); returns the operations performed, counted from the accumulators' values:
  // iters x accumulators x ops_per_instruction when one == 1 and the loop ran in full.
  double (*run)(int64_t iters, int one);
};

struct ReadProbe {
  const char* name;         // "read_avx512"
  const char* variant;      // the dispatch variant whose features the loads need
  const char* instruction;  // "vmovdqu32 zmm + vpaddd"
  int64_t block_elements;   // n must be a multiple of this (8 vectors of int32)
  // Sum of buf[0, n) over `passes` passes. Within a pass each of the 8 x lanes partial sums must fit
  // an int32 (values x n / block_elements < 2^31).
  int64_t (*run)(const int32_t* buf, int64_t n, int64_t passes);
};

// Every probe compiled into this build (only some of them may run on this CPU).
const std::vector<ComputeProbe>& compute_probes();
const std::vector<ReadProbe>& read_probes();
const ComputeProbe& compute_probe(const std::string& name);  // throws std::invalid_argument
const ReadProbe& read_probe(const std::string& name);

// Data cache sizes in bytes as the OS reports them: sysfs (/sys/devices/system/cpu/cpu0/cache), and
// sysconf for a level sysfs does not give; 0 where neither knows. l3_shared_by is how many CPUs share
// the L3 (1 when unknown).
struct CacheSizes {
  int64_t l1d = 0, l2 = 0, l3 = 0;
  int l3_shared_by = 1;
  std::string source;  // "sysfs", "sysfs+sysconf", "sysconf" or "none"
};
CacheSizes cache_sizes();
// The same from a sysfs cache directory (its index0..index15) and the sizes sysconf would give (tests).
CacheSizes cache_sizes_from(const std::string& sysfs_dir, const CacheSizes& fallback);

// One timed measurement: `threads` threads started together by a barrier, each running the same
// work; per repeat, the wall time of the slowest thread and the largest thread CPU time (a thread
// that was preempted shows wall > cpu). `amount` is the work of all threads in one repeat (operations
// or bytes), `check` whether every thread's result was the expected value.
struct ProbeTiming {
  int threads = 1;
  int64_t iters = 0;  // compute: iterations per thread; read: passes per thread
  double amount = 0;
  std::vector<double> wall_s, cpu_s;
  bool check = false;
};

// Calibrates iters on one thread so that a repeat takes about `seconds`, then times `repeats` repeats.
ProbeTiming time_compute_probe(const ComputeProbe& p, int threads, double seconds, int repeats);
// Each thread reads its own buffer of bytes_per_thread (rounded down to whole blocks, at least one),
// allocated and filled with ones by that thread (first touch) and read once before timing.
ProbeTiming time_read_probe(const ReadProbe& p, int64_t bytes_per_thread, int threads, double seconds, int repeats);

}  // namespace edgecolbert
