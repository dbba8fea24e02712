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
}
