// The molecule probes and forwards that recorders see, shared by the training tasks and a frozen
// model's snapshot, and a task over a loaded model alone (models::load_model: a Hugging Face
// directory, a run or a checkpoint) for snapshot / track-style commands.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "models/models.h"
#include "train/task.h"

namespace attnscope::train {

// Probes from SMILES: <s> tokens </s> cut to `limit`, padded with the tokenizer's pad id.
ProbeSet molecule_probes(const data::Tokenizer& tok, int64_t limit, const std::vector<std::string>& smiles,
                         const std::vector<int64_t>& source);
// Probes from text, one SMILES per line (# comments and blank lines skipped; every SMILES must
// parse); `origin` names the source in errors.
ProbeSet parse_smiles_probes(const data::Tokenizer& tok, int64_t limit, const std::string& text,
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
std::unique_ptr<Task> make_model_task(models::LoadedModel& model);

}  // namespace attnscope::train
