// Bindings for centroid search and the residual codec: validate, release the GIL, call, return.
// Every check names the function and the argument; codes are range-checked before any kernel reads
// a centroid row, so no input can make a kernel read out of bounds.
#include <pybind11/stl.h>

#include <algorithm>
#include <cmath>

#include "common.hpp"
#include "edgecolbert/centroids.hpp"
#include "edgecolbert/codec.hpp"

namespace edgecolbert::bind {
namespace {

Matrix check_matrix(const py::array& a, const std::string& dtype, const char* fn, const char* arg, const char* layout) {
  require_ndim(a, 2, fn, arg, layout);
  Matrix m;
  m.dtype = token_dtype(a, dtype, fn, arg);
  require_readable(a, fn, arg);
  m.data = a.data();
  m.n = a.shape(0);
  m.dim = a.shape(1);
  if (m.dim < 1) value_error(cat(fn, ": ", arg, " must have dim >= 1, got shape ", shape_str(a)));
  return m;
}

bool all_finite(const Matrix& m) {
  const std::size_t n = static_cast<std::size_t>(m.n * m.dim);
  for (std::size_t i = 0; i < n; ++i)
    if (!std::isfinite(load_as_f32(m.data, m.dtype, i))) return false;
  return true;
}

py::array_t<int32_t, py::array::c_style> check_codes(const py::handle& codes, const CodecView& cv, const char* fn) {
  py::array a = py::array::ensure(codes);
  if (!a || a.ndim() != 1) value_error(cat(fn, ": codes must be a 1-d integer array [T]"));
  if (a.size() > 0 && a.dtype().kind() != 'i' && a.dtype().kind() != 'u')
    type_error(cat(fn, ": codes must hold integers, got ", dtype_str(a)));
  // Codes wider than int32 are range-checked before the cast, which would wrap 2^32 + k to the valid k.
  if (a.itemsize() > 4 || (a.itemsize() == 4 && a.dtype().kind() == 'u')) {
    auto w = int64_array(a, fn, "codes");
    const int64_t* p = w.data();
    const py::ssize_t n = w.shape(0);
    for (py::ssize_t i = 0; i < n; ++i)
      if (p[i] < 0 || p[i] >= cv.num_centroids)
        value_error(cat(fn, ": codes[", i, "] = ", p[i], " is not a centroid id in [0, ", cv.num_centroids, ")"));
  }
  py::array_t<int32_t, py::array::c_style> c = ensure_aligned<int32_t>(a);
  const int32_t* p = c.data();
  const py::ssize_t n = c.shape(0);  // hoisted: shape() per element cost ~5% of a compressed MaxSim call
  // One branch-free (vectorisable) pass for the common case; the index of a bad code only on failure.
  int32_t lo = 0, hi = 0;
  for (py::ssize_t i = 0; i < n; ++i) {
    lo = std::min(lo, p[i]);
    hi = std::max(hi, p[i]);
  }
  if (n > 0 && (lo < 0 || hi >= cv.num_centroids))
    for (py::ssize_t i = 0; i < n; ++i)
      if (p[i] < 0 || p[i] >= cv.num_centroids)
        value_error(cat(fn, ": codes[", i, "] = ", p[i], " is not a centroid id in [0, ", cv.num_centroids, ")"));
  return c;
}

py::array_t<uint8_t, py::array::c_style> check_residuals(const py::array& residuals, int64_t T, const CodecView& cv,
                                                          const char* fn) {
  const int64_t w = residual_width(cv.dim, cv.nbits);
  if (residuals.ndim() != 2 || residuals.shape(0) != T || residuals.shape(1) != w)
    value_error(cat(fn, ": residuals must have shape (", T, ", ", w, ") = (len(codes), dim * nbits / 8), got ",
                    shape_str(residuals)));
  if (residuals.dtype().kind() != 'u' || residuals.itemsize() != 1)
    type_error(cat(fn, ": residuals must be uint8, got ", dtype_str(residuals)));
  require_readable(residuals, fn, "residuals");
  return residuals;
}

}  // namespace

CodecState check_codec(const py::array& centroids, const py::array& weights, const py::object& cutoffs, int nbits,
                       const char* fn) {
  CodecState s;
  if (nbits != 1 && nbits != 2 && nbits != 4 && nbits != 8)
    value_error(cat(fn, ": nbits must be 1, 2, 4 or 8, got ", nbits));
  require_ndim(centroids, 2, fn, "centroids", "[K, dim]");
  if (!(centroids.dtype().kind() == 'f' && centroids.itemsize() == 4))
    type_error(cat(fn, ": centroids must be float32, got ", dtype_str(centroids)));
  require_readable(centroids, fn, "centroids");
  s.centroids = centroids;
  const int64_t K = centroids.shape(0), dim = centroids.shape(1);
  if (K < 1 || dim < 1) value_error(cat(fn, ": centroids must be non-empty [K, dim], got shape ", shape_str(centroids)));
  // Codes are int32 (centroid_topk's output, the probe's cells): a centroid past 2^31 - 1 would wrap.
  if (K > std::numeric_limits<int32_t>::max())
    value_error(cat(fn, ": at most 2^31 - 1 centroids, got ", K));
  if ((dim * nbits) % 8 != 0)
    value_error(cat(fn, ": dim * nbits must be a multiple of 8 (residuals are packed into whole bytes), got dim ", dim,
                    " with nbits ", nbits));
  s.weights = ensure_aligned<float>(weights);
  if (!s.weights || s.weights.ndim() != 1 || s.weights.shape(0) != (1 << nbits))
    value_error(cat(fn, ": bucket_weights must have shape (", 1 << nbits, ",) for nbits ", nbits));
  if (!cutoffs.is_none()) {
    s.cutoffs = ensure_aligned<float>(cutoffs);
    if (!s.cutoffs || s.cutoffs.ndim() != 1 || s.cutoffs.shape(0) != (1 << nbits) - 1)
      value_error(cat(fn, ": bucket_cutoffs must have shape (", (1 << nbits) - 1, ",) for nbits ", nbits));
    for (int64_t i = 0; i + 1 < s.cutoffs.shape(0); ++i)
      if (!(s.cutoffs.data()[i] <= s.cutoffs.data()[i + 1]))
        value_error(cat(fn, ": bucket_cutoffs must be sorted ascending (and not NaN)"));
  }
  s.table = make_byte_table(s.weights.data(), nbits);
  s.view = CodecView{s.centroids.data(), K, dim, nbits, s.weights.data(), s.table.data()};
  return s;
}

CentroidsI8 check_centroids_i8(const py::handle& t, int64_t dim, const char* fn) {
  if (!py::isinstance<py::tuple>(t) || py::len(t) != 3)
    type_error(cat(fn, ": centroids_i8 must be the tuple (c8, scale, csum) from quantize_rows_i8"));
  py::tuple tup = py::reinterpret_borrow<py::tuple>(t);
  CentroidsI8 c;
  py::array a = py::array::ensure(tup[0]);
  if (!a || a.ndim() != 2 || a.dtype().kind() != 'i' || a.itemsize() != 1)
    type_error(cat(fn, ": centroids_i8[0] must be an int8 array [K, dim4]"));
  c.c8 = ensure_aligned<int8_t, 0>(a);
  c.K = c.c8.shape(0);
  c.dim4 = c.c8.shape(1);
  if (c.dim4 != i8_width(dim)) value_error(cat(fn, ": centroids_i8 rows have ", c.dim4, " bytes; dim ", dim, " needs ", i8_width(dim)));
  if (c.dim4 > kMaxDimI8) value_error(cat(fn, ": int8 scores take dim <= ", kMaxDimI8, " (int32 sums), got ", dim));
  py::array sc = py::array::ensure(tup[1]);
  if (!sc || sc.ndim() != 1 || sc.shape(0) != c.K || sc.dtype().kind() != 'f' || sc.itemsize() != 4)
    value_error(cat(fn, ": centroids_i8[1] (scale) must be float32 [", c.K, "]"));
  c.scale = ensure_aligned<float, 0>(sc);
  py::array s = py::array::ensure(tup[2]);
  if (!s || s.ndim() != 1 || s.shape(0) != c.K || s.dtype().kind() != 'i' || s.itemsize() != 4)
    value_error(cat(fn, ": centroids_i8[2] (csum) must be int32 [", c.K, "]"));
  c.csum = ensure_aligned<int32_t, 0>(s);
  return c;
}

void register_codec(py::module_& m) {
  m.def(
      "quantize_rows_i8",
      [](const py::array& x) {
        const char* fn = "quantize_rows_i8";
        require_ndim(x, 2, fn, "x", "[n, dim]");
        if (!(x.dtype().kind() == 'f' && x.itemsize() == 4)) type_error(cat(fn, ": x must be float32, got ", dtype_str(x)));
        auto a = ensure_aligned<float, 0>(x);
        const int64_t n = a.shape(0), dim = a.shape(1), dim4 = i8_width(dim);
        if (dim4 > kMaxDimI8) value_error(cat(fn, ": int8 scores take dim <= ", kMaxDimI8, " (int32 sums), got ", dim));
        py::array_t<int8_t> q({n, dim4});
        py::array_t<float> scale(n);
        py::array_t<int32_t> csum(n);
        bool ok;
        {
          py::gil_scoped_release released;
          ok = quantize_centroids_i8(a.data(), n, dim, q.mutable_data(), scale.mutable_data(), csum.mutable_data());
        }
        if (!ok) value_error(cat(fn, ": x holds a value that is not finite"));
        return py::make_tuple(q, scale, csum);
      },
      py::arg("x"));

  m.def(
      "centroid_scores_t_i8",
      [](const py::array& rows, const py::handle& centroids_i8, const py::object& num_threads, const std::string& isa) {
        const char* fn = "centroid_scores_t_i8";
        require_ndim(rows, 2, fn, "query_tokens", "[m, dim]");
        if (!(rows.dtype().kind() == 'f' && rows.itemsize() == 4))
          type_error(cat(fn, ": query_tokens must be float32, got ", dtype_str(rows)));
        auto q = ensure_aligned<float, 0>(rows);
        const int64_t m = q.shape(0), dim = q.shape(1);
        CentroidsI8 c = check_centroids_i8(centroids_i8, dim, fn);
        const int threads = resolve_threads(num_threads, fn);
        const KernelPath& path = resolve_path(isa);
        const int64_t stride = centroid_major_stride(m);
        py::array_t<float> out({c.K, stride});
        bool ok;
        {
          py::gil_scoped_release released;
          ok = centroid_scores_t_i8_from_f32(path, q.data(), m, dim, c.c8.data(), c.scale.data(), c.csum.data(), c.K,
                                             stride, out.mutable_data(), threads);
        }
        if (!ok) value_error(cat(fn, ": query_tokens hold a value that is not finite"));
        return out;
      },
      py::arg("query_tokens"), py::arg("centroids_i8"), py::arg("num_threads") = py::none(), py::arg("isa") = "");

  // Dense scores, [m, K] row-major or (centroid_scores_t) [K, stride] centroid-major.
  auto dense_scores = [](const py::array& rows, const py::array& centroids, const py::object& num_threads,
                         const std::string& rows_dtype, const std::string& cents_dtype, const std::string& isa,
                         bool centroid_major) {
    const char* fn = centroid_major ? "centroid_scores_t" : "centroid_scores";
    Matrix r = check_matrix(rows, rows_dtype, fn, "query_tokens", "[m, dim]");
    Matrix c = check_matrix(centroids, cents_dtype, fn, "centroids", "[K, dim]");
    if (r.dim != c.dim) value_error(cat(fn, ": query_tokens have dim ", r.dim, " but centroids have dim ", c.dim));
    const int threads = resolve_threads(num_threads, fn);
    const KernelPath& path = resolve_path(isa);
    const int64_t stride = centroid_major_stride(r.n);
    py::array_t<float> out = centroid_major ? py::array_t<float>({c.n, stride}) : py::array_t<float>({r.n, c.n});
    {
      py::gil_scoped_release released;
      if (centroid_major)
        centroid_scores_t(path, r, c, stride, out.mutable_data(), threads);
      else
        centroid_scores(path, r, c, out.mutable_data(), threads);
    }
    return out;
  };
  for (bool centroid_major : {false, true})
    m.def(
        centroid_major ? "centroid_scores_t" : "centroid_scores",
        [dense_scores, centroid_major](const py::array& rows, const py::array& centroids, const py::object& num_threads,
                                       const std::string& rows_dtype, const std::string& cents_dtype,
                                       const std::string& isa) {
          return dense_scores(rows, centroids, num_threads, rows_dtype, cents_dtype, isa, centroid_major);
        },
        py::arg("query_tokens"), py::arg("centroids"), py::arg("num_threads") = py::none(), py::arg("rows_dtype") = "",
        py::arg("centroids_dtype") = "", py::arg("isa") = "");

  m.def(
      "centroid_topk",
      [](const py::array& rows, const py::array& centroids, int64_t k, bool want_scores, const py::object& num_threads,
         const std::string& rows_dtype, const std::string& cents_dtype, const std::string& isa, const std::string& fn_name,
         const std::string& rows_name) -> py::object {
        const char* fn = fn_name.c_str();
        Matrix r = check_matrix(rows, rows_dtype, fn, rows_name.c_str(), "[m, dim]");
        Matrix c = check_matrix(centroids, cents_dtype, fn, "centroids", "[K, dim]");
        if (r.dim != c.dim)
          value_error(cat(fn, ": ", rows_name, " have dim ", r.dim, " but centroids have dim ", c.dim));
        if (c.n < 1 || c.n > std::numeric_limits<int32_t>::max())
          value_error(cat(fn, ": centroids must have between 1 and 2^31 - 1 rows, got ", c.n));
        if (k < 1 || k > c.n) value_error(cat(fn, ": nprobe must be in [1, K] with K = ", c.n, " centroids, got ", k));
        const int threads = resolve_threads(num_threads, fn);
        const KernelPath& path = resolve_path(isa);
        py::array_t<int32_t> ids(std::vector<py::ssize_t>{r.n, k});
        py::array_t<float> scores(std::vector<py::ssize_t>{want_scores ? r.n : 0, k});
        {
          py::gil_scoped_release released;
          centroid_topk(path, r, c, k, want_scores ? scores.mutable_data() : nullptr, ids.mutable_data(), threads);
        }
        if (want_scores) return py::make_tuple(scores, ids);
        return std::move(ids);
      },
      py::arg("rows"), py::arg("centroids"), py::arg("k"), py::arg("want_scores") = true,
      py::arg("num_threads") = py::none(), py::arg("rows_dtype") = "", py::arg("centroids_dtype") = "",
      py::arg("isa") = "", py::arg("fn_name") = "centroid_search", py::arg("rows_name") = "query_tokens");

  m.def(
      "codec_compress",
      [](const py::array& centroids, const py::array& cutoffs, const py::array& weights, int nbits,
         const py::array& tokens, const std::string& tokens_dtype, const py::object& num_threads, const std::string& isa) {
        const char* fn = "ResidualCodec.compress";
        CodecState s = check_codec(centroids, weights, cutoffs, nbits, fn);
        Matrix t = check_matrix(tokens, tokens_dtype, fn, "tokens", "[T, dim]");
        if (t.dim != s.view.dim)
          value_error(cat(fn, ": tokens have dim ", t.dim, " but the codec has dim ", s.view.dim));
        const int threads = resolve_threads(num_threads, fn);
        const KernelPath& path = resolve_path(isa);
        bool finite;
        {
          py::gil_scoped_release released;
          finite = all_finite(t);
        }
        if (!finite) value_error(cat(fn, ": tokens contain NaN or infinity"));
        py::array_t<int32_t> codes(std::vector<py::ssize_t>{t.n});
        py::array_t<uint8_t> res(std::vector<py::ssize_t>{t.n, residual_width(s.view.dim, nbits)});
        {
          py::gil_scoped_release released;
          compress(path, s.view, s.cutoffs.data(), t, codes.mutable_data(), res.mutable_data(), threads);
        }
        return py::make_tuple(codes, res);
      },
      py::arg("centroids"), py::arg("bucket_cutoffs"), py::arg("bucket_weights"), py::arg("nbits"), py::arg("tokens"),
      py::arg("tokens_dtype") = "", py::arg("num_threads") = py::none(), py::arg("isa") = "");

  m.def(
      "codec_decompress",
      [](const py::array& centroids, const py::array& weights, int nbits, const py::handle& codes,
         const py::array& residuals, const std::string& out_dtype, const py::object& num_threads, const std::string& isa) {
        const char* fn = "ResidualCodec.decompress";
        CodecState s = check_codec(centroids, weights, py::none(), nbits, fn);
        auto c = check_codes(codes, s.view, fn);
        auto r = check_residuals(residuals, c.shape(0), s.view, fn);
        if (out_dtype != "float32" && out_dtype != "float16")
          type_error(cat(fn, ": dtype must be float32 or float16, got ", out_dtype));
        const DType ot = out_dtype == "float32" ? DType::f32 : DType::f16;
        const int threads = resolve_threads(num_threads, fn);
        const KernelPath& path = resolve_path(isa);
        const int64_t T = c.shape(0);
        py::array out = ot == DType::f32 ? py::array(py::array_t<float>(std::vector<py::ssize_t>{T, s.view.dim}))
                                         : py::array(py::dtype("float16"), std::vector<py::ssize_t>{T, s.view.dim});
        void* o = out.mutable_data();
        {
          py::gil_scoped_release released;
          decompress(path, s.view, c.data(), r.data(), T, o, ot, threads);
        }
        return out;
      },
      py::arg("centroids"), py::arg("bucket_weights"), py::arg("nbits"), py::arg("codes"), py::arg("residuals"),
      py::arg("dtype") = "float32", py::arg("num_threads") = py::none(), py::arg("isa") = "");

  m.def(
      "codec_token_norms",
      [](const py::array& centroids, const py::array& weights, int nbits, const py::handle& codes,
         const py::array& residuals, const py::object& num_threads, const std::string& isa) {
        const char* fn = "ResidualCodec.token_norms";
        CodecState s = check_codec(centroids, weights, py::none(), nbits, fn);
        auto c = check_codes(codes, s.view, fn);
        auto r = check_residuals(residuals, c.shape(0), s.view, fn);
        const int threads = resolve_threads(num_threads, fn);
        const KernelPath& path = resolve_path(isa);
        const int64_t T = c.shape(0);
        py::array_t<float> out(std::vector<py::ssize_t>{T});
        float* o = out.mutable_data();
        {
          py::gil_scoped_release released;
          token_norms(path, s.view, c.data(), r.data(), T, o, threads);
        }
        return out;
      },
      py::arg("centroids"), py::arg("bucket_weights"), py::arg("nbits"), py::arg("codes"), py::arg("residuals"),
      py::arg("num_threads") = py::none(), py::arg("isa") = "");

  m.def(
      "maxsim_compressed",
      [](const py::array& queries, const py::array& centroids, const py::array& weights, int nbits,
         const py::handle& codes, const py::array& residuals, const py::handle& doc_offsets, const py::object& candidates,
         const py::object& query_mask, const py::object& num_threads, const std::string& queries_dtype,
         const std::string& isa, const py::object& token_norms_arg, const std::string& kernel_name) {
        const char* fn = "maxsim_compressed";
        CompressedKernel kernel = CompressedKernel::automatic;
        if (kernel_name == "decode") kernel = CompressedKernel::decode;
        else if (kernel_name == "lut") kernel = CompressedKernel::tables;
        else if (kernel_name != "auto")
          value_error(cat(fn, ": kernel must be 'auto', 'decode' or 'lut', got '", kernel_name, "'"));
        CodecState s = check_codec(centroids, weights, py::none(), nbits, fn);
        const Queries bq = check_queries(queries, queries_dtype, query_mask, fn);
        require_codec_dim(bq, s.view.dim, fn);
        const QueryBatch& q = bq.batch;
        auto c = check_codes(codes, s.view, fn);
        auto r = check_residuals(residuals, c.shape(0), s.view, fn);
        auto off = check_offsets(doc_offsets, c.shape(0), "codes", fn);
        const int64_t n = off.shape(0) - 1, T = c.shape(0);
        const int64_t* o = off.data();
        py::array_t<int64_t, py::array::c_style> cand;
        if (!candidates.is_none()) cand = check_candidates(candidates, q.nq, n, fn);
        const int64_t ncand = candidates.is_none() ? 0 : cand.shape(1);
        py::array_t<float, py::array::c_style> norms;
        if (!token_norms_arg.is_none()) {
          const py::array na = py::array::ensure(token_norms_arg);
          if (!na || na.dtype().kind() != 'f')
            type_error(cat(fn, ": token_norms must be a float array [T] (from ResidualCodec.token_norms)"));
          if (na.ndim() != 1 || na.shape(0) != T)
            value_error(cat(fn, ": token_norms must have shape (", T, ",) like codes, got ", shape_str(na)));
          norms = py::array_t<float, py::array::c_style | py::array::forcecast>::ensure(na);
          for (int64_t i = 0; i < T; ++i)
            if (!(norms.data()[i] >= 0.0f) || std::isinf(norms.data()[i]))
              value_error(cat(fn, ": token_norms[", i, "] = ", norms.data()[i], " is not a finite norm >= 0"));
        }
        const int threads = resolve_threads(num_threads, fn);
        const KernelPath& path = resolve_path(isa);
        py::array_t<float> out(std::vector<py::ssize_t>{q.nq, candidates.is_none() ? n : ncand});
        {
          py::gil_scoped_release released;
          CompressedDocs cd{c.data(), r.data(), o, n};
          maxsim_compressed(path, q, s.view, cd, candidates.is_none() ? nullptr : cand.data(), ncand, out.mutable_data(),
                            threads, token_norms_arg.is_none() ? nullptr : norms.data(), kernel);
        }
        return out;
      },
      py::arg("queries"), py::arg("centroids"), py::arg("bucket_weights"), py::arg("nbits"), py::arg("codes"),
      py::arg("residuals"), py::arg("doc_offsets"), py::arg("candidates") = py::none(), py::arg("query_mask") = py::none(),
      py::arg("num_threads") = py::none(), py::arg("queries_dtype") = "", py::arg("isa") = "",
      py::arg("token_norms") = py::none(), py::arg("kernel") = "auto");
}

}  // namespace edgecolbert::bind
