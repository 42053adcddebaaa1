// Evaluation metrics of the supervised tasks, shared by the molecule tasks and the baseline:
// regression (RMSE, MAE, R² per target and averaged), binary classification (ROC-AUC, PR-AUC,
// accuracy), multi-class (accuracy, one-vs-rest ROC-AUC).
#pragma once

#include <torch/torch.h>

#include <map>
#include <string>
#include <vector>

namespace attnscope::train {

// Regression metrics per target and averaged: rmse, mae, r2 (NaN where a target has < 2 labels).
std::map<std::string, double> regression_metrics(const torch::Tensor& pred, const torch::Tensor& target,
                                                 const std::vector<std::string>& names);
// ROC-AUC and PR-AUC (average precision) per task and averaged over the tasks where they are
// defined; a task whose labels are all one class is undefined (NaN), never 0.5.
std::map<std::string, double> classification_metrics(const torch::Tensor& logits, const torch::Tensor& target,
                                                      const std::vector<std::string>& names);
// Multi-class: accuracy and one-vs-rest ROC-AUC macro-averaged over the classes where it is
// defined; labels [n] (NaN = missing), logits [n,C].
std::map<std::string, double> multiclass_metrics(const torch::Tensor& logits, const torch::Tensor& label);
double roc_auc(const std::vector<double>& score, const std::vector<int>& label);
double average_precision(const std::vector<double>& score, const std::vector<int>& label);

}  // namespace attnscope::train
