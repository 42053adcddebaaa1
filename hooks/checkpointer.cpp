// Checkpoint cadence (hooks/checkpointer.h); the file format is train/checkpoint.h's.
#include "hooks/checkpointer.h"

#include <cstdio>
#include <filesystem>

#include "train/train.h"

namespace attnscope::hooks {

void Checkpointer::on_epoch_end(const train::TrainContext& ctx, const train::EpochRecord& r) {
  const auto& tc = ctx.config.train;
  auto save = [&](const std::string& path) {
    models::save_checkpoint(path, ctx.task.module(), ctx.optimizer, ctx.state, ctx.config);
    if (ctx.checkpoint_written) ctx.checkpoint_written(path);
  };
  if (r.is_best) save(dir_ + "/" + RunDir::kBestCheckpoint);
  if (tc.keep_every > 0 && r.epoch % tc.keep_every == 0) {
    const std::string name = "/" + RunDir::kept_checkpoint(r.epoch);
    save(dir_ + name);
    if (!kept_logged_) {  // what keeping them costs, once
      kept_logged_ = true;
      std::error_code ec;
      const double mb = static_cast<double>(std::filesystem::file_size(dir_ + name, ec)) / 1048576.0;
      const int64_t count = ctx.config.train.epochs / tc.keep_every;
      char msg[200];
      std::snprintf(msg, sizeof msg, "[checkpoint] train.keep_every %lld: %.1f MB per kept checkpoint, ~%lld kept = %.0f MB",
                    static_cast<long long>(tc.keep_every), mb, static_cast<long long>(count), mb * static_cast<double>(count));
      if (!ec) log::info(msg);
    }
  }
  // last.pt goes last: once it names epoch k, every file of epoch k is complete.
  if (r.epoch % tc.checkpoint_every == 0 || r.is_last) save(last_path());
}

}  // namespace attnscope::hooks
