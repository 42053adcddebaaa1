// Molecular datasets (data/molecules.h): MoleculeNet CSVs, RDKit SMILES checks, Murcko scaffolds,
// random / scaffold / file splits, randomized SMILES. The only file of attnscope that includes
// RDKit (linked PRIVATE by data/CMakeLists.txt).
#include "data/molecules.h"

#include <DataStructs/ExplicitBitVect.h>
#include <atomic>
#include <GraphMol/ChemTransforms/ChemTransforms.h>
#include <GraphMol/Fingerprints/MorganFingerprints.h>
#include <GraphMol/MolOps.h>
#include <GraphMol/ROMol.h>
#include <GraphMol/SmilesParse/SmilesParse.h>
#include <GraphMol/SmilesParse/SmilesWrite.h>
#include <RDGeneral/RDLog.h>
#include <RDGeneral/utils.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <sstream>
#include <unordered_map>
#include <unordered_set>

#include "core/core.h"

namespace attnscope::data {

namespace {

constexpr int64_t kSplitSchemaVersion = 1;

// ---------------------------------------------------------------------------------------------
// RDKit

// RDKit's C++ loggers print parse and sanitisation errors to stderr once someone initialises
// them; attnscope reports unparsable SMILES itself, so they are switched off (process-wide, once).
void quiet_rdkit() {
  static std::once_flag once;
  std::call_once(once, [] {
    boost::logging::disable_logs("rdApp.error");
    boost::logging::disable_logs("rdApp.warning");
  });
}

bool has_space(const std::string& s) {
  return s.find_first_of(" \t\r\n") != std::string::npos;
}

// The sanitised molecule, or nullptr (RDKit returns null for syntax errors and throws for
// sanitisation errors such as a bad valence or an unkekulizable ring).
std::atomic<int64_t> g_max_smiles_length{1000};

std::unique_ptr<RDKit::ROMol> parse(const std::string& smiles) {
  quiet_rdkit();
  if (smiles.empty() || has_space(smiles) || static_cast<int64_t>(smiles.size()) > g_max_smiles_length.load()) return nullptr;
  try {
    std::unique_ptr<RDKit::ROMol> mol(RDKit::SmilesToMol(smiles));
    if (mol && mol->getNumAtoms() == 0) return nullptr;
    return mol;
  } catch (const std::exception&) {
    return nullptr;
  }
}

// ---------------------------------------------------------------------------------------------
// CSV

struct CsvRecord {
  int64_t line = 0;  // 1-based line where the record starts
  std::vector<std::string> fields;
};

// Records of `text`: comma-separated, double-quoted fields may hold commas, "" and line breaks;
// fields trimmed; blank lines skipped. Every record has the header's (the first record's) number of
// fields and the text is UTF-8: UsageError naming the file and every line that breaks a rule at
// once (the first invalid UTF-8 byte by line, byte and column).
std::vector<CsvRecord> parse_csv(const std::string& text, const std::string& path) {
  std::vector<CsvRecord> out;
  size_t i = 0;
  if (text.compare(0, 3, "\xEF\xBB\xBF") == 0) i = 3;  // UTF-8 byte order mark
  const Utf8Error bad_utf8 = find_invalid_utf8(text);
  size_t bad_record = 0, bad_field = 0;  // where the invalid byte is
  int64_t line = 1;
  while (i < text.size()) {
    CsvRecord rec;
    rec.line = line;
    rec.fields.emplace_back();
    bool quoted = false;
    for (; i < text.size(); ++i) {
      const char c = text[i];
      if (bad_utf8 && static_cast<int64_t>(i) == bad_utf8.offset) bad_record = out.size(), bad_field = rec.fields.size() - 1;
      if (quoted) {
        if (c == '"' && i + 1 < text.size() && text[i + 1] == '"') {
          rec.fields.back() += '"';
          ++i;
        } else if (c == '"') {
          quoted = false;
        } else {
          if (c == '\n') ++line;
          rec.fields.back() += c;
        }
      } else if (c == '"') {
        quoted = true;
      } else if (c == ',') {
        rec.fields.emplace_back();
      } else if (c == '\n') {
        ++line;
        ++i;
        break;
      } else {
        rec.fields.back() += c;
      }
    }
    if (quoted) {
      throw UsageError("'" + path + "' line " + std::to_string(rec.line) + ": a quoted field is not closed");
    }
    for (auto& f : rec.fields) f = trim(f);
    if (rec.fields.size() == 1 && rec.fields[0].empty()) continue;  // blank line
    out.push_back(std::move(rec));
  }
  std::vector<std::string> problems;
  if (bad_utf8) {
    const bool in_header = bad_record == 0;
    const auto& header = out.front().fields;
    const std::string column = in_header || bad_field >= header.size() ? "field " + std::to_string(bad_field + 1)
                                                                       : "column '" + header[bad_field] + "'";
    problems.push_back(invalid_utf8_message(bad_utf8, "", in_header ? "the header's " + column : column));
  }
  constexpr size_t kShown = 20;
  size_t ragged = 0;
  for (size_t r = 1; r < out.size(); ++r) {
    const size_t n = out[r].fields.size(), want = out[0].fields.size();
    if (n == want || ++ragged > kShown) continue;
    problems.push_back("line " + std::to_string(out[r].line) + ": " + std::to_string(n) + " fields, but the header has " +
                       std::to_string(want) + (n > want ? " (a field holding a comma needs double quotes)" : ""));
  }
  if (ragged > kShown) problems.push_back("... and " + std::to_string(ragged - kShown) + " more rows with the wrong number of fields");
  if (problems.size() == 1) throw UsageError("'" + path + "' " + problems.front());
  if (!problems.empty()) {
    const size_t count = ragged + (bad_utf8 ? 1 : 0);
    throw UsageError(problem_list("'" + path + "': " + std::to_string(count) + " problems:", problems));
  }
  return out;
}

std::string quoted_names(const std::vector<std::string>& names) {
  std::vector<std::string> q;
  for (const auto& n : names) q.push_back("'" + n + "'");
  return join(q);
}

// A target cell: blank or a pandas missing marker = NaN; otherwise the whole cell must be a finite number.
bool parse_target(const std::string& cell, float* value) {
  static const std::set<std::string> kMissing = {"", "NA", "N/A", "n/a", "NaN", "nan", "-NaN", "-nan",
                                                 "null", "NULL", "None", "#N/A", "<NA>"};
  if (kMissing.count(cell)) {
    *value = std::numeric_limits<float>::quiet_NaN();
    return true;
  }
  char* end = nullptr;
  const double v = std::strtod(cell.c_str(), &end);
  if (end == cell.c_str() || *end != '\0' || !std::isfinite(v)) return false;
  *value = static_cast<float>(v);
  return true;
}

std::string first_lines(const std::vector<int64_t>& lines, size_t shown = 5) {
  std::string s;
  for (size_t i = 0; i < lines.size() && i < shown; ++i) s += (i ? ", " : "") + std::to_string(lines[i]);
  if (lines.size() > shown) s += ", ...";
  return s;
}

// ---------------------------------------------------------------------------------------------
// Splits

void check_fractions(double frac_train, double frac_val) {
  if (!(frac_train > 0 && frac_train <= 1) || !(frac_val >= 0) || frac_train + frac_val > 1 + 1e-9) {
    std::ostringstream s;
    s << "split fractions: frac_train " << frac_train << ", frac_val " << frac_val
      << " are invalid: need 0 < frac_train <= 1, frac_val >= 0 and frac_train + frac_val <= 1";
    throw UsageError(s.str());
  }
}

// Uniform in [0, bound) without modulo bias (std::uniform_int_distribution differs between
// standard libraries; this does not).
uint64_t uniform_below(std::mt19937_64& rng, uint64_t bound) {
  const uint64_t limit = std::numeric_limits<uint64_t>::max() - std::numeric_limits<uint64_t>::max() % bound;
  uint64_t x;
  do {
    x = rng();
  } while (x >= limit);
  return x % bound;
}

}  // namespace

// ---------------------------------------------------------------------------------------------

bool smiles_parses(const std::string& smiles) { return parse(smiles) != nullptr; }
void set_max_smiles_length(int64_t chars) { g_max_smiles_length = chars; }
int64_t max_smiles_length() { return g_max_smiles_length.load(); }

std::vector<uint8_t> morgan_bits(const std::string& smiles, unsigned radius, unsigned n_bits) {
  const auto mol = parse(smiles);
  if (!mol) throw UsageError("SMILES '" + smiles.substr(0, 80) + "' does not parse (fingerprint)");
  std::unique_ptr<ExplicitBitVect> fp(RDKit::MorganFingerprints::getFingerprintAsBitVect(*mol, radius, n_bits));
  std::vector<uint8_t> bits(n_bits, 0);
  for (unsigned i = 0; i < n_bits; ++i) bits[i] = fp->getBit(i) ? 1 : 0;
  return bits;
}

std::string canonical_smiles(const std::string& smiles) {
  const auto mol = parse(smiles);
  return mol ? RDKit::MolToSmiles(*mol) : std::string();
}

std::string murcko_scaffold(const std::string& smiles) {
  const auto mol = parse(smiles);
  if (!mol) throw UsageError("SMILES '" + smiles + "' does not parse (RDKit), so it has no scaffold");
  // rdkit.Chem.Scaffolds.MurckoScaffold.GetScaffoldForMol, then MolToSmiles(scaffold, isomericSmiles=False).
  std::unique_ptr<RDKit::ROMol> scaffold(RDKit::MurckoDecompose(*mol));
  if (!scaffold || scaffold->getNumAtoms() == 0) return "";
  scaffold->clearComputedProps();
  scaffold->updatePropertyCache();
  RDKit::MolOps::symmetrizeSSSR(*scaffold);
  return RDKit::MolToSmiles(*scaffold, /*doIsomericSmiles=*/false);
}

std::string randomized_smiles(const std::string& smiles, std::mt19937_64& rng) {
  const auto mol = parse(smiles);
  if (!mol) return "";
  const int seed = static_cast<int>(rng() % 2147483646ULL) + 1;  // minstd_rand's seeds are 1..2^31-2
  RDKit::SmilesWriteParams params;
  params.doRandom = true;
  params.canonical = false;
  static std::mutex mutex;  // RDKit's generator is global
  std::lock_guard<std::mutex> lock(mutex);
  RDKit::getRandomGenerator(seed);
  return RDKit::MolToSmiles(*mol, params);
}

namespace {
// A CSV of inputs and targets: SMILES (`smiles`: parsed by RDKit, unparsable rows dropped or an
// error) or text (kept as is, with an optional second text per row).
MoleculeTable read_input_csv(const std::string& path, const std::string& smiles_col, const std::string& pair_col,
                             const std::vector<std::string>& target_cols, bool is_smiles, bool invalid_is_error) {
  const auto records = parse_csv(read_file(path), path);
  if (records.empty()) throw UsageError("'" + path + "' is empty (a header line and rows are expected)");
  const auto& header = records[0].fields;
  auto column = [&](const std::string& name) -> int64_t {
    const auto it = std::find(header.begin(), header.end(), name);
    return it == header.end() ? -1 : it - header.begin();
  };
  std::vector<std::string> missing;
  const int64_t smiles_idx = column(smiles_col);
  if (smiles_idx < 0) missing.push_back(smiles_col);
  const int64_t pair_idx = pair_col.empty() ? -1 : column(pair_col);
  if (!pair_col.empty() && pair_idx < 0) missing.push_back(pair_col);
  std::vector<int64_t> target_idx;
  for (const auto& t : target_cols) {
    target_idx.push_back(column(t));
    if (target_idx.back() < 0) missing.push_back(t);
  }
  if (!missing.empty()) {
    throw UsageError("'" + path + "' line " + std::to_string(records[0].line) + ": no column " + quoted_names(missing) +
                     " (columns: " + quoted_names(header) + ")");
  }

  MoleculeTable table;
  table.path = path;
  table.target_names = target_cols;
  std::vector<std::string> bad_smiles;
  for (size_t r = 1; r < records.size(); ++r) {
    const auto& rec = records[r];
    std::vector<float> row(target_idx.size());
    for (size_t k = 0; k < target_idx.size(); ++k) {
      const auto& cell = rec.fields[target_idx[k]];
      if (!parse_target(cell, &row[k])) {
        throw UsageError("'" + path + "' line " + std::to_string(rec.line) + ", column '" + target_cols[k] +
                         "': expected a number, got '" + cell + "'");
      }
    }
    const auto& smiles = rec.fields[smiles_idx];
    if (is_smiles ? !smiles_parses(smiles) : smiles.empty()) {
      ++table.dropped;
      table.dropped_lines.push_back(rec.line);
      bad_smiles.push_back(smiles);
      continue;
    }
    table.smiles.push_back(smiles);
    if (pair_idx >= 0) table.pairs.push_back(rec.fields[pair_idx]);
    table.line.push_back(rec.line);
    table.targets.insert(table.targets.end(), row.begin(), row.end());
  }
  if (table.dropped > 0 && !is_smiles) {
    log::warn("[data] '" + path + "': dropped " + std::to_string(table.dropped) + " rows with an empty '" + smiles_col +
              "' (lines " + first_lines(table.dropped_lines) + ")");
  } else if (table.dropped > 0) {
    if (invalid_is_error) {
      std::string shown;
      for (size_t i = 0; i < bad_smiles.size() && i < 5; ++i) {
        shown += (i ? ", " : "") + std::string("line ") + std::to_string(table.dropped_lines[i]) + " '" +
                 bad_smiles[i].substr(0, 80) + "'";
      }
      throw UsageError("'" + path + "': " + std::to_string(table.dropped) + " SMILES in column '" + smiles_col +
                       "' that RDKit cannot parse (or longer than " + std::to_string(max_smiles_length()) +
                       " characters, data.max_smiles_length): " + shown + (bad_smiles.size() > 5 ? ", ..." : ""));
    }
    log::warn("[data] '" + path + "': dropped " + std::to_string(table.dropped) + " of " +
              std::to_string(records.size() - 1) + " rows whose SMILES RDKit cannot parse or that are longer than " +
              std::to_string(max_smiles_length()) + " characters (lines " +
              first_lines(table.dropped_lines) + ")");
  }
  if (table.smiles.empty()) {
    throw UsageError("'" + path + "': no rows" +
                     (table.dropped ? (is_smiles ? " with a SMILES that RDKit can parse (" : " with a text (") +
                                          std::to_string(table.dropped) + " dropped)"
                                    : std::string(" below the header")));
  }
  return table;
}
}  // namespace

void MoleculeTable::keep_first(int64_t n) {
  if (n <= 0 || size() <= n) return;
  const auto rows = static_cast<size_t>(n);
  smiles.resize(rows);
  line.resize(rows);
  if (!pairs.empty()) pairs.resize(rows);
  targets.resize(rows * target_names.size());
}

MoleculeTable read_molecule_csv(const std::string& path, const std::string& smiles_col,
                                const std::vector<std::string>& target_cols, bool invalid_is_error) {
  return read_input_csv(path, smiles_col, "", target_cols, true, invalid_is_error);
}

MoleculeTable read_text_csv(const std::string& path, const std::string& text_col, const std::string& pair_col,
                            const std::vector<std::string>& target_cols) {
  return read_input_csv(path, text_col, pair_col, target_cols, false, false);
}

std::vector<std::string> read_text_corpus(const std::string& path, const std::string& text_col) {
  if (!text_col.empty()) return read_smiles_corpus(path, text_col);  // the CSV column (the reader does not parse SMILES)
  std::string text = read_file(path);
  check_utf8(text, "'" + path + "'");
  if (text.compare(0, 3, "\xEF\xBB\xBF") == 0) text = text.substr(3);  // UTF-8 byte order mark
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) {
    if (!l.empty() && l.back() == '\r') l.pop_back();
    if (!trim(l).empty()) out.push_back(l);  // kept as written: spaces are tokens to GPT-2
  }
  if (out.empty()) throw UsageError("'" + path + "' holds no text (one document per line)");
  return out;
}


