// Argument checking shared by the binding files: every check raises ValueError / TypeError naming
// the function and the argument, so no input can reach a kernel with a shape or range it cannot read.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <sstream>
#include <string>
#include <vector>

#include "edgecolbert/common.hpp"
#include "edgecolbert/dispatch.hpp"
#include "edgecolbert/threadpool.hpp"

namespace edgecolbert::bind {

namespace py = pybind11;

template <typename... Args>
std::string cat(Args&&... args) {
  std::ostringstream s;
  (s << ... << args);
  return s.str();
}

[[noreturn]] inline void value_error(const std::string& msg) { throw py::value_error(msg); }
[[noreturn]] inline void type_error(const std::string& msg) { throw py::type_error(msg); }

inline std::string shape_str(const py::array& a) {
  std::string s = "(";
  for (py::ssize_t i = 0; i < a.ndim(); ++i) s += (i ? ", " : "") + std::to_string(a.shape(i));
  if (a.ndim() == 1) s += ",";
  return s + ")";
}

inline std::string dtype_str(const py::array& a) { return py::str(a.dtype()).cast<std::string>(); }

// C-contiguous and aligned to its element size: the only layouts the kernels read.
inline void require_readable(const py::array& a, const char* fn, const char* arg) {
  if (!(a.flags() & py::array::c_style))
    value_error(cat(fn, ": ", arg, " must be C-contiguous (numpy.ascontiguousarray / tensor.contiguous() makes a copy); got strides ",
                    py::str(py::cast(std::vector<py::ssize_t>(a.strides(), a.strides() + a.ndim()))).cast<std::string>()));
  if (a.size() > 0 && reinterpret_cast<uintptr_t>(a.data()) % static_cast<uintptr_t>(a.itemsize()) != 0)
    value_error(cat(fn, ": ", arg, " is not aligned to its element size (", a.itemsize(), " bytes)"));
}

// array_t<T>::ensure that also requires alignment. A C-contiguous view at an address that is not a
// multiple of sizeof(T) (np.frombuffer(buf, offset=1)) already has the right dtype and layout, so a
// plain ensure() hands it back as is, and reading T from it is undefined behaviour (under UBSan the
// process exits with status 1). NPY_ARRAY_ALIGNED makes numpy copy such a view instead. Cast = 0 for
// the callers that accept only numpy's safe casts.
template <typename T, int Cast = py::array::forcecast>
auto ensure_aligned(const py::handle& h) {
  return py::array_t<T, py::array::c_style | Cast | py::detail::npy_api::NPY_ARRAY_ALIGNED_>::ensure(h);
}

// Token dtype from the array and an optional declared name ("bfloat16" for uint16/int16 storage).
inline DType token_dtype(const py::array& a, const std::string& declared, const char* fn, const char* arg) {
  const char kind = a.dtype().kind();
  const auto size = a.itemsize();
  // The kernels read native-endian values: a byte-swapped array would give wrong scores, not an error.
  if (!a.dtype().attr("isnative").cast<bool>())
    type_error(cat(fn, ": ", arg, " must be in native byte order, got ", py::str(a.dtype()).cast<std::string>(),
                   " (x.astype(x.dtype.newbyteorder('=')) converts)"));
  if (declared == "bfloat16" || declared == "bf16") {
    if (size == 2 && (kind == 'u' || kind == 'i' || kind == 'V')) return DType::bf16;
    type_error(cat(fn, ": ", arg, " declared bfloat16 must be stored as 2-byte integers, got ", dtype_str(a)));
  }
  if (!declared.empty() && declared != "float32" && declared != "float16")
    type_error(cat(fn, ": unknown dtype '", declared, "' for ", arg, " (float32, float16, bfloat16)"));
  if (kind == 'f' && size == 4) return DType::f32;
  if (kind == 'f' && size == 2) return DType::f16;
  if (kind == 'V' && size == 2 && dtype_str(a) == "bfloat16") return DType::bf16;
  type_error(cat(fn, ": ", arg, " must be float32, float16 or bfloat16 (uint16 storage with dtype=\"bfloat16\"), got ",
                 dtype_str(a)));
}

inline void require_ndim(const py::array& a, int ndim, const char* fn, const char* arg, const char* layout) {
  if (a.ndim() != ndim)
    value_error(cat(fn, ": ", arg, " must have ", ndim, " dimension", ndim == 1 ? "" : "s", " ", layout, ", got shape ",
                    shape_str(a)));
}

// An integer index array (any integer dtype is accepted by the caller's conversion to int64).
inline py::array_t<int64_t, py::array::c_style> int64_array(const py::handle& h, const char* fn, const char* arg) {
  py::array a = py::array::ensure(h);
  if (!a) type_error(cat(fn, ": ", arg, " must be an array of integers"));
  if (a.size() > 0 && a.dtype().kind() != 'i' && a.dtype().kind() != 'u')
    type_error(cat(fn, ": ", arg, " must hold integers, got ", dtype_str(a)));
  // forcecast: numpy will not cast uint64 to int64 "safely", and a failed ensure() is a null array that
  // callers would dereference. A uint64 above INT64_MAX wraps negative and fails every caller's range check.
  py::array_t<int64_t, py::array::c_style> r = ensure_aligned<int64_t>(a);
  if (!r) type_error(cat(fn, ": ", arg, " must be an array of integers convertible to int64, got ", dtype_str(a)));
  return r;
}

// CSR offsets o [n+1] over `rows` entries (`rows_name`: tokens, codes, docs): o[0] == 0, non-decreasing,
// o[n] == rows. `arg` names the offsets in the message.
inline void check_csr_offsets(const int64_t* o, int64_t n, int64_t rows, const char* rows_name, const char* fn,
                      const char* arg = "doc_offsets") {
  if (o[0] != 0) value_error(cat(fn, ": ", arg, "[0] must be 0, got ", o[0]));
  for (int64_t i = 0; i < n; ++i)
    if (o[i + 1] < o[i])
      value_error(cat(fn, ": ", arg, " must be non-decreasing, but ", arg, "[", i + 1, "] = ", o[i + 1], " < ", arg, "[",
                      i, "] = ", o[i]));
  if (o[n] != rows)
    value_error(cat(fn, ": ", arg, "[-1] must equal the number of ", rows_name, " ", rows, ", got ", o[n]));
}

// CSR document offsets from Python: int64 [n+1] (check_csr_offsets). n = result.shape(0) - 1.
inline py::array_t<int64_t, py::array::c_style> check_offsets(const py::handle& offsets, int64_t rows,
                                                              const char* rows_name, const char* fn) {
  auto off = int64_array(offsets, fn, "doc_offsets");
  if (off.ndim() != 1 || off.shape(0) < 1)
    value_error(cat(fn, ": doc_offsets must have 1 dimension [n+1] with n >= 0, got shape ", shape_str(off)));
  check_csr_offsets(off.data(), off.shape(0) - 1, rows, rows_name, fn);
  return off;
}

// A query batch [nq, Lq, dim] and its optional mask [nq, Lq] (any boolean or integer array; nonzero keeps
// the token), with the views the kernels read. Any token dtype, C-contiguous; with f32_copy, float32 only
// and copied to C order when it is not (the PLAID stages, which take float32 queries from numpy as given).
struct Queries {
  py::array data;
  py::array mask;  // uint8 [nq, Lq] or empty
  QueryBatch batch;
};

inline Queries check_queries(const py::array& queries, const std::string& dtype, const py::object& mask, const char* fn,
                             bool f32_copy = false) {
  Queries q;
  require_ndim(queries, 3, fn, "queries", "[nq, Lq, dim]");
  if (f32_copy) {
    if (!(queries.dtype().kind() == 'f' && queries.itemsize() == 4))
      type_error(cat(fn, ": queries must be float32, got ", dtype_str(queries)));
    q.data = ensure_aligned<float, 0>(queries);
    q.batch.dtype = DType::f32;
  } else {
    q.batch.dtype = token_dtype(queries, dtype, fn, "queries");
    require_readable(queries, fn, "queries");
    q.data = queries;
  }
  q.batch.data = q.data.data();
  q.batch.nq = q.data.shape(0), q.batch.lq = q.data.shape(1), q.batch.dim = q.data.shape(2);
  if (q.batch.dim < 1) value_error(cat(fn, ": queries must have dim >= 1, got shape ", shape_str(q.data)));
  if (!mask.is_none()) {
    py::array m = py::array::ensure(mask);
    if (!m) type_error(cat(fn, ": query_mask must be an array of booleans"));
    require_ndim(m, 2, fn, "query_mask", "[nq, Lq]");
    if (m.shape(0) != q.batch.nq || m.shape(1) != q.batch.lq)
      value_error(cat(fn, ": query_mask must have shape (", q.batch.nq, ", ", q.batch.lq, ") like queries, got ", shape_str(m)));
    if (m.dtype().kind() != 'b' && m.dtype().kind() != 'u' && m.dtype().kind() != 'i')
      type_error(cat(fn, ": query_mask must be boolean, got ", dtype_str(m)));
    q.mask = py::array_t<uint8_t, py::array::c_style | py::array::forcecast>::ensure(
        m.dtype().kind() == 'b' ? m : py::array(m.attr("astype")("bool")));
    q.batch.mask = static_cast<const uint8_t*>(q.mask.data());
  }
  return q;
}

// Queries scored against a codec's centroids must have its dimension.
inline void require_codec_dim(const Queries& q, int64_t dim, const char* fn) {
  if (q.batch.dim != dim) value_error(cat(fn, ": queries have dim ", q.batch.dim, " but the codec has dim ", dim));
}

// Candidate documents per query: int64 [nq, c], every entry a document index in [0, n).
inline py::array_t<int64_t, py::array::c_style> check_candidates(const py::handle& candidates, int64_t nq, int64_t n,
                                                                 const char* fn) {
  auto c = int64_array(candidates, fn, "candidates");
  if (c.ndim() != 2 || c.shape(0) != nq)
    value_error(cat(fn, ": candidates must have shape (nq, c) with nq = ", nq, ", got ", shape_str(c)));
  const int64_t nc = c.shape(1);
  const int64_t* cp = c.data();
  for (int64_t i = 0; i < nq * nc; ++i)
    if (cp[i] < 0 || cp[i] >= n)
      value_error(cat(fn, ": candidates[", i / nc, ", ", i % nc, "] = ", cp[i], " is not a document index in [0, ", n, ")"));
  return c;
}

inline int resolve_threads(const py::object& given, const char* fn) {
  if (given.is_none()) return default_num_threads();
  // An int or any integer (a numpy one: operator.index), not a float.
  if (!py::isinstance<py::int_>(given) && !PyIndex_Check(given.ptr()))
    type_error(cat(fn, ": num_threads must be an int or None"));
  const auto n = py::reinterpret_steal<py::int_>(PyNumber_Index(given.ptr()));
  if (!n) throw py::error_already_set();
  // Compared as Python ints: a value beyond long long would otherwise fail the cast with a RuntimeError.
  if (n < py::int_(1) || n > py::int_(4096))
    value_error(cat(fn, ": num_threads must be in [1, 4096], got ", py::str(n).cast<std::string>()));
  return n.cast<int>();
}

// The codec state: float32 centroids [K, dim], weights [2^nbits], optional cutoffs [2^nbits - 1],
// checked, with the byte table the kernels read (codec.cpp).
struct CodecState {
  py::array_t<float, py::array::c_style> centroids, weights, cutoffs;
  std::vector<float> table;
  CodecView view;
};
CodecState check_codec(const py::array& centroids, const py::array& weights, const py::object& cutoffs, int nbits,
                       const char* fn);

// int8 centroids for PLAID's candidate generation: (c8 int8 [K, dim4], scale float32 [K], csum int32 [K])
// as quantize_rows_i8 returns them, shapes checked against dim (codec.cpp).
struct CentroidsI8 {
  py::array_t<int8_t, py::array::c_style> c8;
  py::array_t<float, py::array::c_style> scale;
  py::array_t<int32_t, py::array::c_style> csum;
  int64_t K = 0, dim4 = 0;
};
CentroidsI8 check_centroids_i8(const py::handle& t, int64_t dim, const char* fn);

inline const KernelPath& resolve_path(const std::string& isa) {
  try {
    return path_by_name(isa);
  } catch (const std::invalid_argument& e) {
    value_error(e.what());
  }
}

}  // namespace edgecolbert::bind
