// Molecular property prediction (train/molecule_task.h).
#include "train/molecule_task.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <numeric>
#include <sstream>

#include "core/error.h"
#include "core/files.h"
#include "core/log.h"
#include "data/batching.h"
#include "data/bpe_tokenizer.h"
#include "data/smiles_tokenizer.h"
#include "models/hf_dir.h"
#include "train/checkpoint.h"
#include "train/minmax_task.h"

namespace attnscope::train {
namespace fs = std::filesystem;

// ---- metrics -----------------------------------------------------------------------------------

double roc_auc(const std::vector<double>& score, const std::vector<int>& label) {
  std::vector<size_t> order(score.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return score[a] < score[b]; });
  // Mann-Whitney U with average ranks for ties
  double rank_sum = 0;
  int64_t pos = 0, neg = 0;
  for (size_t i = 0; i < order.size();) {
    size_t j = i;
    while (j < order.size() && score[order[j]] == score[order[i]]) ++j;
    const double avg = (static_cast<double>(i + 1) + static_cast<double>(j)) / 2;
    for (size_t k = i; k < j; ++k) {
      if (label[order[k]]) rank_sum += avg;
    }
    i = j;
  }
  for (int l : label) (l ? pos : neg)++;
  if (pos == 0 || neg == 0) return std::nan("");
  return (rank_sum - pos * (pos + 1) / 2.0) / (static_cast<double>(pos) * neg);
}

double average_precision(const std::vector<double>& score, const std::vector<int>& label) {
  // sklearn's average_precision_score: sum over thresholds of (R_n - R_{n-1}) P_n
  std::vector<size_t> order(score.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return score[a] > score[b]; });
  const int64_t pos = std::count(label.begin(), label.end(), 1);
  if (pos == 0 || pos == static_cast<int64_t>(label.size())) return std::nan("");
  double ap = 0, prev_recall = 0;
  int64_t tp = 0, seen = 0;
  for (size_t i = 0; i < order.size();) {
    size_t j = i;
    while (j < order.size() && score[order[j]] == score[order[i]]) {
      tp += label[order[j]];
      ++seen;
      ++j;
    }
    const double recall = static_cast<double>(tp) / pos, precision = static_cast<double>(tp) / seen;
    ap += (recall - prev_recall) * precision;
    prev_recall = recall;
    i = j;
  }
  return ap;
}

namespace {

double nanmean(const std::vector<double>& v) {
  double s = 0;
  int n = 0;
  for (double x : v) {
    if (std::isfinite(x)) s += x, ++n;
  }
  return n ? s / n : std::nan("");
}

std::string metric_suffix(const std::vector<std::string>& names, size_t k) {
  std::string s;
  for (char c : names[k]) s += std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
  return s;
}

}  // namespace

std::map<std::string, double> regression_metrics(const torch::Tensor& pred, const torch::Tensor& target,
                                                 const std::vector<std::string>& names) {
  std::map<std::string, double> m;
  std::vector<double> rmse, mae, r2;
  const auto p = pred.to(torch::kDouble).contiguous(), t = target.to(torch::kDouble).contiguous();
  for (int64_t k = 0; k < t.size(1); ++k) {
    const auto ok = ~t.select(1, k).isnan();
    const auto y = t.select(1, k).masked_select(ok), f = p.select(1, k).masked_select(ok);
    const int64_t n = y.numel();
    double e = std::nan(""), a = std::nan(""), r = std::nan("");
    if (n >= 1) {
      e = std::sqrt((f - y).pow(2).mean().item<double>());
      a = (f - y).abs().mean().item<double>();
    }
    if (n >= 2) {
      const double ss_tot = (y - y.mean()).pow(2).sum().item<double>();
      r = ss_tot > 0 ? 1 - (f - y).pow(2).sum().item<double>() / ss_tot : std::nan("");
    }
    rmse.push_back(e), mae.push_back(a), r2.push_back(r);
    if (names.size() > 1) {
      m["rmse_" + metric_suffix(names, k)] = e;
      m["mae_" + metric_suffix(names, k)] = a;
      m["r2_" + metric_suffix(names, k)] = r;
    }
  }
  m["rmse"] = nanmean(rmse);
  m["mae"] = nanmean(mae);
  m["r2"] = nanmean(r2);
  return m;
}

