// Host harness of the CUDA kernels (issue 9): the __host__ __device__ arithmetic of
// edgecolbert/device/*.hpp, driven here the way csrc/cuda/*.cu drives it -- the same work items, the same
// staged tiles (element loop and 16-byte copies), the same per-lane running max and atomic-max keys, the
// same bitonic schedule and top-k lists -- and compared with the scalar reference of the CPU core and a
// float64 reference. Plain C++: no CUDA needed. What it cannot cover is the hardware: the WMMA fragment
// calls (emulated here as their definition, D = A * B + C in float32), warp shuffles, shared-memory
// timing, atomics' real concurrency. Those run only on a GPU (tests/test_gpu_cuda.py).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <random>
#include <vector>

#include "edgecolbert/centroids.hpp"
#include "edgecolbert/codec.hpp"
#include "edgecolbert/device/codec_tile.hpp"
#include "edgecolbert/device/hd.hpp"
#include "edgecolbert/device/maxsim_tile.hpp"
#include "edgecolbert/device/topk.hpp"
#include "edgecolbert/dispatch.hpp"
#include "edgecolbert/maxsim.hpp"
#include "test_util.hpp"

using namespace edgecolbert;
namespace dv = edgecolbert::device;

namespace {

bool same_float(float a, float b) { return (std::isnan(a) && std::isnan(b)) || a == b; }

// ---- MaxSim emulation ------------------------------------------------------------------------------------
struct Problem {
  int64_t nq, lq, dim;
  DType qt, dt;
  std::vector<float> qf, df;          // values (rounded to their dtype)
  std::vector<uint16_t> qh, dh;       // half storage
  std::vector<int64_t> offsets;
  std::vector<uint8_t> mask;
  std::vector<int64_t> cand;          // optional [nq, ncand]
  int64_t ncand = 0;
  const void* q() const { return qt == DType::f32 ? static_cast<const void*>(qf.data()) : qh.data(); }
  const void* d() const { return dt == DType::f32 ? static_cast<const void*>(df.data()) : dh.data(); }
  int64_t T() const { return offsets.back(); }
  int64_t n() const { return static_cast<int64_t>(offsets.size()) - 1; }
};

Problem make_problem(std::mt19937_64& rng, int64_t nq, int64_t lq, int64_t dim, const std::vector<int64_t>& lens, DType qt,
                     DType dt, bool masked) {
  Problem p;
  p.nq = nq, p.lq = lq, p.dim = dim, p.qt = qt, p.dt = dt;
  p.offsets.push_back(0);
  for (auto l : lens) p.offsets.push_back(p.offsets.back() + l);
  p.qf = ectest::awkward_values(rng, static_cast<size_t>(nq * lq * dim));
  p.df = ectest::awkward_values(rng, static_cast<size_t>(p.T() * dim));
  if (qt != DType::f32) {
    p.qh = ectest::to_half(p.qf, qt);
    for (size_t i = 0; i < p.qf.size(); ++i) p.qf[i] = load_as_f32(p.qh.data(), qt, i);
  }
  if (dt != DType::f32) {
    p.dh = ectest::to_half(p.df, dt);
    for (size_t i = 0; i < p.df.size(); ++i) p.df[i] = load_as_f32(p.dh.data(), dt, i);
  }
  if (masked) {
    std::uniform_int_distribution<int> coin(0, 3);
    p.mask.resize(static_cast<size_t>(nq * lq));
    for (auto& m : p.mask) m = coin(rng) != 0;
  }
  return p;
}

dv::MaxSimWork work_of(const Problem& p, std::vector<int64_t>& item_off) {
  dv::MaxSimWork w;
  w.offsets = p.offsets.data();
  w.n = p.n();
  w.T = p.T();
  w.nq = p.nq;
  w.lq = p.lq;
  if (!p.cand.empty()) {
    w.cand = p.cand.data();
    w.ncand = p.ncand;
  }
  // count_items + prefix_sum
  const int64_t entries = dv::num_entries(w);
  item_off.assign(static_cast<size_t>(entries + 1), 0);
  for (int64_t e = 0; e < entries; ++e) item_off[e + 1] = item_off[e] + dv::entry_items(w, e);
  w.item_off = item_off.data();
  return w;
}

int kc_for(int64_t dim) { return dim <= 32 ? 2 : dim <= 48 ? 3 : dim <= 64 ? 4 : 8; }

// One 16-token tile staged as rowmax_wmma stages it (KP-strided uint16 bits), by the element loop and,
// where the kernel would, by 16-byte copies; both must give the same bytes.
std::vector<uint16_t> stage_tile_wmma(const uint16_t* src, int64_t dim, int nvalid, int KP, bool* vec_agrees) {
  std::vector<uint16_t> tile(static_cast<size_t>(dv::kTileTokens * KP), 0xdead);
  for (int e = 0; e < dv::kTileTokens * KP; ++e) tile[e] = dv::stage_elem<uint16_t>(src, dim, nvalid, e / KP, e % KP);
  if (dim % 8 == 0) {
    std::vector<uint16_t> v(tile.size(), 0);  // padding columns zeroed once per query in the kernel
    const int per_row = static_cast<int>(dim / 8);
    for (int e = 0; e < dv::kTileTokens * per_row; ++e) {
      const int n = e / per_row, k = (e % per_row) * 8;
      uint16_t chunk[8] = {0, 0, 0, 0, 0, 0, 0, 0};
      if (n < nvalid) std::memcpy(chunk, src + int64_t(n) * dim + k, 16);
      std::memcpy(v.data() + n * KP + k, chunk, 16);
    }
    *vec_agrees = *vec_agrees && v == tile;
  }
  return tile;
}

// Emulates the row-max kernel for every (slice, item) -- in a scrambled item order, as concurrent warps
// would finish -- then reduce_scores. tensor: rowmax_wmma (fp16/bf16 docs), else rowmax_simt.
std::vector<float> emulate_maxsim(const Problem& p, bool tensor, std::mt19937_64& rng, bool* vec_agrees) {
  std::vector<int64_t> item_off;
  const dv::MaxSimWork w = work_of(p, item_off);
  const int64_t per = dv::pairs_per_query(w);
  std::vector<uint32_t> rowmax(static_cast<size_t>(p.nq * per * p.lq), 0);
  const int64_t total = dv::total_items(w);
  std::vector<int64_t> order(static_cast<size_t>(total));
  std::iota(order.begin(), order.end(), 0);
  std::shuffle(order.begin(), order.end(), rng);
  const int slices = static_cast<int>((p.lq + dv::kSliceRows - 1) / dv::kSliceRows);
  const int KC = kc_for(p.dim), KP = KC * 16 + 8;
  const int dt = static_cast<int>(p.dt), qt = static_cast<int>(p.qt);
  const size_t qsize = p.qt == DType::f32 ? 4 : 2;
  for (int slice = 0; slice < slices; ++slice) {
    const int row0 = slice * dv::kSliceRows;
    const int rows = static_cast<int>(dv::min64(dv::kSliceRows, p.lq - row0));
    for (int64_t item : order) {
      const dv::ItemPos pos = dv::locate_item(w, item);
      const void* qbase = static_cast<const char*>(p.q()) + size_t((pos.q * p.lq + row0) * p.dim) * qsize;
      std::vector<uint16_t> qtile;
      if (tensor) {
        qtile.resize(static_cast<size_t>(dv::kSliceRows * KP));
        for (int e = 0; e < dv::kSliceRows * KP; ++e)
          qtile[e] = dv::stage_query_bits(qbase, qt, p.dim, rows, e / KP, e % KP, dt);
      }
      float best[dv::kSliceRows];
      for (auto& b : best) b = dv::neg_inf();
      for (int64_t t0 = pos.begin; t0 < pos.end; t0 += dv::kTileTokens) {
        const int nvalid = static_cast<int>(dv::min64(dv::kTileTokens, pos.end - t0));
        if (tensor) {
          const auto tile = stage_tile_wmma(p.dh.data() + t0 * p.dim, p.dim, nvalid, KP, vec_agrees);
          // WMMA's definition on the staged operands: acc[r][j] = sum_k A[r][k] * B[k][j] in float32.
          float acc[dv::kSliceRows][dv::kTileTokens];
          for (int r = 0; r < dv::kSliceRows; ++r)
            for (int j = 0; j < dv::kTileTokens; ++j) {
              float s = 0.0f;
              for (int k = 0; k < KC * 16; ++k)
                s += dv::load_f32(qtile.data(), dt, r * KP + k) * dv::load_f32(tile.data(), dt, j * KP + k);
              acc[r][j] = s;
            }
          for (int lane = 0; lane < dv::kSliceRows; ++lane) best[lane] = dv::tile_row_max(best[lane], acc[lane], nvalid);
        } else {
          std::vector<float> tile(static_cast<size_t>(dv::kTileTokens * p.dim));
          for (int64_t e = 0; e < dv::kTileTokens * p.dim; ++e)
            tile[e] = e < nvalid * p.dim ? dv::load_f32(p.d(), dt, t0 * p.dim + e) : 0.0f;
          for (int lane = 0; lane < rows; ++lane) {
            float acc[dv::kTileTokens];
            dv::simt_tile_dots(p.q(), qt, (pos.q * p.lq + row0 + lane) * p.dim, tile.data(), p.dim, acc);
            best[lane] = dv::tile_row_max(best[lane], acc, nvalid);
          }
        }
      }
      if (pos.end > pos.begin)
        for (int lane = 0; lane < rows; ++lane) {
          uint32_t& slot = rowmax[static_cast<size_t>(pos.pair * p.lq + row0 + lane)];
          slot = std::max(slot, dv::max_key(best[lane]));  // atomicMax
        }
    }
  }
  std::vector<float> out(static_cast<size_t>(p.nq * per));
  for (int64_t i = 0; i < p.nq * per; ++i)
    out[i] = dv::reduce_pair(w, p.mask.empty() ? nullptr : p.mask.data(), rowmax.data(), i / per, i % per);
  return out;
}

std::vector<float> scalar_maxsim(const Problem& p) {
  const KernelPath& scalar = path_by_name("scalar");
  QueryBatch q{p.q(), p.qt, p.nq, p.lq, p.dim, p.mask.empty() ? nullptr : p.mask.data()};
  DocSet ds{p.d(), p.dt, p.dim, p.n(), p.offsets.data(), p.offsets.data() + 1, nullptr};
  if (p.cand.empty()) {
    std::vector<float> out(static_cast<size_t>(p.nq * p.n()), NAN);
    maxsim(scalar, q, ds, out.data(), 1);
    return out;
  }
  std::vector<float> out(static_cast<size_t>(p.nq * p.ncand), NAN);
  std::vector<int64_t> c = p.cand;
  for (auto& x : c) x = std::min(std::max<int64_t>(x, 0), p.n() - 1);  // the scalar path takes valid ids only
  maxsim_candidates(scalar, q, ds, c.data(), p.ncand, out.data(), 1);
  return out;
}

// Bound on the rounding of a score: sum over rows of max |q_r|.|d_j|.
std::vector<double> magnitude(const Problem& p) {
  const int64_t per = p.cand.empty() ? p.n() : p.ncand;
  std::vector<double> mag(static_cast<size_t>(p.nq * per), 0.0);
  for (int64_t i = 0; i < p.nq; ++i)
    for (int64_t c = 0; c < per; ++c) {
      int64_t d = p.cand.empty() ? c : p.cand[i * p.ncand + c];
      if (d < 0 || d >= p.n()) continue;
      double tot = 0;
      for (int64_t r = 0; r < p.lq; ++r) {
        double best = 0;
        for (int64_t j = p.offsets[d]; j < p.offsets[d + 1]; ++j) {
          double s = 0;
          for (int64_t k = 0; k < p.dim; ++k) s += std::fabs(double(p.qf[(i * p.lq + r) * p.dim + k]) * p.df[j * p.dim + k]);
          best = std::max(best, s);
        }
        tot += best;
      }
      mag[i * per + c] = tot;
    }
  return mag;
}

void check_against_scalar(const Problem& p, bool tensor, std::mt19937_64& rng, const char* what) {
  bool vec_agrees = true;
  const auto got = emulate_maxsim(p, tensor, rng, &vec_agrees);
  const auto want = scalar_maxsim(p);
  const auto mag = magnitude(p);
  // SIMT: the scalar's own order (k ascending), so equal up to the compiler's contraction choices.
  // Tensor path: the query is rounded to the document dtype (2^-9 relative for bf16, 2^-12 for fp16).
  const double tol = !tensor ? 1e-6 : (p.dt == DType::bf16 ? 8e-3 : 1e-3);
  EC_CHECK(vec_agrees, "%s: 16-byte staging differs from the element loop", what);
  for (size_t i = 0; i < got.size(); ++i) {
    const bool bad_cand = !p.cand.empty() && (p.cand[i] < 0 || p.cand[i] >= p.n());
    if (bad_cand) {
      EC_CHECK(std::isnan(got[i]), "%s: invalid candidate must score NaN, got %g", what, got[i]);
      continue;
    }
    EC_CHECK(!std::isnan(got[i]), "%s: NaN at %zu (an unwritten row?)", what, i);
    EC_CHECK(std::fabs(got[i] - want[i]) <= tol * mag[i] + 1e-6, "%s dim=%lld lq=%lld: pair %zu got %.9g scalar %.9g", what,
             (long long)p.dim, (long long)p.lq, i, got[i], want[i]);
  }
}

}  // namespace

