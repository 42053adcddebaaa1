// One interface over the two SMILES tokenizers a RoBERTa model may come with: the byte-level BPE
// of a Hugging Face directory (vocab.json + merges.txt, e.g. ChemBERTa) and attnscope's atom-level
// regex tokenizer (vocab.json alone). Both use RoBERTa's specials <s> <pad> </s> <unk> <mask>.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "data/bpe_tokenizer.h"
#include "data/smiles_tokenizer.h"

namespace attnscope::data {

class MoleculeTokenizer {
 public:
  // DIR/vocab.json + DIR/merges.txt (BPE) or DIR/vocab.json alone (atom-level); UsageError
  // naming the directory when it has no vocab.json.
  static MoleculeTokenizer from_dir(const std::string& dir);
  explicit MoleculeTokenizer(BpeTokenizer bpe, std::string dir = "");
  explicit MoleculeTokenizer(SmilesTokenizer regex, std::string dir = "");

  bool is_bpe() const { return bpe_ != nullptr; }
  std::string kind() const { return is_bpe() ? "bpe" : "smiles-regex"; }
  const std::string& dir() const { return dir_; }  // where its files came from ("" = built)

  // <s> pieces </s>, cut to max_len tokens when > 0 (</s> kept).
  std::vector<int64_t> encode(const std::string& smiles, int64_t max_len = 0) const;
  // The pieces without specials, with their [begin, end) character spans in `smiles`.
  std::vector<std::string> pieces(const std::string& smiles, std::vector<std::pair<int64_t, int64_t>>* spans) const;
  int64_t token_id(const std::string& token) const;
  std::string id_token(int64_t id) const;
  int64_t vocab_size() const;
  int64_t bos_id() const;
  int64_t pad_id() const;
  int64_t eos_id() const;
  int64_t unk_id() const;
  int64_t mask_id() const;
  std::vector<int64_t> special_ids() const { return {bos_id(), pad_id(), eos_id(), unk_id(), mask_id()}; }

  // Writes its files (vocab.json, and merges.txt for BPE) into `dir`, atomically.
  void save(const std::string& dir) const;

 private:
  std::shared_ptr<const BpeTokenizer> bpe_;
  std::shared_ptr<const SmilesTokenizer> regex_;
  std::string dir_;
};

}  // namespace attnscope::data
