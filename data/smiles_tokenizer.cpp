// Atom-level SMILES tokenizer (data/smiles_tokenizer.h).
#include "data/smiles_tokenizer.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <map>

#include "core/core.h"

namespace attnscope::data {

SmilesTokenizer SmilesTokenizer::build(const std::vector<std::string>& corpus, int64_t min_count) {
  std::map<std::string, int64_t> counts;
  for (const auto& s : corpus) {
    for (const auto& t : smiles_split(s)) ++counts[t];
  }
  std::vector<std::pair<std::string, int64_t>> sorted(counts.begin(), counts.end());
  std::stable_sort(sorted.begin(), sorted.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
  SmilesTokenizer t;
  t.tokens_ = {"<s>", "<pad>", "</s>", "<unk>", "<mask>"};
  for (const auto& [tok, n] : sorted) {
    if (n >= min_count) t.tokens_.push_back(tok);
  }
  for (size_t i = 0; i < t.tokens_.size(); ++i) t.ids_[t.tokens_[i]] = static_cast<int64_t>(i);
  return t;
}

void SmilesTokenizer::save_vocab(const std::string& vocab_json) const {
  nlohmann::ordered_json j;
  for (size_t i = 0; i < tokens_.size(); ++i) j[tokens_[i]] = i;
  write_file_atomic(vocab_json, j.dump(1) + "\n");
}

SmilesTokenizer SmilesTokenizer::load(const std::string& vocab_json) {
  const nlohmann::json j = read_json_file(vocab_json);
  SmilesTokenizer t;
  t.tokens_.assign(j.size(), "");
  for (const auto& [tok, id] : j.items()) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<size_t>() >= j.size()) {
      throw UsageError("'" + vocab_json + "': token '" + tok + "' has id " + id.dump());
    }
    t.tokens_[id.get<size_t>()] = tok;
    t.ids_[tok] = id.get<int64_t>();
  }
  const std::vector<std::string> specials = {"<s>", "<pad>", "</s>", "<unk>", "<mask>"};
  for (size_t i = 0; i < specials.size(); ++i) {
    if (i >= t.tokens_.size() || t.tokens_[i] != specials[i]) {
      throw UsageError("'" + vocab_json + "': id " + std::to_string(i) + " must be " + specials[i]);
    }
  }
  return t;
}

int64_t SmilesTokenizer::token_id(const std::string& token) const {
  auto it = ids_.find(token);
  return it == ids_.end() ? kUnk : it->second;
}

std::vector<std::string> SmilesTokenizer::tokenize(const std::string& smiles, std::vector<Span>* spans) const {
  return smiles_split(smiles, spans);
}

const SpecialTokens& SmilesTokenizer::specials() const {
  static const SpecialTokens ids{kBos, kPad, kEos, kUnk, kMask};
  return ids;
}

std::string SmilesTokenizer::detokenize(const std::vector<std::string>& tokens) const { return join(tokens, ""); }

}  // namespace attnscope::data
