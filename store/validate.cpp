// Validation of an attention file before it is read (store/h5.h): every dataset the reader uses
// is checked for presence, type, rank and extents against the header, and the probe lengths the
// readers index with, so that a damaged or foreign file is refused with a message naming it.
#include <algorithm>

#include "store/h5.h"

namespace attnscope::store::detail {
namespace {

// A dataset's shape and type as the layout says: `dims` with -1 for "any" (the epoch and metrics
// axes, which may hold more rows than are complete, are checked against their index after).
struct Expect {
  std::string path;
  H5T_class_t type;
  std::vector<int64_t> dims;
};

[[noreturn]] void bad_dataset(const std::string& path, const std::string& what) {
  throw UsageError("'" + g_path + "' is not a usable attention file: dataset '" + path + "' " + what);
}

void need(bool good, const std::string& what) {
  if (!good) throw UsageError("'" + g_path + "' is not a usable attention file: " + what);
}

// "[2,3]"; -1 (any extent) as "*".
std::string shape_text(const std::vector<int64_t>& d) {
  std::vector<std::string> parts;
  for (int64_t x : d) parts.push_back(x < 0 ? std::string("*") : std::to_string(x));
  return "[" + join(parts, ",") + "]";
}

std::string shape_text(const std::vector<hsize_t>& d) {
  std::vector<std::string> parts;
  for (hsize_t x : d) parts.push_back(std::to_string(x));
  return "[" + join(parts, ",") + "]";
}

void check_type(hid_t d, const Expect& e) {
  Hid t(H5Dget_type(d), H5Tclose);
  const H5T_class_t cls = t.get() < 0 ? H5T_NO_CLASS : H5Tget_class(t);
  if (cls != e.type) {
    const char* want = e.type == H5T_INTEGER ? "integer" : e.type == H5T_FLOAT ? "float" : "string";
    bad_dataset(e.path, std::string("has the wrong type: expected ") + want + " values");
  }
  if (cls == H5T_STRING && H5Tis_variable_str(t) <= 0) bad_dataset(e.path, "holds fixed-length strings; expected variable-length");
}

// Checks presence, type class, rank and extents; returns the dims.
std::vector<hsize_t> check_dataset(hid_t file, const Expect& e) {
  if (!has_link(file, e.path.substr(0, e.path.find('/'))) || !has_link(file, e.path)) bad_dataset(e.path, "is missing");
  Hid d(H5Dopen2(file, e.path.c_str(), H5P_DEFAULT), H5Dclose);
  if (d.get() < 0) bad_dataset(e.path, "cannot be opened (not a dataset, or damaged)");
  check_type(d, e);
  const auto dims = dims_of(d);
  bool fits = dims.size() == e.dims.size();
  for (size_t i = 0; fits && i < dims.size(); ++i) fits = e.dims[i] < 0 || dims[i] == static_cast<hsize_t>(e.dims[i]);
  if (!fits) bad_dataset(e.path, "has shape " + shape_text(dims) + "; the file's header and probes say " + shape_text(e.dims));
  return dims;
}

void validate_attributes(const Header& h) {
  need(h.dtype == "float32" || h.dtype == "float16", "attribute 'dtype' is '" + h.dtype + "' (float32 or float16)");
  need(!h.layer_ids.empty() && !h.head_ids.empty(), "attributes 'layer_ids' and 'head_ids' list no layer or head");
  need(h.layer_ids.size() <= 4096 && h.head_ids.size() <= 4096, "more than 4096 layers or heads in its header");
  need(h.pooled_dim >= 0 && h.pooled_dim <= (1 << 20), "attribute 'pooled_dim' is " + std::to_string(h.pooled_dim));
  need(h.val_count >= 0 && h.val_count <= (1 << 24) && (h.val_count == 0 || h.pooled_dim > 0),
       "attribute 'val_count' is " + std::to_string(h.val_count) + " (0..2^24, and a pooled_dim with it)");
  need(h.val_targets >= 0 && h.val_targets <= 4096 && h.val_outputs >= 0 && h.val_outputs <= (1 << 20),
       "attributes 'val_targets' / 'val_outputs' are " + std::to_string(h.val_targets) + " / " + std::to_string(h.val_outputs));
  for (const auto& site : h.sites) {
    need(site == kProbs || site == kScores, "attribute 'sites' names an unknown site '" + site + "'");
  }
  need(h.internals_dtype == "float32" || h.internals_dtype == "float16",
       "attribute 'internals_dtype' is '" + h.internals_dtype + "' (float32 or float16)");
  for (const auto& [site, shape] : h.internals) {
    const auto& known = internal_sites();
    need(std::find(known.begin(), known.end(), site) != known.end(), "attribute 'internals' names an unknown site '" + site + "'");
  }
}

// The internal sites: [*, P, (L, (H,)) T, width], as many epochs as epochs/epoch at least.
void validate_internals(hid_t file, const Header& h, int64_t P, int64_t L, int64_t H, int64_t T, int64_t E) {
  for (const auto& [site, shape] : h.internals) {
    const int rank = internal_rank(site);
    std::vector<int64_t> want = {-1, P};
    if (rank >= 2) want.push_back(L);
    if (rank >= 3) want.push_back(H);
    want.push_back(T);
    want.push_back(-1);  // the width: D, or d per head
    const auto d = check_dataset(file, {"internals/" + site_path(site), H5T_FLOAT, want});
    need(static_cast<int64_t>(d[0]) >= E, "dataset 'internals/" + site_path(site) + "' holds fewer epochs than epochs/epoch");
  }
}

// The epoch index, the maps and the best ones.
void validate_maps(hid_t file, const Header& h, int64_t P, int64_t L, int64_t H, int64_t T) {
  const auto e = check_dataset(file, {"epochs/epoch", H5T_INTEGER, {-1}});
  const int64_t E = static_cast<int64_t>(e[0]);
  // the writer appends step and wall_time before the epoch index (flushed in between): a live run's
  // file, or one killed between the two, holds one row more of them
  for (const auto& [path, type] : {std::pair<const char*, H5T_class_t>{"epochs/step", H5T_INTEGER}, {"epochs/wall_time", H5T_FLOAT}}) {
    const auto d = check_dataset(file, {path, type, {-1}});
    need(static_cast<int64_t>(d[0]) >= E, std::string("dataset '") + path + "' holds fewer epochs than epochs/epoch");
  }
  for (const auto& site : h.sites) {
    const auto d = check_dataset(file, {site_path(site), H5T_FLOAT, {-1, P, L, H, T, T}});
    need(static_cast<int64_t>(d[0]) >= E, "dataset '" + site_path(site) + "' holds fewer epochs than epochs/epoch");
    if (has_link(file, "best")) check_dataset(file, {"best/" + site_path(site), H5T_FLOAT, {P, L, H, T, T}});
  }
  if (has_link(file, "best")) check_dataset(file, {"best/info", H5T_FLOAT, {3}});
}

void validate_metrics(hid_t file, const Header& h, int64_t L, int64_t H) {
  const auto m = check_dataset(file, {"metrics/epoch", H5T_INTEGER, {-1}});
  for (const auto& name : h.metrics) {
    const auto d = check_dataset(file, {"metrics/" + name, H5T_FLOAT, {-1, L, H}});
    need(d[0] >= m[0], "dataset 'metrics/" + name + "' holds fewer rows than metrics/epoch");
  }
}

// The analyses present (older files lack newer ones) and the pooled vectors.
void validate_analyses(hid_t file, const Header& h, int64_t P, int64_t L, int64_t H, int64_t T) {
  if (has_link(file, "analysis")) {
    for (const auto& name : analysis_names()) {
      const std::string path = "analysis/" + name;
      if (!has_link(file, path)) continue;
      const auto row = analysis_shape(name, P, L, H, T);
      check_dataset(file, {path, H5T_FLOAT, {-1, static_cast<int64_t>(row[0]), static_cast<int64_t>(row[1])}});
    }
    if (has_link(file, "analysis/js_final")) check_dataset(file, {"analysis/js_final", H5T_FLOAT, {-1, L, H}});
  }
  if (h.pooled_dim > 0) check_dataset(file, {"pooled", H5T_FLOAT, {-1, P, h.pooled_dim}});
  if (h.val_count > 0) {
    const int64_t N = h.val_count;
    check_dataset(file, {"validation/text", H5T_STRING, {N}});
    if (h.val_targets > 0) check_dataset(file, {"validation/target", H5T_FLOAT, {N, h.val_targets}});
    check_dataset(file, {"validation/pooled", H5T_FLOAT, {-1, N, h.pooled_dim}});
    if (h.val_outputs > 0) check_dataset(file, {"validation/output", H5T_FLOAT, {-1, N, h.val_outputs}});
  }
}

}  // namespace

void validate_layout(hid_t file, const Header& h) {
  validate_attributes(h);
  const int64_t L = static_cast<int64_t>(h.layer_ids.size()), H = static_cast<int64_t>(h.head_ids.size());
  const auto ids = check_dataset(file, {"probes/input_ids", H5T_INTEGER, {-1, -1}});
  const int64_t P = static_cast<int64_t>(ids[0]), T = static_cast<int64_t>(ids[1]);
  need(T <= 1 << 16, "probes are " + std::to_string(T) + " tokens long (at most 65536)");
  check_dataset(file, {"probes/lengths", H5T_INTEGER, {P}});
  check_dataset(file, {"probes/source_index", H5T_INTEGER, {P}});
  check_dataset(file, {"probes/tokens", H5T_STRING, {P, T}});
  check_dataset(file, {"probes/text", H5T_STRING, {P}});
  validate_maps(file, h, P, L, H, T);
  validate_metrics(file, h, L, H);
  validate_analyses(file, h, P, L, H, T);
  validate_internals(file, h, P, L, H, T, static_cast<int64_t>(dims_of(open_dataset(file, "epochs/epoch"))[0]));
  for (const auto& [name, shape] : h.arrays) check_dataset(file, {"task/" + name, H5T_FLOAT, shape});
}

void validate_probes(const Probes& p) {
  for (int64_t i = 0; i < p.count; ++i) {
    if (p.lengths[i] < 1 || p.lengths[i] > p.max_len) {
      throw UsageError("'" + g_path + "' is not a usable attention file: dataset 'probes/lengths' holds " +
                       std::to_string(p.lengths[i]) + " for probe " + std::to_string(i) + "; lengths are 1.." +
                       std::to_string(p.max_len) + " (the width of probes/input_ids)");
    }
  }
}

}  // namespace attnscope::store::detail
