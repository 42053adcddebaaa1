// Attention metrics (hooks/attention_metrics.h): the "Attention Atlas" set (confidence, focus,
// sparsity, distribution, uniformity), the "fundamentals" set (normalised entropy, effective
// tokens, Gini, diagonal / first / last / local mass, attended distance) and the pattern class.
#include "hooks/attention_metrics.h"

#include "core/core.h"

#include <ATen/Parallel.h>
#include <boost/sort/spreadsort/float_sort.hpp>

#include <algorithm>
#include <cmath>
#include <limits>

namespace attnscope::hooks {

const char* pattern_name(Pattern p) {
  switch (p) {
    case Pattern::kDiagonal: return "diagonal";
    case Pattern::kBos: return "bos";
    case Pattern::kBroadcast: return "broadcast";
    case Pattern::kUniform: return "uniform";
    case Pattern::kLocal: return "local";
    case Pattern::kMixed: return "mixed";
    case Pattern::kBlock: return "block";
  }
  return "?";
}

const std::vector<std::string>& pattern_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> v;
    for (int c = 0; c <= static_cast<int>(Pattern::kBlock); ++c) v.emplace_back(pattern_name(static_cast<Pattern>(c)));
    return v;
  }();
  return names;
}

const std::vector<std::string>& head_metric_names() {
  static const std::vector<std::string> names = {
      "confidence_max", "confidence_avg", "focus",          "sparsity",        "distribution",
      "uniformity",     "entropy_norm",   "effective_tokens", "gini",          "diagonal_mean",
      "first_token_mass", "last_token_mass", "local_mass",  "mean_distance",   "broadcast_mass",
      "weight_mean",    "weight_max",     "weight_min",     "diagonal_std",    "matrix_std",
      "matrix_gini",    "matrix_median",  "block_score",     "max_entropy",     "pattern"};
  return names;
}

Pattern classify(double diagonal_mean, double first_token_mass, double broadcast_mass,
                 double normalised_entropy, double local_mass, double block_score, double effective_tokens) {
  if (diagonal_mean >= 0.5) return Pattern::kDiagonal;
  if (first_token_mass >= 0.5) return Pattern::kBos;
  if (broadcast_mass >= 0.5) return Pattern::kBroadcast;
  if (normalised_entropy >= 0.9) return Pattern::kUniform;
  if (local_mass >= 0.8) return Pattern::kLocal;
  if (block_score >= 0.3 && effective_tokens >= 2.0) return Pattern::kBlock;
  return Pattern::kMixed;
}

namespace {

// Per-row metrics accumulated per head; index order of kRowMetrics.
const std::vector<std::string> kRowMetrics = {
    "confidence_avg", "focus", "entropy_norm", "effective_tokens", "sparsity", "uniformity", "distribution",
    "gini", "diagonal_mean", "first_token_mass", "last_token_mass", "local_mass", "mean_distance",
    "broadcast_mass", "weight_mean"};
constexpr size_t kNumRow = 15;
constexpr size_t kBroadcast = 13;  // the one per-map (not per-row) metric
constexpr int64_t kFastMaxLen = 8;  // maps of up to this many real tokens take the SIMD path
constexpr int64_t kRankMaxLen = 96;  // longer rows are sorted for their Gini and median (kFast)

// The broadcast key of a map: the key (other than the first) that the rows attend to most on
// average; returns the summed attention of all rows on it.
double broadcast_sum(const float* w, int64_t T, int64_t n) {
  float col[kFastMaxLen] = {};
  int64_t top = n > 1 ? 1 : 0;
  if (n <= kFastMaxLen) {
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t j = 0; j < n; ++j) col[j] += w[i * T + j];
    }
    for (int64_t j = 1; j < n; ++j) if (col[j] > col[top]) top = j;
  } else {
    std::vector<float> c(n, 0.f);
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t j = 0; j < n; ++j) c[j] += w[i * T + j];
    }
    for (int64_t j = 1; j < n; ++j) if (c[j] > c[top]) top = j;
  }
  double b = 0;
  for (int64_t i = 0; i < n; ++i) b += w[i * T + top];
  return b;
}

