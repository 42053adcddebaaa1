// Molecular property prediction (train/molecule_task.h).
#include "train/molecule_task.h"

#include <ATen/CPUGeneratorImpl.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <numeric>
#include <set>
#include <sstream>

#include "core/core.h"
#include "data/batching.h"
#include "data/bpe_tokenizer.h"
#include "data/smiles_tokenizer.h"
#include "models/hf_dir.h"
#include "train/checkpoint.h"
#include "train/loaded_model.h"
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

std::map<std::string, double> multiclass_metrics(const torch::Tensor& logits, const torch::Tensor& label) {
  const auto known = ~label.isnan();
  const auto p = torch::softmax(logits.to(torch::kDouble), 1).index({known}).contiguous();
  const auto y = label.index({known}).to(torch::kLong).contiguous();
  const int64_t n = y.numel(), C = logits.size(1);
  std::map<std::string, double> m;
  m["acc"] = n ? p.argmax(1).eq(y).sum().item<double>() / static_cast<double>(n) : std::nan("");
  std::vector<double> auc;  // one-vs-rest per class, macro-averaged over the defined ones
  for (int64_t c = 0; c < C; ++c) {
    std::vector<double> score(static_cast<size_t>(n));
    std::vector<int> is_c(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) {
      score[static_cast<size_t>(i)] = p.data_ptr<double>()[i * C + c];
      is_c[static_cast<size_t>(i)] = y.data_ptr<int64_t>()[i] == c;
    }
    auc.push_back(roc_auc(score, is_c));
  }
  m["roc_auc"] = nanmean(auc);
  return m;
}

// ---- tokenizers --------------------------------------------------------------------------------

namespace {
// RoBERTa's masking over a tokenizer's vocabulary: its specials are never chosen nor drawn.
MaskSpec mask_spec_of(const data::MoleculeTokenizer& tok, double probability) {
  MaskSpec m;
  m.vocab_size = tok.vocab_size();
  m.probability = probability;
  m.mask_id = tok.mask_id();
  m.special = tok.special_ids();
  return m;
}
}  // namespace

// ---- masked-LM -------------------------------------------------------------------------------

std::pair<torch::Tensor, torch::Tensor> mlm_mask(const torch::Tensor& ids, const MaskSpec& spec,
                                                 const std::vector<uint64_t>& seeds) {
  auto in = ids.to(torch::kLong).contiguous().clone();
  auto labels = torch::full_like(in, -100);
  const int64_t B = in.size(0), T = in.size(1);
  if (static_cast<int64_t>(seeds.size()) != B) throw std::invalid_argument("mlm_mask: one seed per row");
  std::vector<char> special(static_cast<size_t>(std::max<int64_t>(spec.vocab_size, 1)), 0);
  for (int64_t s : spec.special) {
    if (s >= 0 && s < spec.vocab_size) special[static_cast<size_t>(s)] = 1;
  }
  auto* x = in.data_ptr<int64_t>();
  auto* y = labels.data_ptr<int64_t>();
  std::uniform_real_distribution<double> u(0.0, 1.0);
  for (int64_t i = 0; i < B; ++i) {
    std::mt19937_64 rng(seeds[static_cast<size_t>(i)]);
    for (int64_t t = 0; t < T; ++t) {
      const int64_t id = x[i * T + t];
      if (id < 0 || id >= spec.vocab_size || special[static_cast<size_t>(id)]) continue;
      if (u(rng) >= spec.probability) continue;
      y[i * T + t] = id;
      const double r = u(rng);
      if (r < 0.8) {
        x[i * T + t] = spec.mask_id;
      } else if (r < 0.9) {
        int64_t v;
        do {
          v = static_cast<int64_t>(rng() % static_cast<uint64_t>(spec.vocab_size));
        } while (special[static_cast<size_t>(v)] && static_cast<int64_t>(spec.special.size()) < spec.vocab_size);
        x[i * T + t] = v;
      }
    }
  }
  return {in, labels};
}

