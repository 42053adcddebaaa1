// The min/max task (train/minmax_task.h).
#include "train/minmax_task.h"

#include <nlohmann/json.hpp>

#include <filesystem>
#include <iomanip>
#include <sstream>

#include "core/error.h"
#include "core/files.h"
#include "core/log.h"
#include "models/minmax_fast.h"
#include "store/store.h"

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
  if (!fast_) return Task::val_attention(idx, layer);
  // the whole split in order (the recorder's one batch): its inputs as they are, no copy
  const auto ix = idx.to(torch::kLong).contiguous();
  const int64_t n = split_.val.size();
  bool whole = ix.numel() == n;
  for (int64_t i = 0; whole && i < n; ++i) whole = ix.data_ptr<int64_t>()[i] == i;
  return models::minmax_attention_probs(*net_, whole ? split_.val.inputs : val_inputs(ix), &val_attention_buffers_);
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

ProbeSet Task::probes_from_file(const std::string& path) const { return parse_probes(read_file(path), path); }

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

MinMaxMechanism minmax_mechanism(const std::string& op, const torch::Tensor& inputs, const torch::Tensor& probs) {
  const auto eq_row = probs.select(2, probs.size(2) - 1).to(torch::kDouble).contiguous();  // [B,H,T] from "="
  const auto mean = eq_row.mean(0).contiguous();                                            // [H,T]
  const int64_t B = eq_row.size(0), H = mean.size(0), T = mean.size(1);
  const double* mp = mean.data_ptr<double>();
  const double* ep = eq_row.data_ptr<double>();
  MinMaxMechanism m;
  m.op = op;
  for (int64_t h = 0; h < H; ++h) m.mean_attn.emplace_back(mp + h * T, mp + (h + 1) * T);
  for (int64_t h = 1; h < H; ++h) if (mp[h * T + 1] > mp[m.sink_head * T + 1]) m.sink_head = h;  // argmax: the first
  m.sink_mass = mp[m.sink_head * T + 1];
  const auto x = inputs.to(torch::kLong).contiguous();
  const int64_t* xp = x.data_ptr<int64_t>();
  m.picks_answer = -1;
  for (int64_t h = 0; h < H; ++h) {
    if (h == m.sink_head && H > 1) continue;
    int64_t ne = 0, right = 0;  // a != b pairs; those where the head's stronger key of a, b is op(a, b)
    for (int64_t i = 0; i < B; ++i) {
      const int64_t a = xp[i * x.size(1)], b = xp[i * x.size(1) + 2];
      if (a == b) continue;
      const int64_t picked = ep[(i * H + h) * T] >= ep[(i * H + h) * T + 2] ? a : b;
      right += picked == (op == "max" ? std::max(a, b) : std::min(a, b));
      ++ne;
    }
    const double frac = ne > 0 ? static_cast<double>(right) / static_cast<double>(ne) : 0.0;
    if (frac > m.picks_answer) {
      m.picks_answer = frac;
      m.picker_head = h;
    }
  }
  return m;
}

std::vector<MinMaxMechanism> MinMaxTask::mechanism() {
  torch::NoGradGuard no_grad;
  net_->eval();
  std::vector<MinMaxMechanism> out;
  for (bool is_max : {true, false}) {
    const data::Examples grid = data::minmax_grid(split_.vocab, is_max);
    models::Taps taps;
    taps.request(models::site::kAttnProbs, {0});
    const auto logits = net_->forward(grid.inputs, &taps);
    MinMaxMechanism m = minmax_mechanism(is_max ? "max" : "min", grid.inputs, taps.get(models::site::kAttnProbs, 0));
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

std::vector<std::pair<int64_t, std::vector<MinMaxMechanism>>> minmax_mechanism_over_training(const std::string& h5) {
  store::Reader r(h5);
  const auto& sites = r.header().sites;
  std::vector<std::pair<int64_t, std::vector<MinMaxMechanism>>> out;
  if (std::find(sites.begin(), sites.end(), "attn.probs") == sites.end() || r.header().layer_ids.size() != 1) return out;
  const auto& p = r.probes();
  const auto inputs = torch::tensor(p.input_ids).view({p.count, p.max_len});
  const auto op = inputs.select(1, 1);
  const int64_t H = static_cast<int64_t>(r.header().head_ids.size());
  const int64_t max_token = nlohmann::json::parse(r.header().model_json).at("vocab").get<int64_t>() - 3;  // N
  const auto epochs = r.epochs();
  for (size_t e = 0; e < epochs.size(); ++e) {
    const auto maps = torch::tensor(r.map("attn.probs", static_cast<int64_t>(e))).view({p.count, H, p.max_len, p.max_len});
    std::vector<MinMaxMechanism> per_op;
    for (bool is_max : {true, false}) {
      const auto rows = (op == (is_max ? max_token : max_token + 1)).nonzero().squeeze(1);
      if (rows.numel() == 0) continue;
      per_op.push_back(minmax_mechanism(is_max ? "max" : "min", inputs.index_select(0, rows), maps.index_select(0, rows)));
    }
    out.emplace_back(epochs[e].epoch, per_op);
  }
  return out;
}

void MinMaxTask::finish(const std::string& run_dir) {
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
  const std::string h5 = run_dir + "/attention.h5";
  if (std::filesystem::exists(h5)) {  // the recorder's probe grid, epoch by epoch
    int64_t onset = -1;
    for (const auto& [epoch, per_op] : minmax_mechanism_over_training(h5)) {
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
  write_file_atomic(run_dir + "/mechanism.json",
                    nlohmann::json{{"mechanism", j}, {"over_training", over}}.dump(1) + "\n");
}

}  // namespace attnscope::train
