// attnscope executable: forwards to cli::run.
#include <csignal>
#include <string>
#include <vector>

#include "cli/app.h"

int main(int argc, char** argv) {
  // A file-size limit (ulimit -f) must fail a write with EFBIG, reported with the path like a full
  // disk, rather than kill the process with SIGXFSZ halfway through writing a file.
  std::signal(SIGXFSZ, SIG_IGN);
  return attnscope::cli::run(std::vector<std::string>(argv, argv + argc));
}
