// String and machine helpers (core/strings.h).
#include "core/strings.h"

#include <utf8proc.h>

#include <cctype>
#include <cstdio>

#include "core/error.h"

namespace attnscope {

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\r\n"), e = s.find_last_not_of(" \t\r\n");
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string join(const std::vector<std::string>& parts, const std::string& sep) {
  std::string s;
  for (size_t i = 0; i < parts.size(); ++i) s += (i ? sep : "") + parts[i];
  return s;
}

std::string join(const std::vector<int64_t>& parts, const std::string& sep) {
  std::string s;
  for (size_t i = 0; i < parts.size(); ++i) s += (i ? sep : "") + std::to_string(parts[i]);
  return s;
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  if (s.empty()) return out;
  size_t start = 0;
  while (true) {
    const size_t at = s.find(sep, start);
    out.push_back(s.substr(start, at == std::string::npos ? std::string::npos : at - start));
    if (at == std::string::npos) break;
    start = at + 1;
  }
  return out;
}

std::string problem_list(const std::string& headline, const std::vector<std::string>& problems) {
  std::string s = headline;
  for (const auto& p : problems) s += "\n  - " + p;
  return s;
}

Utf8Error find_invalid_utf8(const std::string& text) {
  Utf8Error e;
  const auto* bytes = reinterpret_cast<const utf8proc_uint8_t*>(text.data());
  const auto size = static_cast<utf8proc_ssize_t>(text.size());
  int64_t line = 1, line_start = 0;
  for (utf8proc_ssize_t i = 0; i < size;) {
    if (bytes[i] < 0x80) {  // ASCII: the common case, without a call
      if (bytes[i] == '\n') ++line, line_start = i + 1;
      ++i;
      continue;
    }
    utf8proc_int32_t cp = -1;
    const utf8proc_ssize_t n = utf8proc_iterate(bytes + i, size - i, &cp);
    if (n <= 0 || cp < 0) {
      e.offset = i;
      e.line = line;
      e.byte = i - line_start + 1;
      e.value = bytes[i];
      return e;
    }
    i += n;
  }
  return e;
}

std::string invalid_utf8_message(const Utf8Error& e, const std::string& source, const std::string& detail,
                                 int64_t first_line) {
  char hex[8];
  std::snprintf(hex, sizeof(hex), "0x%02X", e.value);
  return (source.empty() ? "" : source + " ") + "line " + std::to_string(first_line - 1 + e.line) + ", byte " + std::to_string(e.byte) +
         (detail.empty() ? "" : " (" + detail + ")") + ": invalid UTF-8 (byte " + hex +
         "); text inputs must be UTF-8";
}

void check_utf8(const std::string& text, const std::string& source, int64_t first_line) {
  if (const auto e = find_invalid_utf8(text)) throw UsageError(invalid_utf8_message(e, source, "", first_line));
}

int64_t utf8_chars(const std::string& text) {
  int64_t n = 0;
  for (const char c : text) n += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  return n;
}

bool cpu_has_avx2_fma() {
#if defined(__x86_64__)
  static const bool yes = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return yes;
#else
  return false;
#endif
}

std::string base64(const std::string& in) {
  static const char* k = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    const uint32_t v = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8) | uint8_t(in[i + 2]);
    out += k[v >> 18], out += k[(v >> 12) & 63], out += k[(v >> 6) & 63], out += k[v & 63];
  }
  if (i + 1 == in.size()) {
    const uint32_t v = uint8_t(in[i]) << 16;
    out += k[v >> 18], out += k[(v >> 12) & 63], out += "==";
  } else if (i + 2 == in.size()) {
    const uint32_t v = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8);
    out += k[v >> 18], out += k[(v >> 12) & 63], out += k[(v >> 6) & 63], out += '=';
  }
  return out;
}

}  // namespace attnscope
