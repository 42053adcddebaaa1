// Atom-level SMILES tokenizer: the regular expression of the Molecular Transformer and DeepChem's
// SmilesTokenizer (bracket atoms, Br/Cl, %NN ring closures, bonds including '#', branches,
// stereo marks), with a vocabulary built from a corpus and saved beside the model as vocab.json.
// Special tokens take RoBERTa's ids: <s>=0 <pad>=1 </s>=2 <unk>=3 <mask>=4.
#pragma once

#include <torch/torch.h>

#include "core/core.h"

#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace attnscope::data {

using Span = SmilesSpan;  // [begin, end) character offsets in the input
using attnscope::smiles_split;  // core/smiles.h

class SmilesTokenizer {
 public:
  // Tokens seen at least `min_count` times in `corpus`, most frequent first (ties by text).
  static SmilesTokenizer build(const std::vector<std::string>& corpus, int64_t min_count = 1);
  static SmilesTokenizer load(const std::string& vocab_json);
  void save(const std::string& vocab_json) const;

  // <s> tokens </s> (cut to max_len when > 0); spans exclude the special tokens.
  std::vector<int64_t> encode(const std::string& smiles, int64_t max_len = 0, std::vector<Span>* spans = nullptr) const;
  int64_t token_id(const std::string& token) const;
  const std::string& id_token(int64_t id) const { return tokens_.at(static_cast<size_t>(id)); }
  int64_t vocab_size() const { return static_cast<int64_t>(tokens_.size()); }
  static constexpr int64_t kBos = 0, kPad = 1, kEos = 2, kUnk = 3, kMask = 4;

 private:
  std::vector<std::string> tokens_;
  std::unordered_map<std::string, int64_t> ids_;
};

}  // namespace attnscope::data
