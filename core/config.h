// The run configuration: plain structs whose member initialisers are the only defaults.
// A YAML file overlays them, then `--set key.path=value` overrides; see core/config.cpp for the
// reader, the validation rules and the documentation of every key (`attnscope config --reference`).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace attnscope {

struct RunConfig {
  std::string name = "run";        // run name; the run directory is out_dir/name unless --out
  std::string out_dir = "runs";    // parent directory of run directories
  int64_t seed = 0;                // drives the data split, the initialisation and every shuffle
  int64_t threads = 0;             // intra-op CPU threads; 0 = all cores
  int64_t blas_threads = 0;        // OpenBLAS threads; 0 = same as threads
  std::string log_level = "info";  // trace | debug | info | warn | error
};

struct DataConfig {
  std::string task = "minmax";      // minmax | regression | classification | multiclass | mlm | clm
  int64_t minmax_numbers = 128;     // min/max operands are 0 .. minmax_numbers-1
  double train_fraction = 1.0 / 3;  // share of the shuffled examples used for training
  // molecular property tasks (regression, classification)
  std::string csv;                           // MoleculeNet-style CSV
  std::string smiles_col = "smiles";         // its SMILES column
  std::string text_col;                      // or: its text column (text input instead of SMILES)
  std::string text_pair_col;                 // with text_col: a second text per row (sentence pairs)
  int64_t max_rows = 0;                      // read only the first N rows / documents (0 = all)
  std::vector<std::string> targets;          // target columns (blank cell = missing label)
  std::string split = "scaffold";            // scaffold | random | file
  std::string split_file;                    // with split: file (attnscope split writes one)
  double frac_train = 0.8, frac_val = 0.1;   // scaffold / random split fractions; the rest is test
  std::string invalid_smiles = "drop";       // drop (warn) | error
  int64_t max_smiles_length = 1000;          // longer SMILES are not parsed: dropped like unparsable ones
  std::string too_long = "truncate";         // SMILES longer than the model's positions: truncate | error
  bool augment = false;                      // randomised SMILES of the training molecules each epoch
  bool pos_weight = false;                   // classification: weight positives by negatives/positives per task
  int64_t num_classes = 0;                   // multiclass: labels 0..num_classes-1 (0 = largest label + 1)
  // mlm (masked-LM pretraining): data.csv is the corpus (one SMILES per line, or a CSV column)
  std::vector<std::string> exclude;          // files whose molecules are removed from the corpus
  double mlm_probability = 0.15;             // share of tokens predicted (80 % <mask>, 10 % random, 10 % kept)
  // clm (causal-LM): the corpus's tokens packed into blocks of block_size tokens
  int64_t block_size = 128;
  // clm on generated sequences instead of a corpus (the induction-head experiment)
  std::string synthetic;             // "" | repeated-random
  int64_t synthetic_count = 10000;   // sequences (frac_val of them held out)
  int64_t synthetic_span = 16;       // each: a random span of this many tokens, then its repetition
  int64_t synthetic_vocab = 1000;    // tokens drawn from ids 0..N-1 of the tokenizer
};

struct ModelConfig {
  std::string name = "minmax_attention";  // minmax_attention | roberta | bert | gpt2
  int64_t n_layers = 1;                   // attention layers (minmax_attention: exactly 1)
  int64_t d_model = 32;                   // residual stream width
  int64_t n_heads = 2;                    // attention heads
  int64_t d_head = 16;                    // width of each head's Q, K, V (minmax_attention)
  bool fast_path = true;  // train/evaluate through the fused kernel (same maths as the module)
  // roberta
  int64_t d_ff = 0;                       // intermediate (feed-forward) width; 0 = 4 * d_model
  int64_t max_positions = 514;            // position embeddings (RoBERTa: tokens + pad_id + 1)
  bool attn_only = false;                 // gpt2: attention-only blocks (no MLP), as Olsson et al.'s toy models
  std::string position_embedding = "absolute";  // gpt2: absolute (learned wpe) | rotary (RoFormer)
  double dropout = 0.1;                   // hidden dropout
  double attention_dropout = 0.1;         // attention-probability dropout
  double layer_norm_eps = 1e-5;
  std::string tokenizer = "smiles-regex"; // smiles-regex (vocabulary built from the training SMILES) | bpe | wordpiece
  std::string tokenizer_dir;              // bpe: vocab.json + merges.txt; wordpiece: vocab.txt (default: model.pretrained)
  std::string pretrained;                 // Hugging Face or attnscope run directory to start from ("" = from scratch)
  int64_t freeze_layers = 0;              // freeze the embeddings and the first N encoder layers
  bool reinit_heads = false;              // a pretrained task head of another size is re-initialised
};

