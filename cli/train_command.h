// `attnscope train`: resolve the config, prepare the run directory, train, summarise.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace attnscope::cli {

struct TrainArgs {
  std::string config_path;
  std::vector<std::string> sets;
  std::string out;
  bool resume = false;
  bool force = false;
  std::string command_line;
  // distributed launch (cli/launch.h); nproc_per_node < 0: not given
  int64_t nproc_per_node = -1;
  int64_t nnodes = 1, node_rank = 0;
  std::string master_addr = "127.0.0.1";
  int64_t master_port = 29500;
  std::vector<std::string> argv;  // the whole command line, for the ranks a launcher starts
  std::string required_task;  // pretrain: "mlm"
};

int train_command(const TrainArgs& args);

}  // namespace attnscope::cli
