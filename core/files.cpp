// File helpers of core/files.h.
#include "core/files.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include "core/error.h"

namespace attnscope {

void write_file_atomic(const std::string& path, const std::string& content) {
  // A temporary beside the target, renamed over it when whole; on any failure (no such folder,
  // permissions, no space left) the temporary is removed and the error names the path (exit 2).
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw UsageError("cannot write '" + path + "': " + std::strerror(errno));
    out << content;
    out.flush();
    out.close();
    if (!out) {
      const std::string why = std::strerror(errno);
      std::remove(tmp.c_str());
      throw UsageError("cannot write '" + path + "': " + why);
    }
  }
  try {
    rename_file(tmp, path);
  } catch (const std::exception&) {
    std::remove(tmp.c_str());
    throw;
  }
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw UsageError("cannot read '" + path + "': " + std::strerror(errno));
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void rename_file(const std::string& from, const std::string& to) {
  if (std::rename(from.c_str(), to.c_str()) != 0) {
    throw UsageError("cannot rename '" + from + "' to '" + to + "': " + std::strerror(errno));
  }
}

}  // namespace attnscope
