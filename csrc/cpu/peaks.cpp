// The peak probes' driver (peaks.hpp): which probes this build has, which this CPU runs, the cache
// sizes the OS reports, and the timing (threads started together, wall and thread CPU time per repeat).
#include "edgecolbert/peaks.hpp"

#include <sched.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <memory>
#include <stdexcept>
#include <thread>
#include <utility>

#include "edgecolbert/dispatch.hpp"

namespace edgecolbert {

// Defined in csrc/cpu/peaks_<isa>.cpp.
extern const ComputeProbe peak_probe_fma_f32_scalar;
extern const ReadProbe peak_probe_read_scalar;
#ifdef EDGECOLBERT_HAVE_AVX2
extern const ComputeProbe peak_probe_fma_f32_avx2;
extern const ReadProbe peak_probe_read_avx2;
#endif
#ifdef EDGECOLBERT_HAVE_AVX2VNNI
extern const ComputeProbe peak_probe_dot_i8_avx2_vnni;
#endif
#ifdef EDGECOLBERT_HAVE_AVX512
extern const ComputeProbe peak_probe_fma_f32_avx512;
extern const ReadProbe peak_probe_read_avx512;
#endif
#ifdef EDGECOLBERT_HAVE_AVX512VNNI
extern const ComputeProbe peak_probe_dot_i8_avx512_vnni;
#endif
#ifdef EDGECOLBERT_HAVE_AVX512BF16
extern const ComputeProbe peak_probe_dot_bf16_avx512_bf16;
#endif
#ifdef EDGECOLBERT_HAVE_NEON
extern const ComputeProbe peak_probe_fma_f32_neon;
extern const ReadProbe peak_probe_read_neon;
#endif
#ifdef EDGECOLBERT_HAVE_NEONDOTPROD
extern const ComputeProbe peak_probe_dot_i8_neon_dotprod;
#endif
#ifdef EDGECOLBERT_HAVE_NEONBF16
extern const ComputeProbe peak_probe_dot_bf16_neon_bf16;
#endif
#ifdef EDGECOLBERT_HAVE_NEONI8MM
extern const ComputeProbe peak_probe_mmla_i8_neon_i8mm;
#endif

namespace {

// Both lists, filled in one place: each ISA's compute and read probes under its one #ifdef, in the
// order the lists give them (scalar first).
struct ProbeLists {
  std::vector<ComputeProbe> compute;
  std::vector<ReadProbe> read;
  void add(const ComputeProbe& p) { compute.push_back(p); }
  void add(const ReadProbe& p) { read.push_back(p); }
};

const ProbeLists& probe_lists() {
  static const ProbeLists lists = [] {
    ProbeLists l;
    l.add(peak_probe_fma_f32_scalar);
    l.add(peak_probe_read_scalar);
#ifdef EDGECOLBERT_HAVE_AVX2
    l.add(peak_probe_fma_f32_avx2);
    l.add(peak_probe_read_avx2);
#endif
#ifdef EDGECOLBERT_HAVE_AVX2VNNI
    l.add(peak_probe_dot_i8_avx2_vnni);
#endif
#ifdef EDGECOLBERT_HAVE_AVX512
    l.add(peak_probe_fma_f32_avx512);
    l.add(peak_probe_read_avx512);
#endif
#ifdef EDGECOLBERT_HAVE_AVX512VNNI
    l.add(peak_probe_dot_i8_avx512_vnni);
#endif
#ifdef EDGECOLBERT_HAVE_AVX512BF16
    l.add(peak_probe_dot_bf16_avx512_bf16);
#endif
#ifdef EDGECOLBERT_HAVE_NEON
    l.add(peak_probe_fma_f32_neon);
    l.add(peak_probe_read_neon);
#endif
#ifdef EDGECOLBERT_HAVE_NEONDOTPROD
    l.add(peak_probe_dot_i8_neon_dotprod);
#endif
#ifdef EDGECOLBERT_HAVE_NEONBF16
    l.add(peak_probe_dot_bf16_neon_bf16);
#endif
#ifdef EDGECOLBERT_HAVE_NEONI8MM
    l.add(peak_probe_mmla_i8_neon_i8mm);
#endif
    return l;
  }();
  return lists;
}

template <class Probe>
const Probe& find_probe(const std::vector<Probe>& probes, const std::string& name, const char* kind) {
  for (const Probe& p : probes)
    if (name == p.name) return p;
  throw std::invalid_argument(std::string("no ") + kind + " probe named '" + name + "' in this build");
}

}  // namespace

const std::vector<ComputeProbe>& compute_probes() { return probe_lists().compute; }
const std::vector<ReadProbe>& read_probes() { return probe_lists().read; }
const ComputeProbe& compute_probe(const std::string& name) { return find_probe(compute_probes(), name, "compute"); }
const ReadProbe& read_probe(const std::string& name) { return find_probe(read_probes(), name, "read"); }

namespace {

// "32K", "1024K", "32M" (sysfs) -> bytes; 0 when unreadable.
int64_t parse_size(const std::string& s) {
  char* end = nullptr;
  const long long v = std::strtoll(s.c_str(), &end, 10);
  if (end == s.c_str() || v <= 0) return 0;
  switch (*end) {
    case 'K': return v << 10;
    case 'M': return v << 20;
    case 'G': return v << 30;
    default: return v;
  }
}

bool read_line(const std::string& path, std::string& out) {
  std::ifstream f(path);
  return static_cast<bool>(std::getline(f, out));
}

// "0-1,4,6-7" -> 5
int count_cpu_list(const std::string& s) {
  int n = 0;
  std::size_t i = 0;
  while (i < s.size()) {
    std::size_t j = s.find(',', i);
    if (j == std::string::npos) j = s.size();
    const std::string part = s.substr(i, j - i);
    const std::size_t dash = part.find('-');
    if (dash == std::string::npos) {
      n += !part.empty();
    } else {
      n += std::atoi(part.c_str() + dash + 1) - std::atoi(part.c_str()) + 1;
    }
    i = j + 1;
  }
  return n;
}

// Threads that start together: a sense-reversing barrier of spinning (yielding) threads, so a repeat
// starts on every thread within microseconds and none pays a futex wake-up inside its timing.
class SpinBarrier {
 public:
  explicit SpinBarrier(int n) : n_(n) {}
  void wait() {
    const int gen = gen_.load(std::memory_order_acquire);
    if (arrived_.fetch_add(1, std::memory_order_acq_rel) + 1 == n_) {
      arrived_.store(0, std::memory_order_relaxed);
      gen_.store(gen + 1, std::memory_order_release);
      return;
    }
    while (gen_.load(std::memory_order_acquire) == gen) sched_yield();
  }

