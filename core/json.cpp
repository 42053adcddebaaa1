// read_json_file (core/json.h).
#include "core/json.h"

#include "core/error.h"
#include "core/files.h"

namespace attnscope {

nlohmann::json read_json_file(const std::string& path) {
  const std::string text = read_file(path);
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw UsageError("'" + path + "': not valid JSON: " + e.what());
  }
}

}  // namespace attnscope
