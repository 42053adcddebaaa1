// HDF5 implementation of store/store.h (HDF5 C API, SWMR).
#include "store/store.h"

#include <hdf5.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <limits>
#include <functional>
#include <stdexcept>

#include "core/core.h"

namespace attnscope::store {
namespace {

// RAII for an hid_t and the function that closes it.
class Hid {
 public:
  Hid() = default;
  Hid(hid_t id, herr_t (*close)(hid_t)) : id_(id), close_(close) {}
  Hid(Hid&& o) noexcept : id_(o.id_), close_(o.close_) { o.id_ = -1; }
  Hid& operator=(Hid&& o) noexcept {
    reset();
    id_ = o.id_;
    close_ = o.close_;
    o.id_ = -1;
    return *this;
  }
  ~Hid() { reset(); }
  void reset() {
    if (id_ >= 0 && close_ != nullptr) close_(id_);
    id_ = -1;
  }
  hid_t get() const { return id_; }
  operator hid_t() const { return id_; }

 private:
  hid_t id_ = -1;
  herr_t (*close_)(hid_t) = nullptr;
};

thread_local std::string g_path;  // for messages (the recorder writes from its own thread)

// An HDF5 call that failed: on a file the user named (damaged, foreign, or a full disk while
// writing), so a UsageError naming it (exit 2).
template <class T>
T ok(T id_or_rc, const std::string& what) {
  if (id_or_rc < 0) {
    const int e = errno;  // what the failed write left (HDF5 reports no cause of its own)
    if (e == ENOSPC || e == EFBIG || e == EDQUOT || e == EIO || e == EROFS || e == EACCES) {
      throw UsageError("'" + g_path + "': HDF5 " + what + " failed: " + std::strerror(e));
    }
    throw UsageError("'" + g_path + "': HDF5 " + what + " failed (a damaged file, one not written by attnscope, or no space left?)");
  }
  return id_or_rc;
}

struct Quiet {  // HDF5 prints its error stack by default; errors become exceptions here instead
  Quiet() {
    // No library clean-up at exit: after a failed write (a full disk) it retried the file's flush
    // in exit() and crashed; every file is closed by its owner (Hid) before then.
    H5dont_atexit();
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  }
};
const Quiet quiet;

Hid vlen_string_type() {
  Hid t(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_size(t, H5T_VARIABLE);
  H5Tset_cset(t, H5T_CSET_UTF8);
  return t;
}

Hid half_type() {  // IEEE binary16: what h5py reads as numpy.float16
  Hid t(H5Tcopy(H5T_IEEE_F32LE), H5Tclose);
  ok(H5Tset_fields(t, 15, 10, 5, 0, 10), "float16 fields");
  ok(H5Tset_size(t, 2), "float16 size");
  ok(H5Tset_ebias(t, 15), "float16 bias");
  return t;
}

void write_attr_string(hid_t obj, const char* name, const std::string& value) {
  Hid t = vlen_string_type();
  Hid space(H5Screate(H5S_SCALAR), H5Sclose);
  Hid a(ok(H5Acreate2(obj, name, t, space, H5P_DEFAULT, H5P_DEFAULT), std::string("attribute ") + name), H5Aclose);
  const char* p = value.c_str();
  ok(H5Awrite(a, t, &p), "attribute write");
}

void write_attr_int(hid_t obj, const char* name, int64_t value) {
  Hid space(H5Screate(H5S_SCALAR), H5Sclose);
  Hid a(ok(H5Acreate2(obj, name, H5T_STD_I64LE, space, H5P_DEFAULT, H5P_DEFAULT), name), H5Aclose);
  ok(H5Awrite(a, H5T_NATIVE_INT64, &value), "attribute write");
}

// An attribute's type class must be `cls` (a string read as an integer, or the reverse, is refused).
void check_attr_class(hid_t a, const char* name, H5T_class_t cls) {
  Hid t(H5Aget_type(a), H5Tclose);
  if (t.get() < 0 || H5Tget_class(t) != cls || (cls == H5T_STRING && H5Tis_variable_str(t) <= 0)) {
    throw UsageError("'" + g_path + "': attribute '" + name + "' has the wrong type (expected " +
                     (cls == H5T_STRING ? "a variable-length string" : "an integer") + ")");
  }
}

std::string read_attr_string(hid_t obj, const char* name) {
  if (H5Aexists(obj, name) <= 0) throw UsageError("'" + g_path + "' has no attribute '" + name + "'");
  Hid a(ok(H5Aopen(obj, name, H5P_DEFAULT), name), H5Aclose);
  check_attr_class(a, name, H5T_STRING);
  Hid t = vlen_string_type();
  char* p = nullptr;
  ok(H5Aread(a, t, &p), "attribute read");
  std::string s = p ? p : "";
  H5free_memory(p);
  return s;
}

int64_t read_attr_int(hid_t obj, const char* name) {
  if (H5Aexists(obj, name) <= 0) throw UsageError("'" + g_path + "' has no attribute '" + name + "'");
  Hid a(ok(H5Aopen(obj, name, H5P_DEFAULT), name), H5Aclose);
  check_attr_class(a, name, H5T_INTEGER);
  int64_t v = 0;
  ok(H5Aread(a, H5T_NATIVE_INT64, &v), "attribute read");
  return v;
}

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

std::string site_path(const std::string& site) {  // "attn.probs" -> "attn/probs"
  std::string p = site;
  std::replace(p.begin(), p.end(), '.', '/');
  return p;
}

// Creates every parent group of `path` (relative to loc).
void make_groups(hid_t loc, const std::string& path) {
  size_t pos = 0;
  while ((pos = path.find('/', pos + 1)) != std::string::npos) {
    const std::string g = path.substr(0, pos);
    if (H5Lexists(loc, g.c_str(), H5P_DEFAULT) <= 0) {
      Hid grp(ok(H5Gcreate2(loc, g.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), "group " + g), H5Gclose);
    }
  }
}

// A dataset with an unlimited first axis (when `extensible`), chunked as `chunk`.
void create_dataset(hid_t file, const std::string& path, hid_t type, const std::vector<hsize_t>& dims,
                    const std::vector<hsize_t>& chunk, bool extensible, int64_t gzip) {
  make_groups(file, path);
  std::vector<hsize_t> maxdims = dims;
  if (extensible) maxdims[0] = H5S_UNLIMITED;
  Hid space(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), maxdims.data()), H5Sclose);
  Hid dcpl(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
  if (!chunk.empty()) {
    ok(H5Pset_chunk(dcpl, static_cast<int>(chunk.size()), chunk.data()), "chunk");
    if (gzip > 0) {  // byte shuffle first: float maps compress better and faster (a standard filter: h5py reads it)
      ok(H5Pset_shuffle(dcpl), "shuffle");
      ok(H5Pset_deflate(dcpl, static_cast<unsigned>(gzip)), "deflate");
    }
  }
  Hid d(ok(H5Dcreate2(file, path.c_str(), type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT), "dataset " + path), H5Dclose);
}

void write_all(hid_t file, const std::string& path, hid_t mem_type, const void* data) {
  Hid d(ok(H5Dopen2(file, path.c_str(), H5P_DEFAULT), path), H5Dclose);
  ok(H5Dwrite(d, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data), "write");
}

std::vector<hsize_t> dims_of(hid_t d) {
  Hid space(ok(H5Dget_space(d), "dataspace"), H5Sclose);
  const int rank = H5Sget_simple_extent_ndims(space);
  if (rank < 0 || rank > 32) throw UsageError("'" + g_path + "': a dataset has no usable shape (rank " + std::to_string(rank) + ")");
  std::vector<hsize_t> dims(static_cast<size_t>(rank));
  H5Sget_simple_extent_dims(space, dims.data(), nullptr);
  return dims;
}

// Grows the first axis by one and writes `data` (one row of the remaining dims) there.
void append_row(hid_t file, const std::string& path, hid_t mem_type, const void* data) {
  Hid d(ok(H5Dopen2(file, path.c_str(), H5P_DEFAULT), path), H5Dclose);
  std::vector<hsize_t> dims = dims_of(d);
  std::vector<hsize_t> start(dims.size(), 0), count = dims;
  start[0] = dims[0];
  count[0] = 1;
  dims[0] += 1;
  ok(H5Dset_extent(d, dims.data()), "extend");
  Hid fspace(H5Dget_space(d), H5Sclose);
  ok(H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start.data(), nullptr, count.data(), nullptr), "select");
  Hid mspace(H5Screate_simple(static_cast<int>(count.size()), count.data(), nullptr), H5Sclose);
  ok(H5Dwrite(d, mem_type, mspace, fspace, H5P_DEFAULT, data), "append");
}

void shrink(hid_t file, const std::string& path, hsize_t rows) {
  Hid d(ok(H5Dopen2(file, path.c_str(), H5P_DEFAULT), path), H5Dclose);
  std::vector<hsize_t> dims = dims_of(d);
  if (dims[0] <= rows) return;
  dims[0] = rows;
  ok(H5Dset_extent(d, dims.data()), "shrink");
}

template <class T>
std::vector<T> read_all(hid_t file, const std::string& path, hid_t mem_type) {
  Hid d(ok(H5Dopen2(file, path.c_str(), H5P_DEFAULT), path), H5Dclose);
  hsize_t n = 1;
  for (auto x : dims_of(d)) n *= x;
  std::vector<T> v(n);
  if (n > 0) ok(H5Dread(d, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data()), "read");
  return v;
}

std::vector<std::string> read_strings(hid_t file, const std::string& path) {
  Hid d(ok(H5Dopen2(file, path.c_str(), H5P_DEFAULT), path), H5Dclose);
  hsize_t n = 1;
  for (auto x : dims_of(d)) n *= x;
  std::vector<char*> raw(n, nullptr);
  Hid t = vlen_string_type();
  if (n > 0) ok(H5Dread(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, raw.data()), "read strings");
  std::vector<std::string> out;
  for (char* p : raw) out.emplace_back(p ? p : "");
  Hid space(H5Dget_space(d), H5Sclose);
  H5Dvlen_reclaim(t, space, H5P_DEFAULT, raw.data());
  return out;
}

// Reads the hyperslab start/count (a prefix of the dataset's axes; the remaining axes whole).
std::vector<float> read_slab(hid_t file, const std::string& path, std::vector<hsize_t> start, std::vector<hsize_t> count) {
  Hid d(ok(H5Dopen2(file, path.c_str(), H5P_DEFAULT), path), H5Dclose);
  const std::vector<hsize_t> dims = dims_of(d);
  for (size_t i = 0; i < start.size(); ++i) {
    if (start[i] + count[i] > dims[i]) {
      throw UsageError("'" + g_path + "': " + path + " has " + std::to_string(dims[i]) + " entries on axis " +
                       std::to_string(i) + ", asked for index " + std::to_string(start[i] + count[i] - 1));
    }
  }
  for (size_t i = start.size(); i < dims.size(); ++i) {
    start.push_back(0);
    count.push_back(dims[i]);
  }
  hsize_t n = 1;
  for (hsize_t c : count) n *= c;
  std::vector<float> v(n);
  Hid fspace(H5Dget_space(d), H5Sclose);
  ok(H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start.data(), nullptr, count.data(), nullptr), "select");
  Hid mspace(H5Screate_simple(static_cast<int>(count.size()), count.data(), nullptr), H5Sclose);
  ok(H5Dread(d, H5T_NATIVE_FLOAT, mspace, fspace, H5P_DEFAULT, v.data()), "read " + path);
  return v;
}

