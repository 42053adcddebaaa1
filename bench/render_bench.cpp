// Times `attnscope render` (figures + report) and measures its output:
//  1. a real min/max run (default runs/minmax; trained with configs/minmax.yaml if absent),
//  2. an attention file of ChemBERTa-zinc-base-v1's shape (6 layers x 12 heads, 32 probes of
//     SMILES-like lengths, 21 recorded epochs = 20 epochs + epoch 0), with synthetic maps that
//     sharpen over the epochs. Synthetic because the ChemBERTa task is not in attnscope yet; the
//     renderer's work depends on the shapes, not on where the numbers came from.
// Usage: render_bench [--run DIR] [--chemberta-run DIR] [--out DIR]
#include <CLI/CLI.hpp>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <iostream>
#include <random>

#include "cli/cli.h"
#include "core/core.h"
#include "store/store.h"
#include "viz/viz.h"

namespace fs = std::filesystem;
using namespace attnscope;

namespace {

void write_chemberta_shaped(const std::string& path) {
  const int64_t L = 6, H = 12, P = 32, E = 21;
  std::mt19937 rng(0);
  std::uniform_int_distribution<int> len(18, 60);
  store::Header h;
  h.attnscope_version = kVersion;
  h.config_yaml = "# synthetic: ChemBERTa-zinc-base-v1 shapes for render_bench\n";
  h.model_json = R"({"name":"roberta","layers":6,"heads":12,"hidden":768})";
  h.sites = {"attn.probs", "attn.scores"};
  for (int64_t l = 0; l < L; ++l) h.layer_ids.push_back(l);
  for (int64_t i = 0; i < H; ++i) h.head_ids.push_back(i);
  h.metrics = {"entropy_norm", "confidence_max", "first_token_mass", "local_mass", "diagonal_mean", "pattern"};
  h.pooled_dim = 768;
  store::Probes pr;
  pr.count = P;
  std::vector<int> lengths(P);
  for (auto& n : lengths) n = len(rng);
  pr.max_len = *std::max_element(lengths.begin(), lengths.end());
  const int64_t T = pr.max_len;
  for (int64_t p = 0; p < P; ++p) {
    std::string text;
    for (int64_t t = 0; t < T; ++t) {
      const bool real = t < lengths[p];
      const std::string tok = !real ? "" : t == 0 ? "<s>" : t == lengths[p] - 1 ? "</s>" : std::string(1, "CNOc(=)1"[(p + t) % 8]);
      pr.input_ids.push_back(real ? 5 + (p + t) % 40 : 0);
      pr.tokens.push_back(tok);
      if (real && t > 0 && t < lengths[p] - 1) text += tok;
    }
    pr.lengths.push_back(lengths[p]);
    pr.text.push_back(text);
    pr.source.push_back(p);
  }
  auto w = store::Writer::create(path, h, pr);
  std::normal_distribution<float> noise(0, 1);
  for (int64_t e = 0; e < E; ++e) {
    const float sharp = 0.2f + 0.25f * e;  // heads specialise: scores grow over the epochs
    std::vector<float> probs(P * L * H * T * T, 0), scores(P * L * H * T * T, 0);
    for (int64_t p = 0; p < P; ++p) {
      const int64_t n = lengths[p];
      for (int64_t lh = 0; lh < L * H; ++lh) {
        const int64_t kind = lh % 4;  // bos, previous token, diagonal, broad
        for (int64_t q = 0; q < n; ++q) {
          float* s = &scores[((p * L * H + lh) * T + q) * T];
          float* a = &probs[((p * L * H + lh) * T + q) * T];
          float mx = -1e30f, sum = 0;
          for (int64_t k = 0; k < n; ++k) {
            const bool hit = (kind == 0 && k == 0) || (kind == 1 && k == std::max<int64_t>(0, q - 1)) ||
                             (kind == 2 && k == q);
            s[k] = sharp * (hit ? 4.f : 0.f) + (kind == 3 ? 0.3f : 0.1f) * noise(rng);
            mx = std::max(mx, s[k]);
          }
          for (int64_t k = 0; k < n; ++k) sum += (a[k] = std::exp(s[k] - mx));
          for (int64_t k = 0; k < n; ++k) a[k] /= sum;
        }
      }
    }
    store::Analyses an;
    an["js_prev"] = std::vector<float>(L * H, 0.01f);
    an["head_importance"] = std::vector<float>(L * H, 0.3f);
    an["head_js"] = std::vector<float>(L * H * L * H, 0.5f);
    an["token_importance"] = std::vector<float>(P * T, 1.0f / T);
    an["token_importance_rollout"] = an["token_importance_flow"] = an["grad_input"] = std::vector<float>(P * T, 1.0f / T);
    an["attn_grad"] = std::vector<float>(P * L * H, 0.1f);
    std::vector<float> pooled(P * 768);
    for (auto& x : pooled) x = noise(rng);
    an["pooled"] = pooled;
    w->append_epoch({e, e * 100, 0.0}, {{"attn.probs", probs}, {"attn.scores", scores}}, an);
    std::map<std::string, std::vector<float>> m;
    for (const auto& name : h.metrics) m[name] = std::vector<float>(L * H, name == "pattern" ? float(e % 6) : 0.5f);
    w->append_metrics(e, m);
  }
}

void time_render(const std::string& label, const std::string& input, const std::string& out) {
  fs::remove_all(out);
  viz::RenderOptions o;
  o.input = input;
  o.out = out;
  const auto r = viz::render(o);
  uint64_t report = 0, figures = 0;
  for (const auto& f : r.files) (fs::path(f).extension() == ".html" ? report : figures) += fs::file_size(f);
  std::cout << label << ": " << r.files.size() << " files in " << r.seconds << " s; figures " << figures / 1048576.0
            << " MB, report.html " << report / 1048576.0 << " MB\n";
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"render_bench"};
  std::string run = "runs/minmax", chem_run, out = "/tmp/attnscope-render-bench";
  app.add_option("--run", run, "A recorded min/max run (trained with configs/minmax.yaml if absent)");
  app.add_option("--chemberta-run", chem_run, "Also a recorded ChemBERTa run (e.g. configs/chemberta-esol.yaml, 20 epochs)");
  app.add_option("--out", out, "Scratch folder");
  CLI11_PARSE(app, argc, argv);
  fs::create_directories(out);
  if (!fs::exists(fs::path(run) / "attention.h5")) {
    std::cout << "training " << run << " (configs/minmax.yaml, 750 epochs) ...\n";
    if (cli::run({"attnscope", "train", "configs/minmax.yaml", "--out", run, "--force", "--set", "train.progress=none"}) != 0) return 1;
  }
  time_render("min/max, 750 epochs (76 recorded, 64 probes, 1x2 heads)", run, out + "/minmax");
  if (!chem_run.empty()) time_render("ChemBERTa run " + chem_run, chem_run, out + "/chemberta-run");
  const std::string chem = out + "/chemberta-shaped/attention.h5";
  fs::remove_all(fs::path(chem).parent_path());
  fs::create_directories(fs::path(chem).parent_path());
  write_chemberta_shaped(chem);
  time_render("ChemBERTa-shaped, 21 recorded epochs, 32 probes, 6x12 heads", chem, out + "/chemberta");
  return 0;
}
