// Error types shared by every library. A UsageError is the user's to fix (bad config, bad file,
// bad flag): the CLI prints it and exits with code 2. A TrainingError (e.g. a NaN loss) exits 3.
#pragma once

#include <stdexcept>
#include <string>
#include <vector>

namespace attnscope {

class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Every problem of a config at once; what() joins them, one per line.
class ConfigError : public UsageError {
 public:
  explicit ConfigError(std::vector<std::string> problems);
  const std::vector<std::string>& problems() const { return problems_; }

 private:
  std::vector<std::string> problems_;
};

class TrainingError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A library's exception text without its stack trace (LibTorch's c10::Error appends "Exception
// raised from ..." and "frame #N" lines): the message a user reads, at most `max_chars` long.
std::string without_trace(const std::string& what, size_t max_chars = 400);

constexpr int kExitUsage = 2;
constexpr int kExitTraining = 3;

}  // namespace attnscope