// Reads row `index` of the first axis.
std::vector<float> read_row(hid_t file, const std::string& path, int64_t index) {
  if (index < 0) throw UsageError("'" + g_path + "': " + path + ": negative row " + std::to_string(index));
  return read_slab(file, path, {static_cast<hsize_t>(index)}, {1});
}

Hid file_access() {
  Hid fapl(H5Pcreate(H5P_FILE_ACCESS), H5Pclose);
  ok(H5Pset_libver_bounds(fapl, H5F_LIBVER_LATEST, H5F_LIBVER_LATEST), "libver");  // needed for SWMR
  return fapl;
}

Header read_header(hid_t file) {
  Header h;
  h.attnscope_version = read_attr_string(file, "attnscope_version");
  h.config_yaml = read_attr_string(file, "config");
  h.model_json = read_attr_string(file, "model");
  h.sites = split(read_attr_string(file, "sites"));
  h.layer_ids = split_ints(read_attr_string(file, "layer_ids"), "layer_ids");
  h.head_ids = split_ints(read_attr_string(file, "head_ids"), "head_ids");
  h.metrics = split(read_attr_string(file, "metrics"));
  h.dtype = read_attr_string(file, "dtype");
  h.compression = read_attr_int(file, "compression");
  if (H5Aexists(file, "pooled_dim") > 0) h.pooled_dim = read_attr_int(file, "pooled_dim");
  if (H5Aexists(file, "arrays") > 0 && !read_attr_string(file, "arrays").empty()) {
    for (const auto& name : split(read_attr_string(file, "arrays"))) {
      Hid d(ok(H5Dopen2(file, ("task/" + name).c_str(), H5P_DEFAULT), "task/" + name), H5Dclose);
      std::vector<int64_t> shape;
      for (hsize_t x : dims_of(d)) shape.push_back(static_cast<int64_t>(x));
      h.arrays[name] = shape;
    }
  }
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
  if (H5Aexists(file, "schema_version") <= 0) {
    throw UsageError("'" + path + "' is not an attnscope attention file (no schema_version attribute)");
  }
  const int64_t v = read_attr_int(file, "schema_version");
  if (v > kSchemaVersion) {
    throw UsageError("'" + path + "' has attention schema version " + std::to_string(v) + "; this attnscope reads up to " +
                     std::to_string(kSchemaVersion) + ": use a newer attnscope");
  }
}

