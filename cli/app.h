// The attnscope command line as a library function, so tests and benchmarks run it in-process.
#pragma once

#include <string>
#include <vector>

namespace attnscope::cli {

// Runs `attnscope args...` (args[0] is the program name). Returns the exit code:
// 0 success, 2 bad input (config, flags, files), 3 training failure (NaN loss), 1 internal error.
int run(const std::vector<std::string>& args);

}  // namespace attnscope::cli
