// Evaluation metrics (train/metrics.h).
#include "train/metrics.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace attnscope::train {

double roc_auc(const std::vector<double>& score, const std::vector<int>& label) {
  std::vector<size_t> order(score.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return score[a] < score[b]; });
  // Mann-Whitney U with average ranks for ties
  double rank_sum = 0;
  int64_t pos = 0, neg = 0;
  for (size_t i = 0; i < order.size();) {
    size_t j = i;
    while (j < order.size() && score[order[j]] == score[order[i]]) ++j;
    const double avg = (static_cast<double>(i + 1) + static_cast<double>(j)) / 2;
    for (size_t k = i; k < j; ++k) {
      if (label[order[k]]) rank_sum += avg;
    }
    i = j;
  }
  for (int l : label) (l ? pos : neg)++;
  if (pos == 0 || neg == 0) return std::nan("");
  return (rank_sum - pos * (pos + 1) / 2.0) / (static_cast<double>(pos) * neg);
}

double average_precision(const std::vector<double>& score, const std::vector<int>& label) {
  // sklearn's average_precision_score: sum over thresholds of (R_n - R_{n-1}) P_n
  std::vector<size_t> order(score.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return score[a] > score[b]; });
  const int64_t pos = std::count(label.begin(), label.end(), 1);
  if (pos == 0 || pos == static_cast<int64_t>(label.size())) return std::nan("");
  double ap = 0, prev_recall = 0;
  int64_t tp = 0, seen = 0;
  for (size_t i = 0; i < order.size();) {
    size_t j = i;
    while (j < order.size() && score[order[j]] == score[order[i]]) {
      tp += label[order[j]];
      ++seen;
      ++j;
    }
    const double recall = static_cast<double>(tp) / pos, precision = static_cast<double>(tp) / seen;
    ap += (recall - prev_recall) * precision;
    prev_recall = recall;
    i = j;
  }
  return ap;
}

namespace {

double nanmean(const std::vector<double>& v) {
  double s = 0;
  int n = 0;
  for (double x : v) {
    if (std::isfinite(x)) s += x, ++n;
  }
  return n ? s / n : std::nan("");
}

std::string metric_suffix(const std::vector<std::string>& names, size_t k) {
  std::string s;
  for (char c : names[k]) s += std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
  return s;
}

}  // namespace

std::map<std::string, double> regression_metrics(const torch::Tensor& pred, const torch::Tensor& target,
                                                 const std::vector<std::string>& names) {
  std::map<std::string, double> m;
  std::vector<double> rmse, mae, r2;
  const auto p = pred.to(torch::kDouble).contiguous(), t = target.to(torch::kDouble).contiguous();
  for (int64_t k = 0; k < t.size(1); ++k) {
    const auto ok = ~t.select(1, k).isnan();
    const auto y = t.select(1, k).masked_select(ok), f = p.select(1, k).masked_select(ok);
    const int64_t n = y.numel();
    double e = std::nan(""), a = std::nan(""), r = std::nan("");
    if (n >= 1) {
      e = std::sqrt((f - y).pow(2).mean().item<double>());
      a = (f - y).abs().mean().item<double>();
    }
    if (n >= 2) {
      const double ss_tot = (y - y.mean()).pow(2).sum().item<double>();
      r = ss_tot > 0 ? 1 - (f - y).pow(2).sum().item<double>() / ss_tot : std::nan("");
    }
    rmse.push_back(e), mae.push_back(a), r2.push_back(r);
    if (names.size() > 1) {
      m["rmse_" + metric_suffix(names, k)] = e;
      m["mae_" + metric_suffix(names, k)] = a;
      m["r2_" + metric_suffix(names, k)] = r;
    }
  }
  m["rmse"] = nanmean(rmse);
  m["mae"] = nanmean(mae);
  m["r2"] = nanmean(r2);
  return m;
}

std::map<std::string, double> classification_metrics(const torch::Tensor& logits, const torch::Tensor& target,
                                                      const std::vector<std::string>& names) {
  std::map<std::string, double> m;
  std::vector<double> auc, ap;
  int64_t correct = 0, count = 0;
  const auto p = logits.to(torch::kDouble).contiguous(), t = target.to(torch::kDouble).contiguous();
  for (int64_t k = 0; k < t.size(1); ++k) {
    std::vector<double> s;
    std::vector<int> y;
    for (int64_t i = 0; i < t.size(0); ++i) {
      const double v = t[i][k].item<double>();
      if (std::isnan(v)) continue;
      s.push_back(p[i][k].item<double>());
      y.push_back(v > 0.5);
      correct += (s.back() > 0) == (y.back() == 1);
      ++count;
    }
    auc.push_back(roc_auc(s, y));
    ap.push_back(average_precision(s, y));
    if (names.size() > 1) {
      m["roc_auc_" + metric_suffix(names, k)] = auc.back();
      m["pr_auc_" + metric_suffix(names, k)] = ap.back();
    }
  }
  m["roc_auc"] = nanmean(auc);
  m["pr_auc"] = nanmean(ap);
  m["acc"] = count ? static_cast<double>(correct) / count : std::nan("");
  return m;
}

std::map<std::string, double> multiclass_metrics(const torch::Tensor& logits, const torch::Tensor& label) {
  const auto known = ~label.isnan();
  const auto p = torch::softmax(logits.to(torch::kDouble), 1).index({known}).contiguous();
  const auto y = label.index({known}).to(torch::kLong).contiguous();
  const int64_t n = y.numel(), C = logits.size(1);
  std::map<std::string, double> m;
  m["acc"] = n ? p.argmax(1).eq(y).sum().item<double>() / static_cast<double>(n) : std::nan("");
  std::vector<double> auc;  // one-vs-rest per class, macro-averaged over the defined ones
  for (int64_t c = 0; c < C; ++c) {
    std::vector<double> score(static_cast<size_t>(n));
    std::vector<int> is_c(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) {
      score[static_cast<size_t>(i)] = p.data_ptr<double>()[i * C + c];
      is_c[static_cast<size_t>(i)] = y.data_ptr<int64_t>()[i] == c;
    }
    auc.push_back(roc_auc(score, is_c));
  }
  m["roc_auc"] = nanmean(auc);
  return m;
}

}  // namespace attnscope::train