// Row shape (after the epoch axis) of each analysis dataset.
std::vector<hsize_t> analysis_shape(const std::string& name, hsize_t P, hsize_t L, hsize_t H, hsize_t T) {
  if (name == "js_prev" || name == "head_importance") return {L, H};
  if (name == "head_js") return {L * H, L * H};
  return {P, T};  // token_importance, token_importance_rollout
}

}  // namespace

const std::vector<std::string>& analysis_names() {
  static const std::vector<std::string> names = {"js_prev", "head_js", "token_importance", "token_importance_rollout",
                                                 "head_importance"};
  return names;
}

// ---- Writer ----------------------------------------------------------------------------------

struct Writer::Impl {
  std::string path;
  Hid file;
  Header header;
  Probes probes;
  Hid storage_type;
  int64_t epochs = 0;
  int64_t last_epoch = -1, last_metrics_epoch = -1;  // the latest recorded / with metrics (-1: none)

  size_t map_size() const {
    return static_cast<size_t>(probes.count * header.layer_ids.size() * header.head_ids.size() * probes.max_len *
                               probes.max_len);
  }
  void flush() { ok(H5Fflush(file, H5F_SCOPE_GLOBAL), "flush"); }
  void check_maps(const SiteMaps& maps) const {
    for (const auto& site : header.sites) {
      auto it = maps.find(site);
      if (it == maps.end() || it->second.size() != map_size()) {
        throw std::invalid_argument("attention store: site '" + site + "' needs " + std::to_string(map_size()) + " values");
      }
    }
  }
};

Writer::Writer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Writer::~Writer() = default;

