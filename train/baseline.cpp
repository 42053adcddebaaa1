// ECFP4 + XGBoost baselines (train/baseline.h).
#include "train/baseline.h"

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

double logit(double p) {
  p = std::min(1.0 - 1e-7, std::max(1e-7, p));
  return std::log(p / (1 - p));
}

}  // namespace

BaselineResult run_baseline(const Config& config) {
  const auto& d = config.data;
  const TaskTraits* task = find_task(d.task);
  if (!task || !task->supervised) {
    throw UsageError("baseline: data.task is '" + d.task + "'; the fingerprint baseline is for molecular property tasks "
                     "(regression, classification, multiclass)");
  }
  data::set_max_smiles_length(d.max_smiles_length);
  const auto table = data::read_molecule_csv(d.csv, d.smiles_col, d.targets, d.invalid_smiles == "error");
  const auto split = data::config_split(d, table, static_cast<uint64_t>(config.run.seed));
  BaselineResult res;
  res.task = d.task;
  res.split = split.method;
  res.csv = d.csv;
  res.train = static_cast<int64_t>(split.train.size());
  res.val = static_cast<int64_t>(split.val.size());
  res.test = static_cast<int64_t>(split.test.size());
  res.dropped = table.dropped;
  res.split_rows = split;
  const int64_t K = static_cast<int64_t>(d.targets.size());
  const auto X_train = fingerprints(table, split.train), X_val = fingerprints(table, split.val),
             X_test = fingerprints(table, split.test);
  const bool regression = task->kind == TaskKind::Regression, multiclass = task->kind == TaskKind::Multiclass;
  int64_t classes = 2;
  if (multiclass) {
    for (float v : table.targets) {
      if (!std::isnan(v)) classes = std::max<int64_t>(classes, static_cast<int64_t>(v) + 1);
    }
    if (d.num_classes > 0) classes = d.num_classes;
  }
  const int threads = static_cast<int>(config.run.threads);

  for (const std::string name : {"rf", "xgb"}) {
    const auto t0 = std::chrono::steady_clock::now();
    BaselineModel model;
    model.name = name;
    model.description =
        name == "rf" ? std::string("XGBoost random-forest mode: 100 trees in one round (scikit-learn's default count), "
                                   "learning_rate 1, subsample 0.8, colsample_bynode ") +
                           (regression ? "0.33 (n/3 features per split, regression)" : "0.022 (sqrt(n) features per split)") +
                           ", max_depth 16, lambda 0, hist"
                     : "XGBoost boosted trees: learning_rate 0.05, max_depth 6, subsample 0.8, colsample_bytree 0.5, "
                       "up to 1000 rounds, the count (a multiple of 25) chosen by the validation split's loss";
    const int64_t width = multiclass ? classes : 1;
    std::vector<float> val_pred(static_cast<size_t>(res.val * K * width)), test_pred(static_cast<size_t>(res.test * K * width));
    for (int64_t k = 0; k < K; ++k) {
      // training rows with a label for target k
      std::vector<float> x, y;
      double mean = 0;
      for (size_t i = 0; i < split.train.size(); ++i) {
        const float v = table.targets[static_cast<size_t>(split.train[i] * K + k)];
        if (std::isnan(v)) continue;
        x.insert(x.end(), X_train.begin() + static_cast<int64_t>(i * kBits), X_train.begin() + static_cast<int64_t>((i + 1) * kBits));
        y.push_back(v);
        mean += v;
      }
      if (y.size() < 2) throw UsageError("data.targets: '" + d.targets[k] + "' has fewer than 2 labels in the training split");
      mean /= static_cast<double>(y.size());
      Matrix train(x, static_cast<int64_t>(y.size())), val(X_val, res.val), test(X_test, res.test);
      check(XGDMatrixSetFloatInfo(train.h, "label", y.data(), y.size()), "labels");
      Booster b(train.h);
      b.set("nthread", std::to_string(threads));
      b.set("seed", std::to_string(config.run.seed));
      b.set("tree_method", "hist");
      b.set("verbosity", "0");
      if (regression) {
        b.set("objective", "reg:squarederror");
        b.set("base_score", std::to_string(mean));
      } else if (multiclass) {
        b.set("objective", "multi:softprob");
        b.set("num_class", std::to_string(classes));
      } else {
        b.set("objective", "binary:logistic");
        b.set("base_score", std::to_string(std::min(0.99, std::max(0.01, mean))));
      }
      unsigned trees = 0;
      if (name == "rf") {
        for (const auto& [key, v] : std::vector<std::pair<std::string, std::string>>{
                 {"num_parallel_tree", "100"}, {"learning_rate", "1"}, {"subsample", "0.8"},
                 {"colsample_bynode", regression ? "0.33" : "0.022"},
                 {"max_depth", "16"}, {"lambda", "0"}}) {
          b.set(key, v);
        }
        check(XGBoosterUpdateOneIter(b.h, 0, train.h), "train");
      } else {
        for (const auto& [key, v] : std::vector<std::pair<std::string, std::string>>{
                 {"learning_rate", "0.05"}, {"max_depth", "6"}, {"subsample", "0.8"}, {"colsample_bytree", "0.5"}}) {
          b.set(key, v);
        }
        // labelled validation rows, for choosing the number of rounds
        std::vector<int64_t> vrows;
        for (int64_t i = 0; i < res.val; ++i) {
          if (!std::isnan(table.targets[static_cast<size_t>(split.val[i] * K + k)])) vrows.push_back(i);
        }
        double best = INFINITY;
        for (int it = 0; it < 1000; ++it) {
          check(XGBoosterUpdateOneIter(b.h, it, train.h), "train");
          if ((it + 1) % 25 != 0 || vrows.empty()) continue;
          const auto p = b.predict(val.h, 0);
          double loss = 0;
          for (int64_t i : vrows) {
            const float v = table.targets[static_cast<size_t>(split.val[i] * K + k)];
            if (regression) {
              loss += std::pow(p[i] - v, 2);
            } else if (multiclass) {
              loss -= std::log(std::max(1e-7f, p[static_cast<size_t>(i * classes + static_cast<int64_t>(v))]));
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
        model.rounds.push_back(trees);
      }
      const auto pv = b.predict(val.h, trees), pt = b.predict(test.h, trees);
      auto put = [&](const std::vector<float>& p, std::vector<float>& out, int64_t rows) {
        for (int64_t i = 0; i < rows; ++i) {
          for (int64_t c = 0; c < width; ++c) {
            const float v = p[static_cast<size_t>(i * width + c)];
            out[static_cast<size_t>((i * K + k) * width + c)] =
                regression ? v : multiclass ? std::log(std::max(1e-7f, v)) : static_cast<float>(logit(v));
          }
        }
      };
      put(pv, val_pred, res.val);
      put(pt, test_pred, res.test);
    }
    auto score = [&](const std::vector<float>& pred, const std::vector<int64_t>& rows, const std::string& prefix) {
      const int64_t n = static_cast<int64_t>(rows.size());
      auto target = torch::empty({n, K});
      for (int64_t i = 0; i < n; ++i) {
        for (int64_t k = 0; k < K; ++k) target[i][k] = table.targets[static_cast<size_t>(rows[i] * K + k)];
      }
      auto p = torch::from_blob(const_cast<float*>(pred.data()), {n, K * width}, torch::kFloat).clone();
      const auto m = regression ? regression_metrics(p, target, d.targets)
                     : multiclass ? multiclass_metrics(p, target.select(1, 0))
                                  : classification_metrics(p, target, d.targets);
      Metrics out;
      for (const auto& [key, v] : m) out[prefix + key] = v;
      return out;
    };
    model.val = score(val_pred, split.val, "val_");
    model.test = score(test_pred, split.test, "test_");
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
  j["features"] = "ECFP4: RDKit Morgan fingerprint, radius 2, 2048 bits";
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
