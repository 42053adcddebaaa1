// The fuzz entry points, one per target, shared by the libFuzzer programs (fuzz/fuzz_main.cpp,
// clang + ASan/UBSan) and by tests/fuzz_regression_test.cpp (GCC, ctest), which replays every file of
// fuzz/corpus/<target>/ and fuzz/regressions/<target>/ through them.
//
// Each entry feeds arbitrary bytes to a reader or tokenizer. A std::exception (UsageError or any
// other) is an accepted answer to bad input; a crash, a sanitizer report, a hang or a broken
// invariant on accepted input (std::abort below) is a bug.
//
// Inputs:
//   fuzz_safetensors   the bytes are a .safetensors file; what is read is written back and re-read.
//   fuzz_torch_pickle  bytes starting with "PK" are a pytorch_model.bin (zip) as is; anything else
//                      is the data.pkl of a torch.save zip built here (miniz checks CRCs, so
//                      mutating a zip rarely reaches the pickle), with storages data/0..data/3.
//   fuzz_bpe           text for the ChemBERTa tokenizer (tests/fixtures, else a tiny built-in
//                      vocabulary); "\0" vocab.json "\0" merges.txt "\0" text loads those files
//                      (GPT-2 style when the vocabulary has <|endoftext|> and no <s>); "\2" text uses
//                      the tiny GPT-2 tokenizer of tests/fixtures.
//   fuzz_wordpiece     bytes for the BERT WordPiece tokenizer (tests/fixtures' vocabulary, else a tiny
//                      built-in one; first byte odd: cased); "\0" vocab.txt "\0" text loads that file.
//   fuzz_smiles        a SMILES for smiles_split and a SmilesTokenizer; "\0" vocab.json "\0" SMILES
//                      loads that vocabulary; "\1" then lines builds one from the lines.
//   fuzz_hf_config, fuzz_attention_h5, fuzz_molecule_csv, fuzz_request_json: fuzz/fuzz_inputs.h.
#pragma once

#include <caffe2/serialize/inline_container.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "data/data.h"
#include "models/models.h"

#ifndef ATTNSCOPE_SOURCE_DIR
#error "ATTNSCOPE_SOURCE_DIR must name the source tree (the ChemBERTa tokenizer lies in its tests/fixtures)"
#endif

