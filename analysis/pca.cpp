// Principal coordinates and evenly spread picks (analysis/analysis.h).
#include <algorithm>
#include <cmath>
#include <numeric>

#include "analysis/analysis.h"

namespace attnscope::analysis {

std::vector<std::vector<double>> pca(const std::vector<float>& x, int64_t n, int64_t d, int64_t components) {
  // centred Gram matrix G = X Xᵀ (n x n, n = probes, small); its top eigenvectors u give the
  // principal coordinates sqrt(λ) u, identical to projecting onto the covariance's eigenvectors
  std::vector<double> mean(d, 0), G(n * n, 0);
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t k = 0; k < d; ++k) mean[k] += x[i * d + k] / static_cast<double>(n);
  }
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = i; j < n; ++j) {
      double s = 0;
      for (int64_t k = 0; k < d; ++k) s += (x[i * d + k] - mean[k]) * (x[j * d + k] - mean[k]);
      G[i * n + j] = G[j * n + i] = s;
    }
  }
  std::vector<std::vector<double>> out(n, std::vector<double>(components, 0));
  std::vector<std::vector<double>> found;
  for (int64_t comp = 0; comp < components; ++comp) {
    std::vector<double> u(n), next(n);
    for (int64_t i = 0; i < n; ++i) u[i] = 1.0 + 0.01 * ((i * 7919) % 101);  // deterministic start
    double lambda = 0;
    for (int it = 0; it < 500; ++it) {
      for (int64_t i = 0; i < n; ++i) {
        double s = 0;
        for (int64_t j = 0; j < n; ++j) s += G[i * n + j] * u[j];
        next[i] = s;
      }
      for (const auto& f : found) {  // deflate: stay orthogonal to earlier components
        const double dot = std::inner_product(next.begin(), next.end(), f.begin(), 0.0);
        for (int64_t i = 0; i < n; ++i) next[i] -= dot * f[i];
      }
      const double norm = std::sqrt(std::inner_product(next.begin(), next.end(), next.begin(), 0.0));
      if (norm == 0) break;
      lambda = norm;
      for (int64_t i = 0; i < n; ++i) u[i] = next[i] / norm;
    }
    // sign convention: the largest-magnitude coordinate is positive (stable across epochs)
    const auto big = std::max_element(u.begin(), u.end(), [](double a, double b) { return std::fabs(a) < std::fabs(b); });
    const double sign = *big < 0 ? -1 : 1;
    for (int64_t i = 0; i < n; ++i) out[i][comp] = sign * u[i] * std::sqrt(std::max(0.0, lambda));
    found.push_back(u);
  }
  return out;
}

std::vector<int64_t> spread(int64_t count, int64_t n) {
  std::vector<int64_t> out;
  if (count <= n) {
    for (int64_t i = 0; i < count; ++i) out.push_back(i);
    return out;
  }
  for (int64_t k = 0; k < n; ++k) {
    const int64_t i = static_cast<int64_t>(std::llround(static_cast<double>(k) * (count - 1) / (n - 1)));
    if (out.empty() || out.back() != i) out.push_back(i);
  }
  return out;
}

}  // namespace attnscope::analysis
