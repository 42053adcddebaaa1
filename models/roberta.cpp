// RoBERTa as Hugging Face transformers computes it (models/roberta.h).
#include "models/roberta.h"

#include <nlohmann/json.hpp>

#include <cmath>
#include <limits>
#include <set>
#include <sstream>

#include "core/core.h"
#include "models/state_dict.h"

namespace attnscope::models {
namespace nn = torch::nn;

namespace {
// id2label / label2id / num_labels / problem_type, as transformers' PretrainedConfig.__init__.
void read_labels(const nlohmann::json& j, RobertaConfig& c, std::vector<std::string>& problems) {
  c.num_labels = 2;  // transformers' default
  if (j.contains("id2label") && !j["id2label"].is_null()) {
    const auto& m = j["id2label"];
    if (!m.is_object() || m.empty()) {
      problems.push_back("id2label: expected an object {\"0\": \"name\", ...}, got " + m.dump().substr(0, 80));
    } else {
      c.num_labels = static_cast<int64_t>(m.size());
      c.id2label.assign(static_cast<size_t>(c.num_labels), "");
      for (const auto& [key, value] : m.items()) {
        int64_t id = -1;
        try {
          size_t used = 0;
          id = std::stoll(key, &used);
          if (used != key.size()) id = -1;
        } catch (const std::exception&) {
        }
        if (id < 0 || id >= c.num_labels) {
          problems.push_back("id2label: key '" + key + "' is not a label id 0.." + std::to_string(c.num_labels - 1));
        } else if (!value.is_string()) {
          problems.push_back("id2label[" + key + "]: expected a string, got " + value.dump());
        } else {
          c.id2label[static_cast<size_t>(id)] = value.get<std::string>();
        }
      }
    }
    if (j.contains("num_labels") && j["num_labels"] != c.num_labels) {
      log::warn("'num_labels' " + j["num_labels"].dump() + " differs from id2label's " + std::to_string(c.num_labels) +
                " labels; id2label wins, as in transformers");
    }
  } else if (j.contains("num_labels")) {
    if (!j["num_labels"].is_number_integer() || j["num_labels"].get<int64_t>() < 1) {
      problems.push_back("num_labels: expected an integer >= 1, got " + j["num_labels"].dump());
    } else {
      c.num_labels = j["num_labels"].get<int64_t>();
    }
  }
  if (j.contains("label2id") && !j["label2id"].is_null()) {
    if (!j["label2id"].is_object()) {
      problems.push_back("label2id: expected an object {\"name\": 0, ...}, got " + j["label2id"].dump().substr(0, 80));
    } else {
      for (const auto& [key, value] : j["label2id"].items()) {
        if (!value.is_number_integer() || value.get<int64_t>() < 0 || value.get<int64_t>() >= c.num_labels) {
          problems.push_back("label2id['" + key + "']: expected a label id 0.." + std::to_string(c.num_labels - 1) +
                             ", got " + value.dump());
        } else {
          c.label2id[key] = value.get<int64_t>();
        }
      }
    }
  }
  if (j.contains("problem_type") && !j["problem_type"].is_null()) {
    const auto& p = j["problem_type"];
    if (!p.is_string() || (p != "regression" && p != "single_label_classification" && p != "multi_label_classification")) {
      problems.push_back("problem_type: expected regression, single_label_classification or multi_label_classification, "
                         "got " + p.dump());
    } else {
      c.problem_type = p.get<std::string>();
    }
  }
}
}  // namespace

std::string RobertaConfig::label(int64_t id) const {
  const auto i = static_cast<size_t>(id);
  return i < id2label.size() && !id2label[i].empty() ? id2label[i] : "LABEL_" + std::to_string(id);
}

std::string effective_problem_type(const RobertaConfig& c) {
  if (!c.problem_type.empty()) return c.problem_type;
  return c.num_labels == 1 ? "regression" : "single_label_classification";
}

RobertaConfig read_hf_config(const std::string& path) {
  const nlohmann::json j = read_json_file(path);
  if (!j.is_object()) throw UsageError("'" + path + "': expected a JSON object (a Hugging Face config.json)");
  RobertaConfig c;
  std::vector<std::string> problems;
  // Every value is range-checked before anything is sized by it (all problems at once).
  auto get_int = [&](const char* key, int64_t& field, int64_t min, int64_t max) {
    if (!j.contains(key)) return;
    const auto& v = j[key];
    if (!v.is_number_integer() || v.get<double>() < static_cast<double>(min) || v.get<double>() > static_cast<double>(max)) {
      problems.push_back(std::string(key) + ": expected an integer in " + std::to_string(min) + ".." + std::to_string(max) +
                         ", got " + v.dump().substr(0, 40));
    } else {
      field = v.get<int64_t>();
    }
  };
  auto get_double = [&](const char* key, double& field, double lo, double hi, bool lo_open, const char* rule) {
    if (!j.contains(key) || j[key].is_null()) return;
    const auto& v = j[key];
    const double x = v.is_number() ? v.get<double>() : std::nan("");
    if (!v.is_number() || !std::isfinite(x) || x < lo || (lo_open && x == lo) || x >= hi) {
      problems.push_back(std::string(key) + ": expected a number " + rule + ", got " + v.dump().substr(0, 40));
    } else {
      field = x;
    }
  };
  get_int("vocab_size", c.vocab_size, 1, 1 << 24);
  get_int("hidden_size", c.hidden_size, 1, 1 << 16);
  get_int("num_hidden_layers", c.num_hidden_layers, 1, 1024);
  get_int("num_attention_heads", c.num_attention_heads, 1, 4096);
  get_int("intermediate_size", c.intermediate_size, 1, 1 << 20);
  get_int("max_position_embeddings", c.max_position_embeddings, 4, 1 << 20);
  get_int("type_vocab_size", c.type_vocab_size, 1, 1 << 16);
  get_int("pad_token_id", c.pad_token_id, 0, (1 << 24) - 1);
  get_double("layer_norm_eps", c.layer_norm_eps, 0, 1, true, "in (0, 1)");
  get_double("hidden_dropout_prob", c.hidden_dropout_prob, 0, 1, false, "in [0, 1)");
  get_double("attention_probs_dropout_prob", c.attention_probs_dropout_prob, 0, 1, false, "in [0, 1)");
  read_labels(j, c, problems);
  if (c.num_labels > (1 << 20)) problems.push_back("id2label / num_labels: " + std::to_string(c.num_labels) + " labels (at most 1048576)");
  if (j.contains("model_type") && j["model_type"] != "roberta") {
    problems.push_back("model_type: only \"roberta\" is supported, got " + j["model_type"].dump().substr(0, 40));
  }
  if (j.contains("position_embedding_type") && j["position_embedding_type"] != "absolute") {
    problems.push_back("position_embedding_type: only \"absolute\" is supported, got " + j["position_embedding_type"].dump().substr(0, 40));
  }
  if (j.contains("hidden_act") && j["hidden_act"] != "gelu") {
    problems.push_back("hidden_act: only \"gelu\" (erf) is supported, got " + j["hidden_act"].dump().substr(0, 40));
  }
  if (c.hidden_size % c.num_attention_heads != 0) {
    problems.push_back("hidden_size " + std::to_string(c.hidden_size) + " is not a multiple of num_attention_heads " +
                       std::to_string(c.num_attention_heads));
  }
  if (c.pad_token_id >= c.vocab_size) {
    problems.push_back("pad_token_id " + std::to_string(c.pad_token_id) + " is not a token id (vocab_size " +
                       std::to_string(c.vocab_size) + ")");
  }
  if (max_tokens(c) < 3) {  // RoBERTa's positions start at pad_token_id + 1
    problems.push_back("max_position_embeddings " + std::to_string(c.max_position_embeddings) + " leaves " +
                       std::to_string(max_tokens(c)) + " positions after pad_token_id " + std::to_string(c.pad_token_id) +
                       " (positions start at pad_token_id + 1; <s> x </s> needs 3)");
  }
  // the parameters the model would allocate, before anything allocates them
  const double D = static_cast<double>(c.hidden_size), I = static_cast<double>(c.intermediate_size);
  const double params = D * static_cast<double>(c.vocab_size + c.max_position_embeddings + c.type_vocab_size) +
                        static_cast<double>(c.num_hidden_layers) * (4 * D * D + 2 * D * I) + D * D +
                        D * static_cast<double>(c.num_labels);
  if (params > 4e9) {
    std::ostringstream m;
    m << "the model would have " << params / 1e9 << " billion parameters (" << params * 4 / (1ull << 30)
      << " GiB of float32); attnscope loads at most 4 billion: check vocab_size, hidden_size, num_hidden_layers, "
         "intermediate_size, max_position_embeddings";
    problems.push_back(m.str());
  }
  if (!problems.empty()) {
    throw UsageError(problem_list("'" + path + "' is not a usable RoBERTa config:", problems));
  }
  return c;
}

// The config's sizes against the tensors a weight file holds, before a model is built from it.
void check_config_fits(const RobertaConfig& c, const std::map<std::string, torch::Tensor>& tensors, const std::string& config_path) {
  std::vector<std::string> problems;
  auto find = [&](const std::string& name) -> const torch::Tensor* {
    for (const char* prefix : {"roberta.", ""}) {
      const auto it = tensors.find(prefix + name);
      if (it != tensors.end()) return &it->second;
    }
    return nullptr;
  };
  auto expect = [&](const std::string& name, int64_t rows, const char* key) {
    const auto* t = find(name);
    if (t == nullptr) return;  // the strict load names missing tensors
    if (t->dim() != 2 || t->size(0) != rows || t->size(1) != c.hidden_size) {
      std::ostringstream m;
      m << key << " " << rows << " and hidden_size " << c.hidden_size << " say " << name << " is [" << rows << ","
        << c.hidden_size << "]; the weights hold " << t->sizes();
      problems.push_back(m.str());
    }
  };
  expect("embeddings.word_embeddings.weight", c.vocab_size, "vocab_size");
  expect("embeddings.position_embeddings.weight", c.max_position_embeddings, "max_position_embeddings");
  expect("embeddings.token_type_embeddings.weight", c.type_vocab_size, "type_vocab_size");
  expect("encoder.layer.0.intermediate.dense.weight", c.intermediate_size, "intermediate_size");
  int64_t layers = 0;
  for (const auto& [name, t] : tensors) {
    const auto at = name.find("encoder.layer.");
    if (at == std::string::npos) continue;
    try {
      layers = std::max<int64_t>(layers, std::stoll(name.substr(at + 14)) + 1);
    } catch (const std::exception&) {
    }
  }
  if (layers != 0 && layers != c.num_hidden_layers) {
    problems.push_back("num_hidden_layers " + std::to_string(c.num_hidden_layers) + ", but the weights hold " +
                       std::to_string(layers) + " encoder layers");
  }
  if (!problems.empty()) {
    throw UsageError(problem_list("'" + config_path + "' does not describe the weights beside it:", problems));
  }
}

RobertaEmbeddingsImpl::RobertaEmbeddingsImpl(const RobertaConfig& c) : pad_id(c.pad_token_id) {
  word_embeddings = register_module("word_embeddings",
      nn::Embedding(nn::EmbeddingOptions(c.vocab_size, c.hidden_size).padding_idx(c.pad_token_id)));
  position_embeddings = register_module("position_embeddings",
      nn::Embedding(nn::EmbeddingOptions(c.max_position_embeddings, c.hidden_size).padding_idx(c.pad_token_id)));
  token_type_embeddings = register_module("token_type_embeddings", nn::Embedding(c.type_vocab_size, c.hidden_size));
  LayerNorm = register_module("LayerNorm", nn::LayerNorm(nn::LayerNormOptions({c.hidden_size}).eps(c.layer_norm_eps)));
  dropout = register_module("dropout", nn::Dropout(c.hidden_dropout_prob));
}

torch::Tensor RobertaEmbeddingsImpl::forward(const torch::Tensor& input_ids) {
  // positions: cumulative count of real tokens, offset by the pad id (first real token: pad + 1)
  const auto real = input_ids.ne(pad_id).to(torch::kLong);
  const auto positions = torch::cumsum(real, 1) * real + pad_id;
  auto x = word_embeddings(input_ids) + token_type_embeddings(torch::zeros_like(input_ids)) +
           position_embeddings(positions);
  return dropout(LayerNorm(x));
}

RobertaSelfAttentionImpl::RobertaSelfAttentionImpl(const RobertaConfig& c)
    : heads(c.num_attention_heads), head_dim(c.hidden_size / c.num_attention_heads) {
  query = register_module("query", nn::Linear(c.hidden_size, c.hidden_size));
  key = register_module("key", nn::Linear(c.hidden_size, c.hidden_size));
  value = register_module("value", nn::Linear(c.hidden_size, c.hidden_size));
  dropout = register_module("dropout", nn::Dropout(c.attention_probs_dropout_prob));
}

torch::Tensor RobertaSelfAttentionImpl::forward(const torch::Tensor& x, const torch::Tensor& mask, int64_t layer,
                                                Taps* taps) {
  const int64_t B = x.size(0), T = x.size(1);
  auto split = [&](const torch::Tensor& t) { return t.view({B, T, heads, head_dim}).transpose(1, 2); };  // [B,H,T,d]
  const auto q = split(query(x)), k = split(key(x)), v = split(value(x));
  auto scores = torch::matmul(q, k.transpose(-1, -2)) / std::sqrt(static_cast<double>(head_dim)) + mask;  // [B,H,T,T]
  tap(taps, site::kAttnScores, layer, scores);
  auto probs = torch::softmax(scores, -1);
  tap(taps, site::kAttnProbs, layer, probs);
  const auto context = gate_heads(taps, layer, torch::matmul(dropout(probs), v));  // [B,H,T,d]
  return context.transpose(1, 2).reshape({B, T, heads * head_dim});  // [B,T,D]
}

RobertaOutputImpl::RobertaOutputImpl(int64_t in, int64_t out, const RobertaConfig& c) {
  dense = register_module("dense", nn::Linear(in, out));
  LayerNorm = register_module("LayerNorm", nn::LayerNorm(nn::LayerNormOptions({out}).eps(c.layer_norm_eps)));
  dropout = register_module("dropout", nn::Dropout(c.hidden_dropout_prob));
}

torch::Tensor RobertaOutputImpl::forward(const torch::Tensor& x, const torch::Tensor& residual) {
  return LayerNorm(dropout(dense(x)) + residual);
}

RobertaAttentionImpl::RobertaAttentionImpl(const RobertaConfig& c) {
  self = register_module("self", RobertaSelfAttention(c));
  output = register_module("output", RobertaOutput(c.hidden_size, c.hidden_size, c));
}

RobertaIntermediateImpl::RobertaIntermediateImpl(const RobertaConfig& c) {
  dense = register_module("dense", nn::Linear(c.hidden_size, c.intermediate_size));
}

RobertaLayerImpl::RobertaLayerImpl(const RobertaConfig& c) {
  attention = register_module("attention", RobertaAttention(c));
  intermediate = register_module("intermediate", RobertaIntermediate(c));
  output = register_module("output", RobertaOutput(c.intermediate_size, c.hidden_size, c));
}

torch::Tensor RobertaLayerImpl::forward(const torch::Tensor& x, const torch::Tensor& mask, int64_t layer, Taps* taps) {
  const auto attended = attention->output(attention->self(x, mask, layer, taps), x);
  const auto inner = torch::gelu(intermediate->dense(attended));  // erf GELU, as HF's "gelu"
  return output(inner, attended);
}

RobertaEncoderImpl::RobertaEncoderImpl(const RobertaConfig& c) {
  layer = register_module("layer", nn::ModuleList());
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) layer->push_back(RobertaLayer(c));
}

