// One interface over every family's modules (RoBERTa, BERT, GPT-2; a bare body or a body with a
// task head), so that tasks, recorders and commands hold any of them. Registered submodule names
// stay Hugging Face's state-dict names; this class only adds what callers need beyond them.
#pragma once

#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include "models/config.h"
#include "models/taps.h"

namespace attnscope::models {

// What a module computes on top of its body.
enum class Head { None, Classifier, MaskedLM, CausalLM };

class TransformerImpl : public torch::nn::Module {
 public:
  explicit TransformerImpl(TransformerConfig config) : config_(std::move(config)) {}
  const TransformerConfig& config() const { return config_; }
  virtual Head head() const = 0;
  // transformers' class name: BertForSequenceClassification, GPT2LMHeadModel, RobertaModel, ...
  virtual std::string architecture() const = 0;

  // The body: input_ids [B,T], attention_mask [B,T] (1 = token, 0 = padding), token_type_ids
  // [B,T] (undefined: all 0) -> last hidden state [B,T,D] (GPT-2: after ln_f). Taps: embed.out,
  // attn.scores, attn.probs, block.out per layer; head gates.
  virtual torch::Tensor hidden(const torch::Tensor& input_ids, const torch::Tensor& attention_mask, Taps* taps = nullptr,
                               const torch::Tensor& token_type_ids = {}) = 0;
  // The whole model: a classifier's [B,num_labels]; a language model's logits [B,T,V]; a bare
  // body's hidden states. Taps: the body's and `pooled`, the sequence's readout vector.
  virtual torch::Tensor forward(const torch::Tensor& input_ids, const torch::Tensor& attention_mask, Taps* taps = nullptr,
                                const torch::Tensor& token_type_ids = {});
  // A language model's logits for hidden states [..., D] -> [..., V] (so that a loss can run on
  // the predicted positions only). UsageError for other heads.
  virtual torch::Tensor lm_logits(const torch::Tensor& hidden_states);
  // The readout vector of each sequence from hidden states [B,T,D]: the first token (<s>, [CLS])
  // for encoders, the last real token for causal models. [B,D]
  torch::Tensor readout(const torch::Tensor& hidden_states, const torch::Tensor& attention_mask) const;

  // The body's modules in order, for freezing: the embeddings, then each layer.
  virtual std::vector<std::shared_ptr<torch::nn::Module>> blocks() = 0;
  // The state-dict prefix of the body inside a model with a head ("roberta.", "bert.", "transformer.").
  virtual std::string body_prefix() const = 0;
  // Head tensors a checkpoint of another task may lack or hold (classifier.*, lm_head.*, cls.*,
  // score.*, BERT's pooler): loaded when present, initialised when absent, skipped when foreign.
  virtual bool is_head_tensor(const std::string& name) const = 0;
  // Tensors transformers may save or omit without meaning (position_ids buffers, tied decoders,
  // GPT-2's causal-mask buffers).
  virtual bool is_optional_tensor(const std::string& name) const = 0;

 protected:
  TransformerConfig config_;
};

using Transformer = std::shared_ptr<TransformerImpl>;

// A freshly initialised module of `architecture` for `config` (its family's), or UsageError
// naming the architectures the family builds.
Transformer build_transformer(const TransformerConfig& config, const std::string& architecture);
// The architectures a family builds, the one a task trains, and a bare body's.
std::vector<std::string> architectures_of(const std::string& model_type);
std::string classifier_architecture(const std::string& model_type);
std::string lm_architecture(const std::string& model_type);  // masked-LM (roberta, bert) or causal-LM (gpt2)
std::string body_architecture(const std::string& model_type);

// Copies Hugging Face tensors into `model` by name, strictly: every missing, unexpected or
// mis-shaped tensor is named in one UsageError; the model's optional tensors are accepted either
// way. With `new_heads` given, a task head the checkpoint lacks keeps its initialisation and its
// tensor names are listed there, and another task's head in the checkpoint is skipped: an MLM
// checkpoint fine-tuned for regression loads its body. With `reinit_mismatched` too, a head
// tensor of another shape keeps its initialisation and is listed (transformers'
// ignore_mismatched_sizes).
void load_hf_state(TransformerImpl& model, const std::map<std::string, torch::Tensor>& tensors, const std::string& origin,
                   std::vector<std::string>* new_heads = nullptr, bool reinit_mismatched = false);

// transformers' activations by config name: gelu (erf), gelu_new (tanh approximation), relu.
torch::Tensor activation(const std::string& name, const torch::Tensor& x);

}  // namespace attnscope::models
