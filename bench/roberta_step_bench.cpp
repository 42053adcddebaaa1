// Training-step speed of the ChemBERTa-zinc-base-v1 encoder (RoBERTa: 6 layers, hidden 768, 12
// heads, intermediate 3072, vocab 767) with a regression head: forward + backward + AdamW at batch
// 32 on SMILES of realistic lengths (the ESOL SMILES of data/esol, tokenized by the real ChemBERTa
// tokenizer, when present; else lengths drawn to match them), each batch padded to its longest.
// Prints molecules/s, tokens/s and the achieved GFLOP/s (matrix products of forward and backward,
// padded work) against the machine's sgemm GFLOP/s measured in the same run with the same threads.
//   roberta_step_bench [--steps N] [--batch B] [--threads K] [--layers L --hidden D --heads H --inter I]
#include <ATen/Parallel.h>
#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>

#include "bench/bench_util.h"
#include "core/process.h"
#include "data/data.h"
#include "models/models.h"
#include "train/train.h"

using namespace attnscope;
namespace fs = std::filesystem;

namespace {

// Token lengths (with <s> and </s>) of a MoleculeNet CSV's SMILES (its last column: ESOL's
// delaney-processed.csv, Lipophilicity.csv) under the ChemBERTa tokenizer.
std::vector<int64_t> realistic_lengths(const std::string& root, const std::string& file) {
  const std::string csv = root + (file == "delaney-processed.csv" ? "/data/esol/" : "/data/moleculenet/") + file;
  const std::string tok_dir = root + "/tests/fixtures/chemberta-zinc-base-v1-tokenizer";
  std::vector<int64_t> out;
  if (!fs::exists(csv) || !fs::exists(tok_dir)) return out;
  const auto tok = data::BpeTokenizer::from_dir(tok_dir);
  std::ifstream in(csv);
  std::string line;
  std::getline(in, line);
  while (std::getline(in, line)) {
    const auto comma = line.rfind(',');
    std::string s = line.substr(comma + 1);
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
    if (!s.empty()) out.push_back(static_cast<int64_t>(tok.encode(s).size()));
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  attnscope::configure_process(argv);  // as the attnscope executable (core/process.h)
  CLI::App app{"ChemBERTa-zinc-base-v1 training step speed"};
  int64_t steps = 12, batch = 32, threads = 2, blas_threads = 0, layers = 6, hidden = 768, heads = 12, inter = 3072;
  std::string root = ATTNSCOPE_SOURCE_DIR;
  app.add_option("--steps", steps, "Timed steps (after 2 warm-up steps)");
  app.add_option("--batch", batch);
  app.add_option("--threads", threads, "LibTorch intra-op (OpenMP) threads");
  app.add_option("--blas-threads", blas_threads, "OpenBLAS threads (0 = --threads), as run.blas_threads");
  app.add_option("--layers", layers);
  app.add_option("--hidden", hidden);
  app.add_option("--heads", heads);
  app.add_option("--inter", inter);
  app.add_option("--root", root, "The source tree (its data/ SMILES and tests/fixtures tokenizer)");
  std::string dataset = "delaney-processed.csv";
  bool bucketed = false;
  app.add_flag("--bucketed", bucketed, "Batches of similar lengths, as attnscope's molecule task forms them");
  app.add_option("--dataset", dataset, "Its MoleculeNet CSV whose SMILES lengths to use (e.g. Lipophilicity.csv, "
                                       "where transformers was measured at 7.8 molecules/s)");
  CLI11_PARSE(app, argc, argv);
  RunConfig rc;
  rc.threads = threads;
  rc.blas_threads = blas_threads;
  train::configure_threads(rc);
  torch::manual_seed(0);

  auto lengths = realistic_lengths(root, dataset);
  const bool real = !lengths.empty();
  if (!real) {  // ESOL under the ChemBERTa tokenizer: mean ~24 tokens, range 3-80
    std::mt19937 rng(0);
    std::gamma_distribution<double> g(4.0, 6.0);
    for (int i = 0; i < 1128; ++i) lengths.push_back(std::clamp<int64_t>(static_cast<int64_t>(3 + g(rng)), 3, 120));
  }
  double mean_len = 0;
  for (auto n : lengths) mean_len += static_cast<double>(n) / lengths.size();

  models::TransformerConfig c;
  c.num_hidden_layers = layers;
  c.hidden_size = hidden;
  c.num_attention_heads = heads;
  c.intermediate_size = inter;
  c.num_labels = 1;
  models::RobertaForSequenceClassification model(c);
  model->train();
  torch::optim::AdamW opt(model->parameters(), torch::optim::AdamWOptions(1e-5));

  std::mt19937 rng(1);
  std::uniform_int_distribution<size_t> pick(0, lengths.size() - 1);
  double flops = 0, seconds = 0;
  int64_t molecules = 0, tokens = 0;
  // --bucketed: attnscope's length bucketing (train/molecule_task.cpp: windows of 32 batches sorted
  // by length, cut into batches, batch order shuffled); else random batches padded to their
  // longest, as transformers' DataCollatorWithPadding does
  std::vector<std::vector<int64_t>> queue;
  for (int64_t s = 0; s < steps + 2; ++s) {
    std::vector<int64_t> lens(batch);
    if (bucketed) {
      if (queue.empty()) {
        std::vector<int64_t> window(static_cast<size_t>(32 * batch));
        for (auto& n : window) n = lengths[pick(rng)];
        std::sort(window.begin(), window.end());
        for (int64_t b = 0; b < 32; ++b) queue.emplace_back(window.begin() + b * batch, window.begin() + (b + 1) * batch);
        std::shuffle(queue.begin(), queue.end(), rng);
      }
      lens = queue.back();
      queue.pop_back();
    } else {
      for (auto& n : lens) n = lengths[pick(rng)];
    }
    const int64_t T = *std::max_element(lens.begin(), lens.end());
    auto ids = torch::randint(5, c.vocab_size, {batch, T});
    auto mask = torch::zeros({batch, T}, torch::kLong);
    for (int64_t b = 0; b < batch; ++b) {
      mask[b].narrow(0, 0, lens[b]).fill_(1);
      if (lens[b] < T) ids[b].narrow(0, lens[b], T - lens[b]).fill_(c.pad_token_id);
    }
    const auto target = torch::randn({batch, 1});
    const auto t0 = std::chrono::steady_clock::now();
    opt.zero_grad();
    const auto loss = torch::mse_loss(model->forward(ids, mask), target);
    loss.backward();
    opt.step();
    const double dt = bench::seconds_since(t0);
    if (s < 2) continue;  // warm-up
    seconds += dt;
    molecules += batch;
    for (auto n : lens) tokens += n;
    // matrix products per padded token and layer: QKV + output 8D^2, FFN 4DI, scores + mixing 4TD;
    // backward twice the forward
    const double D = static_cast<double>(hidden), I = static_cast<double>(inter);
    flops += 3.0 * batch * T * layers * (8 * D * D + 4 * D * I + 4 * T * D);
  }
  const double peak = bench::sgemm_gflops(1024);
  const double achieved = flops / seconds / 1e9;
  std::printf("RoBERTa %lldx%lld (heads %lld, intermediate %lld), batch %lld, %s lengths (mean %.1f tokens), %lld threads, "
              "%lld OpenBLAS threads, %s\n",
              static_cast<long long>(layers), static_cast<long long>(hidden), static_cast<long long>(heads),
              static_cast<long long>(inter), static_cast<long long>(batch), real ? (dataset + " under the ChemBERTa tokenizer").c_str() : "synthetic",
              mean_len, static_cast<long long>(threads), static_cast<long long>(blas_threads > 0 ? blas_threads : threads),
              bucketed ? "length-bucketed batches" : "random batches padded to their longest");
  std::printf("  %lld steps in %.2f s: %.1f molecules/s, %.0f tokens/s (real tokens), %.2f s/step\n",
              static_cast<long long>(steps), seconds, molecules / seconds, tokens / seconds, seconds / steps);
  std::printf("  achieved %.1f GFLOP/s (forward+backward matrix products, padded) = %.0f%% of sgemm %.1f GFLOP/s (1024^2, same threads)\n",
              achieved, 100 * achieved / peak, peak);
  return 0;
}
