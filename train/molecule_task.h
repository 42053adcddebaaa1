// Molecular property prediction with a RoBERTa encoder (the ChemBERTa workload): a
// MoleculeNet-style CSV, a scaffold / random / file split, regression (MSE on standardised
// targets, metrics in original units), binary / multi-task binary classification (BCE with
// logits, missing labels masked) or multi-class classification (cross-entropy), from scratch, a
// Hugging Face directory or an attnscope run. And masked-LM pretraining (task mlm) on a SMILES
// corpus with RoBERTa's dynamic masking, whose run fine-tunes from (model.pretrained: RUN_DIR).
#pragma once

#include <memory>
#include <random>

#include "data/molecule_tokenizer.h"
#include "data/molecules.h"
#include "models/roberta.h"
#include "train/task.h"

namespace attnscope::train {

// Regression metrics per target and averaged: rmse, mae, r2 (NaN where a target has < 2 labels).
std::map<std::string, double> regression_metrics(const torch::Tensor& pred, const torch::Tensor& target,
                                                 const std::vector<std::string>& names);
// ROC-AUC and PR-AUC (average precision) per task and averaged over the tasks where they are
// defined; a task whose labels are all one class is undefined (NaN), never 0.5.
std::map<std::string, double> classification_metrics(const torch::Tensor& logits, const torch::Tensor& target,
                                                      const std::vector<std::string>& names);
// Multi-class: accuracy and one-vs-rest ROC-AUC macro-averaged over the classes where it is
// defined; labels [n] (NaN = missing), logits [n,C].
std::map<std::string, double> multiclass_metrics(const torch::Tensor& logits, const torch::Tensor& label);
double roc_auc(const std::vector<double>& score, const std::vector<int>& label);
double average_precision(const std::vector<double>& score, const std::vector<int>& label);

// RoBERTa's masking (Liu et al. 2019, as transformers' DataCollatorForLanguageModeling): each token
// that is not special is chosen with `probability`; of the chosen, 80 % become <mask>, 10 % a
// random non-special token, 10 % stay. Row i draws from std::mt19937_64(seeds[i]) alone, so a
// molecule's masks do not depend on its batch. Returns (inputs, labels) for ids [B,T]; labels
// are -100 where nothing is predicted.
struct MaskSpec {
  int64_t mask_id = 4;
  int64_t vocab_size = 0;
  std::vector<int64_t> special;  // never chosen, never drawn as the random token (incl. padding)
  double probability = 0.15;
};
std::pair<torch::Tensor, torch::Tensor> mlm_mask(const torch::Tensor& ids, const MaskSpec& spec,
                                                 const std::vector<uint64_t>& seeds);

class MoleculeTask : public Task {
 public:
  explicit MoleculeTask(const Config& config);
  ~MoleculeTask() override;

  torch::nn::Module& module() override;
  std::string describe() const override;
  int64_t train_size() const override { return static_cast<int64_t>(split_.train.size()); }
  void begin_epoch(int64_t epoch) override { epoch_ = epoch; }
  std::vector<torch::Tensor> epoch_batches(const torch::Tensor& order, int64_t batch_size) const override;
  StepStats train_step(const torch::Tensor& idx) override;
  double loss_weight(const torch::Tensor& idx) const override;  // known labels of the rows
  Metrics evaluate() override;
  bool attention_with_next_evaluate(const std::vector<int64_t>& layers, AttentionSink sink) override;
  // Head importance over the validation split (supervised tasks; undefined for masked-LM): the
  // gradient of each example's loss (over its known labels) with respect to a gate on each head.
  torch::Tensor head_importance() override;
  std::shared_ptr<Snapshot> snapshot() const override;
  int64_t num_layers() const override { return rc_.num_hidden_layers; }
  int64_t num_heads() const override { return rc_.num_attention_heads; }
  std::string model_json() const override;
  int64_t val_size() const override { return static_cast<int64_t>(split_.val.size()); }
  torch::Tensor val_inputs(const torch::Tensor& idx) const override;
  torch::Tensor val_lengths(const torch::Tensor& idx) const override;
  void forward_taps(const torch::Tensor& inputs, models::Taps& taps) override;
  ProbeSet default_probes(int64_t count) const override;
  ProbeSet parse_probes(const std::string& text, const std::string& origin) const override;
  int64_t pooled_dim() const override { return rc_.hidden_size; }
  void write_run_files(const std::string& run_dir) override;
  std::map<std::string, int64_t> data_counts() const override;
  void finish(const std::string& run_dir, const analysis::ProbeHistory* recorded) override;

 private:
  class Frozen;
  struct Batch {
    torch::Tensor ids, mask, target;  // [b,T], [b,T], [b,K] (NaN = missing)
  };
  Batch make_batch(const std::vector<int64_t>& rows, bool augment) const;
  std::vector<int64_t> rows_of(const std::vector<int64_t>& split, const torch::Tensor& idx) const;
  // Evaluation batches as positions into `rows`: sorted by length (stable), at most 64 rows and
  // 4M attention weights per layer each, so that padding and a recorder's attention stay small.
  std::vector<std::vector<int64_t>> eval_batches(const std::vector<int64_t>& rows) const;
  torch::Tensor predict(const std::vector<int64_t>& rows);  // [n,K] raw outputs (eval mode), in row order
  torch::Tensor head_importance_of(models::RobertaForSequenceClassification& model) const;  // [L,H] float64
  Metrics metrics_of(const std::vector<int64_t>& rows, const std::string& prefix);
  Metrics mlm_metrics(const std::vector<int64_t>& rows, const std::string& prefix);
  // the supervised loss per example and target [b,K] (multiclass [b,1]) before masking missing
  // labels: MSE on standardised targets, BCE with logits, or cross-entropy
  torch::Tensor per_target_loss(const torch::Tensor& out, const torch::Tensor& target) const;
  // masked-LM loss over a batch: (mean loss over predicted tokens, their count, correct predictions)
  std::tuple<torch::Tensor, int64_t, int64_t> mlm_loss(const Batch& b, const std::vector<int64_t>& rows, uint64_t epoch);
  void load_pretrained();
  models::RobertaModel& encoder();
  ProbeSet probes_of(const std::vector<std::string>& smiles, const std::vector<int64_t>& source) const;

  const Config& config_;
  data::MoleculeTable table_;
  data::Split split_;
  std::unique_ptr<data::MoleculeTokenizer> tok_;
  std::vector<std::vector<int64_t>> ids_;  // encoded canonical input SMILES per row
  int64_t truncated_ = 0;
  models::RobertaConfig rc_;
  models::RobertaForSequenceClassification model_{nullptr};  // supervised tasks
  models::RobertaForMaskedLM lm_{nullptr};                     // mlm
  MaskSpec mask_spec_;
  int64_t epoch_ = 0;
  std::vector<int64_t> sink_layers_;  // attention_with_next_evaluate
  AttentionSink sink_;
  int64_t excluded_ = 0;  // mlm: corpus molecules removed by data.exclude
  std::vector<std::string> new_heads_;
  torch::Tensor mean_, std_, pos_weight_;  // [K] regression target statistics (train split); BCE weights
  mutable std::mt19937_64 augment_rng_;
  bool regression_ = true, multiclass_ = false, mlm_ = false;
};

}  // namespace attnscope::train
