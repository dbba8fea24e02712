// The order of every native top-k (MaxSim top-k, centroid top-k, the search's final top k): score
// descending, NaN after every number (-inf included), ties to the lower id. A total order over distinct
// ids, so how candidates are split (threads, segments, shards) never changes what is kept.
#pragma once
#include <cmath>

namespace edgecolbert {

template <typename Id>
struct Ranked {
  float score;
  Id id;
};

template <typename Id>
inline bool ranks_before(float sa, Id ia, float sb, Id ib) {
  const bool na = std::isnan(sa), nb = std::isnan(sb);
  if (na != nb) return nb;
  if (!na && sa != sb) return sa > sb;
  return ia < ib;
}

template <typename Id>
inline bool ranks_before(const Ranked<Id>& a, const Ranked<Id>& b) {
  return ranks_before(a.score, a.id, b.score, b.id);
}

}  // namespace edgecolbert
