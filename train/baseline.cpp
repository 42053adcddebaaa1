// ECFP4 + XGBoost baselines (train/baseline.h).
#include "train/baseline.h"

#include <cctype>
#include <nlohmann/json.hpp>
#include <xgboost/c_api.h>

#include <chrono>
#include <cmath>
#include <memory>

#include "core/core.h"
#include "data/data.h"
#include "train/metrics.h"

namespace attnscope::train {
namespace {

constexpr unsigned kRadius = 2, kBits = 2048;

void check(int rc, const char* what) {
  if (rc != 0) throw std::runtime_error(std::string("XGBoost ") + what + ": " + XGBGetLastError());
}

struct Matrix {
  DMatrixHandle h = nullptr;
  Matrix(const std::vector<float>& x, int64_t rows) {
    check(XGDMatrixCreateFromMat(x.data(), static_cast<bst_ulong>(rows), kBits, std::nanf(""), &h), "DMatrix");
  }
  ~Matrix() { XGDMatrixFree(h); }
  Matrix(const Matrix&) = delete;
  Matrix& operator=(const Matrix&) = delete;
};

struct Booster {
  BoosterHandle h = nullptr;
  explicit Booster(DMatrixHandle train) { check(XGBoosterCreate(&train, 1, &h), "booster"); }
  ~Booster() { XGBoosterFree(h); }
  Booster(const Booster&) = delete;
  Booster& operator=(const Booster&) = delete;
  void set(const std::string& k, const std::string& v) { check(XGBoosterSetParam(h, k.c_str(), v.c_str()), k.c_str()); }
  // predictions of the first `trees` trees (0 = all): [rows] or [rows x classes]
  std::vector<float> predict(DMatrixHandle m, unsigned trees) {
    bst_ulong n = 0;
    const float* out = nullptr;
    check(XGBoosterPredict(h, m, 0, trees, 0, &n, &out), "predict");
    return std::vector<float>(out, out + n);
  }
};

std::vector<float> fingerprints(const data::MoleculeTable& t, const std::vector<int64_t>& rows) {
  std::vector<float> x;
  x.reserve(rows.size() * kBits);
  for (int64_t r : rows) {
    const auto bits = data::morgan_bits(t.smiles[static_cast<size_t>(r)], kRadius, kBits);
    x.insert(x.end(), bits.begin(), bits.end());
  }
  return x;
}

// Bag of words for text: lower-cased runs of letters and digits (UTF-8 bytes >= 0x80 count as
// letters), each hashed (FNV-1a, the same on every platform) into one of kBits bins; a row holds
// log(1 + count) per bin (sublinear term frequency), the classic token-count baseline.
std::vector<float> word_counts(const data::MoleculeTable& t, const std::vector<int64_t>& rows) {
  std::vector<float> x(rows.size() * kBits, 0.f);
  for (size_t i = 0; i < rows.size(); ++i) {
    float* row = x.data() + i * kBits;
    const std::string& text = t.smiles[static_cast<size_t>(rows[i])];
    uint64_t h = 0;
    bool in_word = false;
    for (size_t k = 0; k <= text.size(); ++k) {
      const unsigned char c = k < text.size() ? static_cast<unsigned char>(text[k]) : ' ';
      const bool word = std::isalnum(c) || c >= 0x80;
      if (word) {
        if (!in_word) h = 1469598103934665603ull;
        h = (h ^ static_cast<unsigned char>(std::tolower(c))) * 1099511628211ull;
      } else if (in_word) {
        row[h % kBits] += 1.f;
      }
      in_word = word;
    }
    for (unsigned b = 0; b < kBits; ++b) row[b] = std::log1p(row[b]);
  }
  return x;
}

double logit(double p) {
  p = std::min(1.0 - 1e-7, std::max(1e-7, p));
  return std::log(p / (1 - p));
}

// What both models of a baseline see: the split's fingerprints and labels, the task's shape.
struct BaselineData {
  explicit BaselineData(const Config& c) : config(c) {}
  const Config& config;
  data::MoleculeTable table;
  data::Split split;
  std::vector<float> X_train, X_val, X_test;
  int64_t K = 0, classes = 2, width = 1;  // targets; classes (multiclass); outputs per target
  bool regression = false, multiclass = false;
  float label(const std::vector<int64_t>& rows, int64_t i, int64_t k) const {
    return table.targets[static_cast<size_t>(rows[static_cast<size_t>(i)] * K + k)];
  }
};

void set_objective(Booster& b, const BaselineData& d, double mean) {
  if (d.regression) {
    b.set("objective", "reg:squarederror");
    b.set("base_score", std::to_string(mean));
  } else if (d.multiclass) {
    b.set("objective", "multi:softprob");
    b.set("num_class", std::to_string(d.classes));
  } else {
    b.set("objective", "binary:logistic");
    b.set("base_score", std::to_string(std::min(0.99, std::max(0.01, mean))));
  }
}

// Boosting rounds for target k: the count (a multiple of 25) with the lowest validation loss, up to
// 1000, stopping after 100 rounds without improvement.
unsigned boost_rounds(Booster& b, const Matrix& train, const Matrix& val, const BaselineData& d, int64_t k) {
  std::vector<int64_t> vrows;  // labelled validation rows
  const auto n_val = static_cast<int64_t>(d.split.val.size());
  for (int64_t i = 0; i < n_val; ++i) {
    if (!std::isnan(d.label(d.split.val, i, k))) vrows.push_back(i);
  }
  double best = INFINITY;
  unsigned trees = 0;
  for (int it = 0; it < 1000; ++it) {
    check(XGBoosterUpdateOneIter(b.h, it, train.h), "train");
    if ((it + 1) % 25 != 0 || vrows.empty()) continue;
    const auto p = b.predict(val.h, 0);
    double loss = 0;
    for (int64_t i : vrows) {
      const float v = d.label(d.split.val, i, k);
      if (d.regression) {
        loss += std::pow(p[i] - v, 2);
      } else if (d.multiclass) {
        loss -= std::log(std::max(1e-7f, p[static_cast<size_t>(i * d.classes + static_cast<int64_t>(v))]));
      } else {
        loss -= v > 0.5 ? std::log(std::max(1e-7f, p[i])) : std::log(std::max(1e-7f, 1 - p[i]));
      }
    }
    if (loss < best - 1e-9) {
      best = loss;
      trees = static_cast<unsigned>(it + 1);
    } else if (static_cast<unsigned>(it + 1) >= trees + 100) {
      break;  // 100 rounds without improvement
    }
  }
  return trees;
}

// Model `name` fitted to target k on its labelled training rows; its validation and test outputs
// (logits / log-probabilities / values) go into column k of val_pred and test_pred.
void fit_target(const std::string& name, const BaselineData& d, int64_t k, BaselineModel& model,
                std::vector<float>& val_pred, std::vector<float>& test_pred) {
  std::vector<float> x, y;
  double mean = 0;
  for (size_t i = 0; i < d.split.train.size(); ++i) {
    const float v = d.label(d.split.train, static_cast<int64_t>(i), k);
    if (std::isnan(v)) continue;
    x.insert(x.end(), d.X_train.begin() + static_cast<int64_t>(i * kBits), d.X_train.begin() + static_cast<int64_t>((i + 1) * kBits));
    y.push_back(v);
    mean += v;
  }
  if (y.size() < 2) throw UsageError("data.targets: '" + d.config.data.targets[k] + "' has fewer than 2 labels in the training split");
  mean /= static_cast<double>(y.size());
  const auto n_val = static_cast<int64_t>(d.split.val.size()), n_test = static_cast<int64_t>(d.split.test.size());
  Matrix train(x, static_cast<int64_t>(y.size())), val(d.X_val, n_val), test(d.X_test, n_test);
  check(XGDMatrixSetFloatInfo(train.h, "label", y.data(), y.size()), "labels");
  Booster b(train.h);
  b.set("nthread", std::to_string(static_cast<int>(d.config.run.threads)));
  b.set("seed", std::to_string(d.config.run.seed));
  b.set("tree_method", "hist");
  b.set("verbosity", "0");
  set_objective(b, d, mean);
  unsigned trees = 0;
  if (name == "rf") {
    for (const auto& [key, v] : std::vector<std::pair<std::string, std::string>>{
             {"num_parallel_tree", "100"}, {"learning_rate", "1"}, {"subsample", "0.8"},
             {"colsample_bynode", d.regression ? "0.33" : "0.022"}, {"max_depth", "16"}, {"lambda", "0"}}) {
      b.set(key, v);
    }
    check(XGBoosterUpdateOneIter(b.h, 0, train.h), "train");
  } else {
    for (const auto& [key, v] : std::vector<std::pair<std::string, std::string>>{
             {"learning_rate", "0.05"}, {"max_depth", "6"}, {"subsample", "0.8"}, {"colsample_bytree", "0.5"}}) {
      b.set(key, v);
    }
    trees = boost_rounds(b, train, val, d, k);
    model.rounds.push_back(trees);
  }
  auto put = [&](const std::vector<float>& p, std::vector<float>& out, int64_t rows) {
    for (int64_t i = 0; i < rows; ++i) {
      for (int64_t c = 0; c < d.width; ++c) {
        const float v = p[static_cast<size_t>(i * d.width + c)];
        out[static_cast<size_t>((i * d.K + k) * d.width + c)] =
            d.regression ? v : d.multiclass ? std::log(std::max(1e-7f, v)) : static_cast<float>(logit(v));
      }
    }
  };
  put(b.predict(val.h, trees), val_pred, n_val);
  put(b.predict(test.h, trees), test_pred, n_test);
}

Metrics score(const BaselineData& d, const std::vector<float>& pred, const std::vector<int64_t>& rows, const std::string& prefix) {
  const int64_t n = static_cast<int64_t>(rows.size()), K = d.K;
  auto target = torch::empty({n, K});
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t k = 0; k < K; ++k) target[i][k] = d.label(rows, i, k);
  }
  auto p = torch::from_blob(const_cast<float*>(pred.data()), {n, K * d.width}, torch::kFloat).clone();
  const auto m = d.regression   ? regression_metrics(p, target, d.config.data.targets)
                 : d.multiclass ? multiclass_metrics(p, target.select(1, 0))
                                : classification_metrics(p, target, d.config.data.targets);
  Metrics out;
  for (const auto& [key, v] : m) out[prefix + key] = v;
  return out;
}