RobertaModelImpl::RobertaModelImpl(const RobertaConfig& c) {
  embeddings = register_module("embeddings", RobertaEmbeddings(c));
  encoder = register_module("encoder", RobertaEncoder(c));
}

torch::Tensor RobertaModelImpl::forward(const torch::Tensor& input_ids, const torch::Tensor& attention_mask, Taps* taps) {
  auto h = embeddings(input_ids);
  tap(taps, site::kEmbedOut, 0, h);
  // additive mask as HF: 0 for tokens, the dtype's lowest value for padding keys
  const auto mask = (1.0 - attention_mask.to(h.scalar_type())).view({h.size(0), 1, 1, h.size(1)}) *
                    std::numeric_limits<float>::lowest();
  int64_t i = 0;
  for (const auto& module : *encoder->layer) {
    h = module->as<RobertaLayer>()->forward(h, mask, i, taps);
    tap(taps, site::kBlockOut, i, h);
    ++i;
  }
  return h;
}

RobertaClassificationHeadImpl::RobertaClassificationHeadImpl(const RobertaConfig& c) {
  dense = register_module("dense", nn::Linear(c.hidden_size, c.hidden_size));
  out_proj = register_module("out_proj", nn::Linear(c.hidden_size, c.num_labels));
  dropout = register_module("dropout", nn::Dropout(c.hidden_dropout_prob));
}