std::vector<std::string> read_smiles_corpus(const std::string& path, const std::string& smiles_col, bool every_row) {
  std::string text = read_file(path);
  if (text.compare(0, 3, "\xEF\xBB\xBF") == 0) text = text.substr(3);  // UTF-8 byte order mark
  const std::string first = trim(text.substr(0, text.find('\n')));
  std::vector<std::string> out;
  if (first.find(',') != std::string::npos || lower(first) == lower(smiles_col)) {  // CSV
    const auto records = parse_csv(text, path);
    const auto& header = records.at(0).fields;
    auto col = std::find(header.begin(), header.end(), smiles_col) - header.begin();
    if (col == static_cast<int64_t>(header.size())) {
      col = std::find_if(header.begin(), header.end(), [&](const std::string& h) { return lower(h) == lower(smiles_col); }) -
            header.begin();
    }
    if (col == static_cast<int64_t>(header.size())) {
      throw UsageError("'" + path + "' line 1: no column '" + smiles_col + "' (columns: " + quoted_names(header) + ")");
    }
    for (size_t r = 1; r < records.size(); ++r) {
      const auto& f = records[r].fields;
      if (!f[col].empty()) {  // parse_csv: every row has the header's fields
        out.push_back(f[col]);
      } else if (every_row) {
        throw UsageError("'" + path + "' line " + std::to_string(records[r].line) + ": no SMILES in column '" +
                         header[col] + "'");
      }
    }
  } else {
    check_utf8(text, "'" + path + "'");
    std::istringstream in(text);
    for (std::string l; std::getline(in, l);) {
      l = trim(l);
      if (!l.empty()) out.push_back(l);
    }
  }
  if (out.empty()) throw UsageError("'" + path + "' holds no SMILES");
  return out;
}

