// pybind11 module edgecolbert_native._cuda: validate, release the GIL, launch, return. No libtorch:
// every array arrives as a descriptor tuple (data_ptr, shape, strides in elements, dtype name, device
// index) that edgecolbert_native.gpu builds from a torch tensor or a __cuda_array_interface__ object,
// outputs included (allocated by the caller's allocator on the caller's device), and the stream is the
// caller's current stream handle. Launches are asynchronous; nothing here synchronises.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels.hpp"

namespace py = pybind11;
namespace ec = edgecolbert::cuda;

namespace {

template <typename... Args>
std::string cat(Args&&... args) {
  std::ostringstream s;
  (s << ... << args);
  return s.str();
}

struct Arr {
  uintptr_t ptr = 0;
  std::vector<int64_t> shape, strides;
  std::string dtype;
  int device = -1;
  bool present = false;
  const char* name = "";
  int64_t dim(int i) const { return shape[static_cast<size_t>(i)]; }
  int64_t numel() const {
    int64_t n = 1;
    for (auto s : shape) n *= s;
    return n;
  }
  std::string shape_str() const {
    std::string s = "(";
    for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
    return s + (shape.size() == 1 ? ",)" : ")");
  }
  template <typename T>
  T* data() const { return reinterpret_cast<T*>(ptr); }
};

struct Call {
  const char* fn;
  ec::Launch launch;
};

Arr parse(const Call& c, const py::handle& h, const char* arg, bool optional = false) {
  Arr a;
  if (h.is_none()) {
    if (!optional) throw py::type_error(cat(c.fn, ": ", arg, " is required"));
    return a;
  }
  auto t = py::reinterpret_borrow<py::tuple>(h);
  if (t.size() != 5) throw py::type_error(cat(c.fn, ": ", arg, " descriptor must be (ptr, shape, strides, dtype, device)"));
  a.ptr = t[0].cast<uintptr_t>();
  a.shape = t[1].cast<std::vector<int64_t>>();
  a.strides = t[2].cast<std::vector<int64_t>>();
  a.dtype = t[3].cast<std::string>();
  a.device = t[4].cast<int>();
  a.present = true;
  a.name = arg;
  if (a.strides.size() != a.shape.size()) throw py::value_error(cat(c.fn, ": ", arg, " has mismatched shape and strides"));
  for (auto s : a.shape)
    if (s < 0) throw py::value_error(cat(c.fn, ": ", arg, " has a negative extent"));
  if (a.device != c.launch.device)
    throw py::value_error(cat(c.fn, ": ", arg, " is on cuda:", a.device, " but the call runs on cuda:", c.launch.device,
                              "; every tensor must be on the same device"));
  // C-contiguous (extents of 1 may carry any stride).
  int64_t expect = 1;
  for (size_t i = a.shape.size(); i-- > 0;) {
    if (a.shape[i] != 1 && a.strides[i] != expect)
      throw py::value_error(cat(c.fn, ": ", arg, " must be C-contiguous (tensor.contiguous() makes a copy)"));
    expect *= a.shape[i];
  }
  return a;
}

// After the shape and dtype checks: every non-empty array must be device memory of the call's device
// (a host pointer would otherwise be dereferenced by a kernel).
void check_memory(const Call& c, std::initializer_list<const Arr*> arrays) {
  for (const Arr* a : arrays) {
    if (!a->present || a->numel() == 0) continue;
    if (a->ptr == 0) throw py::value_error(cat(c.fn, ": ", a->name, " has a null data pointer"));
    try {
      ec::check_device_pointer(reinterpret_cast<const void*>(a->ptr), c.launch.device, c.fn, a->name);
    } catch (const std::invalid_argument& e) {
      throw py::value_error(e.what());
    }
  }
}

void require_ndim(const Call& c, const Arr& a, size_t ndim, const char* arg, const char* layout) {
  if (a.shape.size() != ndim)
    throw py::value_error(cat(c.fn, ": ", arg, " must have ", ndim, " dimension", ndim == 1 ? "" : "s", " ", layout,
                              ", got shape ", a.shape_str()));
}

void require_dtype(const Call& c, const Arr& a, std::initializer_list<const char*> ok, const char* arg) {
  std::string names;
  for (const char* o : ok) {
    if (a.dtype == o) return;
    names += names.empty() ? o : std::string(", ") + o;
  }
  throw py::type_error(cat(c.fn, ": ", arg, " must be ", names, ", got ", a.dtype));
}

void require_shape(const Call& c, const Arr& a, std::vector<int64_t> want, const char* arg) {
  if (a.shape != want) {
    Arr w;
    w.shape = want;
    throw py::value_error(cat(c.fn, ": ", arg, " must have shape ", w.shape_str(), ", got ", a.shape_str()));
  }
}

int token_dtype(const std::string& d) { return d == "float32" ? 0 : d == "float16" ? 1 : 2; }

ec::Queries queries(const Call& c, const py::handle& h, const py::handle& mask_h, Arr& keep_q, Arr& keep_m) {
  keep_q = parse(c, h, "queries");
  require_ndim(c, keep_q, 3, "queries", "[nq, Lq, dim]");
  require_dtype(c, keep_q, {"float32", "float16", "bfloat16"}, "queries");
  ec::Queries q;
  q.data = keep_q.data<const void>();
  q.dtype = token_dtype(keep_q.dtype);
  q.nq = keep_q.dim(0), q.lq = keep_q.dim(1), q.dim = keep_q.dim(2);
  if (q.dim < 1) throw py::value_error(cat(c.fn, ": queries must have dim >= 1, got shape ", keep_q.shape_str()));
  // No limit on nq here: every kernel but topk_round walks queries grid-stride (count_items, reduce_scores,
  // the persistent row-max kernels; Lq, not nq, is their grid's y), and topk_round's gridDim.y = nq is
  // checked in maxsim_topk (at most 65,535; the Python layer sends more to the torch path).
  keep_m = parse(c, mask_h, "query_mask", true);
  if (keep_m.present) {
    require_dtype(c, keep_m, {"bool", "uint8"}, "query_mask");
    require_shape(c, keep_m, {q.nq, q.lq}, "query_mask");
    q.mask = keep_m.data<const uint8_t>();
  }
  return q;
}

struct Csr {
  Arr tokens, offsets;
  ec::CsrDocs docs;
};

// The offsets' contents are on the device and are not read here: kernels clamp them (see maxsim_tile.hpp);
// edgecolbert_native.gpu validates them (one device-side reduction) before calling.
Csr csr(const Call& c, const py::handle& tokens, const py::handle& offsets, int64_t dim) {
  Csr r;
  r.tokens = parse(c, tokens, "doc_tokens");
  require_ndim(c, r.tokens, 2, "doc_tokens", "[T, dim]");
  require_dtype(c, r.tokens, {"float32", "float16", "bfloat16"}, "doc_tokens");
  if (r.tokens.dim(1) != dim)
    throw py::value_error(cat(c.fn, ": doc_tokens have dim ", r.tokens.dim(1), " but queries have dim ", dim));
  r.offsets = parse(c, offsets, "doc_offsets");
  require_ndim(c, r.offsets, 1, "doc_offsets", "[n+1]");
  require_dtype(c, r.offsets, {"int64"}, "doc_offsets");
  if (r.offsets.dim(0) < 1) throw py::value_error(cat(c.fn, ": doc_offsets must have n + 1 >= 1 entries"));
  r.docs.tokens = r.tokens.data<const void>();
  r.docs.dtype = token_dtype(r.tokens.dtype);
  r.docs.T = r.tokens.dim(0);
  r.docs.offsets = r.offsets.data<const int64_t>();
  r.docs.n = r.offsets.dim(0) - 1;
  return r;
}

Call call(const char* fn, int device, uintptr_t stream) { return Call{fn, ec::Launch{device, reinterpret_cast<void*>(stream)}}; }

template <typename F>
void run(F&& f) {
  py::gil_scoped_release released;
  f();
}

ec::Codec codec(const Call& c, const py::handle& cents_h, const py::handle& weights_h, int nbits, Arr& kc, Arr& kw) {
  kc = parse(c, cents_h, "centroids");
  require_ndim(c, kc, 2, "centroids", "[K, dim]");
  require_dtype(c, kc, {"float32"}, "centroids");
  kw = parse(c, weights_h, "bucket_weights");
  require_dtype(c, kw, {"float32"}, "bucket_weights");
  if (nbits != 1 && nbits != 2 && nbits != 4 && nbits != 8)
    throw py::value_error(cat(c.fn, ": nbits must be 1, 2, 4 or 8, got ", nbits));
  require_shape(c, kw, {int64_t(1) << nbits}, "bucket_weights");
  ec::Codec cd;
  cd.centroids = kc.data<const float>();
  cd.K = kc.dim(0);
  cd.dim = kc.dim(1);
  cd.weights = kw.data<const float>();
  cd.nbits = nbits;
  if ((cd.dim * nbits) % 8 != 0) throw py::value_error(cat(c.fn, ": dim * nbits must be a multiple of 8"));
  return cd;
}

void compressed_docs(const Call& c, const ec::Codec& cd, const Arr& codes, const Arr& res) {
  require_ndim(c, codes, 1, "codes", "[T]");
  require_dtype(c, codes, {"int32"}, "codes");
  require_shape(c, res, {codes.dim(0), cd.dim * cd.nbits / 8}, "residuals");
  require_dtype(c, res, {"uint8"}, "residuals");
}

}  // namespace

