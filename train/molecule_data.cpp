// The molecules a task trains on (train/molecule_tasks.h: MoleculeData).
#include <algorithm>
#include <filesystem>
#include <numeric>

#include "core/core.h"
#include "train/molecule_tasks.h"

namespace attnscope::train {
namespace fs = std::filesystem;

MoleculeData::MoleculeData(const Config& cfg, const TaskTraits& kind)
    : config(cfg), task(kind), augment_rng(static_cast<uint64_t>(cfg.run.seed) * 7919 + 17) {
  const auto& d = config.data;
  data::set_max_smiles_length(d.max_smiles_length);
  if (task.kind == TaskKind::MaskedLM) {
    table = data::read_pretraining_corpus(d, &excluded);
    // held out: frac_val of the corpus (seeded); no test split (downstream tasks test)
    split = data::random_split(table.size(), 1.0 - d.frac_val, d.frac_val, static_cast<uint64_t>(config.run.seed));
    split.train.insert(split.train.end(), split.test.begin(), split.test.end());
    split.test.clear();
  } else {
    table = data::read_molecule_csv(d.csv, d.smiles_col, d.targets, d.invalid_smiles == "error");
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
  rc.num_hidden_layers = mc.n_layers;
  rc.hidden_size = mc.d_model;
  rc.num_attention_heads = mc.n_heads;
  rc.intermediate_size = mc.d_ff > 0 ? mc.d_ff : 4 * mc.d_model;
  rc.max_position_embeddings = mc.max_positions;
  rc.hidden_dropout_prob = mc.dropout;
  rc.attention_probs_dropout_prob = mc.attention_dropout;
  rc.layer_norm_eps = mc.layer_norm_eps;
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
  if (mc.tokenizer == "bpe") {
    auto bpe = std::make_shared<data::BpeTokenizer>(data::BpeTokenizer::from_dir(tok_dir));
    bpe->set_dir(tok_dir);
    tok = bpe;
  } else if (!tok_dir.empty() && fs::exists(RunDir{tok_dir}.vocab())) {
    auto regex = std::make_shared<data::SmilesTokenizer>(data::SmilesTokenizer::load(RunDir{tok_dir}.vocab()));
    regex->set_dir(tok_dir);
    tok = regex;
  } else {  // built here, from the training split
    std::vector<std::string> corpus;
    for (int64_t r : split.train) corpus.push_back(table.smiles[r]);
    tok = std::make_shared<data::SmilesTokenizer>(data::SmilesTokenizer::build(corpus));
  }
  if (mc.pretrained.empty()) {
    rc.vocab_size = tok->vocab_size();
  } else if (tok->vocab_size() != rc.vocab_size && !(tok->kind() == "bpe" && tok->vocab_size() < rc.vocab_size)) {
    throw UsageError("model.pretrained '" + mc.pretrained + "' has a vocabulary of " + std::to_string(rc.vocab_size) +
                     " tokens but the tokenizer has " + std::to_string(tok->vocab_size()) +
                     ": use the model's own vocab.json (and merges.txt for bpe)");
  }
}

void MoleculeData::encode_rows() {
  const auto& d = config.data;
  const int64_t limit = models::max_tokens(rc);
  for (int64_t r = 0; r < table.size(); ++r) {
    auto full = tok->encode(table.smiles[r], 0);
    if (static_cast<int64_t>(full.size()) > limit) {
      if (d.too_long == "error") {
        throw UsageError("'" + d.csv + "' line " + std::to_string(table.line[r]) + ": SMILES has " +
                         std::to_string(full.size()) + " tokens, the model takes " + std::to_string(limit) +
                         " (data.too_long: truncate to cut it)");
      }
      ++truncated;
      full = tok->encode(table.smiles[r], limit);
    }
    ids.push_back(std::move(full));
  }
  if (truncated > 0) {
    log::warn("[data] " + std::to_string(truncated) + " SMILES longer than the model's " + std::to_string(limit) +
              " tokens were truncated");
  }
}

std::string MoleculeData::tokenizer_description() const {
  if (tok->kind() == "bpe") return "byte-level BPE from " + tok->dir();
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