// The pretraining corpus as a table without targets: data.exclude's molecules removed (by
// canonical SMILES), unparsable SMILES dropped (or an error).
MoleculeTable read_pretraining_corpus(const DataConfig& d, int64_t* excluded) {
  const auto raw = read_smiles_corpus(d.csv, d.smiles_col);
  std::unordered_set<std::string> exclude;
  for (const auto& path : d.exclude) {
    for (const auto& s : read_smiles_corpus(path, "smiles")) {
      auto c = canonical_smiles(s);
      if (!c.empty()) exclude.insert(std::move(c));
    }
  }
  MoleculeTable t;
  t.path = d.csv;
  *excluded = 0;
  for (size_t i = 0; i < raw.size(); ++i) {
    const std::string canonical = exclude.empty() ? std::string() : canonical_smiles(raw[i]);
    const bool ok = exclude.empty() ? smiles_parses(raw[i]) : !canonical.empty();
    if (!ok) {
      if (d.invalid_smiles == "error") {
        throw UsageError("'" + d.csv + "' SMILES " + std::to_string(i + 1) + " ('" + raw[i].substr(0, 60) +
                         "') does not parse (data.invalid_smiles: drop skips such rows)");
      }
      ++t.dropped;
      t.dropped_lines.push_back(static_cast<int64_t>(i + 1));
      continue;
    }
    if (!exclude.empty() && exclude.count(canonical)) {
      ++*excluded;
      continue;
    }
    t.smiles.push_back(raw[i]);
    t.line.push_back(static_cast<int64_t>(i + 1));
  }
  if (t.dropped > 0) {
    log::warn("[data] '" + d.csv + "': " + std::to_string(t.dropped) + " SMILES RDKit cannot parse were dropped (entries " +
              first_lines(t.dropped_lines) + ")");
  }
  if (!d.exclude.empty()) {
    log::info("[data] " + std::to_string(*excluded) + " corpus molecules also in data.exclude (" +
              std::to_string(exclude.size()) + " molecules) were removed");
  }
  if (t.smiles.size() < 2) throw UsageError("data.csv: '" + d.csv + "' has fewer than 2 usable SMILES after filtering");
  return t;
}

