// The attention recorder: an observer of the trainer that, at the configured epochs, runs the
// probe set through the module's tap points (eval mode, no gradients, RNG untouched) and appends
// the maps to RUN_DIR/attention.h5, and computes the per-head metrics over the whole validation
// split. Recording on or off leaves training bit-identical (tested). Its work runs in a thread of
// its own beside training, on a copy of the weights where the task makes one (Task::snapshot);
// the trainer's thread copies weights and hands over tensors.
#pragma once

#include <future>
#include <memory>
#include <optional>
#include <string>

#include "core/core.h"
#include "hooks/attention_metrics.h"
#include "store/store.h"
#include "train/train.h"

namespace attnscope::hooks {

// The probe set a config asks for (file or default); UsageError for a bad probe file. Called
// before the run directory is touched so that bad input writes nothing.
train::ProbeSet choose_probes(const AttentionHookConfig& config, const train::Inspectable& task);

// The attention probabilities a run recorded over its probes, for Task::finish: nullopt when `h5`
// does not exist; no epochs when it holds no attn.probs. Every recorded layer (L of them); reads
// lazily, one epoch at a time.
std::optional<analysis::ProbeHistory> recorded_history(const std::string& h5);

class JobQueue;

class AttentionRecorder : public train::Observer {
 public:
  // Creates `path`, or with `resume` reopens it dropping what came after `resume_epoch`.
  AttentionRecorder(const Config& config, train::Inspectable& task, train::ProbeSet probes,
                    const std::string& path, bool resume, int64_t resume_epoch);
  ~AttentionRecorder() override;

  void on_train_begin(const train::TrainContext& ctx) override;
  void on_epoch_begin(const train::TrainContext& ctx, int64_t epoch) override;
  void on_epoch_end(const train::TrainContext& ctx, const train::EpochRecord& r) override;
  void on_checkpoint(const train::TrainContext& ctx, const std::string& path) override;
  // Posts the end-of-run work (the last /best, JS from the final epoch, task arrays); finish()
  // waits for it, so that the caller can overlap it with its own (e.g. the test-split evaluation).
  void on_train_end(const train::TrainContext& ctx, const train::EpochRecord& last) override;
  // Waits until attention.h5 holds everything posted and logs the recorder's account (once).
  void finish();

  // Records the probe set now as `epoch` (e.g. a frozen model's snapshot) and waits for the file.
  void record_epoch(int64_t epoch, int64_t step);

  // Probe maps [P,L,H,T,T] per site at the module's current weights.
  store::SiteMaps probe_maps();
  // Metrics over the validation split: name -> [L*H] (of the module, or of a copy of its weights).
  std::map<std::string, std::vector<float>> validation_metrics(train::Snapshot* snapshot = nullptr);

