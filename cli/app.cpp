// Subcommand table and argument parsing (CLI11) for the attnscope executable.
#include "cli/app.h"

#include <CLI/CLI.hpp>

#include <filesystem>
#include <functional>
#include <iostream>

#include "cli/inspect_commands.h"
#include "cli/model_commands.h"
#include "cli/split_command.h"
#include "cli/track_command.h"
#include "cli/train_command.h"
#include "core/core.h"
#include "serve/serve.h"
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

namespace {

// Every subcommand's arguments, filled by CLI11 while parsing.
struct Args {
  TrainArgs train;
  std::string config_path;
  std::vector<std::string> config_sets;
  bool reference = false;
  SnapshotArgs snapshot;
  MetricsArgs metrics;
  viz::RenderOptions render;
  TokenizeArgs tokenize;
  PredictArgs predict;
  ExportArgs export_;
  BaselineArgs baseline;
  SplitArgs split;
  TrackArgs track;
  viz::CompareOptions compare;
  serve::ServeOptions serve;
};

// A subcommand and what runs when it was parsed.
struct Command {
  CLI::App* app;
  std::function<int()> run;
};

// train and pretrain (= train for configs of task mlm: masked-LM on a SMILES corpus): same options
Command add_train(CLI::App& app, Args& a, const std::vector<std::string>& argv, bool pretrain) {
  auto& t = a.train;
  auto* c = pretrain ? app.add_subcommand("pretrain", "Masked-LM pretraining (data.task: mlm) from a YAML config into a run directory.")
                     : app.add_subcommand("train", "Train a model from a YAML config into a run directory.");
  c->add_option("config", t.config_path, std::string("YAML config (e.g. configs/") +
                                             (pretrain ? "chemberta-pretrain.yaml" : "minmax.yaml") +
                                             "); optional with --resume --out RUN_DIR");
  c->add_option("--set", t.sets, pretrain ? "Override a key (repeatable)"
                                          : "Override a key: --set optim.lr=0.001 (repeatable; YAML values, e.g. [0.9,0.99])")
      ->take_all();
  c->add_option("--out", t.out, "Run directory (default: run.out_dir/run.name)");
  c->add_flag("--resume", t.resume, "Continue the run in the run directory from its last checkpoint");
  c->add_flag("--force", t.force, "Delete an existing run directory and start over (with --nproc-per-node: also allow more ranks than cores)");
  add_launch_options(*c, t, argv);
  const std::string name = pretrain ? "pretrain" : "train";
  return {c, [&t, name, pretrain] {
            if (t.config_path.empty() && !(t.resume && !t.out.empty())) {
              throw UsageError(name + ": a CONFIG file is required (or --resume --out RUN_DIR to continue a run)");
            }
            if (pretrain) t.required_task = traits(TaskKind::MaskedLM).name;
            return train_command(t);
          }};
}

Command add_config(CLI::App& app, Args& a) {
  auto* c = app.add_subcommand("config", "Print the resolved config (defaults < file < --set), or the key reference.");
  c->add_option("config", a.config_path, "YAML config (optional)");
  c->add_option("--set", a.config_sets, "Override a key (repeatable)")->take_all();
  c->add_flag("--reference", a.reference, "Print every key with its default and meaning (Markdown)");
  return {c, [&a] {
            if (a.reference) {
              std::cout << config_reference_markdown();
            } else {
              std::cout << to_yaml(resolve_config(a.config_path, a.config_sets).config);
            }
            return 0;
          }};
}

// --smiles / --smiles-file / --text / --text-file: the inputs of snapshot, tokenize and predict.
void add_input_options(CLI::App* c, SmilesInput& in) {
  c->add_option("--smiles", in.smiles, "Molecule models: SMILES strings")->take_all();
  c->add_option("--smiles-file", in.file, "Molecule models: one SMILES per line, or a CSV with a smiles column");
  c->add_option("--text", in.text, "Text models: text strings")->take_all();
  c->add_option("--text-file", in.text_file, "Text models: one input per line");
  c->add_option("--max-input-chars", in.max_input_chars, "Longest input read, in characters (default 1000000; the model's positions, not this cap, limit what a model reads)");
}

Command add_snapshot(CLI::App& app, SnapshotArgs& snap) {
  auto* c = app.add_subcommand("snapshot", "Record a frozen model's attention on given inputs into an attention file (bertviz's use case, from the command line).");
  c->add_option("--model", snap.model, "Hugging Face model directory, run directory (its best.pt, else last.pt) or checkpoint (.pt)")->required();
  c->add_option("--ids", snap.ids, "Inputs as token ids, one example per value: --ids \"3 128 5 130\" \"9 129 2 130\"")->take_all();
  c->add_option("--ids-file", snap.ids_file, "Inputs from a file, one example of token ids per line");
  add_input_options(c, snap.input);
  c->add_option("--sites", snap.sites, "Sites to store (default attn.probs attn.scores)")->take_all();
  c->add_option("--out", snap.out, "Attention file to write (.h5; must not exist)")->required();
  return {c, [&snap] { return snapshot_command(snap); }};
}

Command add_track(CLI::App& app, TrackArgs& tr) {
  auto* c = app.add_subcommand("track", "Record attention across a series of checkpoints trained anywhere (a Hugging Face Trainer output directory, Hugging Face directories, attnscope checkpoints or a run's kept ones) into one attention file.");
  c->add_option("checkpoints", tr.checkpoints, "A Trainer output directory (checkpoint-N/ by N), an attnscope run directory (checkpoints/epoch-N.pt), or models in order")->required();
  add_input_options(c, tr.input);
  c->add_option("--data", tr.data, "Per-head metrics over a CSV (smiles or text column) or a config's validation split; the probes too when no inputs are given");
  c->add_option("--column", tr.column, "--data CSV: the input column (default smiles, else text)");
  c->add_option("--probes", tr.probes, "Probes taken from --data when no inputs are given (default 32)");
  c->add_option("--sites", tr.sites, "Sites to store (default attn.probs attn.scores)")->take_all();
  c->add_option("--out", tr.out, "Output folder (attention.h5, metrics.jsonl, track.json) or a .h5 file")->required();
  c->add_flag("--resume", tr.resume, "Continue a killed track: the checkpoints already recorded are not redone");
  c->add_flag("--force", tr.force, "Replace an existing output");
  return {c, [&tr] { return track_command(tr); }};
}

Command add_compare(CLI::App& app, viz::CompareOptions& co) {
  auto* c = app.add_subcommand("compare", "Compare runs head by head: JS divergence between their maps on the same probes, heads matched (Hungarian), metric differences; figures and an offline report.");
  c->add_option("runs", co.inputs, "Two or more run directories or attention .h5 files (each compared with the first)")->required();
  c->add_option("--epoch", co.epoch, "A recorded epoch every run holds, or last (default: each run's last)");
  c->add_option("--out", co.out, "Output folder (default ./compare): compare.json, compare.html, figures/compare_*.png");
  c->add_option("--probe", co.probe, "Probe of the side-by-side head maps (default 0)");
  c->add_option("--format", co.formats, "Any of png, svg, html (default png,html)")->delimiter(',');
  c->add_option("--web-dir", co.web_dir, "Report template and npm libraries (default: the source tree's viz/web)");
  return {c, [&co] {
            const auto r = viz::compare(co);
            std::cout << r.summary;
            for (const auto& f : r.rendered.files) std::cout << f << "\n";
            return 0;
          }};
}

Command add_serve(CLI::App& app, serve::ServeOptions& so) {
  auto* c = app.add_subcommand("serve", "Explore a model's attention live in the browser: type an input, see every layer and head (page at /, JSON API at /api/*; docs/serve.md).");
  c->add_option("model", so.model, "A Hugging Face directory, a run directory (its checkpoints and recorded report on offer) or a checkpoint")->required();
  c->add_option("--host", so.host, "Address to listen on (default 127.0.0.1: this machine only)");
  c->add_option("--port", so.port, "Port (default 8080; 0: any free one)");
  c->add_option("--threads", so.threads, "Inference workers (default: the machine's cores)");
  c->add_option("--queue", so.queue, "Requests that may wait for a worker before the server answers 503 (default 64)");
  c->add_option("--cache-mb", so.cache_mb, "Recent answers kept in memory, by request (default 64 MB; 0: none)");
  c->add_option("--input", so.input, "What the input box takes: auto (default), smiles or text");
  c->add_option("--max-input-chars", so.limits.max_input_chars, "Longest input accepted, in characters (default 4000)");
  c->add_option("--request-timeout", so.request_timeout_s,
                "Seconds a request's head and body may take to arrive, whole (default 10; then 408)");
  c->add_option("--web-dir", so.web_dir, "Page template and npm libraries (default: the source tree's viz/web)");
  return {c, [&so] { return serve::serve_command(so); }};
}

Command add_metrics(CLI::App& app, MetricsArgs& met) {
  auto* c = app.add_subcommand("metrics", "Print the per-layer, per-head attention metrics of a recorded run.");
  c->add_option("path", met.path, "Run directory or attention .h5");
  c->add_option("--epoch", met.epoch, "Epoch (default: the last with metrics)");
  c->add_flag("--csv", met.csv, "All metrics, as CSV");
  c->add_flag("--synthetic", met.synthetic, "The seven canonical patterns (diagonal, bos, broadcast, uniform, local, mixed, block) as synthetic maps, their metrics and the class the thresholds give: to calibrate the thresholds");
  c->add_option("--length", met.length, "--synthetic: tokens per map (default 12)");
  c->add_option("--out", met.out, "--synthetic: also draw the maps into OUT/synthetic_patterns.png");
  return {c, [&met] { return metrics_command(met); }};
}

Command add_render(CLI::App& app, viz::RenderOptions& ren) {
  auto* c = app.add_subcommand("render", "Draw a run's figures (PNG/SVG, PLplot) and its offline HTML report from its files.");
  c->add_option("run", ren.input, "Run directory or its attention.h5")->required();
  c->add_option("--out", ren.out, "Output folder (default: the run directory): DIR/figures/*.png, DIR/report.html");
  c->add_option("--epochs", ren.epochs, "Recorded epochs to draw (default: the last; the report: all)")->delimiter(',');
  c->add_option("--probes", ren.probes, "Probe indices (default: one per operator / probe 0)")->delimiter(',');
  c->add_option("--layers", ren.layers, "Layers for the single-head figures")->delimiter(',');
  c->add_option("--heads", ren.heads, "Heads for the single-head figures (default: all, or the 4 most important)")->delimiter(',');
  c->add_option("--format", ren.formats, "Any of png, svg, html (default png,html)")->delimiter(',');
  c->add_option("--web-dir", ren.web_dir, "Report template and npm libraries (default: the source tree's viz/web)");
  return {c, [&ren] {
            const auto r = viz::render(ren);
            for (const auto& f : r.files) std::cout << f << "\n";
            std::cout << "rendered " << r.files.size() << " files, " << (r.bytes + 524288) / 1048576 << " MB, in "
                      << static_cast<int>(r.seconds * 10) / 10.0 << " s\n";
            return 0;
          }};
}

Command add_tokenize(CLI::App& app, TokenizeArgs& tk) {
  auto* c = app.add_subcommand("tokenize", "Print each input's tokens, ids (BERT: and token types) and byte spans (one JSON object per line).");
  c->add_option("--model", tk.model, "Hugging Face model or tokenizer directory (vocab.json + merges.txt, vocab.txt), run or checkpoint")->required();
  add_input_options(c, tk.input);
  c->add_option("--max-len", tk.max_len, "Cut to N tokens incl. the special tokens (default: every id, as transformers; a warning names inputs longer than the model's positions)");
  c->add_flag("--truncate", tk.truncate, "Cut to the model's positions (config.json), as transformers' truncation=True");
  return {c, [&tk] { return tokenize_command(tk); }};
}

Command add_predict(CLI::App& app, PredictArgs& pr) {
  auto* c = app.add_subcommand("predict", "Run a regression / classification model on SMILES or text (CSV of outputs under the label names; classification: logits and probabilities), or a masked-LM on inputs with <mask> / [MASK] (JSON lines: the top-k tokens per mask, as transformers' fill-mask).");
  c->add_option("--model", pr.model, "Hugging Face model directory, run directory or checkpoint (.pt)")->required();
  add_input_options(c, pr.input);
  c->add_option("--output", pr.output, "CSV file to write (default: stdout)");
  c->add_option("--too-long", pr.too_long, "Inputs longer than the model's positions: truncate (warn) or error");
  c->add_option("--batch", pr.batch, "Inputs per forward pass (default 32)");
  c->add_option("--top-k", pr.top_k, "A masked-LM: tokens per mask (default 5; refused for other models)");
  return {c, [&pr] { return predict_command(pr); }};
}

Command add_export(CLI::App& app, ExportArgs& ex) {
  auto* c = app.add_subcommand("export", "Write a model as a Hugging Face directory (transformers' from_pretrained reads it).");
  c->add_option("--model", ex.model, "Hugging Face model directory, molecule run directory or checkpoint (.pt)")->required();
  c->add_option("--hf", ex.hf, "Output directory (must not exist or be empty)")->required();
  return {c, [&ex] { return export_command(ex); }};
}

Command add_baseline(CLI::App& app, BaselineArgs& bl) {
  auto* c = app.add_subcommand("baseline", "ECFP4 fingerprints (molecules) or a bag of words (text) + XGBoost (random forest and boosted trees) on a config's data and split.");
  c->add_option("config", bl.config_path, "YAML config of a molecular property task (e.g. configs/chemberta-esol.yaml)")->required();
  c->add_option("--set", bl.sets, "Override a key (repeatable)")->take_all();
  c->add_option("--out", bl.out, "Output directory (default: run.out_dir/run.name-baseline)");
  c->add_flag("--force", bl.force, "Replace an existing baseline_metrics.json");
  return {c, [&bl] { return baseline_command(bl); }};
}

Command add_split(CLI::App& app, SplitArgs& sp) {
  auto* c = app.add_subcommand("split", "Split a molecule CSV (random, or DeepChem's Bemis-Murcko scaffold split) into a split file.");
  c->add_option("csv", sp.csv, "MoleculeNet-style CSV with a header")->required();
  c->add_option("--smiles-col", sp.smiles_col, "SMILES column (default smiles)");
  c->add_option("--method", sp.method, "random or scaffold")->required();
  c->add_option("--frac-train", sp.frac_train, "Share of the molecules for training (default 0.8)");
  c->add_option("--frac-val", sp.frac_val, "Share for validation (default 0.1); the rest is test");
  c->add_option("--seed", sp.seed, "Seed of the random split (default 0)");
  c->add_option("--out", sp.out, "Split file to write (.json)")->required();
  c->add_flag("--force", sp.force, "Replace an existing --out file");
  c->add_option("--max-length", sp.max_length, "SMILES longer than this many characters are dropped unparsed (default 1000)");
  return {c, [&sp] { return split_command(sp); }};
}

// Runs the parsed subcommand; errors become their exit codes (2 usage, 3 training, 1 internal).
int run_parsed(const std::vector<Command>& commands) {
  try {
    for (const auto& c : commands) {
      if (c.app->parsed()) return c.run();
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

}  // namespace

int run(const std::vector<std::string>& args) {
  CLI::App app{"attnscope: train transformers and record how their attention changes, epoch by epoch.", "attnscope"};
  app.set_version_flag("--version", std::string("attnscope ") + kVersion);
  app.require_subcommand(1);
  Args a;
  for (const auto& s : args) a.train.command_line += (a.train.command_line.empty() ? "" : " ") + s;
  const std::vector<Command> commands = {
      add_train(app, a, args, false), add_train(app, a, args, true), add_config(app, a),
      add_snapshot(app, a.snapshot),  add_metrics(app, a.metrics),   add_render(app, a.render),
      add_tokenize(app, a.tokenize),  add_predict(app, a.predict),   add_export(app, a.export_),
      add_baseline(app, a.baseline),  add_split(app, a.split),       add_track(app, a.track),
      add_compare(app, a.compare),    add_serve(app, a.serve)};
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
  return run_parsed(commands);
}

}  // namespace attnscope::cli
