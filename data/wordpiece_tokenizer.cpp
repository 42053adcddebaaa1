// WordPiece tokenizer as transformers' BertTokenizer (data/wordpiece_tokenizer.h).
#include "data/wordpiece_tokenizer.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <set>

#include "core/core.h"
#include "data/text_util.h"
#include "data/tokenizer_config.h"

namespace attnscope::data {

struct WordPieceTokenizer::Char {
  int32_t cp;
  int64_t begin, end;  // the bytes of the original character it came from
};

namespace {

using Char = WordPieceTokenizer::Char;

// BasicTokenizer._is_chinese_char: the CJK Unified Ideographs blocks (not Hangul, kana).
bool is_cjk(int32_t cp) {
  return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) ||
         (cp >= 0x20000 && cp <= 0x2A6DF) || (cp >= 0x2A700 && cp <= 0x2B73F) ||
         (cp >= 0x2B740 && cp <= 0x2B81F) || (cp >= 0x2B820 && cp <= 0x2CEAF) ||
         (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x2F800 && cp <= 0x2FA1F);
}

// _is_punctuation: the ASCII non-alphanumerics and every Unicode P* character.
bool is_bert_punctuation(int32_t cp) {
  return (cp >= 33 && cp <= 47) || (cp >= 58 && cp <= 64) || (cp >= 91 && cp <= 96) ||
         (cp >= 123 && cp <= 126) || text::is_punctuation(cp);
}

std::string utf8_of(const std::vector<Char>& chars, size_t from, size_t to) {
  std::string s;
  for (size_t i = from; i < to; ++i) text::append_utf8(chars[i].cp, s);
  return s;
}

Span span_of(const std::vector<Char>& chars, size_t from, size_t to) {
  Span s{chars[from].begin, chars[from].end};
  for (size_t i = from; i < to; ++i)
    s = {std::min(s.first, chars[i].begin), std::max(s.second, chars[i].end)};
  return s;
}

// NFD (decomposition, then canonical order of each run of combining marks) keeping each
// character's origin, then the non-spacing marks dropped: _run_strip_accents.
std::vector<Char> strip_accents(const std::vector<Char>& word) {
  std::vector<Char> d;
  std::vector<int32_t> parts;
  for (const auto& c : word) {
    parts.clear();
    text::append_decomposition(c.cp, parts);
    for (int32_t p : parts) d.push_back({p, c.begin, c.end});
  }
  for (size_t i = 0; i < d.size();) {
    if (text::combining_class(d[i].cp) == 0) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < d.size() && text::combining_class(d[j].cp) != 0) ++j;
    std::stable_sort(d.begin() + i, d.begin() + j, [](const Char& a, const Char& b) {
      return text::combining_class(a.cp) < text::combining_class(b.cp);
    });
    i = j;
  }
  d.erase(std::remove_if(d.begin(), d.end(), [](const Char& c) { return text::is_nonspacing_mark(c.cp); }),
          d.end());
  return d;
}

// A string option of tokenizer_config.json: a plain string or an AddedToken object's "content".
void read_token(const nlohmann::json& config, const char* key, const std::string& path, std::string& out) {
  if (!config.contains(key) || config[key].is_null()) return;
  const auto& v = config[key];
  if (v.is_string()) {
    out = v.get<std::string>();
  } else if (v.is_object() && v.contains("content") && v["content"].is_string()) {
    out = v["content"].get<std::string>();
  } else {
    throw UsageError("'" + path + "': " + key + " must be a string (or an object with \"content\")");
  }
}

void read_bool(const nlohmann::json& config, const char* key, const std::string& path, bool& out) {
  if (!config.contains(key)) return;
  if (!config[key].is_boolean()) throw UsageError("'" + path + "': " + key + " must be true or false");
  out = config[key].get<bool>();
}

}  // namespace

