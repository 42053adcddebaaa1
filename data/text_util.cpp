// Unicode helpers of the tokenizers over utf8proc (data/text_util.h).
#include "data/text_util.h"

#include <utf8proc.h>

#include <algorithm>

namespace attnscope::data::text {
namespace {

utf8proc_category_t category(int32_t cp) { return utf8proc_category(cp); }

}  // namespace

CodePoint decode_at(const std::string& s, int64_t at, int64_t end) {
  const auto* bytes = reinterpret_cast<const utf8proc_uint8_t*>(s.data());
  if (bytes[at] < 0x80) return {bytes[at], at, at + 1};
  utf8proc_int32_t cp = -1;
  const utf8proc_ssize_t n = utf8proc_iterate(bytes + at, end - at, &cp);
  if (n <= 0 || cp < 0) return {kReplacement, at, at + 1};
  return {cp, at, at + n};
}

std::vector<CodePoint> decode_utf8(const std::string& s, int64_t begin, int64_t end) {
  std::vector<CodePoint> out;
  out.reserve(static_cast<size_t>(std::max<int64_t>(0, end - begin)));
  for (int64_t i = begin; i < end; i = out.back().end) out.push_back(decode_at(s, i, end));
  return out;
}

void append_utf8(int32_t cp, std::string& out) {
  utf8proc_uint8_t buf[4];
  const auto n = utf8proc_encode_char(cp, buf);
  out.append(reinterpret_cast<const char*>(buf), static_cast<size_t>(n));
}

std::string utf8(int32_t cp) {
  std::string s;
  append_utf8(cp, s);
  return s;
}

std::string valid_utf8(const std::string& bytes) {
  std::string out;
  for (const auto& c : decode_utf8(bytes)) {
    if (c.cp == kReplacement && c.end - c.begin == 1) {
      append_utf8(kReplacement, out);
    } else {
      out.append(bytes, static_cast<size_t>(c.begin), static_cast<size_t>(c.end - c.begin));
    }
  }
  return out;
}

bool is_letter(int32_t cp) {
  const auto c = category(cp);
  return c >= UTF8PROC_CATEGORY_LU && c <= UTF8PROC_CATEGORY_LO;
}

bool is_number(int32_t cp) {
  const auto c = category(cp);
  return c >= UTF8PROC_CATEGORY_ND && c <= UTF8PROC_CATEGORY_NO;
}

bool is_punctuation(int32_t cp) {
  const auto c = category(cp);
  return c >= UTF8PROC_CATEGORY_PC && c <= UTF8PROC_CATEGORY_PO;
}

bool is_control(int32_t cp) {
  const auto c = category(cp);
  return c == UTF8PROC_CATEGORY_CN || (c >= UTF8PROC_CATEGORY_CC && c <= UTF8PROC_CATEGORY_CO);
}

bool is_nonspacing_mark(int32_t cp) { return category(cp) == UTF8PROC_CATEGORY_MN; }
bool is_space_separator(int32_t cp) { return category(cp) == UTF8PROC_CATEGORY_ZS; }

bool is_white_space(int32_t cp) {
  // White_Space = Zs, Zl, Zp and the controls U+0009..U+000D, U+0085 (PropList.txt)
  const auto c = category(cp);
  return (cp >= 0x09 && cp <= 0x0D) || cp == 0x85 || c == UTF8PROC_CATEGORY_ZS || c == UTF8PROC_CATEGORY_ZL ||
         c == UTF8PROC_CATEGORY_ZP;
}

bool is_python_space(int32_t cp) { return is_white_space(cp) || (cp >= 0x1C && cp <= 0x1F); }

void append_lower(int32_t cp, std::vector<int32_t>& out) {
  if (cp == 0x130) {  // the one unconditional full lower-case mapping longer than one character
    out.push_back(0x69);
    out.push_back(0x307);
    return;
  }
  out.push_back(utf8proc_tolower(cp));
}

void append_decomposition(int32_t cp, std::vector<int32_t>& out) {
  utf8proc_int32_t buf[32];
  int boundclass = 0;
  const auto n = utf8proc_decompose_char(cp, buf, 32, UTF8PROC_DECOMPOSE, &boundclass);
  if (n <= 0 || n > 32) {
    out.push_back(cp);
    return;
  }
  out.insert(out.end(), buf, buf + n);
}

int combining_class(int32_t cp) { return utf8proc_get_property(cp)->combining_class; }

std::vector<TextPiece> split_added_tokens(const std::string& text,
                                          const std::vector<std::pair<std::string, bool>>& added) {
  std::vector<TextPiece> out;
  const auto n = static_cast<int64_t>(text.size());
  auto push_text = [&](int64_t b, int64_t e, bool strip_right) {
    if (strip_right) {  // up to the end of the last character that is not a space
      int64_t kept = b;
      for (int64_t i = b; i < e;) {
        const auto c = decode_at(text, i, e);
        if (!is_python_space(c.cp)) kept = c.end;
        i = c.end;
      }
      e = kept;
    }
    if (e > b) out.push_back({b, e, false});
  };
  int64_t start = 0;
  for (int64_t pos = 0; pos < n;) {
    const std::pair<std::string, bool>* best = nullptr;
    for (const auto& t : added) {
      if (!t.first.empty() && (!best || t.first.size() > best->first.size()) &&
          text.compare(static_cast<size_t>(pos), t.first.size(), t.first) == 0) {
        best = &t;
      }
    }
    if (!best) {
      ++pos;
      continue;
    }
    push_text(start, pos, best->second);
    const auto len = static_cast<int64_t>(best->first.size());
    out.push_back({pos, pos + len, true});
    pos += len;
    start = pos;
  }
  push_text(start, n, false);
  return out;
}

}  // namespace attnscope::data::text
