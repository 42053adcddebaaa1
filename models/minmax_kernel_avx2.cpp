// The min/max kernels compiled with -mavx2 -mfma (see minmax_kernel.inc).
#define ATTNSCOPE_KERNEL_NS avx2
#include "models/minmax_kernel.inc"
