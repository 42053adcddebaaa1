// The --nproc-per-node launcher and torchrun's environment (cli/launch.h).
#include "cli/launch.h"

#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <map>
#include <thread>

#include "core/core.h"

namespace attnscope::cli {
namespace {

constexpr const char* kLaunchedVar = "ATTNSCOPE_LAUNCHED";
volatile sig_atomic_t g_stop_signal = 0;

void on_stop_signal(int sig) { g_stop_signal = sig; }

// An integer environment variable, or `fallback` when unset.
int64_t env_int(const char* name, int64_t fallback) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return fallback;
  char* end = nullptr;
  errno = 0;
  const long long x = std::strtoll(v, &end, 10);
  if (*end != '\0' || errno == ERANGE) throw UsageError(std::string("environment variable ") + name + "='" + v + "' is not an integer");
  return x;
}

// The port is free on this machine (rank 0 will host the rendezvous store there).
void check_port_free(int64_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return;
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_ANY);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  const int err = errno;
  ::close(fd);
  if (!ok) {
    throw UsageError("--master-port " + std::to_string(port) + ": cannot listen on port " + std::to_string(port) +
                     " of this machine (" + std::strerror(err) + "); rank 0 hosts the rendezvous store there: choose a free port");
  }
}

void check_resolves(const std::string& host) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  const int rc = ::getaddrinfo(host.c_str(), nullptr, &hints, &res);
  if (rc != 0) throw UsageError("--master-addr '" + host + "': cannot resolve the address (" + ::gai_strerror(rc) + ")");
  ::freeaddrinfo(res);
}

std::string describe_status(int status) {
  if (WIFEXITED(status)) return "exited with code " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    const int sig = WTERMSIG(status);
    return "was killed by signal " + std::to_string(sig) + " (" + ::strsignal(sig) + ")";
  }
  return "stopped (status " + std::to_string(status) + ")";
}

}  // namespace

pid_t spawn_process(const std::string& exe, const std::vector<std::string>& args,
                    const std::map<std::string, std::string>& env, const std::string& stderr_file, bool die_with_parent) {
  const pid_t pid = ::fork();
  if (pid != 0) {
    if (pid < 0) throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
    return pid;
  }
  if (die_with_parent) ::prctl(PR_SET_PDEATHSIG, SIGTERM);
  for (const auto& [k, v] : env) ::setenv(k.c_str(), v.c_str(), 1);
  if (!stderr_file.empty() && ::freopen(stderr_file.c_str(), "w", stderr) == nullptr) ::_exit(126);
  std::vector<std::string> copy = args;
  std::vector<char*> argv{const_cast<char*>(exe.c_str())};
  for (auto& a : copy) argv.push_back(a.data());
  argv.push_back(nullptr);
  ::execv(exe.c_str(), argv.data());
  std::fprintf(stderr, "attnscope: cannot start %s: %s\n", exe.c_str(), std::strerror(errno));
  ::_exit(127);
}

bool launched_rank() { return std::getenv(kLaunchedVar) != nullptr; }

train::DistEnv dist_env_from_environment() {
  train::DistEnv e;
  e.world = env_int("WORLD_SIZE", 1);
  if (e.world < 1) throw UsageError("environment variable WORLD_SIZE=" + std::to_string(e.world) + ": the world size must be >= 1");
  e.rank = env_int("RANK", 0);
  if (e.rank < 0 || e.rank >= e.world) {
    throw UsageError("environment variable RANK=" + std::to_string(e.rank) + ": must be in [0, WORLD_SIZE = " +
                     std::to_string(e.world) + ")");
  }
  e.local_rank = env_int("LOCAL_RANK", e.rank);
  e.local_world = env_int("LOCAL_WORLD_SIZE", e.world);
  if (const char* a = std::getenv("MASTER_ADDR"); a != nullptr && *a) e.master_addr = a;
  e.master_port = env_int("MASTER_PORT", e.master_port);
  if (e.master_port < 1 || e.master_port > 65535) {
    throw UsageError("environment variable MASTER_PORT=" + std::to_string(e.master_port) + ": must be in [1, 65535]");
  }
  return e;
}

