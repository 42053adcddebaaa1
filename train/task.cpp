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
