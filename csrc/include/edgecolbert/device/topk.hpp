// Top-k arithmetic shared by the CUDA kernels (centroid search, MaxSim top-k) and the host harness,
// under the total order of device::better (score descending, NaN last, ties to the lower index):
//  - a sorted bounded list with insertion (per-row streaming selection in centroid search);
//  - the merge of two sorted lists (combining centroid splits);
//  - the compare-exchange schedule of a bitonic sort (block-wide selection in MaxSim top-k).
#pragma once
#include "edgecolbert/device/hd.hpp"

namespace edgecolbert::device {

// Inserts (s, id) into the sorted list (scores, ids) of count entries, capacity cap. Returns the new
// count. The list stays sorted best-first; a candidate no better than a full list's last is dropped.
template <typename I>
EC_HD int topk_insert(float* scores, I* ids, int count, int cap, float s, I id) {
  if (count == cap && !better(s, id, scores[cap - 1], ids[cap - 1])) return count;
  int pos = count < cap ? count : cap - 1;
  while (pos > 0 && better(s, id, scores[pos - 1], ids[pos - 1])) {
    scores[pos] = scores[pos - 1];
    ids[pos] = ids[pos - 1];
    --pos;
  }
  scores[pos] = s;
  ids[pos] = id;
  return count < cap ? count + 1 : count;
}

// Merges sorted lists a (na) and b (nb) into out (the best min(na + nb, cap)); returns its length.
template <typename I>
EC_HD int topk_merge(const float* as, const I* ai, int na, const float* bs, const I* bi, int nb, float* os, I* oi,
                     int cap) {
  int i = 0, j = 0, o = 0;
  while (o < cap && (i < na || j < nb)) {
    const bool take_a = j >= nb || (i < na && better(as[i], ai[i], bs[j], bi[j]));
    if (take_a) {
      os[o] = as[i];
      oi[o] = ai[i];
      ++i;
    } else {
      os[o] = bs[j];
      oi[o] = bi[j];
      ++j;
    }
    ++o;
  }
  return o;
}

// Bitonic sort of n = 2^p elements, best first: for size = 2, 4, ..., n and stride = size/2, ..., 1, every
// element i whose partner i ^ stride is larger compare-exchanges with it; the pair is put in better-first
// order when (i & size) == 0, worse-first otherwise. A kernel runs one (size, stride) step per barrier.
EC_HD bool bitonic_swap(float si, int64_t ii, float sj, int64_t ij, int64_t i, int64_t size) {
  const bool ascending = (i & size) == 0;  // "ascending" in the better-first order
  return ascending ? better(sj, ij, si, ii) : better(si, ii, sj, ij);
}

// Padding entries of a bitonic buffer: worse than every real entry (NaN with the largest index).
EC_HD float pad_score() { return bits_f32(0x7fc00000u); }
constexpr int64_t kPadIndex = 0x7fffffffffffffffLL;

// Workspace of maxsim_topk's selection rounds (maxsim.cu): two ping-pong halves, each holding up to
// `entries` (= nq * first round's output length) float scores followed by as many int64 ids, every region
// starting on a 256-byte boundary. The ids start after the *scores'* aligned size and the half is the sum
// of both aligned sizes: sizing the half as align(entries * 12) (as before) is smaller than
// align(entries * 4) + entries * 8 whenever the score region's padding exceeds the combined one's, and
// then flip 0's ids ran into flip 1's scores. Shared with the host harness, which checks the regions
// never overlap.
struct TopkPingPong {
  size_t ids_offset = 0;  // within a half
  size_t half = 0;        // bytes per half
  size_t bytes = 0;       // the allocation: 2 * half
  EC_HD size_t scores_at(int flip) const { return size_t(flip) * half; }
  EC_HD size_t ids_at(int flip) const { return size_t(flip) * half + ids_offset; }
};
// maxsim_topk's selection rounds (maxsim.cu): each block sorts kTopkChunk (score, id) pairs of a list and keeps
// its k best, so a list of len entries becomes ceil(len / kTopkChunk) * k entries per round, until one chunk.
constexpr int kTopkChunk = 2048;
EC_HD size_t align256(size_t x) { return (x + 255) / 256 * 256; }
EC_HD TopkPingPong topk_ping_pong(size_t entries) {
  TopkPingPong p;
  p.ids_offset = align256(entries * sizeof(float));
  p.half = p.ids_offset + align256(entries * sizeof(int64_t));
  p.bytes = 2 * p.half;
  return p;
}

}  // namespace edgecolbert::device
