// A Task binds a dataset, a model and a loss: the trainer drives it without knowing which it is.
#pragma once

#include <torch/torch.h>

#include <map>
#include <memory>
#include <string>

#include "core/config.h"
#include "models/taps.h"

namespace attnscope::train {

struct StepStats {
  double loss_sum = 0;   // summed over the batch's examples
  int64_t correct = 0;
  int64_t count = 0;
};

using Metrics = std::map<std::string, double>;

class Task {
 public:
  virtual ~Task() = default;

  virtual torch::nn::Module& module() = 0;
  virtual std::string describe() const = 0;  // one line: model, parameters, data sizes
  virtual int64_t train_size() const = 0;

  // Forward + backward over training examples `idx`; gradients of the batch-mean loss are
  // accumulated into the module's parameters.
  virtual StepStats train_step(const torch::Tensor& idx) = 0;

  // Metrics over the whole validation split, prefixed "val_" (val_loss, val_acc, ...).
  virtual Metrics evaluate() = 0;

  // A plain forward of the module on validation examples `idx` with taps (for recorders).
  virtual void probe(const torch::Tensor& idx, models::Taps& taps) = 0;

  // End-of-run analysis printed to the log and written into the run directory.
  virtual void finish(const std::string& run_dir) {}
};

// Builds the task named by config.data.task, initialised from `gen` (seeded with run.seed).
std::unique_ptr<Task> make_task(const Config& config);

}  // namespace attnscope::train
