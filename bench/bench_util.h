// Shared by the benchmark programs: the machine's sgemm throughput, the reference every speed
// figure is compared with, measured in the same process with the same thread settings.
#pragma once

#include <torch/torch.h>

#include <algorithm>
#include <chrono>

namespace attnscope::bench {

inline double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Best of 5 rounds of 4 products of n x n float matrices (LibTorch's BLAS), in GFLOP/s.
inline double sgemm_gflops(int64_t n = 1024) {
  auto a = torch::randn({n, n}), b = torch::randn({n, n}), c = torch::empty({n, n});
  torch::mm_out(c, a, b);
  double best = 0;
  for (int i = 0; i < 5; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    for (int r = 0; r < 4; ++r) torch::mm_out(c, a, b);
    best = std::max(best, 4 * 2.0 * n * n * n / seconds_since(t0) / 1e9);
  }
  return best;
}

}  // namespace attnscope::bench