// Path::kReference: one (example, head) map `w` [T,T] of which the first n rows and keys are real,
// a row at a time (`causal`: row i over its keys 0..i). `sorted` is scratch of n floats.
void accumulate_map(const float* w, int64_t T, int64_t n_all, double log_n_all, float* sorted, double* sums, float& mx,
                    float& mn, bool causal = false) {
  for (int64_t i = 0; i < n_all; ++i) {
    const int64_t n = causal ? i + 1 : n_all;
    const double log_n = causal ? std::log(static_cast<double>(n)) : log_n_all;
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
      mx = std::max(mx, r[j]);
      mn = std::min(mn, r[j]);
    }
    const double mean = sum / static_cast<double>(n);
    double var = 0;
    for (int64_t j = 0; j < n; ++j) var += (r[j] - mean) * (r[j] - mean);
    std::copy(r, r + n, sorted);
    std::sort(sorted, sorted + n);
    double gini = 0;
    for (int64_t k = 0; k < n; ++k) gini += static_cast<double>(2 * (k + 1) - n - 1) * sorted[k];
    gini = sum > 0 ? gini / (static_cast<double>(n) * sum) : 0;
    const double median = 0.5 * (sorted[(n - 1) / 2] + sorted[n / 2]);
    const double v[kNumRow] = {rmax, ent, n > 1 ? ent / log_n : 0.0, std::exp(ent),
                               sparse / static_cast<double>(n), std::sqrt(var / static_cast<double>(n)), median,
                               gini, r[i], r[0], r[n - 1], local, dist, 0.0, mean};
    for (size_t m = 0; m < kNumRow; ++m) sums[m] += v[m];
  }
  sums[kBroadcast] += broadcast_sum(w, T, n_all);
}

// ---- Map-level metrics: each (example, head) map as one matrix, the same code on both paths.
// Weighted by the map's rows when averaged, as the per-row metrics are.
const std::vector<std::string> kMapMetrics = {"diagonal_std", "matrix_std", "matrix_gini", "matrix_median",
                                              "block_score", "max_entropy"};
constexpr size_t kNumMap = 6;

// How much more attention stays inside contiguous segments than chance: Newman's modularity of
// the best split of the n positions into contiguous segments of at least two tokens, the map read
// as a weighted directed graph (row sums 1): Q = (1/n) sum_c [W_cc - |c| in_c / n], W_cc the
// attention of c's rows to c's keys, in_c the attention c's keys receive from all rows. 0 for
// uniform attention and for the trivial split; 1 - 1/m for m equal segments each attending within
// itself (Kovaleva et al. 2019's "block" pattern: e.g. each sentence of a pair to itself).
// Dynamic programming over segment ends with 2-D prefix sums: O(n^2).
double block_score(const float* w, int64_t T, int64_t n, std::vector<double>& prefix) {
  if (n < 2) return 0.0;
  const int64_t m = n + 1;
  prefix.assign(static_cast<size_t>(m * m), 0.0);
  for (int64_t i = 0; i < n; ++i) {
    double row = 0;
    for (int64_t j = 0; j < n; ++j) {
      row += w[i * T + j];
      prefix[(i + 1) * m + j + 1] = prefix[i * m + j + 1] + row;
    }
  }
  const double dn = static_cast<double>(n);
  auto score = [&](int64_t s, int64_t e) {  // the segment s..e
    const double within = prefix[(e + 1) * m + e + 1] - prefix[s * m + e + 1] - prefix[(e + 1) * m + s] + prefix[s * m + s];
    const double received = prefix[n * m + e + 1] - prefix[n * m + s];
    return within - static_cast<double>(e - s + 1) * received / dn;
  };
  std::vector<double> best(static_cast<size_t>(n), -std::numeric_limits<double>::infinity());  // positions 0..e split
  for (int64_t e = 1; e < n; ++e) {
    best[e] = score(0, e);
    for (int64_t s = 2; s <= e - 1; ++s) best[e] = std::max(best[e], best[s - 1] + score(s, e));
  }
  return best[n - 1] / dn;
}