std::map<std::string, double> classification_metrics(const torch::Tensor& logits, const torch::Tensor& target,
                                                      const std::vector<std::string>& names) {
  std::map<std::string, double> m;
  std::vector<double> auc, ap;
  int64_t correct = 0, count = 0;
  const auto p = logits.to(torch::kDouble).contiguous(), t = target.to(torch::kDouble).contiguous();
  for (int64_t k = 0; k < t.size(1); ++k) {
    std::vector<double> s;
    std::vector<int> y;
    for (int64_t i = 0; i < t.size(0); ++i) {
      const double v = t[i][k].item<double>();
      if (std::isnan(v)) continue;
      s.push_back(p[i][k].item<double>());
      y.push_back(v > 0.5);
      correct += (s.back() > 0) == (y.back() == 1);
      ++count;
    }
    auc.push_back(roc_auc(s, y));
    ap.push_back(average_precision(s, y));
    if (names.size() > 1) {
      m["roc_auc_" + metric_suffix(names, k)] = auc.back();
      m["pr_auc_" + metric_suffix(names, k)] = ap.back();
    }
  }
  m["roc_auc"] = nanmean(auc);
  m["pr_auc"] = nanmean(ap);
  m["acc"] = count ? static_cast<double>(correct) / count : std::nan("");
  return m;
}

// ---- tokenizers --------------------------------------------------------------------------------

struct MoleculeTask::Tok {
  std::unique_ptr<data::BpeTokenizer> bpe;
  std::unique_ptr<data::SmilesTokenizer> regex;
  std::string dir;  // bpe: where vocab.json / merges.txt came from
  std::vector<int64_t> encode(const std::string& s, int64_t max_len) const {
    return bpe ? bpe->encode(s, max_len) : regex->encode(s, max_len);
  }
  std::string token(int64_t id) const { return bpe ? bpe->id_token(id) : regex->id_token(id); }
  int64_t vocab_size() const { return bpe ? bpe->vocab_size() : regex->vocab_size(); }
  static constexpr int64_t kPad = 1;
};

// ---- the task ----------------------------------------------------------------------------------

