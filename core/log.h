// Human-readable logging (spdlog underneath, kept out of this header). Messages carry a
// "[subsystem]" prefix chosen by the caller. Until init() is called, messages go to stderr.
#pragma once

#include <string>

namespace attnscope::log {

// Logs to `file` (appending; empty = none) and to stderr when `console` is set.
void init(const std::string& file, bool console, const std::string& level);
void shutdown();

void debug(const std::string& message);
void info(const std::string& message);
void warn(const std::string& message);
void error(const std::string& message);

}  // namespace attnscope::log
