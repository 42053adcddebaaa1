// Thread settings (train/runtime.h). OpenBLAS is reached through dlsym so that another BLAS
// (or none) behind LibTorch is not a link error.
#include "train/runtime.h"

#include <ATen/Parallel.h>
#include <dlfcn.h>

#include <thread>

#include "core/core.h"

namespace attnscope::train {

int64_t configure_threads(const RunConfig& run) {
  const int64_t threads = run.threads > 0 ? run.threads
                                          : static_cast<int64_t>(std::max(1u, std::thread::hardware_concurrency()));
  at::set_num_threads(static_cast<int>(threads));
  const int64_t blas = run.blas_threads > 0 ? run.blas_threads : threads;
  using SetThreads = void (*)(int);
  if (auto* set = reinterpret_cast<SetThreads>(::dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))) {
    set(static_cast<int>(blas));
  } else {
    log::debug("[run] no OpenBLAS found; run.blas_threads has no effect");
  }
  return threads;
}

}  // namespace attnscope::train
