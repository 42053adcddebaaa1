// snapshot and metrics subcommands (cli/inspect_commands.h).
#include "cli/inspect_commands.h"

#include <cmath>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "core/core.h"
#include "hooks/hooks.h"
#include "store/store.h"
#include "train/train.h"
#include "viz/viz.h"
#include "cli/model_commands.h"

namespace fs = std::filesystem;

namespace attnscope::cli {

namespace {

// Records the probes into a new file `out`; on failure (no space left, ...) the partial file is
// removed, so that a later snapshot to the same path is not refused.
void record_snapshot(const Config& config, train::Task& task, const train::ProbeSet& probes, const std::string& out,
                     int64_t epoch, int64_t step) {
  try {
    hooks::AttentionRecorder recorder(config, task, probes, out, false, 0);
    recorder.record_epoch(epoch, step);
  } catch (...) {
    std::error_code ec;
    fs::remove(out, ec);
    throw;
  }
}


// A molecule model (Hugging Face directory, molecule run or checkpoint): nothing of the run's
// training data is read, so a run directory is enough wherever it lies.
int snapshot_molecules(const SnapshotArgs& args) {
  if (!args.ids.empty() || !args.ids_file.empty()) {
    throw UsageError("snapshot: --model '" + args.model + "' is a transformer; give its inputs with --smiles, --smiles-file, "
                     "--text or --text-file");
  }
  const auto inputs = read_smiles(args.input);
  auto m = models::load_model(args.model);
  std::string text;
  for (const auto& s : inputs) text += s + "\n";
  auto task = train::make_model_task(m, args.input.is_text());
  const std::string origin = !args.input.file.empty() ? args.input.file : !args.input.text_file.empty() ? args.input.text_file
                             : args.input.is_text() ? "--text" : "--smiles";
  const train::ProbeSet probes = task->parse_probes(text, origin);
  Config config;
  train::configure_threads(config.run);
  snapshot_hooks(config, args.sites, /*metrics=*/true);  // over the inputs (the task's validation split here)
  record_snapshot(config, *task, probes, args.out, m.epoch, m.step);
  std::cout << "wrote " << args.out << ": " << probes.inputs.size(0) << " inputs, " << m.hf.architecture << " from "
            << m.origin << (m.run_dir.empty() ? std::string() : " (epoch " + std::to_string(m.epoch) + ")") << "\n";
  return 0;
}

}  // namespace

// The recorder's settings for a snapshot: every layer and head, the sites asked for; per-head
// metrics over the task's validation split when `metrics`.
void snapshot_hooks(Config& config, const std::vector<std::string>& sites, bool metrics) {
  config.hooks.attention.enabled = true;
  config.hooks.attention.metrics = metrics;
  if (!sites.empty()) config.hooks.attention.sites = sites;
  for (const auto& s : config.hooks.attention.sites) {
    if (s != "attn.probs" && s != "attn.scores") throw UsageError("--sites: unknown site '" + s + "' (attn.probs, attn.scores)");
  }
  config.hooks.attention.layers.clear();
  config.hooks.attention.heads.clear();
}

int snapshot_command(const SnapshotArgs& args) {
  const auto& in = args.input;
  const int given = !args.ids.empty() + !args.ids_file.empty() + !in.smiles.empty() + !in.file.empty() + !in.text.empty() +
                    !in.text_file.empty();
  if (given != 1) {
    throw UsageError("snapshot: give the inputs with one of --ids ..., --ids-file FILE (min/max), --smiles ..., "
                     "--smiles-file FILE (molecule models), --text ... or --text-file FILE (text models)");
  }
  if (fs::exists(args.out)) throw UsageError("--out: '" + args.out + "' exists; not overwriting it");
  if (models::is_molecule_model(args.model)) return snapshot_molecules(args);
  fs::path ckpt = args.model;
  if (fs::is_directory(ckpt)) ckpt = models::run_checkpoint(ckpt.string());
  if (!fs::exists(ckpt)) {
    throw UsageError("--model '" + args.model + "': expected a Hugging Face model directory (config.json), a run "
                     "directory or a checkpoint; no checkpoint at '" + ckpt.string() + "'");
  }
  if (args.ids.empty() && args.ids_file.empty()) {
    throw UsageError("snapshot: --model '" + args.model + "' is a min/max model; give token ids with --ids or --ids-file");
  }

  // The model as the checkpoint describes it: its stored config, its weights.
  Config config = models::checkpoint_config(ckpt.string());
  train::configure_threads(config.run);
  auto task = train::make_task(config);
  const auto info = models::load_checkpoint(ckpt.string(), task->module(), nullptr, false);
  std::string text;
  for (const auto& row : args.ids) text += row + "\n";
  const train::ProbeSet probes = args.ids_file.empty() ? task->parse_probes(text, "--ids") : task->probes_from_file(args.ids_file);
  snapshot_hooks(config, args.sites, /*metrics=*/false);
  record_snapshot(config, *task, probes, args.out, info.state.epoch, info.state.step);
  std::cout << "wrote " << args.out << ": " << probes.inputs.size(0) << " inputs, model from " << ckpt.string()
            << " (epoch " << info.state.epoch << ")\n";
  return 0;
}

namespace {

// The canonical patterns (one per class) as maps of n tokens, their metrics and the class the
// thresholds give each: a reader's calibration of hooks::classify.
int synthetic_metrics(const MetricsArgs& args) {
  const int64_t n = args.length.value_or(12);
  if (n < 6 || n > 512) throw UsageError("--length must be in [6, 512]");
  const std::vector<std::string>& names = hooks::pattern_names();
  const int64_t K = static_cast<int64_t>(names.size()), k_broadcast = n / 2;
  auto maps = torch::zeros({1, K, n, n}, torch::kFloat);
  auto a = maps.accessor<float, 4>();
  for (int64_t i = 0; i < n; ++i) {
    auto row = [&](int64_t k, std::vector<std::pair<int64_t, float>> peaks) {  // peaks, the rest spread evenly
      float rest = 1.f;
      std::vector<bool> taken(static_cast<size_t>(n), false);
      for (auto [j, w] : peaks) rest -= w, taken[static_cast<size_t>(j)] = true;
      const int64_t free = n - static_cast<int64_t>(peaks.size());
      for (int64_t j = 0; j < n; ++j) a[0][k][i][j] = taken[static_cast<size_t>(j)] ? 0.f : rest / static_cast<float>(free);
      for (auto [j, w] : peaks) a[0][k][i][j] += w;
    };
    row(0, {{i, 0.9f}});                                  // diagonal: each token on itself
    row(1, {{0, 0.9f}});                                  // bos: every token on the first
    row(2, {{k_broadcast, 0.9f}});                        // broadcast: every token on one later key
    row(3, {});                                           // uniform
    std::vector<std::pair<int64_t, float>> band;          // local: the token and its neighbours
    for (int64_t j = std::max<int64_t>(0, i - 1); j <= std::min(n - 1, i + 1); ++j) band.push_back({j, 0.3f});
    row(4, band);
    row(5, {{0, 0.35f}, {(i + n / 3) % n == 0 ? 1 : (i + n / 3) % n, 0.3f}});  // mixed: part first token, part a far key
    std::vector<std::pair<int64_t, float>> segment;       // block: each half attends within itself
    const int64_t half = n / 2, s0 = i < half ? 0 : half, s1 = i < half ? half : n;
    for (int64_t j = s0; j < s1; ++j) segment.push_back({j, 0.95f / static_cast<float>(s1 - s0)});
    row(6, segment);
  }
  hooks::HeadMetrics hm(hooks::HeadMetrics::Path::kReference);
  hm.add(maps, torch::full({1}, n, torch::kLong));
  const auto r = hm.result();
  const std::vector<std::string> shown = {"diagonal_mean", "first_token_mass", "broadcast_mass", "entropy_norm", "local_mass",
                                          "block_score", "effective_tokens", "confidence_avg", "gini"};
  std::ostringstream out;
  out << "the " << K << " canonical patterns on " << n << " tokens, their metrics and the class the thresholds give (README: "
         "attention metrics; diagonal_mean >= 0.5, first_token_mass >= 0.5, broadcast_mass >= 0.5, entropy_norm >= 0.9, "
         "local_mass >= 0.8, block_score >= 0.3 with effective_tokens >= 2, in that order)\n";
  out << std::left << std::setw(11) << "pattern" << std::setw(11) << "class";
  for (const auto& m : shown) out << std::setw(17) << m;
  out << "\n";
  std::vector<std::string> titles;
  int wrong = 0;
  for (int64_t k = 0; k < K; ++k) {
    const std::string cls = hooks::pattern_name(static_cast<hooks::Pattern>(static_cast<int>(r.at("pattern")[k].item<double>())));
    wrong += cls != names[static_cast<size_t>(k)];
    out << std::setw(11) << names[static_cast<size_t>(k)] << std::setw(11) << cls;
    std::ostringstream t;
    t << names[static_cast<size_t>(k)] << " -> " << cls;
    for (const auto& m : shown) {
      const double v = r.at(m)[k].item<double>();
      out << std::setw(17) << std::fixed << std::setprecision(3) << v;
    }
    t << std::fixed << std::setprecision(2) << " (entropy " << r.at("entropy_norm")[k].item<double>() << ", local "
      << r.at("local_mass")[k].item<double>() << ", block " << r.at("block_score")[k].item<double>() << ")";
    titles.push_back(t.str());
    out << "\n";
  }
  std::cout << out.str();
  if (!args.out.empty()) {
    const auto flat = maps.contiguous();
    const std::string png = viz::synthetic_patterns_figure(args.out, n, std::vector<float>(flat.data_ptr<float>(), flat.data_ptr<float>() + flat.numel()), titles);
    std::cout << png << "\n";
  }
  if (wrong > 0) {
    std::cout << wrong << " pattern(s) got another class: the first threshold met wins (a local head with half its "
                 "weight on itself is a diagonal head)\n";
  }
  return 0;
}

}  // namespace

int metrics_command(const MetricsArgs& args) {
  std::vector<std::string> unused;  // options that do not apply to what was asked
  if (args.synthetic) {
    if (!args.path.empty()) unused.push_back("'" + args.path + "' does not apply: --synthetic draws the canonical patterns and reads no run");
    if (args.epoch) unused.push_back("--epoch does not apply: --synthetic reads no recorded epochs");
    if (args.csv) unused.push_back("--csv does not apply: --synthetic prints a table");
  } else {
    if (args.length) unused.push_back("--length does not apply without --synthetic (tokens per synthetic map)");
    if (!args.out.empty()) unused.push_back("--out does not apply without --synthetic (the folder of its figure)");
  }
  if (unused.size() == 1) throw UsageError("metrics: " + unused.front());
  if (!unused.empty()) throw UsageError(problem_list("metrics: " + std::to_string(unused.size()) + " options do not apply:", unused));
  if (args.synthetic) return synthetic_metrics(args);
  if (args.path.empty()) throw UsageError("metrics: give a run directory or an attention .h5 (or --synthetic)");
  const std::string path = fs::is_directory(args.path) ? (fs::path(args.path) / "attention.h5").string() : args.path;
  store::Reader r(path);
  const auto& h = r.header();
  const auto epochs = r.metric_epochs();
  if (h.metrics.empty() || epochs.empty()) throw UsageError("'" + path + "' holds no metrics (hooks.attention.metrics was off)");
  int64_t row = static_cast<int64_t>(epochs.size()) - 1;
  if (args.epoch) {
    auto it = std::find(epochs.begin(), epochs.end(), *args.epoch);
    if (it == epochs.end()) {
      throw UsageError("--epoch " + std::to_string(*args.epoch) + ": no metrics for it in '" + path + "' (first " +
                       std::to_string(epochs.front()) + ", last " + std::to_string(epochs.back()) + ")");
    }
    row = it - epochs.begin();
  }
  const size_t L = h.layer_ids.size(), H = h.head_ids.size();
  std::map<std::string, std::vector<float>> values;
  for (const auto& m : h.metrics) values[m] = r.metric(m);
  const char sep = args.csv ? ',' : ' ';
  std::ostringstream out;
  // a snapshot of a model (its header names the source) averages over its inputs
  const auto model = nlohmann::json::parse(h.model_json, nullptr, false);
  const bool snapshot = model.is_object() && model.contains("source");
  if (!args.csv) {
    out << "epoch " << epochs[row] << " (" << path << "), averaged over "
        << (snapshot ? "the snapshot's " + std::to_string(r.probes().count) + " inputs" : std::string("the whole validation split"))
        << "\n";
  }
  // the file's own metric names (a file from another version may hold others)
  std::vector<std::string> shown;
  for (const auto& m : args.csv ? h.metrics
                                : std::vector<std::string>{"entropy_norm", "confidence_avg", "first_token_mass", "diagonal_mean",
                                                           "local_mass", "broadcast_mass", "gini", "sparsity"}) {
    if (values.count(m) && m != "pattern") shown.push_back(m);
  }
  const bool patterns = values.count("pattern") > 0;
  auto pattern_of = [&](size_t k) -> std::string {
    const float v = values["pattern"][k];
    if (!(v >= 0 && v <= static_cast<float>(hooks::Pattern::kBlock)) || v != std::floor(v)) return "?";
    return hooks::pattern_name(static_cast<hooks::Pattern>(static_cast<int>(v)));
  };
  out << (args.csv ? "epoch,layer,head" : "layer head");
  for (const auto& m : shown) out << sep << (args.csv ? m : m.substr(0, 14));
  out << (patterns ? std::string(1, sep) + "pattern_name" : std::string()) << "\n";
  for (size_t l = 0; l < L; ++l) {
    for (size_t hh = 0; hh < H; ++hh) {
      const size_t k = row * L * H + l * H + hh;
      if (args.csv) out << epochs[row] << ',';
      out << h.layer_ids[l] << sep << h.head_ids[hh];
      for (const auto& m : shown) {
        std::ostringstream v;
        v << std::fixed << std::setprecision(4) << values[m][k];
        out << sep << (args.csv ? v.str() : std::string(std::max<int>(0, 14 - static_cast<int>(v.str().size())), ' ') + v.str());
      }
      out << (patterns ? std::string(1, sep) + pattern_of(k) : std::string()) << "\n";
    }
  }
  std::cout << out.str();
  return 0;
}

}  // namespace attnscope::cli
