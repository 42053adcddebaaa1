// Causal-LM training on a text corpus (train/molecule_tasks.h: CausalLMTask).
#include <nlohmann/json.hpp>

#include <cmath>
#include <iomanip>
#include <map>
#include <sstream>

#include "core/core.h"
#include "train/lm_loss.h"
#include "train/molecule_tasks.h"

namespace attnscope::train {

CausalLMTask::CausalLMTask(const Config& config) : MoleculeTask(config, TaskKind::CausalLM) {
  torch::manual_seed(static_cast<uint64_t>(config.run.seed));
  lm_ = models::build_transformer(d_.rc, models::lm_architecture(d_.rc.model_type));
  init_weights();
}

void CausalLMTask::describe_task(std::ostream& s) const {
  if (!config_.data.synthetic.empty()) {
    s << "causal-LM on repeated random sequences (a random prefix of 0-" << config_.data.synthetic_span << " tokens, a span of 2-"
      << config_.data.synthetic_span << " tokens, then the span again): "
      << d_.split.train.size() << " train / " << d_.split.val.size() << " held out";
    return;
  }
  s << "causal-LM on " << config_.data.csv << " packed into blocks of " << config_.data.block_size << " tokens: "
    << d_.split.train.size() << " train / " << d_.split.val.size() << " held-out blocks";
}

std::tuple<torch::Tensor, int64_t, int64_t> CausalLMTask::clm_loss(const MoleculeData::Batch& b) {
  // every position predicts the next token; the last real position of a block predicts nothing
  const auto h = lm_->hidden(b.ids, b.mask).slice(1, 0, -1);
  const auto chosen = b.mask.slice(1, 1).to(torch::kBool);
  const int64_t count = chosen.sum().item<int64_t>();
  if (count == 0) return {torch::zeros({}), 0, 0};
  const auto logits = lm_->lm_logits(h.index({chosen}));
  const auto y = b.ids.slice(1, 1).index({chosen});
  const auto loss = torch::nn::functional::cross_entropy(logits, y);
  const int64_t correct = logits.argmax(1).eq(y).sum().item<int64_t>();
  return {loss, count, correct};
}

void CausalLMTask::begin_epoch(int64_t epoch) {
  MoleculeTask::begin_epoch(epoch);
  if (!config_.data.synthetic.empty()) d_.refresh_sequences(epoch);
}

StepStats CausalLMTask::train_step(const torch::Tensor& idx) {
  return lm_step(clm_loss(d_.make_batch(d_.rows_of(d_.split.train, idx), false)));
}

double CausalLMTask::loss_weight(const torch::Tensor& idx) const {
  double n = 0;
  for (int64_t r : d_.rows_of(d_.split.train, idx)) n += static_cast<double>(d_.length(r) - 1);
  return n;
}

Metrics CausalLMTask::evaluate() {
  torch::NoGradGuard no_grad;
  lm_->eval();
  const auto& rows = d_.split.val;
  LmTotals totals;
  for (const auto& at : d_.eval_batches(rows)) totals.add(clm_loss(d_.make_batch(MoleculeData::pick(rows, at), false)));
  Metrics m = totals.metrics();
  if (!config_.data.synthetic.empty()) m["val_icl"] = in_context_score();
  return m;
}

double CausalLMTask::in_context_score() {
  // per held-out sequence of prefix P and span R (length P + 2R; position t predicts token t+1):
  // early = the predictions of random tokens (t < P+R-1); late = of the repetition's tokens
  // 1..R-1 (P+R <= t < P+2R-1), predictable from context alone
  const auto& rows = d_.split.val;
  double early = 0, late = 0;
  int64_t n_early = 0, n_late = 0;
  for (const auto& at : d_.eval_batches(rows)) {
    const auto part = MoleculeData::pick(rows, at);
    const auto b = d_.make_batch(part, false);
    const auto logits = lm_->lm_logits(lm_->hidden(b.ids, b.mask).slice(1, 0, -1));  // [b,T-1,V]
    const auto y = b.ids.slice(1, 1);
    const auto ce = torch::nn::functional::cross_entropy(
        logits.reshape({-1, logits.size(-1)}), y.reshape({-1}),
        torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kNone)).view(y.sizes()).to(torch::kDouble).contiguous();
    const auto acc = ce.accessor<double, 2>();
    for (size_t i = 0; i < part.size(); ++i) {
      const int64_t P = d_.synthetic_prefix[static_cast<size_t>(part[i])], R = (d_.length(part[i]) - P) / 2;
      for (int64_t t = 0; t + 1 < P + R; ++t) early += acc[static_cast<int64_t>(i)][t], ++n_early;
      for (int64_t t = P + R; t < P + 2 * R - 1; ++t) late += acc[static_cast<int64_t>(i)][t], ++n_late;
    }
  }
  return n_early && n_late ? late / static_cast<double>(n_late) - early / static_cast<double>(n_early) : std::nan("");
}

