// The tokenizer interface's shared parts and the choice of tokenizer by files (data/tokenizer.h).
#include "data/tokenizer.h"

#include <nlohmann/json.hpp>

#include <filesystem>

#include "core/core.h"
#include "data/bpe_tokenizer.h"
#include "data/smiles_tokenizer.h"

namespace attnscope::data {
namespace fs = std::filesystem;

std::vector<int64_t> Tokenizer::encode(const std::string& text, int64_t max_len, std::vector<Span>* spans) const {
  std::vector<Span> sp;
  const auto tokens = tokenize(text, spans ? &sp : nullptr);
  size_t keep = tokens.size();
  if (max_len > 0) keep = std::min(keep, static_cast<size_t>(std::max<int64_t>(0, max_len - 2)));
  std::vector<int64_t> ids{bos_id()};
  for (size_t i = 0; i < keep; ++i) ids.push_back(token_id(tokens[i]));
  ids.push_back(eos_id());
  if (spans) spans->assign(sp.begin(), sp.begin() + static_cast<std::ptrdiff_t>(keep));
  return ids;
}

Tokenizer::Batch Tokenizer::encode_batch(const std::vector<std::string>& texts, int64_t max_len) const {
  std::vector<std::vector<int64_t>> rows;
  size_t T = 0;
  for (const auto& t : texts) {
    rows.push_back(encode(t, max_len));
    T = std::max(T, rows.back().size());
  }
  Batch b;
  b.input_ids = torch::full({static_cast<int64_t>(rows.size()), static_cast<int64_t>(T)}, pad_id(), torch::kLong);
  b.attention_mask = torch::zeros_like(b.input_ids);
  for (size_t i = 0; i < rows.size(); ++i) {
    for (size_t j = 0; j < rows[i].size(); ++j) {
      b.input_ids[i][j] = rows[i][j];
      b.attention_mask[i][j] = 1;
    }
  }
  return b;
}

std::string Tokenizer::decode(const std::vector<int64_t>& ids, bool keep_special) const {
  const auto special = special_ids();
  std::vector<std::string> tokens;
  for (int64_t id : ids) {
    if (id < 0 || id >= vocab_size()) throw UsageError("token id " + std::to_string(id) + " is outside the vocabulary (0.." + std::to_string(vocab_size() - 1) + ")");
    if (!keep_special && std::find(special.begin(), special.end(), id) != special.end()) continue;
    tokens.push_back(id_token(id));
  }
  return detokenize(tokens);
}

std::shared_ptr<const Tokenizer> load_tokenizer(const std::string& dir) {
  const fs::path d(dir);
  if (!fs::exists(d / "vocab.json")) throw UsageError("'" + dir + "' has no vocab.json (the model's tokenizer)");
  std::shared_ptr<Tokenizer> tok;
  if (fs::exists(d / "merges.txt")) {
    tok = std::make_shared<BpeTokenizer>(BpeTokenizer::from_dir(dir));
  } else {
    // vocab.json alone is attnscope's atom-level tokenizer (a run's, or exported with its marker);
    // a Hugging Face tokenizer_config.json without that marker means a BPE whose merges.txt is missing
    const auto tc = d / "tokenizer_config.json";
    if (fs::exists(tc)) {
      const auto j = nlohmann::json::parse(read_file(tc.string()), nullptr, false);
      if (!j.is_object() || j.value("attnscope_tokenizer", std::string()) != "smiles-regex") {
        throw UsageError("'" + dir + "' has vocab.json but no merges.txt: its tokenizer_config.json describes a Hugging Face "
                         "tokenizer (byte-level BPE needs both files), not attnscope's atom-level one");
      }
    }
    tok = std::make_shared<SmilesTokenizer>(SmilesTokenizer::load((d / "vocab.json").string()));
  }
  tok->set_dir(dir);
  return tok;
}

}  // namespace attnscope::data
