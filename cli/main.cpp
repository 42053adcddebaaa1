// attnscope executable: forwards to cli::run.
#include <string>
#include <vector>

#include "cli/app.h"

int main(int argc, char** argv) {
  return attnscope::cli::run(std::vector<std::string>(argv, argv + argc));
}
