// tokenize / predict / export (cli/model_commands.h).
#include "cli/model_commands.h"

#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/files.h"
#include "core/log.h"
#include "data/bpe_tokenizer.h"
#include "core/json.h"
#include "data/smiles_tokenizer.h"
#include "models/hf_dir.h"
#include "train/checkpoint.h"

namespace attnscope::cli {
namespace fs = std::filesystem;

namespace {

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\r\n"), e = s.find_last_not_of(" \t\r\n");
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

// One CSV record's fields (double-quoted fields may hold commas; "" is a quote).
std::vector<std::string> csv_fields(const std::string& line) {
  std::vector<std::string> out(1);
  bool quoted = false;
  for (size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (quoted) {
      if (c == '"' && i + 1 < line.size() && line[i + 1] == '"') {
        out.back() += '"';
        ++i;
      } else if (c == '"') {
        quoted = false;
      } else {
        out.back() += c;
      }
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      out.emplace_back();
    } else {
      out.back() += c;
    }
  }
  for (auto& f : out) f = trim(f);
  return out;
}

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// The model directory's positions limit: max_position_embeddings - pad_id - 1 tokens (<s>, </s> included).
int64_t positions_limit(const std::string& dir) {
  const auto cfg = fs::path(dir) / "config.json";
  if (!fs::exists(cfg)) return 0;
  const auto c = models::read_hf_config(cfg.string());
  return c.max_position_embeddings - c.pad_token_id - 1;
}

void check_tokenizer_dir(const std::string& dir) {
  for (const char* f : {"vocab.json", "merges.txt"}) {
    if (!fs::exists(fs::path(dir) / f)) {
      throw UsageError("--model '" + dir + "' has no " + f + " (expected a Hugging Face model directory)");
    }
  }
}

// Encodes every SMILES, applying the length policy; warns about unknown pieces.
template <class Tok>
std::vector<std::vector<int64_t>> encode_all(const Tok& tok, const std::vector<std::string>& smiles, int64_t limit,
                                             const std::string& too_long) {
  std::vector<std::vector<int64_t>> out;
  int64_t truncated = 0;
  for (size_t i = 0; i < smiles.size(); ++i) {
    auto full = tok.encode(smiles[i], 0);
    if (limit > 0 && static_cast<int64_t>(full.size()) > limit) {
      if (too_long == "error") {
        throw UsageError("SMILES " + std::to_string(i + 1) + " ('" + smiles[i].substr(0, 60) + "') has " +
                         std::to_string(full.size()) + " tokens; the model takes at most " + std::to_string(limit) +
                         " (use --too-long truncate to cut it)");
      }
      if (++truncated <= 5) {
        log::warn("SMILES " + std::to_string(i + 1) + " ('" + smiles[i].substr(0, 60) + "...') has " +
                  std::to_string(full.size()) + " tokens; truncated to the model's " + std::to_string(limit));
      }
      full = tok.encode(smiles[i], limit);
    }
    const auto unk = std::count(full.begin(), full.end(), tok.unk_id());
    if (unk > 0) {
      log::warn("SMILES " + std::to_string(i + 1) + " ('" + smiles[i].substr(0, 60) + "'): " + std::to_string(unk) +
                " piece(s) outside the vocabulary, encoded as <unk>");
    }
    out.push_back(std::move(full));
  }
  if (truncated > 5) log::warn(std::to_string(truncated) + " SMILES truncated in all");
  return out;
}

// A model to run on SMILES: a Hugging Face directory, an attnscope molecule run directory (its
// best checkpoint, else last) or one of its checkpoints.
struct Loaded {
  models::RobertaConfig config;
  std::string architecture = "RobertaForSequenceClassification", problem_type, tokenizer_dir, origin;
  models::RobertaForSequenceClassification classifier{nullptr};
  models::HfModel hf;  // for Hugging Face directories
  std::unique_ptr<data::BpeTokenizer> bpe;
  std::unique_ptr<data::SmilesTokenizer> regex;
  std::vector<double> mean, stdev;  // regression targets of a run: outputs in original units
  std::vector<int64_t> encode(const std::string& s, int64_t max_len) const {
    return bpe ? bpe->encode(s, max_len) : regex->encode(s, max_len);
  }
  int64_t unk_id() const { return bpe ? bpe->unk_id() : data::SmilesTokenizer::kUnk; }
  int64_t pad_id() const { return bpe ? bpe->pad_id() : data::SmilesTokenizer::kPad; }
};

Loaded load_model(const std::string& path) {
  Loaded m;
  fs::path run, ckpt;
  if (fs::is_regular_file(path) && fs::path(path).extension() == ".pt") {
    ckpt = path;
    run = fs::path(path).parent_path().parent_path();
  } else if (train::is_run_dir(path)) {
    run = path;
    ckpt = train::run_checkpoint(run.string());
  }
  if (!run.empty()) {  // an attnscope run
    if (!fs::exists(ckpt)) throw UsageError("--model '" + path + "': no checkpoint at '" + ckpt.string() + "'");
    if (!fs::exists(run / "config.json") || !fs::exists(run / "targets.json")) {
      throw UsageError("--model '" + path + "' is not a molecule run (no config.json / targets.json beside its checkpoints)");
    }
    m.origin = ckpt.string();
    m.config = models::read_hf_config((run / "config.json").string());
    const auto t = read_json_file((run / "targets.json").string());
    const std::string task = t.value("task", std::string());
    if (task == "mlm") {  // a pretraining run: its masked-LM (export, tokenize; predict refuses it)
      m.architecture = "RobertaForMaskedLM";
      m.hf.architecture = m.architecture;
      m.hf.config = m.config;
      m.hf.mlm = models::RobertaForMaskedLM(m.config);
      train::load_checkpoint(ckpt.string(), *m.hf.mlm, nullptr, false);
      m.hf.mlm->eval();
    } else {
      m.classifier = models::RobertaForSequenceClassification(m.config);
      train::load_checkpoint(ckpt.string(), *m.classifier, nullptr, false);
      m.classifier->eval();
    }
    m.tokenizer_dir = run.string();
    if (fs::exists(run / "merges.txt")) {
      m.bpe = std::make_unique<data::BpeTokenizer>(data::BpeTokenizer::from_dir(run.string()));
    } else {
      m.regex = std::make_unique<data::SmilesTokenizer>(data::SmilesTokenizer::load((run / "vocab.json").string()));
    }
    if (task == "regression") {
      m.problem_type = "regression";
      m.mean = t.at("mean").get<std::vector<double>>();
      m.stdev = t.at("std").get<std::vector<double>>();
    } else if (task == "multiclass") {
      m.problem_type = "single_label_classification";
    } else if (task != "mlm") {
      m.problem_type = "multi_label_classification";
    }
    return m;
  }
  if (!fs::is_directory(path)) {
    throw UsageError("--model '" + path + "': expected a Hugging Face model directory, an attnscope run directory or "
                     "a checkpoint (.pt)");
  }
  check_tokenizer_dir(path);
  m.hf = models::load_hf_model(path);
  m.origin = path;
  m.config = m.hf.config;
  m.architecture = m.hf.architecture;
  m.problem_type = m.hf.problem_type;
  m.classifier = m.hf.classifier;
  m.tokenizer_dir = path;
  m.bpe = std::make_unique<data::BpeTokenizer>(data::BpeTokenizer::from_dir(path));
  return m;
}

}  // namespace

std::vector<std::string> read_smiles(const SmilesInput& in) {
  if (in.smiles.empty() == in.file.empty()) throw UsageError("give SMILES with --smiles S ... or --smiles-file FILE (one of them)");
  if (!in.file.empty()) {
    std::ifstream f(in.file);
    if (!f) throw UsageError("cannot read --smiles-file '" + in.file + "'");
    std::vector<std::string> lines;
    for (std::string line; std::getline(f, line);) lines.push_back(line);
    std::vector<std::string> out;
    if (!lines.empty() && (lines[0].find(',') != std::string::npos || lower(trim(lines[0])) == "smiles")) {  // CSV
      const auto header = csv_fields(lines[0]);
      size_t col = header.size();
      for (size_t i = 0; i < header.size(); ++i) {
        if (lower(header[i]) == "smiles") col = i;
      }
      if (col == header.size()) {
        std::string names;
        for (const auto& h : header) names += (names.empty() ? "" : ", ") + h;
        throw UsageError("'" + in.file + "' line 1: no 'smiles' column (columns: " + names + ")");
      }
      for (size_t i = 1; i < lines.size(); ++i) {
        if (trim(lines[i]).empty()) continue;
        const auto fields = csv_fields(lines[i]);
        if (fields.size() <= col || fields[col].empty()) {
          throw UsageError("'" + in.file + "' line " + std::to_string(i + 1) + ": no SMILES in column '" + header[col] + "'");
        }
        out.push_back(fields[col]);
      }
    } else {
      for (const auto& l : lines) {
        const auto s = trim(l);
        if (!s.empty()) out.push_back(s);
      }
    }
    if (out.empty()) throw UsageError("'" + in.file + "' holds no SMILES");
    return out;
  }
  std::vector<std::string> out;
  for (const auto& s : in.smiles) out.push_back(trim(s));
  return out;
}

int tokenize_command(const TokenizeArgs& a) {
  // a Hugging Face directory / BPE run (vocab.json + merges.txt) or an atom-level run (vocab.json)
  const bool bpe = fs::exists(fs::path(a.model) / "merges.txt");
  if (!fs::exists(fs::path(a.model) / "vocab.json")) {
    throw UsageError("--model '" + a.model + "' has no vocab.json (expected a Hugging Face model directory or a molecule run)");
  }
  const auto smiles = read_smiles(a.input);
  std::unique_ptr<data::BpeTokenizer> tok;
  std::unique_ptr<data::SmilesTokenizer> regex;
  if (bpe) {
    tok = std::make_unique<data::BpeTokenizer>(data::BpeTokenizer::from_dir(a.model));
  } else {
    regex = std::make_unique<data::SmilesTokenizer>(data::SmilesTokenizer::load((fs::path(a.model) / "vocab.json").string()));
  }
  const int64_t limit = a.max_len > 0 ? a.max_len : positions_limit(a.model);
  for (const auto& s : smiles) {
    std::vector<std::pair<int64_t, int64_t>> spans;
    std::vector<std::string> pieces;
    if (tok) {
      pieces = tok->tokenize(s, &spans);
    } else {
      for (auto id : regex->encode(s, 0, &spans)) pieces.push_back(regex->id_token(id));
      pieces = std::vector<std::string>(pieces.begin() + 1, pieces.end() - 1);  // without <s> ... </s>
    }
    const int64_t bos = tok ? tok->bos_id() : data::SmilesTokenizer::kBos, eos = tok ? tok->eos_id() : data::SmilesTokenizer::kEos;
    nlohmann::json tokens = {"<s>"}, ids = {bos}, sp = {nullptr};
    const size_t keep = limit > 0 ? std::min<size_t>(pieces.size(), static_cast<size_t>(std::max<int64_t>(0, limit - 2)))
                                  : pieces.size();
    for (size_t i = 0; i < keep; ++i) {
      tokens.push_back(pieces[i]);
      ids.push_back(tok ? tok->token_id(pieces[i]) : regex->token_id(pieces[i]));
      sp.push_back({spans[i].first, spans[i].second});
    }
    tokens.push_back("</s>");
    ids.push_back(eos);
    sp.push_back(nullptr);
    nlohmann::json line = {{"smiles", s}, {"tokens", tokens}, {"input_ids", ids}, {"spans", sp}};
    if (keep < pieces.size()) line["truncated"] = true;
    std::cout << line.dump() << "\n";
  }
  return 0;
}

int predict_command(const PredictArgs& a) {
  if (a.too_long != "truncate" && a.too_long != "error") throw UsageError("--too-long must be truncate or error");
  if (a.batch < 1) throw UsageError("--batch must be >= 1");
  const auto smiles = read_smiles(a.input);
  auto m = load_model(a.model);
  if (!m.classifier) {
    throw UsageError("--model '" + a.model + "' is a " + m.architecture +
                     "; predict needs a sequence regression / classification model");
  }
  if (!m.hf.new_heads.empty()) {
    throw UsageError("--model '" + a.model + "' has no trained task head (missing: " + m.hf.new_heads.front() +
                     ", ...): its predictions would come from a random initialisation");
  }
  const auto ids = encode_all(m, smiles, m.config.max_position_embeddings - m.config.pad_token_id - 1, a.too_long);
  torch::NoGradGuard no_grad;
  std::ostringstream csv;
  csv << "smiles";
  for (int64_t k = 0; k < m.config.num_labels; ++k) csv << ",output_" << k;
  csv << "\n";
  csv.precision(7);
  for (size_t b = 0; b < ids.size(); b += static_cast<size_t>(a.batch)) {
    const size_t e = std::min(ids.size(), b + static_cast<size_t>(a.batch));
    size_t T = 0;
    for (size_t i = b; i < e; ++i) T = std::max(T, ids[i].size());
    auto input = torch::full({static_cast<int64_t>(e - b), static_cast<int64_t>(T)}, m.pad_id(), torch::kLong);
    auto mask = torch::zeros_like(input);
    for (size_t i = b; i < e; ++i) {
      for (size_t t = 0; t < ids[i].size(); ++t) {
        input[i - b][t] = ids[i][t];
        mask[i - b][t] = 1;
      }
    }
    const auto out = m.classifier->forward(input, mask).to(torch::kDouble).contiguous();
    for (size_t i = b; i < e; ++i) {
      const bool quote = smiles[i].find(',') != std::string::npos || smiles[i].find('"') != std::string::npos;
      csv << (quote ? "\"" + smiles[i] + "\"" : smiles[i]);
      for (int64_t k = 0; k < m.config.num_labels; ++k) {
        double v = out[i - b][k].item<double>();
        if (!m.mean.empty()) v = v * m.stdev[k] + m.mean[k];  // a run's regression: original units
        csv << "," << v;
      }
      csv << "\n";
    }
  }
  if (a.output.empty()) {
    std::cout << csv.str();
  } else {
    write_file_atomic(a.output, csv.str());
    log::info("predict: " + std::to_string(smiles.size()) + " SMILES -> " + a.output);
  }
  return 0;
}

int export_command(const ExportArgs& a) {
  if (fs::exists(a.hf) && !fs::is_empty(a.hf)) throw UsageError("--hf '" + a.hf + "' exists and is not empty; not overwriting it");
  auto m = load_model(a.model);
  torch::nn::Module& module = m.classifier ? static_cast<torch::nn::Module&>(*m.classifier) : m.hf.module();
  models::export_hf_model(module, m.config, m.architecture, m.problem_type, m.tokenizer_dir, a.hf);
  std::cout << "exported " << m.architecture << " from " << m.origin << " to " << a.hf << " (config.json, model.safetensors, "
            << (m.bpe ? "vocab.json, merges.txt" : "vocab.json of the atom-level SMILES tokenizer, which transformers "
                                                 "has no class for")
            << ", tokenizer_config.json, special_tokens_map.json)\n";
  if (!m.mean.empty()) {
    std::cout << "note: the regression head outputs standardised targets; original units = output * std + mean "
                 "with std/mean from " << m.tokenizer_dir << "/targets.json\n";
  }
  return 0;
}

}  // namespace attnscope::cli
