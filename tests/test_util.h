// Helpers shared by the test executables: temporary directories, files, metrics, CLI runs.
#pragma once

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "cli/cli.h"

namespace attnscope::testing {

inline std::string source_path(const std::string& rel) { return std::string(ATTNSCOPE_SOURCE_DIR) + "/" + rel; }
// A test fixture of the repository (tests/fixtures/, see its README).
inline std::string fixture_path(const std::string& rel) { return source_path("tests/fixtures/" + rel); }

// A fresh directory under the system temp dir, removed at destruction.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "attnscope-test-XXXXXX").string();
    path_ = ::mkdtemp(tmpl.data());
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string path(const std::string& rel = "") const { return rel.empty() ? path_ : path_ + "/" + rel; }

 private:
  std::string path_;
};

inline void write_text(const std::string& path, const std::string& text) {
  std::ofstream(path) << text;
}

inline std::string read_file_text(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

inline std::vector<std::string> read_lines(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  for (std::string l; std::getline(in, l);) lines.push_back(l);
  return lines;
}

// metrics.jsonl without the wall-time field, which is the one field allowed to differ.
inline std::vector<std::string> metrics_without_seconds(const std::string& path) {
  std::vector<std::string> out;
  for (auto l : read_lines(path)) {
    const auto pos = l.find(",\"seconds\":");
    if (pos != std::string::npos) l = l.substr(0, pos) + "}";
    out.push_back(l);
  }
  return out;
}

inline int run_cli(std::vector<std::string> args) {
  args.insert(args.begin(), "attnscope");
  return cli::run(args);
}

// A short min/max run: 32 numbers (3,072 examples), quiet.
inline std::vector<std::string> small_minmax(const std::string& out, int epochs) {
  return {"train", source_path("configs/minmax.yaml"), "--out", out, "--set",
          "data.minmax_numbers=32", "train.epochs=" + std::to_string(epochs),
          "train.progress=none", "run.log_level=warn"};
}

// Starts the attnscope executable with `args` as a child process (stderr to `stderr_file`,
// silenced by default; `env` added to its environment); its pid.
inline pid_t spawn(const std::vector<std::string>& args, const std::map<std::string, std::string>& env = {},
                   const std::string& stderr_file = "/dev/null") {
  return cli::spawn_process(ATTNSCOPE_EXE, args, env, stderr_file);
}

// The child's exit code, or minus the signal that killed it.
inline int wait_exit(pid_t pid) {
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
}

// Runs the attnscope executable as a child process (a crash is its exit, not the test's):
// {exit code or minus the signal, its stderr}. With `wrapper` (e.g. {"/usr/bin/prlimit",
// "--fsize=N"}) the child is that program with the attnscope executable and `args` after it.
inline std::pair<int, std::string> run_child(const std::vector<std::string>& args,
                                             const std::vector<std::string>& wrapper = {}) {
  std::string tmpl = (std::filesystem::temp_directory_path() / "attnscope-stderr-XXXXXX").string();
  const int fd = ::mkstemp(tmpl.data());
  if (fd >= 0) ::close(fd);
  std::vector<std::string> wrapped(wrapper.begin() + (wrapper.empty() ? 0 : 1), wrapper.end());
  wrapped.push_back(ATTNSCOPE_EXE);
  wrapped.insert(wrapped.end(), args.begin(), args.end());
  const int code = wrapper.empty() ? wait_exit(spawn(args, {}, tmpl))
                                   : wait_exit(cli::spawn_process(wrapper[0], wrapped, {}, tmpl));
  std::string err = read_file_text(tmpl);
  std::filesystem::remove(tmpl);
  return {code, err};
}

}  // namespace attnscope::testing
