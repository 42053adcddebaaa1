// Byte-level BPE tokenizer (data/bpe_tokenizer.h).
#include "data/bpe_tokenizer.h"

#include <nlohmann/json.hpp>

#include <climits>
#include <sstream>

#include "core/core.h"

namespace attnscope::data {
namespace {

std::string utf8(uint32_t cp) {
  std::string s;
  if (cp < 0x80) {
    s += static_cast<char>(cp);
  } else if (cp < 0x800) {
    s += static_cast<char>(0xC0 | (cp >> 6));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    s += static_cast<char>(0xE0 | (cp >> 12));
    s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  }
  return s;
}

// GPT-2's bytes_to_unicode: printable bytes map to themselves, the rest to 256 + n.
const std::vector<std::string>& byte_unicode() {
  static const std::vector<std::string> table = [] {
    std::vector<std::string> t(256);
    int n = 0;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
      t[b] = utf8(printable ? static_cast<uint32_t>(b) : static_cast<uint32_t>(256 + n++));
    }
    return t;
  }();
  return table;
}

// The UTF-8 characters of s (each as its byte string).
std::vector<std::string> chars(const std::string& s) {
  std::vector<std::string> out;
  for (size_t i = 0; i < s.size();) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    const size_t n = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
    out.push_back(s.substr(i, n));
    i += n;
  }
  return out;
}

enum class Cls { kLetter, kNumber, kSpace, kOther };
Cls classify(const std::string& ch) {
  const unsigned char c = static_cast<unsigned char>(ch[0]);
  if (c >= 0x80) return Cls::kLetter;
  if (std::isalpha(c)) return Cls::kLetter;
  if (std::isdigit(c)) return Cls::kNumber;
  if (std::isspace(c)) return Cls::kSpace;
  return Cls::kOther;
}

}  // namespace

std::vector<std::string> gpt2_pretokenize(const std::string& text) {
  // 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
  const auto cs = chars(text);
  const size_t n = cs.size();
  std::vector<std::string> out;
  size_t i = 0;
  while (i < n) {
    if (cs[i] == "'") {
      bool matched = false;
      for (const char* c : {"s", "t", "re", "ve", "m", "ll", "d"}) {
        const std::string suf = c;
        std::string got;
        for (size_t k = 0; k < suf.size() && i + 1 + k < n; ++k) got += cs[i + 1 + k];
        if (got == suf) {
          out.push_back("'" + suf);
          i += 1 + suf.size();
          matched = true;
          break;
        }
      }
      if (matched) continue;
    }
    size_t start = i;
    size_t j = i;
    if (cs[j] == " " && j + 1 < n && classify(cs[j + 1]) != Cls::kSpace) ++j;  // the optional leading space
    const Cls c = classify(cs[j]);
    if (c != Cls::kSpace) {
      size_t k = j;
      while (k < n && classify(cs[k]) == c) ++k;
      std::string piece;
      for (size_t t = start; t < k; ++t) piece += cs[t];
      out.push_back(piece);
      i = k;
      continue;
    }
    size_t k = i;
    while (k < n && classify(cs[k]) == Cls::kSpace) ++k;
    if (k < n && k - i > 1) --k;  // \s+(?!\S): leave the last space to the next piece
    std::string piece;
    for (size_t t = i; t < k; ++t) piece += cs[t];
    out.push_back(piece);
    i = k;
  }
  return out;
}

BpeTokenizer BpeTokenizer::from_files(const std::string& vocab_json, const std::string& merges_txt) {
  BpeTokenizer t;
  const nlohmann::json v = read_json_file(vocab_json);
  if (!v.is_object()) throw UsageError("'" + vocab_json + "': expected an object of token -> id");
  t.id_to_token_.assign(v.size(), "");
  for (const auto& [tok, id] : v.items()) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() >= static_cast<int64_t>(v.size())) {
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
    if (sp == std::string::npos || sp == 0 || sp + 1 >= line.size() || line.find(' ', sp + 1) != std::string::npos) {
      throw UsageError(merges_txt + ":" + std::to_string(line_no) + ": expected two symbols separated by one space");
    }
    t.ranks_[{line.substr(0, sp), line.substr(sp + 1)}] = rank++;
  }
  auto special = [&](const char* tok, int64_t& field) {
    auto it = t.vocab_.find(tok);
    if (it == t.vocab_.end()) throw UsageError("'" + vocab_json + "' has no special token " + tok);
    field = it->second;
  };
  special("<s>", t.specials_.bos);
  special("</s>", t.specials_.eos);
  special("<pad>", t.specials_.pad);
  special("<unk>", t.specials_.unk);
  special("<mask>", t.specials_.mask);
  t.vocab_json_ = vocab_json;
  t.merges_txt_ = merges_txt;
  return t;
}

BpeTokenizer BpeTokenizer::from_dir(const std::string& dir) {
  return from_files(dir + "/vocab.json", dir + "/merges.txt");
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
  std::vector<std::string> out;
  const auto& map = byte_unicode();
  int64_t offset = 0;
  for (const auto& piece : gpt2_pretokenize(text)) {
    std::string word;
    for (unsigned char c : piece) word += map[c];
    for (auto& tok : bpe(word)) {
      const auto n = static_cast<int64_t>(chars(tok).size());  // one byte-level character per input byte
      if (spans) spans->emplace_back(offset, offset + n);
      offset += n;
      out.push_back(std::move(tok));
    }
  }
  return out;
}

int64_t BpeTokenizer::token_id(const std::string& token) const {
  auto it = vocab_.find(token);
  return it == vocab_.end() ? specials_.unk : it->second;
}

const std::string& BpeTokenizer::id_token(int64_t id) const { return id_to_token_.at(static_cast<size_t>(id)); }

void BpeTokenizer::save(const std::string& dir) const {
  write_file_atomic(dir + "/vocab.json", read_file(vocab_json_));
  write_file_atomic(dir + "/merges.txt", read_file(merges_txt_));
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

}  // namespace attnscope::data