// ---------------------------------------------------------------------------------------------

Split random_split(int64_t n, double frac_train, double frac_val, uint64_t seed) {
  check_fractions(frac_train, frac_val);
  if (n < 1) throw UsageError("random split: no rows to split");
  std::vector<int64_t> perm(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) perm[i] = i;
  std::mt19937_64 rng(seed);
  for (int64_t i = n - 1; i > 0; --i) {
    const auto j = static_cast<int64_t>(uniform_below(rng, static_cast<uint64_t>(i + 1)));
    std::swap(perm[i], perm[j]);
  }
  const auto n_train = std::min<int64_t>(n, static_cast<int64_t>(std::floor(frac_train * static_cast<double>(n))));
  const auto n_val = std::min<int64_t>(n - n_train, static_cast<int64_t>(std::floor(frac_val * static_cast<double>(n))));
  Split s;
  s.method = "random";
  s.train.assign(perm.begin(), perm.begin() + n_train);
  s.val.assign(perm.begin() + n_train, perm.begin() + n_train + n_val);
  s.test.assign(perm.begin() + n_train + n_val, perm.end());
  return s;
}

Split scaffold_split(const std::vector<std::string>& smiles, double frac_train, double frac_val) {
  check_fractions(frac_train, frac_val);
  if (smiles.empty()) throw UsageError("scaffold split: no molecules to split");
  // deepchem.splits.ScaffoldSplitter.generate_scaffolds + split.
  std::unordered_map<std::string, size_t> set_of;
  std::vector<std::vector<int64_t>> sets;  // in order of first appearance; indices ascending
  for (size_t i = 0; i < smiles.size(); ++i) {
    const auto [it, added] = set_of.emplace(murcko_scaffold(smiles[i]), sets.size());
    if (added) sets.emplace_back();
    sets[it->second].push_back(static_cast<int64_t>(i));
  }
  // sorted(..., key=lambda x: (len(x), x[0]), reverse=True)
  std::sort(sets.begin(), sets.end(), [](const std::vector<int64_t>& a, const std::vector<int64_t>& b) {
    return a.size() != b.size() ? a.size() > b.size() : a[0] > b[0];
  });
  const double n = static_cast<double>(smiles.size());
  const double train_cutoff = frac_train * n, valid_cutoff = (frac_train + frac_val) * n;
  Split s;
  s.method = "scaffold";
  s.scaffolds = static_cast<int64_t>(sets.size());
  for (const auto& set : sets) {
    auto& into = static_cast<double>(s.train.size() + set.size()) > train_cutoff
                     ? (static_cast<double>(s.train.size() + s.val.size() + set.size()) > valid_cutoff ? s.test : s.val)
                     : s.train;
    into.insert(into.end(), set.begin(), set.end());
  }
  return s;
}