namespace attnscope::fuzz {

// A broken invariant: report it and abort, which libFuzzer and ctest both see as a crash.
#define ATTNSCOPE_FUZZ_CHECK(cond)                                                             \
  do {                                                                                         \
    if (!(cond)) {                                                                             \
      std::fprintf(stderr, "fuzz invariant failed: %s (%s:%d)\n", #cond, __FILE__, __LINE__); \
      std::abort();                                                                            \
    }                                                                                          \
  } while (0)

// A per-process file in /dev/shm (else the temp dir), removed at destruction.
class TempFile {
 public:
  explicit TempFile(const std::string& tag) {
    static const std::string dir = [] {
      std::error_code ec;
      if (std::filesystem::is_directory("/dev/shm", ec) && ::access("/dev/shm", W_OK) == 0) return std::string("/dev/shm");
      return std::filesystem::temp_directory_path().string();
    }();
    path_ = dir + "/attnscope-fuzz-" + std::to_string(::getpid()) + "-" + tag;
  }
  ~TempFile() {
    std::error_code ec;
    std::filesystem::remove(path_, ec);
    std::filesystem::remove(path_ + ".tmp", ec);
  }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  const std::string& path() const { return path_; }
  const std::string& write(const void* data, size_t size) const {
    std::ofstream out(path_, std::ios::binary | std::ios::trunc);
    out.write(static_cast<const char*>(data), static_cast<std::streamsize>(size));
    out.close();
    if (!out) {
      std::fprintf(stderr, "fuzz: cannot write %s\n", path_.c_str());
      std::abort();
    }
    return path_;
  }
  const std::string& write(const std::string& s) const { return write(s.data(), s.size()); }

 private:
  std::string path_;
};

// Reads every byte of a tensor (ASan sees a tensor whose memory is shorter than it claims).
inline uint64_t checksum(const torch::Tensor& t) {
  const auto c = t.contiguous();
  const auto* p = static_cast<const unsigned char*>(c.data_ptr());
  const size_t n = c.numel() * c.element_size();
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

inline bool same_tensor(const torch::Tensor& a, const torch::Tensor& b) {
  if (a.scalar_type() != b.scalar_type() || a.sizes() != b.sizes()) return false;
  const auto ca = a.contiguous(), cb = b.contiguous();
  const size_t n = ca.numel() * ca.element_size();
  return n == 0 || std::memcmp(ca.data_ptr(), cb.data_ptr(), n) == 0;
}

inline int fuzz_safetensors(const uint8_t* buf, size_t size) {
  TempFile in("in.safetensors"), back("back.safetensors");
  std::map<std::string, torch::Tensor> tensors;
  try {
    tensors = models::read_safetensors(in.write(buf, size));
  } catch (const std::exception&) {
    return 0;
  }
  for (const auto& [name, t] : tensors) checksum(t);
  // Whatever was read is a valid set of tensors: it must be written and read back unchanged.
  models::write_safetensors(back.path(), tensors);
  const auto again = models::read_safetensors(back.path());
  ATTNSCOPE_FUZZ_CHECK(again.size() == tensors.size());
  for (const auto& [name, t] : tensors) {
    ATTNSCOPE_FUZZ_CHECK(again.count(name) == 1);
    ATTNSCOPE_FUZZ_CHECK(same_tensor(again.at(name), t));
  }
  return 0;
}

inline int fuzz_torch_pickle(const uint8_t* buf, size_t size) {
  TempFile file("model.bin");
  try {
    if (size >= 2 && buf[0] == 'P' && buf[1] == 'K') {
      file.write(buf, size);
    } else {
      caffe2::serialize::PyTorchStreamWriter writer(file.path());
      writer.writeRecord("data.pkl", buf, size);
      static const std::vector<std::string> storages = [] {
        std::vector<std::string> s;
        for (size_t n : {64, 256, 0, 3}) {
          std::string pattern(n, '\0');
          for (size_t i = 0; i < n; ++i) pattern[i] = static_cast<char>(i * 37 + 11);
          s.push_back(pattern);
        }
        return s;
      }();
      for (size_t k = 0; k < storages.size(); ++k) {
        writer.writeRecord("data/" + std::to_string(k), storages[k].data(), storages[k].size());
      }
      writer.writeEndOfFile();
    }
  } catch (const std::exception&) {
    return 0;
  }
  try {
    for (const auto& [name, t] : models::read_torch_state_dict(file.path())) checksum(t);
  } catch (const std::exception&) {
  }
  return 0;
}

// The BPE checks on one text: pieces cover the text, spans increase within it (contiguous but for
// the whitespace a RoBERTa <mask> takes), tokens decode back to their bytes, ids are in the
// vocabulary, special tokens as the style adds them.
inline void check_bpe(const data::BpeTokenizer& tok, const std::string& text, int64_t max_len, bool round_trip = false) {
  std::string joined;
  for (const auto& piece : data::gpt2_pretokenize(text)) {
    ATTNSCOPE_FUZZ_CHECK(!piece.empty());
    joined += piece;
  }
  ATTNSCOPE_FUZZ_CHECK(joined == text);
  std::vector<std::pair<int64_t, int64_t>> spans;
  const auto tokens = tok.tokenize(text, &spans);
  ATTNSCOPE_FUZZ_CHECK(spans.size() == tokens.size());
  int64_t at = 0;
  for (const auto& [b, e] : spans) {
    ATTNSCOPE_FUZZ_CHECK(b >= at && e > b);
    at = e;
  }
  ATTNSCOPE_FUZZ_CHECK(at <= static_cast<int64_t>(text.size()));
  const auto ids = tok.encode(text, max_len);
  if (tok.adds_special_tokens()) {
    ATTNSCOPE_FUZZ_CHECK(ids.size() >= 2 && ids.front() == tok.bos_id() && ids.back() == tok.eos_id());
    if (max_len > 0) ATTNSCOPE_FUZZ_CHECK(static_cast<int64_t>(ids.size()) <= std::max<int64_t>(max_len, 2));
  } else if (max_len > 0) {
    ATTNSCOPE_FUZZ_CHECK(static_cast<int64_t>(ids.size()) <= max_len);
  }
  for (auto id : ids) {
    ATTNSCOPE_FUZZ_CHECK(id >= 0 && id < tok.vocab_size());
    tok.id_token(id);
  }
  const auto special = tok.special_ids();
  std::vector<int64_t> text_ids;
  for (const auto& t : tokens) text_ids.push_back(tok.token_id(t));
  if (round_trip && std::none_of(text_ids.begin(), text_ids.end(), [&](int64_t id) {
        return std::find(special.begin(), special.end(), id) != special.end();
      })) {
    ATTNSCOPE_FUZZ_CHECK(tok.decode(text_ids) == text);  // byte-level: every byte, valid UTF-8 or not, comes back
  }
  if (text.size() <= 64) {
    const auto batch = tok.encode_batch({text, "CCO"}, max_len);
    ATTNSCOPE_FUZZ_CHECK(batch.input_ids.size(0) == 2 && batch.attention_mask.sizes() == batch.input_ids.sizes());
  }
}

inline const data::BpeTokenizer& bpe_tokenizer() {
  static const data::BpeTokenizer tok = [] {
    const std::string dir = std::string(ATTNSCOPE_SOURCE_DIR) + "/tests/fixtures/chemberta-zinc-base-v1-tokenizer";
    std::error_code ec;
    if (std::filesystem::exists(dir + "/vocab.json", ec) && std::filesystem::exists(dir + "/merges.txt", ec)) {
      return data::BpeTokenizer::from_dir(dir);
    }
    TempFile vocab("tiny-vocab.json"), merges("tiny-merges.txt");
    vocab.write(R"json({"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3, "<mask>": 4, "C": 5, "c": 6, "O": 7, "N": 8,)json"
                R"json( "(": 9, ")": 10, "=": 11, "1": 12, "CC": 13, "CCO": 14, "cc": 15, "Ġ": 16, "ĠC": 17})json");
    merges.write("#version: 0.2\nC C\nCC O\nc c\nĠ C\n");
    return data::BpeTokenizer::from_files(vocab.path(), merges.path());
  }();
  return tok;
}

inline int fuzz_bpe(const uint8_t* buf, size_t size) {
  const std::string in(reinterpret_cast<const char*>(buf), size);
  const int64_t max_len = size % 5 == 0 && size > 0 ? buf[size - 1] % 16 : 0;
  if (!in.empty() && in[0] == '\0') {  // "\0" vocab.json "\0" merges.txt "\0" text
    const size_t a = in.find('\0', 1), b = a == std::string::npos ? a : in.find('\0', a + 1);
    const std::string vocab_text = in.substr(1, a == std::string::npos ? std::string::npos : a - 1);
    const std::string merges_text = a == std::string::npos ? "" : in.substr(a + 1, b == std::string::npos ? b : b - a - 1);
    const std::string text = b == std::string::npos ? "" : in.substr(b + 1);
    TempFile vocab("vocab.json"), merges("merges.txt");
    vocab.write(vocab_text);
    merges.write(merges_text);
    data::BpeTokenizer tok;
    try {
      tok = data::BpeTokenizer::from_files(vocab.path(), merges.path());
    } catch (const std::exception&) {
      return 0;
    }
    check_bpe(tok, text, max_len);
    return 0;
  }
  if (!in.empty() && in[0] == '\2') {  // "\2" text: GPT-2 style (tests/fixtures' tiny GPT-2 tokenizer)
    static const data::BpeTokenizer gpt2 = [] {
      const std::string dir = std::string(ATTNSCOPE_SOURCE_DIR) + "/tests/fixtures/hf-gpt2-tiny/gpt2-tiny-lm";
      std::error_code ec;
      if (std::filesystem::exists(dir + "/vocab.json", ec)) return data::BpeTokenizer::from_dir(dir);
      TempFile vocab("gpt2-vocab.json"), merges("gpt2-merges.txt");
      vocab.write(R"json({"a": 0, "b": 1, "Ġ": 2, "Ġa": 3, "<|endoftext|>": 4})json");
      merges.write("#version: 0.2\nĠ a\n");
      return data::BpeTokenizer::from_files(vocab.path(), merges.path());
    }();
    check_bpe(gpt2, in.substr(1), max_len, true);
    return 0;
  }
  check_bpe(bpe_tokenizer(), in, max_len, true);
  return 0;
}

// An input "\0" FILE "\0" TEXT: FILE written to a temporary file `name` and loaded by `load` (a
// refusal is a fine answer), then `check(tokenizer, TEXT)`.
template <typename Load, typename Check>
int with_loaded_file(const std::string& in, const char* name, Load load, Check check) {
  const size_t a = in.find('\0', 1);
  TempFile file(name);
  file.write(in.substr(1, a == std::string::npos ? std::string::npos : a - 1));
  decltype(load(file.path())) tok;
  try {
    tok = load(file.path());
  } catch (const std::exception&) {
    return 0;
  }
  check(tok, a == std::string::npos ? "" : in.substr(a + 1));
  return 0;
}

// The WordPiece checks on arbitrary bytes (invalid UTF-8 reads as U+FFFD, which BERT's cleaning
// drops): spans within the text, never decreasing; [CLS] A [SEP] B [SEP] with type ids; ids in the
// vocabulary; decoding works.
inline void check_wordpiece(const data::WordPieceTokenizer& tok, const std::string& text, int64_t max_len) {
  std::vector<data::Span> spans;
  const auto tokens = tok.tokenize(text, &spans);
  ATTNSCOPE_FUZZ_CHECK(spans.size() == tokens.size());
  data::Span last{0, 0};
  for (size_t i = 0; i < tokens.size(); ++i) {
    const auto [b, e] = spans[i];
    ATTNSCOPE_FUZZ_CHECK(!tokens[i].empty());
    ATTNSCOPE_FUZZ_CHECK(b >= last.first && e >= last.second && b < e && e <= static_cast<int64_t>(text.size()));
    last = spans[i];
  }
  const auto enc = tok.encode_pair(text, &text, max_len);
  ATTNSCOPE_FUZZ_CHECK(enc.ids.size() == enc.type_ids.size() && enc.ids.size() == enc.spans.size());
  ATTNSCOPE_FUZZ_CHECK(enc.ids.size() >= 3 && enc.ids.front() == tok.bos_id() && enc.ids.back() == tok.eos_id());
  ATTNSCOPE_FUZZ_CHECK(enc.type_ids.front() == 0 && enc.type_ids.back() == 1);
  if (max_len >= 3) ATTNSCOPE_FUZZ_CHECK(static_cast<int64_t>(enc.ids.size()) <= max_len);
  for (auto id : enc.ids) ATTNSCOPE_FUZZ_CHECK(id >= 0 && id < tok.vocab_size());
  tok.decode(enc.ids);
}

// The bert-base-uncased vocabulary of tests/fixtures (else a tiny built-in one), lower-cased or cased.
inline const data::WordPieceTokenizer& wordpiece_tokenizer(bool lower_case) {
  auto load = [](bool lower) {
    data::WordPieceOptions o;
    o.do_lower_case = lower;
    const std::string vocab = std::string(ATTNSCOPE_SOURCE_DIR) + "/tests/fixtures/text-tokenizers/bert-wordpiece-vocab.txt";
    std::error_code ec;
    if (std::filesystem::exists(vocab, ec)) return data::WordPieceTokenizer::from_file(vocab, o);
    TempFile tiny(lower ? "tiny-vocab-lower.txt" : "tiny-vocab-cased.txt");
    tiny.write("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n!\n,\na\nb\nthe\n##s\n##e\n\xe7\x9a\x84\n");
    return data::WordPieceTokenizer::from_file(tiny.path(), o);
  };
  static const data::WordPieceTokenizer lower = load(true), cased = load(false);
  return lower_case ? lower : cased;
}

// The first byte's low bit picks cased (1) or lower-cased (0); the rest is the text. "\0" vocab.txt
// "\0" text loads that vocabulary.
inline int fuzz_wordpiece(const uint8_t* buf, size_t size) {
  const std::string in(reinterpret_cast<const char*>(buf), size);
  const int64_t max_len = size % 5 == 0 && size > 0 ? buf[size - 1] % 16 : 0;
  if (!in.empty() && in[0] == '\0') {
    return with_loaded_file(
        in, "vocab.txt", [](const std::string& path) { return data::WordPieceTokenizer::from_file(path); },
        [&](const auto& tok, const std::string& text) { check_wordpiece(tok, text, max_len); });
  }
  check_wordpiece(wordpiece_tokenizer(in.empty() || (buf[0] & 1) == 0), in.empty() ? in : in.substr(1), max_len);
  return 0;
}

// The SMILES checks: tokens join to the input, spans cover it, ids are in the vocabulary.
inline void check_smiles(const data::SmilesTokenizer& tok, const std::string& smiles, int64_t max_len) {
  std::vector<data::Span> spans;
  std::vector<std::string> tokens;
  try {
    tokens = attnscope::smiles_split(smiles, &spans);
  } catch (const std::exception&) {
    return;
  }
  ATTNSCOPE_FUZZ_CHECK(spans.size() == tokens.size());
  std::string joined;
  int64_t at = 0;
  for (size_t i = 0; i < tokens.size(); ++i) {
    ATTNSCOPE_FUZZ_CHECK(!tokens[i].empty());
    ATTNSCOPE_FUZZ_CHECK(spans[i].first == at && spans[i].second == at + static_cast<int64_t>(tokens[i].size()));
    ATTNSCOPE_FUZZ_CHECK(smiles.compare(static_cast<size_t>(at), tokens[i].size(), tokens[i]) == 0);
    at = spans[i].second;
    joined += tokens[i];
  }
  ATTNSCOPE_FUZZ_CHECK(joined == smiles);
  std::vector<data::Span> enc_spans;
  const auto ids = tok.encode(smiles, max_len, &enc_spans);
  ATTNSCOPE_FUZZ_CHECK(ids.size() >= 2 && ids.front() == data::SmilesTokenizer::kBos &&
                       ids.back() == data::SmilesTokenizer::kEos);
  ATTNSCOPE_FUZZ_CHECK(enc_spans.size() + 2 == ids.size());
  if (max_len >= 2) ATTNSCOPE_FUZZ_CHECK(static_cast<int64_t>(ids.size()) <= max_len);
  for (auto id : ids) {
    ATTNSCOPE_FUZZ_CHECK(id >= 0 && id < tok.vocab_size());
    tok.id_token(id);
  }
}

inline const data::SmilesTokenizer& smiles_tokenizer() {
  static const data::SmilesTokenizer tok =
      data::SmilesTokenizer::build({"CCO", "c1ccccc1Cl", "C[C@@H](N)C(=O)O", "N#Cc1ccccc1Br", "C%10CC.[Na+]", "F/C=C/F"});
  return tok;
}

inline int fuzz_smiles(const uint8_t* buf, size_t size) {
  const std::string in(reinterpret_cast<const char*>(buf), size);
  const int64_t max_len = size % 3 == 0 && size > 0 ? buf[size - 1] % 24 : 0;
  if (!in.empty() && in[0] == '\0') {  // "\0" vocab.json "\0" SMILES
    return with_loaded_file(
        in, "smiles-vocab.json", [](const std::string& path) { return data::SmilesTokenizer::load(path); },
        [&](const auto& tok, const std::string& smiles) { check_smiles(tok, smiles, max_len); });
  }
  if (!in.empty() && in[0] == '\1') {  // "\1" then one SMILES a line: build, save, load back
    std::vector<std::string> corpus;
    for (size_t at = 1; at <= in.size();) {
      const size_t nl = std::min(in.find('\n', at), in.size());
      corpus.push_back(in.substr(at, nl - at));
      at = nl + 1;
    }
    data::SmilesTokenizer tok;
    try {
      tok = data::SmilesTokenizer::build(corpus, 1 + static_cast<int64_t>(size % 3));
    } catch (const std::exception&) {
      return 0;
    }
    for (int64_t id = 0; id < tok.vocab_size(); ++id) ATTNSCOPE_FUZZ_CHECK(tok.token_id(tok.id_token(id)) == id);
    for (const auto& s : corpus) check_smiles(tok, s, max_len);
    TempFile vocab("built-vocab.json");
    try {
      tok.save_vocab(vocab.path());  // may refuse a token that is not UTF-8 (JSON strings are)
    } catch (const std::exception&) {
      return 0;
    }
    const auto back = data::SmilesTokenizer::load(vocab.path());
    ATTNSCOPE_FUZZ_CHECK(back.vocab_size() == tok.vocab_size());
    for (int64_t id = 0; id < tok.vocab_size(); ++id) ATTNSCOPE_FUZZ_CHECK(back.id_token(id) == tok.id_token(id));
    return 0;
  }
  check_smiles(smiles_tokenizer(), in, max_len);
  return 0;
}

}  // namespace attnscope::fuzz

#include "fuzz/fuzz_inputs.h"  // fuzz_hf_config, fuzz_attention_h5, fuzz_molecule_csv, fuzz_request_json
