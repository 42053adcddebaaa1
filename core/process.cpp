// Process-wide settings (core/process.h).
#include "core/process.h"

#include <dlfcn.h>
#include <malloc.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>

namespace attnscope {

void configure_process(char** argv) {
  std::signal(SIGXFSZ, SIG_IGN);
  if (std::getenv("ATTNSCOPE_MALLOC_DEFAULT") == nullptr) {  // (set: glibc's own thresholds, for comparison)
    mallopt(M_MMAP_MAX, 0);
    mallopt(M_TRIM_THRESHOLD, -1);
  }
  if (std::getenv("OMP_WAIT_POLICY") == nullptr && std::getenv("GOMP_SPINCOUNT") == nullptr) {
    setenv("GOMP_SPINCOUNT", "10000", 1);
    execv("/proc/self/exe", argv);  // returns only on failure: then run with libgomp's default
  }
}

bool set_blas_threads(int n) {
  // looked up, not linked: libblas.so.3 is whichever BLAS Debian's alternatives chose
  using Fn = void (*)(int);
  auto* fn = reinterpret_cast<Fn>(::dlsym(RTLD_DEFAULT, "openblas_set_num_threads"));
  if (fn == nullptr) return false;
  fn(n);
  return true;
}

}  // namespace attnscope
