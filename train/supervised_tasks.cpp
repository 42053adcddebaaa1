// The supervised molecule tasks: regression, (multi-task) binary classification, multi-class
// (train/molecule_tasks.h).
#include <cmath>
#include <filesystem>
#include <set>
#include <sstream>

#include "core/core.h"
#include "train/metrics.h"
#include "train/molecule_tasks.h"

namespace attnscope::train {
namespace fs = std::filesystem;

SupervisedTask::SupervisedTask(const Config& config, TaskKind kind) : MoleculeTask(config, kind) {}

void SupervisedTask::build_model(int64_t num_labels) {
  // the head's labels as transformers names them (config.json's id2label, problem_type)
  auto& rc = d_.rc;
  rc.num_labels = num_labels;
  for (int64_t k = 0; k < num_labels; ++k) rc.id2label.push_back(label_name(k));
  rc.problem_type = d_.task.problem_type;
  torch::manual_seed(static_cast<uint64_t>(config_.run.seed));
  model_ = models::build_transformer(rc, models::classifier_architecture(rc.model_type));
  init_weights();
}

void SupervisedTask::describe_task(std::ostream& s) const {
  s << config_.data.task << " of " << config_.data.targets.size() << " target(s)";
  if (d_.task.kind == TaskKind::Multiclass) s << " (" << d_.rc.num_labels << " classes)";
  s << " on " << d_.table.size() << (d_.text ? " texts of " : " molecules of ") << config_.data.csv << " ("
    << d_.table.dropped << (d_.text ? "" : " unparsable") << " dropped, " << d_.truncated << " truncated); " << d_.split.method << " split " << d_.split.train.size()
    << "/" << d_.split.val.size() << "/" << d_.split.test.size();
}

StepStats SupervisedTask::train_step(const torch::Tensor& idx) {
  const auto rows = d_.rows_of(d_.split.train, idx);
  const auto b = d_.make_batch(rows, config_.data.augment);
  StepStats s;
  const auto out = model_->forward(b.ids, b.mask, nullptr, b.type_ids);
  const auto known = ~b.target.isnan();
  const int64_t correct = batch_correct(out, b.target);
  if (correct >= 0) s.correct = correct;
  const auto per = per_target_loss(out, b.target) * known.to(out.dtype());
  const auto count = known.sum().item<int64_t>();
  const auto loss = per.sum() / std::max<int64_t>(1, count);
  loss.backward();
  s.loss_sum = loss.item<double>() * static_cast<double>(count);
  s.count = count;
  s.has_accuracy = correct >= 0;
  return s;
}

double SupervisedTask::loss_weight(const torch::Tensor& idx) const {
  const auto rows = d_.rows_of(d_.split.train, idx);
  const int64_t K = d_.num_targets();
  double known = 0;
  for (int64_t r : rows) {
    for (int64_t k = 0; k < K; ++k) known += std::isnan(d_.table.targets[r * K + k]) ? 0 : 1;
  }
  return known;
}

bool SupervisedTask::attention_with_next_evaluate(const std::vector<int64_t>& layers, AttentionSink sink) {
  sink_layers_ = layers;
  sink_ = std::move(sink);
  return true;
}

torch::Tensor SupervisedTask::head_importance_of(models::TransformerImpl& model) const {
  const int64_t L = d_.rc.num_hidden_layers, H = d_.rc.num_attention_heads;
  auto raw = torch::zeros({L, H}, torch::kDouble);
  int64_t n = 0;
  torch::AutoGradMode grad(true);
  for (const auto& at : d_.eval_batches(d_.split.val)) {
    const auto b = d_.make_batch(MoleculeData::pick(d_.split.val, at), false);
    const int64_t B = b.ids.size(0);
    models::Taps taps;
    std::vector<torch::Tensor> gates;
    for (int64_t l = 0; l < L; ++l) {
      gates.push_back(torch::ones({B, H}, torch::requires_grad()));  // per example: one backward, every dLoss_x/dxi
      taps.set_head_gate(l, gates.back());
    }
    const auto out = model.forward(b.ids, b.mask, &taps, b.type_ids);
    const auto known = (~b.target.isnan()).to(out.dtype());
    const auto loss = (per_target_loss(out, b.target) * known).sum();
    n += B;
    if (known.sum().item<double>() == 0) continue;  // (no labels: no gradient)
    const auto g = torch::autograd::grad({loss}, gates);
    for (int64_t l = 0; l < L; ++l) raw[l] += g[l].abs().sum(0).to(torch::kDouble);
  }
  if (n == 0) return {};
  raw /= static_cast<double>(n);
  return raw / raw.norm(2, -1, true).clamp_min(1e-12);  // unit L2 norm per layer
}

torch::Tensor SupervisedTask::head_importance() {
  const bool was_training = model_->is_training();
  model_->eval();
  auto hi = head_importance_of(*model_);
  model_->train(was_training);
  return hi;
}

torch::Tensor SupervisedTask::predict(const std::vector<int64_t>& rows) {
  torch::NoGradGuard no_grad;
  model_->eval();
  torch::Tensor out;
  for (const auto& at : d_.eval_batches(rows)) {
    const auto part = MoleculeData::pick(rows, at);
    const auto b = d_.make_batch(part, false);
    models::Taps taps;
    if (sink_) taps.request(models::site::kAttnProbs, sink_layers_);
    const auto y = model_->forward(b.ids, b.mask, sink_ ? &taps : nullptr, b.type_ids);
    if (!out.defined()) out = torch::empty({static_cast<int64_t>(rows.size()), y.size(1)}, y.options());
    out.index_copy_(0, torch::tensor(at, torch::kLong), y);
    if (sink_) {
      std::vector<torch::Tensor> probs;
      for (int64_t l : sink_layers_) probs.push_back(taps.get(models::site::kAttnProbs, l));
      std::vector<int64_t> len;
      for (int64_t r : part) len.push_back(d_.length(r));
      sink_(probs, torch::tensor(len, torch::kLong));
    }
  }
  if (!out.defined()) out = torch::empty({0, 1});
  return out;
}

ValidationSet SupervisedTask::validation_set() const {
  ValidationSet v = MoleculeTask::validation_set();
  v.target = d_.targets_of(d_.split.val);
  v.prediction = [this](const torch::Tensor& out) { return prediction_of(out); };
  return v;
}

Metrics SupervisedTask::metrics_of(const std::vector<int64_t>& rows, const std::string& prefix) {
  const auto out = predict(rows);
  const auto target = d_.targets_of(rows);
  const auto known = ~target.isnan();
  const auto per = per_target_loss(out, target);
  Metrics res;
  res[prefix + "loss"] = (per * known.to(per.dtype())).sum().item<double>() / std::max<int64_t>(1, known.sum().item<int64_t>());
  for (const auto& [k, v] : kind_metrics(out, target)) res[prefix + k] = v;
  return res;
}

Metrics SupervisedTask::evaluate() {
  struct Reset {  // the sink serves one evaluation, also when it throws
    AttentionSink& s;
    ~Reset() { s = nullptr; }
  } reset{sink_};
  return metrics_of(d_.split.val, "val_");
}

void SupervisedTask::finish(const std::string& run_dir, const analysis::ProbeHistory*) {
  const RunDir run{run_dir};
  std::string which = "final";
  if (fs::exists(run.best_checkpoint())) {
    models::load_checkpoint(run.best_checkpoint(), *model_, nullptr, false);
    which = "best";
  }
  const auto m = metrics_of(d_.split.test, "test_");
  nlohmann::json j = {{"checkpoint", which}, {"split", d_.split.method}, {"test_size", d_.split.test.size()}};
  std::ostringstream line;
  line << "[test] " << which << " checkpoint on the " << d_.split.test.size() << (d_.text ? " test texts:" : " test molecules:");
  for (const auto& [k, v] : m) {
    j[k] = std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr);
    // the averaged metrics (per-target ones, e.g. test_roc_auc_NR_AR, are in the file only)
    static const std::set<std::string> kAveraged = {"test_loss", "test_rmse", "test_mae", "test_r2",
                                                    "test_roc_auc", "test_pr_auc", "test_acc"};
    if (kAveraged.count(k)) line << " " << k << " " << v;
  }
  write_file_atomic(run.test_metrics(), j.dump(2) + "\n");
  log::info(line.str());
}

