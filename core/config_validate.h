// Validation of a resolved config (internal to core/): every rule of every key, checked at once.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "core/config.h"

namespace attnscope::detail {

// One line per problem: "KEY (SOURCE): value V is invalid: RULE". `values`: each key's value as
// text, `sources`: where each came from (file:line, --set, default).
std::vector<std::string> validate(const Config& c, const SourceMap& sources, const std::map<std::string, std::string>& values);

}  // namespace attnscope::detail
