// Unicode helpers of the tokenizers (utf8proc stays inside text_util.cpp): UTF-8 decoding with
// byte offsets (each invalid byte read as U+FFFD), the character classes the tokenizers' rules
// name, Python's str.lower() and NFD per character, and the split of a text around the special
// tokens written in it. Internal to data/ (not part of data/data.h).
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace attnscope::data::text {

constexpr int32_t kReplacement = 0xFFFD;

struct CodePoint {
  int32_t cp;
  int64_t begin, end;  // [begin, end) bytes in the decoded string
};
// The code point at byte `at` of s[.., end): a byte that does not start a valid UTF-8 sequence
// (stray continuation, truncated or overlong sequence, surrogate, past U+10FFFF) is U+FFFD of one
// byte. Readers of long texts step with it (at = c.end) rather than decoding the whole text.
CodePoint decode_at(const std::string& s, int64_t at, int64_t end);
// The code points of s[begin, end), as decode_at reads them.
std::vector<CodePoint> decode_utf8(const std::string& s, int64_t begin, int64_t end);
inline std::vector<CodePoint> decode_utf8(const std::string& s) {
  return decode_utf8(s, 0, static_cast<int64_t>(s.size()));
}
void append_utf8(int32_t cp, std::string& out);
std::string utf8(int32_t cp);
// The bytes as text: valid UTF-8 kept, each invalid byte as U+FFFD.
std::string valid_utf8(const std::string& bytes);

bool is_letter(int32_t cp);       // general category L*
bool is_number(int32_t cp);       // N*
bool is_punctuation(int32_t cp);  // P*
bool is_control(int32_t cp);      // C* (Cc, Cf, Cs, Co and unassigned Cn)
bool is_nonspacing_mark(int32_t cp);  // Mn
bool is_space_separator(int32_t cp);  // Zs
bool is_white_space(int32_t cp);   // Unicode's White_Space: \s of Python's regex module
bool is_python_space(int32_t cp);  // Python's str.isspace(): White_Space and U+001C..U+001F
// Appends Python's chr(cp).lower() (the full mapping: U+0130 is "i" + U+0307).
void append_lower(int32_t cp, std::vector<int32_t>& out);
// Appends the full canonical decomposition of cp (not yet canonically ordered).
void append_decomposition(int32_t cp, std::vector<int32_t>& out);
int combining_class(int32_t cp);

// `text` cut around the special tokens written in it, as transformers' added tokens (at each
// position the longest token that starts there, leftmost first): pieces in order, the special
// ones flagged. A token whose flag is true takes the whitespace (str.isspace) on its left, as
// lstrip=True does; pieces left empty are dropped.
struct TextPiece {
  int64_t begin, end;
  bool special;
};
std::vector<TextPiece> split_added_tokens(const std::string& text,
                                          const std::vector<std::pair<std::string, bool>>& added);

}  // namespace attnscope::data::text
