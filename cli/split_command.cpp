// `attnscope split` (cli/split_command.h).
#include "cli/split_command.h"

#include <cstdio>
#include <filesystem>
#include <iostream>

#include "core/core.h"
#include "data/data.h"
#include "train/train.h"

namespace attnscope::cli {
namespace fs = std::filesystem;

int split_command(const SplitArgs& a) {
  if (a.method != "random" && a.method != "scaffold") {
    throw UsageError("--method must be random or scaffold, got '" + a.method + "'");
  }
  if (fs::exists(a.out) && !a.force) {
    throw UsageError("--out '" + a.out + "' exists; use --force to replace it");
  }
  const auto parent = fs::path(a.out).parent_path();
  if (!parent.empty() && !fs::is_directory(parent)) {
    throw UsageError("--out '" + a.out + "': directory '" + parent.string() + "' does not exist");
  }
  if (a.max_length < 1) throw UsageError("--max-length must be >= 1");
  data::set_max_smiles_length(a.max_length);
  const auto table = data::read_molecule_csv(a.csv, a.smiles_col, {});
  const auto split = a.method == "scaffold" ? data::scaffold_split(table.smiles, a.frac_train, a.frac_val)
                                            : data::random_split(table.size(), a.frac_train, a.frac_val, a.seed);
  try {
    data::write_split_file(a.out, split, a.csv);
  } catch (const UsageError&) {
    throw;
  } catch (const std::exception& e) {
    throw UsageError(std::string("--out: ") + e.what());
  }

  const double n = static_cast<double>(table.size());
  std::cout << "'" << a.csv << "': " << table.size() << " molecules";
  if (table.dropped) std::cout << " (" << table.dropped << " rows with unparsable SMILES dropped; indices count the rest)";
  std::cout << "\n" << a.method << " split";
  if (a.method == "scaffold") std::cout << ", " << split.scaffolds << " scaffolds";
  if (a.method == "random") std::cout << ", seed " << a.seed;
  std::cout << ":\n";
  for (const auto& [name, part] : {std::pair<const char*, size_t>{"train", split.train.size()},
                                   {"val", split.val.size()}, {"test", split.test.size()}}) {
    char line[80];
    std::snprintf(line, sizeof line, "  %-5s %7zu  (%.1f%%)\n", name, part, 100.0 * static_cast<double>(part) / n);
    std::cout << line;
  }
  std::cout << "wrote " << a.out << "\n";
  return 0;
}

int baseline_command(const BaselineArgs& a) {
  // everything is validated (config, data) before anything is written
  const auto resolved = resolve_config(a.config_path, a.sets);
  const Config& config = resolved.config;
  const fs::path out = a.out.empty() ? fs::path(config.run.out_dir) / (config.run.name + "-baseline") : fs::path(a.out);
  const fs::path file = out / "baseline_metrics.json";
  if (fs::exists(file) && !a.force) throw UsageError("'" + file.string() + "' exists; use --force to replace it or --out");
  const auto r = train::run_baseline(config);
  std::error_code ec;
  fs::create_directories(out, ec);
  if (ec) throw UsageError("cannot create '" + out.string() + "': " + ec.message());
  write_file_atomic(file.string(), train::baseline_json(r));
  data::write_split_file((out / "split.json").string(), r.split_rows, config.data.csv);
  std::cout << r.features << " + XGBoost baselines on '" << r.csv << "', " << r.split << " split " << r.train << "/"
            << r.val << "/" << r.test << " (seed " << config.run.seed << "):\n";
  for (const auto& m : r.models) {
    std::cout << "  " << m.name << ":";
    for (const auto* part : {&m.val, &m.test}) {
      for (const auto& [k, v] : *part) {
        if (k.find('_', 5) == std::string::npos || k.rfind("test_", 0) == 0) {
          if (std::count(k.begin(), k.end(), '_') == 1) std::cout << " " << k << " " << v;
        }
      }
    }
    std::cout << "  (" << m.seconds << " s)\n";
  }
  std::cout << "wrote " << file.string() << "\n";
  return 0;
}

}  // namespace attnscope::cli
