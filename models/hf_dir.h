// Hugging Face model directories of every family: load (config.json + model.safetensors or
// pytorch_model.bin + tokenizer files) and export (what transformers' from_pretrained reads back).
#pragma once

#include <torch/torch.h>

#include <map>
#include <string>
#include <vector>

#include "models/bert.h"
#include "models/gpt2.h"
#include "models/transformer.h"

namespace attnscope::models {

struct HfModel {
  std::string dir;
  TransformerConfig config;  // family, sizes, labels and problem_type
  // transformers' class name: a sequence classifier, a language model or a bare body (which is
  // also what a checkpoint of a head attnscope does not know loads as: its body, attention still
  // recorded)
  std::string architecture;
  Transformer model;                   // the module
  std::vector<std::string> new_heads;  // head tensors initialised because the file lacks them
  std::vector<std::string> unused;     // tensors of an unknown head, not loaded
  std::string declared;                // the architecture config.json names ("" = none)
  torch::nn::Module& module() { return *model; }
  bool is_classifier() const { return model && model->head() == Head::Classifier; }
  bool is_lm() const { return model && (model->head() == Head::MaskedLM || model->head() == Head::CausalLM); }
};

// The weights of an HF directory: model.safetensors if present, else pytorch_model.bin
// (UsageError naming the directory when neither exists).
std::map<std::string, torch::Tensor> read_hf_weights(const std::string& dir);

// Loads `dir` as `architecture` ("" = the one config.json names; when it names none, the head its
// weights hold: a classifier's, a language model's, else the body alone). Another head of the
// family (BertForTokenClassification, ...) loads its body and lists the head's tensors in
// `unused`. A classification head the checkpoint lacks is initialised and listed in new_heads.
HfModel load_hf_model(const std::string& dir, const std::string& architecture = "");

// A freshly initialised model of `architecture` of config's family.
HfModel build_hf_model(const TransformerConfig& config, const std::string& architecture);

// The config.json of a model (what transformers reads), labels and problem_type from `config`.
std::string hf_config_json(const TransformerConfig& config, const std::string& architecture);

// Writes config.json, model.safetensors and the tokenizer's files from tokenizer_dir (vocab.json +
// merges.txt for byte-level BPE, vocab.txt for WordPiece; tokenizer_config.json and
// special_tokens_map.json as transformers writes them) into out_dir (created; files written
// atomically). Without merges.txt beside a vocab.json (attnscope's atom-level SMILES tokenizer)
// vocab.json is copied and tokenizer_config.json says that transformers has no equivalent.
void export_hf_model(torch::nn::Module& model, const TransformerConfig& config, const std::string& architecture,
                     const std::string& tokenizer_dir, const std::string& out_dir);

}  // namespace attnscope::models