Split read_split_file(const std::string& path, int64_t n) {
  const auto j = read_json_file(path);
  if (!j.is_object()) throw UsageError("'" + path + "': a split file is a JSON object with train, val and test index lists");
  std::vector<std::string> problems;
  if (j.contains("schema_version")) {
    const auto& v = j["schema_version"];
    if (!v.is_number_integer()) {
      problems.push_back("schema_version must be an integer");
    } else if (v.get<int64_t>() > kSplitSchemaVersion) {
      throw UsageError("'" + path + "' has split schema version " + std::to_string(v.get<int64_t>()) +
                       "; this attnscope reads up to " + std::to_string(kSplitSchemaVersion) +
                       ": use a newer attnscope, or write the split again");
    }
  }
  if (j.contains("rows") && (!j["rows"].is_number_integer() || j["rows"].get<int64_t>() != n)) {
    problems.push_back("it was written for " + j["rows"].dump() + " rows, but the table has " + std::to_string(n) +
                       " (another CSV, or other SMILES dropped?)");
  }
  Split s;
  s.method = j.contains("method") && j["method"].is_string() ? j["method"].get<std::string>() : "file";
  std::map<int64_t, std::string> seen;  // index -> where it appeared first
  int64_t out_of_range = 0, duplicates = 0;
  using Part = std::pair<const char*, std::vector<int64_t>*>;
  for (const auto& [name, list] : {Part{"train", &s.train}, Part{"val", &s.val}, Part{"test", &s.test}}) {
    if (!j.contains(name)) {
      if (std::string(name) == "train") problems.push_back("no \"train\" list");
      continue;
    }
    const auto& a = j[name];
    if (!a.is_array()) {
      problems.push_back("\"" + std::string(name) + "\" is not a list of row indices");
      continue;
    }
    for (size_t k = 0; k < a.size(); ++k) {
      const std::string where = std::string(name) + "[" + std::to_string(k) + "]";
      if (!a[k].is_number_integer()) {
        problems.push_back(where + " = " + a[k].dump() + " is not an integer");
        continue;
      }
      const auto idx = a[k].get<int64_t>();
      if (idx < 0 || idx >= n) {
        if (out_of_range++ < 5) {
          problems.push_back(where + " = " + std::to_string(idx) + " is out of [0, " + std::to_string(n) + ")");
        }
        continue;
      }
      const auto [it, added] = seen.emplace(idx, where);
      if (!added) {
        if (duplicates++ < 5) problems.push_back("row " + std::to_string(idx) + " is in " + it->second + " and " + where);
        continue;
      }
      list->push_back(idx);
    }
  }
  if (out_of_range > 5) problems.push_back(std::to_string(out_of_range) + " indices out of range in all");
  if (duplicates > 5) problems.push_back(std::to_string(duplicates) + " repeated indices in all");
  if (j.contains("train") && j["train"].is_array() && j["train"].empty()) problems.push_back("the train split is empty");
  if (problems.size() == 1) throw UsageError("split file '" + path + "': " + problems[0]);
  if (!problems.empty()) {
    throw UsageError(problem_list("split file '" + path + "': " + std::to_string(problems.size()) + " problems:", problems));
  }
  return s;
}

