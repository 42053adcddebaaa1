// Speed of the min/max experiment: the whole 750-epoch run of configs/minmax.yaml, timed, against
// two references measured in the same process run: the machine's sgemm throughput (1024^2, same
// thread count) and, when /usr/bin/python3 has torch, the original PyTorch code for a few epochs.
//   minmax_bench [--config F] [--threads N] [--ref-epochs K] [--seed S] [--out DIR]
#include <ATen/Parallel.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "bench/bench_util.h"
#include "cli/app.h"
#include "core/core.h"
#include "models/minmax_kernel.h"
#include "models/models.h"
#include "store/store.h"
#include "train/runtime.h"

namespace fs = std::filesystem;
using namespace attnscope;

namespace {

// FLOPs of the plain module per example: Q,K,V and output projections at every position,
// scores and mixing, logits at the last position (forward only).
double module_flops_per_example(int64_t T, int64_t D, int64_t H, int64_t Dh, int64_t V) {
  return 2.0 * (3 * T * H * Dh * D + 2 * H * T * T * Dh + T * H * Dh * D + D * V);
}

std::string last_line(const std::string& path) {
  std::ifstream in(path);
  std::string line, last;
  while (std::getline(in, line)) if (!line.empty()) last = line;
  return last;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"min/max benchmark"};
  std::string config = std::string(ATTNSCOPE_SOURCE_DIR) + "/configs/minmax.yaml";
  std::string out = (fs::temp_directory_path() / "attnscope-minmax-bench").string();
  std::string reference = std::string(ATTNSCOPE_SOURCE_DIR) + "/../shared/reference/minmax_pytorch.py";
  int64_t ref_epochs = 20, seed = 0;
  app.add_option("--config", config, "config to run");
  app.add_option("--out", out, "run directory (overwritten)");
  app.add_option("--seed", seed, "run.seed");
  app.add_option("--ref-epochs", ref_epochs, "epochs of the PyTorch reference to time (0 = skip)");
  app.add_option("--reference", reference, "path of minmax_pytorch.py");
  CLI11_PARSE(app, argc, argv);

  const Config cfg = resolve_config(config, {"run.seed=" + std::to_string(seed)}).config;
  RunConfig sgemm_run = cfg.run;
  sgemm_run.blas_threads = 0;  // the machine's peak: BLAS on all of run.threads
  const int64_t threads = train::configure_threads(sgemm_run);
  const double peak = bench::sgemm_gflops();
  std::printf("machine: %lld threads, sgemm 1024^2: %.1f GFLOP/s\n", static_cast<long long>(threads), peak);

  auto timed_run = [&](const std::string& dir, bool record) {
    const auto t0 = std::chrono::steady_clock::now();
    const int rc = cli::run({"attnscope", "train", config, "--out", dir, "--force", "--set", "train.progress=none",
                             "run.log_level=warn", "run.seed=" + std::to_string(seed),
                             std::string("hooks.attention.enabled=") + (record ? "true" : "false")});
    if (rc != 0) std::exit(rc);
    return bench::seconds_since(t0);
  };
  const double wall = timed_run(out, false);
  const auto m = nlohmann::json::parse(last_line(out + "/metrics.jsonl"));
  const double epochs = m.at("epoch").get<double>();
  const int64_t V = cfg.data.minmax_numbers + 3, N = 2 * cfg.data.minmax_numbers * cfg.data.minmax_numbers;
  const int64_t n_train = static_cast<int64_t>(cfg.data.train_fraction * N + 1e-6);
  const double fpe = module_flops_per_example(4, cfg.model.d_model, cfg.model.n_heads, cfg.model.d_head, V);
  const double epoch_flops = fpe * (3.0 * n_train + (N - n_train));  // train fwd+bwd, eval fwd
  std::printf("attnscope: %.0f epochs in %.2f s wall (whole process run: setup, training, summary); %s kernel\n",
              epochs, wall, models::kernel::variant());
  std::printf("  %.1f epochs/s; module-equivalent work %.2f GFLOP/epoch -> %.1f GFLOP/s = %.2fx the sgemm peak\n",
              epochs / wall, epoch_flops / 1e9, epochs * epoch_flops / wall / 1e9,
              epochs * epoch_flops / wall / 1e9 / peak);
  std::printf("  final: train_acc %.4f, val_acc %.4f, val_loss %.4f\n", m.at("train_acc").get<double>(),
              m.at("val_acc").get<double>(), m.at("val_loss").get<double>());
  std::printf("  target: the 750-epoch run in <= 15 s on 2 cores -> %s\n", wall <= 15 ? "met" : "NOT met");

