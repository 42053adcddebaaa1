// snapshot and metrics subcommands (cli/inspect_commands.h).
#include "cli/inspect_commands.h"

#include <filesystem>
#include <iomanip>
#include <iostream>
#include <sstream>

#include "core/core.h"
#include "hooks/hooks.h"
#include "store/store.h"
#include "train/train.h"

namespace fs = std::filesystem;

namespace attnscope::cli {

int snapshot_command(const SnapshotArgs& args) {
  fs::path ckpt = args.model;
  if (fs::is_directory(ckpt)) ckpt = train::run_checkpoint(ckpt.string());
  if (!fs::exists(ckpt)) throw UsageError("--model: no checkpoint at '" + ckpt.string() + "'");
  const int given = !args.ids.empty() + !args.ids_file.empty() + !args.smiles.empty() + !args.smiles_file.empty();
  if (given != 1) {
    throw UsageError("snapshot: give the inputs with one of --ids ..., --ids-file FILE (min/max), --smiles ... or "
                     "--smiles-file FILE (molecule runs)");
  }
  if (fs::exists(args.out)) throw UsageError("--out: '" + args.out + "' exists; not overwriting it");

  // The model as the checkpoint describes it: its stored config, its weights.
  Config config = train::checkpoint_config(ckpt.string());
  train::configure_threads(config.run);
  auto task = train::make_task(config);
  const auto info = train::load_checkpoint(ckpt.string(), task->module(), nullptr, false);

  std::string text;
  for (const auto& row : args.ids) text += row + "\n";
  for (const auto& row : args.smiles) text += row + "\n";
  const std::string file = args.ids_file.empty() ? args.smiles_file : args.ids_file;
  const train::ProbeSet probes =
      file.empty() ? task->parse_probes(text, args.ids.empty() ? "--smiles" : "--ids") : task->probes_from_file(file);
  config.hooks.attention.enabled = true;
  config.hooks.attention.metrics = false;
  if (!args.sites.empty()) config.hooks.attention.sites = args.sites;
  for (const auto& s : config.hooks.attention.sites) {
    if (s != "attn.probs" && s != "attn.scores") throw UsageError("--sites: unknown site '" + s + "' (attn.probs, attn.scores)");
  }
  config.hooks.attention.layers.clear();
  config.hooks.attention.heads.clear();
  hooks::AttentionRecorder recorder(config, *task, probes, args.out, false, 0);
  recorder.record_epoch(info.state.epoch, info.state.step);
  std::cout << "wrote " << args.out << ": " << probes.inputs.size(0) << " inputs, model from " << ckpt.string()
            << " (epoch " << info.state.epoch << ")\n";
  return 0;
}

int metrics_command(const MetricsArgs& args) {
  const std::string path = fs::is_directory(args.path) ? (fs::path(args.path) / "attention.h5").string() : args.path;
  store::Reader r(path);
  const auto& h = r.header();
  const auto epochs = r.metric_epochs();
  if (h.metrics.empty() || epochs.empty()) throw UsageError("'" + path + "' holds no metrics (hooks.attention.metrics was off)");
  int64_t row = static_cast<int64_t>(epochs.size()) - 1;
  if (args.epoch >= 0) {
    auto it = std::find(epochs.begin(), epochs.end(), args.epoch);
    if (it == epochs.end()) {
      throw UsageError("--epoch " + std::to_string(args.epoch) + ": no metrics for it in '" + path + "' (first " +
                       std::to_string(epochs.front()) + ", last " + std::to_string(epochs.back()) + ")");
    }
    row = it - epochs.begin();
  }
  const size_t L = h.layer_ids.size(), H = h.head_ids.size();
  std::map<std::string, std::vector<float>> values;
  for (const auto& m : h.metrics) values[m] = r.metric(m);
  const char sep = args.csv ? ',' : ' ';
  std::ostringstream out;
  if (!args.csv) out << "epoch " << epochs[row] << " (" << path << "), averaged over the whole validation split\n";
  const std::vector<std::string> shown = args.csv ? h.metrics
      : std::vector<std::string>{"entropy_norm", "confidence_avg", "first_token_mass", "diagonal_mean", "local_mass",
                                 "broadcast_mass", "gini", "sparsity"};
  out << (args.csv ? "epoch,layer,head" : "layer head");
  for (const auto& m : shown) out << sep << (args.csv ? m : m.substr(0, 14));
  out << sep << "pattern_name\n";
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
      out << sep << hooks::pattern_name(static_cast<hooks::Pattern>(static_cast<int>(values["pattern"][k]))) << "\n";
    }
  }
  std::cout << out.str();
  return 0;
}

}  // namespace attnscope::cli