namespace {

// splitmix64 finaliser: well-spread seeds from (run seed, epoch, row)
uint64_t mix(uint64_t a, uint64_t b, uint64_t c) {
  uint64_t z = a * 0x9E3779B97F4A7C15ull ^ (b + 0x632BE59BD9B4E019ull) * 0xBF58476D1CE4E5B9ull ^ (c + 1) * 0x94D049BB133111EBull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
constexpr uint64_t kValidationMasks = ~0ull;  // the "epoch" of the fixed validation masks

std::vector<int64_t> at_positions(const std::vector<int64_t>& rows, const std::vector<int64_t>& positions) {
  std::vector<int64_t> out;
  out.reserve(positions.size());
  for (int64_t i : positions) out.push_back(rows[static_cast<size_t>(i)]);
  return out;
}

}  // namespace

// ---- the task ----------------------------------------------------------------------------------

MoleculeTask::MoleculeTask(const Config& config)
    : config_(config), augment_rng_(static_cast<uint64_t>(config.run.seed) * 7919 + 17) {
  const auto& d = config.data;
  const auto& mc = config.model;
  regression_ = d.task == "regression";
  multiclass_ = d.task == "multiclass";
  mlm_ = d.task == "mlm";
  data::set_max_smiles_length(d.max_smiles_length);
  if (mlm_) {
    table_ = data::read_pretraining_corpus(d, &excluded_);
    // held out: frac_val of the corpus (seeded); no test split (downstream tasks test)
    split_ = data::random_split(table_.size(), 1.0 - d.frac_val, d.frac_val, static_cast<uint64_t>(config.run.seed));
    split_.train.insert(split_.train.end(), split_.test.begin(), split_.test.end());
    split_.test.clear();
  } else {
    table_ = data::read_molecule_csv(d.csv, d.smiles_col, d.targets, d.invalid_smiles == "error");
    split_ = data::config_split(d, table_, static_cast<uint64_t>(config.run.seed));
  }

  // model dimensions: the pretrained model's, else the config's
  const fs::path pre = mc.pretrained;
  if (!mc.pretrained.empty()) {
    if (!fs::exists(pre / "config.json")) {
      throw UsageError("model.pretrained '" + mc.pretrained + "': no config.json (expected a Hugging Face model directory or "
                       "an attnscope molecule or pretraining run directory)");
    }
    rc_ = models::read_hf_config((pre / "config.json").string());
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
  const int64_t K = mlm_ ? 0 : static_cast<int64_t>(d.targets.size());
  rc_.num_labels = std::max<int64_t>(1, K);
  if (multiclass_) {  // class labels 0..C-1 in the one target column
    int64_t largest = -1;
    for (int64_t r = 0; r < table_.size(); ++r) {
      const float v = table_.targets[r];
      if (std::isnan(v)) continue;
      if (v < 0 || v != std::floor(v) || (d.num_classes > 0 && v >= static_cast<float>(d.num_classes))) {
        throw UsageError("'" + d.csv + "' line " + std::to_string(table_.line[r]) + ": '" + d.targets[0] + "' is " +
                         std::to_string(v) + "; multiclass labels are integers 0.." +
                         (d.num_classes > 0 ? std::to_string(d.num_classes - 1) : std::string("C-1")));
      }
      largest = std::max<int64_t>(largest, static_cast<int64_t>(v));
    }
    rc_.num_labels = d.num_classes > 0 ? d.num_classes : largest + 1;
    if (rc_.num_labels < 2) throw UsageError("data.targets: '" + d.targets[0] + "' holds fewer than 2 classes");
  }
  // the head's labels as transformers names them (config.json's id2label, problem_type)
  rc_.id2label.clear();
  rc_.label2id.clear();
  for (int64_t k = 0; k < (mlm_ ? 0 : rc_.num_labels); ++k) {
    rc_.id2label.push_back(multiclass_ ? d.targets[0] + "=" + std::to_string(k) : d.targets[static_cast<size_t>(k)]);
  }
  rc_.problem_type = mlm_ ? "" : regression_ ? "regression" : multiclass_ ? "single_label_classification"
                                                                       : "multi_label_classification";

  // tokenizer: a pretrained model's own (vocab.json, + merges.txt for BPE), else built / named
  const std::string tok_dir = mc.tokenizer_dir.empty() ? mc.pretrained : mc.tokenizer_dir;
  if (!mc.pretrained.empty()) {
    const bool bpe_model = fs::exists(pre / "merges.txt");
    if (fs::exists(pre / "vocab.json") && (bpe_model != (mc.tokenizer == "bpe"))) {
      throw UsageError("model.tokenizer: '" + mc.tokenizer + "' does not match model.pretrained '" + mc.pretrained +
                       "', whose vocabulary is " + (bpe_model ? "byte-level BPE (vocab.json + merges.txt): use bpe"
                                                              : "atom-level SMILES tokens (vocab.json, no merges.txt): use smiles-regex"));
    }
    if (!mc.tokenizer_dir.empty() && fs::exists(pre / "vocab.json") && fs::exists(fs::path(mc.tokenizer_dir) / "vocab.json") &&
        read_file((pre / "vocab.json").string()) != read_file((fs::path(mc.tokenizer_dir) / "vocab.json").string())) {
      throw UsageError("model.tokenizer_dir '" + mc.tokenizer_dir + "': its vocab.json differs from model.pretrained '" +
                       mc.pretrained + "'s; the model's embeddings are indexed by its own vocabulary (leave tokenizer_dir empty)");
    }
  }
  if (mc.tokenizer == "bpe") {
    tok_ = std::make_unique<data::MoleculeTokenizer>(data::BpeTokenizer::from_dir(tok_dir), tok_dir);
  } else if (!tok_dir.empty() && fs::exists(fs::path(tok_dir) / "vocab.json")) {
    tok_ = std::make_unique<data::MoleculeTokenizer>(data::SmilesTokenizer::load((fs::path(tok_dir) / "vocab.json").string()), tok_dir);
  } else {  // built here, from the training split
    std::vector<std::string> corpus;
    for (int64_t r : split_.train) corpus.push_back(table_.smiles[r]);
    tok_ = std::make_unique<data::MoleculeTokenizer>(data::SmilesTokenizer::build(corpus));
  }
  if (mc.pretrained.empty()) {
    rc_.vocab_size = tok_->vocab_size();
  } else if (tok_->vocab_size() != rc_.vocab_size && !(tok_->is_bpe() && tok_->vocab_size() < rc_.vocab_size)) {
    throw UsageError("model.pretrained '" + mc.pretrained + "' has a vocabulary of " + std::to_string(rc_.vocab_size) +
                     " tokens but the tokenizer has " + std::to_string(tok_->vocab_size()) +
                     ": use the model's own vocab.json (and merges.txt for bpe)");
  }
  mask_spec_ = mask_spec_of(*tok_, d.mlm_probability);
  mask_spec_.vocab_size = rc_.vocab_size;
  const int64_t limit = models::max_tokens(rc_);
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
  if (K > 0) {
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
    } else if (!multiclass_) {
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
  }

  torch::manual_seed(static_cast<uint64_t>(config.run.seed));
  if (mlm_) {
    lm_ = models::RobertaForMaskedLM(rc_);
  } else {
    model_ = models::RobertaForSequenceClassification(rc_);
  }
  if (!mc.pretrained.empty()) load_pretrained();
  if (mc.freeze_layers > 0) {
    for (auto& p : encoder()->embeddings->parameters()) p.requires_grad_(false);
    for (int64_t l = 0; l < mc.freeze_layers; ++l) {
      for (auto& p : encoder()->encoder->layer[l]->parameters()) p.requires_grad_(false);
    }
  }
}

models::RobertaModel& MoleculeTask::encoder() { return mlm_ ? lm_->roberta : model_->roberta; }

// Weights of model.pretrained (a Hugging Face directory, or an attnscope run's best checkpoint,
// else its last) through the one loader, copied by Hugging Face name: a head of another task is
// skipped, a missing one keeps its seeded initialisation, one of another size is re-initialised
// with model.reinit_heads.
void MoleculeTask::load_pretrained() {
  auto src = load_model(config_.model.pretrained, "model.pretrained");
  std::map<std::string, torch::Tensor> tensors;
  const std::string prefix = src.hf.architecture == models::kRobertaEncoder ? "roberta." : "";
  for (const auto& p : src.hf.module().named_parameters()) tensors[prefix + p.key()] = p.value().detach();
  // the random generator is untouched by loading: heads the checkpoint lacks keep the seeded init
  models::load_hf_state(module(), tensors, src.origin, &new_heads_, config_.model.reinit_heads);
  if (config_.model.reinit_heads && !new_heads_.empty()) {
    std::string names;
    for (const auto& n : new_heads_) names += (names.empty() ? "" : ", ") + n;
    log::info("[model] task head initialised (not in, or of another size in, " + src.origin + "): " + names);
  }
}

MoleculeTask::~MoleculeTask() = default;

torch::nn::Module& MoleculeTask::module() {
  if (mlm_) return *lm_;
  return *model_;
}

std::string MoleculeTask::describe() const {
  int64_t params = 0;
  for (const auto& p : const_cast<MoleculeTask*>(this)->module().parameters()) params += p.numel();
  std::ostringstream s;
  s << "roberta " << rc_.num_hidden_layers << " layers x " << rc_.hidden_size << " hidden, " << rc_.num_attention_heads
    << " heads, " << params << " parameters, vocab " << rc_.vocab_size << " ("
    << (tok_->is_bpe()           ? "byte-level BPE from " + tok_->dir()
        : tok_->dir().empty() ? std::string("atom-level SMILES tokens of the training split")
                              : "atom-level SMILES tokens of " + tok_->dir() + "/vocab.json")
    << "); ";
  if (mlm_) {
    s << "masked-LM (" << config_.data.mlm_probability * 100 << " % of tokens) on " << table_.size() << " SMILES of "
      << config_.data.csv << " (" << table_.dropped << " unparsable dropped, " << excluded_ << " excluded, " << truncated_
      << " truncated); " << split_.train.size() << " train / " << split_.val.size() << " held out";
  } else {
    s << config_.data.task << " of " << config_.data.targets.size() << " target(s)";
    if (multiclass_) s << " (" << rc_.num_labels << " classes)";
    s << " on " << table_.size() << " molecules of " << config_.data.csv << " (" << table_.dropped
      << " unparsable dropped, " << truncated_ << " truncated); " << split_.method << " split " << split_.train.size()
      << "/" << split_.val.size() << "/" << split_.test.size();
  }
  if (!config_.model.pretrained.empty()) {
    s << "; from " << config_.model.pretrained;
    if (!new_heads_.empty()) s << " (task head initialised: " << new_heads_.size() << " tensors, e.g. " << new_heads_.front() << ")";
  } else {
    s << "; from scratch (seed " << config_.run.seed << ")";
  }
  return s.str();
}

std::string MoleculeTask::model_json() const {
  return roberta_model_json(rc_, config_.data.task, config_.data.targets, tok_->kind());
}

std::vector<int64_t> MoleculeTask::rows_of(const std::vector<int64_t>& split, const torch::Tensor& idx) const {
  std::vector<int64_t> rows;
  const auto c = idx.contiguous();
  for (int64_t i = 0; i < c.numel(); ++i) rows.push_back(split[c.data_ptr<int64_t>()[i]]);
  return rows;
}

MoleculeTask::Batch MoleculeTask::make_batch(const std::vector<int64_t>& rows, bool augment) const {
  std::vector<std::vector<int64_t>> enc;
  const int64_t limit = models::max_tokens(rc_);
  size_t T = 0;
  for (int64_t r : rows) {
    if (augment) {
      enc.push_back(tok_->encode(data::randomized_smiles(table_.smiles[r], augment_rng_), limit));
    } else {
      enc.push_back(ids_[r]);
    }
    T = std::max(T, enc.back().size());
  }
  const int64_t B = static_cast<int64_t>(rows.size()), K = static_cast<int64_t>(table_.target_names.size());
  Batch b;
  b.ids = torch::full({B, static_cast<int64_t>(T)}, tok_->pad_id(), torch::kLong);
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

torch::Tensor MoleculeTask::per_target_loss(const torch::Tensor& out, const torch::Tensor& target) const {
  const auto y = target.nan_to_num(0.0);
  if (multiclass_) {
    return torch::nn::functional::cross_entropy(out, y.select(1, 0).to(torch::kLong),
                                                torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kNone))
        .unsqueeze(1);
  }
  if (regression_) return (out - (y - mean_) / std_).pow(2);
  return torch::binary_cross_entropy_with_logits(out, y, {}, pos_weight_, at::Reduction::None);
}

std::tuple<torch::Tensor, int64_t, int64_t> MoleculeTask::mlm_loss(const Batch& b, const std::vector<int64_t>& rows,
                                                                    uint64_t epoch) {
  std::vector<uint64_t> seeds;
  for (int64_t r : rows) seeds.push_back(mix(static_cast<uint64_t>(config_.run.seed), epoch, static_cast<uint64_t>(r)));
  const auto [input, labels] = mlm_mask(b.ids, mask_spec_, seeds);
  const auto chosen = labels.ne(-100);
  const int64_t count = chosen.sum().item<int64_t>();
  if (count == 0) return {torch::zeros({}), 0, 0};
  // the LM head runs on the predicted positions only (the loss is the same as over all positions)
  const auto h = lm_->roberta->forward(input, b.mask).index({chosen});
  const auto logits = lm_->lm_head->forward(h, lm_->roberta->embeddings->word_embeddings->weight);
  const auto y = labels.index({chosen});
  const auto loss = torch::nn::functional::cross_entropy(logits, y);
  const int64_t correct = logits.argmax(1).eq(y).sum().item<int64_t>();
  return {loss, count, correct};
}

StepStats MoleculeTask::train_step(const torch::Tensor& idx) {
  const auto rows = rows_of(split_.train, idx);
  const auto b = make_batch(rows, config_.data.augment);
  StepStats s;
  if (mlm_) {
    auto [loss, count, correct] = mlm_loss(b, rows, static_cast<uint64_t>(epoch_));
    if (count > 0) loss.backward();
    s.loss_sum = loss.item<double>() * static_cast<double>(count);
    s.count = count;
    s.correct = correct;
    return s;
  }
  const auto out = model_->forward(b.ids, b.mask);
  const auto known = ~b.target.isnan();
  if (multiclass_) {
    s.correct = (out.argmax(1).eq(b.target.nan_to_num(0.0).select(1, 0).to(torch::kLong)) & known.select(1, 0))
                    .sum()
                    .item<int64_t>();
  }
  const auto per = per_target_loss(out, b.target) * known.to(out.dtype());
  const auto count = known.sum().item<int64_t>();
  const auto loss = per.sum() / std::max<int64_t>(1, count);
  loss.backward();
  s.loss_sum = loss.item<double>() * static_cast<double>(count);
  s.count = count;
  s.has_accuracy = multiclass_;
  return s;
}

double MoleculeTask::loss_weight(const torch::Tensor& idx) const {
  const auto rows = rows_of(split_.train, idx);
  if (mlm_) {
    // the predicted tokens: the masks depend on (seed, epoch, molecule) alone, so they are known
    // before the step (with data.augment the SMILES are drawn in the step: molecules, as DDP does)
    if (config_.data.augment) return static_cast<double>(rows.size());
    std::vector<uint64_t> seeds;
    for (int64_t r : rows) seeds.push_back(mix(static_cast<uint64_t>(config_.run.seed), static_cast<uint64_t>(epoch_), static_cast<uint64_t>(r)));
    return static_cast<double>(mlm_mask(make_batch(rows, false).ids, mask_spec_, seeds).second.ne(-100).sum().item<int64_t>());
  }
  const int64_t K = static_cast<int64_t>(table_.target_names.size());
  double known = 0;
  for (int64_t r : rows) {
    for (int64_t k = 0; k < K; ++k) known += std::isnan(table_.targets[r * K + k]) ? 0 : 1;
  }
  return known;
}

std::vector<std::vector<int64_t>> MoleculeTask::eval_batches(const std::vector<int64_t>& rows) const {
  constexpr int64_t kRows = 64;
  constexpr int64_t kWeights = int64_t{1} << 22;
  const auto n = static_cast<int64_t>(rows.size());
  std::vector<int64_t> order(rows.size());
  std::iota(order.begin(), order.end(), 0);
  auto len = [&](int64_t i) { return static_cast<int64_t>(ids_[rows[i]].size()); };
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return len(a) < len(b); });
  std::vector<std::vector<int64_t>> batches;
  for (int64_t i = 0; i < n;) {
    int64_t end = i + 1;  // order[end] is the longest so far (sorted)
    while (end < n && end - i < kRows && (end - i + 1) * rc_.num_attention_heads * len(order[end]) * len(order[end]) <= kWeights) ++end;
    batches.emplace_back(order.begin() + i, order.begin() + end);
    i = end;
  }
  return batches;
}

