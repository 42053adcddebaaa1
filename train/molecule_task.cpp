// What every molecule task shares (train/molecule_tasks.h: MoleculeTask).
#include <ATen/CPUGeneratorImpl.h>

#include <filesystem>
#include <sstream>

#include "core/core.h"
#include "train/model_task.h"
#include "train/molecule_tasks.h"

namespace attnscope::train {
namespace fs = std::filesystem;

MoleculeTask::MoleculeTask(const Config& config, TaskKind kind) : config_(config), d_(config, traits(kind)) {
  // masked-LM's head: none (num_labels 1, no labels); a supervised kind sets its own (build_model)
  d_.rc.num_labels = 1;
  d_.rc.id2label.clear();
  d_.rc.label2id.clear();
  d_.rc.problem_type = "";
}

MoleculeTask::~MoleculeTask() = default;

void MoleculeTask::init_weights() {
  const auto& mc = config_.model;
  if (!mc.pretrained.empty()) load_pretrained();
  if (mc.freeze_layers > 0) {  // the embeddings, then the first layers
    const auto blocks = transformer().blocks();
    for (int64_t b = 0; b <= mc.freeze_layers && b < static_cast<int64_t>(blocks.size()); ++b) {
      for (auto& p : blocks[static_cast<size_t>(b)]->parameters()) p.requires_grad_(false);
    }
  }
}

// Weights of model.pretrained (a Hugging Face directory, or an attnscope run's best checkpoint,
// else its last) through the one loader, copied by Hugging Face name: a head of another task is
// skipped, a missing one keeps its seeded initialisation, one of another size is re-initialised
// with model.reinit_heads.
void MoleculeTask::load_pretrained() {
  auto src = models::load_model(config_.model.pretrained, "model.pretrained");
  std::map<std::string, torch::Tensor> tensors;
  if (src.config().model_type != d_.rc.model_type) {
    throw UsageError("model.pretrained '" + config_.model.pretrained + "' is a " + src.config().model_type +
                     " model; model.name is " + config_.model.name);
  }
  const std::string prefix = src.hf.model->head() == models::Head::None ? src.hf.model->body_prefix() : "";
  for (const auto& p : src.hf.module().named_parameters()) tensors[prefix + p.key()] = p.value().detach();
  // the random generator is untouched by loading: heads the checkpoint lacks keep the seeded init
  models::load_hf_state(transformer(), tensors, src.origin, &new_heads_, config_.model.reinit_heads);
  if (config_.model.reinit_heads && !new_heads_.empty()) {
    log::info("[model] task head initialised (not in, or of another size in, " + src.origin + "): " + join(new_heads_));
  }
}

std::string MoleculeTask::describe() const {
  int64_t params = 0;  // trained ones (a variant's unused zero tensors and frozen layers are not)
  for (const auto& p : const_cast<MoleculeTask*>(this)->module().parameters()) params += p.requires_grad() ? p.numel() : 0;
  const auto& rc = d_.rc;
  std::ostringstream s;
  s << rc.model_type << " " << rc.num_hidden_layers << " layers x " << rc.hidden_size << " hidden, " << rc.num_attention_heads
    << " heads" << (rc.attn_only ? ", attention-only" : "") << (rc.position_embedding == "rotary" ? ", rotary positions" : "")
    << ", " << params << " trained parameters, vocab " << rc.vocab_size << " (" << d_.tokenizer_description() << "); ";
  describe_task(s);
  if (!config_.model.pretrained.empty()) {
    s << "; from " << config_.model.pretrained;
    if (!new_heads_.empty()) s << " (task head initialised: " << new_heads_.size() << " tensors, e.g. " << new_heads_.front() << ")";
  } else {
    s << "; from scratch (seed " << config_.run.seed << ")";
  }
  return s.str();
}

std::string MoleculeTask::model_json() const {
  return transformer_model_json(d_.rc, config_.data.task, config_.data.targets, d_.tok->kind(), d_.text);
}

std::vector<torch::Tensor> MoleculeTask::epoch_batches(const torch::Tensor& order, int64_t batch_size) const {
  return d_.epoch_batches(order, batch_size);
}

std::map<std::string, int64_t> MoleculeTask::data_counts() const {
  return {{"dropped_smiles", d_.table.dropped}, {"truncated_smiles", d_.truncated}};
}

torch::Tensor MoleculeTask::val_inputs(const torch::Tensor& idx) const {
  return d_.make_batch(d_.rows_of(d_.split.val, idx), false).ids;
}

torch::Tensor MoleculeTask::val_lengths(const torch::Tensor& idx) const {
  std::vector<int64_t> len;
  for (int64_t r : d_.rows_of(d_.split.val, idx)) len.push_back(d_.length(r));
  return torch::tensor(len, torch::kLong);
}

void MoleculeTask::forward_taps(const torch::Tensor& inputs, models::Taps& taps) {
  torch::NoGradGuard no_grad;
  module().eval();
  forward_inputs(transformer(), *d_.tok, inputs, taps);
}

Attribution MoleculeTask::attribution(const torch::Tensor& inputs) {
  const bool was_training = module().is_training();
  module().eval();
  auto a = attribution_of(transformer(), *d_.tok, inputs);
  module().train(was_training);
  return a;
}

ValidationSet MoleculeTask::validation_set() const {
  ValidationSet v;
  for (int64_t r : d_.split.val) v.text.push_back(d_.table.smiles[static_cast<size_t>(r)]);
  return v;
}

ProbeSet MoleculeTask::default_probes(int64_t count) const {
  // evenly spread over the validation molecules no longer than its 90th length percentile: every
  // map is stored padded to the longest probe, and one 150-token SMILES would pad all of them
  std::vector<int64_t> len;
  for (int64_t r : d_.split.val) len.push_back(d_.length(r));
  auto sorted = len;
  std::sort(sorted.begin(), sorted.end());
  const int64_t cap = sorted.empty() ? 0 : sorted[static_cast<size_t>(0.9 * static_cast<double>(sorted.size() - 1))];
  std::vector<int64_t> pool;
  for (size_t v = 0; v < len.size(); ++v) {
    if (len[v] <= cap) pool.push_back(static_cast<int64_t>(v));
  }
  const int64_t n = static_cast<int64_t>(pool.size()), P = std::min(count, n);
  std::vector<std::string> texts;
  std::vector<std::vector<int64_t>> ids;
  std::vector<int64_t> source;
  for (int64_t i = 0; i < P; ++i) {
    const int64_t v = pool[P == 1 ? 0 : static_cast<size_t>(std::llround(static_cast<double>(i) * (n - 1) / (P - 1)))];
    const int64_t row = d_.split.val[v];
    texts.push_back(d_.table.smiles[row] + (d_.table.pairs.empty() ? "" : "\n" + d_.table.pairs[row]));
    ids.push_back(d_.ids[row]);
    source.push_back(v);
  }
  return probes_from_ids(*d_.tok, ids, texts, source);
}

ProbeSet MoleculeTask::parse_probes(const std::string& text, const std::string& origin) const {
  if (d_.text) return parse_text_probes(*d_.tok, models::max_tokens(d_.rc), text, origin);
  return parse_smiles_probes(*d_.tok, models::max_tokens(d_.rc), text, origin);
}

void MoleculeTask::write_run_files(const std::string& run_dir) {
  const RunDir run{run_dir};
  data::write_split_file(run.split(), d_.split, config_.data.csv);
  d_.tok->save(run_dir);
  // the model as Hugging Face describes it, so predict / export read the run like a model directory
  const auto& family = models::model_family(d_.rc.model_type, "model.name");
  write_file_atomic(run.model_config(), models::hf_config_json(d_.rc, family.architecture_for(d_.task.kind)));
  nlohmann::json stats = {{"task", config_.data.task}, {"targets", config_.data.targets}};
  target_stats(stats);
  write_file_atomic(run.targets(), stats.dump(2) + "\n");
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
models::Transformer fresh_module(models::TransformerImpl& like) {
  auto gen = at::detail::getDefaultCPUGenerator();
  const auto state = gen.get_state();
  auto m = models::build_transformer(like.config(), like.architecture());
  gen.set_state(state);
  return m;
}
}  // namespace

// The task's forwards on a copy of the encoder (and the head of a supervised task).
class MoleculeTask::Frozen : public Snapshot {
 public:
  explicit Frozen(MoleculeTask& t) : t_(t), model_(fresh_module(t.transformer())) { copy_module(t.transformer(), *model_); }
  void forward_taps(const torch::Tensor& inputs, models::Taps& taps) override {
    torch::NoGradGuard no_grad;
    forward_inputs(*model_, *t_.d_.tok, inputs, taps);
  }
  std::vector<torch::Tensor> val_attention_layers(const torch::Tensor& idx, const std::vector<int64_t>& layers) override {
    models::Taps taps;
    taps.request(models::site::kAttnProbs, layers);
    forward_taps(t_.val_inputs(idx), taps);
    std::vector<torch::Tensor> out;
    for (int64_t l : layers) out.push_back(taps.get(models::site::kAttnProbs, l));
    return out;
  }
  torch::Tensor head_importance() override { return t_.head_importance_of(*model_); }
  Attribution attribution(const torch::Tensor& inputs) override { return attribution_of(*model_, *t_.d_.tok, inputs); }

 private:
  const MoleculeTask& t_;  // (its data and batching only, which training does not change)
  models::Transformer model_;
};

std::shared_ptr<Snapshot> MoleculeTask::snapshot() const {
  return std::make_shared<Frozen>(const_cast<MoleculeTask&>(*this));
}

}  // namespace attnscope::train