// `w`'s map-level metrics (n real tokens; `causal`: row i's keys are 0..i) into sums [kNumMap],
// each times n. `entries` and `prefix` are scratch.
void accumulate_map_level(const float* w, int64_t T, int64_t n, bool causal, std::vector<float>& entries,
                          std::vector<double>& prefix, double* sums) {
  if (n <= 0) return;
  const double dn = static_cast<double>(n);
  double dmean = 0, dvar = 0;
  for (int64_t i = 0; i < n; ++i) dmean += w[i * T + i];
  dmean /= dn;
  for (int64_t i = 0; i < n; ++i) dvar += (w[i * T + i] - dmean) * (w[i * T + i] - dmean);
  entries.clear();
  for (int64_t i = 0; i < n; ++i) entries.insert(entries.end(), w + i * T, w + i * T + (causal ? i + 1 : n));
  const double k = static_cast<double>(entries.size());
  double sum = 0;
  for (float x : entries) sum += x;
  const double mean = sum / k;
  double var = 0;
  for (float x : entries) var += (x - mean) * (x - mean);
  // Boost's float spreadsort (a radix-like sort of the float bits): ~3x std::sort on the n^2
  // entries of a map, which dominated the map-level metrics
  boost::sort::spreadsort::float_sort(entries.begin(), entries.end());
  double gini = 0;
  const auto K = static_cast<int64_t>(entries.size());
  for (int64_t r = 0; r < K; ++r) gini += static_cast<double>(2 * (r + 1) - K - 1) * entries[static_cast<size_t>(r)];
  gini = sum > 0 ? gini / (k * sum) : 0;
  const double median = 0.5 * (static_cast<double>(entries[static_cast<size_t>((K - 1) / 2)]) + entries[static_cast<size_t>(K / 2)]);
  // the entropy of uniform attention over each row's keys, summed over rows: ln n each, or ln(i+1)
  const double max_entropy = causal ? std::lgamma(dn + 1.0) : dn * std::log(dn);
  const double v[kNumMap] = {std::sqrt(dvar / dn) * dn, std::sqrt(var / k) * dn, gini * dn, median * dn,
                             block_score(w, T, n, prefix) * dn, max_entropy};
  for (size_t j = 0; j < kNumMap; ++j) sums[j] += v[j];
}

// ---- Path::kFast: the same arithmetic on 4 rows at a time (GCC/Clang vector extensions; AVX2
// and FMA when the CPU has them, else two SSE2 halves). Per row the operations, their order and
// their operand types are kReference's, except that log and exp are fdlibm's algorithms (< 1 ulp),
// FMA may fuse a multiply and an add, and the row sums are kept per lane: results agree with
// kReference to rounding (~1e-15 relative).

#define ATTNSCOPE_VINLINE inline __attribute__((always_inline))
#pragma GCC diagnostic ignored "-Wpsabi"  // 32-byte vectors only in inlined, file-local code: no ABI
using v4d = double __attribute__((vector_size(32)));
using v4l = int64_t __attribute__((vector_size(32)));
using v4u = uint64_t __attribute__((vector_size(32)));
using v4f = float __attribute__((vector_size(16)));

ATTNSCOPE_VINLINE v4d splat(double x) { return v4d{x, x, x, x}; }

// log(x) for positive normal x: fdlibm's e_log.c (the hfsq branch throughout), < 1 ulp.
ATTNSCOPE_VINLINE v4d vlog(v4d x) {
  const v4u bits = reinterpret_cast<v4u>(x);
  const v4u kb = (bits - 0x3fe6a09e667f3bcdULL + (1023ULL << 52)) >> 52;  // k + 1023, x = 2^k m, m in [sqrt(1/2), sqrt(2))
  const v4d m = reinterpret_cast<v4d>(bits - (kb << 52) + (1023ULL << 52));
  const v4d dk = reinterpret_cast<v4d>(kb | 0x4330000000000000ULL) - splat(0x1p52 + 1023);
  const v4d f = m - 1.0;
  const v4d s = f / (2.0 + f);
  const v4d z = s * s, w = z * z;
  const v4d t1 = w * (3.999999999940941908e-01 + w * (2.222219843214978396e-01 + w * 1.531383769920937332e-01));
  const v4d t2 = z * (6.666666666666735130e-01 +
                      w * (2.857142874366239149e-01 + w * (1.818357216161805012e-01 + w * 1.479819860511658591e-01)));
  const v4d R = t2 + t1;
  const v4d hfsq = 0.5 * f * f;
  return dk * 6.93147180369123816490e-01 - ((hfsq - (s * (hfsq + R) + dk * 1.90821492927058770002e-10)) - f);
}

// exp(x) for |x| < 700: fdlibm's e_exp.c, < 1 ulp.
ATTNSCOPE_VINLINE v4d vexp(v4d x) {
  const v4d kd = (x * 1.44269504088896338700e+00 + 0x1.8p52) - 0x1.8p52;  // round(x / ln 2)
  const v4d hi = x - kd * 6.93147180369123816490e-01, lo = kd * 1.90821492927058770002e-10;
  const v4d r = hi - lo, t = r * r;
  const v4d c = r - t * (1.66666666666666019037e-01 +
                         t * (-2.77777777770155933842e-03 +
                              t * (6.61375632143793436117e-05 +
                                   t * (-1.65339022054652515390e-06 + t * 4.13813679705723846039e-08))));
  const v4d y = 1.0 - ((lo - (r * c) / (2.0 - c)) - hi);
  const v4u kb = reinterpret_cast<v4u>(kd + (0x1p52 + 1023)) & 0xfffULL;  // k + 1023
  return y * reinterpret_cast<v4d>(kb << 52);
}