int launch_ranks(const TrainArgs& args) {
  // 1. bad input: nothing is started or written
  const int64_t n = args.nproc_per_node;
  if (n < 1) {
    throw UsageError("--nproc-per-node " + std::to_string(n) + ": the world size (--nnodes x --nproc-per-node) must be >= 1");
  }
  if (args.nnodes < 1) throw UsageError("--nnodes " + std::to_string(args.nnodes) + ": the world size must be >= 1");
  if (args.node_rank < 0 || args.node_rank >= args.nnodes) {
    throw UsageError("--node-rank " + std::to_string(args.node_rank) + ": must be in [0, --nnodes = " +
                     std::to_string(args.nnodes) + ")");
  }
  const int64_t cores = std::max(1u, std::thread::hardware_concurrency());
  if (n > cores && !args.force) {
    throw UsageError("--nproc-per-node " + std::to_string(n) + ": more ranks than this machine's " + std::to_string(cores) +
                     " cores (each rank is a training process; set run.threads so ranks x threads <= cores); "
                     "add --force to start them anyway");
  }
  if (args.master_port < 1 || args.master_port > 65535) {
    throw UsageError("--master-port " + std::to_string(args.master_port) + ": must be in [1, 65535]");
  }
  check_resolves(args.master_addr);
  std::string config_path = args.config_path;
  if (config_path.empty()) config_path = args.out + "/config.yaml";
  const Config config = resolve_config(config_path, args.sets).config;
  if (args.node_rank == 0 && config.dist.store == "tcp") check_port_free(args.master_port);

  // 2. the node's ranks: this executable again, told its place by torchrun's variables
  const int64_t world = args.nnodes * n;
  std::cerr << "[launch] node " << args.node_rank << " of " << args.nnodes << ": starting ranks " << args.node_rank * n
            << ".." << args.node_rank * n + n - 1 << " of " << world << ", rendezvous at " << args.master_addr << ":"
            << args.master_port << "\n";
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);
  std::map<pid_t, int64_t> ranks;  // live children
  for (int64_t i = 0; i < n; ++i) {
    const int64_t rank = args.node_rank * n + i;
    const std::map<std::string, std::string> env{
        {kLaunchedVar, "1"}, {"RANK", std::to_string(rank)}, {"LOCAL_RANK", std::to_string(i)},
        {"WORLD_SIZE", std::to_string(world)}, {"LOCAL_WORLD_SIZE", std::to_string(n)},
        {"GROUP_RANK", std::to_string(args.node_rank)}, {"MASTER_ADDR", args.master_addr},
        {"MASTER_PORT", std::to_string(args.master_port)}};
    // this executable again, with the same arguments (a rank ignores the launch flags)
    const std::vector<std::string> rest(args.argv.begin() + (args.argv.empty() ? 0 : 1), args.argv.end());
    const pid_t pid = spawn_process("/proc/self/exe", rest, env, "", /*die_with_parent=*/true);
    ranks[pid] = rank;
  }

  // 3. supervise: the first rank to fail stops the others
  using clock = std::chrono::steady_clock;
  int code = 0;
  std::string failure;
  bool stopping = false;
  clock::time_point kill_at;
  auto stop_all = [&](int sig) {  // SIGCONT too, so that a stopped (hung) rank sees it
    for (const auto& [pid, rank] : ranks) ::kill(pid, sig), ::kill(pid, SIGCONT);
  };
  while (!ranks.empty()) {
    int status = 0;
    const pid_t pid = ::waitpid(-1, &status, WNOHANG);
    if (pid > 0 && ranks.count(pid)) {
      const int64_t rank = ranks.at(pid);
      ranks.erase(pid);
      const bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
      if (!ok && failure.empty()) {
        failure = "rank " + std::to_string(rank) + " (local rank " + std::to_string(rank - args.node_rank * n) + ", pid " +
                  std::to_string(pid) + ") " + describe_status(status);
        code = WIFEXITED(status) ? WEXITSTATUS(status) : kExitTraining;
        if (!ranks.empty() && !stopping) {
          stopping = true;
          kill_at = clock::now() + std::chrono::seconds(10);
          stop_all(SIGTERM);
        }
      }
      continue;
    }
    if (pid < 0 && errno == ECHILD) break;
    if (g_stop_signal != 0 && !stopping) {
      stopping = true;
      failure = std::string("the launcher received ") + ::strsignal(g_stop_signal);
      code = 128 + g_stop_signal;
      kill_at = clock::now() + std::chrono::seconds(10);
      stop_all(SIGTERM);
    }
    if (stopping && clock::now() > kill_at) stop_all(SIGKILL);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (!failure.empty()) {
    std::cerr << "attnscope: error: " << failure;
    if (n > 1) std::cerr << "; the other ranks of this node were stopped";
    if (code == kExitUsage) {
      std::cerr << " (bad input: see the rank's message above)\n";
    } else {
      std::cerr << ". Continue from the last checkpoint with: attnscope train --resume --out RUN_DIR --nproc-per-node " << n
                << "\n";
    }
    return code == 0 ? 1 : code;
  }
  std::cerr << "[launch] all " << n << " ranks of node " << args.node_rank << " finished\n";
  return 0;
}

}  // namespace attnscope::cli
