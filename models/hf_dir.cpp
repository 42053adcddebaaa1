// Hugging Face model directories (models/hf_dir.h).
#include "models/hf_dir.h"

#include <algorithm>
#include <filesystem>

#include "core/core.h"
#include "models/safetensors.h"
#include "models/torch_pickle.h"

namespace attnscope::models {
namespace fs = std::filesystem;

torch::nn::Module& HfModel::module() {
  if (classifier) return *classifier;
  if (mlm) return *mlm;
  return *encoder;
}

RobertaModel& HfModel::roberta() {
  if (classifier) return classifier->roberta;
  if (mlm) return mlm->roberta;
  return encoder;
}

std::map<std::string, torch::Tensor> read_hf_weights(const std::string& dir) {
  const fs::path st = fs::path(dir) / "model.safetensors", bin = fs::path(dir) / "pytorch_model.bin";
  if (fs::exists(st)) return read_safetensors(st.string());
  if (fs::exists(bin)) return read_torch_state_dict(bin.string());
  throw UsageError("'" + dir + "' holds neither model.safetensors nor pytorch_model.bin");
}

namespace {
bool starts_with(const std::string& s, const char* prefix) { return s.rfind(prefix, 0) == 0; }

// The encoder's tensors under RobertaModel's own names (a bare RobertaModel's file has no
// "roberta." prefix; a model with a head has); the rest (pooler, an unknown head) in `unused`.
std::map<std::string, torch::Tensor> encoder_tensors(const std::map<std::string, torch::Tensor>& tensors,
                                                     std::vector<std::string>& unused) {
  std::map<std::string, torch::Tensor> out;
  for (const auto& [name, t] : tensors) {
    const std::string n = starts_with(name, "roberta.") ? name.substr(8) : name;
    if (n == "embeddings.position_ids") continue;  // a buffer transformers may save or not
    if (starts_with(n, "embeddings.") || starts_with(n, "encoder.")) {
      out[n] = t;
    } else if (!starts_with(n, "pooler.")) {
      unused.push_back(name);
    }
  }
  return out;
}
}  // namespace

HfModel load_hf_model(const std::string& dir, const std::string& architecture) {
  if (!fs::is_directory(dir)) throw UsageError("'" + dir + "' is not a directory (expected a Hugging Face model directory)");
  const std::string cfg_path = (fs::path(dir) / "config.json").string();
  if (!fs::exists(cfg_path)) throw UsageError("'" + dir + "' has no config.json");
  HfModel m;
  m.dir = dir;
  m.config = read_hf_config(cfg_path);
  const nlohmann::json j = read_json_file(cfg_path);
  if (j.contains("architectures") && j["architectures"].is_array() && !j["architectures"].empty() &&
      j["architectures"][0].is_string()) {
    m.declared = j["architectures"][0].get<std::string>();
  }
  const auto tensors = read_hf_weights(dir);
  check_config_fits(m.config, tensors, cfg_path);
  std::string arch = !architecture.empty() ? architecture : m.declared;
  if (arch.empty()) {  // no architecture named: the head the weights hold
    const bool cls = std::any_of(tensors.begin(), tensors.end(), [](const auto& t) { return starts_with(t.first, "classifier."); });
    const bool lm = std::any_of(tensors.begin(), tensors.end(), [](const auto& t) { return starts_with(t.first, "lm_head."); });
    arch = cls ? kRobertaClassifier : lm ? kRobertaMaskedLM : kRobertaEncoder;
  }
  if (arch != kRobertaClassifier && arch != kRobertaMaskedLM) {
    if (!starts_with(arch, "Roberta")) {
      throw UsageError("'" + cfg_path + "': architecture " + arch + " is not a RoBERTa model (expected " + kRobertaClassifier +
                       ", " + kRobertaMaskedLM + ", " + kRobertaEncoder + " or another Roberta* head, whose encoder is loaded)");
    }
    arch = kRobertaEncoder;
  }
  m.architecture = arch;
  if (arch == kRobertaEncoder) {
    m.encoder = RobertaModel(m.config);
    load_hf_state(m.module(), encoder_tensors(tensors, m.unused), dir);
  } else {
    if (arch == kRobertaClassifier) m.classifier = RobertaForSequenceClassification(m.config);
    else m.mlm = RobertaForMaskedLM(m.config);
    load_hf_state(m.module(), tensors, dir, &m.new_heads);
  }
  m.module().eval();
  return m;
}

HfModel build_roberta(const RobertaConfig& config, const std::string& architecture) {
  HfModel m;
  m.config = config;
  m.architecture = architecture;
  m.declared = architecture;
  if (architecture == kRobertaClassifier) {
    m.classifier = RobertaForSequenceClassification(config);
  } else if (architecture == kRobertaMaskedLM) {
    m.mlm = RobertaForMaskedLM(config);
  } else {
    m.encoder = RobertaModel(config);
  }
  return m;
}

std::string hf_config_json(const RobertaConfig& c, const std::string& architecture) {
  nlohmann::json cfg = {{"architectures", {architecture}},
                        {"model_type", "roberta"},
                        {"vocab_size", c.vocab_size},
                        {"hidden_size", c.hidden_size},
                        {"num_hidden_layers", c.num_hidden_layers},
                        {"num_attention_heads", c.num_attention_heads},
                        {"intermediate_size", c.intermediate_size},
                        {"hidden_act", "gelu"},
                        {"hidden_dropout_prob", c.hidden_dropout_prob},
                        {"attention_probs_dropout_prob", c.attention_probs_dropout_prob},
                        {"max_position_embeddings", c.max_position_embeddings},
                        {"type_vocab_size", c.type_vocab_size},
                        {"initializer_range", 0.02},
                        {"layer_norm_eps", c.layer_norm_eps},
                        {"pad_token_id", c.pad_token_id},
                        {"bos_token_id", 0},
                        {"eos_token_id", 2},
                        {"position_embedding_type", "absolute"},
                        {"classifier_dropout", nullptr},
                        {"use_cache", true}};
  // transformers writes the labels of every model (2 by default); a classifier's are its head's
  const int64_t labels = architecture == kRobertaClassifier ? c.num_labels : 2;
  nlohmann::json id2label = nlohmann::json::object(), label2id = nlohmann::json::object();
  for (int64_t i = 0; i < labels; ++i) {
    const std::string name = architecture == kRobertaClassifier ? c.label(i) : "LABEL_" + std::to_string(i);
    id2label[std::to_string(i)] = name;
    label2id[name] = i;
  }
  if (architecture == kRobertaClassifier && !c.label2id.empty()) {
    label2id = nlohmann::json::object();
    for (const auto& [name, id] : c.label2id) label2id[name] = id;
  }
  cfg["id2label"] = id2label;
  cfg["label2id"] = label2id;
  if (architecture == kRobertaClassifier && !c.problem_type.empty()) cfg["problem_type"] = c.problem_type;
  return cfg.dump(2) + "\n";
}

void export_hf_model(torch::nn::Module& model, const RobertaConfig& c, const std::string& architecture,
                     const std::string& tokenizer_dir, const std::string& out_dir) {
  if (!fs::exists(fs::path(tokenizer_dir) / "vocab.json")) {
    throw UsageError("export: '" + tokenizer_dir + "' has no vocab.json (the tokenizer to ship with the model)");
  }
  const bool bpe = fs::exists(fs::path(tokenizer_dir) / "merges.txt");
  fs::create_directories(out_dir);
  std::map<std::string, torch::Tensor> tensors;
  for (const auto& p : model.named_parameters()) tensors[p.key()] = p.value().detach().contiguous();
  for (const auto& b : model.named_buffers()) tensors[b.key()] = b.value().detach().contiguous();
  const std::string tmp = (fs::path(out_dir) / "model.safetensors.part").string();
  write_safetensors(tmp, tensors, {{"format", "pt"}});
  fs::rename(tmp, fs::path(out_dir) / "model.safetensors");
  write_file_atomic((fs::path(out_dir) / "config.json").string(), hf_config_json(c, architecture));
  for (const char* f : {"vocab.json", "merges.txt"}) {
    if (!bpe && std::string(f) == "merges.txt") continue;
    write_file_atomic((fs::path(out_dir) / f).string(), read_file((fs::path(tokenizer_dir) / f).string()));
  }
  const nlohmann::json special = {{"bos_token", "<s>"}, {"eos_token", "</s>"}, {"unk_token", "<unk>"},
                                  {"sep_token", "</s>"}, {"pad_token", "<pad>"}, {"cls_token", "<s>"},
                                  {"mask_token", "<mask>"}};
  nlohmann::json tok = special;
  tok["tokenizer_class"] = "RobertaTokenizer";
  if (!bpe) {  // attnscope's atom-level SMILES tokenizer
    tok.erase("tokenizer_class");
    tok["attnscope_tokenizer"] = "smiles-regex";
    tok["note"] = "atom-level SMILES regex tokenizer (vocab.json); transformers has no equivalent class: tokenize with "
                  "attnscope tokenize, or split SMILES with the Molecular Transformer pattern and map tokens by vocab.json";
  }
  tok["model_max_length"] = c.max_position_embeddings - c.pad_token_id - 1;
  tok["add_prefix_space"] = false;
  tok["trim_offsets"] = true;
  tok["errors"] = "replace";
  write_file_atomic((fs::path(out_dir) / "tokenizer_config.json").string(), tok.dump(2) + "\n");
  write_file_atomic((fs::path(out_dir) / "special_tokens_map.json").string(), special.dump(2) + "\n");
}

}  // namespace attnscope::models
