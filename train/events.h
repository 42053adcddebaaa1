// The trainer's events. Extensions (progress, metrics writer, checkpointer, recorders) are
// observers of these, never subclasses of the trainer.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <map>
#include <string>

#include "core/core.h"
#include "train/state.h"

namespace attnscope::train {

class Task;

struct EpochRecord {
  int64_t epoch = 0;
  int64_t step = 0;
  double train_loss = 0;
  double train_acc = 0;
  std::map<std::string, double> val;  // empty when this epoch was not evaluated
  double lr = 0;
  double seconds = 0;   // wall time of this epoch (training + evaluation)
  bool is_best = false; // best_metric improved at this epoch
  bool is_last = false; // the final epoch of the run (epochs reached or early stop)
  bool early_stop = false;
};

struct StepInfo {
  int64_t epoch = 0, step = 0, batch = 0, batches = 0;
  double loss = 0, acc = 0, lr = 0;
};

// What observers may look at (read) during a run.
struct TrainContext {
  const Config& config;
  const std::string& run_dir;
  Task& task;
  torch::optim::Optimizer& optimizer;
  const TrainState& state;
  // An observer that wrote a checkpoint calls this; every observer's on_checkpoint then runs
  // (e.g. so a recorder can flush its file in step with the checkpoint).
  std::function<void(const std::string& path)> checkpoint_written;
};

class Observer {
 public:
  virtual ~Observer() = default;
  virtual void on_train_begin(const TrainContext&) {}
  virtual void on_epoch_begin(const TrainContext&, int64_t epoch) {}
  virtual void on_step_end(const TrainContext&, const StepInfo&) {}
  virtual void on_eval_end(const TrainContext&, const EpochRecord&) {}
  virtual void on_epoch_end(const TrainContext&, const EpochRecord&) {}
  virtual void on_checkpoint(const TrainContext&, const std::string& path) {}
  virtual void on_train_end(const TrainContext&, const EpochRecord& last) {}
};

}  // namespace attnscope::train
