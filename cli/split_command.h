// `attnscope split`: a random or DeepChem scaffold split of a MoleculeNet-style CSV, written as a
// split file (JSON index lists) that training can read back (data.split: file).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace attnscope::cli {

struct SplitArgs {
  std::string csv;
  std::string smiles_col = "smiles";
  std::string method;  // random | scaffold
  double frac_train = 0.8;
  double frac_val = 0.1;
  uint64_t seed = 0;  // random only
  std::string out;    // split file (.json); must not exist unless force
  bool force = false;
  int64_t max_length = 1000;  // longer SMILES are dropped unparsed (data.max_smiles_length)
};
int split_command(const SplitArgs& args);

// `attnscope baseline CONFIG`: the ECFP4 + XGBoost baselines (train/baseline.h) on the config's
// data and split; writes OUT/baseline_metrics.json and OUT/split.json, prints a table.
struct BaselineArgs {
  std::string config_path;
  std::vector<std::string> sets;
  std::string out;  // default: run.out_dir/run.name-baseline
  bool force = false;
};
int baseline_command(const BaselineArgs& args);

}  // namespace attnscope::cli
