// The task vocabulary and run-directory paths (core/task_kind.h).
#include "core/task_kind.h"

#include <cstdio>
#include <filesystem>

#include "core/error.h"
#include "core/strings.h"

namespace attnscope {

const std::vector<TaskTraits>& all_tasks() {
  static const std::vector<TaskTraits> tasks = {
      {TaskKind::MinMax, "minmax", {"train_loss", "train_acc", "val_loss", "val_acc"}, {"minmax_attention"}, "",
       {RunDir::kMechanism}, false, false},
      {TaskKind::Regression, "regression", {"train_loss", "val_loss", "val_rmse", "val_mae", "val_r2"}, {"roberta", "bert", "gpt2"},
       "regression", {RunDir::kSplit, RunDir::kVocab, RunDir::kTargets, RunDir::kModelConfig, RunDir::kTestMetrics}, true, true},
      {TaskKind::Classification, "classification", {"train_loss", "val_loss", "val_roc_auc", "val_pr_auc", "val_acc"},
       {"roberta", "bert", "gpt2"}, "multi_label_classification",
       {RunDir::kSplit, RunDir::kVocab, RunDir::kTargets, RunDir::kModelConfig, RunDir::kTestMetrics}, true, true},
      {TaskKind::Multiclass, "multiclass", {"train_loss", "train_acc", "val_loss", "val_acc", "val_roc_auc"}, {"roberta", "bert", "gpt2"},
       "single_label_classification",
       {RunDir::kSplit, RunDir::kVocab, RunDir::kTargets, RunDir::kModelConfig, RunDir::kTestMetrics}, true, true},
      {TaskKind::MaskedLM, "mlm", {"train_loss", "train_acc", "val_loss", "val_acc", "val_ppl"}, {"roberta", "bert"}, "",
       {RunDir::kSplit, RunDir::kVocab, RunDir::kTargets, RunDir::kModelConfig}, true, false},
      {TaskKind::CausalLM, "clm", {"train_loss", "train_acc", "val_loss", "val_acc", "val_ppl"}, {"gpt2"}, "",
       {RunDir::kSplit, RunDir::kVocab, RunDir::kTargets, RunDir::kModelConfig}, true, false},
  };
  return tasks;
}

const TaskTraits& traits(TaskKind kind) {
  for (const auto& t : all_tasks()) {
    if (t.kind == kind) return t;
  }
  throw std::logic_error("unknown TaskKind");
}

const TaskTraits* find_task(const std::string& name) {
  for (const auto& t : all_tasks()) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

std::vector<std::string> task_names() {
  std::vector<std::string> names;
  for (const auto& t : all_tasks()) names.push_back(t.name);
  return names;
}

const TaskTraits& task_named(const std::string& name, const std::string& where) {
  if (const auto* t = find_task(name)) return *t;
  throw UsageError(where + ": unknown task '" + name + "' (one of: " + join(task_names()) + ")");
}

std::string RunDir::file(const std::string& name) const { return (std::filesystem::path(dir) / name).string(); }

bool RunDir::is_run(const std::string& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::path d(dir);
  return fs::exists(d / kConfigYaml, ec) || fs::exists(d / kMetrics, ec) || fs::exists(d / kCheckpoints, ec);
}

std::string RunDir::kept_checkpoint(int64_t epoch) {
  char name[48];
  std::snprintf(name, sizeof name, "epoch-%06lld.pt", static_cast<long long>(epoch));
  return name;
}

int64_t RunDir::kept_epoch(const std::string& name) {
  static const std::string head = "epoch-", tail = ".pt";
  if (name.size() <= head.size() + tail.size() || name.compare(0, head.size(), head) != 0 ||
      name.compare(name.size() - tail.size(), tail.size(), tail) != 0) {
    return -1;
  }
  const std::string digits = name.substr(head.size(), name.size() - head.size() - tail.size());
  const size_t first = digits.find_first_not_of('0');
  if (digits.find_first_not_of("0123456789") != std::string::npos ||
      (first != std::string::npos && digits.size() - first > 18)) {
    return -1;
  }
  return first == std::string::npos ? 0 : std::stoll(digits.substr(first));
}

}  // namespace attnscope
