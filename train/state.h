// Training state saved beside the model and optimizer in every checkpoint, so a run resumes
// exactly: the epoch/step reached, the best metric so far, early-stopping counter, RNG state.
#pragma once

#include <cstdint>
#include <limits>
#include <string>

namespace attnscope::train {

struct TrainState {
  int64_t epoch = 0;        // last completed epoch (0 = none)
  int64_t step = 0;         // optimizer steps taken
  double best_value = std::numeric_limits<double>::quiet_NaN();  // NaN until first evaluation
  int64_t best_epoch = 0;
  int64_t bad_evals = 0;    // evaluations since the last improvement
  double elapsed_seconds = 0;  // training wall time before this process (for logs)
};

}  // namespace attnscope::train
