// The min/max task (train/minmax_task.h).
#include "train/minmax_task.h"

#include <nlohmann/json.hpp>

#include <filesystem>
#include <iomanip>
#include <sstream>

#include "core/core.h"
#include "models/models.h"

namespace attnscope::train {

MinMaxTask::MinMaxTask(const Config& config) : config_(config) {
  // One generator, in the reference's order: the split's randperm, then the parameters.
  torch::Generator gen = at::detail::createCPUGenerator(static_cast<uint64_t>(config.run.seed));
  split_ = data::make_minmax_split(config.data.minmax_numbers, config.data.train_fraction, gen);
  models::MinMaxNetOptions o;
  o.vocab = split_.vocab.size();
  o.seq_len = data::kMinMaxSeqLen;
  o.d_model = config.model.d_model;
  o.n_heads = config.model.n_heads;
  o.d_head = config.model.d_head;
  net_ = models::MinMaxNet(o);
  net_->reset_parameters(gen);
  fast_ = config.model.fast_path && o.vocab <= models::kMinMaxFastMaxVocab;
  if (config.model.fast_path && !fast_) {
    log::warn("[minmax] vocabulary " + std::to_string(o.vocab) + " is above the fast path's " +
              std::to_string(models::kMinMaxFastMaxVocab) + "; training through the plain module");
  }
}

std::string MinMaxTask::describe() const {
  int64_t params = 0;
  for (const auto& p : net_->parameters()) params += p.numel();
  std::ostringstream s;
  s << "minmax_attention: d_model " << config_.model.d_model << ", " << config_.model.n_heads
    << " heads of " << config_.model.d_head << ", vocab " << split_.vocab.size() << ", "
    << params << " parameters; " << split_.train.size() << " train / " << split_.val.size()
    << " validation examples; " << (fast_ ? "fused fast path" : "plain module");
  return s.str();
}

StepStats MinMaxTask::run(const data::Examples& ex, const torch::Tensor* idx, bool backward) {
  const auto x = idx ? ex.inputs.index_select(0, *idx) : ex.inputs;
  const auto y = idx ? ex.targets.index_select(0, *idx) : ex.targets;
  StepStats s;
  s.count = x.size(0);
  if (fast_) {
    const auto r = models::minmax_fused_step(*net_, x, y, backward);
    s.loss_sum = r.loss_sum;
    s.correct = r.correct;
    return s;
  }
  torch::AutoGradMode grad(backward);
  const auto logits = net_->forward(x);
  const auto loss = torch::nn::functional::cross_entropy(logits, y);
  if (backward) loss.backward();
  s.loss_sum = loss.item<double>() * static_cast<double>(s.count);
  s.correct = (logits.argmax(-1) == y).sum().item<int64_t>();
  return s;
}

StepStats MinMaxTask::train_step(const torch::Tensor& idx) {
  const bool all = idx.size(0) == split_.train.size();
  return run(split_.train, all ? nullptr : &idx, true);
}

namespace {
std::vector<int64_t> versions_of(torch::nn::Module& m) {
  std::vector<int64_t> v;
  for (const auto& p : m.parameters()) v.push_back(p._version());
  return v;
}
}  // namespace

Metrics MinMaxTask::evaluate() {
  StepStats s;
  if (fast_ && hi_with_next_eval_) {  // the same forward as run(), plus the head-importance gradients
    hi_with_next_eval_ = false;
    torch::NoGradGuard no_grad;
    const auto r = models::minmax_fused(models::minmax_tables(*net_), split_.val.inputs, split_.val.targets, false, true);
    s.loss_sum = r.loss_sum;
    s.correct = r.correct;
    s.count = split_.val.size();
    hi_raw_ = r.head_importance;
    hi_versions_ = versions_of(*net_);
  } else {
    s = run(split_.val, nullptr, false);
  }
  return {{"val_loss", s.loss_sum / static_cast<double>(s.count)},
          {"val_acc", static_cast<double>(s.correct) / static_cast<double>(s.count)}};
}

std::string MinMaxTask::model_json() const {
  return nlohmann::json{{"name", config_.model.name}, {"layers", 1}, {"heads", config_.model.n_heads},
                        {"d_model", config_.model.d_model}, {"d_head", config_.model.d_head},
                        {"vocab", split_.vocab.size()}, {"seq_len", data::kMinMaxSeqLen}}.dump();
}

torch::Tensor MinMaxTask::val_lengths(const torch::Tensor& idx) const {
  return torch::full({idx.size(0)}, data::kMinMaxSeqLen, torch::kLong);
}

void MinMaxTask::forward_taps(const torch::Tensor& inputs, models::Taps& taps) {
  torch::NoGradGuard no_grad;
  const bool was_training = net_->is_training();
  net_->eval();
  net_->forward(inputs, &taps);
  net_->train(was_training);
}

torch::Tensor MinMaxTask::val_attention(const torch::Tensor& idx, int64_t layer) {
  if (!fast_) return Inspectable::val_attention(idx, layer);
  // the whole split in order (the recorder's one batch): its inputs as they are, no copy
  const auto ix = idx.to(torch::kLong).contiguous();
  const int64_t n = split_.val.size();
  bool whole = ix.numel() == n;
  for (int64_t i = 0; whole && i < n; ++i) whole = ix.data_ptr<int64_t>()[i] == i;
  return models::minmax_attention_probs(*net_, whole ? split_.val.inputs : val_inputs(ix), &val_attention_buffers_);
}

Attribution MinMaxTask::attribution(const torch::Tensor& inputs) {
  const bool was_training = net_->is_training();
  net_->eval();
  const auto& o = net_->options();
  auto a = gradient_attribution(inputs.size(0), inputs.size(1), o.d_model, 1, o.n_heads, torch::ones_like(inputs),
                                [&](models::Taps& taps) {
                                  const auto logits = net_->forward(inputs, &taps);  // [P,V]
                                  return logits.gather(1, logits.argmax(1, true)).squeeze(1);
                                });
  net_->train(was_training);
  return a;
}

torch::Tensor MinMaxTask::head_importance() {
  const bool was_training = net_->is_training();
  net_->eval();
  torch::Tensor raw;  // [H]
  if (fast_ && hi_raw_.defined() && versions_of(*net_) == hi_versions_) {
    raw = hi_raw_;  // computed by evaluate() at these weights
  } else if (fast_) {
    torch::NoGradGuard no_grad;
    raw = models::minmax_fused(models::minmax_tables(*net_), split_.val.inputs, split_.val.targets, false, true)
              .head_importance;
  } else {  // a per-example gate [B,H]: one backward gives every example's dLoss_x/dxi
    raw = torch::zeros({config_.model.n_heads}, torch::kDouble);
    const int64_t n = split_.val.size();
    for (int64_t i = 0; i < n; i += 4096) {
      const auto x = split_.val.inputs.slice(0, i, std::min(n, i + 4096));
      const auto y = split_.val.targets.slice(0, i, std::min(n, i + 4096));
      auto gate = torch::ones({x.size(0), config_.model.n_heads}, torch::requires_grad());
      const auto loss = torch::nn::functional::cross_entropy(
          net_->forward(x, nullptr, gate), y, torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum));
      raw += torch::autograd::grad({loss}, {gate})[0].abs().sum(0).to(torch::kDouble);
    }
    raw /= static_cast<double>(n);
  }
  net_->train(was_training);
  raw = raw.view({1, -1});
  return raw / raw.norm(2, -1, true).clamp_min(1e-12);
}