EC_TEST(device_harness_conversions_match_common) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const float a = f16_to_f32(static_cast<uint16_t>(h)), b = dv::f16_to_f32(static_cast<uint16_t>(h));
    EC_CHECK(same_float(a, b), "f16 %04x", h);
    EC_CHECK(same_float(bf16_to_f32(static_cast<uint16_t>(h)), dv::bf16_to_f32(static_cast<uint16_t>(h))), "bf16 %04x", h);
  }
  std::mt19937_64 rng(3);
  std::uniform_int_distribution<uint32_t> bits;
  for (int i = 0; i < 200000; ++i) {
    const uint32_t u = bits(rng);
    float f;
    std::memcpy(&f, &u, 4);
    EC_CHECK(f32_to_f16(f) == dv::f32_to_f16(f), "f32->f16 %08x", u);
    EC_CHECK(f32_to_bf16(f) == dv::f32_to_bf16(f), "f32->bf16 %08x", u);
  }
}

EC_TEST(device_harness_max_key_orders_like_floats) {
  std::vector<float> v = {-INFINITY, -1e30f, -2.0f, -1.0f, -1e-40f, -0.0f, 0.0f, 1e-40f, 0.5f, 1.0f, 3e38f, INFINITY};
  std::mt19937_64 rng(5);
  std::normal_distribution<float> g(0.0f, 10.0f);
  for (int i = 0; i < 2000; ++i) v.push_back(g(rng));
  for (float a : v) {
    EC_CHECK(dv::from_max_key(dv::max_key(a)) == a && std::signbit(dv::from_max_key(dv::max_key(a))) == std::signbit(a),
             "round trip %g", a);
    EC_CHECK(dv::max_key(a) > 0u, "key of %g must be above the zeroed 'no value'", a);
    for (float b : v)
      if (a < b) EC_CHECK(dv::max_key(a) < dv::max_key(b), "order %g < %g", a, b);
  }
  EC_CHECK(std::isnan(dv::from_max_key(0u)), "an unwritten row must read as NaN");
  EC_CHECK(dv::running_max(1.0f, NAN) == 1.0f && dv::running_max(-INFINITY, NAN) == -INFINITY, "NaN never wins");
}

