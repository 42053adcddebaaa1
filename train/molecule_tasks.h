// The molecule tasks (the ChemBERTa workload), one class per task kind over shared molecule data:
// RegressionTask (MSE on standardised targets, metrics in original units), ClassificationTask
// (binary / multi-task binary: BCE with logits, missing labels masked), MulticlassTask
// (cross-entropy over class labels 0..C-1) and MaskedLMTask (RoBERTa's dynamic masking on a SMILES
// corpus, whose run fine-tunes from model.pretrained: RUN_DIR). Each trains a RoBERTa encoder from
// scratch, a Hugging Face directory or an attnscope run.
#pragma once

#include <nlohmann/json.hpp>

#include <memory>
#include <random>

#include "data/data.h"
#include "models/models.h"
#include "train/masking.h"
#include "train/task.h"

namespace attnscope::train {

// The molecules a task trains on, read once: the table (a MoleculeNet-style CSV, or a corpus),
// the split, the tokenizer (a pretrained model's own, a named one, or built from the training
// split), every row's ids, and the model's dimensions (the pretrained model's, else the config's).
struct MoleculeData {
  MoleculeData(const Config& config, const TaskTraits& task);

  struct Batch {
    torch::Tensor ids, mask, target;  // [b,T], [b,T], [b,K] (NaN = missing)
    torch::Tensor type_ids;           // [b,T] token types of sentence pairs (undefined: all 0)
  };
  // `augment`: each SMILES drawn anew as a random equivalent SMILES (data.augment)
  Batch make_batch(const std::vector<int64_t>& rows, bool augment) const;
  std::vector<int64_t> rows_of(const std::vector<int64_t>& split, const torch::Tensor& idx) const;
  // Evaluation batches as positions into `rows`: sorted by length (stable), at most 64 rows and
  // 4M attention weights per layer each, so that padding and a recorder's attention stay small.
  std::vector<std::vector<int64_t>> eval_batches(const std::vector<int64_t>& rows) const;
  // Length-bucketed training batches (windows of 32 batches sorted by length, then shuffled).
  std::vector<torch::Tensor> epoch_batches(const torch::Tensor& order, int64_t batch_size) const;
  int64_t length(int64_t row) const { return static_cast<int64_t>(ids[row].size()); }
  // rows[positions[i]] for every i (an evaluation batch's rows).
  static std::vector<int64_t> pick(const std::vector<int64_t>& rows, const std::vector<int64_t>& positions);
  int64_t num_targets() const { return static_cast<int64_t>(table.target_names.size()); }
  torch::Tensor targets_of(const std::vector<int64_t>& rows) const;        // [n,K] (NaN = missing)
  torch::Tensor train_targets() const;                                     // [train,K]
  std::string tokenizer_description() const;
  // data.synthetic: fresh random tokens for the training sequences of `epoch` (deterministic in
  // the seed, the epoch and the row: every rank and a resumed run draw the same).
  void refresh_sequences(int64_t epoch);

  const Config& config;
  const TaskTraits& task;
  bool text;  // text inputs (data.text_col, or a causal-LM corpus) rather than SMILES
  data::MoleculeTable table;  // clm: one row per packed block (its text decoded)
  data::Split split;
  std::shared_ptr<const data::Tokenizer> tok;
  std::vector<std::vector<int64_t>> ids;  // encoded input per row (SMILES, text, text pair, clm block)
  std::vector<int64_t> synthetic_prefix;  // data.synthetic: per row, the random tokens before the span
  std::vector<std::vector<int64_t>> type_ids;  // sentence pairs: token types per row (else empty)
  int64_t truncated = 0;
  int64_t excluded = 0;  // mlm: corpus molecules removed by data.exclude
  models::TransformerConfig rc;
  mutable std::mt19937_64 augment_rng;

 private:
  void read_model_dimensions();
  void choose_tokenizer();
  void encode_rows();
  void pack_corpus();  // clm: documents -> <|endoftext|>-separated token stream -> blocks
  void generate_sequences();  // clm with data.synthetic: repeated random spans (varied lengths), one per row
};

// What every molecule task shares: the data, the encoder and its forwards, probes, run files.
class MoleculeTask : public Task {
 public:
  ~MoleculeTask() override;

  std::string describe() const override;
  int64_t train_size() const override { return static_cast<int64_t>(d_.split.train.size()); }
  void begin_epoch(int64_t epoch) override { epoch_ = epoch; }
  std::vector<torch::Tensor> epoch_batches(const torch::Tensor& order, int64_t batch_size) const override;
  std::map<std::string, int64_t> data_counts() const override;

