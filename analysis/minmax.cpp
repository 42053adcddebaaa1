// The min/max mechanism from attention rows (analysis/analysis.h).
#include <algorithm>
#include <cmath>

#include "analysis/analysis.h"

namespace attnscope::analysis {

MinMaxMechanism minmax_mechanism(const std::string& op, const std::vector<int64_t>& a, const std::vector<int64_t>& b,
                                 const std::vector<double>& eq_rows, int64_t H, int64_t T,
                                 const std::vector<double>* mean) {
  const int64_t B = static_cast<int64_t>(a.size());
  MinMaxMechanism m;
  m.op = op;
  m.mean_attn.assign(H, std::vector<double>(T, 0.0));
  for (int64_t h = 0; h < H; ++h) {
    for (int64_t t = 0; t < T; ++t) {
      if (mean) {
        m.mean_attn[h][t] = (*mean)[h * T + t];
        continue;
      }
      double s = 0;
      for (int64_t i = 0; i < B; ++i) s += eq_rows[(i * H + h) * T + t];
      m.mean_attn[h][t] = s / static_cast<double>(B);
    }
  }
  for (int64_t h = 1; h < H; ++h) {
    if (m.mean_attn[h][1] > m.mean_attn[m.sink_head][1]) m.sink_head = h;  // argmax: the first
  }
  m.sink_mass = H > 0 ? m.mean_attn[m.sink_head][1] : 0.0;
  m.picks_answer = -1;
  for (int64_t h = 0; h < H; ++h) {
    if (h == m.sink_head && H > 1) continue;
    int64_t ne = 0, right = 0;  // a != b pairs; those where the head's stronger key of a, b is op(a, b)
    for (int64_t i = 0; i < B; ++i) {
      if (a[i] == b[i]) continue;
      const double* row = &eq_rows[(i * H + h) * T];
      const int64_t picked = row[0] >= row[2] ? a[i] : b[i];
      right += picked == (op == "max" ? std::max(a[i], b[i]) : std::min(a[i], b[i]));
      ++ne;
    }
    const double frac = ne > 0 ? static_cast<double>(right) / static_cast<double>(ne) : 0.0;
    if (frac > m.picks_answer) {
      m.picks_answer = frac;
      m.picker_head = h;
    }
  }
  m.to_op_larger_smaller.assign(H, {0.0, 0.0, 0.0});
  double distinct = 0;
  for (int64_t i = 0; i < B; ++i) {
    if (a[i] == b[i]) continue;
    const int64_t larger = a[i] > b[i] ? 0 : 2, smaller = a[i] > b[i] ? 2 : 0;
    for (int64_t h = 0; h < H; ++h) {
      const double* row = &eq_rows[(i * H + h) * T];
      auto& acc = m.to_op_larger_smaller[h];
      acc[0] += row[1];
      acc[1] += row[larger];
      acc[2] += row[smaller];
    }
    distinct += 1;
  }
  for (auto& acc : m.to_op_larger_smaller) {
    for (auto& x : acc) x = distinct > 0 ? x / distinct : std::nan("");
  }
  return m;
}

std::vector<std::pair<int64_t, std::vector<MinMaxMechanism>>> minmax_over_training(const ProbeHistory& history,
                                                                                    int64_t max_token) {
  const int64_t P = history.P, H = history.H, T = history.T;
  std::vector<std::pair<int64_t, std::vector<MinMaxMechanism>>> out;
  if (T < 4 || history.L != 1) return out;
  for (size_t e = 0; e < history.epochs.size(); ++e) {
    const std::vector<float> maps = history.probs(e);  // [P,H,T,T]
    std::vector<MinMaxMechanism> per_op;
    for (bool is_max : {true, false}) {
      std::vector<int64_t> a, b;
      std::vector<double> rows;  // [B,H,T] from "=" (the last position)
      for (int64_t p = 0; p < P; ++p) {
        const int64_t* ids = &history.input_ids[p * T];
        if (ids[1] != (is_max ? max_token : max_token + 1)) continue;
        a.push_back(ids[0]);
        b.push_back(ids[2]);
        for (int64_t h = 0; h < H; ++h) {
          const float* row = &maps[((p * H + h) * T + (T - 1)) * T];
          rows.insert(rows.end(), row, row + T);
        }
      }
      if (a.empty()) continue;
      per_op.push_back(minmax_mechanism(is_max ? "max" : "min", a, b, rows, H, T));
    }
    out.emplace_back(history.epochs[e], per_op);
  }
  return out;
}

}  // namespace attnscope::analysis
