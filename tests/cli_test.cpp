// The attnscope command line: bad input exits 2 and writes nothing; runs refuse to overwrite;
// resume refuses a changed config; a run killed with SIGKILL resumes to the same final metrics.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include "test_util.h"

namespace attnscope {
namespace {

namespace fs = std::filesystem;
using testing::run_cli;
using testing::TempDir;

const std::string kMinMax = testing::source_path("configs/minmax.yaml");

struct BadCase {
  const char* name;
  std::string yaml;                // written to bad.yaml when not empty
  std::vector<std::string> extra;  // extra CLI arguments
};

void PrintTo(const BadCase& c, std::ostream* os) { *os << c.name; }

class BadInput : public ::testing::TestWithParam<BadCase> {};

TEST_P(BadInput, ExitsTwoAndLeavesNoRunDirectory) {
  TempDir d;
  const BadCase& c = GetParam();
  std::string config = kMinMax;
  if (!c.yaml.empty()) {
    config = d.path("bad.yaml");
    testing::write_text(config, c.yaml);
  }
  std::vector<std::string> args = {"train", config, "--out", d.path("run")};
  args.insert(args.end(), c.extra.begin(), c.extra.end());
  ::testing::internal::CaptureStderr();
  const int code = run_cli(args);
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(code, 2) << err;
  EXPECT_FALSE(fs::exists(d.path("run"))) << c.name;
  EXPECT_NE(err.find("error"), std::string::npos) << err;
}

INSTANTIATE_TEST_SUITE_P(
    Cli, BadInput,
    ::testing::Values(
        BadCase{"malformed_yaml", "run: {seed: 1\n", {}},
        BadCase{"unknown_key", "train:\n  epoch: 3\n", {}},
        BadCase{"wrong_type", "train:\n  epochs: three\n", {}},
        BadCase{"negative_lr", "optim:\n  lr: -0.1\n", {}},
        BadCase{"zero_epochs", "train:\n  epochs: 0\n", {}},
        BadCase{"unknown_model", "model:\n  name: gpt\n", {}},
        BadCase{"unknown_task", "data:\n  task: chess\n", {}},
        BadCase{"unknown_site", "hooks:\n  attention:\n    sites: [attn.values]\n", {}},
        BadCase{"head_out_of_range", "hooks:\n  attention:\n    heads: [0, 2]\n", {}},
        BadCase{"layer_out_of_range", "hooks:\n  attention:\n    layers: [1]\n", {}},
        BadCase{"bad_dtype", "hooks:\n  attention:\n    dtype: int8\n", {}},
        BadCase{"set_without_equals", "", {"--set", "optim.lr"}},
        BadCase{"set_unknown_key", "", {"--set", "optim.learning_rate=1"}}),
    [](const ::testing::TestParamInfo<BadCase>& i) { return std::string(i.param.name); });

TEST(Cli, MissingConfigFile) {
  TempDir d;
  ::testing::internal::CaptureStderr();
  EXPECT_EQ(run_cli({"train", d.path("nope.yaml"), "--out", d.path("run")}), 2);
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("nope.yaml"), std::string::npos) << err;
  EXPECT_FALSE(fs::exists(d.path("run")));
}

TEST(Cli, UnwritableOutputDirectory) {
  TempDir d;
  testing::write_text(d.path("file"), "x");
  ::testing::internal::CaptureStderr();
  EXPECT_EQ(run_cli({"train", kMinMax, "--out", d.path("file/run")}), 2);
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("cannot create or write the run directory"), std::string::npos) << err;
}

TEST(Cli, UnknownFlagAndNoSubcommandExitTwo) {
  ::testing::internal::CaptureStderr();
  EXPECT_EQ(run_cli({"train", kMinMax, "--frobnicate"}), 2);
  EXPECT_EQ(run_cli({}), 2);
  ::testing::internal::GetCapturedStderr();
}

TEST(Cli, VersionAndHelpExitZero) {
  ::testing::internal::CaptureStdout();
  EXPECT_EQ(run_cli({"--version"}), 0);
  EXPECT_EQ(run_cli({"--help"}), 0);
  EXPECT_EQ(run_cli({"train", "--help"}), 0);
  const std::string out = ::testing::internal::GetCapturedStdout();
  EXPECT_NE(out.find("attnscope 0."), std::string::npos);
  EXPECT_NE(out.find("--resume"), std::string::npos);
  EXPECT_NE(out.find("--set"), std::string::npos);
}

