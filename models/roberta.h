// RoBERTa encoder exactly as Hugging Face transformers implements it (the ChemBERTa family), with
// named tap points. Registered submodule names are Hugging Face's state-dict names
// (roberta.encoder.layer.0.attention.self.query.weight, classifier.out_proj.bias, lm_head.dense...),
// so checkpoints map one to one. Attention is computed explicitly: softmax(QK^T/sqrt(d) + mask).
#pragma once

#include <torch/torch.h>

#include <map>
#include <string>

#include "models/taps.h"

namespace attnscope::models {

struct RobertaConfig {
  int64_t vocab_size = 767;
  int64_t hidden_size = 768;
  int64_t num_hidden_layers = 6;
  int64_t num_attention_heads = 12;
  int64_t intermediate_size = 3072;
  int64_t max_position_embeddings = 514;
  int64_t type_vocab_size = 1;
  int64_t pad_token_id = 1;
  double layer_norm_eps = 1e-5;
  double hidden_dropout_prob = 0.1;
  double attention_probs_dropout_prob = 0.1;
  int64_t num_labels = 1;
  // As transformers' PretrainedConfig: the label names by id (empty = LABEL_0, LABEL_1, ...),
  // label2id as the file gave it (empty = the inverse of id2label), and problem_type: "",
  // regression, single_label_classification or multi_label_classification.
  std::vector<std::string> id2label;
  std::map<std::string, int64_t> label2id;
  std::string problem_type;
  std::string label(int64_t id) const;  // id2label[id], else LABEL_<id>
};

// Reads a Hugging Face config.json as transformers' PretrainedConfig does: num_labels is the size
// of id2label when present, else num_labels, else 2; problem_type one of transformers' three.
// UsageError naming the file and every bad key at once.
RobertaConfig read_hf_config(const std::string& path);

// UsageError naming `config_path` and every key whose size differs from the tensors a weight
// file holds (vocab_size, hidden_size, max_position_embeddings, type_vocab_size,
// intermediate_size, num_hidden_layers): checked before a model is built from the config.
void check_config_fits(const RobertaConfig& c, const std::map<std::string, torch::Tensor>& tensors,
                       const std::string& config_path);

// The most tokens (<s> and </s> included) the model takes: RoBERTa's positions start at
// pad_token_id + 1, so max_position_embeddings - pad_token_id - 1.
inline int64_t max_tokens(const RobertaConfig& c) { return c.max_position_embeddings - c.pad_token_id - 1; }

// How the head's outputs read (transformers' loss and TextClassificationPipeline): "regression"
// (problem_type regression, or one label without a problem_type), "multi_label_classification"
// (sigmoid per label) or "single_label_classification" (softmax over the labels).
std::string effective_problem_type(const RobertaConfig& c);

class RobertaEmbeddingsImpl : public torch::nn::Module {
 public:
  explicit RobertaEmbeddingsImpl(const RobertaConfig& c);
  torch::Tensor forward(const torch::Tensor& input_ids);  // [B,T] -> [B,T,D]
  torch::nn::Embedding word_embeddings{nullptr}, position_embeddings{nullptr}, token_type_embeddings{nullptr};
  torch::nn::LayerNorm LayerNorm{nullptr};
  torch::nn::Dropout dropout{nullptr};
  int64_t pad_id;
};
TORCH_MODULE(RobertaEmbeddings);

class RobertaSelfAttentionImpl : public torch::nn::Module {
 public:
  explicit RobertaSelfAttentionImpl(const RobertaConfig& c);
  // x [B,T,D], additive mask [B,1,1,T] -> context [B,T,D]; taps attn.scores / attn.probs
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& mask, int64_t layer, Taps* taps);
  torch::nn::Linear query{nullptr}, key{nullptr}, value{nullptr};
  torch::nn::Dropout dropout{nullptr};
  int64_t heads, head_dim;
};
TORCH_MODULE(RobertaSelfAttention);

// dense -> dropout -> + residual -> LayerNorm (HF's RobertaSelfOutput and RobertaOutput)
class RobertaOutputImpl : public torch::nn::Module {
 public:
  RobertaOutputImpl(int64_t in, int64_t out, const RobertaConfig& c);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& residual);
  torch::nn::Linear dense{nullptr};
  torch::nn::LayerNorm LayerNorm{nullptr};
  torch::nn::Dropout dropout{nullptr};
};
TORCH_MODULE(RobertaOutput);

class RobertaAttentionImpl : public torch::nn::Module {
 public:
  explicit RobertaAttentionImpl(const RobertaConfig& c);
  RobertaSelfAttention self{nullptr};
  RobertaOutput output{nullptr};
};
TORCH_MODULE(RobertaAttention);

