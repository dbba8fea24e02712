// Bindings of the peak probes (peaks.hpp): listing, running (for the tests of their arithmetic) and
// timing (for `edgecolbert bench`). The Python side is edgecolbert_native.peaks.
#include <pybind11/stl.h>

#include <stdexcept>

#include "common.hpp"
#include "edgecolbert/peaks.hpp"

namespace edgecolbert::bind {
namespace {

const ComputeProbe& find_compute(const std::string& name, const char* fn) {
  try {
    return compute_probe(name);
  } catch (const std::invalid_argument& e) {
    value_error(cat(fn, ": ", e.what()));
  }
}

const ReadProbe& find_read(const std::string& name, const char* fn) {
  try {
    return read_probe(name);
  } catch (const std::invalid_argument& e) {
    value_error(cat(fn, ": ", e.what()));
  }
}

py::dict timing_dict(const ProbeTiming& t) {
  py::dict d;
  d["threads"] = t.threads;
  d["iters"] = t.iters;
  d["amount"] = t.amount;
  d["wall_s"] = t.wall_s;
  d["cpu_s"] = t.cpu_s;
  d["check"] = t.check;
  return d;
}

void check_timing_args(int threads, double seconds, int repeats, const char* fn) {
  if (threads < 1 || threads > 4096) value_error(cat(fn, ": threads must be in [1, 4096], got ", threads));
  if (!(seconds > 0 && seconds <= 60)) value_error(cat(fn, ": seconds must be in (0, 60], got ", seconds));
  if (repeats < 1 || repeats > 1000) value_error(cat(fn, ": repeats must be in [1, 1000], got ", repeats));
}

}  // namespace

void register_peaks(py::module_& m) {
  m.def("compute_probes", [] {
    py::list out;
    for (const ComputeProbe& p : compute_probes()) {
      py::dict d;
      d["name"] = p.name;
      d["variant"] = p.variant;
      d["dtype"] = p.dtype;
      d["instruction"] = p.instruction;
      d["accumulators"] = p.accumulators;
      d["ops_per_instruction"] = p.ops_per_instruction;
      d["supported"] = variant_supported(p.variant);
      out.append(d);
    }
    return out;
  });
  m.def("read_probes", [] {
    py::list out;
    for (const ReadProbe& p : read_probes()) {
      py::dict d;
      d["name"] = p.name;
      d["variant"] = p.variant;
      d["instruction"] = p.instruction;
      d["block_elements"] = p.block_elements;
      d["supported"] = variant_supported(p.variant);
      out.append(d);
    }
    return out;
  });
  m.def(
      "run_compute_probe",
      [](const std::string& name, int64_t iters, int one) {
        const char* fn = "run_compute_probe";
        const ComputeProbe& p = find_compute(name, fn);
        if (!variant_supported(p.variant)) value_error(cat(fn, ": ", name, " needs ", p.variant, ", which this CPU cannot run"));
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
        const ReadProbe& p = find_read(name, fn);
        if (!variant_supported(p.variant)) value_error(cat(fn, ": ", name, " needs ", p.variant, ", which this CPU cannot run"));
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
        const ComputeProbe& p = find_compute(name, fn);
        check_timing_args(threads, seconds, repeats, fn);
        if (!variant_supported(p.variant)) value_error(cat(fn, ": ", name, " needs ", p.variant, ", which this CPU cannot run"));
        ProbeTiming t;
        {
          py::gil_scoped_release released;
          t = time_compute_probe(p, threads, seconds, repeats);
        }
        return timing_dict(t);
      },
      py::arg("name"), py::arg("threads") = 1, py::arg("seconds") = 0.05, py::arg("repeats") = 5);
  m.def(
      "time_read_probe",
      [](const std::string& name, int64_t bytes_per_thread, int threads, double seconds, int repeats) {
        const char* fn = "time_read_probe";
        const ReadProbe& p = find_read(name, fn);
        check_timing_args(threads, seconds, repeats, fn);
        if (!variant_supported(p.variant)) value_error(cat(fn, ": ", name, " needs ", p.variant, ", which this CPU cannot run"));
        if (bytes_per_thread < 1 || bytes_per_thread > (int64_t{1} << 36))
          value_error(cat(fn, ": bytes_per_thread must be in [1, 2^36], got ", bytes_per_thread));
        ProbeTiming t;
        {
          py::gil_scoped_release released;
          t = time_read_probe(p, bytes_per_thread, threads, seconds, repeats);
        }
        return timing_dict(t);
      },
      py::arg("name"), py::arg("bytes_per_thread"), py::arg("threads") = 1, py::arg("seconds") = 0.05,
      py::arg("repeats") = 5);
  m.def("cache_sizes", [] {
    const CacheSizes c = cache_sizes();
    py::dict d;
    d["l1d"] = c.l1d;
    d["l2"] = c.l2;
    d["l3"] = c.l3;
    d["l3_shared_by"] = c.l3_shared_by;
    d["source"] = c.source;
    return d;
  });
}

}  // namespace edgecolbert::bind
