// Peak probes (peaks.hpp): their arithmetic, not their speed. A compute probe must return exactly the
// operations its loop performs (iters x accumulators x ops_per_instruction), counted from the values
// it computed: with zero operands it returns 0, and past kProbeChunk iterations the drains keep the
// count exact. A read probe must return the sum of what it read, pass after pass. The timing driver
// must run every thread and check every result. check_probe_code.py reads the table printed here and
// ties each probe's count to the instructions in its compiled loop.
#include <sys/stat.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "edgecolbert/dispatch.hpp"
#include "edgecolbert/peaks.hpp"
#include "test_util.hpp"

using namespace edgecolbert;

namespace {

double expected_ops(const ComputeProbe& p, int64_t iters) {
  return static_cast<double>(iters) * p.accumulators * static_cast<double>(p.ops_per_instruction);
}

// Whether f() throws std::invalid_argument with `says` in its message.
template <class F>
bool refuses(const F& f, const char* says = "") {
  try {
    f();
  } catch (const std::invalid_argument& e) {
    return std::string(e.what()).find(says) != std::string::npos;
  }
  return false;
}

}  // namespace

// For check_probe_code.py: one line per compiled probe (supported or not: the code is in the binary).
EC_TEST(peaks_table) {
  for (const ComputeProbe& p : compute_probes())
    std::printf("  probe %s mnemonic %s accumulators %d function peak_%s\n", p.name, p.mnemonic, p.accumulators, p.name);
}

EC_TEST(peaks_compute_probes_count_their_operations) {
  int ran = 0;
  for (const ComputeProbe& p : compute_probes()) {
    if (!variant_supported(p.variant)) {
      std::printf("  %s: not run (this CPU lacks %s)\n", p.name, p.variant);
      continue;
    }
    for (int64_t iters : {int64_t{1}, int64_t{2}, int64_t{7}, int64_t{1000}, kProbeChunk + 3}) {  // across a drain
      const double got = p.run(iters, 1);
      EC_CHECK(got == expected_ops(p, iters), "%s: %lld iterations gave %.17g operations, want %.17g", p.name,
               (long long)iters, got, expected_ops(p, iters));
    }
    // The count comes from the values: zero operands add nothing.
    EC_CHECK(p.run(1000, 0) == 0.0, "%s: zero operands counted %.17g", p.name, p.run(1000, 0));
    EC_CHECK(p.run(0, 1) == 0.0, "%s: zero iterations counted %.17g", p.name, p.run(0, 1));
    EC_CHECK(p.ops_per_instruction > 0 && p.accumulators >= 8, "%s: %lld ops per instruction, %d accumulators", p.name,
             (long long)p.ops_per_instruction, p.accumulators);
    ++ran;
    std::printf("  tested compute probe %s (%s, %d accumulators, %lld operations each)\n", p.name, p.instruction,
                p.accumulators, (long long)p.ops_per_instruction);
  }
  EC_CHECK(ran >= 1, "no compute probe ran (the scalar one always can)");
}

#if defined(__x86_64__)
// Natively only (under qemu this is minutes): past 2^24 iterations a float32 lane that was never
// drained would stop counting (2^24 + 1 is not a float32), so the count would come out short.
EC_TEST(peaks_compute_probes_stay_exact_past_float32_integers) {
  for (const ComputeProbe& p : compute_probes()) {
    if (!variant_supported(p.variant) || std::string(p.dtype) == "int8") continue;
    const int64_t iters = (int64_t{1} << 24) + 5;
    EC_CHECK(p.run(iters, 1) == expected_ops(p, iters), "%s: %lld iterations gave %.17g operations", p.name,
             (long long)iters, p.run(iters, 1));
  }
}
#endif

EC_TEST(peaks_read_probes_sum_what_they_read) {
  std::mt19937_64 rng(23);
  std::uniform_int_distribution<int32_t> val(-1000, 1000);
  for (const ReadProbe& p : read_probes()) {
    if (!variant_supported(p.variant)) continue;
    for (int64_t blocks : {int64_t{1}, int64_t{3}, int64_t{1000}}) {
      const int64_t n = blocks * p.block_elements;
      std::vector<int32_t> buf(static_cast<std::size_t>(n));
      int64_t sum = 0;
      for (auto& v : buf) sum += (v = val(rng));
      for (int64_t passes : {int64_t{1}, int64_t{4}}) {
        const int64_t got = p.run(buf.data(), n, passes);
        EC_CHECK(got == sum * passes, "%s: %lld elements x %lld passes summed to %lld, want %lld", p.name, (long long)n,
                 (long long)passes, (long long)got, (long long)(sum * passes));
      }
    }
    std::printf("  tested read probe %s (%s)\n", p.name, p.instruction);
  }
}

