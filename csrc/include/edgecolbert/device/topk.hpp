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

}  // namespace edgecolbert::device