bool MoleculeTask::attention_with_next_evaluate(const std::vector<int64_t>& layers, AttentionSink sink) {
  if (mlm_) return false;  // (its evaluation sees masked inputs; the recorder's metrics are of the molecules)
  sink_layers_ = layers;
  sink_ = std::move(sink);
  return true;
}

torch::Tensor MoleculeTask::head_importance_of(models::RobertaForSequenceClassification& model) const {
  const int64_t L = rc_.num_hidden_layers, H = rc_.num_attention_heads;
  auto raw = torch::zeros({L, H}, torch::kDouble);
  int64_t n = 0;
  torch::AutoGradMode grad(true);
  for (const auto& at : eval_batches(split_.val)) {
    const auto part = at_positions(split_.val, at);
    const auto b = make_batch(part, false);
    const int64_t B = b.ids.size(0);
    models::Taps taps;
    std::vector<torch::Tensor> gates;
    for (int64_t l = 0; l < L; ++l) {
      gates.push_back(torch::ones({B, H}, torch::requires_grad()));  // per example: one backward, every dLoss_x/dxi
      taps.set_head_gate(l, gates.back());
    }
    const auto out = model->forward(b.ids, b.mask, &taps);
    const auto known = (~b.target.isnan()).to(out.dtype());
    const auto loss = (per_target_loss(out, b.target) * known).sum();
    n += B;
    if (known.sum().item<double>() == 0) continue;  // (no labels: no gradient)
    const auto g = torch::autograd::grad({loss}, gates);
    for (int64_t l = 0; l < L; ++l) raw[l] += g[l].abs().sum(0).to(torch::kDouble);
  }
  if (n == 0) return {};
  raw /= static_cast<double>(n);
  return raw / raw.norm(2, -1, true).clamp_min(1e-12);  // unit L2 norm per layer
}