void write_split_file(const std::string& path, const Split& split, const std::string& source_csv) {
  // One key per line, index lists on one line each: small and diffable.
  const auto rows = static_cast<int64_t>(split.train.size() + split.val.size() + split.test.size());
  std::vector<std::pair<std::string, nlohmann::ordered_json>> fields = {
      {"schema_version", kSplitSchemaVersion},
      {"attnscope_version", kVersion},
      {"method", split.method},
      {"source", source_csv},
      {"rows", rows},
      {"counts", nlohmann::ordered_json{{"train", split.train.size()}, {"val", split.val.size()}, {"test", split.test.size()}}},
  };
  if (split.method == "scaffold") fields.emplace_back("scaffolds", split.scaffolds);
  fields.emplace_back("train", split.train);
  fields.emplace_back("val", split.val);
  fields.emplace_back("test", split.test);
  std::string text = "{\n";
  for (size_t i = 0; i < fields.size(); ++i) {
    text += "  " + nlohmann::json(fields[i].first).dump() + ": " + fields[i].second.dump() +
            (i + 1 < fields.size() ? ",\n" : "\n");
  }
  text += "}\n";
  write_file_atomic(path, text);
}

Split config_split(const DataConfig& d, const MoleculeTable& table, uint64_t seed) {
  Split split;
  if (d.split == "scaffold") {
    split = scaffold_split(table.smiles, d.frac_train, d.frac_val);
  } else if (d.split == "random") {
    split = random_split(table.size(), d.frac_train, d.frac_val, seed);
  } else {
    split = read_split_file(d.split_file, table.size());
  }
  for (const auto& [name, part] : {std::pair<const char*, const std::vector<int64_t>*>{"train", &split.train},
                                   {"val", &split.val}, {"test", &split.test}}) {
    if (part->empty()) {
      throw UsageError("data.split: the " + std::string(name) + " split of '" + d.csv + "' is empty (" +
                       std::to_string(table.size()) + " molecules after filtering)");
    }
  }
  return split;
}

}  // namespace attnscope::data
