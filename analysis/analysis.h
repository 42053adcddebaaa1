// Public header of attnscope::analysis: numerical analyses of recorded attention that need neither
// LibTorch nor a file format (plain arrays in, plain numbers out), shared by train (the run's
// summaries) and viz (figures, report): the min/max mechanism, PCA, evenly spread picks.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace attnscope::analysis {

// ---- the min/max mechanism (one layer, two heads: one head sinks on the operator token, the other
// picks the answer among a and b)

struct MinMaxMechanism {
  std::string op;                              // "max" or "min"
  std::vector<std::vector<double>> mean_attn;  // [head][position]: mean attention from "=" over all examples
  int64_t sink_head = 0;                       // head with most attention from "=" on the op
  double sink_mass = 0;                        // that head's mean attention on the op token
  int64_t picker_head = 0;                     // the other head that best picks the answer
  double picks_answer = 0;  // share of a != b pairs where picker's stronger key of a, b is op(a, b)
  double accuracy = 0;      // set by a caller that has the model: over all N^2 pairs of this operator
  // [head]: mean attention from "=" over the a != b examples to {the operator, the larger operand,
  // the smaller operand} (NaN without such examples)
  std::vector<std::array<double, 3>> to_op_larger_smaller;
  bool shown() const { return sink_mass >= 0.9 && picks_answer >= 0.99; }
};

// The mechanism of operator `op` from B examples "a op b =": operands a[i], b[i] and the attention
// from "=" (the last query), eq_rows [B,H,T] (T >= 3: a, op, b, ...). `mean` [H,T]: the mean of
// eq_rows over the examples when the caller has it from a more accurate (pairwise) sum than the
// plain running sum used otherwise, e.g. LibTorch's over the 16k-example grid.
MinMaxMechanism minmax_mechanism(const std::string& op, const std::vector<int64_t>& a, const std::vector<int64_t>& b,
                                 const std::vector<double>& eq_rows, int64_t H, int64_t T,
                                 const std::vector<double>* mean = nullptr);

// One layer's attention over a probe set at each recorded epoch (what a recorder stored).
struct ProbeHistory {
  int64_t P = 0, H = 0, T = 0;        // probes, heads, padded length
  std::vector<int64_t> input_ids;     // [P,T]
  std::vector<int64_t> epochs;        // the recorded epochs
  std::function<std::vector<float>(size_t e)> probs;  // [P,H,T,T] attention probabilities at epochs[e]
};

// The min/max mechanism per operator over min/max probes "a op b =" at each recorded epoch:
// (epoch, [max, min]) with an operator left out where no probe has it; `max_token` is the id of
// "max" ("min" is the next id).
std::vector<std::pair<int64_t, std::vector<MinMaxMechanism>>> minmax_over_training(const ProbeHistory& history,
                                                                                    int64_t max_token);

// ---- projections and picks

// The first `components` principal coordinates of the n rows of x [n,d] (power iteration on the
// centred Gram matrix; sign: each component's largest-magnitude coordinate positive).
std::vector<std::vector<double>> pca(const std::vector<float>& x, int64_t n, int64_t d, int64_t components);

// At most n indices of [0, count) spread evenly, first and last included.
std::vector<int64_t> spread(int64_t count, int64_t n);

}  // namespace attnscope::analysis
