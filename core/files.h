// Small filesystem helpers: atomic writes (temp file + rename) and whole-file reads that report
// the path on failure.
#pragma once

#include <string>

namespace attnscope {

// Writes `content` to `path` via `path.tmp` + rename, so readers see the old or the new file.
void write_file_atomic(const std::string& path, const std::string& content);

// Reads a whole file; throws UsageError naming the path when it cannot.
std::string read_file(const std::string& path);

// Renames `from` over `to` (atomic on POSIX); throws std::runtime_error naming both on failure.
void rename_file(const std::string& from, const std::string& to);

}  // namespace attnscope