MoleculeTask::MoleculeTask(const Config& config)
    : config_(config), augment_rng_(static_cast<uint64_t>(config.run.seed) * 7919 + 17) {
  const auto& d = config.data;
  const auto& mc = config.model;
  regression_ = d.task == "regression";
  table_ = data::read_molecule_csv(d.csv, d.smiles_col, d.targets, d.invalid_smiles == "error");
  if (d.split == "scaffold") {
    split_ = data::scaffold_split(table_.smiles, d.frac_train, d.frac_val);
  } else if (d.split == "random") {
    split_ = data::random_split(table_.size(), d.frac_train, d.frac_val, static_cast<uint64_t>(config.run.seed));
  } else {
    split_ = data::read_split_file(d.split_file, table_.size());
  }
  for (const auto& [name, part] : {std::pair<const char*, const std::vector<int64_t>*>{"train", &split_.train},
                                   {"val", &split_.val}, {"test", &split_.test}}) {
    if (part->empty()) {
      throw UsageError("data.split: the " + std::string(name) + " split of '" + d.csv + "' is empty (" +
                       std::to_string(table_.size()) + " molecules after filtering)");
    }
  }

  // model dimensions: the pretrained directory's, else the config's
  if (!mc.pretrained.empty()) {
    rc_ = models::read_hf_config((fs::path(mc.pretrained) / "config.json").string());
  } else {
    rc_.num_hidden_layers = mc.n_layers;
    rc_.hidden_size = mc.d_model;
    rc_.num_attention_heads = mc.n_heads;
    rc_.intermediate_size = mc.d_ff > 0 ? mc.d_ff : 4 * mc.d_model;
    rc_.max_position_embeddings = mc.max_positions;
    rc_.hidden_dropout_prob = mc.dropout;
    rc_.attention_probs_dropout_prob = mc.attention_dropout;
    rc_.layer_norm_eps = mc.layer_norm_eps;
  }
  rc_.num_labels = static_cast<int64_t>(d.targets.size());

  // tokenizer
  tok_ = std::make_unique<Tok>();
  if (mc.tokenizer == "bpe") {
    tok_->dir = mc.tokenizer_dir.empty() ? mc.pretrained : mc.tokenizer_dir;
    tok_->bpe = std::make_unique<data::BpeTokenizer>(data::BpeTokenizer::from_dir(tok_->dir));
  } else {
    std::vector<std::string> corpus;
    for (int64_t r : split_.train) corpus.push_back(table_.smiles[r]);
    tok_->regex = std::make_unique<data::SmilesTokenizer>(data::SmilesTokenizer::build(corpus));
  }
  if (mc.pretrained.empty()) {
    rc_.vocab_size = tok_->vocab_size();
  } else if (tok_->vocab_size() > rc_.vocab_size) {
    throw UsageError("model.pretrained '" + mc.pretrained + "' has a vocabulary of " + std::to_string(rc_.vocab_size) +
                     " tokens but the tokenizer has " + std::to_string(tok_->vocab_size()) +
                     ": use model.tokenizer: bpe with the model's own vocab.json / merges.txt");
  }
  const int64_t limit = rc_.max_position_embeddings - rc_.pad_token_id - 1;
  for (int64_t r = 0; r < table_.size(); ++r) {
    auto full = tok_->encode(table_.smiles[r], 0);
    if (static_cast<int64_t>(full.size()) > limit) {
      if (d.too_long == "error") {
        throw UsageError("'" + d.csv + "' line " + std::to_string(table_.line[r]) + ": SMILES has " +
                         std::to_string(full.size()) + " tokens, the model takes " + std::to_string(limit) +
                         " (data.too_long: truncate to cut it)");
      }
      ++truncated_;
      full = tok_->encode(table_.smiles[r], limit);
    }
    ids_.push_back(std::move(full));
  }
  if (truncated_ > 0) {
    log::warn("[data] " + std::to_string(truncated_) + " SMILES longer than the model's " + std::to_string(limit) +
              " tokens were truncated");
  }

  // targets: regression statistics from the training split; BCE positive weights
  const int64_t K = rc_.num_labels;
  auto all = torch::from_blob(table_.targets.data(), {table_.size(), K}, torch::kFloat).clone();
  const auto train_t = all.index_select(0, torch::tensor(split_.train));
  if (regression_) {
    mean_ = torch::zeros({K});
    std_ = torch::ones({K});
    for (int64_t k = 0; k < K; ++k) {
      const auto col = train_t.select(1, k);
      const auto y = col.masked_select(~col.isnan());
      if (y.numel() < 2) throw UsageError("data.targets: '" + d.targets[k] + "' has fewer than 2 labels in the training split");
      mean_[k] = y.mean();
      std_[k] = std::max(1e-6, y.std(/*unbiased=*/false).item<double>());
    }
  } else {
    pos_weight_ = torch::ones({K});
    for (int64_t k = 0; k < K; ++k) {
      const auto col = train_t.select(1, k);
      const auto y = col.masked_select(~col.isnan());
      const double pos = (y > 0.5).sum().item<double>(), neg = static_cast<double>(y.numel()) - pos;
      if (!((y == 0) | (y == 1)).all().item<bool>()) {
        throw UsageError("data.targets: '" + d.targets[k] + "' must hold 0/1 labels for task classification");
      }
      if (d.pos_weight && pos > 0) pos_weight_[k] = neg / pos;
    }
  }

  torch::manual_seed(static_cast<uint64_t>(config.run.seed));
  model_ = models::RobertaForSequenceClassification(rc_);
  if (!mc.pretrained.empty()) {
    models::load_hf_state(*model_, models::read_hf_weights(mc.pretrained), mc.pretrained, &new_heads_);
  }
  if (mc.freeze_layers > 0) {
    for (auto& p : model_->roberta->embeddings->parameters()) p.requires_grad_(false);
    for (int64_t l = 0; l < mc.freeze_layers; ++l) {
      for (auto& p : model_->roberta->encoder->layer[l]->parameters()) p.requires_grad_(false);
    }
  }
}

MoleculeTask::~MoleculeTask() = default;

torch::nn::Module& MoleculeTask::module() { return *model_; }

