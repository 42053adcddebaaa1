// Speed of the min/max experiment: the whole 750-epoch run of configs/minmax.yaml, timed, against
// two references measured in the same process run: the machine's sgemm throughput (1024^2, same
// thread count) and, when /usr/bin/python3 has torch, the original PyTorch code for a few epochs.
// The cost of attention recording: runs with hooks.attention off and on, interleaved, and where a
// recorded epoch's time goes (probe maps, analyses, head importance, validation metrics, HDF5).
//   minmax_bench [--config F] [--seed S] [--out DIR] [--pairs N] [--breakdown R] [--ref-epochs K]
//                [--set KEY=VALUE ...]
//   minmax_bench --breakdown-only [--threads N]   (on the checkpoint of an earlier run in --out)
#include <ATen/Parallel.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <malloc.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "bench/bench_util.h"
#include "cli/cli.h"
#include "core/core.h"
#include "hooks/hooks.h"
#include "models/models.h"
#include "store/store.h"
#include "train/train.h"

namespace fs = std::filesystem;
using namespace attnscope;
using attnscope::bench::seconds_since;

namespace {

// FLOPs of the plain module per example: Q,K,V and output projections at every position,
// scores and mixing, logits at the last position (forward only).
double module_flops_per_example(int64_t T, int64_t D, int64_t H, int64_t Dh, int64_t V) {
  return 2.0 * (3 * T * H * Dh * D + 2 * H * T * T * Dh + T * H * Dh * D + D * V);
}

// The recorder's time in the trainer's thread from a run's train.log ("[attention] N epochs recorded; X s of the
// trainer's thread spent recording").
double recorder_seconds(const std::string& log) {
  std::ifstream in(log);
  std::string line;
  double s = 0;
  while (std::getline(in, line)) {
    const auto at = line.find(" epochs recorded; ");
    if (at != std::string::npos) s = std::atof(line.c_str() + at + 18);
  }
  return s;
}

std::string last_line(const std::string& path) {
  std::ifstream in(path);
  std::string line, last;
  while (std::getline(in, line)) if (!line.empty()) last = line;
  return last;
}


// Best of `reps` timings (ms) of f().
template <class F>
double median_ms(int reps, F&& f) {
  std::vector<double> t;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    t.push_back(1e3 * seconds_since(t0));
  }
  std::sort(t.begin(), t.end());
  return t[0];  // the least disturbed by other processes on a shared machine
}

