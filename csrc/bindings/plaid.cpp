// Bindings for PLAID's candidate stages (plaid.hpp): validate, release the GIL, call, return. Every
// index a kernel reads is range-checked: probed cells and their IVF ranges and the candidates' CSR
// ranges here; IVF document numbers and candidates' codes inside the kernels (only those read).
#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>
#include <vector>

#include "common.hpp"
#include "edgecolbert/centroids.hpp"
#include "edgecolbert/codec.hpp"
#include "edgecolbert/plaid.hpp"
#include "edgecolbert/plaid_search.hpp"

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
  // Centroid ids are int32 in the probe and the IVF: one more row would wrap to a negative cell.
  if (s.K > std::numeric_limits<int32_t>::max())
    value_error(cat(fn, ": scores_t may have at most 2^31 - 1 rows (centroids), got ", s.K));
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
    ok = reference ? plaid_centroid_interaction_reference(S.a.data(), m, K, S.stride, th, c, o, dp, nd, out.mutable_data())
                   : plaid_centroid_interaction(path, S.a.data(), m, K, S.stride, th, c, o, dp, nd, out.mutable_data(),
                                                threads);
  }
  if (!ok) value_error(cat(fn, ": a candidate document has a code outside [0, ", K, ") (scores_t has ", K, " rows)"));
  return out;
}