std::unique_ptr<Writer> Writer::create(const std::string& path, const Header& header, const Probes& probes) {
  g_path = path;
  if (std::filesystem::exists(path)) throw UsageError("'" + path + "' exists; not overwriting it");
  auto impl = std::make_unique<Impl>();
  impl->path = path;
  impl->header = header;
  impl->probes = probes;
  Hid fapl = file_access();
  impl->file = Hid(H5Fcreate(path.c_str(), H5F_ACC_EXCL, H5P_DEFAULT, fapl), H5Fclose);
  if (impl->file.get() < 0) throw UsageError("cannot create '" + path + "'");
  hid_t f = impl->file;
  write_attr_int(f, "schema_version", kSchemaVersion);
  write_attr_string(f, "attnscope_version", header.attnscope_version);
  write_attr_string(f, "config", header.config_yaml);
  write_attr_string(f, "model", header.model_json);
  write_attr_string(f, "sites", join(header.sites, ","));
  write_attr_string(f, "layer_ids", join(header.layer_ids, ","));
  write_attr_string(f, "head_ids", join(header.head_ids, ","));
  write_attr_string(f, "metrics", join(header.metrics, ","));
  write_attr_string(f, "dtype", header.dtype);
  write_attr_int(f, "compression", header.compression);
  write_attr_int(f, "pooled_dim", header.pooled_dim);
  std::vector<std::string> array_names;
  for (const auto& [name, shape] : header.arrays) array_names.push_back(name);
  write_attr_string(f, "arrays", join(array_names, ","));
  write_attr_string(f, "padding", "attention maps are padded to the longest probe with zeros; "
                                  "probes/lengths gives each probe's real length");

  const hsize_t P = static_cast<hsize_t>(probes.count), T = static_cast<hsize_t>(probes.max_len);
  const hsize_t L = header.layer_ids.size(), H = header.head_ids.size();
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

  impl->storage_type = header.dtype == "float16" ? half_type() : Hid(H5Tcopy(H5T_IEEE_F32LE), H5Tclose);
  create_dataset(f, "epochs/epoch", H5T_STD_I64LE, {0}, {256}, true, 0);
  create_dataset(f, "epochs/step", H5T_STD_I64LE, {0}, {256}, true, 0);
  create_dataset(f, "epochs/wall_time", H5T_IEEE_F64LE, {0}, {256}, true, 0);
  for (const auto& site : header.sites) {
    create_dataset(f, site_path(site), impl->storage_type, {0, P, L, H, T, T}, {1, 1, L, H, T, T}, true,
                   header.compression);
    create_dataset(f, "best/" + site_path(site), impl->storage_type, {P, L, H, T, T}, {1, L, H, T, T}, false,
                   header.compression);
  }
  for (const auto& name : analysis_names()) {
    std::vector<hsize_t> dims = {0}, chunk = {1};
    for (hsize_t d : analysis_shape(name, P, L, H, T)) {
      dims.push_back(d);
      chunk.push_back(d);
    }
    create_dataset(f, "analysis/" + name, H5T_IEEE_F32LE, dims, chunk, true, header.compression);
  }
  create_dataset(f, "analysis/js_final", H5T_IEEE_F32LE, {0, L, H}, {64, L, H}, true, 0);
  if (header.pooled_dim > 0) {
    const hsize_t D = static_cast<hsize_t>(header.pooled_dim);
    create_dataset(f, "pooled", H5T_IEEE_F32LE, {0, P, D}, {1, P, D}, true, header.compression);
  }
  for (const auto& [name, shape] : header.arrays) {  // NaN until written (SWMR creates no objects later)
    std::vector<hsize_t> dims(shape.begin(), shape.end());
    create_dataset(f, "task/" + name, H5T_IEEE_F32LE, dims, {}, false, 0);
    hsize_t n = 1;
    for (hsize_t x : dims) n *= x;
    const std::vector<float> nan(n, std::numeric_limits<float>::quiet_NaN());
    write_all(f, "task/" + name, H5T_NATIVE_FLOAT, nan.data());
  }
  create_dataset(f, "best/info", H5T_IEEE_F64LE, {3}, {}, false, 0);
  const double no_best[3] = {-1, -1, 0};
  write_all(f, "best/info", H5T_NATIVE_DOUBLE, no_best);
  create_dataset(f, "metrics/epoch", H5T_STD_I64LE, {0}, {256}, true, 0);
  for (const auto& m : header.metrics) {
    create_dataset(f, "metrics/" + m, H5T_IEEE_F32LE, {0, L, H}, {64, L, H}, true, 0);
  }
  impl->flush();
  ok(H5Fstart_swmr_write(f), "start SWMR write");  // no new objects from here on
  return std::unique_ptr<Writer>(new Writer(std::move(impl)));
}

std::unique_ptr<Writer> Writer::resume(const std::string& path, int64_t last_epoch) {
  g_path = path;
  auto impl = std::make_unique<Impl>();
  impl->path = path;
  Hid fapl = file_access();
  // A run killed while writing leaves the SWMR "open for writing" mark in the superblock; clear
  // it as h5clear -s does ("clear_status_flags" is the file-access property h5clear sets).
  hbool_t clear = true;
  if (H5Pexist(fapl, "clear_status_flags") > 0) H5Pset(fapl, "clear_status_flags", &clear);
  impl->file = Hid(H5Fopen(path.c_str(), H5F_ACC_RDWR, fapl), H5Fclose);
  if (impl->file.get() < 0) throw UsageError("cannot open '" + path + "' to continue recording");
  hid_t f = impl->file;
  check_schema(f, path);
  impl->header = read_header(f);
  impl->probes = read_probes(f);
  impl->storage_type = impl->header.dtype == "float16" ? half_type() : Hid(H5Tcopy(H5T_IEEE_F32LE), H5Tclose);
  const auto epochs = read_all<int64_t>(f, "epochs/epoch", H5T_NATIVE_INT64);
  const hsize_t keep = std::count_if(epochs.begin(), epochs.end(), [&](int64_t e) { return e <= last_epoch; });
  for (const char* d : {"epochs/epoch", "epochs/step", "epochs/wall_time"}) shrink(f, d, keep);
  for (const auto& site : impl->header.sites) shrink(f, site_path(site), keep);
  for (const auto& name : analysis_names()) shrink(f, "analysis/" + name, keep);
  if (impl->header.pooled_dim > 0) shrink(f, "pooled", keep);
  shrink(f, "analysis/js_final", 0);  // recomputed when the resumed run ends
  const auto metric_epochs = read_all<int64_t>(f, "metrics/epoch", H5T_NATIVE_INT64);
  const hsize_t keep_m =
      std::count_if(metric_epochs.begin(), metric_epochs.end(), [&](int64_t e) { return e <= last_epoch; });
  shrink(f, "metrics/epoch", keep_m);
  for (const auto& m : impl->header.metrics) shrink(f, "metrics/" + m, keep_m);
  const auto best = read_all<double>(f, "best/info", H5T_NATIVE_DOUBLE);
  if (best[0] > static_cast<double>(last_epoch)) {  // recorded after the checkpoint: forget it
    const double no_best[3] = {-1, -1, 0};
    write_all(f, "best/info", H5T_NATIVE_DOUBLE, no_best);
  }
  impl->epochs = static_cast<int64_t>(keep);
  impl->last_epoch = keep > 0 ? epochs[keep - 1] : -1;
  impl->last_metrics_epoch = keep_m > 0 ? metric_epochs[keep_m - 1] : -1;
  impl->flush();
  ok(H5Fstart_swmr_write(f), "start SWMR write");
  return std::unique_ptr<Writer>(new Writer(std::move(impl)));
}

