// Induction heads (analysis/analysis.h): repeated random probe sequences, each head's previous-token
// and induction scores, the in-context-learning score, and the mechanism over training.
#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <utility>

#include "analysis/analysis.h"

namespace attnscope::analysis {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// splitmix64 (Steele, Lea and Flood 2014): a fixed stream for a seed on every platform and compiler.
class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t seed) : state_(seed) {}
  uint64_t next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  // Uniform in [0, n), n >= 1: draws below 2^64 mod n are rejected, so every residue is equally likely.
  uint64_t below(uint64_t n) {
    const uint64_t rejected = (0 - n) % n;
    uint64_t x = next();
    while (x < rejected) x = next();
    return x % n;
  }

 private:
  uint64_t state_;
};

// The index of the largest non-NaN value among v[0, count) (the first on ties); -1 when there is none.
int64_t argmax_ignoring_nan(const std::vector<double>& v, int64_t count) {
  int64_t best = -1;
  for (int64_t i = 0; i < count; ++i) {
    if (!std::isnan(v[i]) && (best < 0 || v[i] > v[best])) best = i;
  }
  return best;
}

// (query, key) pairs of one probe that the induction score reads: the query's token occurred
// earlier, first at j, and the key is j+1, the token that followed it then.
std::vector<std::pair<int64_t, int64_t>> induction_pairs(const int64_t* ids, int64_t length) {
  std::vector<std::pair<int64_t, int64_t>> pairs;
  std::unordered_map<int64_t, int64_t> first_seen;
  for (int64_t i = 0; i < length; ++i) {
    const auto [it, first] = first_seen.emplace(ids[i], i);
    if (!first && it->second + 1 < i) pairs.emplace_back(i, it->second + 1);
  }
  return pairs;
}

void require(bool ok, const std::string& what) {
  if (!ok) throw std::invalid_argument(what);
}

}  // namespace

std::vector<std::vector<int64_t>> repeated_random_sequences(int64_t count, int64_t span, int64_t vocab_lo,
                                                            int64_t vocab_hi, uint64_t seed) {
  require(count >= 0 && span >= 1 && vocab_hi > vocab_lo,
          "repeated_random_sequences: need count >= 0, span >= 1 and vocab_lo < vocab_hi");
  const int64_t range = vocab_hi - vocab_lo;
  SplitMix64 rng(seed);
  std::vector<std::vector<int64_t>> out;
  out.reserve(static_cast<size_t>(count));
  for (int64_t c = 0; c < count; ++c) {
    // Fisher-Yates over the virtual array [0, range) without materialising it (a GPT-2 range is
    // 50k tokens): `moved` holds only the slots a draw has overwritten. When the range runs out
    // the array starts afresh, so tokens repeat only as often as they must.
    std::unordered_map<int64_t, int64_t> moved;
    const auto slot = [&](int64_t k) {
      const auto it = moved.find(k);
      return it == moved.end() ? k : it->second;
    };
    int64_t left = 0;
    std::vector<int64_t> seq(static_cast<size_t>(2 * span));
    for (int64_t k = 0; k < span; ++k) {
      if (left == 0) {
        moved.clear();
        left = range;
      }
      const int64_t drawn = static_cast<int64_t>(rng.below(static_cast<uint64_t>(left)));
      seq[k] = vocab_lo + slot(drawn);
      moved[drawn] = slot(left - 1);
      --left;
    }
    std::copy_n(seq.begin(), span, seq.begin() + span);  // the repetition
    out.push_back(std::move(seq));
  }
  return out;
}