ATTNSCOPE_VINLINE v4d shuffle(v4d a, v4d b, v4l mask) {  // lanes of (a, b) by index 0..7
#if defined(__clang__)
  return v4d{mask[0] < 4 ? a[mask[0]] : b[mask[0] - 4], mask[1] < 4 ? a[mask[1]] : b[mask[1] - 4],
             mask[2] < 4 ? a[mask[2]] : b[mask[2] - 4], mask[3] < 4 ? a[mask[3]] : b[mask[3] - 4]};
#else
  return __builtin_shuffle(a, b, mask);
#endif
}
ATTNSCOPE_VINLINE v4d vmax(v4d a, v4d b) { return a < b ? b : a; }  // std::max(a, b)
ATTNSCOPE_VINLINE v4d vmin(v4d a, v4d b) { return b < a ? b : a; }  // std::min(a, b)

using v4d_unaligned = double __attribute__((vector_size(32), aligned(8)));  // heap storage of lane sums
struct LaneSums {
  v4d_unaligned sums[kNumRow];
  v4d_unaligned mx, mn;
};

// Rows [g, g+4) of map `w` (n real tokens, n <= kFastMaxLen) into `acc` (one lane per row; rows
// past n are masked out). n is a template argument so that the loops unroll into registers.
// The entropy terms (focus, entropy_norm, effective_tokens) of up to kPending row groups: their
// logs and exps are done together, many independent vector operations in a row rather than a
// long dependency chain per group.
constexpr int kPending = 32;
struct Pending {
  v4d x[kPending][kFastMaxLen];  // the keys of the group's rows
  int64_t n[kPending];
  double log_n[kPending];
  v4l row_ok[kPending];
  LaneSums* acc[kPending];
  int count = 0;
};

ATTNSCOPE_VINLINE void flush_entropy(Pending& p) {
  const v4d zero = splat(0.0), one = splat(1.0);
  v4d lg[kPending][kFastMaxLen];
  for (int k = 0; k < p.count; ++k) {
    for (int64_t j = 0; j < p.n[k]; ++j) lg[k][j] = vlog(p.x[k][j] > 0.0 ? p.x[k][j] : one);
  }
  v4d ent[kPending];
  for (int k = 0; k < p.count; ++k) {
    v4d e = zero;
    for (int64_t j = 0; j < p.n[k]; ++j) {  // as kReference: if (x > 0) ent -= x * log(x), j in order
      const v4d xj = p.x[k][j];
      e = xj > 0.0 ? e - xj * lg[k][j] : e;
    }
    ent[k] = e;
  }
  v4d ex[kPending];
  for (int k = 0; k < p.count; ++k) ex[k] = vexp(ent[k]);
  for (int k = 0; k < p.count; ++k) {
    LaneSums& acc = *p.acc[k];
    const v4l ok = p.row_ok[k];
    acc.sums[1] += ok ? ent[k] : zero;
    acc.sums[2] += ok ? (p.n[k] > 1 ? ent[k] / p.log_n[k] : zero) : zero;
    acc.sums[3] += ok ? ex[k] : zero;
  }
  p.count = 0;
}

