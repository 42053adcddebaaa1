// The JSON API behind `attnscope serve` (serve/serve.h): one forward pass with the attention taps
// per request, and what the page shows computed from it.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <list>
#include <mutex>

#include <torch/torch.h>

#include "core/core.h"
#include "data/data.h"
#include "hooks/hooks.h"
#include "models/models.h"
#include "serve/request.h"
#include "serve/serve.h"
#include "train/train.h"
#include "viz/viz.h"

namespace attnscope::serve {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

using Model = std::shared_ptr<const models::LoadedModel>;

std::shared_ptr<models::LoadedModel> load_for_inference(const std::string& path) {
  auto m = std::make_shared<models::LoadedModel>(models::load_model(path));
  m->hf.model->eval();
  for (auto& p : m->hf.model->parameters()) p.set_requires_grad(false);
  return m;
}

// The kept checkpoints of a run (checkpoints/*.pt), by epoch, then best.pt, last.pt and others.
std::vector<std::string> checkpoint_names(const std::string& run_dir) {
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(RunDir{run_dir}.checkpoints(), ec)) {
    if (e.path().extension() == ".pt" && e.is_regular_file(ec)) names.push_back(e.path().filename().string());
  }
  std::sort(names.begin(), names.end(), [](const std::string& a, const std::string& b) {
    const int64_t ea = RunDir::kept_epoch(a), eb = RunDir::kept_epoch(b);
    return ea != eb ? (ea < 0) < (eb < 0) || (ea >= 0 && eb >= 0 && ea < eb) : a < b;
  });
  return names;
}

// One min/max checkpoint: its task holds the network.
struct MinMax {
  std::unique_ptr<train::Task> task;
  models::MinMaxNetImpl* net = nullptr;
  int64_t epoch = 0, numbers = 0;
};

std::shared_ptr<const MinMax> load_minmax(const std::string& ckpt, const std::string& model) {
  auto m = std::make_shared<MinMax>();
  const Config config = models::checkpoint_config(ckpt);
  m->task = train::make_task(config);
  const auto ck = models::load_checkpoint(ckpt, m->task->module(), nullptr, false);
  m->net = dynamic_cast<models::MinMaxNetImpl*>(&m->task->module());
  if (m->net == nullptr) throw UsageError("serve: '" + model + "' holds no model serve knows");
  m->net->eval();
  m->epoch = ck.state.epoch;
  m->numbers = config.data.minmax_numbers;
  return m;
}

// The most recently used checkpoints of a run, loaded on request (least recently used out).
template <class T>
class Loaded {
 public:
  std::shared_ptr<const T> get(const std::string& name, int64_t most, const std::function<std::shared_ptr<const T>()>& load) {
    std::lock_guard<std::mutex> lock(mu_);  // one load at a time; requests for loaded ones wait briefly
    for (auto it = list_.begin(); it != list_.end(); ++it) {
      if (it->first == name) {
        list_.splice(list_.begin(), list_, it);
        return it->second;
      }
    }
    auto m = load();
    list_.emplace_front(name, m);
    while (static_cast<int64_t>(list_.size()) > most) list_.pop_back();
    return m;
  }

 private:
  std::mutex mu_;
  std::list<std::pair<std::string, std::shared_ptr<const T>>> list_;
};

std::string preview(const std::string& s) { return s.size() > 40 ? s.substr(0, 37) + "..." : s; }

// One input through the model: its encoding and the attention of every layer.
struct Pass {
  data::Encoding enc;
  torch::Tensor maps;    // [L,H,T,T] float32
  torch::Tensor output;  // the model's output for the one input ([K], [T,V] or [T,D])
};

}  // namespace

struct Explorer::Impl {
  std::string path, run_dir, input_kind;
  // a min/max run (input "a max b"): the transformer fields stay empty
  std::shared_ptr<const MinMax> minmax;  // the checkpoint MODEL names
  data::MinMaxVocab minmax_vocab;
  bool pair = false;
  Limits limits;
  Model base;                      // the model MODEL names (a run: its best checkpoint, else last)
  std::string base_name;           // its checkpoint file name ("" for a Hugging Face directory)
  std::vector<std::string> names;  // checkpoints on offer, by file name
  mutable Loaded<models::LoadedModel> loaded;
  mutable Loaded<MinMax> loaded_minmax;

