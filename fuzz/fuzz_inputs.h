// Fuzz entries for the files a user hands attnscope beyond weights and tokenizers (included by
// fuzz/fuzz_entries.h; same contract: an exception is an answer, a crash or abort is a bug):
//   fuzz_hf_config     the bytes are a Hugging Face config.json; an accepted config must describe a
//                      buildable model (built when it is small).
//   fuzz_attention_h5  structure-aware: a small valid attention.h5 (made once per process by
//                      store::Writer) edited by the bytes, 4 bytes an edit: which dataset or
//                      attribute, what to do (delete it, replace it by another type or rank or
//                      extents, overwrite values), then every Reader call render and metrics make.
//   fuzz_molecule_csv  the bytes are a MoleculeNet-style CSV read with column smiles and target y.
//   fuzz_request_json  the bytes are the body of a serve request (parse_request: depth, numbers,
//                      UTF-8; then the typed fields the API reads), and also a connection's bytes
//                      for frame_request (a whole request's size never exceeds what arrived, and
//                      framing exactly those bytes gives the same size).
#pragma once

#include <hdf5.h>

#include <cmath>

#include "data/data.h"
#include "models/models.h"
#include "serve/request.h"
#include "store/store.h"

namespace attnscope::fuzz {

inline int fuzz_hf_config(const uint8_t* buf, size_t size) {
  TempFile cfg("config.json");
  models::TransformerConfig c;
  try {
    c = models::read_hf_config(cfg.write(buf, size));
  } catch (const std::exception&) {
    return 0;
  }
  ATTNSCOPE_FUZZ_CHECK(c.vocab_size > 0 && c.hidden_size > 0 && c.num_hidden_layers > 0 && c.intermediate_size > 0);
  ATTNSCOPE_FUZZ_CHECK(c.num_attention_heads > 0 && c.hidden_size % c.num_attention_heads == 0);
  ATTNSCOPE_FUZZ_CHECK(c.pad_token_id >= 0 && c.pad_token_id < c.vocab_size && models::max_tokens(c) >= 3);
  ATTNSCOPE_FUZZ_CHECK(c.layer_norm_eps > 0 && c.hidden_dropout_prob >= 0 && c.hidden_dropout_prob < 1);
  ATTNSCOPE_FUZZ_CHECK(c.attention_probs_dropout_prob >= 0 && c.attention_probs_dropout_prob < 1);
  ATTNSCOPE_FUZZ_CHECK(c.num_labels >= 1 && (c.id2label.empty() || static_cast<int64_t>(c.id2label.size()) == c.num_labels));
  for (int64_t k = 0; k < std::min<int64_t>(c.num_labels, 4); ++k) c.label(k);
  const double D = static_cast<double>(c.hidden_size);
  const double params = D * static_cast<double>(c.vocab_size + c.max_position_embeddings + c.type_vocab_size + c.num_labels) +
                        static_cast<double>(c.num_hidden_layers) * (4 * D * D + 2 * D * static_cast<double>(c.intermediate_size));
  ATTNSCOPE_FUZZ_CHECK(params <= 4.1e9);
  if (params < 2e5 && c.num_hidden_layers <= 4) {  // LibTorch takes every accepted config
    models::RobertaForSequenceClassification m(c);
    torch::NoGradGuard no_grad;
    m->eval();
    const int64_t T = std::min<int64_t>(5, models::max_tokens(c));
    auto ids = torch::full({1, T}, std::min<int64_t>(c.vocab_size - 1, c.pad_token_id + 1), torch::kLong);
    const auto out = m->forward(ids, torch::ones({1, T}, torch::kLong));
    ATTNSCOPE_FUZZ_CHECK(out.size(0) == 1 && out.size(1) == c.num_labels);
  }
  return 0;
}

// ---- attention.h5 ---------------------------------------------------------------------------

// The seed file: 2 epochs, 2 probes of up to 4 tokens, 2 layers x 2 heads, both sites, metrics,
// analyses, pooled vectors and a task array.
inline const std::string& attention_seed() {
  static TempFile file("seed-attention.h5");
  static const bool made = [] {
    store::Header h;
    h.attnscope_version = "fuzz";
    h.config_yaml = "run: {}";
    h.model_json = R"({"name": "roberta"})";
    h.sites = {"attn.probs", "attn.scores"};
    h.layer_ids = {0, 1};
    h.head_ids = {0, 1};
    h.metrics = {"entropy", "focus"};
    h.pooled_dim = 3;
    h.arrays["grid"] = {2, 2};
    store::Probes p;
    p.count = 2;
    p.max_len = 4;
    p.input_ids = {0, 5, 6, 2, 0, 7, 2, 1};
    p.lengths = {4, 3};
    p.tokens = {"<s>", "C", "O", "</s>", "<s>", "N", "</s>", ""};
    p.text = {"CO", "N"};
    p.source = {-1, -1};
    std::filesystem::remove(file.path());
    auto w = store::Writer::create(file.path(), h, p);
    const size_t maps = 2 * 2 * 2 * 4 * 4;
    for (int64_t e = 0; e < 2; ++e) {
      store::SiteMaps m = {{"attn.probs", std::vector<float>(maps, 0.25f)}, {"attn.scores", std::vector<float>(maps, 1.0f)}};
      store::Analyses an = {{"js_prev", std::vector<float>(4, 0.f)},         {"head_js", std::vector<float>(16, 0.f)},
                            {"token_importance", std::vector<float>(8, 0.f)}, {"token_importance_rollout", std::vector<float>(8, 0.f)},
                            {"token_importance_flow", std::vector<float>(8, 0.f)}, {"grad_input", std::vector<float>(8, 0.f)},
                            {"attn_grad", std::vector<float>(8, 0.f)},
                            {"head_importance", std::vector<float>(4, 0.f)},  {"pooled", std::vector<float>(6, 0.f)}};
      w->append_epoch({e, e * 10, 0.0}, m, an);
      w->append_metrics(e, {{"entropy", std::vector<float>(4, 0.5f)}, {"focus", std::vector<float>(4, 0.5f)}});
    }
    w->write_array("grid", std::vector<float>(4, 1.f));
    return true;
  }();
  (void)made;
  return file.path();
}

inline void replace_dataset(hid_t f, const char* path, hid_t type, const std::vector<hsize_t>& dims, const void* data) {
  H5Ldelete(f, path, H5P_DEFAULT);
  const hid_t space = H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr);
  const hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
  H5Pset_create_intermediate_group(lcpl, 1);
  const hid_t d = H5Dcreate2(f, path, type, space, lcpl, H5P_DEFAULT, H5P_DEFAULT);
  if (d >= 0 && data != nullptr) H5Dwrite(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data);
  if (d >= 0) H5Dclose(d);
  H5Pclose(lcpl);
  H5Sclose(space);
}

