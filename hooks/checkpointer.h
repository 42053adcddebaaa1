// Writes checkpoints/last.pt every train.checkpoint_every epochs and at the end, best.pt when
// the best metric improves, and epoch-NNNNNN.pt every train.keep_every epochs.
#pragma once

#include <string>

#include "train/train.h"

namespace attnscope::hooks {

class Checkpointer : public train::Observer {
 public:
  explicit Checkpointer(std::string dir) : dir_(std::move(dir)) {}
  void on_epoch_end(const train::TrainContext&, const train::EpochRecord&) override;
  std::string last_path() const { return dir_ + "/last.pt"; }

 private:
  std::string dir_;
  bool kept_logged_ = false;
};

}  // namespace attnscope::hooks