  // The checkpoint a request names: "" for the one MODEL names; 400 for a name not on offer.
  std::string checkpoint(const json& request) const {
    const std::string name = string_field(request, "checkpoint", false);
    if (name.empty() || name == base_name) return "";
    if (std::find(names.begin(), names.end(), name) == names.end()) {
      throw RequestError(400, "no checkpoint '" + preview(name) + "'" +
                                  (names.empty() ? std::string(": the model is not a run directory")
                                                 : "; this run offers " + join(names)));
    }
    return name;
  }
  std::string checkpoint_path(const std::string& name) const {  // name is one of `names`
    return RunDir{RunDir{run_dir}.checkpoints()}.file(name);
  }

  Model model(const json& request) const {
    const std::string name = checkpoint(request);
    if (name.empty()) return base;
    return loaded.get(name, limits.max_checkpoints_loaded, [&] { return load_for_inference(checkpoint_path(name)); });
  }
  // the min/max checkpoint `name` (checkpoint()'s answer; "" for the one MODEL names)
  std::shared_ptr<const MinMax> minmax_model(const std::string& name) const {
    if (name.empty()) return minmax;
    return loaded_minmax.get(name, limits.max_checkpoints_loaded, [&] { return load_minmax(checkpoint_path(name), path); });
  }
  json checkpoint_json(const std::string& requested) const {  // the name that answered (null: not a run)
    return requested.empty() ? (base_name.empty() ? json(nullptr) : json(base_name)) : json(requested);
  }

  // The input of a request, checked: a string, not empty, within the limits, a SMILES RDKit parses.
  std::pair<std::string, std::string> inputs(const json& request) const {
    std::string text = string_field(request, "input", true), second = string_field(request, "pair", false);
    if (trim(text).empty()) throw RequestError(400, "the input is empty: type a " + noun());
    const int64_t chars = utf8_chars(text) + utf8_chars(second);
    if (chars > limits.max_input_chars) {
      throw RequestError(400, "the input has " + std::to_string(chars) + " characters; the limit is " +
                                  std::to_string(limits.max_input_chars));
    }
    if (!second.empty() && !pair) throw RequestError(400, "this model takes one text, not a pair");
    if (input_kind == "smiles") {
      text = trim(text);
      // a masked-LM's mask token stands for an atom the model is to fill in: RDKit checks the rest
      std::string checked = text;
      const auto& tok = base->tok();
      if (tok.mask_id() >= 0) {
        const std::string mask = tok.id_token(tok.mask_id());
        for (size_t at = checked.find(mask); at != std::string::npos; at = checked.find(mask, at + 1)) {
          checked.replace(at, mask.size(), "*");
        }
      }
      if (static_cast<int64_t>(checked.size()) > data::max_smiles_length()) {
        throw RequestError(400, "the SMILES has " + std::to_string(checked.size()) + " characters; molecules longer than " +
                                    std::to_string(data::max_smiles_length()) + " are not parsed (data.max_smiles_length)");
      }
      if (data::canonical_smiles(checked).empty()) {
        throw RequestError(400, "'" + preview(text) + "' is not a valid SMILES (RDKit cannot parse it)");
      }
    }
    return {text, second};
  }

  // /api/info's checkpoints: [{name, epoch, default}] (the default one's epoch from its file)
  json checkpoints_json(int64_t base_epoch) const {
    json out = json::array();
    for (const auto& n : names) {
      const int64_t e = n == base_name ? base_epoch : RunDir::kept_epoch(n);
      out.push_back({{"name", n}, {"epoch", e >= 0 ? json(e) : json(nullptr)}, {"default", n == base_name}});
    }
    return out;
  }

  std::string noun() const {
    return input_kind == "smiles" ? "SMILES" : input_kind == "minmax" ? "min/max input ('3 max 5')" : "text";
  }

