// The molecules a task trains on (train/molecule_tasks.h: MoleculeData).
#include <algorithm>
#include <filesystem>
#include <numeric>

#include "analysis/analysis.h"
#include "core/core.h"
#include "train/masking.h"
#include "train/molecule_tasks.h"

namespace attnscope::train {
namespace fs = std::filesystem;

MoleculeData::MoleculeData(const Config& cfg, const TaskTraits& kind)
    : config(cfg),
      task(kind),
      text(!cfg.data.text_col.empty() || kind.kind == TaskKind::CausalLM),
      augment_rng(static_cast<uint64_t>(cfg.run.seed) * 7919 + 17) {
  const auto& d = config.data;
  data::set_max_smiles_length(d.max_smiles_length);
  if (task.kind == TaskKind::CausalLM) {
    read_model_dimensions();
    choose_tokenizer();
    pack_corpus();
    return;
  }
  if (text && task.kind == TaskKind::MaskedLM) {
    for (auto& t : data::read_text_corpus(d.csv, d.text_col)) table.smiles.push_back(std::move(t));
    table.path = d.csv;
    table.line.assign(table.smiles.size(), 0);
  } else if (text) {
    table = data::read_text_csv(d.csv, d.text_col, d.text_pair_col, d.targets);
  } else if (task.kind == TaskKind::MaskedLM) {
    table = data::read_pretraining_corpus(d, &excluded);
  } else {
    table = data::read_molecule_csv(d.csv, d.smiles_col, d.targets, d.invalid_smiles == "error");
  }
  table.keep_first(d.max_rows);
  if (task.kind == TaskKind::MaskedLM) {
    // held out: frac_val of the corpus (seeded); no test split (downstream tasks test)
    split = data::random_split(table.size(), 1.0 - d.frac_val, d.frac_val, static_cast<uint64_t>(config.run.seed));
    split.train.insert(split.train.end(), split.test.begin(), split.test.end());
    split.test.clear();
  } else {
    split = data::config_split(d, table, static_cast<uint64_t>(config.run.seed));
  }
  read_model_dimensions();
  choose_tokenizer();
  encode_rows();
}

// model dimensions: the pretrained model's, else the config's
void MoleculeData::read_model_dimensions() {
  const auto& mc = config.model;
  if (!mc.pretrained.empty()) {
    const RunDir pre{mc.pretrained};
    if (!fs::exists(pre.model_config())) {
      throw UsageError("model.pretrained '" + mc.pretrained + "': no config.json (expected a Hugging Face model directory or "
                       "an attnscope molecule or pretraining run directory)");
    }
    rc = models::read_hf_config(pre.model_config());
    return;
  }
  rc = models::default_config(mc.name);
  rc.num_hidden_layers = mc.n_layers;
  rc.hidden_size = mc.d_model;
  rc.num_attention_heads = mc.n_heads;
  rc.intermediate_size = mc.d_ff > 0 ? mc.d_ff : 4 * mc.d_model;
  rc.max_position_embeddings = mc.max_positions;
  rc.hidden_dropout_prob = mc.dropout;
  rc.attention_probs_dropout_prob = mc.attention_dropout;
  rc.embedding_dropout = mc.dropout;
  rc.layer_norm_eps = mc.layer_norm_eps;
  rc.attn_only = mc.attn_only;
  if (mc.attn_only) rc.intermediate_size = 1;  // never run; its zero weights keep GPT-2's state-dict names
  rc.position_embedding = mc.position_embedding;
}

// tokenizer: a pretrained model's own (vocab.json, + merges.txt for BPE), else built / named
void MoleculeData::choose_tokenizer() {
  const auto& mc = config.model;
  const std::string tok_dir = mc.tokenizer_dir.empty() ? mc.pretrained : mc.tokenizer_dir;
  if (!mc.pretrained.empty()) {
    const RunDir pre{mc.pretrained};
    const bool bpe_model = fs::exists(pre.file(RunDir::kMerges));
    if (fs::exists(pre.vocab()) && (bpe_model != (mc.tokenizer == "bpe"))) {
      throw UsageError("model.tokenizer: '" + mc.tokenizer + "' does not match model.pretrained '" + mc.pretrained +
                       "', whose vocabulary is " + (bpe_model ? "byte-level BPE (vocab.json + merges.txt): use bpe"
                                                              : "atom-level SMILES tokens (vocab.json, no merges.txt): use smiles-regex"));
    }
    if (!mc.tokenizer_dir.empty() && fs::exists(pre.vocab()) && fs::exists(RunDir{mc.tokenizer_dir}.vocab()) &&
        read_file(pre.vocab()) != read_file(RunDir{mc.tokenizer_dir}.vocab())) {
      throw UsageError("model.tokenizer_dir '" + mc.tokenizer_dir + "': its vocab.json differs from model.pretrained '" +
                       mc.pretrained + "'s; the model's embeddings are indexed by its own vocabulary (leave tokenizer_dir empty)");
    }
  }
  if (mc.tokenizer != "smiles-regex") {  // the files of a BPE or WordPiece tokenizer
    tok = data::load_tokenizer(tok_dir);
    const bool wordpiece = tok->kind() == "wordpiece";
    if (wordpiece != (mc.tokenizer == "wordpiece")) {
      throw UsageError("model.tokenizer: '" + mc.tokenizer + "' but '" + tok_dir + "' holds a " + tok->kind() +
                       " tokenizer" + (wordpiece ? " (vocab.txt): use wordpiece" : ": use bpe"));
    }
  } else if (!tok_dir.empty() && fs::exists(RunDir{tok_dir}.vocab())) {
    auto regex = std::make_shared<data::SmilesTokenizer>(data::SmilesTokenizer::load(RunDir{tok_dir}.vocab()));
    regex->set_dir(tok_dir);
    tok = regex;
  } else {  // built here, from the training split
    std::vector<std::string> corpus;
    for (int64_t r : split.train) corpus.push_back(table.smiles[r]);
    tok = std::make_shared<data::SmilesTokenizer>(data::SmilesTokenizer::build(corpus));
  }
  if (mc.pretrained.empty()) {  // the special ids the model's config names
    rc.pad_token_id = tok->pad_id();
    if (rc.causal()) rc.bos_token_id = rc.eos_token_id = tok->eos_id();
  }
  if (mc.pretrained.empty()) {
    rc.vocab_size = tok->vocab_size();
  } else if (tok->vocab_size() != rc.vocab_size && !(tok->kind() != "smiles-regex" && tok->vocab_size() < rc.vocab_size)) {
    throw UsageError("model.pretrained '" + mc.pretrained + "' has a vocabulary of " + std::to_string(rc.vocab_size) +
                     " tokens but the tokenizer has " + std::to_string(tok->vocab_size()) +
                     ": use the model's own vocab.json (and merges.txt for bpe)");
  }
}

void MoleculeData::encode_rows() {
  const auto& d = config.data;
  const int64_t limit = models::max_tokens(rc);
  const bool pairs = !table.pairs.empty();
  const std::string what = text ? "text" : "SMILES";
  for (int64_t r = 0; r < table.size(); ++r) {
    const std::string* pair = pairs ? &table.pairs[r] : nullptr;
    auto full = tok->encode_pair(table.smiles[r], pair, 0);
    if (static_cast<int64_t>(full.ids.size()) > limit) {
      if (d.too_long == "error") {
        throw UsageError("'" + d.csv + "' line " + std::to_string(table.line[r]) + ": " + what + " has " +
                         std::to_string(full.ids.size()) + " tokens, the model takes " + std::to_string(limit) +
                         " (data.too_long: truncate to cut it)");
      }
      ++truncated;
      full = tok->encode_pair(table.smiles[r], pair, limit);
    }
    ids.push_back(std::move(full.ids));
    if (pairs) type_ids.push_back(std::move(full.type_ids));
  }
  if (truncated > 0) {
    log::warn("[data] " + std::to_string(truncated) + " " + what + " inputs longer than the model's " + std::to_string(limit) +
              " tokens were truncated");
  }
}

namespace {
// The text of a clm row as a reader sees its tokens (valid UTF-8 even where a block or a random
// sequence cuts a character's bytes apart, which decode() would pass on).
std::string readable(const data::Tokenizer& tok, const std::vector<int64_t>& ids) {
  std::string out;
  for (int64_t id : ids) out += tok.display(tok.id_token(id));
  return out;
}

// `prefix` random tokens, `span` random tokens, the span again; all prefix + span tokens distinct.
std::vector<int64_t> prefixed_repeat(int64_t prefix, int64_t span, int64_t vocab, uint64_t seed) {
  auto seq = analysis::repeated_random_sequences(1, prefix + span, 0, vocab, seed)[0];
  seq.resize(static_cast<size_t>(prefix + span));
  seq.insert(seq.end(), seq.begin() + prefix, seq.end());
  return seq;
}
}  // namespace

void MoleculeData::generate_sequences() {
  const auto& d = config.data;
  if (d.synthetic_vocab > tok->vocab_size()) {
    throw UsageError("data.synthetic_vocab " + std::to_string(d.synthetic_vocab) + " exceeds the tokenizer's " +
                     std::to_string(tok->vocab_size()) + " tokens");
  }
  // Each sequence is a random prefix of P tokens, a random span of S distinct tokens and the span
  // again (P + 2S tokens), S from [2, span] and P from [0, span]. Measured on plainer data: with
  // one fixed S a head finds the repeat by its distance; with S of at least d tokens a "d tokens
  // back" head serves the circuit as well as a previous-token head (spans of 8..16 grew heads 7
  // and 8 tokens back); and with the first copy always at position 0 a head at position i/2
  // does (sequences of exactly two copies). Short spans and a random prefix leave the circuit of
  // Olsson et al.: a previous-token head, then an induction head attending to the token after the
  // earlier occurrence. Held out: frac_val of the count, from other seeds (the probes come from them).
  const auto seed = static_cast<uint64_t>(config.run.seed);
  const int64_t val = std::max<int64_t>(1, static_cast<int64_t>(static_cast<double>(d.synthetic_count) * d.frac_val));
  auto make = [&](int64_t count, uint64_t stream) {
    for (int64_t i = 0; i < count; ++i) {
      // a finalised (well-mixed) seed per row: consecutive raw seeds would give every row of a
      // split the same span (their high bits agree) and shifted copies of one random stream
      const uint64_t s = mask_seed(seed, stream, static_cast<uint64_t>(i));
      const int64_t span = 2 + static_cast<int64_t>((s >> 33) % static_cast<uint64_t>(d.synthetic_span - 1));
      const int64_t prefix = static_cast<int64_t>((s >> 13) % static_cast<uint64_t>(d.synthetic_span + 1));
      (stream == 1 ? split.train : split.val).push_back(static_cast<int64_t>(ids.size()));
      ids.push_back(prefixed_repeat(prefix, span, d.synthetic_vocab, s));
      synthetic_prefix.push_back(prefix);
      table.smiles.push_back(readable(*tok, ids.back()));
      table.line.push_back(0);
    }
  };
  table.path = "repeated-random";
  split.method = "random";
  make(d.synthetic_count - val, 1);
  make(val, 2);
}

void MoleculeData::refresh_sequences(int64_t epoch) {
  // new tokens for every training sequence (same prefix and span, so batches keep their
  // lengths): a finite set seen every epoch is learnt as a bigram table, which copies on the
  // training sequences and fails on new ones; fresh ones leave only in-context copying
  const auto& d = config.data;
  const auto seed = static_cast<uint64_t>(config.run.seed);
  for (int64_t r : split.train) {
    const uint64_t s = mask_seed(seed, 1000 + static_cast<uint64_t>(epoch), static_cast<uint64_t>(r));
    auto& row = ids[static_cast<size_t>(r)];
    const int64_t prefix = synthetic_prefix[static_cast<size_t>(r)];
    row = prefixed_repeat(prefix, (static_cast<int64_t>(row.size()) - prefix) / 2, d.synthetic_vocab, s);
  }
}

void MoleculeData::pack_corpus() {
  const auto& d = config.data;
  if (!d.synthetic.empty()) return generate_sequences();
  auto docs = data::read_text_corpus(d.csv, d.text_col);
  if (d.max_rows > 0 && static_cast<int64_t>(docs.size()) > d.max_rows) docs.resize(static_cast<size_t>(d.max_rows));
  table.path = d.csv;
  // held out: frac_val of the documents (seeded), packed apart from the training documents
  const auto by_doc = data::random_split(static_cast<int64_t>(docs.size()), 1.0 - d.frac_val, d.frac_val,
                                         static_cast<uint64_t>(config.run.seed));
  const int64_t block = std::min(d.block_size, models::max_tokens(rc));
  auto pack = [&](std::vector<int64_t> doc_rows, std::vector<int64_t>& rows) {
    std::sort(doc_rows.begin(), doc_rows.end());  // corpus order within a part
    std::vector<int64_t> stream;
    for (int64_t r : doc_rows) {
      const auto e = tok->encode_pair(docs[static_cast<size_t>(r)], nullptr, 0);
      stream.insert(stream.end(), e.ids.begin(), e.ids.end());
      stream.push_back(tok->eos_id());  // <|endoftext|> after every document, as GPT-2 was trained
    }
    for (size_t at = 0; at + 1 < stream.size(); at += static_cast<size_t>(block)) {
      const size_t end = std::min(stream.size(), at + static_cast<size_t>(block));
      if (end - at < 2) break;  // nothing to predict
      rows.push_back(static_cast<int64_t>(ids.size()));
      ids.emplace_back(stream.begin() + static_cast<std::ptrdiff_t>(at), stream.begin() + static_cast<std::ptrdiff_t>(end));
      table.smiles.push_back(readable(*tok, ids.back()));
      table.line.push_back(0);
    }
  };
  auto train_docs = by_doc.train;
  train_docs.insert(train_docs.end(), by_doc.test.begin(), by_doc.test.end());
  split.method = "random";
  pack(train_docs, split.train);
  pack(by_doc.val, split.val);
  if (split.train.empty() || split.val.empty()) {
    throw UsageError("'" + d.csv + "': too little text for a training and a held-out block of data.block_size " +
                     std::to_string(block) + " tokens (" + std::to_string(docs.size()) + " documents)");
  }
}

std::string MoleculeData::tokenizer_description() const {
  if (tok->kind() == "bpe" || tok->kind() == "gpt2-bpe") return "byte-level BPE from " + tok->dir();
  if (tok->kind() == "wordpiece") return "WordPiece from " + tok->dir();
  return tok->dir().empty() ? std::string("atom-level SMILES tokens of the training split")
                            : "atom-level SMILES tokens of " + tok->dir() + "/vocab.json";
}

std::vector<int64_t> MoleculeData::pick(const std::vector<int64_t>& rows, const std::vector<int64_t>& positions) {
  std::vector<int64_t> out;
  out.reserve(positions.size());
  for (int64_t i : positions) out.push_back(rows[static_cast<size_t>(i)]);
  return out;
}

std::vector<int64_t> MoleculeData::rows_of(const std::vector<int64_t>& of, const torch::Tensor& idx) const {
  std::vector<int64_t> rows;
  const auto c = idx.contiguous();
  for (int64_t i = 0; i < c.numel(); ++i) rows.push_back(of[c.data_ptr<int64_t>()[i]]);
  return rows;
}

torch::Tensor MoleculeData::targets_of(const std::vector<int64_t>& rows) const {
  const int64_t K = num_targets();
  auto target = torch::empty({static_cast<int64_t>(rows.size()), K});
  for (size_t i = 0; i < rows.size(); ++i) {
    for (int64_t k = 0; k < K; ++k) target[i][k] = table.targets[rows[i] * K + k];
  }
  return target;
}

torch::Tensor MoleculeData::train_targets() const {
  auto all = torch::from_blob(const_cast<float*>(table.targets.data()), {table.size(), num_targets()}, torch::kFloat).clone();
  return all.index_select(0, torch::tensor(split.train));
}

MoleculeData::Batch MoleculeData::make_batch(const std::vector<int64_t>& rows, bool augment) const {
  std::vector<std::vector<int64_t>> enc;
  const int64_t limit = models::max_tokens(rc);
  size_t T = 0;
  for (int64_t r : rows) {
    if (augment) {
      enc.push_back(tok->encode(data::randomized_smiles(table.smiles[r], augment_rng), limit));
    } else {
      enc.push_back(ids[r]);
    }
    T = std::max(T, enc.back().size());
  }
  const int64_t B = static_cast<int64_t>(rows.size()), K = num_targets();
  Batch b;
  b.ids = torch::full({B, static_cast<int64_t>(T)}, tok->pad_id(), torch::kLong);
  b.mask = torch::zeros({B, static_cast<int64_t>(T)}, torch::kLong);
  b.target = torch::empty({B, K});
  auto id = b.ids.accessor<int64_t, 2>();
  auto mask = b.mask.accessor<int64_t, 2>();
  auto tgt = b.target.accessor<float, 2>();
  for (int64_t i = 0; i < B; ++i) {
    for (size_t t = 0; t < enc[i].size(); ++t) id[i][t] = enc[i][t], mask[i][t] = 1;
    for (int64_t k = 0; k < K; ++k) tgt[i][k] = table.targets[rows[i] * K + k];
  }
  if (!type_ids.empty()) {  // sentence pairs (augmentation is for SMILES only)
    b.type_ids = torch::zeros_like(b.ids);
    auto ty = b.type_ids.accessor<int64_t, 2>();
    for (int64_t i = 0; i < B; ++i) {
      const auto& t = type_ids[static_cast<size_t>(rows[i])];
      for (size_t j = 0; j < t.size(); ++j) ty[i][j] = t[j];
    }
  }
  return b;
}

std::vector<torch::Tensor> MoleculeData::epoch_batches(const torch::Tensor& order, int64_t batch_size) const {
  // length bucketing: within windows of 32 batches, molecules are sorted by length and cut into
  // batches, whose order is then shuffled (seeded by the epoch's order): padding stays small
  // while the order remains random
  const int64_t n = order.numel();
  if (batch_size <= 0 || batch_size >= n) return data::make_batches(order, batch_size);
  const auto o = order.contiguous();
  const int64_t* p = o.data_ptr<int64_t>();
  std::vector<std::vector<int64_t>> batches;
  const int64_t window = 32 * batch_size;
  for (int64_t w = 0; w < n; w += window) {
    std::vector<int64_t> chunk(p + w, p + std::min(n, w + window));
    std::stable_sort(chunk.begin(), chunk.end(), [&](int64_t a, int64_t b) {
      return ids[split.train[a]].size() < ids[split.train[b]].size();
    });
    for (size_t i = 0; i < chunk.size(); i += static_cast<size_t>(batch_size)) {
      batches.emplace_back(chunk.begin() + i, chunk.begin() + std::min(chunk.size(), i + static_cast<size_t>(batch_size)));
    }
  }
  std::mt19937_64 rng(static_cast<uint64_t>(p[0]) * 1000003u + static_cast<uint64_t>(n));
  std::shuffle(batches.begin(), batches.end(), rng);
  std::vector<torch::Tensor> out;
  for (auto& b : batches) out.push_back(torch::tensor(b, torch::kLong));
  return out;
}

std::vector<std::vector<int64_t>> MoleculeData::eval_batches(const std::vector<int64_t>& rows) const {
  constexpr int64_t kRows = 64;
  constexpr int64_t kWeights = int64_t{1} << 22;
  const auto n = static_cast<int64_t>(rows.size());
  std::vector<int64_t> order(rows.size());
  std::iota(order.begin(), order.end(), 0);
  auto len = [&](int64_t i) { return static_cast<int64_t>(ids[rows[i]].size()); };
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return len(a) < len(b); });
  std::vector<std::vector<int64_t>> batches;
  for (int64_t i = 0; i < n;) {
    int64_t end = i + 1;  // order[end] is the longest so far (sorted)
    while (end < n && end - i < kRows && (end - i + 1) * rc.num_attention_heads * len(order[end]) * len(order[end]) <= kWeights) ++end;
    batches.emplace_back(order.begin() + i, order.begin() + end);
    i = end;
  }
  return batches;
}

}  // namespace attnscope::train
