// Checkpoints: model, optimizer state, training state, RNG state, resolved config and its hash,
// in one file written atomically (temp file + rename). The file is a torch pickle of a dict, so
// Python's torch.load() opens it too; "model" is a plain state dict.
#pragma once

#include <torch/torch.h>

#include <limits>
#include <string>

#include "core/core.h"

namespace attnscope::models {

// Training state saved beside the model and optimizer in every checkpoint, so a run resumes
// exactly: the epoch/step reached, the best metric so far, early-stopping counter, RNG state.
struct TrainState {
  int64_t epoch = 0;        // last completed epoch (0 = none)
  int64_t step = 0;         // optimizer steps taken
  double best_value = std::numeric_limits<double>::quiet_NaN();  // NaN until first evaluation
  int64_t best_epoch = 0;
  int64_t bad_evals = 0;    // evaluations since the last improvement
  double elapsed_seconds = 0;  // training wall time before this process (for logs)
};

constexpr int64_t kCheckpointFormat = 1;

struct CheckpointInfo {
  TrainState state;
  std::string config_yaml;
  uint64_t config_hash = 0;
  std::string producer;  // attnscope version that wrote it
};

void save_checkpoint(const std::string& path, torch::nn::Module& model,
                     torch::optim::Optimizer& optimizer, const TrainState& state,
                     const Config& config);

// The resolved config stored in a checkpoint (to rebuild its model); UsageError if unreadable.
Config checkpoint_config(const std::string& path);

// Loads strictly: every missing, unexpected or mis-shaped tensor is named in one UsageError.
// `optimizer` may be null (weights only). Restores the CPU RNG state when `restore_rng`.
CheckpointInfo load_checkpoint(const std::string& path, torch::nn::Module& model,
                               torch::optim::Optimizer* optimizer, bool restore_rng);

// The checkpoint that stands for a run directory: checkpoints/best.pt, else checkpoints/last.pt
// (that path even when neither exists: callers name it in their error).
std::string run_checkpoint(const std::string& run_dir);

}  // namespace attnscope::models
