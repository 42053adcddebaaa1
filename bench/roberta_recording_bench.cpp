// Cost of attention taps and recording on a RoBERTa encoder (the CPU-friendly ChemBERTa size:
// 4 layers, hidden 256, 8 heads, intermediate 1024), measured in one run on synthetic SMILES-like
// batches (random token ids, random lengths, padding): a synthetic "epoch" of training steps
// with no Taps object, with an empty one (taps present, unobserved), and followed by what the
// recorder does per recorded epoch (probe maps of all layers and heads + per-head metrics over a
// validation set), all in the trainer's thread; the step is an MSE regression. What recording
// costs a real preset run, with the recorder's own thread, is bench/preset_recording_bench.sh.
//   roberta_recording_bench [--steps N] [--batch B] [--len T] [--probes P] [--val V] [--threads K] [--pairs N]
#include <ATen/Parallel.h>
#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>

#include "bench/bench_util.h"
#include "core/process.h"
#include "hooks/hooks.h"
#include "models/models.h"

using namespace attnscope;

int main(int argc, char** argv) {
  attnscope::configure_process(argv);  // as the attnscope executable (core/process.h)
  CLI::App app{"RoBERTa tap and recording overhead"};
  int64_t steps = 32, batch = 32, len = 64, probes = 64, val = 512, threads = 2;
  int pairs = 5;
  app.add_option("--steps", steps);
  app.add_option("--batch", batch);
  app.add_option("--len", len);
  app.add_option("--probes", probes);
  app.add_option("--val", val);
  app.add_option("--threads", threads);
  app.add_option("--pairs", pairs, "interleaved epochs without / with an unobserved Taps object")
      ->check(CLI::PositiveNumber);
  CLI11_PARSE(app, argc, argv);
  at::set_num_threads(static_cast<int>(threads));
  torch::manual_seed(0);

  models::TransformerConfig c;
  c.hidden_size = 256;
  c.num_hidden_layers = 4;
  c.num_attention_heads = 8;
  c.intermediate_size = 1024;
  models::RobertaForSequenceClassification model(c);
  torch::optim::AdamW opt(model->parameters(), torch::optim::AdamWOptions(1e-4));

  auto make = [&](int64_t n) {  // ids in 5..766, lengths in [len/2, len], padded with 1
    auto ids = torch::randint(5, c.vocab_size, {n, len}, torch::kLong);
    auto lengths = torch::randint(len / 2, len + 1, {n}, torch::kLong);
    auto mask = (torch::arange(len).view({1, len}) < lengths.view({n, 1})).to(torch::kLong);
    ids = ids * mask + (1 - mask);
    return std::make_tuple(ids, mask, lengths);
  };
  std::vector<std::tuple<torch::Tensor, torch::Tensor, torch::Tensor>> batches;
  for (int64_t i = 0; i < steps; ++i) batches.push_back(make(batch));
  const auto targets = torch::randn({batch, 1});

  auto epoch = [&](models::Taps* taps) {
    model->train();
    const auto t0 = std::chrono::steady_clock::now();
    for (const auto& [ids, mask, lengths] : batches) {
      opt.zero_grad();
      torch::mse_loss(model->forward(ids, mask, taps), targets).backward();
      opt.step();
    }
    return bench::seconds_since(t0);
  };
  const auto [p_ids, p_mask, p_len] = make(probes);
  const auto [v_ids, v_mask, v_len] = make(val);
  auto record = [&]() {
    model->eval();
    torch::NoGradGuard ng;
    const auto t0 = std::chrono::steady_clock::now();
    models::Taps taps;
    taps.request(models::site::kAttnProbs);
    taps.request(models::site::kAttnScores);
    model->forward(p_ids, p_mask, &taps);  // probe maps, every layer and head
    std::vector<hooks::HeadMetrics> metrics(c.num_hidden_layers);
    for (int64_t i = 0; i < val; i += batch) {
      models::Taps vt;
      vt.request(models::site::kAttnProbs);
      const auto ids = v_ids.slice(0, i, i + batch), mask = v_mask.slice(0, i, i + batch);
      model->forward(ids, mask, &vt);
      for (int64_t l = 0; l < c.num_hidden_layers; ++l) metrics[l].add(vt.get(models::site::kAttnProbs, l), v_len.slice(0, i, i + batch));
    }
    for (auto& m : metrics) m.result();
    return bench::seconds_since(t0);
  };

  epoch(nullptr);  // warm-up
  models::Taps empty;
  double none = 1e9, unobserved = 1e9;
  std::vector<double> ratio;  // per interleaved pair (the order alternates): drift cancels
  for (int r = 0; r < pairs; ++r) {
    const bool first_none = r % 2 == 0;
    const double a = epoch(first_none ? nullptr : &empty), b = epoch(first_none ? &empty : nullptr);
    const double n = first_none ? a : b, u = first_none ? b : a;
    none = std::min(none, n);
    unobserved = std::min(unobserved, u);
    ratio.push_back(u / n);
  }
  std::sort(ratio.begin(), ratio.end());
  const double median = ratio[ratio.size() / 2];
  double rec = 1e9;
  for (int r = 0; r < 3; ++r) rec = std::min(rec, record());
  const double map_mb = 2.0 * probes * c.num_hidden_layers * c.num_attention_heads * len * len * 4 / 1e6;
  std::printf("RoBERTa 4x256 (8 heads), %lld threads, synthetic epoch of %lld steps x batch %lld x %lld tokens\n",
              static_cast<long long>(threads), static_cast<long long>(steps), static_cast<long long>(batch),
              static_cast<long long>(len));
  std::printf("  epoch, no Taps object:         %.3f s\n", none);
  std::printf("  epoch, taps unobserved:        %.3f s  (fastest of each: %+.2f %%; median of %d interleaved pairs: %+.2f %%; "
              "target <= 1 %%)\n",
              unobserved, 100 * (unobserved / none - 1), pairs, 100 * (median - 1));
  std::printf("  one recording (%lld probes, probs+scores of all layers/heads; metrics over %lld sequences): %.3f s\n"
              "    = %.1f %% of the epoch if recorded every epoch; %.2f %% at every 10th epoch (target <= 3 %%)\n"
              "  uncompressed maps per recorded epoch: %.1f MB (float32, probs + scores)\n",
              static_cast<long long>(probes), static_cast<long long>(val), rec, 100 * rec / none, 10 * rec / none, map_mb);
  return 0;
}
