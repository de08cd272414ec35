// The sparse kernel table and the dense/sparse selection (bconv2d_select.h).
#include "bconv2d_kernels.h"
#include "bconv2d_select.h"

namespace sbnn {
namespace {

#define SBNN_KERNEL_ADDRESS(id) &kBConv2DKernel_##id,
const BConv2DKernel* const kSparseKernels[] = {
    SBNN_SPARSE_BCONV2D_KERNELS(SBNN_KERNEL_ADDRESS) nullptr};
#undef SBNN_KERNEL_ADDRESS

}  // namespace

const BConv2DKernel* const* all_sparse_bconv2d_kernels() { return kSparseKernels; }

}  // namespace sbnn
