// sbnn_keras native core: CPU feature detection, read once per process.
#pragma once

namespace sbnn {

struct CpuFeatures {
  bool x86_popcnt = false;
  bool x86_avx2 = false;          // AVX2 + OS support for YMM state
  bool x86_avx512bw = false;      // AVX-512 F/BW/VL + OS support for ZMM state
  bool x86_avx512_vpopcnt = false;  // AVX-512 F/BW/VL/VPOPCNTDQ + OS support for ZMM state
  // AVX-512 F/BW/VL/VPOPCNTDQ + VBMI + VNNI + GFNI (Ice Lake, Zen 4 and later): the
  // sparse bit-plane kernel's byte permutes, bit-matrix transposes and int16 dot products.
  bool x86_avx512_vbmi_vnni_gfni = false;
  bool arm_neon = false;          // aarch64 Advanced SIMD (always present on aarch64 Linux)
};

// Detected on first call (thread-safe), cached afterwards. The environment variable
// SBNN_DISABLE_ISA ("avx512icl" (VBMI/VNNI/GFNI), "avx512vpopcnt", "avx512" (all AVX-512),
// "avx2", "popcnt", "neon",
// comma separated) masks features,
// so the fallback paths can be exercised on a machine that has everything.
const CpuFeatures& cpu_features();

}  // namespace sbnn