 private:
  const int n_;
  std::atomic<int> arrived_{0}, gen_{0};
};

double thread_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

using Clock = std::chrono::steady_clock;

// Runs setup(t) on each of `threads` threads (the caller is thread 0), then `repeats` times: all
// threads pass a barrier, run body(t) and record their wall and CPU seconds; returns per repeat the
// slowest thread's wall time and the largest CPU time. check(t) (after the last repeat) says whether
// thread t's results were right.
void run_together(int threads, int repeats, const std::function<void(int)>& setup, const std::function<bool(int)>& body,
                  ProbeTiming& out) {
  std::vector<double> wall(static_cast<std::size_t>(threads) * repeats), cpu(wall.size());
  std::vector<char> ok(static_cast<std::size_t>(threads), 1);
  SpinBarrier barrier(threads);
  auto work = [&](int t) {
    setup(t);
    for (int r = 0; r < repeats; ++r) {
      barrier.wait();
      const double c0 = thread_cpu_seconds();
      const auto w0 = Clock::now();
      const bool good = body(t);
      wall[r * threads + t] = std::chrono::duration<double>(Clock::now() - w0).count();
      cpu[r * threads + t] = thread_cpu_seconds() - c0;
      ok[t] = ok[t] && good;
    }
  };
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) pool.emplace_back(work, t);
  work(0);
  for (auto& th : pool) th.join();
  out.threads = threads;
  out.wall_s.assign(repeats, 0.0);
  out.cpu_s.assign(repeats, 0.0);
  for (int r = 0; r < repeats; ++r)
    for (int t = 0; t < threads; ++t) {
      out.wall_s[r] = std::max(out.wall_s[r], wall[r * threads + t]);
      out.cpu_s[r] = std::max(out.cpu_s[r], cpu[r * threads + t]);
    }
  out.check = std::all_of(ok.begin(), ok.end(), [](char c) { return c != 0; });
}

// The smallest work count (doubling) whose single run takes >= seconds / 4, scaled to `seconds`:
// calibrated on one thread (per-thread work is the same at every thread count).
int64_t calibrate(const std::function<void(int64_t)>& run_n, double seconds) {
  int64_t n = 1;
  for (;;) {
    const auto t0 = Clock::now();
    run_n(n);
    const double dt = std::chrono::duration<double>(Clock::now() - t0).count();
    if (dt >= seconds / 4 || n >= (int64_t{1} << 40)) return std::max<int64_t>(1, static_cast<int64_t>(n * seconds / std::max(dt, 1e-9)));
    n *= 2;
  }
}

void check_args(int threads, double seconds, int repeats) {
  if (threads < 1 || threads > 4096) throw std::invalid_argument("threads must be in [1, 4096]");
  if (!(seconds > 0) || seconds > 60) throw std::invalid_argument("seconds must be in (0, 60]");
  if (repeats < 1 || repeats > 1000) throw std::invalid_argument("repeats must be in [1, 1000]");
}

void require_supported(const char* name, const char* variant) {
  if (!variant_supported(variant))
    throw std::invalid_argument(std::string("probe ") + name + " needs the " + variant + " variant, which this CPU cannot run");
}

}  // namespace