// Returns true when it added the map's broadcast term (n <= 4) to *broadcast too. The entropy
// terms go to `pending` (flushed when full).
template <int64_t n>
ATTNSCOPE_VINLINE bool accumulate_rows4(const float* w, int64_t T, double log_n, int64_t g, LaneSums& acc,
                                        double* broadcast, Pending& pending) {
  v4d x[kFastMaxLen] = {};  // x[j]: key j of the 4 rows
  v4l row_ok = {0, 0, 0, 0};
  v4d diag = splat(0.0), dist_i = splat(0.0), first = splat(0.0), last = splat(0.0);
  for (int l = 0; l < 4; ++l) {
    row_ok[l] = g + l < n ? -1 : 0;
    dist_i[l] = static_cast<double>(g + l);
  }
  const v4d zero = splat(0.0), one = splat(1.0);
  const bool whole_map = n <= 4 && T >= 4;  // (then g = 0)
  if (whole_map) {  // rows 0..3 are in the map: 4 vector loads and a transpose
    v4d r[4];
    v4f col = {0.f, 0.f, 0.f, 0.f};  // broadcast_sum's column sums, in its order
    for (int l = 0; l < 4; ++l) {
      v4f f;
      std::memcpy(&f, w + l * T, sizeof f);
      r[l] = __builtin_convertvector(f, v4d);
      if (l < n) col += f;
    }
    int64_t top = n > 1 ? 1 : 0;
    for (int64_t j = 1; j < n; ++j) if (col[j] > col[top]) top = j;
    const v4d t0 = shuffle(r[0], r[1], v4l{0, 4, 2, 6}), t1 = shuffle(r[0], r[1], v4l{1, 5, 3, 7});
    const v4d t2 = shuffle(r[2], r[3], v4l{0, 4, 2, 6}), t3 = shuffle(r[2], r[3], v4l{1, 5, 3, 7});
    const v4d c[4] = {shuffle(t0, t2, v4l{0, 1, 4, 5}), shuffle(t1, t3, v4l{0, 1, 4, 5}),
                      shuffle(t0, t2, v4l{2, 3, 6, 7}), shuffle(t1, t3, v4l{2, 3, 6, 7})};
    for (int64_t j = 0; j < n; ++j) x[j] = row_ok ? c[j] : zero;
    diag = row_ok ? shuffle(shuffle(c[0], c[1], v4l{0, 5, 2, 3}), shuffle(c[2], c[3], v4l{0, 1, 2, 7}),
                            v4l{0, 1, 6, 7})
                  : zero;
    double b = 0;
    for (int64_t i = 0; i < n; ++i) b += x[top][i];
    *broadcast += b;
  } else {
    for (int l = 0; l < 4; ++l) {
      const int64_t i = g + l;
      if (i >= n) continue;
      diag[l] = static_cast<double>(w[i * T + i]);
      for (int64_t j = 0; j < n; ++j) x[j][l] = static_cast<double>(w[i * T + j]);
    }
  }
  first = x[0];
  last = x[n - 1];
  {
    if (pending.count == kPending) flush_entropy(pending);
    const int k = pending.count++;
    for (int64_t j = 0; j < n; ++j) pending.x[k][j] = x[j];
    pending.n[k] = n;
    pending.log_n[k] = log_n;
    pending.row_ok[k] = row_ok;
    pending.acc[k] = &acc;
  }
  v4d rmax = zero, sum = zero, sparse = zero, local = zero, dist = zero;
  for (int64_t j = 0; j < n; ++j) {
    const v4d xj = x[j];
    rmax = vmax(rmax, xj);
    sum += xj;
    sparse += xj < 0.01 ? one : zero;
    const v4d d = dist_i - static_cast<double>(j);
    const v4d ad = d < 0.0 ? -d : d;  // |i - j|
    local = ad <= 2.0 ? local + xj : local;
    dist += xj * ad;
    acc.mx = row_ok ? vmax(acc.mx, xj) : acc.mx;
    acc.mn = row_ok ? vmin(acc.mn, xj) : acc.mn;
  }
  const double dn = static_cast<double>(n);
  const v4d mean = sum / dn;
  v4d var = zero;
  for (int64_t j = 0; j < n; ++j) var += (x[j] - mean) * (x[j] - mean);
  // sorted keys per row (a sorting network of min/max on the lanes)
  for (int64_t a = 0; a < n; ++a) {
    for (int64_t j = 0; j + 1 < n - a; ++j) {
      const v4d lo = vmin(x[j], x[j + 1]), hi = vmax(x[j], x[j + 1]);
      x[j] = lo;
      x[j + 1] = hi;
    }
  }
  v4d gini = zero;
  for (int64_t k = 0; k < n; ++k) gini += static_cast<double>(2 * (k + 1) - n - 1) * x[k];
  gini = sum > 0.0 ? gini / (dn * sum) : zero;
  // as kReference: the two middle keys are added as floats
  const v4f mid = __builtin_convertvector(x[(n - 1) / 2], v4f) + __builtin_convertvector(x[n / 2], v4f);
  const v4d median = 0.5 * __builtin_convertvector(mid, v4d);
  v4d sd = splat(0.0);
  const v4d var_n = var / dn;
  for (int l = 0; l < 4; ++l) sd[l] = std::sqrt(var_n[l]);
  const v4d v[kNumRow] = {rmax, zero, zero, zero, sparse / dn, sd, median, gini,  // (1-3: flush_entropy)
                          diag, first, last, local, dist, zero, mean};
  for (size_t m = 0; m < kNumRow; ++m) {
    if (m < 1 || m > 3) acc.sums[m] += row_ok ? v[m] : zero;
  }
  return whole_map;
}

