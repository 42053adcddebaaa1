// Named tap points: how a model exposes its internals without forward hooks.
// A model calls `tap(taps, site, layer, tensor)` at each site. A Taps object first declares what
// it wants (sites, layers, heads); only those tensors are copied (detached, to CPU). With no Taps,
// or a site nobody asked for, a tap is one branch and no copy. No global state: a Taps object is
// passed to forward() explicitly, from a plain call or from the trainer.
#pragma once

#include <torch/torch.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

namespace attnscope::models {

// The one naming scheme of tap sites. Shapes: B batch, T tokens, H heads, D model width.
namespace site {
inline constexpr const char* kEmbedWord = "embed.word";          // [B,T,D] token (word) embeddings
inline constexpr const char* kEmbedPosition = "embed.position";  // [B,T,D] position embeddings (absent: rotary positions)
inline constexpr const char* kEmbedType = "embed.type";          // [B,T,D] segment (token type) embeddings, BERT family
inline constexpr const char* kEmbedOut = "embed.out";      // [B,T,D] embeddings entering layer 0
inline constexpr const char* kAttnScores = "attn.scores";  // [B,H,T,T] QK^T/sqrt(d) + mask
inline constexpr const char* kAttnProbs = "attn.probs";    // [B,H,T,T] softmax, before dropout
inline constexpr const char* kAttnQ = "attn.q";            // [B,H,T,d] queries per head (GPT-2 rotary: rotated)
inline constexpr const char* kAttnK = "attn.k";            // [B,H,T,d] keys per head
inline constexpr const char* kAttnV = "attn.v";            // [B,H,T,d] values per head
inline constexpr const char* kAttnContext = "attn.context";  // [B,H,T,d] probs x v per head, before the output projection
inline constexpr const char* kFfnOut = "ffn.out";          // [B,T,D] the feed-forward block's output, before the residual add
inline constexpr const char* kBlockOut = "block.out";      // [B,T,D] residual stream after a layer
inline constexpr const char* kPooled = "pooled";           // [B,D] readout vector of the sequence
inline constexpr const char* kOutput = "output";           // [B,K] a sequence classifier's output (logits)
}  // namespace site

class Taps {
 public:
  // Ask for `site` at `layers` (empty = all) keeping `heads` (empty = all; head-shaped sites only).
  void request(const std::string& site, std::vector<int64_t> layers = {},
               std::vector<int64_t> heads = {});

  bool wants(const char* site, int64_t layer) const;
  // Copies `t` if a request covers (site, layer); returns whether it did.
  bool capture(const char* site, int64_t layer, const torch::Tensor& t);

  // The captured tensor, or an undefined tensor when it was not captured.
  torch::Tensor get(const std::string& site, int64_t layer) const;
  const std::map<std::pair<std::string, int64_t>, torch::Tensor>& captured() const { return captured_; }
  // Head gates (Michel et al. 2019): a model multiplies each head's output in `layer` by
  // gate [B,H] when one is set; head importance is |dLoss/dgate| at gate = 1. Unlike a capture,
  // a gate takes part in the forward (and in autograd).
  void set_head_gate(int64_t layer, torch::Tensor gate) { gates_[layer] = std::move(gate); }
  const torch::Tensor* head_gate(int64_t layer) const {
    auto it = gates_.find(layer);
    return it == gates_.end() ? nullptr : &it->second;
  }
  // Attribution points, which like gates take part in the forward: a delta added to the
  // embeddings entering layer 0 ([B,T,D]; zeros with requires_grad: dy/ddelta = dy/dx) and a
  // factor on each layer's attention probabilities ([B,H,T,T], before dropout; ones with
  // requires_grad: dy/dgate = A * dy/dA, attention x gradient).
  void set_embed_delta(torch::Tensor delta) { embed_delta_ = std::move(delta); }
  const torch::Tensor* embed_delta() const { return embed_delta_.defined() ? &embed_delta_ : nullptr; }
  void set_probs_gate(int64_t layer, torch::Tensor gate) { probs_gates_[layer] = std::move(gate); }
  const torch::Tensor* probs_gate(int64_t layer) const {
    auto it = probs_gates_.find(layer);
    return it == probs_gates_.end() ? nullptr : &it->second;
  }
  void clear() { captured_.clear(); }

 private:
  struct Request {
    std::string site;
    std::vector<int64_t> layers, heads;
  };
  const Request* find(const char* site, int64_t layer) const;
  std::vector<Request> requests_;
  std::map<std::pair<std::string, int64_t>, torch::Tensor> captured_;
  std::map<int64_t, torch::Tensor> gates_;
  torch::Tensor embed_delta_;
  std::map<int64_t, torch::Tensor> probs_gates_;
};

// The call models make at every site.
inline void tap(Taps* taps, const char* site, int64_t layer, const torch::Tensor& t) {
  if (taps != nullptr) taps->capture(site, layer, t);
}
// The embeddings plus the attribution delta, if one is set; the attention probabilities of
// `layer` times their attribution gate, if one is set (else unchanged: one branch).
inline torch::Tensor add_embed_delta(Taps* taps, const torch::Tensor& x) {
  const torch::Tensor* d = taps != nullptr ? taps->embed_delta() : nullptr;
  return d == nullptr ? x : x + *d;
}
inline torch::Tensor gate_probs(Taps* taps, int64_t layer, const torch::Tensor& probs) {
  const torch::Tensor* g = taps != nullptr ? taps->probs_gate(layer) : nullptr;
  return g == nullptr ? probs : probs * *g;
}

// Per-head outputs [B,H,...] of `layer` times its head gate, if one is set (else unchanged).
inline torch::Tensor gate_heads(Taps* taps, int64_t layer, const torch::Tensor& per_head) {
  const torch::Tensor* g = taps != nullptr ? taps->head_gate(layer) : nullptr;
  if (g == nullptr) return per_head;
  std::vector<int64_t> shape = {per_head.size(0), per_head.size(1)};
  shape.resize(static_cast<size_t>(per_head.dim()), 1);
  return per_head * g->view(shape);
}

}  // namespace attnscope::models
