// Data-parallel speed on this machine for the small RoBERTa preset (configs/chemberta-esol.yaml):
//  1. training samples/s of `attnscope train` with 1 rank x 2 threads vs 2 ranks x 1 thread
//     (--nproc-per-node 2), and 1 rank x 1 thread (the preset's setting), from the first
//     epoch's wall time (no evaluation in it);
//  2. per step, in two ranks forked by this program over loopback Gloo: compute (forward +
//     backward of a rank's 16 molecules of a training batch of 32), an all-reduce of every parameter's gradient (what the
//     Reducer sends), and a full Reducer step; printed as ratios.
//   dist_bench [--epochs 2] [--steps 20] [--port 29611] [--bucket-mb 25] [--steps-only]
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "bench/bench_util.h"
#include "core/process.h"
#include "cli/cli.h"
#include "core/core.h"
#include "data/data.h"
#include "train/train.h"

using namespace attnscope;
namespace fs = std::filesystem;

namespace {

const std::string kConfig = std::string(ATTNSCOPE_SOURCE_DIR) + "/configs/chemberta-esol.yaml";
const std::string kCsv = std::string(ATTNSCOPE_SOURCE_DIR) + "/data/esol/delaney-processed.csv";

int run_exe(const std::vector<std::string>& args) {
  int status = 0;
  ::waitpid(cli::spawn_process(ATTNSCOPE_EXE, args), &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

// Training samples/s of the first epoch of a run (evaluation only at the last epoch).
double samples_per_second(const std::string& out, int threads, int nproc, int epochs, int port) {
  std::vector<std::string> args{"train", kConfig, "--out", out, "--force", "--set", "data.csv=" + kCsv,
                                "run.threads=" + std::to_string(threads), "train.epochs=" + std::to_string(epochs),
                                "train.eval_every=" + std::to_string(epochs), "hooks.attention.enabled=false",
                                "train.progress=none", "run.log_level=warn"};
  if (nproc > 1) {
    for (const auto& a : {std::string("--nproc-per-node"), std::to_string(nproc), std::string("--master-port"), std::to_string(port)}) {
      args.push_back(a);
    }
  }
  if (run_exe(args) != 0) return std::nan("");
  std::ifstream in(out + "/metrics.jsonl");
  std::string line;
  std::getline(in, line);
  const auto j = nlohmann::json::parse(line);
  std::ifstream split(out + "/split.json");
  const auto s = nlohmann::json::parse(split);
  return static_cast<double>(s["train"].size()) / j["seconds"].get<double>();
}

struct StepTimes {
  double compute = 0, allreduce = 0, reducer_step = 0;  // seconds per step
  int64_t param_bytes = 0;
};

// One of two ranks: times compute, a flat all-reduce of the parameters' size, and Reducer steps.
StepTimes rank_main(int64_t rank, int port, int steps, double bucket_mb) {
  const Config config = resolve_config(kConfig, {"data.csv=" + kCsv, "run.threads=1", "dist.timeout_s=120",
                                                  "dist.bucket_mb=" + std::to_string(bucket_mb)}).config;
  train::configure_threads(config.run);
  auto task = train::make_task(config);
  auto opt = train::make_optimizer(config.optim, task->module());
  train::DistEnv env;
  env.rank = rank;
  env.world = env.local_world = 2;
  env.local_rank = rank;
  env.master_port = port;
  train::Dist dist(env, config);
  dist.attach(task->module());
  StepTimes t;
  for (const auto& p : task->module().parameters()) t.param_bytes += p.numel() * static_cast<int64_t>(p.element_size());
  // the training run's own batches of 32 (length-bucketed, as in training); this rank's 16 of each
  const auto batches = task->epoch_batches(data::epoch_order(task->train_size(), 0, 1), 32);
  auto slice = [&](int64_t s) { return train::rank_slice(batches[static_cast<size_t>(s) % batches.size()], rank, 2); };
  task->module().train();
  for (int s = 0; s < 2; ++s) {  // warm-up, also of the Reducer's bucket rebuild
    opt->zero_grad();
    dist.prepare_backward(0.5);
    task->train_step(slice(s).idx);
  }
  dist.barrier();
  auto t0 = std::chrono::steady_clock::now();
  for (int s = 0; s < steps; ++s) {  // compute only: no prepare_backward, so the Reducer stays idle
    opt->zero_grad();
    task->train_step(slice(s).idx);
  }
  t.compute = bench::seconds_since(t0) / steps;
  auto flat = torch::zeros({t.param_bytes / 4});
  dist.barrier();
  t0 = std::chrono::steady_clock::now();
  for (int s = 0; s < steps; ++s) dist.allreduce_sum(flat);
  t.allreduce = bench::seconds_since(t0) / steps;
  dist.barrier();
  t0 = std::chrono::steady_clock::now();
  for (int s = 0; s < steps; ++s) {
    opt->zero_grad();
    dist.prepare_backward(0.5);
    task->train_step(slice(s).idx);
  }
  t.reducer_step = bench::seconds_since(t0) / steps;
  return t;
}

}  // namespace

int main(int argc, char** argv) {
  attnscope::configure_process(argv);  // as the attnscope executable (core/process.h)
  CLI::App app{"Data-parallel speed: 1 rank x 2 threads vs 2 ranks x 1 thread; all-reduce vs compute per step"};
  int epochs = 2, steps = 20, port = 29611;
  double bucket_mb = 25;
  bool steps_only = false;
  app.add_option("--epochs", epochs, "Epochs of each training run (the first is timed)");
  app.add_option("--steps", steps, "Timed steps per measurement in part 2");
  app.add_option("--port", port, "Loopback ports used: port .. port + 2");
  app.add_option("--bucket-mb", bucket_mb, "dist.bucket_mb of part 2's Reducer");
  app.add_flag("--steps-only", steps_only, "Part 2 only (no training runs)");
  CLI11_PARSE(app, argc, argv);

  // part 2 first, in forked ranks (before this process starts any OpenMP threads)
  int fds[2];
  if (::pipe(fds) != 0) return 1;
  pid_t pids[2];
  for (int64_t r = 0; r < 2; ++r) {
    pids[r] = ::fork();
    if (pids[r] == 0) {
      const StepTimes t = rank_main(r, port, steps, bucket_mb);
      if (r == 0) {
        if (::write(fds[1], &t, sizeof t) != sizeof t) ::_exit(1);
      }
      ::_exit(0);
    }
  }
  StepTimes t;
  const bool got = ::read(fds[0], &t, sizeof t) == sizeof t;
  for (pid_t p : pids) ::waitpid(p, nullptr, 0);
  if (!got) {
    std::fprintf(stderr, "dist_bench: the forked ranks failed\n");
    return 1;
  }

  if (!steps_only) {
    const std::string tmp = (fs::temp_directory_path() / "attnscope-dist-bench").string();
    const double single = samples_per_second(tmp + "/single", 1, 1, epochs, port + 1);
    const double one = samples_per_second(tmp + "/one", 2, 1, epochs, port + 1);
    const double two = samples_per_second(tmp + "/two", 1, 2, epochs, port + 2);
    fs::remove_all(tmp);
    std::printf("small RoBERTa preset (configs/chemberta-esol.yaml, batch 32), this machine:\n");
    std::printf("  1 rank  x 1 thread : %7.1f training samples/s\n", single);
    std::printf("  1 rank  x 2 threads: %7.1f training samples/s\n", one);
    std::printf("  2 ranks x 1 thread : %7.1f training samples/s  (%.2fx the 2-thread rank, %.2fx the 1-thread rank)\n", two,
                two / one, two / single);
  }
  std::printf("per step, 2 ranks x 1 thread, 16 molecules each, loopback Gloo, buckets of %g MB:\n", bucket_mb);
  std::printf("  parameters              %8.2f MB (float32)\n", t.param_bytes / 1e6);
  std::printf("  compute (fwd+bwd)       %8.2f ms\n", 1e3 * t.compute);
  std::printf("  all-reduce of all grads %8.2f ms  = %.3f x compute\n", 1e3 * t.allreduce, t.allreduce / t.compute);
  std::printf("  Reducer step (overlap)  %8.2f ms  = %.3f x compute\n", 1e3 * t.reducer_step, t.reducer_step / t.compute);
  std::printf("  sent per rank per step  %8.2f MB (2 x params x (W-1)/W); loopback %.2f GB/s effective\n",
              2.0 * t.param_bytes * 0.5 / 1e6, 2.0 * t.param_bytes * 0.5 / t.allreduce / 1e9);
  return 0;
}
