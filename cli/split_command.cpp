// `attnscope split` (cli/split_command.h).
#include "cli/split_command.h"

#include <cstdio>
#include <filesystem>
#include <iostream>

#include "core/error.h"
#include "core/files.h"
#include "data/molecules.h"

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

}  // namespace attnscope::cli
