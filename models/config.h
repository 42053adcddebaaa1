// The configuration of every model family, read from and written as Hugging Face's config.json.
// One struct for RoBERTa, BERT and GPT-2: their sizes mean the same things under different keys
// (GPT-2's n_embd is hidden_size, n_layer num_hidden_layers, ...), so tasks, recorders and
// commands read one set of fields whatever the family.
#pragma once

#include <torch/torch.h>

#include <map>
#include <string>
#include <vector>

namespace attnscope::models {

struct TransformerConfig {
  std::string model_type = "roberta";  // config.json's model_type: roberta, bert, gpt2
  int64_t vocab_size = 767;
  int64_t hidden_size = 768;            // GPT-2: n_embd
  int64_t num_hidden_layers = 6;        // GPT-2: n_layer
  int64_t num_attention_heads = 12;     // GPT-2: n_head
  int64_t intermediate_size = 3072;     // GPT-2: n_inner (null: 4 x n_embd)
  int64_t max_position_embeddings = 514;  // GPT-2: n_positions
  int64_t type_vocab_size = 1;          // GPT-2: none (0)
  int64_t pad_token_id = 1;             // -1: none (GPT-2 without one)
  int64_t bos_token_id = 0, eos_token_id = 2;
  double layer_norm_eps = 1e-5;         // GPT-2: layer_norm_epsilon
  double hidden_dropout_prob = 0.1;     // GPT-2: resid_pdrop
  double attention_probs_dropout_prob = 0.1;  // GPT-2: attn_pdrop
  double embedding_dropout = 0.1;       // GPT-2: embd_pdrop (BERT / RoBERTa: hidden_dropout_prob)
  double classifier_dropout = -1;       // BERT / RoBERTa's classifier_dropout (< 0: null, hidden_dropout_prob)
  std::string hidden_act = "gelu";      // gelu (erf), gelu_new (tanh approximation), relu; GPT-2: activation_function
  bool scale_attn_by_inverse_layer_idx = false;  // GPT-2
  // attnscope's GPT-2 variants for mechanism experiments (config.json keys attnscope_attn_only,
  // attnscope_position_embedding). Attention-only blocks skip the MLP, whose weights stay zero
  // (so that transformers computes the same model from an export); rotary positions (RoFormer,
  // as GPT-NeoX applies them to the whole head) replace wpe, which stays zero, and cannot be
  // exported to GPT-2.
  bool attn_only = false;
  std::string position_embedding = "absolute";  // absolute | rotary
  int64_t num_labels = 1;
  // As transformers' PretrainedConfig: the label names by id (empty = LABEL_0, LABEL_1, ...),
  // label2id as the file gave it (empty = the inverse of id2label), and problem_type: "",
  // regression, single_label_classification or multi_label_classification.
  std::vector<std::string> id2label;
  std::map<std::string, int64_t> label2id;
  std::string problem_type;
  std::string label(int64_t id) const;  // id2label[id], else LABEL_<id>
  bool causal() const { return model_type == "gpt2"; }
};

// The families config.json may name (roberta, bert, gpt2).
const std::vector<std::string>& known_model_types();

// A family's defaults (transformers' own: BERT pad 0, two token types, eps 1e-12; GPT-2's
// gelu_new, eps 1e-5, <|endoftext|> 50256), before a config.json or YAML overlays them.
TransformerConfig default_config(const std::string& model_type);

// Reads a Hugging Face config.json as transformers' PretrainedConfig does: num_labels is the size
// of id2label when present, else num_labels, else 2; problem_type one of transformers' three.
// UsageError naming the file and every bad key at once (an unknown model_type lists the known).
TransformerConfig read_hf_config(const std::string& path);

// UsageError naming `config_path` and every key whose size differs from the tensors a weight
// file holds (vocabulary, width, positions, token types, feed-forward width, layers): checked
// before a model is built from the config.
void check_config_fits(const TransformerConfig& c, const std::map<std::string, torch::Tensor>& tensors,
                       const std::string& config_path);

// The most tokens (specials included) the model takes: RoBERTa's positions start at
// pad_token_id + 1, so max_position_embeddings - pad_token_id - 1; BERT's and GPT-2's at 0.
int64_t max_tokens(const TransformerConfig& c);

// How the head's outputs read (transformers' loss and TextClassificationPipeline): "regression"
// (problem_type regression, or one label without a problem_type), "multi_label_classification"
// (sigmoid per label) or "single_label_classification" (softmax over the labels).
std::string effective_problem_type(const TransformerConfig& c);

}  // namespace attnscope::models
