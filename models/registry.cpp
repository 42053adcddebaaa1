// The model registry and the one loader (models/registry.h).
#include "models/registry.h"

#include <nlohmann/json.hpp>

#include <filesystem>

#include "models/checkpoint.h"

namespace attnscope::models {
namespace fs = std::filesystem;

const std::vector<ModelFamily>& model_families() {
  static const std::vector<ModelFamily> families = [] {
    std::vector<ModelFamily> out;
    for (const auto& type : known_model_types()) {
      out.push_back({type, architectures_of(type),
                     [](const std::string& dir, const std::string& arch) { return load_hf_model(dir, arch); },
                     [](const TransformerConfig& c, const std::string& arch) { return build_hf_model(c, arch); },
                     [type](TaskKind task) { return traits(task).supervised ? classifier_architecture(type) : lm_architecture(type); }});
    }
    return out;
  }();
  return families;
}

const ModelFamily& model_family(const std::string& model_type, const std::string& where) {
  const std::string type = model_type.empty() ? "roberta" : model_type;
  std::vector<std::string> known;
  for (const auto& f : model_families()) {
    if (f.model_type == type) return f;
    known.push_back(f.model_type);
  }
  throw UsageError(where + ": model_type '" + type + "' is not supported (known: " + join(known) + ")");
}

const ModelFamily& family_of_dir(const std::string& dir) {
  const std::string cfg = RunDir{dir}.model_config();
  const auto j = read_json_file(cfg);
  const bool named = j.is_object() && j.contains("model_type") && j["model_type"].is_string();
  return model_family(named ? j["model_type"].get<std::string>() : "", "'" + cfg + "'");
}

const data::Tokenizer& LoadedModel::tok() const {
  if (!tokenizer) {
    throw UsageError("'" + path + "' has no tokenizer files (vocab.json, with merges.txt for BPE; vocab.txt for WordPiece)");
  }
  return *tokenizer;
}

std::pair<std::string, std::string> run_and_checkpoint(const std::string& path) {
  if (fs::is_regular_file(path) && fs::path(path).extension() == ".pt") {
    return {fs::path(path).parent_path().parent_path().string(), path};
  }
  if (fs::is_directory(path) && RunDir::is_run(path)) return {path, run_checkpoint(path)};
  return {};
}

namespace {

// The tokenizer must index the model's embedding: every id below vocab_size.
void check_tokenizer(const data::Tokenizer& tok, const TransformerConfig& c, const std::string& dir) {
  if (tok.vocab_size() > c.vocab_size) {
    throw UsageError("'" + RunDir{dir}.vocab() + "' has " + std::to_string(tok.vocab_size()) +
                     " tokens but the model's embedding has vocab_size " + std::to_string(c.vocab_size) +
                     ": the tokenizer does not belong to this model");
  }
}

// A run's regression statistics (targets.json: mean, std per target).
void read_target_stats(const nlohmann::json& t, const std::string& targets_path, LoadedModel& m) {
  try {
    m.mean = t.at("mean").get<std::vector<double>>();
    m.stdev = t.at("std").get<std::vector<double>>();
  } catch (const nlohmann::json::exception&) {
    throw UsageError("'" + targets_path + "': 'mean' and 'std' must be lists of numbers");
  }
  if (static_cast<int64_t>(m.mean.size()) != m.config().num_labels || m.stdev.size() != m.mean.size()) {
    throw UsageError("'" + targets_path + "': 'mean' and 'std' must hold " + std::to_string(m.config().num_labels) +
                     " values (one per target)");
  }
}

LoadedModel load_run(const std::string& path, const std::string& run_dir, const std::string& ckpt, const std::string& what) {
  const RunDir run{run_dir};
  if (!fs::exists(ckpt)) throw UsageError(what + " '" + path + "': no checkpoint at '" + ckpt + "'");
  for (const char* f : {RunDir::kModelConfig, RunDir::kTargets}) {
    if (!fs::exists(run.file(f))) {
      throw UsageError(what + " '" + path + "' is not a molecule run (no " + f + " in '" + run_dir +
                       "'; a min/max run has none)");
    }
  }
  LoadedModel m;
  m.path = path;
  m.origin = ckpt;
  m.run_dir = run_dir;
  const std::string targets_path = run.targets();
  const auto t = read_json_file(targets_path);
  if (!t.is_object() || !t.contains("task") || !t["task"].is_string()) {
    throw UsageError("'" + targets_path + "': expected an object with a string 'task' (written by attnscope train)");
  }
  m.task = t["task"].get<std::string>();
  const TaskTraits* task = find_task(m.task);
  if (!task || !task->molecules) throw UsageError("'" + targets_path + "': unknown task '" + m.task + "'");
  const auto& family = family_of_dir(run_dir);
  m.hf = family.build(read_hf_config(run.model_config()), family.architecture_for(task->kind));
  m.hf.dir = run_dir;
  const auto info = load_checkpoint(ckpt, m.hf.module(), nullptr, false);
  m.hf.module().eval();
  m.epoch = info.state.epoch;
  m.step = info.state.step;
  m.tokenizer = data::load_tokenizer(run_dir);
  if (task->kind == TaskKind::Regression) read_target_stats(t, targets_path, m);
  return m;
}

}  // namespace

LoadedModel load_model(const std::string& path, const std::string& what) {
  const auto [run, ckpt] = run_and_checkpoint(path);
  LoadedModel m;
  if (!run.empty()) {
    m = load_run(path, run, ckpt, what);
  } else {
    if (!fs::is_directory(path)) {
      throw UsageError(what + " '" + path + "': expected a Hugging Face model directory, an attnscope run directory or "
                       "a checkpoint (.pt)");
    }
    if (!fs::exists(RunDir{path}.model_config())) {
      throw UsageError(what + " '" + path + "' has no config.json (expected a Hugging Face model directory, or an "
                       "attnscope run directory with config.yaml and checkpoints/)");
    }
    m.path = path;
    m.origin = path;
    m.hf = family_of_dir(path).load_dir(path, "");
    if (has_tokenizer(path)) m.tokenizer = data::load_tokenizer(path);
  }
  if (m.tokenizer) check_tokenizer(*m.tokenizer, m.config(), m.run_dir.empty() ? path : m.run_dir);
  return m;
}

std::string model_files_dir(const std::string& path) {
  const auto [run, ckpt] = run_and_checkpoint(path);
  return run.empty() ? path : run;
}

bool has_tokenizer(const std::string& dir) {
  const RunDir d{dir};
  return fs::exists(d.vocab()) || fs::exists(d.file("vocab.txt")) || fs::exists(d.file("encoder.json"));
}

bool is_molecule_model(const std::string& path) {
  const auto [run, ckpt] = run_and_checkpoint(path);
  if (run.empty()) return fs::is_directory(path) && fs::exists(RunDir{path}.model_config());
  return fs::exists(RunDir{run}.targets());
}

}  // namespace attnscope::models