 private:
  using MapTensors = std::map<std::string, torch::Tensor>;  // site -> [P,L,H,T,T]
  // `last`: the run's last epoch (its head importance comes from on_train_end, end_importance())
  void record(int64_t epoch, int64_t step, bool is_best, bool maps, bool metrics, bool last = false);
  void end_importance();
  // The cadence: probe maps at epoch 0, every `every` epochs and the last; per-head metrics then
  // and every `metrics_every` epochs.
  bool maps_at(int64_t epoch, bool last) const { return epoch % cfg_.every == 0 || last; }
  bool metrics_at(int64_t epoch, bool maps) const { return cfg_.metrics && (maps || epoch % cfg_.metrics_every == 0); }
  struct ProbePass {
    MapTensors maps;
    torch::Tensor probs;   // [P,L,H,T,T] attn.probs (also when not a stored site)
    torch::Tensor pooled;  // [P,D] or undefined
    MapTensors internals;  // site -> [P,T,D], [P,L,T,D] or [P,L,H,T,d] (the header's internals), padding 0
  };
  // The internal sites asked for that the model has, and their row shapes (a forward of one probe).
  std::map<std::string, std::vector<int64_t>> internal_shapes();
  void request_internals(models::Taps& taps, const std::vector<std::string>& sites) const;
  ProbePass probe_pass(train::Snapshot* snapshot);  // of the module (nullptr) or of a copy of its weights
  // Every recorded validation example's pooled vector and prediction (store: /validation), of the
  // module (nullptr) or of a snapshot, into `an` ("val_pooled", "val_output"); nothing when not recorded.
  void validation_vectors(train::Snapshot* snapshot, store::Analyses& an);
  void choose_validation_rows(store::Header* h, store::Validation* v);
  static store::SiteMaps site_maps(const MapTensors& maps);
  void write_pending_best();
  void write_js_final();
  void add_metrics(std::vector<HeadMetrics>& per_layer, const std::vector<torch::Tensor>& probs,
                   const torch::Tensor& lengths) const;  // probs of layers_ [b,H,T,T] -> heads_
  static std::map<std::string, std::vector<float>> metrics_table(const std::vector<HeadMetrics>& per_layer);
  torch::Tensor recorded_probs(int64_t epoch_index) const;  // attn.probs of a recorded epoch, [P,L,H,T,T]
  // attn.probs of the epochs this process recorded, from index kept_from_ on, as the file holds
  // them (float32 storage, all of them under 64 MB): the JS from the final epoch without reading
  // every epoch back.
  std::vector<torch::Tensor> kept_probs_;
  int64_t kept_from_ = 0;
  bool keep_probs_ = false;
  const AttentionHookConfig& cfg_;
  train::Inspectable& task_;
  train::ProbeSet probes_;
  std::vector<int64_t> layers_, heads_;
  torch::Tensor val_rows_;  // [N] rows of the validation split in /validation (undefined: none)
  std::function<torch::Tensor(const torch::Tensor&)> val_prediction_;
  // per-head metrics of the epoch fused_epoch_, fed by its evaluation (Task::attention_with_next_evaluate)
  // (the accumulators are the recorder thread's: they are added to there)
  std::shared_ptr<std::vector<HeadMetrics>> fused_;
  int64_t fused_epoch_ = -1, fused_batches_ = 0;
  int64_t ticket_ = 0;  // the recorder thread's jobs posted up to the end of the latest record()
  std::unique_ptr<store::Writer> writer_;
  // Where the recorder's time went (seconds), for its account at the end.
  struct Times {
    double total = 0;  // in all; of it:
    double best = 0, end = 0;  // writing /best (and its maps), at the end
    double maps = 0, metrics = 0, wait = 0;  // at the epochs, in the trainer's thread
    double analyses = 0, write = 0, metrics_bg = 0, importance = 0, maps_bg = 0,
           importance_wait = 0;  // in the recorder's thread
  } times_;
  bool finished_ = false;
  // The best epoch, until the next periodic checkpoint (or the end) writes it: its maps when it was
  // a recorded epoch, else its weights, whose maps are computed then (once per checkpoint, not at
  // every improvement: min/max improves at ~440 of its 750 epochs).
  struct PendingBest {
    MapTensors maps;
    std::vector<torch::Tensor> weights;
    bool weights_valid = false;
    store::EpochInfo info;
    bool pending = false;
    std::shared_ptr<train::Snapshot> snapshot;  // its weights, when the task copies them
    int64_t writes = 0;                         // /best writes so far
  } best_;
  torch::Tensor prev_probs_;  // [P,L,H,T,T] of the latest recorded epoch (the recorder's thread's)
  struct EndImportance {
    std::promise<torch::Tensor> promise;
    std::shared_ptr<train::Snapshot> snapshot;
  };
  std::unique_ptr<EndImportance> end_hi_;  // the last epoch's head importance, promised to its job
  MapTensors latest_maps_;                 // the latest recorded epoch's maps (the recorder's thread's)
  int64_t latest_epoch_ = -1;
  torch::Tensor padding_;                 // [P,1,T,T] true on padding rows / keys; undefined if none
  std::vector<std::string> internals_;    // the internal sites recorded (the file's)
  std::unique_ptr<JobQueue> jobs_;            // analyses and writes, beside training (last: joined first)
};

}  // namespace attnscope::hooks
