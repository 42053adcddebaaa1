// Attention analyses (hooks/attention_analysis.h).
#include "hooks/attention_analysis.h"

namespace attnscope::hooks {
namespace {

// [P,1,1,T,1] real query rows and [P,1,1,1,T] real keys, as float masks. The last ones are kept:
// a recorder asks with the same probe lengths at every epoch.
std::pair<torch::Tensor, torch::Tensor> masks(const torch::Tensor& lengths, int64_t T) {
  const auto len = lengths.to(torch::kLong).contiguous();
  const std::vector<int64_t> key(len.data_ptr<int64_t>(), len.data_ptr<int64_t>() + len.numel());
  thread_local std::vector<int64_t> last_key;
  thread_local int64_t last_T = -1;
  thread_local std::pair<torch::Tensor, torch::Tensor> last;
  if (key == last_key && T == last_T) return last;
  const auto pos = torch::arange(T, torch::kLong);
  const auto l = len.view({-1, 1, 1, 1, 1});
  last = {(pos.view({1, 1, 1, T, 1}) < l).to(torch::kDouble), (pos.view({1, 1, 1, 1, T}) < l).to(torch::kDouble)};
  last_key = key;
  last_T = T;
  return last;
}

torch::Tensor plogp_ratio(const torch::Tensor& p, const torch::Tensor& m) {  // p * log2(p / m), 0 where p = 0
  return torch::where(p > 0, p * torch::log2(p / m.clamp_min(1e-300)), torch::zeros_like(p));
}

}  // namespace

torch::Tensor js_divergence(const torch::Tensor& a_in, const torch::Tensor& b_in, const torch::Tensor& lengths) {
  const auto a = a_in.to(torch::kDouble), b = b_in.to(torch::kDouble);
  const auto [row, key] = masks(lengths, a.size(-1));
  const auto m = 0.5 * (a + b);
  const auto js = 0.5 * ((plogp_ratio(a, m) + plogp_ratio(b, m)) * key).sum(-1, true);  // [P,L,H,T,1]
  return ((js * row).sum({0, 3, 4}) / row.sum()).to(torch::kFloat);                    // [L,H]
}

torch::Tensor head_js_distance(const torch::Tensor& maps, const torch::Tensor& lengths) {
  const int64_t P = maps.size(0), L = maps.size(1), H = maps.size(2), T = maps.size(3);
  const auto [row, key] = masks(lengths, T);
  const auto n = lengths.to(torch::kDouble).view({-1, 1, 1, 1, 1});
  const auto s = (0.999 * maps.to(torch::kDouble) + 0.001 / n) * key;                  // smoothed, pads 0
  const auto heads = s.view({P, L * H, T, T});
  const auto rows = row.view({P, 1, T, 1});
  auto out = torch::zeros({L * H, L * H}, torch::kDouble);
  for (int64_t i = 0; i < L * H; ++i) {
    const auto a = heads.select(1, i).unsqueeze(1);                                      // [P,1,T,T]
    const auto m = 0.5 * (a + heads);
    const auto js = 0.5 * (plogp_ratio(a, m) + plogp_ratio(heads, m)).sum(-1, true);     // [P,LH,T,1]
    out[i] = (js.clamp_min(0).sqrt() * rows).sum({0, 2, 3}) / rows.sum();
  }
  return out.to(torch::kFloat);
}

torch::Tensor attention_rollout(const torch::Tensor& maps, const torch::Tensor& lengths) {
  const int64_t P = maps.size(0), L = maps.size(1), T = maps.size(3);
  const auto [row, key] = masks(lengths, T);
  const auto eye = torch::eye(T, torch::kDouble).view({1, T, T}) * key.view({P, 1, T}) * row.view({P, T, 1});
  auto r = eye.clone();                                                                  // [P,T,T]
  for (int64_t l = 0; l < L; ++l) {
    auto a = 0.5 * maps.select(1, l).to(torch::kDouble).mean(1) + 0.5 * eye;             // [P,T,T]
    a = a / a.sum(-1, true).clamp_min(1e-300);
    r = torch::matmul(a, r);
  }
  return r.to(torch::kFloat);
}

torch::Tensor token_importance(const torch::Tensor& maps, const torch::Tensor& lengths) {
  const auto [row, key] = masks(lengths, maps.size(-1));
  const auto received = (maps.to(torch::kDouble) * row * key).sum(-2).mean({1, 2});      // [P,T]
  return (received / received.sum(-1, true).clamp_min(1e-300)).to(torch::kFloat);
}

torch::Tensor token_importance_rollout(const torch::Tensor& maps, const torch::Tensor& lengths) {
  const auto first = attention_rollout(maps, lengths).select(1, 0).to(torch::kDouble);  // [P,T]
  return (first / first.sum(-1, true).clamp_min(1e-300)).to(torch::kFloat);
}

}  // namespace attnscope::hooks