// Path::kFast for maps longer than kFastMaxLen: a row at a time as kReference, its keys 4 at a time
// (the entropy's logs as vlog; the row sums kept per lane, so they agree with kReference to
// rounding). The median and Gini still sort each row.
ATTNSCOPE_VINLINE void accumulate_map_fast(const float* w, int64_t T, int64_t n, double log_n, float* sorted,
                                           double* sums, float& mx, float& mn) {
  const v4d zero = splat(0.0), one = splat(1.0);
  const v4l all = {-1, -1, -1, -1};
  v4d wmax = splat(-1.0), wmin = splat(2.0);
  for (int64_t i = 0; i < n; ++i) {
    const float* r = w + i * T;
    v4d rmax = zero, ent = zero, sum = zero, sparse = zero, local = zero, dist = zero;
    auto keys = [&](v4d x, v4l ok, int64_t j) {  // keys j..j+3 of row i (x = 0 where !ok)
      rmax = vmax(rmax, x);
      const v4d lg = vlog(x > 0.0 ? x : one);
      ent = x > 0.0 ? ent - x * lg : ent;
      sum += x;
      sparse += (ok & (x < 0.01)) ? one : zero;
      const v4d d = splat(static_cast<double>(i)) - v4d{static_cast<double>(j), static_cast<double>(j + 1),
                                                         static_cast<double>(j + 2), static_cast<double>(j + 3)};
      const v4d ad = d < 0.0 ? -d : d;  // |i - j|
      local = ad <= 2.0 ? local + x : local;
      dist += x * ad;
      wmax = ok ? vmax(wmax, x) : wmax;
      wmin = ok ? vmin(wmin, x) : wmin;
    };
    int64_t j = 0;
    for (; j + 4 <= n; j += 4) {
      v4f f;
      std::memcpy(&f, r + j, sizeof f);
      keys(__builtin_convertvector(f, v4d), all, j);
    }
    if (j < n) {
      v4d x = zero;
      v4l ok = {0, 0, 0, 0};
      for (int64_t k = 0; j + k < n; ++k) {
        x[k] = static_cast<double>(r[j + k]);
        ok[k] = -1;
      }
      keys(x, ok, j);
    }
    auto total = [](v4d v) { return (v[0] + v[1]) + (v[2] + v[3]); };
    const double e = total(ent), s = total(sum);
    const double mean = s / static_cast<double>(n);
    double var = 0;
    for (int64_t k = 0; k < n; ++k) var += (r[k] - mean) * (r[k] - mean);
    // Gini and the median need each key's rank in the sorted row (ties in key order, as a
    // stable sort): up to kRankMaxLen keys by counting (branch-free, vectorised: faster than
    // sorting short rows), longer rows sorted
    double gini = 0;
    float lo = 0, hi = 0;
    if (n <= kRankMaxLen) {
      for (int64_t a = 0; a < n; ++a) {
        const float xa = r[a];
        int32_t rank = 0;
        for (int64_t b = 0; b < n; ++b) rank += r[b] < xa;
        for (int64_t b = 0; b < a; ++b) rank += r[b] == xa;
        gini += static_cast<double>(2 * (rank + 1) - n - 1) * xa;
        if (rank == (n - 1) / 2) lo = xa;
        if (rank == n / 2) hi = xa;
      }
    } else {
      std::copy(r, r + n, sorted);
      std::sort(sorted, sorted + n);
      for (int64_t k = 0; k < n; ++k) gini += static_cast<double>(2 * (k + 1) - n - 1) * sorted[k];
      lo = sorted[(n - 1) / 2];
      hi = sorted[n / 2];
    }
    gini = s > 0 ? gini / (static_cast<double>(n) * s) : 0;
    const double median = 0.5 * (lo + hi);
    const double row_max = std::max(std::max(rmax[0], rmax[1]), std::max(rmax[2], rmax[3]));
    const double v[kNumRow] = {row_max, e, n > 1 ? e / log_n : 0.0, std::exp(e),
                               total(sparse) / static_cast<double>(n), std::sqrt(var / static_cast<double>(n)), median,
                               gini, r[i], r[0], r[n - 1], total(local), total(dist), 0.0, mean};
    for (size_t m = 0; m < kNumRow; ++m) sums[m] += v[m];
  }
  for (int l = 0; l < 4; ++l) {
    mx = std::max(mx, static_cast<float>(wmax[l]));
    mn = std::min(mn, static_cast<float>(wmin[l]));
  }
  sums[kBroadcast] += broadcast_sum(w, T, n);
}

