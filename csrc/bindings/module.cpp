// pybind11 module edgecolbert_native._native: validate, release the GIL, call, return. The public
// Python API (edgecolbert_native.kernels) turns torch tensors and padded batches into these calls.
#include <pybind11/stl.h>

#include "common.hpp"
#include "edgecolbert/maxsim.hpp"

namespace edgecolbert::bind {
namespace {

struct Docs {
  py::array tokens;
  py::array begin, end, floor;
  DocSet set;
};

// name: the caller's name for the tokens (maxsim_padded's are its `docs`, flattened to [n * Ld, dim]).
Docs check_tokens(const py::array& tokens, const std::string& dtype, int64_t dim, const char* fn,
                  const char* name = "doc_tokens") {
  Docs d;
  d.tokens = tokens;
  require_ndim(tokens, 2, fn, name, "[T, dim]");
  d.set.dtype = token_dtype(tokens, dtype, fn, name);
  require_readable(tokens, fn, name);
  if (tokens.shape(1) != dim) value_error(cat(fn, ": ", name, " have dim ", tokens.shape(1), " but queries have dim ", dim));
  d.set.tokens = tokens.data();
  d.set.dim = dim;
  return d;
}

// CSR: offsets [n+1], offsets[0] == 0, non-decreasing, offsets[n] == T.
Docs check_csr(const py::array& tokens, const std::string& dtype, const py::handle& offsets, int64_t dim, const char* fn) {
  Docs d = check_tokens(tokens, dtype, dim, fn);
  auto off = check_offsets(offsets, tokens.shape(0), "tokens", fn);
  const int64_t n = off.shape(0) - 1;
  const int64_t* o = off.data();
  d.begin = off;
  d.set.n = n;
  d.set.begin = o;
  d.set.end = o + 1;
  return d;
}

// Ranges: document i is rows [begin[i], end[i]) of tokens; floor_zero (optional uint8/bool [n]).
Docs check_ranges(const py::array& tokens, const std::string& dtype, const py::handle& begin, const py::handle& end,
                  const py::object& floor_zero, int64_t dim, const char* fn, const char* name) {
  Docs d = check_tokens(tokens, dtype, dim, fn, name);
  auto b = int64_array(begin, fn, "doc_begin");
  auto e = int64_array(end, fn, "doc_end");
  if (b.ndim() != 1 || e.ndim() != 1 || b.shape(0) != e.shape(0))
    value_error(cat(fn, ": doc_begin and doc_end must be 1-d of equal length, got ", shape_str(b), " and ", shape_str(e)));
  const int64_t n = b.shape(0), T = tokens.shape(0);
  for (int64_t i = 0; i < n; ++i)
    if (b.data()[i] < 0 || b.data()[i] > e.data()[i] || e.data()[i] > T)
      value_error(cat(fn, ": document ", i, " has rows [", b.data()[i], ", ", e.data()[i], ") outside [0, ", T, "]"));
  d.begin = b, d.end = e;
  d.set.n = n;
  d.set.begin = b.data();
  d.set.end = e.data();
  if (!floor_zero.is_none()) {
    auto f = py::array_t<uint8_t, py::array::c_style | py::array::forcecast>::ensure(floor_zero);
    if (!f || f.ndim() != 1 || f.shape(0) != n) value_error(cat(fn, ": floor_zero must be 1-d of length ", n));
    d.floor = f;
    d.set.floor_zero = f.data();
  }
  return d;
}

py::array_t<float> maxsim_impl(const Queries& q, const Docs& d, int threads, const KernelPath& path) {
  py::array_t<float> out({q.batch.nq, d.set.n});
  {
    py::gil_scoped_release released;
    maxsim(path, q.batch, d.set, out.mutable_data(), threads);
  }
  return out;
}

py::tuple topk_impl(const Queries& q, const Docs& d, int64_t k, int threads, const KernelPath& path, const char* fn) {
  if (k < 1 || k > d.set.n)
    value_error(cat(fn, ": k must be in [1, n] with n = ", d.set.n, " documents, got ", k));
  py::array_t<float> scores({q.batch.nq, k});
  py::array_t<int64_t> indices({q.batch.nq, k});
  {
    py::gil_scoped_release released;
    maxsim_topk(path, q.batch, d.set, k, scores.mutable_data(), indices.mutable_data(), threads);
  }
  return py::make_tuple(scores, indices);
}

py::array_t<float> candidates_impl(const Queries& q, const Docs& d, const py::handle& candidates, int threads,
                                   const KernelPath& path, const char* fn) {
  auto c = check_candidates(candidates, q.batch.nq, d.set.n, fn);
  const int64_t nc = c.shape(1);
  const int64_t* cp = c.data();
  py::array_t<float> out({q.batch.nq, nc});
  {
    py::gil_scoped_release released;
    maxsim_candidates(path, q.batch, d.set, cp, nc, out.mutable_data(), threads);
  }
  return out;
}

py::dict info() {
  py::dict d;
  const auto& f = cpu_features();
  d["features"] = f.names();
  std::vector<std::string> compiled, variants, families;
  for (auto* p : compiled_paths()) compiled.emplace_back(p->name);
  for (auto* p : available_paths()) {
    variants.emplace_back(p->name);
    if (families.empty() || families.back() != p->family) families.emplace_back(p->family);
  }
  d["compiled"] = compiled;
  d["variants"] = variants;
  d["paths"] = families;
  try {
    const KernelPath& p = default_path();
    d["isa"] = std::string(p.family);
    d["variant"] = std::string(p.name);
    // The default path scores centroids in int8 faster than in float32 (a dot-product instruction):
    // an index search then uses int8 centroid scores for its candidate stages.
    d["fast_int8_centroid_scores"] = p.centroids_i8.fast;
  } catch (const std::invalid_argument& e) {
    d["isa"] = py::none();
    d["variant"] = py::none();
    d["fast_int8_centroid_scores"] = false;
    d["error"] = std::string(e.what());
  }
  d["default_num_threads"] = default_num_threads();
  return d;
}

// The checked inputs of a binding over CSR documents, checked in the order the bindings always did: the
// queries, the documents, the thread count, the path.
struct CsrCall {
  Queries q;
  Docs d;
  int threads;
  const KernelPath& path;
};

CsrCall check_csr_call(const py::array& queries, const std::string& queries_dtype, const py::object& query_mask,
                       const py::array& doc_tokens, const std::string& docs_dtype, const py::handle& doc_offsets,
                       const py::object& num_threads, const std::string& isa, const char* fn) {
  Queries q = check_queries(queries, queries_dtype, query_mask, fn);
  Docs d = check_csr(doc_tokens, docs_dtype, doc_offsets, q.batch.dim, fn);
  const int threads = resolve_threads(num_threads, fn);
  return CsrCall{std::move(q), std::move(d), threads, resolve_path(isa)};
}

}  // namespace

void register_codec(py::module_& m);  // codec.cpp (residual codec, centroid search)
void register_plaid(py::module_& m);  // plaid.cpp (PLAID candidate stages)
void register_pool(py::module_& m);   // pool.cpp (hierarchical token pooling)
void register_peaks(py::module_& m);  // peaks.cpp (the machine's limits: peak probes)
void register_mapping(py::module_& m);  // mapping.cpp (read-only file mappings for the index)

}  // namespace edgecolbert::bind