  // "a max b" / "a min b =" (words or token ids) -> the four ids [a, op, b, =].
  std::vector<int64_t> minmax_ids(const std::string& text) const {
    std::vector<int64_t> ids;
    for (const auto& word : split(trim(text), ' ')) {
      if (word.empty()) continue;
      int64_t id = -1;
      for (int64_t k = 0; k < minmax_vocab.size(); ++k) {
        if (minmax_vocab.token_text(k) == word) id = k;
      }
      if (id < 0) {
        throw RequestError(400, "'" + preview(word) + "' is not a token of this min/max model (0.." +
                                    std::to_string(minmax_vocab.numbers - 1) + ", max, min, =)");
      }
      ids.push_back(id);
    }
    if (ids.size() == 3) ids.push_back(minmax_vocab.eq_token());
    const bool ok = ids.size() == 4 && ids[0] < minmax_vocab.numbers && ids[2] < minmax_vocab.numbers &&
                    (ids[1] == minmax_vocab.max_token() || ids[1] == minmax_vocab.min_token()) && ids[3] == minmax_vocab.eq_token();
    if (!ok) throw RequestError(400, "expected 'a max b' or 'a min b' (numbers 0.." + std::to_string(minmax_vocab.numbers - 1) + ")");
    return ids;
  }

  Pass forward(const models::LoadedModel& m, const std::string& text, const std::string& second) const {
    Pass p;
    const auto& tok = m.tok();
    p.enc = tok.encode_pair(text, second.empty() ? nullptr : &second, 0);
    const auto T = static_cast<int64_t>(p.enc.ids.size());
    const int64_t most = models::max_tokens(m.config());
    if (T > most) {
      throw RequestError(400, "the input is " + std::to_string(T) + " tokens long; this model reads at most " +
                                  std::to_string(most));
    }
    if (T == 0) throw RequestError(400, "the input has no tokens");
    const auto ids = torch::tensor(p.enc.ids, torch::kLong).view({1, T});
    const auto types = torch::tensor(p.enc.type_ids, torch::kLong).view({1, T});
    const auto mask = torch::ones({1, T}, torch::kLong);
    models::Taps taps;
    taps.request(models::site::kAttnProbs);
    torch::NoGradGuard no_grad;
    p.output = m.hf.model->forward(ids, mask, &taps, types)[0];
    std::vector<torch::Tensor> layers;
    for (int64_t l = 0; l < m.config().num_hidden_layers; ++l) {
      layers.push_back(taps.get(models::site::kAttnProbs, l)[0].to(torch::kFloat));
    }
    p.maps = torch::stack(layers).contiguous();
    return p;
  }

  json prediction(const models::LoadedModel& m, const torch::Tensor& out) const {
    const auto& c = m.config();
    if (!m.hf.is_classifier()) return nullptr;
    const std::string problem = models::effective_problem_type(c);
    const auto o = out.to(torch::kDouble).contiguous();
    json outputs = json::array();
    if (problem == "regression") {
      for (int64_t k = 0; k < c.num_labels; ++k) {
        double v = o[k].item<double>();
        if (!m.mean.empty()) v = v * m.stdev[static_cast<size_t>(k)] + m.mean[static_cast<size_t>(k)];
        outputs.push_back({{"label", c.label(k)}, {"value", v}});
      }
      return {{"problem", problem}, {"outputs", outputs}, {"untrained_head", !m.hf.new_heads.empty()}};
    }
    const auto prob = problem == "multi_label_classification" ? torch::sigmoid(o) : torch::softmax(o, 0);
    for (int64_t k = 0; k < c.num_labels; ++k) {
      outputs.push_back({{"label", c.label(k)}, {"logit", o[k].item<double>()}, {"probability", prob[k].item<double>()}});
    }
    json j = {{"problem", problem}, {"outputs", outputs}, {"untrained_head", !m.hf.new_heads.empty()}};
    if (problem == "single_label_classification") j["label"] = c.label(o.argmax().item<int64_t>());
    return j;
  }

  // The top `k` tokens (display form) and probabilities of logits [V].
  // A masked-LM's top 5 at every mask token of `ids` from its logits [T,V] (empty without masks).
  static json mask_tops(const data::Tokenizer& tok, const std::vector<int64_t>& ids, const torch::Tensor& logits) {
    json masks = json::array();
    for (size_t i = 0; i < ids.size(); ++i) {
      if (tok.mask_id() >= 0 && ids[i] == tok.mask_id()) {
        masks.push_back({{"position", i}, {"top", top_tokens(tok, logits[static_cast<int64_t>(i)], 5)}});
      }
    }
    return masks;
  }

