// `attnscope snapshot` (record a frozen model's attention on given inputs) and
// `attnscope metrics` (print the per-head metrics of a recorded run).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "cli/model_commands.h"
#include "core/core.h"

namespace attnscope::cli {

struct SnapshotArgs {
  SmilesInput input;                 // SMILES or text models: the inputs
  std::string model;                 // checkpoint .pt or run directory
  std::vector<std::string> ids;      // one example per entry: "3 128 5 130"
  std::string ids_file;
  std::vector<std::string> sites;    // empty: attn.probs, attn.scores
  std::string out;
};
int snapshot_command(const SnapshotArgs& args);

// The recorder's settings for a snapshot (and track): every layer and head, the sites asked for
// (attn.probs, attn.scores; UsageError for others); per-head metrics over the task's validation
// split when `metrics`.
void snapshot_hooks(Config& config, const std::vector<std::string>& sites, bool metrics);

struct MetricsArgs {
  std::string path;  // run directory or .h5
  bool synthetic = false;  // the seven canonical patterns instead of a file
  std::optional<int64_t> length;  // --synthetic: tokens per map (12)
  std::string out;                // --synthetic: also draw them into OUT/synthetic_patterns.png
  std::optional<int64_t> epoch;   // of a file; none: the last epoch with metrics
  bool csv = false;               // of a file
};
// UsageError naming each option given that does not apply: a run or file, --epoch and --csv with
// --synthetic (which reads no run), --length and --out without it.
int metrics_command(const MetricsArgs& args);

}  // namespace attnscope::cli
