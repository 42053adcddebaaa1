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
// g = softmax(logits) - onehot(y) [n,V].
void block_forward(Dims d, const float* ES, const float* S, const float* L, const float* B0,
                   const int64_t* tok, const int64_t* y, int64_t n, float* logits, float* probs,
                   float* g, double* loss, int64_t* correct);

// Accumulates the gradients w.r.t. the tables S, L, B0 for the block's examples, given g.
void block_backward(Dims d, const float* L, const int64_t* tok, int64_t n, const float* g,
                    const float* probs, float* gS, float* gL, float* gB0);

// Adds each example's |dLoss/dxi_h| (a gate xi_h on head h's output) to head_abs[h].
void block_head_grad(Dims d, const float* L, const int64_t* tok, int64_t n, const float* g,
                     const float* probs, double* head_abs);

// "avx2" or "generic": the variant block_forward/backward run.
const char* variant();

#define ATTNSCOPE_KERNEL_DECLARE(ns)                                                            \
  namespace ns {                                                                                \
  void block_forward(Dims d, const float* ES, const float* S, const float* L, const float* B0, \
                     const int64_t* tok, const int64_t* y, int64_t n, float* logits,           \
                     float* probs, float* g, double* loss, int64_t* correct);                  \
  void block_backward(Dims d, const float* L, const int64_t* tok, int64_t n, const float* g,   \
                      const float* probs, float* gS, float* gL, float* gB0);                   \
  void block_head_grad(Dims d, const float* L, const int64_t* tok, int64_t n, const float* g,  \
                       const float* probs, double* head_abs);                                  \
  }
ATTNSCOPE_KERNEL_DECLARE(avx2)
ATTNSCOPE_KERNEL_DECLARE(generic)
#undef ATTNSCOPE_KERNEL_DECLARE

}  // namespace attnscope::models::kernel
