// sbnn_keras native core: sparse kernels and the per-layer choice between dense and
// sparse binary convolution kernels. Header only, no TFLite includes.
//
// The sparse kernels implement the same BConv2DKernel contract as the dense ones
// (bconv2d.h): the same `dot`, prepare() receives the dense bitpacked OHWI filter and
// builds a sparse execution format. They pay off only for sparse filters, so they are
// not in select_bconv2d_kernel()'s preference list; select_bconv2d() below chooses per
// layer, on the real filter.
#pragma once

#include <cstddef>
#include <cstdint>

#include "bconv2d.h"

namespace sbnn {

// All sparse kernels compiled in (fastest first, the reference last), nullptr-terminated.
const BConv2DKernel* const* all_sparse_bconv2d_kernels();

struct BConv2DSelectOptions {
  // "auto": on x86-64 the fastest of the best dense kernel and the sparse candidates,
  //         timed on the real shape and filter (never slower than dense beyond timing
  //         noise: a sparse kernel must beat dense by `min_gain`); on aarch64 the cheaper
  //         of the dense and the sparse NEON kernels by the cost model below (no timing:
  //         emulated or throttled ARM timings mislead, docs/sparse_kernels.md);
  // "dense": select_bconv2d_kernel(shape, nullptr);
  // "sparse": the first supported sparse kernel (fastest family on this CPU);
  // any other string: a kernel name (dense or sparse) or a dense ISA name, as
  //         select_bconv2d_kernel(shape, force) understands it.
  const char* policy = "auto";
  // Timing budget per layer for "auto", in ms of CPU time (candidates are prepared and
  // run on random input bits of the shape with batch 1). 0: decide by the cost model
  // only (no timing).
  double budget_ms = 10.0;
  // How the caller will split rows into run() calls (0: all rows in one call); timing
  // uses the same split.
  int rows_per_call = 0;
  // Rows per run() call of the dense kernels (0: rows_per_call); the delegate runs them
  // in small (16 KB) chunks and the sparse ones on whole images.
  int dense_rows_per_call = 0;
  // Time each run() call followed by a float output transform of its rows, as the
  // delegate runs them: the transform reads `dot` right after the kernel wrote it, from
  // L1 after a small dense chunk, from L2 after a whole image, and that difference
  // decides layers (docs/sparse_kernels.md, "In the delegate").
  bool time_transform = true;
  // Required relative gain of a sparse kernel over dense (0.05 = 5% faster).
  double min_gain = 0.05;
  // Reuse decisions for the same shape and filter (process-wide, thread-safe cache).
  bool use_cache = true;
};

struct BConv2DCandidate {
  const BConv2DKernel* kernel = nullptr;
  double ms = 0;          // median time per run of the whole shape (all batch*out_h rows),
                          // measured with batch 1 and scaled by batch; 0 when not timed
  double prepare_ms = 0;  // one-time prepare cost (0 when not timed)
  bool measured = false;
};

struct BConv2DSelection {
  const BConv2DKernel* kernel = nullptr;  // the choice
  void* prepared = nullptr;               // kernel->prepare(shape, filter) (may be null for
                                          // kernels without prepare); owned by the
                                          // selection: release_bconv2d_selection()
  double chosen_ms = 0;                   // time of the choice (measured or estimated)
  double dense_ms = 0;                    // time of the best dense kernel
  const char* reason = "";                // "timed", "cached", "model", "forced", "policy"
                                          // ("model" on aarch64: chosen_ms / dense_ms are
                                          // the cost model's cycles at a nominal 2 GHz)
  int num_candidates = 0;
  BConv2DCandidate candidates[8];
  // Filter statistics (for reports): connections = minority weights per channel summed,
  // density = connections / dense weights, K0/K1 = shares of (output, input channel)
  // kernels with no / one connection.
  double density = 0;
  double k0_share = 0, k1_share = 0;
  int64_t connections = 0;
};

// The aarch64 cost model: estimated cycles of one image (batch 1) of the dense NEON
// kernel (bconv2d_dot_4x8__neon) and of the sparse NEON bit-plane kernel
// (bconv2d_sparse_bitplane_128__neon), per stage, as functions of the layer shape and
// the filter's connection counts, fitted to llvm-mca Neoverse-N1 (A76-class) model
// cycles of the kernels' instruction streams (docs/sparse_kernels.md, "NEON cost
// model"). Portable arithmetic: available (and tested) on every target, used by
// select_bconv2d's "auto" on aarch64.
struct NeonCostEstimate {
  double dense = 0;              // dense kernel, cycles
  double sparse = 0;             // sparse kernel, cycles (sum of the stages below)
  double sparse_transpose = 0;   // input transposition + B(p)
  double sparse_count = 0;       // carry-save counting
  double sparse_convert = 0;     // count planes -> count bytes in pixel order
  double sparse_output = 0;      // int32 dot + stores, per-band setup
  bool sparse_vector_path = false;  // false: the kernel would use its portable stages
                                    // (the model then rates it as never cheaper)
};
// connections = sum over output channels of their minority weights; max_conns the
// largest (SparsityStats::conns, ::max_conns).
NeonCostEstimate estimate_neon_bconv2d_cost(const BConv2DShape& shape, int64_t connections,
                                            int max_conns);

// Chooses a kernel for one layer and prepares it. Returns false (and a null kernel)
// when no kernel matches the policy or supports the shape, or prepare fails.
// Thread-safe. Cost: with "auto", up to about budget_ms of CPU time the first time a
// (shape, filter) is seen; cached afterwards.
bool select_bconv2d(const BConv2DShape& shape, const int32_t* filter,
                    const BConv2DSelectOptions& options, BConv2DSelection* selection);

// Releases selection->prepared (with the chosen kernel's release) and clears it.
void release_bconv2d_selection(BConv2DSelection* selection);

}  // namespace sbnn
