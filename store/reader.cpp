// store::Reader (store/store.h): opens an attention file (also while a run writes it, in SWMR
// mode), validates its layout against its header, and reads whole datasets or hyperslabs.
#include <algorithm>
#include <filesystem>

#include "store/h5.h"

namespace attnscope::store {
using namespace detail;

namespace {

void check_index(const std::string& path, const char* what, int64_t index, int64_t count) {
  if (index < 0 || index >= count) {
    throw UsageError("'" + path + "' has " + std::to_string(count) + " " + what + (count == 1 ? "" : "s") +
                     " (indices 0.." + std::to_string(count - 1) + "); no index " + std::to_string(index));
  }
}

// The file opened for reading: SWMR when it was written so (a run may be writing it), else plain.
Hid open_for_reading(const std::string& path) {
  Hid fapl = file_access();
  // A SWMR reader retries a metadata read whose checksum fails (the writer may be mid-write), by
  // default 100 times with sleeps doubling from 1 us: on a damaged file a hang of hours. Twelve
  // tries (~8 ms) cover a live writer's flush; then the file is refused as damaged.
  ok(H5Pset_metadata_read_attempts(fapl, 12), "metadata read attempts");
  Hid file(H5Fopen(path.c_str(), H5F_ACC_RDONLY | H5F_ACC_SWMR_READ, fapl), H5Fclose);
  if (file.get() < 0) {  // not a SWMR-capable (latest-format) file: plain read
    file = Hid(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose);
  }
  if (file.get() < 0) throw UsageError("cannot open '" + path + "' as HDF5");
  return file;
}

}  // namespace

struct Reader::Impl {
  std::string path;
  Hid file;
  Header header;
  Probes probes;
  Validation validation;
  hsize_t epochs = 0, metric_rows = 0;  // rows whose index entry was written (complete rows)