// One edit of 4 bytes: b0 picks the object, b1 the action, b2 and b3 its numbers.
inline void edit_attention_file(hid_t f, const uint8_t* e) {
  static const char* kDatasets[] = {"probes/input_ids", "probes/lengths", "probes/tokens", "probes/text",
                                    "probes/source_index", "epochs/epoch", "epochs/step", "epochs/wall_time",
                                    "attn/probs", "attn/scores", "best/attn/probs", "best/info", "metrics/epoch",
                                    "metrics/entropy", "analysis/js_prev", "analysis/head_js",
                                    "analysis/token_importance", "pooled", "task/grid", "analysis/js_final"};
  static const char* kAttributes[] = {"layer_ids", "head_ids", "sites", "metrics", "dtype", "pooled_dim", "arrays",
                                      "schema_version", "model"};
  const size_t nd = sizeof(kDatasets) / sizeof(*kDatasets), na = sizeof(kAttributes) / sizeof(*kAttributes);
  const uint8_t which = e[0], action = e[1] % 6, x = e[2], y = e[3];
  if (which % 4 == 3) {  // an attribute: delete it, or a string / an integer of the fuzzer's choosing
    const char* name = kAttributes[(which / 4) % na];
    H5Adelete(f, name);
    if (action == 0) return;
    const hid_t space = H5Screate(H5S_SCALAR);
    if (action % 2 == 1) {
      static const char* kValues[] = {"", "0", "0,1,1", "-1", "x", "0,1,2,3,4", "attn.probs", "attn.q", "float16",
                                      "int8", "entropy,nope", "grid,missing", "99999999999999999999", ",", "0,,1"};
      const hid_t t = H5Tcopy(H5T_C_S1);
      H5Tset_size(t, H5T_VARIABLE);
      const char* v = kValues[(x + y) % (sizeof(kValues) / sizeof(*kValues))];
      const hid_t a = H5Acreate2(f, name, t, space, H5P_DEFAULT, H5P_DEFAULT);
      if (a >= 0) H5Awrite(a, t, &v), H5Aclose(a);
      H5Tclose(t);
    } else {
      const int64_t v = static_cast<int64_t>(static_cast<int8_t>(x)) * (y % 4 == 0 ? 1 : 1000003);
      const hid_t a = H5Acreate2(f, name, H5T_STD_I64LE, space, H5P_DEFAULT, H5P_DEFAULT);
      if (a >= 0) H5Awrite(a, H5T_NATIVE_INT64, &v), H5Aclose(a);
    }
    H5Sclose(space);
    return;
  }
  const char* path = kDatasets[which % nd];
  std::vector<hsize_t> dims;
  const int rank = 1 + y % 6;
  for (int i = 0; i < rank; ++i) dims.push_back(((x >> i) & 1) + ((y >> (i % 8)) & 3));  // extents 0..4
  hsize_t n = 1;
  for (auto d : dims) n *= d;
  switch (action) {
    case 0:
      H5Ldelete(f, path, H5P_DEFAULT);
      break;
    case 1: {  // floats of another shape (some NaN and huge)
      std::vector<float> v(n, static_cast<float>(static_cast<int8_t>(x)));
      if (n > 1) v[1] = std::nanf(""), v[0] = 1e38f;
      replace_dataset(f, path, H5T_NATIVE_FLOAT, dims, v.data());
      break;
    }
    case 2: {  // integers of another shape
      std::vector<int64_t> v(n, static_cast<int64_t>(static_cast<int8_t>(x)) * (y % 3 == 0 ? 1 : 100000));
      replace_dataset(f, path, H5T_NATIVE_INT64, dims, v.data());
      break;
    }
    case 3: {  // strings
      const hid_t t = H5Tcopy(H5T_C_S1);
      H5Tset_size(t, H5T_VARIABLE);
      std::vector<const char*> v(n, "C");
      replace_dataset(f, path, t, dims, v.data());
      H5Tclose(t);
      break;
    }
    case 4: {  // int32 values in place (lengths and ids of the same shape)
      const hid_t d = H5Dopen2(f, path, H5P_DEFAULT);
      if (d < 0) break;
      const hid_t space = H5Dget_space(d);
      const hssize_t count = H5Sget_simple_extent_npoints(space);
      if (count > 0 && count < 4096) {
        std::vector<int32_t> v(static_cast<size_t>(count), static_cast<int32_t>(static_cast<int8_t>(x)) * (y % 2 ? 1 : 70000));
        H5Dwrite(d, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data());
      }
      H5Sclose(space);
      H5Dclose(d);
      break;
    }
    default:  // a group where a dataset belongs
      H5Ldelete(f, path, H5P_DEFAULT);
      {
        const hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
        H5Pset_create_intermediate_group(lcpl, 1);
        const hid_t g = H5Gcreate2(f, path, lcpl, H5P_DEFAULT, H5P_DEFAULT);
        if (g >= 0) H5Gclose(g);
        H5Pclose(lcpl);
      }
  }
}

