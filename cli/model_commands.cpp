// tokenize / predict / export (cli/model_commands.h).
#include "cli/model_commands.h"

#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "core/core.h"
#include "data/data.h"
#include "models/models.h"
#include "train/train.h"

namespace attnscope::cli {
namespace fs = std::filesystem;

namespace {

// A CSV field, quoted when it holds a comma, a quote or a line break.
std::string csv_field(const std::string& v) {
  if (v.find_first_of(",\"\n\r") == std::string::npos) return v;
  std::string q = "\"";
  for (char c : v) q += c == '"' ? std::string("\"\"") : std::string(1, c);
  return q + "\"";
}

std::string preview(const std::string& smiles) { return smiles.size() > 60 ? smiles.substr(0, 57) + "..." : smiles; }

// Encodes every input for the model, applying the length policy; warns about unknown pieces.
std::vector<std::vector<int64_t>> encode_all(const data::Tokenizer& tok, const std::vector<std::string>& smiles,
                                             int64_t limit, const std::string& too_long, const std::string& noun) {
  std::vector<std::vector<int64_t>> out;
  int64_t truncated = 0;
  for (size_t i = 0; i < smiles.size(); ++i) {
    auto full = tok.encode(smiles[i], 0);
    if (limit > 0 && static_cast<int64_t>(full.size()) > limit) {
      if (too_long == "error") {
        throw UsageError(noun + " " + std::to_string(i + 1) + " ('" + preview(smiles[i]) + "') has " +
                         std::to_string(full.size()) + " tokens; the model takes at most " + std::to_string(limit) +
                         " (use --too-long truncate to cut it)");
      }
      if (++truncated <= 5) {
        log::warn(noun + " " + std::to_string(i + 1) + " ('" + preview(smiles[i]) + "') has " +
                  std::to_string(full.size()) + " tokens; truncated to the model's " + std::to_string(limit));
      }
      full = tok.encode(smiles[i], limit);
    }
    const auto unk = std::count(full.begin(), full.end(), tok.unk_id());
    if (unk > 0) {
      log::warn(noun + " " + std::to_string(i + 1) + " ('" + preview(smiles[i]) + "'): " + std::to_string(unk) +
                " piece(s) outside the vocabulary, encoded as <unk>");
    }
    out.push_back(std::move(full));
  }
  if (truncated > 5) log::warn(std::to_string(truncated) + " " + noun + " inputs truncated in all");
  return out;
}

}  // namespace

std::vector<std::string> read_smiles(const SmilesInput& in) {
  const int given = !in.smiles.empty() + !in.file.empty() + !in.text.empty() + !in.text_file.empty();
  if (given != 1) {
    throw UsageError("give the inputs with one of --smiles S ..., --smiles-file FILE, --text S ... or --text-file FILE");
  }
  if (in.max_input_chars < 1) throw UsageError("--max-input-chars must be >= 1");
  std::vector<std::string> out;
  std::string source;  // how a message names the inputs
  if (!in.file.empty() || !in.text_file.empty()) {  // the readers check that files are UTF-8
    const std::string& path = !in.file.empty() ? in.file : in.text_file;
    out = !in.file.empty() ? data::read_smiles_corpus(path, "smiles", /*every_row=*/true) : data::read_text_corpus(path, "");
    source = "'" + path + "' input";
  } else {
    const auto& given = in.is_text() ? in.text : in.smiles;
    source = in.is_text() ? "--text" : "--smiles";
    for (size_t i = 0; i < given.size(); ++i) {
      check_utf8(given[i], given.size() > 1 ? source + " input " + std::to_string(i + 1) : source);
      out.push_back(in.is_text() ? given[i] : trim(given[i]));  // text as given: spaces are tokens to GPT-2
    }
    source += " input";
  }
  for (size_t i = 0; i < out.size(); ++i) {
    const int64_t chars = utf8_chars(out[i]);
    if (chars > in.max_input_chars) {
      throw UsageError(source + " " + std::to_string(i + 1) + " has " + std::to_string(chars) + " characters; the limit is " +
                       std::to_string(in.max_input_chars) + " (--max-input-chars N raises it)");
    }
  }
  return out;
}

int tokenize_command(const TokenizeArgs& a) {
  // a Hugging Face model or tokenizer directory, a run or one of its checkpoints
  const std::string dir = models::model_files_dir(a.model);
  if (!models::has_tokenizer(dir)) {
    throw UsageError("--model '" + a.model + "' has no tokenizer files (vocab.json, vocab.txt; expected a Hugging Face "
                     "model or tokenizer directory, a run or one of its checkpoints)");
  }
  const auto tok_ptr = data::load_tokenizer(dir);
  const auto& tok = *tok_ptr;
  const int64_t specials = static_cast<int64_t>(tok.encode("").size());
  if (a.max_len < 0 || (a.max_len > 0 && a.max_len < std::max<int64_t>(1, specials))) {
    throw UsageError("--max-len must be >= " + std::to_string(std::max<int64_t>(1, specials)) + " (the special tokens count)");
  }
  const auto inputs = read_smiles(a.input);
  const std::string noun = a.input.noun();
  // the model's positions, when its config.json is there: the limit of --truncate, and the
  // length above which transformers' tokenizer warns
  int64_t positions = 0;
  if (fs::exists(RunDir{dir}.model_config())) positions = models::max_tokens(models::read_hf_config(RunDir{dir}.model_config()));
  if (a.truncate && a.max_len == 0 && positions == 0) {
    throw UsageError("--truncate: '" + dir + "' has no config.json to read the model's positions from; give --max-len N");
  }
  const int64_t limit = a.max_len > 0 ? a.max_len : a.truncate ? positions : 0;
  const bool types = tok.kind() == "wordpiece";  // BERT's token_type_ids, as transformers returns them
  const std::string key = a.input.is_text() ? "text" : "smiles";
  auto quoted = [](const std::string& v) {  // a JSON string (inputs are UTF-8: read_smiles checked them)
    return nlohmann::json(v).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  };
  int64_t over = 0;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const auto& s = inputs[i];
    auto e = tok.encode_pair(s, nullptr, 0);
    const size_t all = e.ids.size();
    if (limit > 0 && static_cast<int64_t>(all) > limit) e = tok.encode_pair(s, nullptr, limit);
    if (limit == 0 && positions > 0 && static_cast<int64_t>(all) > positions && ++over <= 5) {
      log::warn(noun + " " + std::to_string(i + 1) + " ('" + preview(s) + "') has " + std::to_string(all) +
                " tokens, more than the model's " + std::to_string(positions) +
                " positions: running it through the model would fail (all ids printed; --truncate cuts them)");
    }
    // one JSON object per line, written as it goes (keys in nlohmann's order: sorted), so that
    // memory stays the encoding's, not a JSON tree of every token
    std::ostream& o = std::cout;
    auto list = [&](const std::vector<int64_t>& v) {
      o << '[';
      for (size_t k = 0; k < v.size(); ++k) o << (k ? "," : "") << v[k];
      o << ']';
    };
    o << "{\"input_ids\":";
    list(e.ids);
    if (key == "smiles") o << ",\"smiles\":" << quoted(s);
    o << ",\"spans\":[";
    for (size_t k = 0; k < e.spans.size(); ++k) {
      o << (k ? "," : "");
      if (e.spans[k].first < 0) o << "null";
      else o << '[' << e.spans[k].first << ',' << e.spans[k].second << ']';
    }
    o << ']';
    if (key == "text") o << ",\"text\":" << quoted(s);
    if (types) {
      o << ",\"token_type_ids\":";
      list(e.type_ids);
    }
    o << ",\"tokens\":[";
    for (size_t k = 0; k < e.ids.size(); ++k) o << (k ? "," : "") << quoted(tok.id_token(e.ids[k]));
    o << ']' << (e.ids.size() < all ? ",\"truncated\":true" : "") << "}\n";
  }
  if (over > 5) log::warn(std::to_string(over) + " inputs in all exceed the model's " + std::to_string(positions) + " positions");
  return 0;
}