  void begin() const { g_path = path; }  // every call starts here: this file for messages
  void check_site(const std::string& site) const {
    if (std::find(header.sites.begin(), header.sites.end(), site) == header.sites.end()) {
      throw UsageError("'" + path + "' holds no site '" + site + "' (it has: " + join(header.sites, ",") + ")");
    }
  }
  // The site, and the indices of a recorded epoch and a probe (hyperslab reads).
  void check_probe(const std::string& site, int64_t e, int64_t p) const {
    check_site(site);
    check_index(path, "recorded epoch", e, static_cast<int64_t>(epochs));
    check_index(path, "probe", p, probes.count);
  }
  void check_internal(const std::string& site, int64_t e) const {
    if (!header.internals.count(site)) {
      throw UsageError("'" + path + "' holds no internal site '" + site + "' (record it with hooks.attention.sites)");
    }
    check_epoch(e);
  }
  void check_epoch(int64_t epoch_index) const {
    if (epoch_index < 0 || static_cast<hsize_t>(epoch_index) >= epochs) {
      throw UsageError("'" + path + "' has " + std::to_string(epochs) + " recorded epochs; no index " +
                       std::to_string(epoch_index));
    }
  }
};

Reader::Reader(const std::string& path) : impl_(std::make_unique<Impl>()) {
  g_path = path;
  impl_->path = path;
  if (!std::filesystem::exists(path)) throw UsageError("'" + path + "' does not exist");
  if (H5Fis_hdf5(path.c_str()) <= 0) throw UsageError("'" + path + "' is not an HDF5 file");
  impl_->file = open_for_reading(path);
  check_schema(impl_->file, path);
  impl_->header = read_header(impl_->file);
  validate_layout(impl_->file, impl_->header);
  impl_->probes = read_probes(impl_->file);
  validate_probes(impl_->probes);
  impl_->validation = read_validation(impl_->file, impl_->header);
  impl_->epochs = read_all<int64_t>(impl_->file, "epochs/epoch", H5T_NATIVE_INT64).size();
  impl_->metric_rows = read_all<int64_t>(impl_->file, "metrics/epoch", H5T_NATIVE_INT64).size();
}

Reader::~Reader() = default;
const Header& Reader::header() const { return impl_->header; }
const Probes& Reader::probes() const { return impl_->probes; }

std::vector<EpochInfo> Reader::epochs() const {
  impl_->begin();
  const auto e = read_all<int64_t>(impl_->file, "epochs/epoch", H5T_NATIVE_INT64);
  const auto s = read_all<int64_t>(impl_->file, "epochs/step", H5T_NATIVE_INT64);
  const auto w = read_all<double>(impl_->file, "epochs/wall_time", H5T_NATIVE_DOUBLE);
  std::vector<EpochInfo> out;
  for (size_t i = 0; i < std::min<size_t>(e.size(), impl_->epochs); ++i) out.push_back({e[i], s[i], w[i]});
  return out;
}

std::vector<float> Reader::map(const std::string& site, int64_t epoch_index) const {
  impl_->begin();
  impl_->check_site(site);
  impl_->check_epoch(epoch_index);
  return read_row(impl_->file, site_path(site), epoch_index);
}

std::vector<float> Reader::probe_map(const std::string& site, int64_t e, int64_t p) const {
  impl_->begin();
  impl_->check_probe(site, e, p);
  return read_slab(impl_->file, site_path(site), {static_cast<hsize_t>(e), static_cast<hsize_t>(p)}, {1, 1});
}

std::vector<float> Reader::head_map(const std::string& site, int64_t e, int64_t p, int64_t l, int64_t h) const {
  impl_->begin();
  impl_->check_probe(site, e, p);
  check_index(impl_->path, "stored layer", l, static_cast<int64_t>(impl_->header.layer_ids.size()));
  check_index(impl_->path, "stored head", h, static_cast<int64_t>(impl_->header.head_ids.size()));
  auto u = [](int64_t x) { return static_cast<hsize_t>(x); };
  return read_slab(impl_->file, site_path(site), {u(e), u(p), u(l), u(h)}, {1, 1, 1, 1});
}

std::vector<float> Reader::pooled(int64_t e) const {
  impl_->begin();
  if (impl_->header.pooled_dim <= 0) {
    throw UsageError("'" + impl_->path + "' holds no pooled vectors (record them with hooks.attention.pooled: true)");
  }
  check_index(impl_->path, "recorded epoch", e, static_cast<int64_t>(impl_->epochs));
  return read_row(impl_->file, "pooled", e);
}

const Validation& Reader::validation() const { return impl_->validation; }

std::vector<float> Reader::val_pooled(int64_t e) const {
  impl_->begin();
  if (impl_->header.val_count <= 0) {
    throw UsageError("'" + impl_->path + "' holds no validation vectors (record them with hooks.attention.validation_vectors: true)");
  }
  impl_->check_epoch(e);
  return read_row(impl_->file, "validation/pooled", e);
}

std::vector<float> Reader::val_output(int64_t e) const {
  impl_->begin();
  if (impl_->header.val_count <= 0 || impl_->header.val_outputs <= 0) {
    throw UsageError("'" + impl_->path + "' holds no validation outputs");
  }
  impl_->check_epoch(e);
  return read_row(impl_->file, "validation/output", e);
}

std::vector<float> Reader::internal(const std::string& site, int64_t e) const {
  impl_->begin();
  impl_->check_internal(site, e);
  return read_row(impl_->file, "internals/" + site_path(site), e);
}

std::vector<float> Reader::internal_probe(const std::string& site, int64_t e, int64_t p) const {
  impl_->begin();
  impl_->check_internal(site, e);
  check_index(impl_->path, "probe", p, impl_->probes.count);
  return read_slab(impl_->file, "internals/" + site_path(site), {static_cast<hsize_t>(e), static_cast<hsize_t>(p)}, {1, 1});
}

std::vector<float> Reader::array(const std::string& name) const {
  impl_->begin();
  if (!impl_->header.arrays.count(name)) throw UsageError("'" + impl_->path + "' holds no task array '" + name + "'");
  return read_all<float>(impl_->file, "task/" + name, H5T_NATIVE_FLOAT);
}

std::vector<float> Reader::analysis(const std::string& name, int64_t epoch_index) const {
  impl_->begin();
  if (name != "js_final" && std::find(analysis_names().begin(), analysis_names().end(), name) == analysis_names().end()) {
    throw UsageError("no analysis named '" + name + "' (there are: " + join(analysis_names(), ",") + ")");
  }
  impl_->check_epoch(epoch_index);
  return read_row(impl_->file, "analysis/" + name, epoch_index);
}

bool Reader::has_best() const { return best().epoch >= 0; }

bool Reader::has_analysis(const std::string& name) const {
  impl_->begin();
  return has_link(impl_->file, "analysis") && has_link(impl_->file, "analysis/" + name);
}

EpochInfo Reader::best() const {
  impl_->begin();
  const auto b = read_all<double>(impl_->file, "best/info", H5T_NATIVE_DOUBLE);
  return {static_cast<int64_t>(b[0]), static_cast<int64_t>(b[1]), b[2]};
}

std::vector<float> Reader::best_map(const std::string& site) const {
  impl_->begin();
  return read_all<float>(impl_->file, "best/" + site_path(site), H5T_NATIVE_FLOAT);
}

std::vector<int64_t> Reader::metric_epochs() const {
  impl_->begin();
  auto e = read_all<int64_t>(impl_->file, "metrics/epoch", H5T_NATIVE_INT64);
  e.resize(std::min<size_t>(e.size(), impl_->metric_rows));
  return e;
}

std::vector<float> Reader::metric(const std::string& name) const {
  impl_->begin();
  if (std::find(impl_->header.metrics.begin(), impl_->header.metrics.end(), name) == impl_->header.metrics.end()) {
    throw UsageError("'" + impl_->path + "' holds no metric '" + name + "'");
  }
  auto v = read_all<float>(impl_->file, "metrics/" + name, H5T_NATIVE_FLOAT);
  v.resize(std::min<size_t>(v.size(), impl_->metric_rows * impl_->header.layer_ids.size() * impl_->header.head_ids.size()));
  return v;
}

}  // namespace attnscope::store
