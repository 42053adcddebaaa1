// Validation of a resolved config: every rule, every problem at once (core/config_validate.h).
#include "core/config_validate.h"

#include <algorithm>
#include <set>

#include "core/strings.h"
#include "core/task_kind.h"

namespace attnscope::detail {
namespace {

bool one_of(const std::string& v, const std::vector<std::string>& allowed) {
  return std::find(allowed.begin(), allowed.end(), v) != allowed.end();
}

// The problems found so far, each naming the key, where its value came from and the rule.
struct Checker {
  const SourceMap& sources;
  const std::map<std::string, std::string>& value;  // key -> the value as text
  std::vector<std::string> problems;
  void fail(const std::string& key, const std::string& rule) {
    auto s = sources.find(key);
    const std::string src = s == sources.end() ? "default" : s->second;
    auto v = value.find(key);
    problems.push_back(key + " (" + src + "): value " + (v == value.end() ? std::string() : v->second) +
                       " is invalid: " + rule);
  }
  void need(bool ok, const std::string& key, const std::string& rule) {
    if (!ok) fail(key, rule);
  }
};

// run.*
void check_run(const Config& c, Checker& ch) {
  ch.need(!c.run.name.empty() && c.run.name.find('/') == std::string::npos, "run.name",
          "must be a non-empty name without '/'");
  ch.need(!c.run.out_dir.empty(), "run.out_dir", "must not be empty");
  ch.need(c.run.seed >= 0, "run.seed", "must be >= 0");
  ch.need(c.run.threads >= 0 && c.run.threads <= 1024, "run.threads", "must be in [0, 1024]");
  ch.need(c.run.blas_threads >= 0 && c.run.blas_threads <= 1024, "run.blas_threads", "must be in [0, 1024]");
  ch.need(one_of(c.run.log_level, {"trace", "debug", "info", "warn", "error"}), "run.log_level",
          "must be one of trace, debug, info, warn, error");
}

// data.*, and what the task needs of it
void check_data(const Config& c, Checker& ch) {
  const TaskTraits* task = find_task(c.data.task);
  std::vector<std::string> tasks;
  for (const auto& t : all_tasks()) tasks.push_back(t.name);
  std::sort(tasks.begin(), tasks.end());
  const bool task_ok = one_of(c.data.task, tasks);
  ch.need(task_ok, "data.task", "must be one of: " + join(tasks));
  ch.need(c.data.minmax_numbers >= 2 && c.data.minmax_numbers <= 4096, "data.minmax_numbers",
          "must be in [2, 4096]");
  ch.need(c.data.train_fraction > 0 && c.data.train_fraction < 1, "data.train_fraction", "must be in (0, 1)");

  const bool supervised = task && task->supervised;
  const bool lm = task && (task->kind == TaskKind::MaskedLM || task->kind == TaskKind::CausalLM);
  const bool synthetic = !c.data.synthetic.empty();
  ch.need(!synthetic || (task && task->kind == TaskKind::CausalLM), "data.synthetic", "is for task clm");
  ch.need(!synthetic || c.data.synthetic == "repeated-random", "data.synthetic", "must be empty or repeated-random");
  if (synthetic) {
    ch.need(c.data.synthetic_count >= 10 && c.data.synthetic_count <= 10000000, "data.synthetic_count", "must be in [10, 10000000]");
    ch.need(c.data.synthetic_span >= 2 && 3 * c.data.synthetic_span <= c.model.max_positions, "data.synthetic_span",
            "must be >= 2, with 3 * span <= model.max_positions (a prefix and two copies of the span)");
    ch.need(c.data.synthetic_vocab >= 2, "data.synthetic_vocab", "must be >= 2");
  }
  if (lm) {
    ch.need(!c.data.csv.empty() || synthetic, "data.csv", "is required for task " + c.data.task + " (the corpus)");
    ch.need(c.data.targets.empty(), "data.targets", "task " + c.data.task + " has no targets");
    ch.need(c.data.frac_val > 0 && c.data.frac_val < 0.5, "data.frac_val",
            c.data.task + " holds out frac_val of the corpus: must be in (0, 0.5)");
  }
  if (task && task->kind == TaskKind::CausalLM && c.data.synthetic.empty()) {
    ch.need(c.data.block_size >= 2 && c.data.block_size <= c.model.max_positions, "data.block_size",
            "must be in [2, model.max_positions]");
  }
  ch.need(c.data.text_pair_col.empty() || !c.data.text_col.empty(), "data.text_pair_col", "needs data.text_col");
  ch.need(c.data.max_rows >= 0, "data.max_rows", "must be >= 0 (0 = every row)");
  if (!c.data.text_col.empty() && task && task->supervised) {
    ch.need(c.data.split != "scaffold", "data.split", "scaffold splits molecules; text (data.text_col) takes random or file");
  }
  if (task && task->kind == TaskKind::MaskedLM) {
    ch.need(c.data.mlm_probability > 0 && c.data.mlm_probability < 1, "data.mlm_probability",
            "must be in (0, 1)");
    ch.need(one_of(c.data.too_long, {"truncate", "error"}), "data.too_long", "must be truncate or error");
  }
  ch.need(c.data.num_classes == 0 || (c.data.num_classes >= 2 && c.data.num_classes <= 100000),
          "data.num_classes", "must be 0 (from the labels) or in [2, 100000]");
  if (task && task->kind == TaskKind::Multiclass) {
    ch.need(c.data.targets.size() == 1, "data.targets",
            "multiclass takes one target column of class labels 0..C-1");
  }
  if (supervised) {
    ch.need(!c.data.csv.empty(), "data.csv", "is required for task " + c.data.task);
    ch.need(!c.data.smiles_col.empty(), "data.smiles_col", "must not be empty");
    ch.need(!c.data.targets.empty(), "data.targets", "name at least one target column");
    ch.need(one_of(c.data.split, {"scaffold", "random", "file"}), "data.split",
            "must be scaffold, random or file");
    ch.need(c.data.split != "file" || !c.data.split_file.empty(), "data.split_file",
            "is required with data.split: file");
    ch.need(c.data.frac_train > 0 && c.data.frac_val > 0 && c.data.frac_train + c.data.frac_val < 1,
            "data.frac_train", "frac_train and frac_val must be > 0 with frac_train + frac_val < 1");
    ch.need(one_of(c.data.invalid_smiles, {"drop", "error"}), "data.invalid_smiles", "must be drop or error");
    ch.need(c.data.max_smiles_length >= 1 && c.data.max_smiles_length <= 1000000, "data.max_smiles_length",
            "must be in 1..1000000");
    ch.need(one_of(c.data.too_long, {"truncate", "error"}), "data.too_long", "must be truncate or error");
  }
}

// model.*
void check_model(const Config& c, Checker& ch) {
  const TaskTraits* task = find_task(c.data.task);
  ch.need(one_of(c.model.name, {"minmax_attention", "roberta", "bert", "gpt2"}), "model.name",
          "must be one of: minmax_attention, roberta, bert, gpt2");
  if (task && task->molecules) {
    ch.need(one_of(c.model.name, task->models), "model.name", "task " + c.data.task + " trains " + join(task->models));
  }
  if (c.model.name != "minmax_attention") {
    ch.need(c.model.d_model % std::max<int64_t>(1, c.model.n_heads) == 0, "model.d_model",
            "must be a multiple of model.n_heads");
    ch.need(c.model.d_ff >= 0, "model.d_ff", "must be >= 0 (0 = 4 * d_model)");
    ch.need(c.model.max_positions >= 4 && c.model.max_positions <= 65536, "model.max_positions",
            "must be in [4, 65536]");
    ch.need(c.model.dropout >= 0 && c.model.dropout < 1, "model.dropout", "must be in [0, 1)");
    ch.need(c.model.attention_dropout >= 0 && c.model.attention_dropout < 1, "model.attention_dropout",
            "must be in [0, 1)");
    ch.need(c.model.layer_norm_eps > 0, "model.layer_norm_eps", "must be > 0");
    ch.need(one_of(c.model.position_embedding, {"absolute", "rotary"}), "model.position_embedding",
            "must be absolute or rotary");
    ch.need(c.model.name == "gpt2" || (!c.model.attn_only && c.model.position_embedding == "absolute"),
            c.model.attn_only ? "model.attn_only" : "model.position_embedding",
            "attention-only blocks and rotary positions are GPT-2 variants (model.name: gpt2)");
    ch.need(c.model.position_embedding == "absolute" || (c.model.d_model / std::max<int64_t>(1, c.model.n_heads)) % 2 == 0,
            "model.position_embedding", "rotary needs an even head width (d_model / n_heads)");
    ch.need(one_of(c.model.tokenizer, {"smiles-regex", "bpe", "wordpiece"}), "model.tokenizer",
            "must be smiles-regex, bpe or wordpiece");
    ch.need(c.model.tokenizer == "smiles-regex" || !c.model.tokenizer_dir.empty() || !c.model.pretrained.empty(),
            "model.tokenizer_dir",
            c.model.tokenizer + " needs model.tokenizer_dir or model.pretrained (" +
                (c.model.tokenizer == "wordpiece" ? "vocab.txt)" : "vocab.json + merges.txt)"));
    const bool text = !c.data.text_col.empty() || (task && task->kind == TaskKind::CausalLM);
    ch.need(c.model.tokenizer != "smiles-regex" || !text, "model.tokenizer",
            "smiles-regex splits SMILES into atoms; text (data.text_col, task clm) needs bpe or wordpiece");
    ch.need(!c.data.augment || !text, "data.augment", "randomises SMILES; text inputs have no equivalent");
    ch.need(c.model.freeze_layers >= 0 && c.model.freeze_layers <= c.model.n_layers, "model.freeze_layers",
            "must be in [0, model.n_layers]");
  }
  ch.need(c.model.n_layers >= 1 && c.model.n_layers <= 1024, "model.n_layers", "must be in [1, 1024]");
  if (c.model.name == "minmax_attention") {
    ch.need(c.model.n_layers == 1, "model.n_layers", "minmax_attention has exactly 1 layer");
  }
  ch.need(c.model.d_model >= 1 && c.model.d_model <= 65536, "model.d_model", "must be in [1, 65536]");
  ch.need(c.model.n_heads >= 1 && c.model.n_heads <= 1024, "model.n_heads", "must be in [1, 1024]");
  ch.need(c.model.d_head >= 1 && c.model.d_head <= 65536, "model.d_head", "must be in [1, 65536]");
  if (task && !one_of(c.model.name, task->models)) {
    ch.fail("model.name", "task '" + c.data.task + "' needs model " + join(task->models));
  }
}

// optim.*
void check_optim(const Config& c, Checker& ch) {
  ch.need(c.optim.name == "adamw", "optim.name", "must be one of: adamw");
  ch.need(c.optim.lr > 0 && c.optim.lr < 100, "optim.lr", "must be > 0 (and < 100)");
  ch.need(c.optim.betas.size() == 2 && std::all_of(c.optim.betas.begin(), c.optim.betas.end(),
                                                   [](double b) { return b >= 0 && b < 1; }),
          "optim.betas", "must be two numbers in [0, 1)");
  ch.need(c.optim.eps > 0, "optim.eps", "must be > 0");
  ch.need(c.optim.weight_decay >= 0, "optim.weight_decay", "must be >= 0");
  ch.need(one_of(c.optim.schedule, {"constant", "linear"}), "optim.schedule", "must be constant or linear");
  ch.need(c.optim.warmup_steps >= 0, "optim.warmup_steps", "must be >= 0");
  ch.need(c.optim.grad_clip >= 0, "optim.grad_clip", "must be >= 0 (0 = off)");
}

// train.* (best_metric: one the task reports)
void check_train(const Config& c, Checker& ch) {
  const TaskTraits* task = find_task(c.data.task);
  ch.need(c.train.epochs >= 1, "train.epochs", "must be >= 1");
  ch.need(c.train.batch_size >= 0, "train.batch_size", "must be >= 0 (0 = full batch)");
  ch.need(c.train.eval_every >= 1, "train.eval_every", "must be >= 1");
  ch.need(c.train.checkpoint_every >= 1, "train.checkpoint_every", "must be >= 1");
  ch.need(c.train.keep_every >= 0, "train.keep_every", "must be >= 0 (0 = never)");
  ch.need(one_of(c.train.best_mode, {"min", "max"}), "train.best_mode", "must be min or max");
  if (task) {
    const auto& metrics = task->metrics;
    if (!one_of(c.train.best_metric, metrics)) {
      ch.fail("train.best_metric", "task '" + c.data.task + "' reports: " + join(metrics));
    } else if (one_of(c.train.best_mode, {"min", "max"})) {
      const bool is_loss = c.train.best_metric.find("loss") != std::string::npos ||
                           c.train.best_metric.find("rmse") != std::string::npos ||
                           c.train.best_metric.find("mae") != std::string::npos ||
                           c.train.best_metric.find("ppl") != std::string::npos;
      if (is_loss != (c.train.best_mode == "min")) {
        ch.fail("train.best_mode", "'" + c.train.best_metric + "' improves when it " +
                                       (is_loss ? "falls: use min" : "rises: use max"));
      }
    }
  }
  ch.need(c.train.patience >= 0, "train.patience", "must be >= 0 (0 = off)");
  ch.need(c.train.min_delta >= 0, "train.min_delta", "must be >= 0");
  ch.need(one_of(c.train.progress, {"auto", "bar", "log", "none"}), "train.progress",
          "must be auto, bar, log or none");
  ch.need(c.train.log_every_seconds > 0, "train.log_every_seconds", "must be > 0");
}

// hooks.*, dist.*, and rules across sections
void check_hooks_dist(const Config& c, Checker& ch) {
  const auto& a = c.hooks.attention;
  // the maps, then the internals (store::internal_sites(), in the model's order)
  const std::vector<std::string> map_sites = {"attn.probs", "attn.scores"};
  const std::vector<std::string> all_sites = {"attn.probs", "attn.scores", "embed.word", "embed.position", "embed.type",
                                              "embed.out", "attn.q", "attn.k", "attn.v", "attn.context", "ffn.out",
                                              "block.out"};
  ch.need(std::any_of(a.sites.begin(), a.sites.end(), [&](const std::string& s) { return one_of(s, map_sites); }) &&
              std::all_of(a.sites.begin(), a.sites.end(), [&](const std::string& s) { return one_of(s, all_sites); }) &&
              std::set<std::string>(a.sites.begin(), a.sites.end()).size() == a.sites.size(),
          "hooks.attention.sites",
          "must be distinct sites, attn.probs or attn.scores among them, from: " + join(all_sites, ", "));
  ch.need(one_of(a.internals_dtype, {"float16", "float32"}), "hooks.attention.internals_dtype", "must be float16 or float32");
  ch.need(std::all_of(a.layers.begin(), a.layers.end(),
                      [&](int64_t l) { return l >= 0 && l < c.model.n_layers; }),
          "hooks.attention.layers",
          "layers must be in [0, model.n_layers = " + std::to_string(c.model.n_layers) + ")");
  ch.need(
      std::all_of(a.heads.begin(), a.heads.end(), [&](int64_t h) { return h >= 0 && h < c.model.n_heads; }),
      "hooks.attention.heads",
      "heads must be in [0, model.n_heads = " + std::to_string(c.model.n_heads) + ")");
  ch.need(a.every >= 1, "hooks.attention.every", "must be >= 1");
  ch.need(a.probes >= 1 && a.probes <= 100000, "hooks.attention.probes", "must be in [1, 100000]");
  ch.need(one_of(a.dtype, {"float32", "float16"}), "hooks.attention.dtype", "must be float32 or float16");
  ch.need(a.compression >= 0 && a.compression <= 9, "hooks.attention.compression", "must be in [0, 9]");
  ch.need(a.metrics_every >= 1, "hooks.attention.metrics_every", "must be >= 1");
  ch.need(a.validation_max >= 1, "hooks.attention.validation_max", "must be >= 1");
  ch.need(c.dist.timeout_s > 0 && c.dist.timeout_s <= 86400, "dist.timeout_s", "must be in (0, 86400]");
  ch.need(one_of(c.dist.store, {"tcp", "file"}), "dist.store", "must be tcp or file");
  ch.need(c.dist.store != "file" || !c.dist.file.empty(), "dist.file", "is required with dist.store: file");
  ch.need(c.dist.bucket_mb > 0 && c.dist.bucket_mb <= 4096, "dist.bucket_mb", "must be in (0, 4096]");
  if (c.optim.schedule == "linear" && c.train.batch_size == 0 && c.optim.warmup_steps >= c.train.epochs) {
    ch.fail("optim.warmup_steps",
            "with full-batch training there is one step per epoch, so a linear "
            "schedule needs warmup_steps < train.epochs");
  }
}

}  // namespace

std::vector<std::string> validate(const Config& c, const SourceMap& sources,
                                  const std::map<std::string, std::string>& values) {
  Checker ch{sources, values, {}};
  check_run(c, ch);
  check_data(c, ch);
  check_model(c, ch);
  check_optim(c, ch);
  check_train(c, ch);
  check_hooks_dist(c, ch);
  return ch.problems;
}

}  // namespace attnscope::detail
