// Bindings for PLAID's candidate stages (plaid.hpp): validate, release the GIL, call, return. Every
// index a kernel reads is range-checked: probed cells and their IVF ranges and the candidates' CSR
// ranges here; IVF document numbers and candidates' codes inside the kernels (only those read).
#include <cmath>
#include <limits>
#include <vector>

#include "common.hpp"
#include "edgecolbert/centroids.hpp"
#include "edgecolbert/plaid.hpp"

namespace edgecolbert::bind {
namespace {

py::array_t<float, py::array::c_style> float_matrix(const py::handle& h, const char* fn, const char* arg) {
  py::array a = py::array::ensure(h);
  if (!a || a.ndim() != 2) value_error(cat(fn, ": ", arg, " must be a 2-d float32 array"));
  if (!(a.dtype().kind() == 'f' && a.itemsize() == 4)) type_error(cat(fn, ": ", arg, " must be float32, got ", dtype_str(a)));
  return ensure_aligned<float, 0>(a);
}

// An int32 index array without silent wrap-around: int32 input is used as is, any other integer type is
// range-checked (a value past int32 would otherwise alias a valid centroid or document).
py::array_t<int32_t, py::array::c_style> int32_indices(const py::handle& h, const char* fn, const char* arg) {
  py::array a = py::array::ensure(h);
  if (a && a.dtype().kind() == 'i' && a.itemsize() == 4) return ensure_aligned<int32_t, 0>(a);
  auto w = int64_array(h, fn, arg);
  py::array_t<int32_t, py::array::c_style> out(std::vector<py::ssize_t>(w.shape(), w.shape() + w.ndim()));
  const int64_t* src = w.data();
  int32_t* dst = out.mutable_data();
  for (py::ssize_t i = 0; i < w.size(); ++i) {
    if (src[i] < std::numeric_limits<int32_t>::min() || src[i] > std::numeric_limits<int32_t>::max())
      value_error(cat(fn, ": ", arg, " holds ", src[i], ", which does not fit int32"));
    dst[i] = static_cast<int32_t>(src[i]);
  }
  return out;
}

PlaidCodes check_codes(const py::array& codes, const char* fn, py::array& keep) {
  if (codes.ndim() != 1) value_error(cat(fn, ": codes must be 1-d [T], got shape ", shape_str(codes)));
  PlaidCodes c;
  if (codes.dtype().kind() == 'u' && codes.itemsize() == 2) {
    c.u16 = true;
    keep = ensure_aligned<uint16_t, 0>(codes);
  } else if (codes.dtype().kind() == 'i' && codes.itemsize() == 4) {
    keep = ensure_aligned<int32_t, 0>(codes);
  } else {
    type_error(cat(fn, ": codes must be int32 or uint16, got ", dtype_str(codes)));
  }
  c.data = keep.data();
  c.n = keep.shape(0);
  return c;
}

// Candidate documents docs [nd] of a segment given by doc_offsets [n+1] over ncodes codes: every
// document number and CSR range checked; tokens = the candidates' codes in all.
struct DocRanges {
  py::array_t<int64_t, py::array::c_style> off, docs;
  int64_t nd = 0, tokens = 0;
};

DocRanges check_docs(const py::handle& offsets, const py::handle& docs, int64_t ncodes, const char* fn) {
  DocRanges r{int64_array(offsets, fn, "doc_offsets"), int64_array(docs, fn, "docs")};
  if (r.off.ndim() != 1 || r.off.shape(0) < 1) value_error(cat(fn, ": doc_offsets must be 1-d [n+1]"));
  if (r.docs.ndim() != 1) value_error(cat(fn, ": docs must be 1-d"));
  const int64_t n = r.off.shape(0) - 1;
  const int64_t* o = r.off.data();
  const int64_t* dp = r.docs.data();
  r.nd = r.docs.shape(0);
  for (int64_t j = 0; j < r.nd; ++j) {
    const int64_t x = dp[j];
    if (x < 0 || x >= n) value_error(cat(fn, ": docs[", j, "] = ", x, " is not a document in [0, ", n, ")"));
    if (o[x] < 0 || o[x] > o[x + 1] || o[x + 1] > ncodes)
      value_error(cat(fn, ": doc_offsets give document ", x, " the codes [", o[x], ", ", o[x + 1], ") outside [0, ",
                      ncodes, "]"));
    r.tokens += o[x + 1] - o[x];
  }
  return r;
}

// St [K, stride] centroid-major with m <= stride kept query tokens (plaid.hpp).
struct ScoresT {
  py::array_t<float, py::array::c_style> a;
  int64_t m = 0, K = 0, stride = 0;
};

ScoresT scores_t(const py::handle& h, int64_t m, const char* fn) {
  ScoresT s;
  s.a = float_matrix(h, fn, "scores_t");
  s.K = s.a.shape(0);
  s.stride = s.a.shape(1);
  if (m < 0 || m > s.stride)
    value_error(cat(fn, ": m (query tokens) must be in [0, ", s.stride, "] (scores_t has ", s.stride, " columns), got ", m));
  s.m = m;
  return s;
}

py::array_t<float> centroid_interaction(const py::handle& scores, int64_t m, const py::array& codes,
                                        const py::handle& offsets, const py::handle& docs, double threshold,
                                        const py::object& num_threads, bool reference, const std::string& isa) {
  const char* fn = "plaid_centroid_interaction";
  ScoresT S = scores_t(scores, m, fn);
  const int64_t K = S.K;
  py::array keep;
  PlaidCodes c = check_codes(codes, fn, keep);
  DocRanges dr = check_docs(offsets, docs, c.n, fn);
  const int64_t nd = dr.nd;
  const int64_t* o = dr.off.data();
  const int64_t* dp = dr.docs.data();
  if (std::isnan(threshold)) value_error(cat(fn, ": threshold must not be NaN (-inf keeps every centroid)"));
  const int threads = resolve_threads(num_threads, fn);
  const KernelPath& path = resolve_path(isa);
  py::array_t<float> out(nd);
  bool ok;
  {
    py::gil_scoped_release released;
    const float th = static_cast<float>(threshold);
    if (reference) {  // the specification reads S [m, K] row-major
      std::vector<float> rows(static_cast<std::size_t>(m * K));
      for (int64_t i = 0; i < m; ++i)
        for (int64_t k = 0; k < K; ++k) rows[i * K + k] = S.a.data()[k * S.stride + i];
      ok = plaid_centroid_interaction_scalar(rows.data(), m, K, th, c, o, dp, nd, out.mutable_data());
    } else {
      ok = plaid_centroid_interaction(path, S.a.data(), m, K, S.stride, th, c, o, dp, nd, out.mutable_data(), threads);
    }
  }
  if (!ok) value_error(cat(fn, ": a candidate document has a code outside [0, ", K, ") (scores_t has ", K, " rows)"));
  return out;
}

py::tuple gather(const py::array& codes, const py::array& residuals, const py::handle& offsets, const py::handle& docs) {
  const char* fn = "plaid_gather";
  py::array keep;
  PlaidCodes c = check_codes(codes, fn, keep);
  if (residuals.ndim() != 2 || residuals.shape(0) != c.n)
    value_error(cat(fn, ": residuals must be [T, width] with T = len(codes) = ", c.n, ", got shape ", shape_str(residuals)));
  if (residuals.dtype().kind() != 'u' || residuals.itemsize() != 1)
    type_error(cat(fn, ": residuals must be uint8, got ", dtype_str(residuals)));
  auto res = py::array_t<uint8_t, py::array::c_style>::ensure(residuals);
  if (!res) type_error(cat(fn, ": residuals must be a readable uint8 array"));
  const int64_t width = res.shape(1);
  DocRanges dr = check_docs(offsets, docs, c.n, fn);
  const int64_t nd = dr.nd, total = dr.tokens;
  const int64_t* o = dr.off.data();
  const int64_t* dp = dr.docs.data();
  py::array_t<int32_t> out_codes(total);
  py::array_t<uint8_t> out_res({total, width});
  py::array_t<int64_t> out_off(nd + 1);
  {
    py::gil_scoped_release released;
    plaid_gather(c, res.data(), width, o, dp, nd, out_codes.mutable_data(), out_res.mutable_data(), out_off.mutable_data());
  }
  return py::make_tuple(out_codes, out_res, out_off);
}

py::tuple stage_a(const py::handle& cells, const py::handle& cell_scores, const py::handle& miss, const py::handle& ivf,
                  const py::handle& ivf_offsets, int64_t num_docs, const py::object& allowed) {
  const char* fn = "plaid_stage_a";
  auto cl = int32_indices(cells, fn, "cells");
  auto cs = float_matrix(cell_scores, fn, "cell_scores");
  auto ms = ensure_aligned<float>(miss);
  auto iv = int32_indices(ivf, fn, "ivf");
  auto io = int64_array(ivf_offsets, fn, "ivf_offsets");
  if (!cl || cl.ndim() != 2) value_error(cat(fn, ": cells must be a 2-d integer array [m, p]"));
  const int64_t m = cl.shape(0), p = cl.shape(1);
  if (cs.shape(0) != m || cs.shape(1) != p) value_error(cat(fn, ": cell_scores must have shape (", m, ", ", p, ") like cells"));
  if (!ms || ms.ndim() != 1 || ms.shape(0) != m) value_error(cat(fn, ": miss must have shape (", m, ",)"));
  if (!iv || iv.ndim() != 1) value_error(cat(fn, ": ivf must be a 1-d integer array"));
  if (io.ndim() != 1 || io.shape(0) < 1) value_error(cat(fn, ": ivf_offsets must be 1-d [K+1]"));
  if (num_docs < 0) value_error(cat(fn, ": num_docs must be >= 0, got ", num_docs));
  const int64_t K = io.shape(0) - 1, L = iv.shape(0);
  const int64_t* o = io.data();
  for (int64_t e = 0; e < m * p; ++e) {
    const int64_t c = cl.data()[e];
    if (c < 0 || c >= K) value_error(cat(fn, ": cells[", e / p, ", ", e % p, "] = ", c, " is not a centroid in [0, ", K, ")"));
    if (o[c] < 0 || o[c] > o[c + 1] || o[c + 1] > L)
      value_error(cat(fn, ": ivf_offsets give centroid ", c, " the range [", o[c], ", ", o[c + 1], ") outside [0, ", L, "]"));
  }
  py::array_t<uint8_t, py::array::c_style | py::array::forcecast> al;
  if (!allowed.is_none()) {
    al = py::array_t<uint8_t, py::array::c_style | py::array::forcecast>::ensure(allowed);
    if (!al || al.ndim() != 1 || al.shape(0) != num_docs) value_error(cat(fn, ": allowed must be 1-d of length num_docs = ", num_docs));
  }
  PlaidStageA r;
  {
    py::gil_scoped_release released;
    r = plaid_stage_a(cl.data(), cs.data(), ms.data(), m, p, iv.data(), o, num_docs, allowed.is_none() ? nullptr : al.data());
  }
  if (r.bad_ivf) value_error(cat(fn, ": ivf names a document outside [0, ", num_docs, ")"));
  py::array_t<int64_t> docs(static_cast<py::ssize_t>(r.docs.size()));
  py::array_t<float> est(static_cast<py::ssize_t>(r.est.size()));
  std::copy(r.docs.begin(), r.docs.end(), docs.mutable_data());
  std::copy(r.est.begin(), r.est.end(), est.mutable_data());
  return py::make_tuple(docs, est);
}

py::tuple probe(const py::handle& scores, int64_t m, int64_t p, const std::string& isa) {
  const char* fn = "plaid_probe";
  const KernelPath& path = resolve_path(isa);
  ScoresT S = scores_t(scores, m, fn);
  const int64_t K = S.K;
  if (K < 1) value_error(cat(fn, ": scores_t must have at least one row (centroid)"));
  if (p < 1) value_error(cat(fn, ": nprobe must be >= 1, got ", p));
  p = std::min(p, K);
  py::array_t<int32_t> cells({m, p});
  py::array_t<float> cs({m, p});
  py::array_t<float> miss(m);
  {
    py::gil_scoped_release released;
    plaid_probe(path, S.a.data(), m, K, S.stride, p, cells.mutable_data(), cs.mutable_data(), miss.mutable_data());
  }
  return py::make_tuple(cells, cs, miss);
}

py::tuple search(const py::array& queries, const py::object& query_mask, const py::array& centroids,
                 const py::array& weights, int nbits, const py::array& codes, const py::array& residuals,
                 const py::handle& offsets, const py::handle& ivf, const py::handle& ivf_offsets, int64_t nprobe,
                 int64_t ndocs, int64_t rerank, int64_t k, double threshold, const py::object& num_threads, const std::string& isa,
                 const py::object& centroids_i8) {
  const char* fn = "plaid_search";
  CodecState cs = check_codec(centroids, weights, py::none(), nbits, fn);
  const CodecView& cv = cs.view;
  require_ndim(queries, 3, fn, "queries", "[nq, Lq, dim]");
  if (!(queries.dtype().kind() == 'f' && queries.itemsize() == 4)) type_error(cat(fn, ": queries must be float32, got ", dtype_str(queries)));
  auto qa = ensure_aligned<float, 0>(queries);
  QueryBatch q;
  q.data = qa.data();
  q.nq = qa.shape(0), q.lq = qa.shape(1), q.dim = qa.shape(2);
  if (q.dim != cv.dim) value_error(cat(fn, ": queries have dim ", q.dim, " but the codec has dim ", cv.dim));
  py::array_t<uint8_t, py::array::c_style | py::array::forcecast> mask;
  if (!query_mask.is_none()) {
    mask = py::array_t<uint8_t, py::array::c_style | py::array::forcecast>::ensure(query_mask);
    if (!mask || mask.ndim() != 2 || mask.shape(0) != q.nq || mask.shape(1) != q.lq)
      value_error(cat(fn, ": query_mask must have shape (", q.nq, ", ", q.lq, ") like queries"));
    q.mask = mask.data();
  }
  py::array keep_codes;
  PlaidSegment seg;
  seg.codes = check_codes(codes, fn, keep_codes);
  const int64_t w = cv.dim * nbits / 8;
  if (residuals.ndim() != 2 || residuals.shape(0) != seg.codes.n || residuals.shape(1) != w)
    value_error(cat(fn, ": residuals must have shape (", seg.codes.n, ", ", w, ") = (len(codes), dim * nbits / 8), got ",
                    shape_str(residuals)));
  if (residuals.dtype().kind() != 'u' || residuals.itemsize() != 1)
    type_error(cat(fn, ": residuals must be uint8, got ", dtype_str(residuals)));
  auto res = ensure_aligned<uint8_t, 0>(residuals);
  seg.residuals = res.data();
  auto off = int64_array(offsets, fn, "doc_offsets");
  if (off.ndim() != 1 || off.shape(0) < 1) value_error(cat(fn, ": doc_offsets must be 1-d [n+1]"));
  seg.offsets = off.data();
  seg.n = off.shape(0) - 1;
  auto iv = int32_indices(ivf, fn, "ivf");
  auto io = int64_array(ivf_offsets, fn, "ivf_offsets");
  if (iv.ndim() != 1) value_error(cat(fn, ": ivf must be a 1-d integer array"));
  if (io.ndim() != 1 || io.shape(0) != cv.num_centroids + 1)
    value_error(cat(fn, ": ivf_offsets must have shape (", cv.num_centroids + 1, ",) = (K+1,) for the codec's ",
                    cv.num_centroids, " centroids, got ", shape_str(io)));
  seg.ivf = iv.data();
  seg.ivf_len = iv.shape(0);
  seg.ivf_offsets = io.data();
  if (nprobe < 1 || ndocs < 1 || rerank < 1 || k < 1)
    value_error(cat(fn, ": nprobe, ndocs, rerank and k must be >= 1, got ", nprobe, ", ", ndocs, ", ", rerank, ", ", k));
  if (std::isnan(threshold)) value_error(cat(fn, ": threshold must not be NaN (-inf keeps every centroid)"));
  // At most n hits exist: the outputs have min(k, n) columns (>= 1), whatever k asks for.
  k = std::min<int64_t>(k, std::max<int64_t>(seg.n, 1));
  PlaidSearchParams prm;
  prm.nprobe = nprobe, prm.ndocs = ndocs, prm.rerank = rerank, prm.k = k;
  prm.threshold = static_cast<float>(threshold);
  CentroidsI8 c8;
  PlaidCentroidsI8 ci8;
  if (!centroids_i8.is_none()) {
    c8 = check_centroids_i8(centroids_i8, cv.dim, fn);
    if (c8.K != cv.num_centroids)
      value_error(cat(fn, ": centroids_i8 has ", c8.K, " rows but the codec has ", cv.num_centroids, " centroids"));
    ci8 = PlaidCentroidsI8{c8.c8.data(), c8.scale.data(), c8.csum.data(), c8.dim4};
  }
  const int threads = resolve_threads(num_threads, fn);
  const KernelPath& path = resolve_path(isa);
  py::array_t<float> out_s({q.nq, k});
  py::array_t<int64_t> out_d({q.nq, k});
  PlaidStatus st;
  {
    py::gil_scoped_release released;
    st = plaid_search(path, q, cv, seg, prm, centroids_i8.is_none() ? nullptr : &ci8, out_s.mutable_data(), out_d.mutable_data(), threads);
  }
  switch (st) {
    case PlaidStatus::ok: break;
    case PlaidStatus::bad_ivf_range: value_error(cat(fn, ": ivf_offsets give a probed centroid a range outside [0, ", seg.ivf_len, "]"));
    case PlaidStatus::bad_ivf_doc: value_error(cat(fn, ": ivf names a document outside [0, ", seg.n, ")"));
    case PlaidStatus::bad_doc_range: value_error(cat(fn, ": doc_offsets give a candidate document codes outside [0, ", seg.codes.n, "]"));
    case PlaidStatus::bad_code: value_error(cat(fn, ": a candidate document has a code outside [0, ", cv.num_centroids, ")"));
  }
  return py::make_tuple(out_s, out_d);
}

}  // namespace

void register_plaid(py::module_& m) {
  m.def("plaid_centroid_interaction", &centroid_interaction, py::arg("scores_t"), py::arg("m"), py::arg("codes"), py::arg("doc_offsets"),
        py::arg("docs"), py::arg("threshold") = -std::numeric_limits<double>::infinity(),
        py::arg("num_threads") = py::none(), py::arg("reference") = false, py::arg("isa") = "");
  m.def("plaid_gather", &gather, py::arg("codes"), py::arg("residuals"), py::arg("doc_offsets"), py::arg("docs"));
  m.def("plaid_search", &search, py::arg("queries"), py::arg("query_mask"), py::arg("centroids"), py::arg("bucket_weights"),
        py::arg("nbits"), py::arg("codes"), py::arg("residuals"), py::arg("doc_offsets"), py::arg("ivf"),
        py::arg("ivf_offsets"), py::arg("nprobe"), py::arg("ndocs"), py::arg("rerank"), py::arg("k"),
        py::arg("threshold") = -std::numeric_limits<double>::infinity(), py::arg("num_threads") = py::none(),
        py::arg("isa") = "", py::arg("centroids_i8") = py::none());
  m.def("plaid_probe", &probe, py::arg("scores_t"), py::arg("m"), py::arg("nprobe"), py::arg("isa") = "");
  m.def("plaid_stage_a", &stage_a, py::arg("cells"), py::arg("cell_scores"), py::arg("miss"), py::arg("ivf"),
        py::arg("ivf_offsets"), py::arg("num_docs"), py::arg("allowed") = py::none());
}

}  // namespace edgecolbert::bind
