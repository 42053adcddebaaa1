// One tokenizer interface for every model family: text in, ids (with character spans) out, ids
// back to text, the special tokens, the vocabulary, its files. Implemented by the byte-level BPE
// (RoBERTa, ChemBERTa, GPT-2 style) and the atom-level SMILES tokenizer; load_tokenizer() picks
// the one a model directory holds.
#pragma once

#include <torch/torch.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace attnscope::data {

using Span = std::pair<int64_t, int64_t>;  // [begin, end) byte offsets in the input text

// Ids of the special tokens (RoBERTa's by default: <s>=0 <pad>=1 </s>=2 <unk>=3 <mask>=4).
struct SpecialTokens {
  int64_t bos = 0, pad = 1, eos = 2, unk = 3, mask = 4;
  std::vector<int64_t> ids() const { return {bos, pad, eos, unk, mask}; }
};

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  virtual std::string kind() const = 0;  // "bpe", "smiles-regex"
  // The tokens of `text` without special tokens, as vocabulary strings; `spans` (optional)
  // receives each token's [begin, end) byte offsets in `text`.
  virtual std::vector<std::string> tokenize(const std::string& text, std::vector<Span>* spans = nullptr) const = 0;
  virtual int64_t token_id(const std::string& token) const = 0;  // the unknown token's id when absent
  virtual const std::string& id_token(int64_t id) const = 0;
  virtual int64_t vocab_size() const = 0;
  virtual const SpecialTokens& specials() const = 0;
  // Writes the files load_tokenizer() reads back into `dir`, atomically.
  virtual void save(const std::string& dir) const = 0;

  // <s> tokens </s> as ids; with max_len > 0 the tokens are cut so that the whole fits (</s>
  // kept). `spans` (optional) receives the kept tokens' spans (no entry for <s>, </s>).
  std::vector<int64_t> encode(const std::string& text, int64_t max_len = 0, std::vector<Span>* spans = nullptr) const;
  struct Batch {
    torch::Tensor input_ids;       // [B,T] int64, padded with the pad id to the longest
    torch::Tensor attention_mask;  // [B,T] int64, 1 = token
  };
  Batch encode_batch(const std::vector<std::string>& texts, int64_t max_len = 0) const;
  // The text of `ids` (special tokens left out unless `keep_special`).
  std::string decode(const std::vector<int64_t>& ids, bool keep_special = false) const;

  int64_t bos_id() const { return specials().bos; }
  int64_t pad_id() const { return specials().pad; }
  int64_t eos_id() const { return specials().eos; }
  int64_t unk_id() const { return specials().unk; }
  int64_t mask_id() const { return specials().mask; }
  std::vector<int64_t> special_ids() const { return specials().ids(); }

  // Where its files came from ("" for a tokenizer built in memory).
  const std::string& dir() const { return dir_; }
  void set_dir(std::string dir) { dir_ = std::move(dir); }

 protected:
  // The text of vocabulary strings (for BPE: its byte-level characters back to bytes).
  virtual std::string detokenize(const std::vector<std::string>& tokens) const = 0;

 private:
  std::string dir_;
};

// The tokenizer of a model directory, chosen by the files present: vocab.json + merges.txt is
// byte-level BPE; vocab.json alone is attnscope's atom-level SMILES tokenizer (a Hugging Face
// tokenizer_config.json without attnscope's marker then means a BPE missing its merges: refused).
// UsageError naming the directory when it has no tokenizer.
std::shared_ptr<const Tokenizer> load_tokenizer(const std::string& dir);

}  // namespace attnscope::data
