// Public header of attnscope::cli: the attnscope command line as a function (run(argv) -> exit
// code) and the rank launcher's environment, for tests and benchmarks that drive it in-process.
#pragma once

#include "cli/app.h"
#include "cli/launch.h"