HeadScores induction_scores(const std::vector<float>& probs, int64_t P, int64_t L, int64_t H, int64_t T,
                            const std::vector<int64_t>& input_ids, const std::vector<int64_t>& lengths) {
  require(P >= 0 && L >= 0 && H >= 0 && T >= 0, "induction_scores: negative extent");
  require(static_cast<int64_t>(probs.size()) == P * L * H * T * T,
          "induction_scores: probs is not [P,L,H,T,T]");
  require(static_cast<int64_t>(input_ids.size()) == P * T, "induction_scores: input_ids is not [P,T]");
  require(static_cast<int64_t>(lengths.size()) == P, "induction_scores: lengths is not [P]");
  const int64_t heads = L * H;
  std::vector<double> previous_sum(heads, 0.0), induction_sum(heads, 0.0);
  int64_t previous_count = 0, induction_count = 0;  // queries scored, the same for every head
  for (int64_t p = 0; p < P; ++p) {
    const int64_t length = lengths[p];
    require(length >= 0 && length <= T,
            "induction_scores: lengths[" + std::to_string(p) + "] is outside 0..T");
    const auto pairs = induction_pairs(input_ids.data() + p * T, length);
    for (int64_t lh = 0; lh < heads; ++lh) {
      const float* map = probs.data() + (p * heads + lh) * T * T;  // [T,T]: layer lh / H, head lh % H
      for (int64_t i = 1; i < length; ++i) previous_sum[lh] += map[i * T + i - 1];
      for (const auto& [query, key] : pairs) induction_sum[lh] += map[query * T + key];
    }
    previous_count += std::max<int64_t>(length - 1, 0);
    induction_count += static_cast<int64_t>(pairs.size());
  }
  HeadScores s;
  s.L = L;
  s.H = H;
  const auto mean = [](double sum, int64_t count) {
    return count > 0 ? sum / static_cast<double>(count) : kNaN;
  };
  for (int64_t lh = 0; lh < heads; ++lh) {
    s.previous_token.push_back(mean(previous_sum[lh], previous_count));
    s.induction.push_back(mean(induction_sum[lh], induction_count));
  }
  return s;
}

double icl_score(const std::vector<double>& position_loss, int64_t P, int64_t T1, PositionRange early,
                 PositionRange late) {
  require(P >= 0 && T1 >= 0 && static_cast<int64_t>(position_loss.size()) == P * T1,
          "icl_score: position_loss is not [P,T1]");
  const auto mean_over = [&](PositionRange r) {
    double sum = 0;
    int64_t n = 0;
    for (int64_t p = 0; p < P; ++p) {
      for (int64_t t = std::max<int64_t>(r.begin, 0); t < std::min(r.end, T1); ++t) {
        const double loss = position_loss[p * T1 + t];
        if (std::isnan(loss)) continue;
        sum += loss;
        ++n;
      }
    }
    return n > 0 ? sum / static_cast<double>(n) : kNaN;
  };
  return mean_over(late) - mean_over(early);
}

bool InductionMechanism::shown() const {
  return formed_at >= 0 && previous_layer >= 0 &&
         scores.back().previous_token_at(previous_layer, previous_head) >= threshold;
}

InductionMechanism induction_over_training(const std::vector<int64_t>& steps,
                                           const std::vector<HeadScores>& scores,
                                           const std::vector<double>& loss, const std::vector<double>& icl,
                                           double threshold) {
  const size_t n = steps.size();
  require(scores.size() == n, "induction_over_training: one HeadScores per step");
  require(loss.empty() || loss.size() == n, "induction_over_training: one loss per step, or none");
  require(icl.empty() || icl.size() == n, "induction_over_training: one icl score per step, or none");
  InductionMechanism m;
  m.steps = steps;
  m.scores = scores;
  m.loss = loss.empty() ? std::vector<double>(n, kNaN) : loss;
  m.icl = icl.empty() ? std::vector<double>(n, kNaN) : icl;
  m.threshold = threshold;
  if (n == 0) return m;
  const int64_t L = scores.back().L, H = scores.back().H;
  for (const auto& s : scores) {
    require(s.L == L && s.H == H && static_cast<int64_t>(s.induction.size()) == L * H &&
                static_cast<int64_t>(s.previous_token.size()) == L * H,
            "induction_over_training: every step's scores must be [L*H] with the same L and H");
  }
  const HeadScores& last = scores.back();
  const int64_t best = argmax_ignoring_nan(last.induction, L * H);
  if (best < 0) return m;
  m.best_layer = best / H;
  m.best_head = best % H;
  // layer-major: the heads of the layers below best_layer are the first best_layer * H
  const int64_t previous = argmax_ignoring_nan(last.previous_token, m.best_layer * H);
  if (previous >= 0) {
    m.previous_layer = previous / H;
    m.previous_head = previous % H;
  }
  // the last run of steps at or above threshold (NaN compares false: below)
  size_t first = n;
  while (first > 0 && scores[first - 1].induction[best] >= threshold) --first;
  if (first < n) m.formed_at = steps[first];
  return m;
}

}  // namespace attnscope::analysis
