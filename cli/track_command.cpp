// attnscope track (cli/track_command.h): one checkpoint in memory at a time, each recorded as the
// next "epoch" of one attention file by the same recorder as a run's, so render, metrics and the
// report read the result unchanged.
#include "cli/track_command.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <limits>
#include <regex>
#include <set>

#include <nlohmann/json.hpp>

#include "cli/inspect_commands.h"
#include "core/core.h"
#include "data/data.h"
#include "hooks/hooks.h"
#include "models/models.h"
#include "store/store.h"
#include "train/train.h"

namespace attnscope::cli {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// checkpoint-N folders of a Hugging Face Trainer output directory, by N; a folder whose N does
// not fit a step count (int64) is refused naming it.
std::vector<std::pair<int64_t, fs::path>> trainer_checkpoints(const fs::path& dir) {
  std::vector<std::pair<int64_t, fs::path>> out;
  static const std::regex name("checkpoint-([0-9]+)");
  std::smatch m;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string n = e.path().filename().string();
    if (!e.is_directory() || !std::regex_match(n, m, name)) continue;
    const std::string digits = m[1].str();
    int64_t step = 0;
    const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), step);
    if (ec != std::errc() || end != digits.data() + digits.size()) {
      throw UsageError("track: checkpoint folder '" + e.path().string() + "': its step number " + digits +
                       " is out of range (at most " + std::to_string(std::numeric_limits<int64_t>::max()) +
                       "); rename or remove that folder");
    }
    out.emplace_back(step, e.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

// What a Trainer logged up to `step`: its trainer_state.json (the checkpoint's own, else the
// output directory's) gives the epoch and the last training and evaluation losses. A key read here
// of the wrong type is refused naming the file and the key (every one at once); null is not logged.
void read_trainer_state(TrackEntry& e, const fs::path& ckpt, const fs::path& root) {
  fs::path state = ckpt / "trainer_state.json";
  if (!fs::exists(state)) state = root / "trainer_state.json";
  if (!fs::exists(state)) return;
  const json s = read_json_file(state.string());
  if (!s.is_object()) throw UsageError("'" + state.string() + "': expected a JSON object (Hugging Face trainer_state.json)");
  const bool own = state.parent_path() == ckpt;  // (the output directory's global_step and epoch are its last)
  std::vector<std::string> problems;
  auto got = [](const json& v) { return ", got " + v.dump().substr(0, 40); };
  // `key` of `obj` into `into` when it is a number (unchanged when absent or null)
  auto number = [&](const json& obj, const std::string& where, const char* key, double& into) {
    if (!obj.contains(key) || obj[key].is_null()) return false;
    if (!obj[key].is_number()) {
      problems.push_back(where + key + ": expected a number" + got(obj[key]));
      return false;
    }
    into = obj[key].get<double>();
    return true;
  };
  double epoch = e.epoch;
  if (own && s.contains("global_step") && !s["global_step"].is_null()) {
    const auto& v = s["global_step"];
    if (!v.is_number_integer() || v.get<double>() < 0 || v.get<double>() >= 9.2e18) {
      problems.push_back("global_step: expected an integer >= 0 (optimizer steps)" + got(v));
    } else {
      e.step = v.get<int64_t>();
    }
  }
  if (own) number(s, "", "epoch", epoch);
  if (s.contains("log_history") && !s["log_history"].is_null() && !s["log_history"].is_array()) {
    problems.push_back("log_history: expected an array of logged rows" + got(s["log_history"]));
  } else if (s.contains("log_history") && s["log_history"].is_array()) {
    double loss = e.loss, eval_loss = e.eval_loss;
    const auto& rows = s["log_history"];
    for (size_t i = 0; i < rows.size(); ++i) {
      const auto& row = rows[i];
      const std::string where = "log_history[" + std::to_string(i) + "].";
      if (!row.is_object()) {
        problems.push_back("log_history[" + std::to_string(i) + "]: expected an object" + got(row));
        continue;
      }
      double step = 0, row_loss = -1, row_eval = -1, row_epoch = -1;
      const bool has_step = number(row, where, "step", step);
      const bool has_loss = number(row, where, "loss", row_loss), has_eval = number(row, where, "eval_loss", row_eval);
      const bool has_epoch = number(row, where, "epoch", row_epoch);
      if (!has_step || step > static_cast<double>(e.step)) continue;
      if (has_loss) loss = row_loss;
      if (has_eval) eval_loss = row_eval;
      if (epoch < 0 && has_epoch) epoch = row_epoch;
    }
    e.loss = loss;
    e.eval_loss = eval_loss;
  }
  if (!problems.empty()) {
    throw UsageError(problem_list("track: '" + state.string() + "' is not a usable Hugging Face trainer_state.json:", problems));
  }
  e.epoch = epoch;
}

// The inputs the per-head metrics run over: a CSV's input column (smiles, else text, or
// --column), or the validation split of a config's data. Returns the inputs and whether they are text.
std::pair<std::vector<std::string>, bool> read_data(const std::string& path, const std::string& column) {
  const std::string ext = fs::path(path).extension().string();
  if (ext == ".yaml" || ext == ".yml") {
    const Config config = resolve_config(path, {}).config;
    const auto& d = config.data;
    if (d.csv.empty()) throw UsageError("--data '" + path + "': its data.csv is empty (a molecule or text data set is needed)");
    const bool text = !d.text_col.empty() || d.task == "clm";
    data::MoleculeTable table;
    if (d.task == "mlm" || d.task == "clm") {
      for (auto& t : text ? data::read_text_corpus(d.csv, d.text_col) : data::read_smiles_corpus(d.csv, d.smiles_col, true)) {
        table.smiles.push_back(std::move(t));
      }
      table.line.assign(table.smiles.size(), 0);
    } else {
      table = text ? data::read_text_csv(d.csv, d.text_col, "", {}) : data::read_molecule_csv(d.csv, d.smiles_col, {});
    }
    const auto seed = static_cast<uint64_t>(config.run.seed);
    const auto split = d.task == "mlm" || d.task == "clm" ? data::random_split(table.size(), 1.0 - d.frac_val, d.frac_val, seed)
                                                          : data::config_split(d, table, seed);
    std::vector<std::string> out;
    for (int64_t r : split.val) out.push_back(table.smiles[static_cast<size_t>(r)]);
    if (out.empty()) throw UsageError("--data '" + path + "': its validation split is empty");
    log::info("track: per-head metrics over the " + std::to_string(out.size()) + " inputs of the validation split of " + path);
    return {out, text};
  }
  std::string col = column;
  if (col.empty()) {  // the header names the column: smiles, else text
    std::ifstream in(path);
    if (!in) throw UsageError("--data '" + path + "': cannot open it");
    std::string header;
    std::getline(in, header);
    std::set<std::string> names;
    std::stringstream ss(header);
    for (std::string f; std::getline(ss, f, ',');) names.insert(trim(f));
    col = names.count("smiles") ? "smiles" : names.count("text") ? "text" : "";
    if (col.empty()) throw UsageError("--data '" + path + "': no 'smiles' or 'text' column in its header (name one with --column)");
  }
  const bool text = col != "smiles";
  auto table = text ? data::read_text_csv(path, col, "", {}) : data::read_molecule_csv(path, col, {});
  if (table.smiles.empty()) throw UsageError("--data '" + path + "': no inputs in column '" + col + "'");
  return {table.smiles, text};
}

// What every checkpoint of a series must share with the first: the architecture (the model
// description) and the tokenizer (kind, size and every token). Holds no weights.
struct Reference {
  std::string path;
  json desc;
  std::shared_ptr<const data::Tokenizer> tok;
  static json describe(const models::LoadedModel& m) {
    return json::parse(train::transformer_model_json(m.config(), "", {}, m.tok().kind(), false));
  }
  explicit Reference(const models::LoadedModel& m) : path(m.path), desc(describe(m)), tok(m.tokenizer) {}
  // The keys by which `m` differs ("" when it agrees).
  std::string differences(const models::LoadedModel& m) const {
    const json other = describe(m);
    std::string diff;
    for (const auto& [k, v] : desc.items()) {
      if (other.contains(k) && other[k] != v) diff += (diff.empty() ? "" : ", ") + k + " " + v.dump() + " vs " + other[k].dump();
    }
    if (!diff.empty()) return diff;
    const auto& tb = m.tok();
    if (tok->vocab_size() != tb.vocab_size()) {
      return "tokenizer vocabulary " + std::to_string(tok->vocab_size()) + " vs " + std::to_string(tb.vocab_size()) + " tokens";
    }
    for (int64_t i = 0; i < tok->vocab_size(); ++i) {
      if (tok->id_token(i) != tb.id_token(i)) {
        return "tokenizer token " + std::to_string(i) + " '" + tok->id_token(i) + "' vs '" + tb.id_token(i) + "'";
      }
    }
    return "";
  }
};

json entry_json(const TrackEntry& e, int64_t epoch) {
  json j = {{"epoch", epoch}, {"checkpoint", e.label}, {"path", e.path}};
  if (e.step >= 0) j["step"] = e.step;
  if (e.epoch >= 0) j["train_epoch"] = e.epoch;
  if (e.loss >= 0) j["loss"] = e.loss;
  if (e.eval_loss >= 0) j["eval_loss"] = e.eval_loss;
  return j;
}

// Where track writes (DIR/attention.h5, metrics.jsonl and track.json, or FILE.h5 and
// FILE.h5.track.json) and which of those files were there before the command: a refused track that
// recorded nothing removes what it wrote and nothing else; --force replaces the old files only when
// the first checkpoint is about to be recorded.
struct TrackOutput {
  std::string out;
  bool to_dir;
  fs::path h5, dir, state, curves;
  bool dir_existed;
  std::set<fs::path> existed;  // of files()
  bool replace = false;        // --force: the old files go when recording starts
  explicit TrackOutput(const std::string& o)
      : out(o),
        to_dir(fs::path(o).extension() != ".h5"),
        h5(to_dir ? fs::path(o) / RunDir::kAttention : fs::path(o)),
        dir(to_dir ? fs::path(o) : h5.parent_path()),
        state(to_dir ? dir / "track.json" : fs::path(o + ".track.json")),
        curves(to_dir ? dir / RunDir::kMetrics : fs::path()),
        dir_existed(fs::exists(dir)) {
    for (const auto& p : files()) {
      if (fs::exists(p)) existed.insert(p);
    }
  }
  std::vector<fs::path> files() const { return to_dir ? std::vector<fs::path>{h5, state, curves} : std::vector<fs::path>{h5, state}; }
  void begin_writing() {
    if (!replace) return;
    for (const auto& p : files()) fs::remove(p);
    existed.clear();
    replace = false;
  }
  void remove_written() const {
    std::error_code ec;
    for (const auto& p : files()) {
      if (!existed.count(p)) fs::remove(p, ec);
    }
    if (to_dir && !dir_existed) fs::remove(dir, ec);  // (only when empty)
  }
  // After each recorded checkpoint: the state file (the checkpoints done, for --resume) and the
  // curves render draws (the trainer's losses at each checkpoint, under a run's metrics.jsonl names).
  void write_progress(const json& done, const json& about) const {
    if (to_dir) {
      std::string lines;
      for (const auto& d : done) {
        json r = d;
        r.erase("checkpoint");
        r.erase("path");
        if (r.contains("loss")) r["train_loss"] = r["loss"], r.erase("loss");
        if (r.contains("eval_loss")) r["val_loss"] = r["eval_loss"], r.erase("eval_loss");
        lines += r.dump() + "\n";
      }
      write_file_atomic(curves.string(), lines);
    }
    json s = {{"checkpoints", done}};
    s.update(about);
    write_file_atomic(state.string(), s.dump(2) + "\n");
  }
  std::string continue_note(size_t recorded) const {
    return "track: " + std::to_string(recorded) + (recorded == 1 ? " checkpoint recorded so far is" : " checkpoints recorded so far are") +
           " kept in '" + out + "'; once this is fixed, the same `attnscope track ... --out " + out +
           " --resume` continues it without redoing them (--force starts over)";
  }
};

}  // namespace

