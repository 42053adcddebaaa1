// The training loop of train/trainer.h.
#include "train/trainer.h"

#include <chrono>
#include <cmath>
#include <sstream>

#include "core/core.h"
#include "data/data.h"

namespace attnscope::train {

std::unique_ptr<torch::optim::Optimizer> make_optimizer(const OptimConfig& o, torch::nn::Module& module) {
  auto opts = torch::optim::AdamWOptions(o.lr)
                  .betas({o.betas.at(0), o.betas.at(1)})
                  .eps(o.eps)
                  .weight_decay(o.weight_decay);
  if (o.no_decay.empty()) return std::make_unique<torch::optim::AdamW>(module.parameters(), opts);
  // Hugging Face's grouping: parameters whose names end with a no_decay suffix get no weight decay
  std::vector<torch::Tensor> decay, plain;
  for (const auto& p : module.named_parameters()) {
    const std::string& name = p.key();
    const bool skip = std::any_of(o.no_decay.begin(), o.no_decay.end(), [&](const std::string& suffix) {
      return name.size() >= suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
    });
    (skip ? plain : decay).push_back(p.value());
  }
  auto no_wd = opts;
  no_wd.weight_decay(0.0);
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(decay, std::make_unique<torch::optim::AdamWOptions>(opts));
  groups.emplace_back(plain, std::make_unique<torch::optim::AdamWOptions>(no_wd));
  return std::make_unique<torch::optim::AdamW>(groups, opts);
}

double scheduled_lr(const OptimConfig& o, int64_t step, int64_t total_steps) {
  if (o.warmup_steps > 0 && step < o.warmup_steps) {
    return o.lr * static_cast<double>(step + 1) / static_cast<double>(o.warmup_steps);
  }
  if (o.schedule == "linear") {
    const double left = static_cast<double>(total_steps - step);
    const double span = static_cast<double>(std::max<int64_t>(1, total_steps - o.warmup_steps));
    return o.lr * std::max(0.0, left / span);
  }
  return o.lr;
}

int64_t steps_per_epoch(int64_t n, int64_t batch_size) {
  if (batch_size <= 0 || batch_size >= n) return 1;
  return (n + batch_size - 1) / batch_size;
}

Trainer::Trainer(const Config& config, std::string run_dir, Task& task,
                 torch::optim::Optimizer& optimizer, TrainState start)
    : config_(config), run_dir_(std::move(run_dir)), task_(task), optimizer_(optimizer), state_(start) {}

bool Trainer::improved(double value) const {
  if (std::isnan(state_.best_value)) return true;
  const double delta = config_.train.min_delta;
  return config_.train.best_mode == "min" ? value < state_.best_value - delta
                                          : value > state_.best_value + delta;
}

EpochRecord Trainer::run() {
  using clock = std::chrono::steady_clock;
  const auto& tc = config_.train;
  TrainContext ctx{config_, run_dir_, task_, optimizer_, state_, {}};
  ctx.checkpoint_written = [&](const std::string& path) {
    for (auto* o : observers_) o->on_checkpoint(ctx, path);
  };
  const int64_t n = task_.train_size();
  const int64_t total_steps = tc.epochs * steps_per_epoch(n, tc.batch_size);
  const bool full_batch = tc.batch_size <= 0 || tc.batch_size >= n;

  if (dist_ != nullptr) {
    dist_->attach(task_.module());  // parameters from rank 0; gradients averaged from now on
    if (dist_->rank() > 0) {        // each rank its own dropout stream (rank 0 keeps the run's)
      torch::manual_seed(static_cast<uint64_t>(config_.run.seed) * 1000003u + static_cast<uint64_t>(dist_->rank()) * 7919u +
                         static_cast<uint64_t>(state_.step));
    }
  }
  for (auto* o : observers_) o->on_train_begin(ctx);
  EpochRecord rec;
  rec.epoch = state_.epoch;
  for (int64_t epoch = state_.epoch + 1; epoch <= tc.epochs; ++epoch) {
    const auto t0 = clock::now();
    for (auto* o : observers_) o->on_epoch_begin(ctx, epoch);
    task_.module().train();
    task_.begin_epoch(epoch);
    const auto order = full_batch ? torch::arange(n, torch::kLong)
                                  : data::epoch_order(n, static_cast<uint64_t>(config_.run.seed), epoch);
    const auto batches = task_.epoch_batches(order, tc.batch_size);
    StepStats total;
    bool has_accuracy = true;
    double lr = 0;
    for (size_t b = 0; b < batches.size(); ++b) {
      lr = scheduled_lr(config_.optim, state_.step, total_steps);
      for (auto& group : optimizer_.param_groups()) {
        static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);
      }
      optimizer_.zero_grad();
      // data-parallel: this rank's slice of the batch, gradients and statistics summed over ranks
      const StepStats s = dist_ ? dist_->train_step(task_, batches[b]) : task_.train_step(batches[b]);
      if (!std::isfinite(s.loss_sum)) {
        std::ostringstream m;
        m << "training loss is " << s.loss_sum << " at epoch " << epoch << ", step " << state_.step + 1
          << "; stopping. The last good checkpoint is kept in " << run_dir_ << "/checkpoints/ "
          << "(last completed epoch " << state_.epoch << "); lower optim.lr or set optim.grad_clip";
        throw TrainingError(m.str());
      }
      if (config_.optim.grad_clip > 0) {
        torch::nn::utils::clip_grad_norm_(task_.module().parameters(), config_.optim.grad_clip);
      }
      optimizer_.step();
      ++state_.step;
      total.loss_sum += s.loss_sum;
      total.correct += s.correct;
      has_accuracy = has_accuracy && s.has_accuracy;
      total.count += s.count;
      StepInfo info{epoch, state_.step, static_cast<int64_t>(b) + 1, static_cast<int64_t>(batches.size()),
                    s.loss_sum / std::max<int64_t>(1, s.count),
                    static_cast<double>(s.correct) / std::max<int64_t>(1, s.count), lr};
      for (auto* o : observers_) o->on_step_end(ctx, info);
    }

    rec = EpochRecord{};
    rec.epoch = epoch;
    rec.step = state_.step;
    rec.train_loss = total.loss_sum / std::max<int64_t>(1, total.count);
    rec.train_acc = has_accuracy ? static_cast<double>(total.correct) / std::max<int64_t>(1, total.count) : std::nan("");
    rec.lr = lr;
    rec.is_last = epoch == tc.epochs;
    if (epoch % tc.eval_every == 0 || rec.is_last) {
      task_.module().eval();
      rec.val = dist_ ? dist_->evaluate(task_) : task_.evaluate();  // data-parallel: rank 0's, sent to all
      const double value = tc.best_metric == "train_loss" ? rec.train_loss
                           : tc.best_metric == "train_acc"  ? rec.train_acc
                                                            : rec.val.at(tc.best_metric);
      if (!std::isfinite(value)) {
        throw TrainingError(tc.best_metric + " is " + std::to_string(value) + " at epoch " +
                            std::to_string(epoch) + "; stopping with the last good checkpoint kept");
      }
      if (improved(value)) {
        state_.best_value = value;
        state_.best_epoch = epoch;
        state_.bad_evals = 0;
        rec.is_best = true;
      } else {
        ++state_.bad_evals;
      }
      if (tc.patience > 0 && state_.bad_evals >= tc.patience) {
        rec.early_stop = true;
        rec.is_last = true;
      }
      for (auto* o : observers_) o->on_eval_end(ctx, rec);
    }
    state_.epoch = epoch;
    rec.seconds = std::chrono::duration<double>(clock::now() - t0).count();
    state_.elapsed_seconds += rec.seconds;
    for (auto* o : observers_) o->on_epoch_end(ctx, rec);
    if (dist_ != nullptr) dist_->barrier();  // rank 0's checkpoint of this epoch is complete
    if (rec.early_stop) break;
  }
  for (auto* o : observers_) o->on_train_end(ctx, rec);
  return rec;
}

}  // namespace attnscope::train
