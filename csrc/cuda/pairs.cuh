// The (query, document) pair pipeline of maxsim.cu, reused by codec.cu for compressed scoring: work
// items, row-maxima keys, scores. Only the row-max kernel differs between the two.
#pragma once
#include <functional>

#include "edgecolbert/device/maxsim_tile.hpp"
#include "launch.cuh"

namespace edgecolbert::cuda {

constexpr int kPairWarps = 4;  // warps per block of every row-max kernel

// Launches the row-max kernel for one query group: fold max_key(row max) of every (slice, item) of w
// into rowmax[pair * lq + row] (zeroed, item_off filled).
using RowmaxLaunch = std::function<void(const device::MaxSimWork& w, const Queries& q, uint32_t* rowmax)>;

// Scores of every pair of `all` into out [nq, pairs_per_query]; queries in groups that bound the keys.
void run_pairs(const Launch& l, const device::MaxSimWork& all, const Queries& q, float* out, const RowmaxLaunch& rowmax);

}  // namespace edgecolbert::cuda
