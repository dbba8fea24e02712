// The prefetch schedule of the MaxSim tiles (simd::LineStream, simd::tokens_ahead): every line of the
// tokens ahead requested once, in order, within the loops of the tile's row pairs, and none past the
// stream; a window past the end of a document continues into the next one, so that every token of a run
// of documents but the first document's first `ahead` is requested before its tile reads it.
#include <algorithm>
#include <cstdint>
#include <set>
#include <vector>

#include "../cpu/simd.hpp"
#include "test_util.hpp"

using edgecolbert::simd::LineStream;
using edgecolbert::simd::tokens_ahead;

namespace {

constexpr int64_t kAhead = 12;

// The cache lines (addresses / 64) of rows [a, b) of `rows`.
void add_lines(const char* rows, int64_t row_bytes, int64_t a, int64_t b, std::vector<uintptr_t>& out) {
  if (b <= a) return;
  const uintptr_t lo = reinterpret_cast<uintptr_t>(rows + a * row_bytes) / 64;
  const uintptr_t hi = (reinterpret_cast<uintptr_t>(rows + b * row_bytes) + 63) / 64;
  for (uintptr_t l = lo; l < hi; ++l) out.push_back(l);
}

// The lines a stream requests over `pairs` loops of `dim` steps (each loop continuing it with from()).
std::vector<uintptr_t> run_stream(const LineStream& s, int64_t pairs, int64_t dim) {
  std::vector<uintptr_t> got;
  for (int64_t pr = 0; pr < pairs; ++pr) {
    LineStream t = s.from(pr * dim);
    for (int64_t k = 0; k < dim; ++k) {
      const char* p = t.p;
      const int64_t before = t.lines;
      t.at(k);
      if (t.lines != before) got.push_back(reinterpret_cast<uintptr_t>(p) / 64);
    }
  }
  return got;
}

}  // namespace

EC_TEST(line_stream_requests_every_line_once_over_the_row_pairs) {
  alignas(64) static char doc[64 * 4096];
  for (int64_t row_bytes : {96, 192, 256, 512, 200}) {  // dims 24, 48, 64, 128 float32; 100 bf16
    for (int64_t nj : {1, 5, 6, 12}) {
      for (int64_t pairs : {1, 2, 3}) {
        const int64_t dim = row_bytes / 4;
        for (int64_t ntok : {40, 7, 1}) {
          // The next document: none; starting mid-line, 30 rows; on a line, 5 rows; right after this one.
          for (int64_t next_at : {int64_t{-1}, 50 * row_bytes + 8, 60 * row_bytes, ntok * row_bytes}) {
            const char* next_doc = next_at < 0 ? nullptr : doc + next_at;
            const int64_t next_ntok = next_at == 60 * row_bytes ? 5 : 30;
            for (int64_t j0 = 0; j0 < ntok; j0 += nj) {
              const LineStream s = tokens_ahead(doc, row_bytes, j0, ntok, kAhead, nj, pairs * dim, next_doc, next_ntok);
              // The window [first, last): its rows in this document, then the next document's up to row kAhead
              // (from its first row when this is the first tile: the next document's first kAhead rows are
              // requested once, by the tiles of this one whose windows pass its end).
              const int64_t first = j0 + kAhead, last = first + nj;
              std::vector<uintptr_t> want;
              add_lines(doc, row_bytes, first, std::min(last, ntok), want);
              if (next_doc != nullptr)
                add_lines(next_doc, row_bytes, j0 == 0 ? 0 : std::max<int64_t>(first - ntok, 0),
                          std::min({last - ntok, kAhead, next_ntok}), want);
              EC_CHECK(s.lines == static_cast<int64_t>(want.size()), "row_bytes %lld nj %lld ntok %lld j0 %lld: %lld lines, want %zu",
                       (long long)row_bytes, (long long)nj, (long long)ntok, (long long)j0, (long long)s.lines, want.size());
              // All of them in order, unless there are more lines than steps.
              want.resize(std::min<std::size_t>(want.size(), static_cast<std::size_t>(pairs * dim)));
              EC_CHECK(run_stream(s, pairs, dim) == want, "row_bytes %lld nj %lld pairs %lld ntok %lld j0 %lld next %lld",
                       (long long)row_bytes, (long long)nj, (long long)pairs, (long long)ntok, (long long)j0,
                       (long long)next_at);
            }
          }
        }
      }
    }
  }
  // An empty stream stays empty in every loop.
  LineStream e;
  LineStream f = e.from(100);
  for (int64_t k = 0; k < 10; ++k) f.at(k);
  EC_CHECK(f.lines == 0 && f.p == nullptr, "empty stream");
}

