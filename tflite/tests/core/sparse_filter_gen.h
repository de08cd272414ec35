// Synthetic sparse binary filters for the sparse-kernel tests and benchmarks.
//
// SBNN convention: a weight is +1 ("connection", w01 = 1) with probability 1 - sparsity
// and -1 (alpha) otherwise; in LCE bits a connection is bit 0. Two generators:
//   * Bernoulli: every weight independently.
//   * K0/K1 (the paper's Table 2): each kernel (one output channel, one input channel,
//     all taps) has no connection with probability k0, exactly one (at a random tap)
//     with probability k1, else 2 + Binomial(taps - 2, q) connections at random taps,
//     with q chosen so that the overall connection fraction is 1 - sparsity.
// minority flip: the weights of every other output channel are negated (a converter
// may flip a channel's sign, so that its connections are the minority -1 weights).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

namespace sbnn {
namespace testing {

struct SparseFilterSpec {
  double sparsity = 0.5;   // fraction of alpha (-1) weights
  bool kernel_mode = false;
  double k0 = 0, k1 = 0;   // kernel shares (kernel_mode)
  bool minority_flip = false;
};

// w[(o * taps + t) * cg + c] in {-1, +1}.
inline void generate_sparse_weights(std::vector<int8_t>* w, int out_channels, int taps, int cg,
                                    const SparseFilterSpec& spec, std::mt19937* rng) {
  w->assign(static_cast<size_t>(out_channels) * taps * cg, -1);
  std::uniform_real_distribution<double> uni(0.0, 1.0);
  if (!spec.kernel_mode) {
    std::bernoulli_distribution conn(1.0 - spec.sparsity);
    for (auto& v : *w) v = conn(*rng) ? 1 : -1;
  } else {
    const double other = 1.0 - spec.k0 - spec.k1;
    double q = 0;
    if (taps > 2 && other > 0) {
      const double hbar = ((1.0 - spec.sparsity) * taps - spec.k1) / other;
      q = std::min(1.0, std::max(0.0, (hbar - 2.0) / (taps - 2)));
    }
    std::binomial_distribution<int> extra(std::max(taps - 2, 0), q);
    std::vector<int> perm(static_cast<size_t>(taps));
    for (int o = 0; o < out_channels; ++o)
      for (int c = 0; c < cg; ++c) {
        const double r = uni(*rng);
        int h = 0;
        if (r < spec.k0) {
          h = 0;
        } else if (r < spec.k0 + spec.k1 || taps < 2) {
          h = 1;
        } else {
          h = std::min(taps, 2 + extra(*rng));
        }
        for (int t = 0; t < taps; ++t) perm[t] = t;
        for (int i = 0; i < h; ++i) {  // partial Fisher-Yates: h distinct taps
          std::uniform_int_distribution<int> pick(i, taps - 1);
          std::swap(perm[i], perm[pick(*rng)]);
          (*w)[(static_cast<size_t>(o) * taps + perm[i]) * cg + c] = 1;
        }
      }
  }
  if (spec.minority_flip)
    for (int o = 1; o < out_channels; o += 2)
      for (size_t i = 0; i < static_cast<size_t>(taps) * cg; ++i)
        (*w)[static_cast<size_t>(o) * taps * cg + i] *= -1;
}

// The paper's Table 2 kernel shares (K0, K1) for a sparsity, or (-1, -1) if not listed.
inline bool paper_k0k1(double sparsity, double* k0, double* k1) {
  struct Row {
    double sparsity, k0, k1;
  };
  static const Row kRows[] = {{0.5, 0.056, 0.068}, {0.9, 0.618, 0.155},
                              {0.95, 0.771, 0.118}, {0.99, 0.946, 0.033}};
  for (const Row& r : kRows)
    if (std::abs(r.sparsity - sparsity) < 1e-9) {
      *k0 = r.k0;
      *k1 = r.k1;
      return true;
    }
  return false;
}

}  // namespace testing
}  // namespace sbnn
