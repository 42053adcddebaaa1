// Byte-level BPE tokenizer, RoBERTa and GPT-2 styles (data/bpe_tokenizer.h).
#include "data/bpe_tokenizer.h"

#include <nlohmann/json.hpp>

#include <climits>
#include <filesystem>
#include <sstream>

#include "core/core.h"
#include "data/text_util.h"
#include "data/tokenizer_config.h"

namespace attnscope::data {
namespace {

constexpr const char* kEndOfText = "<|endoftext|>";

// GPT-2's bytes_to_unicode: printable bytes map to themselves, the rest to 256 + n.
const std::vector<std::string>& byte_unicode() {
  static const std::vector<std::string> table = [] {
    std::vector<std::string> t(256);
    int n = 0;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
      t[b] = text::utf8(printable ? b : 256 + n++);
    }
    return t;
  }();
  return table;
}

// The UTF-8 characters of a byte-level string (each as its byte string).
std::vector<std::string> chars(const std::string& s) {
  std::vector<std::string> out;
  for (const auto& c : text::decode_utf8(s)) out.push_back(s.substr(c.begin, c.end - c.begin));
  return out;
}

enum class Cls { kLetter, kNumber, kSpace, kOther };
Cls classify(int32_t cp) {
  if (text::is_letter(cp)) return Cls::kLetter;
  if (text::is_number(cp)) return Cls::kNumber;
  if (text::is_white_space(cp)) return Cls::kSpace;
  return Cls::kOther;  // an invalid byte (read as U+FFFD) too
}

// The pre-tokenisation pieces of text[begin, end) as byte ranges (see gpt2_pretokenize), read
// character by character (no decoded copy of the text: memory stays one span per piece).
std::vector<Span> pretokenize(const std::string& text, int64_t begin, int64_t end) {
  std::vector<Span> out;
  auto at = [&](int64_t i) { return text::decode_at(text, i, end); };
  int64_t i = begin;
  while (i < end) {
    const auto first = at(i);
    if (first.cp == '\'') {  // 's|'t|'re|'ve|'m|'ll|'d (ASCII: a byte equal to one is that character)
      int64_t len = 0;
      for (const char* suffix : {"s", "t", "re", "ve", "m", "ll", "d"}) {
        const auto m = static_cast<int64_t>(std::char_traits<char>::length(suffix));
        if (i + 1 + m <= end && text.compare(static_cast<size_t>(i + 1), static_cast<size_t>(m), suffix) == 0) {
          len = m + 1;
          break;
        }
      }
      if (len > 0) {
        out.emplace_back(i, i + len);
        i += len;
        continue;
      }
    }
    auto j = first;
    if (first.cp == ' ' && first.end < end) {  // the optional leading space
      const auto next = at(first.end);
      if (classify(next.cp) != Cls::kSpace) j = next;
    }
    const Cls c = classify(j.cp);
    int64_t k = j.begin;
    if (c != Cls::kSpace) {  // ' ?\p{L}+', ' ?\p{N}+', ' ?[^\s\p{L}\p{N}]+'
      while (k < end) {
        const auto ck = at(k);
        if (classify(ck.cp) != c) break;
        k = ck.end;
      }
    } else {
      int64_t count = 0, last = k;  // the spaces from i, and where the last one begins
      while (k < end) {
        const auto ck = at(k);
        if (classify(ck.cp) != Cls::kSpace) break;
        last = k;
        k = ck.end;
        ++count;
      }
      if (k < end && count > 1) k = last;  // \s+(?!\S): leave the last space to the next piece
    }
    out.emplace_back(i, k);
    i = k;
  }
  return out;
}

BpeStyle style_of(const nlohmann::json& config) {
  const auto cls = tokenizer_class(config);
  if (cls == "GPT2Tokenizer") return BpeStyle::kGpt2;
  if (cls == "RobertaTokenizer") return BpeStyle::kRoberta;
  return BpeStyle::kAuto;
}

}  // namespace

std::vector<std::string> gpt2_pretokenize(const std::string& text) {
  std::vector<std::string> out;
  for (const auto& [b, e] : pretokenize(text, 0, static_cast<int64_t>(text.size())))
    out.push_back(text.substr(b, e - b));
  return out;
}

