// The min/max attention network: one attention layer, H heads, no biases, no causal mask,
// no LayerNorm, no MLP; residual h = x + attn(x); tied unembedding read at the last position.
// Parameter names (W_E, W_pos, W_Q, W_K, W_V, W_O) are the published code's, the checkpoint contract.
#pragma once

#include <torch/torch.h>

#include "models/taps.h"

namespace attnscope::models {

struct MinMaxNetOptions {
  int64_t vocab = 131;
  int64_t seq_len = 4;
  int64_t d_model = 32;
  int64_t n_heads = 2;
  int64_t d_head = 16;
};

class MinMaxNetImpl : public torch::nn::Module {
 public:
  explicit MinMaxNetImpl(const MinMaxNetOptions& o);

  // randn / sqrt(d_model) for every parameter, drawn from `gen` in the reference's order.
  void reset_parameters(torch::Generator& gen);

  // tokens [B,T] int64 -> logits [B,V] at the last position. Taps: embed.out, attn.scores,
  // attn.probs, block.out (layer 0) and pooled. `head_gate` ([B,H] or [H], optional) scales each
  // head's output: its gradient is the head importance of Michel et al. (2019).
  torch::Tensor forward(const torch::Tensor& tokens, Taps* taps = nullptr, const torch::Tensor& head_gate = {});

  const MinMaxNetOptions& options() const { return options_; }

  torch::Tensor W_E;    // [V,D] token embedding, also the unembedding
  torch::Tensor W_pos;  // [T,D] positional embedding
  torch::Tensor W_Q;    // [H,Dh,D]
  torch::Tensor W_K;    // [H,Dh,D]
  torch::Tensor W_V;    // [H,Dh,D]
  torch::Tensor W_O;    // [H,D,Dh]

 private:
  MinMaxNetOptions options_;
};
TORCH_MODULE(MinMaxNet);

}  // namespace attnscope::models