ProbeSet MinMaxTask::describe_probes(const torch::Tensor& inputs) const {
  ProbeSet p;
  p.inputs = inputs;
  p.lengths = torch::full({inputs.size(0)}, data::kMinMaxSeqLen, torch::kLong);
  // where each probe sits in the validation split (-1: a training example or not in the data)
  std::map<std::vector<int64_t>, int64_t> val_row;
  const auto v = split_.val.inputs.accessor<int64_t, 2>();
  for (int64_t i = 0; i < split_.val.size(); ++i) val_row[{v[i][0], v[i][1], v[i][2], v[i][3]}] = i;
  const auto x = inputs.accessor<int64_t, 2>();
  for (int64_t i = 0; i < inputs.size(0); ++i) {
    for (int64_t t = 0; t < inputs.size(1); ++t) p.tokens.push_back(split_.vocab.token_text(x[i][t]));
    p.text.push_back(data::minmax_text(split_.vocab, inputs[i]));
    auto it = val_row.find({x[i][0], x[i][1], x[i][2], x[i][3]});
    p.source.push_back(it == val_row.end() ? -1 : it->second);
  }
  return p;
}

ProbeSet MinMaxTask::default_probes(int64_t count) const {
  // k x k grid of (a, b) per operator, a and b evenly spread over 0..N-1, trimmed to `count`
  const int64_t n = split_.vocab.numbers;
  const int64_t per_op = std::max<int64_t>(1, (count + 1) / 2);
  int64_t k = 1;
  while (k * k < per_op) ++k;
  std::vector<int64_t> rows;
  for (bool is_max : {true, false}) {
    int64_t added = 0;
    for (int64_t i = 0; i < k && added < per_op; ++i) {
      for (int64_t j = 0; j < k && added < per_op; ++j, ++added) {
        const int64_t a = k == 1 ? 0 : i * (n - 1) / (k - 1), b = k == 1 ? 0 : j * (n - 1) / (k - 1);
        const int64_t op = is_max ? split_.vocab.max_token() : split_.vocab.min_token();
        rows.insert(rows.end(), {a, op, b, split_.vocab.eq_token()});
      }
    }
  }
  auto inputs = torch::tensor(rows, torch::kLong).view({-1, data::kMinMaxSeqLen}).slice(0, 0, count).clone();
  return describe_probes(inputs);
}

