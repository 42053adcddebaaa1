// Request framing and the request JSON of `attnscope serve` (serve/request.h).
#include "serve/request.h"

#include <cctype>
#include <limits>

namespace attnscope::serve {
using nlohmann::json;

namespace {

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i]))) return false;
  }
  return true;
}

std::string_view strip(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

// The line starting at `from` without its "\r\n" / "\n"; npos as `next` when no newline yet.
std::string_view line_at(std::string_view b, size_t from, size_t& next) {
  const size_t nl = b.find('\n', from);
  if (nl == std::string_view::npos) {
    next = std::string_view::npos;
    return {};
  }
  next = nl + 1;
  std::string_view line = b.substr(from, nl - from);
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  return line;
}

Framing refused(int status, std::string message) {
  Framing f;
  f.state = Framing::State::kRefused;
  f.status = status;
  f.message = std::move(message);
  return f;
}

// A decimal or hexadecimal count of at most 15 digits (no sign, no space); false otherwise.
bool parse_count(std::string_view s, int base, uint64_t& out) {
  if (s.empty() || s.size() > 15) return false;
  out = 0;
  for (char c : s) {
    int d;
    if (c >= '0' && c <= '9') {
      d = c - '0';
    } else if (base == 16 && std::isxdigit(static_cast<unsigned char>(c))) {
      d = std::tolower(static_cast<unsigned char>(c)) - 'a' + 10;
    } else {
      return false;
    }
    out = out * static_cast<uint64_t>(base) + static_cast<uint64_t>(d);
  }
  return true;
}

std::string too_large(size_t max_body) {
  return "the request body is larger than the limit of " + std::to_string(max_body) + " bytes";
}

// nlohmann's message without its "[json.exception.parse_error.101] " prefix.
std::string without_id(const std::string& what) {
  const size_t close = what.rfind(']', what.find(' ') == std::string::npos ? 0 : what.find(' '));
  return what.rfind("[json.exception.", 0) == 0 && close != std::string::npos ? what.substr(std::min(what.size(), close + 2)) : what;
}

}  // namespace

json parse_request(const std::string& body) {
  json j;
  try {
    // the callback sees every value's start with its depth (the containers around it): a body
    // nested deeper than the API ever needs is refused before it is built
    j = json::parse(body, [](int depth, json::parse_event_t event, json&) {
      if ((event == json::parse_event_t::object_start || event == json::parse_event_t::array_start) &&
          depth >= kMaxJsonDepth) {
        throw RequestError(400, "the request body nests arrays and objects more than " + std::to_string(kMaxJsonDepth) +
                                    " deep; this API's requests nest at most 2");
      }
      return true;
    });
  } catch (const json::parse_error& e) {
    throw RequestError(400, "malformed JSON in the request body: " + without_id(e.what()));
  } catch (const json::out_of_range&) {  // 406: a number no double holds
    throw RequestError(400, "a number in the request body is out of range (larger than any double, e.g. 1e99999)");
  } catch (const json::exception& e) {
    throw RequestError(400, "the request body cannot be read as JSON: " + without_id(e.what()));
  }
  if (!j.is_object()) throw RequestError(400, "the request body must be a JSON object, e.g. {\"input\": \"CCO\"}");
  return j;
}

const json& field(const json& request, const char* key) {
  static const json null;
  if (!request.is_object()) return null;
  const auto it = request.find(key);
  return it == request.end() ? null : *it;
}

std::string string_field(const json& request, const char* key, bool required) {
  const json& v = field(request, key);
  if (v.is_null()) {
    if (required) throw RequestError(400, std::string("the request has no \"") + key + "\" (a string)");
    return {};
  }
  if (!v.is_string()) throw RequestError(400, std::string("\"") + key + "\" must be a string, not " + v.type_name());
  return v.get<std::string>();
}

int64_t int_field(const json& request, const char* key, int64_t fallback, int64_t lo, int64_t hi) {
  const json& v = field(request, key);
  if (v.is_null()) return fallback;
  if (!v.is_number_integer()) throw RequestError(400, std::string("\"") + key + "\" must be an integer, not " + v.dump());
  const bool fits = !v.is_number_unsigned() || v.get<uint64_t>() <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
  if (!fits || v.get<int64_t>() < lo || v.get<int64_t>() > hi) {
    throw RequestError(400, std::string("\"") + key + "\" is " + v.dump() + "; expected " + std::to_string(lo) + ".." +
                                std::to_string(hi));
  }
  return v.get<int64_t>();
}

