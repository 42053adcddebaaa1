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
inline constexpr const char* kEmbedOut = "embed.out";      // [B,T,D] embeddings entering layer 0
inline constexpr const char* kAttnScores = "attn.scores";  // [B,H,T,T] QK^T/sqrt(d) + mask
inline constexpr const char* kAttnProbs = "attn.probs";    // [B,H,T,T] softmax, before dropout
inline constexpr const char* kBlockOut = "block.out";      // [B,T,D] residual stream after a layer
inline constexpr const char* kPooled = "pooled";           // [B,D] readout vector of the sequence
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
  void clear() { captured_.clear(); }

 private:
  struct Request {
    std::string site;
    std::vector<int64_t> layers, heads;
  };
  const Request* find(const char* site, int64_t layer) const;
  std::vector<Request> requests_;
  std::map<std::pair<std::string, int64_t>, torch::Tensor> captured_;
};

// The call models make at every site.
inline void tap(Taps* taps, const char* site, int64_t layer, const torch::Tensor& t) {
  if (taps != nullptr) taps->capture(site, layer, t);
}

}  // namespace attnscope::models
