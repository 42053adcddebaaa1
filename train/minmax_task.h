// The min/max task: data split, network, fused fast path and the end-of-run mechanism summary.
#pragma once

#include <string>

#include "core/core.h"
#include "data/data.h"
#include "models/models.h"
#include "train/task.h"

namespace attnscope::train {

// Per operator: how the trained heads implement it (the published mechanism).
class MinMaxTask : public Task {
 public:
  explicit MinMaxTask(const Config& config);

  torch::nn::Module& module() override { return *net_; }
  std::string describe() const override;
  int64_t train_size() const override { return split_.train.size(); }
  StepStats train_step(const torch::Tensor& idx) override;
  Metrics evaluate() override;
  int64_t num_layers() const override { return 1; }
  int64_t num_heads() const override { return config_.model.n_heads; }
  std::string model_json() const override;
  std::string task_name() const override { return traits(TaskKind::MinMax).name; }
  int64_t val_size() const override { return split_.val.size(); }
  torch::Tensor val_inputs(const torch::Tensor& idx) const override { return split_.val.inputs.index_select(0, idx); }
  torch::Tensor val_lengths(const torch::Tensor& idx) const override;
  void forward_taps(const torch::Tensor& inputs, models::Taps& taps) override;
  // (fast path: a buffer of the task's, overwritten by the next call)
  torch::Tensor val_attention(const torch::Tensor& idx, int64_t layer) override;
  torch::Tensor head_importance() override;
  // of the answer: the logit of the predicted token at "="
  Attribution attribution(const torch::Tensor& inputs) override;
  // For a recorder that knows it will ask for head_importance() after the coming evaluate(): that
  // evaluation's pass over the validation split computes it too (the same numbers, one forward
  // instead of two; the evaluation's own results are unchanged), and head_importance() returns it
  // while the weights are those it was computed at.
  void head_importance_with_next_evaluate() override { hi_with_next_eval_ = true; }
  // Both operators over a grid of (a, b) pairs spread across 0..N-1.
  ProbeSet default_probes(int64_t count) const override;
  ProbeSet parse_probes(const std::string& text, const std::string& origin) const override;
  int64_t pooled_dim() const override { return config_.model.d_model; }
  // minmax_grid_probs / minmax_grid_scores [2 (max, min), H, N, N (a, b), 3 (a, op, b)]: the
  // attention from "=" to each position over every (a, b) pair.
  std::map<std::string, std::vector<int64_t>> final_array_shapes() const override;
  std::map<std::string, std::vector<float>> final_arrays() override;
  void finish(const std::string& run_dir, const analysis::ProbeHistory* recorded) override;
  bool finish_reads_attention() const override { return true; }  // the mechanism over training

  // Computed with the plain module through its attn.probs tap, over all N^2 pairs.
  std::vector<analysis::MinMaxMechanism> mechanism();

 private:
  StepStats run(const data::Examples& ex, const torch::Tensor* idx, bool backward);
  ProbeSet describe_probes(const torch::Tensor& inputs) const;
  const Config& config_;
  data::MinMaxSplit split_;
  models::MinMaxNet net_{nullptr};
  bool fast_ = true;
  models::MinMaxAttentionBuffers val_attention_buffers_;  // reused by val_attention()
  bool hi_with_next_eval_ = false;
  torch::Tensor hi_raw_;               // [H] from the last evaluate() that computed it
  std::vector<int64_t> hi_versions_;   // the parameters' version counters then
};

}  // namespace attnscope::train