// Examples [b0, b1) of probs [B,H,T,T] into per-head lane sums `acc` [H] (maps of up to
// kFastMaxLen tokens) and scalar sums `sums` [H * kNumRow] (longer maps, and the broadcast term).
ATTNSCOPE_VINLINE void accumulate_examples(const float* data, const int64_t* lp, int64_t b0, int64_t b1, int64_t H,
                                           int64_t T, LaneSums* acc, double* sums, float* mx, float* mn,
                                           float* scratch, double* rows) {
  int64_t last_n = -1;
  double log_n = 0;
  Pending pending;
  for (int64_t b = b0; b < b1; ++b) {
    const int64_t n = std::min(T, std::max<int64_t>(0, lp[b]));
    if (n == 0) continue;
    if (n != last_n) log_n = std::log(static_cast<double>(last_n = n));
    for (int64_t h = 0; h < H; ++h) {
      const float* w = data + (b * H + h) * T * T;
      if (n <= kFastMaxLen) {
        double* bsum = sums + h * kNumRow + kBroadcast;
        bool done = false;
        switch (n) {
#define ATTNSCOPE_ROWS(N) \
  case N: \
    for (int64_t g = 0; g < N; g += 4) done = accumulate_rows4<N>(w, T, log_n, g, acc[h], bsum, pending); \
    break;
          ATTNSCOPE_ROWS(1) ATTNSCOPE_ROWS(2) ATTNSCOPE_ROWS(3) ATTNSCOPE_ROWS(4)
          ATTNSCOPE_ROWS(5) ATTNSCOPE_ROWS(6) ATTNSCOPE_ROWS(7) ATTNSCOPE_ROWS(8)
#undef ATTNSCOPE_ROWS
        }
        if (!done) *bsum += broadcast_sum(w, T, n);
      } else {
        accumulate_map_fast(w, T, n, log_n, scratch, sums + h * kNumRow, mx[h], mn[h]);
      }
    }
    *rows += static_cast<double>(n);
  }
  flush_entropy(pending);
}

