// Reading JSON files with errors that name the file (nlohmann::json, header-only, is part of
// attnscope's interface where files are JSON: Hugging Face configs, vocabularies).
#pragma once

#include <nlohmann/json.hpp>

#include <string>

namespace attnscope {

// Parses `path`; UsageError naming the file (and the parser's position) when it cannot.
nlohmann::json read_json_file(const std::string& path);

}  // namespace attnscope
