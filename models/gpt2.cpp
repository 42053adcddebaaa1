// GPT-2 as Hugging Face transformers computes it (models/gpt2.h).
#include "models/gpt2.h"

#include <cmath>
#include <limits>

#include "core/core.h"

namespace attnscope::models {
namespace nn = torch::nn;

namespace {
bool starts_with(const std::string& s, const std::string& prefix) { return s.rfind(prefix, 0) == 0; }
bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}
}  // namespace

Conv1DImpl::Conv1DImpl(int64_t in, int64_t out) {
  weight = register_parameter("weight", torch::empty({in, out}).normal_(0, 0.02));
  bias = register_parameter("bias", torch::zeros({out}));
}

std::vector<int64_t> Conv1DImpl::out_shape(const torch::Tensor& x) const {
  auto shape = x.sizes().vec();
  shape.back() = weight.size(1);
  return shape;
}

namespace {
// RoFormer's rotation of q or k [B,H,T,d] by position, GPT-NeoX's layout (the first and second
// halves of a head are the pairs' two coordinates): x cos(t w_i) + rotate_half(x) sin(t w_i),
// w_i = 10000^(-2i/d).
torch::Tensor rotary(const torch::Tensor& x) {
  const int64_t T = x.size(2), d = x.size(3), half = d / 2;
  const auto opts = x.options();
  const auto inv_freq = torch::pow(10000.0, -torch::arange(0, half, opts) * (2.0 / static_cast<double>(d)));
  const auto angles = torch::outer(torch::arange(T, opts), inv_freq);  // [T, d/2]
  const auto cos = torch::cat({angles.cos(), angles.cos()}, -1), sin = torch::cat({angles.sin(), angles.sin()}, -1);
  const auto x1 = x.narrow(-1, 0, half), x2 = x.narrow(-1, half, d - half);
  return x * cos + torch::cat({-x2, x1}, -1) * sin;
}
}  // namespace

GPT2AttentionImpl::GPT2AttentionImpl(const TransformerConfig& c, int64_t layer)
    : heads(c.num_attention_heads), head_dim(c.hidden_size / c.num_attention_heads), layer(layer),
      rotary_positions(c.position_embedding == "rotary") {
  c_attn = register_module("c_attn", Conv1D(c.hidden_size, 3 * c.hidden_size));
  c_proj = register_module("c_proj", Conv1D(c.hidden_size, c.hidden_size));
  attn_dropout = register_module("attn_dropout", nn::Dropout(c.attention_probs_dropout_prob));
  resid_dropout = register_module("resid_dropout", nn::Dropout(c.hidden_dropout_prob));
  scale = std::sqrt(static_cast<double>(head_dim)) * (c.scale_attn_by_inverse_layer_idx ? static_cast<double>(layer + 1) : 1.0);
}

torch::Tensor GPT2AttentionImpl::forward(const torch::Tensor& x, const torch::Tensor& mask, Taps* taps) {
  const int64_t B = x.size(0), T = x.size(1), D = heads * head_dim;
  const auto qkv = c_attn(x).split(D, 2);
  auto split = [&](const torch::Tensor& t) { return t.reshape({B, T, heads, head_dim}).transpose(1, 2); };  // [B,H,T,d]
  auto q = split(qkv[0]), k = split(qkv[1]);
  const auto v = split(qkv[2]);
  if (rotary_positions) {
    q = rotary(q);
    k = rotary(k);
  }
  tap(taps, site::kAttnQ, layer, q);
  tap(taps, site::kAttnK, layer, k);
  tap(taps, site::kAttnV, layer, v);
  auto scores = torch::matmul(q, k.transpose(-1, -2)) / scale;  // [B,H,T,T]
  // keys after the query get the dtype's lowest value, as transformers' causal mask does
  const auto causal = torch::ones({T, T}, torch::dtype(torch::kBool)).tril();
  scores = torch::where(causal, scores, torch::full({}, std::numeric_limits<float>::lowest(), scores.options())) + mask;
  tap(taps, site::kAttnScores, layer, scores);
  const auto probs = torch::softmax(scores, -1);
  tap(taps, site::kAttnProbs, layer, probs);
  const auto context = gate_heads(taps, layer, torch::matmul(attn_dropout(gate_probs(taps, layer, probs)), v));  // [B,H,T,d]
  tap(taps, site::kAttnContext, layer, context);
  return resid_dropout(c_proj(context.transpose(1, 2).reshape({B, T, D})));
}

