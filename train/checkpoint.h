// Checkpoints: model, optimizer state, training state, RNG state, resolved config and its hash,
// in one file written atomically (temp file + rename). The file is a torch pickle of a dict, so
// Python's torch.load() opens it too; "model" is a plain state dict.
#pragma once

#include <torch/torch.h>

#include <string>

#include "core/core.h"
#include "train/state.h"

namespace attnscope::train {

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

// An attnscope run directory: its config.yaml and a checkpoints/ folder.
bool is_run_dir(const std::string& path);

// The checkpoint that stands for a run directory: checkpoints/best.pt, else checkpoints/last.pt
// (that path even when neither exists: callers name it in their error).
std::string run_checkpoint(const std::string& run_dir);

}  // namespace attnscope::train
