// The request side of `attnscope serve` that needs neither LibTorch nor the HTTP library: where a
// request's bytes end on a connection (framing, read before any thread is given the connection),
// and how its JSON body and typed fields are read and checked. Kept apart so that fuzz/ builds it
// alone (fuzz_serve_request).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "serve/serve.h"

namespace attnscope::serve {

// Deepest nesting of arrays and objects a request body may have (the API's bodies nest 2 deep).
constexpr int kMaxJsonDepth = 64;

// The JSON object of a request body. RequestError(400) for malformed JSON, nesting deeper than
// kMaxJsonDepth (refused while parsing: a deep value never exists), a number no double holds
// (1e99999), or a body that is not an object.
nlohmann::json parse_request(const std::string& body);

// The value of `key` in a request (null when absent).
const nlohmann::json& field(const nlohmann::json& request, const char* key);
// A string field: RequestError(400) when it is not a string, or absent and required.
std::string string_field(const nlohmann::json& request, const char* key, bool required);
// An integer field within lo..hi (`fallback` when absent): RequestError(400) naming the key and
// the value as sent (18446744073709551615 stays that, not -1), and the range.
int64_t int_field(const nlohmann::json& request, const char* key, int64_t fallback, int64_t lo, int64_t hi);

// Where the first HTTP/1.1 request in `bytes` ends. The head ends at its first empty line; the
// body is Content-Length bytes or chunked. Refused (with the status to answer): a head longer
// than `max_head` (431), a body longer than `max_body` (413, as soon as the head says so), a
// compressed body (Content-Encoding other than identity: 415; its size after inflating is not
// bounded by the limit), a transfer coding other than chunked (501), Content-Length with
// Transfer-Encoding or two different lengths or a malformed one (400).
struct Framing {
  enum class State { kIncomplete, kComplete, kRefused };
  State state = State::kIncomplete;
  size_t size = 0;               // kComplete: the request's bytes, head and body
  bool head_complete = false;    // the head has arrived (the body may not have)
  bool expect_continue = false;  // the head asks for "100 Continue" before sending its body
  int status = 0;                // kRefused: the status to answer
  std::string message;           // kRefused: why
  // [begin, end) of each header line the server ignores, removed before the request is parsed:
  // Range (every answer is whole; RFC 9110 lets a server ignore it) and Accept-Encoding (answers go
  // uncompressed: httplib would brotli a 5 MB page at its highest quality, 16 s on this machine,
  // for a client on the same machine or network)
  std::vector<std::pair<size_t, size_t>> ignored;
};
// The first `f.size` bytes of `bytes` without the header lines f.ignored names.
std::string without_ignored(std::string_view bytes, const Framing& f);
Framing frame_request(std::string_view bytes, size_t max_head, size_t max_body);

}  // namespace attnscope::serve