py::tuple distinct_codes(const py::array& codes, const py::handle& offsets, const py::object& num_threads) {
  const char* fn = "plaid_distinct_codes";
  py::array keep;
  PlaidCodes c = check_codes(codes, fn, keep);
  auto off = int64_array(offsets, fn, "doc_offsets");
  if (off.ndim() != 1 || off.shape(0) < 1) value_error(cat(fn, ": doc_offsets must be 1-d [n+1]"));
  const int64_t n = off.shape(0) - 1;
  const int64_t* o = off.data();
  if (o[0] != 0 || o[n] != c.n) value_error(cat(fn, ": doc_offsets must run from 0 to len(codes) = ", c.n));
  for (int64_t d = 0; d < n; ++d)
    if (o[d] > o[d + 1]) value_error(cat(fn, ": doc_offsets must not decrease (document ", d, ")"));
  const int threads = resolve_threads(num_threads, fn);
  py::array_t<int64_t> out_off(n + 1);
  auto run = [&](auto* data, auto& vec) {
    {
      py::gil_scoped_release released;
      plaid_distinct_codes(data, o, n, vec, out_off.mutable_data(), threads);
    }
    using Code = typename std::remove_reference_t<decltype(vec)>::value_type;
    py::array_t<Code> out(static_cast<py::ssize_t>(vec.size()));
    std::copy(vec.begin(), vec.end(), out.mutable_data());
    return py::make_tuple(out, out_off);
  };
  if (c.u16) {
    std::vector<uint16_t> v;
    return run(static_cast<const uint16_t*>(c.data), v);
  }
  std::vector<int32_t> v;
  return run(static_cast<const int32_t*>(c.data), v);
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

// ------------------------------------------------------------------ the search of a whole index

// An index's segments (one (codes, residuals, doc_offsets, ivf, ivf_offsets) tuple each, in position order),
// optional decoded tokens per segment, and the allowed mask over all their positions. The shapes are checked
// here; the ranges a search reads are checked where it reads them (plaid_search.hpp).
struct BoundIndex {
  std::vector<py::object> keep;  // every array the views point into
  std::vector<PlaidSegment> segments;
  py::array_t<uint8_t, py::array::c_style | py::array::forcecast> allowed;
  PlaidIndex view;
};

BoundIndex check_index(const py::handle& segments, const py::object& allowed, bool subset, const py::object& decoded,
                       const CodecView& cv, const char* fn) {
  BoundIndex b;
  if (!py::isinstance<py::sequence>(segments) || py::isinstance<py::str>(segments))
    type_error(cat(fn, ": segments must be a sequence of (codes, residuals, doc_offsets, ivf, ivf_offsets) tuples"));
  const auto segs = py::reinterpret_borrow<py::sequence>(segments);
  const std::size_t ns = py::len(segs);
  py::sequence dec;
  if (!decoded.is_none()) {
    if (!py::isinstance<py::sequence>(decoded) || py::len(decoded) != ns)
      value_error(cat(fn, ": decoded must hold one float32 [T, dim] array per segment (", ns, ")"));
    dec = py::reinterpret_borrow<py::sequence>(decoded);
  }
  const int64_t w = residual_width(cv.dim, cv.nbits);
  int64_t positions = 0;
  b.segments.resize(ns);
  for (std::size_t i = 0; i < ns; ++i) {
    const std::string at = cat(fn, ": segments[", i, "]");
    const char* f = at.c_str();
    py::object t = segs[i];
    if (!py::isinstance<py::sequence>(t) || (py::len(t) != 5 && py::len(t) != 7))
      type_error(cat(f, " must be a tuple (codes, residuals, doc_offsets, ivf, ivf_offsets[, distinct_codes, "
                        "distinct_offsets])"));
    auto tup = py::reinterpret_borrow<py::sequence>(t);
    PlaidSegment& seg = b.segments[i];
    py::array codes = py::array::ensure(tup[0]);
    if (!codes) type_error(cat(f, ": codes must be an int32 or uint16 array"));
    py::array kc;
    seg.codes = check_codes(codes, f, kc);
    py::array residuals = py::array::ensure(tup[1]);
    if (!residuals || residuals.ndim() != 2 || residuals.shape(0) != seg.codes.n || residuals.shape(1) != w)
      value_error(cat(f, ": residuals must have shape (", seg.codes.n, ", ", w, ") = (len(codes), dim * nbits / 8), got ",
                      residuals ? shape_str(residuals) : std::string("no array")));
    if (residuals.dtype().kind() != 'u' || residuals.itemsize() != 1)
      type_error(cat(f, ": residuals must be uint8, got ", dtype_str(residuals)));
    auto res = ensure_aligned<uint8_t, 0>(residuals);
    seg.residuals = res.data();
    auto off = int64_array(tup[2], f, "doc_offsets");
    if (off.ndim() != 1 || off.shape(0) < 1) value_error(cat(f, ": doc_offsets must be 1-d [n+1]"));
    seg.offsets = off.data();
    seg.n = off.shape(0) - 1;
    auto iv = int32_indices(tup[3], f, "ivf");
    auto io = int64_array(tup[4], f, "ivf_offsets");
    if (iv.ndim() != 1) value_error(cat(f, ": ivf must be a 1-d integer array"));
    if (io.ndim() != 1 || io.shape(0) != cv.num_centroids + 1)
      value_error(cat(f, ": ivf_offsets must have shape (", cv.num_centroids + 1, ",) = (K+1,) for the codec's ",
                      cv.num_centroids, " centroids, got ", shape_str(io)));
    seg.ivf = iv.data();
    seg.ivf_len = iv.shape(0);
    seg.ivf_offsets = io.data();
    if (!decoded.is_none()) {
      py::array d = py::array::ensure(dec[i]);
      if (!d || d.ndim() != 2 || d.shape(0) != seg.codes.n || d.shape(1) != cv.dim)
        value_error(cat(fn, ": decoded[", i, "] must have shape (", seg.codes.n, ", ", cv.dim, ") = (len(codes), dim)"));
      if (!(d.dtype().kind() == 'f' && d.itemsize() == 4)) type_error(cat(fn, ": decoded[", i, "] must be float32"));
      auto da = ensure_aligned<float, 0>(d);
      seg.decoded = da.data();
      b.keep.push_back(da);
    }
    if (py::len(t) == 7) {  // each document's distinct codes (plaid_distinct_codes): stage B's input
      py::array dcodes = py::array::ensure(tup[5]);
      if (!dcodes) type_error(cat(f, ": distinct_codes must be an int32 or uint16 array"));
      py::array kd;
      seg.distinct = check_codes(dcodes, f, kd);
      auto doff = int64_array(tup[6], f, "distinct_offsets");
      if (doff.ndim() != 1 || doff.shape(0) != seg.n + 1)
        value_error(cat(f, ": distinct_offsets must be 1-d [n+1] = [", seg.n + 1, "], got ", shape_str(doff)));
      seg.distinct_offsets = doff.data();
      b.keep.insert(b.keep.end(), {kd, doff});
    }
    b.keep.insert(b.keep.end(), {kc, res, off, iv, io});
    positions += seg.n;
  }
  b.view.segments = b.segments.data();
  b.view.num_segments = static_cast<int64_t>(ns);
  b.view.subset = subset;
  if (!allowed.is_none()) {
    b.allowed = py::array_t<uint8_t, py::array::c_style | py::array::forcecast>::ensure(allowed);
    if (!b.allowed || b.allowed.ndim() != 1 || b.allowed.shape(0) != positions)
      value_error(cat(fn, ": allowed must be 1-d with one entry per document position of the segments (", positions,
                      "), got ", b.allowed ? shape_str(b.allowed) : std::string("no array")));
    b.view.allowed = b.allowed.data();
  }
  return b;
}

[[noreturn]] void raise_fault(const PlaidStatus& st, const BoundIndex& ix, int64_t K, const char* fn) {
  const int64_t s = st.segment;
  const PlaidSegment& seg = ix.segments[static_cast<std::size_t>(s)];
  const std::string at = cat(fn, ": segments[", s, "]: ");
  switch (st.fault) {
    case PlaidFault::bad_ivf_range: value_error(cat(at, "ivf_offsets give a probed centroid a range outside [0, ", seg.ivf_len, "]"));
    case PlaidFault::bad_ivf_doc: value_error(cat(at, "ivf names a document outside [0, ", seg.n, ")"));
    case PlaidFault::bad_doc_range:
      value_error(cat(at, "doc_offsets give a candidate document codes outside [0, ", seg.codes.n, "]",
                      seg.distinct_offsets != nullptr ? cat(" (or distinct_offsets outside [0, ", seg.distinct.n, "])")
                                                      : std::string()));
    case PlaidFault::bad_code: value_error(cat(at, "a candidate document has a code outside [0, ", K, ")"));
    case PlaidFault::bad_position: value_error(cat(fn, ": a document is not a position in [0, ", ix.view.positions(), ")"));
    case PlaidFault::bad_query: value_error(cat(fn, ": a query number outside the source's batch"));
    case PlaidFault::none: break;
  }
  value_error(cat(fn, ": unknown fault"));
}

void check_counts(int64_t nprobe, int64_t ndocs, int64_t rerank, int64_t k, const char* fn) {
  if (nprobe < 1 || ndocs < 1 || rerank < 1 || k < 1)
    value_error(cat(fn, ": nprobe, ndocs, rerank and k must be >= 1, got ", nprobe, ", ", ndocs, ", ", rerank, ", ", k));
}

py::tuple search(const py::array& queries, const py::object& query_mask, const py::array& centroids,
                 const py::array& weights, int nbits, const py::handle& segments, const py::object& allowed, bool subset,
                 int64_t nprobe, int64_t ndocs, int64_t rerank, int64_t k, double threshold, const std::string& mode,
                 const py::object& decoded, const py::object& num_threads, const std::string& isa,
                 const py::object& centroids_i8) {
  const char* fn = "plaid_search";
  CodecState cs = check_codec(centroids, weights, py::none(), nbits, fn);
  const CodecView& cv = cs.view;
  const Queries bq = check_queries(queries, "", query_mask, fn, true);
  require_codec_dim(bq, cv.dim, fn);
  PlaidMode md;
  if (mode == "plaid" || mode == "fill") md = PlaidMode::plaid;  // fill: the plaid stages, every allowed document a candidate
  else if (mode == "selective") md = PlaidMode::selective;
  else if (mode == "exhaustive") md = PlaidMode::exhaustive;
  else value_error(cat(fn, ": mode must be 'plaid', 'fill', 'selective' or 'exhaustive', got '", mode, "'"));
  if (md == PlaidMode::exhaustive && decoded.is_none())
    value_error(cat(fn, ": the exhaustive mode needs decoded (float32 [T, dim] per segment)"));
  BoundIndex bi = check_index(segments, allowed, subset, decoded, cv, fn);
  bi.view.fill = mode == "fill";
  check_counts(nprobe, ndocs, rerank, k, fn);
  if (std::isnan(threshold)) value_error(cat(fn, ": threshold must not be NaN (-inf keeps every centroid)"));
  // At most one hit per position: the outputs have min(k, positions) columns (>= 1), whatever k asks for.
  k = std::min<int64_t>(k, std::max<int64_t>(bi.view.positions(), 1));
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
  const QueryBatch& q = bq.batch;
  py::array_t<float> out_s({q.nq, k});
  py::array_t<int64_t> out_p({q.nq, k});
  PlaidStatus st;
  {
    py::gil_scoped_release released;
    st = plaid_search(path, q, cv, bi.view, prm, md, centroids_i8.is_none() ? nullptr : &ci8, out_s.mutable_data(),
                      out_p.mutable_data(), threads);
  }
  if (!st.ok()) raise_fault(st, bi, cv.num_centroids, fn);
  return py::make_tuple(out_s, out_p);
}

// ------------------------------------------------------------------ the stage driver and its sources

// A CSR request (queries [n], offsets [n+1] over docs) checked against a batch of nq queries.
struct Request {
  std::vector<int64_t> queries, offsets, docs;
};

std::vector<int64_t> to_vector(const py::handle& h, const char* fn, const char* arg) {
  auto a = int64_array(h, fn, arg);
  if (a.ndim() != 1) value_error(cat(fn, ": ", arg, " must be 1-d"));
  return std::vector<int64_t>(a.data(), a.data() + a.shape(0));
}

// Offsets [len(queries) + 1] over docs: check_csr_offsets.
void check_csr(const std::vector<int64_t>& offsets, std::size_t n, std::size_t ndocs, const char* fn) {
  if (offsets.size() != n + 1)
    value_error(cat(fn, ": offsets must have len(queries) + 1 = ", n + 1, " entries, got ", offsets.size()));
  check_csr_offsets(offsets.data(), static_cast<int64_t>(n), static_cast<int64_t>(ndocs), "docs", fn, "offsets");
}

Request check_request(const py::handle& queries, const py::handle& offsets, const py::handle& docs, int64_t nq,
                      const char* fn) {
  Request r{to_vector(queries, fn, "queries"), to_vector(offsets, fn, "offsets"), to_vector(docs, fn, "docs")};
  for (int64_t x : r.queries)
    if (x < 0 || x >= nq) value_error(cat(fn, ": queries holds ", x, ", not a query of the batch [0, ", nq, ")"));
  check_csr(r.offsets, r.queries.size(), r.docs.size(), fn);
  return r;
}

template <typename T>
py::array_t<T> to_array(const std::vector<T>& v) {
  py::array_t<T> a(static_cast<py::ssize_t>(v.size()));
  std::copy(v.begin(), v.end(), a.mutable_data());
  return a;
}

// A source whose stages are Python methods (the sharded coordinator's): the driver's calls go to the
// subclass's candidates / approximate / exact, and what they return is checked before the driver reads it.
class PySource : public PlaidSource {
 public:
  PlaidStatus candidates(const std::vector<int64_t>& queries, const std::vector<int64_t>& probes, int64_t ndocs,
                         PlaidPools& out) override {
    const char* fn = "PlaidSource.candidates";
    py::gil_scoped_acquire gil;
    py::tuple r = as_tuple(method("candidates")(to_array(queries), to_array(probes), ndocs), 4, fn);
    const std::size_t n = queries.size();
    out.offsets = to_vector(r[0], fn, "offsets");
    out.docs = to_vector(r[1], fn, "docs");
    out.values = floats(r[2], fn, "values");
    out.count = to_vector(r[3], fn, "count");
    check_csr(out.offsets, n, out.docs.size(), fn);
    if (out.values.size() != out.docs.size() || out.count.size() != n)
      value_error(cat(fn, ": must return (offsets [n+1], docs, values [len(docs)], count [n]) for n = ", n, " queries"));
    return {};
  }
  PlaidStatus approximate(const std::vector<int64_t>& queries, const std::vector<int64_t>& offsets,
                          const std::vector<int64_t>& docs, std::vector<float>& out) override {
    return scores("approximate", queries, offsets, docs, out);
  }
  PlaidStatus exact(const std::vector<int64_t>& queries, const std::vector<int64_t>& offsets,
                    const std::vector<int64_t>& docs, std::vector<float>& out) override {
    return scores("exact", queries, offsets, docs, out);
  }

 private:
  py::function method(const char* name) {
    py::function f = py::get_override(static_cast<const PlaidSource*>(this), name);
    if (!f) type_error(cat("PlaidSource: the subclass must define ", name));
    return f;
  }
  static py::tuple as_tuple(const py::object& r, std::size_t n, const char* fn) {
    if (!py::isinstance<py::tuple>(r) || py::len(r) != n) type_error(cat(fn, ": must return a tuple of ", n, " arrays"));
    return py::reinterpret_borrow<py::tuple>(r);
  }
  static std::vector<float> floats(const py::handle& h, const char* fn, const char* arg) {
    auto a = py::array_t<float, py::array::c_style | py::array::forcecast>::ensure(h);
    if (!a || a.ndim() != 1) value_error(cat(fn, ": ", arg, " must be a 1-d float array"));
    return std::vector<float>(a.data(), a.data() + a.shape(0));
  }
  PlaidStatus scores(const char* name, const std::vector<int64_t>& queries, const std::vector<int64_t>& offsets,
                     const std::vector<int64_t>& docs, std::vector<float>& out) {
    const std::string fn = cat("PlaidSource.", name);
    py::gil_scoped_acquire gil;
    out = floats(method(name)(to_array(queries), to_array(offsets), to_array(docs)), fn.c_str(), "the result");
    if (out.size() != docs.size()) value_error(cat(fn, ": must return one score per document (", docs.size(), ")"));
    return {};
  }
};

// The native source over an index's segments (PlaidIndexSource), holding the arrays it reads: what a shard
// answers the coordinator's stage calls with (Python calls its methods), and what plaid_drive can drive.
class IndexSource final : public PlaidSource {
 public:
  IndexSource(const py::array& queries, const py::object& query_mask, const py::array& centroids,
              const py::array& weights, int nbits, const py::handle& segments, const py::object& allowed, bool subset,
              double threshold, const py::object& num_threads, const std::string& isa, const py::object& centroids_i8,
              bool fill)
      : cs_(check_codec(centroids, weights, py::none(), nbits, kFn)),
        bq_(check_queries(queries, "", query_mask, kFn, true)),
        bi_(check_index(segments, allowed, subset, py::none(), cs_.view, kFn)) {
    require_codec_dim(bq_, cs_.view.dim, kFn);
    if (std::isnan(threshold)) value_error(cat(kFn, ": threshold must not be NaN (-inf keeps every centroid)"));
    if (!centroids_i8.is_none()) {
      c8_ = check_centroids_i8(centroids_i8, cs_.view.dim, kFn);
      if (c8_.K != cs_.view.num_centroids)
        value_error(cat(kFn, ": centroids_i8 has ", c8_.K, " rows but the codec has ", cs_.view.num_centroids, " centroids"));
      ci8_ = PlaidCentroidsI8{c8_.c8.data(), c8_.scale.data(), c8_.csum.data(), c8_.dim4};
    }
    const int threads = resolve_threads(num_threads, kFn);
    bi_.view.fill = fill;
    src_ = std::make_unique<PlaidIndexSource>(resolve_path(isa), bq_.batch, cs_.view, bi_.view,
                                              centroids_i8.is_none() ? nullptr : &ci8_, static_cast<float>(threshold),
                                              threads);
  }

  PlaidStatus candidates(const std::vector<int64_t>& queries, const std::vector<int64_t>& probes, int64_t ndocs,
                         PlaidPools& out) override {
    return src_->candidates(queries, probes, ndocs, out);
  }
  PlaidStatus approximate(const std::vector<int64_t>& queries, const std::vector<int64_t>& offsets,
                          const std::vector<int64_t>& docs, std::vector<float>& out) override {
    return src_->approximate(queries, offsets, docs, out);
  }
  PlaidStatus exact(const std::vector<int64_t>& queries, const std::vector<int64_t>& offsets,
                    const std::vector<int64_t>& docs, std::vector<float>& out) override {
    return src_->exact(queries, offsets, docs, out);
  }

  [[noreturn]] void raise(const PlaidStatus& st, const char* fn) const { raise_fault(st, bi_, cs_.view.num_centroids, fn); }
  int64_t num_queries() const { return bq_.batch.nq; }

  // The Python face of the three stages (the shapes PySource expects from a Python source).
  py::tuple py_candidates(const py::handle& queries, const py::handle& probes, int64_t ndocs) {
    const char* fn = "PlaidIndexSource.candidates";
    std::vector<int64_t> q = to_vector(queries, fn, "queries"), p = to_vector(probes, fn, "probes");
    if (p.size() != q.size()) value_error(cat(fn, ": probes must have one entry per query (", q.size(), ")"));
    for (int64_t x : q)
      if (x < 0 || x >= bq_.batch.nq) value_error(cat(fn, ": queries holds ", x, ", not a query of the batch"));
    for (int64_t x : p)
      if (x < 1) value_error(cat(fn, ": probes must be >= 1, got ", x));
    if (ndocs < 1) value_error(cat(fn, ": ndocs must be >= 1, got ", ndocs));
    PlaidPools out;
    PlaidStatus st;
    {
      py::gil_scoped_release released;
      st = src_->candidates(q, p, ndocs, out);
    }
    if (!st.ok()) raise(st, fn);
    return py::make_tuple(to_array(out.offsets), to_array(out.docs), to_array(out.values), to_array(out.count));
  }
  py::array_t<float> py_scores(bool exact_scores, const py::handle& queries, const py::handle& offsets,
                               const py::handle& docs) {
    const char* fn = exact_scores ? "PlaidIndexSource.exact" : "PlaidIndexSource.approximate";
    Request r = check_request(queries, offsets, docs, bq_.batch.nq, fn);
    std::vector<float> out;
    PlaidStatus st;
    {
      py::gil_scoped_release released;
      st = exact_scores ? src_->exact(r.queries, r.offsets, r.docs, out) : src_->approximate(r.queries, r.offsets, r.docs, out);
    }
    if (!st.ok()) raise(st, fn);
    return to_array(out);
  }

 private:
  static constexpr const char* kFn = "PlaidIndexSource";
  CodecState cs_;
  Queries bq_;
  BoundIndex bi_;
  CentroidsI8 c8_;
  PlaidCentroidsI8 ci8_;
  std::unique_ptr<PlaidIndexSource> src_;
};

py::tuple drive(PlaidSource& source, const py::handle& active, int64_t nprobe, int64_t ndocs, int64_t rerank, int64_t k,
                int64_t num_centroids, int64_t num_allowed, bool subset) {
  const char* fn = "plaid_drive";
  auto act = py::array_t<uint8_t, py::array::c_style | py::array::forcecast>::ensure(active);
  if (!act || act.ndim() != 1) value_error(cat(fn, ": active must be 1-d [nq] (a query with kept rows)"));
  check_counts(nprobe, ndocs, rerank, k, fn);
  if (num_centroids < 1 || num_allowed < 0)
    value_error(cat(fn, ": num_centroids must be >= 1 and num_allowed >= 0, got ", num_centroids, ", ", num_allowed));
  const int64_t nq = act.shape(0);
  // The driver asks the source for query i of every active entry i, so active must cover a native source's
  // batch exactly: the source refuses a query past it (bad_query), and a shorter active would leave queries
  // out without a word.
  if (const auto* ix = dynamic_cast<const IndexSource*>(&source); ix != nullptr && nq != ix->num_queries())
    value_error(cat(fn, ": active has ", nq, " entries; the source's batch has ", ix->num_queries(), " queries"));
  PlaidDriveParams prm;
  prm.nprobe = nprobe, prm.ndocs = ndocs, prm.rerank = rerank, prm.k = k;
  prm.num_centroids = num_centroids, prm.num_allowed = num_allowed, prm.subset = subset;
  std::vector<int64_t> queries;
  for (int64_t i = 0; i < nq; ++i)
    if (act.data()[i]) queries.push_back(i);
  // The GIL stays held: a Python source's methods run inside (a native one is only the tests').
  PlaidHits hits;
  const PlaidStatus st = plaid_drive(source, queries, prm, hits);
  if (!st.ok()) {
    if (auto* ix = dynamic_cast<IndexSource*>(&source)) ix->raise(st, fn);
    value_error(cat(fn, ": the source reported fault ", static_cast<int>(st.fault), " in segment ", st.segment));
  }
  const int64_t width = plaid_hits_width(hits);
  py::array_t<float> out_s({nq, width});
  py::array_t<int64_t> out_p({nq, width});
  plaid_hits_dense(hits, queries, nq, width, out_s.mutable_data(), out_p.mutable_data());
  return py::make_tuple(out_s, out_p);
}

}  // namespace

