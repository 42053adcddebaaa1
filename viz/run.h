// A run as viz sees it: the attention file, the metrics log, the mechanism summary, the config.
// Internal to viz/.
#pragma once

#include <nlohmann/json.hpp>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/core.h"
#include "store/store.h"

namespace attnscope::viz {

using store::kProbs;   // "attn.probs"
using store::kScores;  // "attn.scores"

struct Run {
  std::string dir, h5, name;
  // The header's task; in files written before the header named it, the one task that trains the
  // model (minmax_attention: "minmax"), else the model's name ("roberta").
  std::string task;
  const TaskTraits* traits = nullptr;  // task's traits; nullptr when `task` is a model's name
  bool molecules = false;              // SMILES probes: the task reads molecules (model "inputs": smiles; every task of the model does)
  std::unique_ptr<store::Reader> file;
  std::vector<store::EpochInfo> epochs;               // recorded epochs
  std::vector<std::map<std::string, double>> curves;  // metrics.jsonl rows (numbers only)
  nlohmann::json model;                               // the model JSON of the file header
  nlohmann::json mechanism;                           // mechanism.json (null if absent)
  int64_t L = 0, H = 0, P = 0, T = 0;

  const store::Header& header() const { return file->header(); }
  const store::Probes& probes() const { return file->probes(); }
  std::vector<std::string> tokens(int64_t probe) const;  // the real tokens of a probe
  int64_t length(int64_t probe) const { return probes().lengths[probe]; }
  bool has_site(const std::string& site) const;
  // Storage index of a recorded epoch number, a model layer id, a model head id (UsageError
  // listing what exists otherwise).
  int64_t epoch_index(int64_t epoch) const;
  int64_t layer_index(int64_t layer) const;
  int64_t head_index(int64_t head) const;
  std::string label() const;  // "run minmax · minmax_attention"
  bool is(TaskKind kind) const { return traits != nullptr && traits->kind == kind; }
};

// `input`: a run directory or an attention.h5 (the run directory is then its folder).
Run open_run(const std::string& input);

// The real-length [n,n] block of a [T,T] map.
std::vector<float> crop(const std::vector<float>& map, int64_t T, int64_t n);

}  // namespace attnscope::viz
