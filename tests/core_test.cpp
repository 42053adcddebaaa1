// Config resolution: defaults < file < --set, every problem reported at once with its location.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "core/core.h"
#include "test_util.h"

namespace attnscope {
namespace {

using testing::TempDir;
using testing::write_text;

std::vector<std::string> problems_of(const std::string& path, const std::vector<std::string>& sets = {}) {
  try {
    resolve_config(path, sets);
  } catch (const ConfigError& e) {
    return e.problems();
  }
  return {};
}

bool any_contains(const std::vector<std::string>& v, const std::string& a, const std::string& b = "") {
  for (const auto& s : v) {
    if (s.find(a) != std::string::npos && s.find(b) != std::string::npos) return true;
  }
  return false;
}

TEST(Config, DefaultsComeFromTheStructs) {
  const auto r = resolve_config("", {});
  EXPECT_EQ(r.config.run.seed, Config{}.run.seed);
  EXPECT_EQ(r.config.optim.lr, Config{}.optim.lr);
  EXPECT_TRUE(r.sources.empty());
}

TEST(Config, MinMaxPresetHoldsThePublishedSetup) {
  const auto c = resolve_config(testing::source_path("configs/minmax.yaml"), {}).config;
  EXPECT_EQ(c.data.task, "minmax");
  EXPECT_EQ(c.data.minmax_numbers, 128);
  EXPECT_EQ(c.model.d_model, 32);
  EXPECT_EQ(c.model.n_heads, 2);
  EXPECT_EQ(c.model.d_head, 16);
  EXPECT_DOUBLE_EQ(c.optim.lr, 2e-3);
  EXPECT_DOUBLE_EQ(c.optim.weight_decay, 1.0);
  EXPECT_EQ(c.optim.betas, (std::vector<double>{0.9, 0.99}));
  EXPECT_DOUBLE_EQ(c.optim.eps, 1e-8);
  EXPECT_EQ(c.train.epochs, 750);
  EXPECT_EQ(c.train.batch_size, 0);
}

TEST(Config, SetOverridesFileAndRecordsSource) {
  TempDir d;
  write_text(d.path("c.yaml"), "optim:\n  lr: 0.5\ntrain:\n  epochs: 3\n");
  const auto r = resolve_config(d.path("c.yaml"), {"optim.lr=0.25", "optim.betas=[0.8, 0.9]"});
  EXPECT_DOUBLE_EQ(r.config.optim.lr, 0.25);
  EXPECT_EQ(r.config.optim.betas, (std::vector<double>{0.8, 0.9}));
  EXPECT_EQ(r.config.train.epochs, 3);
  EXPECT_EQ(r.sources.at("train.epochs"), d.path("c.yaml") + ":4");
  EXPECT_NE(r.sources.at("optim.lr").find("--set"), std::string::npos);
}

TEST(Config, AllProblemsAreReportedAtOnceWithFileAndLine) {
  TempDir d;
  write_text(d.path("bad.yaml"),
             "run:\n"
             "  seed: 1\n"
             "optim:\n"
             "  learning_rate: 0.1\n"   // line 4: unknown key
             "  lr: -1\n"               // line 5: out of range
             "train:\n"
             "  epochs: many\n"         // line 7: wrong type
             "  best_metric: val_loss\n"
             "  best_mode: max\n"       // inconsistent with val_loss
             "modle:\n"                 // line 10: unknown section
             "  name: x\n");
  const auto p = problems_of(d.path("bad.yaml"));
  ASSERT_GE(p.size(), 5u) << ::testing::PrintToString(p);
  const std::string f = d.path("bad.yaml");
  EXPECT_TRUE(any_contains(p, "optim.learning_rate (" + f + ":4)", "unknown key"));
  EXPECT_TRUE(any_contains(p, "optim.lr (" + f + ":5)", "must be > 0"));
  EXPECT_TRUE(any_contains(p, "train.epochs (" + f + ":7)", "expected an integer, got 'many'"));
  EXPECT_TRUE(any_contains(p, "train.best_mode", "use min"));
  EXPECT_TRUE(any_contains(p, "modle (" + f + ":10)", "unknown key"));
}

TEST(Config, RangeRules) {
  EXPECT_TRUE(any_contains(problems_of("", {"train.epochs=0"}), "train.epochs", "must be >= 1"));
  EXPECT_TRUE(any_contains(problems_of("", {"optim.betas=[0.9]"}), "optim.betas", "two numbers"));
  EXPECT_TRUE(any_contains(problems_of("", {"model.name=gpt5"}), "model.name", "minmax_attention"));
  EXPECT_TRUE(any_contains(problems_of("", {"data.task=chess"}), "data.task", "must be one of"));
  EXPECT_TRUE(any_contains(problems_of("", {"data.train_fraction=1.5"}), "data.train_fraction"));
  EXPECT_TRUE(any_contains(problems_of("", {"train.best_metric=f1"}), "train.best_metric", "reports"));
  EXPECT_TRUE(any_contains(problems_of("", {"model.fast_path=maybe"}), "model.fast_path", "true or false"));
}

TEST(Config, SetErrors) {
  EXPECT_TRUE(any_contains(problems_of("", {"optim.lr"}), "--set 'optim.lr'", "key.path=value"));
  EXPECT_TRUE(any_contains(problems_of("", {"optim.rl=1"}), "optim.rl", "did you mean 'optim.lr'"));
  EXPECT_TRUE(any_contains(problems_of("", {"optim.lr=abc"}), "optim.lr", "expected a finite number"));
}

TEST(Config, FileErrors) {
  TempDir d;
  EXPECT_TRUE(any_contains(problems_of(d.path("missing.yaml")), "cannot read config file"));
  write_text(d.path("broken.yaml"), "run:\n  seed: [1, 2\n");
  EXPECT_TRUE(any_contains(problems_of(d.path("broken.yaml")), "malformed YAML"));
  write_text(d.path("list.yaml"), "- 1\n- 2\n");
  EXPECT_TRUE(any_contains(problems_of(d.path("list.yaml")), "expected a mapping"));
  write_text(d.path("scalar_section.yaml"), "optim: 3\n");
  EXPECT_TRUE(any_contains(problems_of(d.path("scalar_section.yaml")), "optim", "expected a mapping"));
}

TEST(Config, YamlRoundTripIsExact) {
  Config c;
  c.data.train_fraction = 1.0 / 3.0;
  c.optim.lr = 2e-3;
  c.run.name = "a: tricky # name";
  const Config back = config_from_yaml(to_yaml(c), "roundtrip");
  EXPECT_TRUE(config_differences(c, back, false).empty()) << to_yaml(c);
  EXPECT_EQ(back.data.train_fraction, 1.0 / 3.0);
  EXPECT_EQ(back.run.name, c.run.name);
  EXPECT_EQ(config_hash(c), config_hash(back));
}

TEST(Config, ResumeDifferencesSkipResumeSafeKeys) {
  Config a, b;
  b.train.epochs = a.train.epochs + 5;
  b.train.progress = "none";
  EXPECT_TRUE(config_differences(a, b, true).empty());
  EXPECT_EQ(config_hash(a), config_hash(b));
  b.optim.lr *= 2;
  const auto d = config_differences(a, b, true);
  ASSERT_EQ(d.size(), 1u);
  EXPECT_NE(d[0].find("optim.lr"), std::string::npos);
  EXPECT_NE(config_hash(a), config_hash(b));
}

TEST(Config, ReferenceListsEveryKey) {
  const std::string md = config_reference_markdown();
  for (const char* key : {"run.seed", "run.threads", "data.task", "model.d_head", "optim.betas",
                          "train.patience", "train.best_metric"}) {
    EXPECT_NE(md.find(std::string("`") + key + "`"), std::string::npos) << key;
  }
}

}  // namespace
}  // namespace attnscope

