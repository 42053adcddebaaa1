// Opening a run's files for viz (viz/run.h).
#include "viz/run.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/core.h"

namespace attnscope::viz {
namespace fs = std::filesystem;
namespace {

std::string list(const std::vector<int64_t>& v) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) {
    if (i == 12 && v.size() > 16) {
      s += ", ... " + std::to_string(v.back());
      break;
    }
    s += (i ? ", " : "") + std::to_string(v[i]);
  }
  return s;
}

// metrics.jsonl: one JSON object per line. A run killed mid-write may leave a partial last line,
// which is skipped; any other bad line is an error naming it.
std::vector<std::map<std::string, double>> read_curves(const std::string& path) {
  std::vector<std::map<std::string, double>> rows;
  std::ifstream in(path);
  if (!in) return rows;
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  for (size_t i = 0; i < lines.size(); ++i) {
    if (lines[i].empty()) continue;
    const auto j = nlohmann::json::parse(lines[i], nullptr, false);
    if (j.is_discarded() || !j.is_object()) {
      if (i + 1 == lines.size()) break;  // the torn last line of a killed run
      throw UsageError("'" + path + "' line " + std::to_string(i + 1) + ": expected one JSON object per line");
    }
    std::map<std::string, double> row;
    for (auto it = j.begin(); it != j.end(); ++it) {
      if (it.value().is_number()) row[it.key()] = it.value().get<double>();
    }
    rows.push_back(std::move(row));
  }
  return rows;
}

// r.dir and r.h5 from `input`: a run directory or an attention file.
void locate(Run& r, const std::string& input) {
  if (fs::is_directory(input)) {
    r.dir = input;
    r.h5 = (fs::path(input) / RunDir::kAttention).string();
    if (!fs::exists(r.h5)) {
      throw UsageError("'" + input + "' holds no " + RunDir::kAttention +
                       ": record attention with hooks.attention.enabled: true");
    }
  } else {
    if (!fs::exists(input)) {
      throw UsageError("'" + input + "' does not exist (expected a run directory or an " + RunDir::kAttention + ")");
    }
    r.h5 = input;
    r.dir = fs::path(input).parent_path().string();
    if (r.dir.empty()) r.dir = ".";
  }
}

// The run's name: its folder's, or a file of its own's (a snapshot's FILE.h5).
std::string run_name(const Run& r) {
  const fs::path dir = fs::path(fs::absolute(r.dir)).lexically_normal();
  std::string name = dir.filename().string();
  if (name.empty() || name == ".") name = dir.parent_path().filename().string();
  if (fs::path(r.h5).filename() != RunDir::kAttention) name = fs::path(r.h5).stem().string();
  return name;
}

// r.task, r.traits and r.molecules: from the header's task; in files written before it was
// stored, from the model (the tasks that train it).
void resolve_task(Run& r) {
  if (!r.header().task.empty()) {
    r.traits = &task_named(r.header().task, "'" + r.h5 + "': attribute 'task'");
    r.task = r.traits->name;
    r.molecules = r.traits->molecules && r.model.value("inputs", std::string("smiles")) == "smiles";
    return;
  }
  const std::string model = r.model.value("name", std::string("model"));
  std::vector<const TaskTraits*> tasks;
  for (const auto& t : all_tasks()) {
    if (std::find(t.models.begin(), t.models.end(), model) != t.models.end()) tasks.push_back(&t);
  }
  r.traits = tasks.size() == 1 ? tasks[0] : nullptr;
  r.task = r.traits != nullptr ? r.traits->name : model;
  r.molecules = !tasks.empty() && std::all_of(tasks.begin(), tasks.end(), [](const TaskTraits* t) { return t->molecules; });
}

}  // namespace

Run open_run(const std::string& input) {
  Run r;
  locate(r, input);
  try {
    r.file = std::make_unique<store::Reader>(r.h5);
  } catch (const UsageError&) {
    throw;
  } catch (const std::exception& e) {
    throw UsageError("'" + r.h5 + "' cannot be read: " + e.what() + " (truncated or damaged?)");
  }
  r.epochs = r.file->epochs();
  if (r.epochs.empty()) throw UsageError("'" + r.h5 + "' holds no recorded epoch yet");
  r.name = run_name(r);
  r.model = nlohmann::json::parse(r.header().model_json, nullptr, false);
  if (r.model.is_discarded()) r.model = nlohmann::json::object();
  resolve_task(r);
  r.L = static_cast<int64_t>(r.header().layer_ids.size());
  r.H = static_cast<int64_t>(r.header().head_ids.size());
  r.P = r.probes().count;
  r.T = r.probes().max_len;
  r.curves = read_curves((fs::path(r.dir) / RunDir::kMetrics).string());
  const auto mech = fs::path(r.dir) / RunDir::kMechanism;
  if (fs::exists(mech)) r.mechanism = read_json_file(mech.string());
  return r;
}

std::vector<std::string> Run::tokens(int64_t p) const {
  const auto& pr = probes();
  return std::vector<std::string>(pr.tokens.begin() + p * pr.max_len, pr.tokens.begin() + p * pr.max_len + length(p));
}

bool Run::has_site(const std::string& site) const {
  for (const auto& s : header().sites) {
    if (s == site) return true;
  }
  return false;
}

int64_t Run::epoch_index(int64_t epoch) const {
  std::vector<int64_t> have;
  for (size_t i = 0; i < epochs.size(); ++i) {
    if (epochs[i].epoch == epoch) return static_cast<int64_t>(i);
    have.push_back(epochs[i].epoch);
  }
  throw UsageError("epoch " + std::to_string(epoch) + " was not recorded in '" + h5 + "'; recorded epochs: " + list(have));
}

int64_t Run::layer_index(int64_t layer) const {
  const auto& ids = header().layer_ids;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] == layer) return static_cast<int64_t>(i);
  }
  throw UsageError("layer " + std::to_string(layer) + " was not recorded in '" + h5 + "'; recorded layers: " + list(ids));
}

int64_t Run::head_index(int64_t head) const {
  const auto& ids = header().head_ids;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] == head) return static_cast<int64_t>(i);
  }
  throw UsageError("head " + std::to_string(head) + " was not recorded in '" + h5 + "'; recorded heads: " + list(ids));
}

std::string Run::label() const {
  std::ostringstream s;
  s << "run " << name << " · " << model.value("name", std::string("model"));
  return s.str();
}

std::vector<float> crop(const std::vector<float>& map, int64_t T, int64_t n) {
  std::vector<float> out(static_cast<size_t>(n * n));
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < n; ++j) out[i * n + j] = map[i * T + j];
  }
  return out;
}

}  // namespace attnscope::viz