void Writer::append_epoch(const EpochInfo& info, const SiteMaps& maps, const Analyses& analyses) {
  g_path = impl_->path;
  impl_->check_maps(maps);
  hid_t f = impl_->file;
  const hsize_t P = impl_->probes.count, T = impl_->probes.max_len;
  const hsize_t L = impl_->header.layer_ids.size(), H = impl_->header.head_ids.size();
  for (const auto& name : analysis_names()) {
    hsize_t n = 1;
    for (hsize_t d : analysis_shape(name, P, L, H, T)) n *= d;
    auto it = analyses.find(name);
    if (it == analyses.end() || it->second.size() != n) {
      throw std::invalid_argument("attention store: analysis '" + name + "' needs " + std::to_string(n) + " values");
    }
    append_row(f, "analysis/" + name, H5T_NATIVE_FLOAT, it->second.data());
  }
  if (impl_->header.pooled_dim > 0) {
    auto it = analyses.find("pooled");
    if (it == analyses.end() || it->second.size() != P * static_cast<hsize_t>(impl_->header.pooled_dim)) {
      throw std::invalid_argument("attention store: 'pooled' needs P*D values");
    }
    append_row(f, "pooled", H5T_NATIVE_FLOAT, it->second.data());
  }
  // the maps first, the epoch index last: a reader (or a crash) never sees an epoch without data
  for (const auto& site : impl_->header.sites) append_row(f, site_path(site), H5T_NATIVE_FLOAT, maps.at(site).data());
  append_row(f, "epochs/step", H5T_NATIVE_INT64, &info.step);
  append_row(f, "epochs/wall_time", H5T_NATIVE_DOUBLE, &info.wall_time);
  impl_->flush();
  append_row(f, "epochs/epoch", H5T_NATIVE_INT64, &info.epoch);
  impl_->flush();
  ++impl_->epochs;
  impl_->last_epoch = info.epoch;
}

void Writer::write_best(const EpochInfo& info, const SiteMaps& maps) {
  g_path = impl_->path;
  impl_->check_maps(maps);
  hid_t f = impl_->file;
  for (const auto& site : impl_->header.sites) {
    write_all(f, "best/" + site_path(site), H5T_NATIVE_FLOAT, maps.at(site).data());
  }
  impl_->flush();
  const double best[3] = {static_cast<double>(info.epoch), static_cast<double>(info.step), info.wall_time};
  write_all(f, "best/info", H5T_NATIVE_DOUBLE, best);
  impl_->flush();
}

void Writer::append_metrics(int64_t epoch, const std::map<std::string, std::vector<float>>& values) {
  g_path = impl_->path;
  hid_t f = impl_->file;
  const size_t n = impl_->header.layer_ids.size() * impl_->header.head_ids.size();
  for (const auto& m : impl_->header.metrics) {
    auto it = values.find(m);
    if (it == values.end() || it->second.size() != n) {
      throw std::invalid_argument("attention store: metric '" + m + "' needs " + std::to_string(n) + " values");
    }
    append_row(f, "metrics/" + m, H5T_NATIVE_FLOAT, it->second.data());
  }
  impl_->flush();
  append_row(f, "metrics/epoch", H5T_NATIVE_INT64, &epoch);
  impl_->flush();
  impl_->last_metrics_epoch = epoch;
}

void Writer::write_js_final(const std::vector<float>& values) {
  g_path = impl_->path;
  const hsize_t L = impl_->header.layer_ids.size(), H = impl_->header.head_ids.size();
  const hsize_t E = static_cast<hsize_t>(impl_->epochs);
  if (values.size() != E * L * H) throw std::invalid_argument("attention store: js_final needs E*L*H values");
  Hid d(ok(H5Dopen2(impl_->file, "analysis/js_final", H5P_DEFAULT), std::string("analysis/js_final")), H5Dclose);
  std::vector<hsize_t> dims = {E, L, H};
  if (dims_of(d)[0] < E) ok(H5Dset_extent(d, dims.data()), "extend js_final");
  Hid fspace(H5Dget_space(d), H5Sclose);
  const std::vector<hsize_t> start = {0, 0, 0};
  ok(H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start.data(), nullptr, dims.data(), nullptr), "select");
  Hid mspace(H5Screate_simple(3, dims.data(), nullptr), H5Sclose);
  ok(H5Dwrite(d, H5T_NATIVE_FLOAT, mspace, fspace, H5P_DEFAULT, values.data()), "write js_final");
  impl_->flush();
}

