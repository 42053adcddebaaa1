// GPT-2 exactly as Hugging Face transformers implements it, with named tap points: wte + wpe,
// pre-LayerNorm blocks (ln_1 -> causal attention -> + residual, ln_2 -> MLP -> + residual), ln_f.
// attn.c_attn / attn.c_proj / mlp.c_fc / mlp.c_proj are Conv1D: weights stored [in, out]. The
// causal mask is applied as transformers does (the dtype's lowest value above the diagonal), so
// attention rows are lower triangles. Registered names are transformers' (transformer.h.0.attn.
// c_attn.weight, lm_head.weight tied to wte, score.weight).
#pragma once

#include <torch/torch.h>

#include "models/transformer.h"

namespace attnscope::models {

inline constexpr const char* kGpt2LM = "GPT2LMHeadModel";
inline constexpr const char* kGpt2Classifier = "GPT2ForSequenceClassification";
inline constexpr const char* kGpt2Model = "GPT2Model";

// y = x W + b with W [in, out] (transformers' Conv1D).
class Conv1DImpl : public torch::nn::Module {
 public:
  Conv1DImpl(int64_t in, int64_t out);
  torch::Tensor forward(const torch::Tensor& x) { return torch::addmm(bias, x.reshape({-1, x.size(-1)}), weight).view(out_shape(x)); }
  torch::Tensor weight, bias;

 private:
  std::vector<int64_t> out_shape(const torch::Tensor& x) const;
};
TORCH_MODULE(Conv1D);

class GPT2AttentionImpl : public torch::nn::Module {
 public:
  GPT2AttentionImpl(const TransformerConfig& c, int64_t layer);
  // x [B,T,D], additive padding mask [B,1,1,T] -> [B,T,D]; taps attn.scores / attn.probs
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& mask, Taps* taps);
  Conv1D c_attn{nullptr}, c_proj{nullptr};
  torch::nn::Dropout attn_dropout{nullptr}, resid_dropout{nullptr};
  int64_t heads, head_dim, layer;
  bool rotary_positions;
  double scale;
};
TORCH_MODULE(GPT2Attention);

class GPT2MLPImpl : public torch::nn::Module {
 public:
  explicit GPT2MLPImpl(const TransformerConfig& c);
  torch::Tensor forward(const torch::Tensor& x);
  Conv1D c_fc{nullptr}, c_proj{nullptr};
  torch::nn::Dropout dropout{nullptr};
  std::string act;
};
TORCH_MODULE(GPT2MLP);

class GPT2BlockImpl : public torch::nn::Module {
 public:
  GPT2BlockImpl(const TransformerConfig& c, int64_t layer);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& mask, Taps* taps);
  torch::nn::LayerNorm ln_1{nullptr}, ln_2{nullptr};
  GPT2Attention attn{nullptr};
  GPT2MLP mlp{nullptr};
  bool attn_only;  // the MLP is skipped (its weights stay zero)
};
TORCH_MODULE(GPT2Block);

// The body (HF's GPT2Model): positions 0..T-1 (right padding, as attnscope pads).
class GPT2ModelImpl : public TransformerImpl {
 public:
  explicit GPT2ModelImpl(const TransformerConfig& c);
  Head head() const override { return Head::None; }
  std::string architecture() const override { return kGpt2Model; }
  torch::Tensor hidden(const torch::Tensor& input_ids, const torch::Tensor& attention_mask, Taps* taps = nullptr,
                       const torch::Tensor& token_type_ids = {}) override;
  std::vector<std::shared_ptr<torch::nn::Module>> blocks() override;
  std::string body_prefix() const override { return "transformer."; }
  bool is_head_tensor(const std::string&) const override { return false; }
  bool is_optional_tensor(const std::string& name) const override;  // h.N.attn.bias / masked_bias buffers
  torch::nn::Embedding wte{nullptr}, wpe{nullptr};
  torch::nn::Dropout drop{nullptr};
  torch::nn::ModuleList h{nullptr};
  torch::nn::LayerNorm ln_f{nullptr};
};
TORCH_MODULE(GPT2Model);

class GPT2HeadModelImpl : public TransformerImpl {
 public:
  using TransformerImpl::TransformerImpl;
  torch::Tensor hidden(const torch::Tensor& input_ids, const torch::Tensor& attention_mask, Taps* taps = nullptr,
                       const torch::Tensor& token_type_ids = {}) override {
    return transformer->hidden(input_ids, attention_mask, taps, token_type_ids);
  }
  std::vector<std::shared_ptr<torch::nn::Module>> blocks() override { return transformer->blocks(); }
  std::string body_prefix() const override { return "transformer."; }
  bool is_head_tensor(const std::string& name) const override;  // lm_head.*, score.*
  bool is_optional_tensor(const std::string& name) const override;
  GPT2Model transformer{nullptr};
};

// lm_head tied to wte, no bias (HF's GPT2LMHeadModel).
class GPT2LMHeadModelImpl : public GPT2HeadModelImpl {
 public:
  explicit GPT2LMHeadModelImpl(const TransformerConfig& c);
  Head head() const override { return Head::CausalLM; }
  std::string architecture() const override { return kGpt2LM; }
  torch::Tensor lm_logits(const torch::Tensor& hidden_states) override;
};
TORCH_MODULE(GPT2LMHeadModel);

// score (no bias) at the last real token of each sequence (HF's GPT2ForSequenceClassification,
// whose "last non-padding token" is the last position of the attention mask here).
class GPT2ForSequenceClassificationImpl : public GPT2HeadModelImpl {
 public:
  explicit GPT2ForSequenceClassificationImpl(const TransformerConfig& c);
  Head head() const override { return Head::Classifier; }
  std::string architecture() const override { return kGpt2Classifier; }
  torch::Tensor forward(const torch::Tensor& input_ids, const torch::Tensor& attention_mask, Taps* taps = nullptr,
                        const torch::Tensor& token_type_ids = {}) override;
  torch::nn::Linear score{nullptr};
};
TORCH_MODULE(GPT2ForSequenceClassification);

// transformers' GPT-2 initialisation: weights N(0, range) (c_proj N(0, range / sqrt(2 n_layer))),
// biases 0, LayerNorm 1 and 0.
void init_gpt2(torch::nn::Module& module, double range, int64_t layers, bool attn_only = false, bool rotary = false);

}  // namespace attnscope::models
