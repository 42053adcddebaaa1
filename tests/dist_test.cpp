// Distributed data-parallel training: 2 and 3 ranks over loopback, equivalence with one process,
// rank 0's run directory, config mismatch, a killed rank and --resume, bad launch input.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <thread>

#include <nlohmann/json.hpp>

#include "core/core.h"
#include "test_util.h"
#include "train/train.h"

namespace attnscope {
namespace {

namespace fs = std::filesystem;
using testing::TempDir;

// A TCP port nobody listens on right now.
int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

// Exit code (minus the signal), or 999 when it ran past `seconds` (then it is killed).
int wait_for(pid_t pid, double seconds) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (std::chrono::steady_clock::now() < end) {
    int status = 0;
    if (::waitpid(pid, &status, WNOHANG) == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ::kill(pid, SIGKILL);
  ::waitpid(pid, nullptr, 0);
  return 999;
}

// The pid of the launcher's child with RANK=`rank` (0 when none).
pid_t rank_pid(pid_t launcher, int rank) {
  const std::string l = std::to_string(launcher);
  for (const auto& line : testing::read_lines("/proc/" + l + "/task/" + l + "/children")) {
    std::istringstream ids(line);
    for (pid_t pid; ids >> pid;) {
      const std::string environ = testing::read_file_text("/proc/" + std::to_string(pid) + "/environ");
      if (environ.find(std::string("\0RANK=", 6) + std::to_string(rank) + '\0') != std::string::npos) return pid;
    }
  }
  return 0;
}

// Waits until the run directory's metrics.jsonl has `lines` lines (false after a minute).
bool wait_for_epochs(const std::string& run_dir, size_t lines) {
  for (int i = 0; i < 3000 && testing::read_lines(run_dir + "/metrics.jsonl").size() < lines; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return testing::read_lines(run_dir + "/metrics.jsonl").size() >= lines;
}

struct Result {
  int code;
  std::string err;
};

Result run(const std::vector<std::string>& args, const std::map<std::string, std::string>& env = {}, double seconds = 240) {
  TempDir d;
  const pid_t pid = testing::spawn(args, env, d.path("stderr"));
  const int code = wait_for(pid, seconds);
  return {code, testing::read_file_text(d.path("stderr"))};
}

// A short min/max run: 16 numbers (85 training examples), batch 32 (3 steps, the last of 21).
std::vector<std::string> minmax_args(const std::string& out, int epochs, int batch = 32) {
  return {"train", testing::source_path("configs/minmax.yaml"), "--out", out, "--set", "data.minmax_numbers=16",
          "train.epochs=" + std::to_string(epochs), "train.batch_size=" + std::to_string(batch), "run.threads=1",
          "train.progress=none", "run.log_level=warn", "dist.timeout_s=60"};
}

std::vector<std::string> with(std::vector<std::string> args, const std::vector<std::string>& more) {
  args.insert(args.end(), more.begin(), more.end());
  return args;
}

std::vector<std::string> launch(int nproc, int port) {
  return {"--nproc-per-node", std::to_string(nproc), "--master-addr", "127.0.0.1", "--master-port", std::to_string(port)};
}

// Parameters of a checkpoint.
std::map<std::string, torch::Tensor> weights(const std::string& path) {
  const std::string bytes = testing::read_file_text(path);
  const auto root = torch::pickle_load(std::vector<char>(bytes.begin(), bytes.end())).toGenericDict();
  std::map<std::string, torch::Tensor> out;
  for (const auto& kv : root.at("model").toGenericDict()) out[kv.key().toStringRef()] = kv.value().toTensor();
  return out;
}

void expect_same_weights(const std::string& a, const std::string& b, double tol) {
  const auto wa = weights(a), wb = weights(b);
  ASSERT_EQ(wa.size(), wb.size());
  for (const auto& [name, t] : wa) {
    ASSERT_TRUE(wb.count(name)) << name;
    if (!t.is_floating_point()) continue;
    const double diff = (t.to(torch::kDouble) - wb.at(name).to(torch::kDouble)).abs().max().item<double>();
    EXPECT_LE(diff, tol) << name;
  }
}

nlohmann::json last_metrics(const std::string& run_dir) {
  const auto lines = testing::read_lines(run_dir + "/metrics.jsonl");
  return lines.empty() ? nlohmann::json() : nlohmann::json::parse(lines.back());
}

TEST(RankSlice, StridesWeightsAndPadding) {
  const auto batch = torch::arange(10, 15, torch::kLong);  // 5 examples over 2 ranks: 3 + 2
  const auto a = train::rank_slice(batch, 0, 2), b = train::rank_slice(batch, 1, 2);
  EXPECT_TRUE(torch::equal(a.idx, torch::tensor({10, 12, 14}, torch::kLong)));
  EXPECT_TRUE(torch::equal(b.idx, torch::tensor({11, 13}, torch::kLong)));
  auto examples = [](const torch::Tensor& idx) { return static_cast<double>(idx.size(0)); };
  EXPECT_DOUBLE_EQ(train::rank_weight(batch, 0, 2, examples), 0.6);
  EXPECT_DOUBLE_EQ(train::rank_weight(batch, 1, 2, examples), 0.4);
  // weights by the loss's own denominator, e.g. known labels: only even ids have one here
  auto even = [](const torch::Tensor& idx) { return (idx.remainder(2) == 0).sum().item<double>(); };
  EXPECT_DOUBLE_EQ(train::rank_weight(batch, 0, 2, even), 1.0);
  EXPECT_DOUBLE_EQ(train::rank_weight(batch, 1, 2, even), 0.0);
  const auto one = torch::tensor({7}, torch::kLong);  // nothing left for ranks 1 and 2
  const auto c = train::rank_slice(one, 2, 3);
  EXPECT_TRUE(c.padding);
  EXPECT_EQ(c.idx.size(0), 1);
  EXPECT_EQ(train::rank_weight(one, 2, 3, examples), 0.0);
  EXPECT_EQ(train::rank_weight(one, 0, 3, examples), 1.0);
}

// 2 ranks x batch 16 (+ an uneven last batch 11 + 10) = 1 process x batch 32, parameter by parameter.
TEST(Distributed, TwoRanksEqualOneProcessWithTheGlobalBatchMinMax) {
  TempDir d;
  const int port = free_port();
  auto two = with(minmax_args(d.path("two"), 2), {"hooks.attention.enabled=true", "hooks.attention.every=1"});
  two = with(two, launch(2, port));
  const auto r2 = run(two);
  ASSERT_EQ(r2.code, 0) << r2.err;
  ASSERT_EQ(run(with(minmax_args(d.path("one"), 2), {"hooks.attention.enabled=true", "hooks.attention.every=1"})).code, 0);
  expect_same_weights(d.path("one/checkpoints/last.pt"), d.path("two/checkpoints/last.pt"), 1e-5);
  // the control: one rank's half of each batch alone trains to other weights
  ASSERT_EQ(run(minmax_args(d.path("half"), 2, 16)).code, 0);
  const auto a = weights(d.path("half/checkpoints/last.pt")), b = weights(d.path("two/checkpoints/last.pt"));
  EXPECT_GT((a.at("W_Q") - b.at("W_Q")).abs().max().item<double>(), 1e-4);
  // rank 0 wrote the run directory, the whole validation split in its metrics; rank 1 its log
  const auto m1 = last_metrics(d.path("one")), m2 = last_metrics(d.path("two"));
  EXPECT_EQ(m2["step"], m1["step"]);
  EXPECT_NEAR(m2["train_loss"].get<double>(), m1["train_loss"].get<double>(), 1e-5);
  EXPECT_NEAR(m2["val_loss"].get<double>(), m1["val_loss"].get<double>(), 1e-5);
  EXPECT_NEAR(m2["val_acc"].get<double>(), m1["val_acc"].get<double>(), 1e-9);
  EXPECT_EQ(testing::read_lines(d.path("two/metrics.jsonl")).size(), 2u);
  EXPECT_TRUE(fs::exists(d.path("two/attention.h5")));
  EXPECT_TRUE(fs::exists(d.path("two/rank-1.log")));
  EXPECT_FALSE(fs::exists(d.path("two/rank-0.log")));
  EXPECT_NE(testing::read_file_text(d.path("two/train.log")).find("rank 0 of 2"), std::string::npos);
}

// A tiny RoBERTa on 200 ESOL molecules: 2 ranks x 16 = 1 process x 32 (dropout off: each rank
// draws its own masks). `csv_row` makes a CSV line from an ESOL row's SMILES and solubility.
void expect_roberta_equivalence(const std::string& header, const std::function<std::string(size_t, const std::string&, double)>& csv_row,
                                const std::vector<std::string>& sets) {
  TempDir d;
  const auto lines = testing::read_lines(testing::source_path("data/esol/delaney-processed.csv"));
  {
    std::ofstream csv(d.path("mols.csv"));
    csv << header << "\n";
    for (size_t i = 1; i < 201 && i < lines.size(); ++i) {
      const auto& l = lines[i];
      const auto last = l.rfind(','), prev = l.rfind(',', last - 1);
      csv << csv_row(i, l.substr(last + 1), std::stod(l.substr(prev + 1, last - prev - 1))) << "\n";
    }
  }
  auto args = [&](const std::string& out) {
    return with({"train", testing::source_path("configs/chemberta-esol.yaml"), "--out", out, "--set", "data.csv=" + d.path("mols.csv"),
                 "data.split=random", "model.n_layers=2", "model.d_model=32", "model.n_heads=4", "model.d_ff=64", "model.dropout=0",
                 "model.attention_dropout=0", "train.epochs=2", "train.batch_size=32", "run.threads=1", "train.progress=none",
                 "run.log_level=warn", "dist.timeout_s=60"},
                sets);
  };
  const auto r2 = run(with(args(d.path("two")), launch(2, free_port())));
  ASSERT_EQ(r2.code, 0) << r2.err;
  ASSERT_EQ(run(args(d.path("one"))).code, 0);
  // The two ranks' gradient sum rounds differently from one process's (another summation order,
  // and OpenBLAS picks its kernel by CPU: ~1e-5 seen on an AMD EPYC after a few AdamW steps, where
  // Adam's normalisation enlarges the rounding of near-zero gradients); a wrong reduction would
  // differ by the learning rate's order.
  expect_same_weights(d.path("one/checkpoints/last.pt"), d.path("two/checkpoints/last.pt"), 3e-5);
  EXPECT_NEAR(last_metrics(d.path("two"))["val_loss"].get<double>(), last_metrics(d.path("one"))["val_loss"].get<double>(), 1e-4);
  EXPECT_TRUE(fs::exists(d.path("two/test_metrics.json")));
}

TEST(Distributed, TwoRanksEqualOneProcessWithTheGlobalBatchRoberta) {
  expect_roberta_equivalence(
      "smiles,logS", [](size_t, const std::string& smiles, double logs) { return smiles + "," + std::to_string(logs); },
      {"data.targets=[logS]"});
}

// Two classification tasks, a third of one task's labels missing: ranks weigh by known labels.
TEST(Distributed, TwoRanksEqualOneProcessWithMissingLabels) {
  expect_roberta_equivalence(
      "smiles,soluble,long",
      [](size_t i, const std::string& smiles, double logs) {
        return smiles + "," + (logs > -3 ? "1" : "0") + "," + (i % 3 == 0 ? "" : smiles.size() > 20 ? "1" : "0");
      },
      {"data.task=classification", "data.targets=[soluble,long]", "train.best_metric=val_roc_auc", "train.best_mode=max"});
}

// Masked-LM pretraining: the masks depend on (seed, epoch, molecule) alone, so both runs predict
// the same tokens, and ranks weigh their gradients by their predicted tokens.
TEST(Distributed, TwoRanksEqualOneProcessMaskedLm) {
  TempDir d;
  const auto zinc = testing::read_lines(testing::source_path("data/zinc/zinc250k_subset_5k.txt"));
  {
    std::ofstream corpus(d.path("corpus.txt"));
    for (size_t i = 0; i < 150; ++i) corpus << zinc[i] << "\n";
  }
  auto args = [&](const std::string& out) {
    return std::vector<std::string>{"pretrain", testing::source_path("configs/chemberta-pretrain.yaml"), "--out", out, "--set",
                                    "data.csv=" + d.path("corpus.txt"), "data.exclude=[]", "data.frac_val=0.2",
                                    "model.n_layers=2", "model.d_model=32", "model.n_heads=4", "model.d_ff=64", "model.dropout=0",
                                    "model.attention_dropout=0", "train.epochs=2", "train.batch_size=32", "optim.warmup_steps=2",
                                    "hooks.attention.enabled=false", "run.threads=1", "train.progress=none", "run.log_level=warn",
                                    "dist.timeout_s=60"};
  };
  const auto r2 = run(with(args(d.path("two")), launch(2, free_port())));
  ASSERT_EQ(r2.code, 0) << r2.err;
  ASSERT_EQ(run(args(d.path("one"))).code, 0);
  expect_same_weights(d.path("one/checkpoints/last.pt"), d.path("two/checkpoints/last.pt"), 1e-5);
  EXPECT_NEAR(last_metrics(d.path("two"))["val_acc"].get<double>(), last_metrics(d.path("one"))["val_acc"].get<double>(), 1e-9);
}

// Causal-LM (GPT-2) on generated repeated sequences: next-token losses weighed by predicted tokens,
// so 2 ranks x 16 = 1 process x 32.
TEST(Distributed, TwoRanksEqualOneProcessCausalLm) {
  TempDir d;
  auto args = [&](const std::string& out) {
    return std::vector<std::string>{"train", testing::source_path("configs/induction.yaml"), "--out", out, "--set",
                                    "data.synthetic_count=200", "data.synthetic_span=6",
                                    "model.tokenizer_dir=" + testing::source_path("data/text/gpt2-1k"), "data.frac_val=0.1",
                                    "model.d_model=32", "model.d_ff=64", "train.epochs=2", "train.batch_size=32",
                                    "optim.warmup_steps=2", "hooks.attention.enabled=false", "run.threads=1",
                                    "train.progress=none", "run.log_level=warn", "dist.timeout_s=60"};
  };
  const auto r2 = run(with(args(d.path("two")), launch(2, free_port())));
  ASSERT_EQ(r2.code, 0) << r2.err;
  ASSERT_EQ(run(args(d.path("one"))).code, 0);
  expect_same_weights(d.path("one/checkpoints/last.pt"), d.path("two/checkpoints/last.pt"), 1e-5);
  const auto m1 = last_metrics(d.path("one")), m2 = last_metrics(d.path("two"));
  EXPECT_NEAR(m2["val_loss"].get<double>(), m1["val_loss"].get<double>(), 1e-5);
  EXPECT_NEAR(m2["train_loss"].get<double>(), m1["train_loss"].get<double>(), 1e-5);
  EXPECT_TRUE(m1.contains("val_icl"));
}

// 170 examples in batches of 84, 84, 2: 28 + 28 + 28 each, then 1 + 1 + padding for rank 2.
TEST(Distributed, ThreeRanksWithAFileStore) {
  TempDir d;
  auto args = with(minmax_args(d.path("three"), 2, 84), {"dist.store=file", "dist.file=" + d.path("store")});
  args = with(args, launch(3, free_port()));
  args.push_back("--force");  // 3 ranks > 2 cores here
  const auto r = run(args);
  ASSERT_EQ(r.code, 0) << r.err;
  ASSERT_EQ(run(minmax_args(d.path("one"), 2, 84)).code, 0);
  expect_same_weights(d.path("one/checkpoints/last.pt"), d.path("three/checkpoints/last.pt"), 1e-5);
  EXPECT_TRUE(fs::exists(d.path("three/rank-2.log")));
  EXPECT_EQ(testing::metrics_without_seconds(d.path("three/metrics.jsonl")).size(), 2u);
}

// Full-batch training (train.batch_size 0, the min/max preset's): every rank takes a stride of all.
TEST(Distributed, FullBatchOnTwoRanks) {
  TempDir d;
  ASSERT_EQ(run(with(minmax_args(d.path("two"), 3, 0), launch(2, free_port()))).code, 0);
  ASSERT_EQ(run(minmax_args(d.path("one"), 3, 0)).code, 0);
  expect_same_weights(d.path("one/checkpoints/last.pt"), d.path("two/checkpoints/last.pt"), 1e-5);
}

// Ranks started by another launcher (torchrun's environment) with different configs are refused.
TEST(Distributed, MismatchedConfigsAreRefusedWithTheKeys) {
  TempDir d;
  const std::string port = std::to_string(free_port());
  std::map<std::string, std::string> env{{"WORLD_SIZE", "2"}, {"MASTER_ADDR", "127.0.0.1"}, {"MASTER_PORT", port}};
  auto e0 = env, e1 = env;
  e0["RANK"] = "0";
  e1["RANK"] = "1";
  const pid_t p0 = testing::spawn(minmax_args(d.path("run"), 2), e0, d.path("err0"));
  const pid_t p1 = testing::spawn(with(minmax_args(d.path("run"), 3), {"optim.lr=0.01"}), e1, d.path("err1"));
  EXPECT_EQ(wait_for(p0, 120), 2);
  EXPECT_EQ(wait_for(p1, 120), 2);
  for (const char* f : {"err0", "err1"}) {
    const std::string err = testing::read_file_text(d.path(f));
    EXPECT_NE(err.find("train.epochs: 2 -> 3"), std::string::npos) << err;
    EXPECT_NE(err.find("optim.lr"), std::string::npos) << err;
  }
  EXPECT_FALSE(fs::exists(d.path("run")));
}

struct Fault {
  int code;        // the launcher's exit code
  double seconds;  // from the signal to the launcher's exit
  std::string err;
};

// A 2-rank min/max run into `out` whose rank 1 gets `sig` once `epochs` epochs are done.
Fault signal_rank_1(const std::string& out, int sig, size_t epochs, const std::string& timeout_s) {
  TempDir d;
  auto args = with(minmax_args(out, 400, 8), {"train.checkpoint_every=2", "dist.timeout_s=" + timeout_s});
  const pid_t launcher = testing::spawn(with(args, launch(2, free_port())), {}, d.path("err"));
  if (!wait_for_epochs(out, epochs) || rank_pid(launcher, 1) == 0) {
    wait_for(launcher, 0);
    return {999, 0, "the run did not get going"};
  }
  ::kill(rank_pid(launcher, 1), sig);
  const auto t0 = std::chrono::steady_clock::now();
  const int code = wait_for(launcher, 60);
  return {code, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(),
          testing::read_file_text(d.path("err"))};
}

// SIGKILL of one of two ranks mid-epoch: the launcher stops the other and names the rank;
// --resume (here on one process: another world size) finishes the run.
TEST(Distributed, KilledRankStopsTheRunAndResumeFinishesIt) {
  TempDir d;
  const std::string out = d.path("run");
  const Fault f = signal_rank_1(out, SIGKILL, 4, "20");
  EXPECT_NE(f.code, 0) << f.err;
  EXPECT_NE(f.code, 999) << "the launcher did not stop: " << f.err;
  EXPECT_LT(f.seconds, 30.0) << "within the collective timeout (20 s) and the launcher's grace";
  EXPECT_NE(f.err.find("rank 1"), std::string::npos) << f.err;
  EXPECT_NE(f.err.find("signal 9"), std::string::npos) << f.err;
  // resume on one process from the last checkpoint (a different world size), to a shorter end
  auto resume = minmax_args(out, 12, 8);
  resume.insert(resume.begin() + 1, "--resume");
  const auto r = run(resume);
  ASSERT_EQ(r.code, 0) << r.err;
  const auto lines = testing::read_lines(out + "/metrics.jsonl");
  ASSERT_EQ(lines.size(), 12u);
  EXPECT_EQ(nlohmann::json::parse(lines.back())["epoch"], 12);
}

// A rank that hangs (SIGSTOP) does not leave the others waiting: their collectives time out
// after dist.timeout_s, the launcher stops the run and says which rank failed.
TEST(Distributed, HungRankTimesOut) {
  TempDir d;
  const Fault f = signal_rank_1(d.path("run"), SIGSTOP, 2, "3");
  EXPECT_EQ(f.code, kExitTraining) << f.err;
  EXPECT_LT(f.seconds, 20.0);
  EXPECT_NE(f.err.find("rank 0"), std::string::npos) << f.err;
  EXPECT_NE(f.err.find("dist.timeout_s"), std::string::npos) << f.err;
}

// --resume with another world size continues the same data order (train.batch_size is global).
TEST(Distributed, ResumeOnTwoRanksOfAOneProcessRun) {
  TempDir d;
  ASSERT_EQ(run(minmax_args(d.path("full"), 4)).code, 0);
  ASSERT_EQ(run(minmax_args(d.path("part"), 2)).code, 0);
  auto resume = with(minmax_args(d.path("part"), 4), launch(2, free_port()));
  resume.insert(resume.begin() + 1, "--resume");
  const auto r = run(resume);
  ASSERT_EQ(r.code, 0) << r.err;
  expect_same_weights(d.path("full/checkpoints/last.pt"), d.path("part/checkpoints/last.pt"), 1e-5);
  EXPECT_EQ(testing::read_lines(d.path("part/metrics.jsonl")).size(), 4u);
}

// ---- bad input: exit 2, the flag or address named, no run directory -----------------------------

void expect_refused(const Result& r, const std::string& needle, const std::string& run_dir) {
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_NE(r.err.find(needle), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(run_dir)) << run_dir;
}

TEST(DistributedBadInput, FlagsOutOfRange) {
  TempDir d;
  const std::string out = d.path("run");
  expect_refused(run(with(minmax_args(out, 1), {"--nproc-per-node", "0"})), "--nproc-per-node 0", out);
  expect_refused(run(with(minmax_args(out, 1), {"--nproc-per-node", "1", "--nnodes", "2", "--node-rank", "2"})), "--node-rank 2", out);
  expect_refused(run(with(minmax_args(out, 1), {"--nproc-per-node", "1", "--nnodes", "0"})), "--nnodes 0", out);
  expect_refused(run(with(minmax_args(out, 1), {"--nproc-per-node", "4096"})), "--nproc-per-node 4096", out);
  expect_refused(run(minmax_args(out, 1), {{"WORLD_SIZE", "0"}}), "WORLD_SIZE", out);
  expect_refused(run(with(minmax_args(out, 1), {"--nproc-per-node", "1", "--master-addr", "no-such-host.invalid"})),
                 "no-such-host.invalid", out);
}

// Rank 0 refuses an existing run directory; the other ranks exit with its message, nothing is touched.
TEST(DistributedBadInput, ExistingRunDirectoryIsRefusedByEveryRank) {
  TempDir d;
  fs::create_directories(d.path("run"));
  testing::write_text(d.path("run/notes.txt"), "mine");
  const auto r = run(with(minmax_args(d.path("run"), 1), launch(2, free_port())));
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_NE(r.err.find("already exists"), std::string::npos) << r.err;
  EXPECT_EQ(fs::directory_iterator(d.path("run"))->path().filename(), "notes.txt");
  EXPECT_EQ(std::distance(fs::directory_iterator(d.path("run")), fs::directory_iterator()), 1);
}

TEST(DistributedBadInput, PortInUse) {
  TempDir d;
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_ANY);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ::listen(fd, 1);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  const int port = ntohs(a.sin_port);
  expect_refused(run(with(minmax_args(d.path("run"), 1), launch(2, port))), "--master-port " + std::to_string(port), d.path("run"));
  ::close(fd);
}

TEST(DistributedBadInput, UnreachableMaster) {
  TempDir d;
  const int port = free_port();
  auto args = with(minmax_args(d.path("run"), 1), {"dist.timeout_s=2", "--nproc-per-node", "1", "--nnodes", "2", "--node-rank", "1",
                                                   "--master-addr", "127.0.0.1", "--master-port", std::to_string(port)});
  const auto r = run(args, {}, 60);
  expect_refused(r, "127.0.0.1:" + std::to_string(port), d.path("run"));
  EXPECT_NE(r.err.find("rank 1"), std::string::npos) << "the launcher names the rank: " << r.err;
}

}  // namespace
}  // namespace attnscope
