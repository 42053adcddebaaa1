// Tap requests and captures of models/taps.h.
#include "models/taps.h"

#include <algorithm>
#include <cstring>

namespace attnscope::models {

void Taps::request(const std::string& site, std::vector<int64_t> layers, std::vector<int64_t> heads) {
  requests_.push_back({site, std::move(layers), std::move(heads)});
}

const Taps::Request* Taps::find(const char* site, int64_t layer) const {
  for (const auto& r : requests_) {
    if (std::strcmp(r.site.c_str(), site) != 0) continue;
    if (r.layers.empty() || std::find(r.layers.begin(), r.layers.end(), layer) != r.layers.end()) {
      return &r;
    }
  }
  return nullptr;
}

bool Taps::wants(const char* site, int64_t layer) const { return find(site, layer) != nullptr; }

bool Taps::capture(const char* site, int64_t layer, const torch::Tensor& t) {
  const Request* r = find(site, layer);
  if (r == nullptr) return false;
  torch::NoGradGuard no_grad;
  torch::Tensor x = t.detach();
  const bool head_shaped = x.dim() == 4;  // [B,H,T,T]
  if (head_shaped && !r->heads.empty()) {
    x = x.index_select(1, torch::tensor(r->heads, torch::kLong).to(x.device()));
  }
  captured_[{site, layer}] = x.to(torch::kCPU).clone();
  return true;
}

torch::Tensor Taps::get(const std::string& site, int64_t layer) const {
  auto it = captured_.find({site, layer});
  return it == captured_.end() ? torch::Tensor() : it->second;
}

}  // namespace attnscope::models
