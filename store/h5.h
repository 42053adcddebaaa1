// Internal to store/: the HDF5 C API made safe to use from the writer, the reader and the file
// validation (RAII ids, errors as UsageError naming the file), and the layout of schema 1 that
// all three share (attribute and dataset names, row shapes, the header and the probes).
#pragma once

#include <hdf5.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "core/core.h"
#include "store/store.h"

namespace attnscope::store::detail {

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

// The file the calling thread works on, for messages (the recorder writes from its own thread).
extern thread_local std::string g_path;

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

// ---- types and attributes (h5.cpp)
Hid vlen_string_type();
Hid half_type();  // IEEE binary16: what h5py reads as numpy.float16
Hid storage_type(const std::string& dtype);  // of the maps: "float16" or else float32
Hid file_access();  // latest format (needed for SWMR)
void write_attr_string(hid_t obj, const char* name, const std::string& value);
void write_attr_int(hid_t obj, const char* name, int64_t value);
std::string read_attr_string(hid_t obj, const char* name);  // UsageError when absent or not a string
int64_t read_attr_int(hid_t obj, const char* name);         // UsageError when absent or not an integer
bool has_attr(hid_t obj, const char* name);
bool has_link(hid_t loc, const std::string& path);

// ---- datasets (h5.cpp)
// A dataset with an unlimited first axis (when `extensible`), chunked as `chunk`; its parent
// groups are created as needed.
void create_dataset(hid_t file, const std::string& path, hid_t type, const std::vector<hsize_t>& dims,
                    const std::vector<hsize_t>& chunk, bool extensible, int64_t gzip);
Hid open_dataset(hid_t file, const std::string& path);
std::vector<hsize_t> dims_of(hid_t d);
hsize_t element_count(const std::vector<hsize_t>& dims);
void write_all(hid_t file, const std::string& path, hid_t mem_type, const void* data);
// Grows the first axis by one and writes `data` (one row of the remaining dims) there.
void append_row(hid_t file, const std::string& path, hid_t mem_type, const void* data);
// Drops the rows of the first axis from `rows` on.
void shrink(hid_t file, const std::string& path, hsize_t rows);
std::vector<std::string> read_strings(hid_t file, const std::string& path);
// Reads the hyperslab start/count (a prefix of the dataset's axes; the remaining axes whole).
std::vector<float> read_slab(hid_t file, const std::string& path, std::vector<hsize_t> start, std::vector<hsize_t> count);
// Reads row `index` of the first axis.
std::vector<float> read_row(hid_t file, const std::string& path, int64_t index);

template <class T>
std::vector<T> read_all(hid_t file, const std::string& path, hid_t mem_type) {
  Hid d = open_dataset(file, path);
  const hsize_t n = element_count(dims_of(d));
  std::vector<T> v(n);
  if (n > 0) ok(H5Dread(d, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data()), "read");
  return v;
}

// ---- the layout of schema 1 (layout.cpp)
std::string site_path(const std::string& site);  // "attn.probs" -> "attn/probs"
// Row shape (after the epoch axis) of each analysis dataset.
std::vector<hsize_t> analysis_shape(const std::string& name, hsize_t P, hsize_t L, hsize_t H, hsize_t T);
void write_header(hid_t file, const Header& header);  // the root attributes
void write_probes(hid_t file, const Probes& probes);  // creates and fills /probes
Header read_header(hid_t file);
Probes read_probes(hid_t file);
void write_validation(hid_t file, const Header& h, const Validation& v);  // creates and fills /validation's fixed part
Validation read_validation(hid_t file, const Header& h);
// UsageError unless the file has a schema_version this code reads.
void check_schema(hid_t file, const std::string& path);

// ---- validation of a file to read (validate.cpp)
// The layout of schema 1 against the header: every dataset the reader uses, before it is used.
void validate_layout(hid_t file, const Header& h);
// Probe values the readers index with: lengths 1..T.
void validate_probes(const Probes& p);

}  // namespace attnscope::store::detail