struct OptimConfig {
  std::string name = "adamw";             // adamw
  double lr = 1e-3;                       // peak learning rate
  std::vector<double> betas = {0.9, 0.999};  // AdamW (beta1, beta2)
  double eps = 1e-8;                      // AdamW epsilon
  double weight_decay = 0.01;             // decoupled weight decay, applied to all parameters
  std::string schedule = "constant";      // constant | linear (warmup then linear decay to 0)
  int64_t warmup_steps = 0;               // linear warmup from 0 over this many steps
  double grad_clip = 0.0;                 // max global gradient L2 norm; 0 = off
  std::vector<std::string> no_decay;      // parameter-name suffixes without weight decay (HF: bias, LayerNorm.weight)
};

struct TrainConfig {
  int64_t epochs = 10;            // training epochs
  int64_t batch_size = 0;         // examples per step; 0 = full batch
  int64_t eval_every = 1;         // evaluate every N epochs (the last epoch is always evaluated)
  int64_t checkpoint_every = 10;  // write checkpoints/last.pt every N epochs (and at the end)
  int64_t keep_every = 0;         // also keep checkpoints/epoch-NNNNNN.pt every N epochs; 0 = never
  std::string best_metric = "val_loss";  // metric that selects checkpoints/best.pt
  std::string best_mode = "min";         // min | max: direction of improvement of best_metric
  int64_t patience = 0;      // early stopping: evaluations without improvement; 0 = off
  double min_delta = 0.0;    // smallest change of best_metric that counts as an improvement
  std::string progress = "auto";  // auto | bar | log | none
  double log_every_seconds = 10.0;  // cadence of plain progress lines when not on a terminal
};

struct AttentionHookConfig {
  bool enabled = false;  // record attention into RUN_DIR/attention.h5
  // tap sites to store: the maps (attn.probs, attn.scores) and model internals (embed.word,
  // embed.position, embed.type, embed.out, attn.q, attn.k, attn.v, attn.context, ffn.out, block.out)
  std::vector<std::string> sites = {"attn.probs", "attn.scores"};
  std::vector<int64_t> layers;   // layers to store; empty = all
  std::vector<int64_t> heads;    // heads to store; empty = all
  int64_t every = 10;            // record epoch 0, every N epochs and the last (best: /best)
  int64_t probes = 64;           // probe examples drawn deterministically from the validation split
  std::string probe_file;        // or: a file of probe inputs, one per line (token ids)
  std::string dtype = "float32";  // float32 | float16 storage of the maps
  std::string internals_dtype = "float16";  // float16 | float32 storage of the internal sites (vectors: half the bytes)
  int64_t compression = 4;       // gzip level 0-9 (0 = none)
  bool metrics = true;           // per-head metrics over the whole validation split
  int64_t metrics_every = 1;     // ... every N epochs (and at recorded epochs)
  bool pooled = true;            // also store the probes' pooled (readout) vectors, for projections
  bool validation_vectors = true;  // ... and every validation example's, with the model's outputs
  int64_t validation_max = 5000;   // at most this many validation examples (evenly spread)
};

struct HooksConfig {
  AttentionHookConfig attention;
};

// Distributed data-parallel training (README: distributed training); used when a run has more
// than one rank (--nproc-per-node, or the torchrun environment).
struct DistConfig {
  double timeout_s = 1800;         // rendezvous and every collective give up after this long
  std::string store = "tcp";       // tcp (rank 0 hosts a c10d TCPStore at the master) | file
  std::string file;                // store: file, a path every rank can reach (shared filesystem)
  double bucket_mb = 25;           // gradient all-reduce bucket size (DDP's default, 25 MB)
};

struct Config {
  RunConfig run;
  DataConfig data;
  ModelConfig model;
  OptimConfig optim;
  TrainConfig train;
  HooksConfig hooks;
  DistConfig dist;
};

// Where each key's value came from ("configs/minmax.yaml:12", "--set", "default").
using SourceMap = std::map<std::string, std::string>;

struct ResolvedConfig {
  Config config;
  SourceMap sources;
};

// Reads `path` (empty: defaults only), applies `overrides` ("key.path=value"), validates.
// Throws ConfigError listing every problem found (unknown keys, types, ranges, combinations).
ResolvedConfig resolve_config(const std::string& path, const std::vector<std::string>& overrides);

// The complete config as YAML (every key, also defaults).
std::string to_yaml(const Config& config);

// Keys whose values differ between two configs, as "key: old -> new". Keys that may change on
// resume (epochs, cadences, progress, logging, threads, names) are skipped when `resume_only`.
std::vector<std::string> config_differences(const Config& a, const Config& b, bool resume_only);

// Parses YAML text written by to_yaml (e.g. from a checkpoint); throws ConfigError.
Config config_from_yaml(const std::string& text, const std::string& origin);

// Markdown table: key, default, meaning (the README's config reference).
std::string config_reference_markdown();

// FNV-1a hash of to_yaml() restricted to the keys that matter for resume.
uint64_t config_hash(const Config& config);

}  // namespace attnscope