void accumulate_examples_generic(const float* data, const int64_t* lp, int64_t b0, int64_t b1, int64_t H, int64_t T,
                                 LaneSums* acc, double* sums, float* mx, float* mn, float* scratch, double* rows) {
  accumulate_examples(data, lp, b0, b1, H, T, acc, sums, mx, mn, scratch, rows);
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
__attribute__((target("avx2,fma"))) void accumulate_examples_avx2(const float* data, const int64_t* lp, int64_t b0,
                                                              int64_t b1, int64_t H, int64_t T, LaneSums* acc,
                                                              double* sums, float* mx, float* mn, float* scratch,
                                                              double* rows) {
  accumulate_examples(data, lp, b0, b1, H, T, acc, sums, mx, mn, scratch, rows);
}
#endif

struct Acc {
  std::vector<double> sums;  // [H * kNumRow]
  std::vector<double> map_sums;  // [H * kNumMap]
  std::vector<float> mx, mn;  // [H]
  double rows = 0;
};

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
    std::vector<float> scratch(T), entries;
    std::vector<double> prefix;
    for (int64_t c = c0; c < c1; ++c) {
      Acc& ac = acc[c];
      ac.sums.assign(H * kNumRow, 0.0);
      ac.map_sums.assign(H * kNumMap, 0.0);
      const int64_t e0 = B * c / chunks, e1 = B * (c + 1) / chunks;
      for (int64_t b = e0; b < e1; ++b) {  // the map-level metrics, the same on both paths
        const int64_t n = std::min(T, std::max<int64_t>(0, lp[b]));
        for (int64_t h = 0; h < H; ++h) {
          accumulate_map_level(data + (b * H + h) * T * T, T, n, causal_, entries, prefix, ac.map_sums.data() + h * kNumMap);
        }
      }
      ac.mx.assign(H, -1.f);
      ac.mn.assign(H, 2.f);
      if (path_ == Path::kReference) {
        for (int64_t b = e0; b < e1; ++b) {
          const int64_t n = std::min(T, std::max<int64_t>(0, lp[b]));
          const double log_n = std::log(static_cast<double>(n));
          for (int64_t h = 0; h < H; ++h) {
            accumulate_map(data + (b * H + h) * T * T, T, n, log_n, scratch.data(), ac.sums.data() + h * kNumRow,
                           ac.mx[h], ac.mn[h], causal_);
          }
          ac.rows += static_cast<double>(n);
        }
        continue;
      }
      std::vector<LaneSums> lanes(H);
      for (auto& ls : lanes) {
        for (auto& s : ls.sums) s = splat(0.0);
        ls.mx = splat(-1.0);
        ls.mn = splat(2.0);
      }
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
      (cpu_has_avx2_fma() ? accumulate_examples_avx2 : accumulate_examples_generic)(
#else
      accumulate_examples_generic(
#endif
          data, lp, e0, e1, H, T, lanes.data(), ac.sums.data(), ac.mx.data(), ac.mn.data(), scratch.data(), &ac.rows);
      for (int64_t h = 0; h < H; ++h) {
        for (size_t m = 0; m < kNumRow; ++m) {
          const v4d s = lanes[h].sums[m];
          ac.sums[h * kNumRow + m] += (s[0] + s[1]) + (s[2] + s[3]);
        }
        for (int l = 0; l < 4; ++l) {
          ac.mx[h] = std::max(ac.mx[h], static_cast<float>(lanes[h].mx[l]));
          ac.mn[h] = std::min(ac.mn[h], static_cast<float>(lanes[h].mn[l]));
        }
      }
    }
  });
  if (sums_.empty()) {
    sums_.assign(H * kNumRow, 0.0);
    map_sums_.assign(H * kNumMap, 0.0);
    max_.assign(H, -1.0);
    min_.assign(H, 2.0);
  }
  for (const Acc& ac : acc) {  // fixed order: deterministic for a given thread count
    for (int64_t h = 0; h < H; ++h) {
      for (size_t m = 0; m < kNumRow; ++m) sums_[h * kNumRow + m] += ac.sums[h * kNumRow + m];
      for (size_t m = 0; m < kNumMap; ++m) map_sums_[h * kNumMap + m] += ac.map_sums[h * kNumMap + m];
      max_[h] = std::max<double>(max_[h], ac.mx[h]);
      min_[h] = std::min<double>(min_[h], ac.mn[h]);
    }
    rows_ += ac.rows;
  }
}

std::map<std::string, torch::Tensor> HeadMetrics::result() const {
  std::map<std::string, torch::Tensor> out;
  if (rows_ == 0) return out;
  const int64_t H = static_cast<int64_t>(max_.size());
  std::vector<std::vector<double>> mean(kNumRow, std::vector<double>(H));
  for (size_t m = 0; m < kNumRow; ++m) {
    for (int64_t h = 0; h < H; ++h) mean[m][h] = sums_[h * kNumRow + m] / rows_;
    out[kRowMetrics[m]] = torch::tensor(mean[m], torch::kDouble);
  }
  std::vector<std::vector<double>> map_mean(kNumMap, std::vector<double>(H));
  for (size_t m = 0; m < kNumMap; ++m) {
    for (int64_t h = 0; h < H; ++h) map_mean[m][h] = map_sums_[h * kNumMap + m] / rows_;
    out[kMapMetrics[m]] = torch::tensor(map_mean[m], torch::kDouble);
  }
  out["confidence_max"] = torch::tensor(max_, torch::kDouble);
  out["weight_max"] = torch::tensor(max_, torch::kDouble);
  out["weight_min"] = torch::tensor(min_, torch::kDouble);
  auto at = [&](const char* name) {
    return mean[std::find(kRowMetrics.begin(), kRowMetrics.end(), name) - kRowMetrics.begin()];
  };
  const auto &diag = at("diagonal_mean"), &first = at("first_token_mass"), &broadcast = at("broadcast_mass"),
             &entropy = at("entropy_norm"), &local = at("local_mass"), &effective = at("effective_tokens");
  const auto& block = map_mean[4];  // block_score
  std::vector<double> pattern(H);
  for (int64_t h = 0; h < H; ++h) {
    pattern[h] = static_cast<double>(classify(diag[h], first[h], broadcast[h], entropy[h], local[h], block[h], effective[h]));
  }
  out["pattern"] = torch::tensor(pattern, torch::kDouble);
  return out;
}

}  // namespace attnscope::hooks