std::string without_ignored(std::string_view bytes, const Framing& f) {
  std::string out;
  out.reserve(f.size);
  size_t at = 0;
  for (const auto& [begin, end] : f.ignored) {
    out.append(bytes.substr(at, begin - at));
    at = end;
  }
  out.append(bytes.substr(at, f.size - at));
  return out;
}

Framing frame_request(std::string_view b, size_t max_head, size_t max_body) {
  Framing f;
  // the head: the request line, then header lines up to an empty line
  size_t at = 0;
  bool first = true, chunked = false, has_length = false;
  uint64_t length = 0;
  for (;;) {
    size_t next = 0;
    const std::string_view line = line_at(b, at, next);
    if (next == std::string_view::npos) {
      if (b.size() > max_head) return refused(431, "the request head is longer than " + std::to_string(max_head) + " bytes");
      return f;  // more to come
    }
    if (next > max_head) return refused(431, "the request head is longer than " + std::to_string(max_head) + " bytes");
    at = next;
    if (first) {
      if (line.empty()) return refused(400, "the request starts with an empty line; expected 'METHOD /path HTTP/1.1'");
      first = false;
      continue;
    }
    if (line.empty()) break;
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) {
      return refused(400, "a header line of the request is not 'Name: value'");
    }
    const std::string_view name = line.substr(0, colon), value = strip(line.substr(colon + 1));
    if (iequals(name, "Range") || iequals(name, "Accept-Encoding")) {
      f.ignored.emplace_back(static_cast<size_t>(line.data() - b.data()), next);
    } else if (iequals(name, "Content-Length")) {
      uint64_t n = 0;
      if (!parse_count(value, 10, n)) return refused(400, "Content-Length is not a byte count");
      if (has_length && n != length) return refused(400, "the request has two different Content-Lengths");
      has_length = true;
      length = n;
    } else if (iequals(name, "Transfer-Encoding")) {
      if (!iequals(value, "chunked")) return refused(501, "Transfer-Encoding other than chunked is not supported");
      chunked = true;
    } else if (iequals(name, "Content-Encoding")) {
      if (!iequals(value, "identity")) {
        return refused(415, "compressed request bodies (Content-Encoding: " + std::string(value.substr(0, 40)) +
                                ") are not accepted; send the JSON uncompressed");
      }
    } else if (iequals(name, "Expect")) {
      f.expect_continue = iequals(value, "100-continue");
    }
  }
  if (chunked && has_length) return refused(400, "the request has both Content-Length and Transfer-Encoding");
  f.head_complete = true;
  if (!chunked) {
    if (length > max_body) return refused(413, too_large(max_body));
    if (b.size() - at < length) return f;
    f.state = Framing::State::kComplete;
    f.size = at + static_cast<size_t>(length);
    return f;
  }
  // chunked: "size[;ext]\r\n" data "\r\n" ... "0\r\n" trailers "\r\n"
  uint64_t total = 0;
  for (;;) {
    size_t next = 0;
    const std::string_view line = line_at(b, at, next);
    if (next == std::string_view::npos) return b.size() - at > 64 ? refused(400, "a chunk size line is too long") : f;
    const std::string_view size = strip(line.substr(0, line.find(';')));
    uint64_t n = 0;
    if (!parse_count(size, 16, n)) return refused(400, "a chunk of the request body has no valid size");
    at = next;
    if (n == 0) break;
    total += n;
    if (total > max_body) return refused(413, too_large(max_body));
    if (b.size() - at < n) return f;
    at += static_cast<size_t>(n);
    const std::string_view end = b.substr(at, 2);
    if (end == "\r\n") {
      at += 2;
    } else if (!end.empty() && end[0] == '\n') {
      at += 1;
    } else if (end.size() == 2 || (end.size() == 1 && end[0] != '\r')) {
      return refused(400, "a chunk of the request body is longer than its size");
    } else {
      return f;
    }
  }
  for (;;) {  // trailers, up to an empty line
    size_t next = 0;
    const std::string_view line = line_at(b, at, next);
    if (next == std::string_view::npos) {
      return b.size() - at > max_head ? refused(431, "the request's trailers are too long") : f;
    }
    at = next;
    if (line.empty()) break;
  }
  f.state = Framing::State::kComplete;
  f.size = at;
  return f;
}

}  // namespace attnscope::serve