torch::Tensor MoleculeTask::head_importance() {
  if (mlm_) return {};
  const bool was_training = model_->is_training();
  model_->eval();
  auto hi = head_importance_of(model_);
  model_->train(was_training);
  return hi;
}

namespace {
// `to`'s parameters and buffers := `from`'s, by name (no autograd; exact).
void copy_module(const torch::nn::Module& from, torch::nn::Module& to) {
  torch::NoGradGuard no_grad;
  const auto p = from.named_parameters();
  for (auto& t : to.named_parameters()) t.value().copy_(p[t.key()]).set_requires_grad(false);
  const auto b = from.named_buffers();
  for (auto& t : to.named_buffers()) t.value().copy_(b[t.key()]);
  to.eval();
}
// A module of the same shape as the task's: its random initialisation must not move the run's generator.
template <typename M>
M fresh_module(const models::RobertaConfig& rc) {
  auto gen = at::detail::getDefaultCPUGenerator();
  const auto state = gen.get_state();
  M m(rc);
  gen.set_state(state);
  return m;
}
}  // namespace

// The task's forwards on a copy of the encoder (and the head of a supervised task).
class MoleculeTask::Frozen : public Snapshot {
 public:
  explicit Frozen(const MoleculeTask& t) : t_(t) {
    if (t.mlm_) {
      encoder_ = fresh_module<models::RobertaModel>(t.rc_);
      copy_module(*t.lm_->roberta, *encoder_);
    } else {
      model_ = fresh_module<models::RobertaForSequenceClassification>(t.rc_);
      copy_module(*t.model_, *model_);
    }
  }
  void forward_taps(const torch::Tensor& inputs, models::Taps& taps) override {
    torch::NoGradGuard no_grad;
    forward_molecules(encoder_ ? nullptr : &model_, encoder_ ? &encoder_ : nullptr, inputs, t_.tok_->pad_id(), taps);
  }
  std::vector<torch::Tensor> val_attention_layers(const torch::Tensor& idx, const std::vector<int64_t>& layers) override {
    models::Taps taps;
    taps.request(models::site::kAttnProbs, layers);
    forward_taps(t_.val_inputs(idx), taps);
    std::vector<torch::Tensor> out;
    for (int64_t l : layers) out.push_back(taps.get(models::site::kAttnProbs, l));
    return out;
  }
  torch::Tensor head_importance() override { return model_ ? t_.head_importance_of(model_) : torch::Tensor(); }

