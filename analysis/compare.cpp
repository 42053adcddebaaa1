// Comparing runs (analysis/analysis.h): the optimal head matching and the JS divergence of rows.
#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>

#include "analysis/analysis.h"

namespace attnscope::analysis {

std::vector<int64_t> min_cost_assignment(const std::vector<double>& cost_in, int64_t n) {
  if (n < 0 || static_cast<int64_t>(cost_in.size()) != n * n) throw std::invalid_argument("min_cost_assignment: cost must be [n,n]");
  if (n == 0) return {};
  // NaN -> a cost above every finite one, so such pairs are chosen only when nothing else is left
  double top = 0;
  for (double c : cost_in) {
    if (std::isfinite(c)) top = std::max(top, std::abs(c));
  }
  std::vector<double> cost(cost_in);
  for (double& c : cost) {
    if (!std::isfinite(c)) c = 2 * top * static_cast<double>(n) + 1;
  }
  // Kuhn-Munkres with potentials (u over rows, v over columns), 1-based with a virtual column 0:
  // each row is added by a shortest augmenting path in the reduced costs.
  const double inf = std::numeric_limits<double>::infinity();
  std::vector<double> u(n + 1, 0), v(n + 1, 0);
  std::vector<int64_t> col_row(n + 1, 0), way(n + 1, 0);  // col_row[j]: the row assigned to column j
  for (int64_t i = 1; i <= n; ++i) {
    col_row[0] = i;
    int64_t j0 = 0;
    std::vector<double> minv(n + 1, inf);
    std::vector<char> used(n + 1, 0);
    do {
      used[j0] = 1;
      const int64_t i0 = col_row[j0];
      double delta = inf;
      int64_t j1 = 0;
      for (int64_t j = 1; j <= n; ++j) {
        if (used[j]) continue;
        const double cur = cost[(i0 - 1) * n + (j - 1)] - u[i0] - v[j];
        if (cur < minv[j]) minv[j] = cur, way[j] = j0;
        if (minv[j] < delta) delta = minv[j], j1 = j;
      }
      for (int64_t j = 0; j <= n; ++j) {
        if (used[j]) u[col_row[j]] += delta, v[j] -= delta;
        else minv[j] -= delta;
      }
      j0 = j1;
    } while (col_row[j0] != 0);
    do {  // flip the augmenting path
      const int64_t j1 = way[j0];
      col_row[j0] = col_row[j1];
      j0 = j1;
    } while (j0 != 0);
  }
  std::vector<int64_t> out(n);
  for (int64_t j = 1; j <= n; ++j) out[col_row[j] - 1] = j - 1;
  return out;
}

double js_bits(const float* a, const float* b, int64_t n) {
  double js = 0;
  for (int64_t k = 0; k < n; ++k) {
    const double x = a[k], y = b[k], m = 0.5 * (x + y);
    if (x > 0) js += 0.5 * x * std::log2(x / m);
    if (y > 0) js += 0.5 * y * std::log2(y / m);
  }
  return std::clamp(js, 0.0, 1.0);
}

}  // namespace attnscope::analysis
