// The one strict comparison of a module's tensors with a file's (Hugging Face weights, a
// checkpoint): every missing, unexpected or mis-shaped tensor named in one UsageError, the
// tolerated exceptions (a new task head, a buffer transformers may omit) chosen by the caller.
#pragma once

#include <torch/torch.h>

#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace attnscope::models {

struct StateRules {
  std::function<bool(const std::string&)> may_be_missing;  // absent here is no problem (listed in absent)
  std::function<bool(const std::string&)> may_be_extra;    // in the file, not in the module: ignored
  std::function<bool(const std::string&)> may_differ;      // another shape is no problem (not copied; listed)
};

struct StateFit {
  std::vector<std::string> absent;    // module tensors the file lacks (kept as initialised)
  std::vector<std::string> reshaped;  // module tensors of another shape in the file (kept as initialised)
};

// Copies `given` into `module` (named tensors, in the module's order), converting the dtype,
// after checking all of them: UsageError "HEADLINE" + one line per problem otherwise, nothing
// copied.
StateFit copy_state(const std::vector<std::pair<std::string, torch::Tensor>>& module,
                    const std::map<std::string, torch::Tensor>& given, const std::string& headline,
                    const StateRules& rules = {});

}  // namespace attnscope::models
