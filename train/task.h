// A Task binds a dataset, a model and a loss: the trainer drives it without knowing which it is.
#pragma once

#include <torch/torch.h>

#include <functional>
#include <map>
#include <memory>
#include <string>

#include "analysis/analysis.h"
#include "core/core.h"
#include "models/models.h"

namespace attnscope::train {

struct StepStats {
  double loss_sum = 0;   // summed over the batch's examples
  int64_t correct = 0;
  int64_t count = 0;
  bool has_accuracy = true;  // false: `correct` means nothing for this task (regression, ...)
};

using Metrics = std::map<std::string, double>;

// Fixed example inputs whose attention is recorded (the probe set).
struct ProbeSet {
  torch::Tensor inputs;             // [P,T] int64, 0-padded
  torch::Tensor lengths;            // [P] int64
  std::vector<std::string> tokens;  // [P*T] token text ("" for padding)
  std::vector<std::string> text;    // [P] the example as text
  std::vector<int64_t> source;      // [P] row in the validation split, -1 when not from it
};

// Gradient attribution of each probe's prediction y (a classifier's: the predicted class's
// logit, or the first output of a regression): grad_input [P,T] = sum_d x_td dy/dx_td at the
// embeddings entering layer 0 (gradient x input; 0 at padding), attn_grad [P,L,H] = sum_ij
// A_ij dy/dA_ij per head (attention x gradient, Hao et al. 2021: the first-order change of y
// when the head's attention is scaled). Undefined tensors when the model has no such prediction.
struct Attribution {
  torch::Tensor grad_input, attn_grad;
};
// The attribution of y = predict(taps) ([P], one prediction per input row) for inputs of P rows,
// T tokens, width D, L layers of H heads: one backward through the embedding delta and the
// attention gates the forward finds in `taps` (models/taps.h), which also asks for the embeddings
// (site embed.out). `mask` [P,T] zeroes padding. Autograd is switched on here; only the delta and
// gates get gradients.
Attribution gradient_attribution(int64_t P, int64_t T, int64_t D, int64_t L, int64_t H, const torch::Tensor& mask,
                                 const std::function<torch::Tensor(models::Taps&)>& predict);

// The validation examples as a whole-set projection shows them: each one's input text and
// targets [N,K] float (NaN: unknown; undefined: none), and how a classifier's outputs become
// predictions in the targets' terms (regression: the targets' units; binary labels: the
// probability; classes: each class's probability).
struct ValidationSet {
  std::vector<std::string> text;
  torch::Tensor target;
  std::function<torch::Tensor(const torch::Tensor&)> prediction;  // [n,O] outputs -> [n,O]; empty: none
};

// The module's weights at one moment, copied, with the task's plain forwards on them (eval mode,
// no gradients, the run's RNG untouched): what a recorder's own thread runs while training goes
// on. Its functions are those of Task below.
class Snapshot {
 public:
  virtual ~Snapshot() = default;
  virtual void forward_taps(const torch::Tensor& inputs, models::Taps& taps) = 0;
  virtual std::vector<torch::Tensor> val_attention_layers(const torch::Tensor& idx, const std::vector<int64_t>& layers) = 0;
  virtual torch::Tensor head_importance() = 0;  // undefined if unsupported
  virtual Attribution attribution(const torch::Tensor& inputs) { return {}; }
};

// What the trainer needs: the module, the training data in batches, a step, an evaluation.
class Trainable {
 public:
  virtual ~Trainable() = default;

  virtual torch::nn::Module& module() = 0;
  virtual std::string describe() const = 0;  // one line: model, parameters, data sizes
  virtual int64_t train_size() const = 0;
  // Called by the trainer before each epoch's batches (a task with per-epoch randomness, such as
  // dynamic masking, derives it from the epoch so that a resumed run draws the same).
  virtual void begin_epoch(int64_t epoch) {}
  // The epoch's batches of training indices from its seeded order (default: consecutive slices;
  // a task may bucket by length).
  virtual std::vector<torch::Tensor> epoch_batches(const torch::Tensor& order, int64_t batch_size) const;
  // Forward + backward over training examples `idx`; gradients of the batch-mean loss are
  // accumulated into the module's parameters.
  virtual StepStats train_step(const torch::Tensor& idx) = 0;
  // What train_step's batch-mean loss of `idx` divides by (StepStats::count), when known before
  // the step: data-parallel training weights each rank's gradient by it, so that the ranks'
  // slices of a batch sum to the batch's own mean. Default: the number of examples.
  virtual double loss_weight(const torch::Tensor& idx) const { return static_cast<double>(idx.size(0)); }
  // Metrics over the whole validation split, prefixed "val_" (val_loss, val_acc, ...).
  virtual Metrics evaluate() = 0;
  // Counts about the data the run actually used (dropped unparsable SMILES, truncated, ...),
  // written on every metrics.jsonl line as data_<name>.
  virtual std::map<std::string, int64_t> data_counts() const { return {}; }
};

// What hooks read: plain forwards of the module through its tap points (eval mode, no
// gradients, the run's RNG untouched), the probe set, the validation split's attention, and the
// speed-ups a recorder may use (a frozen copy, work fused into the coming evaluation).
class Inspectable {
 public:
  virtual ~Inspectable() = default;

