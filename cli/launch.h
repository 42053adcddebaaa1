// Starting a distributed run: `attnscope train ... --nproc-per-node N` starts and supervises N
// local ranks (this executable again, with torchrun's environment); a rank reads its place in
// the run from that environment, whoever started it (this launcher, torchrun, srun, ...).
#pragma once

#include "cli/train_command.h"
#include "train/distributed.h"

namespace attnscope::cli {

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
