// The strict state-dict check and copy (models/state_dict.h).
#include "models/state_dict.h"

#include <set>
#include <sstream>

#include "core/core.h"

namespace attnscope::models {

StateFit copy_state(const std::vector<std::pair<std::string, torch::Tensor>>& module,
                    const std::map<std::string, torch::Tensor>& given, const std::string& headline,
                    const StateRules& rules) {
  auto allowed = [](const std::function<bool(const std::string&)>& rule, const std::string& name) {
    return rule && rule(name);
  };
  StateFit fit;
  std::vector<std::string> problems;
  std::set<std::string> names, skip;
  for (const auto& [name, t] : module) {
    names.insert(name);
    auto it = given.find(name);
    if (it == given.end() && allowed(rules.may_be_missing, name)) {
      fit.absent.push_back(name);
    } else if (it == given.end()) {
      problems.push_back("missing tensor '" + name + "'");
    } else if (it->second.sizes() != t.sizes() && allowed(rules.may_differ, name)) {
      fit.reshaped.push_back(name);
      skip.insert(name);
    } else if (it->second.sizes() != t.sizes()) {
      std::ostringstream s;
      s << "tensor '" << name << "' has shape " << it->second.sizes() << ", the model expects " << t.sizes();
      problems.push_back(s.str());
    }
  }
  for (const auto& [name, t] : given) {
    if (!names.count(name) && !allowed(rules.may_be_extra, name)) problems.push_back("unexpected tensor '" + name + "'");
  }
  if (!problems.empty()) throw UsageError(problem_list(headline, problems));
  torch::NoGradGuard no_grad;
  for (const auto& [name, t] : module) {
    auto it = given.find(name);
    if (it != given.end() && !skip.count(name)) const_cast<torch::Tensor&>(t).copy_(it->second.to(t.scalar_type()));
  }
  return fit;
}

}  // namespace attnscope::models
