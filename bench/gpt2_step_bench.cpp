// Training-step speed of a GPT-2-small-shaped decoder (12 layers, n_embd 768, 12 heads, n_inner
// 3072, GPT-2's 50,257-token vocabulary, tied LM head) by causal-LM: forward + backward + AdamW on
// blocks of random token ids (every position predicts the next). Prints tokens/s and the achieved
// GFLOP/s of the matrix products (forward and backward, the LM head included) against the
// machine's sgemm GFLOP/s measured in the same run with the same threads.
//   gpt2_step_bench [--steps N] [--batch B] [--block T] [--threads K] [--layers L --hidden D --heads H]
#include <ATen/Parallel.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <torch/csrc/autograd/profiler_legacy.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <set>
#include <sstream>

#include "bench/bench_util.h"
#include "core/process.h"
#include "models/models.h"
#include "train/train.h"

using namespace attnscope;

int main(int argc, char** argv) {
  configure_process(argv);  // as the attnscope executable: heap reuse, OpenMP waiting (core/process.h)
  CLI::App app{"GPT-2-small training step speed"};
  int64_t steps = 6, batch = 4, block = 128, threads = 2, layers = 12, hidden = 768, heads = 12, vocab = 50257;
  app.add_option("--steps", steps, "Timed steps (after 2 warm-up steps)");
  app.add_option("--batch", batch);
  app.add_option("--block", block, "Tokens per sequence");
  app.add_option("--threads", threads, "LibTorch intra-op (OpenMP) threads");
  app.add_option("--layers", layers);
  app.add_option("--hidden", hidden);
  app.add_option("--heads", heads);
  app.add_option("--vocab", vocab);
  CLI11_PARSE(app, argc, argv);
  RunConfig rc;
  rc.threads = threads;
  train::configure_threads(rc);
  torch::manual_seed(0);

  auto c = models::default_config("gpt2");
  c.num_hidden_layers = layers;
  c.hidden_size = hidden;
  c.num_attention_heads = heads;
  c.intermediate_size = 4 * hidden;
  c.vocab_size = vocab;
  c.max_position_embeddings = std::max<int64_t>(1024, block);
  auto model = models::build_transformer(c, models::kGpt2LM);
  model->train();
  torch::optim::AdamW opt(model->parameters(), torch::optim::AdamWOptions(1e-4));
  auto step = [&] {
    const auto ids = torch::randint(0, vocab, {batch, block});
    const auto mask = torch::ones_like(ids);
    opt.zero_grad();
    const auto h = model->hidden(ids, mask).slice(1, 0, -1);
    const auto logits = model->lm_logits(h.reshape({-1, hidden}));
    const auto loss = torch::nn::functional::cross_entropy(logits, ids.slice(1, 1).reshape({-1}));
    loss.backward();
    opt.step();
  };
  double seconds = 0;
  for (int64_t s = 0; s < steps + 2; ++s) {
    const auto t0 = std::chrono::steady_clock::now();
    step();
    if (s >= 2) seconds += bench::seconds_since(t0);
  }
  // One more step under LibTorch's profiler: the time of its own matrix products (aten::mm,
  // addmm, bmm, baddbmm, forward and backward, not nested in one another) and the self time of
  // every other operator, from the trace it writes (chrome://tracing JSON).
  std::ostringstream trace;
  double profiled_s = 0;
  {
    torch::autograd::profiler::RecordProfile guard(trace);
    const auto t0 = std::chrono::steady_clock::now();
    step();
    profiled_s = bench::seconds_since(t0);
  }
  // matrix products per token: each layer QKV + output 8D^2, MLP 16D^2, scores + mixing 4TD; the
  // LM head 2DV; backward twice the forward
  const double D = static_cast<double>(hidden), T = static_cast<double>(block), V = static_cast<double>(vocab);
  const double flops = 3.0 * steps * batch * T * (layers * (8 * D * D + 16 * D * D + 4 * T * D) + 2 * D * V);
  const double peak = bench::sgemm_gflops(1024);
  const double achieved = flops / seconds / 1e9;
  std::printf("GPT-2 %lldx%lld (heads %lld, vocab %lld), batch %lld x %lld tokens, %lld threads\n",
              static_cast<long long>(layers), static_cast<long long>(hidden), static_cast<long long>(heads),
              static_cast<long long>(vocab), static_cast<long long>(batch), static_cast<long long>(block),
              static_cast<long long>(threads));
  std::printf("  %lld steps in %.2f s: %.0f tokens/s, %.2f s/step\n", static_cast<long long>(steps), seconds,
              static_cast<double>(steps * batch * block) / seconds, seconds / static_cast<double>(steps));
  std::printf("  achieved %.1f GFLOP/s (forward+backward matrix products) = %.0f%% of sgemm %.1f GFLOP/s (1024^2, same threads)\n",
              achieved, 100 * achieved / peak, peak);

  // The same step's weight products alone, each shape timed by itself (forward X W, backward dY W^T
  // and X^T dY): how fast the matrix products run, apart from the rest of the step.
  const int64_t N = batch * (block - 1);
  struct Shape { int64_t in, out, count; };
  const std::vector<Shape> shapes = {{hidden, 3 * hidden, layers}, {hidden, hidden, layers}, {hidden, 4 * hidden, layers},
                                     {4 * hidden, hidden, layers}, {hidden, vocab, 1}};
  double gemm_s = 0, gemm_flops = 0;
  for (const auto& sh : shapes) {
    const auto x = torch::randn({N, sh.in}), w = torch::randn({sh.in, sh.out}), dy = torch::randn({N, sh.out});
    (void)torch::mm(x, w);  // warm-up
    const auto t0 = std::chrono::steady_clock::now();
    for (int r = 0; r < 2; ++r) {
      (void)torch::mm(x, w);
      (void)torch::mm(dy, w.t());
      (void)torch::mm(x.t(), dy);
    }
    gemm_s += bench::seconds_since(t0) / 2 * static_cast<double>(sh.count);
    gemm_flops += 3.0 * 2.0 * static_cast<double>(N * sh.in * sh.out * sh.count);
  }
  const double step_s = seconds / static_cast<double>(steps);
  std::printf("  the step's weight products alone: %.2f s at %.1f GFLOP/s = %.0f%% of sgemm; the rest of the step "
              "(attention, softmax, LayerNorm, GELU, cross-entropy, AdamW, allocation): %.2f s (%.0f%%)\n",
              gemm_s, gemm_flops / gemm_s / 1e9, 100 * gemm_flops / gemm_s / 1e9 / peak, step_s - gemm_s,
              100 * (step_s - gemm_s) / step_s);

  // the profiled step: intervals per thread, nested by time; self time = own minus children's
  struct Ev { double ts, dur; std::string name; };
  std::map<int64_t, std::vector<Ev>> by_thread;
  const auto tj = nlohmann::json::parse(trace.str(), nullptr, false);
  if (tj.is_array()) {
    for (const auto& e : tj) {
      if (e.value("ph", "") != "X") continue;
      by_thread[e.value("tid", int64_t{0})].push_back({e.value("ts", 0.0), e.value("dur", 0.0), e.value("name", "")});
    }
  }
  const std::set<std::string> gemm = {"aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm"};
  double gemm_in_step_us = 0;
  std::map<std::string, double> self_us;
  for (auto& [tid, evs] : by_thread) {
    std::sort(evs.begin(), evs.end(), [](const Ev& a, const Ev& b) { return a.ts != b.ts ? a.ts < b.ts : a.dur > b.dur; });
    std::vector<size_t> stack;
    std::vector<double> child(evs.size(), 0.0);
    std::vector<bool> in_gemm(evs.size(), false);
    for (size_t i = 0; i < evs.size(); ++i) {
      while (!stack.empty() && evs[stack.back()].ts + evs[stack.back()].dur <= evs[i].ts) stack.pop_back();
      const bool parent_gemm = !stack.empty() && in_gemm[stack.back()];
      in_gemm[i] = parent_gemm || gemm.count(evs[i].name) > 0;
      if (!parent_gemm && gemm.count(evs[i].name)) gemm_in_step_us += evs[i].dur;
      if (!stack.empty()) child[stack.back()] += evs[i].dur;
      stack.push_back(i);
    }
    for (size_t i = 0; i < evs.size(); ++i) {
      if (!in_gemm[i]) self_us[evs[i].name] += std::max(0.0, evs[i].dur - child[i]);
    }
  }
  const double gemm_in_step_s = gemm_in_step_us / 1e6, step_flops = flops / static_cast<double>(steps);
  if (gemm_in_step_s > 0) {
    std::printf("  profiled step (%.2f s): its matrix products took %.2f s at %.1f GFLOP/s = %.0f%% of sgemm; the rest %.2f s "
                "(%.0f%%), by operator self time:\n",
                profiled_s, gemm_in_step_s, step_flops / gemm_in_step_s / 1e9, 100 * step_flops / gemm_in_step_s / 1e9 / peak,
                profiled_s - gemm_in_step_s, 100 * (profiled_s - gemm_in_step_s) / profiled_s);
    std::vector<std::pair<double, std::string>> top;
    for (const auto& [name, us] : self_us) top.push_back({us, name});
    std::sort(top.rbegin(), top.rend());
    for (size_t i = 0; i < std::min<size_t>(10, top.size()); ++i) {
      std::printf("    %-40s %6.3f s\n", top[i].second.c_str(), top[i].first / 1e6);
    }
  } else {
    std::printf("  (the profiler recorded no matrix products)\n");
  }
  return 0;
}
