// tokenizer_config.json as the tokenizers read it (internal to data/; implemented in tokenizer.cpp).
#pragma once

#include <nlohmann/json.hpp>

#include <string>

namespace attnscope::data {

// DIR/tokenizer_config.json parsed (an empty object when the file is absent); UsageError naming
// the file when it is no JSON object.
nlohmann::json read_tokenizer_config(const std::string& dir);
// Its tokenizer_class without transformers' "Fast" suffix ("" when absent).
std::string tokenizer_class(const nlohmann::json& config);
// Its model_max_length, 0 when absent or transformers' "no limit" (1e30).
int64_t model_max_length(const nlohmann::json& config);

}  // namespace attnscope::data