 private:
  const MoleculeTask& t_;  // (its data and batching only, which training does not change)
  models::RobertaModel encoder_{nullptr};
  models::RobertaForSequenceClassification model_{nullptr};
};

std::shared_ptr<Snapshot> MoleculeTask::snapshot() const { return std::make_shared<Frozen>(*this); }

torch::Tensor MoleculeTask::predict(const std::vector<int64_t>& rows) {
  torch::NoGradGuard no_grad;
  model_->eval();
  torch::Tensor out;
  for (const auto& at : eval_batches(rows)) {
    const auto part = at_positions(rows, at);
    const auto b = make_batch(part, false);
    models::Taps taps;
    if (sink_) taps.request(models::site::kAttnProbs, sink_layers_);
    const auto y = model_->forward(b.ids, b.mask, sink_ ? &taps : nullptr);
    if (!out.defined()) out = torch::empty({static_cast<int64_t>(rows.size()), y.size(1)}, y.options());
    out.index_copy_(0, torch::tensor(at, torch::kLong), y);
    if (sink_) {
      std::vector<torch::Tensor> probs;
      for (int64_t l : sink_layers_) probs.push_back(taps.get(models::site::kAttnProbs, l));
      std::vector<int64_t> len;
      for (int64_t r : part) len.push_back(static_cast<int64_t>(ids_[r].size()));
      sink_(probs, torch::tensor(len, torch::kLong));
    }
  }
  if (!out.defined()) out = torch::empty({0, 1});
  return out;
}