// ---- regression: MSE on standardised targets, metrics in original units ------------------------

RegressionTask::RegressionTask(const Config& config) : SupervisedTask(config, TaskKind::Regression) {
  const int64_t K = d_.num_targets();
  const auto train_t = d_.train_targets();
  mean_ = torch::zeros({K});
  std_ = torch::ones({K});
  for (int64_t k = 0; k < K; ++k) {
    const auto col = train_t.select(1, k);
    const auto y = col.masked_select(~col.isnan());
    if (y.numel() < 2) throw UsageError("data.targets: '" + config.data.targets[k] + "' has fewer than 2 labels in the training split");
    mean_[k] = y.mean();
    std_[k] = std::max(1e-6, y.std(/*unbiased=*/false).item<double>());
  }
  build_model(std::max<int64_t>(1, K));
}

torch::Tensor RegressionTask::per_target_loss(const torch::Tensor& out, const torch::Tensor& target) const {
  return (out - (target.nan_to_num(0.0) - mean_) / std_).pow(2);
}

Metrics RegressionTask::kind_metrics(const torch::Tensor& out, const torch::Tensor& target) const {
  return regression_metrics(out * std_ + mean_, target, config_.data.targets);  // original units
}

void RegressionTask::target_stats(nlohmann::json& stats) const {
  stats["mean"] = std::vector<double>(mean_.data_ptr<float>(), mean_.data_ptr<float>() + mean_.numel());
  stats["std"] = std::vector<double>(std_.data_ptr<float>(), std_.data_ptr<float>() + std_.numel());
}