namespace {

// A masked-LM's predictions at each mask token, as transformers' fill-mask pipeline: softmax over
// the vocabulary at the mask, the top k with their probabilities, and the input with the best
// token in place (for the first mask). One JSON object per input.
int fill_mask(const models::LoadedModel& m, const std::vector<std::string>& inputs, const PredictArgs& a) {
  const int64_t top_k = a.top_k.value_or(5);
  if (top_k < 1) throw UsageError("--top-k must be >= 1");
  const auto& tok = m.tok();
  const std::string mask = tok.id_token(tok.mask_id());
  const auto ids = encode_all(tok, inputs, models::max_tokens(m.config()), a.too_long, a.input.noun());
  for (size_t i = 0; i < ids.size(); ++i) {
    if (std::find(ids[i].begin(), ids[i].end(), tok.mask_id()) == ids[i].end()) {
      throw UsageError(a.input.noun() + " " + std::to_string(i + 1) + " ('" + preview(inputs[i]) + "') has no " + mask +
                       ": " + m.hf.architecture + " predicts the tokens at " + mask);
    }
  }
  torch::NoGradGuard no_grad;
  std::ostringstream out;
  for (size_t i = 0; i < ids.size(); ++i) {
    const auto T = static_cast<int64_t>(ids[i].size());
    const auto input = torch::tensor(ids[i]).view({1, T});
    const auto logits = m.hf.model->forward(input, torch::ones_like(input))[0];
    nlohmann::json masks = nlohmann::json::array();
    for (int64_t t = 0; t < T; ++t) {
      if (ids[i][static_cast<size_t>(t)] != tok.mask_id()) continue;
      const auto prob = torch::softmax(logits[t].to(torch::kDouble), 0);
      const auto top = prob.topk(std::min<int64_t>(top_k, prob.size(0)));
      nlohmann::json rows = nlohmann::json::array();
      for (int64_t k = 0; k < std::get<1>(top).size(0); ++k) {
        const int64_t id = std::get<1>(top)[k].item<int64_t>();
        auto filled = ids[i];
        filled[static_cast<size_t>(t)] = id;
        rows.push_back({{"token", id}, {"token_str", tok.display(tok.id_token(id))}, {"score", std::get<0>(top)[k].item<double>()},
                        {"sequence", tok.decode(filled)}});
      }
      masks.push_back({{"position", t}, {"top", rows}});
    }
    out << nlohmann::json{{a.input.is_text() ? "text" : "smiles", inputs[i]}, {"masks", masks}}.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
  }
  if (a.output.empty()) {
    std::cout << out.str();
  } else {
    write_file_atomic(a.output, out.str());
    log::info("predict: " + std::to_string(inputs.size()) + " masked inputs -> " + a.output);
  }
  return 0;
}

}  // namespace

