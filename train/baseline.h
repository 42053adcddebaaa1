// The baseline of a property config, measured on exactly the run's data: ECFP4 (RDKit Morgan
// fingerprints, radius 2, 2048 bits) for molecules, a hashed bag of words for text
// (data.text_col), with XGBoost, as a random forest (XGBoost's
// random-forest mode, the reference model of ChemBERTa-3's tables) and as boosted trees. Same CSV,
// same split (scaffold / random with the run's seed / file), same metrics as the fine-tuning run;
// one model per target, missing labels left out.
#pragma once

#include <string>
#include <vector>

#include "core/core.h"
#include "data/data.h"
#include "train/task.h"

namespace attnscope::train {

struct BaselineModel {
  std::string name;         // "rf" | "xgb"
  std::string description;  // its settings, one line
  Metrics val, test;        // "val_rmse", "test_roc_auc", ... as the fine-tuning run names them
  std::vector<int64_t> rounds;  // xgb: boosting rounds chosen on the validation split, per target
  double seconds = 0;
};

struct BaselineResult {
  std::string task, split, csv;
  std::string features;  // what the trees see (ECFP4, or text's bag of words)
  int64_t train = 0, val = 0, test = 0, dropped = 0;
  data::Split split_rows;  // the split used (what OUT/split.json holds)
  std::vector<BaselineModel> models;
};

// UsageError for a config that is not a molecular property task (regression, classification,
// multiclass), or bad data (as for training).
BaselineResult run_baseline(const Config& config);
std::string baseline_json(const BaselineResult& r);  // what baseline_metrics.json holds

}  // namespace attnscope::train
