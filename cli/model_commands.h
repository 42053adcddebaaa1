// `attnscope tokenize`, `predict` and `export`: SMILES in, tokens or model outputs out; models to
// Hugging Face directories.
#pragma once

#include <string>
#include <vector>

namespace attnscope::cli {

struct SmilesInput {
  std::vector<std::string> smiles;  // --smiles S ...
  std::string file;                 // --smiles-file F: one SMILES per line, or a CSV with a smiles column
};

struct TokenizeArgs {
  std::string model;  // a directory with vocab.json + merges.txt (a Hugging Face model directory)
  SmilesInput input;
  int64_t max_len = 0;  // 0 = the model's positions when config.json is there, else no limit
};
int tokenize_command(const TokenizeArgs& args);

struct PredictArgs {
  std::string model;
  SmilesInput input;
  std::string output;            // CSV path; empty = stdout
  std::string too_long = "truncate";  // truncate (and warn) | error
  int64_t batch = 32;
};
int predict_command(const PredictArgs& args);

struct ExportArgs {
  std::string model;  // a Hugging Face directory (re-export) — attnscope RoBERTa runs with the ChemBERTa task
  std::string hf;     // output directory
};
int export_command(const ExportArgs& args);

// SMILES from the arguments or the file (UsageError naming the file and line of a bad row).
std::vector<std::string> read_smiles(const SmilesInput& in);

}  // namespace attnscope::cli