int predict_command(const PredictArgs& a) {
  if (a.too_long != "truncate" && a.too_long != "error") throw UsageError("--too-long must be truncate or error");
  if (a.batch < 1) throw UsageError("--batch must be >= 1");
  const auto smiles = read_smiles(a.input);
  auto m = models::load_model(a.model);
  if (m.hf.is_lm() && !m.config().causal()) return fill_mask(m, smiles, a);
  if (!m.hf.is_classifier()) {
    throw UsageError("--model '" + a.model + "' is a " + (m.hf.declared.empty() ? m.hf.architecture : m.hf.declared) +
                     "; predict needs a sequence regression / classification model (" +
                     models::classifier_architecture(m.config().model_type) + ")");
  }
  if (a.top_k) {
    throw UsageError("--top-k does not apply: --model '" + a.model + "' is a " + m.hf.architecture +
                     ", whose outputs are all printed; --top-k is the tokens per mask of a masked-LM");
  }
  if (!m.hf.new_heads.empty()) {
    throw UsageError("--model '" + a.model + "' has no trained task head (missing: " + m.hf.new_heads.front() +
                     ", ...): its predictions would come from a random initialisation");
  }
  const auto& c = m.config();
  const auto& tok = m.tok();
  const auto ids = encode_all(tok, smiles, models::max_tokens(c), a.too_long, a.input.noun());
  // transformers' TextClassificationPipeline: sigmoid per label (multi-label), softmax over the
  // labels (single-label); regression outputs as they are (a run's in original units)
  const std::string problem = models::effective_problem_type(c);
  const bool regression = problem == "regression";
  const int64_t K = c.num_labels;
  torch::NoGradGuard no_grad;
  std::ostringstream csv;
  csv << (a.input.is_text() ? "text" : "smiles");
  for (int64_t k = 0; k < K; ++k) csv << "," << csv_field(regression ? c.label(k) : "logit:" + c.label(k));
  if (!regression) {
    for (int64_t k = 0; k < K; ++k) csv << "," << csv_field("prob:" + c.label(k));
    if (problem == "single_label_classification") csv << ",label";
  }
  csv << "\n";
  csv.precision(7);
  for (size_t b = 0; b < ids.size(); b += static_cast<size_t>(a.batch)) {
    const size_t e = std::min(ids.size(), b + static_cast<size_t>(a.batch));
    size_t T = 0;
    for (size_t i = b; i < e; ++i) T = std::max(T, ids[i].size());
    auto input = torch::full({static_cast<int64_t>(e - b), static_cast<int64_t>(T)}, tok.pad_id(), torch::kLong);
    auto mask = torch::zeros_like(input);
    for (size_t i = b; i < e; ++i) {
      for (size_t t = 0; t < ids[i].size(); ++t) {
        input[i - b][t] = ids[i][t];
        mask[i - b][t] = 1;
      }
    }
    const auto out = m.hf.model->forward(input, mask).to(torch::kDouble).contiguous();
    const auto prob = problem == "multi_label_classification" ? torch::sigmoid(out) : torch::softmax(out, 1);
    for (size_t i = b; i < e; ++i) {
      csv << csv_field(smiles[i]);
      for (int64_t k = 0; k < K; ++k) {
        double v = out[i - b][k].item<double>();
        if (regression && !m.mean.empty()) v = v * m.stdev[k] + m.mean[k];  // a run's regression: original units
        csv << "," << v;
      }
      if (!regression) {
        for (int64_t k = 0; k < K; ++k) csv << "," << prob[i - b][k].item<double>();
        if (problem == "single_label_classification") csv << "," << csv_field(c.label(out[i - b].argmax().item<int64_t>()));
      }
      csv << "\n";
    }
  }
  if (a.output.empty()) {
    std::cout << csv.str();
  } else {
    write_file_atomic(a.output, csv.str());
    log::info("predict: " + std::to_string(smiles.size()) + " " + a.input.noun() + " inputs -> " + a.output);
  }
  return 0;
}

