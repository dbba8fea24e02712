// Bindings of the peak probes (peaks.hpp): listing, running (for the tests of their arithmetic) and
// timing (for `edgecolbert bench`). The Python side is edgecolbert_native.peaks.
#include <pybind11/stl.h>

#include <stdexcept>

#include "common.hpp"
#include "edgecolbert/peaks.hpp"

namespace edgecolbert::bind {
namespace {

using namespace pybind11::literals;

// lookup is compute_probe or read_probe; an unknown name is a ValueError naming fn.
template <class Probe>
const Probe& find_probe(const Probe& (*lookup)(const std::string&), const std::string& name, const char* fn) {
  try {
    return lookup(name);
  } catch (const std::invalid_argument& e) {
    value_error(cat(fn, ": ", e.what()));
  }
}

template <class Probe>
void require_runnable(const Probe& p, const char* fn) {
  if (!variant_supported(p.variant)) value_error(cat(fn, ": ", p.name, " needs ", p.variant, ", which this CPU cannot run"));
}

py::dict describe(const ComputeProbe& p) {
  return py::dict("name"_a = p.name, "variant"_a = p.variant, "dtype"_a = p.dtype, "instruction"_a = p.instruction,
                  "accumulators"_a = p.accumulators, "ops_per_instruction"_a = p.ops_per_instruction,
                  "supported"_a = variant_supported(p.variant));
}

py::dict describe(const ReadProbe& p) {
  return py::dict("name"_a = p.name, "variant"_a = p.variant, "instruction"_a = p.instruction,
                  "block_elements"_a = p.block_elements, "supported"_a = variant_supported(p.variant));
}

template <class Probe>
py::list describe_all(const std::vector<Probe>& probes) {
  py::list out;
  for (const Probe& p : probes) out.append(describe(p));
  return out;
}

void check_timing_args(int threads, double seconds, int repeats, const char* fn) {
  if (threads < 1 || threads > 4096) value_error(cat(fn, ": threads must be in [1, 4096], got ", threads));
  if (!(seconds > 0 && seconds <= 60)) value_error(cat(fn, ": seconds must be in (0, 60], got ", seconds));
  if (repeats < 1 || repeats > 1000) value_error(cat(fn, ": repeats must be in [1, 1000], got ", repeats));
}

// Runs time() (a time_*_probe call) without the GIL; its timing as a dict.
template <class Time>
py::dict timed(const Time& time) {
  ProbeTiming t;
  {
    py::gil_scoped_release released;
    t = time();
  }
  return py::dict("threads"_a = t.threads, "iters"_a = t.iters, "amount"_a = t.amount, "wall_s"_a = t.wall_s,
                  "cpu_s"_a = t.cpu_s, "check"_a = t.check);
}

}  // namespace

void register_peaks(py::module_& m) {
  m.def("compute_probes", [] { return describe_all(compute_probes()); });
  m.def("read_probes", [] { return describe_all(read_probes()); });
  m.def(
      "run_compute_probe",
      [](const std::string& name, int64_t iters, int one) {
        const char* fn = "run_compute_probe";
        const ComputeProbe& p = find_probe(compute_probe, name, fn);
        require_runnable(p, fn);
        if (iters < 0 || iters > (int64_t{1} << 40)) value_error(cat(fn, ": iters must be in [0, 2^40], got ", iters));
        if (one < -8 || one > 8) value_error(cat(fn, ": one must be in [-8, 8], got ", one));
        py::gil_scoped_release released;
        return p.run(iters, one);
      },
      py::arg("name"), py::arg("iters"), py::arg("one") = 1);
  m.def(
      "run_read_probe",
      [](const std::string& name, const py::handle& buffer, int64_t passes) {
        const char* fn = "run_read_probe";
        const ReadProbe& p = find_probe(read_probe, name, fn);
        require_runnable(p, fn);
        auto b = ensure_aligned<int32_t, 0>(buffer);
        if (!b || b.ndim() != 1) value_error(cat(fn, ": buffer must be a 1-d int32 array"));
        if (b.shape(0) % p.block_elements != 0)
          value_error(cat(fn, ": buffer length must be a multiple of ", p.block_elements, ", got ", b.shape(0)));
        if (passes < 0 || passes > (int64_t{1} << 30)) value_error(cat(fn, ": passes must be in [0, 2^30], got ", passes));
        const int32_t* data = b.data();
        const int64_t n = b.shape(0);
        py::gil_scoped_release released;
        return p.run(data, n, passes);
      },
      py::arg("name"), py::arg("buffer"), py::arg("passes") = 1);
  m.def(
      "time_compute_probe",
      [](const std::string& name, int threads, double seconds, int repeats) {
        const char* fn = "time_compute_probe";
        const ComputeProbe& p = find_probe(compute_probe, name, fn);
        check_timing_args(threads, seconds, repeats, fn);
        require_runnable(p, fn);
        return timed([&] { return time_compute_probe(p, threads, seconds, repeats); });
      },
      py::arg("name"), py::arg("threads") = 1, py::arg("seconds") = 0.05, py::arg("repeats") = 5);
  m.def(
      "time_read_probe",
      [](const std::string& name, int64_t bytes_per_thread, int threads, double seconds, int repeats) {
        const char* fn = "time_read_probe";
        const ReadProbe& p = find_probe(read_probe, name, fn);
        check_timing_args(threads, seconds, repeats, fn);
        require_runnable(p, fn);
        if (bytes_per_thread < 1 || bytes_per_thread > (int64_t{1} << 36))
          value_error(cat(fn, ": bytes_per_thread must be in [1, 2^36], got ", bytes_per_thread));
        return timed([&] { return time_read_probe(p, bytes_per_thread, threads, seconds, repeats); });
      },
      py::arg("name"), py::arg("bytes_per_thread"), py::arg("threads") = 1, py::arg("seconds") = 0.05,
      py::arg("repeats") = 5);
  m.def("cache_sizes", [] {
    const CacheSizes c = cache_sizes();
    return py::dict("l1d"_a = c.l1d, "l2"_a = c.l2, "l3"_a = c.l3, "l3_shared_by"_a = c.l3_shared_by,
                    "source"_a = c.source);
  });
}

}  // namespace edgecolbert::bind