std::string MoleculeTask::describe() const {
  int64_t params = 0;
  for (const auto& p : model_->parameters()) params += p.numel();
  std::ostringstream s;
  s << "roberta " << rc_.num_hidden_layers << " layers x " << rc_.hidden_size << " hidden, " << rc_.num_attention_heads
    << " heads, " << params << " parameters, vocab " << rc_.vocab_size << " ("
    << (tok_->bpe ? "byte-level BPE from " + tok_->dir : std::string("atom-level SMILES tokens of the training split"))
    << "); " << config_.data.task << " of " << config_.data.targets.size() << " target(s) on " << table_.size()
    << " molecules of " << config_.data.csv << " (" << table_.dropped << " unparsable dropped, " << truncated_
    << " truncated); " << split_.method << " split " << split_.train.size() << "/" << split_.val.size() << "/"
    << split_.test.size();
  if (!config_.model.pretrained.empty()) {
    s << "; from " << config_.model.pretrained;
    if (!new_heads_.empty()) s << " (task head initialised: " << new_heads_.size() << " tensors, e.g. " << new_heads_.front() << ")";
  } else {
    s << "; from scratch (seed " << config_.run.seed << ")";
  }
  return s.str();
}

std::string MoleculeTask::model_json() const {
  return nlohmann::json{{"name", "roberta"},
                        {"layers", rc_.num_hidden_layers},
                        {"heads", rc_.num_attention_heads},
                        {"hidden", rc_.hidden_size},
                        {"intermediate", rc_.intermediate_size},
                        {"vocab", rc_.vocab_size},
                        {"max_positions", rc_.max_position_embeddings},
                        {"task", config_.data.task},
                        {"targets", config_.data.targets},
                        {"tokenizer", tok_->bpe ? "bpe" : "smiles-regex"}}
      .dump();
}

std::vector<int64_t> MoleculeTask::rows_of(const std::vector<int64_t>& split, const torch::Tensor& idx) const {
  std::vector<int64_t> rows;
  const auto c = idx.contiguous();
  for (int64_t i = 0; i < c.numel(); ++i) rows.push_back(split[c.data_ptr<int64_t>()[i]]);
  return rows;
}

MoleculeTask::Batch MoleculeTask::make_batch(const std::vector<int64_t>& rows, bool augment) const {
  std::vector<std::vector<int64_t>> enc;
  const int64_t limit = rc_.max_position_embeddings - rc_.pad_token_id - 1;
  size_t T = 0;
  for (int64_t r : rows) {
    if (augment) {
      enc.push_back(tok_->encode(data::randomized_smiles(table_.smiles[r], augment_rng_), limit));
    } else {
      enc.push_back(ids_[r]);
    }
    T = std::max(T, enc.back().size());
  }
  const int64_t B = static_cast<int64_t>(rows.size()), K = rc_.num_labels;
  Batch b;
  b.ids = torch::full({B, static_cast<int64_t>(T)}, Tok::kPad, torch::kLong);
  b.mask = torch::zeros({B, static_cast<int64_t>(T)}, torch::kLong);
  b.target = torch::empty({B, K});
  auto ids = b.ids.accessor<int64_t, 2>();
  auto mask = b.mask.accessor<int64_t, 2>();
  auto tgt = b.target.accessor<float, 2>();
  for (int64_t i = 0; i < B; ++i) {
    for (size_t t = 0; t < enc[i].size(); ++t) ids[i][t] = enc[i][t], mask[i][t] = 1;
    for (int64_t k = 0; k < K; ++k) tgt[i][k] = table_.targets[rows[i] * K + k];
  }
  return b;
}

std::vector<torch::Tensor> MoleculeTask::epoch_batches(const torch::Tensor& order, int64_t batch_size) const {
  // length bucketing: within windows of 32 batches, molecules are sorted by length and cut into
  // batches, whose order is then shuffled (seeded by the epoch's order): padding stays small
  // while the order remains random
  const int64_t n = order.numel();
  if (batch_size <= 0 || batch_size >= n) return data::make_batches(order, batch_size);
  const auto o = order.contiguous();
  const int64_t* p = o.data_ptr<int64_t>();
  std::vector<std::vector<int64_t>> batches;
  const int64_t window = 32 * batch_size;
  for (int64_t w = 0; w < n; w += window) {
    std::vector<int64_t> chunk(p + w, p + std::min(n, w + window));
    std::stable_sort(chunk.begin(), chunk.end(), [&](int64_t a, int64_t b) {
      return ids_[split_.train[a]].size() < ids_[split_.train[b]].size();
    });
    for (size_t i = 0; i < chunk.size(); i += static_cast<size_t>(batch_size)) {
      batches.emplace_back(chunk.begin() + i, chunk.begin() + std::min(chunk.size(), i + static_cast<size_t>(batch_size)));
    }
  }
  std::mt19937_64 rng(static_cast<uint64_t>(p[0]) * 1000003u + static_cast<uint64_t>(n));
  std::shuffle(batches.begin(), batches.end(), rng);
  std::vector<torch::Tensor> out;
  for (auto& b : batches) out.push_back(torch::tensor(b, torch::kLong));
  return out;
}

