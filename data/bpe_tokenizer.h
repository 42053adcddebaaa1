// Byte-level BPE as RoBERTa / GPT-2 (and ChemBERTa) tokenize: the byte-to-unicode map, GPT-2's
// pre-tokenisation pattern, merges applied by rank, <s> ... </s>, truncation, padding, masks.
// The pattern's \p{L} / \p{N} classes are exact for ASCII (every SMILES); any non-ASCII code point
// counts as a letter.
#pragma once

#include <map>
#include <string>
#include <unordered_map>
#include <vector>

#include "data/tokenizer.h"

namespace attnscope::data {

class BpeTokenizer : public Tokenizer {
 public:
  // vocab.json + merges.txt (UsageError naming the file and line of a bad entry).
  static BpeTokenizer from_files(const std::string& vocab_json, const std::string& merges_txt);
  static BpeTokenizer from_dir(const std::string& dir);  // DIR/vocab.json, DIR/merges.txt

  std::string kind() const override { return "bpe"; }
  // BPE tokens of `text`, as vocabulary strings (no special tokens); `spans` (optional) gets each
  // token's [begin, end) byte offsets in `text`.
  std::vector<std::string> tokenize(const std::string& text, std::vector<Span>* spans = nullptr) const override;
  int64_t token_id(const std::string& token) const override;  // unk_id when absent
  const std::string& id_token(int64_t id) const override;
  int64_t vocab_size() const override { return static_cast<int64_t>(id_to_token_.size()); }
  const SpecialTokens& specials() const override { return specials_; }
  // Copies the vocab.json and merges.txt it was read from into `dir`.
  void save(const std::string& dir) const override;

 protected:
  std::string detokenize(const std::vector<std::string>& tokens) const override;

 private:
  std::vector<std::string> bpe(const std::string& word) const;  // word: byte-level unicode string
  std::unordered_map<std::string, int64_t> vocab_;
  std::vector<std::string> id_to_token_;
  std::map<std::pair<std::string, std::string>, int64_t> ranks_;
  SpecialTokens specials_;
  std::string vocab_json_, merges_txt_;  // the files it was read from
};

// GPT-2's pre-tokenisation of `text` into pieces (exposed for tests).
std::vector<std::string> gpt2_pretokenize(const std::string& text);

}  // namespace attnscope::data
