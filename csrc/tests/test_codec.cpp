// Residual codec on every variant this CPU runs: the bit layout and bucketize rule (against a direct
// float64 statement of colbert-ai's algorithm), decompression against the scalar reference and float64,
// compressed MaxSim against float64 decompress-then-MaxSim; nbits 1, 2, 4, 8 and awkward dims.
#include <algorithm>
#include <cmath>
#include <iterator>

#include "edgecolbert/codec.hpp"
#include "test_util.hpp"

using namespace edgecolbert;

namespace {

struct Codec {
  int64_t K, dim;
  int nbits;
  std::vector<float> centroids, cutoffs, weights, table;
  CodecView view() const { return {centroids.data(), K, dim, nbits, weights.data(), table.data()}; }
};

Codec make_codec(std::mt19937_64& rng, int64_t K, int64_t dim, int nbits) {
  Codec c{K, dim, nbits, {}, {}, {}, {}};
  std::normal_distribution<float> g(0.0f, 1.0f);
  c.centroids.resize(static_cast<std::size_t>(K * dim));
  for (int64_t k = 0; k < K; ++k) {
    double ss = 0;
    for (int64_t d = 0; d < dim; ++d) ss += std::pow(c.centroids[k * dim + d] = g(rng), 2);
    for (int64_t d = 0; d < dim; ++d) c.centroids[k * dim + d] /= static_cast<float>(std::sqrt(ss));
  }
  const int nb = 1 << nbits;
  for (int i = 1; i < nb; ++i) c.cutoffs.push_back(0.3f * (2.0f * i / nb - 1.0f));
  for (int i = 0; i < nb; ++i) c.weights.push_back(0.3f * (2.0f * (i + 0.5f) / nb - 1.0f));
  c.table = make_byte_table(c.weights.data(), nbits);
  return c;
}

// Tokens near centroids, with some residuals exactly on a cutoff.
std::vector<float> make_tokens(std::mt19937_64& rng, const Codec& c, int64_t T) {
  std::normal_distribution<float> g(0.0f, 0.15f);
  std::uniform_int_distribution<int64_t> pick(0, c.K - 1);
  std::vector<float> t(static_cast<std::size_t>(T * c.dim));
  for (int64_t i = 0; i < T; ++i) {
    const int64_t k = pick(rng);
    for (int64_t d = 0; d < c.dim; ++d) t[i * c.dim + d] = c.centroids[k * c.dim + d] + g(rng);
  }
  return t;
}

// float64 decompression of one token straight from the published algorithm.
void ref_decode(const Codec& c, int32_t code, const uint8_t* bytes, std::vector<double>& x) {
  x.assign(static_cast<std::size_t>(c.dim), 0.0);
  double ss = 0;
  for (int64_t d = 0; d < c.dim; ++d) {
    int b = 0;
    for (int i = 0; i < c.nbits; ++i) {
      const int64_t bit = d * c.nbits + i;
      b |= ((bytes[bit / 8] >> (7 - bit % 8)) & 1) << i;
    }
    x[d] = double(c.centroids[code * c.dim + d]) + c.weights[b];
    ss += x[d] * x[d];
  }
  const double den = std::max(std::sqrt(ss), 1e-12);
  for (auto& v : x) v /= den;
}

}  // namespace

