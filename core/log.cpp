// spdlog-backed implementation of core/log.h: one logger with a file sink and a stderr sink.
#include "core/log.h"

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <memory>
#include <vector>

namespace attnscope::log {
namespace {

std::shared_ptr<spdlog::logger>& logger() {
  static std::shared_ptr<spdlog::logger> instance = [] {
    auto sink = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
    auto l = std::make_shared<spdlog::logger>("attnscope", sink);
    l->set_pattern("%H:%M:%S %^%l%$ %v");
    return l;
  }();
  return instance;
}

}  // namespace

void init(const std::string& file, bool console, const std::string& level) {
  // The console shows `level` and above; the file always keeps info and above as well, so a
  // run's log holds its version, command line and config whatever the console shows.
  const auto console_level = spdlog::level::from_str(level);
  const auto file_level = std::min(console_level, spdlog::level::info);
  std::vector<spdlog::sink_ptr> sinks;
  if (console) {
    auto s = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
    s->set_pattern("%H:%M:%S %^%l%$ %v");
    s->set_level(console_level);
    sinks.push_back(s);
  }
  if (!file.empty()) {
    auto s = std::make_shared<spdlog::sinks::basic_file_sink_mt>(file, /*truncate=*/false);
    s->set_pattern("%Y-%m-%d %H:%M:%S.%e %l %v");
    s->set_level(file_level);
    sinks.push_back(s);
  }
  auto l = std::make_shared<spdlog::logger>("attnscope", sinks.begin(), sinks.end());
  l->set_level(file_level);
  l->flush_on(spdlog::level::info);
  logger() = l;
}

void shutdown() {
  logger()->flush();
  auto sink = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
  logger() = std::make_shared<spdlog::logger>("attnscope", sink);
}

void debug(const std::string& message) { logger()->debug(message); }
void info(const std::string& message) { logger()->info(message); }
void warn(const std::string& message) { logger()->warn(message); }
void error(const std::string& message) { logger()->error(message); }

}  // namespace attnscope::log