namespace {
// epoch -> (step, val_loss, val_icl) from a run's metrics.jsonl
struct EpochMetrics {
  int64_t step = 0;
  double loss = std::nan(""), icl = std::nan("");
};
std::map<int64_t, EpochMetrics> read_epoch_metrics(const std::string& path) {
  std::map<int64_t, EpochMetrics> out;
  std::istringstream in(read_file(path));
  for (std::string line; std::getline(in, line);) {
    const auto j = nlohmann::json::parse(line, nullptr, false);
    if (!j.is_object() || !j.contains("epoch")) continue;
    auto& e = out[j["epoch"].get<int64_t>()];
    e.step = j.value("step", int64_t{0});
    if (j.contains("val_loss") && j["val_loss"].is_number()) e.loss = j["val_loss"].get<double>();
    if (j.contains("val_icl") && j["val_icl"].is_number()) e.icl = j["val_icl"].get<double>();
  }
  return out;
}

nlohmann::json per_layer(const analysis::HeadScores& s, const std::vector<double>& v) {
  nlohmann::json rows = nlohmann::json::array();
  for (int64_t l = 0; l < s.L; ++l) {
    nlohmann::json row = nlohmann::json::array();
    for (int64_t h = 0; h < s.H; ++h) {
      const double x = v[static_cast<size_t>(l * s.H + h)];
      row.push_back(std::isnan(x) ? nlohmann::json(nullptr) : nlohmann::json(x));
    }
    rows.push_back(row);
  }
  return rows;
}
}  // namespace

void CausalLMTask::finish(const std::string& run_dir, const analysis::ProbeHistory* recorded) {
  if (config_.data.synthetic.empty() || recorded == nullptr || recorded->epochs.empty()) return;
  if (recorded->L != d_.rc.num_hidden_layers) {
    log::warn("[induction] the recorder stored " + std::to_string(recorded->L) + " of " +
              std::to_string(d_.rc.num_hidden_layers) + " layers: the mechanism needs every layer (hooks.attention.layers: [])");
    return;
  }
  const RunDir run{run_dir};
  const auto metrics = read_epoch_metrics(run.metrics());
  std::vector<int64_t> steps;
  std::vector<analysis::HeadScores> scores;
  std::vector<double> loss, icl;
  for (size_t e = 0; e < recorded->epochs.size(); ++e) {
    const int64_t epoch = recorded->epochs[e];
    const auto it = metrics.find(epoch);
    steps.push_back(it != metrics.end() ? it->second.step : 0);
    loss.push_back(it != metrics.end() ? it->second.loss : std::nan(""));
    icl.push_back(it != metrics.end() ? it->second.icl : std::nan(""));
    scores.push_back(analysis::induction_scores(recorded->probs(e), recorded->P, recorded->L, recorded->H, recorded->T,
                                                recorded->input_ids, recorded->lengths));
  }
  const auto m = analysis::induction_over_training(steps, scores, loss, icl);
  nlohmann::json over = nlohmann::json::array();
  for (size_t e = 0; e < steps.size(); ++e) {
    over.push_back({{"epoch", recorded->epochs[e]},
                    {"step", steps[e]},
                    {"val_loss", std::isnan(loss[e]) ? nlohmann::json(nullptr) : nlohmann::json(loss[e])},
                    {"val_icl", std::isnan(icl[e]) ? nlohmann::json(nullptr) : nlohmann::json(icl[e])},
                    {"induction", per_layer(scores[e], scores[e].induction)},
                    {"previous_token", per_layer(scores[e], scores[e].previous_token)}});
  }
  const auto& last = scores.back();
  auto at_step = [&](int64_t step) -> nlohmann::json {
    for (size_t e = 0; e < steps.size(); ++e) {
      if (steps[e] == step) return recorded->epochs[e];
    }
    return nullptr;
  };
  nlohmann::json j = {
      {"experiment", "induction heads (Olsson et al. 2022) on repeated random sequences"},
      {"span", config_.data.synthetic_span},
      {"probes", recorded->P},
      {"threshold", m.threshold},
      {"induction_head", {{"layer", m.best_layer}, {"head", m.best_head},
                          {"score", m.best_layer >= 0 ? last.induction_at(m.best_layer, m.best_head) : 0.0}}},
      {"previous_token_head", {{"layer", m.previous_layer}, {"head", m.previous_head},
                               {"score", m.previous_layer >= 0 ? last.previous_token_at(m.previous_layer, m.previous_head) : 0.0}}},
      {"formed_at_step", m.formed_at >= 0 ? nlohmann::json(m.formed_at) : nlohmann::json(nullptr)},
      {"formed_at_epoch", m.formed_at >= 0 ? at_step(m.formed_at) : nlohmann::json(nullptr)},
      {"mechanism_shown", m.shown()},
      {"over_training", over}};
  write_file_atomic(run.mechanism(), j.dump(1) + "\n");
  std::ostringstream s;
  s << std::fixed << std::setprecision(3) << "[induction] ";
  if (m.best_layer >= 0) {
    s << "induction head " << m.best_layer << "." << m.best_head << " (score " << last.induction_at(m.best_layer, m.best_head)
      << ")";
  }
  if (m.previous_layer >= 0) {
    s << " over previous-token head " << m.previous_layer << "." << m.previous_head << " (score "
      << last.previous_token_at(m.previous_layer, m.previous_head) << ")";
  }
  s << (m.formed_at >= 0 ? "; formed at step " + std::to_string(m.formed_at) : std::string("; not formed"));
  if (!std::isnan(icl.back())) s << "; in-context score " << icl.back();
  s << " -> mechanism " << (m.shown() ? "shown" : "NOT shown") << " (mechanism.json)";
  log::info(s.str());
}

}  // namespace attnscope::train
