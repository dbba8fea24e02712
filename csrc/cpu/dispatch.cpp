// CPU feature detection (CPUID + XGETBV on x86, HWCAP on aarch64) and the variant tables. Which
// variants exist is decided by the build: CMake defines EDGECOLBERT_HAVE_<ISA> for each object
// library it compiled.
#include "edgecolbert/dispatch.hpp"

#include <cstdlib>
#include <mutex>
#include <stdexcept>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif
#if defined(__aarch64__) && defined(__linux__)
#include <sys/auxv.h>
// The kernel's bit numbers (arch/arm64/include/uapi/asm/hwcap.h), for C libraries whose headers predate them.
#ifndef HWCAP_ASIMDHP
#define HWCAP_ASIMDHP (1UL << 10)
#endif
#ifndef HWCAP_ASIMDDP
#define HWCAP_ASIMDDP (1UL << 20)
#endif
#ifndef HWCAP2_I8MM
#define HWCAP2_I8MM (1UL << 13)
#endif
#ifndef HWCAP2_BF16
#define HWCAP2_BF16 (1UL << 14)
#endif
#endif

namespace edgecolbert {

std::vector<std::string> CpuFeatures::names() const {
  std::vector<std::string> out;
  auto add = [&](bool b, const char* n) {
    if (b) out.emplace_back(n);
  };
  add(avx2, "avx2");
  add(fma, "fma");
  add(f16c, "f16c");
  add(avx512f, "avx512f");
  add(avx512bw, "avx512bw");
  add(avx512vl, "avx512vl");
  add(avx512dq, "avx512dq");
  add(avx512bf16, "avx512_bf16");
  add(avx512vnni, "avx512_vnni");
  add(avx_vnni, "avx_vnni");
  add(os_avx, "os_ymm");
  add(os_avx512, "os_zmm");
  add(neon, "neon");
  add(neon_fp16, "asimdhp");
  add(neon_dotprod, "asimddp");
  add(neon_bf16, "bf16");
  add(neon_i8mm, "i8mm");
  return out;
}

namespace {

CpuFeatures detect() {
  CpuFeatures f;
#if defined(__x86_64__) || defined(__i386__)
  unsigned a, b, c, d;
  if (__get_cpuid_max(0, nullptr) < 7) return f;
  __cpuid_count(1, 0, a, b, c, d);
  const bool osxsave = (c >> 27) & 1;
  f.fma = (c >> 12) & 1;
  f.f16c = (c >> 29) & 1;
  const bool avx = (c >> 28) & 1;
  if (osxsave && avx) {
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    f.os_avx = (lo & 0x6) == 0x6;             // XMM and YMM state
    f.os_avx512 = f.os_avx && (lo & 0xe0) == 0xe0;  // opmask, ZMM_Hi256, Hi16_ZMM
  }
  __cpuid_count(7, 0, a, b, c, d);
  f.avx2 = (b >> 5) & 1;
  f.avx512f = (b >> 16) & 1;
  f.avx512dq = (b >> 17) & 1;
  f.avx512bw = (b >> 30) & 1;
  f.avx512vl = (b >> 31) & 1;
  f.avx512vnni = (c >> 11) & 1;
  __cpuid_count(7, 1, a, b, c, d);
  f.avx_vnni = (a >> 4) & 1;
  f.avx512bf16 = (a >> 5) & 1;
#endif
#if defined(__aarch64__)
  f.neon = true;  // Advanced SIMD is mandatory on AArch64
#if defined(__linux__)
  const unsigned long hw = getauxval(AT_HWCAP), hw2 = getauxval(AT_HWCAP2);
  f.neon_fp16 = (hw & HWCAP_ASIMDHP) != 0;
  f.neon_dotprod = (hw & HWCAP_ASIMDDP) != 0;  // SDOT/UDOT
  f.neon_bf16 = (hw2 & HWCAP2_BF16) != 0;      // BFDOT, BFMMLA
  f.neon_i8mm = (hw2 & HWCAP2_I8MM) != 0;      // SMMLA
#endif
#endif
  return f;
}

[[maybe_unused]] bool sup_scalar(const CpuFeatures&) { return true; }
[[maybe_unused]] bool sup_avx2(const CpuFeatures& f) { return f.os_avx && f.avx2 && f.fma && f.f16c; }
// The int8 dot product without AVX-512 (Alder Lake and later client cores, Zen 5 with AVX-512 off).
[[maybe_unused]] bool sup_avx2_vnni(const CpuFeatures& f) { return sup_avx2(f) && f.avx_vnni; }
[[maybe_unused]] bool sup_avx512(const CpuFeatures& f) {
  return sup_avx2(f) && f.os_avx512 && f.avx512f && f.avx512bw && f.avx512vl && f.avx512dq;
}
// AVX-512 with the int8 dot product but without BF16 (Cascade Lake, Ice Lake, Tiger Lake).
[[maybe_unused]] bool sup_avx512_vnni(const CpuFeatures& f) { return sup_avx512(f) && f.avx512vnni; }
// Every CPU with AVX512_BF16 (Cooper Lake, Sapphire Rapids, Zen 4) also has AVX512_VNNI, which this
// variant's int8 centroid scores use.
[[maybe_unused]] bool sup_avx512_bf16(const CpuFeatures& f) { return sup_avx512(f) && f.avx512bf16 && f.avx512vnni; }
[[maybe_unused]] bool sup_neon(const CpuFeatures& f) { return f.neon; }
// The NEON variants add one feature each, in the order the architecture made them mandatory
// (DotProd in Armv8.4, BF16 and I8MM in Armv8.6); a CPU that has a later one without an earlier one
// (none ships: every BF16 or I8MM core has DotProd, and the ones with I8MM have BF16) runs the last
// variant whose features it has in full.
[[maybe_unused]] bool sup_neon_dotprod(const CpuFeatures& f) { return f.neon && f.neon_dotprod; }
[[maybe_unused]] bool sup_neon_bf16(const CpuFeatures& f) { return sup_neon_dotprod(f) && f.neon_bf16; }
[[maybe_unused]] bool sup_neon_i8mm(const CpuFeatures& f) { return sup_neon_bf16(f) && f.neon_i8mm; }

const KernelPath kScalar{"scalar", "scalar", sup_scalar, maxsim_ops_scalar, centroid_ops_scalar, codec_ops_scalar,
                        plaid_ops_scalar, centroid_i8_ops_scalar};
#ifdef EDGECOLBERT_HAVE_AVX2
const KernelPath kAvx2{"avx2", "avx2", sup_avx2, maxsim_ops_avx2, centroid_ops_avx2, codec_ops_avx2, plaid_ops_avx2, centroid_i8_ops_scalar};
#endif
// avx2 with the int8 centroid scores in AVX-VNNI.
#if defined(EDGECOLBERT_HAVE_AVX2) && defined(EDGECOLBERT_HAVE_AVX2VNNI)
#define EC_PATH_AVX2_VNNI
const KernelPath kAvx2Vnni{"avx2_vnni", "avx2", sup_avx2_vnni, maxsim_ops_avx2, centroid_ops_avx2, codec_ops_avx2,
                           plaid_ops_avx2, centroid_i8_ops_avx2_vnni};
#endif
#ifdef EDGECOLBERT_HAVE_AVX512
const KernelPath kAvx512{"avx512", "avx512", sup_avx512, maxsim_ops_avx512, centroid_ops_avx512, codec_ops_avx512,
                         plaid_ops_avx512, centroid_i8_ops_scalar};
#endif
// avx512 with the int8 centroid scores in AVX512_VNNI.
#if defined(EDGECOLBERT_HAVE_AVX512) && defined(EDGECOLBERT_HAVE_AVX512VNNI)
#define EC_PATH_AVX512_VNNI
const KernelPath kAvx512Vnni{"avx512_vnni", "avx512", sup_avx512_vnni, maxsim_ops_avx512, centroid_ops_avx512,
                             codec_ops_avx512, plaid_ops_avx512, centroid_i8_ops_avx512_vnni};
#endif
#if defined(EDGECOLBERT_HAVE_AVX512BF16) && defined(EDGECOLBERT_HAVE_AVX512VNNI)
const KernelPath kAvx512Bf16{"avx512_bf16", "avx512", sup_avx512_bf16, maxsim_ops_avx512_bf16, centroid_ops_avx512,
                              codec_ops_avx512, plaid_ops_avx512, centroid_i8_ops_avx512_vnni};
#endif
#ifdef EDGECOLBERT_HAVE_NEON
const KernelPath kNeon{"neon", "neon", sup_neon, maxsim_ops_neon, centroid_ops_neon, codec_ops_neon, plaid_ops_neon, centroid_i8_ops_scalar};
#endif
#ifdef EDGECOLBERT_HAVE_NEONDOTPROD
const KernelPath kNeonDotprod{"neon_dotprod", "neon", sup_neon_dotprod, maxsim_ops_neon, centroid_ops_neon,
                              codec_ops_neon, plaid_ops_neon, centroid_i8_ops_neon_dotprod};
#endif
// bf16 MaxSim (BFDOT) with the SDOT int8 centroid scores.
#if defined(EDGECOLBERT_HAVE_NEONBF16) && defined(EDGECOLBERT_HAVE_NEONDOTPROD)
#define EC_PATH_NEON_BF16
const KernelPath kNeonBf16{"neon_bf16", "neon", sup_neon_bf16, maxsim_ops_neon_bf16, centroid_ops_neon, codec_ops_neon,
                            plaid_ops_neon, centroid_i8_ops_neon_dotprod};
#endif
// neon_bf16 with the int8 centroid scores in SMMLA.
#if defined(EC_PATH_NEON_BF16) && defined(EDGECOLBERT_HAVE_NEONI8MM)
#define EC_PATH_NEON_I8MM
const KernelPath kNeonI8mm{"neon_i8mm", "neon", sup_neon_i8mm, maxsim_ops_neon_bf16, centroid_ops_neon, codec_ops_neon,
                            plaid_ops_neon, centroid_i8_ops_neon_i8mm};
#endif

std::string join_names(const std::vector<const KernelPath*>& v) {
  std::string s;
  for (auto* p : v) {
    if (!s.empty()) s += ", ";
    s += p->name;
  }
  return s;
}

const KernelPath* best_of_family(const std::string& family) {
  const KernelPath* best = nullptr;
  for (auto* p : available_paths())
    if (family == p->family) best = p;
  return best;
}

}  // namespace

const CpuFeatures& cpu_features() {
  static const CpuFeatures f = detect();
  return f;
}

const std::vector<const KernelPath*>& compiled_paths() {
  static const std::vector<const KernelPath*> v = {
      &kScalar,
#ifdef EDGECOLBERT_HAVE_AVX2
      &kAvx2,
#endif
#ifdef EC_PATH_AVX2_VNNI
      &kAvx2Vnni,
#endif
#ifdef EDGECOLBERT_HAVE_AVX512
      &kAvx512,
#endif
#ifdef EC_PATH_AVX512_VNNI
      &kAvx512Vnni,
#endif
#if defined(EDGECOLBERT_HAVE_AVX512BF16) && defined(EDGECOLBERT_HAVE_AVX512VNNI)
      &kAvx512Bf16,
#endif
#ifdef EDGECOLBERT_HAVE_NEON
      &kNeon,
#endif
#ifdef EDGECOLBERT_HAVE_NEONDOTPROD
      &kNeonDotprod,
#endif
#ifdef EC_PATH_NEON_BF16
      &kNeonBf16,
#endif
#ifdef EC_PATH_NEON_I8MM
      &kNeonI8mm,
#endif
  };
  return v;
}

std::vector<const KernelPath*> available_paths() {
  std::vector<const KernelPath*> out;
  for (auto* p : compiled_paths())
    if (p->supported(cpu_features())) out.push_back(p);
  return out;
}

bool variant_supported(const std::string& variant) {
  for (auto* p : compiled_paths())
    if (variant == p->name) return p->supported(cpu_features());
  return false;
}

const KernelPath& path_by_name(const std::string& name) {
  if (name.empty()) return default_path();
  for (auto* p : compiled_paths()) {
    if (name == p->name || name == p->family) {
      if (name == p->family) {
        if (const KernelPath* best = best_of_family(name)) return *best;
      } else if (p->supported(cpu_features())) {
        return *p;
      }
      throw std::invalid_argument("ISA '" + name + "' is compiled but this CPU cannot run it; available: " +
                                  join_names(available_paths()));
    }
  }
  throw std::invalid_argument("ISA '" + name + "' is not compiled into this build; available: " +
                              join_names(available_paths()));
}

const KernelPath& default_path() {
  // Read once; a bad value is reported on every call rather than silently ignored.
  static const KernelPath* chosen = nullptr;
  static std::string error;
  static std::once_flag once;
  std::call_once(once, [] {
    const char* env = std::getenv("EDGECOLBERT_ISA");
    if (env != nullptr && *env != '\0') {
      try {
        chosen = &path_by_name(env);
      } catch (const std::invalid_argument& e) {
        error = std::string("EDGECOLBERT_ISA: ") + e.what();
      }
    } else {
      chosen = available_paths().back();
    }
  });
  if (chosen == nullptr) throw std::invalid_argument(error);
  return *chosen;
}

}  // namespace edgecolbert
