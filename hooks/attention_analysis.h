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
// The readout row is the first token, or with `causal` the last real one (a decoder's readout:
// its first token attends only to itself).
torch::Tensor token_importance_rollout(const torch::Tensor& maps, const torch::Tensor& lengths, bool causal = false);

// Attention flow (Abnar & Zuidema 2020). The layer graph of the rollout: a node per token below
// and above every layer, an edge from token j below layer l to token i above it with capacity
// c_l[i,j] = 0.5 mean_h A_l[i,j] + 0.5 [i = j], rows renormalised (flow_capacities: [L,n,n]).
// attention_flow: the maximum flow from input token `source` (bottom) to token `sink` (top),
// Boost's push-relabel: its value and the flow on every edge [L,n,n] (0 <= flow <= capacity,
// conserved at every inner node). token_importance_flow: per probe and input token the flow
// value to the readout token (as token_importance_rollout's), normalised to sum 1 per probe:
// [P,T]; a probe longer than max_tokens (n max-flow problems on L n^2 edges each) is NaN.
torch::Tensor flow_capacities(const torch::Tensor& maps_lhtt, int64_t n);
struct Flow {
  double value = 0;
  torch::Tensor edges;  // [L,n,n] double: edges[l][i][j], from j below layer l to i above it
};
Flow attention_flow(const torch::Tensor& capacity, int64_t source, int64_t sink);
torch::Tensor token_importance_flow(const torch::Tensor& maps, const torch::Tensor& lengths, bool causal = false,
                                    int64_t max_tokens = 64);

}  // namespace attnscope::hooks
