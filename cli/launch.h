// Starting a distributed run: `attnscope train ... --nproc-per-node N` starts and supervises N
// local ranks (this executable again, with torchrun's environment); a rank reads its place in
// the run from that environment, whoever started it (this launcher, torchrun, srun, ...).
#pragma once

#include <sys/types.h>

#include <map>
#include <string>
#include <vector>

#include "cli/train_command.h"
#include "train/train.h"

namespace attnscope::cli {

// Starts `exe` as a child process with arguments `args` (argv[0] = exe), `env` added to its
// environment and stderr sent to `stderr_file` (unless empty); with `die_with_parent` it gets
// SIGTERM when this process dies. The child's pid.
pid_t spawn_process(const std::string& exe, const std::vector<std::string>& args,
                    const std::map<std::string, std::string>& env = {}, const std::string& stderr_file = "",
                    bool die_with_parent = false);

// True in a rank started by launch_ranks().
bool launched_rank();

// RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT (world 1 when
// WORLD_SIZE is unset); UsageError naming the variable when one is malformed or out of range.
train::DistEnv dist_env_from_environment();

// Validates the launch flags (UsageError naming the flag or address; nothing is started or
// written), starts the node's ranks, waits for them; when one fails, stops the others and
// reports which rank failed and how. Returns the exit code (0, or the failed rank's).
int launch_ranks(const TrainArgs& args);

}  // namespace attnscope::cli