EC_TEST(device_harness_work_items_cover_every_token_once) {
  std::mt19937_64 rng(11);
  Problem p = make_problem(rng, 3, 4, 2, {0, 1, 511, 512, 513, 0, 1500, 7, 0}, DType::f32, DType::f32, false);
  for (int with_cand = 0; with_cand < 2; ++with_cand) {
    if (with_cand) {
      p.ncand = 5;
      p.cand = {6, 2, -1, 4, 9, 0, 0, 3, 6, 8, 1, 5, 7, 6, 100};
    }
    std::vector<int64_t> item_off;
    const dv::MaxSimWork w = work_of(p, item_off);
    const int64_t per = dv::pairs_per_query(w);
    std::vector<int64_t> covered(static_cast<size_t>(p.nq * per), 0);
    for (int64_t it = 0; it < dv::total_items(w); ++it) {
      const dv::ItemPos pos = dv::locate_item(w, it);
      EC_CHECK(pos.end > pos.begin && pos.end - pos.begin <= dv::kItemTokens, "item %lld has %lld tokens", (long long)it,
               (long long)(pos.end - pos.begin));
      EC_CHECK(pos.q == pos.pair / per, "item %lld: query %lld vs pair %lld", (long long)it, (long long)pos.q, (long long)pos.pair);
      const int64_t d = with_cand ? p.cand[pos.pair] : pos.pair % per;
      EC_CHECK(pos.begin >= p.offsets[d] && pos.end <= p.offsets[d + 1], "item outside its document");
      covered[pos.pair] += pos.end - pos.begin;
    }
    for (int64_t i = 0; i < p.nq * per; ++i) {
      const int64_t d = with_cand ? p.cand[i] : i % per;
      const int64_t want = d < 0 || d >= p.n() ? 0 : p.offsets[d + 1] - p.offsets[d];
      EC_CHECK(covered[i] == want, "pair %lld: %lld of %lld tokens covered", (long long)i, (long long)covered[i], (long long)want);
    }
  }
  // Corrupt offsets are clamped, never read out of bounds.
  std::vector<int64_t> bad = {0, 5, 3, 100, -4};
  dv::MaxSimWork w;
  w.offsets = bad.data();
  w.n = 4;
  w.T = 10;
  for (int64_t d = 0; d < 4; ++d) {
    int64_t b, e;
    dv::doc_range(w, d, b, e);
    EC_CHECK(0 <= b && b <= e && e <= 10, "doc %lld clamped to [%lld, %lld)", (long long)d, (long long)b, (long long)e);
  }
}