CacheSizes cache_sizes_from(const std::string& sysfs_dir, const CacheSizes& fallback) {
  CacheSizes c;
  bool from_sysfs = false;
  // Every indexN that is there (a layout may skip index0, and a level may lack its size file).
  for (int i = 0; i < 16; ++i) {
    std::string level, type, size, shared;
    const std::string dir = sysfs_dir + "/index" + std::to_string(i) + "/";
    if (!read_line(dir + "level", level) || !read_line(dir + "type", type) || !read_line(dir + "size", size)) continue;
    if (type == "Instruction") continue;
    const int64_t bytes = parse_size(size);
    if (bytes <= 0) continue;
    if (level == "1") c.l1d = bytes;
    if (level == "2") c.l2 = bytes;
    if (level == "3") {
      c.l3 = bytes;
      if (read_line(dir + "shared_cpu_list", shared)) c.l3_shared_by = std::max(1, count_cpu_list(shared));
    }
    from_sysfs = true;
  }
  // sysconf only for the levels sysfs did not give: glibc derives its sizes from CPUID, which on some
  // virtual machines reports a whole socket's L3 (320 MiB on a 32 MiB guest), so it never overrides sysfs.
  bool from_sysconf = false;
  for (auto [mine, theirs] : {std::pair{&c.l1d, fallback.l1d}, {&c.l2, fallback.l2}, {&c.l3, fallback.l3}}) {
    if (*mine == 0 && theirs > 0) {
      *mine = theirs;
      from_sysconf = true;
    }
  }
  c.source = from_sysfs ? (from_sysconf ? "sysfs+sysconf" : "sysfs") : from_sysconf ? "sysconf" : "none";
  return c;
}

CacheSizes cache_sizes() {
  CacheSizes sc;
#if defined(_SC_LEVEL1_DCACHE_SIZE)
  sc.l1d = std::max<long>(0, sysconf(_SC_LEVEL1_DCACHE_SIZE));
  sc.l2 = std::max<long>(0, sysconf(_SC_LEVEL2_CACHE_SIZE));
  sc.l3 = std::max<long>(0, sysconf(_SC_LEVEL3_CACHE_SIZE));
#endif
  return cache_sizes_from("/sys/devices/system/cpu/cpu0/cache", sc);
}

ProbeTiming time_compute_probe(const ComputeProbe& p, int threads, double seconds, int repeats) {
  check_args(threads, seconds, repeats);
  require_supported(p.name, p.variant);
  ProbeTiming out;
  out.iters = calibrate([&](int64_t n) { p.run(n, 1); }, seconds);
  const double expected = static_cast<double>(out.iters) * p.accumulators * static_cast<double>(p.ops_per_instruction);
  out.amount = expected * threads;
  run_together(
      threads, repeats, [](int) {}, [&](int) { return p.run(out.iters, 1) == expected; }, out);
  return out;
}

ProbeTiming time_read_probe(const ReadProbe& p, int64_t bytes_per_thread, int threads, double seconds, int repeats) {
  check_args(threads, seconds, repeats);
  require_supported(p.name, p.variant);
  if (bytes_per_thread < 1 || bytes_per_thread > (int64_t{1} << 36))
    throw std::invalid_argument("bytes_per_thread must be in [1, 64 GiB]");
  const int64_t block = p.block_elements;
  const int64_t n = std::max<int64_t>(1, bytes_per_thread / 4 / block) * block;
  // Allocated here (where a failure can throw), first touched by the thread that reads it (setup:
  // the pages land near that thread), then read once so that a cache-sized buffer is in its cache
  // before the first timed pass.
  std::vector<std::unique_ptr<int32_t, void (*)(void*)>> bufs;
  for (int t = 0; t < threads; ++t) {
    void* mem = nullptr;
    if (posix_memalign(&mem, 64, static_cast<std::size_t>(n) * 4) != 0) throw std::bad_alloc();
    bufs.emplace_back(static_cast<int32_t*>(mem), std::free);
  }
  auto setup = [&](int t) {
    int32_t* b = bufs[t].get();
    std::fill(b, b + n, 1);
    p.run(b, n, 1);
  };
  ProbeTiming out;
  setup(0);
  out.iters = calibrate([&](int64_t passes) { p.run(bufs[0].get(), n, passes); }, seconds);
  const int64_t expected = n * out.iters;
  out.amount = static_cast<double>(expected) * 4 * threads;
  run_together(threads, repeats, setup, [&](int t) { return p.run(bufs[t].get(), n, out.iters) == expected; }, out);
  return out;
}

}  // namespace edgecolbert