ProbeSet MinMaxTask::parse_probes(const std::string& text, const std::string& path) const {
  std::istringstream in(text);
  std::vector<int64_t> rows;
  std::string line;
  for (int64_t line_no = 1; std::getline(in, line); ++line_no) {
    if (line.find_first_not_of(" \t\r") == std::string::npos || line[line.find_first_not_of(" \t")] == '#') continue;
    std::istringstream ls(line);
    std::vector<int64_t> ids;
    std::string tok;
    while (ls >> tok) {
      char* end = nullptr;
      const long long id = std::strtoll(tok.c_str(), &end, 10);
      if (*end != '\0' || id < 0 || id >= split_.vocab.size()) {
        throw UsageError(path + ":" + std::to_string(line_no) + ": '" + tok + "' is not a token id in [0, " +
                         std::to_string(split_.vocab.size()) + ")");
      }
      ids.push_back(id);
    }
    if (static_cast<int64_t>(ids.size()) != data::kMinMaxSeqLen) {
      throw UsageError(path + ":" + std::to_string(line_no) + ": expected " + std::to_string(data::kMinMaxSeqLen) +
                       " token ids (a op b =, e.g. '3 128 5 130'), got " + std::to_string(ids.size()));
    }
    rows.insert(rows.end(), ids.begin(), ids.end());
  }
  if (rows.empty()) throw UsageError(path + ": no probe rows");
  return describe_probes(torch::tensor(rows, torch::kLong).view({-1, data::kMinMaxSeqLen}));
}

std::vector<analysis::MinMaxMechanism> MinMaxTask::mechanism() {
  torch::NoGradGuard no_grad;
  net_->eval();
  std::vector<analysis::MinMaxMechanism> out;
  for (bool is_max : {true, false}) {
    const data::Examples grid = data::minmax_grid(split_.vocab, is_max);
    models::Taps taps;
    taps.request(models::site::kAttnProbs, {0});
    const auto logits = net_->forward(grid.inputs, &taps);
    const auto probs = taps.get(models::site::kAttnProbs, 0);
    const auto eq = probs.select(2, probs.size(2) - 1).to(torch::kDouble).contiguous();  // [B,H,T] from "="
    const auto x = grid.inputs.to(torch::kLong).contiguous();
    const auto a = x.select(1, 0).contiguous(), b = x.select(1, 2).contiguous();
    const auto mean = eq.mean(0).contiguous();  // [H,T], LibTorch's pairwise sum over the 16k pairs
    const std::vector<double> mean_v(mean.data_ptr<double>(), mean.data_ptr<double>() + mean.numel());
    analysis::MinMaxMechanism m = analysis::minmax_mechanism(
        is_max ? "max" : "min", std::vector<int64_t>(a.data_ptr<int64_t>(), a.data_ptr<int64_t>() + a.numel()),
        std::vector<int64_t>(b.data_ptr<int64_t>(), b.data_ptr<int64_t>() + b.numel()),
        std::vector<double>(eq.data_ptr<double>(), eq.data_ptr<double>() + eq.numel()), eq.size(1), eq.size(2), &mean_v);
    m.accuracy = (logits.argmax(-1) == grid.targets).to(torch::kDouble).mean().item<double>();
    out.push_back(m);
  }
  return out;
}