StepStats MoleculeTask::train_step(const torch::Tensor& idx) {
  const auto b = make_batch(rows_of(split_.train, idx), config_.data.augment);
  const auto out = model_->forward(b.ids, b.mask);
  const auto known = ~b.target.isnan();
  const auto y = b.target.nan_to_num(0.0);
  torch::Tensor per;
  if (regression_) {
    per = (out - (y - mean_) / std_).pow(2);
  } else {
    per = torch::binary_cross_entropy_with_logits(out, y, {}, pos_weight_, at::Reduction::None);
  }
  per = per * known.to(per.dtype());
  const auto count = known.sum().item<int64_t>();
  const auto loss = per.sum() / std::max<int64_t>(1, count);
  loss.backward();
  StepStats s;
  s.loss_sum = loss.item<double>() * static_cast<double>(count);
  s.count = count;
  s.has_accuracy = false;
  return s;
}

double MoleculeTask::loss_weight(const torch::Tensor& idx) const {
  const int64_t K = rc_.num_labels;
  double known = 0;
  for (int64_t r : rows_of(split_.train, idx)) {
    for (int64_t k = 0; k < K; ++k) known += std::isnan(table_.targets[r * K + k]) ? 0 : 1;
  }
  return known;
}

torch::Tensor MoleculeTask::predict(const std::vector<int64_t>& rows) {
  torch::NoGradGuard no_grad;
  model_->eval();
  std::vector<torch::Tensor> outs;
  for (size_t i = 0; i < rows.size(); i += 64) {
    const std::vector<int64_t> part(rows.begin() + i, rows.begin() + std::min(rows.size(), i + 64));
    const auto b = make_batch(part, false);
    outs.push_back(model_->forward(b.ids, b.mask));
  }
  return torch::cat(outs);
}

Metrics MoleculeTask::metrics_of(const std::vector<int64_t>& rows, const std::string& prefix) {
  const auto out = predict(rows);
  const int64_t K = rc_.num_labels;
  auto target = torch::empty({static_cast<int64_t>(rows.size()), K});
  for (size_t i = 0; i < rows.size(); ++i) {
    for (int64_t k = 0; k < K; ++k) target[i][k] = table_.targets[rows[i] * K + k];
  }
  const auto known = ~target.isnan();
  const auto y = target.nan_to_num(0.0);
  torch::Tensor per;
  std::map<std::string, double> m;
  if (regression_) {
    per = (out - (y - mean_) / std_).pow(2);
    m = regression_metrics(out * std_ + mean_, target, config_.data.targets);  // original units
  } else {
    per = torch::binary_cross_entropy_with_logits(out, y, {}, pos_weight_, at::Reduction::None);
    m = classification_metrics(out, target, config_.data.targets);
  }
  Metrics res;
  res[prefix + "loss"] = (per * known.to(per.dtype())).sum().item<double>() / std::max<int64_t>(1, known.sum().item<int64_t>());
  for (const auto& [k, v] : m) res[prefix + k] = v;
  return res;
}

Metrics MoleculeTask::evaluate() { return metrics_of(split_.val, "val_"); }

torch::Tensor MoleculeTask::val_inputs(const torch::Tensor& idx) const {
  return make_batch(rows_of(split_.val, idx), false).ids;
}

torch::Tensor MoleculeTask::val_lengths(const torch::Tensor& idx) const {
  std::vector<int64_t> len;
  for (int64_t r : rows_of(split_.val, idx)) len.push_back(static_cast<int64_t>(ids_[r].size()));
  return torch::tensor(len, torch::kLong);
}

void MoleculeTask::forward_taps(const torch::Tensor& inputs, models::Taps& taps) {
  torch::NoGradGuard no_grad;
  model_->eval();
  const auto mask = (inputs != Tok::kPad).to(torch::kLong);
  model_->forward(inputs, mask, &taps);
}

