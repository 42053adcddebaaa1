// Masked-LM inputs: RoBERTa's dynamic masking, reproducible per molecule and epoch.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <utility>
#include <vector>

#include "data/data.h"

namespace attnscope::train {

// RoBERTa's masking (Liu et al. 2019, as transformers' DataCollatorForLanguageModeling): each token
// that is not special is chosen with `probability`; of the chosen, 80 % become <mask>, 10 % a
// random non-special token, 10 % stay. Row i draws from std::mt19937_64(seeds[i]) alone, so a
// molecule's masks do not depend on its batch. Returns (inputs, labels) for ids [B,T]; labels
// are -100 where nothing is predicted.
struct MaskSpec {
  int64_t mask_id = 4;
  int64_t vocab_size = 0;
  std::vector<int64_t> special;  // never chosen, never drawn as the random token (incl. padding)
  double probability = 0.15;
};
std::pair<torch::Tensor, torch::Tensor> mlm_mask(const torch::Tensor& ids, const MaskSpec& spec,
                                                 const std::vector<uint64_t>& seeds);

// The masking of a tokenizer's vocabulary: its specials are never chosen nor drawn.
MaskSpec mask_spec_of(const data::Tokenizer& tok, double probability);

// A well-spread seed from (run seed, epoch, row): splitmix64's finaliser.
uint64_t mask_seed(uint64_t seed, uint64_t epoch, uint64_t row);
constexpr uint64_t kValidationMasks = ~0ull;  // the "epoch" of the fixed validation masks

}  // namespace attnscope::train
