// Min/max examples and split, built exactly as the published experiment's code builds them.
#include "data/minmax.h"

#include <cmath>

namespace attnscope::data {

std::string MinMaxVocab::token_text(int64_t id) const {
  if (id >= 0 && id < numbers) return std::to_string(id);
  if (id == max_token()) return "max";
  if (id == min_token()) return "min";
  if (id == eq_token()) return "=";
  return "<" + std::to_string(id) + ">";
}

Examples minmax_grid(const MinMaxVocab& vocab, bool max_op) {
  const int64_t n = vocab.numbers;
  auto a = torch::arange(n, torch::kLong).repeat_interleave(n);  // [N*N] a-major
  auto b = torch::arange(n, torch::kLong).repeat({n});
  auto op = torch::full_like(a, max_op ? vocab.max_token() : vocab.min_token());
  auto eq = torch::full_like(a, vocab.eq_token());
  Examples e;
  e.inputs = torch::stack({a, op, b, eq}, 1);
  e.targets = max_op ? torch::maximum(a, b) : torch::minimum(a, b);
  return e;
}

MinMaxSplit make_minmax_split(int64_t numbers, double train_fraction, torch::Generator& gen) {
  MinMaxSplit s;
  s.vocab.numbers = numbers;
  const Examples mx = minmax_grid(s.vocab, true), mn = minmax_grid(s.vocab, false);
  auto x = torch::cat({mx.inputs, mn.inputs});
  auto y = torch::cat({mx.targets, mn.targets});
  auto perm = torch::randperm(x.size(0), gen, torch::kLong);
  x = x.index_select(0, perm);
  y = y.index_select(0, perm);
  // floor with a tolerance so 1/3 written as 0.3333333 still gives 32768 // 3 = 10922
  const int64_t n_train = static_cast<int64_t>(std::floor(train_fraction * x.size(0) + 1e-6));
  s.train = {x.slice(0, 0, n_train).contiguous(), y.slice(0, 0, n_train).contiguous()};
  s.val = {x.slice(0, n_train).contiguous(), y.slice(0, n_train).contiguous()};
  return s;
}

std::string minmax_text(const MinMaxVocab& vocab, const torch::Tensor& row) {
  std::string s;
  for (int64_t t = 0; t < row.size(0); ++t) {
    s += (t ? " " : "") + vocab.token_text(row[t].item<int64_t>());
  }
  return s;
}

}  // namespace attnscope::data