PYBIND11_MODULE(_native, m) {
  using namespace edgecolbert;
  using namespace edgecolbert::bind;
  m.doc() = "edgecolbert native kernels (see edgecolbert_native.kernels for the documented API)";

  m.def("info", &info);

  m.def(
      "maxsim",
      [](const py::array& queries, const py::array& doc_tokens, const py::handle& doc_offsets, const py::object& query_mask,
         const py::object& num_threads, const std::string& queries_dtype, const std::string& docs_dtype,
         const std::string& isa) {
        const CsrCall c = check_csr_call(queries, queries_dtype, query_mask, doc_tokens, docs_dtype, doc_offsets,
                                         num_threads, isa, "maxsim");
        return maxsim_impl(c.q, c.d, c.threads, c.path);
      },
      py::arg("queries"), py::arg("doc_tokens"), py::arg("doc_offsets"), py::arg("query_mask") = py::none(),
      py::arg("num_threads") = py::none(), py::arg("queries_dtype") = "", py::arg("docs_dtype") = "", py::arg("isa") = "");

  m.def(
      "maxsim_ranges",
      [](const py::array& queries, const py::array& doc_tokens, const py::handle& doc_begin, const py::handle& doc_end,
         const py::object& floor_zero, const py::object& query_mask, const py::object& num_threads,
         const std::string& queries_dtype, const std::string& docs_dtype, const std::string& isa, const std::string& fn_name) {
        const char* fn = fn_name.c_str();
        auto q = check_queries(queries, queries_dtype, query_mask, fn);
        auto d = check_ranges(doc_tokens, docs_dtype, doc_begin, doc_end, floor_zero, q.batch.dim, fn, "docs");
        return maxsim_impl(q, d, resolve_threads(num_threads, fn), resolve_path(isa));
      },
      py::arg("queries"), py::arg("doc_tokens"), py::arg("doc_begin"), py::arg("doc_end"), py::arg("floor_zero") = py::none(),
      py::arg("query_mask") = py::none(), py::arg("num_threads") = py::none(), py::arg("queries_dtype") = "",
      py::arg("docs_dtype") = "", py::arg("isa") = "", py::arg("fn_name") = "maxsim_padded");

  m.def(
      "maxsim_topk",
      [](const py::array& queries, const py::array& doc_tokens, const py::handle& doc_offsets, int64_t k,
         const py::object& query_mask, const py::object& num_threads, const std::string& queries_dtype,
         const std::string& docs_dtype, const std::string& isa) {
        const CsrCall c = check_csr_call(queries, queries_dtype, query_mask, doc_tokens, docs_dtype, doc_offsets,
                                         num_threads, isa, "maxsim_topk");
        return topk_impl(c.q, c.d, k, c.threads, c.path, "maxsim_topk");
      },
      py::arg("queries"), py::arg("doc_tokens"), py::arg("doc_offsets"), py::arg("k"), py::arg("query_mask") = py::none(),
      py::arg("num_threads") = py::none(), py::arg("queries_dtype") = "", py::arg("docs_dtype") = "", py::arg("isa") = "");

  m.def(
      "maxsim_candidates",
      [](const py::array& queries, const py::array& doc_tokens, const py::handle& doc_offsets, const py::handle& candidates,
         const py::object& query_mask, const py::object& num_threads, const std::string& queries_dtype,
         const std::string& docs_dtype, const std::string& isa) {
        const CsrCall c = check_csr_call(queries, queries_dtype, query_mask, doc_tokens, docs_dtype, doc_offsets,
                                         num_threads, isa, "maxsim_candidates");
        return candidates_impl(c.q, c.d, candidates, c.threads, c.path, "maxsim_candidates");
      },
      py::arg("queries"), py::arg("doc_tokens"), py::arg("doc_offsets"), py::arg("candidates"),
      py::arg("query_mask") = py::none(), py::arg("num_threads") = py::none(), py::arg("queries_dtype") = "",
      py::arg("docs_dtype") = "", py::arg("isa") = "");

  register_codec(m);
  register_plaid(m);
  register_pool(m);
  register_peaks(m);
  register_mapping(m);
}
