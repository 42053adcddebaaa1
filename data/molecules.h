// Molecular datasets: MoleculeNet-style CSVs (a SMILES column, target columns, blank = missing
// label), SMILES validation with RDKit, random / scaffold / file splits, SMILES enumeration.
// RDKit stays inside molecules.cpp.
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "core/core.h"

namespace attnscope::data {

struct MoleculeTable {
  std::string path;
  std::vector<std::string> smiles;        // the inputs: SMILES (whitespace-trimmed, parsed by RDKit) or texts
  std::vector<std::string> pairs;         // text pairs: each row's second text (empty: none)
  std::vector<int64_t> line;              // 1-based line of each row in the file
  std::vector<std::string> target_names;
  std::vector<float> targets;             // [rows x targets] row-major; NaN = missing label
  int64_t dropped = 0;                    // rows whose SMILES RDKit could not parse
  std::vector<int64_t> dropped_lines;     // their lines (all of them)
  int64_t size() const { return static_cast<int64_t>(smiles.size()); }
  void keep_first(int64_t n);  // only the first n rows (data.max_rows; n <= 0: all)
};

// Reads `path`. UsageError naming the file (and line) for: a missing SMILES or target column
// (listing the columns that exist), a target cell that is not a number (blank is fine), no rows.
// Unparsable SMILES are dropped with one warning (count + first few lines), or are an error
// when invalid_is_error.
// Format: a header line; fields separated by commas, double-quoted fields may hold commas, ""
// and line breaks; fields are whitespace-trimmed; blank lines are skipped; every row has the
// header's number of fields and the file is UTF-8 (UsageError listing every row with too many or
// too few fields, and the first invalid UTF-8 byte by line, byte and column). A blank target cell
// (or pandas' missing markers NA, N/A, NaN, nan, null, NULL, None, #N/A) is NaN. An empty
// SMILES cell counts as unparsable, as does one with whitespace inside (RDKit would read the
// rest as a name).
MoleculeTable read_molecule_csv(const std::string& path, const std::string& smiles_col,
                                const std::vector<std::string>& target_cols, bool invalid_is_error = false);

// A CSV of texts (column text_col, optional second text pair_col) and targets, read as
// read_molecule_csv reads SMILES but without RDKit: a row with an empty text is dropped (one
// warning); texts are whitespace-trimmed, otherwise kept as they are.
MoleculeTable read_text_csv(const std::string& path, const std::string& text_col, const std::string& pair_col,
                            const std::vector<std::string>& target_cols);
// A text corpus: the CSV column text_col, else one document per line (kept as written, a
// trailing \r removed; blank lines skipped). UsageError naming the file when it holds no text, or
// its line and byte where it is not UTF-8 (check_utf8).
std::vector<std::string> read_text_corpus(const std::string& path, const std::string& text_col);

// A SMILES file for pretraining: one per line, or a CSV with a `smiles_col` column (taken as CSV
// when the first line holds a comma or is the column name; the column is matched exactly, else
// case-insensitively). Trimmed; blank lines and empty cells skipped; not parsed by RDKit.
// UsageError naming the file when it cannot be read, has no such column or holds no SMILES.
// With `every_row` (callers that answer row by row: predict, tokenize), a CSV row without a
// SMILES is an error naming its line rather than skipped. A UTF-8 byte-order mark is ignored; a
// byte that is not UTF-8 is an error naming its line and byte (and column), as parse_csv checks CSVs.
std::vector<std::string> read_smiles_corpus(const std::string& path, const std::string& smiles_col = "smiles",
                                            bool every_row = false);
// The masked-LM corpus of a config (data.csv, data.smiles_col) as a table without targets: every
// SMILES parsed by RDKit (unparsable ones dropped with one warning, or an error with
// data.invalid_smiles: error), the molecules of data.exclude's files (canonical SMILES, column
// 'smiles') removed and counted in *excluded. UsageError when fewer than 2 remain.
MoleculeTable read_pretraining_corpus(const DataConfig& d, int64_t* excluded);

bool smiles_parses(const std::string& smiles);  // RDKit, sanitised; no log noise
// SMILES longer than this (characters) are never given to RDKit, whose parse time grows about
// cubically with the length: every function here treats them as unparsable (default 1000;
// data.max_smiles_length sets it).
void set_max_smiles_length(int64_t chars);
int64_t max_smiles_length();
// Morgan fingerprint as bits (ECFP4 for radius 2): RDKit's getFingerprintAsBitVect(mol, radius,
// n_bits) with its defaults (no chirality, bond types), 0/1 per bit. UsageError when it does not parse.
std::vector<uint8_t> morgan_bits(const std::string& smiles, unsigned radius = 2, unsigned n_bits = 2048);
std::string canonical_smiles(const std::string& smiles);  // "" when it does not parse
// Bemis-Murcko scaffold without chirality, as canonical SMILES ("" for acyclic molecules), as
// DeepChem's ScaffoldSplitter computes it (MurckoScaffold.MurckoScaffoldSmiles(mol, includeChirality=False)).
// UsageError when `smiles` does not parse.
std::string murcko_scaffold(const std::string& smiles);
// A random non-canonical SMILES of the same molecule (for augmentation), from `rng`: RDKit's
// doRandom writer with its global generator seeded from one draw of `rng` (under a lock), so the
// result depends only on `rng`'s state. "" when `smiles` does not parse.
std::string randomized_smiles(const std::string& smiles, std::mt19937_64& rng);

struct Split {
  std::string method;  // random | scaffold | file
  std::vector<int64_t> train, val, test;  // row indices into the table
  int64_t scaffolds = 0;  // scaffold: the number of distinct scaffolds (0 otherwise)
};
// Fractions: UsageError unless 0 < frac_train <= 1, 0 <= frac_val, frac_train + frac_val <= 1.
// Seeded random split (fractions of n; the rest is test): a Fisher-Yates shuffle of 0..n-1 drawn
// from std::mt19937_64(seed) (same on every platform); train = the first floor(frac_train * n),
// val = the next floor(frac_val * n), test = the rest, each in shuffled order.
Split random_split(int64_t n, double frac_train, double frac_val, uint64_t seed);
// DeepChem's ScaffoldSplitter: groups by scaffold, sorted by size descending (ties: first index),
// filled into train until frac_train would be exceeded, then val, then test.
// Exactly: sets sorted by (size, first index) descending (so equal sizes: the later first index
// first); a set goes to train unless train + set > frac_train * n, then to val unless
// train + val + set > (frac_train + frac_val) * n, else to test. Indices ascend within a set.
Split scaffold_split(const std::vector<std::string>& smiles, double frac_train, double frac_val);
// JSON {"method": ..., "train": [...], "val": [...], "test": [...]} (UsageError naming the file for
// indices out of [0, n), duplicates, or an empty train split).
// Also refused, all problems in one error: a schema_version above 1, "rows" (written by
// write_split_file) other than n, index lists that are not arrays of integers. "val" and "test"
// may be absent (empty). method: the file's "method", or "file" when it has none.
Split read_split_file(const std::string& path, int64_t n);
// Writes (atomically, replacing `path`) schema_version, attnscope_version, method, source (as
// given), rows (train + val + test), counts, scaffolds (scaffold splits) and the index lists.
void write_split_file(const std::string& path, const Split& split, const std::string& source_csv);

// The split a config asks for (data.split: scaffold | random (seeded) | file) over `table`: the
// same for a fine-tuning run and its fingerprint baseline. UsageError naming the empty split.
Split config_split(const DataConfig& d, const MoleculeTable& table, uint64_t seed);

}  // namespace attnscope::data