ProbeSet MoleculeTask::probes_of(const std::vector<std::string>& smiles, const std::vector<int64_t>& source) const {
  ProbeSet p;
  const int64_t limit = rc_.max_position_embeddings - rc_.pad_token_id - 1;
  std::vector<std::vector<int64_t>> enc;
  size_t T = 0;
  for (const auto& s : smiles) {
    enc.push_back(tok_->encode(s, limit));
    T = std::max(T, enc.back().size());
  }
  const int64_t P = static_cast<int64_t>(smiles.size());
  p.inputs = torch::full({P, static_cast<int64_t>(T)}, Tok::kPad, torch::kLong);
  p.lengths = torch::empty({P}, torch::kLong);
  for (int64_t i = 0; i < P; ++i) {
    for (size_t t = 0; t < T; ++t) {
      if (t < enc[i].size()) {
        p.inputs[i][static_cast<int64_t>(t)] = enc[i][t];
        p.tokens.push_back(tok_->token(enc[i][t]));
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

ProbeSet MoleculeTask::default_probes(int64_t count) const {
  const int64_t n = static_cast<int64_t>(split_.val.size()), P = std::min(count, n);
  std::vector<std::string> smiles;
  std::vector<int64_t> source;
  for (int64_t i = 0; i < P; ++i) {  // evenly spread over the validation split
    const int64_t v = P == 1 ? 0 : static_cast<int64_t>(std::llround(static_cast<double>(i) * (n - 1) / (P - 1)));
    smiles.push_back(table_.smiles[split_.val[v]]);
    source.push_back(v);
  }
  return probes_of(smiles, source);
}

ProbeSet MoleculeTask::parse_probes(const std::string& text, const std::string& origin) const {
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
  return probes_of(smiles, std::vector<int64_t>(smiles.size(), -1));
}

void MoleculeTask::write_run_files(const std::string& run_dir) {
  data::write_split_file((fs::path(run_dir) / "split.json").string(), split_, config_.data.csv);
  if (tok_->regex) tok_->regex->save((fs::path(run_dir) / "vocab.json").string());
  if (tok_->bpe) {
    for (const char* f : {"vocab.json", "merges.txt"}) {
      write_file_atomic((fs::path(run_dir) / f).string(), read_file((fs::path(tok_->dir) / f).string()));
    }
  }
  // the model as Hugging Face describes it, so predict / export read the run like a model directory
  write_file_atomic((fs::path(run_dir) / "config.json").string(),
                    models::hf_config_json(rc_, "RobertaForSequenceClassification",
                                           regression_ ? "regression" : "multi_label_classification"));
  nlohmann::json stats = {{"task", config_.data.task}, {"targets", config_.data.targets}};
  if (regression_) {
    stats["mean"] = std::vector<double>(mean_.data_ptr<float>(), mean_.data_ptr<float>() + mean_.numel());
    stats["std"] = std::vector<double>(std_.data_ptr<float>(), std_.data_ptr<float>() + std_.numel());
  }
  write_file_atomic((fs::path(run_dir) / "targets.json").string(), stats.dump(2) + "\n");
}

void MoleculeTask::finish(const std::string& run_dir) {
  // test metrics of the best checkpoint (else of the final weights)
  const auto best = fs::path(run_dir) / "checkpoints" / "best.pt";
  std::string which = "final";
  if (fs::exists(best)) {
    load_checkpoint(best.string(), *model_, nullptr, false);
    which = "best";
  }
  const auto m = metrics_of(split_.test, "test_");
  nlohmann::json j = {{"checkpoint", which}, {"split", split_.method}, {"test_size", split_.test.size()}};
  std::ostringstream line;
  line << "[test] " << which << " checkpoint on the " << split_.test.size() << " test molecules:";
  for (const auto& [k, v] : m) {
    j[k] = std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr);
    if (k.find('_', 5) == std::string::npos) line << " " << k << " " << v;
  }
  write_file_atomic((fs::path(run_dir) / "test_metrics.json").string(), j.dump(2) + "\n");
  log::info(line.str());
}

std::unique_ptr<Task> make_task(const Config& config) {
  if (config.data.task == "minmax") return std::make_unique<MinMaxTask>(config);
  if (config.data.task == "regression" || config.data.task == "classification") {
    return std::make_unique<MoleculeTask>(config);
  }
  throw std::invalid_argument("unknown task '" + config.data.task + "'");  // validated earlier
}

}  // namespace attnscope::train