// ---- binary classification: BCE with logits per target ------------------------------------------

ClassificationTask::ClassificationTask(const Config& config) : SupervisedTask(config, TaskKind::Classification) {
  const int64_t K = d_.num_targets();
  const auto train_t = d_.train_targets();
  pos_weight_ = torch::ones({K});
  for (int64_t k = 0; k < K; ++k) {
    const auto col = train_t.select(1, k);
    const auto y = col.masked_select(~col.isnan());
    const double pos = (y > 0.5).sum().item<double>(), neg = static_cast<double>(y.numel()) - pos;
    if (!((y == 0) | (y == 1)).all().item<bool>()) {
      throw UsageError("data.targets: '" + config.data.targets[k] + "' must hold 0/1 labels for task classification");
    }
    if (config.data.pos_weight && pos > 0) pos_weight_[k] = neg / pos;
  }
  build_model(std::max<int64_t>(1, K));
}

torch::Tensor ClassificationTask::per_target_loss(const torch::Tensor& out, const torch::Tensor& target) const {
  return torch::binary_cross_entropy_with_logits(out, target.nan_to_num(0.0), {}, pos_weight_, at::Reduction::None);
}

Metrics ClassificationTask::kind_metrics(const torch::Tensor& out, const torch::Tensor& target) const {
  return classification_metrics(out, target, config_.data.targets);
}

// ---- multi-class: cross-entropy over class labels 0..C-1 in one column ----------------------------

MulticlassTask::MulticlassTask(const Config& config) : SupervisedTask(config, TaskKind::Multiclass) {
  build_model(classes_of_labels());
}

int64_t MulticlassTask::classes_of_labels() const {
  const auto& d = config_.data;
  int64_t largest = -1;
  for (int64_t r = 0; r < d_.table.size(); ++r) {
    const float v = d_.table.targets[r];
    if (std::isnan(v)) continue;
    if (v < 0 || v != std::floor(v) || (d.num_classes > 0 && v >= static_cast<float>(d.num_classes))) {
      throw UsageError("'" + d.csv + "' line " + std::to_string(d_.table.line[r]) + ": '" + d.targets[0] + "' is " +
                       std::to_string(v) + "; multiclass labels are integers 0.." +
                       (d.num_classes > 0 ? std::to_string(d.num_classes - 1) : std::string("C-1")));
    }
    largest = std::max<int64_t>(largest, static_cast<int64_t>(v));
  }
  const int64_t classes = d.num_classes > 0 ? d.num_classes : largest + 1;
  if (classes < 2) throw UsageError("data.targets: '" + d.targets[0] + "' holds fewer than 2 classes");
  return classes;
}

torch::Tensor MulticlassTask::per_target_loss(const torch::Tensor& out, const torch::Tensor& target) const {
  return torch::nn::functional::cross_entropy(out, target.nan_to_num(0.0).select(1, 0).to(torch::kLong),
                                              torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kNone))
      .unsqueeze(1);
}

Metrics MulticlassTask::kind_metrics(const torch::Tensor& out, const torch::Tensor& target) const {
  return multiclass_metrics(out, target.select(1, 0));
}

int64_t MulticlassTask::batch_correct(const torch::Tensor& out, const torch::Tensor& target) const {
  const auto known = ~target.isnan();
  return (out.argmax(1).eq(target.nan_to_num(0.0).select(1, 0).to(torch::kLong)) & known.select(1, 0)).sum().item<int64_t>();
}

void MulticlassTask::target_stats(nlohmann::json& stats) const { stats["num_classes"] = d_.rc.num_labels; }

}  // namespace attnscope::train