// Where one recorded epoch's time goes, at the weights of checkpoint `ckpt` (best of `reps`).
void recorder_breakdown(const std::string& config, std::vector<std::string> sets, const std::string& ckpt,
                        const std::string& dir, int reps) {
  sets.push_back("hooks.attention.enabled=true");
  const Config cfg = resolve_config(config, sets).config;
  auto task = train::make_task(cfg);
  models::load_checkpoint(ckpt, task->module(), nullptr, false);
  auto* minmax = dynamic_cast<train::MinMaxTask*>(task.get());
  fs::remove_all(dir);
  fs::create_directories(dir);
  const auto probes = hooks::choose_probes(cfg.hooks.attention, *task);
  hooks::AttentionRecorder rec(cfg, *task, probes, dir + "/attention.h5", false, 0);
  torch::Tensor probs;
  const double t_maps = median_ms(reps, [&] {
    const auto m = rec.probe_maps();
    probs = torch::tensor(m.at("attn.probs")).view({probes.inputs.size(0), 1, task->num_heads(), 4, 4});
  });
  const double t_js = median_ms(reps, [&] { hooks::js_divergence(probs, probs, probes.lengths); });
  const double t_hjs = median_ms(reps, [&] { hooks::head_js_distance(probs, probes.lengths); });
  const double t_ti = median_ms(reps, [&] {
    hooks::token_importance(probs, probes.lengths);
    hooks::token_importance_rollout(probs, probes.lengths);
  });
  const auto idx = torch::arange(task->val_size(), torch::kLong);
  torch::Tensor va;
  const double t_va = median_ms(reps, [&] { va = task->val_attention(idx, 0); });
  const auto lengths = task->val_lengths(idx);
  const double t_hm = median_ms(reps, [&] {
    hooks::HeadMetrics m;
    m.add(va, lengths);
    m.result();
  });
  const double t_vm = median_ms(reps, [&] { rec.validation_metrics(); });
  // head importance: a pass of its own, or (min/max, as the recorder asks) in the epoch's evaluation
  const double t_eval = median_ms(reps, [&] { task->evaluate(); });
  const double t_hi_alone = median_ms(reps, [&] {
    task->module().zero_grad();  // (a no-op on the weights; makes any cached value stale)
    for (auto& p : task->module().parameters()) p.detach().add_(0.0);
    task->head_importance();
  });
  double t_eval_hi = t_eval;
  if (minmax) {
    t_eval_hi = median_ms(reps, [&] {
      minmax->head_importance_with_next_evaluate();
      task->evaluate();
    });
  }
  // the whole recorded epoch as the trainer's observer runs it (after an evaluation that computed
  // the head importance, as in a run)
  int64_t epoch = 0;
  double t_rec = 1e9;
  for (int r = 0; r < reps; ++r) {
    if (minmax) minmax->head_importance_with_next_evaluate();
    task->evaluate();
    const auto t0 = std::chrono::steady_clock::now();
    rec.record_epoch(epoch, epoch);
    ++epoch;
    t_rec = std::min(t_rec, 1e3 * seconds_since(t0));
  }
  // once per run, at the end: the task arrays (min/max: row "=" over all N^2 (a, b) pairs per operator)
  const double t_arrays = median_ms(std::max(1, reps / 5), [&] { task->final_arrays(); });
  // a training epoch at these weights, for scale (the weights are restored afterwards)
  double t_train = 0;
  {
    std::vector<torch::Tensor> saved;
    for (const auto& p : task->module().parameters()) saved.push_back(p.detach().clone());
    const auto all = torch::arange(task->train_size(), torch::kLong);
    t_train = median_ms(reps, [&] {
      task->module().zero_grad();
      task->train_step(all);
    });
    task->module().zero_grad();
    torch::NoGradGuard ng;
    size_t i = 0;
    for (auto& p : task->module().parameters()) p.copy_(saved[i++]);
  }
  // the store alone: one epoch's maps and analyses, then one metrics row, into a file like the recorder's
  double t_append = 0, t_metrics = 0;
  {
    store::Reader rd(dir + "/attention.h5");
    auto w = store::Writer::create(dir + "/store-only.h5", rd.header(), rd.probes());
    const auto maps = rec.probe_maps();
    store::Analyses an;
    const size_t P = probes.inputs.size(0), H = task->num_heads(), T = 4, D = task->pooled_dim();
    an["js_prev"] = an["head_importance"] = std::vector<float>(H, 0.5f);
    an["head_js"] = std::vector<float>(H * H, 0.5f);
    an["token_importance"] = an["token_importance_rollout"] = an["token_importance_flow"] = an["grad_input"] =
        std::vector<float>(P * T, 0.25f);
    an["attn_grad"] = std::vector<float>(P * H, 0.1f);
    an["pooled"] = std::vector<float>(P * D, 0.1f);
    std::map<std::string, std::vector<float>> metrics;
    for (const auto& name : hooks::head_metric_names()) metrics[name] = std::vector<float>(H, 0.5f);
    int64_t e = 0;
    t_append = median_ms(reps, [&] { w->append_epoch({e, e, 0.0}, maps, an); });
    t_metrics = median_ms(reps, [&] { w->append_metrics(e++, metrics); });
  }
  std::printf("recorder, per recorded epoch (best of %d, at the run's final weights, %d thread(s)):\n"
              "  %.2f ms in the observer = probe maps %.2f + js_prev %.2f + head_js %.2f + token importance %.2f\n"
              "  + validation metrics %.2f (attention %.2f, HeadMetrics %.2f) + HDF5 (append_epoch %.2f,\n"
              "  append_metrics %.2f) and the rest %.2f;\n"
              "  + head importance %.2f ms (in the evaluation: %.2f vs %.2f ms; a pass of its own: %.2f ms)\n"
              "  vs a training epoch: forward+backward %.2f ms (no optimizer step) + evaluation %.2f ms;\n"
              "  once per run: the task arrays %.2f ms\n",
              reps, at::get_num_threads(), t_rec, t_maps, t_js, t_hjs, t_ti, t_vm, t_va, t_hm, t_append, t_metrics,
              t_rec - t_maps - t_js - t_hjs - t_ti - t_vm - t_append - t_metrics, t_eval_hi - t_eval, t_eval_hi,
              t_eval, t_hi_alone, t_train, t_eval, t_arrays);
}

}  // namespace