torch::Tensor RobertaClassificationHeadImpl::forward(const torch::Tensor& features, Taps* taps) {
  const auto first = features.select(1, 0);  // <s>
  tap(taps, site::kPooled, 0, first);
  return out_proj(dropout(torch::tanh(dense(dropout(first)))));
}

RobertaForSequenceClassificationImpl::RobertaForSequenceClassificationImpl(const RobertaConfig& c) {
  roberta = register_module("roberta", RobertaModel(c));
  classifier = register_module("classifier", RobertaClassificationHead(c));
}

torch::Tensor RobertaForSequenceClassificationImpl::forward(const torch::Tensor& input_ids,
                                                            const torch::Tensor& attention_mask, Taps* taps) {
  return classifier(roberta(input_ids, attention_mask, taps), taps);
}

RobertaLMHeadImpl::RobertaLMHeadImpl(const RobertaConfig& c) {
  dense = register_module("dense", nn::Linear(c.hidden_size, c.hidden_size));
  layer_norm = register_module("layer_norm", nn::LayerNorm(nn::LayerNormOptions({c.hidden_size}).eps(c.layer_norm_eps)));
  bias = register_parameter("bias", torch::zeros({c.vocab_size}));
}

torch::Tensor RobertaLMHeadImpl::forward(const torch::Tensor& features, const torch::Tensor& word_embeddings) {
  return torch::nn::functional::linear(layer_norm(torch::gelu(dense(features))), word_embeddings, bias);
}

