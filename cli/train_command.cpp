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
#include <iostream>
#include <sstream>

#include "cli/launch.h"
#include "core/core.h"
#include "hooks/hooks.h"
#include "train/train.h"

namespace fs = std::filesystem;

namespace attnscope::cli {
namespace {


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
  const std::string path = RunDir{dir.string()}.lock();
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
    for (const auto& e : fs::directory_iterator(dir, ec)) non_empty = non_empty || e.path().filename() != RunDir::kLock;
  }
  const bool locked = non_empty && (resume || force) && RunDir::is_run(dir.string());
  RunLock lock;
  if (locked) lock = lock_run_dir(dir);  // refuse the directory of a live run before touching it
  if (non_empty && !resume) {
    if (!force) {
      throw UsageError("run directory '" + dir.string() + "' already exists; use --resume to "
                       "continue it, --force to delete it and start over, or --out for another one");
    }
    if (!RunDir::is_run(dir.string())) {
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

namespace {

// What the steps of a run share once the config is resolved.
struct Run {
  Run(const TrainArgs& a, const Config& c, RunDir d) : args(a), config(c), dir(std::move(d)) {}
  const TrainArgs& args;
  const Config& config;
  RunDir dir;
  std::string last;  // checkpoints/last.pt
  std::unique_ptr<train::Dist> dist;
  bool main_rank = true;
  int64_t threads = 0;
  std::unique_ptr<train::Task> task;
  train::ProbeSet probes;
  std::unique_ptr<torch::optim::Optimizer> optimizer;
  train::TrainState start;
  RunLock lock;  // held until every writer is done (released last: the Run outlives them)
  std::unique_ptr<hooks::AttentionRecorder> recorder;
  std::string finished;  // a finished run resumed: what to tell the user (nothing is done)
};

// A finished run resumed: why there is nothing to do ("" when training is left). Its
// checkpoint reached train.epochs, or early stopping already stopped it (train.patience
// evaluations without improvement); raising those (resume-safe keys) continues it.
std::string finished_message(const Run& r) {
  const auto& tc = r.config.train;
  const auto& s = r.start;
  const std::string head = "run '" + r.dir.dir + "' already finished";
  const std::string tail = "; nothing was changed (attention.h5, metrics.jsonl, checkpoints and run files are as they were)";
  if (s.epoch >= tc.epochs) {
    return head + " its " + std::to_string(s.epoch) + (s.epoch == 1 ? " epoch" : " epochs") + " (train.epochs is " +
           std::to_string(tc.epochs) + ")" + tail + ". To train it further: --resume --set train.epochs=N, N > " +
           std::to_string(s.epoch);
  }
  if (tc.patience > 0 && s.bad_evals >= tc.patience) {
    return head + ": early stopping ended it at epoch " + std::to_string(s.epoch) + " (" + std::to_string(s.bad_evals) +
           " evaluations without improvement, train.patience is " + std::to_string(tc.patience) + ")" + tail +
           ". To train it further: --resume --set train.patience=N, N > " + std::to_string(s.bad_evals);
  }
  return "";
}

// Rank 0 (or a single process): a checkpoint to resume from, refused when the config differs in
// keys that matter.
void resume_from_checkpoint(Run& r) {
  const auto info = models::load_checkpoint(r.last, r.task->module(), r.optimizer.get(), true);
  const Config old = config_from_yaml(info.config_yaml, r.last);
  const auto diffs = config_differences(old, r.config, /*resume_only=*/true);
  if (!diffs.empty()) {
    throw UsageError(problem_list("cannot resume '" + r.dir.dir + "': the config differs from its checkpoint in keys that matter:",
                                  diffs) +
                     "\nstart a new run (--out) or restore those values");
  }
  r.start = info.state;
}

// 3.-4. rank 0: run directory, logging, resolved config, resume, recorder, run files.
void prepare_main_rank(Run& r) {
  const auto& args = r.args;
  r.lock = prepare_run_dir(r.dir.dir, args.resume, args.force);
  // A finished run resumed is left as it is: nothing is logged, cut back, recorded or rewritten
  // (its attention file's end-of-run analyses included: reopening it for recording drops them).
  const bool continues = args.resume && fs::exists(r.last);
  if (continues) {
    resume_from_checkpoint(r);
    r.finished = finished_message(r);
    if (!r.finished.empty()) return;
  }
  log::init(r.dir.train_log(), /*console=*/true, r.config.run.log_level);
  log::info(std::string("[run] attnscope ") + kVersion + " | " + args.command_line);
  log::info("[run] run directory " + r.dir.dir + ", " + std::to_string(r.threads) + " threads, seed " +
            std::to_string(r.config.run.seed) +
            (r.dist ? ", rank 0 of " + std::to_string(r.dist->world()) + " (data-parallel, Gloo)" : std::string()));
  const std::string yaml = to_yaml(r.config);
  log::info("[config] resolved configuration:\n" + yaml);
  // The recorder opens (or, resuming, checks and reopens) attention.h5 before anything of the
  // run is cut back, so a foreign or unreadable file stops the run with the others untouched.
  // A run with no checkpoint yet starts at epoch 1 whatever it holds: its config first (so that
  // a run stopped at its start, e.g. by a full disk, can be resumed), a fresh attention file.
  if (!continues) {
    write_file_atomic(r.dir.config_yaml(), yaml);
    std::error_code ec;
    fs::remove(r.dir.attention(), ec);
  }
  if (r.config.hooks.attention.enabled) {
    r.recorder = std::make_unique<hooks::AttentionRecorder>(r.config, *r.task, r.probes, r.dir.attention(), continues,
                                                            r.start.epoch);
  }
  if (continues) {
    hooks::truncate_metrics(r.dir.metrics(), r.start.epoch);
    log::info("[run] resumed from " + r.last + " at epoch " + std::to_string(r.start.epoch) + ", step " +
              std::to_string(r.start.step));
  } else if (args.resume) {
    log::info("[run] --resume: no checkpoint in " + r.dir.dir + " yet; starting from epoch 1");
    hooks::truncate_metrics(r.dir.metrics(), 0);
  }
  write_file_atomic(r.dir.config_yaml(), yaml);
  r.task->write_run_files(r.dir.dir);
  log::info("[model] " + r.task->describe());
}

// The other ranks learn from rank 0 whether to resume (or why the run was refused) and log to
// RUN_DIR/rank-K.log.
void prepare_other_rank(Run& r) {
  auto& dist = *r.dist;
  const std::string status = dist.broadcast_string("");
  if (status.rfind("error\n", 0) == 0) throw UsageError("rank 0 stopped the run: " + status.substr(6));
  if (status == "finished") {  // (rank 0 says so)
    r.finished = status;
    return;
  }
  std::error_code ec;
  fs::create_directories(r.dir.dir, ec);
  log::init(r.dir.file("rank-" + std::to_string(dist.rank()) + ".log"), /*console=*/false, r.config.run.log_level);
  log::info(std::string("[run] attnscope ") + kVersion + " | rank " + std::to_string(dist.rank()) + " of " +
            std::to_string(dist.world()) + " | " + r.args.command_line);
  if (status != "resume") return;
  if (!fs::exists(r.last)) {
    throw UsageError("--resume: rank " + std::to_string(dist.rank()) + " cannot read " + r.last +
                     " (every rank reads the checkpoint: keep the run directory on a filesystem they share)");
  }
  r.start = models::load_checkpoint(r.last, r.task->module(), r.optimizer.get(), true).state;
  log::info("[run] resumed from " + r.last + " at epoch " + std::to_string(r.start.epoch));
}

// 5. train; the recorder posts an epoch's writes before the checkpointer names it in last.pt
//    (they finish in its thread; a resumed run records that epoch again if they were lost)
train::TrainState train_run(Run& r) {
  const auto& config = r.config;
  std::unique_ptr<hooks::MetricsWriter> metrics;
  if (r.main_rank) metrics = std::make_unique<hooks::MetricsWriter>(r.dir.metrics());
  hooks::Progress progress(r.main_rank ? config.train.progress : "none", config.train.log_every_seconds);
  hooks::Checkpointer checkpointer(r.dir.checkpoints());
  train::Trainer trainer(config, r.dir.dir, *r.task, *r.optimizer, r.start);
  trainer.set_dist(r.dist.get());
  if (metrics) trainer.add_observer(metrics.get());
  trainer.add_observer(&progress);
  if (r.recorder) trainer.add_observer(r.recorder.get());
  if (r.main_rank) trainer.add_observer(&checkpointer);
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
    if (!r.dist) throw;
    const std::string m = "rank " + std::to_string(r.dist->rank()) + ": a collective failed (another rank died, or " +
                          "waited longer than dist.timeout_s = " + format_seconds(config.dist.timeout_s) + "): " +
                          without_trace(e.what(), 400) + "; continue from the last checkpoint with --resume";
    log::error("[train] " + m);
    log::shutdown();
    throw TrainingError(m);
  }
  return trainer.state();
}

// Rank 0 after training: the task's end-of-run work beside the recorder's last writes (after
// them when it reads them), then the account.
void finish_run(Run& r, const train::TrainState& st) {
  std::ostringstream best;
  best << "[train] best " << r.config.train.best_metric << " " << st.best_value << " at epoch " << st.best_epoch << "; "
       << std::fixed << std::setprecision(1) << st.elapsed_seconds << " s of training in total";
  log::info(best.str());
  const bool reads = r.recorder && r.task->finish_reads_attention();
  if (reads) r.recorder->finish();
  const auto recorded = reads ? hooks::recorded_history(r.dir.attention()) : std::nullopt;
  r.task->finish(r.dir.dir, recorded ? &*recorded : nullptr);
  if (r.recorder) r.recorder->finish();
  const TaskKind kind = task_named(r.config.data.task, "data.task").kind;
  const std::string files = kind == TaskKind::MinMax     ? "mechanism.json"
                            : kind == TaskKind::MaskedLM ? "split.json, vocab.json, config.json"
                                                         : "test_metrics.json, split.json";
  log::info("[run] results: " + r.dir.dir + "/ (config.yaml, train.log, metrics.jsonl, " + files + ", checkpoints/" +
            (r.recorder ? ", attention.h5)" : ")"));
}

}  // namespace

int train_command(const TrainArgs& args) {
  // 0. --nproc-per-node: this process supervises the local ranks it starts (cli/launch.cpp)
  if (args.nproc_per_node >= 0 && !launched_rank()) return launch_ranks(args);
  const train::DistEnv env = dist_env_from_environment();

  // 1. config (nothing is written before it is valid)
  std::string config_path = args.config_path;
  if (config_path.empty()) config_path = RunDir{args.out}.config_yaml();
  const ResolvedConfig resolved = resolve_config(config_path, args.sets);
  const Config& config = resolved.config;
  if (!args.required_task.empty() && config.data.task != args.required_task) {
    throw UsageError("pretrain: data.task is '" + config.data.task + "' in " + config_path + "; pretraining is data.task: " +
                     args.required_task + " (or use attnscope train)");
  }
  Run r(args, config, RunDir{args.out.empty() ? (fs::path(config.run.out_dir) / config.run.name).string() : args.out});
  r.last = r.dir.last_checkpoint();

  // 1b. distributed: rendezvous and config check, still before anything is written
  if (env.world > 1) r.dist = std::make_unique<train::Dist>(env, config);
  r.main_rank = !r.dist || r.dist->rank() == 0;

  // 2. the task and the probe set: a bad probe file is bad input too, found before writing
  r.threads = train::configure_threads(config.run);
  r.task = train::make_task(config);
  if (config.hooks.attention.enabled) r.probes = hooks::choose_probes(config.hooks.attention, *r.task);

  // 3.-4. rank 0 prepares the run directory; the other ranks learn from it
  r.optimizer = train::make_optimizer(config.optim, r.task->module());
  if (r.main_rank) {
    try {
      prepare_main_rank(r);
    } catch (const std::exception& e) {
      if (r.dist) r.dist->broadcast_string(std::string("error\n") + e.what());
      throw;
    }
    if (r.dist) r.dist->broadcast_string(!r.finished.empty() ? "finished" : r.start.epoch > 0 ? "resume" : "fresh");
  } else {
    prepare_other_rank(r);
  }
  if (!r.finished.empty()) {
    if (r.main_rank) std::cout << r.finished << "\n" << std::flush;
    return 0;
  }
  const auto st = train_run(r);
  if (r.main_rank) finish_run(r, st);
  log::shutdown();
  return 0;
}

}  // namespace attnscope::cli