WordPieceTokenizer WordPieceTokenizer::from_file(const std::string& vocab_txt,
                                                 const WordPieceOptions& options) {
  const std::string content = read_file(vocab_txt);
  WordPieceTokenizer t;
  t.options_ = options;
  // lines as Python's universal newlines read them: \n, \r\n or \r
  for (size_t pos = 0, line_no = 1; pos < content.size(); ++line_no) {
    size_t end = content.find_first_of("\r\n", pos);
    if (end == std::string::npos) end = content.size();
    const std::string tok = content.substr(pos, end - pos);
    pos = end + (content.compare(end, 2, "\r\n") == 0 ? 2 : 1);
    const std::string where = vocab_txt + ":" + std::to_string(line_no) + ": ";
    if (tok.empty()) throw UsageError(where + "empty token (one token per line, its id the line number)");
    for (const auto& c : text::decode_utf8(tok)) {
      if (c.cp == text::kReplacement && c.end - c.begin == 1) throw UsageError(where + "not valid UTF-8");
      if (text::is_python_space(c.cp)) throw UsageError(where + "token '" + tok + "' contains whitespace");
    }
    const auto [it, fresh] = t.ids_.emplace(tok, static_cast<int64_t>(t.tokens_.size()));
    if (!fresh)
      throw UsageError(where + "token '" + tok + "' repeats line " + std::to_string(it->second + 1));
    t.tokens_.push_back(tok);
  }
  auto special = [&](const std::string& tok, int64_t& field) {
    auto it = t.ids_.find(tok);
    if (it == t.ids_.end())
      throw UsageError("'" + vocab_txt + "' has no special token " + tok + " (WordPiece needs it)");
    field = it->second;
  };
  special(options.cls_token, t.specials_.bos);
  special(options.sep_token, t.specials_.eos);
  special(options.pad_token, t.specials_.pad);
  special(options.unk_token, t.specials_.unk);
  special(options.mask_token, t.specials_.mask);
  return t;
}

WordPieceTokenizer WordPieceTokenizer::from_dir(const std::string& dir) {
  const auto config = read_tokenizer_config(dir);
  const auto path = (std::filesystem::path(dir) / "tokenizer_config.json").string();
  WordPieceOptions o;
  read_bool(config, "do_lower_case", path, o.do_lower_case);
  read_bool(config, "tokenize_chinese_chars", path, o.tokenize_chinese_chars);
  if (config.contains("strip_accents") && !config["strip_accents"].is_null()) {
    bool strip = false;
    read_bool(config, "strip_accents", path, strip);
    o.strip_accents = strip;
  }
  if (config.contains("never_split") && !config["never_split"].is_null()) {
    const auto& ns = config["never_split"];
    if (!ns.is_array() || !std::all_of(ns.begin(), ns.end(), [](const auto& v) { return v.is_string(); })) {
      throw UsageError("'" + path + "': never_split must be a list of strings");
    }
    o.never_split = ns.get<std::vector<std::string>>();
  }
  o.model_max_length = model_max_length(config);
  read_token(config, "cls_token", path, o.cls_token);
  read_token(config, "sep_token", path, o.sep_token);
  read_token(config, "pad_token", path, o.pad_token);
  read_token(config, "unk_token", path, o.unk_token);
  read_token(config, "mask_token", path, o.mask_token);
  return from_file((std::filesystem::path(dir) / "vocab.txt").string(), o);
}

int64_t WordPieceTokenizer::token_id(const std::string& token) const {
  auto it = ids_.find(token);
  return it == ids_.end() ? specials_.unk : it->second;
}

// WordpieceTokenizer.tokenize on one word: greedy longest match first, "##" after the first piece.
void WordPieceTokenizer::wordpiece(const std::vector<Char>& word, std::vector<std::string>& out,
                                   std::vector<Span>* spans) const {
  const size_t n = word.size();
  std::vector<std::pair<std::string, Span>> pieces;
  bool bad = static_cast<int64_t>(n) > options_.max_input_chars_per_word;
  for (size_t start = 0; start < n && !bad;) {
    size_t end = n;
    for (; end > start; --end) {
      std::string sub = (start > 0 ? "##" : "") + utf8_of(word, start, end);
      if (ids_.count(sub)) {
        pieces.emplace_back(std::move(sub), span_of(word, start, end));
        break;
      }
    }
    bad = end == start;
    start = end;
  }
  if (bad) pieces = {{options_.unk_token, span_of(word, 0, n)}};
  for (auto& [tok, span] : pieces) {
    out.push_back(std::move(tok));
    if (spans) spans->push_back(span);
  }
}

