// Analyses of recorded probe maps: pure functions on tensors. Maps are [P,L,H,T,T] attention
// probabilities with probe lengths [P]; padding rows and keys are ignored.
#pragma once

#include <torch/torch.h>

namespace attnscope::hooks {

// Jensen-Shannon divergence (base 2, in [0,1]) between corresponding rows of two recordings,
// averaged over the real rows of all probes: [L,H]. How fast each head is still changing.
torch::Tensor js_divergence(const torch::Tensor& a, const torch::Tensor& b, const torch::Tensor& lengths);

// Jensen-Shannon distance (sqrt of the divergence) between every pair of heads (Clark et al.
// 2019: rows smoothed as 0.999*a + 0.001/n first), averaged over real rows: [L*H, L*H].
torch::Tensor head_js_distance(const torch::Tensor& maps, const torch::Tensor& lengths);

// Attention rollout (Abnar & Zuidema 2020): heads averaged, 0.5*A + 0.5*I, rows renormalised,
// product over layers (first layer rightmost): [P,T,T].
torch::Tensor attention_rollout(const torch::Tensor& maps, const torch::Tensor& lengths);

// Attention each token receives, summed over real query rows, averaged over heads and layers,
// normalised to sum 1 per probe: [P,T]. The rollout variant: row 0 (<s>/first token) of the rollout.
torch::Tensor token_importance(const torch::Tensor& maps, const torch::Tensor& lengths);
torch::Tensor token_importance_rollout(const torch::Tensor& maps, const torch::Tensor& lengths);

}  // namespace attnscope::hooks