EC_TEST(codec_layout_decompress_and_compressed_maxsim_every_variant) {
  std::mt19937_64 rng(77);
  const KernelPath& scalar = path_by_name("scalar");
  const int nbits_list[] = {1, 2, 4, 8};
  const int64_t dims1[] = {8, 16, 48, 64, 128, 136};
  const int64_t dims2[] = {4, 12, 32, 48, 52, 96, 128};
  const int64_t dims4[] = {2, 6, 32, 48, 130};
  const int64_t dims8[] = {1, 7, 33, 48, 64, 129};
  for (const KernelPath* p : available_paths()) {
    int cases = 0;
    for (int nbits : nbits_list) {
      const int64_t* dims = nbits == 1 ? dims1 : nbits == 2 ? dims2 : nbits == 4 ? dims4 : dims8;
      const int nd = static_cast<int>(nbits == 1   ? std::size(dims1)
                                      : nbits == 2 ? std::size(dims2)
                                      : nbits == 4 ? std::size(dims4)
                                                   : std::size(dims8));
      for (int di = 0; di < nd; ++di) {
        const int64_t dim = dims[di], K = 1 + (dim * 7 + nbits) % 40, T = 150;
        Codec c = make_codec(rng, K, dim, nbits);
        std::vector<float> tok = make_tokens(rng, c, T);
        const int64_t w = dim * nbits / 8;
        // Token 0 sits exactly on a cutoff in dimension 0 (relative to centroid 0 and its own code).
        std::vector<int32_t> codes(T, -1);
        std::vector<uint8_t> res(static_cast<std::size_t>(T * w), 0xAA);
        compress(*p, c.view(), c.cutoffs.data(), Matrix{tok.data(), DType::f32, T, dim}, codes.data(), res.data(), 2);
        // Layout and bucketize: recompute every bucket in float (the same residual arithmetic) from the
        // published rule, and compare with the bits.
        for (int64_t i = 0; i < T; ++i) {
          double best = -INFINITY;
          int32_t arg = 0;
          for (int32_t k = 0; k < K; ++k) {
            double s = 0;
            for (int64_t d = 0; d < dim; ++d) s += double(tok[i * dim + d]) * c.centroids[k * dim + d];
            if (s > best + 1e-5) best = s, arg = k;
          }
          double sc = 0;
          for (int64_t d = 0; d < dim; ++d) sc += double(tok[i * dim + d]) * c.centroids[codes[i] * dim + d];
          EC_CHECK(sc >= best - 1e-5, "%s: code %d is not the nearest (%d)", p->name, codes[i], arg);
          for (int64_t d = 0; d < dim; ++d) {
            const float r = tok[i * dim + d] - c.centroids[codes[i] * dim + d];
            int want = 0;
            while (want < (1 << nbits) - 1 && c.cutoffs[want] < r) ++want;
            int got = 0;
            for (int b = 0; b < nbits; ++b) {
              const int64_t bit = d * nbits + b;
              got |= ((res[i * w + bit / 8] >> (7 - bit % 8)) & 1) << b;
            }
            EC_CHECK(got == want, "%s nbits=%d dim=%lld: bucket %d vs %d", p->name, nbits, (long long)dim, got, want);
          }
        }
        // Decompression against float64 and the scalar reference, float32 and float16 out.
        std::vector<float> out(static_cast<std::size_t>(T * dim), NAN), want(out.size(), NAN);
        std::vector<uint16_t> out16(out.size(), 0x7e00);
        decompress(*p, c.view(), codes.data(), res.data(), T, out.data(), DType::f32, 3);
        decompress(*p, c.view(), codes.data(), res.data(), T, out16.data(), DType::f16, 1);
        decompress(scalar, c.view(), codes.data(), res.data(), T, want.data(), DType::f32, 1);
        std::vector<double> x;
        std::vector<std::vector<double>> dec(static_cast<std::size_t>(T));
        for (int64_t i = 0; i < T; ++i) {
          ref_decode(c, codes[i], res.data() + i * w, x);
          dec[i] = x;
          for (int64_t d = 0; d < dim; ++d) {
            const float g = out[i * dim + d];
            EC_CHECK(std::fabs(g - x[d]) <= 1e-6, "%s nbits=%d dim=%lld: %.9g vs %.9g", p->name, nbits, (long long)dim, g,
                     x[d]);
            EC_CHECK(std::fabs(g - want[i * dim + d]) <= 5e-7, "%s vs scalar", p->name);
            EC_CHECK(std::fabs(f16_to_f32(out16[i * dim + d]) - x[d]) <= 1e-3 * std::fabs(x[d]) + 1e-7, "%s f16", p->name);
          }
        }
        // Per-token norms ||c + r|| against float64.
        std::vector<float> nrm(static_cast<std::size_t>(T), NAN);
        token_norms(*p, c.view(), codes.data(), res.data(), T, nrm.data(), 2);
        for (int64_t i = 0; i < T; ++i) {
          double ss = 0;
          for (int64_t d = 0; d < dim; ++d) {
            int b = 0;
            for (int k = 0; k < nbits; ++k) {
              const int64_t bit = d * nbits + k;
              b |= ((res[i * w + bit / 8] >> (7 - bit % 8)) & 1) << k;
            }
            const double v = double(c.centroids[codes[i] * dim + d]) + c.weights[b];
            ss += v * v;
          }
          EC_CHECK(std::fabs(nrm[i] - std::sqrt(ss)) <= 2e-6 * std::sqrt(ss) + 1e-7, "%s nbits=%d dim=%lld: norm %.9g vs %.9g",
                   p->name, nbits, (long long)dim, nrm[i], std::sqrt(ss));
        }
        // Compressed MaxSim: documents over the compressed tokens, some empty; a masked query. Both
        // kernels where the path has tables (the environment variable overrides the measured choice).
        std::vector<int64_t> offsets = {0, 0, 1, 40, 40, 97, 150};
        const int64_t n = 6;
        for (const char* kernel : {"decode", "lut"})
        for (int64_t lq : {int64_t(1), int64_t(33), int64_t(7)}) {
          setenv("EDGECOLBERT_COMPRESSED_KERNEL", kernel, 1);
          const int64_t nq = 2;
          std::vector<float> qv = ectest::awkward_values(rng, static_cast<std::size_t>(nq * lq * dim));
          std::vector<uint8_t> mask(static_cast<std::size_t>(nq * lq), 1);
          if (lq > 1) mask[3] = mask[lq + 1] = 0;
          QueryBatch qb{qv.data(), DType::f32, nq, lq, dim, lq > 1 ? mask.data() : nullptr};
          CompressedDocs cd{codes.data(), res.data(), offsets.data(), n};
          std::vector<float> s(static_cast<std::size_t>(nq * n), NAN);
          maxsim_compressed(*p, qb, c.view(), cd, nullptr, 0, s.data(), 3);
          std::vector<int64_t> cand = {5, 0, 2, 2, 4, 5};
          std::vector<float> sc(6, NAN);
          maxsim_compressed(*p, qb, c.view(), cd, cand.data(), 3, sc.data(), 1);
          for (int64_t qi = 0; qi < nq; ++qi)
            for (int64_t dd = 0; dd < n; ++dd) {
              double total = 0, mag = 0;
              if (offsets[dd + 1] > offsets[dd])
                for (int64_t r = 0; r < lq; ++r) {
                  if (lq > 1 && !mask[qi * lq + r]) continue;
                  double best = -INFINITY, babs = 0;
                  for (int64_t t = offsets[dd]; t < offsets[dd + 1]; ++t) {
                    double dot = 0, ad = 0;
                    for (int64_t k = 0; k < dim; ++k) {
                      dot += double(qv[(qi * lq + r) * dim + k]) * dec[t][k];
                      ad += std::fabs(double(qv[(qi * lq + r) * dim + k]) * dec[t][k]);
                    }
                    best = std::max(best, dot);
                    babs = std::max(babs, ad);
                  }
                  total += best;
                  mag += babs;
                }
              const float g = s[qi * n + dd];
              EC_CHECK(std::fabs(g - total) <= 2e-5 * (mag + 1e-30) + 1e-6, "%s nbits=%d dim=%lld lq=%lld: %.9g vs %.9g",
                       p->name, nbits, (long long)dim, (long long)lq, g, total);
            }
          for (int64_t qi = 0; qi < nq; ++qi)
            for (int64_t j = 0; j < 3; ++j)
              EC_CHECK(sc[qi * 3 + j] == s[qi * n + cand[qi * 3 + j]], "%s: candidate score differs", p->name);
          // With stored norms from the same path: the same norms, so the same scores.
          std::vector<float> sn(static_cast<std::size_t>(nq * n), NAN);
          maxsim_compressed(*p, qb, c.view(), cd, nullptr, 0, sn.data(), 2, nrm.data());
          for (std::size_t i = 0; i < sn.size(); ++i)
            EC_CHECK(sn[i] == s[i], "%s nbits=%d dim=%lld: score with norms %.9g vs %.9g", p->name, nbits, (long long)dim,
                     sn[i], s[i]);
          unsetenv("EDGECOLBERT_COMPRESSED_KERNEL");
        }
        ++cases;
      }
    }
    std::printf("  tested %s: %d codec cases\n", p->name, cases);
  }
}