RobertaForMaskedLMImpl::RobertaForMaskedLMImpl(const RobertaConfig& c) {
  roberta = register_module("roberta", RobertaModel(c));
  lm_head = register_module("lm_head", RobertaLMHead(c));
}

torch::Tensor RobertaForMaskedLMImpl::forward(const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                                              Taps* taps) {
  return lm_head(roberta(input_ids, attention_mask, taps), roberta->embeddings->word_embeddings->weight);
}

void load_hf_state(torch::nn::Module& model, const std::map<std::string, torch::Tensor>& tensors,
                   const std::string& origin, std::vector<std::string>* new_heads, bool reinit_mismatched) {
  auto is_head = [](const std::string& n) { return n.rfind("classifier.", 0) == 0 || n.rfind("lm_head.", 0) == 0; };
  static const std::set<std::string> kOptional = {"roberta.embeddings.position_ids", "lm_head.decoder.weight",
                                                  "lm_head.decoder.bias", "roberta.pooler.dense.weight",
                                                  "roberta.pooler.dense.bias"};
  const bool heads = new_heads != nullptr;
  StateRules rules;
  rules.may_be_missing = [&](const std::string& n) { return heads && is_head(n); };
  rules.may_differ = [&](const std::string& n) { return heads && reinit_mismatched && is_head(n); };
  rules.may_be_extra = [&](const std::string& n) { return kOptional.count(n) || (heads && is_head(n)); };  // another task's head
  std::vector<std::pair<std::string, torch::Tensor>> params;
  for (const auto& p : model.named_parameters()) params.emplace_back(p.key(), p.value());
  const auto fit = copy_state(params, tensors, "'" + origin + "' does not fit the model:", rules);
  if (heads) {
    new_heads->insert(new_heads->end(), fit.absent.begin(), fit.absent.end());
    new_heads->insert(new_heads->end(), fit.reshaped.begin(), fit.reshaped.end());
  }
}

}  // namespace attnscope::models
