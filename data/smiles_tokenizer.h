// Atom-level SMILES tokenizer: the regular expression of the Molecular Transformer and DeepChem's
// SmilesTokenizer (bracket atoms, Br/Cl, %NN ring closures, bonds including '#', branches,
// stereo marks), with a vocabulary built from a corpus and saved beside the model as vocab.json.
// Special tokens take RoBERTa's ids: <s>=0 <pad>=1 </s>=2 <unk>=3 <mask>=4.
#pragma once

#include <string>
#include <unordered_map>
#include <vector>

#include "data/tokenizer.h"

namespace attnscope::data {

class SmilesTokenizer : public Tokenizer {
 public:
  // Tokens seen at least `min_count` times in `corpus`, most frequent first (ties by text).
  static SmilesTokenizer build(const std::vector<std::string>& corpus, int64_t min_count = 1);
  static SmilesTokenizer load(const std::string& vocab_json);
  void save_vocab(const std::string& vocab_json) const;

  std::string kind() const override { return "smiles-regex"; }
  std::vector<std::string> tokenize(const std::string& smiles, std::vector<Span>* spans = nullptr) const override;
  int64_t token_id(const std::string& token) const override;
  const std::string& id_token(int64_t id) const override { return tokens_.at(static_cast<size_t>(id)); }
  int64_t vocab_size() const override { return static_cast<int64_t>(tokens_.size()); }
  const SpecialTokens& specials() const override;
  void save(const std::string& dir) const override { save_vocab(dir + "/vocab.json"); }
  static constexpr int64_t kBos = 0, kPad = 1, kEos = 2, kUnk = 3, kMask = 4;

 protected:
  std::string detokenize(const std::vector<std::string>& tokens) const override;

 private:
  std::vector<std::string> tokens_;
  std::unordered_map<std::string, int64_t> ids_;
};

}  // namespace attnscope::data
