// Byte-level BPE as RoBERTa / GPT-2 (and ChemBERTa) tokenize: the byte-to-unicode map, GPT-2's
// pre-tokenisation pattern, merges applied by rank, <s> ... </s>, truncation, padding, masks.
// The pattern's \p{L} / \p{N} classes are exact for ASCII (every SMILES); any non-ASCII code point
// counts as a letter.
#pragma once

#include <torch/torch.h>

#include <map>
#include <string>
#include <unordered_map>
#include <vector>

namespace attnscope::data {

class BpeTokenizer {
 public:
  // vocab.json + merges.txt (UsageError naming the file and line of a bad entry).
  static BpeTokenizer from_files(const std::string& vocab_json, const std::string& merges_txt);
  static BpeTokenizer from_dir(const std::string& dir);  // DIR/vocab.json, DIR/merges.txt

  // BPE tokens of `text`, as vocabulary strings (no special tokens); `spans` (optional) gets each
  // token's [begin, end) byte offsets in `text`.
  std::vector<std::string> tokenize(const std::string& text, std::vector<std::pair<int64_t, int64_t>>* spans = nullptr) const;
  // <s> tokens </s>; with max_len > 0 the tokens are cut so the whole fits in max_len.
  std::vector<int64_t> encode(const std::string& text, int64_t max_len = 0) const;

  struct Batch {
    torch::Tensor input_ids;       // [B,T] int64, padded with pad_id to the longest
    torch::Tensor attention_mask;  // [B,T] int64, 1 = token
  };
  Batch encode_batch(const std::vector<std::string>& texts, int64_t max_len = 0) const;

  int64_t token_id(const std::string& token) const;  // unk_id when absent
  const std::string& id_token(int64_t id) const;
  int64_t vocab_size() const { return static_cast<int64_t>(id_to_token_.size()); }
  int64_t bos_id() const { return bos_; }
  int64_t eos_id() const { return eos_; }
  int64_t pad_id() const { return pad_; }
  int64_t unk_id() const { return unk_; }
  int64_t mask_id() const { return mask_; }

 private:
  std::vector<std::string> bpe(const std::string& word) const;  // word: byte-level unicode string
  std::unordered_map<std::string, int64_t> vocab_;
  std::vector<std::string> id_to_token_;
  std::map<std::pair<std::string, std::string>, int64_t> ranks_;
  int64_t bos_ = 0, eos_ = 2, pad_ = 1, unk_ = 3, mask_ = 4;
};

// GPT-2's pre-tokenisation of `text` into pieces (exposed for tests).
std::vector<std::string> gpt2_pretokenize(const std::string& text);

}  // namespace attnscope::data