std::string model_description(const std::string& name, bool regression) {
  if (name == "rf") {
    return std::string("XGBoost random-forest mode: 100 trees in one round (scikit-learn's default count), "
                       "learning_rate 1, subsample 0.8, colsample_bynode ") +
           (regression ? "0.33 (n/3 features per split, regression)" : "0.022 (sqrt(n) features per split)") +
           ", max_depth 16, lambda 0, hist";
  }
  return "XGBoost boosted trees: learning_rate 0.05, max_depth 6, subsample 0.8, colsample_bytree 0.5, "
         "up to 1000 rounds, the count (a multiple of 25) chosen by the validation split's loss";
}

}  // namespace

BaselineResult run_baseline(const Config& config) {
  const auto& dc = config.data;
  const TaskTraits* task = find_task(dc.task);
  if (!task || !task->supervised) {
    throw UsageError("baseline: data.task is '" + dc.task + "'; the baseline is for property tasks "
                     "(regression, classification, multiclass)");
  }
  data::set_max_smiles_length(dc.max_smiles_length);
  BaselineData d(config);
  const bool text = !dc.text_col.empty();
  d.table = text ? data::read_text_csv(dc.csv, dc.text_col, dc.text_pair_col, dc.targets)
                 : data::read_molecule_csv(dc.csv, dc.smiles_col, dc.targets, dc.invalid_smiles == "error");
  d.table.keep_first(dc.max_rows);
  if (text && !dc.text_pair_col.empty()) {  // a pair's two texts as one bag of words
    for (size_t r = 0; r < d.table.smiles.size(); ++r) d.table.smiles[r] += "\n" + d.table.pairs[r];
  }
  d.split = data::config_split(dc, d.table, static_cast<uint64_t>(config.run.seed));
  BaselineResult res;
  res.task = dc.task;
  res.split = d.split.method;
  res.csv = dc.csv;
  res.train = static_cast<int64_t>(d.split.train.size());
  res.val = static_cast<int64_t>(d.split.val.size());
  res.test = static_cast<int64_t>(d.split.test.size());
  res.dropped = d.table.dropped;
  res.split_rows = d.split;
  d.K = static_cast<int64_t>(dc.targets.size());
  const auto features = text ? word_counts : fingerprints;
  res.features = text ? "bag of words: lower-cased alphanumeric words hashed (FNV-1a) into 2048 bins, log(1 + count)"
                      : "ECFP4: RDKit Morgan fingerprint, radius 2, 2048 bits";
  d.X_train = features(d.table, d.split.train);
  d.X_val = features(d.table, d.split.val);
  d.X_test = features(d.table, d.split.test);
  d.regression = task->kind == TaskKind::Regression;
  d.multiclass = task->kind == TaskKind::Multiclass;
  if (d.multiclass) {
    for (float v : d.table.targets) {
      if (!std::isnan(v)) d.classes = std::max<int64_t>(d.classes, static_cast<int64_t>(v) + 1);
    }
    if (dc.num_classes > 0) d.classes = dc.num_classes;
    d.width = d.classes;
  }
  for (const std::string name : {"rf", "xgb"}) {
    const auto t0 = std::chrono::steady_clock::now();
    BaselineModel model;
    model.name = name;
    model.description = model_description(name, d.regression);
    std::vector<float> val_pred(static_cast<size_t>(res.val * d.K * d.width)), test_pred(static_cast<size_t>(res.test * d.K * d.width));
    for (int64_t k = 0; k < d.K; ++k) fit_target(name, d, k, model, val_pred, test_pred);
    model.val = score(d, val_pred, d.split.val, "val_");
    model.test = score(d, test_pred, d.split.test, "test_");
    model.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    res.models.push_back(std::move(model));
  }
  return res;
}

std::string baseline_json(const BaselineResult& r) {
  nlohmann::ordered_json j;
  j["task"] = r.task;
  j["csv"] = r.csv;
  j["split"] = r.split;
  j["sizes"] = {{"train", r.train}, {"val", r.val}, {"test", r.test}, {"dropped_smiles", r.dropped}};
  j["features"] = r.features;
  for (const auto& m : r.models) {
    nlohmann::ordered_json mj;
    mj["model"] = m.description;
    if (!m.rounds.empty()) mj["rounds"] = m.rounds;
    mj["seconds"] = m.seconds;
    for (const auto* part : {&m.val, &m.test}) {
      for (const auto& [k, v] : *part) mj[k] = std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr);
    }
    j[m.name] = mj;
  }
  return j.dump(2) + "\n";
}

}  // namespace attnscope::train
