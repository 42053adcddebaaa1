// Public header of attnscope::analysis: numerical analyses of recorded attention that need neither
// LibTorch nor a file format (plain arrays in, plain numbers out), shared by train (the run's
// summaries) and viz (figures, report): the min/max mechanism, induction heads, PCA, evenly spread
// picks.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
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

// The recorded layers' attention over a probe set at each recorded epoch (what a recorder stored).
struct ProbeHistory {
  int64_t P = 0, L = 1, H = 0, T = 0;  // probes, recorded layers, heads, padded length
  std::vector<int64_t> input_ids;      // [P,T]
  std::vector<int64_t> lengths;        // [P] real lengths
  std::vector<int64_t> epochs;         // the recorded epochs
  std::function<std::vector<float>(size_t e)> probs;  // [P,L,H,T,T] attention probabilities at epochs[e]
};

// The min/max mechanism per operator over min/max probes "a op b =" at each recorded epoch:
// (epoch, [max, min]) with an operator left out where no probe has it; `max_token` is the id of
// "max" ("min" is the next id). The history holds one layer (L = 1; else nothing is returned).
std::vector<std::pair<int64_t, std::vector<MinMaxMechanism>>> minmax_over_training(const ProbeHistory& history,
                                                                                    int64_t max_token);

// ---- induction heads (Olsson et al. 2022, "In-context learning and induction heads"): a
// previous-token head in one layer lets a head in a later layer attend to the token after an
// earlier occurrence of the current token, and copy it.

// Probes for induction: `count` sequences of length 2 * span, each a random span r_0..r_{span-1}
// of tokens in [vocab_lo, vocab_hi) followed by its repetition. A span's tokens are distinct when
// the vocabulary range allows (span <= vocab_hi - vocab_lo), otherwise each token appears at most
// ceil(span / range) times. Deterministic in `seed` and the same on every platform (a splitmix64
// stream, no <random> distribution, whose output is implementation-defined), so a task's training
// data and its probes can be made from the same seeds. Throws std::invalid_argument for
// span < 1, count < 0 or an empty vocabulary range.
std::vector<std::vector<int64_t>> repeated_random_sequences(int64_t count, int64_t span, int64_t vocab_lo,
                                                            int64_t vocab_hi, uint64_t seed);

// Each head's previous-token and induction scores, [L*H] each, layer-major (layer l, head h at
// l * H + h); NaN where the probes have no query the score is defined on.
struct HeadScores {
  int64_t L = 0, H = 0;
  std::vector<double> previous_token, induction;
  double previous_token_at(int64_t layer, int64_t head) const { return previous_token[layer * H + head]; }
  double induction_at(int64_t layer, int64_t head) const { return induction[layer * H + head]; }
};

// The scores of every head over P probes from their attention probabilities probs [P,L,H,T,T]
// (one recorded epoch of `attn/probs`: T the padded length, rows are queries), input_ids [P,T] and
// lengths [P] (the real length of each probe; padding is never scored). Both are pooled means over
// the queries of all probes:
// - previous-token: attn(i, i-1) over the queries i >= 1;
// - induction: attn(i, j+1) over the queries i whose token occurred earlier, j < i its earliest
//   occurrence, with j+1 < i (a token repeated at once, j = i-1, would make the query its own
//   key). On repeated random sequences these are the second span's queries, whose j+1 is the
//   token that comes next.
// Throws std::invalid_argument when the array sizes do not match P, L, H, T or a length is outside 0..T.
HeadScores induction_scores(const std::vector<float>& probs, int64_t P, int64_t L, int64_t H, int64_t T,
                            const std::vector<int64_t>& input_ids, const std::vector<int64_t>& lengths);

// Token positions [begin, end) of a per-position table.
struct PositionRange {
  int64_t begin = 0, end = 0;
};

// The in-context-learning score (Olsson et al.): the mean next-token loss at `late` positions minus
// the mean at `early` positions, from position_loss [P,T1] (position t: the loss of predicting
// token t+1 from tokens 0..t; NaN = not scored), pooled over probes. Negative when the model
// predicts later tokens better, as an induction head makes it do on repeated text. Olsson et al.
// compare the 500th token with the 50th; short sequences pass their own ranges (for repeated
// random sequences of span R: early inside the first span, late inside the second). Positions
// outside 0..T1-1 are ignored; NaN when either range holds no scored position.
double icl_score(const std::vector<double>& position_loss, int64_t P, int64_t T1, PositionRange early,
                 PositionRange late);

// The induction mechanism over training: the head that ends as the best induction head, the
// previous-token head below it that it composes with, and when the induction head formed.
struct InductionMechanism {
  std::vector<int64_t> steps;      // the recorded steps (or epochs)
  std::vector<HeadScores> scores;  // per step
  std::vector<double> loss, icl;   // per step (NaN where unknown)
  double threshold = 0.4;          // a score at or above it counts as the behaviour being present
  // the head with the highest final induction score
  int64_t best_layer = -1, best_head = -1;
  // the head with the highest final previous-token score in a layer below best_layer (-1 when
  // best_layer is 0)
  int64_t previous_layer = -1, previous_head = -1;
  // the first step from which the best head's induction score stays at or above threshold to the
  // last step; -1 when the last step is below it
  int64_t formed_at = -1;
  // Formed, and the previous-token head it needs is also at or above threshold: a layer-0 head that
  // barely attends to the previous token cannot be the first half of the circuit.
  bool shown() const;
};

// The mechanism from per-step head scores (all with the same L and H) at `steps` (increasing);
// `loss` and `icl` per step, or empty when unknown (then NaN). NaN scores count as below threshold
// and never as the best. Throws std::invalid_argument when the sizes disagree.
InductionMechanism induction_over_training(const std::vector<int64_t>& steps,
                                           const std::vector<HeadScores>& scores,
                                           const std::vector<double>& loss, const std::vector<double>& icl,
                                           double threshold = 0.4);

// ---- projections and picks

// The first `components` principal coordinates of the n rows of x [n,d] (power iteration on the
// centred Gram matrix; sign: each component's largest-magnitude coordinate positive).
std::vector<std::vector<double>> pca(const std::vector<float>& x, int64_t n, int64_t d, int64_t components);

// The same for many rows (n in the thousands): power iteration on the covariance through X
// itself (O(n d) a step, no n x n matrix), until the direction changes by < 1e-9.
std::vector<std::vector<double>> pca_rows(const std::vector<float>& x, int64_t n, int64_t d, int64_t components);

// k-means (Lloyd's algorithm, k-means++ seeding from a fixed seed: deterministic) of the n rows
// of x [n,d]: each row's cluster 0..k-1, numbered by size (0 = the largest), and the centres [k][d].
struct Clusters {
  std::vector<int64_t> label;
  std::vector<std::vector<double>> centre;
};
Clusters kmeans(const std::vector<float>& x, int64_t n, int64_t d, int64_t k, uint64_t seed = 7, int iterations = 100);

// At most n indices of [0, count) spread evenly, first and last included.
std::vector<int64_t> spread(int64_t count, int64_t n);

// ---- comparing runs

// The assignment of n rows to n columns of minimal total cost (the Hungarian algorithm, O(n^3)):
// result[i] = the column of row i. `cost` is [n,n] row-major; NaN costs are treated as +inf-like
// (a large finite cost).
std::vector<int64_t> min_cost_assignment(const std::vector<double>& cost, int64_t n);

// Jensen-Shannon divergence in bits ([0,1]) between two distributions over n entries (0 log 0 = 0).
double js_bits(const float* a, const float* b, int64_t n);

}  // namespace attnscope::analysis
