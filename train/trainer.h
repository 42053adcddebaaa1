// The training loop. It reads as a script: for each epoch, shuffle, step over batches, evaluate,
// track the best metric, and tell observers. Checkpoints, progress, metrics files and attention
// recording are observers (hooks/), not part of the loop.
#pragma once

#include <torch/torch.h>

#include <memory>
#include <vector>

#include "core/core.h"
#include "train/distributed.h"
#include "train/events.h"
#include "train/state.h"
#include "train/task.h"

namespace attnscope::train {

// AdamW over all of the module's parameters with every hyperparameter from `optim`.
std::unique_ptr<torch::optim::Optimizer> make_optimizer(const OptimConfig& optim, torch::nn::Module& module);

// Learning rate at optimizer step `step` (0-based) of `total_steps`.
double scheduled_lr(const OptimConfig& optim, int64_t step, int64_t total_steps);

// Optimizer steps per epoch for `n` training examples.
int64_t steps_per_epoch(int64_t n, int64_t batch_size);

class Trainer {
 public:
  Trainer(const Config& config, std::string run_dir, Task& task, torch::optim::Optimizer& optimizer,
          TrainState start = {});

  // Data-parallel training (not owned): each rank steps over its slice of every global batch
  // (train.batch_size examples per step over all ranks), gradients and step statistics are
  // summed over the ranks, rank 0 evaluates and the others receive its metrics.
  void set_dist(Dist* dist) { dist_ = dist; }

  // Observers are called in the order added; not owned.
  void add_observer(Observer* observer) { observers_.push_back(observer); }

  // Runs from state().epoch + 1 to train.epochs (or early stop). Throws TrainingError when the
  // loss becomes NaN/inf (observers have seen every completed epoch before that).
  EpochRecord run();

  const TrainState& state() const { return state_; }

 private:
  bool improved(double value) const;
  const Config& config_;
  std::string run_dir_;
  Task& task_;
  torch::optim::Optimizer& optimizer_;
  TrainState state_;
  std::vector<Observer*> observers_;
  Dist* dist_ = nullptr;
};

}  // namespace attnscope::train
