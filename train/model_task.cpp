// Molecule probes and forwards, and a task over a loaded model (train/model_task.h).
#include "train/model_task.h"

#include <numeric>

#include <nlohmann/json.hpp>

#include <sstream>

#include "core/core.h"
#include "data/data.h"

namespace attnscope::train {

ProbeSet probes_from_ids(const data::Tokenizer& tok, const std::vector<std::vector<int64_t>>& ids,
                         const std::vector<std::string>& texts, const std::vector<int64_t>& source) {
  ProbeSet p;
  size_t T = 0;
  for (const auto& e : ids) T = std::max(T, e.size());
  const int64_t P = static_cast<int64_t>(ids.size());
  p.inputs = torch::full({P, static_cast<int64_t>(T)}, tok.pad_id(), torch::kLong);
  p.lengths = torch::empty({P}, torch::kLong);
  for (int64_t i = 0; i < P; ++i) {
    const auto& e = ids[static_cast<size_t>(i)];
    for (size_t t = 0; t < T; ++t) {
      if (t < e.size()) {
        p.inputs[i][static_cast<int64_t>(t)] = e[t];
        p.tokens.push_back(tok.display(tok.id_token(e[t])));  // as a reader sees it (GPT-2's Ġ: a space)
      } else {
        p.tokens.push_back("");
      }
    }
    p.lengths[i] = static_cast<int64_t>(e.size());
    p.text.push_back(texts[static_cast<size_t>(i)]);
  }
  p.source = source;
  return p;
}

ProbeSet molecule_probes(const data::Tokenizer& tok, int64_t limit, const std::vector<std::string>& smiles,
                         const std::vector<int64_t>& source) {
  std::vector<std::vector<int64_t>> enc;
  for (const auto& s : smiles) enc.push_back(tok.encode(s, limit));
  return probes_from_ids(tok, enc, smiles, source);
}

ProbeSet parse_text_probes(const data::Tokenizer& tok, int64_t limit, const std::string& text, const std::string& origin) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (!trim(line).empty()) lines.push_back(line);  // as written: spaces are tokens to GPT-2
  }
  if (lines.empty()) throw UsageError(origin + ": no text");
  return molecule_probes(tok, limit, lines, std::vector<int64_t>(lines.size(), -1));
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

torch::Tensor attention_mask_of(const models::TransformerImpl& model, const data::Tokenizer& tok, const torch::Tensor& inputs) {
  const auto real = inputs.ne(tok.pad_id()).to(torch::kLong);
  if (!model.config().causal()) return real;
  // positions up to the last non-pad token: [1 1 0 1 0 0] -> [1 1 1 1 0 0]
  return std::get<0>(real.flip({1}).cummax(1)).flip({1});
}

torch::Tensor token_types_of(const models::TransformerImpl& model, const data::Tokenizer& tok, const torch::Tensor& inputs) {
  if (model.config().type_vocab_size < 2 || tok.eos_id() < 0) return {};
  // BERT's pairs [CLS] A [SEP] B [SEP]: type 1 after the first [SEP]
  const auto sep = inputs.eq(tok.eos_id()).to(torch::kLong);
  const auto before = torch::cumsum(sep, 1) - sep;  // [SEP]s before each position
  return before.clamp_max(1) * inputs.ne(tok.pad_id()).to(torch::kLong);
}

void forward_inputs(models::TransformerImpl& model, const data::Tokenizer& tok, const torch::Tensor& inputs, models::Taps& taps) {
  const auto mask = attention_mask_of(model, tok, inputs), types = token_types_of(model, tok, inputs);
  if (model.head() == models::Head::Classifier) {
    models::tap(&taps, models::site::kOutput, 0, model.forward(inputs, mask, &taps, types));
    return;
  }
  const auto h = model.hidden(inputs, mask, &taps, types);
  models::tap(&taps, models::site::kPooled, 0, model.readout(h, mask));
}

Attribution attribution_of(models::TransformerImpl& model, const data::Tokenizer& tok, const torch::Tensor& inputs) {
  if (model.head() != models::Head::Classifier) return {};
  const auto& c = model.config();
  const auto mask = attention_mask_of(model, tok, inputs), types = token_types_of(model, tok, inputs);
  return gradient_attribution(inputs.size(0), inputs.size(1), c.hidden_size, c.num_hidden_layers, c.num_attention_heads, mask,
                              [&](models::Taps& taps) {
                                const auto out = model.forward(inputs, mask, &taps, types);  // [P,labels]
                                return models::effective_problem_type(c) == "regression" || out.size(1) == 1
                                           ? out.select(1, 0)
                                           : out.gather(1, out.argmax(1, true)).squeeze(1);
                              });
}

