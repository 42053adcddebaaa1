// The min/max task's data: vocabulary, the full example grid, the seeded train/validation split.
// Tokens: numbers 0..N-1, then N = max operator, N+1 = min operator, N+2 = "=".
#pragma once

#include <torch/torch.h>

#include <string>

namespace attnscope::data {

constexpr int64_t kMinMaxSeqLen = 4;  // [a, op, b, =]

struct MinMaxVocab {
  int64_t numbers = 128;
  int64_t max_token() const { return numbers; }
  int64_t min_token() const { return numbers + 1; }
  int64_t eq_token() const { return numbers + 2; }
  int64_t size() const { return numbers + 3; }
  std::string token_text(int64_t id) const;  // "17", "max", "min", "="
};

struct Examples {
  torch::Tensor inputs;   // [N, 4] int64 token ids
  torch::Tensor targets;  // [N] int64 answer token
  int64_t size() const { return inputs.size(0); }
};

// All (a, b) pairs for one operator, a-major: row a*N+b is [a, op, b, =] -> op(a, b).
Examples minmax_grid(const MinMaxVocab& vocab, bool max_op);

struct MinMaxSplit {
  MinMaxVocab vocab;
  Examples train;  // first floor(fraction * 2N^2) of the shuffled max+min grid
  Examples val;    // the rest (the original experiment's "test" set)
};

// max grid then min grid, shuffled by randperm(2N^2, gen) exactly as the reference does.
MinMaxSplit make_minmax_split(int64_t numbers, double train_fraction, torch::Generator& gen);

// "a op b =" for an example row.
std::string minmax_text(const MinMaxVocab& vocab, const torch::Tensor& row);

}  // namespace attnscope::data
