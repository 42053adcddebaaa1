// Public header of attnscope::store: the per-run attention file (RUN_DIR/attention.h5).
// Plain C++ types only (no HDF5, no LibTorch), so viz can read runs without the model code.
//
// Layout (schema 1; docs/attention-h5.md):
//   /                      attrs: schema_version, attnscope_version, config (YAML), model (JSON),
//                                 task (when known), sites, layer_ids, head_ids, dtype, metrics
//   /probes/input_ids      [P,T] int64, 0-padded     /probes/lengths [P] int32
//   /probes/tokens         [P,T] strings ("" = pad)  /probes/text    [P] strings
//   /probes/source_index   [P] int64 (row of the validation split; -1 when given explicitly)
//   /epochs/epoch, /epochs/step, /epochs/wall_time   [E]   recorded epochs (0 = before training)
//   /attn/probs, /attn/scores                        [E,P,L,H,T,T], chunk (1,1,L,H,T,T); padding 0
//   /best/attn/probs, /best/attn/scores [P,L,H,T,T]; /best/info [3] = (epoch, step, wall_time),
//                                                   epoch -1 until a best epoch exists
//   /metrics/epoch [M] int64; /metrics/<name> [M,L,H] float32 (whole validation split)
//   /analysis/js_prev [E,L,H]                       JS divergence from the previous recorded epoch
//   /analysis/js_final [E,L,H]                      JS divergence from the final epoch (written at the end)
//   /analysis/head_js [E,L*H,L*H]                   JS distance between every pair of heads
//   /analysis/token_importance [E,P,T]              attention received, heads and layers averaged
//   /analysis/token_importance_rollout [E,P,T]      rollout row of the readout token (first; causal: last)
//   /analysis/token_importance_flow [E,P,T]         attention flow to the readout token (NaN: probe > 64 tokens;
//                                                   absent in files recorded before it)
//   /analysis/head_importance [E,L,H]               Michel et al. (2019) over the validation split, L2-normalised per layer
//   /analysis/grad_input [E,P,T]                    gradient x input of each probe's prediction (train/task.h:
//                                                   Attribution; NaN without a classifier head)
//   /analysis/attn_grad [E,P,L*H]                   attention x gradient per head, same prediction
//   /pooled [E,P,D]                                 the probes' pooled / readout vectors (when pooled_dim > 0)
//   /validation/text [N] strings, /validation/target [N,K] float32 (NaN: unknown; absent when K = 0),
//   /validation/pooled [E,N,D] float16, /validation/output [E,N,O] float32 (absent when O = 0):
//                                                   every validation example's pooled vector and model
//                                                   output per recorded epoch (when val_count > 0)
//   /internals/<site path> [E,...]                  the probes' embeddings (per component), q, k, v and context
//                                                   per head, feed-forward outputs and hidden states (Header::internals)
//   /task/<name>                                    task arrays of fixed shape, written when training ends
//                                                   (NaN until then), e.g. the min/max (a, b) grid
// Written in HDF5's SWMR mode and flushed after every epoch: a reader may open it while the run
// goes on, and a run killed at any moment leaves every completed epoch readable.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace attnscope::store {

constexpr int64_t kSchemaVersion = 1;

// The sites a file may hold (Header::sites).
constexpr const char* kProbs = "attn.probs";    // softmax(QK^T/sqrt(d) + mask), before dropout
constexpr const char* kScores = "attn.scores";  // the pre-softmax scores

// The internal sites a file may hold (Header::internals), in the model's order.
const std::vector<std::string>& internal_sites();
// How many leading axes of an internal site's row are [P], [P,L] or [P,L,H]: 1, 2 or 3.
int internal_rank(const std::string& site);

struct Header {
  std::string attnscope_version;
  std::string config_yaml;
  std::string model_json;
  std::string task;                       // data.task ("minmax", "regression", ...); "" in files written before it was stored
  std::vector<std::string> sites;         // e.g. "attn.probs", "attn.scores"
  std::vector<int64_t> layer_ids;         // model layers stored, in order (L of them)
  std::vector<int64_t> head_ids;          // model heads stored, in order (H of them)
  std::vector<std::string> metrics;       // per-head metric names
  std::string dtype = "float32";          // float32 | float16 (storage type)
  int64_t compression = 4;                // gzip level, 0 = none
  int64_t pooled_dim = 0;                 // D of /pooled; 0 = not recorded
  int64_t val_count = 0;                  // N of /validation (needs pooled_dim > 0); 0 = not recorded
  int64_t val_targets = 0;                // K of /validation/target
  int64_t val_outputs = 0;                // O of /validation/output (the model's outputs; 0: none)
  std::map<std::string, std::vector<int64_t>> arrays;  // /task/<name> and its shape
  // Model internals of the probes per recorded epoch (hooks.attention.sites beyond the maps):
  // /internals/<site> [E, ...shape], shape [P,T,D] (embed.*), [P,L,T,D] (ffn.out, block.out) or
  // [P,L,H,T,d] (attn.q, attn.k, attn.v, attn.context); padding 0; stored as internals_dtype.
  std::map<std::string, std::vector<int64_t>> internals;
  std::string internals_dtype = "float16";
};

