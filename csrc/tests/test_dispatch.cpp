// Dispatch: which variant this CPU gets, printed so that `make test-arm` can assert which NEON paths
// ran under each emulated CPU model; a forced variant the CPU lacks is a clear error.
#include <stdexcept>
#include <string>

#include "edgecolbert/dispatch.hpp"
#include "test_util.hpp"

using namespace edgecolbert;

EC_TEST(dispatch_chooses_what_the_cpu_has) {
  const CpuFeatures& f = cpu_features();
  std::string feats, avail;
  for (const auto& n : f.names()) feats += " " + n;
  for (const KernelPath* p : available_paths()) avail += " " + std::string(p->name);
  const KernelPath& chosen = *available_paths().back();
  std::printf("  features:%s\n  available:%s\n  variant chosen: %s (fast int8 centroid scores: %s)\n", feats.c_str(),
              avail.c_str(), chosen.name, chosen.centroids_i8.fast ? "yes" : "no");
  for (const KernelPath* p : compiled_paths()) {
    const std::string name = p->name;
    if (p->supported(f)) {  // a family's name (neon, avx512) picks the family's best variant
      if (name != p->family) EC_CHECK(&path_by_name(name) == p, "%s: path_by_name", p->name);
      continue;
    }
    bool threw = false;
    try {
      path_by_name(name);
    } catch (const std::invalid_argument& e) {
      threw = std::string(e.what()).find("cannot run it") != std::string::npos;
    }
    EC_CHECK(threw, "%s: forcing a variant this CPU lacks must fail with a clear error", p->name);
  }
  EC_CHECK(&path_by_name(chosen.family) == &chosen, "family %s does not pick %s", chosen.family, chosen.name);
#if defined(__aarch64__)
  // Each NEON variant's requirement, as HWCAP reports the features (dispatch.cpp).
  EC_CHECK(f.neon, "AArch64 without Advanced SIMD");
  const std::string best = chosen.name;
  if (f.neon_dotprod && f.neon_bf16 && f.neon_i8mm) {
    EC_CHECK(best == "neon_i8mm", "chose %s with dotprod, bf16 and i8mm", best.c_str());
  } else if (f.neon_dotprod && f.neon_bf16) {
    EC_CHECK(best == "neon_bf16", "chose %s with dotprod and bf16", best.c_str());
  } else if (f.neon_dotprod) {
    EC_CHECK(best == "neon_dotprod", "chose %s with dotprod", best.c_str());
  } else {
    EC_CHECK(best == "neon", "chose %s without dotprod", best.c_str());
  }
  EC_CHECK(chosen.centroids_i8.fast == f.neon_dotprod, "fast int8 centroid scores must follow the dot product");
#endif
#if defined(__x86_64__)
  // Every x86 variant with an int8 dot product uses it for the centroid scores (AVX-VNNI in avx2_vnni,
  // AVX512_VNNI in avx512_vnni and avx512_bf16), and the best variant is the one the features allow.
  const std::string best = chosen.name;
  const bool avx512 = f.os_avx512 && f.avx512f && f.avx512bw && f.avx512vl && f.avx512dq && f.avx2 && f.fma;
  if (avx512 && f.avx512bf16 && f.avx512vnni) {
    EC_CHECK(best == "avx512_bf16", "chose %s with AVX512_BF16 and VNNI", best.c_str());
  } else if (avx512 && f.avx512vnni) {
    EC_CHECK(best == "avx512_vnni", "chose %s with AVX512_VNNI", best.c_str());
  } else if (avx512) {
    EC_CHECK(best == "avx512", "chose %s with AVX-512", best.c_str());
  } else if (f.os_avx && f.avx2 && f.fma && f.f16c && f.avx_vnni) {
    EC_CHECK(best == "avx2_vnni", "chose %s with AVX2 and AVX-VNNI", best.c_str());
  }
  for (const KernelPath* p : available_paths()) {
    const std::string n = p->name;
    const bool has_dot = n == "avx2_vnni" || n == "avx512_vnni" || n == "avx512_bf16";
    EC_CHECK(p->centroids_i8.fast == has_dot, "%s: fast int8 centroid scores %d", p->name, p->centroids_i8.fast);
  }
#endif
}
