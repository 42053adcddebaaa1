// metrics.jsonl: one JSON object per epoch, flushed line by line so a killed run keeps every
// completed epoch. Fields: epoch, step, train_loss, train_acc, the task's val_* metrics (when
// evaluated), lr, seconds. Non-finite numbers are written as null.
#pragma once

#include <cstdio>
#include <string>

#include "train/train.h"

namespace attnscope::hooks {

class MetricsWriter : public train::Observer {
 public:
  explicit MetricsWriter(const std::string& path);  // appends
  ~MetricsWriter() override;
  void on_epoch_end(const train::TrainContext&, const train::EpochRecord&) override;

 private:
  std::string path_;
  std::FILE* file_ = nullptr;
};

// Keeps the lines of epochs <= `last_epoch` (and drops a torn last line): resuming from a
// checkpoint of epoch k makes metrics.jsonl end at k before the run goes on.
void truncate_metrics(const std::string& path, int64_t last_epoch);

}  // namespace attnscope::hooks