EC_TEST(device_harness_maxsim_matches_scalar) {
  std::mt19937_64 rng(2024);
  const DType types[] = {DType::f32, DType::f16, DType::bf16};
  const int64_t dims[] = {1, 7, 8, 9, 31, 33, 48, 64, 127, 128, 129};
  const int64_t lqs[] = {1, 5, 32, 33, 70};
  int cases = 0;
  for (DType dt : types)
    for (int64_t dim : dims) {
      const DType qt = types[(dim + static_cast<int>(dt)) % 3];
      const int64_t lq = lqs[(dim + 2 * static_cast<int>(dt)) % 5];
      std::uniform_int_distribution<int64_t> len(0, 40);
      Problem p = make_problem(rng, 2, lq, dim, {0, 1, 17, len(rng), 16, 0, 33}, qt, dt, dim % 3 == 0);
      const bool tensor = dt != DType::f32 && dim <= 128;  // maxsim.cu's use_wmma
      check_against_scalar(p, tensor, rng, tensor ? "wmma" : "simt");
      if (dt != DType::f32) check_against_scalar(p, false, rng, "simt-half");  // dim > 128 / fallback
      ++cases;
    }
  std::printf("  emulated %d MaxSim shape/dtype cases (WMMA tiles and SIMT tiles)\n", cases);
}

