// Model configurations: config.json of every family (models/config.h).
#include "models/config.h"

#include <nlohmann/json.hpp>

#include <cmath>
#include <sstream>

#include "core/core.h"

namespace attnscope::models {

namespace {
// id2label / label2id / num_labels / problem_type, as transformers' PretrainedConfig.__init__.
void read_labels(const nlohmann::json& j, TransformerConfig& c, std::vector<std::string>& problems) {
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

const std::vector<std::string>& known_model_types() {
  static const std::vector<std::string> types = {"roberta", "bert", "gpt2"};
  return types;
}

TransformerConfig default_config(const std::string& model_type) {
  TransformerConfig c;
  c.model_type = model_type;
  if (model_type == "bert") {  // transformers' BertConfig
    c.vocab_size = 30522;
    c.max_position_embeddings = 512;
    c.type_vocab_size = 2;
    c.pad_token_id = 0;
    c.bos_token_id = c.eos_token_id = -1;
    c.layer_norm_eps = 1e-12;
    c.num_hidden_layers = 12;
  } else if (model_type == "gpt2") {  // transformers' GPT2Config
    c.vocab_size = 50257;
    c.max_position_embeddings = 1024;
    c.type_vocab_size = 0;
    c.pad_token_id = -1;
    c.bos_token_id = c.eos_token_id = 50256;
    c.num_hidden_layers = 12;
    c.hidden_act = "gelu_new";
  }
  return c;
}

std::string TransformerConfig::label(int64_t id) const {
  const auto i = static_cast<size_t>(id);
  return i < id2label.size() && !id2label[i].empty() ? id2label[i] : "LABEL_" + std::to_string(id);
}

std::string effective_problem_type(const TransformerConfig& c) {
  if (!c.problem_type.empty()) return c.problem_type;
  return c.num_labels == 1 ? "regression" : "single_label_classification";
}

int64_t max_tokens(const TransformerConfig& c) {
  return c.model_type == "roberta" ? c.max_position_embeddings - c.pad_token_id - 1 : c.max_position_embeddings;
}

namespace {
// The config.json keys of a family, by field: BERT and RoBERTa use transformers' BertConfig
// names, GPT-2 its own.
struct Keys {
  const char *hidden, *layers, *heads, *inner, *positions, *eps, *resid_drop, *attn_drop, *act;
};
Keys keys_of(const std::string& model_type) {
  if (model_type == "gpt2") {
    return {"n_embd", "n_layer", "n_head", "n_inner", "n_positions", "layer_norm_epsilon", "resid_pdrop", "attn_pdrop",
            "activation_function"};
  }
  return {"hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "max_position_embeddings",
          "layer_norm_eps", "hidden_dropout_prob", "attention_probs_dropout_prob", "hidden_act"};
}
}  // namespace

TransformerConfig read_hf_config(const std::string& path) {
  const nlohmann::json j = read_json_file(path);
  if (!j.is_object()) throw UsageError("'" + path + "': expected a JSON object (a Hugging Face config.json)");
  std::vector<std::string> problems;
  std::string type = "roberta";  // attnscope's first family; a config.json without model_type is ChemBERTa's
  if (j.contains("model_type")) {
    const auto& t = j["model_type"];
    const auto& known = known_model_types();
    if (!t.is_string() || std::find(known.begin(), known.end(), t.get<std::string>()) == known.end()) {
      throw UsageError("'" + path + "': model_type " + t.dump().substr(0, 40) + " is not supported (supported: " +
                       join(known) + ")");
    }
    type = t.get<std::string>();
  }
  TransformerConfig c = default_config(type);
  const Keys k = keys_of(type);
  // Every value is range-checked before anything is sized by it (all problems at once).
  auto get_int = [&](const char* key, int64_t& field, int64_t min, int64_t max, bool nullable = false) {
    if (!j.contains(key) || (nullable && j[key].is_null())) return;
    const auto& v = j[key];
    if (!v.is_number_integer() || v.get<double>() < static_cast<double>(min) || v.get<double>() > static_cast<double>(max)) {
      problems.push_back(std::string(key) + ": expected an integer in " + std::to_string(min) + ".." + std::to_string(max) +
                         (nullable ? " or null" : "") + ", got " + v.dump().substr(0, 40));
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
  auto get_bool = [&](const char* key, bool& field) {
    if (!j.contains(key)) return;
    if (!j[key].is_boolean()) problems.push_back(std::string(key) + ": expected true or false, got " + j[key].dump().substr(0, 40));
    else field = j[key].get<bool>();
  };
  get_int("vocab_size", c.vocab_size, 1, 1 << 24);
  get_int(k.hidden, c.hidden_size, 1, 1 << 16);
  get_int(k.layers, c.num_hidden_layers, 1, 1024);
  get_int(k.heads, c.num_attention_heads, 1, 4096);
  if (type == "gpt2") c.intermediate_size = 4 * c.hidden_size;  // n_inner null
  get_int(k.inner, c.intermediate_size, 1, 1 << 20, type == "gpt2");
  get_int(k.positions, c.max_position_embeddings, type == "roberta" ? 4 : 2, 1 << 20);
  if (type != "gpt2") get_int("type_vocab_size", c.type_vocab_size, 1, 1 << 16);
  get_int("pad_token_id", c.pad_token_id, 0, (1 << 24) - 1, type == "gpt2");
  get_int("bos_token_id", c.bos_token_id, 0, (1 << 24) - 1, true);
  get_int("eos_token_id", c.eos_token_id, 0, (1 << 24) - 1, true);
  get_double(k.eps, c.layer_norm_eps, 0, 1, true, "in (0, 1)");
  get_double(k.resid_drop, c.hidden_dropout_prob, 0, 1, false, "in [0, 1)");
  get_double(k.attn_drop, c.attention_probs_dropout_prob, 0, 1, false, "in [0, 1)");
  c.embedding_dropout = c.hidden_dropout_prob;
  if (type == "gpt2") get_double("embd_pdrop", c.embedding_dropout, 0, 1, false, "in [0, 1)");
  else get_double("classifier_dropout", c.classifier_dropout, 0, 1, false, "in [0, 1) or null");
  if (j.contains(k.act)) {
    const auto& a = j[k.act];
    if (!a.is_string() || (a != "gelu" && a != "gelu_new" && a != "relu")) {
      problems.push_back(std::string(k.act) + ": expected \"gelu\" (erf), \"gelu_new\" (tanh) or \"relu\", got " +
                         a.dump().substr(0, 40));
    } else {
      c.hidden_act = a.get<std::string>();
    }
  }
  if (type == "gpt2") {
    get_bool("scale_attn_by_inverse_layer_idx", c.scale_attn_by_inverse_layer_idx);
    bool scaled = true;
    get_bool("scale_attn_weights", scaled);
    if (!scaled) problems.push_back("scale_attn_weights: only true (scores divided by sqrt(head size)) is supported");
    get_bool("attnscope_attn_only", c.attn_only);
    if (j.contains("attnscope_position_embedding")) {
      const auto& pe = j["attnscope_position_embedding"];
      if (pe != "absolute" && pe != "rotary") {
        problems.push_back("attnscope_position_embedding: expected \"absolute\" or \"rotary\", got " + pe.dump().substr(0, 40));
      } else {
        c.position_embedding = pe.get<std::string>();
      }
    }
  }
  read_labels(j, c, problems);
  if (c.num_labels > (1 << 20)) problems.push_back("id2label / num_labels: " + std::to_string(c.num_labels) + " labels (at most 1048576)");
  if (j.contains("position_embedding_type") && j["position_embedding_type"] != "absolute") {
    problems.push_back("position_embedding_type: only \"absolute\" is supported, got " + j["position_embedding_type"].dump().substr(0, 40));
  }
  if (c.hidden_size % c.num_attention_heads != 0) {
    problems.push_back(std::string(k.hidden) + " " + std::to_string(c.hidden_size) + " is not a multiple of " + k.heads +
                       " " + std::to_string(c.num_attention_heads));
  }
  if (c.pad_token_id >= c.vocab_size) {
    problems.push_back("pad_token_id " + std::to_string(c.pad_token_id) + " is not a token id (vocab_size " +
                       std::to_string(c.vocab_size) + ")");
  }
  if (type == "roberta" && max_tokens(c) < 3) {  // RoBERTa's positions start at pad_token_id + 1
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
      << " GiB of float32); attnscope loads at most 4 billion: check vocab_size, " << k.hidden << ", " << k.layers << ", "
      << k.inner << ", " << k.positions;
    problems.push_back(m.str());
  }
  if (!problems.empty()) {
    throw UsageError(problem_list("'" + path + "' is not a usable " + type + " config:", problems));
  }
  return c;
}

// The config's sizes against the tensors a weight file holds, before a model is built from it.
void check_config_fits(const TransformerConfig& c, const std::map<std::string, torch::Tensor>& tensors, const std::string& config_path) {
  const bool gpt2 = c.model_type == "gpt2";
  const Keys k = keys_of(c.model_type);
  std::vector<std::string> problems;
  auto find = [&](const std::string& name) -> const torch::Tensor* {
    for (const char* prefix : {"roberta.", "bert.", "transformer.", ""}) {
      const auto it = tensors.find(prefix + name);
      if (it != tensors.end()) return &it->second;
    }
    return nullptr;
  };
  // a [rows, hidden] matrix (GPT-2's Conv1D c_fc is [hidden, inner]: `transposed`)
  auto expect = [&](const std::string& name, int64_t rows, const char* key, bool transposed = false) {
    const auto* t = find(name);
    if (t == nullptr) return;  // the strict load names missing tensors
    const int64_t r = transposed ? c.hidden_size : rows, cols = transposed ? rows : c.hidden_size;
    if (t->dim() != 2 || t->size(0) != r || t->size(1) != cols) {
      std::ostringstream m;
      m << key << " " << rows << " and " << k.hidden << " " << c.hidden_size << " say " << name << " is [" << r << ","
        << cols << "]; the weights hold " << t->sizes();
      problems.push_back(m.str());
    }
  };
  const std::string layer_prefix = gpt2 ? "h." : "encoder.layer.";
  if (gpt2) {
    expect("wte.weight", c.vocab_size, "vocab_size");
    expect("wpe.weight", c.max_position_embeddings, k.positions);
    expect("h.0.mlp.c_fc.weight", c.intermediate_size, k.inner, true);
  } else {
    expect("embeddings.word_embeddings.weight", c.vocab_size, "vocab_size");
    expect("embeddings.position_embeddings.weight", c.max_position_embeddings, k.positions);
    expect("embeddings.token_type_embeddings.weight", c.type_vocab_size, "type_vocab_size");
    expect("encoder.layer.0.intermediate.dense.weight", c.intermediate_size, k.inner);
  }
  int64_t layers = 0;
  for (const auto& [name, t] : tensors) {
    auto at = name.find(layer_prefix);
    if (at == std::string::npos || (at != 0 && name[at - 1] != '.')) continue;
    try {
      layers = std::max<int64_t>(layers, std::min<int64_t>(std::stoll(name.substr(at + layer_prefix.size())), 1 << 30) + 1);
    } catch (const std::exception&) {
    }
  }
  if (layers != 0 && layers != c.num_hidden_layers) {
    problems.push_back(std::string(k.layers) + " " + std::to_string(c.num_hidden_layers) + ", but the weights hold " +
                       std::to_string(layers) + " layers");
  }
  if (!problems.empty()) {
    throw UsageError(problem_list("'" + config_path + "' does not describe the weights beside it:", problems));
  }
}

}  // namespace attnscope::models