  int64_t num_layers() const override { return d_.rc.num_hidden_layers; }
  int64_t num_heads() const override { return d_.rc.num_attention_heads; }
  std::string model_json() const override;
  std::string task_name() const override { return d_.task.name; }
  int64_t val_size() const override { return static_cast<int64_t>(d_.split.val.size()); }
  torch::Tensor val_inputs(const torch::Tensor& idx) const override;
  torch::Tensor val_lengths(const torch::Tensor& idx) const override;
  void forward_taps(const torch::Tensor& inputs, models::Taps& taps) override;
  Attribution attribution(const torch::Tensor& inputs) override;
  std::shared_ptr<Snapshot> snapshot() const override;
  ProbeSet default_probes(int64_t count) const override;
  ProbeSet parse_probes(const std::string& text, const std::string& origin) const override;
  int64_t pooled_dim() const override { return d_.rc.hidden_size; }
  bool causal() const override { return d_.rc.causal(); }
  ValidationSet validation_set() const override;
  void write_run_files(const std::string& run_dir) override;

 protected:
  MoleculeTask(const Config& config, TaskKind kind);
  // The model (a classifier over the targets, or a language model) and its architecture.
  virtual models::TransformerImpl& transformer() = 0;
  // Head importance of `model`'s heads over the validation split ({} where undefined).
  virtual torch::Tensor head_importance_of(models::TransformerImpl& model) const { return {}; }
  // The task's words in describe() and its entries in targets.json.
  virtual void describe_task(std::ostream& s) const = 0;
  virtual void target_stats(nlohmann::json& stats) const {}
  // After the subclass built its module (torch::manual_seed first): the pretrained weights and
  // frozen layers of model.*.
  void init_weights();

  const Config& config_;
  MoleculeData d_;
  int64_t epoch_ = 0;
  std::vector<std::string> new_heads_;

 private:
  class Frozen;
  void load_pretrained();
};

// The three supervised kinds: a sequence classifier (its family's) over the targets.
class SupervisedTask : public MoleculeTask {
 public:
  torch::nn::Module& module() override { return *model_; }
  StepStats train_step(const torch::Tensor& idx) override;
  double loss_weight(const torch::Tensor& idx) const override;  // known labels of the rows
  Metrics evaluate() override;
  bool attention_with_next_evaluate(const std::vector<int64_t>& layers, AttentionSink sink) override;
  // Head importance over the validation split: the gradient of each example's loss (over its
  // known labels) with respect to a gate on each head.
  torch::Tensor head_importance() override;
  // Test metrics of the best checkpoint (else of the final weights) into test_metrics.json.
  void finish(const std::string& run_dir, const analysis::ProbeHistory* recorded) override;

 protected:
  SupervisedTask(const Config& config, TaskKind kind);
  models::TransformerImpl& transformer() override { return *model_; }
  torch::Tensor head_importance_of(models::TransformerImpl& model) const override;
  void describe_task(std::ostream& s) const override;
  // Labels (config.json's id2label, num_labels, problem_type), then the module, seeded.
  void build_model(int64_t num_labels);
  // The loss per example and target [b,K] (multiclass [b,1]) before masking missing labels.
  virtual torch::Tensor per_target_loss(const torch::Tensor& out, const torch::Tensor& target) const = 0;
  // The kind's metrics of raw outputs [n,K] against targets [n,K] (no prefix).
  virtual Metrics kind_metrics(const torch::Tensor& out, const torch::Tensor& target) const = 0;
  // Correct predictions of a training batch (multiclass); -1 when accuracy means nothing.
  virtual int64_t batch_correct(const torch::Tensor& out, const torch::Tensor& target) const { return -1; }
  virtual std::string label_name(int64_t k) const { return config_.data.targets[static_cast<size_t>(k)]; }
  // Raw outputs [n,O] as predictions in the targets' terms (ValidationSet::prediction).
  virtual torch::Tensor prediction_of(const torch::Tensor& out) const = 0;

 public:
  ValidationSet validation_set() const override;
  int64_t output_dim() const override { return model_->config().num_labels; }

 protected:

  models::Transformer model_;

 private:
  torch::Tensor predict(const std::vector<int64_t>& rows);  // [n,K] raw outputs (eval mode), in row order
  Metrics metrics_of(const std::vector<int64_t>& rows, const std::string& prefix);
  std::vector<int64_t> sink_layers_;  // attention_with_next_evaluate
  AttentionSink sink_;
};

class RegressionTask : public SupervisedTask {
 public:
  explicit RegressionTask(const Config& config);

 protected:
  torch::Tensor prediction_of(const torch::Tensor& out) const override { return out * std_ + mean_; }
  torch::Tensor per_target_loss(const torch::Tensor& out, const torch::Tensor& target) const override;
  Metrics kind_metrics(const torch::Tensor& out, const torch::Tensor& target) const override;
  void target_stats(nlohmann::json& stats) const override;

