// WordPiece as transformers' BertTokenizer: BasicTokenizer (control characters, NUL and U+FFFD
// dropped, whitespace, CJK ideographs as words, lower-casing and accent stripping (NFD, Mn
// removed), punctuation split, special tokens never split) then greedy longest-match-first pieces
// with "##" continuations, [UNK] for an unmatchable word or one over max_input_chars_per_word.
// Invalid UTF-8 reads as U+FFFD per bad byte (what Python's decode(errors="replace") gives,
// near enough), which the cleaning then drops: it never throws.
#pragma once

#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "data/tokenizer.h"

namespace attnscope::data {

struct WordPieceOptions {
  bool do_lower_case = true;
  std::optional<bool> strip_accents;  // unset: follows do_lower_case (as transformers)
  bool tokenize_chinese_chars = true;
  std::vector<std::string> never_split;  // words kept whole besides the special tokens
  int64_t max_input_chars_per_word = 100;
  int64_t model_max_length = 0;  // 0 = unknown
  // The special tokens, looked up in the vocabulary: [CLS] is bos, [SEP] eos.
  std::string cls_token = "[CLS]", sep_token = "[SEP]", pad_token = "[PAD]", unk_token = "[UNK]",
              mask_token = "[MASK]";
};

class WordPieceTokenizer : public Tokenizer {
 public:
  // vocab.txt: one token per line, its id the line number (from 0). UsageError naming the file
  // (and line) for invalid UTF-8, an empty or repeated token, whitespace inside a token or a
  // missing special token.
  static WordPieceTokenizer from_file(const std::string& vocab_txt, const WordPieceOptions& options = {});
  // DIR/vocab.txt with the options of DIR/tokenizer_config.json when present (do_lower_case,
  // strip_accents, tokenize_chinese_chars, never_split, model_max_length, the special tokens).
  static WordPieceTokenizer from_dir(const std::string& dir);

  std::string kind() const override { return "wordpiece"; }
  // The pieces of `text`; a piece's span covers the original characters it came from (through
  // lower-casing and accent stripping; a character that decomposes into several pieces gives
  // each of them its whole span), so spans never decrease and lie within `text`.
  std::vector<std::string> tokenize(const std::string& text, std::vector<Span>* spans = nullptr) const override;
  int64_t token_id(const std::string& token) const override;  // unk_id when absent
  const std::string& id_token(int64_t id) const override { return tokens_.at(static_cast<size_t>(id)); }
  int64_t vocab_size() const override { return static_cast<int64_t>(tokens_.size()); }
  const SpecialTokens& specials() const override { return specials_; }
  // vocab.txt and tokenizer_config.json (tokenizer_class BertTokenizer and the options).
  void save(const std::string& dir) const override;
  const WordPieceOptions& options() const { return options_; }
  struct Char;  // internal: a normalised code point with the bytes of the character it came from

 protected:
  // Joined with spaces, "##" pieces glued to the one before (convert_tokens_to_string).
  std::string detokenize(const std::vector<std::string>& tokens) const override;
  SpecialLayout special_layout() const override;  // [CLS] A [SEP], [CLS] A [SEP] B [SEP] (B: type 1)

 private:
  void wordpiece(const std::vector<Char>& word, std::vector<std::string>& out, std::vector<Span>* spans) const;
  void basic_word(const std::vector<Char>& word, std::vector<std::string>& out, std::vector<Span>* spans) const;
  std::vector<std::string> tokens_;
  std::unordered_map<std::string, int64_t> ids_;
  SpecialTokens specials_;
  WordPieceOptions options_;
};

}  // namespace attnscope::data
