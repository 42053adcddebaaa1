// Process-wide compute settings from the run config: ATen intra-op threads and BLAS threads.
#pragma once

#include <cstdint>

#include "core/core.h"

namespace attnscope::train {

// Applies run.threads (0 = all cores) and run.blas_threads (0 = same); returns the thread count.
int64_t configure_threads(const RunConfig& run);

}  // namespace attnscope::train
