// Hugging Face model directories: load (config.json + model.safetensors or pytorch_model.bin +
// vocab.json/merges.txt) and export (what transformers' from_pretrained reads back).
#pragma once

#include <torch/torch.h>

#include <string>
#include <vector>

#include "models/roberta.h"

namespace attnscope::models {

inline constexpr const char* kRobertaClassifier = "RobertaForSequenceClassification";
inline constexpr const char* kRobertaMaskedLM = "RobertaForMaskedLM";
inline constexpr const char* kRobertaEncoder = "RobertaModel";

struct HfModel {
  std::string dir;
  RobertaConfig config;  // labels and problem_type included
  // RobertaForSequenceClassification | RobertaForMaskedLM | RobertaModel (a bare encoder, or a
  // checkpoint whose head attnscope does not know: its encoder, attention still recorded)
  std::string architecture;
  RobertaForSequenceClassification classifier{nullptr};  // when architecture is the classifier
  RobertaForMaskedLM mlm{nullptr};                        // when architecture is the MLM
  RobertaModel encoder{nullptr};                          // when architecture is RobertaModel
  std::vector<std::string> new_heads;  // head tensors initialised because the file lacks them
  std::vector<std::string> unused;     // tensors of an unknown head, not loaded
  std::string declared;                // the architecture config.json names ("" = none)
  torch::nn::Module& module();
  RobertaModel& roberta();  // the encoder, whichever the architecture
};

// The weights of an HF directory: model.safetensors if present, else pytorch_model.bin
// (UsageError naming the directory when neither exists).
std::map<std::string, torch::Tensor> read_hf_weights(const std::string& dir);

// Loads `dir` as `architecture` ("" = the one config.json names; when it names none, the head its
// weights hold: classifier.* or lm_head.*, else the encoder alone). Another RoBERTa head
// (RobertaForTokenClassification, ...) loads its encoder (RobertaModel) and lists the head's
// tensors in `unused`. A classification head the checkpoint lacks is initialised and listed in
// new_heads.
HfModel load_hf_model(const std::string& dir, const std::string& architecture = "");

// A freshly initialised RoBERTa of `architecture` (classifier, masked-LM or bare encoder).
HfModel build_roberta(const RobertaConfig& config, const std::string& architecture);

// The config.json of a model (what transformers reads), labels and problem_type from `config`.
std::string hf_config_json(const RobertaConfig& config, const std::string& architecture);

// Writes config.json, model.safetensors, vocab.json, merges.txt (copied from tokenizer_dir),
// tokenizer_config.json and special_tokens_map.json into out_dir (created; files written
// atomically). Without merges.txt in tokenizer_dir (attnscope's
// atom-level SMILES tokenizer) vocab.json is copied and tokenizer_config.json says that
// transformers has no equivalent tokenizer.
void export_hf_model(torch::nn::Module& model, const RobertaConfig& config, const std::string& architecture,
                     const std::string& tokenizer_dir, const std::string& out_dir);

}  // namespace attnscope::models
