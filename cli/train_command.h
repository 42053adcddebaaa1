// `attnscope train`: resolve the config, prepare the run directory, train, summarise.
#pragma once

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
  std::string required_task;  // pretrain: "mlm"
};

int train_command(const TrainArgs& args);

}  // namespace attnscope::cli
