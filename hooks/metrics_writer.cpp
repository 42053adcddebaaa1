// metrics.jsonl writer (hooks/metrics_writer.h).
#include "hooks/metrics_writer.h"

#include <nlohmann/json.hpp>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <sstream>

#include "core/core.h"
#include "train/train.h"

namespace attnscope::hooks {
namespace {
nlohmann::json number(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(); }
}  // namespace

MetricsWriter::MetricsWriter(const std::string& path) : path_(path) {
  file_ = std::fopen(path.c_str(), "a");
  if (file_ == nullptr) throw UsageError("cannot open '" + path + "' for writing: " + std::strerror(errno));
}

MetricsWriter::~MetricsWriter() {
  if (file_ != nullptr) std::fclose(file_);
}

void MetricsWriter::on_epoch_end(const train::TrainContext& ctx, const train::EpochRecord& r) {
  nlohmann::ordered_json j;
  j["epoch"] = r.epoch;
  j["step"] = r.step;
  j["train_loss"] = number(r.train_loss);
  if (!std::isnan(r.train_acc)) j["train_acc"] = number(r.train_acc);
  for (const auto& [k, v] : r.val) j[k] = number(v);
  j["lr"] = r.lr;
  j["seconds"] = r.seconds;
  for (const auto& [k, v] : ctx.task.data_counts()) j["data_" + k] = v;
  const std::string line = j.dump() + "\n";
  std::fwrite(line.data(), 1, line.size(), file_);
  std::fflush(file_);
}

void truncate_metrics(const std::string& path, int64_t last_epoch) {
  std::ifstream in(path);
  if (!in) return;
  std::string line, kept;
  while (std::getline(in, line)) {
    if (in.eof()) break;  // no trailing newline: torn write
    try {
      const auto j = nlohmann::json::parse(line);
      if (j.at("epoch").get<int64_t>() <= last_epoch) kept += line + "\n";
    } catch (const std::exception&) {
      break;
    }
  }
  write_file_atomic(path, kept);
}

}  // namespace attnscope::hooks