// What render, the report and metrics read; every size checked against the header.
inline void read_like_render(const store::Reader& r) {
  const auto& h = r.header();
  const auto& p = r.probes();
  const int64_t L = static_cast<int64_t>(h.layer_ids.size()), H = static_cast<int64_t>(h.head_ids.size()), T = p.max_len;
  ATTNSCOPE_FUZZ_CHECK(static_cast<int64_t>(p.lengths.size()) == p.count && static_cast<int64_t>(p.text.size()) == p.count);
  ATTNSCOPE_FUZZ_CHECK(static_cast<int64_t>(p.tokens.size()) == p.count * T);
  for (auto len : p.lengths) ATTNSCOPE_FUZZ_CHECK(len >= 1 && len <= T);
  const auto epochs = r.epochs();
  for (int64_t e = 0; e < static_cast<int64_t>(epochs.size()); ++e) {
    for (const auto& site : h.sites) {
      const auto m = r.map(site, e);
      ATTNSCOPE_FUZZ_CHECK(static_cast<int64_t>(m.size()) == p.count * L * H * T * T);
      if (p.count > 0) ATTNSCOPE_FUZZ_CHECK(static_cast<int64_t>(r.head_map(site, e, p.count - 1, L - 1, H - 1).size()) == T * T);
    }
    for (const auto& a : store::analysis_names()) {
      try {
        r.analysis(a, e);
      } catch (const std::exception&) {
      }
    }
    if (h.pooled_dim > 0) ATTNSCOPE_FUZZ_CHECK(static_cast<int64_t>(r.pooled(e).size()) == p.count * h.pooled_dim);
  }
  const auto me = r.metric_epochs();
  for (const auto& name : h.metrics) {
    ATTNSCOPE_FUZZ_CHECK(r.metric(name).size() == me.size() * static_cast<size_t>(L * H));
  }
  if (r.has_best()) {
    for (const auto& site : h.sites) r.best_map(site);
  }
  for (const auto& [name, shape] : h.arrays) r.array(name);
}

