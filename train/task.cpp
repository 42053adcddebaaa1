// The task interfaces' shared parts and the registry of task kinds (train/task.h).
#include "train/task.h"

#include "core/core.h"
#include "data/data.h"
#include "train/minmax_task.h"
#include "train/molecule_tasks.h"

namespace attnscope::train {

std::vector<torch::Tensor> Trainable::epoch_batches(const torch::Tensor& order, int64_t batch_size) const {
  return data::make_batches(order, batch_size);
}

torch::Tensor Inspectable::val_attention(const torch::Tensor& idx, int64_t layer) {
  models::Taps taps;
  taps.request(models::site::kAttnProbs, {layer});
  forward_taps(val_inputs(idx), taps);
  return taps.get(models::site::kAttnProbs, layer);
}

std::vector<torch::Tensor> Inspectable::val_attention_layers(const torch::Tensor& idx, const std::vector<int64_t>& layers) {
  if (layers.size() == 1) return {val_attention(idx, layers[0])};
  models::Taps taps;
  taps.request(models::site::kAttnProbs, layers);
  forward_taps(val_inputs(idx), taps);
  std::vector<torch::Tensor> out;
  for (int64_t l : layers) out.push_back(taps.get(models::site::kAttnProbs, l));
  return out;
}

Attribution gradient_attribution(int64_t P, int64_t T, int64_t D, int64_t L, int64_t H, const torch::Tensor& mask,
                                 const std::function<torch::Tensor(models::Taps&)>& predict) {
  torch::AutoGradMode on(true);
  models::Taps taps;
  taps.request(models::site::kEmbedOut, {0});
  std::vector<torch::Tensor> wrt = {torch::zeros({P, T, D}, torch::requires_grad())};
  taps.set_embed_delta(wrt[0]);
  for (int64_t l = 0; l < L; ++l) {
    wrt.push_back(torch::ones({P, H, T, T}, torch::requires_grad()));
    taps.set_probs_gate(l, wrt.back());
  }
  const auto y = predict(taps);                          // [P]
  const auto g = torch::autograd::grad({y.sum()}, wrt);  // the rows are independent: one backward
  Attribution a;
  a.grad_input = ((g[0] * taps.get(models::site::kEmbedOut, 0)).sum(-1) * mask.to(torch::kFloat)).detach();
  std::vector<torch::Tensor> per_layer;
  for (int64_t l = 0; l < L; ++l) per_layer.push_back(g[static_cast<size_t>(1 + l)].sum({2, 3}));  // [P,H]
  a.attn_grad = torch::stack(per_layer, 1).detach();  // [P,L,H]
  return a;
}

ProbeSet Inspectable::probes_from_file(const std::string& path) const { return parse_probes(read_file(path), path); }

namespace {
template <typename T>
TaskFactory factory() {
  return [](const Config& config) -> std::unique_ptr<Task> { return std::make_unique<T>(config); };
}
}  // namespace

const TaskFactory& task_factory(TaskKind kind) {
  static const std::map<TaskKind, TaskFactory> registry = {
      {TaskKind::MinMax, factory<MinMaxTask>()},
      {TaskKind::Regression, factory<RegressionTask>()},
      {TaskKind::Classification, factory<ClassificationTask>()},
      {TaskKind::Multiclass, factory<MulticlassTask>()},
      {TaskKind::MaskedLM, factory<MaskedLMTask>()},
      {TaskKind::CausalLM, factory<CausalLMTask>()},
  };
  return registry.at(kind);
}

std::unique_ptr<Task> make_task(const Config& config) {
  return task_factory(task_named(config.data.task, "data.task").kind)(config);
}

}  // namespace attnscope::train
