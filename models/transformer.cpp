// The families behind one interface (models/transformer.h).
#include "models/transformer.h"

#include <cmath>

#include "core/core.h"
#include "models/bert.h"
#include "models/gpt2.h"
#include "models/state_dict.h"

namespace attnscope::models {

torch::Tensor TransformerImpl::forward(const torch::Tensor& input_ids, const torch::Tensor& attention_mask, Taps* taps,
                                       const torch::Tensor& token_type_ids) {
  const auto h = hidden(input_ids, attention_mask, taps, token_type_ids);
  if (taps != nullptr && taps->wants(site::kPooled, 0)) tap(taps, site::kPooled, 0, readout(h, attention_mask));
  return head() == Head::None ? h : lm_logits(h);
}

torch::Tensor TransformerImpl::lm_logits(const torch::Tensor&) {
  throw UsageError(architecture() + " is not a language model (no token predictions)");
}

torch::Tensor TransformerImpl::readout(const torch::Tensor& hidden_states, const torch::Tensor& attention_mask) const {
  if (!config_.causal()) return hidden_states.select(1, 0);
  const auto last = (attention_mask.sum(1) - 1).clamp_min(0);  // the last real token (right padding)
  return hidden_states.index({torch::arange(hidden_states.size(0)), last});
}

std::vector<std::string> architectures_of(const std::string& model_type) {
  if (model_type == "bert") return {kBertClassifier, kBertMaskedLM, kBertEncoder};
  if (model_type == "gpt2") return {kGpt2LM, kGpt2Classifier, kGpt2Model};
  return {kRobertaClassifier, kRobertaMaskedLM, kRobertaEncoder};
}
std::string classifier_architecture(const std::string& model_type) {
  return model_type == "gpt2" ? kGpt2Classifier : model_type == "bert" ? kBertClassifier : kRobertaClassifier;
}
std::string lm_architecture(const std::string& model_type) {
  return model_type == "gpt2" ? kGpt2LM : model_type == "bert" ? kBertMaskedLM : kRobertaMaskedLM;
}
std::string body_architecture(const std::string& model_type) {
  return model_type == "gpt2" ? kGpt2Model : model_type == "bert" ? kBertEncoder : kRobertaEncoder;
}

Transformer build_transformer(const TransformerConfig& c, const std::string& arch) {
  constexpr double kRange = 0.02;  // transformers' initializer_range
  Transformer m;
  if (arch == kRobertaClassifier) m = RobertaForSequenceClassification(c).ptr();
  else if (arch == kRobertaMaskedLM) m = RobertaForMaskedLM(c).ptr();
  else if (arch == kRobertaEncoder || arch == kBertEncoder) m = BertModel(c).ptr();
  else if (arch == kBertClassifier) m = BertForSequenceClassification(c).ptr();
  else if (arch == kBertMaskedLM) m = BertForMaskedLM(c).ptr();
  else if (arch == kGpt2LM) m = GPT2LMHeadModel(c).ptr();
  else if (arch == kGpt2Classifier) m = GPT2ForSequenceClassification(c).ptr();
  else if (arch == kGpt2Model) m = GPT2Model(c).ptr();
  const auto known = architectures_of(c.model_type);
  if (!m || std::find(known.begin(), known.end(), arch) == known.end()) {
    throw UsageError("architecture '" + arch + "' is not a " + c.model_type + " model attnscope builds (" + join(known) + ")");
  }
  // RoBERTa keeps LibTorch's initialisation (attnscope's ChemBERTa runs were made with it); the
  // newer families start as transformers initialises them
  if (c.model_type == "bert") init_like_transformers(*m, kRange);
  if (c.model_type == "gpt2") init_gpt2(*m, kRange, c.num_hidden_layers, c.attn_only, c.position_embedding == "rotary");
  return m;
}

void load_hf_state(TransformerImpl& model, const std::map<std::string, torch::Tensor>& tensors, const std::string& origin,
                   std::vector<std::string>* new_heads, bool reinit_mismatched) {
  const bool heads = new_heads != nullptr;
  StateRules rules;
  rules.may_be_missing = [&](const std::string& n) { return heads && model.is_head_tensor(n); };
  rules.may_differ = [&](const std::string& n) { return heads && reinit_mismatched && model.is_head_tensor(n); };
  // an optional tensor, or another task's head
  rules.may_be_extra = [&](const std::string& n) { return model.is_optional_tensor(n) || (heads && model.is_head_tensor(n)); };
  std::vector<std::pair<std::string, torch::Tensor>> params;
  for (const auto& p : model.named_parameters()) params.emplace_back(p.key(), p.value());
  const auto fit = copy_state(params, tensors, "'" + origin + "' does not fit the model:", rules);
  if (heads) {
    new_heads->insert(new_heads->end(), fit.absent.begin(), fit.absent.end());
    new_heads->insert(new_heads->end(), fit.reshaped.begin(), fit.reshaped.end());
  }
}

torch::Tensor activation(const std::string& name, const torch::Tensor& x) {
  if (name == "gelu_new") {  // 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
    return 0.5 * x * (1.0 + torch::tanh(std::sqrt(2.0 / M_PI) * (x + 0.044715 * torch::pow(x, 3.0))));
  }
  if (name == "relu") return torch::relu(x);
  return torch::gelu(x);  // erf GELU, as transformers' "gelu"
}

}  // namespace attnscope::models