// BasicTokenizer on one whitespace-separated word: never_split, lower-case and accents, punctuation.
void WordPieceTokenizer::basic_word(const std::vector<Char>& word, std::vector<std::string>& out,
                                    std::vector<Span>* spans) const {
  auto never_split = [&](const std::string& w) {
    return std::find(options_.never_split.begin(), options_.never_split.end(), w) !=
               options_.never_split.end() ||
           w == options_.cls_token || w == options_.sep_token || w == options_.pad_token ||
           w == options_.unk_token || w == options_.mask_token;
  };
  auto keep_whole = [&](const std::vector<Char>& w) {
    out.push_back(utf8_of(w, 0, w.size()));
    if (spans) spans->push_back(span_of(w, 0, w.size()));
  };
  if (never_split(utf8_of(word, 0, word.size()))) return keep_whole(word);
  std::vector<Char> norm;
  if (options_.do_lower_case) {
    std::vector<int32_t> lower;
    for (const auto& c : word) {
      lower.clear();
      text::append_lower(c.cp, lower);
      for (int32_t l : lower) norm.push_back({l, c.begin, c.end});
    }
  } else {
    norm = word;
  }
  if (options_.strip_accents.value_or(options_.do_lower_case)) norm = strip_accents(norm);
  if (norm.empty()) return;
  if (never_split(utf8_of(norm, 0, norm.size()))) return keep_whole(norm);
  std::vector<Char> sub;
  for (const auto& c : norm) {
    if (!is_bert_punctuation(c.cp)) {
      sub.push_back(c);
      continue;
    }
    if (!sub.empty()) wordpiece(sub, out, spans);
    sub = {c};
    wordpiece(sub, out, spans);
    sub.clear();
  }
  if (!sub.empty()) wordpiece(sub, out, spans);
}

std::vector<std::string> WordPieceTokenizer::tokenize(const std::string& text,
                                                      std::vector<Span>* spans) const {
  const std::vector<std::pair<std::string, bool>> added = {{options_.cls_token, false},
                                                           {options_.sep_token, false},
                                                           {options_.pad_token, false},
                                                           {options_.unk_token, false},
                                                           {options_.mask_token, false}};
  std::vector<std::string> out;
  for (const auto& piece : text::split_added_tokens(text, added)) {
    if (piece.special) {
      out.push_back(text.substr(piece.begin, piece.end - piece.begin));
      if (spans) spans->emplace_back(piece.begin, piece.end);
      continue;
    }
    std::vector<Char> word;
    auto flush = [&] {
      if (!word.empty()) basic_word(word, out, spans);
      word.clear();
    };
    for (int64_t at = piece.begin; at < piece.end;) {  // character by character: no decoded copy of the text
      const auto c = text::decode_at(text, at, piece.end);
      at = c.end;
      const bool tab_or_newline = c.cp == '\t' || c.cp == '\n' || c.cp == '\r';
      // _clean_text: NUL, U+FFFD (and so invalid UTF-8) and control characters go
      if (c.cp == 0 || c.cp == text::kReplacement || (text::is_control(c.cp) && !tab_or_newline)) continue;
      if (text::is_python_space(c.cp)) {  // whitespace_tokenize (str.split)
        flush();
      } else if (options_.tokenize_chinese_chars && is_cjk(c.cp)) {
        flush();
        word.push_back({c.cp, c.begin, c.end});
        flush();
      } else {
        word.push_back({c.cp, c.begin, c.end});
      }
    }
    flush();
  }
  return out;
}

void WordPieceTokenizer::save(const std::string& dir) const {
  std::string vocab;
  for (const auto& t : tokens_) vocab += t + "\n";
  write_file_atomic(dir + "/vocab.txt", vocab);
  nlohmann::ordered_json config = {{"tokenizer_class", "BertTokenizer"},
                                   {"do_lower_case", options_.do_lower_case},
                                   {"strip_accents", nullptr},
                                   {"tokenize_chinese_chars", options_.tokenize_chinese_chars},
                                   {"never_split", options_.never_split},
                                   {"cls_token", options_.cls_token},
                                   {"sep_token", options_.sep_token},
                                   {"pad_token", options_.pad_token},
                                   {"unk_token", options_.unk_token},
                                   {"mask_token", options_.mask_token}};
  if (options_.strip_accents) config["strip_accents"] = *options_.strip_accents;
  if (options_.model_max_length > 0) config["model_max_length"] = options_.model_max_length;
  write_file_atomic(dir + "/tokenizer_config.json", config.dump(1) + "\n");
}

std::string WordPieceTokenizer::detokenize(const std::vector<std::string>& tokens) const {
  // " ".join(tokens).replace(" ##", "").strip()
  std::string joined = join(tokens, " "), out;
  for (size_t i = 0; i < joined.size();) {
    if (joined.compare(i, 3, " ##") == 0) {
      i += 3;
    } else {
      out += joined[i++];
    }
  }
  const auto cps = text::decode_utf8(out);
  auto b = std::find_if(cps.begin(), cps.end(), [](const auto& c) { return !text::is_python_space(c.cp); });
  auto e = std::find_if(cps.rbegin(), cps.rend(), [](const auto& c) { return !text::is_python_space(c.cp); });
  return b == cps.end() ? "" : out.substr(b->begin, e->end - b->begin);
}

Tokenizer::SpecialLayout WordPieceTokenizer::special_layout() const {
  return {{specials_.bos}, {}, {specials_.eos}, 1};
}

}  // namespace attnscope::data
