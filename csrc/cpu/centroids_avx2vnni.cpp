// int8 centroid scores with AVX-VNNI (the VEX-encoded vpdpbusd ymm of Alder Lake and later, Zen 5):
// the avx2_vnni variant, for the CPUs with an int8 dot product but no AVX-512. The kernel is
// centroids_i8_vnni.hpp's on 256-bit registers; the tests run the same source on AVX512_VNNI hosts
// through its EVEX twin (centroids_avx512vnni.cpp), and this build where the CPU has AVX-VNNI.
#include "centroids_i8_vnni.hpp"

namespace edgecolbert {
namespace {

struct DpbusdVex {
  static __m256i dpbusd(__m256i acc, __m256i u8, __m256i s8) { return _mm256_dpbusd_avx_epi32(acc, u8, s8); }
};

}  // namespace

const CentroidI8Ops centroid_i8_ops_avx2_vnni{true, CentroidScoresI8Vnni<VnniYmm<DpbusdVex>>::block_scores};

}  // namespace edgecolbert
