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

std::vector<std::vector<double>> pca_rows(const std::vector<float>& x, int64_t n, int64_t d, int64_t components) {
  std::vector<double> mean(d, 0);
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t k = 0; k < d; ++k) mean[k] += x[i * d + k];
  }
  for (auto& m : mean) m /= static_cast<double>(std::max<int64_t>(1, n));
  auto row = [&](int64_t i, int64_t k) { return static_cast<double>(x[i * d + k]) - mean[k]; };
  std::vector<std::vector<double>> out(n, std::vector<double>(components, 0)), found;
  std::vector<double> xv(n);
  for (int64_t comp = 0; comp < components; ++comp) {
    std::vector<double> v(d), next(d);
    for (int64_t k = 0; k < d; ++k) v[k] = 1.0 + 0.01 * ((k * 7919) % 101);  // deterministic start
    for (int it = 0; it < 1000; ++it) {
      for (int64_t i = 0; i < n; ++i) {  // X v
        double s = 0;
        for (int64_t k = 0; k < d; ++k) s += row(i, k) * v[k];
        xv[i] = s;
      }
      std::fill(next.begin(), next.end(), 0.0);  // X^T X v
      for (int64_t i = 0; i < n; ++i) {
        for (int64_t k = 0; k < d; ++k) next[k] += row(i, k) * xv[i];
      }
      for (const auto& f : found) {  // deflate
        const double dot = std::inner_product(next.begin(), next.end(), f.begin(), 0.0);
        for (int64_t k = 0; k < d; ++k) next[k] -= dot * f[k];
      }
      const double norm = std::sqrt(std::inner_product(next.begin(), next.end(), next.begin(), 0.0));
      if (norm == 0) break;
      double change = 0;
      for (int64_t k = 0; k < d; ++k) {
        next[k] /= norm;
        change = std::max(change, std::fabs(next[k] - v[k]));
      }
      v.swap(next);
      if (change < 1e-9) break;
    }
    for (int64_t i = 0; i < n; ++i) {
      double s = 0;
      for (int64_t k = 0; k < d; ++k) s += row(i, k) * v[k];
      xv[i] = s;
    }
    const auto big = std::max_element(xv.begin(), xv.end(), [](double a, double b) { return std::fabs(a) < std::fabs(b); });
    const double sign = n > 0 && *big < 0 ? -1 : 1;
    for (int64_t i = 0; i < n; ++i) out[i][comp] = sign * xv[i];
    found.push_back(v);
  }
  return out;
}

Clusters kmeans(const std::vector<float>& x, int64_t n, int64_t d, int64_t k, uint64_t seed, int iterations) {
  Clusters c;
  k = std::max<int64_t>(1, std::min(k, n));
  if (n == 0) return c;
  auto dist2 = [&](int64_t i, const std::vector<double>& m) {
    double s = 0;
    for (int64_t j = 0; j < d; ++j) {
      const double t = x[i * d + j] - m[j];
      s += t * t;
    }
    return s;
  };
  auto row_of = [&](int64_t i) { return std::vector<double>(x.begin() + i * d, x.begin() + (i + 1) * d); };
  // k-means++: the first centre at a seeded row, each next one drawn with probability ~ D^2
  uint64_t state = seed * 6364136223846793005ULL + 1442695040888963407ULL;
  auto uniform = [&] {  // PCG-style LCG, 53 random bits
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    return static_cast<double>(state >> 11) / 9007199254740992.0;
  };
  c.centre.push_back(row_of(static_cast<int64_t>(uniform() * static_cast<double>(n)) % n));
  std::vector<double> best(n);
  for (int64_t i = 0; i < n; ++i) best[i] = dist2(i, c.centre[0]);
  while (static_cast<int64_t>(c.centre.size()) < k) {
    const double total = std::accumulate(best.begin(), best.end(), 0.0);
    int64_t pick = n - 1;
    if (total > 0) {
      double r = uniform() * total;
      for (int64_t i = 0; i < n; ++i) {
        if ((r -= best[i]) <= 0) {
          pick = i;
          break;
        }
      }
    }
    c.centre.push_back(row_of(pick));
    for (int64_t i = 0; i < n; ++i) best[i] = std::min(best[i], dist2(i, c.centre.back()));
  }
  c.label.assign(n, 0);
  for (int it = 0; it < iterations; ++it) {
    bool moved = it == 0;
    for (int64_t i = 0; i < n; ++i) {
      int64_t arg = 0;
      double lo = dist2(i, c.centre[0]);
      for (int64_t j = 1; j < k; ++j) {
        const double v = dist2(i, c.centre[static_cast<size_t>(j)]);
        if (v < lo) lo = v, arg = j;
      }
      moved = moved || arg != c.label[i];
      c.label[i] = arg;
    }
    if (!moved) break;
    std::vector<std::vector<double>> sum(k, std::vector<double>(d, 0));
    std::vector<int64_t> count(k, 0);
    for (int64_t i = 0; i < n; ++i) {
      ++count[c.label[i]];
      for (int64_t j = 0; j < d; ++j) sum[c.label[i]][j] += x[i * d + j];
    }
    for (int64_t j = 0; j < k; ++j) {
      if (count[j] == 0) continue;  // (an empty cluster keeps its centre)
      for (int64_t t = 0; t < d; ++t) c.centre[j][t] = sum[j][t] / static_cast<double>(count[j]);
    }
  }
  // number the clusters by size, largest first (ties: lower old number)
  std::vector<int64_t> count(k, 0), order(k), rank(k);
  for (auto l : c.label) ++count[l];
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return count[a] > count[b]; });
  std::vector<std::vector<double>> centres;
  for (int64_t j = 0; j < k; ++j) {
    rank[order[j]] = j;
    centres.push_back(c.centre[order[j]]);
  }
  for (auto& l : c.label) l = rank[l];
  c.centre = centres;
  return c;
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