int export_command(const ExportArgs& a) {
  if (fs::exists(a.hf) && !fs::is_empty(a.hf)) throw UsageError("--hf '" + a.hf + "' exists and is not empty; not overwriting it");
  auto m = models::load_model(a.model);
  const auto& tok = m.tok();
  const bool existed = fs::exists(a.hf);
  try {
    models::export_hf_model(m.hf.module(), m.config(), m.hf.architecture, tok.dir(), a.hf);
  } catch (...) {  // no half-written directory (e.g. no space left): what export created goes
    std::error_code ec;
    if (existed) {
      for (const auto& e : fs::directory_iterator(a.hf, ec)) fs::remove_all(e.path(), ec);
    } else {
      fs::remove_all(a.hf, ec);
    }
    throw;
  }
  std::cout << "exported " << m.hf.architecture << " from " << m.origin << " to " << a.hf << " (config.json, model.safetensors, "
            << (tok.kind() == "bpe" ? "vocab.json, merges.txt" : "vocab.json of the atom-level SMILES tokenizer, which transformers "
                                                         "has no class for")
            << ", tokenizer_config.json, special_tokens_map.json)\n";
  if (!m.hf.unused.empty()) {
    std::cout << "note: " << m.hf.unused.size() << " tensors of the checkpoint's " << m.hf.declared
              << " head are not exported (attnscope keeps its encoder), e.g. " << m.hf.unused.front() << "\n";
  }
  if (!m.mean.empty()) {
    std::cout << "note: the regression head outputs standardised targets; original units = output * std + mean "
                 "with std/mean from " << m.run_dir << "/targets.json\n";
  }
  return 0;
}

}  // namespace attnscope::cli
