// `attnscope train` (cli/train_command.h). The order matters for "bad input leaves nothing":
// everything is validated before the run directory is created or touched.
#include "cli/train_command.h"

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <iomanip>
#include <sstream>

#include "core/core.h"
#include "hooks/hooks.h"
#include "train/train.h"

namespace fs = std::filesystem;

namespace attnscope::cli {
namespace {

bool looks_like_run_dir(const fs::path& dir) {
  return fs::exists(dir / "config.yaml") || fs::exists(dir / "metrics.jsonl") ||
         fs::exists(dir / "checkpoints");
}

void prepare_run_dir(const fs::path& dir, bool resume, bool force) {
  std::error_code ec;
  const bool exists = fs::exists(dir, ec);
  if (exists && !fs::is_directory(dir)) {
    throw UsageError("run directory '" + dir.string() + "' exists and is not a directory");
  }
  const bool non_empty = exists && !fs::is_empty(dir, ec);
  if (non_empty && !resume) {
    if (!force) {
      throw UsageError("run directory '" + dir.string() + "' already exists; use --resume to "
                       "continue it, --force to delete it and start over, or --out for another one");
    }
    if (!looks_like_run_dir(dir)) {
      throw UsageError("--force: '" + dir.string() + "' does not look like an attnscope run "
                       "directory (no config.yaml, metrics.jsonl or checkpoints/); not deleting it");
    }
    fs::remove_all(dir, ec);
    if (ec) throw UsageError("--force: cannot delete '" + dir.string() + "': " + ec.message());
  }
  fs::create_directories(dir / "checkpoints", ec);
  if (ec || ::access(dir.c_str(), W_OK) != 0) {
    throw UsageError("cannot create or write the run directory '" + dir.string() + "': " +
                     (ec ? ec.message() : std::string("permission denied")));
  }
}

std::string fmt_metrics(const train::EpochRecord& r) {
  std::ostringstream s;
  s << std::fixed << std::setprecision(4) << "epoch " << r.epoch << ": train_loss " << r.train_loss;
  if (!std::isnan(r.train_acc)) s << ", train_acc " << r.train_acc;
  for (const auto& [k, v] : r.val) s << ", " << k << " " << v;
  return s.str();
}

}  // namespace

int train_command(const TrainArgs& args) {
  // 1. config (nothing is written before it is valid)
  std::string config_path = args.config_path;
  if (config_path.empty()) config_path = (fs::path(args.out) / "config.yaml").string();
  const ResolvedConfig resolved = resolve_config(config_path, args.sets);
  const Config& config = resolved.config;
  if (!args.required_task.empty() && config.data.task != args.required_task) {
    throw UsageError("pretrain: data.task is '" + config.data.task + "' in " + config_path + "; pretraining is data.task: " +
                     args.required_task + " (or use attnscope train)");
  }
  const fs::path run_dir = args.out.empty() ? fs::path(config.run.out_dir) / config.run.name : fs::path(args.out);
  const fs::path last = run_dir / "checkpoints" / "last.pt";

  // 2. the task and the probe set: a bad probe file is bad input too, found before writing
  const int64_t threads = train::configure_threads(config.run);
  auto task = train::make_task(config);
  const auto& attn = config.hooks.attention;
  train::ProbeSet probes;
  if (attn.enabled) probes = hooks::choose_probes(attn, *task);

  // 3. run directory, logging, resolved config
  prepare_run_dir(run_dir, args.resume, args.force);
  log::init((run_dir / "train.log").string(), /*console=*/true, config.run.log_level);
  log::info(std::string("[run] attnscope ") + kVersion + " | " + args.command_line);
  log::info("[run] run directory " + run_dir.string() + ", " + std::to_string(threads) + " threads, seed " +
            std::to_string(config.run.seed));
  const std::string yaml = to_yaml(config);
  log::info("[config] resolved configuration:\n" + yaml);

  // 4. optimizer, resume
  auto optimizer = train::make_optimizer(config.optim, task->module());
  train::TrainState start;
  if (args.resume && fs::exists(last)) {
    const auto info = train::load_checkpoint(last.string(), task->module(), optimizer.get(), true);
    const Config old = config_from_yaml(info.config_yaml, last.string());
    const auto diffs = config_differences(old, config, /*resume_only=*/true);
    if (!diffs.empty()) {
      std::string m = "cannot resume '" + run_dir.string() + "': the config differs from its checkpoint in keys that matter:";
      for (const auto& d : diffs) m += "\n  - " + d;
      throw UsageError(m + "\nstart a new run (--out) or restore those values");
    }
    start = info.state;
  }
  // The recorder opens (or, resuming, checks and reopens) attention.h5 before anything of the
  // run is cut back, so a foreign or unreadable file stops the run with the others untouched.
  std::unique_ptr<hooks::AttentionRecorder> recorder;
  if (attn.enabled) {
    recorder = std::make_unique<hooks::AttentionRecorder>(config, *task, probes, (run_dir / "attention.h5").string(),
                                                          args.resume, start.epoch);
  }
  if (args.resume && fs::exists(last)) {
    hooks::truncate_metrics((run_dir / "metrics.jsonl").string(), start.epoch);
    log::info("[run] resumed from " + last.string() + " at epoch " + std::to_string(start.epoch) +
              ", step " + std::to_string(start.step));
  } else if (args.resume) {
    log::info("[run] --resume: no checkpoint in " + run_dir.string() + " yet; starting from epoch 1");
    hooks::truncate_metrics((run_dir / "metrics.jsonl").string(), 0);
  }
  write_file_atomic((run_dir / "config.yaml").string(), yaml);
  task->write_run_files(run_dir.string());
  log::info("[model] " + task->describe());

  // 5. train; the recorder writes an epoch before the checkpointer may name it in last.pt
  hooks::MetricsWriter metrics((run_dir / "metrics.jsonl").string());
  hooks::Progress progress(config.train.progress, config.train.log_every_seconds);
  hooks::Checkpointer checkpointer((run_dir / "checkpoints").string());
  train::Trainer trainer(config, run_dir.string(), *task, *optimizer, start);
  trainer.add_observer(&metrics);
  trainer.add_observer(&progress);
  if (recorder) trainer.add_observer(recorder.get());
  trainer.add_observer(&checkpointer);
  if (start.epoch >= config.train.epochs) {
    log::info("[run] already complete (" + std::to_string(start.epoch) + " epochs)");
  } else {
    try {
      const auto rec = trainer.run();
      log::info("[train] done: " + fmt_metrics(rec) + (rec.early_stop ? " (early stop)" : ""));
    } catch (const TrainingError& e) {
      log::error("[train] " + std::string(e.what()));
      log::shutdown();
      throw;
    }
  }
  const auto& st = trainer.state();
  std::ostringstream best;
  best << "[train] best " << config.train.best_metric << " " << st.best_value << " at epoch "
       << st.best_epoch << "; " << std::fixed << std::setprecision(1) << st.elapsed_seconds
       << " s of training in total";
  log::info(best.str());
  task->finish(run_dir.string());
  log::info("[run] results: " + run_dir.string() + "/ (config.yaml, train.log, metrics.jsonl, " +
            (config.data.task == "minmax" ? "mechanism.json"
             : config.data.task == "mlm" ? "split.json, vocab.json, config.json"
                                         : "test_metrics.json, split.json") + ", checkpoints/" +
            (recorder ? ", attention.h5)" : ")"));
  log::shutdown();
  return 0;
}

}  // namespace attnscope::cli
