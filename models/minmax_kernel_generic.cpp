// The min/max kernels for baseline x86-64, and the run-time choice between the variants.
#define ATTNSCOPE_KERNEL_NS generic
#include "models/minmax_kernel.inc"

#include "core/core.h"

namespace attnscope::models::kernel {
namespace {
bool use_avx2() { return cpu_has_avx2_fma(); }
}  // namespace

const char* variant() { return use_avx2() ? "avx2" : "generic"; }

void block_forward(Dims d, const float* ES, const float* S, const float* L, const float* B0,
                   const int64_t* tok, const int64_t* y, int64_t n, float* logits, float* probs,
                   float* g, double* loss, int64_t* correct, double* head_abs) {
  (use_avx2() ? avx2::block_forward : generic::block_forward)(d, ES, S, L, B0, tok, y, n, logits,
                                                               probs, g, loss, correct, head_abs);
}

void block_backward(Dims d, const float* L, const int64_t* tok, int64_t n, const float* g,
                    const float* probs, float* gS, float* gL, float* gB0) {
  (use_avx2() ? avx2::block_backward : generic::block_backward)(d, L, tok, n, g, probs, gS, gL, gB0);
}

void attention_probs(Dims d, const float* s, int64_t R, const int32_t* slot, float scale, const int64_t* tok,
                     int64_t n, float* out) {
  (use_avx2() ? avx2::attention_probs : generic::attention_probs)(d, s, R, slot, scale, tok, n, out);
}

}  // namespace attnscope::models::kernel