std::string transformer_model_json(const models::TransformerConfig& c, const std::string& task,
                                   const std::vector<std::string>& targets, const std::string& tokenizer, bool text,
                                   const std::map<std::string, std::string>& extra) {
  nlohmann::json j = {{"name", c.model_type},
                      {"layers", c.num_hidden_layers},
                      {"heads", c.num_attention_heads},
                      {"hidden", c.hidden_size},
                      {"intermediate", c.intermediate_size},
                      {"vocab", c.vocab_size},
                      {"max_positions", c.max_position_embeddings},
                      {"task", task},
                      {"targets", targets},
                      {"tokenizer", tokenizer},
                      {"inputs", text ? "text" : "smiles"},
                      {"causal", c.causal()}};
  if (c.scale_attn_by_inverse_layer_idx) j["scale_attn_by_inverse_layer_idx"] = true;  // scores / (sqrt(d) (layer + 1))
  for (const auto& [k, v] : extra) j[k] = v;
  return j.dump();
}

// ---- a task over a loaded model ----------------------------------------------------------------

namespace {

class ModelTask : public Task {
 public:
  ModelTask(models::LoadedModel& m, bool text_input, const std::vector<std::string>& validation)
      : m_(m), text_input_(text_input) {
    if (validation.empty()) return;
    std::vector<int64_t> source(validation.size());
    std::iota(source.begin(), source.end(), 0);
    val_ = molecule_probes(m_.tok(), models::max_tokens(m_.config()), validation, source);
  }
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
    if (m_.hf.is_classifier()) {
      for (int64_t k = 0; k < c.num_labels; ++k) labels.push_back(c.label(k));
    }
    const std::string task = !m_.task.empty() ? m_.task : m_.hf.is_classifier() ? models::effective_problem_type(c) : lm_task();
    return transformer_model_json(c, task, labels, m_.tok().kind(), text_input_, {{"architecture", m_.hf.architecture}, {"source", m_.origin}});
  }
  std::string task_name() const override {
    if (!m_.task.empty()) return m_.task;
    if (!m_.hf.is_classifier()) return lm_task();
    const std::string problem = models::effective_problem_type(m_.config());
    for (const auto& t : all_tasks()) {
      if (t.supervised && t.problem_type == problem) return t.name;
    }
    return "";
  }
  // the "validation split" of a snapshot: the given validation inputs, else its inputs (per-head
  // metrics over them)
  int64_t val_size() const override { return val().inputs.defined() ? val().inputs.size(0) : 0; }
  torch::Tensor val_inputs(const torch::Tensor& idx) const override {
    const auto rows = val().inputs.index_select(0, idx);
    const int64_t T = std::max<int64_t>(1, val().lengths.index_select(0, idx).max().item<int64_t>());
    return rows.slice(1, 0, T).contiguous();
  }
  torch::Tensor val_lengths(const torch::Tensor& idx) const override { return val().lengths.index_select(0, idx); }
  Attribution attribution(const torch::Tensor& inputs) override {
    module().eval();
    return attribution_of(*m_.hf.model, m_.tok(), inputs);
  }
  void forward_taps(const torch::Tensor& inputs, models::Taps& taps) override {
    torch::NoGradGuard no_grad;
    module().eval();
    forward_inputs(*m_.hf.model, m_.tok(), inputs, taps);
  }
  ProbeSet default_probes(int64_t) const override {
    throw UsageError("a loaded model has no validation split to draw probes from: give the inputs");
  }
  ProbeSet parse_probes(const std::string& text, const std::string& origin) const override {
    const int64_t limit = models::max_tokens(m_.config());
    inputs_ = text_input_ ? parse_text_probes(m_.tok(), limit, text, origin) : parse_smiles_probes(m_.tok(), limit, text, origin);
    return inputs_;
  }
  int64_t pooled_dim() const override { return m_.config().hidden_size; }
  bool causal() const override { return m_.config().causal(); }

 private:
  // a model without a classifier: its family's language-model task
  std::string lm_task() const { return traits(m_.config().causal() ? TaskKind::CausalLM : TaskKind::MaskedLM).name; }
  const ProbeSet& val() const { return val_.inputs.defined() ? val_ : inputs_; }
  models::LoadedModel& m_;
  bool text_input_;
  mutable ProbeSet inputs_;  // the last parsed inputs
  ProbeSet val_;             // the validation inputs, when given
};

}  // namespace

std::unique_ptr<Task> make_model_task(models::LoadedModel& model, bool text_input, const std::vector<std::string>& validation) {
  return std::make_unique<ModelTask>(model, text_input, validation);
}

}  // namespace attnscope::train