  // Attention recording: the same run with the preset's hooks.attention on.
  const double wall_rec = timed_run(out + "-recorded", true);
  const auto h5 = out + "-recorded/attention.h5";
  const auto size = static_cast<double>(fs::file_size(h5));
  const auto recorded = static_cast<int64_t>(store::Reader(h5).epochs().size());
  std::printf("recording on (configs/minmax.yaml hooks.attention: %lld epochs of probe maps, metrics over the\n"
              "  whole validation split every 10 epochs): %.2f s vs %.2f s off -> +%.1f %%; attention.h5 %.2f MB,\n"
              "  %.1f kB per recorded epoch\n",
              static_cast<long long>(recorded), wall_rec, wall, 100 * (wall_rec / wall - 1), size / 1e6,
              recorded ? size / 1e3 / static_cast<double>(recorded) : 0.0);

  // Tap points nobody observes: the plain module's forward with no Taps vs an empty Taps object.
  {
    models::MinMaxNet net(models::MinMaxNetOptions{});
    auto gen = at::detail::createCPUGenerator(1);
    net->reset_parameters(gen);
    const auto x = torch::randint(0, 131, {4096, 4}, gen, torch::kLong);
    torch::NoGradGuard ng;
    models::Taps empty;
    auto once = [&](models::Taps* taps) {
      const auto t = std::chrono::steady_clock::now();
      for (int i = 0; i < 10; ++i) net->forward(x, taps);
      return bench::seconds_since(t) / 10;
    };
    double none = 1e9, unobserved = 1e9;
    for (int r = 0; r < 30; ++r) {  // interleaved, alternating order, best of 30 each
      if (r % 2) {
        none = std::min(none, once(nullptr));
        unobserved = std::min(unobserved, once(&empty));
      } else {
        unobserved = std::min(unobserved, once(&empty));
        none = std::min(none, once(nullptr));
      }
    }
    std::printf("tap points: module forward of 4096 examples %.3f ms without a Taps object, %.3f ms with one that\n"
                "  asks for nothing -> %+.2f %% (target <= 1 %%)\n", 1e3 * none, 1e3 * unobserved,
                100 * (unobserved / none - 1));
  }

  if (ref_epochs <= 0) return 0;
  if (!fs::exists(reference)) {
    std::printf("reference: %s not found; skipped\n", reference.c_str());
    return 0;
  }
  if (std::system("/usr/bin/python3 -c 'import torch' 2>/dev/null") != 0) {
    std::printf("reference: /usr/bin/python3 has no torch (apt install python3-torch); skipped\n");
    return 0;
  }
  const std::string json = out + "/reference.json";
  const std::string cmd = "/usr/bin/python3 " + reference + " --seed " + std::to_string(seed) + " --epochs " +
                          std::to_string(ref_epochs) + " --threads " + std::to_string(threads) +
                          " --json " + json + " > /dev/null";
  if (std::system(cmd.c_str()) != 0) {
    std::printf("reference: '%s' failed; skipped\n", cmd.c_str());
    return 0;
  }
  std::ifstream in(json);
  const auto ref = nlohmann::json::parse(in);
  const double ref_per_epoch = ref.at("seconds").get<double>() / static_cast<double>(ref_epochs);
  std::printf("PyTorch reference (minmax_pytorch.py, %lld threads): %lld epochs in %.2f s -> %.1f s per 750 epochs (extrapolated)\n",
              static_cast<long long>(threads), static_cast<long long>(ref_epochs), ref.at("seconds").get<double>(),
              750 * ref_per_epoch);
  std::printf("  attnscope speed-up per epoch: %.1fx (attnscope's time includes process setup and the summary)\n",
              ref_per_epoch / (wall / epochs));
  return 0;
}
