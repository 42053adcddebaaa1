// The attention recorder (hooks/attention_recorder.h).
#include "hooks/attention_recorder.h"

#include <chrono>
#include <filesystem>

#include "core/log.h"
#include "core/version.h"
#include "hooks/attention_analysis.h"
#include "hooks/attention_metrics.h"
#include "models/taps.h"

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

constexpr int64_t kMetricElements = int64_t{1} << 22;  // attention weights per metrics batch

}  // namespace

train::ProbeSet choose_probes(const AttentionHookConfig& config, const train::Task& task) {
  return config.probe_file.empty() ? task.default_probes(config.probes) : task.probes_from_file(config.probe_file);
}

AttentionRecorder::AttentionRecorder(const Config& config, train::Task& task, train::ProbeSet probes,
                                     const std::string& path, bool resume, int64_t resume_epoch)
    : cfg_(config.hooks.attention), task_(task), probes_(std::move(probes)) {
  layers_ = all_or(cfg_.layers, task.num_layers());
  heads_ = all_or(cfg_.heads, task.num_heads());
  const int64_t T = probes_.inputs.size(1);
  batch_ = std::max<int64_t>(1, kMetricElements / (task.num_heads() * T * T));
  if (resume && std::filesystem::exists(path)) {
    writer_ = store::Writer::resume(path, resume_epoch);
    const auto& sites = writer_->header().sites;
    const int64_t n = writer_->epochs_recorded();
    if (n > 0 && std::find(sites.begin(), sites.end(), models::site::kAttnProbs) != sites.end()) {
      prev_probs_ = recorded_probs(n - 1);  // js_prev of the next epoch compares with the file's last, as without the kill
    }
    return;
  }
  store::Header h;
  h.attnscope_version = kVersion;
  h.config_yaml = to_yaml(config);
  h.model_json = task.model_json();
  h.sites = cfg_.sites;
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
  writer_ = store::Writer::create(path, h, p);
}

AttentionRecorder::~AttentionRecorder() = default;

store::SiteMaps AttentionRecorder::probe_maps() {
  models::Taps taps;
  for (const auto& site : cfg_.sites) taps.request(site, layers_, heads_);
  if (std::find(cfg_.sites.begin(), cfg_.sites.end(), models::site::kAttnProbs) == cfg_.sites.end()) {
    taps.request(models::site::kAttnProbs, layers_, heads_);  // the analyses need them
  }
  const bool pooled = writer_->header().pooled_dim > 0;
  if (pooled) taps.request(models::site::kPooled, {0});
  task_.forward_taps(probes_.inputs, taps);
  last_pooled_ = pooled ? taps.get(models::site::kPooled, 0) : torch::Tensor();
  store::SiteMaps maps;
  const int64_t T = probes_.inputs.size(1);
  const auto key_ok = (torch::arange(T).view({1, 1, 1, T}) < probes_.lengths.view({-1, 1, 1, 1}));
  const auto row_ok = (torch::arange(T).view({1, 1, T, 1}) < probes_.lengths.view({-1, 1, 1, 1}));
  for (const auto& site : cfg_.sites) {
    std::vector<torch::Tensor> per_layer;
    for (int64_t l : layers_) {
      // padding rows and keys are stored as 0 (scores too: no -inf in the file)
      per_layer.push_back(taps.get(site, l).masked_fill(~(key_ok & row_ok), 0.0));
    }
    maps[site] = to_floats(torch::stack(per_layer, 1));  // [P,L,H,T,T]
  }
  std::vector<torch::Tensor> probs;
  for (int64_t l : layers_) probs.push_back(taps.get(models::site::kAttnProbs, l).masked_fill(~(key_ok & row_ok), 0.0));
  last_probs_ = torch::stack(probs, 1);
  return maps;
}

