// The analysis library on plain arrays: the min/max mechanism, induction heads, PCA, spread picks.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <map>
#include <stdexcept>

#include "analysis/analysis.h"

namespace attnscope::analysis {
namespace {

// Two heads over "a op b =": head 0 puts all of "="'s attention on the operator (the sink), head 1
// on the larger operand (max) with a little on the rest.
std::vector<double> eq_rows(const std::vector<int64_t>& a, const std::vector<int64_t>& b) {
  std::vector<double> rows;
  for (size_t i = 0; i < a.size(); ++i) {
    rows.insert(rows.end(), {0.0, 1.0, 0.0, 0.0});
    const bool a_larger = a[i] >= b[i];
    rows.insert(rows.end(), {a_larger ? 0.9 : 0.05, 0.0, a_larger ? 0.05 : 0.9, 0.05});
  }
  return rows;
}

TEST(MinMaxMechanism, FindsTheSinkAndThePicker) {
  const std::vector<int64_t> a = {1, 5, 3, 7}, b = {4, 2, 3, 0};
  const auto m = minmax_mechanism("max", a, b, eq_rows(a, b), 2, 4);
  EXPECT_EQ(m.sink_head, 0);
  EXPECT_DOUBLE_EQ(m.sink_mass, 1.0);
  EXPECT_EQ(m.picker_head, 1);
  EXPECT_DOUBLE_EQ(m.picks_answer, 1.0);  // over the 3 pairs with a != b
  EXPECT_TRUE(m.shown());
  EXPECT_DOUBLE_EQ(m.to_op_larger_smaller[1][1], 0.9);
  EXPECT_DOUBLE_EQ(m.to_op_larger_smaller[1][2], 0.05);
  const auto min = minmax_mechanism("min", a, b, eq_rows(a, b), 2, 4);
  EXPECT_DOUBLE_EQ(min.picks_answer, 0.0) << "the head picks the larger: never min(a, b)";
  EXPECT_FALSE(min.shown());
  // a caller's own mean (a pairwise sum) is taken as given
  const std::vector<double> mean = {0.25, 0.25, 0.25, 0.25, 0.1, 0.2, 0.3, 0.4};
  EXPECT_DOUBLE_EQ(minmax_mechanism("max", a, b, eq_rows(a, b), 2, 4, &mean).mean_attn[1][3], 0.4);
  // no a != b pair: no shares (NaN), no crash
  const auto same = minmax_mechanism("max", {2}, {2}, eq_rows({2}, {2}), 2, 4);
  EXPECT_TRUE(std::isnan(same.to_op_larger_smaller[0][0]));
}

TEST(MinMaxMechanism, OverTrainingSelectsTheProbesOfEachOperator) {
  ProbeHistory h;
  h.P = 3, h.H = 2, h.T = 4;
  h.input_ids = {1, 10, 4, 12, /**/ 5, 11, 2, 12, /**/ 7, 10, 0, 12};  // 10 numbers: max = 10, min = 11
  h.epochs = {0, 5};
  h.probs = [&](size_t) {
    std::vector<float> maps(static_cast<size_t>(h.P * h.H * h.T * h.T), 0.f);
    for (int64_t p = 0; p < h.P; ++p) {
      for (int64_t hd = 0; hd < h.H; ++hd) maps[static_cast<size_t>(((p * h.H + hd) * h.T + 3) * h.T + 1)] = 1.f;
    }
    return maps;
  };
  const auto series = minmax_over_training(h, 10);
  ASSERT_EQ(series.size(), 2u);
  EXPECT_EQ(series[1].first, 5);
  ASSERT_EQ(series[0].second.size(), 2u);
  EXPECT_EQ(series[0].second[0].op, "max");
  EXPECT_EQ(series[0].second[1].op, "min");
  EXPECT_DOUBLE_EQ(series[0].second[0].sink_mass, 1.0);
  h.input_ids = {1, 10, 4, 12, 5, 10, 2, 12, 7, 10, 0, 12};  // no min probe: that operator is left out
  EXPECT_EQ(minmax_over_training(h, 10)[0].second.size(), 1u);
}

// ---- induction heads

// Attention maps [P,L,H,T,T] where each head puts all of a real query's attention on one key,
// key_of(p, layer, head, query); padding rows and columns stay 0, as a recorder stores them.
std::vector<float> one_hot_maps(int64_t L, int64_t H, int64_t T, const std::vector<int64_t>& lengths,
                                const std::function<int64_t(int64_t, int64_t, int64_t, int64_t)>& key_of) {
  const int64_t P = static_cast<int64_t>(lengths.size());
  std::vector<float> maps(static_cast<size_t>(P * L * H * T * T), 0.f);
  for (int64_t p = 0; p < P; ++p) {
    for (int64_t l = 0; l < L; ++l) {
      for (int64_t h = 0; h < H; ++h) {
        for (int64_t i = 0; i < lengths[p]; ++i) {
          maps[static_cast<size_t>((((p * L + l) * H + h) * T + i) * T + key_of(p, l, h, i))] = 1.f;
        }
      }
    }
  }
  return maps;
}

// Concatenated [P,T] ids of equal-length sequences.
std::vector<int64_t> flat(const std::vector<std::vector<int64_t>>& seqs) {
  std::vector<int64_t> out;
  for (const auto& s : seqs) out.insert(out.end(), s.begin(), s.end());
  return out;
}

// On repeated random sequences of span R: query i >= R of the second span copies the token at
// i - R + 1, the one after the first occurrence of its own token.
int64_t induction_key(int64_t span, int64_t i) { return i >= span ? i - span + 1 : i; }

TEST(InductionScores, ExactPreviousTokenAndInductionHeadsScoreOne) {
  const int64_t span = 5, T = 2 * span, P = 3;
  const auto seqs = repeated_random_sequences(P, span, 10, 60, 1);
  const std::vector<int64_t> lengths(P, T);
  // layer 0: head 0 previous-token, head 1 on itself; layer 1: head 0 induction, head 1 on the
  // second token (from query 1 on)
  const auto maps = one_hot_maps(2, 2, T, lengths, [&](int64_t, int64_t l, int64_t h, int64_t i) -> int64_t {
    if (l == 0) return h == 0 ? std::max<int64_t>(i - 1, 0) : i;
    return h == 0 ? induction_key(span, i) : std::min<int64_t>(i, 1);
  });
  const auto s = induction_scores(maps, P, 2, 2, T, flat(seqs), lengths);
  ASSERT_EQ(s.previous_token.size(), 4u);
  EXPECT_DOUBLE_EQ(s.previous_token_at(0, 0), 1.0);
  EXPECT_DOUBLE_EQ(s.induction_at(0, 0), 0.0) << "the previous token is never the copied one (span > 1)";
  EXPECT_DOUBLE_EQ(s.induction_at(1, 0), 1.0);
  EXPECT_DOUBLE_EQ(s.previous_token_at(1, 0), 0.0);
  EXPECT_DOUBLE_EQ(s.previous_token_at(0, 1), 0.0);
  EXPECT_DOUBLE_EQ(s.induction_at(0, 1), 0.0);
  // the second token is the previous token of query 2 only: 1 of the 9 queries i >= 1 of each probe
  EXPECT_DOUBLE_EQ(s.previous_token_at(1, 1), 1.0 / 9.0);
  // ... and the induction key of query 5 only (r_0 repeated): 1 of the 5 second-span queries
  EXPECT_DOUBLE_EQ(s.induction_at(1, 1), 1.0 / 5.0);
}

TEST(InductionScores, UniformCausalAttentionHasKnownScores) {
  const int64_t T = 8;
  const std::vector<int64_t> ids = {3, 4, 5, 6, 3, 4, 5, 6}, lengths = {T};
  std::vector<float> maps(static_cast<size_t>(T * T), 0.f);  // P = L = H = 1
  for (int64_t i = 0; i < T; ++i) {
    for (int64_t k = 0; k <= i; ++k) maps[static_cast<size_t>(i * T + k)] = 1.f / static_cast<float>(i + 1);
  }
  const auto s = induction_scores(maps, 1, 1, 1, T, ids, lengths);
  // query i gives each of its i + 1 keys 1/(i+1): previous-token over i = 1..7, induction over 4..7
  EXPECT_NEAR(s.previous_token[0], (1. / 2 + 1. / 3 + 1. / 4 + 1. / 5 + 1. / 6 + 1. / 7 + 1. / 8) / 7, 1e-7);
  EXPECT_NEAR(s.induction[0], (1. / 5 + 1. / 6 + 1. / 7 + 1. / 8) / 4, 1e-7);
}

TEST(InductionScores, PaddingIsNeverScored) {
  const int64_t span = 4, T = 2 * span;
  // probe 1 is 3 tokens then 0-padding: the padded 0s repeat, and would make induction queries
  const std::vector<int64_t> ids = {1, 2, 3, 4, 1, 2, 3, 4, /**/ 7, 8, 9, 0, 0, 0, 0, 0};
  const std::vector<int64_t> lengths = {T, 3};
  // head 0 previous-token, head 1 induction, exactly, on the real queries; padded rows all 0;
  // head 2 previous-token on probe 0 only, on itself on probe 1
  const auto maps = one_hot_maps(1, 3, T, lengths, [&](int64_t p, int64_t, int64_t h, int64_t i) -> int64_t {
    if (h == 2) return p == 0 ? std::max<int64_t>(i - 1, 0) : i;
    return h == 0 ? std::max<int64_t>(i - 1, 0) : induction_key(span, i);
  });
  const auto s = induction_scores(maps, 2, 1, 3, T, ids, lengths);
  EXPECT_DOUBLE_EQ(s.previous_token[0], 1.0) << "counting padded rows (all 0) would lower it";
  EXPECT_DOUBLE_EQ(s.induction[1], 1.0) << "the padded 0s' repeats would be scored 0";
  EXPECT_DOUBLE_EQ(s.previous_token[2], 7.0 / 9.0)
      << "pooled over the 7 + 2 queries, not a mean of probe means";
  // a probe cut to its first span has no repeated token: only the full probe's 4 queries count
  const auto cut = induction_scores(maps, 2, 1, 3, T, ids, {span, 3});
  EXPECT_TRUE(std::isnan(cut.induction[1]));
  EXPECT_DOUBLE_EQ(cut.previous_token[0], 1.0);
}

TEST(InductionScores, TheEarliestOccurrenceAndNaNWithoutScorableQueries) {
  // "a b a c a": query 2 and query 4 both copy b (key 1), the token after the first a; a head
  // that copies after the latest occurrence (key 3 at query 4) gets half
  const std::vector<int64_t> ids = {1, 2, 1, 3, 1};
  const std::vector<int64_t> lengths = {5};
  const auto maps = one_hot_maps(1, 2, 5, lengths, [](int64_t, int64_t, int64_t h, int64_t i) -> int64_t {
    if (i == 2) return 1;
    if (i == 4) return h == 0 ? 1 : 3;
    return i;
  });
  const auto s = induction_scores(maps, 1, 1, 2, 5, ids, lengths);
  EXPECT_DOUBLE_EQ(s.induction[0], 1.0);
  EXPECT_DOUBLE_EQ(s.induction[1], 0.5);

  // distinct tokens: no induction query; a token repeated at once (j + 1 = i) is no query either;
  // one-token probes have no previous-token query
  const auto uniform = one_hot_maps(1, 1, 3, {3, 2}, [](int64_t, int64_t, int64_t, int64_t i) { return i; });
  const auto none = induction_scores(uniform, 2, 1, 1, 3, {4, 5, 6, /**/ 7, 7, 0}, {3, 2});
  EXPECT_TRUE(std::isnan(none.induction[0]));
  EXPECT_DOUBLE_EQ(none.previous_token[0], 0.0);
  const auto single =
      induction_scores(one_hot_maps(2, 1, 1, {1}, [](auto...) { return int64_t{0}; }), 1, 2, 1, 1, {9}, {1});
  ASSERT_EQ(single.previous_token.size(), 2u);
  EXPECT_TRUE(std::isnan(single.previous_token[0]) && std::isnan(single.previous_token[1]));
  EXPECT_TRUE(std::isnan(single.induction[1]));

  EXPECT_THROW(induction_scores(uniform, 2, 1, 1, 3, {4, 5, 6}, {3, 2}), std::invalid_argument);
  EXPECT_THROW(induction_scores(uniform, 2, 1, 1, 3, {4, 5, 6, 7, 7, 0}, {3, 4}), std::invalid_argument);
  EXPECT_THROW(induction_scores(uniform, 2, 2, 1, 3, {4, 5, 6, 7, 7, 0}, {3, 2}), std::invalid_argument);
}

TEST(IclScore, LateMinusEarlyMeanLossSkippingNaN) {
  // [P=2, T1=4]
  const std::vector<double> loss = {4, 3, 1, 0.5, /**/ 5, std::nan(""), 2, 1};
  // early {4, 3, 5}: 4; late {1, 0.5, 2, 1}: 1.125
  EXPECT_DOUBLE_EQ(icl_score(loss, 2, 4, {0, 2}, {2, 4}), 1.125 - 4.0);
  EXPECT_DOUBLE_EQ(icl_score(loss, 2, 4, {-3, 2}, {2, 100}), 1.125 - 4.0)
      << "ranges are clipped to the table";
  EXPECT_DOUBLE_EQ(icl_score(loss, 2, 4, {1, 2}, {3, 4}), 0.75 - 3.0);
  EXPECT_TRUE(std::isnan(icl_score(loss, 2, 4, {4, 6}, {2, 4}))) << "an empty early range";
  EXPECT_TRUE(std::isnan(icl_score({std::nan(""), 1}, 1, 2, {0, 1}, {1, 2}))) << "early holds only NaN";
  EXPECT_THROW(icl_score(loss, 2, 3, {0, 1}, {1, 2}), std::invalid_argument);
}

// L = 2, H = 2 scores: head (1, 0) has induction score `induction`, head (0, 1) previous-token
// score `previous`; the others stay low, but head (1, 1) is the best previous-token head overall.
HeadScores scores_with(double induction, double previous) {
  HeadScores s;
  s.L = 2;
  s.H = 2;
  s.induction = {0.05, 0.1, induction, 0.2};
  s.previous_token = {0.1, previous, 0.3, 0.99};
  return s;
}

TEST(InductionOverTraining, FormsWhenTheScoreCrossesAndStays) {
  const std::vector<int64_t> steps = {0, 10, 20, 30, 40, 50};
  // crosses at 10, dips at 20, crosses again at 30 and stays (30: exactly the threshold)
  const std::vector<double> series = {0.1, 0.5, 0.3, 0.4, 0.6, 0.7};
  std::vector<HeadScores> scores;
  for (double x : series) scores.push_back(scores_with(x, 0.9));
  const std::vector<double> loss = {5, 4, 3.5, 3, 2, 1.5};
  const auto m = induction_over_training(steps, scores, loss, {}, 0.4);
  EXPECT_EQ(m.best_layer, 1);
  EXPECT_EQ(m.best_head, 0);
  EXPECT_EQ(m.previous_layer, 0) << "head (1, 1) scores higher but is not below the induction head";
  EXPECT_EQ(m.previous_head, 1);
  EXPECT_EQ(m.formed_at, 30);
  EXPECT_TRUE(m.shown());
  EXPECT_EQ(m.loss, loss);
  ASSERT_EQ(m.icl.size(), steps.size());
  EXPECT_TRUE(std::all_of(m.icl.begin(), m.icl.end(), [](double x) { return std::isnan(x); }));

  auto dips = scores;  // below at the last step: not formed
  dips.back() = scores_with(0.35, 0.9);
  EXPECT_EQ(induction_over_training(steps, dips, {}, {}, 0.4).formed_at, -1);
  EXPECT_FALSE(induction_over_training(steps, dips, {}, {}, 0.4).shown());
  auto nan_step = scores;  // an unknown score breaks the run like a low one
  nan_step[4] = scores_with(std::nan(""), 0.9);
  EXPECT_EQ(induction_over_training(steps, nan_step, {}, {}, 0.4).formed_at, 50);
  EXPECT_EQ(induction_over_training(steps, scores, {}, {}, 0.55).formed_at, 40);

  auto weak_previous = scores;  // formed, but no previous-token head to compose with
  weak_previous.back() = scores_with(0.7, 0.2);
  const auto weak = induction_over_training(steps, weak_previous, {}, {}, 0.4);
  EXPECT_EQ(weak.formed_at, 30);
  EXPECT_EQ(weak.previous_layer, 0);
  EXPECT_FALSE(weak.shown());
}

TEST(InductionOverTraining, BestHeadInTheFirstLayerOrUnknown) {
  HeadScores first_layer = scores_with(0.1, 0.9);
  first_layer.induction[1] = 0.8;  // head (0, 1): nothing below it
  const auto m = induction_over_training({0}, {first_layer}, {}, {}, 0.4);
  EXPECT_EQ(m.best_layer, 0);
  EXPECT_EQ(m.best_head, 1);
  EXPECT_EQ(m.previous_layer, -1);
  EXPECT_EQ(m.formed_at, 0);
  EXPECT_FALSE(m.shown());

  HeadScores unknown = scores_with(std::nan(""), 0.9);
  unknown.induction.assign(4, std::nan(""));
  const auto none = induction_over_training({0}, {unknown}, {}, {}, 0.4);
  EXPECT_EQ(none.best_layer, -1);
  EXPECT_EQ(none.formed_at, -1);
  EXPECT_FALSE(none.shown());
  EXPECT_FALSE(induction_over_training({}, {}, {}, {}, 0.4).shown());

  EXPECT_THROW(induction_over_training({0, 1}, {unknown}, {}, {}, 0.4), std::invalid_argument);
  EXPECT_THROW(induction_over_training({0}, {unknown}, {1.0, 2.0}, {}, 0.4), std::invalid_argument);
  HeadScores other_shape = unknown;
  other_shape.H = 1;
  EXPECT_THROW(induction_over_training({0, 1}, {unknown, other_shape}, {}, {}, 0.4), std::invalid_argument);
}

TEST(RepeatedRandomSequences, DeterministicRepeatedAndInRange) {
  const auto a = repeated_random_sequences(20, 6, 100, 110, 7);
  EXPECT_EQ(a, repeated_random_sequences(20, 6, 100, 110, 7));
  EXPECT_NE(a, repeated_random_sequences(20, 6, 100, 110, 8));
  // pinned: the stream is part of the data format (training data and probes made elsewhere from
  // the same seed must agree); checked against an independent Python splitmix64
  EXPECT_EQ(a[0], (std::vector<int64_t>{107, 106, 102, 103, 104, 100, 107, 106, 102, 103, 104, 100}));
  EXPECT_EQ(a[1], (std::vector<int64_t>{108, 103, 101, 100, 107, 105, 108, 103, 101, 100, 107, 105}));
  ASSERT_EQ(a.size(), 20u);
  for (const auto& seq : a) {
    ASSERT_EQ(seq.size(), 12u);
    EXPECT_TRUE(std::equal(seq.begin(), seq.begin() + 6, seq.begin() + 6));
    EXPECT_TRUE(std::all_of(seq.begin(), seq.end(), [](int64_t t) { return t >= 100 && t < 110; }));
    std::vector<int64_t> first(seq.begin(), seq.begin() + 6);
    std::sort(first.begin(), first.end());
    EXPECT_EQ(std::adjacent_find(first.begin(), first.end()), first.end()) << "distinct within a span";
  }
  // a span longer than the range: every token of the range, none more than ceil(7 / 3) times
  for (const auto& seq : repeated_random_sequences(10, 7, 0, 3, 3)) {
    std::map<int64_t, int> counts;
    for (int64_t k = 0; k < 7; ++k) ++counts[seq[k]];
    EXPECT_EQ(counts.size(), 3u);
    for (const auto& [token, n] : counts) EXPECT_LE(n, 3) << token;
  }
  EXPECT_TRUE(repeated_random_sequences(0, 3, 0, 5, 1).empty());
  EXPECT_THROW(repeated_random_sequences(1, 0, 0, 5, 1), std::invalid_argument);
  EXPECT_THROW(repeated_random_sequences(1, 3, 5, 5, 1), std::invalid_argument);
}

TEST(Pca, RecoversTheLineAndOrthogonalComponents) {
  // points on a line through (1, 1) in 3-d, plus a small wobble off it, uncorrelated with the
  // position along it (sum w = 0, sum w t = 0)
  std::vector<float> x;
  const int64_t n = 6;
  const float wobble[] = {0.1f, -0.1f, 0.f, 0.f, -0.1f, 0.1f};
  for (int64_t i = 0; i < n; ++i) {
    const float t = static_cast<float>(i) - 2.5f;
    x.insert(x.end(), {1 + t, 1 + t, wobble[i]});
  }
  const auto c = pca(x, n, 3, 2);
  ASSERT_EQ(c.size(), 6u);
  for (int64_t i = 0; i < n; ++i) {
    const double t = static_cast<double>(i) - 2.5;
    EXPECT_NEAR(std::fabs(c[i][0]), std::fabs(t) * std::sqrt(2.0), 1e-4);  // distance along the line
    EXPECT_NEAR(std::fabs(c[i][1]), std::fabs(wobble[i]), 1e-4);           // the wobble
  }
  size_t big = 0;
  for (size_t i = 1; i < c.size(); ++i) {
    if (std::fabs(c[i][0]) > std::fabs(c[big][0])) big = i;
  }
  EXPECT_GT(c[big][0], 0) << "sign: the largest-magnitude coordinate is positive";
}

TEST(Spread, FirstAndLastIncluded) {
  EXPECT_EQ(spread(3, 5), (std::vector<int64_t>{0, 1, 2}));
  EXPECT_EQ(spread(11, 3), (std::vector<int64_t>{0, 5, 10}));
  EXPECT_EQ(spread(0, 4), std::vector<int64_t>{});
}

// The Hungarian assignment equals the brute-force optimum on random matrices (every permutation
// of up to 7 columns), finds the swap of two heads, and keeps the identity of a zero diagonal.
TEST(MinCostAssignment, EqualsBruteForceOptimum) {
  uint64_t state = 12345;
  auto uniform = [&] {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<double>(state >> 11) / 9007199254740992.0;
  };
  for (int64_t n = 1; n <= 7; ++n) {
    for (int trial = 0; trial < 20; ++trial) {
      std::vector<double> cost(n * n);
      for (auto& c : cost) c = trial % 3 == 0 ? std::floor(uniform() * 4) : uniform();  // ties too
      const auto got = min_cost_assignment(cost, n);
      std::vector<int64_t> perm(n);
      for (int64_t i = 0; i < n; ++i) perm[i] = i;
      double best = 1e300;
      do {
        double c = 0;
        for (int64_t i = 0; i < n; ++i) c += cost[i * n + perm[i]];
        best = std::min(best, c);
      } while (std::next_permutation(perm.begin(), perm.end()));
      std::vector<int64_t> sorted(got);
      std::sort(sorted.begin(), sorted.end());
      for (int64_t i = 0; i < n; ++i) ASSERT_EQ(sorted[i], i) << "a permutation";
      double c = 0;
      for (int64_t i = 0; i < n; ++i) c += cost[i * n + got[i]];
      EXPECT_NEAR(c, best, 1e-9) << "n " << n << " trial " << trial;
    }
  }
  EXPECT_EQ(min_cost_assignment({0.9, 0.1, 0.2, 0.8}, 2), (std::vector<int64_t>{1, 0}));
  EXPECT_EQ(min_cost_assignment({0, 0.5, 0.5, 0.5, 0, 0.5, 0.5, 0.5, 0}, 3), (std::vector<int64_t>{0, 1, 2}));
  const double nan = std::nan("");
  EXPECT_EQ(min_cost_assignment({nan, 0.3, 0.2, nan}, 2), (std::vector<int64_t>{1, 0}));
  EXPECT_THROW(min_cost_assignment({1, 2, 3}, 2), std::invalid_argument);
}

TEST(JsBits, ZeroForEqualOneForDisjointSymmetric) {
  const float a[3] = {0.5f, 0.5f, 0}, b[3] = {0, 0, 1}, c[3] = {0.25f, 0.25f, 0.5f};
  EXPECT_DOUBLE_EQ(js_bits(a, a, 3), 0);
  EXPECT_NEAR(js_bits(a, b, 3), 1.0, 1e-12);
  EXPECT_NEAR(js_bits(a, c, 3), js_bits(c, a, 3), 1e-12);
  EXPECT_GT(js_bits(a, c, 3), 0);
  EXPECT_LT(js_bits(a, c, 3), 1);
}

}  // namespace
}  // namespace attnscope::analysis