class RobertaIntermediateImpl : public torch::nn::Module {
 public:
  explicit RobertaIntermediateImpl(const RobertaConfig& c);
  torch::nn::Linear dense{nullptr};
};
TORCH_MODULE(RobertaIntermediate);

class RobertaLayerImpl : public torch::nn::Module {
 public:
  explicit RobertaLayerImpl(const RobertaConfig& c);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& mask, int64_t layer, Taps* taps);
  RobertaAttention attention{nullptr};
  RobertaIntermediate intermediate{nullptr};
  RobertaOutput output{nullptr};
};
TORCH_MODULE(RobertaLayer);

class RobertaEncoderImpl : public torch::nn::Module {
 public:
  explicit RobertaEncoderImpl(const RobertaConfig& c);
  torch::nn::ModuleList layer{nullptr};  // encoder.layer.N
};
TORCH_MODULE(RobertaEncoder);

class RobertaModelImpl : public torch::nn::Module {
 public:
  explicit RobertaModelImpl(const RobertaConfig& c);
  // input_ids [B,T], attention_mask [B,T] (1 = token, 0 = padding) -> last hidden state [B,T,D].
  // Taps: embed.out, attn.scores, attn.probs, block.out per layer.
  torch::Tensor forward(const torch::Tensor& input_ids, const torch::Tensor& attention_mask, Taps* taps = nullptr);
  RobertaEmbeddings embeddings{nullptr};
  RobertaEncoder encoder{nullptr};
};
TORCH_MODULE(RobertaModel);

// <s> -> dropout -> dense -> tanh -> dropout -> out_proj (HF's RobertaClassificationHead).
class RobertaClassificationHeadImpl : public torch::nn::Module {
 public:
  explicit RobertaClassificationHeadImpl(const RobertaConfig& c);
  torch::Tensor forward(const torch::Tensor& features, Taps* taps);  // [B,T,D] -> [B,num_labels]
  torch::nn::Linear dense{nullptr}, out_proj{nullptr};
  torch::nn::Dropout dropout{nullptr};
};
TORCH_MODULE(RobertaClassificationHead);

class RobertaForSequenceClassificationImpl : public torch::nn::Module {
 public:
  explicit RobertaForSequenceClassificationImpl(const RobertaConfig& c);
  torch::Tensor forward(const torch::Tensor& input_ids, const torch::Tensor& attention_mask, Taps* taps = nullptr);
  RobertaModel roberta{nullptr};
  RobertaClassificationHead classifier{nullptr};
};
TORCH_MODULE(RobertaForSequenceClassification);

// dense -> GELU -> layer_norm -> decoder tied to the word embeddings, + bias (HF's RobertaLMHead).
class RobertaLMHeadImpl : public torch::nn::Module {
 public:
  explicit RobertaLMHeadImpl(const RobertaConfig& c);
  torch::Tensor forward(const torch::Tensor& features, const torch::Tensor& word_embeddings);
  torch::nn::Linear dense{nullptr};
  torch::nn::LayerNorm layer_norm{nullptr};
  torch::Tensor bias;  // lm_head.bias (= lm_head.decoder.bias)
};
TORCH_MODULE(RobertaLMHead);

class RobertaForMaskedLMImpl : public torch::nn::Module {
 public:
  explicit RobertaForMaskedLMImpl(const RobertaConfig& c);
  torch::Tensor forward(const torch::Tensor& input_ids, const torch::Tensor& attention_mask, Taps* taps = nullptr);
  RobertaModel roberta{nullptr};
  RobertaLMHead lm_head{nullptr};
};
TORCH_MODULE(RobertaForMaskedLM);

// Copies Hugging Face tensors into `model` by name, strictly: every missing, unexpected or
// mis-shaped tensor is named in one UsageError. Keys a Hugging Face file may hold or omit
// without meaning (the position_ids buffer, the tied lm_head.decoder.*) are accepted either way.
// With `new_heads` given, a task head the checkpoint lacks (classifier.*, lm_head.*) keeps its
// initialisation and its tensor names are listed there, and another task's head in the checkpoint
// is skipped: an MLM checkpoint fine-tuned for regression loads its encoder. With
// `reinit_mismatched` too, a head tensor of another shape keeps its initialisation and is listed
// there (transformers' ignore_mismatched_sizes).
void load_hf_state(torch::nn::Module& model, const std::map<std::string, torch::Tensor>& tensors,
                   const std::string& origin, std::vector<std::string>* new_heads = nullptr,
                   bool reinit_mismatched = false);

}  // namespace attnscope::models