  // The run's checkpoint file the answer came from (null for a Hugging Face directory).
  static json checkpoint_name(const models::LoadedModel& m) {
    return m.run_dir.empty() ? json(nullptr) : json(fs::path(m.origin).filename().string());
  }

  static json top_tokens(const data::Tokenizer& tok, const torch::Tensor& logits, int64_t k) {
    const auto prob = torch::softmax(logits.to(torch::kDouble), 0);
    const auto top = prob.topk(std::min<int64_t>(k, prob.size(0)));
    json out = json::array();
    for (int64_t i = 0; i < std::get<1>(top).size(0); ++i) {
      const int64_t id = std::get<1>(top)[i].item<int64_t>();
      out.push_back({{"id", id}, {"token", tok.display(tok.id_token(id))}, {"probability", std::get<0>(top)[i].item<double>()}});
    }
    return out;
  }
};

Explorer::Explorer(const std::string& model, const std::string& input, Limits limits) : impl_(std::make_unique<Impl>()) {
  auto& d = *impl_;
  d.path = model;
  d.limits = limits;
  if (input != "auto" && input != "smiles" && input != "text") throw UsageError("--input must be auto, smiles or text");
  if (!models::is_molecule_model(model)) {  // a min/max run or checkpoint: its config and weights
    fs::path ckpt = model;
    if (fs::is_directory(ckpt)) ckpt = models::run_checkpoint(ckpt.string());
    if (!fs::exists(ckpt)) {
      throw UsageError("serve: '" + model + "' is neither a Hugging Face directory (config.json), a run directory nor a checkpoint");
    }
    d.minmax = load_minmax(ckpt.string(), model);
    d.minmax_vocab.numbers = d.minmax->numbers;
    d.input_kind = "minmax";
    d.run_dir = fs::is_directory(model) ? model : ckpt.parent_path().parent_path().string();
    d.base_name = ckpt.filename().string();
    d.names = checkpoint_names(d.run_dir);
    return;
  }
  auto m = load_for_inference(model);
  (void)m->tok();  // UsageError now when the directory has no tokenizer
  d.base = m;
  d.run_dir = m->run_dir;
  const auto& c = m->config();
  if (!d.run_dir.empty()) {
    d.base_name = fs::path(m->origin).filename().string();
    d.names = checkpoint_names(d.run_dir);
  }
  // What a person types: the run's data says; otherwise the family (a RoBERTa whose BPE has no
  // English word pieces is a ChemBERTa).
  std::string kind = input;
  bool pair = false;
  if (kind == "auto") {
    if (!d.run_dir.empty()) {
      const Config rc = models::checkpoint_config(m->origin);
      kind = !rc.data.text_col.empty() || c.model_type != "roberta" || rc.data.task == "clm" ? "text" : "smiles";
      pair = !rc.data.text_pair_col.empty();
    } else if (c.model_type != "roberta") {
      kind = "text";
    } else {
      const auto& tok = m->tok();
      kind = tok.kind() == "smiles-regex" || tok.token_id("\xC4\xA0the") == tok.unk_id() ? "smiles" : "text";
    }
  }
  d.input_kind = kind;
  d.pair = kind == "text" && (pair || c.model_type == "bert");
}

Explorer::~Explorer() = default;

const std::string& Explorer::run_dir() const { return impl_->run_dir; }