std::map<std::string, std::vector<float>> AttentionRecorder::validation_metrics() {
  std::vector<HeadMetrics> per_layer(layers_.size());
  const int64_t n = task_.val_size();
  const auto heads = torch::tensor(heads_, torch::kLong);
  for (int64_t i = 0; i < n; i += batch_) {
    const auto idx = torch::arange(i, std::min(n, i + batch_), torch::kLong);
    const auto lengths = task_.val_lengths(idx);
    for (size_t l = 0; l < layers_.size(); ++l) {
      per_layer[l].add(task_.val_attention(idx, layers_[l]).index_select(1, heads), lengths);
    }
  }
  std::map<std::string, std::vector<float>> out;
  for (const auto& name : head_metric_names()) {
    std::vector<torch::Tensor> rows;
    for (auto& m : per_layer) rows.push_back(m.result().at(name));
    out[name] = to_floats(torch::stack(rows));  // [L,H]
  }
  return out;
}

void AttentionRecorder::record(int64_t epoch, int64_t step, bool is_best, bool on_cadence) {
  const auto t0 = std::chrono::steady_clock::now();
  const bool metrics_due = cfg_.metrics && (on_cadence || epoch % cfg_.metrics_every == 0);
  if (on_cadence || is_best) {
    const auto maps = probe_maps();
    const store::EpochInfo info{epoch, step, now_unix()};
    if (on_cadence) {
      const auto& p = last_probs_;
      const auto& len = probes_.lengths;
      store::Analyses an;
      an["js_prev"] = to_floats(prev_probs_.defined() ? js_divergence(prev_probs_, p, len)
                                                      : torch::zeros({p.size(1), p.size(2)}));
      an["head_js"] = to_floats(head_js_distance(p, len));
      an["token_importance"] = to_floats(token_importance(p, len));
      an["token_importance_rollout"] = to_floats(token_importance_rollout(p, len));
      const auto hi = task_.head_importance();  // [all layers, all heads]
      an["head_importance"] = to_floats(
          hi.defined() ? hi.index_select(0, torch::tensor(layers_)).index_select(1, torch::tensor(heads_))
                       : torch::full({p.size(1), p.size(2)}, std::nan("")));
      if (last_pooled_.defined()) an["pooled"] = to_floats(last_pooled_);
      writer_->append_epoch(info, maps, an);
      prev_probs_ = p;
    }
    if (is_best) {  // written at the next checkpoint (or the end), not at every improvement
      best_maps_ = maps;
      best_info_ = info;
      best_pending_ = true;
    }
  }
  if (metrics_due) writer_->append_metrics(epoch, validation_metrics());
  seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

void AttentionRecorder::write_pending_best() {
  if (!best_pending_) return;
  writer_->write_best(best_info_, best_maps_);
  best_pending_ = false;
}

void AttentionRecorder::on_checkpoint(const train::TrainContext&, const std::string&) { write_pending_best(); }

void AttentionRecorder::on_train_end(const train::TrainContext&, const train::EpochRecord&) {
  write_pending_best();
  write_js_final();
  if (!writer_->header().arrays.empty()) {
    for (const auto& [name, values] : task_.final_arrays()) writer_->write_array(name, values);
  }
}

torch::Tensor AttentionRecorder::recorded_probs(int64_t epoch_index) const {
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
  for (int64_t e = 0; e < n; ++e) {  // one epoch in memory at a time
    const auto js = to_floats(js_divergence(recorded_probs(e), final_maps, probes_.lengths));
    rows.insert(rows.end(), js.begin(), js.end());
  }
  writer_->write_js_final(rows);
}

void AttentionRecorder::on_train_begin(const train::TrainContext& ctx) {
  if (ctx.state.epoch == 0 && writer_->epochs_recorded() == 0) record(0, 0, false, true);
}

void AttentionRecorder::on_epoch_end(const train::TrainContext& ctx, const train::EpochRecord& r) {
  record(r.epoch, r.step, r.is_best, r.epoch % cfg_.every == 0 || r.is_last);
  if (r.is_last) {
    log::info("[attention] " + std::to_string(writer_->epochs_recorded()) + " epochs recorded; " +
              std::to_string(seconds_) + " s spent recording");
  }
}

}  // namespace attnscope::hooks
