// CPU feature detection: cpuid + xgetbv on x86-64, getauxval(AT_HWCAP) on aarch64.
#include "cpu_features.h"

#include <cstdlib>
#include <cstring>

#if defined(__x86_64__) || defined(_M_X64)
#include <cpuid.h>
#define SBNN_X86_64 1
#endif

#if defined(__aarch64__) && defined(__linux__)
#include <sys/auxv.h>
#ifndef HWCAP_ASIMD
#define HWCAP_ASIMD (1 << 1)
#endif
#endif

namespace sbnn {
namespace {

bool isa_disabled(const char* name) {
  const char* env = std::getenv("SBNN_DISABLE_ISA");
  if (env == nullptr) return false;
  const size_t n = std::strlen(name);
  for (const char* p = env; *p;) {
    const char* end = std::strchr(p, ',');
    const size_t len = end ? static_cast<size_t>(end - p) : std::strlen(p);
    if (len == n && std::strncmp(p, name, n) == 0) return true;
    if (!end) break;
    p = end + 1;
  }
  return false;
}

#ifdef SBNN_X86_64
unsigned long long read_xcr0() {
  unsigned int lo = 0, hi = 0;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (static_cast<unsigned long long>(hi) << 32) | lo;
}
#endif

CpuFeatures detect() {
  CpuFeatures f;
#ifdef SBNN_X86_64
  unsigned int eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return f;
  f.x86_popcnt = (ecx >> 23) & 1;
  const bool osxsave = (ecx >> 27) & 1;
  const bool avx = (ecx >> 28) & 1;
  unsigned long long xcr0 = osxsave ? read_xcr0() : 0;
  const bool ymm_state = (xcr0 & 0x6) == 0x6;            // SSE + AVX state
  const bool zmm_state = (xcr0 & 0xe6) == 0xe6;          // + opmask, ZMM_Hi256, Hi16_ZMM
  unsigned int max_leaf = __get_cpuid_max(0, nullptr);
  if (max_leaf >= 7) {
    __cpuid_count(7, 0, eax, ebx, ecx, edx);
    const bool avx2 = (ebx >> 5) & 1;
    const bool avx512f = (ebx >> 16) & 1;
    const bool avx512bw = (ebx >> 30) & 1;
    const bool avx512vl = (ebx >> 31) & 1;
    const bool vpopcntdq = (ecx >> 14) & 1;
    const bool vbmi = (ecx >> 1) & 1;
    const bool gfni = (ecx >> 8) & 1;
    const bool vnni = (ecx >> 11) & 1;
    f.x86_avx2 = avx && avx2 && ymm_state && f.x86_popcnt;
    f.x86_avx512bw = f.x86_avx2 && avx512f && avx512bw && avx512vl && zmm_state;
    f.x86_avx512_vpopcnt = f.x86_avx512bw && vpopcntdq;
    f.x86_avx512_vbmi_vnni_gfni = f.x86_avx512_vpopcnt && vbmi && vnni && gfni;
  }
  if (isa_disabled("popcnt")) f.x86_popcnt = false;
  if (isa_disabled("avx2") || !f.x86_popcnt) f.x86_avx2 = false;
  if (isa_disabled("avx512") || !f.x86_avx2) f.x86_avx512bw = false;
  if (isa_disabled("avx512vpopcnt") || !f.x86_avx512bw) f.x86_avx512_vpopcnt = false;
  if (isa_disabled("avx512icl") || !f.x86_avx512_vpopcnt) f.x86_avx512_vbmi_vnni_gfni = false;
#endif
#if defined(__aarch64__)
#if defined(__linux__)
  f.arm_neon = (getauxval(AT_HWCAP) & HWCAP_ASIMD) != 0;
#else
  f.arm_neon = true;  // Advanced SIMD is mandatory in AArch64
#endif
  if (isa_disabled("neon")) f.arm_neon = false;
#endif
  return f;
}

}  // namespace

const CpuFeatures& cpu_features() {
  static const CpuFeatures features = detect();
  return features;
}

}  // namespace sbnn
