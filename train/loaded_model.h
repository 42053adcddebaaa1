// Any model a command takes, through one loader: a Hugging Face model directory, an attnscope run
// directory (its best checkpoint, else last) or one checkpoint file of a run, with its tokenizer,
// labels and (a run's regression) target statistics. A run directory is self-sufficient: nothing
// of its config's data paths is read. And the molecule probes and forwards that recorders see,
// shared by the training task and a frozen model's snapshot.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "data/molecule_tokenizer.h"
#include "models/hf_dir.h"
#include "train/task.h"

namespace attnscope::train {

struct LoadedModel {
  std::string path;     // as given
  std::string origin;   // where the weights came from (the directory or the checkpoint file)
  std::string run_dir;  // an attnscope run (or the run of a checkpoint); "" for a Hugging Face directory
  std::string task;     // the run's data.task ("" for a Hugging Face directory)
  models::HfModel hf;   // config (labels, problem_type), architecture, module
  std::optional<data::MoleculeTokenizer> tokenizer;  // absent when the directory has no vocab.json
  std::vector<double> mean, stdev;  // a run's regression: outputs * stdev + mean = original units
  int64_t epoch = 0, step = 0;      // the checkpoint's (0 for a Hugging Face directory)
  const models::RobertaConfig& config() const { return hf.config; }
  const data::MoleculeTokenizer& tok() const;  // UsageError naming the directory when absent
};

// `what` names the source in errors ("--model", "model.pretrained"). UsageError (exit 2) naming
// the path for anything that is not one of the three, or whose files do not fit together.
LoadedModel load_model(const std::string& path, const std::string& what = "--model");

// The folder that holds a model's config.json and tokenizer files: a run's (for a run directory
// or one of its checkpoints), else `path` itself (a Hugging Face model or tokenizer directory).
std::string model_files_dir(const std::string& path);

// Whether `path` is a molecule model (Hugging Face directory, molecule run or its checkpoint)
// rather than a min/max run.
bool is_molecule_model(const std::string& path);

// Probes from SMILES: <s> tokens </s> cut to `limit`, padded with the tokenizer's pad id.
ProbeSet molecule_probes(const data::MoleculeTokenizer& tok, int64_t limit, const std::vector<std::string>& smiles,
                         const std::vector<int64_t>& source);
// Probes from text, one SMILES per line (# comments and blank lines skipped; every SMILES must
// parse); `origin` names the source in errors.
ProbeSet parse_smiles_probes(const data::MoleculeTokenizer& tok, int64_t limit, const std::string& text,
                             const std::string& origin);

// The forward that recorders see: a classifier's (its taps, pooled = the head's input), or an
// encoder's with <s>'s last hidden state as the pooled vector. Eval mode and no gradients are
// the caller's.
void forward_molecules(models::RobertaForSequenceClassification* model, models::RobertaModel* encoder,
                       const torch::Tensor& inputs, int64_t pad, models::Taps& taps);

// The attention file's model description of a RoBERTa (name "roberta": viz draws molecules for
// it); `extra` keys are added (a snapshot's architecture and source).
std::string roberta_model_json(const models::RobertaConfig& c, const std::string& task,
                               const std::vector<std::string>& targets, const std::string& tokenizer,
                               const std::map<std::string, std::string>& extra = {});

// A task over a loaded model alone (nothing to train): what the attention recorder needs to
// snapshot a frozen model's attention on given inputs. The inputs last parsed (parse_probes) are
// its validation split, so per-head metrics are computed over them.
std::unique_ptr<Task> make_model_task(LoadedModel& model);

}  // namespace attnscope::train
