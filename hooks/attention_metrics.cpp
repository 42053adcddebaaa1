// Attention metrics (hooks/attention_metrics.h): the "Attention Atlas" set (confidence, focus,
// sparsity, distribution, uniformity), the "fundamentals" set (normalised entropy, effective
// tokens, Gini, diagonal / first / last / local mass, attended distance) and the pattern class.
#include "hooks/attention_metrics.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>

namespace attnscope::hooks {

const char* pattern_name(Pattern p) {
  switch (p) {
    case Pattern::kDiagonal: return "diagonal";
    case Pattern::kBos: return "bos";
    case Pattern::kBroadcast: return "broadcast";
    case Pattern::kUniform: return "uniform";
    case Pattern::kLocal: return "local";
    case Pattern::kMixed: return "mixed";
  }
  return "?";
}

const std::vector<std::string>& head_metric_names() {
  static const std::vector<std::string> names = {
      "confidence_max", "confidence_avg", "focus",          "sparsity",        "distribution",
      "uniformity",     "entropy_norm",   "effective_tokens", "gini",          "diagonal_mean",
      "first_token_mass", "last_token_mass", "local_mass",  "mean_distance",   "broadcast_mass",
      "weight_mean",    "weight_max",     "weight_min",     "pattern"};
  return names;
}

Pattern classify(double diagonal_mean, double first_token_mass, double broadcast_mass,
                 double normalised_entropy, double local_mass) {
  if (diagonal_mean >= 0.5) return Pattern::kDiagonal;
  if (first_token_mass >= 0.5) return Pattern::kBos;
  if (broadcast_mass >= 0.5) return Pattern::kBroadcast;
  if (normalised_entropy >= 0.9) return Pattern::kUniform;
  if (local_mass >= 0.8) return Pattern::kLocal;
  return Pattern::kMixed;
}

namespace {

// Per-row metrics accumulated per head; index order of kRowMetrics.
const std::vector<std::string> kRowMetrics = {
    "confidence_avg", "focus", "entropy_norm", "effective_tokens", "sparsity", "uniformity", "distribution",
    "gini", "diagonal_mean", "first_token_mass", "last_token_mass", "local_mass", "mean_distance",
    "broadcast_mass", "weight_mean"};
constexpr size_t kNumRow = 15;

struct Acc {
  std::vector<double> sums;  // [H * kNumRow]
  std::vector<float> mx, mn;  // [H]
  double rows = 0;
};

// One (example, head) map `w` [T,T] of which the first n rows and keys are real.
void accumulate_map(const float* w, int64_t T, int64_t n, double* sums, float& mx, float& mn) {
  std::vector<float> col(n, 0.f), sorted(n);
  for (int64_t i = 0; i < n; ++i) {
    const float* r = w + i * T;
    double rmax = 0, ent = 0, sum = 0, sparse = 0, local = 0, dist = 0;
    for (int64_t j = 0; j < n; ++j) {
      const double x = r[j];
      rmax = std::max(rmax, x);
      if (x > 0) ent -= x * std::log(x);
      sum += x;
      sparse += x < 0.01;
      if (std::abs(i - j) <= 2) local += x;
      dist += x * static_cast<double>(std::abs(i - j));
      col[j] += r[j];
      mx = std::max(mx, r[j]);
      mn = std::min(mn, r[j]);
    }
    const double mean = sum / static_cast<double>(n);
    double var = 0;
    for (int64_t j = 0; j < n; ++j) var += (r[j] - mean) * (r[j] - mean);
    std::copy(r, r + n, sorted.begin());
    std::sort(sorted.begin(), sorted.end());
    double gini = 0;
    for (int64_t k = 0; k < n; ++k) gini += static_cast<double>(2 * (k + 1) - n - 1) * sorted[k];
    gini = sum > 0 ? gini / (static_cast<double>(n) * sum) : 0;
    const double median = 0.5 * (sorted[(n - 1) / 2] + sorted[n / 2]);
    const double v[kNumRow] = {rmax, ent, n > 1 ? ent / std::log(static_cast<double>(n)) : 0.0, std::exp(ent),
                               sparse / static_cast<double>(n), std::sqrt(var / static_cast<double>(n)), median,
                               gini, r[i], r[0], r[n - 1], local, dist, 0.0, mean};
    for (size_t m = 0; m < kNumRow; ++m) sums[m] += v[m];
  }
  // broadcast: the key (other than the first) that the rows attend to most on average
  int64_t top = n > 1 ? 1 : 0;
  for (int64_t j = 1; j < n; ++j) if (col[j] > col[top]) top = j;
  double b = 0;
  for (int64_t i = 0; i < n; ++i) b += w[i * T + top];
  sums[13] += b;
}

}  // namespace

void HeadMetrics::add(const torch::Tensor& probs_in, const torch::Tensor& lengths_in) {
  const auto a = probs_in.to(torch::kFloat).contiguous();  // [B,H,T,T]
  const auto len = lengths_in.to(torch::kLong).contiguous();
  const int64_t B = a.size(0), H = a.size(1), T = a.size(2);
  const float* data = a.data_ptr<float>();
  const int64_t* lp = len.data_ptr<int64_t>();
  const int64_t chunks = std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), B));
  std::vector<Acc> acc(chunks);
  at::parallel_for(0, chunks, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      Acc& ac = acc[c];
      ac.sums.assign(H * kNumRow, 0.0);
      ac.mx.assign(H, -1.f);
      ac.mn.assign(H, 2.f);
      for (int64_t b = B * c / chunks; b < B * (c + 1) / chunks; ++b) {
        const int64_t n = std::min(T, std::max<int64_t>(0, lp[b]));
        for (int64_t h = 0; h < H; ++h) {
          accumulate_map(data + (b * H + h) * T * T, T, n, ac.sums.data() + h * kNumRow, ac.mx[h], ac.mn[h]);
        }
        ac.rows += static_cast<double>(n);
      }
    }
  });
  if (sums_.empty()) {
    for (const auto& name : kRowMetrics) sums_[name] = torch::zeros({H}, torch::kDouble);
    max_ = torch::full({H}, -1.0, torch::kDouble);
    min_ = torch::full({H}, 2.0, torch::kDouble);
  }
  for (const Acc& ac : acc) {  // fixed order: deterministic for a given thread count
    for (size_t m = 0; m < kNumRow; ++m) {
      auto s = sums_[kRowMetrics[m]].accessor<double, 1>();
      for (int64_t h = 0; h < H; ++h) s[h] += ac.sums[h * kNumRow + m];
    }
    auto mx = max_.accessor<double, 1>();
    auto mn = min_.accessor<double, 1>();
    for (int64_t h = 0; h < H; ++h) {
      mx[h] = std::max<double>(mx[h], ac.mx[h]);
      mn[h] = std::min<double>(mn[h], ac.mn[h]);
    }
    rows_ += ac.rows;
  }
}

std::map<std::string, torch::Tensor> HeadMetrics::result() const {
  std::map<std::string, torch::Tensor> out;
  if (rows_ == 0) return out;
  for (const auto& [name, s] : sums_) out[name] = s / rows_;
  out["confidence_max"] = max_.clone();
  out["weight_max"] = max_.clone();
  out["weight_min"] = min_.clone();
  const int64_t H = max_.size(0);
  auto pattern = torch::empty({H}, torch::kDouble);
  for (int64_t h = 0; h < H; ++h) {
    pattern[h] = static_cast<double>(classify(out["diagonal_mean"][h].item<double>(), out["first_token_mass"][h].item<double>(),
                                              out["broadcast_mass"][h].item<double>(), out["entropy_norm"][h].item<double>(),
                                              out["local_mass"][h].item<double>()));
  }
  out["pattern"] = pattern;
  return out;
}

}  // namespace attnscope::hooks
