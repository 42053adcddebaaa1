// The analysis library on plain arrays: the min/max mechanism, PCA, spread picks.
#include <gtest/gtest.h>

#include <cmath>

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

}  // namespace
}  // namespace attnscope::analysis
