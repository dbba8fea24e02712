// The prefetch schedule of the MaxSim tiles (simd::LineStream): every line of the tokens ahead requested
// exactly once, in order, within the loops of the tile's row pairs, and none past the stream.
#include <algorithm>
#include <cstdint>
#include <vector>

#include "../cpu/simd.hpp"
#include "test_util.hpp"

using edgecolbert::simd::LineStream;
using edgecolbert::simd::tokens_ahead;

EC_TEST(line_stream_requests_every_line_once_over_the_row_pairs) {
  alignas(64) static char doc[64 * 4096];
  for (int64_t row_bytes : {96, 192, 256, 512, 200}) {     // dims 24, 48, 64, 128 float32; 100 bf16
    for (int64_t nj : {1, 5, 6, 12, 16}) {
      for (int64_t pairs : {1, 2, 3}) {
        const int64_t dim = row_bytes / 4, ntok = 40;
        for (int64_t j0 = 0; j0 < ntok; j0 += nj) {
          const LineStream s = tokens_ahead(doc, row_bytes, j0, ntok, 12, nj, pairs * dim);
          const int64_t first = j0 + 12;
          const int64_t want_tokens = first >= ntok ? 0 : std::min(nj, ntok - first);
          const int64_t want_lines = (want_tokens * row_bytes + 63) / 64;
          EC_CHECK(s.lines == want_lines, "row_bytes %lld nj %lld j0 %lld: %lld lines, want %lld",
                   (long long)row_bytes, (long long)nj, (long long)j0, (long long)s.lines, (long long)want_lines);
          if (want_lines == 0) continue;
          EC_CHECK(s.p == doc + first * row_bytes, "first line");
          // Each pair's loop continues the stream: run its steps and see where the stream stands.
          const char* next = s.p;
          int64_t requested = 0;
          for (int64_t pr = 0; pr < pairs; ++pr) {
            LineStream t = s.from(pr * dim);
            EC_CHECK(t.p == next, "pair %lld starts at line %lld, want %lld", (long long)pr,
                     (long long)((t.p - s.p) / 64), (long long)((next - s.p) / 64));
            const int64_t before = t.lines;
            for (int64_t k = 0; k < dim; ++k) t.at(k);
            requested += before - t.lines;
            EC_CHECK(t.p == next + 64 * (before - t.lines), "pair %lld: the pointer and the count disagree", (long long)pr);
            next = t.p;
          }
          EC_CHECK(requested == want_lines, "row_bytes %lld nj %lld pairs %lld: %lld of %lld lines requested",
                   (long long)row_bytes, (long long)nj, (long long)pairs, (long long)requested, (long long)want_lines);
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
