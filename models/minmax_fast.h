// The min/max network's fused training path. Only the last position's output is read, and every
// position holds one of V tokens, so the network factors into small per-(position, token) tables:
//   S[h,q,t,k] = (W_Q x_q)·(W_K x_tk)/sqrt(Dh)   attention score of query token q on key token k at t
//   L[h,t,k,:] = W_O W_V x_tk · W_E^T            what attending to (t, k) adds to the logits
//   B0[q,:]    = x_q · W_E^T                     the residual's own logits   (x_tk = W_E[k] + W_pos[t])
// The tables are built with autograd ops; a fused kernel then does, per example, a softmax over
// T table entries per head, a weighted sum of H*T logit rows, log-softmax, loss, argmax and the
// gradients w.r.t. the tables, which autograd carries back to the parameters. Same function as
// MinMaxNetImpl::forward (tested); the recorded attention always comes from the module itself.
#pragma once

#include <torch/torch.h>

#include "models/minmax.h"

namespace attnscope::models {

struct MinMaxTables {
  torch::Tensor S;   // [H,V,T,V]
  torch::Tensor L;   // [H,T,V,V]
  torch::Tensor B0;  // [V,V]
};

// Differentiable w.r.t. the network's parameters (when grad mode is on).
MinMaxTables minmax_tables(MinMaxNetImpl& net);

struct FusedResult {
  double loss_sum = 0;  // sum over examples of the cross-entropy
  int64_t correct = 0;  // argmax == target
  torch::Tensor gS, gL, gB0;  // d(mean loss)/d(table), when gradients were asked for
  torch::Tensor head_importance;  // [H] mean over examples of |dLoss_x/dxi_h|, when asked for
};

// tokens [B,T] int64 (query token at T-1), targets [B] int64.
FusedResult minmax_fused(const MinMaxTables& tables, const torch::Tensor& tokens,
                         const torch::Tensor& targets, bool want_grad, bool want_head_importance = false);

// Tables + fused kernel + backward into the parameters' .grad (accumulating) when `backward`.
FusedResult minmax_fused_step(MinMaxNetImpl& net, const torch::Tensor& tokens,
                              const torch::Tensor& targets, bool backward);

// Attention probabilities [B,H,T,T] of every query position, from score tables of all positions
// (same values as the module's attn.probs tap, without running the module): for metrics over
// many examples. With `buffers`, the score table and the result are written into its tensors
// (allocated or resized as needed), so that repeated calls reuse their memory: the result is then
// buffers->probs, overwritten by the next call.
struct MinMaxAttentionBuffers {
  torch::Tensor scores;  // [H,R,R]: the (position, token) pairs used, R <= T*V
  torch::Tensor probs;   // [B,H,T,T]
};
torch::Tensor minmax_attention_probs(MinMaxNetImpl& net, const torch::Tensor& tokens,
                                     MinMaxAttentionBuffers* buffers = nullptr);

// The module's attn.scores and attn.probs of the last query position only, [B,H,T] each: the
// operations of MinMaxNetImpl::forward up to its softmax, with the queries of the other positions
// and everything after the softmax left out (tested bit-identical to the module's taps). For the
// recorder's task arrays over all N^2 (a, b) pairs.
struct LastRowAttention {
  torch::Tensor scores, probs;
};
LastRowAttention minmax_last_row_attention(MinMaxNetImpl& net, const torch::Tensor& tokens);

// The tables cost O(H*T*V^2) memory: the fast path is used up to this vocabulary.
constexpr int64_t kMinMaxFastMaxVocab = 1024;

}  // namespace attnscope::models