void Writer::write_array(const std::string& name, const std::vector<float>& values) {
  g_path = impl_->path;
  auto it = impl_->header.arrays.find(name);
  if (it == impl_->header.arrays.end()) throw std::invalid_argument("attention store: no array '" + name + "' declared");
  size_t n = 1;
  for (int64_t x : it->second) n *= static_cast<size_t>(x);
  if (values.size() != n) throw std::invalid_argument("attention store: array '" + name + "' needs " + std::to_string(n) + " values");
  write_all(impl_->file, "task/" + name, H5T_NATIVE_FLOAT, values.data());
  impl_->flush();
}

const Header& Writer::header() const { return impl_->header; }
const Probes& Writer::probes() const { return impl_->probes; }
int64_t Writer::epochs_recorded() const { return impl_->epochs; }
int64_t Writer::last_epoch() const { return impl_->last_epoch; }
int64_t Writer::last_metrics_epoch() const { return impl_->last_metrics_epoch; }

std::vector<float> Writer::read_map(const std::string& site, int64_t epoch_index) const {
  g_path = impl_->path;
  return read_row(impl_->file, site_path(site), epoch_index);
}

// ---- Reader ----------------------------------------------------------------------------------

namespace {

// ---- validation of a file to read: every dataset the reader uses, before it is used ----------

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

std::string shape_text(const std::vector<hsize_t>& d) {
  std::string s = "[";
  for (size_t i = 0; i < d.size(); ++i) s += (i ? "," : "") + std::to_string(d[i]);
  return s + "]";
}

// Checks presence, type class, rank and extents; returns the dims.
std::vector<hsize_t> check_dataset(hid_t file, const Expect& e) {
  if (H5Lexists(file, e.path.substr(0, e.path.find('/')).c_str(), H5P_DEFAULT) <= 0 ||
      H5Lexists(file, e.path.c_str(), H5P_DEFAULT) <= 0) {
    bad_dataset(e.path, "is missing");
  }
  Hid d(H5Dopen2(file, e.path.c_str(), H5P_DEFAULT), H5Dclose);
  if (d.get() < 0) bad_dataset(e.path, "cannot be opened (not a dataset, or damaged)");
  Hid t(H5Dget_type(d), H5Tclose);
  const H5T_class_t cls = t.get() < 0 ? H5T_NO_CLASS : H5Tget_class(t);
  if (cls != e.type) {
    const char* want = e.type == H5T_INTEGER ? "integer" : e.type == H5T_FLOAT ? "float" : "string";
    bad_dataset(e.path, std::string("has the wrong type: expected ") + want + " values");
  }
  if (cls == H5T_STRING && H5Tis_variable_str(t) <= 0) bad_dataset(e.path, "holds fixed-length strings; expected variable-length");
  const auto dims = dims_of(d);
  std::vector<hsize_t> want;
  for (auto x : e.dims) want.push_back(x < 0 ? 0 : static_cast<hsize_t>(x));
  bool fits = dims.size() == e.dims.size();
  for (size_t i = 0; fits && i < dims.size(); ++i) fits = e.dims[i] < 0 || dims[i] == want[i];
  if (!fits) {
    std::string w = "[";
    for (size_t i = 0; i < e.dims.size(); ++i) w += (i ? "," : "") + (e.dims[i] < 0 ? std::string("*") : std::to_string(e.dims[i]));
    bad_dataset(e.path, "has shape " + shape_text(dims) + "; the file's header and probes say " + w + "]");
  }
  return dims;
}

// The layout of schema 1 against the header: what render, metrics and the report read.
void validate_layout(hid_t file, const Header& h) {
  auto need = [&](bool ok_, const std::string& what) {
    if (!ok_) throw UsageError("'" + g_path + "' is not a usable attention file: " + what);
  };
  need(h.dtype == "float32" || h.dtype == "float16", "attribute 'dtype' is '" + h.dtype + "' (float32 or float16)");
  need(!h.layer_ids.empty() && !h.head_ids.empty(), "attributes 'layer_ids' and 'head_ids' list no layer or head");
  need(h.layer_ids.size() <= 4096 && h.head_ids.size() <= 4096, "more than 4096 layers or heads in its header");
  need(h.pooled_dim >= 0 && h.pooled_dim <= (1 << 20), "attribute 'pooled_dim' is " + std::to_string(h.pooled_dim));
  for (const auto& site : h.sites) {
    need(site == "attn.probs" || site == "attn.scores", "attribute 'sites' names an unknown site '" + site + "'");
  }
  const int64_t L = static_cast<int64_t>(h.layer_ids.size()), H = static_cast<int64_t>(h.head_ids.size());
  const auto ids = check_dataset(file, {"probes/input_ids", H5T_INTEGER, {-1, -1}});
  const int64_t P = static_cast<int64_t>(ids[0]), T = static_cast<int64_t>(ids[1]);
  need(T <= 1 << 16, "probes are " + std::to_string(T) + " tokens long (at most 65536)");
  check_dataset(file, {"probes/lengths", H5T_INTEGER, {P}});
  check_dataset(file, {"probes/source_index", H5T_INTEGER, {P}});
  check_dataset(file, {"probes/tokens", H5T_STRING, {P, T}});
  check_dataset(file, {"probes/text", H5T_STRING, {P}});
  const auto e = check_dataset(file, {"epochs/epoch", H5T_INTEGER, {-1}});
  const int64_t E = static_cast<int64_t>(e[0]);
  for (const char* k : {"epochs/step"}) check_dataset(file, {k, H5T_INTEGER, {E}});
  check_dataset(file, {"epochs/wall_time", H5T_FLOAT, {E}});
  for (const auto& site : h.sites) {
    const auto d = check_dataset(file, {site_path(site), H5T_FLOAT, {-1, P, L, H, T, T}});
    need(static_cast<int64_t>(d[0]) >= E, "dataset '" + site_path(site) + "' holds fewer epochs than epochs/epoch");
    if (H5Lexists(file, "best", H5P_DEFAULT) > 0) check_dataset(file, {"best/" + site_path(site), H5T_FLOAT, {P, L, H, T, T}});
  }
  if (H5Lexists(file, "best", H5P_DEFAULT) > 0) check_dataset(file, {"best/info", H5T_FLOAT, {3}});
  const auto m = check_dataset(file, {"metrics/epoch", H5T_INTEGER, {-1}});
  for (const auto& name : h.metrics) {
    const auto d = check_dataset(file, {"metrics/" + name, H5T_FLOAT, {-1, L, H}});
    need(d[0] >= m[0], "dataset 'metrics/" + name + "' holds fewer rows than metrics/epoch");
  }
  if (H5Lexists(file, "analysis", H5P_DEFAULT) > 0) {
    for (const auto& name : analysis_names()) {
      const std::string path = "analysis/" + name;
      if (H5Lexists(file, path.c_str(), H5P_DEFAULT) <= 0) continue;  // older files lack newer analyses
      const auto row = analysis_shape(name, P, L, H, T);
      check_dataset(file, {path, H5T_FLOAT, {-1, static_cast<int64_t>(row[0]), static_cast<int64_t>(row[1])}});
    }
    if (H5Lexists(file, "analysis/js_final", H5P_DEFAULT) > 0) check_dataset(file, {"analysis/js_final", H5T_FLOAT, {-1, L, H}});
  }
  if (h.pooled_dim > 0) check_dataset(file, {"pooled", H5T_FLOAT, {-1, P, h.pooled_dim}});
  for (const auto& [name, shape] : h.arrays) check_dataset(file, {"task/" + name, H5T_FLOAT, shape});
}

// Probe values the readers index with: lengths 1..T, token ids >= 0.
void validate_probes(const Probes& p) {
  for (int64_t i = 0; i < p.count; ++i) {
    if (p.lengths[i] < 1 || p.lengths[i] > p.max_len) {
      throw UsageError("'" + g_path + "' is not a usable attention file: dataset 'probes/lengths' holds " +
                       std::to_string(p.lengths[i]) + " for probe " + std::to_string(i) + "; lengths are 1.." +
                       std::to_string(p.max_len) + " (the width of probes/input_ids)");
    }
  }
}

}  // namespace