  virtual torch::nn::Module& module() = 0;
  virtual int64_t num_layers() const = 0;
  virtual int64_t num_heads() const = 0;
  virtual std::string model_json() const = 0;  // name and dimensions, for file headers
  // The task kind's name (TaskTraits::name) for file headers; "" when unknown.
  virtual std::string task_name() const { return ""; }
  virtual int64_t val_size() const = 0;
  virtual torch::Tensor val_inputs(const torch::Tensor& idx) const = 0;   // [b,T]
  virtual torch::Tensor val_lengths(const torch::Tensor& idx) const = 0;  // [b]
  virtual void forward_taps(const torch::Tensor& inputs, models::Taps& taps) = 0;
  // Attention probabilities [b,H,T,T] of `layer` for validation rows `idx` (metrics over the
  // whole split). Default: the module's attn.probs tap; a task may compute the same faster.
  virtual torch::Tensor val_attention(const torch::Tensor& idx, int64_t layer);
  // The same for several layers: one forward for all of them (a single layer: val_attention).
  std::vector<torch::Tensor> val_attention_layers(const torch::Tensor& idx, const std::vector<int64_t>& layers);
  // Head importance (Michel et al. 2019): for a gate xi = 1 on each head's output, the mean over
  // the validation split of |dLoss_x/dxi_h|, normalised to unit L2 norm per layer: [L,H] float64.
  // No weight update and no parameter gradients are left behind. Undefined if unsupported.
  virtual torch::Tensor head_importance() { return {}; }
  // Gradient attribution of the prediction for probe inputs [P,T] (see Attribution); no
  // parameter gradients are left behind.
  virtual Attribution attribution(const torch::Tensor& inputs) { return {}; }
  // The validation split's examples for projections of all their pooled vectors (empty text: the
  // task offers none); output_dim(): O of the outputs (site "output") forward_taps gives, 0: none.
  virtual ValidationSet validation_set() const { return {}; }
  virtual int64_t output_dim() const { return 0; }
  // A frozen copy of the module's weights now, for a recorder's thread while training goes on
  // (nullptr, the default: the recorder runs the module in the trainer's thread).
  virtual std::shared_ptr<Snapshot> snapshot() const { return nullptr; }
  // A recorder that will ask for head_importance() right after the coming evaluate() says so
  // first; a task may then compute it within that evaluation's pass (same numbers, one pass).
  virtual void head_importance_with_next_evaluate() {}
  // The validation split's attention as the coming evaluate() computes it: a recorder that wants
  // per-head metrics over the split hands `sink`; the task then asks for attn.probs of `layers` in
  // evaluate()'s own forward passes and calls sink(probs per layer [b,H,T,T], lengths [b]) after
  // each batch, so the split is run once, not twice. The evaluation's results do not change (its
  // batches are the same either way). Returns false when the task cannot; the recorder then makes
  // its own pass (val_attention_layers).
  using AttentionSink = std::function<void(const std::vector<torch::Tensor>& probs, const torch::Tensor& lengths)>;
  virtual bool attention_with_next_evaluate(const std::vector<int64_t>& layers, AttentionSink sink) { return false; }
  // The default probe set of `count` examples (deterministic), or one read from a file
  // (UsageError naming the file and line of a bad row).
  virtual ProbeSet default_probes(int64_t count) const = 0;
  // Probe inputs from text, one example per line (# comments and blank lines skipped);
  // `origin` names the source in errors ("probes.txt", "--ids").
  virtual ProbeSet parse_probes(const std::string& text, const std::string& origin) const = 0;
  ProbeSet probes_from_file(const std::string& path) const;
  // Width of the pooled tap (the readout vector the recorder stores per probe); 0 = none.
  virtual int64_t pooled_dim() const { return 0; }
  // Whether attention is causal (GPT-2): row i attends to keys 0..i only; metrics use those.
  virtual bool causal() const { return false; }
  // Task-specific arrays of the final model for the attention file (/task/<name>): their shapes
  // are declared when the file is created, the values computed when training ends.
  virtual std::map<std::string, std::vector<int64_t>> final_array_shapes() const { return {}; }
  virtual std::map<std::string, std::vector<float>> final_arrays() { return {}; }
};

// What a run leaves in its directory besides metrics and attention.
class RunArtifacts {
 public:
  virtual ~RunArtifacts() = default;
  // Files the run needs to be reproduced or used later (split, tokenizer, target statistics),
  // written once the run directory exists.
  virtual void write_run_files(const std::string& run_dir) {}
  // End-of-run analysis printed to the log and written into the run directory. `recorded`: the
  // run's recorded attention of its recorded layers over the probes (when the task asked for it
  // with finish_reads_attention() and the recorder stored attn.probs), else null.
  virtual void finish(const std::string& run_dir, const analysis::ProbeHistory* recorded) {}
  // Whether finish() reads the run's recorded attention (the recorder completes its file first).
  virtual bool finish_reads_attention() const { return false; }
};

// A task binds a dataset, a model and a loss: the trainer, the hooks and the run directory each
// see the part they need.
class Task : public Trainable, public Inspectable, public RunArtifacts {
 public:
  torch::nn::Module& module() override = 0;
};

// Builds the task config.data.task names, through the registry of task kinds (one factory per
// TaskKind; the model is initialised from run.seed).
std::unique_ptr<Task> make_task(const Config& config);
using TaskFactory = std::function<std::unique_ptr<Task>(const Config& config)>;
const TaskFactory& task_factory(TaskKind kind);

}  // namespace attnscope::train
