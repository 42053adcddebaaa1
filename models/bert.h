// BERT and RoBERTa exactly as Hugging Face transformers implements them, with named tap points.
// The two share one body (HF's RobertaModel is BertModel with positions counted from the padding
// id): embeddings, encoder layers, BERT's pooler. Registered submodule names are Hugging Face's
// state-dict names (bert.encoder.layer.0.attention.self.query.weight, roberta.embeddings...,
// classifier.out_proj.bias, cls.predictions.transform.dense.weight, ...), so checkpoints map one
// to one. Attention is computed explicitly: softmax(QK^T/sqrt(d) + mask).
#pragma once

#include <torch/torch.h>

#include "models/transformer.h"

namespace attnscope::models {

inline constexpr const char* kRobertaClassifier = "RobertaForSequenceClassification";
inline constexpr const char* kRobertaMaskedLM = "RobertaForMaskedLM";
inline constexpr const char* kRobertaEncoder = "RobertaModel";
inline constexpr const char* kBertClassifier = "BertForSequenceClassification";
inline constexpr const char* kBertMaskedLM = "BertForMaskedLM";
inline constexpr const char* kBertEncoder = "BertModel";

// word + position + token type embeddings -> LayerNorm -> dropout. RoBERTa's positions are the
// cumulative count of real tokens offset by the pad id (first real token: pad + 1); BERT's 0..T-1.
class BertEmbeddingsImpl : public torch::nn::Module {
 public:
  explicit BertEmbeddingsImpl(const TransformerConfig& c);
  // [B,T] -> [B,T,D]; taps: the three components (embed.word, embed.position, embed.type)
  torch::Tensor forward(const torch::Tensor& input_ids, const torch::Tensor& token_type_ids, Taps* taps = nullptr);
  torch::nn::Embedding word_embeddings{nullptr}, position_embeddings{nullptr}, token_type_embeddings{nullptr};
  torch::nn::LayerNorm LayerNorm{nullptr};
  torch::nn::Dropout dropout{nullptr};
  int64_t pad_id;
  bool roberta_positions;
};
TORCH_MODULE(BertEmbeddings);

class BertSelfAttentionImpl : public torch::nn::Module {
 public:
  explicit BertSelfAttentionImpl(const TransformerConfig& c);
  // x [B,T,D], additive mask [B,1,1,T] -> context [B,T,D]; taps attn.scores / attn.probs
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& mask, int64_t layer, Taps* taps);
  torch::nn::Linear query{nullptr}, key{nullptr}, value{nullptr};
  torch::nn::Dropout dropout{nullptr};
  int64_t heads, head_dim;
};
TORCH_MODULE(BertSelfAttention);

// dense -> dropout -> + residual -> LayerNorm (HF's BertSelfOutput and BertOutput)
class BertOutputImpl : public torch::nn::Module {
 public:
  BertOutputImpl(int64_t in, int64_t out, const TransformerConfig& c);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& residual);
  torch::nn::Linear dense{nullptr};
  torch::nn::LayerNorm LayerNorm{nullptr};
  torch::nn::Dropout dropout{nullptr};
};
TORCH_MODULE(BertOutput);

class BertAttentionImpl : public torch::nn::Module {
 public:
  explicit BertAttentionImpl(const TransformerConfig& c);
  BertSelfAttention self{nullptr};
  BertOutput output{nullptr};
};
TORCH_MODULE(BertAttention);

class BertIntermediateImpl : public torch::nn::Module {
 public:
  explicit BertIntermediateImpl(const TransformerConfig& c);
  torch::nn::Linear dense{nullptr};
};
TORCH_MODULE(BertIntermediate);

class BertLayerImpl : public torch::nn::Module {
 public:
  explicit BertLayerImpl(const TransformerConfig& c);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& mask, int64_t layer, Taps* taps);
  BertAttention attention{nullptr};
  BertIntermediate intermediate{nullptr};
  BertOutput output{nullptr};
  std::string act;
};
TORCH_MODULE(BertLayer);

class BertEncoderImpl : public torch::nn::Module {
 public:
  explicit BertEncoderImpl(const TransformerConfig& c);
  torch::nn::ModuleList layer{nullptr};  // encoder.layer.N
};
TORCH_MODULE(BertEncoder);

// [CLS] -> dense -> tanh (HF's BertPooler)
class BertPoolerImpl : public torch::nn::Module {
 public:
  explicit BertPoolerImpl(const TransformerConfig& c);
  torch::Tensor forward(const torch::Tensor& hidden_states);  // [B,T,D] -> [B,D]
  torch::nn::Linear dense{nullptr};
};
TORCH_MODULE(BertPooler);

// The body (HF's BertModel / RobertaModel). A bare body has no pooler (attnscope reads its hidden
// states; a file's pooler.* is accepted and left unused); BertForSequenceClassification's has one.
class BertModelImpl : public TransformerImpl {
 public:
  explicit BertModelImpl(const TransformerConfig& c, bool with_pooler = false);
  Head head() const override { return Head::None; }
  std::string architecture() const override;
  torch::Tensor hidden(const torch::Tensor& input_ids, const torch::Tensor& attention_mask, Taps* taps = nullptr,
                       const torch::Tensor& token_type_ids = {}) override;
  std::vector<std::shared_ptr<torch::nn::Module>> blocks() override;
  std::string body_prefix() const override;
  bool is_head_tensor(const std::string&) const override { return false; }
  bool is_optional_tensor(const std::string& name) const override;
  BertEmbeddings embeddings{nullptr};
  BertEncoder encoder{nullptr};
  BertPooler pooler{nullptr};
};
TORCH_MODULE(BertModel);