BpeTokenizer BpeTokenizer::from_files(const std::string& vocab_json, const std::string& merges_txt,
                                      const BpeOptions& options) {
  BpeTokenizer t;
  const nlohmann::json v = read_json_file(vocab_json);
  if (!v.is_object()) throw UsageError("'" + vocab_json + "': expected an object of token -> id");
  t.id_to_token_.assign(v.size(), "");
  for (const auto& [tok, id] : v.items()) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0 ||
        id.get<int64_t>() >= static_cast<int64_t>(v.size())) {
      throw UsageError("'" + vocab_json + "': token '" + tok + "' has id " + id.dump() + ", expected 0.." +
                       std::to_string(v.size() - 1));
    }
    t.vocab_[tok] = id.get<int64_t>();
    t.id_to_token_[id.get<int64_t>()] = tok;
  }
  std::istringstream in(read_file(merges_txt));
  std::string line;
  int64_t rank = 0;
  for (int64_t line_no = 1; std::getline(in, line); ++line_no) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || line.rfind("#version", 0) == 0) continue;
    const auto sp = line.find(' ');
    if (sp == std::string::npos || sp == 0 || sp + 1 >= line.size() ||
        line.find(' ', sp + 1) != std::string::npos) {
      throw UsageError(merges_txt + ":" + std::to_string(line_no) +
                       ": expected two symbols separated by one space");
    }
    t.ranks_[{line.substr(0, sp), line.substr(sp + 1)}] = rank++;
  }
  t.options_ = options;
  if (t.options_.style == BpeStyle::kAuto) {
    const bool gpt2 = t.vocab_.count(kEndOfText) && !t.vocab_.count("<s>");
    t.options_.style = gpt2 ? BpeStyle::kGpt2 : BpeStyle::kRoberta;
  }
  auto special = [&](const char* tok, int64_t& field) {
    auto it = t.vocab_.find(tok);
    if (it == t.vocab_.end()) {
      throw UsageError("'" + vocab_json + "' has no special token " + tok +
                       (t.gpt2() ? " (GPT-2 style)" : " (RoBERTa style)"));
    }
    field = it->second;
  };
  if (t.gpt2()) {  // transformers' GPT2Tokenizer: one token for all four roles, no mask
    special(kEndOfText, t.specials_.bos);
    t.specials_.eos = t.specials_.unk = t.specials_.pad = t.specials_.bos;
    t.specials_.mask = -1;
    t.added_ = {{kEndOfText, false}};
  } else {
    special("<s>", t.specials_.bos);
    special("</s>", t.specials_.eos);
    special("<pad>", t.specials_.pad);
    special("<unk>", t.specials_.unk);
    special("<mask>", t.specials_.mask);
    t.added_ = {{"<s>", false}, {"</s>", false}, {"<pad>", false}, {"<unk>", false}, {"<mask>", true}};
  }
  t.vocab_json_ = vocab_json;
  t.merges_txt_ = merges_txt;
  return t;
}

bool BpeTokenizer::dir_has_files(const std::string& dir) {
  namespace fs = std::filesystem;
  const fs::path d(dir);
  return (fs::exists(d / "vocab.json") && fs::exists(d / "merges.txt")) ||
         (fs::exists(d / "encoder.json") && fs::exists(d / "vocab.bpe"));
}

BpeTokenizer BpeTokenizer::from_dir(const std::string& dir) {
  namespace fs = std::filesystem;
  const fs::path d(dir);
  const bool npm =
      !fs::exists(d / "vocab.json") && fs::exists(d / "encoder.json") && fs::exists(d / "vocab.bpe");
  const auto config = read_tokenizer_config(dir);
  BpeOptions o;
  o.style = style_of(config);
  if (config.contains("add_prefix_space") && config["add_prefix_space"].is_boolean()) {
    o.add_prefix_space = config["add_prefix_space"].get<bool>();
  }
  o.model_max_length = model_max_length(config);
  return npm ? from_files((d / "encoder.json").string(), (d / "vocab.bpe").string(), o)
             : from_files((d / "vocab.json").string(), (d / "merges.txt").string(), o);
}