json Explorer::info() const {
  const auto& d = *impl_;
  if (d.minmax) {
    const auto& o = d.minmax->net->options();
    return {{"model", d.path}, {"origin", d.path}, {"family", "minmax"}, {"architecture", "MinMaxNet"},
            {"layers", 1}, {"heads", o.n_heads}, {"hidden", o.d_model}, {"causal", false}, {"head", "minmax"},
            {"problem", "the answer token"}, {"labels", json::array()}, {"input", "minmax"}, {"pair", false},
            {"tokenizer", "minmax"}, {"mask_token", nullptr}, {"max_tokens", data::kMinMaxSeqLen},
            {"epoch", d.minmax->epoch}, {"checkpoints", d.checkpoints_json(d.minmax->epoch)},
            {"report", fs::exists(fs::path(d.run_dir) / "attention.h5")}, {"metric_names", hooks::head_metric_names()},
            {"limits", {{"max_input_chars", d.limits.max_input_chars}, {"max_batch", d.limits.max_batch}}}};
  }
  const auto& m = *d.base;
  const auto& c = m.config();
  const auto& tok = m.tok();
  json labels = json::array();
  if (m.hf.is_classifier()) {
    for (int64_t k = 0; k < c.num_labels; ++k) labels.push_back(c.label(k));
  }
  const json checkpoints = d.checkpoints_json(m.epoch);
  const std::string head = m.hf.is_classifier() ? "classifier"
                           : !m.hf.is_lm()      ? "none"
                           : c.causal()         ? "causal_lm"
                                                : "masked_lm";
  return {{"model", d.path},
          {"origin", m.origin},
          {"family", c.model_type},
          {"architecture", m.hf.architecture},
          {"layers", c.num_hidden_layers},
          {"heads", c.num_attention_heads},
          {"hidden", c.hidden_size},
          {"causal", c.causal()},
          {"head", head},
          {"problem", m.hf.is_classifier() ? json(models::effective_problem_type(c)) : json(nullptr)},
          {"labels", labels},
          {"input", d.input_kind},
          {"pair", d.pair},
          {"tokenizer", tok.kind()},
          {"mask_token", tok.mask_id() >= 0 ? json(tok.id_token(tok.mask_id())) : json(nullptr)},
          {"max_tokens", models::max_tokens(c)},
          {"epoch", m.run_dir.empty() ? json(nullptr) : json(m.epoch)},
          {"checkpoints", checkpoints},
          {"report", !d.run_dir.empty() && fs::exists(fs::path(d.run_dir) / "attention.h5")},
          {"metric_names", hooks::head_metric_names()},
          {"limits", {{"max_input_chars", d.limits.max_input_chars}, {"max_batch", d.limits.max_batch}}}};
}