Metrics MoleculeTask::mlm_metrics(const std::vector<int64_t>& rows, const std::string& prefix) {
  // fixed masks (the same every epoch), so that the numbers compare across epochs
  torch::NoGradGuard no_grad;
  lm_->eval();
  double loss_sum = 0;
  int64_t count = 0, correct = 0;
  for (const auto& at : eval_batches(rows)) {
    const auto part = at_positions(rows, at);
    const auto [loss, n, c] = mlm_loss(make_batch(part, false), part, kValidationMasks);
    loss_sum += loss.item<double>() * static_cast<double>(n);
    count += n;
    correct += c;
  }
  const double loss = count ? loss_sum / static_cast<double>(count) : std::nan("");
  return {{prefix + "loss", loss},
          {prefix + "acc", count ? static_cast<double>(correct) / static_cast<double>(count) : std::nan("")},
          {prefix + "ppl", std::exp(loss)}};
}

Metrics MoleculeTask::metrics_of(const std::vector<int64_t>& rows, const std::string& prefix) {
  if (mlm_) return mlm_metrics(rows, prefix);
  const auto out = predict(rows);
  const int64_t K = static_cast<int64_t>(table_.target_names.size());
  auto target = torch::empty({static_cast<int64_t>(rows.size()), K});
  for (size_t i = 0; i < rows.size(); ++i) {
    for (int64_t k = 0; k < K; ++k) target[i][k] = table_.targets[rows[i] * K + k];
  }
  const auto known = ~target.isnan();
  const auto per = per_target_loss(out, target);
  const auto m = multiclass_   ? multiclass_metrics(out, target.select(1, 0))
                 : regression_ ? regression_metrics(out * std_ + mean_, target, config_.data.targets)  // original units
                               : classification_metrics(out, target, config_.data.targets);
  Metrics res;
  res[prefix + "loss"] = (per * known.to(per.dtype())).sum().item<double>() / std::max<int64_t>(1, known.sum().item<int64_t>());
  for (const auto& [k, v] : m) res[prefix + k] = v;
  return res;
}