std::vector<TrackEntry> track_entries(const std::vector<std::string>& checkpoints) {
  if (checkpoints.empty()) throw UsageError("track: name the checkpoints (a Trainer output directory, a run directory, or models)");
  std::vector<TrackEntry> out;
  if (checkpoints.size() == 1 && fs::is_directory(checkpoints[0])) {
    const fs::path dir = checkpoints[0];
    if (const auto hf = trainer_checkpoints(dir); !hf.empty()) {  // a Hugging Face Trainer output directory
      for (const auto& [n, path] : hf) {
        TrackEntry e;
        e.path = path.string();
        e.label = path.filename().string();
        e.step = n;
        read_trainer_state(e, path, dir);
        if (!models::has_tokenizer(e.path) && models::has_tokenizer(dir.string())) e.tokenizer_dir = dir.string();
        out.push_back(std::move(e));
      }
      return out;
    }
    const RunDir run{dir.string()};
    const fs::path ck = run.file(RunDir::kCheckpoints);
    if (fs::is_directory(ck)) {  // an attnscope run: its kept checkpoints, then last.pt (skipped when it repeats the last kept epoch)
      std::vector<std::pair<int64_t, fs::path>> by_epoch;
      for (const auto& e : fs::directory_iterator(ck)) {
        const int64_t epoch = RunDir::kept_epoch(e.path().filename().string());
        if (epoch >= 0) by_epoch.emplace_back(epoch, e.path());
      }
      std::sort(by_epoch.begin(), by_epoch.end());
      std::vector<fs::path> kept;
      for (auto& [epoch, p] : by_epoch) kept.push_back(std::move(p));
      if (fs::exists(ck / RunDir::kLastCheckpoint)) kept.push_back(ck / RunDir::kLastCheckpoint);
      if (kept.size() < 2) {
        throw UsageError("track: run '" + dir.string() + "' kept no epoch checkpoints (checkpoints/epoch-NNNNNN.pt): train it with "
                         "--set train.keep_every=N, or name checkpoints or Hugging Face directories");
      }
      for (const auto& p : kept) out.push_back({p.string(), p.filename().string()});
      return out;
    }
    if (!fs::exists(run.model_config())) {
      throw UsageError("track: '" + dir.string() + "' holds no checkpoint-N folders (a Hugging Face Trainer output), no "
                       "checkpoints/ (an attnscope run) and no config.json (one Hugging Face model)");
    }
  }
  for (const auto& c : checkpoints) {
    if (!fs::exists(c)) throw UsageError("track: '" + c + "' does not exist");
    out.push_back({c, fs::path(c).filename().string()});
  }
  return out;
}

