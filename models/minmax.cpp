// The plain (reference) forward of the min/max network, with its tap points.
#include "models/minmax.h"

#include <cmath>

namespace attnscope::models {

MinMaxNetImpl::MinMaxNetImpl(const MinMaxNetOptions& o) : options_(o) {
  const int64_t V = o.vocab, T = o.seq_len, D = o.d_model, H = o.n_heads, Dh = o.d_head;
  W_E = register_parameter("W_E", torch::zeros({V, D}));
  W_pos = register_parameter("W_pos", torch::zeros({T, D}));
  W_Q = register_parameter("W_Q", torch::zeros({H, Dh, D}));
  W_K = register_parameter("W_K", torch::zeros({H, Dh, D}));
  W_V = register_parameter("W_V", torch::zeros({H, Dh, D}));
  W_O = register_parameter("W_O", torch::zeros({H, D, Dh}));
}

void MinMaxNetImpl::reset_parameters(torch::Generator& gen) {
  torch::NoGradGuard no_grad;
  const double scale = std::sqrt(static_cast<double>(options_.d_model));
  for (torch::Tensor* p : {&W_E, &W_pos, &W_Q, &W_K, &W_V, &W_O}) {
    p->copy_(torch::randn(p->sizes(), gen) / scale);
  }
}

torch::Tensor MinMaxNetImpl::forward(const torch::Tensor& tokens, Taps* taps, const torch::Tensor& head_gate) {
  const int64_t B = tokens.size(0), T = tokens.size(1);
  const auto words = W_E.index_select(0, tokens.reshape({-1})).view({B, T, -1});
  tap(taps, site::kEmbedWord, 0, words);
  if (taps != nullptr && taps->wants(site::kEmbedPosition, 0)) tap(taps, site::kEmbedPosition, 0, W_pos.slice(0, 0, T).expand_as(words));
  auto h = words + W_pos.slice(0, 0, T);  // [B,T,D]
  tap(taps, site::kEmbedOut, 0, h);
  h = add_embed_delta(taps, h);
  auto q = torch::einsum("hed,btd->bhte", {W_Q, h});  // [B,H,T,Dh]
  auto k = torch::einsum("hed,btd->bhte", {W_K, h});
  auto v = torch::einsum("hed,btd->bhte", {W_V, h});
  tap(taps, site::kAttnQ, 0, q);
  tap(taps, site::kAttnK, 0, k);
  tap(taps, site::kAttnV, 0, v);
  auto scores = torch::matmul(q, k.transpose(-1, -2)) / std::sqrt(static_cast<double>(options_.d_head));
  tap(taps, site::kAttnScores, 0, scores);  // [B,H,T,T]
  auto probs = torch::softmax(scores, -1);
  tap(taps, site::kAttnProbs, 0, probs);
  auto z = torch::matmul(gate_probs(taps, 0, probs), v);                         // [B,H,T,Dh]
  if (head_gate.defined()) z = z * head_gate.view({head_gate.dim() == 2 ? B : 1, -1, 1, 1});
  tap(taps, site::kAttnContext, 0, z);
  auto out = torch::einsum("hde,bhte->btd", {W_O, z});      // [B,T,D]
  h = h + out;
  tap(taps, site::kBlockOut, 0, h);
  auto pooled = h.select(1, T - 1);                         // [B,D]
  tap(taps, site::kPooled, 0, pooled);
  return torch::matmul(pooled, W_E.t());                    // [B,V]
}

}  // namespace attnscope::models