struct Reader::Impl {
  std::string path;
  Hid file;
  Header header;
  Probes probes;
  hsize_t epochs = 0, metric_rows = 0;  // rows whose index entry was written (complete rows)
};

Reader::Reader(const std::string& path) : impl_(std::make_unique<Impl>()) {
  g_path = path;
  impl_->path = path;
  if (!std::filesystem::exists(path)) throw UsageError("'" + path + "' does not exist");
  if (H5Fis_hdf5(path.c_str()) <= 0) throw UsageError("'" + path + "' is not an HDF5 file");
  Hid fapl = file_access();
  // A SWMR reader retries a metadata read whose checksum fails (the writer may be mid-write), by
  // default 100 times with sleeps doubling from 1 us: on a damaged file a hang of hours. Twelve
  // tries (~8 ms) cover a live writer's flush; then the file is refused as damaged.
  ok(H5Pset_metadata_read_attempts(fapl, 12), "metadata read attempts");
  impl_->file = Hid(H5Fopen(path.c_str(), H5F_ACC_RDONLY | H5F_ACC_SWMR_READ, fapl), H5Fclose);
  if (impl_->file.get() < 0) {  // not a SWMR-capable (latest-format) file: plain read
    impl_->file = Hid(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose);
  }
  if (impl_->file.get() < 0) throw UsageError("cannot open '" + path + "' as HDF5");
  check_schema(impl_->file, path);
  impl_->header = read_header(impl_->file);
  validate_layout(impl_->file, impl_->header);
  impl_->probes = read_probes(impl_->file);
  validate_probes(impl_->probes);
  impl_->epochs = read_all<int64_t>(impl_->file, "epochs/epoch", H5T_NATIVE_INT64).size();
  impl_->metric_rows = read_all<int64_t>(impl_->file, "metrics/epoch", H5T_NATIVE_INT64).size();
}

Reader::~Reader() = default;
const Header& Reader::header() const { return impl_->header; }
const Probes& Reader::probes() const { return impl_->probes; }

std::vector<EpochInfo> Reader::epochs() const {
  g_path = impl_->path;
  const auto e = read_all<int64_t>(impl_->file, "epochs/epoch", H5T_NATIVE_INT64);
  const auto s = read_all<int64_t>(impl_->file, "epochs/step", H5T_NATIVE_INT64);
  const auto w = read_all<double>(impl_->file, "epochs/wall_time", H5T_NATIVE_DOUBLE);
  std::vector<EpochInfo> out;
  for (size_t i = 0; i < std::min<size_t>(e.size(), impl_->epochs); ++i) out.push_back({e[i], s[i], w[i]});
  return out;
}

