// Epoch orders and batches of data/batching.h.
#include "data/batching.h"

namespace attnscope::data {

torch::Tensor epoch_order(int64_t n, uint64_t seed, int64_t epoch) {
  // splitmix64 of (seed, epoch) so neighbouring epochs get unrelated streams
  uint64_t z = seed * 0x9E3779B97F4A7C15ull + static_cast<uint64_t>(epoch) + 0x632BE59BD9B4E019ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  auto gen = at::detail::createCPUGenerator(z);
  return torch::randperm(n, gen, torch::kLong);
}

std::vector<torch::Tensor> make_batches(const torch::Tensor& order, int64_t batch_size) {
  const int64_t n = order.size(0);
  if (batch_size <= 0 || batch_size >= n) return {order};
  std::vector<torch::Tensor> out;
  for (int64_t i = 0; i < n; i += batch_size) out.push_back(order.slice(0, i, std::min(n, i + batch_size)));
  return out;
}

}  // namespace attnscope::data