EC_TEST(device_harness_long_documents_and_candidates) {
  std::mt19937_64 rng(99);
  Problem p = make_problem(rng, 3, 32, 48, {1100, 0, 3, 513, 2}, DType::f32, DType::f16, true);
  check_against_scalar(p, true, rng, "wmma-long");
  check_against_scalar(p, false, rng, "simt-long");
  p.ncand = 4;
  p.cand = {0, 3, 3, 1, 4, 2, 0, 0, 1, -2, 5, 3};  // duplicates, an empty document, out-of-range entries
  check_against_scalar(p, true, rng, "wmma-candidates");
  check_against_scalar(p, false, rng, "simt-candidates");
}

// ---- top-k -----------------------------------------------------------------------------------------------
namespace {

struct E {
  float s;
  int64_t i;
};

std::vector<E> sorted_all(const std::vector<float>& s) {
  std::vector<E> v;
  for (size_t i = 0; i < s.size(); ++i) v.push_back({s[i], int64_t(i)});
  std::sort(v.begin(), v.end(), [](const E& a, const E& b) { return dv::better(a.s, a.i, b.s, b.i); });
  return v;
}

// maxsim.cu's topk_round on one block: load, bitonic network with the kernel's thread->pair mapping.
void bitonic_block(std::vector<float>& s, std::vector<int64_t>& id) {
  const int n = static_cast<int>(s.size()), threads = n / 2;
  for (int size = 2; size <= n; size <<= 1)
    for (int stride = size / 2; stride > 0; stride >>= 1)
      for (int t = 0; t < threads; ++t) {
        const int i = 2 * t - (t & (stride - 1)), j = i + stride;
        if (dv::bitonic_swap(s[i], id[i], s[j], id[j], i, size)) {
          std::swap(s[i], s[j]);
          std::swap(id[i], id[j]);
        }
      }
}

std::vector<float> awkward_scores(std::mt19937_64& rng, size_t n) {
  std::vector<float> s = ectest::awkward_values(rng, n);
  for (size_t i = 0; i < n; i += 37) s[i] = NAN;
  for (size_t i = 5; i < n; i += 53) s[i] = -INFINITY;
  return s;
}

}  // namespace

EC_TEST(device_harness_bitonic_selection_rounds) {
  std::mt19937_64 rng(8);
  const int chunk = 2048;
  for (int64_t n : {1, 2, 5, 2047, 2048, 2049, 9000}) {
    for (int64_t k : {1, 3, 10, 1024}) {
      if (k > n) continue;
      const std::vector<float> scores = awkward_scores(rng, static_cast<size_t>(n));
      const auto want = sorted_all(scores);
      // Rounds of maxsim_topk: a list of len becomes ceil(len / chunk) * k until one chunk is left.
      std::vector<float> in_s = scores;
      std::vector<int64_t> in_i(scores.size());
      std::iota(in_i.begin(), in_i.end(), 0);
      int64_t len = n;
      while (true) {
        const int64_t chunks = (len + chunk - 1) / chunk;
        std::vector<float> out_s(static_cast<size_t>(chunks * k));
        std::vector<int64_t> out_i(out_s.size());
        for (int64_t c = 0; c < chunks; ++c) {
          std::vector<float> s(chunk);
          std::vector<int64_t> id(chunk);
          for (int t = 0; t < chunk; ++t) {
            const int64_t pos = c * chunk + t;
            s[t] = pos < len ? in_s[pos] : dv::pad_score();
            id[t] = pos < len ? in_i[pos] : dv::kPadIndex;
          }
          bitonic_block(s, id);
          for (int64_t t = 0; t < k; ++t) {
            out_s[c * k + t] = s[t];
            out_i[c * k + t] = id[t];
          }
        }
        in_s = out_s;
        in_i = out_i;
        len = chunks * k;
        if (chunks == 1) break;
      }
      for (int64_t t = 0; t < k; ++t)
        EC_CHECK(in_i[t] == want[t].i && same_float(in_s[t], want[t].s), "n=%lld k=%lld rank %lld: id %lld want %lld",
                 (long long)n, (long long)k, (long long)t, (long long)in_i[t], (long long)want[t].i);
    }
  }
}

