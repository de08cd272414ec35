// sbnn_keras native core: CPU feature detection, read once per process.
#pragma once

namespace sbnn {

struct CpuFeatures {
  bool x86_popcnt = false;
  bool x86_avx2 = false;          // AVX2 + OS support for YMM state
  bool x86_avx512bw = false;      // AVX-512 F/BW/VL + OS support for ZMM state
  bool x86_avx512_vpopcnt = false;  // AVX-512 F/BW/VL/VPOPCNTDQ + OS support for ZMM state
  bool arm_neon = false;          // aarch64 Advanced SIMD (always present on aarch64 Linux)
};

// Detected on first call (thread-safe), cached afterwards. The environment variable
// SBNN_DISABLE_ISA ("avx512vpopcnt", "avx512" (all AVX-512), "avx2", "popcnt", "neon",
// comma separated) masks features,
// so the fallback paths can be exercised on a machine that has everything.
const CpuFeatures& cpu_features();

}  // namespace sbnn