GPT2MLPImpl::GPT2MLPImpl(const TransformerConfig& c) : act(c.hidden_act) {
  c_fc = register_module("c_fc", Conv1D(c.hidden_size, c.intermediate_size));
  c_proj = register_module("c_proj", Conv1D(c.intermediate_size, c.hidden_size));
  dropout = register_module("dropout", nn::Dropout(c.hidden_dropout_prob));
}

torch::Tensor GPT2MLPImpl::forward(const torch::Tensor& x) { return dropout(c_proj(activation(act, c_fc(x)))); }

GPT2BlockImpl::GPT2BlockImpl(const TransformerConfig& c, int64_t layer) : attn_only(c.attn_only) {
  ln_1 = register_module("ln_1", nn::LayerNorm(nn::LayerNormOptions({c.hidden_size}).eps(c.layer_norm_eps)));
  attn = register_module("attn", GPT2Attention(c, layer));
  ln_2 = register_module("ln_2", nn::LayerNorm(nn::LayerNormOptions({c.hidden_size}).eps(c.layer_norm_eps)));
  mlp = register_module("mlp", GPT2MLP(c));
}

torch::Tensor GPT2BlockImpl::forward(const torch::Tensor& x, const torch::Tensor& mask, Taps* taps) {
  const auto h = x + attn(ln_1(x), mask, taps);
  if (attn_only) return h;
  const auto ffn = mlp(ln_2(h));
  tap(taps, site::kFfnOut, attn->layer, ffn);
  return h + ffn;
}

GPT2ModelImpl::GPT2ModelImpl(const TransformerConfig& c) : TransformerImpl(c) {
  wte = register_module("wte", nn::Embedding(c.vocab_size, c.hidden_size));
  wpe = register_module("wpe", nn::Embedding(c.max_position_embeddings, c.hidden_size));
  drop = register_module("drop", nn::Dropout(c.embedding_dropout));
  h = register_module("h", nn::ModuleList());
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) h->push_back(GPT2Block(c, i));
  ln_f = register_module("ln_f", nn::LayerNorm(nn::LayerNormOptions({c.hidden_size}).eps(c.layer_norm_eps)));
}

bool GPT2ModelImpl::is_optional_tensor(const std::string& name) const {
  // the causal-mask buffers older transformers saved (h.N.attn.bias, h.N.attn.masked_bias)
  return starts_with(name, "h.") && (ends_with(name, ".attn.bias") || ends_with(name, ".attn.masked_bias"));
}

torch::Tensor GPT2ModelImpl::hidden(const torch::Tensor& input_ids, const torch::Tensor& attention_mask, Taps* taps,
                                    const torch::Tensor&) {
  const int64_t T = input_ids.size(1);
  if (T > config_.max_position_embeddings) {
    throw UsageError("GPT-2 input of " + std::to_string(T) + " tokens; the model has " +
                     std::to_string(config_.max_position_embeddings) + " positions (n_positions)");
  }
  const auto words = wte(input_ids);
  tap(taps, site::kEmbedWord, 0, words);
  torch::Tensor x;
  if (config_.position_embedding == "rotary") {
    x = drop(words);  // positions enter as rotations of q and k
  } else {
    const auto placed = wpe(torch::arange(T, input_ids.options())).unsqueeze(0);
    if (taps != nullptr && taps->wants(site::kEmbedPosition, 0)) tap(taps, site::kEmbedPosition, 0, placed.expand_as(words));
    x = drop(words + placed);
  }
  tap(taps, site::kEmbedOut, 0, x);
  x = add_embed_delta(taps, x);
  const auto mask = (1.0 - attention_mask.to(x.scalar_type())).view({x.size(0), 1, 1, T}) *
                    std::numeric_limits<float>::lowest();
  int64_t i = 0;
  for (const auto& block : *h) {
    x = block->as<GPT2Block>()->forward(x, mask, taps);
    tap(taps, site::kBlockOut, i++, x);
  }
  return ln_f(x);
}

