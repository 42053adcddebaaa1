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

// Probes from encoded inputs (ids with the model's special tokens), padded with the tokenizer's
// pad id; texts[i] is shown for probe i.
ProbeSet probes_from_ids(const data::Tokenizer& tok, const std::vector<std::vector<int64_t>>& ids,
                         const std::vector<std::string>& texts, const std::vector<int64_t>& source);
// Probes from texts or SMILES, encoded with the model's special tokens and cut to `limit`.
ProbeSet molecule_probes(const data::Tokenizer& tok, int64_t limit, const std::vector<std::string>& smiles,
                         const std::vector<int64_t>& source);
// Probes from text, one SMILES per line (# comments and blank lines skipped; every SMILES must
// parse); `origin` names the source in errors.
ProbeSet parse_smiles_probes(const data::Tokenizer& tok, int64_t limit, const std::string& text,
                             const std::string& origin);
// Probes from text, one input per line (as written; blank lines skipped).
ProbeSet parse_text_probes(const data::Tokenizer& tok, int64_t limit, const std::string& text, const std::string& origin);

// The forward that recorders see on padded inputs [B,T] (attention mask and, for BERT's sentence
// pairs, token types derived from the ids): a classifier's (its taps, pooled = the head's input),
// else the body's with its readout (<s> / [CLS], a causal model's last real token) as the pooled
// vector. A causal model's padding is the trailing pad ids only (GPT-2's pad is <|endoftext|>,
// which also separates documents inside a block). Eval mode and no gradients are the caller's.
void forward_inputs(models::TransformerImpl& model, const data::Tokenizer& tok, const torch::Tensor& inputs,
                    models::Taps& taps);
// Gradient attribution (train/task.h: Attribution) of `model`'s prediction for `inputs`, with
// autograd on and no parameter gradients left behind: a classifier head's, else undefined.
Attribution attribution_of(models::TransformerImpl& model, const data::Tokenizer& tok, const torch::Tensor& inputs);
// The attention mask and token types forward_inputs gives the model for `inputs`.
torch::Tensor attention_mask_of(const models::TransformerImpl& model, const data::Tokenizer& tok, const torch::Tensor& inputs);
torch::Tensor token_types_of(const models::TransformerImpl& model, const data::Tokenizer& tok, const torch::Tensor& inputs);

// The attention file's model description (name: the family, "roberta", "bert", "gpt2"; inputs:
// "smiles" or "text", so that viz draws molecules for SMILES only); `extra` keys are added (a
// snapshot's architecture and source).
std::string transformer_model_json(const models::TransformerConfig& c, const std::string& task,
                                   const std::vector<std::string>& targets, const std::string& tokenizer, bool text,
                                   const std::map<std::string, std::string>& extra = {});

// A task over a loaded model alone (nothing to train): what the attention recorder needs to
// snapshot a frozen model's attention on given inputs. The inputs last parsed (parse_probes) are
// its validation split, so per-head metrics are computed over them.
// `text_input`: parse_probes reads text lines (else SMILES, each checked by RDKit).
// `validation`: inputs the per-head metrics are computed over instead (e.g. a data set's
// validation split; encoded with the model's special tokens, cut to its positions).
std::unique_ptr<Task> make_model_task(models::LoadedModel& model, bool text_input = false,
                                      const std::vector<std::string>& validation = {});

}  // namespace attnscope::train
