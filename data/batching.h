// Seeded example order for each epoch and its cut into batches.
#pragma once

#include <torch/torch.h>

#include <vector>

namespace attnscope::data {

// Permutation of 0..n-1 for `epoch`, a pure function of (seed, epoch): resuming needs no state.
torch::Tensor epoch_order(int64_t n, uint64_t seed, int64_t epoch);

// Index batches of `batch_size` (0 = one batch of everything); the last batch may be smaller.
std::vector<torch::Tensor> make_batches(const torch::Tensor& order, int64_t batch_size);

}  // namespace attnscope::data