EC_TEST(peaks_timing_runs_every_thread) {
  const ComputeProbe& fma = compute_probe("fma_f32_scalar");
  for (int threads : {1, 3}) {
    const ProbeTiming t = time_compute_probe(fma, threads, 0.002, 2);
    EC_CHECK(t.check, "fma_f32_scalar on %d threads: a thread's count was wrong", threads);
    EC_CHECK(t.threads == threads && t.iters >= 1, "threads %d iters %lld", t.threads, (long long)t.iters);
    EC_CHECK(t.amount == expected_ops(fma, t.iters) * threads, "amount %.17g for %d threads", t.amount, threads);
    EC_CHECK(t.wall_s.size() == 2 && t.cpu_s.size() == 2, "one time per repeat");
    for (std::size_t r = 0; r < t.wall_s.size(); ++r) EC_CHECK(t.wall_s[r] > 0 && t.cpu_s[r] >= 0, "times");
  }
  const ReadProbe& rd = read_probe("read_scalar");
  const ProbeTiming t = time_read_probe(rd, 4096, 2, 0.002, 2);
  EC_CHECK(t.check, "read_scalar on 2 threads: a thread's sum was wrong");
  EC_CHECK(t.amount == 4096.0 * t.iters * 2, "bytes %.17g, passes %lld", t.amount, (long long)t.iters);
  EC_CHECK(refuses([] { compute_probe("no_such_probe"); }), "an unknown probe must be refused");
  for (const ComputeProbe& p : compute_probes()) {
    if (variant_supported(p.variant)) continue;
    EC_CHECK(refuses([&] { time_compute_probe(p, 1, 0.001, 1); }, "cannot run"),
             "%s: timing a probe this CPU cannot run must be refused", p.name);
  }
}

namespace {
void write_file(const std::string& path, const std::string& text) {
  FILE* f = std::fopen(path.c_str(), "w");
  if (f == nullptr) throw std::runtime_error("cannot write " + path);
  std::fputs(text.c_str(), f);
  std::fclose(f);
}
// One cache level's sysfs entry: indexN/{level, type, size, shared_cpu_list}; an empty size: no size file.
void write_level(const std::string& root, int index, const char* level, const char* type, const char* size,
                 const char* shared = "0-1") {
  const std::string dir = root + "/index" + std::to_string(index);
  mkdir(dir.c_str(), 0700);
  write_file(dir + "/level", std::string(level) + "\n");
  write_file(dir + "/type", std::string(type) + "\n");
  if (*size != 0) write_file(dir + "/size", std::string(size) + "\n");
  write_file(dir + "/shared_cpu_list", std::string(shared) + "\n");
}
}  // namespace

// Layouts seen on virtual machines: index0 absent, a level without its size file. sysfs wins for every
// level it gives (a VM's sysconf L3 can be a whole socket's), sysconf fills only the levels it lacks.
EC_TEST(peaks_cache_sizes_layouts) {
  char tmpl[] = "/tmp/ec-sysfs-XXXXXX";
  const char* root = mkdtemp(tmpl);
  EC_CHECK(root != nullptr, "mkdtemp");
  if (root == nullptr) return;
  CacheSizes sc;
  sc.l1d = 48 << 10, sc.l2 = 2 << 20, sc.l3 = 320 << 20;
  const std::string a = std::string(root) + "/a";  // index0 missing; L1i skipped; L3 shared by 0-7
  mkdir(a.c_str(), 0700);
  write_level(a, 1, "1", "Instruction", "32K");
  write_level(a, 2, "2", "Unified", "1024K");
  write_level(a, 3, "3", "Unified", "32768K", "0-7");
  CacheSizes c = cache_sizes_from(a, sc);
  EC_CHECK(c.l1d == (48 << 10) && c.l2 == (1 << 20) && c.l3 == (32 << 20) && c.l3_shared_by == 8,
           "layout a: L1d %lld L2 %lld L3 %lld shared %d", (long long)c.l1d, (long long)c.l2, (long long)c.l3, c.l3_shared_by);
  EC_CHECK(c.source == "sysfs+sysconf", "layout a: source %s", c.source.c_str());
  const std::string b = std::string(root) + "/b";  // every level there; L2 without a size file
  mkdir(b.c_str(), 0700);
  write_level(b, 0, "1", "Data", "32K");
  write_level(b, 1, "1", "Instruction", "32K");
  write_level(b, 2, "2", "Unified", "");
  write_level(b, 3, "3", "Unified", "16M");
  c = cache_sizes_from(b, sc);
  EC_CHECK(c.l1d == (32 << 10) && c.l2 == (2 << 20) && c.l3 == (16 << 20), "layout b: L1d %lld L2 %lld L3 %lld",
           (long long)c.l1d, (long long)c.l2, (long long)c.l3);
  c = cache_sizes_from(b, CacheSizes{});
  EC_CHECK(c.l2 == 0 && c.source == "sysfs", "layout b, no sysconf: L2 %lld source %s", (long long)c.l2, c.source.c_str());
  c = cache_sizes_from(std::string(root) + "/none", sc);
  EC_CHECK(c.l3 == (320 << 20) && c.source == "sysconf", "no sysfs: L3 %lld source %s", (long long)c.l3, c.source.c_str());
  c = cache_sizes_from(std::string(root) + "/none", CacheSizes{});
  EC_CHECK(c.l1d == 0 && c.source == "none", "nothing known: source %s", c.source.c_str());
  std::string cmd = std::string("rm -rf ") + root;
  EC_CHECK(std::system(cmd.c_str()) == 0, "cleanup");
}

EC_TEST(peaks_cache_sizes) {
  const CacheSizes c = cache_sizes();
  std::printf("  caches (%s): L1d %lld, L2 %lld, L3 %lld bytes, L3 shared by %d\n", c.source.c_str(), (long long)c.l1d,
              (long long)c.l2, (long long)c.l3, c.l3_shared_by);
  EC_CHECK(c.source == "sysfs" || c.source == "sysfs+sysconf" || c.source == "sysconf" || c.source == "none", "source %s",
           c.source.c_str());
  if (c.source != "none") EC_CHECK(c.l1d > 0 && (c.l2 == 0 || c.l2 > c.l1d), "L1d %lld L2 %lld", (long long)c.l1d, (long long)c.l2);
  EC_CHECK(c.l3_shared_by >= 1, "shared by %d", c.l3_shared_by);
}