// What a model with a head over a BERT-style body shares.
class BertHeadModelImpl : public TransformerImpl {
 public:
  using TransformerImpl::TransformerImpl;
  torch::Tensor hidden(const torch::Tensor& input_ids, const torch::Tensor& attention_mask, Taps* taps = nullptr,
                       const torch::Tensor& token_type_ids = {}) override {
    return body->hidden(input_ids, attention_mask, taps, token_type_ids);
  }
  std::vector<std::shared_ptr<torch::nn::Module>> blocks() override { return body->blocks(); }
  std::string body_prefix() const override { return body->body_prefix(); }
  bool is_head_tensor(const std::string& name) const override;
  bool is_optional_tensor(const std::string& name) const override;
  BertModel body{nullptr};  // registered as "roberta" or "bert"
};

// <s> -> dropout -> dense -> tanh -> dropout -> out_proj (HF's RobertaClassificationHead).
class RobertaClassificationHeadImpl : public torch::nn::Module {
 public:
  explicit RobertaClassificationHeadImpl(const TransformerConfig& c);
  torch::Tensor forward(const torch::Tensor& features, Taps* taps);  // [B,T,D] -> [B,num_labels]
  torch::nn::Linear dense{nullptr}, out_proj{nullptr};
  torch::nn::Dropout dropout{nullptr};
};
TORCH_MODULE(RobertaClassificationHead);

class RobertaForSequenceClassificationImpl : public BertHeadModelImpl {
 public:
  explicit RobertaForSequenceClassificationImpl(const TransformerConfig& c);
  Head head() const override { return Head::Classifier; }
  std::string architecture() const override { return kRobertaClassifier; }
  torch::Tensor forward(const torch::Tensor& input_ids, const torch::Tensor& attention_mask, Taps* taps = nullptr,
                        const torch::Tensor& token_type_ids = {}) override;
  RobertaClassificationHead classifier{nullptr};
};
TORCH_MODULE(RobertaForSequenceClassification);

// dense -> GELU -> layer_norm -> decoder tied to the word embeddings, + bias (HF's RobertaLMHead).
class RobertaLMHeadImpl : public torch::nn::Module {
 public:
  explicit RobertaLMHeadImpl(const TransformerConfig& c);
  torch::Tensor forward(const torch::Tensor& features, const torch::Tensor& word_embeddings);
  torch::nn::Linear dense{nullptr};
  torch::nn::LayerNorm layer_norm{nullptr};
  torch::Tensor bias;  // lm_head.bias (= lm_head.decoder.bias)
};
TORCH_MODULE(RobertaLMHead);

class RobertaForMaskedLMImpl : public BertHeadModelImpl {
 public:
  explicit RobertaForMaskedLMImpl(const TransformerConfig& c);
  Head head() const override { return Head::MaskedLM; }
  std::string architecture() const override { return kRobertaMaskedLM; }
  torch::Tensor lm_logits(const torch::Tensor& hidden_states) override;
  RobertaLMHead lm_head{nullptr};
};
TORCH_MODULE(RobertaForMaskedLM);

// bert (with pooler) -> dropout -> classifier (HF's BertForSequenceClassification).
class BertForSequenceClassificationImpl : public BertHeadModelImpl {
 public:
  explicit BertForSequenceClassificationImpl(const TransformerConfig& c);
  Head head() const override { return Head::Classifier; }
  std::string architecture() const override { return kBertClassifier; }
  torch::Tensor forward(const torch::Tensor& input_ids, const torch::Tensor& attention_mask, Taps* taps = nullptr,
                        const torch::Tensor& token_type_ids = {}) override;
  torch::nn::Dropout dropout{nullptr};
  torch::nn::Linear classifier{nullptr};
};
TORCH_MODULE(BertForSequenceClassification);

// cls.predictions: transform (dense -> act -> LayerNorm) -> decoder tied to the word embeddings
// + bias (HF's BertOnlyMLMHead / BertLMPredictionHead).
class BertPredictionHeadTransformImpl : public torch::nn::Module {
 public:
  explicit BertPredictionHeadTransformImpl(const TransformerConfig& c);
  torch::nn::Linear dense{nullptr};
  torch::nn::LayerNorm LayerNorm{nullptr};
};
TORCH_MODULE(BertPredictionHeadTransform);

class BertLMPredictionHeadImpl : public torch::nn::Module {
 public:
  explicit BertLMPredictionHeadImpl(const TransformerConfig& c);
  BertPredictionHeadTransform transform{nullptr};
  torch::Tensor bias;  // cls.predictions.bias (= cls.predictions.decoder.bias)
};
TORCH_MODULE(BertLMPredictionHead);

class BertOnlyMLMHeadImpl : public torch::nn::Module {
 public:
  explicit BertOnlyMLMHeadImpl(const TransformerConfig& c);
  BertLMPredictionHead predictions{nullptr};
};
TORCH_MODULE(BertOnlyMLMHead);

class BertForMaskedLMImpl : public BertHeadModelImpl {
 public:
  explicit BertForMaskedLMImpl(const TransformerConfig& c);
  Head head() const override { return Head::MaskedLM; }
  std::string architecture() const override { return kBertMaskedLM; }
  torch::Tensor lm_logits(const torch::Tensor& hidden_states) override;
  BertOnlyMLMHead cls{nullptr};
};
TORCH_MODULE(BertForMaskedLM);

// transformers' initialisation (BertPreTrainedModel._init_weights): Linear and Embedding weights
// N(0, range), biases 0, an embedding's padding row 0, LayerNorm 1 and 0 (GPT-2's Conv1D: see gpt2.h).
void init_like_transformers(torch::nn::Module& module, double range);

}  // namespace attnscope::models
