// Attention analyses (hooks/attention_analysis.h).
#include "hooks/attention_analysis.h"

#include <algorithm>
#include <cmath>
#include <vector>

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
  // One pass per pair of heads over the real (probe, query, key) entries only: with
  // m = (a + b) / 2, JS = 1/2 sum_k [a ln a + b ln b - (a + b) ln m], where a ln a is computed once
  // per head (a few hundred times fewer logarithms than over padded [P,LH,T,T] tensors per head).
  const int64_t P = maps.size(0), L = maps.size(1), H = maps.size(2), T = maps.size(3), LH = L * H;
  const auto m = maps.to(torch::kFloat).contiguous();
  const auto len = lengths.to(torch::kLong).contiguous();
  const float* mp = m.data_ptr<float>();
  const int64_t* lp = len.data_ptr<int64_t>();
  int64_t N = 0, rows = 0;
  for (int64_t p = 0; p < P; ++p) N += lp[p] * lp[p], rows += lp[p];
  std::vector<double> val(static_cast<size_t>(LH * N)), alog(static_cast<size_t>(LH * N));
  for (int64_t h = 0; h < LH; ++h) {
    int64_t i = h * N;
    for (int64_t p = 0; p < P; ++p) {
      const int64_t n = lp[p];
      const double eps = 0.001 / static_cast<double>(n);
      const float* map = mp + (p * LH + h) * T * T;
      for (int64_t q = 0; q < n; ++q) {
        for (int64_t k = 0; k < n; ++k, ++i) {
          const double a = 0.999 * static_cast<double>(map[q * T + k]) + eps;
          val[static_cast<size_t>(i)] = a;
          alog[static_cast<size_t>(i)] = a * std::log(a);
        }
      }
    }
  }
  auto out = torch::zeros({LH, LH}, torch::kFloat);
  auto o = out.accessor<float, 2>();
  for (int64_t x = 0; x < LH; ++x) {
    for (int64_t y = x + 1; y < LH; ++y) {
      const double *a = val.data() + x * N, *b = val.data() + y * N;
      const double *la = alog.data() + x * N, *lb = alog.data() + y * N;
      double total = 0;
      int64_t i = 0;
      for (int64_t p = 0; p < P; ++p) {
        const int64_t n = lp[p];
        for (int64_t q = 0; q < n; ++q) {
          double row = 0;
          for (int64_t k = 0; k < n; ++k, ++i) {
            const double s = a[i] + b[i];
            row += la[i] + lb[i] - s * std::log(0.5 * s);
          }
          total += std::sqrt(std::max(0.0, 0.5 * row));
        }
      }
      o[x][y] = o[y][x] = static_cast<float>(total / static_cast<double>(std::max<int64_t>(1, rows)));
    }
  }
  return out;
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
