// Progress display: a redrawn bar on a terminal, plain log lines every few seconds otherwise.
#pragma once

#include <chrono>
#include <string>

#include "train/train.h"

namespace attnscope::hooks {

class Progress : public train::Observer {
 public:
  // mode: auto | bar | log | none
  Progress(const std::string& mode, double log_every_seconds);
  void on_train_begin(const train::TrainContext&) override;
  void on_epoch_end(const train::TrainContext&, const train::EpochRecord&) override;
  void on_train_end(const train::TrainContext&, const train::EpochRecord&) override;

 private:
  std::string line(const train::TrainContext&, const train::EpochRecord&) const;
  bool bar_ = false, log_ = false;
  double every_;
  int64_t first_epoch_ = 0;
  std::chrono::steady_clock::time_point start_, last_line_;
  std::string last_val_;
};

}  // namespace attnscope::hooks
