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

}  // namespace sbnn
