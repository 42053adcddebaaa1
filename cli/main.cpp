// attnscope executable: forwards to cli::run.
#include <malloc.h>

#include <csignal>
#include <string>
#include <vector>

#include "cli/app.h"

int main(int argc, char** argv) {
  // A file-size limit (ulimit -f) must fail a write with EFBIG, reported with the path like a full
  // disk, rather than kill the process with SIGXFSZ halfway through writing a file.
  std::signal(SIGXFSZ, SIG_IGN);
  // Training frees and reallocates the same large tensors (logits, gradients) every step. glibc
  // serves blocks over 32 MB with fresh mmaps, each page faulted in and zeroed again: measured on
  // the GPT-2-small step (bench/gpt2_step_bench), 7.8 s/step with 41 s of system time in 6 steps.
  // From the heap, never trimmed, they are reused: 5.2 s/step.
  mallopt(M_MMAP_MAX, 0);
  mallopt(M_TRIM_THRESHOLD, -1);
  return attnscope::cli::run(std::vector<std::string>(argv, argv + argc));
}