std::vector<float> Reader::map(const std::string& site, int64_t epoch_index) const {
  g_path = impl_->path;
  if (std::find(impl_->header.sites.begin(), impl_->header.sites.end(), site) == impl_->header.sites.end()) {
    throw UsageError("'" + impl_->path + "' holds no site '" + site + "' (it has: " + join(impl_->header.sites, ",") + ")");
  }
  if (epoch_index < 0 || static_cast<hsize_t>(epoch_index) >= impl_->epochs) {
    throw UsageError("'" + impl_->path + "' has " + std::to_string(impl_->epochs) + " recorded epochs; no index " +
                     std::to_string(epoch_index));
  }
  return read_row(impl_->file, site_path(site), epoch_index);
}

namespace {
void check_index(const std::string& path, const char* what, int64_t index, int64_t count) {
  if (index < 0 || index >= count) {
    throw UsageError("'" + path + "' has " + std::to_string(count) + " " + what + (count == 1 ? "" : "s") +
                     " (indices 0.." + std::to_string(count - 1) + "); no index " + std::to_string(index));
  }
}
}  // namespace

std::vector<float> Reader::probe_map(const std::string& site, int64_t e, int64_t p) const {
  g_path = impl_->path;
  if (std::find(impl_->header.sites.begin(), impl_->header.sites.end(), site) == impl_->header.sites.end()) {
    throw UsageError("'" + impl_->path + "' holds no site '" + site + "' (it has: " + join(impl_->header.sites, ",") + ")");
  }
  check_index(impl_->path, "recorded epoch", e, static_cast<int64_t>(impl_->epochs));
  check_index(impl_->path, "probe", p, impl_->probes.count);
  return read_slab(impl_->file, site_path(site), {static_cast<hsize_t>(e), static_cast<hsize_t>(p)}, {1, 1});
}

std::vector<float> Reader::head_map(const std::string& site, int64_t e, int64_t p, int64_t l, int64_t h) const {
  g_path = impl_->path;
  if (std::find(impl_->header.sites.begin(), impl_->header.sites.end(), site) == impl_->header.sites.end()) {
    throw UsageError("'" + impl_->path + "' holds no site '" + site + "' (it has: " + join(impl_->header.sites, ",") + ")");
  }
  check_index(impl_->path, "recorded epoch", e, static_cast<int64_t>(impl_->epochs));
  check_index(impl_->path, "probe", p, impl_->probes.count);
  check_index(impl_->path, "stored layer", l, static_cast<int64_t>(impl_->header.layer_ids.size()));
  check_index(impl_->path, "stored head", h, static_cast<int64_t>(impl_->header.head_ids.size()));
  auto u = [](int64_t x) { return static_cast<hsize_t>(x); };
  return read_slab(impl_->file, site_path(site), {u(e), u(p), u(l), u(h)}, {1, 1, 1, 1});
}

std::vector<float> Reader::pooled(int64_t e) const {
  g_path = impl_->path;
  if (impl_->header.pooled_dim <= 0) {
    throw UsageError("'" + impl_->path + "' holds no pooled vectors (record them with hooks.attention.pooled: true)");
  }
  check_index(impl_->path, "recorded epoch", e, static_cast<int64_t>(impl_->epochs));
  return read_row(impl_->file, "pooled", e);
}

std::vector<float> Reader::array(const std::string& name) const {
  g_path = impl_->path;
  if (!impl_->header.arrays.count(name)) throw UsageError("'" + impl_->path + "' holds no task array '" + name + "'");
  return read_all<float>(impl_->file, "task/" + name, H5T_NATIVE_FLOAT);
}

std::vector<float> Reader::analysis(const std::string& name, int64_t epoch_index) const {
  g_path = impl_->path;
  if (name != "js_final" && std::find(analysis_names().begin(), analysis_names().end(), name) == analysis_names().end()) {
    throw UsageError("no analysis named '" + name + "' (there are: " + join(analysis_names(), ",") + ")");
  }
  if (epoch_index < 0 || static_cast<hsize_t>(epoch_index) >= impl_->epochs) {
    throw UsageError("'" + impl_->path + "' has " + std::to_string(impl_->epochs) + " recorded epochs; no index " +
                     std::to_string(epoch_index));
  }
  return read_row(impl_->file, "analysis/" + name, epoch_index);
}

bool Reader::has_best() const { return best().epoch >= 0; }

EpochInfo Reader::best() const {
  g_path = impl_->path;
  const auto b = read_all<double>(impl_->file, "best/info", H5T_NATIVE_DOUBLE);
  return {static_cast<int64_t>(b[0]), static_cast<int64_t>(b[1]), b[2]};
}

std::vector<float> Reader::best_map(const std::string& site) const {
  g_path = impl_->path;
  return read_all<float>(impl_->file, "best/" + site_path(site), H5T_NATIVE_FLOAT);
}

std::vector<int64_t> Reader::metric_epochs() const {
  g_path = impl_->path;
  auto e = read_all<int64_t>(impl_->file, "metrics/epoch", H5T_NATIVE_INT64);
  e.resize(std::min<size_t>(e.size(), impl_->metric_rows));
  return e;
}

std::vector<float> Reader::metric(const std::string& name) const {
  g_path = impl_->path;
  if (std::find(impl_->header.metrics.begin(), impl_->header.metrics.end(), name) == impl_->header.metrics.end()) {
    throw UsageError("'" + impl_->path + "' holds no metric '" + name + "'");
  }
  auto v = read_all<float>(impl_->file, "metrics/" + name, H5T_NATIVE_FLOAT);
  v.resize(std::min<size_t>(v.size(), impl_->metric_rows * impl_->header.layer_ids.size() * impl_->header.head_ids.size()));
  return v;
}

}  // namespace attnscope::store