// Lq = 0 (run_pairs launches no row-max kernel then): reduce_pair alone gives 0 per document, empty or
// not, and NaN for a candidate outside [0, n) -- the torch path's and the CPU kernels' results.
EC_TEST(device_harness_zero_query_rows_reduce_to_zero) {
  const std::vector<int64_t> offsets = {0, 3, 3, 40};
  const std::vector<int64_t> cand = {2, -1, 1, 7};
  dv::MaxSimWork w;
  w.offsets = offsets.data();
  w.n = 3;
  w.T = 40;
  w.nq = 2;
  w.lq = 0;
  for (int64_t d = 0; d < w.n; ++d)
    EC_CHECK(dv::reduce_pair(w, nullptr, nullptr, 1, d) == 0.0f, "doc %lld: want 0", (long long)d);
  w.cand = cand.data();
  w.ncand = 2;
  EC_CHECK(dv::reduce_pair(w, nullptr, nullptr, 0, 0) == 0.0f, "candidate 2: want 0");
  EC_CHECK(std::isnan(dv::reduce_pair(w, nullptr, nullptr, 0, 1)), "candidate -1: want NaN");
  EC_CHECK(dv::reduce_pair(w, nullptr, nullptr, 1, 0) == 0.0f, "candidate 1 (empty): want 0");
  EC_CHECK(std::isnan(dv::reduce_pair(w, nullptr, nullptr, 1, 1)), "candidate 7: want NaN");
}

// maxsim.cu's ping-pong workspace of the selection rounds: for any entry count the four regions (scores
// and ids of both halves) are disjoint, inside the allocation and aligned; and no round after the first
// writes more entries than the first (the workspace is sized by the first). The old layout (half =
// align(N * 12), ids at align(N * 4)) fails the first check for N % 64 in [1, 21] or [33, 42].
EC_TEST(device_harness_topk_workspace_regions_disjoint) {
  std::vector<size_t> ns;
  for (size_t n = 1; n <= 5000; ++n) ns.push_back(n);
  for (size_t n : {size_t(100) * 4890, size_t(100) * 4890 + 1, size_t(65535) * 1024 * 489 + 7, (size_t(1) << 32) + 1})
    ns.push_back(n);
  int bad = 0;
  for (size_t n : ns) {
    const dv::TopkPingPong p = dv::topk_ping_pong(n);
    struct R { size_t lo, hi; };
    const R r[4] = {{p.scores_at(0), p.scores_at(0) + n * 4}, {p.ids_at(0), p.ids_at(0) + n * 8},
                    {p.scores_at(1), p.scores_at(1) + n * 4}, {p.ids_at(1), p.ids_at(1) + n * 8}};
    bool ok = p.bytes == 2 * p.half && p.ids_offset % 256 == 0 && p.half % 256 == 0;
    for (int a = 0; a < 4; ++a) {
      ok = ok && r[a].hi <= p.bytes;
      for (int b = a + 1; b < 4; ++b) ok = ok && (r[a].hi <= r[b].lo || r[b].hi <= r[a].lo);
    }
    if (!ok && bad++ < 5) EC_CHECK(false, "entries %zu: workspace regions overlap or overrun", n);
  }
  EC_CHECK(bad == 0, "%d entry counts with overlapping regions", bad);
  const int64_t chunk = dv::kTopkChunk;  // maxsim.cu's rounds
  for (int64_t n : {int64_t(2049), int64_t(200704), int64_t(1000000), int64_t(50000000)})
    for (int64_t k : {1, 10, 21, 1001, 1024}) {
      const int64_t first = (n + chunk - 1) / chunk * k;
      for (int64_t len = first; len > chunk;) {
        len = (len + chunk - 1) / chunk * k;
        EC_CHECK(len <= first, "n=%lld k=%lld: a later round writes %lld > %lld entries", (long long)n, (long long)k,
                 (long long)len, (long long)first);
      }
    }
}