inline int fuzz_attention_h5(const uint8_t* buf, size_t size) {
  if (size > 64) return 0;  // at most 16 edits
  TempFile file("attention.h5");
  std::filesystem::copy_file(attention_seed(), file.path(), std::filesystem::copy_options::overwrite_existing);
  const hid_t f = H5Fopen(file.path().c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  if (f < 0) std::abort();
  for (size_t i = 0; i + 4 <= size; i += 4) edit_attention_file(f, buf + i);
  H5Fclose(f);
  try {
    const store::Reader r(file.path());
    read_like_render(r);
  } catch (const std::exception&) {
  }
  return 0;
}

inline int fuzz_molecule_csv(const uint8_t* buf, size_t size) {
  if (size > 4096) return 0;  // RDKit's parse time grows fast with a SMILES's length
  TempFile csv("molecules.csv");
  csv.write(buf, size);
  for (const bool strict : {false, true}) {
    try {
      const auto t = data::read_molecule_csv(csv.path(), "smiles", {"y"}, strict);
      ATTNSCOPE_FUZZ_CHECK(static_cast<int64_t>(t.smiles.size()) == t.size());
      ATTNSCOPE_FUZZ_CHECK(static_cast<int64_t>(t.targets.size()) == t.size());
      for (const auto& s : t.smiles) ATTNSCOPE_FUZZ_CHECK(!s.empty());
    } catch (const std::exception&) {
    }
  }
  return 0;
}

// The nesting of a JSON value, counted without recursion.
inline int json_depth(const nlohmann::json& j) {
  int deepest = 0;
  std::vector<std::pair<const nlohmann::json*, int>> stack{{&j, 0}};
  while (!stack.empty()) {
    const auto [v, d] = stack.back();
    stack.pop_back();
    if (!v->is_structured()) continue;
    deepest = std::max(deepest, d + 1);
    for (const auto& x : *v) stack.emplace_back(&x, d + 1);
  }
  return deepest;
}

inline int fuzz_request_json(const uint8_t* buf, size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(buf), size);
  try {
    const auto j = serve::parse_request(bytes);
    ATTNSCOPE_FUZZ_CHECK(j.is_object());
    ATTNSCOPE_FUZZ_CHECK(json_depth(j) <= serve::kMaxJsonDepth);
    (void)j.dump(-1, ' ', false, nlohmann::json::error_handler_t::strict);  // every string is UTF-8
    for (const char* key : {"input", "pair", "checkpoint", "encoding"}) {
      try {
        (void)serve::string_field(j, key, false);
      } catch (const serve::RequestError& e) {
        ATTNSCOPE_FUZZ_CHECK(e.status() == 400);
      }
    }
    for (const char* key : {"layer", "head", "query"}) {
      try {
        const int64_t v = serve::int_field(j, key, 0, -5, 1000);
        ATTNSCOPE_FUZZ_CHECK(v >= -5 && v <= 1000);
      } catch (const serve::RequestError& e) {
        ATTNSCOPE_FUZZ_CHECK(e.status() == 400);
      }
    }
  } catch (const serve::RequestError& e) {
    ATTNSCOPE_FUZZ_CHECK(e.status() == 400);
  }
  for (const size_t max_body : {size_t{16}, size_t{1} << 20}) {
    const auto f = serve::frame_request(bytes, 1024, max_body);
    if (f.state == serve::Framing::State::kComplete) {
      ATTNSCOPE_FUZZ_CHECK(f.size > 0 && f.size <= bytes.size());
      const auto again = serve::frame_request(std::string_view(bytes).substr(0, f.size), 1024, max_body);
      ATTNSCOPE_FUZZ_CHECK(again.state == serve::Framing::State::kComplete && again.size == f.size);
    } else if (f.state == serve::Framing::State::kRefused) {
      ATTNSCOPE_FUZZ_CHECK(f.status >= 400 && f.status < 600 && !f.message.empty());
    }
  }
  return 0;
}

}  // namespace attnscope::fuzz
