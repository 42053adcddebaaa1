// Molecule probes and forwards, and a task over a loaded model (train/model_task.h).
#include "train/model_task.h"

#include <nlohmann/json.hpp>

#include <sstream>

#include "core/core.h"
#include "data/data.h"

namespace attnscope::train {

ProbeSet molecule_probes(const data::Tokenizer& tok, int64_t limit, const std::vector<std::string>& smiles,
                         const std::vector<int64_t>& source) {
  ProbeSet p;
  std::vector<std::vector<int64_t>> enc;
  size_t T = 0;
  for (const auto& s : smiles) {
    enc.push_back(tok.encode(s, limit));
    T = std::max(T, enc.back().size());
  }
  const int64_t P = static_cast<int64_t>(smiles.size());
  p.inputs = torch::full({P, static_cast<int64_t>(T)}, tok.pad_id(), torch::kLong);
  p.lengths = torch::empty({P}, torch::kLong);
  for (int64_t i = 0; i < P; ++i) {
    for (size_t t = 0; t < T; ++t) {
      if (t < enc[i].size()) {
        p.inputs[i][static_cast<int64_t>(t)] = enc[i][t];
        p.tokens.push_back(tok.id_token(enc[i][t]));
      } else {
        p.tokens.push_back("");
      }
    }
    p.lengths[i] = static_cast<int64_t>(enc[i].size());
    p.text.push_back(smiles[i]);
  }
  p.source = source;
  return p;
}

ProbeSet parse_smiles_probes(const data::Tokenizer& tok, int64_t limit, const std::string& text,
                             const std::string& origin) {
  std::vector<std::string> smiles;
  std::istringstream in(text);
  std::string line;
  for (int64_t no = 1; std::getline(in, line); ++no) {
    const auto b = line.find_first_not_of(" \t\r"), e = line.find_last_not_of(" \t\r");
    if (b == std::string::npos || line[b] == '#') continue;
    const std::string s = line.substr(b, e - b + 1);
    if (!data::smiles_parses(s)) throw UsageError(origin + " line " + std::to_string(no) + ": '" + s + "' is not a valid SMILES");
    smiles.push_back(s);
  }
  if (smiles.empty()) throw UsageError(origin + ": no SMILES");
  return molecule_probes(tok, limit, smiles, std::vector<int64_t>(smiles.size(), -1));
}

void forward_molecules(models::RobertaForSequenceClassification* model, models::RobertaModel* encoder,
                       const torch::Tensor& inputs, int64_t pad, models::Taps& taps) {
  const auto mask = (inputs != pad).to(torch::kLong);
  if (encoder != nullptr) {
    const auto h = (*encoder)->forward(inputs, mask, &taps);
    models::tap(&taps, models::site::kPooled, 0, h.select(1, 0));
    return;
  }
  (*model)->forward(inputs, mask, &taps);
}

std::string roberta_model_json(const models::RobertaConfig& c, const std::string& task,
                               const std::vector<std::string>& targets, const std::string& tokenizer,
                               const std::map<std::string, std::string>& extra) {
  nlohmann::json j = {{"name", "roberta"},
                      {"layers", c.num_hidden_layers},
                      {"heads", c.num_attention_heads},
                      {"hidden", c.hidden_size},
                      {"intermediate", c.intermediate_size},
                      {"vocab", c.vocab_size},
                      {"max_positions", c.max_position_embeddings},
                      {"task", task},
                      {"targets", targets},
                      {"tokenizer", tokenizer}};
  for (const auto& [k, v] : extra) j[k] = v;
  return j.dump();
}

// ---- a task over a loaded model ----------------------------------------------------------------

namespace {

class ModelTask : public Task {
 public:
  explicit ModelTask(models::LoadedModel& m) : m_(m) {}
  torch::nn::Module& module() override { return m_.hf.module(); }
  std::string describe() const override { return m_.hf.architecture + " from " + m_.origin; }
  int64_t train_size() const override { return 0; }
  StepStats train_step(const torch::Tensor&) override { throw UsageError("a loaded model has no training data"); }
  Metrics evaluate() override { return {}; }
  int64_t num_layers() const override { return m_.config().num_hidden_layers; }
  int64_t num_heads() const override { return m_.config().num_attention_heads; }
  std::string model_json() const override {
    const auto& c = m_.config();
    std::vector<std::string> labels;
    if (m_.hf.classifier) {
      for (int64_t k = 0; k < c.num_labels; ++k) labels.push_back(c.label(k));
    }
    const std::string task = !m_.task.empty() ? m_.task : m_.hf.classifier ? models::effective_problem_type(c) : traits(TaskKind::MaskedLM).name;
    return roberta_model_json(c, task, labels, m_.tok().kind(), {{"architecture", m_.hf.architecture}, {"source", m_.origin}});
  }
  std::string task_name() const override {
    if (!m_.task.empty()) return m_.task;
    if (!m_.hf.classifier) return traits(TaskKind::MaskedLM).name;
    const std::string problem = models::effective_problem_type(m_.config());
    for (const auto& t : all_tasks()) {
      if (t.supervised && t.problem_type == problem) return t.name;
    }
    return "";
  }
  // the "validation split" of a snapshot: its inputs (per-head metrics over them)
  int64_t val_size() const override { return inputs_.inputs.defined() ? inputs_.inputs.size(0) : 0; }
  torch::Tensor val_inputs(const torch::Tensor& idx) const override {
    const auto rows = inputs_.inputs.index_select(0, idx);
    const int64_t T = std::max<int64_t>(1, inputs_.lengths.index_select(0, idx).max().item<int64_t>());
    return rows.slice(1, 0, T).contiguous();
  }
  torch::Tensor val_lengths(const torch::Tensor& idx) const override { return inputs_.lengths.index_select(0, idx); }
  void forward_taps(const torch::Tensor& inputs, models::Taps& taps) override {
    torch::NoGradGuard no_grad;
    module().eval();
    auto* cls = m_.hf.classifier ? &m_.hf.classifier : nullptr;
    forward_molecules(cls, cls ? nullptr : &m_.hf.roberta(), inputs, m_.tok().pad_id(), taps);
  }
  ProbeSet default_probes(int64_t) const override {
    throw UsageError("a loaded model has no validation split to draw probes from: give the inputs");
  }
  ProbeSet parse_probes(const std::string& text, const std::string& origin) const override {
    inputs_ = parse_smiles_probes(m_.tok(), models::max_tokens(m_.config()), text, origin);
    return inputs_;
  }
  int64_t pooled_dim() const override { return m_.config().hidden_size; }

 private:
  models::LoadedModel& m_;
  mutable ProbeSet inputs_;  // the last parsed inputs
};

}  // namespace

std::unique_ptr<Task> make_model_task(models::LoadedModel& model) { return std::make_unique<ModelTask>(model); }

}  // namespace attnscope::train
