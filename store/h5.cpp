// The HDF5 helpers of store/ (store/h5.h): types, attributes, datasets, whole and partial reads
// and writes, each failure a UsageError naming the file.
#include "store/h5.h"

#include <algorithm>
#include <fstream>
#include <map>

namespace attnscope::store::detail {

thread_local std::string g_path;

namespace {

struct Quiet {  // HDF5 prints its error stack by default; errors become exceptions here instead
  Quiet() {
    // No library clean-up at exit: after a failed write (a full disk) it retried the file's flush
    // in exit() and crashed; every file is closed by its owner (Hid) before then.
    H5dont_atexit();
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  }
};
const Quiet quiet;

// An attribute's type class must be `cls` (a string read as an integer, or the reverse, is refused).
void check_attr_class(hid_t a, const char* name, H5T_class_t cls) {
  Hid t(H5Aget_type(a), H5Tclose);
  if (t.get() < 0 || H5Tget_class(t) != cls || (cls == H5T_STRING && H5Tis_variable_str(t) <= 0)) {
    throw UsageError("'" + g_path + "': attribute '" + name + "' has the wrong type (expected " +
                     (cls == H5T_STRING ? "a variable-length string" : "an integer") + ")");
  }
}

// The attribute `name`, checked to be of class `cls`.
Hid open_attr(hid_t obj, const char* name, H5T_class_t cls) {
  if (!has_attr(obj, name)) throw UsageError("'" + g_path + "' has no attribute '" + name + "'");
  Hid a(ok(H5Aopen(obj, name, H5P_DEFAULT), name), H5Aclose);
  check_attr_class(a, name, cls);
  return a;
}

// Creates every parent group of `path` (relative to loc).
void make_groups(hid_t loc, const std::string& path) {
  size_t pos = 0;
  while ((pos = path.find('/', pos + 1)) != std::string::npos) {
    const std::string g = path.substr(0, pos);
    if (!has_link(loc, g)) {
      Hid grp(ok(H5Gcreate2(loc, g.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), "group " + g), H5Gclose);
    }
  }
}

// The hyperslab start/count of dataset `d`'s file space, selected.
Hid select(hid_t d, const std::vector<hsize_t>& start, const std::vector<hsize_t>& count) {
  Hid fspace(H5Dget_space(d), H5Sclose);
  ok(H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start.data(), nullptr, count.data(), nullptr), "select");
  return fspace;
}

Hid memory_space(const std::vector<hsize_t>& count) {
  return Hid(H5Screate_simple(static_cast<int>(count.size()), count.data(), nullptr), H5Sclose);
}

}  // namespace

// ---- types and attributes

