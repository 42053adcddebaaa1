// Subcommand table and argument parsing (CLI11) for the attnscope executable.
#include "cli/app.h"

#include <CLI/CLI.hpp>

#include <filesystem>
#include <iostream>

#include "cli/inspect_commands.h"
#include "cli/model_commands.h"
#include "cli/split_command.h"
#include "cli/train_command.h"
#include "core/core.h"
#include "viz/viz.h"

namespace attnscope::cli {

namespace {

// The data-parallel launch flags of a training command (README: distributed training).
void add_launch_options(CLI::App& cmd, TrainArgs& t, const std::vector<std::string>& args) {
  cmd.add_option("--nproc-per-node", t.nproc_per_node, "Data-parallel: start and supervise N ranks on this machine (README: distributed training)");
  cmd.add_option("--nnodes", t.nnodes, "Data-parallel: machines in the run (default 1)");
  cmd.add_option("--node-rank", t.node_rank, "Data-parallel: this machine's index in [0, nnodes) (default 0)");
  cmd.add_option("--master-addr", t.master_addr, "Data-parallel: address of node 0, where rank 0 hosts the rendezvous store (default 127.0.0.1)");
  cmd.add_option("--master-port", t.master_port, "Data-parallel: its port (default 29500)");
  t.argv = args;  // a launcher starts its ranks with the same command line
}

}  // namespace

int run(const std::vector<std::string>& args) {
  CLI::App app{"attnscope: train transformers and record how their attention changes, epoch by epoch.", "attnscope"};
  app.set_version_flag("--version", std::string("attnscope ") + kVersion);
  app.require_subcommand(1);

  TrainArgs t;
  for (const auto& a : args) t.command_line += (t.command_line.empty() ? "" : " ") + a;
  auto* train = app.add_subcommand("train", "Train a model from a YAML config into a run directory.");
  train->add_option("config", t.config_path, "YAML config (e.g. configs/minmax.yaml); optional with --resume --out RUN_DIR");
  train->add_option("--set", t.sets, "Override a key: --set optim.lr=0.001 (repeatable; YAML values, e.g. [0.9,0.99])")
      ->take_all();
  train->add_option("--out", t.out, "Run directory (default: run.out_dir/run.name)");
  train->add_flag("--resume", t.resume, "Continue the run in the run directory from its last checkpoint");
  train->add_flag("--force", t.force, "Delete an existing run directory and start over (with --nproc-per-node: also allow more ranks than cores)");
  add_launch_options(*train, t, args);
  // pretrain = train for configs of task mlm (masked-LM on a SMILES corpus), same options
  auto* pretrain = app.add_subcommand("pretrain", "Masked-LM pretraining (data.task: mlm) from a YAML config into a run directory.");
  pretrain->add_option("config", t.config_path, "YAML config (e.g. configs/chemberta-pretrain.yaml); optional with --resume --out RUN_DIR");
  pretrain->add_option("--set", t.sets, "Override a key (repeatable)")->take_all();
  pretrain->add_option("--out", t.out, "Run directory (default: run.out_dir/run.name)");
  pretrain->add_flag("--resume", t.resume, "Continue the run in the run directory from its last checkpoint");
  pretrain->add_flag("--force", t.force, "Delete an existing run directory and start over (with --nproc-per-node: also allow more ranks than cores)");
  add_launch_options(*pretrain, t, args);

  std::string cfg_path;
  std::vector<std::string> cfg_sets;
  bool reference = false;
  auto* config = app.add_subcommand("config", "Print the resolved config (defaults < file < --set), or the key reference.");
  config->add_option("config", cfg_path, "YAML config (optional)");
  config->add_option("--set", cfg_sets, "Override a key (repeatable)")->take_all();
  config->add_flag("--reference", reference, "Print every key with its default and meaning (Markdown)");

  SnapshotArgs snap;
  auto* snapshot = app.add_subcommand("snapshot", "Record a frozen model's attention on given inputs into an attention file (bertviz's use case, from the command line).");
  snapshot->add_option("--model", snap.model, "Hugging Face model directory, run directory (its best.pt, else last.pt) or checkpoint (.pt)")->required();
  snapshot->add_option("--ids", snap.ids, "Inputs as token ids, one example per value: --ids \"3 128 5 130\" \"9 129 2 130\"")->take_all();
  snapshot->add_option("--ids-file", snap.ids_file, "Inputs from a file, one example of token ids per line");
  snapshot->add_option("--smiles", snap.smiles, "Molecule models: SMILES inputs")->take_all();
  snapshot->add_option("--smiles-file", snap.smiles_file, "Molecule models: a file of SMILES, one per line (or a CSV with a smiles column)");
  snapshot->add_option("--sites", snap.sites, "Sites to store (default attn.probs attn.scores)")->take_all();
  snapshot->add_option("--out", snap.out, "Attention file to write (.h5; must not exist)")->required();

  MetricsArgs met;
  auto* metrics = app.add_subcommand("metrics", "Print the per-layer, per-head attention metrics of a recorded run.");
  metrics->add_option("path", met.path, "Run directory or attention .h5")->required();
  metrics->add_option("--epoch", met.epoch, "Epoch (default: the last with metrics)");
  metrics->add_flag("--csv", met.csv, "All metrics, as CSV");

  viz::RenderOptions ren;
  auto* render = app.add_subcommand("render", "Draw a run's figures (PNG/SVG, PLplot) and its offline HTML report from its files.");
  render->add_option("run", ren.input, "Run directory or its attention.h5")->required();
  render->add_option("--out", ren.out, "Output folder (default: the run directory): DIR/figures/*.png, DIR/report.html");
  render->add_option("--epochs", ren.epochs, "Recorded epochs to draw (default: the last; the report: all)")->delimiter(',');
  render->add_option("--probes", ren.probes, "Probe indices (default: one per operator / probe 0)")->delimiter(',');
  render->add_option("--layers", ren.layers, "Layers for the single-head figures")->delimiter(',');
  render->add_option("--heads", ren.heads, "Heads for the single-head figures (default: all, or the 4 most important)")->delimiter(',');
  render->add_option("--format", ren.formats, "Any of png, svg, html (default png,html)")->delimiter(',');
  render->add_option("--web-dir", ren.web_dir, "Report template and npm libraries (default: the source tree's viz/web)");

  TokenizeArgs tk;
  auto* tokenize = app.add_subcommand("tokenize", "Print each SMILES's tokens, ids and character spans (one JSON object per line).");
  tokenize->add_option("--model", tk.model, "Hugging Face model or tokenizer directory (vocab.json, merges.txt), molecule run or checkpoint")->required();
  tokenize->add_option("--smiles", tk.input.smiles, "SMILES strings")->take_all();
  tokenize->add_option("--smiles-file", tk.input.file, "One SMILES per line, or a CSV with a smiles column");
  tokenize->add_option("--max-len", tk.max_len, "Cut to N tokens incl. <s> and </s> (default: every id, as transformers; a warning names SMILES longer than the model's positions)");
  tokenize->add_flag("--truncate", tk.truncate, "Cut to the model's positions (config.json), as transformers' truncation=True");

  PredictArgs pr;
  auto* predict = app.add_subcommand("predict", "Run a regression / classification model on SMILES; CSV of outputs under the label names (classification: logits and probabilities)");
  predict->add_option("--model", pr.model, "Hugging Face model directory, molecule run directory or checkpoint (.pt)")->required();
  predict->add_option("--smiles", pr.input.smiles, "SMILES strings")->take_all();
  predict->add_option("--smiles-file", pr.input.file, "One SMILES per line, or a CSV with a smiles column");
  predict->add_option("--output", pr.output, "CSV file to write (default: stdout)");
  predict->add_option("--too-long", pr.too_long, "SMILES longer than the model's positions: truncate (warn) or error");
  predict->add_option("--batch", pr.batch, "SMILES per forward pass (default 32)");

  ExportArgs ex;
  auto* exp = app.add_subcommand("export", "Write a model as a Hugging Face directory (transformers' from_pretrained reads it).");
  exp->add_option("--model", ex.model, "Hugging Face model directory, molecule run directory or checkpoint (.pt)")->required();
  exp->add_option("--hf", ex.hf, "Output directory (must not exist or be empty)")->required();

  BaselineArgs bl;
  auto* baseline = app.add_subcommand("baseline", "ECFP4 fingerprints + XGBoost (random forest and boosted trees) on a config's data and split.");
  baseline->add_option("config", bl.config_path, "YAML config of a molecular property task (e.g. configs/chemberta-esol.yaml)")->required();
  baseline->add_option("--set", bl.sets, "Override a key (repeatable)")->take_all();
  baseline->add_option("--out", bl.out, "Output directory (default: run.out_dir/run.name-baseline)");
  baseline->add_flag("--force", bl.force, "Replace an existing baseline_metrics.json");

  SplitArgs sp;
  auto* split = app.add_subcommand("split", "Split a molecule CSV (random, or DeepChem's Bemis-Murcko scaffold split) into a split file.");
  split->add_option("csv", sp.csv, "MoleculeNet-style CSV with a header")->required();
  split->add_option("--smiles-col", sp.smiles_col, "SMILES column (default smiles)");
  split->add_option("--method", sp.method, "random or scaffold")->required();
  split->add_option("--frac-train", sp.frac_train, "Share of the molecules for training (default 0.8)");
  split->add_option("--frac-val", sp.frac_val, "Share for validation (default 0.1); the rest is test");
  split->add_option("--seed", sp.seed, "Seed of the random split (default 0)");
  split->add_option("--out", sp.out, "Split file to write (.json)")->required();
  split->add_flag("--force", sp.force, "Replace an existing --out file");
  split->add_option("--max-length", sp.max_length, "SMILES longer than this many characters are dropped unparsed (default 1000)");

  std::vector<std::string> argv_rest(args.begin() + (args.empty() ? 0 : 1), args.end());
  std::reverse(argv_rest.begin(), argv_rest.end());  // CLI11 parses a reversed vector
  try {
    app.parse(argv_rest);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return kExitUsage;
  }

  try {
    if (train->parsed() || pretrain->parsed()) {
      const std::string name = train->parsed() ? "train" : "pretrain";
      if (t.config_path.empty() && !(t.resume && !t.out.empty())) {
        throw UsageError(name + ": a CONFIG file is required (or --resume --out RUN_DIR to continue a run)");
      }
      if (pretrain->parsed()) t.required_task = "mlm";
      return train_command(t);
    }
    if (snapshot->parsed()) return snapshot_command(snap);
    if (metrics->parsed()) return metrics_command(met);
    if (tokenize->parsed()) return tokenize_command(tk);
    if (predict->parsed()) return predict_command(pr);
    if (exp->parsed()) return export_command(ex);
    if (baseline->parsed()) return baseline_command(bl);
    if (split->parsed()) return split_command(sp);
    if (render->parsed()) {
      const auto r = viz::render(ren);
      for (const auto& f : r.files) std::cout << f << "\n";
      std::cout << "rendered " << r.files.size() << " files, " << (r.bytes + 524288) / 1048576 << " MB, in "
                << static_cast<int>(r.seconds * 10) / 10.0 << " s\n";
      return 0;
    }
    if (config->parsed()) {
      if (reference) {
        std::cout << config_reference_markdown();
      } else {
        std::cout << to_yaml(resolve_config(cfg_path, cfg_sets).config);
      }
      return 0;
    }
  } catch (const UsageError& e) {
    log::debug(std::string("full error text: ") + e.what());
    std::cerr << "attnscope: error: " << without_trace(e.what(), 4000) << "\n";
    return kExitUsage;
  } catch (const std::filesystem::filesystem_error& e) {  // a path the user named: missing, not a folder, no space
    std::cerr << "attnscope: error: " << e.code().message() << ": '" << e.path1().string() << "'"
              << (e.path2().empty() ? std::string() : " -> '" + e.path2().string() + "'") << "\n";
    return kExitUsage;
  } catch (const TrainingError& e) {
    std::cerr << "attnscope: training failed: " << e.what() << "\n";
    return kExitTraining;
  } catch (const std::exception& e) {
    log::debug(std::string("full error text: ") + e.what());
    std::cerr << "attnscope: internal error: " << without_trace(e.what(), 4000) << "\n";
    return 1;
  }
  return 0;
}

}  // namespace attnscope::cli
