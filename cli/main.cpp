// attnscope executable: forwards to cli::run.
#include <string>
#include <vector>

#include "cli/app.h"
#include "core/process.h"

int main(int argc, char** argv) {
  attnscope::configure_process(argv);  // signals, allocator, OpenMP waiting (core/process.h)
  return attnscope::cli::run(std::vector<std::string>(argv, argv + argc));
}
