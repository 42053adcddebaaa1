// Progress bar / log lines (hooks/progress.h).
#include "hooks/progress.h"

#include <unistd.h>

#include <cstdio>
#include <iomanip>
#include <sstream>

#include "core/core.h"

namespace attnscope::hooks {

Progress::Progress(const std::string& mode, double log_every_seconds) : every_(log_every_seconds) {
  const bool tty = ::isatty(STDERR_FILENO) != 0;
  bar_ = mode == "bar" || (mode == "auto" && tty);
  log_ = mode == "log" || (mode == "auto" && !tty);
}

void Progress::on_train_begin(const train::TrainContext& ctx) {
  start_ = last_line_ = std::chrono::steady_clock::now();
  first_epoch_ = ctx.state.epoch;
}

std::string Progress::line(const train::TrainContext& ctx, const train::EpochRecord& r) const {
  const int64_t total = ctx.config.train.epochs;
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const double done = static_cast<double>(r.epoch - first_epoch_);
  const double rate = secs > 0 ? done / secs : 0;
  const double eta = rate > 0 ? static_cast<double>(total - r.epoch) / rate : 0;
  std::ostringstream s;
  s << "epoch " << r.epoch << "/" << total << std::fixed << std::setprecision(4) << "  loss " << r.train_loss;
  if (!std::isnan(r.train_acc)) s << std::setprecision(1) << "  acc " << 100 * r.train_acc << "%";
  auto vl = r.val.find("val_loss");
  auto va = r.val.find("val_acc");
  if (vl != r.val.end()) s << std::setprecision(4) << "  val_loss " << vl->second;
  if (va != r.val.end()) s << std::setprecision(1) << "  val_acc " << 100 * va->second << "%";
  for (const char* k : {"val_rmse", "val_r2", "val_roc_auc"}) {
    auto it = r.val.find(k);
    if (it != r.val.end()) s << std::setprecision(3) << "  " << k << " " << it->second;
  }
  s << std::setprecision(1) << "  " << rate << " ep/s  ETA " << static_cast<int64_t>(eta) << "s";
  return s.str();
}

void Progress::on_epoch_end(const train::TrainContext& ctx, const train::EpochRecord& r) {
  const auto now = std::chrono::steady_clock::now();
  if (bar_) {
    const int width = 24;
    const int filled = static_cast<int>(width * r.epoch / std::max<int64_t>(1, ctx.config.train.epochs));
    std::string bar(filled, '=');
    bar.resize(width, ' ');
    std::fprintf(stderr, "\r[%s] %s\x1b[K", bar.c_str(), line(ctx, r).c_str());
    std::fflush(stderr);
  } else if (log_ && (r.is_last || std::chrono::duration<double>(now - last_line_).count() >= every_)) {
    log::info("[train] " + line(ctx, r));
    last_line_ = now;
  }
}

void Progress::on_train_end(const train::TrainContext& ctx, const train::EpochRecord& r) {
  if (bar_) std::fprintf(stderr, "\n");
}

}  // namespace attnscope::hooks
