// Masked-LM pretraining on a SMILES corpus (train/molecule_tasks.h: MaskedLMTask).
#include <cmath>
#include <sstream>

#include "core/core.h"
#include "train/lm_loss.h"
#include "train/molecule_tasks.h"

namespace attnscope::train {

MaskedLMTask::MaskedLMTask(const Config& config) : MoleculeTask(config, TaskKind::MaskedLM) {
  mask_spec_ = mask_spec_of(*d_.tok, config.data.mlm_probability);
  mask_spec_.vocab_size = d_.rc.vocab_size;
  torch::manual_seed(static_cast<uint64_t>(config.run.seed));
  lm_ = models::build_transformer(d_.rc, models::lm_architecture(d_.rc.model_type));
  init_weights();
}

void MaskedLMTask::describe_task(std::ostream& s) const {
  s << "masked-LM (" << config_.data.mlm_probability * 100 << " % of tokens) on " << d_.table.size() << " SMILES of "
    << config_.data.csv << " (" << d_.table.dropped << " unparsable dropped, " << d_.excluded << " excluded, "
    << d_.truncated << " truncated); " << d_.split.train.size() << " train / " << d_.split.val.size() << " held out";
}

std::vector<uint64_t> MaskedLMTask::seeds_of(const std::vector<int64_t>& rows, uint64_t epoch) const {
  std::vector<uint64_t> seeds;
  for (int64_t r : rows) seeds.push_back(mask_seed(static_cast<uint64_t>(config_.run.seed), epoch, static_cast<uint64_t>(r)));
  return seeds;
}

std::tuple<torch::Tensor, int64_t, int64_t> MaskedLMTask::mlm_loss(const MoleculeData::Batch& b,
                                                                    const std::vector<int64_t>& rows, uint64_t epoch) {
  const auto [input, labels] = mlm_mask(b.ids, mask_spec_, seeds_of(rows, epoch));
  const auto chosen = labels.ne(-100);
  const int64_t count = chosen.sum().item<int64_t>();
  if (count == 0) return {torch::zeros({}), 0, 0};
  // the LM head runs on the predicted positions only (the loss is the same as over all positions)
  const auto h = lm_->hidden(input, b.mask, nullptr, b.type_ids).index({chosen});
  const auto logits = lm_->lm_logits(h);
  const auto y = labels.index({chosen});
  const auto loss = torch::nn::functional::cross_entropy(logits, y);
  const int64_t correct = logits.argmax(1).eq(y).sum().item<int64_t>();
  return {loss, count, correct};
}

StepStats MaskedLMTask::train_step(const torch::Tensor& idx) {
  const auto rows = d_.rows_of(d_.split.train, idx);
  const auto b = d_.make_batch(rows, config_.data.augment);
  return lm_step(mlm_loss(b, rows, static_cast<uint64_t>(epoch_)));
}

double MaskedLMTask::loss_weight(const torch::Tensor& idx) const {
  const auto rows = d_.rows_of(d_.split.train, idx);
  if (config_.data.augment) return static_cast<double>(rows.size());
  const auto seeds = seeds_of(rows, static_cast<uint64_t>(epoch_));
  return static_cast<double>(mlm_mask(d_.make_batch(rows, false).ids, mask_spec_, seeds).second.ne(-100).sum().item<int64_t>());
}

Metrics MaskedLMTask::evaluate() {
  torch::NoGradGuard no_grad;
  lm_->eval();
  const auto& rows = d_.split.val;
  LmTotals totals;
  for (const auto& at : d_.eval_batches(rows)) {
    const auto part = MoleculeData::pick(rows, at);
    totals.add(mlm_loss(d_.make_batch(part, false), part, kValidationMasks));
  }
  return totals.metrics();
}

std::map<std::string, int64_t> MaskedLMTask::data_counts() const {
  auto c = MoleculeTask::data_counts();
  c["excluded_smiles"] = d_.excluded;
  return c;
}

void MaskedLMTask::finish(const std::string& run_dir, const analysis::ProbeHistory*) {
  log::info("[pretrain] fine-tune from it with model.pretrained: " + run_dir + " (its best checkpoint), or export it with "
            "`attnscope export --model " + run_dir + " --hf DIR`");
}

}  // namespace attnscope::train
