// Byte-level BPE as RoBERTa / ChemBERTa and GPT-2 tokenize: the byte-to-unicode map, GPT-2's
// pre-tokenisation pattern with real Unicode classes (utf8proc), merges applied by rank, special
// tokens written in the text kept whole (transformers' added tokens), and the two ways of adding
// specials: RoBERTa <s> A </s></s> B </s>; GPT-2 none (bos = eos = unk = pad = <|endoftext|>, no
// mask). Invalid UTF-8 stays byte-exact: each bad byte is one character of its own (neither
// letter, number nor space) that the byte-level alphabet encodes like any byte.
#pragma once

#include <map>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "data/tokenizer.h"

namespace attnscope::data {

enum class BpeStyle { kAuto, kRoberta, kGpt2 };
struct BpeOptions {
  BpeStyle style = BpeStyle::kAuto;  // kAuto: GPT-2 when the vocabulary has <|endoftext|> and no <s>
  bool add_prefix_space = false;     // a space before the text (transformers' add_prefix_space)
  int64_t model_max_length = 0;      // from tokenizer_config.json; 0 = unknown
};

class BpeTokenizer : public Tokenizer {
 public:
  // vocab.json + merges.txt (UsageError naming the file and line of a bad entry, or the missing
  // special token).
  static BpeTokenizer from_files(const std::string& vocab_json, const std::string& merges_txt,
                                 const BpeOptions& options = {});
  // DIR/vocab.json + DIR/merges.txt, or GPT-2's npm names DIR/encoder.json + DIR/vocab.bpe; the
  // style (tokenizer_class GPT2Tokenizer / RobertaTokenizer), add_prefix_space and
  // model_max_length from DIR/tokenizer_config.json when present.
  static BpeTokenizer from_dir(const std::string& dir);
  static bool dir_has_files(const std::string& dir);  // whether from_dir finds a vocabulary and merges

  std::string kind() const override { return gpt2() ? "gpt2-bpe" : "bpe"; }
  // BPE tokens of `text`, as vocabulary strings (no special tokens added); `spans` (optional) gets
  // each token's [begin, end) byte offsets in `text`.
  std::vector<std::string> tokenize(const std::string& text, std::vector<Span>* spans = nullptr) const override;
  int64_t token_id(const std::string& token) const override;  // unk_id when absent
  const std::string& id_token(int64_t id) const override;
  int64_t vocab_size() const override { return static_cast<int64_t>(id_to_token_.size()); }
  const SpecialTokens& specials() const override { return specials_; }
  bool adds_special_tokens() const override { return !gpt2(); }
  // The token's bytes as text (GPT-2's errors="replace": bytes that are no valid UTF-8 show as U+FFFD).
  std::string display(const std::string& token) const override;
  // Copies the vocab.json and merges.txt it was read from into `dir`; GPT-2 style also writes
  // tokenizer_config.json (tokenizer_class GPT2Tokenizer, add_prefix_space, model_max_length).
  void save(const std::string& dir) const override;
  const BpeOptions& options() const { return options_; }  // style resolved (never kAuto)

 protected:
  std::string detokenize(const std::vector<std::string>& tokens) const override;
  SpecialLayout special_layout() const override;

 private:
  bool gpt2() const { return options_.style == BpeStyle::kGpt2; }
  std::vector<std::string> bpe(const std::string& word) const;  // word: byte-level unicode string
  std::unordered_map<std::string, int64_t> vocab_;
  std::vector<std::string> id_to_token_;
  std::map<std::pair<std::string, std::string>, int64_t> ranks_;
  SpecialTokens specials_;
  // Special tokens kept whole in a text, and whether each takes the whitespace on its left
  // (RoBERTa's <mask>, lstrip=True in transformers).
  std::vector<std::pair<std::string, bool>> added_;
  BpeOptions options_;
  std::string vocab_json_, merges_txt_;  // the files it was read from
};

// GPT-2's pre-tokenisation of `text` into pieces that concatenate back to `text` (exposed for tests):
// 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+ with \p{L}, \p{N} the
// Unicode categories L*, N* and \s Unicode's White_Space (as Python's regex module).
std::vector<std::string> gpt2_pretokenize(const std::string& text);

}  // namespace attnscope::data