json Explorer::attention(const json& request) const {
  const auto t0 = std::chrono::steady_clock::now();
  const auto& d = *impl_;
  const auto [text, second] = d.inputs(request);
  const std::string encoding = field(request, "encoding").is_null() ? "u8" : string_field(request, "encoding", true);
  if (encoding != "u8" && encoding != "float") throw RequestError(400, "\"encoding\" must be \"u8\" or \"float\"");
  const json& flow_field = field(request, "flow");
  if (!flow_field.is_null() && !flow_field.is_boolean()) throw RequestError(400, "\"flow\" must be true or false");
  const bool want_flow = flow_field.is_boolean() && flow_field.get<bool>();
  json tokens = json::array(), raw = json::array(), spans = json::array(), special = json::array(), ids, type_ids;
  json masks = json::array(), next = nullptr, prediction = nullptr, checkpoint = nullptr, epoch = nullptr;
  torch::Tensor maps_t;
  bool causal = false;
  if (d.minmax) {
    const std::string name = d.checkpoint(request);
    const auto mm = d.minmax_model(name);
    const auto v = d.minmax_ids(text);
    models::Taps taps;
    taps.request(models::site::kAttnProbs);
    torch::NoGradGuard no_grad;
    const auto logits = mm->net->forward(torch::tensor(v).view({1, -1}), &taps)[0];
    maps_t = taps.get(models::site::kAttnProbs, 0)[0].unsqueeze(0).to(torch::kFloat).contiguous();  // [1,H,4,4]
    for (int64_t id : v) {
      tokens.push_back(d.minmax_vocab.token_text(id));
      raw.push_back(d.minmax_vocab.token_text(id));
      spans.push_back(nullptr);
      special.push_back(false);
    }
    ids = v;
    const int64_t expected = v[1] == d.minmax_vocab.max_token() ? std::max(v[0], v[2]) : std::min(v[0], v[2]);
    json top = json::array();
    const auto prob = torch::softmax(logits.to(torch::kDouble), 0);
    const auto best = prob.topk(5);
    for (int64_t k = 0; k < 5; ++k) {
      const int64_t id = std::get<1>(best)[k].item<int64_t>();
      top.push_back({{"id", id}, {"token", d.minmax_vocab.token_text(id)}, {"probability", std::get<0>(best)[k].item<double>()}});
    }
    const int64_t answer = std::get<1>(best)[0].item<int64_t>();
    prediction = {{"problem", "minmax"}, {"label", d.minmax_vocab.token_text(answer)},
                  {"expected", d.minmax_vocab.token_text(expected)}, {"correct", answer == expected},
                  {"outputs", json::array()}, {"top", top}, {"untrained_head", false}};
    epoch = mm->epoch;
    checkpoint = d.checkpoint_json(name);
  } else {
    const Model mp = d.model(request);
    const auto& m = *mp;
    const auto& tok = m.tok();
    const Pass p = d.forward(m, text, second);
    maps_t = p.maps;
    causal = m.config().causal();
    const auto specials = tok.special_ids();
    for (size_t i = 0; i < p.enc.ids.size(); ++i) {
      const int64_t id = p.enc.ids[i];
      raw.push_back(tok.id_token(id));
      tokens.push_back(tok.display(tok.id_token(id)));
      const auto& sp = p.enc.spans[i];
      spans.push_back(sp.first < 0 ? json(nullptr) : json({sp.first, sp.second}));
      special.push_back(std::find(specials.begin(), specials.end(), id) != specials.end() && sp.first < 0);
    }
    ids = p.enc.ids;
    type_ids = p.enc.type_ids;
    prediction = d.prediction(m, p.output);
    if (m.hf.is_lm() && !causal) masks = Impl::mask_tops(tok, p.enc.ids, p.output);
    if (m.hf.is_lm() && causal) next = Impl::top_tokens(tok, p.output[p.output.size(0) - 1], 5);
    checkpoint = Impl::checkpoint_name(m);
    if (!m.run_dir.empty()) epoch = m.epoch;
  }
  const int64_t L = maps_t.size(0), H = maps_t.size(1), T = maps_t.size(2);

  // per-head metrics and pattern classes, layer by layer
  const auto lengths = torch::full({1}, T, torch::kLong);
  const auto& names = hooks::head_metric_names();
  json metrics = json::array(), pattern = json::array();
  for (int64_t l = 0; l < L; ++l) {
    hooks::HeadMetrics hm(hooks::HeadMetrics::Path::kFast, causal);
    hm.add(maps_t[l].unsqueeze(0), lengths);
    const auto r = hm.result();
    json rows = json::array(), classes = json::array();
    for (int64_t h = 0; h < H; ++h) {
      json row = json::array();
      for (const auto& n : names) {
        const double v = r.at(n)[h].item<double>();
        row.push_back(std::isfinite(v) ? json(v) : json(nullptr));
      }
      rows.push_back(row);
      classes.push_back(hooks::pattern_name(static_cast<hooks::Pattern>(static_cast<int>(r.at("pattern")[h].item<double>()))));
    }
    metrics.push_back(rows);
    pattern.push_back(classes);
  }
  const auto all = maps_t.unsqueeze(0);  // [1,L,H,T,T]
  const auto plain = hooks::token_importance(all, lengths)[0].to(torch::kDouble).contiguous();
  const auto rollout = hooks::token_importance_rollout(all, lengths, causal)[0].to(torch::kDouble).contiguous();
  auto vec = [](const torch::Tensor& t) {
    return std::vector<double>(t.data_ptr<double>(), t.data_ptr<double>() + t.numel());
  };
  // attention flow on request: n max-flow problems on L n^2 edges (a 46-token SMILES on the small
  // preset: ~45 ms, 7x the forward); null beyond 64 tokens
  json flow = nullptr;
  if (want_flow) {
    const auto f = hooks::token_importance_flow(all, lengths, causal)[0].to(torch::kDouble).contiguous();
    if (!f.isnan().any().item<bool>()) flow = vec(f);
  }

  json maps;
  if (encoding == "u8") {
    const auto q = (maps_t * 255.0f).round().clamp(0, 255).to(torch::kUInt8).contiguous();
    maps = base64(std::string(reinterpret_cast<const char*>(q.data_ptr<uint8_t>()), static_cast<size_t>(q.numel())));
  } else {
    const auto v = maps_t.to(torch::kDouble).contiguous();
    maps = json(std::vector<double>(v.data_ptr<double>(), v.data_ptr<double>() + v.numel()));
  }

  json out = {{"input", text},
              {"checkpoint", checkpoint},
              {"epoch", epoch},
              {"tokens", tokens},
              {"vocab_tokens", raw},
              {"ids", ids},
              {"spans", spans},
              {"special", special},
              {"layers", L},
              {"heads", H},
              {"length", T},
              {"causal", causal},
              {"encoding", encoding},
              {"maps", maps},
              {"metric_names", names},
              {"metrics", metrics},
              {"patterns", pattern},
              {"importance", {{"attention", vec(plain)}, {"rollout", vec(rollout)}, {"flow", flow}}},
              {"prediction", prediction},
              {"masks", masks},
              {"next_token", next},
              {"molecule", d.input_kind == "smiles"}};
  if (!second.empty()) {
    out["pair"] = second;
    out["type_ids"] = type_ids;
  }
  out["milliseconds"] = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  return out;
}

