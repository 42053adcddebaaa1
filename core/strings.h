// Small string and machine helpers every library uses: trimming, case, joining, problem lists,
// the CPU's vector extensions. Written once here.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace attnscope {

// `s` without leading and trailing spaces, tabs and line breaks.
std::string trim(const std::string& s);
// ASCII lower case.
std::string lower(std::string s);
// The strings with `sep` between them.
std::string join(const std::vector<std::string>& parts, const std::string& sep = ", ");
std::string join(const std::vector<int64_t>& parts, const std::string& sep = ", ");
// `s` split at every `sep` (an empty `s` gives no parts; "a,,b" gives "a", "", "b").
std::vector<std::string> split(const std::string& s, char sep = ',');

// "HEADLINE" followed by one "\n  - problem" line per problem: the one layout of every error
// that reports several problems at once.
std::string problem_list(const std::string& headline, const std::vector<std::string>& problems);

// Where `text` first stops being UTF-8, by utf8proc's decoder (the tokenizers' rule): a stray
// continuation byte, a truncated or overlong sequence, a surrogate, a code point past U+10FFFF.
struct Utf8Error {
  int64_t offset = -1;  // 0-based byte offset in `text`; -1: the text is valid UTF-8
  int64_t line = 0;     // 1-based line of that byte ('\n' ends a line)
  int64_t byte = 0;     // 1-based byte within that line
  unsigned value = 0;   // the byte's value
  explicit operator bool() const { return offset >= 0; }
};
Utf8Error find_invalid_utf8(const std::string& text);
// "SOURCE line L, byte B[ (DETAIL)]: invalid UTF-8 (byte 0xFF); text inputs must be UTF-8" (no
// "SOURCE " when empty), the line counted from `first_line` (the line `text` starts on in its source).
std::string invalid_utf8_message(const Utf8Error& e, const std::string& source, const std::string& detail = "",
                                 int64_t first_line = 1);
// The one check of a text input wherever it enters (a command's --text, a text or CSV file, a
// server request): UsageError (invalid_utf8_message) unless `text` is valid UTF-8. `source` names
// the input: "--text", "'notes.txt'", "the request's \"input\"".
void check_utf8(const std::string& text, const std::string& source, int64_t first_line = 1);
// The characters (code points) of UTF-8 text: its bytes that do not continue a sequence.
int64_t utf8_chars(const std::string& text);

// Standard base64 (RFC 4648, with padding) of the bytes of `in`.
std::string base64(const std::string& in);
// Whether this CPU runs AVX2 and FMA (checked once).
bool cpu_has_avx2_fma();

}  // namespace attnscope