EC_TEST(device_harness_topk_lists_and_merge) {
  std::mt19937_64 rng(21);
  for (int cap : {1, 4, 32}) {
    const std::vector<float> scores = awkward_scores(rng, 700);
    const auto want = sorted_all(scores);
    // centroids.cu: per split a streaming list (centroid order), then merge_splits over the splits.
    const int splits = 7, per = 100;
    std::vector<float> ms;
    std::vector<int32_t> mi;
    for (int sp = 0; sp < splits; ++sp) {
      std::vector<float> ls(cap);
      std::vector<int32_t> li(cap);
      int cnt = 0;
      for (int j = sp * per; j < (sp + 1) * per; ++j) cnt = dv::topk_insert<int32_t>(ls.data(), li.data(), cnt, cap, scores[j], j);
      for (int j = cnt; j < cap; ++j) ls[j] = dv::pad_score(), li[j] = INT32_MAX;  // write_lists padding
      std::vector<float> os(cap);
      std::vector<int32_t> oi(cap);
      const int n = dv::topk_merge<int32_t>(ms.data(), mi.data(), static_cast<int>(ms.size()), ls.data(), li.data(), cap,
                                            os.data(), oi.data(), cap);
      ms.assign(os.begin(), os.begin() + n);
      mi.assign(oi.begin(), oi.begin() + n);
    }
    for (int t = 0; t < cap; ++t)
      EC_CHECK(mi[t] == want[t].i && same_float(ms[t], want[t].s), "cap=%d rank %d: %d want %lld", cap, t, mi[t],
               (long long)want[t].i);
  }
}

// ---- codec ------------------------------------------------------------------------------------------------
EC_TEST(device_harness_decode_matches_scalar_codec) {
  std::mt19937_64 rng(17);
  for (int nbits : {1, 2, 4, 8})
    for (int64_t dim : {8, 16, 48, 64, 128}) {
      const int64_t K = 13, n = 29, W = dv::residual_bytes(dim, nbits);
      std::vector<float> cents = ectest::awkward_values(rng, static_cast<size_t>(K * dim));
      std::vector<float> weights = ectest::awkward_values(rng, size_t(1) << nbits);
      std::vector<int32_t> codes(static_cast<size_t>(n));
      std::vector<uint8_t> res(static_cast<size_t>(n * W));
      std::uniform_int_distribution<int> code(0, static_cast<int>(K) - 1), byte(0, 255);
      for (auto& c : codes) c = code(rng);
      for (auto& b : res) b = static_cast<uint8_t>(byte(rng));
      // The byte table every block builds.
      std::vector<float> table(static_cast<size_t>(256 * dv::dims_per_byte(nbits)));
      for (size_t i = 0; i < table.size(); ++i) table[i] = dv::byte_table_entry(weights.data(), nbits, static_cast<int>(i));
      const std::vector<float> cpu_table = make_byte_table(weights.data(), nbits);
      EC_CHECK(cpu_table == table, "nbits=%d: byte table differs from the CPU codec's", nbits);
      // decompress_kernel per token: lanes over dims, squared norm summed over lanes (emulated: lane order).
      std::vector<float> got(static_cast<size_t>(n * dim));
      for (int64_t t = 0; t < n; ++t) {
        const float* c = cents.data() + dv::clamp_code(codes[t], K) * dim;
        float lane_ss[32] = {};
        for (int64_t d = 0; d < dim; ++d) {
          const float v = dv::decode_dim(c, table.data(), res.data() + t * W, d, nbits);
          got[t * dim + d] = v;
          lane_ss[d % 32] += v * v;
        }
        float ss = 0;
        for (float x : lane_ss) ss += x;
        const float den = dv::l2_divisor(ss);
        for (int64_t d = 0; d < dim; ++d) got[t * dim + d] /= den;
      }
      CodecView cv;
      cv.centroids = cents.data();
      cv.num_centroids = K;
      cv.dim = dim;
      cv.nbits = nbits;
      cv.weights = weights.data();
      cv.byte_table = cpu_table.data();
      std::vector<float> want(got.size());
      codec_ops_scalar.decompress(cv, codes.data(), res.data(), n, want.data(), DType::f32);
      for (size_t i = 0; i < got.size(); ++i)
        EC_CHECK(std::fabs(got[i] - want[i]) <= 2e-6f, "nbits=%d dim=%lld elem %zu: %.9g vs %.9g", nbits, (long long)dim, i,
                 got[i], want[i]);
      // Bit-level definition, independent of the table: bucket bits LSB first, bytes MSB first.
      for (int64_t d = 0; d < dim; ++d) {
        int b = 0;
        for (int i = 0; i < nbits; ++i) {
          const int64_t bit = d * nbits + i;
          b |= ((res[bit / 8] >> (7 - bit % 8)) & 1) << i;
        }
        EC_CHECK(dv::decode_dim(cents.data() + codes[0] * dim, table.data(), res.data(), d, nbits) ==
                     cents[codes[0] * dim + d] + weights[b],
                 "nbits=%d dim %lld: bucket %d", nbits, (long long)d, b);
      }
    }
  EC_CHECK(dv::clamp_code(-3, 10) == 0 && dv::clamp_code(10, 10) == 9 && dv::clamp_code(4, 10) == 4, "clamp_code");
}