struct Probes {
  int64_t count = 0, max_len = 0;
  std::vector<int64_t> input_ids;   // [count*max_len]
  std::vector<int32_t> lengths;     // [count]
  std::vector<std::string> tokens;  // [count*max_len]
  std::vector<std::string> text;    // [count]
  std::vector<int64_t> source;      // [count]
};

// The validation examples whose pooled vectors are recorded (Header::val_count of them).
struct Validation {
  std::vector<std::string> text;  // [N] the input (SMILES or text)
  std::vector<float> target;      // [N*K] K = Header::val_targets
};

struct EpochInfo {
  int64_t epoch = 0, step = 0;
  double wall_time = 0;  // seconds since the Unix epoch
};

// maps[site] holds [P, L, H, T, T] floats, T = probes.max_len.
using SiteMaps = std::map<std::string, std::vector<float>>;
// Per recorded epoch analyses of the probe maps, by name (see the layout above); "pooled" [P,D]
// too when the header's pooled_dim > 0, and "internals/<site>" for each of the header's internals.
using Analyses = std::map<std::string, std::vector<float>>;
const std::vector<std::string>& analysis_names();

class Writer {
 public:
  // A new file; fails (UsageError) if `path` exists.
  // With header.val_count > 0, `validation` gives the N examples whose pooled vectors
  // ("val_pooled", [N*D]) and outputs ("val_output", [N*O]) append_epoch's analyses then carry.
  static std::unique_ptr<Writer> create(const std::string& path, const Header& header, const Probes& probes,
                                        const Validation& validation = {});
  // An existing file of a resumed run: epochs and metrics after `last_epoch` are dropped.
  static std::unique_ptr<Writer> resume(const std::string& path, int64_t last_epoch);
  ~Writer();

  void append_epoch(const EpochInfo& info, const SiteMaps& maps, const Analyses& analyses);
  void write_best(const EpochInfo& info, const SiteMaps& maps);
  void append_metrics(int64_t epoch, const std::map<std::string, std::vector<float>>& values);  // [L*H] each
  void write_js_final(const std::vector<float>& values);  // [E*L*H], one row per recorded epoch
  void write_array(const std::string& name, const std::vector<float>& values);  // a header array, whole
  const Header& header() const;
  const Probes& probes() const;
  int64_t epochs_recorded() const;
  int64_t last_epoch() const;          // the latest recorded epoch, -1 if none
  int64_t last_metrics_epoch() const;  // the latest epoch with metrics, -1 if none
  std::vector<float> read_map(const std::string& site, int64_t epoch_index) const;  // [P,L,H,T,T]

 private:
  struct Impl;
  explicit Writer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

class Reader {
 public:
  explicit Reader(const std::string& path);  // UsageError for missing, foreign or newer files
  ~Reader();
  const Header& header() const;
  const Probes& probes() const;
  std::vector<EpochInfo> epochs() const;
  std::vector<float> map(const std::string& site, int64_t epoch_index) const;  // [P,L,H,T,T]
  // Hyperslab reads: one probe [L,H,T,T] (one chunk), or one head of one probe [T,T].
  std::vector<float> probe_map(const std::string& site, int64_t epoch_index, int64_t probe) const;
  std::vector<float> head_map(const std::string& site, int64_t epoch_index, int64_t probe, int64_t layer_index,
                              int64_t head_index) const;
  std::vector<float> pooled(int64_t epoch_index) const;  // [P,D]; UsageError when not recorded
  // The validation examples (header().val_count > 0; else empty), their pooled vectors [N,D] and
  // outputs [N,O] at a recorded epoch (UsageError when not recorded).
  const Validation& validation() const;
  std::vector<float> val_pooled(int64_t epoch_index) const;
  std::vector<float> val_output(int64_t epoch_index) const;
  std::vector<float> array(const std::string& name) const;  // /task/<name>, shape in header().arrays
  // An internal site at a recorded epoch (shape in header().internals), or one probe's part of it.
  std::vector<float> internal(const std::string& site, int64_t epoch_index) const;
  std::vector<float> internal_probe(const std::string& site, int64_t epoch_index, int64_t probe) const;
  std::vector<float> analysis(const std::string& name, int64_t epoch_index) const;  // also "js_final"
  bool has_best() const;
  // Whether the file holds analysis `name` (files recorded before an analysis existed lack it).
  bool has_analysis(const std::string& name) const;
  EpochInfo best() const;
  std::vector<float> best_map(const std::string& site) const;
  std::vector<int64_t> metric_epochs() const;
  std::vector<float> metric(const std::string& name) const;  // [M,L,H]

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace attnscope::store