PYBIND11_MODULE(_cuda, m) {
  m.doc() = "edgecolbert CUDA kernels (use edgecolbert_native.gpu; this module takes raw device descriptors)";

  m.def("runtime_info", [] {
    const ec::RuntimeInfo i = ec::runtime_info();
    py::dict d;
    d["runtime_version"] = i.runtime_version;
    d["driver_version"] = i.driver_version;
    d["device_count"] = i.device_count;
    d["error"] = i.error;
    d["devices"] = i.devices;
    d["max_shared_memory_per_block"] = i.max_smem_per_block;  // per device, opt-in limit (bytes)
    d["architectures"] = ec::compiled_architectures();
    d["max_topk"] = ec::kMaxTopK;
    d["max_probe"] = ec::kMaxProbe;
    return d;
  });

  m.def("kernel_for", [](const std::string& dtype, int64_t dim) { return std::string(ec::maxsim_kernel_for(token_dtype(dtype), dim)); });

  // Shared memory per block (bytes) the kernel of `kernel` ("maxsim" -- also candidates and top-k --,
  // "decompress", "maxsim_compressed", "centroid_search") needs for a shape: the launchers' own formula,
  // which edgecolbert_native.gpu compares with runtime_info()["max_shared_memory_per_block"] to route a
  // shape that does not fit to the torch path. dtype: the documents' / centroids' dtype.
  m.def("shared_memory_bytes", [](const std::string& kernel, const std::string& dtype, int64_t dim, int nbits) {
    if (dim < 0) throw py::value_error("shared_memory_bytes: dim must be >= 0");
    if (kernel == "maxsim") return ec::maxsim_smem_bytes(token_dtype(dtype), dim);
    if (kernel == "centroid_search") return ec::centroid_smem_bytes(token_dtype(dtype), dim);
    if (nbits != 1 && nbits != 2 && nbits != 4 && nbits != 8)
      throw py::value_error(cat("shared_memory_bytes: nbits must be 1, 2, 4 or 8, got ", nbits));
    if (kernel == "decompress") return ec::decompress_smem_bytes(dim, nbits);
    if (kernel == "maxsim_compressed") return ec::maxsim_compressed_smem_bytes(dim, nbits);
    throw py::value_error(cat("shared_memory_bytes: unknown kernel ", kernel));
  }, py::arg("kernel"), py::arg("dtype"), py::arg("dim"), py::arg("nbits") = 0);

  m.def("synchronize", [](int device, uintptr_t stream) {
    run([&] { ec::synchronize(ec::Launch{device, reinterpret_cast<void*>(stream)}); });
  });

  m.def("maxsim", [](py::handle queries_h, py::handle tokens, py::handle offsets, py::handle mask, py::handle out_h,
                     int device, uintptr_t stream) {
    const Call c = call("maxsim", device, stream);
    Arr qa, ma;
    const ec::Queries q = queries(c, queries_h, mask, qa, ma);
    const Csr d = csr(c, tokens, offsets, q.dim);
    const Arr out = parse(c, out_h, "out");
    require_dtype(c, out, {"float32"}, "out");
    require_shape(c, out, {q.nq, d.docs.n}, "out");
    check_memory(c, {&qa, &ma, &d.tokens, &d.offsets, &out});
    run([&] { ec::maxsim(c.launch, q, d.docs, out.data<float>()); });
  });

  m.def("maxsim_candidates", [](py::handle queries_h, py::handle tokens, py::handle offsets, py::handle cand_h,
                                py::handle mask, py::handle out_h, int device, uintptr_t stream) {
    const Call c = call("maxsim_candidates", device, stream);
    Arr qa, ma;
    const ec::Queries q = queries(c, queries_h, mask, qa, ma);
    const Csr d = csr(c, tokens, offsets, q.dim);
    const Arr cand = parse(c, cand_h, "candidates");
    require_ndim(c, cand, 2, "candidates", "[nq, c]");
    require_dtype(c, cand, {"int64"}, "candidates");
    if (cand.dim(0) != q.nq) throw py::value_error(cat(c.fn, ": candidates must have nq = ", q.nq, " rows, got ", cand.shape_str()));
    const Arr out = parse(c, out_h, "out");
    require_dtype(c, out, {"float32"}, "out");
    require_shape(c, out, {q.nq, cand.dim(1)}, "out");
    check_memory(c, {&qa, &ma, &d.tokens, &d.offsets, &cand, &out});
    run([&] { ec::maxsim_candidates(c.launch, q, d.docs, cand.data<const int64_t>(), cand.dim(1), out.data<float>()); });
  });

  m.def("maxsim_topk", [](py::handle queries_h, py::handle tokens, py::handle offsets, int64_t k, py::handle mask,
                          py::handle scores_h, py::handle ids_h, int device, uintptr_t stream) {
    const Call c = call("maxsim_topk", device, stream);
    Arr qa, ma;
    const ec::Queries q = queries(c, queries_h, mask, qa, ma);
    const Csr d = csr(c, tokens, offsets, q.dim);
    if (q.nq > 65535) throw py::value_error(cat(c.fn, ": at most 65,535 queries per call, got ", q.nq));
    if (k < 1 || k > d.docs.n || k > ec::kMaxTopK)
      throw py::value_error(cat(c.fn, ": k must be in [1, min(n, ", ec::kMaxTopK, ")] with n = ", d.docs.n, ", got ", k));
    const Arr s = parse(c, scores_h, "scores"), i = parse(c, ids_h, "ids");
    require_dtype(c, s, {"float32"}, "scores");
    require_dtype(c, i, {"int64"}, "ids");
    require_shape(c, s, {q.nq, k}, "scores");
    require_shape(c, i, {q.nq, k}, "ids");
    check_memory(c, {&qa, &ma, &d.tokens, &d.offsets, &s, &i});
    run([&] { ec::maxsim_topk(c.launch, q, d.docs, k, s.data<float>(), i.data<int64_t>()); });
  });

  m.def("decompress", [](py::handle codes_h, py::handle res_h, py::handle cents_h, py::handle weights_h, int nbits,
                         py::handle out_h, int device, uintptr_t stream) {
    const Call c = call("decompress", device, stream);
    Arr kc, kw;
    const ec::Codec cd = codec(c, cents_h, weights_h, nbits, kc, kw);
    const Arr codes = parse(c, codes_h, "codes"), res = parse(c, res_h, "residuals"), out = parse(c, out_h, "out");
    compressed_docs(c, cd, codes, res);
    require_dtype(c, out, {"float32", "float16", "bfloat16"}, "out");
    require_shape(c, out, {codes.dim(0), cd.dim}, "out");
    check_memory(c, {&kc, &kw, &codes, &res, &out});
    run([&] {
      ec::decompress(c.launch, cd, codes.data<const int32_t>(), res.data<const uint8_t>(), codes.dim(0),
                     out.data<void>(), token_dtype(out.dtype));
    });
  });

  m.def("maxsim_compressed", [](py::handle queries_h, py::handle codes_h, py::handle res_h, py::handle offsets_h,
                                py::handle cents_h, py::handle weights_h, int nbits, py::handle cand_h, py::handle mask,
                                py::handle out_h, int device, uintptr_t stream) {
    const Call c = call("maxsim_compressed", device, stream);
    Arr qa, ma, kc, kw;
    const ec::Queries q = queries(c, queries_h, mask, qa, ma);
    const ec::Codec cd = codec(c, cents_h, weights_h, nbits, kc, kw);
    if (cd.dim != q.dim) throw py::value_error(cat(c.fn, ": centroids have dim ", cd.dim, " but queries have dim ", q.dim));
    const Arr codes = parse(c, codes_h, "codes"), res = parse(c, res_h, "residuals");
    compressed_docs(c, cd, codes, res);
    const Arr off = parse(c, offsets_h, "doc_offsets");
    require_ndim(c, off, 1, "doc_offsets", "[n+1]");
    require_dtype(c, off, {"int64"}, "doc_offsets");
    if (off.dim(0) < 1) throw py::value_error(cat(c.fn, ": doc_offsets must have n + 1 >= 1 entries"));
    const int64_t n = off.dim(0) - 1;
    const Arr cand = parse(c, cand_h, "candidates", true);
    int64_t cols = n;
    if (cand.present) {
      require_ndim(c, cand, 2, "candidates", "[nq, c]");
      require_dtype(c, cand, {"int64"}, "candidates");
      if (cand.dim(0) != q.nq) throw py::value_error(cat(c.fn, ": candidates must have nq = ", q.nq, " rows"));
      cols = cand.dim(1);
    }
    const Arr out = parse(c, out_h, "out");
    require_dtype(c, out, {"float32"}, "out");
    require_shape(c, out, {q.nq, cols}, "out");
    check_memory(c, {&qa, &ma, &kc, &kw, &codes, &res, &off, &cand, &out});
    run([&] {
      ec::maxsim_compressed(c.launch, q, cd, codes.data<const int32_t>(), res.data<const uint8_t>(), codes.dim(0),
                            off.data<const int64_t>(), n, cand.present ? cand.data<const int64_t>() : nullptr, cols,
                            out.data<float>());
    });
  });

  m.def("centroid_topk", [](py::handle rows_h, py::handle cents_h, int64_t k, py::handle scores_h, py::handle ids_h,
                            int device, uintptr_t stream) {
    const Call c = call("centroid_search", device, stream);
    const Arr rows = parse(c, rows_h, "query_tokens"), cents = parse(c, cents_h, "centroids");
    require_ndim(c, rows, 2, "query_tokens", "[m, dim]");
    require_ndim(c, cents, 2, "centroids", "[K, dim]");
    require_dtype(c, cents, {"float32", "float16", "bfloat16"}, "centroids");
    if (rows.dtype != cents.dtype)
      throw py::type_error(cat(c.fn, ": query_tokens (", rows.dtype, ") must have the centroids' dtype (", cents.dtype, ")"));
    if (rows.dim(1) != cents.dim(1))
      throw py::value_error(cat(c.fn, ": query_tokens have dim ", rows.dim(1), " but centroids have dim ", cents.dim(1)));
    if (k < 1 || k > cents.dim(0) || k > ec::kMaxProbe)
      throw py::value_error(cat(c.fn, ": nprobe must be in [1, min(K, ", ec::kMaxProbe, ")], got ", k));
    const Arr s = parse(c, scores_h, "scores", true), i = parse(c, ids_h, "ids");
    if (s.present) {
      require_dtype(c, s, {"float32"}, "scores");
      require_shape(c, s, {rows.dim(0), k}, "scores");
    }
    require_dtype(c, i, {"int32"}, "ids");
    require_shape(c, i, {rows.dim(0), k}, "ids");
    check_memory(c, {&rows, &cents, &s, &i});
    run([&] {
      ec::centroid_topk(c.launch, rows.data<const void>(), rows.dim(0), cents.data<const void>(), cents.dim(0),
                        cents.dim(1), token_dtype(cents.dtype), k, s.present ? s.data<float>() : nullptr, i.data<int32_t>());
    });
  });
}
