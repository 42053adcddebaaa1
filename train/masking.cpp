// RoBERTa's dynamic masking (train/masking.h).
#include "train/masking.h"

#include <algorithm>
#include <random>
#include <stdexcept>

namespace attnscope::train {

MaskSpec mask_spec_of(const data::Tokenizer& tok, double probability) {
  MaskSpec m;
  m.vocab_size = tok.vocab_size();
  m.probability = probability;
  m.mask_id = tok.mask_id();
  m.special = tok.special_ids();
  return m;
}

uint64_t mask_seed(uint64_t a, uint64_t b, uint64_t c) {
  uint64_t z = a * 0x9E3779B97F4A7C15ull ^ (b + 0x632BE59BD9B4E019ull) * 0xBF58476D1CE4E5B9ull ^ (c + 1) * 0x94D049BB133111EBull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

std::pair<torch::Tensor, torch::Tensor> mlm_mask(const torch::Tensor& ids, const MaskSpec& spec,
                                                 const std::vector<uint64_t>& seeds) {
  auto in = ids.to(torch::kLong).contiguous().clone();
  auto labels = torch::full_like(in, -100);
  const int64_t B = in.size(0), T = in.size(1);
  if (static_cast<int64_t>(seeds.size()) != B) throw std::invalid_argument("mlm_mask: one seed per row");
  std::vector<char> special(static_cast<size_t>(std::max<int64_t>(spec.vocab_size, 1)), 0);
  for (int64_t s : spec.special) {
    if (s >= 0 && s < spec.vocab_size) special[static_cast<size_t>(s)] = 1;
  }
  auto* x = in.data_ptr<int64_t>();
  auto* y = labels.data_ptr<int64_t>();
  std::uniform_real_distribution<double> u(0.0, 1.0);
  for (int64_t i = 0; i < B; ++i) {
    std::mt19937_64 rng(seeds[static_cast<size_t>(i)]);
    for (int64_t t = 0; t < T; ++t) {
      const int64_t id = x[i * T + t];
      if (id < 0 || id >= spec.vocab_size || special[static_cast<size_t>(id)]) continue;
      if (u(rng) >= spec.probability) continue;
      y[i * T + t] = id;
      const double r = u(rng);
      if (r < 0.8) {
        x[i * T + t] = spec.mask_id;
      } else if (r < 0.9) {
        int64_t v;
        do {
          v = static_cast<int64_t>(rng() % static_cast<uint64_t>(spec.vocab_size));
        } while (special[static_cast<size_t>(v)] && static_cast<int64_t>(spec.special.size()) < spec.vocab_size);
        x[i * T + t] = v;
      }
    }
  }
  return {in, labels};
}

}  // namespace attnscope::train