std::map<std::string, std::vector<int64_t>> MinMaxTask::final_array_shapes() const {
  const int64_t n = split_.vocab.numbers;
  const std::vector<int64_t> shape = {2, config_.model.n_heads, n, n, 3};
  return {{"minmax_grid_probs", shape}, {"minmax_grid_scores", shape}};
}

std::map<std::string, std::vector<float>> MinMaxTask::final_arrays() {
  torch::NoGradGuard no_grad;
  net_->eval();
  std::vector<torch::Tensor> probs, scores;
  for (bool is_max : {true, false}) {
    const data::Examples grid = data::minmax_grid(split_.vocab, is_max);
    // the module's row "=" (position 3), computed alone, to keys a, op, b: [N*N,H,3] -> [H,N*N,3]
    const auto eq = models::minmax_last_row_attention(*net_, grid.inputs);
    probs.push_back(eq.probs.narrow(2, 0, 3).transpose(0, 1));
    scores.push_back(eq.scores.narrow(2, 0, 3).transpose(0, 1));
  }
  auto flat = [](const std::vector<torch::Tensor>& v) {
    const auto t = torch::stack(v).to(torch::kFloat).contiguous();
    return std::vector<float>(t.data_ptr<float>(), t.data_ptr<float>() + t.numel());
  };
  return {{"minmax_grid_probs", flat(probs)}, {"minmax_grid_scores", flat(scores)}};
}

void MinMaxTask::finish(const std::string& run_dir, const analysis::ProbeHistory* recorded) {
  const auto mech = mechanism();
  nlohmann::json j = nlohmann::json::array();
  std::ostringstream s;
  s << std::fixed << std::setprecision(3);
  s << "[minmax] mechanism (attention from '=' over all " << split_.vocab.numbers << "x"
    << split_.vocab.numbers << " pairs per operator):";
  for (const auto& m : mech) {
    s << "\n  " << m.op << ": accuracy " << 100 * m.accuracy << "%";
    for (size_t h = 0; h < m.mean_attn.size(); ++h) {
      s << "\n    head " << h << ": a " << m.mean_attn[h][0] << "  op " << m.mean_attn[h][1]
        << "  b " << m.mean_attn[h][2] << "  = " << m.mean_attn[h][3];
    }
    s << "\n    operator sink: head " << m.sink_head << " (" << m.sink_mass << " on '" << m.op
      << "'); head " << m.picker_head << "'s stronger key among a, b is " << m.op << "(a, b) for "
      << 100 * m.picks_answer << "% of a != b pairs -> mechanism " << (m.shown() ? "shown" : "NOT shown");
    j.push_back({{"op", m.op},
                 {"accuracy", m.accuracy},
                 {"mean_attention_from_eq", m.mean_attn},
                 {"sink_head", m.sink_head},
                 {"sink_mass_on_op", m.sink_mass},
                 {"picker_head", m.picker_head},
                 {"picker_picks_answer", m.picks_answer},
                 {"mechanism_shown", m.shown()}});
  }
  nlohmann::json over = nlohmann::json::array();
  if (recorded) {  // the recorder's probe grid, epoch by epoch
    int64_t onset = -1;
    for (const auto& [epoch, per_op] : analysis::minmax_over_training(*recorded, split_.vocab.max_token())) {
      nlohmann::json row{{"epoch", epoch}};
      bool all_shown = !per_op.empty();
      for (const auto& m : per_op) {
        row[m.op] = {{"sink_head", m.sink_head}, {"sink_mass_on_op", m.sink_mass}, {"picker_head", m.picker_head},
                     {"picker_picks_answer", m.picks_answer}};
        all_shown = all_shown && m.sink_mass >= 0.9 && m.picks_answer >= 0.99;
      }
      if (all_shown && onset < 0) onset = epoch;
      if (!all_shown) onset = -1;  // the first epoch from which it holds to the end
      over.push_back(row);
    }
    s << "\n  on the recorder's probe grid: the mechanism "
      << (onset >= 0 ? "holds from epoch " + std::to_string(onset) + " on" : std::string("is not (yet) shown"))
      << " (mechanism.json: over_training)";
  }
  log::info(s.str());
  write_file_atomic(RunDir{run_dir}.mechanism(),
                    nlohmann::json{{"mechanism", j}, {"over_training", over}}.dump(1) + "\n");
}

}  // namespace attnscope::train