Metrics MoleculeTask::evaluate() {
  struct Reset {  // the sink serves one evaluation, also when it throws
    AttentionSink& s;
    ~Reset() { s = nullptr; }
  } reset{sink_};
  return metrics_of(split_.val, "val_");
}

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
  module().eval();
  forward_molecules(mlm_ ? nullptr : &model_, mlm_ ? &lm_->roberta : nullptr, inputs, tok_->pad_id(), taps);
}

ProbeSet MoleculeTask::probes_of(const std::vector<std::string>& smiles, const std::vector<int64_t>& source) const {
  return molecule_probes(*tok_, models::max_tokens(rc_), smiles, source);
}

ProbeSet MoleculeTask::default_probes(int64_t count) const {
  // evenly spread over the validation molecules no longer than its 90th length percentile: every
  // map is stored padded to the longest probe, and one 150-token SMILES would pad all of them
  std::vector<int64_t> len;
  for (int64_t r : split_.val) len.push_back(static_cast<int64_t>(ids_[r].size()));
  auto sorted = len;
  std::sort(sorted.begin(), sorted.end());
  const int64_t cap = sorted.empty() ? 0 : sorted[static_cast<size_t>(0.9 * static_cast<double>(sorted.size() - 1))];
  std::vector<int64_t> pool;
  for (size_t v = 0; v < len.size(); ++v) {
    if (len[v] <= cap) pool.push_back(static_cast<int64_t>(v));
  }
  const int64_t n = static_cast<int64_t>(pool.size()), P = std::min(count, n);
  std::vector<std::string> smiles;
  std::vector<int64_t> source;
  for (int64_t i = 0; i < P; ++i) {
    const int64_t v = pool[P == 1 ? 0 : static_cast<size_t>(std::llround(static_cast<double>(i) * (n - 1) / (P - 1)))];
    smiles.push_back(table_.smiles[split_.val[v]]);
    source.push_back(v);
  }
  return probes_of(smiles, source);
}

