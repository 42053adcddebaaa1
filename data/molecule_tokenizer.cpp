// One interface over the BPE and atom-level SMILES tokenizers (data/molecule_tokenizer.h).
#include "data/molecule_tokenizer.h"

#include <filesystem>

#include "core/core.h"

#include <nlohmann/json.hpp>

namespace attnscope::data {
namespace fs = std::filesystem;

MoleculeTokenizer MoleculeTokenizer::from_dir(const std::string& dir) {
  if (!fs::exists(fs::path(dir) / "vocab.json")) {
    throw UsageError("'" + dir + "' has no vocab.json (the model's tokenizer)");
  }
  if (fs::exists(fs::path(dir) / "merges.txt")) return MoleculeTokenizer(BpeTokenizer::from_dir(dir), dir);
  // vocab.json alone is attnscope's atom-level tokenizer (a run's, or exported with its marker);
  // a Hugging Face tokenizer_config.json without that marker means a BPE whose merges.txt is missing
  const auto tc = fs::path(dir) / "tokenizer_config.json";
  if (fs::exists(tc)) {
    const auto j = nlohmann::json::parse(read_file(tc.string()), nullptr, false);
    if (!j.is_object() || j.value("attnscope_tokenizer", std::string()) != "smiles-regex") {
      throw UsageError("'" + dir + "' has vocab.json but no merges.txt: its tokenizer_config.json describes a Hugging Face "
                       "tokenizer (byte-level BPE needs both files), not attnscope's atom-level one");
    }
  }
  return MoleculeTokenizer(SmilesTokenizer::load((fs::path(dir) / "vocab.json").string()), dir);
}

MoleculeTokenizer::MoleculeTokenizer(BpeTokenizer bpe, std::string dir)
    : bpe_(std::make_shared<const BpeTokenizer>(std::move(bpe))), dir_(std::move(dir)) {}
MoleculeTokenizer::MoleculeTokenizer(SmilesTokenizer regex, std::string dir)
    : regex_(std::make_shared<const SmilesTokenizer>(std::move(regex))), dir_(std::move(dir)) {}

std::vector<int64_t> MoleculeTokenizer::encode(const std::string& smiles, int64_t max_len) const {
  return bpe_ ? bpe_->encode(smiles, max_len) : regex_->encode(smiles, max_len);
}

std::vector<std::string> MoleculeTokenizer::pieces(const std::string& smiles,
                                                   std::vector<std::pair<int64_t, int64_t>>* spans) const {
  if (bpe_) return bpe_->tokenize(smiles, spans);
  const auto ids = regex_->encode(smiles, 0, spans);
  std::vector<std::string> out;
  for (size_t i = 1; i + 1 < ids.size(); ++i) out.push_back(regex_->id_token(ids[i]));  // without <s> ... </s>
  return out;
}

int64_t MoleculeTokenizer::token_id(const std::string& token) const {
  return bpe_ ? bpe_->token_id(token) : regex_->token_id(token);
}
std::string MoleculeTokenizer::id_token(int64_t id) const { return bpe_ ? bpe_->id_token(id) : regex_->id_token(id); }
int64_t MoleculeTokenizer::vocab_size() const { return bpe_ ? bpe_->vocab_size() : regex_->vocab_size(); }
int64_t MoleculeTokenizer::bos_id() const { return bpe_ ? bpe_->bos_id() : SmilesTokenizer::kBos; }
int64_t MoleculeTokenizer::pad_id() const { return bpe_ ? bpe_->pad_id() : SmilesTokenizer::kPad; }
int64_t MoleculeTokenizer::eos_id() const { return bpe_ ? bpe_->eos_id() : SmilesTokenizer::kEos; }
int64_t MoleculeTokenizer::unk_id() const { return bpe_ ? bpe_->unk_id() : SmilesTokenizer::kUnk; }
int64_t MoleculeTokenizer::mask_id() const { return bpe_ ? bpe_->mask_id() : SmilesTokenizer::kMask; }

void MoleculeTokenizer::save(const std::string& dir) const {
  if (regex_) {
    regex_->save((fs::path(dir) / "vocab.json").string());
    return;
  }
  for (const char* f : {"vocab.json", "merges.txt"}) {
    write_file_atomic((fs::path(dir) / f).string(), read_file((fs::path(dir_) / f).string()));
  }
}

}  // namespace attnscope::data
