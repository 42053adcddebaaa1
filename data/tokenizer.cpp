// The tokenizer interface's shared parts (special tokens, truncation, pairs, batches, decoding)
// and the choice of tokenizer by files (data/tokenizer.h).
#include "data/tokenizer.h"

#include <nlohmann/json.hpp>

#include <filesystem>

#include "core/core.h"
#include "data/bpe_tokenizer.h"
#include "data/smiles_tokenizer.h"
#include "data/tokenizer_config.h"
#include "data/wordpiece_tokenizer.h"

namespace attnscope::data {
namespace fs = std::filesystem;

bool Tokenizer::adds_special_tokens() const {
  const auto layout = special_layout();
  return !layout.begin.empty() || !layout.middle.empty() || !layout.end.empty();
}

Tokenizer::SpecialLayout Tokenizer::special_layout() const { return {{bos_id()}, {eos_id()}, {eos_id()}, 0}; }

Encoding Tokenizer::encode_pair(const std::string& text, const std::string* pair, int64_t max_len) const {
  std::vector<Span> spans_a, spans_b;
  const auto a = tokenize(text, &spans_a);
  const auto b = pair ? tokenize(*pair, &spans_b) : std::vector<std::string>();
  const auto layout = special_layout();
  const size_t specials =
      layout.begin.size() + layout.end.size() + (pair ? layout.middle.size() + layout.end.size() : 0);
  size_t na = a.size(), nb = b.size();
  if (max_len > 0) {  // transformers' longest_first: one token at a time from the longer text
    const size_t limit = static_cast<size_t>(std::max<int64_t>(0, max_len - static_cast<int64_t>(specials)));
    while (na + nb > limit) {
      if (!pair || na > nb) {
        --na;
      } else {
        --nb;
      }
    }
  }
  Encoding e;
  const size_t total = specials + na + nb;  // exact sizes: a long text's vectors are not grown by doubling
  e.ids.reserve(total);
  e.type_ids.reserve(total);
  e.spans.reserve(total);
  auto add_special = [&](const std::vector<int64_t>& ids, int64_t type) {
    for (int64_t id : ids) {
      e.ids.push_back(id);
      e.type_ids.push_back(type);
      e.spans.emplace_back(-1, -1);
    }
  };
  auto add_tokens = [&](const std::vector<std::string>& tokens, const std::vector<Span>& spans, size_t n,
                        int64_t type) {
    for (size_t i = 0; i < n; ++i) {
      e.ids.push_back(token_id(tokens[i]));
      e.type_ids.push_back(type);
      e.spans.push_back(spans[i]);
    }
  };
  add_special(layout.begin, 0);
  add_tokens(a, spans_a, na, 0);
  add_special(layout.end, 0);
  if (pair) {
    add_special(layout.middle, layout.second_type_id);
    add_tokens(b, spans_b, nb, layout.second_type_id);
    add_special(layout.end, layout.second_type_id);
  }
  return e;
}

std::vector<int64_t> Tokenizer::encode(const std::string& text, int64_t max_len,
                                       std::vector<Span>* spans) const {
  auto e = encode_pair(text, nullptr, max_len);
  if (spans) {
    spans->clear();
    for (const auto& s : e.spans) {
      if (s.first >= 0) spans->push_back(s);
    }
  }
  return std::move(e.ids);
}

Tokenizer::Batch Tokenizer::encode_batch(const std::vector<std::string>& texts, int64_t max_len) const {
  return encode_batch_pairs(texts, {}, max_len);
}

Tokenizer::Batch Tokenizer::encode_batch_pairs(const std::vector<std::string>& texts,
                                               const std::vector<std::string>& pairs, int64_t max_len) const {
  if (!pairs.empty() && pairs.size() != texts.size()) {
    throw UsageError("encode_batch_pairs: " + std::to_string(texts.size()) + " texts but " +
                     std::to_string(pairs.size()) + " second texts (expected as many, or none)");
  }
  std::vector<Encoding> rows;
  size_t T = 0;
  for (size_t i = 0; i < texts.size(); ++i) {
    rows.push_back(encode_pair(texts[i], pairs.empty() ? nullptr : &pairs[i], max_len));
    T = std::max(T, rows.back().ids.size());
  }
  const auto B = static_cast<int64_t>(rows.size());
  std::vector<int64_t> ids(rows.size() * T, pad_id()), mask(rows.size() * T, 0), types(rows.size() * T, 0);
  for (size_t i = 0; i < rows.size(); ++i) {
    for (size_t j = 0; j < rows[i].ids.size(); ++j) {
      ids[i * T + j] = rows[i].ids[j];
      mask[i * T + j] = 1;
      types[i * T + j] = rows[i].type_ids[j];
    }
  }
  auto tensor = [&](std::vector<int64_t>& v) {
    return torch::from_blob(v.data(), {B, static_cast<int64_t>(T)}, torch::kLong).clone();
  };
  return {tensor(ids), tensor(mask), tensor(types)};
}

std::string Tokenizer::decode(const std::vector<int64_t>& ids, bool keep_special) const {
  const auto special = special_ids();
  std::vector<std::string> tokens;
  for (int64_t id : ids) {
    if (id < 0 || id >= vocab_size())
      throw UsageError("token id " + std::to_string(id) + " is outside the vocabulary (0.." +
                       std::to_string(vocab_size() - 1) + ")");
    if (!keep_special && std::find(special.begin(), special.end(), id) != special.end()) continue;
    tokens.push_back(id_token(id));
  }
  return detokenize(tokens);
}

nlohmann::json read_tokenizer_config(const std::string& dir) {
  const auto path = (fs::path(dir) / "tokenizer_config.json").string();
  if (!fs::exists(path)) return nlohmann::json::object();
  auto j = read_json_file(path);
  if (!j.is_object()) throw UsageError("'" + path + "': expected a JSON object");
  return j;
}

std::string tokenizer_class(const nlohmann::json& config) {
  if (!config.contains("tokenizer_class") || !config["tokenizer_class"].is_string()) return "";
  auto cls = config["tokenizer_class"].get<std::string>();
  const std::string fast = "Fast";
  if (cls.size() > fast.size() && cls.compare(cls.size() - fast.size(), fast.size(), fast) == 0)
    cls.resize(cls.size() - fast.size());
  return cls;
}

int64_t model_max_length(const nlohmann::json& config) {
  if (!config.contains("model_max_length") || !config["model_max_length"].is_number_integer()) return 0;
  const auto n = config["model_max_length"].get<int64_t>();
  return n > 0 && n < (int64_t{1} << 40) ? n : 0;  // transformers writes 1e30 for "no limit"
}

std::shared_ptr<const Tokenizer> load_tokenizer(const std::string& dir) {
  const fs::path d(dir);
  std::shared_ptr<Tokenizer> tok;
  const bool has_bpe = BpeTokenizer::dir_has_files(dir);
  if (fs::exists(d / "vocab.txt") &&
      (!has_bpe || tokenizer_class(read_tokenizer_config(dir)) == "BertTokenizer")) {
    tok = std::make_shared<WordPieceTokenizer>(WordPieceTokenizer::from_dir(dir));
  } else if (has_bpe) {
    tok = std::make_shared<BpeTokenizer>(BpeTokenizer::from_dir(dir));
  } else if (fs::exists(d / "vocab.json")) {
    // vocab.json alone is attnscope's atom-level tokenizer (a run's, or exported with its marker);
    // a Hugging Face tokenizer_config.json without that marker means a BPE whose merges.txt is missing
    const auto tc = d / "tokenizer_config.json";
    if (fs::exists(tc)) {
      const auto j = nlohmann::json::parse(read_file(tc.string()), nullptr, false);
      if (!j.is_object() || j.value("attnscope_tokenizer", std::string()) != "smiles-regex") {
        throw UsageError(
            "'" + dir +
            "' has vocab.json but no merges.txt: its tokenizer_config.json describes a Hugging Face "
            "tokenizer (byte-level BPE needs both files), not attnscope's atom-level one");
      }
    }
    tok = std::make_shared<SmilesTokenizer>(SmilesTokenizer::load((d / "vocab.json").string()));
  } else {
    throw UsageError("'" + dir +
                     "' has no tokenizer: no vocab.json (+ merges.txt for byte-level BPE), vocab.txt "
                     "(WordPiece) or encoder.json + vocab.bpe (GPT-2)");
  }
  tok->set_dir(dir);
  return tok;
}

}  // namespace attnscope::data