EC_TEST(codec_bucketize_equal_to_cutoff_goes_low) {
  // One centroid at the origin, dim 4, nbits 2, cutoffs {-0.5, 0, 0.5}: values equal to a cutoff
  // take the lower bucket (torch.bucketize, right=False).
  Codec c{1, 4, 2, {0, 0, 0, 0}, {-0.5f, 0.0f, 0.5f}, {-0.75f, -0.25f, 0.25f, 0.75f}, {}};
  c.table = make_byte_table(c.weights.data(), 2);
  const float tok[4] = {-0.5f, 0.0f, 0.5f, 0.7f};
  int32_t code = -1;
  uint8_t byte = 0;
  compress(path_by_name("scalar"), c.view(), c.cutoffs.data(), Matrix{tok, DType::f32, 1, 4}, &code, &byte, 1);
  // buckets 0, 1, 2, 3 -> bits (LSB first) 00 10 01 11 -> 0b00100111
  EC_CHECK(code == 0 && byte == 0x27, "byte 0x%02x", byte);
}

// The table kernel (CodecLutOps) against the decoding kernel and float64 on the shapes it takes: long
// documents (several 256-token chunks), 1 to 3 blocks of 16 query rows, candidates that use fewer than K
// tokens (qc rows by slot) against the full call (all K rows), and a codec whose norms overflow, which
// falls back to the decoding kernel.
EC_TEST(codec_table_kernel_matches_decoding_kernel) {
  std::mt19937_64 rng(4242);
  int cases = 0;
  for (const KernelPath* p : available_paths()) {
    if (p->codec.lut == nullptr) continue;
    for (int nbits : {1, 2}) {
      const int64_t dims1[] = {8, 24, 48, 64, 128}, dims2[] = {4, 12, 48, 52, 64};
      for (int64_t dim : nbits == 1 ? dims1 : dims2) {
        if (p->codec.lut->lut_floats(1, dim, nbits) == 0) continue;
        const int64_t K = 29, T = 900, w = dim * nbits / 8;
        Codec c = make_codec(rng, K, dim, nbits);
        std::vector<float> tok = make_tokens(rng, c, T);
        std::vector<int32_t> codes(T);
        std::vector<uint8_t> res(static_cast<std::size_t>(T * w));
        compress(*p, c.view(), c.cutoffs.data(), Matrix{tok.data(), DType::f32, T, dim}, codes.data(), res.data(), 2);
        std::vector<int64_t> offsets = {0, 1, 17, 300, 300, 813, 900};
        const int64_t n = 6;
        CompressedDocs cd{codes.data(), res.data(), offsets.data(), n};
        for (int64_t lq : {int64_t(1), int64_t(16), int64_t(40)}) {
          const int64_t nq = 2;
          std::vector<float> qv = ectest::awkward_values(rng, static_cast<std::size_t>(nq * lq * dim));
          QueryBatch qb{qv.data(), DType::f32, nq, lq, dim, nullptr};
          std::vector<float> s_dec(static_cast<std::size_t>(nq * n)), s_lut(s_dec.size()), s_cand(4);
          setenv("EDGECOLBERT_COMPRESSED_KERNEL", "decode", 1);
          maxsim_compressed(*p, qb, c.view(), cd, nullptr, 0, s_dec.data(), 2);
          setenv("EDGECOLBERT_COMPRESSED_KERNEL", "lut", 1);
          maxsim_compressed(*p, qb, c.view(), cd, nullptr, 0, s_lut.data(), 2);
          std::vector<int64_t> cand = {1, 0, 2, 1};  // 17 and 1 tokens: fewer than K, so qc rows by slot
          maxsim_compressed(*p, qb, c.view(), cd, cand.data(), 2, s_cand.data(), 1);
          std::vector<double> x;
          for (int64_t qi = 0; qi < nq; ++qi)
            for (int64_t dd = 0; dd < n; ++dd) {
              double total = 0, mag = 0;
              if (offsets[dd + 1] > offsets[dd])
                for (int64_t r = 0; r < lq; ++r) {
                  double best = -INFINITY, babs = 0;
                  for (int64_t t = offsets[dd]; t < offsets[dd + 1]; ++t) {
                    ref_decode(c, codes[t], res.data() + t * w, x);
                    double dot = 0, ad = 0;
                    for (int64_t k = 0; k < dim; ++k) {
                      dot += double(qv[(qi * lq + r) * dim + k]) * x[k];
                      ad += std::fabs(double(qv[(qi * lq + r) * dim + k]) * x[k]);
                    }
                    best = std::max(best, dot);
                    babs = std::max(babs, ad);
                  }
                  total += best;
                  mag += babs;
                }
              const float g = s_lut[qi * n + dd], h = s_dec[qi * n + dd];
              EC_CHECK(std::fabs(g - total) <= 2e-5 * (mag + 1e-30) + 1e-6,
                       "%s nbits=%d dim=%lld lq=%lld doc %lld: tables %.9g vs float64 %.9g", p->name, nbits,
                       (long long)dim, (long long)lq, (long long)dd, g, total);
              EC_CHECK(std::fabs(g - h) <= 2e-5 * (mag + 1e-30) + 1e-6, "%s: tables %.9g vs decoding %.9g", p->name, g,
                       h);
            }
          for (int64_t qi = 0; qi < nq; ++qi)
            for (int64_t j = 0; j < 2; ++j)
              EC_CHECK(s_cand[qi * 2 + j] == s_lut[qi * n + cand[qi * 2 + j]],
                       "%s nbits=%d dim=%lld: candidate score by slot %.9g vs all rows %.9g", p->name, nbits,
                       (long long)dim, s_cand[qi * 2 + j], s_lut[qi * n + cand[qi * 2 + j]]);
          ++cases;
        }
        // A bucket weight of 1e30 overflows every norm that uses it: the decoding kernel's definition.
        Codec big = c;
        big.weights.back() = 1e30f;
        big.table = make_byte_table(big.weights.data(), nbits);
        std::vector<float> q1 = ectest::awkward_values(rng, static_cast<std::size_t>(3 * dim));
        QueryBatch qb1{q1.data(), DType::f32, 1, 3, dim, nullptr};
        std::vector<float> b_dec(static_cast<std::size_t>(n)), b_lut(b_dec.size());
        setenv("EDGECOLBERT_COMPRESSED_KERNEL", "decode", 1);
        maxsim_compressed(*p, qb1, big.view(), cd, nullptr, 0, b_dec.data(), 1);
        setenv("EDGECOLBERT_COMPRESSED_KERNEL", "lut", 1);
        maxsim_compressed(*p, qb1, big.view(), cd, nullptr, 0, b_lut.data(), 1);
        for (int64_t dd = 0; dd < n; ++dd)
          EC_CHECK(std::fabs(b_lut[dd] - b_dec[dd]) <= 1e-5 * (std::fabs(b_dec[dd]) + 1.0f) ||
                       (std::isnan(b_lut[dd]) && std::isnan(b_dec[dd])),
                   "%s nbits=%d dim=%lld: overflow doc %lld %.9g vs %.9g", p->name, nbits, (long long)dim,
                   (long long)dd, b_lut[dd], b_dec[dd]);
        unsetenv("EDGECOLBERT_COMPRESSED_KERNEL");
      }
    }
  }
  std::printf("  table kernel: %d cases\n", cases);
}
