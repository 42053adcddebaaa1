// store::Writer (store/store.h): creates an attention file or reopens a resumed run's, then
// appends one row per recorded epoch in HDF5's SWMR mode, flushed after every epoch.
#include <algorithm>
#include <filesystem>
#include <limits>
#include <stdexcept>

#include "store/h5.h"

namespace attnscope::store {
using namespace detail;

namespace {

const double kNoBest[3] = {-1, -1, 0};  // best/info until a best epoch exists

// The datasets growing by one row per recorded epoch (empty), and the best maps.
void create_epoch_datasets(hid_t f, const Header& header, const Probes& probes, hid_t storage) {
  const hsize_t P = static_cast<hsize_t>(probes.count), T = static_cast<hsize_t>(probes.max_len);
  const hsize_t L = header.layer_ids.size(), H = header.head_ids.size();
  create_dataset(f, "epochs/epoch", H5T_STD_I64LE, {0}, {256}, true, 0);
  create_dataset(f, "epochs/step", H5T_STD_I64LE, {0}, {256}, true, 0);
  create_dataset(f, "epochs/wall_time", H5T_IEEE_F64LE, {0}, {256}, true, 0);
  for (const auto& site : header.sites) {
    create_dataset(f, site_path(site), storage, {0, P, L, H, T, T}, {1, 1, L, H, T, T}, true, header.compression);
    create_dataset(f, "best/" + site_path(site), storage, {P, L, H, T, T}, {1, L, H, T, T}, false, header.compression);
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
  for (const auto& [site, shape] : header.internals) {  // one chunk per probe
    std::vector<hsize_t> dims = {0}, chunk = {1, 1};
    for (int64_t x : shape) dims.push_back(static_cast<hsize_t>(x));
    chunk.insert(chunk.end(), dims.begin() + 2, dims.end());
    create_dataset(f, "internals/" + site_path(site), storage_type(header.internals_dtype), dims, chunk, true, header.compression);
  }
  if (header.val_count > 0) {  // one chunk per epoch up to ~4 MB; float16: 2 bytes a value
    const hsize_t N = static_cast<hsize_t>(header.val_count), D = static_cast<hsize_t>(header.pooled_dim);
    const hsize_t rows = std::max<hsize_t>(1, std::min<hsize_t>(N, (hsize_t{1} << 21) / D));
    create_dataset(f, "validation/pooled", storage_type("float16"), {0, N, D}, {1, rows, D}, true, header.compression);
    if (header.val_outputs > 0) {
      const hsize_t O = static_cast<hsize_t>(header.val_outputs);
      create_dataset(f, "validation/output", H5T_IEEE_F32LE, {0, N, O}, {1, std::max<hsize_t>(1, std::min<hsize_t>(N, (hsize_t{1} << 20) / O)), O},
                     true, header.compression);
    }
  }
}

// The task arrays (NaN until written: SWMR creates no objects later), best/info and the metrics.
void create_fixed_datasets(hid_t f, const Header& header) {
  const hsize_t L = header.layer_ids.size(), H = header.head_ids.size();
  for (const auto& [name, shape] : header.arrays) {
    std::vector<hsize_t> dims(shape.begin(), shape.end());
    create_dataset(f, "task/" + name, H5T_IEEE_F32LE, dims, {}, false, 0);
    const std::vector<float> nan(element_count(dims), std::numeric_limits<float>::quiet_NaN());
    write_all(f, "task/" + name, H5T_NATIVE_FLOAT, nan.data());
  }
  create_dataset(f, "best/info", H5T_IEEE_F64LE, {3}, {}, false, 0);
  write_all(f, "best/info", H5T_NATIVE_DOUBLE, kNoBest);
  create_dataset(f, "metrics/epoch", H5T_STD_I64LE, {0}, {256}, true, 0);
  for (const auto& m : header.metrics) {
    create_dataset(f, "metrics/" + m, H5T_IEEE_F32LE, {0, L, H}, {64, L, H}, true, 0);
  }
}

// How many of `epochs` are <= last_epoch.
hsize_t rows_through(const std::vector<int64_t>& epochs, int64_t last_epoch) {
  return std::count_if(epochs.begin(), epochs.end(), [&](int64_t e) { return e <= last_epoch; });
}

}  // namespace

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
  // Drops the epochs and metrics after `last`, and a best epoch recorded after it.
  void truncate_after(int64_t last);
};

Writer::Writer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Writer::~Writer() = default;

std::unique_ptr<Writer> Writer::create(const std::string& path, const Header& header, const Probes& probes,
                                       const Validation& validation) {
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
  write_header(f, header);
  write_probes(f, probes);
  if (header.val_count > 0 && (validation.text.size() != static_cast<size_t>(header.val_count) ||
                               validation.target.size() != static_cast<size_t>(header.val_count * header.val_targets))) {
    throw std::invalid_argument("attention store: the validation set needs val_count texts and val_count*val_targets targets");
  }
  write_validation(f, header, validation);
  impl->storage_type = storage_type(header.dtype);
  create_epoch_datasets(f, header, probes, impl->storage_type);
  create_fixed_datasets(f, header);
  impl->flush();
  ok(H5Fstart_swmr_write(f), "start SWMR write");  // no new objects from here on
  return std::unique_ptr<Writer>(new Writer(std::move(impl)));
}

void Writer::Impl::truncate_after(int64_t last) {
  hid_t f = file;
  const auto epoch_rows = read_all<int64_t>(f, "epochs/epoch", H5T_NATIVE_INT64);
  const hsize_t keep = rows_through(epoch_rows, last);
  for (const char* d : {"epochs/epoch", "epochs/step", "epochs/wall_time"}) shrink(f, d, keep);
  for (const auto& site : header.sites) shrink(f, site_path(site), keep);
  for (const auto& name : analysis_names()) shrink(f, "analysis/" + name, keep);
  if (header.pooled_dim > 0) shrink(f, "pooled", keep);
  if (header.val_count > 0) shrink(f, "validation/pooled", keep);
  for (const auto& [site, shape] : header.internals) shrink(f, "internals/" + site_path(site), keep);
  if (header.val_outputs > 0 && header.val_count > 0) shrink(f, "validation/output", keep);
  shrink(f, "analysis/js_final", 0);  // recomputed when the resumed run ends
  const auto metric_rows = read_all<int64_t>(f, "metrics/epoch", H5T_NATIVE_INT64);
  const hsize_t keep_m = rows_through(metric_rows, last);
  shrink(f, "metrics/epoch", keep_m);
  for (const auto& m : header.metrics) shrink(f, "metrics/" + m, keep_m);
  const auto best = read_all<double>(f, "best/info", H5T_NATIVE_DOUBLE);
  if (best[0] > static_cast<double>(last)) {  // recorded after the checkpoint: forget it
    write_all(f, "best/info", H5T_NATIVE_DOUBLE, kNoBest);
  }
  epochs = static_cast<int64_t>(keep);
  last_epoch = keep > 0 ? epoch_rows[keep - 1] : -1;
  last_metrics_epoch = keep_m > 0 ? metric_rows[keep_m - 1] : -1;
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
  check_schema(impl->file, path);
  impl->header = read_header(impl->file);
  impl->probes = read_probes(impl->file);
  impl->storage_type = storage_type(impl->header.dtype);
  impl->truncate_after(last_epoch);
  impl->flush();
  ok(H5Fstart_swmr_write(impl->file), "start SWMR write");
  return std::unique_ptr<Writer>(new Writer(std::move(impl)));
}

void Writer::append_epoch(const EpochInfo& info, const SiteMaps& maps, const Analyses& analyses) {
  g_path = impl_->path;
  impl_->check_maps(maps);
  hid_t f = impl_->file;
  const hsize_t P = impl_->probes.count, T = impl_->probes.max_len;
  const hsize_t L = impl_->header.layer_ids.size(), H = impl_->header.head_ids.size();
  for (const auto& name : analysis_names()) {
    const hsize_t n = element_count(analysis_shape(name, P, L, H, T));
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
  // the validation vectors [N*width] of `name`, when recorded
  auto append_validation = [&](const std::string& name, const std::string& path, int64_t width) {
    const int64_t n = impl_->header.val_count * width;
    if (n == 0) return;
    auto it = analyses.find(name);
    if (it == analyses.end() || it->second.size() != static_cast<size_t>(n)) {
      throw std::invalid_argument("attention store: '" + name + "' needs " + std::to_string(n) + " values");
    }
    append_row(f, path, H5T_NATIVE_FLOAT, it->second.data());
  };
  append_validation("val_pooled", "validation/pooled", impl_->header.pooled_dim);
  append_validation("val_output", "validation/output", impl_->header.val_outputs);
  for (const auto& [site, shape] : impl_->header.internals) {
    size_t n = 1;
    for (int64_t x : shape) n *= static_cast<size_t>(x);
    auto it = analyses.find("internals/" + site);
    if (it == analyses.end() || it->second.size() != n) {
      throw std::invalid_argument("attention store: internal site '" + site + "' needs " + std::to_string(n) + " values");
    }
    append_row(f, "internals/" + site_path(site), H5T_NATIVE_FLOAT, it->second.data());
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
  Hid d = open_dataset(impl_->file, "analysis/js_final");
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

}  // namespace attnscope::store