ProbeSet MoleculeTask::parse_probes(const std::string& text, const std::string& origin) const {
  return parse_smiles_probes(*tok_, models::max_tokens(rc_), text, origin);
}

std::map<std::string, int64_t> MoleculeTask::data_counts() const {
  std::map<std::string, int64_t> c = {{"dropped_smiles", table_.dropped}, {"truncated_smiles", truncated_}};
  if (mlm_) c["excluded_smiles"] = excluded_;
  return c;
}

void MoleculeTask::write_run_files(const std::string& run_dir) {
  data::write_split_file((fs::path(run_dir) / "split.json").string(), split_, config_.data.csv);
  tok_->save(run_dir);
  // the model as Hugging Face describes it, so predict / export read the run like a model directory
  write_file_atomic((fs::path(run_dir) / "config.json").string(),
                    models::hf_config_json(rc_, mlm_ ? models::kRobertaMaskedLM : models::kRobertaClassifier));
  nlohmann::json stats = {{"task", config_.data.task}, {"targets", config_.data.targets}};
  if (multiclass_) stats["num_classes"] = rc_.num_labels;
  if (regression_) {
    stats["mean"] = std::vector<double>(mean_.data_ptr<float>(), mean_.data_ptr<float>() + mean_.numel());
    stats["std"] = std::vector<double>(std_.data_ptr<float>(), std_.data_ptr<float>() + std_.numel());
  }
  write_file_atomic((fs::path(run_dir) / "targets.json").string(), stats.dump(2) + "\n");
}

void MoleculeTask::finish(const std::string& run_dir, const analysis::ProbeHistory*) {
  if (mlm_) {
    log::info("[pretrain] fine-tune from it with model.pretrained: " + run_dir + " (its best checkpoint), or export it with "
              "`attnscope export --model " + run_dir + " --hf DIR`");
    return;
  }
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
    // the averaged metrics (per-target ones, e.g. test_roc_auc_NR_AR, are in the file only)
    static const std::set<std::string> kAveraged = {"test_loss", "test_rmse", "test_mae", "test_r2",
                                                    "test_roc_auc", "test_pr_auc", "test_acc"};
    if (kAveraged.count(k)) line << " " << k << " " << v;
  }
  write_file_atomic((fs::path(run_dir) / "test_metrics.json").string(), j.dump(2) + "\n");
  log::info(line.str());
}

std::unique_ptr<Task> make_task(const Config& config) {
  if (config.data.task == "minmax") return std::make_unique<MinMaxTask>(config);
  if (config.data.task == "regression" || config.data.task == "classification" || config.data.task == "multiclass" ||
      config.data.task == "mlm") {
    return std::make_unique<MoleculeTask>(config);
  }
  throw std::invalid_argument("unknown task '" + config.data.task + "'");  // validated earlier
}

}  // namespace attnscope::train