int main(int argc, char** argv) {
  // glibc returns freed blocks over its (self-raising) mmap threshold to the kernel, and a run
  // whose recorder frees one big block early raises that threshold for the rest of the process:
  // training then page-faults ~500k times less than in a run without it, so recording-on runs
  // could look faster than recording-off ones. Fixed thresholds put every run on the same footing
  // (--malloc-default leaves glibc's behaviour).
  bool malloc_default = false;
  for (int i = 1; i < argc; ++i) malloc_default = malloc_default || std::string(argv[i]) == "--malloc-default";
  if (!malloc_default) {
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
  }
  CLI::App app{"min/max benchmark"};
  app.add_flag("--malloc-default", malloc_default, "leave glibc's malloc thresholds as they are");
  std::string config = std::string(ATTNSCOPE_SOURCE_DIR) + "/configs/minmax.yaml";
  std::string out = (fs::temp_directory_path() / "attnscope-minmax-bench").string();
  // optional: the PyTorch reference is handed to the project in ../shared (not part of the
  // repository); without it the benchmark says so and skips that comparison
  std::string reference = std::string(ATTNSCOPE_SOURCE_DIR) + "/../shared/reference/minmax_pytorch.py";
  int64_t ref_epochs = 20, seed = 0;
  app.add_option("--config", config, "config to run");
  app.add_option("--out", out, "run directory (overwritten)");
  app.add_option("--seed", seed, "run.seed");
  app.add_option("--ref-epochs", ref_epochs, "epochs of the PyTorch reference to time (0 = skip)");
  app.add_option("--reference", reference, "path of minmax_pytorch.py");
  int breakdown = 20, pairs = 3;
  app.add_option("--pairs", pairs, "interleaved recording-off / recording-on runs");
  bool breakdown_only = false;
  app.add_option("--breakdown", breakdown, "repetitions of the recorder's per-epoch breakdown (0 = skip)");
  app.add_flag("--breakdown-only", breakdown_only, "only the breakdown, on OUT/checkpoints/last.pt of an earlier run");
  int64_t threads_override = 0;
  std::vector<std::string> sets;
  app.add_option("--set", sets, "config overrides KEY=VALUE for every run (after run.seed)");
  app.add_option("--threads", threads_override, "run.threads for --breakdown-only (default: the config's)");
  CLI11_PARSE(app, argc, argv);
  sets.insert(sets.begin(), "run.seed=" + std::to_string(seed));
  if (breakdown_only) {
    RunConfig run = resolve_config(config, {}).config.run;
    if (threads_override > 0) run.threads = threads_override;
    train::configure_threads(run);
    recorder_breakdown(config, sets, out + "/checkpoints/last.pt", out + "-breakdown", std::max(1, breakdown));
    return 0;
  }

  const Config cfg = resolve_config(config, sets).config;
  RunConfig sgemm_run = cfg.run;
  sgemm_run.blas_threads = 0;  // the machine's peak: BLAS on all of run.threads
  const int64_t threads = train::configure_threads(sgemm_run);
  const double peak = bench::sgemm_gflops();
  std::printf("machine: %lld threads, sgemm 1024^2: %.1f GFLOP/s\n", static_cast<long long>(threads), peak);

  auto timed_run = [&](const std::string& dir, bool record) {
    std::vector<std::string> args = {"attnscope", "train", config, "--out", dir, "--force", "--set",
                                     "train.progress=none", "run.log_level=warn"};
    args.insert(args.end(), sets.begin(), sets.end());
    args.push_back(std::string("hooks.attention.enabled=") + (record ? "true" : "false"));
    const auto t0 = std::chrono::steady_clock::now();
    const int rc = cli::run(args);
    if (rc != 0) std::exit(rc);
    return bench::seconds_since(t0);
  };
  // Recording off and on (the preset's hooks.attention), interleaved in alternating order so that
  // other load on a shared machine falls on both alike.
  std::vector<double> off, on, self;
  for (int i = 0; i < std::max(1, pairs); ++i) {
    if (i % 2 == 0) {
      off.push_back(timed_run(out, false));
      on.push_back(timed_run(out + "-recorded", true));
    } else {
      on.push_back(timed_run(out + "-recorded", true));
      off.push_back(timed_run(out, false));
    }
    self.push_back(recorder_seconds(out + "-recorded/train.log"));
  }
  const double wall = *std::min_element(off.begin(), off.end());
  const auto m = nlohmann::json::parse(last_line(out + "/metrics.jsonl"));
  const double epochs = m.at("epoch").get<double>();
  const int64_t V = cfg.data.minmax_numbers + 3, N = 2 * cfg.data.minmax_numbers * cfg.data.minmax_numbers;
  const int64_t n_train = static_cast<int64_t>(cfg.data.train_fraction * N + 1e-6);
  const double fpe = module_flops_per_example(4, cfg.model.d_model, cfg.model.n_heads, cfg.model.d_head, V);
  const double epoch_flops = fpe * (3.0 * n_train + (N - n_train));  // train fwd+bwd, eval fwd
  std::printf("attnscope: %.0f epochs in %.2f s wall (best of %zu; whole process run: setup, training, summary); %s kernel\n",
              epochs, wall, off.size(), models::kernel::variant());
  std::printf("  %.1f epochs/s; module-equivalent work %.2f GFLOP/epoch -> %.1f GFLOP/s = %.2fx the sgemm peak\n",
              epochs / wall, epoch_flops / 1e9, epochs * epoch_flops / wall / 1e9,
              epochs * epoch_flops / wall / 1e9 / peak);
  std::printf("  final: train_acc %.4f, val_acc %.4f, val_loss %.4f\n", m.at("train_acc").get<double>(),
              m.at("val_acc").get<double>(), m.at("val_loss").get<double>());
  std::printf("  target: the 750-epoch run in <= 15 s on 2 cores -> %s\n", wall <= 15 ? "met" : "NOT met");

  const auto h5 = out + "-recorded/attention.h5";
  const auto size = static_cast<double>(fs::file_size(h5));
  double arrays = 0;  // the task arrays, written once at the end
  int64_t recorded = 0;
  {
    store::Reader r(h5);
    recorded = static_cast<int64_t>(r.epochs().size());
    for (const auto& [name, shape] : r.header().arrays) {
      double n = 4;
      for (int64_t x : shape) n *= static_cast<double>(x);
      arrays += n;
    }
  }
  std::printf("recording on (%s hooks.attention: every %lld, metrics_every %lld -> %lld recorded epochs;\n"
              "  off and on interleaved, whole process runs):\n",
              fs::path(config).filename().c_str(), static_cast<long long>(cfg.hooks.attention.every),
              static_cast<long long>(cfg.hooks.attention.metrics_every), static_cast<long long>(recorded));
  double lo = 1e9, hi = -1e9, self_lo = 1e9, self_hi = -1e9;
  for (size_t i = 0; i < off.size(); ++i) {
    const double d = 100 * (on[i] / off[i] - 1), sp = 100 * self[i] / off[i];
    lo = std::min(lo, d), hi = std::max(hi, d), self_lo = std::min(self_lo, sp), self_hi = std::max(self_hi, sp);
    std::printf("  pair %zu: off %.2f s, on %.2f s -> %+.1f %%; the recorder's own time %.3f s = %.1f %% of off\n", i + 1,
                off[i], on[i], d, self[i], sp);
  }
  const double best_on = *std::min_element(on.begin(), on.end());
  std::printf("  best on vs best off: %.2f s vs %.2f s -> %+.1f %% (pairs: %+.1f .. %+.1f %%; recorder's own time\n"
              "  %.1f .. %.1f %% of off; target <= 3 %%)\n"
              "  attention.h5 %.2f MB: task arrays %.2f MB, the rest %.1f kB per recorded epoch (header, probes\n"
              "  and /best included)\n",
              best_on, wall, 100 * (best_on / wall - 1), lo, hi, self_lo, self_hi, size / 1e6, arrays / 1e6,
              recorded ? (size - arrays) / 1e3 / static_cast<double>(recorded) : 0.0);

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

  if (breakdown > 0) recorder_breakdown(config, sets, out + "/checkpoints/last.pt", out + "-breakdown", breakdown);

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
