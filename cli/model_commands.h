// `attnscope tokenize`, `predict` and `export`: SMILES or text in, tokens or model outputs out;
// models to Hugging Face directories.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace attnscope::cli {

// The inputs of a command: SMILES or text, given on the command line or in a file (one of them).
struct SmilesInput {
  std::vector<std::string> smiles;  // --smiles S ...
  std::string file;                 // --smiles-file F: one SMILES per line, or a CSV with a smiles column
  std::vector<std::string> text;    // --text S ...
  std::string text_file;            // --text-file F: one input per line
  int64_t max_input_chars = 1000000;  // --max-input-chars: longest input read, in characters
  bool is_text() const { return !text.empty() || !text_file.empty(); }
  std::string noun() const { return is_text() ? "text" : "SMILES"; }
};

struct TokenizeArgs {
  std::string model;  // a Hugging Face model or tokenizer directory, a molecule run or its checkpoint
  SmilesInput input;
  int64_t max_len = 0;    // cut to N tokens (<s> and </s> included); 0 = every id, as transformers
  bool truncate = false;  // cut to the model's positions (config.json), as truncation=True
};
int tokenize_command(const TokenizeArgs& args);

struct PredictArgs {
  std::string model;
  SmilesInput input;
  std::string output;            // CSV path (a masked-LM: JSON lines); empty = stdout
  std::optional<int64_t> top_k;  // a masked-LM: tokens per mask (5); refused for other models
  std::string too_long = "truncate";  // truncate (and warn) | error
  int64_t batch = 32;
};
int predict_command(const PredictArgs& args);

struct ExportArgs {
  std::string model;  // a Hugging Face directory, a molecule run or one of its checkpoints
  std::string hf;     // output directory
};
int export_command(const ExportArgs& args);

// The inputs from the arguments or the file (UsageError unless exactly one of the four is given;
// naming the file and line of a bad row, the input and its line and byte where it is not UTF-8,
// an input longer than max_input_chars characters).
std::vector<std::string> read_smiles(const SmilesInput& in);

}  // namespace attnscope::cli