// ---- centroid search ---------------------------------------------------------------------------------------
EC_TEST(device_harness_centroid_search_matches_scalar) {
  std::mt19937_64 rng(31);
  const KernelPath& scalar = path_by_name("scalar");
  for (int64_t dim : {7, 48, 64}) {
    const int64_t m = 70, K = 333;
    std::vector<float> rows = ectest::awkward_values(rng, static_cast<size_t>(m * dim));
    std::vector<float> cents = ectest::awkward_values(rng, static_cast<size_t>(K * dim));
    std::copy_n(cents.begin() + 3 * dim, dim, cents.begin() + 9 * dim);  // a tie: the lower id wins
    for (int64_t k : {1, 5, 32}) {
      // search_simt: 64-row blocks x splits of 32-centroid tiles, per-row lists, then merge_splits.
      const int64_t ct = 32, tiles = (K + ct - 1) / ct, splits = 4, per_split = (tiles + splits - 1) / splits * ct;
      std::vector<float> got_s(static_cast<size_t>(m * k));
      std::vector<int32_t> got_i(got_s.size());
      for (int64_t r = 0; r < m; ++r) {
        std::vector<float> ms;
        std::vector<int32_t> mi;
        for (int64_t sp = 0; sp * per_split < K; ++sp) {
          std::vector<float> ls(static_cast<size_t>(k));
          std::vector<int32_t> li(ls.size());
          int cnt = 0;
          for (int64_t c0 = sp * per_split; c0 < std::min(K, (sp + 1) * per_split); c0 += ct)
            for (int64_t j = c0; j < std::min({K, c0 + ct, (sp + 1) * per_split}); ++j) {
              float dot = 0;
              for (int64_t kk = 0; kk < dim; ++kk) dot += rows[r * dim + kk] * cents[j * dim + kk];
              cnt = dv::topk_insert<int32_t>(ls.data(), li.data(), cnt, static_cast<int>(k), dot, static_cast<int32_t>(j));
            }
          for (int64_t j = cnt; j < k; ++j) ls[j] = dv::pad_score(), li[j] = INT32_MAX;
          std::vector<float> os(ls.size());
          std::vector<int32_t> oi(ls.size());
          const int n = dv::topk_merge<int32_t>(ms.data(), mi.data(), static_cast<int>(ms.size()), ls.data(), li.data(),
                                                static_cast<int>(k), os.data(), oi.data(), static_cast<int>(k));
          ms.assign(os.begin(), os.begin() + n);
          mi.assign(oi.begin(), oi.begin() + n);
        }
        std::copy_n(ms.begin(), k, got_s.begin() + r * k);
        std::copy_n(mi.begin(), k, got_i.begin() + r * k);
      }
      std::vector<float> want_s(got_s.size());
      std::vector<int32_t> want_i(got_i.size());
      centroid_topk(scalar, Matrix{rows.data(), DType::f32, m, dim}, Matrix{cents.data(), DType::f32, K, dim}, k,
                    want_s.data(), want_i.data(), 1);
      // The emulated dots may be contracted to FMA by the host compiler (aarch64 GCC does), the scalar
      // reference never is: scores agree to rounding, ids exactly unless two scores are that close.
      for (size_t i = 0; i < got_i.size(); ++i) {
        const float tol = 1e-5f * (1.0f + std::fabs(want_s[i]));
        EC_CHECK(std::fabs(got_s[i] - want_s[i]) <= tol, "dim=%lld k=%lld entry %zu: score %.9g want %.9g", (long long)dim,
                 (long long)k, i, got_s[i], want_s[i]);
        const bool near_tie = (i % k + 1 < size_t(k) && std::fabs(want_s[i] - want_s[i + 1]) <= tol) ||
                              (i % k > 0 && std::fabs(want_s[i] - want_s[i - 1]) <= tol);
        EC_CHECK(got_i[i] == want_i[i] || near_tie, "dim=%lld k=%lld entry %zu: id %d want %d", (long long)dim, (long long)k,
                 i, got_i[i], want_i[i]);
      }
    }
  }
}
