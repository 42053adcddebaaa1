// Attention analyses (hooks/attention_analysis.h).
#include "hooks/attention_analysis.h"

#include <boost/graph/adjacency_list.hpp>
#include <boost/graph/push_relabel_max_flow.hpp>

#include <algorithm>
#include <cmath>
#include <stdexcept>
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

torch::Tensor token_importance_rollout(const torch::Tensor& maps, const torch::Tensor& lengths, bool causal) {
  const auto r = attention_rollout(maps, lengths).to(torch::kDouble);  // [P,T,T]
  torch::Tensor row;
  if (causal) {  // each probe's last real token
    const auto last = (lengths.to(torch::kLong) - 1).clamp_min(0).view({-1, 1, 1}).expand({r.size(0), 1, r.size(2)});
    row = r.gather(1, last).squeeze(1);
  } else {
    row = r.select(1, 0);
  }
  return (row / row.sum(-1, true).clamp_min(1e-300)).to(torch::kFloat);
}

torch::Tensor flow_capacities(const torch::Tensor& maps_lhtt, int64_t n) {
  const auto a = maps_lhtt.slice(2, 0, n).slice(3, 0, n).to(torch::kDouble).mean(1);  // [L,n,n]
  auto c = 0.5 * a + 0.5 * torch::eye(n, torch::kDouble).unsqueeze(0);
  return c / c.sum(-1, true).clamp_min(1e-300);
}

Flow attention_flow(const torch::Tensor& capacity_in, int64_t source, int64_t sink) {
  using Traits = boost::adjacency_list_traits<boost::vecS, boost::vecS, boost::directedS>;
  using Graph = boost::adjacency_list<
      boost::vecS, boost::vecS, boost::directedS, boost::no_property,
      boost::property<boost::edge_capacity_t, double,
                      boost::property<boost::edge_residual_capacity_t, double,
                                      boost::property<boost::edge_reverse_t, Traits::edge_descriptor>>>>;
  const auto cap = capacity_in.to(torch::kDouble).contiguous();
  const int64_t L = cap.size(0), n = cap.size(1);
  if (cap.dim() != 3 || cap.size(2) != n || source < 0 || source >= n || sink < 0 || sink >= n) {
    throw std::invalid_argument("attention_flow: capacity must be [L,n,n] with source and sink in 0..n-1");
  }
  const auto c = cap.accessor<double, 3>();
  Graph g(static_cast<size_t>((L + 1) * n));
  auto capacity = boost::get(boost::edge_capacity, g);
  auto residual = boost::get(boost::edge_residual_capacity, g);
  auto reverse = boost::get(boost::edge_reverse, g);
  struct Forward { int64_t l, i, j; Traits::edge_descriptor e; };
  std::vector<Forward> forward;
  const auto node = [n](int64_t level, int64_t t) { return static_cast<size_t>(level * n + t); };
  for (int64_t l = 0; l < L; ++l) {
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t j = 0; j < n; ++j) {
        const double w = c[l][i][j];
        if (!(w > 1e-15)) continue;  // (NaN and rounding dust: no edge)
        const auto e = boost::add_edge(node(l, j), node(l + 1, i), g).first;
        const auto back = boost::add_edge(node(l + 1, i), node(l, j), g).first;
        capacity[e] = w;
        capacity[back] = 0;
        reverse[e] = back;
        reverse[back] = e;
        forward.push_back({l, i, j, e});
      }
    }
  }
  Flow f;
  f.edges = torch::zeros({L, n, n}, torch::kDouble);
  if (L == 0) {  // no layer: the input is the output
    f.value = source == sink ? 1.0 : 0.0;
    return f;
  }
  f.value = boost::push_relabel_max_flow(g, node(0, source), node(L, sink));
  auto e = f.edges.accessor<double, 3>();
  for (const auto& fw : forward) e[fw.l][fw.i][fw.j] = std::max(0.0, capacity[fw.e] - residual[fw.e]);
  return f;
}

torch::Tensor token_importance_flow(const torch::Tensor& maps, const torch::Tensor& lengths, bool causal,
                                    int64_t max_tokens) {
  const int64_t P = maps.size(0), T = maps.size(3);
  auto out = torch::zeros({P, T}, torch::kDouble);
  const auto len = lengths.to(torch::kLong).contiguous();
  for (int64_t p = 0; p < P; ++p) {
    const int64_t n = std::min(T, std::max<int64_t>(0, len[p].item<int64_t>()));
    if (n == 0) continue;
    if (n > max_tokens) {
      out[p].fill_(std::nan(""));
      continue;
    }
    const auto cap = flow_capacities(maps[p], n);
    const int64_t sink = causal ? n - 1 : 0;
    double total = 0;
    std::vector<double> v(static_cast<size_t>(n));
    for (int64_t j = 0; j < n; ++j) total += v[static_cast<size_t>(j)] = attention_flow(cap, j, sink).value;
    for (int64_t j = 0; j < n; ++j) out[p][j] = total > 0 ? v[static_cast<size_t>(j)] / total : 0.0;
  }
  return out.to(torch::kFloat);
}

}  // namespace attnscope::hooks