json Explorer::predict(const json& request) const {
  const auto& d = *impl_;
  std::vector<json> items;
  if (!field(request, "inputs").is_null() && !field(request, "inputs").is_array()) {
    throw RequestError(400, "\"inputs\" must be an array of strings, not " + std::string(field(request, "inputs").type_name()));
  }
  if (!field(request, "inputs").is_null() && !field(request, "input").is_null()) {
    throw RequestError(400, "give \"input\" or \"inputs\", not both");
  }
  if (field(request, "inputs").is_array()) {
    const auto& a = field(request, "inputs");
    if (static_cast<int64_t>(a.size()) > d.limits.max_batch || a.empty()) {
      throw RequestError(400, "\"inputs\" holds " + std::to_string(a.size()) + " entries; give 1.." +
                                  std::to_string(d.limits.max_batch));
    }
    for (const auto& x : a) items.push_back({{"input", x}});
  } else {
    items.push_back(request);
  }
  if (d.minmax) {
    const std::string name = d.checkpoint(request);
    json results = json::array();
    for (auto& item : items) {
      if (!name.empty()) item["checkpoint"] = name;
      results.push_back({{"input", item.at("input")}, {"prediction", attention(item)["prediction"]}});
    }
    return {{"checkpoint", d.checkpoint_json(name)}, {"results", results}};
  }
  const Model mp = d.model(request);
  const auto& m = *mp;
  if (!m.hf.is_classifier() && !m.hf.is_lm()) {
    throw RequestError(400, "this model (" + m.hf.architecture + ") has no task head: nothing to predict");
  }
  json results = json::array();
  for (const auto& item : items) {
    const auto [text, second] = d.inputs(item);
    const Pass p = d.forward(m, text, second);
    json r = {{"input", text}};
    if (m.hf.is_classifier()) {
      r["prediction"] = d.prediction(m, p.output);
    } else if (m.config().causal()) {
      r["next_token"] = Impl::top_tokens(m.tok(), p.output[p.output.size(0) - 1], 5);
    } else {
      r["masks"] = Impl::mask_tops(m.tok(), p.enc.ids, p.output);
    }
    results.push_back(r);
  }
  return {{"checkpoint", Impl::checkpoint_name(m)},
          {"results", results}};
}

std::string Explorer::molecule_svg(const json& request) const {
  const auto& d = *impl_;
  if (d.input_kind != "smiles") throw RequestError(400, "this model reads text, not molecules");
  const auto [text, second] = d.inputs(request);
  const Model mp = d.model(request);
  const auto& m = *mp;
  const Pass p = d.forward(m, text, second);
  const int64_t L = p.maps.size(0), H = p.maps.size(1), T = p.maps.size(2);
  const int64_t l = int_field(request, "layer", 0, 0, L - 1), h = int_field(request, "head", 0, 0, H - 1);
  const int64_t q = int_field(request, "query", 0, 0, T - 1);
  const auto row = p.maps[l][h][q].to(torch::kDouble).contiguous();
  std::vector<double> weight(row.data_ptr<double>(), row.data_ptr<double>() + T);
  std::vector<std::string> tokens;
  for (int64_t id : p.enc.ids) tokens.push_back(m.tok().id_token(id));
  const std::string svg = viz::molecule_svg(text, tokens, weight,
                                            "layer " + std::to_string(l) + " head " + std::to_string(h) + ", from token " +
                                                std::to_string(q) + " '" + m.tok().display(tokens[static_cast<size_t>(q)]) + "'");
  if (svg.empty()) throw RequestError(422, "the tokens of '" + preview(text) + "' do not map onto its atoms (e.g. <unk>)");
  return svg;
}

}  // namespace attnscope::serve
