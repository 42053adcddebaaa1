// The attention recorder (hooks/attention_recorder.h).
#include "hooks/attention_recorder.h"

#include <chrono>
#include <cstdio>
#include <cstring>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <functional>
#include <future>
#include <mutex>
#include <thread>

#include <ATen/Parallel.h>

#include "core/core.h"
#include "hooks/attention_analysis.h"
#include "hooks/attention_metrics.h"
#include "hooks/job_queue.h"
#include "models/models.h"

namespace attnscope::hooks {
namespace {

std::vector<int64_t> all_or(const std::vector<int64_t>& chosen, int64_t n) {
  if (!chosen.empty()) return chosen;
  std::vector<int64_t> v(n);
  for (int64_t i = 0; i < n; ++i) v[i] = i;
  return v;
}

double now_unix() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::vector<float> to_floats(const torch::Tensor& t) {
  const auto c = t.to(torch::kFloat).contiguous();
  return std::vector<float>(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
}

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }
// Consecutive intervals added to counters: lap(x) adds the time since the previous lap (or start) to x.
struct Lap {
  Clock::time_point t = Clock::now();
  void operator()(double& into) {
    const auto now = Clock::now();
    into += std::chrono::duration<double>(now - t).count();
    t = now;
  }
};

// "name 1.234, name 0.500" of the parts that took any time (a task that does its probe maps in the
// trainer's thread, as min/max does, shows none in the recorder's).
std::string time_parts(std::initializer_list<std::pair<const char*, double>> parts) {
  std::string out;
  char buf[96];
  for (const auto& [name, s] : parts) {
    if (s < 5e-4) continue;
    std::snprintf(buf, sizeof buf, "%s%s %.3f", out.empty() ? "" : ", ", name, s);
    out += buf;
  }
  return out.empty() ? "none" : out;
}

constexpr int64_t kMetricElements = int64_t{1} << 22;  // attention weights per metrics batch
constexpr int64_t kBatchesAhead = 4;  // evaluation batches whose metrics may wait in the recorder's thread

// The module's parameters and buffers, copied (into `w`'s tensors when they fit, without
// allocating: this runs at every improvement of the best metric) / put back (no autograd; exact).
void copy_weights(torch::nn::Module& m, std::vector<torch::Tensor>& w) {
  std::vector<torch::Tensor> all = m.parameters();
  for (const auto& b : m.buffers()) all.push_back(b);
  bool fits = w.size() == all.size();
  for (size_t i = 0; fits && i < all.size(); ++i) {
    fits = all[i].is_contiguous() && w[i].sizes() == all[i].sizes() && w[i].dtype() == all[i].dtype();
  }
  if (!fits) {
    w.clear();
    for (const auto& t : all) w.push_back(t.detach().clone().contiguous());
    return;
  }
  for (size_t i = 0; i < all.size(); ++i) std::memcpy(w[i].data_ptr(), all[i].data_ptr(), all[i].nbytes());
}
std::vector<torch::Tensor> weights_of(torch::nn::Module& m) {
  std::vector<torch::Tensor> w;
  copy_weights(m, w);
  return w;
}
void set_weights(torch::nn::Module& m, const std::vector<torch::Tensor>& w) {
  torch::NoGradGuard no_grad;
  size_t i = 0;
  for (auto& p : m.parameters()) p.copy_(w.at(i++));
  for (auto& b : m.buffers()) b.copy_(w.at(i++));
}

}  // namespace

// The recorder's background thread: analyses, conversion to the file's layout and every write to
// attention.h5 run here, in order, beside training (the trainer's thread only runs the model).
// A job that fails stops the ones after it; the error surfaces at the next post() or drain().
train::ProbeSet choose_probes(const AttentionHookConfig& config, const train::Inspectable& task) {
  return config.probe_file.empty() ? task.default_probes(config.probes) : task.probes_from_file(config.probe_file);
}

AttentionRecorder::AttentionRecorder(const Config& config, train::Inspectable& task, train::ProbeSet probes,
                                     const std::string& path, bool resume, int64_t resume_epoch)
    : cfg_(config.hooks.attention), task_(task), probes_(std::move(probes)), jobs_(std::make_unique<JobQueue>()) {
  layers_ = all_or(cfg_.layers, task.num_layers());
  heads_ = all_or(cfg_.heads, task.num_heads());
  const int64_t T = probes_.inputs.size(1);
  const double epoch_bytes = 4.0 * static_cast<double>(probes_.inputs.size(0) * T * T) *
                             static_cast<double>(layers_.size() * heads_.size());
  const double epochs = static_cast<double>(config.train.epochs / std::max<int64_t>(1, cfg_.every) + 2);
  keep_probs_ = cfg_.dtype == "float32" && epoch_bytes * epochs <= 64e6;
  const auto key_ok = (torch::arange(T).view({1, 1, 1, T}) < probes_.lengths.view({-1, 1, 1, 1}));
  const auto row_ok = (torch::arange(T).view({1, 1, T, 1}) < probes_.lengths.view({-1, 1, 1, 1}));
  padding_ = ~(key_ok & row_ok);
  if (!padding_.any().item<bool>()) padding_ = torch::Tensor();  // (all probes full length)
  if (resume && std::filesystem::exists(path)) {
    writer_ = store::Writer::resume(path, resume_epoch);
    for (const auto& [site, shape] : writer_->header().internals) internals_.push_back(site);
    const auto& sites = writer_->header().sites;
    const int64_t n = writer_->epochs_recorded();
    kept_from_ = n;
    keep_probs_ = keep_probs_ && writer_->header().dtype == "float32";
    if (n > 0 && std::find(sites.begin(), sites.end(), models::site::kAttnProbs) != sites.end()) {
      prev_probs_ = recorded_probs(n - 1);  // js_prev of the next epoch compares with the file's last, as without the kill
    }
    if (writer_->header().val_count > 0) choose_validation_rows(nullptr, nullptr);  // (the same rows: the split is the seed's)
    return;
  }
  store::Header h;
  h.attnscope_version = kVersion;
  h.config_yaml = to_yaml(config);
  h.model_json = task.model_json();
  h.task = task.task_name();
  for (const auto& site : cfg_.sites) {
    if (site == store::kProbs || site == store::kScores) h.sites.push_back(site);
  }
  h.internals = internal_shapes();
  h.internals_dtype = cfg_.internals_dtype;
  for (const auto& [site, shape] : h.internals) internals_.push_back(site);
  h.layer_ids = layers_;
  h.head_ids = heads_;
  if (cfg_.metrics) h.metrics = head_metric_names();
  h.dtype = cfg_.dtype;
  h.compression = cfg_.compression;
  if (cfg_.pooled) h.pooled_dim = task.pooled_dim();
  h.arrays = task.final_array_shapes();
  store::Probes p;
  p.count = probes_.inputs.size(0);
  p.max_len = probes_.inputs.size(1);
  const auto ids = probes_.inputs.contiguous();
  p.input_ids.assign(ids.data_ptr<int64_t>(), ids.data_ptr<int64_t>() + ids.numel());
  for (int64_t i = 0; i < p.count; ++i) p.lengths.push_back(static_cast<int32_t>(probes_.lengths[i].item<int64_t>()));
  p.tokens = probes_.tokens;
  p.text = probes_.text;
  p.source = probes_.source;
  store::Validation v;
  choose_validation_rows(&h, &v);
  writer_ = store::Writer::create(path, h, p, v);
}

void AttentionRecorder::choose_validation_rows(store::Header* h, store::Validation* v) {
  if (!cfg_.pooled || !cfg_.validation_vectors || task_.pooled_dim() <= 0) return;
  const train::ValidationSet set = task_.validation_set();
  const auto n = static_cast<int64_t>(set.text.size());
  if (n == 0) return;
  const int64_t N = std::min(n, cfg_.validation_max);
  // evenly spread: row floor(i * n / N)
  val_rows_ = (torch::arange(N, torch::kDouble) * (static_cast<double>(n) / static_cast<double>(N))).floor().to(torch::kLong);
  val_prediction_ = task_.output_dim() > 0 ? set.prediction : nullptr;
  if (h == nullptr) return;
  h->val_count = N;
  h->val_outputs = val_prediction_ ? task_.output_dim() : 0;
  const auto target = set.target.defined() ? set.target.index_select(0, val_rows_).to(torch::kFloat).contiguous() : torch::Tensor();
  h->val_targets = target.defined() ? target.size(1) : 0;
  const auto* r = val_rows_.data_ptr<int64_t>();
  for (int64_t i = 0; i < N; ++i) v->text.push_back(set.text[static_cast<size_t>(r[i])]);
  if (target.defined()) v->target.assign(target.data_ptr<float>(), target.data_ptr<float>() + target.numel());
}

void AttentionRecorder::validation_vectors(train::Snapshot* snapshot, store::Analyses& an) {
  if (!val_rows_.defined()) return;
  const int64_t N = val_rows_.size(0), D = writer_->header().pooled_dim, O = writer_->header().val_outputs;
  auto pooled = torch::empty({N, D}), output = torch::empty({N, std::max<int64_t>(O, 1)});
  // in order of length, 64 at a time: little padding
  const auto order = std::get<1>(task_.val_lengths(val_rows_).sort(/*stable=*/true, 0, false));
  for (int64_t i = 0; i < N; i += 64) {
    const auto at = order.slice(0, i, std::min(N, i + 64));
    models::Taps taps;
    taps.request(models::site::kPooled, {0});
    if (O > 0) taps.request(models::site::kOutput, {0});
    const auto inputs = task_.val_inputs(val_rows_.index_select(0, at));
    if (snapshot != nullptr) {
      snapshot->forward_taps(inputs, taps);
    } else {
      task_.forward_taps(inputs, taps);
    }
    pooled.index_copy_(0, at, taps.get(models::site::kPooled, 0).to(torch::kFloat));
    if (O > 0) output.index_copy_(0, at, val_prediction_(taps.get(models::site::kOutput, 0)).to(torch::kFloat));
  }
  an["val_pooled"] = to_floats(pooled);
  if (O > 0) an["val_output"] = to_floats(output);
}

AttentionRecorder::~AttentionRecorder() {
  if (end_hi_) end_hi_->promise.set_value(torch::Tensor());  // (a run that stopped early: the job must not wait)
  try {
    if (!finished_) jobs_->drain();
  } catch (const std::exception& e) {  // (a run that stopped with an error: that error is reported)
    log::warn(std::string("[attention] ") + e.what());
  }
}

// Embeddings are layer 0's site; the others each stored layer's (and head's).
void AttentionRecorder::request_internals(models::Taps& taps, const std::vector<std::string>& sites) const {
  for (const auto& site : sites) {
    if (store::internal_rank(site) == 1) {
      taps.request(site, {0});
    } else {
      taps.request(site, layers_, heads_);
    }
  }
}

std::map<std::string, std::vector<int64_t>> AttentionRecorder::internal_shapes() {
  std::vector<std::string> asked;
  for (const auto& site : store::internal_sites()) {
    if (std::find(cfg_.sites.begin(), cfg_.sites.end(), site) != cfg_.sites.end()) asked.push_back(site);
  }
  std::map<std::string, std::vector<int64_t>> shapes;
  if (asked.empty()) return shapes;
  models::Taps taps;
  request_internals(taps, asked);
  {
    torch::NoGradGuard no_grad;
    task_.forward_taps(probes_.inputs.slice(0, 0, 1), taps);
  }
  const int64_t P = probes_.inputs.size(0), T = probes_.inputs.size(1);
  const auto L = static_cast<int64_t>(layers_.size()), H = static_cast<int64_t>(heads_.size());
  for (const auto& site : asked) {
    const auto t = taps.get(site, store::internal_rank(site) == 1 ? 0 : layers_.front());
    if (!t.defined()) {
      log::warn("[attention] hooks.attention.sites: this model has no site '" + site + "'; not recorded");
      continue;
    }
    const int rank = store::internal_rank(site);
    shapes[site] = rank == 1 ? std::vector<int64_t>{P, T, t.size(-1)}
                   : rank == 2 ? std::vector<int64_t>{P, L, T, t.size(-1)}
                               : std::vector<int64_t>{P, L, H, T, t.size(-1)};
  }
  return shapes;
}

AttentionRecorder::ProbePass AttentionRecorder::probe_pass(train::Snapshot* snapshot) {
  models::Taps taps;
  for (const auto& site : writer_->header().sites) taps.request(site, layers_, heads_);
  if (std::find(writer_->header().sites.begin(), writer_->header().sites.end(), models::site::kAttnProbs) ==
      writer_->header().sites.end()) {
    taps.request(models::site::kAttnProbs, layers_, heads_);  // the analyses need them
  }
  request_internals(taps, internals_);
  const bool pooled = writer_->header().pooled_dim > 0;
  if (pooled) taps.request(models::site::kPooled, {0});
  if (snapshot != nullptr) {
    snapshot->forward_taps(probes_.inputs, taps);
  } else {
    task_.forward_taps(probes_.inputs, taps);
  }
  ProbePass r;
  r.pooled = pooled ? taps.get(models::site::kPooled, 0) : torch::Tensor();
  // [P,L,H,T,T]; padding rows and keys are stored as 0 (scores too: no -inf in the file)
  auto stacked = [&](const std::string& site) {
    std::vector<torch::Tensor> per_layer;
    for (int64_t l : layers_) {
      const auto t = taps.get(site, l);
      per_layer.push_back(padding_.defined() ? t.masked_fill(padding_, 0.0) : t);
    }
    return per_layer.size() == 1 ? per_layer[0].unsqueeze(1) : torch::stack(per_layer, 1);
  };
  for (const auto& site : writer_->header().sites) r.maps[site] = stacked(site);
  // internals: [P,T,D] (embeddings) or stacked over the layers, positions past a probe's length 0
  const int64_t T = probes_.inputs.size(1);
  const auto beyond = torch::arange(T).view({1, T}) >= probes_.lengths.view({-1, 1});  // [P,T]
  for (const auto& site : internals_) {
    const int rank = store::internal_rank(site);
    torch::Tensor t;
    if (rank == 1) {
      t = taps.get(site, 0);
    } else {
      std::vector<torch::Tensor> per_layer;
      for (int64_t l : layers_) per_layer.push_back(taps.get(site, l));
      t = torch::stack(per_layer, 1);  // [P,L,T,D] or [P,L,H,T,d]
    }
    auto shape = std::vector<int64_t>(t.dim(), 1);
    shape[0] = t.size(0);
    shape[static_cast<size_t>(t.dim() - 2)] = T;
    r.internals[site] = t.masked_fill(beyond.view(shape), 0.0);
  }
  auto it = r.maps.find(models::site::kAttnProbs);
  r.probs = it != r.maps.end() ? it->second : stacked(models::site::kAttnProbs);
  return r;
}

store::SiteMaps AttentionRecorder::site_maps(const MapTensors& maps) {
  store::SiteMaps out;
  for (const auto& [site, t] : maps) out[site] = to_floats(t);
  return out;
}

store::SiteMaps AttentionRecorder::probe_maps() { return site_maps(probe_pass(nullptr).maps); }

void AttentionRecorder::add_metrics(std::vector<HeadMetrics>& per_layer, const std::vector<torch::Tensor>& probs,
                                    const torch::Tensor& lengths) const {
  bool all_heads = static_cast<int64_t>(heads_.size()) == task_.num_heads();
  for (size_t h = 0; h < heads_.size(); ++h) all_heads = all_heads && heads_[h] == static_cast<int64_t>(h);
  const auto heads = all_heads ? torch::Tensor() : torch::tensor(heads_, torch::kLong);
  per_layer.resize(layers_.size(), HeadMetrics(HeadMetrics::Path::kFast, task_.causal()));
  for (size_t l = 0; l < layers_.size(); ++l) {
    per_layer[l].add(all_heads ? probs[l] : probs[l].index_select(1, heads), lengths);
  }
}

std::map<std::string, std::vector<float>> AttentionRecorder::metrics_table(const std::vector<HeadMetrics>& per_layer) {
  std::vector<std::map<std::string, torch::Tensor>> results;
  for (const auto& m : per_layer) results.push_back(m.result());
  std::map<std::string, std::vector<float>> out;
  for (const auto& name : head_metric_names()) {
    auto& row = out[name];  // [L,H]
    for (const auto& r : results) {
      const auto v = r.at(name).contiguous();
      for (int64_t h = 0; h < v.numel(); ++h) row.push_back(static_cast<float>(v.data_ptr<double>()[h]));
    }
  }
  return out;
}

std::map<std::string, std::vector<float>> AttentionRecorder::validation_metrics(train::Snapshot* snapshot) {
  std::vector<HeadMetrics> per_layer(layers_.size(), HeadMetrics(HeadMetrics::Path::kFast, task_.causal()));
  const int64_t n = task_.val_size();
  // rows in order of length (a stable sort: min/max keep their order), batches of at most
  // kMetricElements attention weights at their own longest row: little padding for molecules
  const auto all_lengths = task_.val_lengths(torch::arange(n, torch::kLong));
  const auto order = std::get<1>(all_lengths.sort(/*stable=*/true, 0, false));
  const auto sorted_len = all_lengths.index_select(0, order).contiguous();
  const int64_t* len_p = sorted_len.data_ptr<int64_t>();
  for (int64_t i = 0; i < n;) {
    int64_t end = i + 1;
    while (end < n && (end - i + 1) * task_.num_heads() * len_p[end] * len_p[end] <= kMetricElements) ++end;
    const auto idx = order.slice(0, i, end);
    i = end;
    add_metrics(per_layer,  // one forward for every layer
                snapshot != nullptr ? snapshot->val_attention_layers(idx, layers_) : task_.val_attention_layers(idx, layers_),
                task_.val_lengths(idx));
  }
  return metrics_table(per_layer);
}

void AttentionRecorder::record(int64_t epoch, int64_t step, bool is_best, bool maps_due, bool metrics_due, bool last) {
  const auto t0 = Clock::now();
  Lap lap;
  jobs_->wait(ticket_);  // what the previous record() posted: at most about one epoch of work in flight
  lap(times_.wait);
  const bool fused = metrics_due && fused_epoch_ == epoch && fused_batches_ > 0;  // (fed by this epoch's evaluation)
  // A copy of the weights, when the task makes one, and the rest in the recorder's thread;
  // else the probe pass and head importance here, the analyses and writing there.
  std::shared_ptr<train::Snapshot> snap;
  if (maps_due || (metrics_due && !fused) || is_best) snap = task_.snapshot();
  lap(times_.maps);
  if (is_best && !maps_due) {  // its weights now, its maps when a periodic checkpoint comes first
    best_.maps.clear();
    best_.snapshot = snap;
    if (!snap) copy_weights(task_.module(), best_.weights);
    best_.weights_valid = !snap;
    best_.info = store::EpochInfo{epoch, step, now_unix()};
    best_.pending = true;
  }
  if (maps_due) {
    const store::EpochInfo info{epoch, step, now_unix()};
    std::shared_ptr<ProbePass> pass;
    torch::Tensor hi;
    train::Attribution attr;
    auto val_an = std::make_shared<store::Analyses>();
    if (!snap) {
      pass = std::make_shared<ProbePass>(probe_pass(nullptr));
      hi = task_.head_importance();  // [all layers, all heads]
      attr = task_.attribution(probes_.inputs);
      validation_vectors(nullptr, *val_an);
    }
    lap(times_.maps);
    // The last epoch's head importance is computed by the trainer's thread, which has nothing
    // else to do then (on_train_end), while this job does the probe pass and the analyses.
    std::shared_future<torch::Tensor> hi_later;
    if (last && snap) {
      end_hi_ = std::make_unique<EndImportance>();
      end_hi_->snapshot = snap;
      hi_later = end_hi_->promise.get_future().share();
    }
    jobs_->post([this, snap, pass, hi, attr, val_an, info, hi_later] {
      Lap lap_bg;
      const ProbePass r = pass ? *pass : probe_pass(snap.get());
      lap_bg(times_.maps_bg);
      const torch::Tensor h = hi_later.valid() ? hi_later.get() : snap ? snap->head_importance() : hi;
      lap_bg(hi_later.valid() ? times_.importance_wait : times_.importance);
      const auto& p = r.probs;
      const auto& len = probes_.lengths;
      store::Analyses an = std::move(*val_an);
      if (snap) validation_vectors(snap.get(), an);
      an["js_prev"] = to_floats(prev_probs_.defined() ? js_divergence(prev_probs_, p, len)
                                                      : torch::zeros({p.size(1), p.size(2)}));
      an["head_js"] = to_floats(head_js_distance(p, len));
      an["token_importance"] = to_floats(token_importance(p, len));
      an["token_importance_rollout"] = to_floats(token_importance_rollout(p, len, task_.causal()));
      an["token_importance_flow"] = to_floats(token_importance_flow(p, len, task_.causal()));
      const bool every_head = h.defined() && layers_ == all_or({}, h.size(0)) && heads_ == all_or({}, h.size(1));
      an["head_importance"] = to_floats(
          !h.defined() ? torch::full({p.size(1), p.size(2)}, std::nan(""))
          : every_head ? h
                       : h.index_select(0, torch::tensor(layers_)).index_select(1, torch::tensor(heads_)));
      // gradient attribution of the probes' predictions (NaN where the model makes none)
      const train::Attribution at = snap ? snap->attribution(probes_.inputs) : attr;
      an["grad_input"] = to_floats(at.grad_input.defined() ? at.grad_input : torch::full({p.size(0), p.size(3)}, std::nan("")));
      an["attn_grad"] = to_floats(!at.attn_grad.defined()
                                      ? torch::full({p.size(0), p.size(1) * p.size(2)}, std::nan(""))
                                      : at.attn_grad.index_select(1, torch::tensor(layers_)).index_select(2, torch::tensor(heads_))
                                            .reshape({p.size(0), -1}));
      if (r.pooled.defined()) an["pooled"] = to_floats(r.pooled);
      for (const auto& [site, t] : r.internals) an["internals/" + site] = to_floats(t);
      lap_bg(times_.analyses);
      writer_->append_epoch(info, site_maps(r.maps), an);
      lap_bg(times_.write);
      latest_maps_ = r.maps;  // (/best of this epoch, if it is the best: no second probe pass)
      latest_epoch_ = info.epoch;
      prev_probs_ = p;
      if (keep_probs_) kept_probs_.push_back(p);
    });
    if (is_best) {  // written at the next periodic checkpoint (or the end)
      best_.snapshot = snap;
      if (pass) best_.maps = pass->maps;
      best_.weights_valid = false;
      best_.info = info;
      best_.pending = true;
    }
  }
  if (metrics_due) {
    if (fused) {  // accumulated in the background from this epoch's evaluation
      jobs_->post([this, epoch, acc = fused_] { writer_->append_metrics(epoch, metrics_table(*acc)); });
    } else if (snap) {
      jobs_->post([this, epoch, snap] {
        const auto t = Clock::now();
        auto table = validation_metrics(snap.get());
        times_.metrics_bg += seconds_since(t);
        writer_->append_metrics(epoch, table);
      });
    } else {
      jobs_->post([this, epoch, table = validation_metrics()] { writer_->append_metrics(epoch, table); });
    }
    fused_epoch_ = -1;
    fused_.reset();
    lap(times_.metrics);
  }
  ticket_ = jobs_->posted();
  times_.total += seconds_since(t0);
}

void AttentionRecorder::record_epoch(int64_t epoch, int64_t step) {
  record(epoch, step, false, true, cfg_.metrics);
  jobs_->drain();
}

void AttentionRecorder::write_pending_best() {
  if (!best_.pending) return;
  best_.pending = false;
  const auto t0 = Clock::now();
  if (best_.snapshot) {  // its maps from its copy of the weights, in the recorder's thread
    jobs_->post([this, info = best_.info, snap = std::move(best_.snapshot)] {
      writer_->write_best(info, site_maps(latest_epoch_ == info.epoch ? latest_maps_ : probe_pass(snap.get()).maps));
    });
    best_.snapshot.reset();
  } else {
    if (best_.maps.empty()) {  // the maps at the best epoch's weights, the current ones put back after
      if (!best_.weights_valid) return;
      auto& module = task_.module();
      const auto now = weights_of(module);
      set_weights(module, best_.weights);
      best_.maps = probe_pass(nullptr).maps;
      set_weights(module, now);
    }
    jobs_->post([this, info = best_.info, maps = std::move(best_.maps)] { writer_->write_best(info, site_maps(maps)); });
  }
  best_.maps.clear();
  best_.weights_valid = false;  // (its tensors are kept for the next copy)
  const double s = seconds_since(t0);
  times_.total += s;
  times_.best += s;
  ++best_.writes;
}

void AttentionRecorder::on_checkpoint(const train::TrainContext&, const std::string& path) {
  // best.pt is rewritten at every improvement; the file's /best follows at the periodic
  // checkpoints, which are where a resumed run starts from, and at the end.
  if (std::filesystem::path(path).filename() != "best.pt") write_pending_best();
}

void AttentionRecorder::on_train_end(const train::TrainContext&, const train::EpochRecord&) {
  write_pending_best();  // (counts its own time)
  const auto t0 = Clock::now();
  end_importance();
  std::map<std::string, std::vector<float>> arrays;
  if (!writer_->header().arrays.empty()) arrays = task_.final_arrays();  // (the model: this thread)
  jobs_->post([this, arrays = std::move(arrays)] {
    write_js_final();
    for (const auto& [name, values] : arrays) writer_->write_array(name, values);
  });
  const double s = seconds_since(t0);
  times_.end += s;
  times_.total += s;
}

void AttentionRecorder::end_importance() {
  if (!end_hi_) return;
  const auto end = std::move(end_hi_);
  try {
    end->promise.set_value(end->snapshot->head_importance());
  } catch (...) {
    end->promise.set_exception(std::current_exception());
  }
}

std::optional<analysis::ProbeHistory> recorded_history(const std::string& h5) {
  if (!std::filesystem::exists(h5)) return std::nullopt;
  auto reader = std::make_shared<store::Reader>(h5);
  analysis::ProbeHistory h;
  const auto& sites = reader->header().sites;
  const bool probs = std::find(sites.begin(), sites.end(), models::site::kAttnProbs) != sites.end();
  if (!probs) return h;
  const auto& p = reader->probes();
  h.P = p.count;
  h.L = static_cast<int64_t>(reader->header().layer_ids.size());
  h.T = p.max_len;
  h.lengths.assign(p.lengths.begin(), p.lengths.end());
  h.H = static_cast<int64_t>(reader->header().head_ids.size());
  h.input_ids = p.input_ids;
  for (const auto& e : reader->epochs()) h.epochs.push_back(e.epoch);
  h.probs = [reader](size_t e) { return reader->map(models::site::kAttnProbs, static_cast<int64_t>(e)); };
  return h;
}

void AttentionRecorder::finish() {
  if (finished_) return;
  const auto t0 = Clock::now();
  jobs_->drain();
  finished_ = true;
  const double s = seconds_since(t0);
  times_.end += s;
  times_.total += s;
  char line[400];
  std::snprintf(line, sizeof line, "[attention] %lld epochs recorded; %.3f s of the trainer's thread spent recording: %.3f s at the epochs (",
                static_cast<long long>(writer_->epochs_recorded()), times_.total, times_.total - times_.best - times_.end);
  std::string text = line;
  text += time_parts({{"probe maps or a copy of the weights", times_.maps},
                      {"per-head metrics over the validation split", times_.metrics},
                      {"waiting for the recorder's thread", times_.wait}});
  std::snprintf(line, sizeof line, "), %.3f s on /best (%lld writes), %.3f s waiting at the end; beside training, in the recorder's thread: %.3f s (",
                times_.best, static_cast<long long>(best_.writes), times_.end, jobs_->seconds());
  text += line;
  text += time_parts({{"probe maps", times_.maps_bg},
                      {"per-head metrics", times_.metrics_bg},
                      {"head importance", times_.importance},
                      {"analyses", times_.analyses},
                      {"writing", times_.write},
                      {"waiting for the last epoch's head importance from the trainer's thread", times_.importance_wait}});
  log::info(text + ")");
}

torch::Tensor AttentionRecorder::recorded_probs(int64_t epoch_index) const {
  if (keep_probs_ && epoch_index >= kept_from_ && epoch_index - kept_from_ < static_cast<int64_t>(kept_probs_.size())) {
    return kept_probs_[epoch_index - kept_from_];
  }
  const auto& p = writer_->probes();
  return torch::tensor(writer_->read_map(models::site::kAttnProbs, epoch_index))
      .view({p.count, static_cast<int64_t>(layers_.size()), static_cast<int64_t>(heads_.size()), p.max_len, p.max_len});
}

void AttentionRecorder::write_js_final() {
  const auto& sites = writer_->header().sites;
  const int64_t n = writer_->epochs_recorded();
  if (n == 0 || std::find(sites.begin(), sites.end(), models::site::kAttnProbs) == sites.end()) return;
  const auto final_maps = recorded_probs(n - 1);
  std::vector<float> rows;
  for (int64_t e = 0; e < n; ++e) {  // (read back one at a time unless kept)
    const auto js = to_floats(js_divergence(recorded_probs(e), final_maps, probes_.lengths));
    rows.insert(rows.end(), js.begin(), js.end());
  }
  writer_->write_js_final(rows);
}

void AttentionRecorder::on_train_begin(const train::TrainContext& ctx) {
  const int64_t e = ctx.state.epoch;
  if (e == 0) {
    if (writer_->last_epoch() < 0) record(0, 0, false, true, cfg_.metrics);
    return;
  }
  // Resumed at epoch e: its record is written in the background, so a run killed after last.pt
  // named epoch e may have lost it; the weights are e's, so it is recorded now, as it would have been.
  const bool maps_due = maps_at(e, e == ctx.config.train.epochs);
  const bool maps = maps_due && writer_->last_epoch() < e;
  const bool metrics = metrics_at(e, maps_due) && writer_->last_metrics_epoch() < e;
  if (maps || metrics) record(e, ctx.state.step, false, maps, metrics);
}

void AttentionRecorder::on_epoch_begin(const train::TrainContext& ctx, int64_t epoch) {
  // An epoch to be recorded on the cadence needs the head importance at the weights its
  // evaluation sees: min/max computes it in that evaluation's pass over the validation split.
  const auto& tc = ctx.config.train;
  const bool recorded = maps_at(epoch, epoch == tc.epochs);
  const bool evaluated = epoch % tc.eval_every == 0 || epoch == tc.epochs;
  if (recorded && evaluated) {
    task_.head_importance_with_next_evaluate();
  }
  // Per-head metrics due this epoch: from the evaluation's own forward passes when the task can
  // (record() falls back to a pass of its own when no evaluation fed them).
  if (evaluated && metrics_at(epoch, recorded)) {
    fused_ = std::make_shared<std::vector<HeadMetrics>>();
    fused_batches_ = 0;
    fused_epoch_ = -1;
    if (task_.attention_with_next_evaluate(layers_, [this](const std::vector<torch::Tensor>& probs,
                                                            const torch::Tensor& lengths) {
          // (the tap's copies of the evaluation's maps: nothing else holds them)
          const int64_t ticket = jobs_->post([this, acc = fused_, probs, lengths] {
            const auto t0 = Clock::now();
            add_metrics(*acc, probs, lengths);
            times_.metrics_bg += seconds_since(t0);
          });
          ++fused_batches_;
          // a few batches ahead at most, so that their maps do not pile up in memory
          const auto t0 = Clock::now();
          jobs_->wait(ticket - kBatchesAhead);
          const double waited = seconds_since(t0);
          times_.total += waited;
          times_.wait += waited;
        })) {
      fused_epoch_ = epoch;
    }
  }
}

void AttentionRecorder::on_epoch_end(const train::TrainContext& ctx, const train::EpochRecord& r) {
  const bool maps_due = maps_at(r.epoch, r.is_last);
  record(r.epoch, r.step, r.is_best, maps_due, metrics_at(r.epoch, maps_due), r.is_last);
}

}  // namespace attnscope::hooks