// A driver's view: documents scored one after another (contiguous or not, short and long), each in tiles
// of nj; every line of every document is requested before its tile reads it, except the first document's
// first kAhead rows.
EC_TEST(line_stream_prefetches_every_document_of_a_run) {
  alignas(64) static char buf[64 * 8192];
  const int64_t lens[] = {3, 40, 7, 12, 13, 25, 1, 1, 30, 11};
  for (int64_t row_bytes : {96, 192, 512, 200}) {
    for (int64_t nj : {6, 12}) {
      for (bool gaps : {false, true}) {
        std::vector<const char*> docs;
        int64_t at = 0;
        for (int64_t len : lens) {
          docs.push_back(buf + at * row_bytes + (gaps ? 40 : 0));
          at += len + (gaps ? 9 : 0);
        }
        const int64_t dim = row_bytes / 4, n = static_cast<int64_t>(docs.size());
        std::set<uintptr_t> requested;
        bool ok = true;
        for (int64_t d = 0; d < n; ++d) {
          for (int64_t j0 = 0; j0 < lens[d]; j0 += nj) {
            // The lines this tile reads must have been requested already (the first document's first kAhead
            // rows excepted).
            std::vector<uintptr_t> reads;
            const int64_t a = d == 0 ? std::max(j0, kAhead) : j0;
            add_lines(docs[d], row_bytes, a, std::min(j0 + nj, lens[d]), reads);
            for (uintptr_t l : reads) ok &= requested.count(l) == 1;
            const LineStream s = tokens_ahead(docs[d], row_bytes, j0, lens[d], kAhead, nj, dim,
                                              d + 1 < n ? docs[d + 1] : nullptr, d + 1 < n ? lens[d + 1] : 0);
            for (uintptr_t l : run_stream(s, 1, dim)) requested.insert(l);
          }
        }
        EC_CHECK(ok, "row_bytes %lld nj %lld gaps %d: a tile read a line never requested", (long long)row_bytes,
                 (long long)nj, (int)gaps);
      }
    }
  }
}

// The next document is requested unless it follows this one with its first rows within the hardware
// prefetchers' reach.
EC_TEST(next_document_is_requested_beyond_the_hardware_reach_or_after_a_jump) {
  using edgecolbert::simd::kHardwareReach;
  using edgecolbert::simd::next_to_request;
  alignas(64) static char buf[64 * 1024];
  for (int64_t row_bytes : {96, 192, 256, 384, 512}) {
    const bool short_step = kAhead * row_bytes < kHardwareReach;
    const char* follows = buf + 10 * row_bytes;
    EC_CHECK(next_to_request(buf, 10, row_bytes, follows, kAhead) == (short_step ? nullptr : follows),
             "row_bytes %lld, the next document right after", (long long)row_bytes);
    const char* base = buf;
    for (const char* jump : {base + 11 * row_bytes, base + 3 * row_bytes, base})
      EC_CHECK(next_to_request(buf, 10, row_bytes, jump, kAhead) == jump, "row_bytes %lld, a jump", (long long)row_bytes);
    EC_CHECK(next_to_request(buf, 10, row_bytes, nullptr, kAhead) == nullptr, "none");
  }
  EC_CHECK(kAhead * 192 < kHardwareReach && kAhead * 384 >= kHardwareReach, "dims 48 / 96 float32 fall either side");
}