int track_command(const TrackArgs& a) {
  const auto entries = track_entries(a.checkpoints);
  if (a.out.empty()) throw UsageError("track: --out DIR (or FILE.h5) is required");
  TrackOutput out(a.out);
  const fs::path& h5 = out.h5;
  if (a.resume && a.force) throw UsageError("track: --resume and --force exclude each other");
  if (fs::exists(h5) && !a.resume) {
    if (!a.force) throw UsageError("track: '" + h5.string() + "' exists (--resume continues it, --force replaces it)");
    out.replace = true;
  }
  // inputs: the probes, and what the per-head metrics run over
  const int given = !a.input.smiles.empty() + !a.input.file.empty() + !a.input.text.empty() + !a.input.text_file.empty();
  if (given == 0 && a.data.empty()) {
    throw UsageError("track: give the probes with --smiles, --smiles-file, --text or --text-file, or a data set with --data");
  }
  std::vector<std::string> validation, probe_inputs;
  bool text = a.input.is_text();
  if (!a.data.empty()) {
    auto [rows, is_text] = read_data(a.data, a.column);
    validation = std::move(rows);
    if (given == 0) text = is_text;
  }
  if (given > 0) {
    probe_inputs = read_smiles(a.input);
  } else {
    if (a.probes < 1) throw UsageError("--probes must be >= 1");
    probe_inputs.assign(validation.begin(), validation.begin() + std::min<int64_t>(a.probes, static_cast<int64_t>(validation.size())));
  }
  std::string probe_text;
  for (const auto& s : probe_inputs) probe_text += s + "\n";

  // what an earlier, killed track finished (its state file lists the checkpoints done)
  json done = json::array();
  if (a.resume && fs::exists(h5) && fs::exists(out.state)) {
    const json s = read_json_file(out.state.string());
    if (s.contains("checkpoints") && s["checkpoints"].is_array()) done = s["checkpoints"];
  }
  std::set<std::string> done_paths;
  for (const auto& d : done) done_paths.insert(d.value("path", ""));
  if (!done.empty()) log::info("track: resuming after " + std::to_string(done.size()) + " recorded checkpoints");
  Config config;
  train::configure_threads(config.run);
  snapshot_hooks(config, a.sites, /*metrics=*/true);  // (bad --sites: refused before anything is written)
  const json about = {{"inputs", given > 0 ? "given" : a.data}, {"metrics_over", validation.empty() ? "the probes" : a.data}};
  std::unique_ptr<Reference> first;
  int64_t last_epoch = done.empty() ? -1 : done.back().value("epoch", -1);
  int64_t last_train_epoch = done.empty() ? -1 : static_cast<int64_t>(done.back().value("train_epoch", -1.0));
  auto load = [](const TrackEntry& e) {
    auto m = models::load_model(e.path, "track: checkpoint");
    if (!e.tokenizer_dir.empty() && !m.tokenizer) m.tokenizer = data::load_tokenizer(e.tokenizer_dir);
    if (!m.tokenizer) throw UsageError("track: '" + e.path + "' has no tokenizer files (vocab.json, vocab.txt) and none is beside it");
    return m;
  };
  try {  // a refusal from here on: what this command wrote is removed when it recorded nothing
    if (out.to_dir) fs::create_directories(out.dir);
    for (size_t k = 0; k < entries.size(); ++k) {
      auto e = entries[k];
      if (done_paths.count(e.path)) {
        if (!first && e.path == done.front().value("path", "")) first = std::make_unique<Reference>(load(e));
        continue;
      }
      auto model = load(e);  // one checkpoint in memory at a time
      if (!model.run_dir.empty()) {  // an attnscope checkpoint: its own epoch and step
        if (model.epoch == last_train_epoch) continue;  // last.pt of the epoch kept just before
        e.step = model.step;
        e.epoch = static_cast<double>(model.epoch);
        last_train_epoch = model.epoch;
      }
      if (!first) first = std::make_unique<Reference>(model);
      if (const std::string diff = first->differences(model); !diff.empty()) {
        throw UsageError("track: '" + e.path + "' differs from the first checkpoint ('" + first->path + "'): " + diff +
                         "; a series must share the architecture and the tokenizer");
      }
      // the epoch axis: an attnscope checkpoint's epoch when the series' epochs increase, else the
      // checkpoint's place in the series
      const bool own_epoch = !model.run_dir.empty() && model.epoch > last_epoch;
      const int64_t epoch = own_epoch ? model.epoch : last_epoch + 1;
      auto task = train::make_model_task(model, text, validation);
      const auto probes = task->parse_probes(probe_text, given > 0 ? "the inputs" : "--data");
      out.begin_writing();
      {
        hooks::AttentionRecorder recorder(config, *task, probes, h5.string(), /*resume=*/last_epoch >= 0, last_epoch);
        recorder.record_epoch(epoch, std::max<int64_t>(0, e.step));
        recorder.finish();
      }
      last_epoch = epoch;
      done.push_back(entry_json(e, epoch));
      out.write_progress(done, about);
      std::cout << "track: " << e.label << " -> epoch " << epoch << (e.step >= 0 ? " (step " + std::to_string(e.step) + ")" : "")
                << "\n" << std::flush;
    }
    if (done.empty()) throw UsageError("track: no checkpoint recorded");
  } catch (const UsageError& err) {
    if (!done.empty()) throw UsageError(std::string(err.what()) + "\n" + out.continue_note(done.size()));
    out.remove_written();
    throw;
  } catch (const std::exception&) {
    if (!done.empty()) log::warn(out.continue_note(done.size()));
    if (done.empty()) out.remove_written();
    throw;
  }
  std::cout << "wrote " << h5.string() << ": " << done.size() << " checkpoints, " << probe_inputs.size() << " probes\n";
  return 0;
}

}  // namespace attnscope::cli