namespace attnscope {
namespace {

// Every preset resolves its data inside the repository: `attnscope config` on it names only
// paths that exist in the source tree (relative to it, as the presets are run from it), and its
// CSV holds the SMILES and target columns the preset names. A fresh clone needs nothing beside it.
TEST(Presets, EveryPathAPresetNamesLiesInTheRepository) {
  auto unquote = [](std::string v) {
    while (!v.empty() && (v.back() == ' ' || v.back() == '\r')) v.pop_back();
    if (v.size() >= 2 && (v.front() == '"' || v.front() == '\'')) v = v.substr(1, v.size() - 2);
    return v;
  };
  auto list = [&](std::string v) {  // [a, b, "c d"]
    std::vector<std::string> out;
    v = unquote(v);
    if (v.size() < 2 || v.front() != '[') return out;
    std::stringstream in(v.substr(1, v.size() - 2));
    for (std::string item; std::getline(in, item, ',');) {
      const auto b = item.find_first_not_of(' ');
      if (b != std::string::npos) out.push_back(unquote(item.substr(b)));
    }
    return out;
  };
  int presets = 0;
  for (const auto& entry : std::filesystem::directory_iterator(testing::source_path("configs"))) {
    if (entry.path().extension() != ".yaml") continue;
    ++presets;
    SCOPED_TRACE(entry.path().filename().string());
    ::testing::internal::CaptureStdout();
    ASSERT_EQ(testing::run_cli({"config", entry.path().string()}), 0);
    std::stringstream out(::testing::internal::GetCapturedStdout());
    std::map<std::string, std::string> key;  // section.key -> value
    std::string section;
    for (std::string line; std::getline(out, line);) {
      if (line.empty() || line[0] == '#') continue;
      const auto colon = line.find(':');
      if (colon == std::string::npos) continue;
      if (line[0] != ' ') {
        section = line.substr(0, colon);
      } else {
        const auto b = line.find_first_not_of(' ');
        key[section + "." + line.substr(b, colon - b)] = colon + 2 <= line.size() ? line.substr(colon + 2) : "";
      }
    }
    std::vector<std::string> paths;
    for (const char* k : {"data.csv", "data.split_file", "model.pretrained", "model.tokenizer_dir", "hooks.attention.probe_file"}) {
      const auto v = unquote(key[k]);
      if (!v.empty()) paths.push_back(v);
    }
    for (const auto& v : list(key["data.exclude"])) paths.push_back(v);
    for (const auto& p : paths) {
      EXPECT_TRUE(std::filesystem::path(p).is_relative()) << p << ": a preset names paths inside the repository";
      EXPECT_EQ(p.find(".."), std::string::npos) << p << ": outside the repository";
      EXPECT_TRUE(std::filesystem::exists(testing::source_path(p))) << p << " does not exist in the repository";
    }
    const auto csv = unquote(key["data.csv"]);
    if (csv.empty() || std::filesystem::path(csv).extension() != ".csv") continue;
    std::ifstream in(testing::source_path(csv));
    std::string header;
    std::getline(in, header);
    std::vector<std::string> columns = list("[" + header + "]");
    auto has = [&](const std::string& c) { return std::find(columns.begin(), columns.end(), c) != columns.end(); };
    const auto text_col = unquote(key["data.text_col"]);  // text presets read it instead of the SMILES column
    const auto input_col = text_col.empty() ? unquote(key["data.smiles_col"]) : text_col;
    EXPECT_TRUE(has(input_col)) << csv << ": no column " << input_col;
    for (const auto& t : list(key["data.targets"])) EXPECT_TRUE(has(t)) << csv << ": no target column " << t;
  }
  EXPECT_GE(presets, 12);
}

TEST(Docs, ReadmeConfigReferenceIsCurrent) {
  std::ifstream in(testing::source_path("README.md"));
  std::stringstream ss;
  ss << in.rdbuf();
  EXPECT_NE(ss.str().find(config_reference_markdown()), std::string::npos)
      << "README.md's config reference is stale: paste `attnscope config --reference` into it";
}

// ---- the task vocabulary, run-directory paths, string helpers -----------------------------------

TEST(TaskKind, EveryTaskHasItsTraitsAndNamesResolve) {
  for (const auto& t : all_tasks()) {
    EXPECT_EQ(&traits(t.kind), &t);
    EXPECT_EQ(find_task(t.name), &t);
    EXPECT_EQ(t.metrics.front(), "train_loss") << t.name;
    EXPECT_FALSE(t.models.empty()) << t.name;
    EXPECT_EQ(t.supervised, !t.problem_type.empty()) << t.name;
  }
  EXPECT_EQ(traits(TaskKind::Regression).problem_type, "regression");
  EXPECT_EQ(traits(TaskKind::Multiclass).problem_type, "single_label_classification");
  EXPECT_EQ(traits(TaskKind::Classification).problem_type, "multi_label_classification");
  EXPECT_EQ(find_task("nope"), nullptr);
  try {
    task_named("nope", "data.task");
    ADD_FAILURE() << "expected a UsageError";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("data.task: unknown task 'nope' (one of: minmax, regression"), std::string::npos)
        << e.what();
  }
}

TEST(RunDir, PathsAndTheOneRuleOfARunDirectory) {
  TempDir d;
  const RunDir run{d.path("run/")};
  EXPECT_EQ(run.attention(), d.path("run/attention.h5"));
  EXPECT_EQ(run.last_checkpoint(), d.path("run/checkpoints/last.pt"));
  EXPECT_EQ(run.best_checkpoint(), d.path("run/checkpoints/best.pt"));
  EXPECT_EQ(RunDir{"r"}.model_config(), "r/config.json");
  std::filesystem::create_directories(d.path("a"));
  EXPECT_FALSE(RunDir::is_run(d.path("a")));
  write_text(d.path("a/metrics.jsonl"), "");
  EXPECT_TRUE(RunDir::is_run(d.path("a")));
  std::filesystem::create_directories(d.path("b/checkpoints"));
  EXPECT_TRUE(RunDir::is_run(d.path("b")));
  EXPECT_FALSE(RunDir::is_run(d.path("missing")));
}

TEST(RunDir, KeptCheckpointNamesHaveOneWriterAndOneParser) {
  for (int64_t e : {0LL, 10LL, 250LL, 999999LL, 1000000LL, 123456789012LL}) {
    EXPECT_EQ(RunDir::kept_epoch(RunDir::kept_checkpoint(e)), e) << e;
  }
  EXPECT_EQ(RunDir::kept_checkpoint(10), "epoch-000010.pt");
  EXPECT_EQ(RunDir::kept_epoch("epoch-7.pt"), 7);
  for (const char* other : {"best.pt", "last.pt", "epoch-.pt", "epoch-1a.pt", "epoch--1.pt", "epoch-10.pt.tmp", "xepoch-10.pt",
                            "epoch-99999999999999999999999.pt", "epoch-10.PT"}) {
    EXPECT_EQ(RunDir::kept_epoch(other), -1) << other;
  }
  EXPECT_EQ(RunDir::kept_epoch("epoch-000000000000000000000042.pt"), 42);  // leading zeros do not count
}

TEST(Strings, TrimLowerJoinSplitAndProblemLists) {
  EXPECT_EQ(trim(" \t a b \r\n"), "a b");
  EXPECT_EQ(trim("   "), "");
  EXPECT_EQ(lower("SMILES_Col"), "smiles_col");
  EXPECT_EQ(join({"a", "b", "c"}), "a, b, c");
  EXPECT_EQ(join(std::vector<int64_t>{1, 2}, ","), "1,2");
  EXPECT_EQ(split("a,,b"), (std::vector<std::string>{"a", "", "b"}));
  EXPECT_TRUE(split("").empty());
  EXPECT_EQ(split(join(split("x,y", ','), ","), ','), (std::vector<std::string>{"x", "y"}));
  EXPECT_EQ(problem_list("2 problems:", {"one", "two"}), "2 problems:\n  - one\n  - two");
}

// The one UTF-8 rule of text inputs: the first byte that breaks it, by line and byte, as the
// tokenizers' decoder (utf8proc) reads it.
TEST(Utf8, FirstInvalidByteByLineAndByteAndAMessageNamingTheSource) {
  EXPECT_FALSE(find_invalid_utf8(""));
  EXPECT_FALSE(find_invalid_utf8("plain\ncaf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80\n"));  // 2-, 3- and 4-byte characters
  const auto e = find_invalid_utf8("ok\nab\xFF" "cd");
  ASSERT_TRUE(e);
  EXPECT_EQ(e.offset, 5);
  EXPECT_EQ(e.line, 2);
  EXPECT_EQ(e.byte, 3);
  EXPECT_EQ(e.value, 0xFFu);
  for (const std::string bad : {"\x80", "\xC0\xAF", "\xED\xA0\x80", "\xE2\x82", "\xF4\x90\x80\x80", "a\xC3"}) {
    SCOPED_TRACE(bad);  // stray continuation, overlong, surrogate, truncated, past U+10FFFF, cut at the end
    EXPECT_TRUE(find_invalid_utf8(bad));
  }
  try {
    check_utf8("one\ntwo\nthr\xE9" "e", "'notes.txt'");
    ADD_FAILURE() << "no UsageError";
  } catch (const UsageError& err) {
    EXPECT_EQ(std::string(err.what()), "'notes.txt' line 3, byte 4: invalid UTF-8 (byte 0xE9); text inputs must be UTF-8");
  }
  try {
    check_utf8("x\xFF", "--text", 7);  // a text that starts on line 7 of its source
    ADD_FAILURE() << "no UsageError";
  } catch (const UsageError& err) {
    EXPECT_NE(std::string(err.what()).find("--text line 7, byte 2"), std::string::npos) << err.what();
  }
  EXPECT_NO_THROW(check_utf8("caf\xC3\xA9", "--text"));
  EXPECT_EQ(utf8_chars("caf\xC3\xA9 \xE2\x82\xAC\xF0\x9F\x98\x80"), 7);
}

}  // namespace
}  // namespace attnscope
