// Per-head attention metrics: pure functions of attention maps, streamed over batches.
// Every metric is averaged over the real query rows (padding excluded) of all examples seen.
// Causal maps (GPT-2) are measured over the keys each row may attend to: row i over keys 0..i
// (normalised entropy divides by ln(i+1); sparsity, uniformity, median and Gini over those i+1).
// Map-level metrics treat each (example, head) map as one matrix of its allowed entries:
// diagonal_std (std of a[i,i] over the rows), matrix_std, matrix_gini and matrix_median (over all
// entries, beside the per-row uniformity, gini and distribution), block_score (the modularity
// of the best split into contiguous segments, see attention_metrics.cpp) and max_entropy (ln of the keys a row may
// attend to: the entropy of uniform attention, entropy_norm's divisor); they are averaged over
// maps weighted by their rows.
#pragma once

#include <torch/torch.h>

#include <map>
#include <string>
#include <vector>

namespace attnscope::hooks {

// Pattern classes, decided per head from the averaged metrics in this order:
//   diagonal  diagonal_mean >= 0.5           bos      first_token_mass >= 0.5
//   broadcast broadcast_mass >= 0.5          uniform  normalised_entropy >= 0.9
//   local     local_mass >= 0.8
//   block     block_score >= 0.3 with effective_tokens >= 2 (rows spread inside their segment)
//   mixed     otherwise
// (codes: block is 6, after mixed, so that files recorded before it read the same)
enum class Pattern { kDiagonal = 0, kBos = 1, kBroadcast = 2, kUniform = 3, kLocal = 4, kMixed = 5, kBlock = 6 };
// The class names by code.
const std::vector<std::string>& pattern_names();
const char* pattern_name(Pattern p);

// Names, in storage order, of what HeadMetrics::result() returns (plus "pattern", the class code).
const std::vector<std::string>& head_metric_names();

class HeadMetrics {
 public:
  // kFast: maps of up to 8 real tokens (min/max: 4) are done 4 rows at a time in double-precision
  // SIMD (AVX2 and FMA where the CPU has them), with a vector log and exp of at most 1 ulp error
  // (glibc's: < 1 ulp); longer ones a row at a time, 4 keys at a time, with the same vector log.
  // kReference: one row at a time with std::log / std::exp. The two agree to ~1e-15 relative (tested: 1e-12), far below the float32
  // the metrics are stored as.
  // `causal`: row i's keys are 0..i (always the reference path: rows of different lengths).
  enum class Path { kFast, kReference };
  explicit HeadMetrics(Path path = Path::kFast, bool causal = false) : path_(causal ? Path::kReference : path), causal_(causal) {}

  // probs [B,H,T,T] (rows sum to 1 over the first lengths[b] keys), lengths [B] int64.
  void add(const torch::Tensor& probs, const torch::Tensor& lengths);
  // name -> [H] (float64); empty before any add().
  std::map<std::string, torch::Tensor> result() const;

 private:
  Path path_;
  bool causal_;
  std::vector<double> sums_;      // [H, metric] row sums, in kRowMetrics order (attention_metrics.cpp)
  std::vector<double> max_, min_;  // [H]
  std::vector<double> map_sums_;   // [H, metric] map-level sums (times the map's rows), kMapMetrics order
  double rows_ = 0;
};

Pattern classify(double diagonal_mean, double first_token_mass, double broadcast_mass,
                 double normalised_entropy, double local_mass, double block_score, double effective_tokens);

}  // namespace attnscope::hooks