std::vector<std::string> BpeTokenizer::bpe(const std::string& word) const {
  std::vector<std::string> sym = chars(word);
  while (sym.size() > 1) {
    int64_t best = LLONG_MAX;
    size_t at = 0;
    for (size_t i = 0; i + 1 < sym.size(); ++i) {
      auto it = ranks_.find({sym[i], sym[i + 1]});
      if (it != ranks_.end() && it->second < best) {
        best = it->second;
        at = i;
      }
    }
    if (best == LLONG_MAX) break;
    const std::string a = sym[at], b = sym[at + 1];
    std::vector<std::string> merged;
    for (size_t i = 0; i < sym.size();) {  // merge every occurrence of the pair, left to right
      if (i + 1 < sym.size() && sym[i] == a && sym[i + 1] == b) {
        merged.push_back(a + b);
        i += 2;
      } else {
        merged.push_back(sym[i++]);
      }
    }
    sym.swap(merged);
  }
  return sym;
}

std::vector<std::string> BpeTokenizer::tokenize(const std::string& text, std::vector<Span>* spans) const {
  // add_prefix_space: the space is tokenized with the text; spans then point one byte back (clamped)
  const int64_t shift = options_.add_prefix_space ? 1 : 0;
  const std::string prefixed = shift ? " " + text : std::string();
  const std::string& src = shift ? prefixed : text;
  auto add_span = [&](int64_t b, int64_t e) {
    if (spans) spans->emplace_back(std::max<int64_t>(0, b - shift), std::max<int64_t>(0, e - shift));
  };
  std::vector<std::string> out;
  const auto& map = byte_unicode();
  for (const auto& piece : text::split_added_tokens(src, added_)) {
    if (piece.special) {
      out.push_back(src.substr(piece.begin, piece.end - piece.begin));
      add_span(piece.begin, piece.end);
      continue;
    }
    for (const auto& [b, e] : pretokenize(src, piece.begin, piece.end)) {
      std::string word;
      for (int64_t i = b; i < e; ++i) word += map[static_cast<unsigned char>(src[i])];
      int64_t offset = b;
      for (auto& tok : bpe(word)) {
        const auto n =
            static_cast<int64_t>(text::decode_utf8(tok).size());  // one byte-level character per input byte
        add_span(offset, offset + n);
        offset += n;
        out.push_back(std::move(tok));
      }
    }
  }
  return out;
}

int64_t BpeTokenizer::token_id(const std::string& token) const {
  auto it = vocab_.find(token);
  return it == vocab_.end() ? specials_.unk : it->second;
}

const std::string& BpeTokenizer::id_token(int64_t id) const {
  return id_to_token_.at(static_cast<size_t>(id));
}

void BpeTokenizer::save(const std::string& dir) const {
  write_file_atomic(dir + "/vocab.json", read_file(vocab_json_));
  write_file_atomic(dir + "/merges.txt", read_file(merges_txt_));
  if (gpt2()) {
    nlohmann::ordered_json config = {{"tokenizer_class", "GPT2Tokenizer"},
                                     {"add_prefix_space", options_.add_prefix_space},
                                     {"bos_token", kEndOfText},
                                     {"eos_token", kEndOfText},
                                     {"unk_token", kEndOfText}};
    if (options_.model_max_length > 0) config["model_max_length"] = options_.model_max_length;
    write_file_atomic(dir + "/tokenizer_config.json", config.dump(1) + "\n");
  }
}

std::string BpeTokenizer::detokenize(const std::vector<std::string>& tokens) const {
  static const std::unordered_map<std::string, char> byte_of = [] {
    std::unordered_map<std::string, char> m;
    const auto& table = byte_unicode();
    for (int b = 0; b < 256; ++b) m[table[b]] = static_cast<char>(b);
    return m;
  }();
  std::string out;
  for (const auto& tok : tokens) {
    for (const auto& ch : chars(tok)) {
      auto it = byte_of.find(ch);
      out += it == byte_of.end() ? ch : std::string(1, it->second);  // a special token's own text
    }
  }
  return out;
}

std::string BpeTokenizer::display(const std::string& token) const {
  return text::valid_utf8(detokenize({token}));
}

Tokenizer::SpecialLayout BpeTokenizer::special_layout() const {
  return gpt2() ? SpecialLayout{} : Tokenizer::special_layout();
}

}  // namespace attnscope::data