 private:
  torch::Tensor mean_, std_;  // [K] target statistics of the training split
};

class ClassificationTask : public SupervisedTask {
 public:
  explicit ClassificationTask(const Config& config);

 protected:
  torch::Tensor prediction_of(const torch::Tensor& out) const override { return torch::sigmoid(out); }
  torch::Tensor per_target_loss(const torch::Tensor& out, const torch::Tensor& target) const override;
  Metrics kind_metrics(const torch::Tensor& out, const torch::Tensor& target) const override;

 private:
  torch::Tensor pos_weight_;  // [K] BCE weights of the positives (data.pos_weight)
};

class MulticlassTask : public SupervisedTask {
 public:
  explicit MulticlassTask(const Config& config);

 protected:
  torch::Tensor prediction_of(const torch::Tensor& out) const override { return torch::softmax(out, 1); }
  torch::Tensor per_target_loss(const torch::Tensor& out, const torch::Tensor& target) const override;
  Metrics kind_metrics(const torch::Tensor& out, const torch::Tensor& target) const override;
  int64_t batch_correct(const torch::Tensor& out, const torch::Tensor& target) const override;
  std::string label_name(int64_t k) const override { return config_.data.targets[0] + "=" + std::to_string(k); }
  void target_stats(nlohmann::json& stats) const override;

 private:
  int64_t classes_of_labels() const;  // data.num_classes, else the largest label + 1 (labels checked)
};

class MaskedLMTask : public MoleculeTask {
 public:
  explicit MaskedLMTask(const Config& config);

  torch::nn::Module& module() override { return *lm_; }
  StepStats train_step(const torch::Tensor& idx) override;
  // The predicted tokens: the masks depend on (seed, epoch, molecule) alone, so they are known
  // before the step (with data.augment the SMILES are drawn in the step: molecules, as DDP does).
  double loss_weight(const torch::Tensor& idx) const override;
  // Over fixed validation masks (the same every epoch), so that the numbers compare across epochs.
  Metrics evaluate() override;
  std::map<std::string, int64_t> data_counts() const override;
  void finish(const std::string& run_dir, const analysis::ProbeHistory* recorded) override;

 protected:
  models::TransformerImpl& transformer() override { return *lm_; }
  void describe_task(std::ostream& s) const override;

 private:
  // (mean loss over predicted tokens, their count, correct predictions) of a batch
  std::tuple<torch::Tensor, int64_t, int64_t> mlm_loss(const MoleculeData::Batch& b, const std::vector<int64_t>& rows,
                                                       uint64_t epoch);
  std::vector<uint64_t> seeds_of(const std::vector<int64_t>& rows, uint64_t epoch) const;
  models::Transformer lm_;
  MaskSpec mask_spec_;
};

// Causal-LM (GPT-2): next-token loss over the corpus packed into blocks of data.block_size
// tokens (documents joined with <|endoftext|>; the held-out documents packed apart). val_loss is
// the mean loss per predicted token, val_ppl its exponential, val_acc the share of next tokens
// predicted exactly (argmax).
class CausalLMTask : public MoleculeTask {
 public:
  explicit CausalLMTask(const Config& config);

  torch::nn::Module& module() override { return *lm_; }
  StepStats train_step(const torch::Tensor& idx) override;
  double loss_weight(const torch::Tensor& idx) const override;  // the predicted tokens of the rows
  void begin_epoch(int64_t epoch) override;  // data.synthetic: the epoch's fresh training sequences
  // none: held-out token blocks have no target or prediction to project by, and the induction
  // preset records every epoch (a pass over them each time for nothing)
  ValidationSet validation_set() const override { return {}; }
  // With data.synthetic also val_icl: the in-context-learning score over the held-out sequences.
  Metrics evaluate() override;
  // Synthetic repeated sequences: the induction mechanism over training from the recorded
  // attention (every layer) and metrics.jsonl, into mechanism.json.
  void finish(const std::string& run_dir, const analysis::ProbeHistory* recorded) override;
  bool finish_reads_attention() const override { return !config_.data.synthetic.empty(); }

 protected:
  models::TransformerImpl& transformer() override { return *lm_; }
  void describe_task(std::ostream& s) const override;

 private:
  // (mean loss over predicted tokens, their count, correct predictions) of a batch
  std::tuple<torch::Tensor, int64_t, int64_t> clm_loss(const MoleculeData::Batch& b);
  // Olsson et al.'s score on the held-out repeated sequences: mean loss over the second span's
  // predictions minus the first's (negative: the repetition is predicted from context).
  double in_context_score();
  models::Transformer lm_;
};

}  // namespace attnscope::train
