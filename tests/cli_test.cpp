// The attnscope command line: bad input exits 2 and writes nothing; runs refuse to overwrite;
// resume refuses a changed config; a run killed with SIGKILL resumes to the same final metrics.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include <nlohmann/json.hpp>

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

// ---- tokenize / predict / export on the tiny Hugging Face fixture of ../shared ------------------

namespace attnscope {
namespace {

std::string tiny(const std::string& which) {
  return std::string(ATTNSCOPE_SOURCE_DIR) + "/../shared/fixtures/hf-roberta-tiny/roberta-tiny-" + which;
}
#define SKIP_WITHOUT_TINY() \
  if (!fs::exists(tiny("regression"))) GTEST_SKIP() << "../shared/fixtures not found beside the source tree"

nlohmann::json tiny_expected() {
  std::ifstream in(std::string(ATTNSCOPE_SOURCE_DIR) + "/../shared/fixtures/hf-roberta-tiny/roberta-tiny-expected.json");
  return nlohmann::json::parse(in);
}

std::string stdout_of(const std::vector<std::string>& args, int* code) {
  ::testing::internal::CaptureStdout();
  *code = run_cli(args);
  return ::testing::internal::GetCapturedStdout();
}

// The rows of a predict CSV: smiles -> outputs.
std::vector<std::pair<std::string, std::vector<double>>> parse_predictions(const std::string& csv) {
  std::istringstream in(csv);
  std::string line;
  std::getline(in, line);
  EXPECT_EQ(line.rfind("smiles,output_0", 0), 0u) << line;
  std::vector<std::pair<std::string, std::vector<double>>> rows;
  while (std::getline(in, line)) {
    std::vector<std::string> f;
    std::string cur;
    bool quoted = false;
    for (char c : line) {
      if (c == '"') quoted = !quoted;
      else if (c == ',' && !quoted) f.push_back(cur), cur.clear();
      else cur += c;
    }
    f.push_back(cur);
    std::vector<double> v;
    for (size_t i = 1; i < f.size(); ++i) v.push_back(std::stod(f[i]));
    rows.push_back({f[0], v});
  }
  return rows;
}

TEST(Predict, MatchesTransformersOnTheTinyRegressionModel) {
  SKIP_WITHOUT_TINY();
  const auto exp = tiny_expected();
  TempDir d;
  std::string file = "smiles\n";
  for (const auto& s : exp["smiles"]) file += "\"" + s.get<std::string>() + "\"\n";
  testing::write_text(d.path("in.csv"), file);
  ASSERT_EQ(run_cli({"predict", "--model", tiny("regression"), "--smiles-file", d.path("in.csv"), "--output",
                     d.path("out.csv"), "--batch", "3"}),
            0);
  const auto rows = parse_predictions(testing::read_file_text(d.path("out.csv")));
  ASSERT_EQ(rows.size(), exp["smiles"].size());
  for (size_t i = 0; i < rows.size(); ++i) {
    EXPECT_EQ(rows[i].first, exp["smiles"][i].get<std::string>());
    EXPECT_NEAR(rows[i].second[0], exp["models"]["regression"]["logits"][i].get<double>(), 1e-5) << rows[i].first;
  }
}

TEST(Export, RoundTripsThroughAHuggingFaceDirectory) {
  SKIP_WITHOUT_TINY();
  TempDir d;
  ASSERT_EQ(run_cli({"export", "--model", tiny("regression"), "--hf", d.path("hf")}), 0);
  for (const char* f : {"config.json", "model.safetensors", "vocab.json", "merges.txt", "tokenizer_config.json",
                        "special_tokens_map.json"}) {
    EXPECT_TRUE(fs::exists(d.path("hf/") + f)) << f;
  }
  std::ifstream in(d.path("hf/config.json"));
  const auto cfg = nlohmann::json::parse(in);
  EXPECT_EQ(cfg["architectures"][0], "RobertaForSequenceClassification");
  EXPECT_EQ(cfg["model_type"], "roberta");
  EXPECT_EQ(cfg["num_hidden_layers"], 2);
  EXPECT_EQ(cfg["problem_type"], "regression");
  EXPECT_EQ(cfg["id2label"].size(), 1u);
  int code = 0;
  const auto a = parse_predictions(stdout_of({"predict", "--model", tiny("regression"), "--smiles", "CCO", "C#N"}, &code));
  const auto b = parse_predictions(stdout_of({"predict", "--model", d.path("hf"), "--smiles", "CCO", "C#N"}, &code));
  ASSERT_EQ(a.size(), 2u);
  for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i].second[0], b[i].second[0], 1e-6);
  // never overwrites a non-empty directory
  EXPECT_EQ(run_cli({"export", "--model", tiny("regression"), "--hf", d.path("hf")}), 2);
}

TEST(Tokenize, PrintsTokensIdsAndSpans) {
  SKIP_WITHOUT_TINY();
  int code = 0;
  const auto out = stdout_of({"tokenize", "--model", tiny("regression"), "--smiles", "C#N", "c1ccccc1Cl"}, &code);
  ASSERT_EQ(code, 0);
  std::istringstream in(out);
  std::string line;
  std::getline(in, line);
  const auto j = nlohmann::json::parse(line);
  EXPECT_EQ(j["smiles"], "C#N");
  EXPECT_EQ(j["tokens"], (nlohmann::json{"<s>", "C", "#", "N", "</s>"}));
  EXPECT_EQ(j["spans"][2], (nlohmann::json{1, 2}));
  EXPECT_TRUE(j["spans"][0].is_null());
  std::getline(in, line);
  const auto k = nlohmann::json::parse(line);
  std::string joined;  // the spans cover the SMILES exactly
  for (size_t i = 1; i + 1 < k["tokens"].size(); ++i) {
    joined += k["smiles"].get<std::string>().substr(k["spans"][i][0], k["spans"][i][1].get<int>() - k["spans"][i][0].get<int>());
  }
  EXPECT_EQ(joined, "c1ccccc1Cl");
}

TEST(Predict, BadInputIsExit2) {
  SKIP_WITHOUT_TINY();
  TempDir d;
  EXPECT_EQ(run_cli({"predict", "--model", d.path("nope"), "--smiles", "CCO"}), 2);
  EXPECT_EQ(run_cli({"predict", "--model", tiny("mlm"), "--smiles", "CCO"}), 2) << "an MLM has no regression head";
  EXPECT_EQ(run_cli({"predict", "--model", tiny("regression")}), 2) << "no SMILES";
  testing::write_text(d.path("bad.csv"), "name,value\nx,1\n");
  EXPECT_EQ(run_cli({"predict", "--model", tiny("regression"), "--smiles-file", d.path("bad.csv")}), 2);
  std::string long_smiles;
  for (int i = 0; i < 200; ++i) long_smiles += "C(Cl)";
  EXPECT_EQ(run_cli({"predict", "--model", tiny("regression"), "--smiles", long_smiles, "--too-long", "error"}), 2);
  int code = 0;
  const auto rows = parse_predictions(stdout_of({"predict", "--model", tiny("regression"), "--smiles", long_smiles}, &code));
  EXPECT_EQ(code, 0) << "truncated with a warning by default";
  EXPECT_EQ(rows.size(), 1u);
  // a config of another architecture
  fs::create_directories(d.path("bert"));
  testing::write_text(d.path("bert/config.json"), R"({"model_type": "bert", "hidden_size": 48, "num_attention_heads": 4})");
  EXPECT_EQ(run_cli({"export", "--model", d.path("bert"), "--hf", d.path("out")}), 2);
}

}  // namespace
}  // namespace attnscope