Hid vlen_string_type() {
  Hid t(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_size(t, H5T_VARIABLE);
  H5Tset_cset(t, H5T_CSET_UTF8);
  return t;
}

Hid half_type() {
  Hid t(H5Tcopy(H5T_IEEE_F32LE), H5Tclose);
  ok(H5Tset_fields(t, 15, 10, 5, 0, 10), "float16 fields");
  ok(H5Tset_size(t, 2), "float16 size");
  ok(H5Tset_ebias(t, 15), "float16 bias");
  return t;
}

Hid storage_type(const std::string& dtype) {
  return dtype == "float16" ? half_type() : Hid(H5Tcopy(H5T_IEEE_F32LE), H5Tclose);
}

Hid file_access() {
  Hid fapl(H5Pcreate(H5P_FILE_ACCESS), H5Pclose);
  ok(H5Pset_libver_bounds(fapl, H5F_LIBVER_LATEST, H5F_LIBVER_LATEST), "libver");  // needed for SWMR
  return fapl;
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

std::string read_attr_string(hid_t obj, const char* name) {
  Hid a = open_attr(obj, name, H5T_STRING);
  Hid t = vlen_string_type();
  char* p = nullptr;
  ok(H5Aread(a, t, &p), "attribute read");
  std::string s = p ? p : "";
  H5free_memory(p);
  return s;
}

int64_t read_attr_int(hid_t obj, const char* name) {
  Hid a = open_attr(obj, name, H5T_INTEGER);
  int64_t v = 0;
  ok(H5Aread(a, H5T_NATIVE_INT64, &v), "attribute read");
  return v;
}

bool has_attr(hid_t obj, const char* name) { return H5Aexists(obj, name) > 0; }

bool has_link(hid_t loc, const std::string& path) {
  // every component in turn: H5Lexists fails on a path through a missing group
  for (size_t at = path.find('/'); at != std::string::npos; at = path.find('/', at + 1)) {
    if (H5Lexists(loc, path.substr(0, at).c_str(), H5P_DEFAULT) <= 0) return false;
  }
  return H5Lexists(loc, path.c_str(), H5P_DEFAULT) > 0;
}

// ---- datasets

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

Hid open_dataset(hid_t file, const std::string& path) {
  return Hid(ok(H5Dopen2(file, path.c_str(), H5P_DEFAULT), path), H5Dclose);
}

std::vector<hsize_t> dims_of(hid_t d) {
  Hid space(ok(H5Dget_space(d), "dataspace"), H5Sclose);
  const int rank = H5Sget_simple_extent_ndims(space);
  if (rank < 0 || rank > 32) throw UsageError("'" + g_path + "': a dataset has no usable shape (rank " + std::to_string(rank) + ")");
  std::vector<hsize_t> dims(static_cast<size_t>(rank));
  H5Sget_simple_extent_dims(space, dims.data(), nullptr);
  return dims;
}

hsize_t element_count(const std::vector<hsize_t>& dims) {
  hsize_t n = 1;
  for (hsize_t x : dims) n *= x;
  return n;
}

void write_all(hid_t file, const std::string& path, hid_t mem_type, const void* data) {
  Hid d = open_dataset(file, path);
  ok(H5Dwrite(d, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data), "write");
}

void append_row(hid_t file, const std::string& path, hid_t mem_type, const void* data) {
  Hid d = open_dataset(file, path);
  std::vector<hsize_t> dims = dims_of(d);
  std::vector<hsize_t> start(dims.size(), 0), count = dims;
  start[0] = dims[0];
  count[0] = 1;
  dims[0] += 1;
  ok(H5Dset_extent(d, dims.data()), "extend");
  Hid fspace = select(d, start, count);
  Hid mspace = memory_space(count);
  ok(H5Dwrite(d, mem_type, mspace, fspace, H5P_DEFAULT, data), "append");
}

void shrink(hid_t file, const std::string& path, hsize_t rows) {
  Hid d = open_dataset(file, path);
  std::vector<hsize_t> dims = dims_of(d);
  if (dims[0] <= rows) return;
  dims[0] = rows;
  ok(H5Dset_extent(d, dims.data()), "shrink");
}

namespace {

// Little-endian unsigned integer of `n` bytes at p (HDF5 stores its lengths, addresses and indices so).
uint64_t little_endian(const unsigned char* p, size_t n) {
  uint64_t v = 0;
  for (size_t i = n; i-- > 0;) v = (v << 8) | p[i];
  return v;
}

// HDF5 trusts what a variable-length string's stored element says (its length, 4 bytes, then the
// global heap collection's address and the object's index) and what that heap collection says
// (each object's size): it allocated and cleared 4 GB for a damaged length (tens of seconds),
// and copied a damaged object size past its buffer (a crash). The elements (of a contiguous
// dataset, as the writer stores strings) and the collections they point into are checked against
// the file's size and each other first (format: HDF5's "Global Heap" and "Variable-length"
// sections); a dataset laid out otherwise is left to HDF5.
void check_strings(hid_t file, hid_t d, const std::string& path, hsize_t n) {
  const haddr_t offset = H5Dget_offset(d);
  hsize_t file_size = 0;
  size_t sizeof_addr = 0, sizeof_size = 0;
  Hid fcpl(H5Fget_create_plist(file), H5Pclose);
  if (offset == HADDR_UNDEF || fcpl.get() < 0 || H5Pget_sizes(fcpl, &sizeof_addr, &sizeof_size) < 0 ||
      H5Fget_filesize(file, &file_size) < 0 || sizeof_addr > 8 || sizeof_size > 8) {
    return;
  }
  const hsize_t element = 4 + sizeof_addr + 4;  // length, heap collection address, object index
  if (H5Dget_storage_size(d) != n * element || offset + n * element > file_size) return;
  std::vector<char> name(static_cast<size_t>(std::max<ssize_t>(0, H5Fget_name(file, nullptr, 0))) + 1, '\0');
  if (name.size() < 2 || H5Fget_name(file, name.data(), name.size()) < 0) return;
  std::ifstream in(name.data(), std::ios::binary);
  auto bytes = [&](uint64_t at, uint64_t count) {  // empty when the file has not got them
    std::string b(static_cast<size_t>(count), '\0');
    if (!in.seekg(static_cast<std::streamoff>(at)) || !in.read(b.data(), static_cast<std::streamsize>(count))) b.clear();
    return b;
  };
  const std::string raw = bytes(offset, n * element);
  if (raw.empty()) return;
  auto damaged = [&](hsize_t i, const std::string& what) {
    return UsageError("'" + g_path + "' is not a usable attention file: dataset '" + path + "' element " +
                      std::to_string(i) + " " + what + " (a damaged file)");
  };
  std::map<uint64_t, std::map<uint64_t, uint64_t>> heaps;  // collection address -> object index -> size
  auto heap = [&](uint64_t at) -> const std::map<uint64_t, uint64_t>* {
    auto it = heaps.find(at);
    if (it != heaps.end()) return &it->second;
    const size_t head = 8 + sizeof_size;  // "GCOL", version 1, 3 reserved bytes, collection size
    if (at + head > file_size) return nullptr;
    const std::string h = bytes(at, head);
    if (h.size() != head || h.compare(0, 4, "GCOL") != 0) return nullptr;
    const uint64_t size = little_endian(reinterpret_cast<const unsigned char*>(h.data()) + 8, sizeof_size);
    if (size < head || size > file_size - at) return nullptr;
    const std::string c = bytes(at, size);
    if (c.size() != size) return nullptr;
    std::map<uint64_t, uint64_t> objects;
    const size_t object_head = 8 + sizeof_size;  // index (2 bytes), references (2), reserved (4), size
    for (uint64_t p = head; p + object_head <= size;) {
      const auto* o = reinterpret_cast<const unsigned char*>(c.data()) + p;
      const uint64_t index = little_endian(o, 2), osize = little_endian(o + 8, sizeof_size);
      if (index == 0) break;  // the free space: the rest of the collection
      if (osize > size - p - object_head) return nullptr;  // an object past its collection's end
      objects[index] = osize;
      p += object_head + (osize + 7) / 8 * 8;
    }
    return &(heaps[at] = std::move(objects));
  };
  for (hsize_t i = 0; i < n; ++i) {
    const auto* e = reinterpret_cast<const unsigned char*>(raw.data() + i * element);
    const uint64_t length = little_endian(e, 4), at = little_endian(e + 4, sizeof_addr),
                   index = little_endian(e + 4 + sizeof_addr, 4);
    if (length == 0) continue;  // an empty string: no heap object
    if (length > file_size) {
      throw damaged(i, "claims a string of " + std::to_string(length) + " bytes, more than the " +
                           std::to_string(file_size) + "-byte file holds");
    }
    const auto* objects = heap(at);
    if (objects == nullptr) throw damaged(i, "points to a string heap at byte " + std::to_string(at) + " that is not one");
    const auto it = objects->find(index);
    if (it == objects->end() || it->second != length) {
      throw damaged(i, "claims a string of " + std::to_string(length) + " bytes that its heap at byte " +
                           std::to_string(at) + " does not hold");
    }
  }
}

}  // namespace

std::vector<std::string> read_strings(hid_t file, const std::string& path) {
  Hid d = open_dataset(file, path);
  const hsize_t n = element_count(dims_of(d));
  check_strings(file, d, path, n);
  std::vector<char*> raw(n, nullptr);
  Hid t = vlen_string_type();
  if (n > 0) ok(H5Dread(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, raw.data()), "read strings");
  std::vector<std::string> out;
  for (char* p : raw) out.emplace_back(p ? p : "");
  Hid space(H5Dget_space(d), H5Sclose);
  H5Dvlen_reclaim(t, space, H5P_DEFAULT, raw.data());
  return out;
}

std::vector<float> read_slab(hid_t file, const std::string& path, std::vector<hsize_t> start, std::vector<hsize_t> count) {
  Hid d = open_dataset(file, path);
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
  std::vector<float> v(element_count(count));
  Hid fspace = select(d, start, count);
  Hid mspace = memory_space(count);
  ok(H5Dread(d, H5T_NATIVE_FLOAT, mspace, fspace, H5P_DEFAULT, v.data()), "read " + path);
  return v;
}

std::vector<float> read_row(hid_t file, const std::string& path, int64_t index) {
  if (index < 0) throw UsageError("'" + g_path + "': " + path + ": negative row " + std::to_string(index));
  return read_slab(file, path, {static_cast<hsize_t>(index)}, {1});
}

}  // namespace attnscope::store::detail
