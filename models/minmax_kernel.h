// The per-example loops of the min/max fused path (see models/minmax_fast.h), compiled for AVX2+FMA
// and for baseline x86-64; the entry points here pick the variant the CPU supports.
#pragma once

#include <cstdint>

namespace attnscope::models::kernel {

struct Dims {
  int64_t H, T, V;  // heads, positions, vocabulary
};

// Examples [0,n) of a block: logits [n,V] (scratch), attention probabilities `probs` [n,H,T],
// summed cross-entropy into *loss, correct argmaxes into *correct, and when g != nullptr
// g = softmax(logits) - onehot(y) [n,V], and when head_abs != nullptr too, each example's
// |dLoss/dxi_h| added to head_abs[h] (head importance, Michel et al. 2019, for a gate xi_h = 1 on
// head h's output; computed while the example's rows of L are in cache).
void block_forward(Dims d, const float* ES, const float* S, const float* L, const float* B0,
                   const int64_t* tok, const int64_t* y, int64_t n, float* logits, float* probs,
                   float* g, double* loss, int64_t* correct, double* head_abs = nullptr);

// Accumulates the gradients w.r.t. the tables S, L, B0 for the block's examples, given g.
void block_backward(Dims d, const float* L, const int64_t* tok, int64_t n, const float* g,
                    const float* probs, float* gS, float* gL, float* gB0);

// Attention probabilities out [n,H,T,T] of examples tok [n,T] from a table of unscaled scores
// s [H, R (query), R (key)] whose row and column of (position t, token v) is slot[t*V + v]: each
// row's softmax of s / scale, bit-identical to dividing the table by scale (as a float tensor
// divides by a scalar) and then a scalar loop with std::exp on glibc (libm_expf in
// minmax_kernel.inc).
void attention_probs(Dims d, const float* s, int64_t R, const int32_t* slot, float scale, const int64_t* tok,
                     int64_t n, float* out);

// "avx2" or "generic": the variant block_forward/backward run.
const char* variant();

#define ATTNSCOPE_KERNEL_DECLARE(ns)                                                            \
  namespace ns {                                                                                \
  void block_forward(Dims d, const float* ES, const float* S, const float* L, const float* B0, \
                     const int64_t* tok, const int64_t* y, int64_t n, float* logits,           \
                     float* probs, float* g, double* loss, int64_t* correct, double* head_abs); \
  void block_backward(Dims d, const float* L, const int64_t* tok, int64_t n, const float* g,   \
                      const float* probs, float* gS, float* gL, float* gB0);                   \
  void attention_probs(Dims d, const float* s, int64_t R, const int32_t* slot, float scale,    \
                       const int64_t* tok, int64_t n, float* out);                             \
  }
ATTNSCOPE_KERNEL_DECLARE(avx2)
ATTNSCOPE_KERNEL_DECLARE(generic)
#undef ATTNSCOPE_KERNEL_DECLARE

}  // namespace attnscope::models::kernel
