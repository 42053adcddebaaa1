// `attnscope train` (cli/train_command.h). The order matters for "bad input leaves nothing":
// everything is validated before the run directory is created or touched.
#include "cli/train_command.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <iomanip>
#include <sstream>

#include "cli/launch.h"
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

constexpr const char* kLockFile = ".attnscope.lock";

// An exclusive flock on RUN_DIR/.attnscope.lock, held while the RunLock lives (the kernel releases
// it when the process ends, however it ends); the holder's pid is written in the file. A
// directory another process (or another run in this one) holds is refused naming that pid.
class RunLock {
 public:
  RunLock() = default;
  explicit RunLock(int fd) : fd_(fd) {}
  RunLock(RunLock&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  RunLock& operator=(RunLock&& o) noexcept {
    release();
    fd_ = o.fd_;
    o.fd_ = -1;
    return *this;
  }
  ~RunLock() { release(); }
  void release() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

RunLock lock_run_dir(const fs::path& dir) {
  const std::string path = (dir / kLockFile).string();
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) throw UsageError("cannot create the lock file '" + path + "': " + std::strerror(errno));
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    char buf[32] = {};
    const ssize_t n = ::pread(fd, buf, sizeof(buf) - 1, 0);
    ::close(fd);
    const std::string pid = n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string("unknown");
    throw UsageError("run directory '" + dir.string() + "' is in use by another attnscope process (pid " + pid +
                     "); wait for it to end or stop it, then --resume");
  }
  const std::string pid = std::to_string(::getpid());
  if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, pid.data(), pid.size(), 0) != static_cast<ssize_t>(pid.size())) {
    ::close(fd);
    throw UsageError("cannot write the lock file '" + path + "': " + std::strerror(errno));
  }
  return RunLock(fd);
}

RunLock prepare_run_dir(const fs::path& dir, bool resume, bool force) {
  std::error_code ec;
  const bool exists = fs::exists(dir, ec);
  if (exists && !fs::is_directory(dir)) {
    throw UsageError("run directory '" + dir.string() + "' exists and is not a directory");
  }
  bool non_empty = false;  // anything besides a lock file left by an earlier run
  if (exists) {
    for (const auto& e : fs::directory_iterator(dir, ec)) non_empty = non_empty || e.path().filename() != kLockFile;
  }
  const bool locked = non_empty && (resume || force) && looks_like_run_dir(dir);
  RunLock lock;
  if (locked) lock = lock_run_dir(dir);  // refuse the directory of a live run before touching it
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
  if (!locked || !resume) lock = lock_run_dir(dir);  // a new or --force-d directory (its old lock file went with it)
  return lock;
}

