// The layout of schema 1 (store/h5.h): the root attributes of the header, the probe datasets,
// the analysis row shapes, and the schema check, written and read in one place.
#include <algorithm>

#include "store/h5.h"

namespace attnscope::store {

const std::vector<std::string>& analysis_names() {
  static const std::vector<std::string> names = {"js_prev", "head_js", "token_importance", "token_importance_rollout",
                                                 "token_importance_flow", "head_importance", "grad_input", "attn_grad"};
  return names;
}

const std::vector<std::string>& internal_sites() {
  static const std::vector<std::string> names = {"embed.word", "embed.position", "embed.type", "embed.out", "attn.q",
                                                 "attn.k", "attn.v", "attn.context", "ffn.out", "block.out"};
  return names;
}

int internal_rank(const std::string& site) {
  if (site.rfind("embed.", 0) == 0) return 1;
  if (site.rfind("attn.", 0) == 0) return 3;
  return 2;
}

namespace detail {
namespace {

std::vector<int64_t> split_ints(const std::string& s, const char* attribute = "a list attribute") {
  std::vector<int64_t> out;
  for (const auto& p : split(s)) {
    size_t used = 0;
    int64_t v = -1;
    try {
      v = std::stoll(p, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != p.size() || v < 0) {
      throw UsageError("'" + g_path + "': attribute '" + attribute + "' must list integers >= 0, got '" + s.substr(0, 80) + "'");
    }
    out.push_back(v);
  }
  return out;
}

// The shapes of the datasets under `group` that the header's attribute `attribute` names (the
// /task arrays; the /internals rows, less their epoch axis).
std::map<std::string, std::vector<int64_t>> read_shapes(hid_t file, const char* attribute, const std::string& group,
                                                        bool epoch_axis) {
  std::map<std::string, std::vector<int64_t>> shapes;
  if (!has_attr(file, attribute) || read_attr_string(file, attribute).empty()) return shapes;
  for (const auto& name : split(read_attr_string(file, attribute))) {
    const std::string path = group + "/" + (epoch_axis ? site_path(name) : name);
    if (!has_link(file, group) || !has_link(file, path)) {
      throw UsageError("'" + g_path + "' is not a usable attention file: attribute '" + attribute + "' names '" + name +
                       "' but dataset '" + path + "' is missing");
    }
    Hid d = open_dataset(file, path);
    std::vector<int64_t> shape;
    for (hsize_t x : dims_of(d)) shape.push_back(static_cast<int64_t>(x));
    if (epoch_axis && !shape.empty()) shape.erase(shape.begin());
    shapes[name] = shape;
  }
  return shapes;
}

}  // namespace

std::string site_path(const std::string& site) {
  std::string p = site;
  std::replace(p.begin(), p.end(), '.', '/');
  return p;
}

std::vector<hsize_t> analysis_shape(const std::string& name, hsize_t P, hsize_t L, hsize_t H, hsize_t T) {
  if (name == "js_prev" || name == "head_importance") return {L, H};
  if (name == "head_js") return {L * H, L * H};
  if (name == "attn_grad") return {P, L * H};
  return {P, T};  // token_importance, token_importance_rollout, token_importance_flow, grad_input
}

void write_header(hid_t f, const Header& header) {
  write_attr_int(f, "schema_version", kSchemaVersion);
  write_attr_string(f, "attnscope_version", header.attnscope_version);
  write_attr_string(f, "config", header.config_yaml);
  write_attr_string(f, "model", header.model_json);
  if (!header.task.empty()) write_attr_string(f, "task", header.task);
  write_attr_string(f, "sites", join(header.sites, ","));
  write_attr_string(f, "layer_ids", join(header.layer_ids, ","));
  write_attr_string(f, "head_ids", join(header.head_ids, ","));
  write_attr_string(f, "metrics", join(header.metrics, ","));
  write_attr_string(f, "dtype", header.dtype);
  write_attr_int(f, "compression", header.compression);
  write_attr_int(f, "pooled_dim", header.pooled_dim);
  write_attr_int(f, "val_count", header.val_count);
  write_attr_int(f, "val_targets", header.val_targets);
  write_attr_int(f, "val_outputs", header.val_outputs);
  std::vector<std::string> array_names;
  for (const auto& [name, shape] : header.arrays) array_names.push_back(name);
  write_attr_string(f, "arrays", join(array_names, ","));
  std::vector<std::string> internal_names;
  for (const auto& [name, shape] : header.internals) internal_names.push_back(name);
  write_attr_string(f, "internals", join(internal_names, ","));
  write_attr_string(f, "internals_dtype", header.internals_dtype);
  write_attr_string(f, "padding", "attention maps are padded to the longest probe with zeros; "
                                  "probes/lengths gives each probe's real length");
}

void write_probes(hid_t f, const Probes& probes) {
  const hsize_t P = static_cast<hsize_t>(probes.count), T = static_cast<hsize_t>(probes.max_len);
  Hid str = vlen_string_type();
  create_dataset(f, "probes/input_ids", H5T_STD_I64LE, {P, T}, {}, false, 0);
  create_dataset(f, "probes/lengths", H5T_STD_I32LE, {P}, {}, false, 0);
  create_dataset(f, "probes/source_index", H5T_STD_I64LE, {P}, {}, false, 0);
  create_dataset(f, "probes/tokens", str, {P, T}, {}, false, 0);
  create_dataset(f, "probes/text", str, {P}, {}, false, 0);
  write_all(f, "probes/input_ids", H5T_NATIVE_INT64, probes.input_ids.data());
  write_all(f, "probes/lengths", H5T_NATIVE_INT32, probes.lengths.data());
  write_all(f, "probes/source_index", H5T_NATIVE_INT64, probes.source.data());
  std::vector<const char*> tok, txt;
  for (const auto& s : probes.tokens) tok.push_back(s.c_str());
  for (const auto& s : probes.text) txt.push_back(s.c_str());
  write_all(f, "probes/tokens", str, tok.data());
  write_all(f, "probes/text", str, txt.data());
}

void write_validation(hid_t f, const Header& h, const Validation& v) {
  if (h.val_count <= 0) return;
  const hsize_t N = static_cast<hsize_t>(h.val_count), K = static_cast<hsize_t>(h.val_targets);
  Hid str = vlen_string_type();
  create_dataset(f, "validation/text", str, {N}, {}, false, 0);
  std::vector<const char*> txt;
  for (const auto& s : v.text) txt.push_back(s.c_str());
  write_all(f, "validation/text", str, txt.data());
  if (K > 0) {
    create_dataset(f, "validation/target", H5T_IEEE_F32LE, {N, K}, {}, false, 0);
    write_all(f, "validation/target", H5T_NATIVE_FLOAT, v.target.data());
  }
}

Validation read_validation(hid_t file, const Header& h) {
  Validation v;
  if (h.val_count <= 0) return v;
  v.text = read_strings(file, "validation/text");
  if (h.val_targets > 0) v.target = read_all<float>(file, "validation/target", H5T_NATIVE_FLOAT);
  return v;
}

Header read_header(hid_t file) {
  Header h;
  h.attnscope_version = read_attr_string(file, "attnscope_version");
  h.config_yaml = read_attr_string(file, "config");
  h.model_json = read_attr_string(file, "model");
  if (has_attr(file, "task")) h.task = read_attr_string(file, "task");  // older files name no task
  h.sites = split(read_attr_string(file, "sites"));
  h.layer_ids = split_ints(read_attr_string(file, "layer_ids"), "layer_ids");
  h.head_ids = split_ints(read_attr_string(file, "head_ids"), "head_ids");
  h.metrics = split(read_attr_string(file, "metrics"));
  h.dtype = read_attr_string(file, "dtype");
  h.compression = read_attr_int(file, "compression");
  if (has_attr(file, "pooled_dim")) h.pooled_dim = read_attr_int(file, "pooled_dim");
  if (has_attr(file, "val_count")) h.val_count = read_attr_int(file, "val_count");  // (older files: none)
  if (has_attr(file, "val_targets")) h.val_targets = read_attr_int(file, "val_targets");
  if (has_attr(file, "val_outputs")) h.val_outputs = read_attr_int(file, "val_outputs");
  h.arrays = read_shapes(file, "arrays", "task", false);
  h.internals = read_shapes(file, "internals", "internals", true);  // (older files: none)
  if (has_attr(file, "internals_dtype")) h.internals_dtype = read_attr_string(file, "internals_dtype");
  return h;
}

Probes read_probes(hid_t file) {
  Probes p;
  p.input_ids = read_all<int64_t>(file, "probes/input_ids", H5T_NATIVE_INT64);
  p.lengths = read_all<int32_t>(file, "probes/lengths", H5T_NATIVE_INT32);
  p.source = read_all<int64_t>(file, "probes/source_index", H5T_NATIVE_INT64);
  p.tokens = read_strings(file, "probes/tokens");
  p.text = read_strings(file, "probes/text");
  p.count = static_cast<int64_t>(p.lengths.size());
  p.max_len = p.count ? static_cast<int64_t>(p.input_ids.size()) / p.count : 0;
  return p;
}

void check_schema(hid_t file, const std::string& path) {
  if (!has_attr(file, "schema_version")) {
    throw UsageError("'" + path + "' is not an attnscope attention file (no schema_version attribute)");
  }
  const int64_t v = read_attr_int(file, "schema_version");
  if (v > kSchemaVersion) {
    throw UsageError("'" + path + "' has attention schema version " + std::to_string(v) + "; this attnscope reads up to " +
                     std::to_string(kSchemaVersion) + ": use a newer attnscope");
  }
}

}  // namespace detail
}  // namespace attnscope::store
