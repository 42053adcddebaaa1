// Error types and their text (core/error.h).
#include "core/error.h"

#include "core/strings.h"

namespace attnscope {

std::string without_trace(const std::string& what, size_t max_chars) {
  std::string out;
  size_t pos = 0;
  while (pos < what.size()) {
    size_t end = what.find('\n', pos);
    if (end == std::string::npos) end = what.size();
    const std::string line = what.substr(pos, end - pos);
    pos = end + 1;
    const auto b = line.find_first_not_of(" \t");
    if (b != std::string::npos && (line.compare(b, 22, "Exception raised from ") == 0 || line.compare(b, 7, "frame #") == 0)) {
      break;  // LibTorch's trace: the rest is the stack
    }
    out += (out.empty() ? "" : "\n") + line;
  }
  while (!out.empty() && (out.back() == ' ' || out.back() == '\n')) out.pop_back();
  if (out.size() > max_chars) out = out.substr(0, max_chars - 3) + "...";
  return out;
}

ConfigError::ConfigError(std::vector<std::string> problems)
    : UsageError(problem_list(problems.size() == 1 ? "invalid configuration:"
                                                   : std::to_string(problems.size()) + " problems in the configuration:",
                              problems)),
      problems_(std::move(problems)) {}

}  // namespace attnscope