std::string format_seconds(double s) {
  std::ostringstream o;
  o << s << " s";
  return o.str();
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
  // 0. --nproc-per-node: this process supervises the local ranks it starts (cli/launch.cpp)
  if (args.nproc_per_node >= 0 && !launched_rank()) return launch_ranks(args);
  const train::DistEnv env = dist_env_from_environment();

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

  // 1b. distributed: rendezvous and config check, still before anything is written
  std::unique_ptr<train::Dist> dist;
  if (env.world > 1) dist = std::make_unique<train::Dist>(env, config);
  const bool main_rank = !dist || dist->rank() == 0;

  // 2. the task and the probe set: a bad probe file is bad input too, found before writing
  const int64_t threads = train::configure_threads(config.run);
  auto task = train::make_task(config);
  const auto& attn = config.hooks.attention;
  train::ProbeSet probes;
  if (attn.enabled) probes = hooks::choose_probes(attn, *task);

  // 3.-4. rank 0: run directory, logging, resolved config, resume; the other ranks learn from it
  // whether to resume (or why the run was refused) and log to RUN_DIR/rank-K.log
  auto optimizer = train::make_optimizer(config.optim, task->module());
  train::TrainState start;
  RunLock run_lock;  // held until every writer below is done (declared first, released last)
  std::unique_ptr<hooks::AttentionRecorder> recorder;
  if (main_rank) {
    try {
      run_lock = prepare_run_dir(run_dir, args.resume, args.force);
      log::init((run_dir / "train.log").string(), /*console=*/true, config.run.log_level);
      log::info(std::string("[run] attnscope ") + kVersion + " | " + args.command_line);
      log::info("[run] run directory " + run_dir.string() + ", " + std::to_string(threads) + " threads, seed " +
                std::to_string(config.run.seed) +
                (dist ? ", rank 0 of " + std::to_string(dist->world()) + " (data-parallel, Gloo)" : std::string()));
      const std::string yaml = to_yaml(config);
      log::info("[config] resolved configuration:\n" + yaml);
      if (args.resume && fs::exists(last)) {
        const auto info = models::load_checkpoint(last.string(), task->module(), optimizer.get(), true);
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
      // A run with no checkpoint yet starts at epoch 1 whatever it holds: its config first (so that
      // a run stopped at its start, e.g. by a full disk, can be resumed), a fresh attention file.
      const bool continues = args.resume && fs::exists(last);
      if (!continues) {
        write_file_atomic((run_dir / "config.yaml").string(), yaml);
        std::error_code ec;
        fs::remove(run_dir / "attention.h5", ec);
      }
      if (attn.enabled) {
        recorder = std::make_unique<hooks::AttentionRecorder>(config, *task, probes, (run_dir / "attention.h5").string(),
                                                              continues, start.epoch);
      }
      if (args.resume && fs::exists(last)) {
        hooks::truncate_metrics((run_dir / "metrics.jsonl").string(), start.epoch);
        log::info("[run] resumed from " + last.string() + " at epoch " + std::to_string(start.epoch) + ", step " +
                  std::to_string(start.step));
      } else if (args.resume) {
        log::info("[run] --resume: no checkpoint in " + run_dir.string() + " yet; starting from epoch 1");
        hooks::truncate_metrics((run_dir / "metrics.jsonl").string(), 0);
      }
      write_file_atomic((run_dir / "config.yaml").string(), yaml);
      task->write_run_files(run_dir.string());
      log::info("[model] " + task->describe());
    } catch (const std::exception& e) {
      if (dist) dist->broadcast_string(std::string("error\n") + e.what());
      throw;
    }
    if (dist) dist->broadcast_string(start.epoch > 0 ? "resume" : "fresh");
  } else {
    const std::string status = dist->broadcast_string("");
    if (status.rfind("error\n", 0) == 0) throw UsageError("rank 0 stopped the run: " + status.substr(6));
    std::error_code ec;
    fs::create_directories(run_dir, ec);
    log::init((run_dir / ("rank-" + std::to_string(dist->rank()) + ".log")).string(), /*console=*/false, config.run.log_level);
    log::info(std::string("[run] attnscope ") + kVersion + " | rank " + std::to_string(dist->rank()) + " of " +
              std::to_string(dist->world()) + " | " + args.command_line);
    if (status == "resume") {
      if (!fs::exists(last)) {
        throw UsageError("--resume: rank " + std::to_string(dist->rank()) + " cannot read " + last.string() +
                         " (every rank reads the checkpoint: keep the run directory on a filesystem they share)");
      }
      start = models::load_checkpoint(last.string(), task->module(), optimizer.get(), true).state;
      log::info("[run] resumed from " + last.string() + " at epoch " + std::to_string(start.epoch));
    }
  }

  // 5. train; the recorder posts an epoch's writes before the checkpointer names it in last.pt
  //    (they finish in its thread; a resumed run records that epoch again if they were lost)
  std::unique_ptr<hooks::MetricsWriter> metrics;
  if (main_rank) metrics = std::make_unique<hooks::MetricsWriter>((run_dir / "metrics.jsonl").string());
  hooks::Progress progress(main_rank ? config.train.progress : "none", config.train.log_every_seconds);
  hooks::Checkpointer checkpointer((run_dir / "checkpoints").string());
  train::Trainer trainer(config, run_dir.string(), *task, *optimizer, start);
  trainer.set_dist(dist.get());
  if (metrics) trainer.add_observer(metrics.get());
  trainer.add_observer(&progress);
  if (recorder) trainer.add_observer(recorder.get());
  if (main_rank) trainer.add_observer(&checkpointer);
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
    } catch (const UsageError&) {
      throw;
    } catch (const std::exception& e) {
      if (!dist) throw;
      const std::string m = "rank " + std::to_string(dist->rank()) + ": a collective failed (another rank died, or " +
                            "waited longer than dist.timeout_s = " + format_seconds(config.dist.timeout_s) + "): " +
                            without_trace(e.what(), 400) + "; continue from the last checkpoint with --resume";
      log::error("[train] " + m);
      log::shutdown();
      throw TrainingError(m);
    }
  }
  if (!main_rank) {
    log::shutdown();
    return 0;
  }
  const auto& st = trainer.state();
  std::ostringstream best;
  best << "[train] best " << config.train.best_metric << " " << st.best_value << " at epoch "
       << st.best_epoch << "; " << std::fixed << std::setprecision(1) << st.elapsed_seconds
       << " s of training in total";
  log::info(best.str());
  // the recorder's last writes go on beside the task's end-of-run work unless that reads them
  if (recorder && task->finish_reads_attention()) recorder->finish();
  const auto recorded = recorder && task->finish_reads_attention()
                            ? hooks::recorded_history(RunDir{run_dir.string()}.attention())
                            : std::nullopt;
  task->finish(run_dir.string(), recorded ? &*recorded : nullptr);
  if (recorder) recorder->finish();
  log::info("[run] results: " + run_dir.string() + "/ (config.yaml, train.log, metrics.jsonl, " +
            (config.data.task == "minmax" ? "mechanism.json"
             : config.data.task == "mlm" ? "split.json, vocab.json, config.json"
                                         : "test_metrics.json, split.json") + ", checkpoints/" +
            (recorder ? ", attention.h5)" : ")"));
  log::shutdown();
  return 0;
}

}  // namespace attnscope::cli