TEST(Cli, RunDirectoryLayoutAndNoOverwrite) {
  TempDir d;
  ASSERT_EQ(run_cli(testing::small_minmax(d.path("run"), 3)), 0);
  for (const char* f : {"config.yaml", "train.log", "metrics.jsonl", "mechanism.json",
                        "checkpoints/last.pt", "checkpoints/best.pt"}) {
    EXPECT_TRUE(fs::exists(d.path("run/") + f)) << f;
  }
  const auto lines = testing::read_lines(d.path("run/metrics.jsonl"));
  ASSERT_EQ(lines.size(), 3u);
  for (const char* k : {"\"epoch\":", "\"step\":", "\"train_loss\":", "\"train_acc\":",
                        "\"val_loss\":", "\"val_acc\":", "\"lr\":", "\"seconds\":"}) {
    EXPECT_NE(lines[0].find(k), std::string::npos) << k;
  }
  const auto log_lines = testing::read_lines(d.path("run/train.log"));
  ASSERT_FALSE(log_lines.empty());
  const std::string log = log_lines.front();
  EXPECT_NE(log.find("attnscope 0."), std::string::npos) << log;

  ::testing::internal::CaptureStderr();
  EXPECT_EQ(run_cli(testing::small_minmax(d.path("run"), 3)), 2);
  EXPECT_NE(::testing::internal::GetCapturedStderr().find("already exists"), std::string::npos);
  auto force = testing::small_minmax(d.path("run"), 2);
  force.insert(force.begin() + 1, "--force");
  EXPECT_EQ(run_cli(force), 0);
  EXPECT_EQ(testing::read_lines(d.path("run/metrics.jsonl")).size(), 2u);
}

TEST(Cli, ForceRefusesToDeleteANonRunDirectory) {
  TempDir d;
  fs::create_directories(d.path("precious"));
  testing::write_text(d.path("precious/thesis.tex"), "x");
  auto args = testing::small_minmax(d.path("precious"), 2);
  args.insert(args.begin() + 1, "--force");
  ::testing::internal::CaptureStderr();
  EXPECT_EQ(run_cli(args), 2);
  ::testing::internal::GetCapturedStderr();
  EXPECT_TRUE(fs::exists(d.path("precious/thesis.tex")));
}

TEST(Cli, ResumeWithAChangedConfigIsRefusedNamingTheKeys) {
  TempDir d;
  ASSERT_EQ(run_cli(testing::small_minmax(d.path("run"), 3)), 0);
  auto args = testing::small_minmax(d.path("run"), 6);
  args.insert(args.begin() + 1, "--resume");
  args.push_back("optim.lr=0.01");
  ::testing::internal::CaptureStderr();
  EXPECT_EQ(run_cli(args), 2);
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("optim.lr: 0.002 -> 0.01"), std::string::npos) << err;
  EXPECT_EQ(testing::read_lines(d.path("run/metrics.jsonl")).size(), 3u);  // untouched
}


TEST(Cli, KilledRunResumesToTheSameFinalMetrics) {
  TempDir d;
  const int epochs = 150;
  auto args = [&](const std::string& out) {
    auto a = testing::small_minmax(out, epochs);
    a.erase(a.begin());  // "train" goes first below
    a.insert(a.begin(), "train");
    a.push_back("train.checkpoint_every=3");
    a.push_back("model.fast_path=false");  // slower epochs: a wider window to kill in
    return a;
  };
  ASSERT_EQ(testing::wait_exit(testing::spawn(args(d.path("full")))), 0);

  const pid_t pid = testing::spawn(args(d.path("killed")));
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (testing::read_lines(d.path("killed/metrics.jsonl")).size() < 40 &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ::kill(pid, SIGKILL);
  EXPECT_EQ(testing::wait_exit(pid), -SIGKILL);
  const size_t done = testing::read_lines(d.path("killed/metrics.jsonl")).size();
  ASSERT_LT(done, static_cast<size_t>(epochs)) << "the run finished before it could be killed";

  auto resume = args(d.path("killed"));
  resume.insert(resume.begin() + 1, "--resume");
  ASSERT_EQ(testing::wait_exit(testing::spawn(resume)), 0);
  EXPECT_EQ(testing::metrics_without_seconds(d.path("full/metrics.jsonl")),
            testing::metrics_without_seconds(d.path("killed/metrics.jsonl")));
}

}  // namespace
}  // namespace attnscope