void register_plaid(py::module_& m) {
  m.def("plaid_centroid_interaction", &centroid_interaction, py::arg("scores_t"), py::arg("m"), py::arg("codes"), py::arg("doc_offsets"),
        py::arg("docs"), py::arg("threshold") = -std::numeric_limits<double>::infinity(),
        py::arg("num_threads") = py::none(), py::arg("reference") = false, py::arg("isa") = "");
  m.def("plaid_distinct_codes", &distinct_codes, py::arg("codes"), py::arg("doc_offsets"),
        py::arg("num_threads") = py::none());
  m.def("plaid_gather", &gather, py::arg("codes"), py::arg("residuals"), py::arg("doc_offsets"), py::arg("docs"));
  m.def("plaid_search", &search, py::arg("queries"), py::arg("query_mask"), py::arg("centroids"),
        py::arg("bucket_weights"), py::arg("nbits"), py::arg("segments"), py::arg("allowed") = py::none(),
        py::arg("subset") = false, py::arg("nprobe") = 1, py::arg("ndocs") = 256, py::arg("rerank") = 64,
        py::arg("k") = 10, py::arg("threshold") = -std::numeric_limits<double>::infinity(), py::arg("mode") = "plaid",
        py::arg("decoded") = py::none(), py::arg("num_threads") = py::none(), py::arg("isa") = "",
        py::arg("centroids_i8") = py::none());
  py::class_<PlaidSource, PySource>(m, "PlaidSource",
                                    "The three stages plaid_drive asks for; subclass it and define candidates, "
                                    "approximate and exact (csrc/include/edgecolbert/plaid_search.hpp).")
      .def(py::init<>());
  py::class_<IndexSource, PlaidSource>(m, "PlaidIndexSource")
      .def(py::init<const py::array&, const py::object&, const py::array&, const py::array&, int, const py::handle&,
                    const py::object&, bool, double, const py::object&, const std::string&, const py::object&, bool>(),
           py::arg("queries"), py::arg("query_mask"), py::arg("centroids"), py::arg("bucket_weights"), py::arg("nbits"),
           py::arg("segments"), py::arg("allowed") = py::none(), py::arg("subset") = false,
           py::arg("threshold") = -std::numeric_limits<double>::infinity(), py::arg("num_threads") = py::none(),
           py::arg("isa") = "", py::arg("centroids_i8") = py::none(), py::arg("fill") = false)
      .def("candidates", &IndexSource::py_candidates, py::arg("queries"), py::arg("probes"), py::arg("ndocs"))
      .def("approximate", [](IndexSource& s, const py::handle& q, const py::handle& o, const py::handle& d) {
             return s.py_scores(false, q, o, d);
           }, py::arg("queries"), py::arg("offsets"), py::arg("docs"))
      .def("exact", [](IndexSource& s, const py::handle& q, const py::handle& o, const py::handle& d) {
             return s.py_scores(true, q, o, d);
           }, py::arg("queries"), py::arg("offsets"), py::arg("docs"));
  m.def("plaid_drive", &drive, py::arg("source"), py::arg("active"), py::arg("nprobe"), py::arg("ndocs"),
        py::arg("rerank"), py::arg("k"), py::arg("num_centroids"), py::arg("num_allowed"), py::arg("subset"));
  m.def("plaid_probe", &probe, py::arg("scores_t"), py::arg("m"), py::arg("nprobe"), py::arg("isa") = "");
  m.def("plaid_stage_a", &stage_a, py::arg("cells"), py::arg("cell_scores"), py::arg("miss"), py::arg("ivf"),
        py::arg("ivf_offsets"), py::arg("num_docs"), py::arg("allowed") = py::none());
}

}  // namespace edgecolbert::bind