std::vector<std::shared_ptr<torch::nn::Module>> GPT2ModelImpl::blocks() {
  // the embeddings as one block: wte and wpe
  auto emb = std::make_shared<torch::nn::Module>();
  emb->register_module("wte", wte);
  emb->register_module("wpe", wpe);
  std::vector<std::shared_ptr<torch::nn::Module>> out{emb};
  for (const auto& b : *h) out.push_back(b);
  return out;
}

bool GPT2HeadModelImpl::is_head_tensor(const std::string& name) const {
  return starts_with(name, "lm_head.") || starts_with(name, "score.");
}

bool GPT2HeadModelImpl::is_optional_tensor(const std::string& name) const {
  if (starts_with(name, "transformer.") && transformer->is_optional_tensor(name.substr(12))) return true;
  return name == "lm_head.weight" && head() == Head::CausalLM;  // tied to wte
}

GPT2LMHeadModelImpl::GPT2LMHeadModelImpl(const TransformerConfig& c) : GPT2HeadModelImpl(c) {
  transformer = register_module("transformer", GPT2Model(c));
}

torch::Tensor GPT2LMHeadModelImpl::lm_logits(const torch::Tensor& hidden_states) {
  return torch::nn::functional::linear(hidden_states, transformer->wte->weight);
}

GPT2ForSequenceClassificationImpl::GPT2ForSequenceClassificationImpl(const TransformerConfig& c) : GPT2HeadModelImpl(c) {
  transformer = register_module("transformer", GPT2Model(c));
  score = register_module("score", nn::Linear(nn::LinearOptions(c.hidden_size, c.num_labels).bias(false)));
}

torch::Tensor GPT2ForSequenceClassificationImpl::forward(const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                                                         Taps* taps, const torch::Tensor& token_type_ids) {
  const auto h = hidden(input_ids, attention_mask, taps, token_type_ids);
  const auto last = readout(h, attention_mask);
  tap(taps, site::kPooled, 0, last);
  return score(last);
}

void init_gpt2(torch::nn::Module& module, double range, int64_t layers, bool attn_only, bool rotary) {
  torch::NoGradGuard no_grad;
  for (const auto& item : module.named_parameters()) {
    const std::string& name = item.key();
    auto p = item.value();
    // what the variant never uses stays out of training (a data-parallel run would wait for its
    // gradients): the MLP of attention-only blocks, zero (an export then computes the same model in
    // transformers), and their ln_2 at its initialisation; wpe under rotary positions, zero
    const bool unused_ln = attn_only && name.find(".ln_2.") != std::string::npos;
    if ((attn_only && name.find(".mlp.") != std::string::npos) || (rotary && ends_with(name, "wpe.weight"))) {
      p.zero_();
      p.set_requires_grad(false);
    } else if (unused_ln) {
      p.fill_(ends_with(name, ".weight") ? 1.0 : 0.0);
      p.set_requires_grad(false);
    } else if (ends_with(name, "ln_1.weight") || ends_with(name, "ln_2.weight") || ends_with(name, "ln_f.weight")) {
      p.fill_(1);
    } else if (ends_with(name, ".bias")) {
      p.zero_();
    } else if (ends_with(name, "c_proj.weight")) {  // GPT-2's scaled residual projections
      p.normal_(0, range / std::sqrt(2.0 * static_cast<double>(layers)));
    } else {
      p.normal_(0, range);
    }
  }
}

}  // namespace attnscope::models
