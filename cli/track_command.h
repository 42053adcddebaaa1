// `attnscope track`: attention across a series of checkpoints trained anywhere (a Hugging Face
// Trainer output directory, Hugging Face directories, attnscope checkpoints or a run's kept
// checkpoints), written as a run's attention.h5 with the checkpoint as the epoch axis.
#pragma once

#include <string>
#include <vector>

#include "cli/model_commands.h"

namespace attnscope::cli {

struct TrackArgs {
  std::vector<std::string> checkpoints;  // one Trainer output / run directory, or a list of models
  SmilesInput input;                     // the probes (else the first --probes rows of --data)
  std::string data;                      // CSV (smiles or text column) or a config (its validation split)
  std::string column;                    // --data CSV: the input column (default smiles, else text)
  int64_t probes = 32;                   // probes taken from --data when no inputs are given
  std::string out;                       // DIR (DIR/attention.h5, metrics.jsonl, track.json) or FILE.h5
  std::vector<std::string> sites;        // empty: attn.probs, attn.scores
  bool resume = false;
  bool force = false;
};
int track_command(const TrackArgs& args);

// One checkpoint of a series, in order.
struct TrackEntry {
  std::string path;   // what load_model reads
  std::string label;  // checkpoint-500, epoch-000004.pt, ...
  int64_t step = -1;  // optimizer steps (-1: unknown)
  double epoch = -1;  // training epoch (Trainer: fractional; -1: unknown)
  double loss = -1, eval_loss = -1;  // logged by the trainer at or before this step (-1: unknown)
  std::string tokenizer_dir;  // where its tokenizer files are ("" = its own)
};
// The series CHECKPOINTS name (UsageError naming what was expected otherwise).
std::vector<TrackEntry> track_entries(const std::vector<std::string>& checkpoints);

}  // namespace attnscope::cli
