// What the two language-model tasks (masked-LM, causal-LM) share: a step's statistics from a
// batch's (mean loss over predicted tokens, their count, correct argmax predictions), and the
// validation metrics from their sums. Internal to train/.
#pragma once

#include <torch/torch.h>

#include <cmath>
#include <tuple>

#include "train/task.h"

namespace attnscope::train {

using LmLoss = std::tuple<torch::Tensor, int64_t, int64_t>;  // (mean loss, predicted tokens, correct)

// Backpropagates the loss (when any token was predicted) and reports it.
inline StepStats lm_step(const LmLoss& l) {
  const auto& [loss, count, correct] = l;
  if (count > 0) loss.backward();
  StepStats s;
  s.loss_sum = loss.item<double>() * static_cast<double>(count);
  s.count = count;
  s.correct = correct;
  return s;
}

// Sums over the validation batches -> val_loss (mean per predicted token), val_acc, val_ppl.
struct LmTotals {
  double loss_sum = 0;
  int64_t count = 0, correct = 0;
  void add(const LmLoss& l) {
    loss_sum += std::get<0>(l).item<double>() * static_cast<double>(std::get<1>(l));
    count += std::get<1>(l);
    correct += std::get<2>(l);
  }
  Metrics metrics() const {
    const double loss = count ? loss_sum / static_cast<double>(count) : std::nan("");
    return {{"val_loss", loss},
            {"val_acc", count ? static_cast<double>(correct) / static_cast<double>(count) : std::nan("")},
            {"val_ppl", std::exp(loss)}};
  }
};

}  // namespace attnscope::train
